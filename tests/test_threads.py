"""The thread policy (seqrec_cli/threads.py): --threads / SEQREC_THREADS, the default shared among
the worker processes seqrec starts, and OpenMP threads that sleep instead of spinning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

from seqrec_cli import threads


def test_default_divides_the_available_cores():
    cores = threads.available_cores()
    assert cores == len(os.sched_getaffinity(0))
    assert threads.default_threads(1) == cores
    assert threads.default_threads(cores) == 1
    assert threads.default_threads(10 * cores) == 1  # never 0


def _threads_after(command: list[str], env: dict[str, str], cwd) -> tuple[int, str]:
    """Run ``seqrec <command>`` in a fresh interpreter (with no SEQREC_THREADS or OMP_WAIT_POLICY of
    ours, plus ``env``) and read back torch's thread count and the wait policy it ran with."""
    code = (
        "import os, sys, torch\n"
        "from seqrec_cli.cli import main\n"
        "sys.argv = ['seqrec', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print(torch.get_num_threads(), os.environ.get('OMP_WAIT_POLICY'))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k not in ("SEQREC_THREADS", "OMP_WAIT_POLICY")}
    out = subprocess.run(
        [sys.executable, "-c", code, *command], capture_output=True, text=True, env={**clean, **env}, cwd=cwd, timeout=300
    )
    assert out.returncode == 0, out.stderr
    n, policy = out.stdout.split()[-2:]
    return int(n), policy


@pytest.mark.parametrize(("args", "env", "expected"), [(["--threads", "1"], {}, 1), ([], {"SEQREC_THREADS": "1"}, 1), ([], {}, None)])
def test_a_command_sets_torchs_threads(tmp_path, args, env, expected):
    """Run a real evaluate (the popularity baseline needs no model) and read back the thread count
    torch was given, and the wait policy the process ran with."""
    command = ["evaluate", "--baseline", "popularity", "--test-dir", str(REPO / "data" / "sample"), "--output-json", "p.json"]
    n, policy = _threads_after([*command, *args], env, tmp_path)
    assert n == (expected or threads.available_cores())
    assert policy == "PASSIVE"


@pytest.mark.parametrize(
    ("env", "expected"),
    [({}, ("4000", "PASSIVE")), ({"OMP_WAIT_POLICY": "ACTIVE"}, (None, "ACTIVE")), ({"GOMP_SPINCOUNT": "5"}, ("5", None))],
    ids=["default", "user-policy", "user-spin-count"],
)
def test_the_wait_policy_leaves_a_users_setting_alone(env, expected):
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    code = "import os\nfrom seqrec_cli.threads import set_wait_policy\nset_wait_policy()\nprint(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**clean, **env}, timeout=60)
    assert out.returncode == 0, out.stderr
    spin, policy = (None if v == "None" else v for v in out.stdout.split())
    assert (spin, policy) == expected


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [([], {}, 1), (["--threads", "2"], {}, 2), ([], {"SEQREC_THREADS": "2"}, 2)],
    ids=["gru4rec-default", "option", "env"],
)
def test_gru4rec_trains_on_one_thread_unless_told_otherwise(tmp_path, args, env, expected):
    """GRU4Rec's batch-32 steps run fastest on one thread (docs/benchmarks.md): its train command
    defaults to 1; --threads and SEQREC_THREADS still decide."""
    command = ["train", "gru4rec", "--train-dir", str(REPO / "data" / "sample"), "--model-dir", "m", "--epochs", "1",
               "--hidden-size", "8", "--n-sample", "8"]  # fmt: skip
    assert _threads_after([*command, *args], env, tmp_path)[0] == expected
    assert (tmp_path / "m" / "epoch_1").is_dir()
