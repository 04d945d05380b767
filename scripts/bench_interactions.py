#!/usr/bin/env python
"""Time and peak memory of ``seqrec preprocess interactions`` on a YOOCHOOSE-sized CSV (issue 12).

1. Makes the synthetic clicks with ``scripts/make_synthetic_clicks.py`` (deterministic; 9.25M
   sessions, ~33M lines, ~1.5 GB for the defaults) unless ``--clicks`` names an existing file.
2. Writes it as a CSV with a header (``session,time,item,category``): the file a user would have.
3. Runs ``seqrec preprocess interactions clicks.csv --split session-time`` (or
   ``--split leave-one-out`` with the session as the user) as a child process and measures its
   wall time, CPU time and peak RSS (the child's ``ru_maxrss`` from ``os.wait4``, what
   ``/usr/bin/time -v`` reports as "Maximum resident set size").
4. With ``--baseline REV``, also runs it from a ``git worktree`` of that revision, alternating
   ``--repeat`` times, and checks that both write the same bytes (see scripts/benchlib.py).
5. Prints the command's report and one line ``SUMMARY key=value ...`` for docs/benchmarks.md.

Everything goes under ``--work`` (default /tmp/seqrec-bench-interactions), outside the repository.
Run it on a quiet machine; a smaller ``--sessions`` gives a quick check of the script itself:

    .venv/bin/python scripts/bench_interactions.py                                      # the full 33M-row measurement
    .venv/bin/python scripts/bench_interactions.py --baseline 0ea47b2 --repeat 2        # A/B against a revision
    .venv/bin/python scripts/bench_interactions.py --sessions 20000                     # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import benchlib

HEADER = b"session,time,item,category\n"


def make_csv(clicks: Path, csv_path: Path) -> None:
    """The header, then the clicks file's bytes (already comma-separated), copied in 16 MiB blocks."""
    tmp = csv_path.with_suffix(".csv.tmp")
    with open(clicks, "rb") as src, open(tmp, "wb") as dst:
        dst.write(HEADER)
        shutil.copyfileobj(src, dst, 16 << 20)
    os.replace(tmp, csv_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-interactions"), help="scratch folder")
    ap.add_argument("--clicks", type=Path, help="an existing synthetic yoochoose-clicks.dat (else it is generated)")
    ap.add_argument("--sessions", type=int, default=9_250_000, help="sessions to generate (the real file: 9,249,729)")
    ap.add_argument("--split", choices=("session-time", "leave-one-out"), default="session-time")
    ap.add_argument("--baseline", metavar="REV", help="git revision to compare with (run from a git worktree)")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each version (alternating with --baseline)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files and outputs")
    args = ap.parse_args(argv)

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    clicks = args.clicks.resolve() if args.clicks else work / f"yoochoose-clicks-{args.sessions}.dat"
    if not clicks.is_file():
        benchlib.make_clicks(clicks, args.sessions)
    csv_path = work / f"clicks-{clicks.stem}.csv"
    if not csv_path.is_file():
        make_csv(clicks, csv_path)
    versions = {"new": benchlib.REPO}
    if args.baseline:
        versions = {"old": benchlib.baseline_tree(args.baseline, work), "new": benchlib.REPO}
    command = ["preprocess", "interactions", str(csv_path), "--split", args.split, "--name", "bench"]
    print("running: seqrec", " ".join(command), file=sys.stderr)
    runs = benchlib.alternate(versions, command, work, args.repeat)
    last = runs["new"][-1]
    sys.stdout.write(last["stdout"])
    manifest = json.loads((last["dir"] / "data" / "bench" / "manifest.json").read_text())
    splits = {k: v["events"] for k, v in manifest["splits"].items()}
    summary = {
        "status": "ok",
        "split": args.split,
        "rows": benchlib.count_lines(csv_path) - 1,
        "csv_gb": round(csv_path.stat().st_size / 1e9, 2),
        **benchlib.compare(runs, args.baseline),
        "items": manifest["n_items"],
        **{f"{k}_events": v for k, v in splits.items()},
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
    }
    if summary.get("identical_outputs") is False:
        summary["status"] = "outputs-differ"
    print("SUMMARY " + " ".join(f"{k}={v}" for k, v in summary.items()))
    if not args.keep:
        for name in versions:
            shutil.rmtree(work / f"run-{name}", ignore_errors=True)
        if "old" in versions:
            benchlib.remove_tree(versions["old"])
        csv_path.unlink(missing_ok=True)
        if args.clicks is None:
            clicks.unlink(missing_ok=True)
    return 0 if summary["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
