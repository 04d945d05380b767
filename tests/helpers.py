"""Helpers shared by the reliability tests (issue 11): exact error lines, small real inputs,
real seqrec processes, and a small full filesystem."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

CASES = Path(__file__).resolve().parent / "data" / "cases"  # the inputs of ../shared/cases, copied


def error_line(result, alone: bool = True) -> str:
    """The run failed with exit 1 and no traceback, its last line is its only ``Error: ...`` line,
    and (``alone``) it printed nothing else."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.output.rstrip("\n").splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.output
    if alone:
        assert result.output.endswith("\n") and result.output.count("\n") == 1, result.output
    return errors[0]


def ratings_text(users: int = 12, items: int = 9, seed: int = 0) -> str:
    """A small MovieLens-style ratings.dat that survives the 5-core filter (every user rates every item)."""
    lines = []
    for u in range(1, users + 1):
        for k in range(items):
            movie = 10 * (1 + (k + u * seed) % items)
            lines.append(f"{u}::{movie}::{1 + (u + k) % 5}::{978300000 + 100 * u + k}")
    return "".join(line + "\n" for line in lines)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones too) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def reseal(folder: Path, name: str) -> None:
    """Make a processed folder's manifest agree with a file the test rewrote on purpose."""
    path = Path(folder) / "manifest.json"
    manifest = json.loads(path.read_text())
    sha = hashlib.sha256((Path(folder) / name).read_bytes()).hexdigest()
    if name == "users.txt":
        manifest["users_sha256"] = sha
    else:
        for info in manifest["splits"].values():
            if info["path"] == name:
                info["sha256"] = sha
    path.write_text(json.dumps(manifest, indent=2) + "\n")


def seqrec_cmd(*args: str) -> list[str]:
    """The seqrec CLI as a separate process: the console script beside the interpreter running the tests."""
    script = Path(sys.executable).parent / "seqrec"
    if script.is_file():
        return [str(script), *map(str, args)]
    return [sys.executable, "-c", "from seqrec_cli.cli import main; main()", *map(str, args)]


HOLDER = """
import sys, time
from seqrec_cli.fileio import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def hold_lock(folder: Path | str, where: Path) -> subprocess.Popen:
    """Another real process that holds the lock of ``folder`` (until killed); returns once it holds it."""
    script = where / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.PIPE, text=True, env=env())
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    e.setdefault("COLUMNS", "200")
    return e


def wait_for(predicate, timeout: float = 60.0, step: float = 0.002, proc: subprocess.Popen | None = None):
    """Poll until ``predicate()`` is truthy (returned), the process ends, or the time is up (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            return predicate() or None
        time.sleep(step)
    return None


class TinyFs:
    """A small tmpfs mounted for a test: the full disk of issue 11, kind 7."""

    def __init__(self, root: Path, size_kb: int):
        self.root = root
        self.size_kb = size_kb

    def fill(self, leave_kb: int) -> None:
        """Fill it up until about ``leave_kb`` KB are free."""
        filler = self.root / "filler"
        filler.unlink(missing_ok=True)
        st = os.statvfs(self.root)
        free = st.f_bavail * st.f_frsize
        with open(filler, "wb") as fh:
            fh.write(b"\0" * max(0, free - leave_kb * 1024))

    def free_kb(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize // 1024

    def make_room(self) -> None:
        (self.root / "filler").unlink(missing_ok=True)


def mount_tmpfs(where: Path, size_kb: int) -> TinyFs:
    """Mount a tmpfs of ``size_kb`` KB at ``where``, or skip the test when this machine cannot."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("needs root to mount the small tmpfs that plays the full disk")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.stdout.strip()}")
    return TinyFs(where, size_kb)


def unmount(fs: TinyFs) -> None:
    if subprocess.run(["umount", str(fs.root)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(fs.root)], capture_output=True)
