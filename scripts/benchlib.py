"""Helpers of the scripts/bench_*.py side-by-side measurements (imported by them, not a command).

* :func:`make_clicks`: the synthetic YOOCHOOSE clicks of ``scripts/make_synthetic_clicks.py``;
* :func:`baseline_tree`: a detached ``git worktree`` of the revision to compare with;
* :func:`run_seqrec`: one ``seqrec`` command as a child process, with a given checkout first on
  ``PYTHONPATH``: wall time, CPU time and peak RSS (the child's ``ru_maxrss`` from ``os.wait4``,
  what ``/usr/bin/time -v`` reports as "Maximum resident set size");
* :func:`outputs`: every file a run wrote, manifests without their ``created`` time, to check
  that two versions write the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_clicks(path: Path, sessions: int) -> None:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_synthetic_clicks.py"), str(path), "--sessions", str(sessions)],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    print(f"generated {path} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)


def count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(16 << 20), b""))


def baseline_tree(rev: str, work: Path) -> Path:
    """A detached ``git worktree`` of ``rev`` under ``work`` (reused when it is already there)."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    tree = work / f"baseline-{commit[:12]}"
    if not (tree / "seqrec_cli").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit],
                       check=True, capture_output=True)
    return tree


def remove_tree(tree: Path) -> None:
    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False, capture_output=True)


def run_seqrec(source: Path, args: list[str], folder: Path) -> dict:
    """``seqrec ARGS`` run in a fresh ``folder`` with ``source`` first on PYTHONPATH (the ``seqrec``
    of this Python's environment): wall and CPU seconds, peak RSS in GiB, stdout, the folder."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seqrec = Path(sys.executable).with_name("seqrec")
    env = dict(os.environ, PYTHONPATH=str(source))
    with open(folder / "stdout.txt", "w") as fo, open(folder / "stderr.txt", "w") as fe:
        t0 = time.perf_counter()
        child = subprocess.Popen([str(seqrec), *args], cwd=folder, env=env, stdout=fo, stderr=fe)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
        wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.stderr.write((folder / "stderr.txt").read_text()[-3000:])
        raise SystemExit(f"SUMMARY status=failed source={source} rc={rc}")
    stdout = (folder / "stdout.txt").read_text()
    (folder / "stdout.txt").unlink()
    (folder / "stderr.txt").unlink()
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_gib": usage.ru_maxrss / 2**20,  # Linux: KiB
        "stdout": stdout,
        "dir": folder,
    }


def outputs(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``; manifests without their ``created`` time."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            if path.name == "manifest.json":
                manifest = json.loads(data)
                manifest.pop("created", None)
                data = json.dumps(manifest, sort_keys=True).encode()
            files[str(path.relative_to(folder))] = data
    return files


def alternate(versions: dict[str, Path], args: list[str], work: Path, repeat: int) -> dict[str, list[dict]]:
    """Run every version ``repeat`` times, alternating (old, new, old, new, ...)."""
    runs: dict[str, list[dict]] = {name: [] for name in versions}
    for k in range(repeat):
        for name, source in versions.items():
            run = run_seqrec(source, args, work / f"run-{name}")
            runs[name].append(run)
            print(f"{name} #{k + 1}: {run['wall']:.1f}s wall, {run['cpu']:.1f}s CPU, {run['rss_gib']:.2f} GiB peak RSS",
                  file=sys.stderr)
    return runs


def compare(runs: dict[str, list[dict]], baseline: str | None) -> dict:
    """SUMMARY fields: the new version's median wall / CPU and peak RSS; with a baseline its own,
    the ratios old / new and whether both wrote the same files and the same report."""
    import statistics

    def med(rs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    new = runs["new"]
    out = {
        "wall_s": round(med(new, "wall"), 1),
        "cpu_s": round(med(new, "cpu"), 1),
        "peak_rss_gib": round(max(r["rss_gib"] for r in new), 2),
    }
    if "old" in runs:
        old = runs["old"]
        same = outputs(old[-1]["dir"]) == outputs(new[-1]["dir"]) and old[-1]["stdout"] == new[-1]["stdout"]
        out.update({
            "baseline": baseline,
            "old_wall_s": round(med(old, "wall"), 1),
            "old_cpu_s": round(med(old, "cpu"), 1),
            "old_peak_rss_gib": round(max(r["rss_gib"] for r in old), 2),
            "wall_ratio": round(med(old, "wall") / med(new, "wall"), 2),
            "cpu_ratio": round(med(old, "cpu") / med(new, "cpu"), 2),
            "identical_outputs": same,
        })
    return out
