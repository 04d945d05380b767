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
   and that the printed report is the same, and reports the ratios of the medians.
4. Prints one line ``SUMMARY key=value ...`` for docs/benchmarks.md.

Everything goes under ``--work`` (default /tmp/seqrec-bench-rsc15), outside the repository. Run
it on a quiet machine; a smaller ``--sessions`` gives a quick check of the script itself:

    .venv/bin/python scripts/bench_rsc15_preprocess.py                                  # full size
    .venv/bin/python scripts/bench_rsc15_preprocess.py --command session-filter         # that step alone
    .venv/bin/python scripts/bench_rsc15_preprocess.py --baseline 0ea47b2 --repeat 2    # A/B against a revision
    .venv/bin/python scripts/bench_rsc15_preprocess.py --sessions 20000 --baseline main # a smoke run
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import benchlib

COMMANDS = ("yoochoose", "session-filter")


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
        benchlib.make_clicks(clicks, args.sessions)
    versions = {"new": benchlib.REPO}
    if args.baseline:
        versions = {"old": benchlib.baseline_tree(args.baseline, work), "new": benchlib.REPO}
    command = ["preprocess", args.command, "--input", str(clicks), "--out-dir", "out"]
    if args.command == "yoochoose":
        command += ["--vocab", "out/vocab.txt"]
    runs = benchlib.alternate(versions, command, work, args.repeat)
    sys.stdout.write(runs["new"][-1]["stdout"])
    summary = {"status": "ok", "command": args.command, "lines": benchlib.count_lines(clicks),
               "gb": round(clicks.stat().st_size / 1e9, 2), **benchlib.compare(runs, args.baseline)}
    if summary.get("identical_outputs") is False:
        summary["status"] = "outputs-differ"
    summary.update({"repeat": args.repeat, "cpus": os.cpu_count()})
    print("SUMMARY " + " ".join(f"{k}={v}" for k, v in summary.items()))
    if not args.keep:
        for name in versions:
            shutil.rmtree(work / f"run-{name}", ignore_errors=True)
        if "old" in versions:
            benchlib.remove_tree(versions["old"])
        if args.clicks is None:
            clicks.unlink(missing_ok=True)
    return 0 if summary["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
