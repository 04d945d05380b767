"""Issue 11, kind 3: checkpoints are verified, and every failure is one error.

seqrec's ``model.pt`` and ``train_state.pt`` load with ``torch.load(weights_only=True)`` and are
checked against the SHA-256 recorded in the checkpoint's ``config.json``. A pickled, truncated,
bit-flipped, foreign or mis-shaped file is one ``Error:`` line naming the file (never a torch
traceback, never advice to turn ``weights_only`` off, never a payload run); ``infer`` over a range
skips and flags a checkpoint of another run or epoch; ``--resume`` continues only this folder's
own last checkpoint.

Cases 08 (unusable checkpoint files) and 24 (pickled payloads) of ../shared/cases are the first
tests, with the same inputs (tests/data/cases/08, 24).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import invoke
from helpers import CASES, env, error_line, snapshot
from typer.testing import CliRunner

GRU = ["--hidden-size", "16", "--n-sample", "16", "--batch-size", "8"]  # the cases' tiny models
BERT = ["--max-len", "16", "--hidden-size", "16", "--heads", "1", "--layers", "1", "--intermediate-size", "32", "--batch-size", "8"]
PICKLED = "not a seqrec checkpoint file (it holds pickled Python objects); it was not loaded"
CHANGED = "does not match the SHA-256 recorded in config.json: the file changed after the checkpoint was written"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The case's ratings preprocessed; GRU4Rec trained for 1 epoch (m) and, as another run with the
    same settings, for 2 epochs (m2); BERT4Rec pretrained for 1 epoch (pb)."""
    root = tmp_path_factory.mktemp("ckpt")
    runner = CliRunner()
    data = root / "data" / "t"
    ok = lambda r: r.exit_code == 0 or pytest.fail(r.output)  # noqa: E731
    ok(invoke(runner, "preprocess", "ml-1m", "--input", CASES / "08" / "ratings.dat", "--out-dir", data, "--vocab", root / "vocab" / "t.txt"))
    ok(invoke(runner, "train", "gru4rec", "--train-dir", data, "--model-dir", root / "m", "--epochs", 1, *GRU))
    ok(invoke(runner, "train", "gru4rec", "--train-dir", data, "--model-dir", root / "m2", "--epochs", 2, *GRU))
    ok(invoke(runner, "pretrain", "bert4rec", "--train-dir", data, "--model-dir", root / "pb", "--epochs", 1, *BERT))
    return {"data": data, "m": root / "m", "m2": root / "m2", "pb": root / "pb"}


def _copy(src: Path, name: str) -> Path:
    shutil.copytree(src, name)
    return Path(name)


def _reseal(ckpt: Path, name: str) -> None:
    """Record the SHA-256 of a file the test replaced on purpose, so that what is tested is the file itself."""
    cfg = ckpt / "config.json"
    body = json.loads(cfg.read_text())
    body["files"][name] = hashlib.sha256((ckpt / name).read_bytes()).hexdigest()
    cfg.write_text(json.dumps(body, indent=2) + "\n")


def _no_weights_only_advice(result) -> None:
    assert "weights_only" not in result.output and "Traceback" not in result.output, result.output


