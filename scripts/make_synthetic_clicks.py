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

from seqrec_cli.datasets.rsc15 import civil_from_days, digit_words, pack_words
from seqrec_cli.fileio import atomic_path

START_MS = 1_396_310_400_000  # 2014-04-01T00:00:00Z
DAY_MS = 86_400_000
CHUNK_SESSIONS = 500_000  # sessions generated and written at a time (fixed: part of the output's definition)


def iso_words(ms: np.ndarray) -> np.ndarray:
    """Unix milliseconds -> (n, 6) block of 4-byte words spelling ``YYYY-MM-DDTHH:MM:SS.sssZ``."""
    days = ms // DAY_MS
    rem = ms - days * DAY_MS
    year, month, day = civil_from_days(days)
    hour, rem = rem // 3_600_000, rem % 3_600_000
    minute, rem = rem // 60_000, rem % 60_000
    second, milli = rem // 1000, rem % 1000
    out = np.empty((len(ms), 24), dtype=np.uint8)

    def put(pos: int, value: np.ndarray, width: int) -> None:
        for k in range(width):
            out[:, pos + width - 1 - k] = (value // 10**k) % 10 + 48

    put(0, year, 4)
    put(5, month, 2)
    put(8, day, 2)
    put(11, hour, 2)
    put(14, minute, 2)
    put(17, second, 2)
    put(20, milli, 3)
    for pos, ch in {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: ".", 23: "Z"}.items():
        out[:, pos] = ord(ch)
    return out.view(np.uint32)


def category_words(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    u = rng.random(n)
    value = np.zeros(n, dtype=np.int64)
    digits_1_12 = (u >= 0.85) & (u < 0.98)
    value[digits_1_12] = rng.integers(1, 13, int(digits_1_12.sum()))
    brand = u >= 0.98
    value[brand] = rng.integers(2_000_000_000, 2_100_000_000, int(brand.sum()))
    words = digit_words(value)
    special = (u >= 0.70) & (u < 0.85)
    for w in words:
        w[special] = 0
    words[-1][special] = np.frombuffer(b"S\0\0\0", dtype=np.uint32)[0]
    return words


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
            columns = [*digit_words(session), ord(","), iso_words(when), ord(","), *digit_words(item), ord(","),
                       *category_words(rng, n), ord("\n")]
            fh.write(pack_words(columns, n))
            lines += n
            print(f"{z}/{args.sessions} sessions, {lines} lines, {time.monotonic() - t0:.0f}s", file=sys.stderr)
    print(f"wrote {args.out}: {args.sessions} sessions, {lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
