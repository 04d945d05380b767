"""train -> infer / evaluate / recommend through the real CLI, end to end on the bundled sample
(600 users, 240 items), with small settings so each training takes a second or two.

One module-scoped run (2 epochs, default model dir model_output/ in its own folder) serves the
read-only tests; tests that change a model folder work on a copy or train their own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import REPO, invoke, listing
from typer.testing import CliRunner

SAMPLE = REPO / "data" / "sample"
VOCAB = REPO / "vocab" / "sample.txt"
SMALL = ["--hidden-size", "32", "--n-sample", "64", "--batch-size", "64"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: one thread is several times faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@contextlib.contextmanager
def _cwd(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _train(runner, model_dir, *extra, epochs=2):
    return invoke(
        runner, "train", "gru4rec", "--train-dir", SAMPLE, "--model-dir", model_dir, "--epochs", epochs, *SMALL, *extra
    )


def _epoch_records(model_dir: Path) -> list[dict]:
    lines = (Path(model_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "epoch"]


def _infer_metrics(runner, model_dir: Path, dest: Path, last=2) -> list[dict]:
    result = invoke(
        runner, "infer", "--model-dir", model_dir, "--start-index", 1, "--last-index", last, "--output-json", dest
    )
    assert result.exit_code == 0, result.output
    return [r["metrics"] for r in json.loads(dest.read_text())["results"]]


def _weights(model_dir: Path, epoch: int) -> dict:
    return torch.load(Path(model_dir) / f"epoch_{epoch}" / "model.pt", weights_only=True)


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _one_line_error(result, *needles):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    return err[0]


@pytest.fixture(scope="module")
def run_a(tmp_path_factory):
    """2 epochs into <folder>/model_output (the default model dir), trained from <folder>."""
    folder = tmp_path_factory.mktemp("run_a")
    runner = CliRunner()
    with _cwd(folder):
        result = invoke(runner, "train", "gru4rec", "--train-dir", SAMPLE, "--epochs", 2, *SMALL)
    assert result.exit_code == 0, result.output
    return folder, result


# ---------------------------------------------------------------------------------------------- train + infer
def test_train_reports_each_epoch(run_a):
    _, result = run_a
    out = result.stdout
    assert re.search(r"^epoch 1: loss \d+\.\d{4}, [\d,]+ steps, .* -> model_output/epoch_1$", out, re.M), out
    assert re.search(r"^epoch 2: loss .* -> model_output/epoch_2$", out, re.M), out
    assert "next: seqrec infer --model-dir model_output --start-index 1 --last-index 2" in out


def test_infer_prints_one_line_per_epoch(run_a, runner, monkeypatch):
    folder, _ = run_a
    monkeypatch.chdir(folder)
    result = invoke(runner, "infer", "--start-index", 1, "--last-index", 2)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("model:")]
    assert len(lines) == 2, result.stdout
    for epoch, line in zip((1, 2), lines):
        assert line.startswith(f"model:model_output/epoch_{epoch} "), line
        # leave-one-out data: GRU4Rec's recall@20 is HR@20 (one target per line)
        pattern = rf"model:model_output/epoch_{epoch} hr@20:0\.\d{{4}} mrr@20:0\.\d{{4}} time_cost\(s\):\d+\.\d protocol:full"
        assert re.fullmatch(pattern, line), line
    assert "wrote model_output/infer.json" in result.stdout
    report = json.loads((folder / "model_output" / "infer.json").read_text())
    assert report["protocol"] == "full"
    assert report["missing_epochs"] == []
    assert [r["epoch"] for r in report["results"]] == [1, 2]
    for r in report["results"]:
        assert r["model"] == "gru4rec" and r["predictions"] == 600 and r["split"] == "test"
        # the printed figures are the JSON's, rounded
        line = lines[r["epoch"] - 1]
        assert f"hr@20:{r['metrics']['hr@20']:.4f}" in line and f"mrr@20:{r['metrics']['mrr@20']:.4f}" in line
        assert 0.3 < r["metrics"]["hr@20"] <= 1.0  # a trained model beats chance (20/240) clearly


def test_checkpoint_layout(run_a):
    folder, _ = run_a
    mdir = folder / "model_output"
    files = listing(mdir)
    for epoch in (1, 2):
        for name in ("model.pt", "config.json", "train_state.pt"):
            assert f"epoch_{epoch}/{name}" in files, files
    assert "run.json" in files and "metrics.jsonl" in files
    assert not any("tmp" in f or f.startswith(".") for f in files), files
    weights = torch.load(mdir / "epoch_1" / "model.pt", weights_only=True)
    assert weights["out_weight.weight"].shape == (241, 32)
    state = torch.load(mdir / "epoch_1" / "train_state.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] > 0
    assert {"optimizer", "rng"} <= set(state)
    cfg = json.loads((mdir / "epoch_1" / "config.json").read_text())
    assert cfg["model"] == "gru4rec" and cfg["epoch"] == 1
    assert cfg["model_config"]["n_items"] == 240 and cfg["model_config"]["hidden_size"] == 32
    assert cfg["train_config"]["n_sample"] == 64 and cfg["train_config"]["epochs"] == 2
    assert cfg["data"]["dataset"] == "sample" and Path(cfg["data"]["train_dir_abs"]) == SAMPLE
    assert Path(cfg["vocab"]["path"]) == VOCAB
    assert re.fullmatch(r"[0-9a-f]{64}", cfg["vocab"]["sha256"])
    records = _epoch_records(mdir)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[1]["step"] > records[0]["step"] > 0
    run = json.loads((mdir / "run.json").read_text())
    assert run["model"] == "gru4rec" and run["dataset"] == "sample"


def test_validation_records_a_best_epoch(run_a):
    """The sample has a valid split: the best validation epoch must be recorded (run.json and
    metrics.jsonl), as `seqrec evaluate` picks it by default."""
    folder, _ = run_a
    records = _epoch_records(folder / "model_output")
    assert all(r["valid"] for r in records)
    assert records[-1]["best"]["epoch"] in (1, 2)
    assert json.loads((folder / "model_output" / "run.json").read_text()).get("best", {}).get("epoch") in (1, 2)


# ---------------------------------------------------------------------------------------------- determinism, resume
def test_same_command_twice_is_identical(run_a, runner, workdir):
    folder, _ = run_a
    with _cwd(workdir):
        result = invoke(runner, "train", "gru4rec", "--train-dir", SAMPLE, "--epochs", 2, *SMALL, "--model-dir", "again")
    assert result.exit_code == 0, result.output
    a, b = _epoch_records(folder / "model_output"), _epoch_records(workdir / "again")
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert [r["valid"] for r in a] == [r["valid"] for r in b]
    assert _same_weights(_weights(folder / "model_output", 2), _weights(workdir / "again", 2))
    assert _infer_metrics(runner, folder / "model_output", workdir / "a.json") == _infer_metrics(
        runner, workdir / "again", workdir / "b.json"
    )


def test_resume_equals_an_uninterrupted_run(run_a, runner, workdir):
    folder, _ = run_a
    result = _train(runner, "b", epochs=1)
    assert result.exit_code == 0, result.output
    result = _train(runner, "b", "--resume", epochs=2)
    assert result.exit_code == 0, result.output
    assert "resuming from b/epoch_1 (epoch 1" in result.stderr
    assert "epoch 1:" not in result.stdout  # epoch 1 is not trained again
    a, b = _epoch_records(folder / "model_output"), _epoch_records(workdir / "b")
    assert [r["epoch"] for r in b] == [1, 2]  # the log is not duplicated
    assert b[1]["train_loss"] == a[1]["train_loss"]
    assert b[1]["step"] == a[1]["step"]
    assert _same_weights(_weights(folder / "model_output", 2), _weights(workdir / "b", 2))
    assert _infer_metrics(runner, workdir / "b", workdir / "b.json") == _infer_metrics(
        runner, folder / "model_output", workdir / "a.json"
    )


def test_resume_with_changed_settings_is_refused(run_a, runner, workdir):
    folder, _ = run_a
    shutil.copytree(folder / "model_output", workdir / "c")
    before = listing(workdir / "c")
    result = _train(runner, "c", "--resume", "--lr", "0.05", epochs=3)
    _one_line_error(result, "--resume")
    assert listing(workdir / "c") == before  # nothing trained, nothing deleted
    result = _train(runner, "c", "--resume", "--overwrite", epochs=3)
    _one_line_error(result, "--resume", "--overwrite")


def test_resume_without_checkpoints(runner, workdir):
    result = _train(runner, "empty", "--resume", epochs=1)
    _one_line_error(result, "resume")


# ---------------------------------------------------------------------------------------------- guards
def test_existing_checkpoints_need_resume_or_overwrite(run_a, runner, workdir):
    folder, _ = run_a
    shutil.copytree(folder / "model_output", workdir / "g")
    result = _train(runner, "g", epochs=1)
    _one_line_error(result, "--resume", "--overwrite")
    assert (workdir / "g" / "epoch_2").is_dir()  # untouched
    result = _train(runner, "g", "--overwrite", epochs=1)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (workdir / "g").glob("epoch_*")) == ["epoch_1"]
    assert [r["epoch"] for r in _epoch_records(workdir / "g")] == [1]


def test_another_model_into_a_gru4rec_dir_is_refused(run_a, runner, workdir):
    folder, _ = run_a
    shutil.copytree(folder / "model_output", workdir / "g")
    result = invoke(
        runner, "train", "bert4rec", "--train-dir", SAMPLE, "--model-dir", "g", "--epochs", 1,
        "--max-len", 20, "--hidden-size", 16, "--intermediate-size", 32,
    )  # fmt: skip
    line = _one_line_error(result, "gru4rec", "bert4rec")
    assert "another --model-dir" in line and "--overwrite" in line  # says what to do
    assert sorted(p.name for p in (workdir / "g").glob("epoch_*")) == ["epoch_1", "epoch_2"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_use_cuda_without_cuda(runner, workdir):
    result = _train(runner, "m", "--use-cuda", epochs=1)
    _one_line_error(result, "CUDA")
    assert not (workdir / "m").exists()


# ---------------------------------------------------------------------------------------------- infer edge cases
def test_infer_flags_missing_epochs(run_a, runner, workdir):
    folder, _ = run_a
    with _cwd(folder):
        result = invoke(runner, "infer", "--start-index", 1, "--last-index", 5, "--output-json", workdir / "i.json")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("model:")]
    for e in (3, 4, 5):
        assert f"model:model_output/epoch_{e} missing (skipped)" in lines
    assert sum(line.endswith("protocol:full") for line in lines) == 2
    report = json.loads((workdir / "i.json").read_text())
    assert report["missing_epochs"] == [3, 4, 5] and len(report["results"]) == 2


def test_infer_without_checkpoints(run_a, runner, workdir):
    (workdir / "nothing").mkdir()
    _one_line_error(invoke(runner, "infer", "--model-dir", "nothing", "--start-index", 1, "--last-index", 2), "nothing")
    _one_line_error(invoke(runner, "infer", "--model-dir", "absent"), "absent")
    folder, _ = run_a
    result = invoke(runner, "infer", "--model-dir", folder / "model_output", "--start-index", 3, "--last-index", 4)
    _one_line_error(result, "have epochs 1..2")


# ---------------------------------------------------------------------------------------------- evaluate, recommend
def test_evaluate_default_checkpoint(run_a, runner, workdir):
    folder, _ = run_a
    run = json.loads((folder / "model_output" / "run.json").read_text())
    epoch = (run.get("best") or {}).get("epoch") or 2  # the best validation epoch, else the last
    with _cwd(folder):
        result = invoke(runner, "evaluate")
    assert result.exit_code == 0, result.output
    assert f"model:model_output/epoch_{epoch} (gru4rec, epoch {epoch})" in result.stdout
    assert "protocol: full ranking over all 240 items; last item of each line (leave-one-out); pessimistic ties" in result.stdout
    dest = folder / "model_output" / f"epoch_{epoch}" / "eval_test_full.json"
    report = json.loads(dest.read_text())
    assert report["protocol"] == "full" and report["predictions"] == 600 and report["epoch"] == epoch
    assert list(report["metrics"]) == [
        "hr@1", "hr@5", "hr@10", "hr@20", "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20",
        "mrr@1", "mrr@5", "mrr@10", "mrr@20", "mrr",
    ]  # fmt: skip
    # the same figures as infer gives for that epoch
    assert _infer_metrics(runner, folder / "model_output", workdir / "i.json")[epoch - 1] == report["metrics"]


def test_evaluate_sampled_protocol_is_labelled(run_a, runner, workdir):
    folder, _ = run_a
    mdir = folder / "model_output"
    result = invoke(runner, "evaluate", "--model-dir", mdir, "--epoch", 2, "--negatives", 100, "--output-json", "s.json")
    assert result.exit_code == 0, result.output
    assert "protocol: sampled: target vs 100 popularity-sampled negatives" in result.stdout
    sampled = json.loads((workdir / "s.json").read_text())
    assert sampled["protocol"] == "popularity-100"
    result = invoke(runner, "evaluate", "--model-dir", mdir, "--epoch", 2, "--output-json", "f.json")
    assert result.exit_code == 0, result.output
    full = json.loads((workdir / "f.json").read_text())
    # a target's rank among 100 of the items is never worse than among all of them
    for k in ("hr@1", "hr@5", "hr@10", "hr@20", "mrr"):
        assert sampled["metrics"][k] >= full["metrics"][k], k
    result = invoke(
        runner, "evaluate", "--model-dir", mdir, "--epoch", 2, "--negatives", 100, "--sampling", "uniform",
        "--output-json", "u.json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((workdir / "u.json").read_text())["protocol"] == "uniform-100"
    result = invoke(runner, "evaluate", "--model-dir", mdir, "--epoch", 2, "--filter-seen", "--output-json", "fs.json")
    assert result.exit_code == 0, result.output
    assert "items already in the history excluded" in result.stdout
    assert json.loads((workdir / "fs.json").read_text())["protocol"] == "full+filter-seen"


def test_evaluate_table_header_names_the_protocol(run_a, runner, workdir):
    folder, _ = run_a
    result = invoke(runner, "evaluate", "--model-dir", folder / "model_output", "--negatives", 100, "--output-json", "s.json")
    assert result.exit_code == 0, result.output
    assert "value [popularity-100]" in result.stdout


def test_evaluate_too_many_negatives_is_a_one_line_error(run_a, runner, workdir):
    folder, _ = run_a
    result = invoke(runner, "evaluate", "--model-dir", folder / "model_output", "--negatives", 239, "--output-json", "x.json")
    _one_line_error(result, "--negatives")


def _vocab() -> list[str]:
    return VOCAB.read_text(encoding="utf-8").splitlines()


def _read_tsv(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id\titems"
    return [line.split("\t") for line in lines[1:]]


def test_recommend_top_k(run_a, runner, workdir):
    folder, _ = run_a
    with _cwd(folder):
        result = invoke(runner, "recommend", "--top-k", 5)
    assert result.exit_code == 0, result.output
    assert "top-5 for 600 sequences -> model_output/recommendations.tsv" in result.stdout
    rows = _read_tsv(folder / "model_output" / "recommendations.tsv")
    users = (SAMPLE / "users.txt").read_text(encoding="utf-8").splitlines()
    vocab = set(_vocab())
    assert [r[0] for r in rows] == users and len(rows) == 600
    for ident, items in rows:
        rec = items.split(" ")
        assert len(rec) == 5 and len(set(rec)) == 5, (ident, items)
        assert set(rec) <= vocab, (ident, items)


def test_recommend_exclude_seen(run_a, runner, workdir):
    folder, _ = run_a
    result = invoke(
        runner, "recommend", "--model-dir", folder / "model_output", "--top-k", 5, "--exclude-seen", "--output", "r.tsv"
    )
    assert result.exit_code == 0, result.output
    rows = _read_tsv(workdir / "r.tsv")
    vocab = _vocab()
    tests = (SAMPLE / "test.txt").read_text(encoding="utf-8").splitlines()
    assert len(rows) == len(tests) == 600
    for (ident, items), line in zip(rows, tests):
        seen = {vocab[int(i) - 1] for i in line.split()}
        rec = items.split(" ")
        assert len(rec) == 5 and not set(rec) & seen, (ident, rec)


# ---------------------------------------------------------------------------------------------- --params
def test_shipped_params_with_explicit_overrides(runner, workdir):
    result = invoke(
        runner, "train", "gru4rec", "--train-dir", SAMPLE, "--params", "gru4rec_rsc15_xe_shared_100_best",
        "--epochs", 1, "--n-sample", 64, "--batch-size", 128,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = json.loads((workdir / "model_output" / "epoch_1" / "config.json").read_text())
    mc, tc = cfg["model_config"], cfg["train_config"]
    # from the file
    assert mc["hidden_size"] == 100 and mc["dropout_hidden"] == 0.4 and mc["shared_embedding"] is True
    assert mc["bpreg"] == 0.0  # the command's default is 1.0: the file's value must win over a default
    assert mc["loss"] == "sampled-ce" and tc["lr"] == 0.2 and tc["momentum"] == 0.2
    # given on the command line
    assert tc["n_sample"] == 64 and tc["epochs"] == 1 and tc["batch_size"] == 128
    assert sorted(p.name for p in (workdir / "model_output").glob("epoch_*")) == ["epoch_1"]


def test_gru4rec_rsc15_fast_params(runner, workdir):
    """The 'recall@20 0.71 in minutes' setting: the best published one with batch 256, lr 0.1, 4 epochs;
    every other value is the published file's."""
    result = invoke(runner, "train", "gru4rec", "--train-dir", SAMPLE, "--params", "gru4rec_rsc15_fast", "--epochs", 1)
    assert result.exit_code == 0, result.output
    cfg = json.loads((workdir / "model_output" / "epoch_1" / "config.json").read_text())
    mc, tc = cfg["model_config"], cfg["train_config"]
    assert (tc["batch_size"], tc["lr"], tc["momentum"], tc["n_sample"], tc["sample_alpha"]) == (256, 0.1, 0.2, 2048, 0.5)
    assert mc["loss"] == "sampled-ce" and mc["logq"] == 1.0 and mc["shared_embedding"] is True
    assert (mc["hidden_size"], mc["dropout_hidden"], mc["bpreg"]) == (100, 0.4, 0.0)
    assert tc["epochs"] == 1  # the command line wins over the file's 4
    shipped = json.loads((REPO / "seqrec_cli" / "params" / "gru4rec_rsc15_fast.json").read_text())
    best = json.loads((REPO / "seqrec_cli" / "params" / "gru4rec_rsc15_xe_shared_100_best.json").read_text())
    differ = {k for k in best if k != "_about" and shipped[k] != best[k]}
    assert differ == {"batch_size", "lr", "epochs"} and shipped["epochs"] == 4


