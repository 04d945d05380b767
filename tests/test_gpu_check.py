"""scripts/gpu_check.sh --cpu-smoke: the GPU check's steps on the bundled sample, on the CPU, so the
script CI cannot run on a GPU is at least known to run (and to report what it should)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO


@pytest.mark.slow
def test_gpu_check_cpu_smoke():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHON": sys.executable}
    out = subprocess.run(
        ["bash", "scripts/gpu_check.sh", "--cpu-smoke"], cwd=REPO, capture_output=True, text=True, env=env, timeout=900
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert text.startswith("python ") and "torch" in text
    for model in ("BERT4Rec", "SASRec", "GRU4Rec"):
        assert f"== {model}" in text
    assert len(re.findall(r"s/epoch .* targets/s", text)) >= 3
    assert len(re.findall(r"evaluate \[full(\+filter-seen)?\]: 600 predictions in \d+\.\d+ s", text)) >= 3
    assert re.search(r"^SUMMARY mode=smoke wall_s=\d+$", text, re.M)
