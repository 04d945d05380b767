#!/usr/bin/env python
"""Time and peak memory of ``seqrec preprocess interactions`` on a YOOCHOOSE-sized CSV (issue 12).

1. Makes the synthetic clicks with ``scripts/make_synthetic_clicks.py`` (deterministic; 9.25M
   sessions, ~33M lines, ~1.5 GB for the defaults) unless ``--clicks`` names an existing file.
2. Writes it as a CSV with a header (``session,time,item,category``): the file a user would have.
3. Runs ``seqrec preprocess interactions clicks.csv --split session-time`` (or
   ``--split leave-one-out`` with the session as the user) as a child process and measures its
   wall time and peak RSS (the child's ``ru_maxrss`` from ``os.wait4``, what ``/usr/bin/time -v``
   reports as "Maximum resident set size").
4. Prints the command's report and one line ``SUMMARY key=value ...`` for docs/benchmarks.md.

Everything goes under ``--work`` (default /tmp/seqrec-bench-interactions), outside the repository.
Run it on a quiet machine; a smaller ``--sessions`` gives a quick check of the script itself:

    .venv/bin/python scripts/bench_interactions.py                       # the full 33M-row measurement
    .venv/bin/python scripts/bench_interactions.py --sessions 20000      # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
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
    ap.add_argument("--keep", action="store_true", help="keep the generated files and outputs")
    args = ap.parse_args(argv)

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    clicks = args.clicks or work / f"yoochoose-clicks-{args.sessions}.dat"
    if not clicks.is_file():
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, str(REPO / "scripts" / "make_synthetic_clicks.py"), str(clicks), "--sessions", str(args.sessions)],
            check=True,
        )
        print(f"generated {clicks} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    csv_path = work / f"clicks-{clicks.stem}.csv"
    if not csv_path.is_file():
        make_csv(clicks, csv_path)
    with open(csv_path, "rb") as fh:
        rows = sum(block.count(b"\n") for block in iter(lambda: fh.read(16 << 20), b"")) - 1
    out = work / "run"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    seqrec = shutil.which("seqrec") or str(Path(sys.executable).with_name("seqrec"))
    cmd = [seqrec, "preprocess", "interactions", str(csv_path), "--split", args.split, "--name", "bench"]
    print("running:", " ".join(cmd), file=sys.stderr)
    log_out, log_err = out / "stdout.txt", out / "stderr.txt"
    with open(log_out, "w") as fo, open(log_err, "w") as fe:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=out, stdout=fo, stderr=fe)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
        wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    peak_kib = usage.ru_maxrss  # Linux: KiB ("Maximum resident set size" of /usr/bin/time -v)
    sys.stdout.write(log_out.read_text())
    if rc != 0:
        sys.stderr.write(log_err.read_text()[-3000:])
        print(f"SUMMARY status=failed rc={rc}")
        return 1
    manifest = json.loads((out / "data" / "bench" / "manifest.json").read_text())
    splits = {k: v["events"] for k, v in manifest["splits"].items()}
    summary = {
        "status": "ok",
        "split": args.split,
        "rows": rows,
        "csv_gb": round(csv_path.stat().st_size / 1e9, 2),
        "wall_s": round(wall, 1),
        "peak_rss_gib": round(peak_kib / 2**20, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "items": manifest["n_items"],
        **{f"{k}_events": v for k, v in splits.items()},
        "cpus": os.cpu_count(),
    }
    print("SUMMARY " + " ".join(f"{k}={v}" for k, v in summary.items()))
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
        csv_path.unlink(missing_ok=True)
        if args.clicks is None:
            clicks.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
