"""seqrec preprocess session-filter / convert-format / text2id / yoochoose (docs/protocols.md §3).

Driven through the real CLI on real files: a hand-built clicks file whose every rule effect was
worked out by hand, the shared RSC15 files (session-rec's first-100k splits written back in the
raw format, and SR-GNN's yoochoose 1/64 sessions), and one malformed file per bad-input case.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import invoke, listing, shared_file

from seqrec_cli import formats
from seqrec_cli.datasets import rsc15

# ---------------------------------------------------------------- the hand-built clicks file
# Day d = 2014-04-d (UTC). tmax = day 10 12:00:00.000 (session 14), so the test boundary is
# day 9 12:00:00.000. Session by session (items in time order), and what the rules do:
#   1  [505]                        one event: dropped by step 2 (its 505 click never counts)
#   2  [404]                        one event: dropped by step 2 (so 404 has 5 clicks raw, 4 after step 2)
#   3  [100 404]                    step 3 drops 404 (4 clicks) -> [100]: dropped by step 4
#   4  [100 200 404 505]            -> [100 200 505]
#   5  [200 100 505 404]            -> [200 100 505]
#   6  [505 300] at the same time   tie: file order kept (505 first in the file); 404 dropped
#   7  [100 505 300]                written out of time order in the file
#   8  [505 200]                    505's 5th click after step 2: 505 (exactly 5) is kept
#   9  [100 300] ends day 9 11:59:59.999, 1 ms before the boundary: train_full
#  10  [200 100] ends day 9 12:00:00.000, exactly at the boundary: test
#  11  [100 909 200]                test; 909 is never in train_full -> [100 200]
#  12  [909 300]                    test; -> [300]: dropped (fewer than 2 events)
#  13  [909 909 909]                test; -> []: dropped (909 has 5 clicks, so step 3 keeps it)
#  14  [300 200] ends at tmax       test (written before session 13 in the file)
# train_full = 4 5 6 7 8 9 15 16 17 18; its tmax is session 9's end, so the validation
# boundary is day 8 11:59:59.999:
#  15  [707 100] day 8 12:00        train_valid; 707 (5 clicks, all in train_valid) is not in
#                                   train_tr -> [100]: dropped
#  16  [707 707 707 707 200 300]    train_valid -> [200 300]
#  17  [100 200] ends day 8 11:59:59.998: train_tr (1 ms before the validation boundary)
#  18  [300 100] ends day 8 11:59:59.999, exactly at it: train_valid
HAND = [  # (session, item, day, time of day, category) in FILE order
    (1, 505, 1, "10:00:00.000", "0"),
    (2, 404, 1, "11:00:00.000", "S"),
    (3, 100, 2, "09:00:00.000", "0"),
    (3, 404, 2, "09:01:00.000", "0"),
    (4, 100, 2, "10:00:00.000", "0"),
    (4, 200, 2, "10:01:00.000", "12"),
    (4, 404, 2, "10:02:00.000", "0"),
    (4, 505, 2, "10:03:00.000", "0"),
    (5, 200, 3, "08:00:00.000", "0"),
    (5, 100, 3, "08:05:00.000", "2089033297"),
    (5, 505, 3, "08:06:00.000", "0"),
    (5, 404, 3, "08:07:00.000", "0"),
    (6, 505, 3, "09:00:00.000", "0"),
    (6, 300, 3, "09:00:00.000", "0"),
    (6, 404, 3, "09:02:00.000", "0"),
    (7, 300, 4, "12:00:05.000", "0"),
    (7, 100, 4, "12:00:01.000", "0"),
    (7, 505, 4, "12:00:03.000", "0"),
    (8, 505, 5, "07:00:00.000", "0"),
    (8, 200, 5, "07:30:00.000", "0"),
    (9, 100, 9, "11:00:00.000", "0"),
    (9, 300, 9, "11:59:59.999", "0"),
    (10, 200, 9, "11:30:00.000", "0"),
    (10, 100, 9, "12:00:00.000", "0"),
    (11, 100, 10, "01:00:00.000", "0"),
    (11, 909, 10, "01:01:00.000", "0"),
    (11, 200, 10, "01:02:00.000", "0"),
    (12, 909, 10, "02:00:00.000", "0"),
    (12, 300, 10, "02:01:00.000", "0"),
    (14, 300, 10, "11:00:00.000", "0"),
    (14, 200, 10, "12:00:00.000", "0"),
    (13, 909, 10, "03:00:00.000", "0"),
    (13, 909, 10, "03:01:00.000", "0"),
    (13, 909, 10, "03:02:00.000", "0"),
    (15, 707, 8, "12:00:00.000", "0"),
    (15, 100, 8, "12:01:00.000", "0"),
    (16, 707, 8, "13:00:00.000", "0"),
    (16, 707, 8, "13:01:00.000", "0"),
    (16, 707, 8, "13:02:00.000", "0"),
    (16, 707, 8, "13:03:00.000", "0"),
    (16, 200, 8, "13:04:00.000", "0"),
    (16, 300, 8, "13:05:00.000", "0"),
    (17, 100, 8, "11:00:00.000", "0"),
    (17, 200, 8, "11:59:59.998", "0"),
    (18, 300, 8, "11:59:00.000", "0"),
    (18, 100, 8, "11:59:59.999", "0"),
]


def _iso(day: int, hms: str) -> str:
    return f"2014-04-{day:02d}T{hms}Z"


def _unix(day: int, hms: str) -> str:
    """Unix seconds (UTC) with 3 decimals, computed independently of seqrec."""
    h, m, s = hms.split(":")
    sec, ms = s.split(".")
    when = dt.datetime(2014, 4, day, int(h), int(m), int(sec), tzinfo=dt.timezone.utc)
    return f"{int(when.timestamp())}.{ms}"


def _raw_lines(rows=HAND) -> list[str]:
    return [f"{s},{_iso(d, t)},{i},{c}" for s, i, d, t, c in rows]


def _expected(*spec: tuple[int, list[tuple[int, int, str]]]) -> list[str]:
    lines = ["SessionId\tItemId\tTime"]
    for session, events in spec:
        lines += [f"{session}\t{item}\t{_unix(day, hms)}" for item, day, hms in events]
    return lines


S4 = (4, [(100, 2, "10:00:00.000"), (200, 2, "10:01:00.000"), (505, 2, "10:03:00.000")])
S5 = (5, [(200, 3, "08:00:00.000"), (100, 3, "08:05:00.000"), (505, 3, "08:06:00.000")])
S6 = (6, [(505, 3, "09:00:00.000"), (300, 3, "09:00:00.000")])
S7 = (7, [(100, 4, "12:00:01.000"), (505, 4, "12:00:03.000"), (300, 4, "12:00:05.000")])
S8 = (8, [(505, 5, "07:00:00.000"), (200, 5, "07:30:00.000")])
S9 = (9, [(100, 9, "11:00:00.000"), (300, 9, "11:59:59.999")])
S15 = (15, [(707, 8, "12:00:00.000"), (100, 8, "12:01:00.000")])
S16 = (16, [(707, 8, f"13:0{k}:00.000") for k in range(4)] + [(200, 8, "13:04:00.000"), (300, 8, "13:05:00.000")])
S17 = (17, [(100, 8, "11:00:00.000"), (200, 8, "11:59:59.998")])
S18 = (18, [(300, 8, "11:59:00.000"), (100, 8, "11:59:59.999")])
EXPECTED = {
    "train_full": _expected(S4, S5, S6, S7, S8, S9, S15, S16, S17, S18),
    "test": _expected(
        (10, [(200, 9, "11:30:00.000"), (100, 9, "12:00:00.000")]),
        (11, [(100, 10, "01:00:00.000"), (200, 10, "01:02:00.000")]),
        (14, [(300, 10, "11:00:00.000"), (200, 10, "12:00:00.000")]),
    ),
    "train_tr": _expected(S4, S5, S6, S7, S8, S17),
    "train_valid": _expected(
        S9, (16, [(200, 8, "13:04:00.000"), (300, 8, "13:05:00.000")]), S18
    ),
}
EXPECTED_SESSIONS = {
    "train_full": ["100 200 505", "200 100 505", "505 300", "100 505 300", "505 200", "100 300", "707 100",
                   "707 707 707 707 200 300", "100 200", "300 100"],
    "test": ["200 100", "100 200", "300 200"],
    "train_tr": ["100 200 505", "200 100 505", "505 300", "100 505 300", "505 200", "100 200"],
    "train_valid": ["100 300", "200 300", "300 100"],
}
HAND_SUMMARY = [
    "train_full.tsv: 27 events, 10 sessions, 5 items",
    "test.tsv: 6 events, 3 sessions, 3 items",
    "train_tr.tsv: 15 events, 6 sessions, 4 items",
    "train_valid.tsv: 6 events, 3 sessions, 3 items",
]


def _write(path: Path | str, lines: list[str], newline: str = "\n", bom: bool = False) -> Path:
    path = Path(path)
    data = "".join(line + newline for line in lines).encode("utf-8")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def _ok(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def _error_line(result) -> str:
    """The whole output must be one 'Error: ...' line."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.output.endswith("\n") and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: "), result.output
    return result.output.rstrip("\n")


