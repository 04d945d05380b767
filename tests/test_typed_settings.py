"""Issue 11, kind 2: every setting seqrec reads, from the command line or from a JSON file
(``--params``, ``--config``, a checkpoint's ``config.json``, ``run.json``, a data folder's
``manifest.json``), is parsed into its typed dataclass: a wrong shape, a wrong type, a value out of
range, a missing or unknown key, or a size that cannot fit in memory is one ``Error:`` line naming
the option, or the file and the key, before anything is written.

Cases 21 (``--params`` values) and 25 (``--seed`` range) of ../shared/cases are the first tests,
with the same inputs (tests/data/cases/21, 25).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import invoke
from helpers import CASES, error_line, snapshot
from typer.testing import CliRunner

from seqrec_cli import checkpoint

GRU = ["--hidden-size", "8", "--n-sample", "4", "--batch-size", "8"]
BERT = ["--max-len", "16", "--hidden-size", "16", "--heads", "1", "--layers", "1", "--intermediate-size", "32", "--batch-size", "8"]
SAS = ["--max-len", "16", "--hidden-size", "16", "--batch-size", "8"]
SEED_2_70 = str(2**70)  # 1180591620717411303424


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The case's ratings preprocessed (40 users, 20 items) and one GRU4Rec epoch trained on them."""
    root = tmp_path_factory.mktemp("typed")
    runner = CliRunner()
    data = root / "data" / "t"
    result = invoke(runner, "preprocess", "ml-1m", "--input", CASES / "21" / "ratings.dat", "--out-dir", data, "--vocab", root / "vocab" / "t.txt")
    assert result.exit_code == 0, result.output
    result = invoke(runner, "train", "gru4rec", "--train-dir", data, "--model-dir", root / "m", "--epochs", 1, *GRU)
    assert result.exit_code == 0, result.output
    return {"data": data, "model": root / "m"}


def _edit_json(path: Path, change) -> None:
    body = json.loads(path.read_text())
    change(body)
    path.write_text(json.dumps(body, indent=2) + "\n")


# ---------------------------------------------------------------- case 21: --params values checked like the options
def test_case21_params_values_are_checked_like_the_options(runner, workdir, made):
    for f in (CASES / "21").glob("*.json"):
        shutil.copy(f, workdir / f.name)
    result = invoke(runner, "train", "gru4rec", "--train-dir", made["data"], "--model-dir", "m_good", "--params", "good.json")
    assert result.exit_code == 0, result.output
    assert (workdir / "m_good" / "epoch_1").is_dir()
    expected = {
        "shared_embedding_no": "shared_embedding must be true or false, got 'no'",
        "hidden_size_str": "hidden_size must be an integer from 1 to 65536, got 'abc'",
        "dropout_hidden_5": "dropout_hidden must be a number in [0, 1), got 5",
        "layers_0": "layers must be an integer from 1 to 64, got 0",
        "lr_str": "lr must be a number > 0, got 'fast'",
    }
    for name, problem in expected.items():
        result = invoke(runner, "train", "gru4rec", "--train-dir", made["data"], "--model-dir", f"m_{name}", "--params", f"{name}.json")
        assert error_line(result) == f"Error: {name}.json: {problem}"
        assert not (workdir / f"m_{name}").exists()  # refused before any folder was made


# ---------------------------------------------------------------- case 25: --seed and its range
def test_case25_seed_outside_its_range_is_one_error(runner, workdir, made):
    result = invoke(runner, "train", "gru4rec", "--train-dir", made["data"], "--model-dir", "m0", "--seed", 0, "--epochs", 1, *GRU)
    assert result.exit_code == 0, result.output
    for seed in ("-1", SEED_2_70):
        result = invoke(runner, "train", "gru4rec", "--train-dir", made["data"], "--model-dir", f"m{seed}", "--seed", seed, "--epochs", 1, *GRU)
        assert error_line(result) == f"Error: --seed must be an integer from 0 to 4294967295, got {seed}"
        assert not (workdir / f"m{seed}").exists()


# ---------------------------------------------------------------- other commands, other files
@pytest.mark.parametrize(
    "command",
    [["pretrain", "bert4rec", *BERT], ["train", "bert4rec", *BERT], ["train", "sasrec", *SAS]],
    ids=["pretrain-bert4rec", "train-bert4rec", "train-sasrec"],
)
@pytest.mark.parametrize("seed", ["-1", SEED_2_70, "4294967296"])
def test_seed_outside_its_range_on_every_training_command(runner, workdir, made, command, seed):
    result = invoke(runner, *command, "--train-dir", made["data"], "--model-dir", "m", "--epochs", 1, "--seed", seed)
    assert error_line(result) == f"Error: --seed must be an integer from 0 to 4294967295, got {seed}"
    assert not (workdir / "m").exists()


