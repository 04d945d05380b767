#!/usr/bin/env python
"""Write a synthetic ``yoochoose-clicks.dat`` of the real file's size, for benchmarking preprocessing.

Same format as the real file (``SessionId,Timestamp,ItemId,Category``, no header, ISO-8601 UTC
timestamps with milliseconds, grouped by session, clicks of a session in time order), with the
real file's scale and rough shape:

* 9.25M sessions (the real file: 9,249,729) whose lengths are geometric with mean ~3.57, so about
  33M lines in all (the real file: 33,003,944);
* session ids 1..N in order of session start, starts uniform over 183 days from 2014-04-01
  (the real data spans April-September 2014), gaps between clicks exponential (mean 2 minutes);
* items drawn from a Zipf law (exponent 1.4) over 50,000 items with YOOCHOOSE-like 9-digit ids,
  so that, as in the real data, a sizeable tail of items has fewer than 5 clicks;
* categories: "0" (70 %), "S" (15 %), 1..12 (13 %), 10-digit brand ids (2 %).

Deterministic: the same arguments give the same bytes. Writes ~1.4 GB for the defaults; put it
outside the repository (e.g. /tmp). Usage:

    python scripts/make_synthetic_clicks.py /tmp/yoochoose-synth/yoochoose-clicks.dat
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from seqrec_cli.fileio import atomic_path

START_MS = 1_396_310_400_000  # 2014-04-01T00:00:00Z
DAY_MS = 86_400_000
CHUNK_SESSIONS = 500_000  # sessions generated and written at a time (fixed: part of the output's definition)
LINE = "%d,%sZ,%d,%s\n"  # SessionId,Timestamp,ItemId,Category


def iso_text(ms: np.ndarray) -> list[str]:
    """Unix milliseconds -> ``YYYY-MM-DDTHH:MM:SS.sss`` (UTC; the caller adds the Z)."""
    return np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms").tolist()


def categories(rng: np.random.Generator, n: int) -> list[str]:
    u = rng.random(n)
    value = np.zeros(n, dtype=np.int64)
    digits_1_12 = (u >= 0.85) & (u < 0.98)
    value[digits_1_12] = rng.integers(1, 13, int(digits_1_12.sum()))
    brand = u >= 0.98
    value[brand] = rng.integers(2_000_000_000, 2_100_000_000, int(brand.sum()))
    text = value.astype(str).astype(object)
    text[(u >= 0.70) & (u < 0.85)] = "S"
    return text.tolist()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="file to write (outside the repository)")
    ap.add_argument("--sessions", type=int, default=9_250_000, help="number of sessions")
    ap.add_argument("--mean-length", type=float, default=3.568, help="mean clicks per session (geometric)")
    ap.add_argument("--items", type=int, default=50_000, help="number of distinct items")
    ap.add_argument("--zipf", type=float, default=1.4, help="Zipf exponent of item popularity")
    ap.add_argument("--days", type=int, default=183, help="time span of session starts, days")
    ap.add_argument("--seed", type=int, default=15, help="random seed")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    item_ids = np.sort(rng.choice(np.arange(214_500_000, 215_000_000), size=args.items, replace=False))
    item_ids = rng.permutation(item_ids)  # popularity rank -> raw id
    weights = np.arange(1, args.items + 1, dtype=np.float64) ** -args.zipf
    cdf = np.cumsum(weights)
    cdf /= cdf[-1]
    starts = np.sort(rng.integers(0, args.days * DAY_MS, args.sessions)) + START_MS
    p = 1.0 / args.mean_length

    t0 = time.monotonic()
    lines = 0
    with atomic_path(args.out) as tmp, open(tmp, "wb") as fh:
        for a in range(0, args.sessions, CHUNK_SESSIONS):
            z = min(a + CHUNK_SESSIONS, args.sessions)
            lengths = rng.geometric(p, z - a)
            n = int(lengths.sum())
            session = np.repeat(np.arange(a + 1, z + 1, dtype=np.int64), lengths)
            first = np.zeros(n, dtype=bool)
            first[np.cumsum(lengths) - lengths] = True
            gaps = np.rint(rng.exponential(120_000.0, n)).astype(np.int64)
            gaps[first] = 0
            offsets = np.cumsum(gaps)
            base = np.repeat(offsets[first], lengths)
            when = np.repeat(starts[a:z], lengths) + offsets - base
            item = item_ids[np.searchsorted(cdf, rng.random(n), side="right").clip(max=args.items - 1)]
            rows = zip(session.tolist(), iso_text(when), item.tolist(), categories(rng, n))
            fh.write("".join(map(LINE.__mod__, rows)).encode("ascii"))
            lines += n
            print(f"{z}/{args.sessions} sessions, {lines} lines, {time.monotonic() - t0:.0f}s", file=sys.stderr)
    print(f"wrote {args.out}: {args.sessions} sessions, {lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