# ---------------------------------------------------------------- case 08: unusable checkpoint files
def test_case08_unusable_checkpoints_are_one_error_naming_the_file(runner, workdir, runs):
    m = runs["m"]
    sd = torch.load(m / "epoch_1" / "model.pt", weights_only=True)  # seqrec's own files load safely
    st = torch.load(m / "epoch_1" / "train_state.pt", weights_only=True)
    assert sd and st["epoch"] == 1
    for name in ("pickled", "truncated", "shape", "shape_sealed", "state_pickled"):
        _copy(m, f"m_{name}")
    torch.save({"state_dict": sd, "args": argparse.Namespace(lr=0.1)}, "m_pickled/epoch_1/model.pt")
    Path("m_truncated/epoch_1/model.pt").write_bytes((m / "epoch_1" / "model.pt").read_bytes()[:3000])
    k = next(iter(sd))
    for name in ("shape", "shape_sealed"):
        torch.save({**sd, k: sd[k][:5]}, f"m_{name}/epoch_1/model.pt")
    _reseal(Path("m_shape_sealed/epoch_1"), "model.pt")
    st["note"] = argparse.Namespace(x=1)
    torch.save(st, "m_state_pickled/epoch_1/train_state.pt")
    before = snapshot(workdir)

    result = invoke(runner, "evaluate", "--model-dir", "m_pickled")
    assert error_line(result) == f"Error: {Path('m_pickled/epoch_1/model.pt')}: {PICKLED}"
    _no_weights_only_advice(result)
    result = invoke(runner, "evaluate", "--model-dir", "m_truncated")
    assert error_line(result) == (
        f"Error: {Path('m_truncated/epoch_1/model.pt')}: unreadable checkpoint file (truncated or not written by "
        "torch.save: PytorchStreamReader failed reading zip archive: failed finding central directory)"
    )
    # weights of another shape: refused by the checksum; with the checksum resealed, by the shapes
    result = invoke(runner, "recommend", "--model-dir", "m_shape")
    assert error_line(result) == f"Error: {Path('m_shape/epoch_1/model.pt')}: {CHANGED}"
    result = invoke(runner, "recommend", "--model-dir", "m_shape_sealed")
    assert error_line(result) == (
        f"Error: {Path('m_shape_sealed/epoch_1/model.pt')}: the weights do not fit the model described in config.json "
        f"(size mismatch for {k}: copying a param with shape torch.Size([5, 16]) from checkpoint, the shape in current "
        "model is torch.Size([21, 16]).)"
    )
    result = invoke(runner, "train", "gru4rec", "--train-dir", runs["data"], "--model-dir", "m_state_pickled", "--epochs", 2, "--resume", *GRU)
    assert error_line(result) == f"Error: {Path('m_state_pickled/epoch_1/train_state.pt')}: {PICKLED}"
    _no_weights_only_advice(result)
    assert snapshot(workdir) == before  # nothing written, nothing lost


