"""Shared plumbing of the side-by-side benchmark scripts (scripts/bench_*.py, issue 15).

Every script: ``--help``; work folders under /tmp (never in the repository); progress on stderr;
exactly one ``SUMMARY key=value ...`` line on stdout; one ``Error: ...`` line and a non-zero exit
on bad input or a failed child command. Machines here are noisy, so a comparison runs its sides
alternately (A B A B ...) in one invocation and reports medians and the ratio.

This module imports neither torch nor seqrec: ``--help`` stays instant and a script measures
child processes, not itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "data" / "sample"  # the bundled sample (600 users, 240 items): smoke runs
SHARED_DATA = REPO.parent / "shared" / "data"  # the development copy of the public data sets
# variables that set thread counts or the OpenMP wait policy: every child gets them explicitly
THREAD_VARS = ("SEQREC_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


class BenchError(Exception):
    """A bad input or a failed child command: printed as one ``Error:`` line, exit 1."""


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one ``Error: ...`` line (exit 2), like seqrec's own."""

    def error(self, message: str):  # type: ignore[override]
        print(f"Error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def parser(doc: str) -> Parser:
    """A parser whose description is the module docstring (shown by --help, defaults included)."""
    return Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def summary(fields: dict[str, object]) -> None:
    """The one stdout line a script prints: ``SUMMARY key=value ...`` (floats rounded, no spaces)."""

    def fmt(v: object) -> str:
        if isinstance(v, float):
            a = abs(v)
            return f"{v:.4f}" if a < 1 else f"{v:.3f}" if a < 10 else f"{v:.1f}" if a < 1000 else f"{v:.0f}"
        return str(v).replace(" ", "_")

    print("SUMMARY " + " ".join(f"{k}={fmt(v)}" for k, v in fields.items()), flush=True)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: list[float]) -> str:
    """min-max of a list, for the progress table (e.g. '42.2-45.3')."""
    return f"{min(values):.2f}-{max(values):.2f}" if values else "-"


def seqrec_exe() -> str:
    """The seqrec console script of the Python running this script (the project's .venv)."""
    beside = Path(sys.executable).with_name("seqrec")
    if beside.exists():
        return str(beside)
    found = shutil.which("seqrec")
    if found is None:
        raise BenchError(f"no seqrec command beside {sys.executable} or on PATH; run with the project's .venv/bin/python")
    return found


def child_env(**overrides: str | None) -> dict[str, str]:
    """This process's environment without any thread setting, plus ``overrides`` (None = unset)."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("COLUMNS", "120")
    for key, value in overrides.items():
        if value is not None:
            env[key] = value
    return env


def work_dir(path: Path, fresh: bool = False) -> Path:
    """A scratch folder outside the repository (refused inside it); emptied first when ``fresh``."""
    path = path.expanduser().resolve()
    if path == REPO or REPO in path.parents:
        raise BenchError(f"--work {path} is inside the repository; use a folder under /tmp")
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Result:
    """One finished child process: exit code, wall seconds, peak RSS and CPU seconds of its own."""

    cmd: list[str]
    rc: int
    wall: float
    peak_rss_kib: int
    cpu_s: float
    stdout: Path
    stderr: Path

    def out(self) -> str:
        return self.stdout.read_text(errors="replace")

    def err(self) -> str:
        return self.stderr.read_text(errors="replace")

    def check(self, what: str) -> Result:
        if self.rc != 0:
            tail = [line for line in self.err().splitlines() + self.out().splitlines() if line.strip()]
            why = next((line for line in reversed(tail) if line.startswith("Error")), tail[-1] if tail else "no output")
            why = why.strip().removeprefix("Error: ")
            raise BenchError(f"{what} failed (exit {self.rc}): {why} (logs: {self.stderr})")
        return self


class Child:
    """A started child process whose stdout/stderr go to ``<logs>/<name>.out|.err``."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], logs: Path, name: str):
        logs.mkdir(parents=True, exist_ok=True)
        self.cmd = [str(c) for c in cmd]
        self.stdout, self.stderr = logs / f"{name}.out", logs / f"{name}.err"
        self._fo, self._fe = open(self.stdout, "w"), open(self.stderr, "w")
        self.t0 = time.perf_counter()
        try:
            self.proc = subprocess.Popen(self.cmd, cwd=cwd, env=env, stdout=self._fo, stderr=self._fe)
        except OSError as exc:
            self._fo.close()
            self._fe.close()
            raise BenchError(f"cannot start {self.cmd[0]}: {exc.strerror}") from None

    def wait(self) -> Result:
        _, status, usage = os.wait4(self.proc.pid, 0)  # the child's own rusage (peak RSS in KiB on Linux)
        wall = time.perf_counter() - self.t0
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._fo.close()
        self._fe.close()
        return Result(
            self.cmd, self.proc.returncode, wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, self.stdout, self.stderr
        )

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.wait()


def shown(cmd: list) -> str:
    """A command as one log line (a multi-line ``-c`` program is cut to its first line)."""
    return " ".join(shlex.quote(str(c).splitlines()[0] + (" ..." if "\n" in str(c) else "")) for c in cmd)


def run(cmd: list[str], cwd: Path, env: dict[str, str], logs: Path, name: str, what: str | None = None) -> Result:
    """Run one child to the end; with ``what``, a non-zero exit raises BenchError naming it."""
    log("$ " + shown(cmd))
    child = Child(cmd, cwd, env, logs, name)
    try:
        result = child.wait()
    except BaseException:
        child.kill()
        raise
    return result.check(what) if what else result


def run_together(cmds: list[list[str]], cwd: Path, env: dict[str, str], logs: Path, name: str) -> tuple[float, list[Result]]:
    """Start every command at once; the wall seconds until the last one ends, and each result."""
    for i, cmd in enumerate(cmds):
        log(f"$ [{i + 1}/{len(cmds)} side by side] " + shown(cmd))
    t0 = time.perf_counter()
    children: list[Child] = []
    try:
        for i, cmd in enumerate(cmds):
            children.append(Child(cmd, cwd, env, logs, f"{name}-{i + 1}"))
        results = [c.wait() for c in children]
    except BaseException:
        for c in children:
            c.kill()
        raise
    return time.perf_counter() - t0, results


def md5(path: Path) -> str:
    """The file's MD5 (hex), read in 1 MiB blocks."""
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def epoch_records(model_dir: Path) -> list[dict]:
    """The per-epoch records of a run's ``metrics.jsonl`` (``"event": "epoch"``: epoch, steps,
    seconds of the training loop, the validation figures when it validated), in order."""
    lines = (model_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in (json.loads(line) for line in lines if line.strip()) if r.get("event") == "epoch"]


def need_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise BenchError(f"{what} {path} does not exist")
    return path


def main_guard(main) -> int:
    """Run ``main()``; BenchError (and Ctrl-C) become one ``Error:`` line on stderr and exit 1."""
    try:
        return int(main() or 0)
    except BenchError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