def test_bert4rec_paper_params(runner, workdir):
    """The paper's ML-1M setting is one flag away; every value of the file reaches the checkpoint."""
    result = invoke(
        runner, "train", "bert4rec", "--train-dir", SAMPLE, "--params", "bert4rec_paper", "--epochs", 1, "--max-len", 20,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = json.loads((workdir / "model_output" / "epoch_1" / "config.json").read_text())
    mc, tc = cfg["model_config"], cfg["train_config"]
    assert (mc["hidden_size"], mc["num_layers"], mc["num_heads"], mc["intermediate_size"]) == (64, 2, 2, 256)
    assert mc["hidden_dropout"] == 0.2 and mc["attention_dropout"] == 0.2 and mc["label_smoothing"] == 0.0
    assert (tc["batch_size"], tc["lr"], tc["warmup_steps"], tc["max_grad_norm"]) == (256, 1e-4, 100, 1.0)
    assert tc["objective"] == "both" and tc["mask_prob"] == 0.2 and tc["weight_decay"] == 0.01
    assert tc["epochs"] == 1 and mc["max_len"] == 20  # the command line wins over the file


def test_params_file_loses_to_options_given_even_at_their_default(runner, workdir):
    params = workdir / "p.json"
    params.write_text(json.dumps({"_note": "ignored", "hidden_size": 8, "lr": 0.05, "n_sample": 10}), encoding="utf-8")
    result = invoke(
        runner, "train", "gru4rec", "--train-dir", SAMPLE, "--params", params, "--epochs", 1, "--batch-size", 128,
        "--lr", "0.2",  # the command's default value, given explicitly: it must still win
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    cfg = json.loads((workdir / "model_output" / "epoch_1" / "config.json").read_text())
    assert cfg["model_config"]["hidden_size"] == 8
    assert cfg["train_config"]["n_sample"] == 10
    assert cfg["train_config"]["lr"] == 0.2


def test_params_file_errors(runner, workdir):
    bad = workdir / "bad.json"
    bad.write_text(json.dumps({"hidden_size": 8, "learning_rate": 0.1}), encoding="utf-8")
    _one_line_error(
        invoke(runner, "train", "gru4rec", "--train-dir", SAMPLE, "--params", bad, "--epochs", 1), "learning_rate"
    )
    _one_line_error(
        invoke(runner, "train", "gru4rec", "--train-dir", SAMPLE, "--params", "no_such_params", "--epochs", 1),
        "gru4rec_rsc15_xe_shared_100_best",
    )
    broken = workdir / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    _one_line_error(invoke(runner, "train", "gru4rec", "--train-dir", SAMPLE, "--params", broken, "--epochs", 1), "JSON")
    assert not (workdir / "model_output").exists()


def test_popularity_baseline(runner, workdir):
    """--baseline popularity ranks by training counts; its figures are labelled and saved."""
    result = invoke(runner, "evaluate", "--baseline", "popularity", "--test-dir", SAMPLE, "--cutoffs", "10",
                    "--output-json", "pop.json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "baseline:popularity" in result.stdout and "protocol: full ranking" in result.stdout
    figures = json.loads((workdir / "pop.json").read_text())
    assert figures["model"] == "popularity" and figures["protocol"] == "full"
    # recompute by hand: rank of each user's last test item among training counts (pessimistic ties)
    train = [list(map(int, line.split())) for line in (SAMPLE / "train.txt").read_text().splitlines()]
    test = [list(map(int, line.split())) for line in (SAMPLE / "test.txt").read_text().splitlines()]
    counts = {}
    for seq in train:
        for i in seq:
            counts[i] = counts.get(i, 0) + 1
    n_items = len((REPO / "vocab" / "sample.txt").read_text().splitlines())
    score = [counts.get(i, 0) for i in range(n_items + 1)]
    hits = 0
    for seq in test:
        t = seq[-1]
        rank = sum(1 for i in range(1, n_items + 1) if score[i] >= score[t])
        hits += rank <= 10
    assert figures["metrics"]["hr@10"] == pytest.approx(hits / len(test))
    bad = invoke(runner, "evaluate", "--baseline", "popularity")
    assert bad.exit_code == 1 and bad.output.startswith("Error:") and "--test-dir" in bad.output
