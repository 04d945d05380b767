"""A training process killed in the middle of an epoch, then rerun with --resume, ends exactly
where an uninterrupted run ends (same losses, weights and test metrics), on the CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import REPO

SAMPLE = REPO / "data" / "sample"
ARGS = ["train", "gru4rec", "--train-dir", str(SAMPLE), "--epochs", "3", "--hidden-size", "32",
        "--n-sample", "64", "--batch-size", "16", "--log-every", "10"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "SEQREC_DEBUG": "1"}


def _seqrec(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "seqrec_cli.cli", *args], cwd=cwd, env=ENV, capture_output=True, text=True)


def _epochs(model_dir: Path) -> list[dict]:
    lines = (model_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "epoch"]


def _in_epoch_2(model_dir: Path) -> bool:
    path = model_dir / "metrics.jsonl"
    if not path.is_file():
        return False
    return any(json.loads(line).get("epoch") == 2 for line in path.read_text().splitlines() if line.endswith("}"))


def test_kill_mid_epoch_then_resume(tmp_path):
    done = _seqrec(*ARGS, "--model-dir", "a", cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    proc = subprocess.Popen([sys.executable, "-m", "seqrec_cli.cli", *ARGS, "--model-dir", "b"], cwd=tmp_path, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not _in_epoch_2(tmp_path / "b") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)  # no chance to clean up: the hardest interruption
    proc.wait()
    assert (tmp_path / "b" / "epoch_1").is_dir()
    assert not (tmp_path / "b" / "epoch_2").exists(), "the kill came too late to be mid-epoch"

    resumed = _seqrec(*ARGS, "--model-dir", "b", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from b/epoch_1" in resumed.stderr
    assert [r["train_loss"] for r in _epochs(tmp_path / "b")] == [r["train_loss"] for r in _epochs(tmp_path / "a")]
    wa = torch.load(tmp_path / "a" / "epoch_3" / "model.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "epoch_3" / "model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    results = []
    for name in ("a", "b"):
        out = _seqrec("infer", "--model-dir", name, "--start-index", "3", "--last-index", "3",
                      "--output-json", f"{name}.json", cwd=tmp_path)  # fmt: skip
        assert out.returncode == 0, out.stderr
        results.append(json.loads((tmp_path / f"{name}.json").read_text())["results"][0]["metrics"])
    assert results[0] == results[1]
    assert not [p.name for p in (tmp_path / "b").iterdir() if p.name.startswith(".")]  # no stale temp folders