# ---------------------------------------------------------------- case 24: pickled payloads never run
def test_case24_pickled_payloads_are_refused_and_never_run(runner, workdir, runs):
    done = subprocess.run([sys.executable, str(CASES / "24" / "make_payload.py"), "."], env=env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    marker = workdir / "PWNED"  # what the payload would create if it were ever unpickled
    assert b"system" in Path("evil_rawpickle.pt").read_bytes() and not marker.exists()
    for x in "abcd":
        _copy(runs["m"], f"m_{x}")
    _copy(runs["pb"], "pb_e")
    shutil.copy("evil_torchzip.pt", "m_a/epoch_1/model.pt")
    shutil.copy("evil_rawpickle.pt", "m_b/epoch_1/model.pt")
    shutil.copy("evil_torchzip.pt", "m_c/epoch_1/train_state.pt")
    shutil.copy("evil_torchzip.pt", "m_d/epoch_1/model.pt")
    shutil.copy("evil_torchzip.pt", "pb_e/epoch_1/model.pt")
    before = snapshot(workdir)
    attempts = [
        (["infer", "--model-dir", "m_a", "--start-index", 1, "--last-index", 1], "m_a/epoch_1/model.pt"),
        (["evaluate", "--model-dir", "m_b"], "m_b/epoch_1/model.pt"),
        (["train", "gru4rec", "--train-dir", runs["data"], "--model-dir", "m_c", "--epochs", 2, "--resume", *GRU],
         "m_c/epoch_1/train_state.pt"),
        (["recommend", "--model-dir", "m_d", "--output", "rec.tsv"], "m_d/epoch_1/model.pt"),
        (["train", "bert4rec", "--train-dir", runs["data"], "--model-dir", "b_e", "--epochs", 1, "--batch-size", 8,
          "--init-from", "pb_e/epoch_1"], "pb_e/epoch_1/model.pt"),
    ]  # fmt: skip
    for args, file in attempts:
        result = invoke(runner, *args)
        assert error_line(result) == f"Error: {Path(file)}: {PICKLED}", args
        _no_weights_only_advice(result)
    assert not marker.exists(), "a payload ran: a checkpoint was loaded without weights_only"
    assert snapshot(workdir) == before
    assert not Path("rec.tsv").exists() and not Path("b_e").exists()


# ---------------------------------------------------------------- checksums: a bit flip, a file of another run
def _flip_one_weight_bit(path: Path) -> None:
    """Flip the lowest bit of one float of model.pt's tensor data (the file still loads)."""
    sd = torch.load(path, weights_only=True)
    value = sd["out_weight.weight"][3, 5].numpy().tobytes()
    data = bytearray(path.read_bytes())
    at = data.find(value)
    assert at > 0 and data.find(value, at + 1) == -1, "the value must occur once"
    data[at] ^= 1
    path.write_bytes(bytes(data))
    flipped = torch.load(path, weights_only=True)
    assert sum(int((flipped[n] != sd[n]).sum()) for n in sd) == 1  # one number differs: torch alone would not notice


def test_a_bit_flipped_model_pt_is_refused_by_its_checksum(runner, workdir, runs):
    f = _copy(runs["m"], "f")
    _flip_one_weight_bit(f / "epoch_1" / "model.pt")
    before = snapshot(workdir)
    line = f"Error: {Path('f/epoch_1/model.pt')}: {CHANGED}"
    for args in (
        ["evaluate", "--model-dir", "f"],
        ["infer", "--model-dir", "f", "--start-index", 1, "--last-index", 1],
        ["recommend", "--model-dir", "f", "--output", "r.tsv"],
        ["train", "gru4rec", "--train-dir", runs["data"], "--model-dir", "f", "--epochs", 2, "--resume", *GRU],
        ["train", "gru4rec", "--train-dir", runs["data"], "--model-dir", "n", "--epochs", 1, "--init-from", "f/epoch_1", *GRU],
    ):
        assert error_line(invoke(runner, *args)) == line, args
    assert snapshot(workdir) == before
    assert not Path("n").exists()


def test_a_train_state_of_another_run_is_refused(runner, workdir, runs):
    f = _copy(runs["m"], "f")
    shutil.copy(runs["m2"] / "epoch_1" / "train_state.pt", f / "epoch_1" / "train_state.pt")
    before = snapshot(workdir)
    result = invoke(runner, "train", "gru4rec", "--train-dir", runs["data"], "--model-dir", "f", "--epochs", 2, "--resume", *GRU)
    assert error_line(result) == f"Error: {Path('f/epoch_1/train_state.pt')}: {CHANGED}"
    assert snapshot(workdir) == before


def test_a_missing_checksum_is_refused(runner, workdir, runs):
    f = _copy(runs["m"], "f")
    cfg = f / "epoch_1" / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "files": {}}, indent=2))
    result = invoke(runner, "evaluate", "--model-dir", "f")
    assert error_line(result) == f"Error: {Path('f/epoch_1/model.pt')}: no SHA-256 is recorded for it in config.json"


# ---------------------------------------------------------------- checkpoints of another run in the folder
def test_infer_skips_and_flags_checkpoints_of_another_run_or_epoch(runner, workdir, runs):
    f = _copy(runs["m"], "f")
    shutil.copytree(runs["m2"] / "epoch_2", f / "epoch_2")  # another run's epoch 2, same settings and data
    shutil.copytree(runs["m2"] / "epoch_1", f / "epoch_3")  # an epoch 1 renamed
    shutil.copytree(runs["pb"] / "epoch_1", f / "epoch_4")  # another model, its config saying epoch 4
    cfg = f / "epoch_4" / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "epoch": 4}, indent=2))
    other = json.loads((runs["m2"] / "run.json").read_text())["run_id"]
    bert = json.loads((runs["pb"] / "run.json").read_text())["run_id"]
    result = invoke(runner, "infer", "--model-dir", "f", "--start-index", 1, "--last-index", 5, "--output-json", "i.json")
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    flagged = [
        f"model:{Path('f/epoch_5')} missing (skipped)",
        f"model:{Path('f/epoch_2')} belongs to another run than {Path('f/run.json')} (gru4rec, run {other}) (skipped)",
        f"model:{Path('f/epoch_3')} holds epoch 1 of its run, not epoch 3 (skipped)",
        f"model:{Path('f/epoch_4')} belongs to another run than {Path('f/run.json')} (bert4rec, run {bert}) (skipped)",
    ]
    assert out[:4] == flagged, out
    report = json.loads(Path("i.json").read_text())
    assert [r["epoch"] for r in report["results"]] == [1]  # only this run's epoch 1 was evaluated and labelled
    assert report["missing_epochs"] == [5]
    assert report["skipped"] == [line.removeprefix("model:").removesuffix(" (skipped)") for line in flagged[1:]]