@pytest.mark.parametrize(
    ("command", "text", "problem"),
    [
        ("bert4rec", '{"hidden_size": true}', "c.json: hidden_size must be an integer from 1 to 16384, got true"),
        ("bert4rec", '{"hidden_size": 16, "hidden_dropout_prob": NaN}',
         "c.json:1: not valid JSON: NaN is not a JSON number (JSON has no NaN or Infinity)"),
        ("bert4rec", '{\n  "hidden_size": 16,\n  "attention_probs_dropout_prob": -Infinity\n}',
         "c.json:3: not valid JSON: -Infinity is not a JSON number (JSON has no NaN or Infinity)"),
        ("bert4rec", '{"num_hidden_layers": 0}', "c.json: num_hidden_layers must be an integer from 1 to 64, got 0"),
        ("bert4rec", '{"hidden_act": "tanh"}', "c.json: hidden_act must be one of gelu, relu, got 'tanh'"),
        ("bert4rec", '{"hidden_size": 16, "hidden_size": 32}', "c.json:1: not valid JSON: key \"hidden_size\" given twice"),
        ("sasrec", '{"max_len": 16.5}', "c.json: max_len must be an integer from 1 to 65536, got 16.5"),
        ("sasrec", '{"dropout": null}', "c.json: dropout must be a number in [0, 1), got null"),
        ("sasrec", '[{"hidden_size": 16}]', "c.json: expected a JSON object of option names and values"),
        ("gru4rec", '{"shared_embedding": "false"}', "c.json: shared_embedding must be true or false, got 'false'"),
    ],
    ids=["bool-as-int", "nan", "minus-infinity-at-its-line", "bert-key-0", "choice", "repeated-key", "float-as-int",
         "null", "list", "string-bool"],
)  # fmt: skip
def test_config_file_values_are_typed(runner, workdir, made, command, text, problem):
    Path("c.json").write_text(text, encoding="utf-8")
    result = invoke(runner, "train", command, "--train-dir", made["data"], "--model-dir", "m", "--epochs", 1, "--config", "c.json")
    assert error_line(result) == f"Error: {problem}"
    assert not (workdir / "m").exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "expected a JSON object of option names and values"),
        ('"hidden_size=8"', "expected a JSON object of option names and values"),
        ("null", "expected a JSON object of option names and values"),
        ('{"epochs": 1e400}', "epochs must be an integer from 1 to 100000, got inf"),
        ('{"batch_size": 2.0}', "batch_size must be an integer from 1 to 1048576, got 2"),
        ('{"n_negatives": 0}', "n_negatives must be an integer from 1 to 16777216, got 0"),
        ('{"lr": 1e300}', "lr must be a number > 0 and at most 3.4e+38 (the largest 32-bit float), got 1e+300"),
    ],
    ids=["list", "string", "null", "huge-float", "float-as-int", "below-range", "beyond-float32"],
)
def test_params_file_of_the_wrong_shape_or_type(runner, workdir, made, text, problem):
    Path("p.json").write_text(text, encoding="utf-8")
    result = invoke(runner, "train", "sasrec", "--train-dir", made["data"], "--model-dir", "m", "--params", "p.json", *SAS)
    assert error_line(result) == f"Error: p.json: {problem}"
    assert not (workdir / "m").exists()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["model_config"].update(hidden_size="8"), "model_config: hidden_size must be an integer from 1 to 65536, got '8'"),
        (lambda c: c["model_config"].update(shared_embedding="no"), "model_config: shared_embedding must be true or false, got 'no'"),
        (lambda c: c["model_config"].update(dropout_hidden=5), "model_config: dropout_hidden must be a number in [0, 1), got 5"),
        (lambda c: c["model_config"].pop("num_layers"), "model_config: missing key: num_layers"),
        (lambda c: c["model_config"].update(n_items="20"), "model_config: n_items must be a positive integer, got '20'"),
        (lambda c: c["train_config"].update(seed=-1), "train_config: seed must be an integer from 0 to 4294967295, got -1"),
        (lambda c: c["train_config"].update(dropout=0.1), "train_config: unknown key(s): dropout"),
        (lambda c: c.update(model_config=[8]), "model_config: expected a JSON object for GRU4RecConfig, got list"),
        (lambda c: c.update(epoch="1"), "epoch must be an integer, got '1'"),
        (lambda c: c.update(epoch=0), "epoch must be >= 1, got 0"),
        (lambda c: c.update(files=["model.pt"]), "files must be a JSON object, got [\"model.pt\"]"),
        (lambda c: c["data"].update(eval_target=None), "data.eval_target must be a string, got null"),
    ],
    ids=["size-string", "bool-string", "dropout-5", "missing", "n-items-string", "seed", "unknown", "shape", "epoch-string",
         "epoch-0", "files-list", "nested-null"],
)  # fmt: skip
def test_checkpoint_config_values_are_typed(runner, workdir, made, change, problem):
    shutil.copytree(made["model"], "k")
    _edit_json(workdir / "k" / "epoch_1" / "config.json", change)
    before = snapshot(workdir / "k")
    line = f"Error: {Path('k/epoch_1/config.json')}: {problem}"
    for args in (
        ["evaluate", "--model-dir", "k"],
        ["infer", "--model-dir", "k", "--start-index", 1, "--last-index", 1],
        ["recommend", "--model-dir", "k", "--output", "r.tsv"],
        ["train", "gru4rec", "--train-dir", made["data"], "--model-dir", "k", "--epochs", 2, "--resume", *GRU],
        ["train", "gru4rec", "--train-dir", made["data"], "--model-dir", "n", "--init-from", "k/epoch_1", "--epochs", 1],
    ):
        assert error_line(invoke(runner, *args)) == line, args
    assert snapshot(workdir / "k") == before
    assert not (workdir / "r.tsv").exists() and not (workdir / "n").exists()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([1, 2, 3], "the file must be a JSON object, got list"),
        ({"best": 3}, "best must be a JSON object, got int"),
        ({"run_id": 5}, "run_id must be a string, got 5"),
        ({"best": {"epoch": "1", "metric": "hr@20", "value": 1.0}}, "best.epoch must be an integer, got '1'"),
        ({"owner": "me"}, "unknown key(s): owner"),
    ],
    ids=["list", "best-int", "run-id-int", "nested", "unknown"],
)
def test_run_json_of_the_wrong_shape(runner, workdir, made, body, problem):
    shutil.copytree(made["model"], "k")
    run = workdir / "k" / "run.json"
    if isinstance(body, dict):
        _edit_json(run, lambda r: r.update(body))
    else:
        run.write_text(json.dumps(body))
    before = snapshot(workdir / "k")
    line = f"Error: {Path('k/run.json')}: {problem}"
    for args in (
        ["evaluate", "--model-dir", "k"],
        ["infer", "--model-dir", "k", "--start-index", 1, "--last-index", 1],
        ["recommend", "--model-dir", "k", "--output", "r.tsv"],
        ["train", "gru4rec", "--train-dir", made["data"], "--model-dir", "k", "--epochs", 2, "--resume", *GRU],
    ):
        assert error_line(invoke(runner, *args)) == line, args
    assert snapshot(workdir / "k") == before
    assert not (workdir / "r.tsv").exists()


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m.update(n_items="x"), "n_items must be an integer, got 'x'"),
        (lambda m: m.update(n_items=0), "n_items must be a positive integer, got 0"),
        (lambda m: m.update(n_items=25), "n_items is 25, but the vocabulary {vocab} has 20 items"),
        (lambda m: m["splits"]["train"].update(sequences="40"), "splits.train.sequences must be an integer, got '40'"),
        (lambda m: m["splits"].update(train=[1]), "splits.train must be a JSON object, got list"),
        (lambda m: m["splits"]["train"].update(path="../../ratings.dat"), "splits.train.path must be 'train.txt', got '../../ratings.dat'"),
        (lambda m: m["splits"].update(extra=m["splits"]["train"]), "splits.extra: not a split seqrec writes (those are train, valid, test)"),
        (lambda m: m.update(has_users="yes"), "has_users must be true or false, got 'yes'"),
        (lambda m: m.pop("vocab_sha256"), "missing key: vocab_sha256"),
        (lambda m: m.update(eval_target="first"), "eval_target must be one of last, all, got 'first'"),
    ],
    ids=["n-items-string", "n-items-0", "n-items-vocab", "count-string", "split-list", "split-path", "split-name", "bool",
         "missing", "choice"],
)  # fmt: skip
def test_manifest_values_are_typed(runner, workdir, made, change, problem):
    shutil.copytree(made["data"], "d")
    vocab = (made["data"] / "../../vocab/t.txt").resolve()
    _edit_json(workdir / "d" / "manifest.json", lambda m: (m.update(vocab_path=str(vocab)), change(m)))
    before = snapshot(workdir / "d")
    line = f"Error: {Path('d/manifest.json')}: {problem.format(vocab=vocab)}"
    for args in (
        ["train", "gru4rec", "--train-dir", "d", "--model-dir", "m", "--epochs", 1, *GRU],
        ["evaluate", "--model-dir", made["model"], "--test-dir", "d", "--output-json", "e.json"],
        ["recommend", "--model-dir", made["model"], "--test-dir", "d", "--output", "r.tsv"],
    ):
        assert error_line(invoke(runner, *args)) == line, args
    assert snapshot(workdir / "d") == before
    assert not (workdir / "m").exists() and not (workdir / "e.json").exists() and not (workdir / "r.tsv").exists()


