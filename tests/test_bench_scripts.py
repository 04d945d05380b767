"""The side-by-side benchmark scripts (scripts/bench_*.py, issue 15): each has --help, refuses bad
input with one ``Error:`` line, and those that run on the bundled sample print exactly one
``SUMMARY`` line on stdout (tiny sizes: the real measurements are run by hand, docs/benchmarks.md)."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import REPO

SCRIPTS = [
    "bench_gru4rec_official.py",
    "bench_eval.py",
    "bench_threads.py",
    "bench_bert4rec_recipe.py",
    "bench_precision.py",
    "bench_gru4rec_fast.py",
    "bench_pretrain.py",
    "bench_gru4rec_step.py",
]
SAMPLE = str(REPO / "data" / "sample")


def run_script(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def summary_of(out: subprocess.CompletedProcess) -> dict[str, str]:
    """The one SUMMARY line of stdout as a dict (and nothing else on stdout)."""
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [line for line in out.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("SUMMARY "), out.stdout
    fields = dict(item.split("=", 1) for item in lines[0].split()[1:])
    assert all(v for v in fields.values()), fields
    return fields


@pytest.mark.parametrize("name", SCRIPTS)
def test_help(name):
    out = run_script(name, "--help", timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ") and "--work" in out.stdout
    assert "SUMMARY" in out.stdout  # the docstring says what the script reports


@pytest.mark.parametrize(
    ("name", "args", "says"),
    [
        ("bench_threads.py", ["--rounds", "0"], "--rounds"),
        ("bench_threads.py", ["--policies", "seqrec,fast"], "--policies"),
        ("bench_threads.py", ["--spin-count", "-1"], "--spin-count"),
        ("bench_threads.py", ["--command", "evaluate"], "--command"),
        ("bench_eval.py", ["--models", "gru4rec,xlnet"], "--models"),
        ("bench_eval.py", ["--catalogue-batch-sizes", "64"], "--catalogue-batch-sizes"),
        ("bench_eval.py", ["--gru4rec-checkpoint", "/nonexistent/epoch_1", "--models", "gru4rec", "--catalogue", "0"], "checkpoint"),
        ("bench_precision.py", ["--precision", "fp32"], "--precision"),
        ("bench_bert4rec_recipe.py", ["--model", "gpt"], "--model"),
        ("bench_bert4rec_recipe.py", ["--ratings", "/nonexistent/ratings.dat"], "/nonexistent/ratings.dat"),
        ("bench_gru4rec_official.py", ["--train", SAMPLE + "/train.txt", "--test", SAMPLE + "/test.txt", "--official", "/nonexistent"], "/nonexistent/run.py"),
        ("bench_threads.py", ["--work", str(REPO / "bench_tmp")], "inside the repository"),
        ("bench_gru4rec_fast.py", ["--yoochoose-dir", "/nonexistent"], "/nonexistent/manifest.json"),
        ("bench_pretrain.py", ["--ml1m-dir", SAMPLE, "--pretrain-epochs", "0,ten"], "--pretrain-epochs"),
        ("bench_pretrain.py", ["--ml1m-dir", "/nonexistent"], "/nonexistent/manifest.json"),
        ("bench_gru4rec_step.py", ["--data", "/nonexistent"], "/nonexistent"),
        ("bench_gru4rec_step.py", ["--data", SAMPLE, "--against", "/nonexistent"], "--against /nonexistent"),
        ("bench_gru4rec_step.py", ["--steps", "0"], "--steps"),
    ],
)  # fmt: skip
def test_bad_input_is_one_error_line(name, args, says, tmp_path):
    if "--work" not in args:
        args = [*args, "--work", str(tmp_path / "work")]
    out = run_script(name, *args, timeout=120)
    assert out.returncode != 0
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and says in lines[0], out.stderr
    assert not (REPO / "bench_tmp").exists()


@pytest.mark.slow
def test_threads_on_the_sample(tmp_path):
    out = run_script(
        "bench_threads.py", "--rounds", "1", "--policies", "seqrec", "--threads", "1", "--work", str(tmp_path),
        "--command", "train gru4rec --epochs 1 --hidden-size 16 --n-sample 32",
    )  # fmt: skip
    fields = summary_of(out)
    assert float(fields["seqrec_pair_over_single"]) > 0 and "old_pair_s" not in fields


@pytest.mark.slow
def test_eval_on_the_sample(tmp_path):
    out = run_script(
        "bench_eval.py", "--yoochoose-dir", SAMPLE, "--ml1m-dir", SAMPLE, "--models", "sasrec", "--repeats", "1",
        "--threads", "1", "--catalogue", "3000", "--catalogue-batch-sizes", "8,64", "--work", str(tmp_path),
    )  # fmt: skip
    fields = summary_of(out)
    assert fields["sasrec_predictions"] == "600" and fields["sasrec_items"] == "240"
    assert fields["catalogue_items"] == "3000" and float(fields["rss_b64_gib"]) > 0
    assert "sasrec_speedup" not in fields


@pytest.mark.slow
def test_eval_against_another_checkout(tmp_path):
    """--against times the same evaluations with another checkout's code (here: this one, so the
    figures must be identical)."""
    out = run_script(
        "bench_eval.py", "--ml1m-dir", SAMPLE, "--models", "bert4rec", "--repeats", "1", "--threads", "1",
        "--catalogue", "0", "--against", str(REPO), "--work", str(tmp_path),
    )  # fmt: skip
    fields = summary_of(out)
    assert fields["bert4rec_same_figures"] == "yes" and float(fields["bert4rec_speedup"]) > 0
    bad = run_script("bench_eval.py", "--against", str(tmp_path), "--work", str(tmp_path / "w"))
    assert bad.returncode == 1 and bad.stdout == "" and "--against" in bad.stderr


@pytest.mark.slow
def test_recipe_on_the_sample(tmp_path):
    out = run_script(
        "bench_bert4rec_recipe.py", "--ratings", str(REPO / "data" / "sample" / "raw" / "ratings.dat"), "--work", str(tmp_path),
        "--", "--epochs", "1", "--max-len", "20", "--threads", "1",
    )  # fmt: skip
    fields = summary_of(out)
    assert fields["model"] == "bert4rec" and fields["protocol"] == "full+filter-seen" and fields["epochs"] == "1"
    assert 0 <= float(fields["ndcg@10"]) <= float(fields["hr@10"]) <= 1 and fields["met"] == "no"


@pytest.mark.slow
def test_precision_on_the_sample(tmp_path):
    out = run_script(
        "bench_precision.py", "--ml1m-dir", SAMPLE, "--models", "sasrec", "--rounds", "1", "--threads", "1",
        "--train-args", "--max-len 20 --max-windows 1", "--work", str(tmp_path),
    )  # fmt: skip
    fields = summary_of(out)
    assert fields["avx512_bf16"] in ("yes", "no") and float(fields["sasrec_bf16_over_fp32"]) > 0
    assert re.fullmatch(r"[\d.]+", fields["sasrec_fp32_steps_per_s"])


@pytest.mark.slow
def test_gru4rec_fast_on_the_sample(tmp_path):
    out = run_script(
        "bench_gru4rec_fast.py", "--yoochoose-dir", SAMPLE, "--rounds", "1", "--work", str(tmp_path),
        "--extra", "--epochs 2 --n-sample 64 --threads 1",
    )  # fmt: skip
    fields = summary_of(out)
    for name in ("gru4rec_rsc15_fast", "gru4rec_rsc15_xe_shared_100_best"):
        assert fields[f"{name}_epochs"] == "2" and 0 < float(fields[f"{name}_recall@20"]) <= 1
        assert float(fields[f"{name}_wall_s"]) >= float(fields[f"{name}_train_s"]) > 0
        assert fields[f"{name}_met"] in ("yes", "no")


def test_gru4rec_step_on_the_sample(tmp_path):
    """The compiled kernels and the torch path take the same steps to the same summed loss."""
    out = run_script(
        "bench_gru4rec_step.py", "--data", SAMPLE, "--steps", "50", "--warmup", "5", "--rounds", "1", "--work", str(tmp_path)
    )  # fmt: skip
    fields = summary_of(out)
    assert fields["same_loss"] == "yes" and fields["steps"] == "50"
    assert float(fields["compiled_ms_per_step"]) > 0 and float(fields["torch_ms_per_step"]) > 0
    assert float(fields["compiled_optimizer_ms"]) < float(fields["compiled_ms_per_step"])


@pytest.mark.slow
def test_pretrain_table_on_the_sample(tmp_path):
    out = run_script(
        "bench_pretrain.py", "--ml1m-dir", SAMPLE, "--pretrain-epochs", "0,2", "--finetune-epochs", "2",
        "--extra", "--max-len 20 --threads 1", "--work", str(tmp_path),
    )  # fmt: skip
    fields = summary_of(out)
    assert fields["p0_best_epoch"] == fields["p2_best_epoch"] == "2"
    assert 0 < float(fields["p2_ndcg@10"]) <= float(fields["p2_hr@10"]) <= 1
    assert fields["best_pretrain_epochs"] in ("0", "2")
    assert (tmp_path / "pretrain_output" / "epoch_2").is_dir() and not (tmp_path / "pretrain_output" / "epoch_3").exists()
    assert "| pretrain epochs |" in out.stderr


def test_loss_side_by_side_at_a_tiny_size():
    out = run_script("bench_loss.py", "--rows", "100", "--items", "300", "--rounds", "1", "--repeats", "1", "--threads", "1")
    fields = summary_of(out)
    assert fields["rows"] == "100" and fields["items"] == "300"
    assert float(fields["speedup"]) > 0 and float(fields["max_grad_diff"]) < 1e-4
    bad = run_script("bench_loss.py", "--rows", "0")
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("Error: ")