def test_resume_refuses_a_last_checkpoint_of_another_run(runner, workdir, runs):
    f = _copy(runs["m"], "f")
    shutil.copytree(runs["m2"] / "epoch_2", f / "epoch_2")
    g = _copy(runs["m"], "g")
    shutil.copytree(runs["m2"] / "epoch_2", g / "epoch_3")  # this run's id written in, but the epoch is not 3
    own = json.loads((g / "run.json").read_text())["run_id"]
    cfg = g / "epoch_3" / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "run_id": own}, indent=2))
    other = json.loads((runs["m2"] / "run.json").read_text())["run_id"]
    before = snapshot(workdir)
    tail = "continuing from it would mix two runs in one folder; move it out of this folder, or start over with --overwrite"
    result = invoke(runner, "train", "gru4rec", "--train-dir", runs["data"], "--model-dir", "f", "--epochs", 3, "--resume", *GRU)
    assert error_line(result) == (
        f"Error: --resume: {Path('f/epoch_2')} belongs to another run than {Path('f/run.json')} (run {other}, not {own_id(f)}): {tail}"
    )
    result = invoke(runner, "train", "gru4rec", "--train-dir", runs["data"], "--model-dir", "g", "--epochs", 4, "--resume", *GRU)
    assert error_line(result) == f"Error: --resume: {Path('g/epoch_3')} holds epoch 2 of its run, not epoch 3: {tail}"
    assert snapshot(workdir) == before


def own_id(model_dir: Path) -> str:
    return json.loads((model_dir / "run.json").read_text())["run_id"]


# ---------------------------------------------------------------- other unusable checkpoints
def test_init_from_a_truncated_or_incomplete_checkpoint(runner, workdir, runs):
    t = _copy(runs["pb"], "t")
    data = (t / "epoch_1" / "model.pt").read_bytes()
    (t / "epoch_1" / "model.pt").write_bytes(data[: len(data) // 2])
    args = ("train", "bert4rec", "--train-dir", runs["data"], "--model-dir", "b", "--epochs", 1, "--batch-size", 8, "--init-from")
    line = error_line(invoke(runner, *args, "t/epoch_1"))  # the reason in brackets is torch's first sentence
    assert line.startswith(f"Error: {Path('t/epoch_1/model.pt')}: unreadable checkpoint file (truncated or not written by torch.save: ")
    (t / "epoch_1" / "model.pt").unlink()
    assert error_line(invoke(runner, *args, "t/epoch_1")) == (
        f"Error: checkpoint file not found: {Path('t/epoch_1/model.pt')}"
    )
    assert error_line(invoke(runner, *args, "t/epoch_9")) == (
        f"Error: checkpoint not found: {Path('t/epoch_9')} (run: seqrec train ...)"
    )
    assert not Path("b").exists()


@pytest.mark.parametrize(
    ("version", "shown"), [(1, "1 (written by seqrec 0.1.0)"), (None, "None (written by seqrec 0.1.0)"), ("2", "'2' (written by seqrec 0.1.0)")]
)
def test_a_checkpoint_of_another_format_version(runner, workdir, runs, version, shown):
    k = _copy(runs["m"], "k")
    cfg = k / "epoch_1" / "config.json"
    body = json.loads(cfg.read_text())
    body["format_version"] = version
    cfg.write_text(json.dumps(body, indent=2))
    before = snapshot(workdir)
    line = (
        f"Error: {cfg.relative_to(workdir) if cfg.is_absolute() else cfg}: checkpoint format version {shown}; this seqrec "
        "reads version 2: retrain, or use the seqrec version that wrote it"
    )
    for args in (
        ["evaluate", "--model-dir", "k"],
        ["recommend", "--model-dir", "k", "--output", "r.tsv"],
        ["train", "gru4rec", "--train-dir", runs["data"], "--model-dir", "k", "--epochs", 2, "--resume", *GRU],
        ["train", "gru4rec", "--train-dir", runs["data"], "--model-dir", "n", "--epochs", 1, "--init-from", "k/epoch_1"],
    ):
        assert error_line(invoke(runner, *args)) == line, args
    assert snapshot(workdir) == before
    assert not Path("n").exists()
