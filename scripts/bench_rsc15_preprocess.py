#!/usr/bin/env python
"""Wall time and peak memory of ``seqrec preprocess yoochoose`` / ``session-filter`` on YOOCHOOSE-sized clicks.

1. Makes the synthetic clicks with ``scripts/make_synthetic_clicks.py`` (deterministic, seed 15;
   9.25M sessions, ~33M lines, ~1.5 GB for the defaults) unless ``--clicks`` names a file.
2. Runs the command as a child process (the ``seqrec`` of this Python's environment, with this
   checkout first on ``PYTHONPATH``) and measures its wall time, CPU time and peak RSS (the
   child's ``ru_maxrss`` from ``os.wait4``: what ``/usr/bin/time -v`` reports as "Maximum
   resident set size").
3. With ``--baseline REV``, also runs the same command from a ``git worktree`` of that revision
   (same environment), alternating ``REV, this, REV, this, ...`` ``--repeat`` times each, checks
   that every output file is byte-identical (manifests compared without their ``created`` time)
   and reports the ratio of the medians.
4. Prints one line ``SUMMARY key=value ...`` for docs/benchmarks.md.

Everything goes under ``--work`` (default /tmp/seqrec-bench-rsc15), outside the repository. Run
it on a quiet machine; a smaller ``--sessions`` gives a quick check of the script itself:

    .venv/bin/python scripts/bench_rsc15_preprocess.py                                  # full size
    .venv/bin/python scripts/bench_rsc15_preprocess.py --baseline main --repeat 2       # A/B against main
    .venv/bin/python scripts/bench_rsc15_preprocess.py --sessions 20000 --baseline main # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("yoochoose", "session-filter")


def make_clicks(path: Path, sessions: int) -> None:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_synthetic_clicks.py"), str(path), "--sessions", str(sessions)],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    print(f"generated {path} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)


def baseline_tree(rev: str, work: Path) -> Path:
    """A detached ``git worktree`` of ``rev`` under ``work`` (reused when it is already there)."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
                            check=True, capture_output=True, text=True).stdout.strip()
    tree = work / f"baseline-{commit[:12]}"
    if not (tree / "seqrec_cli").is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit],
                       check=True, capture_output=True)
    return tree


def run_once(source: Path, command: str, clicks: Path, out: Path) -> dict:
    """One run of the command with ``source`` first on PYTHONPATH; wall, CPU, peak RSS, outputs."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seqrec = Path(sys.executable).with_name("seqrec")
    args = ["preprocess", command, "--input", str(clicks), "--out-dir", "out"]
    if command == "yoochoose":
        args += ["--vocab", "out/vocab.txt"]
    env = dict(os.environ, PYTHONPATH=str(source))
    with open(out / "stdout.txt", "w") as fo, open(out / "stderr.txt", "w") as fe:
        t0 = time.perf_counter()
        child = subprocess.Popen([str(seqrec), *args], cwd=out, env=env, stdout=fo, stderr=fe)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
        wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    if rc != 0:
        sys.stderr.write((out / "stderr.txt").read_text()[-3000:])
        raise SystemExit(f"SUMMARY status=failed source={source} rc={rc}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_gib": usage.ru_maxrss / 2**20,  # Linux: KiB
        "stdout": (out / "stdout.txt").read_text(),
        "dir": out / "out",
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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-rsc15"), help="scratch folder")
    ap.add_argument("--clicks", type=Path, help="an existing clicks file (else the synthetic one is generated)")
    ap.add_argument("--sessions", type=int, default=9_250_000, help="sessions to generate (the real file: 9,249,729)")
    ap.add_argument("--command", choices=COMMANDS, default="yoochoose", help="the preprocess command to time")
    ap.add_argument("--baseline", metavar="REV", help="git revision to compare with (run from a git worktree)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each version (alternating with --baseline)")
    ap.add_argument("--keep", action="store_true", help="keep the generated clicks, outputs and worktree")
    args = ap.parse_args(argv)

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    clicks = args.clicks.resolve() if args.clicks else work / f"yoochoose-clicks-{args.sessions}.dat"
    if not clicks.is_file():
        make_clicks(clicks, args.sessions)
    with open(clicks, "rb") as fh:
        lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(16 << 20), b""))
    versions = {"new": REPO}
    if args.baseline:
        versions = {"old": baseline_tree(args.baseline, work), "new": REPO}
    runs: dict[str, list[dict]] = {name: [] for name in versions}
    for k in range(args.repeat):
        for name, source in versions.items():  # old, new, old, new, ...
            run = run_once(source, args.command, clicks, work / f"run-{name}")
            runs[name].append(run)
            print(f"{name} #{k + 1}: {run['wall']:.1f}s wall, {run['cpu']:.1f}s CPU, {run['rss_gib']:.2f} GiB peak RSS",
                  file=sys.stderr)
    new = runs["new"]
    sys.stdout.write(new[-1]["stdout"])
    summary = {
        "status": "ok",
        "command": args.command,
        "lines": lines,
        "gb": round(clicks.stat().st_size / 1e9, 2),
        "wall_s": round(statistics.median(r["wall"] for r in new), 1),
        "cpu_s": round(statistics.median(r["cpu"] for r in new), 1),
        "peak_rss_gib": round(max(r["rss_gib"] for r in new), 2),
    }
    if "old" in runs:
        old = runs["old"]
        same = outputs(old[-1]["dir"]) == outputs(new[-1]["dir"]) and old[-1]["stdout"] == new[-1]["stdout"]
        summary.update({
            "baseline": args.baseline,
            "old_wall_s": round(statistics.median(r["wall"] for r in old), 1),
            "old_cpu_s": round(statistics.median(r["cpu"] for r in old), 1),
            "old_peak_rss_gib": round(max(r["rss_gib"] for r in old), 2),
            "wall_ratio": round(statistics.median(r["wall"] for r in old) / summary["wall_s"], 2),
            "cpu_ratio": round(statistics.median(r["cpu"] for r in old) / summary["cpu_s"], 2),
            "identical_outputs": same,
        })
        if not same:
            summary["status"] = "outputs-differ"
    summary["repeat"] = args.repeat
    summary["cpus"] = os.cpu_count()
    print("SUMMARY " + " ".join(f"{k}={v}" for k, v in summary.items()))
    if not args.keep:
        for name in versions:
            shutil.rmtree(work / f"run-{name}", ignore_errors=True)
        if "old" in versions:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(versions["old"])],
                           check=False, capture_output=True)
        if args.clicks is None:
            clicks.unlink(missing_ok=True)
    return 0 if summary["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