# ---------------------------------------------------------------- session-filter
def test_session_filter_applies_every_rule_exactly(runner, workdir):
    _write("clicks.dat", _raw_lines())
    lines = _ok(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    assert lines == HAND_SUMMARY + [
        "wrote data/rsc15/filtered/{train_full,test,train_tr,train_valid}.tsv + manifest.json"
    ]
    folder = workdir / formats.RSC15_FILTERED_DIR
    for split in formats.RSC15_SPLITS:
        assert (folder / f"{split}.tsv").read_text().splitlines() == EXPECTED[split], split
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "rsc15-filtered"
    assert manifest["inputs"][0]["sha256"] == formats.input_record("clicks.dat")["sha256"]
    assert manifest["parameters"]["min_item_support"] == 5
    assert manifest["parameters"]["split_window_s"] == 86400
    assert manifest["splits"]["test"] == {
        **manifest["splits"]["test"],
        "path": "test.tsv",
        "events": 6,
        "sessions": 3,
        "items": 3,
    }
    steps = {s["rule"].split(":")[0]: s for s in manifest["steps"]}
    assert [steps[k]["events"] for k in ("read", "step 2", "step 3", "step 4")] == [46, 44, 40, 39]
    assert [steps[k]["sessions"] for k in ("read", "step 2", "step 3", "step 4")] == [18, 16, 16, 15]
    assert [steps[k]["items"] for k in ("read", "step 2", "step 3", "step 4")] == [7, 7, 6, 6]
    test_step, valid_step = manifest["steps"][4], manifest["steps"][5]
    assert test_step["tmax"] == float(_unix(10, "12:00:00.000"))
    assert test_step["boundary"] == float(_unix(9, "12:00:00.000"))
    held = ("sessions_held_out", "unknown_events_dropped", "short_sessions_dropped")
    assert [test_step[k] for k in held] == [5, 5, 2]  # sessions 10-14; 909 x5; sessions 12 and 13
    assert valid_step["tmax"] == float(_unix(9, "11:59:59.999"))
    assert [valid_step[k] for k in held] == [4, 5, 1]  # sessions 9, 15, 16, 18; 707 x5; session 15
    assert listing(folder) == ["manifest.json", "test.tsv", "train_full.tsv", "train_tr.tsv", "train_valid.tsv"]


def test_session_filter_accepts_crlf_bom_and_blank_lines(runner, workdir):
    lines = _raw_lines()
    _write("clicks.dat", lines[:10] + [""] + lines[10:], newline="\r\n", bom=True)
    out = _ok(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat", "--out-dir", "f"))
    assert out[:4] == HAND_SUMMARY
    for split in formats.RSC15_SPLITS:
        assert (workdir / "f" / f"{split}.tsv").read_text().splitlines() == EXPECTED[split]


def test_timestamps_other_than_the_common_layout(runner, workdir):
    """No fraction, 1 or 6 fraction digits, a zone offset, a space for T: all read, as UTC."""
    rows = _raw_lines()
    assert rows[4] == "4,2014-04-02T10:00:00.000Z,100,0" and rows[8] == "5,2014-04-03T08:00:00.000Z,200,0"
    rows[4] = "4,2014-04-02T12:00:00+02:00,100,0"
    rows[5] = "4,2014-04-02T10:01:00.000999Z,200,12"
    rows[8] = "5,2014-04-03T08:00:00Z,200,0"
    rows[9] = "5,2014-04-03T08:05:00.0Z,100,2089033297"
    rows[10] = "5,2014-04-03 08:06:00.000,505,0"
    _write("clicks.dat", rows)
    _ok(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    got = (workdir / formats.RSC15_FILTERED_DIR / "train_full.tsv").read_text().splitlines()
    assert got == EXPECTED["train_full"]


def test_session_filter_missing_default_input_names_download(runner, workdir):
    line = _error_line(invoke(runner, "preprocess", "session-filter"))
    assert line == f"Error: clicks file not found: {formats.YOOCHOOSE_CLICKS} (run: seqrec download yoochoose)"
    line = _error_line(invoke(runner, "preprocess", "yoochoose"))
    assert "(run: seqrec download yoochoose)" in line
    assert listing(workdir) == []


# ---------------------------------------------------------------- bad input: one line, file:line, nothing written
GOOD = _raw_lines()[:6]
BAD_CLICKS = {
    "too few fields": (GOOD[:2] + ["3,2014-04-02T09:00:00.000Z,100"] + GOOD[2:], 3,
                       "expected 4 comma-separated fields (SessionId,Timestamp,ItemId,Category), found 3"),
    "too many fields": (GOOD[:4] + ["4,2014-04-02T09:00:00.000Z,100,0,7"] + GOOD[4:], 5,
                        "expected 4 comma-separated fields (SessionId,Timestamp,ItemId,Category), found 5"),
    "session id": (GOOD[:1] + ["x3,2014-04-02T09:00:00.000Z,100,0"] + GOOD[1:], 2,
                   "SessionId is not a non-negative integer: 'x3'"),
    "negative session id": (GOOD + ["-3,2014-04-02T09:00:00.000Z,100,0"], 7,
                            "SessionId is not a non-negative integer: '-3'"),
    "item id": (GOOD[:3] + ["3,2014-04-02T09:00:00.000Z,10.5,0"] + GOOD[3:], 4,
                "ItemId is not a non-negative integer: '10.5'"),
    "empty item id": (GOOD[:3] + ["3,2014-04-02T09:00:00.000Z,,0"] + GOOD[3:], 4,
                      "ItemId is not a non-negative integer: ''"),
    "month 13": (GOOD[:5] + ["3,2014-13-02T09:00:00.000Z,100,0"] + GOOD[5:], 6,
                 "bad timestamp '2014-13-02T09:00:00.000Z' (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"),
    "31 April": (GOOD[:2] + ["3,2014-04-31T09:00:00.000Z,100,0"], 3,
                 "bad timestamp '2014-04-31T09:00:00.000Z' (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"),
    "separator": (GOOD[:2] + ["3,2014-04-02 09:00:00.000Z,100,0", "3,2014-04-02X09:00:00.000Z,100,0"], 4,
                  "bad timestamp '2014-04-02X09:00:00.000Z' (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"),
    "letter in a digit": (GOOD[:2] + ["3,2014-04-0a09:00:00.000Z,100,0"], 3,
                          "bad timestamp '2014-04-0a09:00:00.000Z' (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"),
    "29 February 2014": (GOOD[:2] + ["3,2012-02-29T09:00:00.000Z,100,0", "3,2014-02-29T09:00:00.000Z,100,0"], 4,
                         "bad timestamp '2014-02-29T09:00:00.000Z' (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"),
    "hour 24": (GOOD[:2] + ["3,2014-04-02T24:00:00.000Z,100,0"], 3,
                "bad timestamp '2014-04-02T24:00:00.000Z' (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"),
    "not a time": (GOOD[:2] + ["3,yesterday,100,0"], 3,
                   "bad timestamp 'yesterday' (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"),
    "header line": (["SessionId,Timestamp,ItemId,Category"] + GOOD, 1,
                    "SessionId is not a non-negative integer: 'SessionId'"),
    "empty session id": (GOOD[:1] + [",2014-04-02T09:00:00.000Z,100,0"] + GOOD[1:], 2,
                         "SessionId is not a non-negative integer: ''"),
    "id over 18 digits": (GOOD[:2] + ["1234567890123456789,2014-04-02T09:00:00.000Z,100,0"], 3,
                          "SessionId is not a non-negative integer: '1234567890123456789'"),
    "one-digit hour": (GOOD[:2] + ["3,2014-04-02T9:00:00.000Z,100,0"], 3,
                       "bad timestamp '2014-04-02T9:00:00.000Z' (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"),
    "date only": (GOOD[:2] + ["3,2014-04-02,100,0"], 3,
                  "bad timestamp '2014-04-02' (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"),
    # a lone CR ends a line (the one policy of seqrec_cli.textio): "7" is line 4
    "carriage return": (GOOD[:2] + ["3,2014-04-02T09:00:00.000Z,100,0\r7"], 4,
                        "expected 4 comma-separated fields (SessionId,Timestamp,ItemId,Category), found 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_CLICKS))
@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
def test_bad_clicks(runner, workdir, case, crlf):
    lines, line_no, problem = BAD_CLICKS[case]
    _write("clicks.dat", lines, newline="\r\n" if crlf else "\n")
    line = _error_line(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    assert line == f"Error: clicks.dat:{line_no}: {problem}"
    assert listing(workdir) == ["clicks.dat"]


def test_undecodable_click_line(runner, workdir):
    Path("clicks.dat").write_bytes(("\n".join(GOOD[:4]) + "\n").encode() + b"3,2014-04-02T09:00:00.000Z,100,caf\xe9\n")
    line = _error_line(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    assert line == "Error: clicks.dat:5: not valid UTF-8 (byte 0xe9 in column 35); save the file as UTF-8"
    assert listing(workdir) == ["clicks.dat"]


@pytest.mark.parametrize("block", [64, 300])
@pytest.mark.parametrize("bad, text", [("layout", "2014-04-08X"), ("calendar", "2014-13-08T")])
def test_bad_line_found_beyond_the_first_block(runner, workdir, monkeypatch, block, bad, text):
    """Line numbers stay right when the file is read in many blocks, blank lines included."""
    monkeypatch.setattr(rsc15, "READ_BLOCK", block)
    lines = _raw_lines()
    lines[40] = lines[40].replace("T", "X", 1) if bad == "layout" else lines[40].replace("-04-", "-13-", 1)
    lines[38:38] = [""]
    lines[20:20] = [""]
    _write("clicks.dat", lines)
    line = _error_line(invoke(runner, "preprocess", "yoochoose", "--input", "clicks.dat"))
    assert line.startswith(f"Error: clicks.dat:43: bad timestamp '{text}")
    assert listing(workdir) == ["clicks.dat"]


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
def test_small_blocks_give_the_same_result(runner, workdir, monkeypatch, newline):
    monkeypatch.setattr(rsc15, "READ_BLOCK", 16)  # shorter than a line: the buffer grows
    _write("clicks.dat", _raw_lines(), newline=newline, bom=True)
    _ok(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    for split in formats.RSC15_SPLITS:
        got = (workdir / formats.RSC15_FILTERED_DIR / f"{split}.tsv").read_text().splitlines()
        assert got == EXPECTED[split]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf", b"\r\n"], ids=["empty", "blank", "bom", "crlf"])
def test_empty_clicks_file(runner, workdir, content):
    Path("clicks.dat").write_bytes(content)
    line = _error_line(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    assert line == "Error: clicks.dat:1: empty file (no clicks)"
    assert listing(workdir) == ["clicks.dat"]


def test_failed_rerun_keeps_earlier_outputs(runner, workdir):
    _write("clicks.dat", _raw_lines())
    _ok(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    folder = workdir / formats.RSC15_FILTERED_DIR
    before = {p: (folder / p).read_bytes() for p in listing(folder)}
    _write("bad.dat", GOOD + ["7,2014-04-02T09:00:00.000Z"])
    line = _error_line(invoke(runner, "preprocess", "session-filter", "--input", "bad.dat"))
    assert line.startswith("Error: bad.dat:7: expected 4 comma-separated fields")
    assert {p: (folder / p).read_bytes() for p in listing(folder)} == before


# ---------------------------------------------------------------- convert-format
def test_convert_format_order_and_ties(runner, workdir):
    _write("clicks.dat", _raw_lines())
    _ok(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    lines = _ok(invoke(runner, "preprocess", "convert-format"))
    assert lines == [
        "train_full.txt: 10 sessions, 27 events, 5 items",
        "test.txt: 3 sessions, 6 events, 3 items",
        "train_tr.txt: 6 sessions, 15 events, 4 items",
        "train_valid.txt: 3 sessions, 6 events, 3 items",
        "wrote data/rsc15/sessions/{train_full,test,train_tr,train_valid}.txt + manifest.json",
    ]
    folder = workdir / formats.RSC15_SESSIONS_DIR
    for split in formats.RSC15_SPLITS:
        assert (folder / f"{split}.txt").read_text().splitlines() == EXPECTED_SESSIONS[split]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["kind"] == "rsc15-sessions"
    assert [r["path"] for r in manifest["inputs"]] == [
        str(formats.RSC15_FILTERED_DIR / f"{s}.tsv") for s in formats.RSC15_SPLITS
    ]
    assert manifest["splits"]["test"]["sessions"] == 3


def test_convert_format_sorts_any_table(runner, workdir):
    """Sessions by numeric id (9 before 10), items by time, equal times in table order; CRLF, BOM."""
    Path("in").mkdir()
    rows = ["SessionId\tItemId\tTime", "10\t5\t3.5", "9\t7\t2", "10\t6\t1.25", "9\t8\t2", "9\t1\t1.999", "10\t5\t3.5"]
    _write("in/x.tsv", rows, newline="\r\n", bom=True)
    lines = _ok(invoke(runner, "preprocess", "convert-format", "--in-dir", "in", "--out-dir", "out", "--splits", "x"))
    assert lines[0] == "x.txt: 2 sessions, 6 events, 5 items"
    assert (workdir / "out" / "x.txt").read_text() == "1 7 8\n6 5 5\n"


def test_convert_format_splits_option_and_missing_table(runner, workdir):
    _write("clicks.dat", _raw_lines())
    _ok(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    _ok(invoke(runner, "preprocess", "convert-format", "--splits", "test,train_full"))
    assert listing(workdir / formats.RSC15_SESSIONS_DIR) == ["manifest.json", "test.txt", "train_full.txt"]
    line = _error_line(invoke(runner, "preprocess", "convert-format", "--splits", "nope"))
    assert line == (
        f"Error: nope table not found: {formats.RSC15_FILTERED_DIR / 'nope.tsv'} "
        "(run: seqrec preprocess session-filter)"
    )


@pytest.mark.parametrize(
    "rows, line_no, problem",
    [
        (["1\t2\t3.0", "1\t2"], 3, "expected 3 tab-separated fields, found 2"),
        (["1\t2\t3.0", "x\t2\t3.0"], 3, "SessionId is not a non-negative integer: 'x'"),
        (["1\t2.5\t3.0"], 2, "ItemId is not a non-negative integer: '2.5'"),
        (["1\t2\t3.0", "", "1\t-2\t3.0"], 4, "ItemId is not a non-negative integer: '-2'"),
        (["1\t2\t3.0", "1\t2\tsoon"], 3, "Time is not a number of seconds: 'soon'"),
    ],
)
def test_bad_tables(runner, workdir, rows, line_no, problem):
    Path("in").mkdir()
    _write("in/test.tsv", ["SessionId\tItemId\tTime"] + rows)
    line = _error_line(invoke(runner, "preprocess", "convert-format", "--in-dir", "in", "--splits", "test"))
    assert line == f"Error: {Path('in/test.tsv')}:{line_no}: {problem}"
    assert listing(workdir) == ["in/test.tsv"]


def test_table_without_header(runner, workdir):
    Path("in").mkdir()
    _write("in/test.tsv", ["1\t2\t3.0"])
    line = _error_line(invoke(runner, "preprocess", "convert-format", "--in-dir", "in", "--splits", "test"))
    assert line.startswith(f"Error: {Path('in/test.tsv')}:1: header must name SessionId, ItemId and Time")


# ---------------------------------------------------------------- text2id
def test_text2id_vocabulary_from_train_only(runner, workdir):
    _write("train.txt", ["5 3 10", "3 5", "10"])
    _write("test.txt", ["3 99 5", "99 3", "10 5 3", "7 8"])
    _write("valid.txt", ["5 10", "3 7 3"])
    lines = _ok(invoke(runner, "preprocess", "text2id", "--train", "train.txt", "--test", "test.txt",
                       "--valid", "valid.txt", "--name", "toy"))
    assert lines == [
        "vocabulary: 3 items (from train, numeric order) -> vocab/toy.txt",
        "train: 3 sessions, 6 events",
        "valid: 2 sessions, 4 events; unknown items dropped: 1 of 5 events (20.00%), 1 of 3 targets (33.33%); "
        "sessions dropped (< 2 items): 0",
        "test: 2 sessions, 5 events; unknown items dropped: 4 of 10 events (40.00%), 2 of 6 targets (33.33%); "
        "sessions dropped (< 2 items): 2",
        "wrote data/toy/{train.txt,valid.txt,test.txt} + manifest.json",
    ]
    assert (workdir / "vocab/toy.txt").read_text() == "3\n5\n10\n"  # numeric, not "10" < "3"
    data = formats.load_processed("data/toy")
    assert data.splits["train"].to_lists() == [[2, 1, 3], [1, 2], [3]]
    assert data.splits["test"].to_lists() == [[1, 2], [3, 2, 1]]
    assert data.splits["valid"].to_lists() == [[2, 3], [1, 1]]
    m = data.manifest
    assert (m.dataset, m.eval_target, m.n_items, m.vocab_path) == ("toy", "all", 3, "../../vocab/toy.txt")
    assert m.counts["items"] == 3
    assert m.counts["test"] == {
        "input_sessions": 4,
        "input_events": 10,
        "input_targets": 6,
        "unknown_events_dropped": 4,
        "unknown_events_share": 0.4,
        "unknown_targets": 2,
        "unknown_targets_share": 2 / 6,
        "short_sessions_dropped": 2,
        "sessions": 2,
        "events": 5,
        "targets": 3,
    }
    assert m.params["vocab_order"] == "numeric"
    assert [r["split"] for r in m.inputs] == ["train", "valid", "test"]


def test_text2id_string_ids_sort_lexicographically(runner, workdir):
    _write("train.txt", ["b10 a2", "a2 007"], newline="\r\n", bom=True)
    _write("test.txt", ["a2 b10 zz"])
    _ok(invoke(runner, "preprocess", "text2id", "--train", "train.txt", "--test", "test.txt"))
    assert (workdir / "vocab/rsc15.txt").read_text() == "007\na2\nb10\n"
    data = formats.load_processed("data/rsc15")
    assert data.splits["train"].to_lists() == [[3, 2], [2, 1]]
    assert data.splits["test"].to_lists() == [[2, 3]]


def test_text2id_defaults_read_convert_format_output(runner, workdir):
    line = _error_line(invoke(runner, "preprocess", "text2id"))
    assert line == (
        f"Error: train sessions file not found: {formats.RSC15_SESSIONS_DIR / 'train_full.txt'} "
        "(run: seqrec preprocess convert-format)"
    )


@pytest.mark.parametrize(
    "test_lines, problem",
    [
        (["1 2", "", "2 1"], "2: empty line (every line must hold at least one item)"),
        ([], "1: empty file (no sessions)"),
    ],
)
def test_text2id_bad_input(runner, workdir, test_lines, problem):
    _write("train.txt", ["1 2", "2 1"])
    _write("test.txt", test_lines)
    line = _error_line(invoke(runner, "preprocess", "text2id", "--train", "train.txt", "--test", "test.txt"))
    assert line == f"Error: test.txt:{problem}"
    assert listing(workdir) == ["test.txt", "train.txt"]


def test_text2id_all_test_sessions_unknown(runner, workdir):
    _write("train.txt", ["1 2"])
    _write("test.txt", ["3 4"])
    line = _error_line(invoke(runner, "preprocess", "text2id", "--train", "train.txt", "--test", "test.txt"))
    assert line == "Error: test.txt: no test session keeps 2 or more items known to the training vocabulary"
    assert listing(workdir) == ["test.txt", "train.txt"]


# ---------------------------------------------------------------- yoochoose: the three steps with defaults
def _without_created(folder: Path) -> dict:
    data = json.loads((folder / "manifest.json").read_text())
    data.pop("created")
    return data


def test_yoochoose_equals_the_three_steps(runner, workdir):
    _write("clicks.dat", _raw_lines())
    lines = _ok(invoke(runner, "preprocess", "yoochoose", "--input", "clicks.dat"))
    assert lines[:4] == HAND_SUMMARY
    assert lines[-2:] == [
        "summary: train 10 sessions / 27 events, test 3 sessions / 6 events, 5 items; processed data in data/rsc15",
        "next: seqrec train gru4rec",
    ]
    one_go = {p: (workdir / p).read_bytes() for p in listing(workdir) if not p.endswith("manifest.json")}
    manifests = {f: _without_created(workdir / f) for f in ("data/rsc15", "data/rsc15/filtered", "data/rsc15/sessions")}
    data = formats.load_processed("data/rsc15")
    assert (workdir / "vocab/rsc15.txt").read_text() == "100\n200\n300\n505\n707\n"
    assert data.splits["test"].to_lists() == [[2, 1], [1, 2], [3, 2]]
    assert data.manifest.eval_target == "all" and data.n_items == 5

    for p in listing(workdir):
        if p != "clicks.dat":
            (workdir / p).unlink()
    _ok(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat"))
    _ok(invoke(runner, "preprocess", "convert-format"))
    _ok(invoke(runner, "preprocess", "text2id"))
    steps = {p: (workdir / p).read_bytes() for p in listing(workdir) if not p.endswith("manifest.json")}
    assert steps == one_go
    for folder, created in manifests.items():
        assert _without_created(workdir / folder) == created, folder
    m = formats.read_manifest("data/rsc15")
    assert [r["path"] for r in m["inputs"]] == [
        str(formats.RSC15_SESSIONS_DIR / "train_full.txt"),
        str(formats.RSC15_SESSIONS_DIR / "test.txt"),
    ]


# ---------------------------------------------------------------- the shared RSC15 files
SESSION_REC = ("rsc15-yoochoose", "session-rec_first100k_prepared")
SAMPLE = ("rsc15-yoochoose", "reconstructed_raw", "yoochoose-clicks-sample.dat")
UTC_SHIFT_MS = 7_200_000  # session-rec's times are local (mktime), 2 h behind UTC


def _session_rec(split: str) -> rsc15.Events:
    path = shared_file(*SESSION_REC, f"yoochoose-clicks-100k_{split}.txt")
    ev = rsc15.read_events_tsv(path)
    return rsc15.Events(ev.session, ev.item, ev.time + UTC_SHIFT_MS, True)


def _rows(ev: rsc15.Events) -> list[tuple[int, int, int]]:
    return list(zip(ev.session.tolist(), ev.item.tolist(), ev.time.tolist()))


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    from typer.testing import CliRunner

    sample = shared_file(*SAMPLE)
    folder = tmp_path_factory.mktemp("rsc15_sample")
    cwd = Path.cwd()
    try:
        os.chdir(folder)
        result = invoke(CliRunner(), "preprocess", "yoochoose", "--input", str(sample))
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    return folder, result.stdout.splitlines()


def test_sample_end_to_end_counts(sample_run):
    folder, lines = sample_run
    assert lines[:4] == [
        "train_full.tsv: 69786 events, 17688 sessions, 2808 items",
        "test.tsv: 13505 events, 3403 sessions, 1727 items",
        "train_tr.tsv: 52869 events, 13543 sessions, 2751 items",
        "train_valid.tsv: 16447 events, 4065 sessions, 1968 items",
    ]
    data = formats.load_processed(folder / "data/rsc15")
    assert data.n_items == 2808
    assert (len(data.splits["train"]), len(data.splits["test"])) == (17688, 3403)
    assert (data.splits["train"].n_events, data.splits["test"].n_events) == (69786, 13505)
    assert data.manifest.counts["test"]["unknown_events_dropped"] == 0


def test_sample_differs_from_session_rec_only_by_refiltering(sample_run):
    """The sample is session-rec's train_full + test, i.e. data already filtered once. Filtering it
    again is not a no-op: 125 items had 5+ clicks in the raw first 100k lines but have fewer here
    (their other clicks sat in sessions that step 4 removed, or were test clicks of items unseen in
    train). Step 3 now drops them, step 4 the sessions they leave with 1 event, and steps 6-7 the
    held-out clicks of items that thereby vanished from the training part. Every split is exactly
    session-rec's minus such events: nothing is added, nothing else is lost."""
    folder, _ = sample_run
    raw = rsc15.read_clicks(shared_file(*SAMPLE))
    items, support = np.unique(raw.item, return_counts=True)
    rare = set(items[support < 5].tolist())
    assert len(rare) == 125
    ours = {s: rsc15.read_events_tsv(folder / "data/rsc15/filtered" / f"{s}.tsv") for s in formats.RSC15_SPLITS}
    train_of = {"test": "train_full", "train_valid": "train_tr"}
    lost_counts = {}
    for split in formats.RSC15_SPLITS:
        ref = _session_rec(split)
        ours_rows, ref_rows = Counter(_rows(ours[split])), Counter(_rows(ref))
        assert not ours_rows - ref_rows, split  # nothing added
        lost = list((ref_rows - ours_rows).elements())
        kept_sessions = set(ours[split].session.tolist())
        known = set(ours[train_of[split]].item.tolist()) if split in train_of else set()
        by_session: dict[int, list[int]] = {}
        for s, i, _ in _rows(ref):
            by_session.setdefault(s, []).append(i)
        for s, i, _ in lost:
            explained = i in rare or (split in train_of and i not in known)
            if not explained:  # lost with its whole session, which a dropped item broke up
                assert s not in kept_sessions, (split, s, i)
                assert any(x in rare or (split in train_of and x not in known) for x in by_session[s]), (split, s)
        lost_counts[split] = (len(lost), len(set(ref.session.tolist()) - kept_sessions))
    assert lost_counts == {"train_full": (492, 106), "test": (63, 13), "train_tr": (385, 86), "train_valid": (92, 19)}


def test_time_split_reproduces_session_rec_exactly():
    """Steps 5-7 alone on the sample (whose steps 2-4 session-rec already applied) give session-rec's
    four splits row for row; the only freedom is the order of clicks with equal timestamps,
    which the sample file (sorted by session, time) does not preserve from session-rec's files."""
    import pandas as pd

    ev = rsc15.read_clicks(shared_file(*SAMPLE))
    codes, uniques = pd.factorize(ev.item)
    train_full, tf_codes, test, _, info = rsc15._time_split(ev, np.asarray(codes, np.int64), len(uniques))
    train_tr, _, valid, _, _ = rsc15._time_split(train_full, tf_codes, len(uniques))
    assert info["tmax"] == 1396925401.534 and info["unknown_events_dropped"] == 0
    ours = {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": valid}
    for split, got in ours.items():
        ref = _session_rec(split).sorted()
        assert len(got) == len(ref), split
        assert sorted(_rows(got)) == sorted(_rows(ref)), split
        same_order = _rows(got) == _rows(ref)
        assert same_order or split in ("train_full", "train_tr"), split
    assert _rows(test) == _rows(_session_rec("test").sorted())  # test: identical, in order


def test_text2id_on_srgnn_yoochoose_1_64(runner, workdir):
    train = shared_file("rsc15-yoochoose", "srgnn_yoochoose1_64", "derived_text", "train_sessions.txt")
    test = shared_file("rsc15-yoochoose", "srgnn_yoochoose1_64", "derived_text", "test_sessions.txt")
    lines = _ok(invoke(runner, "preprocess", "text2id", "--train", train, "--test", test, "--name", "yc64"))
    assert lines[:3] == [
        "vocabulary: 17376 items (from train, numeric order) -> vocab/yc64.txt",
        "train: 116167 sessions, 486026 events",
        "test: 15233 sessions, 70633 events; unknown items dropped: 531 of 71222 events (0.75%), "
        "412 of 55898 targets (0.74%); sessions dropped (< 2 items): 91",
    ]
    data = formats.load_processed("data/yc64")
    assert data.n_items == 17376
    assert data.manifest.counts["test"]["input_sessions"] == 15324


def test_timestamp_parser_against_datetime(tmp_path):
    """Timestamps are read as datetime reads them, on random times 1970-2100, leap days included."""
    rng = np.random.default_rng(7)
    ms = np.concatenate([
        rng.integers(0, 4_102_444_800_000, 3000),  # 1970 .. 2100
        np.array([951_782_400_000, 1_330_473_600_000, 4_107_542_399_999]),  # 2000-02-29, 2012-02-29, 2100-02-28
    ])
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    text = [(epoch + dt.timedelta(milliseconds=int(v))).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" for v in ms]
    path = _write(tmp_path / "clicks.dat", [f"1,{t},2,0" for t in text])
    ev = rsc15.read_clicks(path)
    assert len(ev) == len(ms) and (ev.session == 1).all() and (ev.item == 2).all()
    assert (ev.time == np.sort(ms, kind="stable")).all()