# ---------------------------------------------------------------- a size that cannot fit in memory
_TOO_LARGE = re.compile(
    r"Error: BERT4Rec with --hidden-size 16384 --layers 64 --heads 1 --intermediate-size 65536 --max-len 16 \(20 items\) "
    r"has 206,441,201,686 parameters \(769\.1 GiB of float32 weights\); training needs about 4 times that "
    r"\(3,076\.2 GiB: weights, gradients, optimizer state\), but (this machine|the GPU) has [\d,]+\.\d GiB available; "
    r"choose smaller sizes"
)


def test_a_model_too_large_for_memory_is_refused_before_anything_is_allocated(runner, workdir, made):
    """769 GiB of weights: counted on torch's meta device, never allocated (the kernel killed this run before)."""
    result = invoke(
        runner, "train", "bert4rec", "--train-dir", made["data"], "--model-dir", "m", "--epochs", 1,
        "--hidden-size", 16384, "--layers", 64, "--heads", 1, "--intermediate-size", 65536, "--max-len", 16,
    )  # fmt: skip
    assert _TOO_LARGE.fullmatch(error_line(result)), result.output
    assert not (workdir / "m").exists()


def test_memory_check_names_the_sizes_for_every_model_and_when_loading(runner, workdir, made, monkeypatch):
    monkeypatch.setattr(checkpoint, "available_memory", lambda device: (2**30, "this machine"))  # 1 GiB free
    cases = [
        (["train", "gru4rec", "--hidden-size", 4096, "--layers", 4],
         "GRU4Rec with --hidden-size 4096 --layers 4 (20 items) has 402,837,525 parameters (1.5 GiB of float32 weights)"),
        (["train", "sasrec", "--hidden-size", 4096, "--intermediate-size", 16384, "--layers", 2, "--heads", 2],
         "SASRec with --hidden-size 4096 --heads 2 --intermediate-size 16384 (20 items) has 403,673,088 parameters "
         "(1.5 GiB of float32 weights)"),
        (["pretrain", "bert4rec", "--hidden-size", 2048, "--intermediate-size", 8192, "--layers", 4, "--max-len", 16],
         "BERT4Rec with --hidden-size 2048 --layers 4 --intermediate-size 8192 --max-len 16 (20 items) has 205,715,478 "
         "parameters (0.8 GiB of float32 weights)"),
    ]  # fmt: skip
    for args, start in cases:
        result = invoke(runner, *args, "--train-dir", made["data"], "--model-dir", "m", "--epochs", 1)
        need = {"GRU4Rec": "6.0", "SASRec": "6.0", "BERT4Rec": "3.1"}[start.split()[0]]
        assert error_line(result) == (
            f"Error: {start}; training needs about 4 times that ({need} GiB: weights, gradients, optimizer state), "
            "but this machine has 1.0 GiB available; choose smaller sizes"
        )
        assert not (workdir / "m").exists()
    # loading: a checkpoint whose config.json describes a model larger than the memory (one copy is needed)
    shutil.copytree(made["model"], "k")
    _edit_json(workdir / "k" / "epoch_1" / "config.json", lambda c: c["model_config"].update(hidden_size=8192, num_layers=2))
    for args in (["evaluate", "--model-dir", "k"], ["recommend", "--model-dir", "k", "--output", "r.tsv"]):
        assert error_line(invoke(runner, *args)) == (
            "Error: GRU4Rec with --hidden-size 8192 --layers 2 (20 items) has 805,576,725 parameters "
            "(3.0 GiB of float32 weights), but this machine has 1.0 GiB available; choose smaller sizes"
        )
    assert not (workdir / "r.tsv").exists()
