"""seqrec preprocess interactions (issue 12) and raw-id fidelity (case 14), through the real CLI on real files.

* A hand-computed leave-one-out case with string ids, ISO times with zones, ties and both
  filters, and the same data as CSV, quoted CSV, TSV.gz, '::' zstd without header, Unix ms, a
  Parquet copy (text times) and a Parquet copy with a timestamp column: identical folders.
* Both protocols against the commands they generalise: ``preprocess ml-1m`` on the hand-built
  ratings.dat and the real ML-1M file; ``session-filter -> convert-format -> text2id`` on the
  hand-built clicks file and the shared yoochoose sample.
* Every bad input of the issue with its exact ``Error:`` line, and nothing written.
* Case 14 (../shared/cases/14-raw-id-fidelity): MovieIDs kept verbatim by ``preprocess ml-1m``.
* ``read_sequences`` (what ``recommend --input FILE`` calls): grouping, time order, the
  manifest's reading as default, standard input, Parquet.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, invoke, listing, shared_file
from test_ml1m import HAND_LINES as ML_HAND_LINES
from test_rsc15 import EXPECTED_SESSIONS
from test_rsc15 import HAND as CLICKS

from seqrec_cli import formats
from seqrec_cli.datasets import interactions, table
from seqrec_cli.errors import BadInputError, MissingInputError, SeqrecError

# ---------------------------------------------------------------- the hand-computed leave-one-out case
# (user, item, time) in FILE order. Items: sku:AB-99 x4, 0042 x3, 42 x3, x-ä x3, rare x1 (dropped by
# --min-item-count 2). Users after that: u-17 4, u-2 4, u-100 3 (its 'rare' gone), u-9 2 (dropped by
# --min-user-count 3). Ties at the same instant keep file order: u-17 rows 1 and 4 (09:00Z written
# as +01:00 and Z), u-2 rows 3 and 7 (17:00Z written as -05:00 and +01:00). Row 11 has no zone: UTC.
ROWS = [
    ("u-17", "sku:AB-99", "2024-03-01T10:00:00+01:00"),
    ("u-17", "0042", "2024-03-01T08:30:00Z"),
    ("u-2", "42", "2024-03-01T12:00:00-05:00"),
    ("u-17", "x-ä", "2024-03-01T09:00:00Z"),
    ("u-2", "sku:AB-99", "2024-03-01T16:00:00Z"),
    ("u-100", "0042", "2024-03-02T00:00:00+00:00"),
    ("u-2", "0042", "2024-03-01T18:00:00+01:00"),
    ("u-100", "sku:AB-99", "2024-03-02T01:00:00Z"),
    ("u-100", "rare", "2024-03-02T02:00:00Z"),
    ("u-100", "x-ä", "2024-03-01T23:59:59.999Z"),
    ("u-17", "42", "2024-03-01 10:00:00"),
    ("u-2", "x-ä", "2024-03-01T18:30:00+00:00"),
    ("u-9", "42", "2024-03-01T07:00:00Z"),
    ("u-9", "sku:AB-99", "2024-03-01T07:30:00Z"),
]
LOO_ARGS = ("--min-item-count", "2", "--min-user-count", "3")
# by hand: ids are not all plain integers -> lexicographic (code point) order
# vocab 0042->1, 42->2, sku:AB-99->3, x-ä->4; users u-100 < u-17 < u-2
# u-100: x-ä (Mar 1 23:59:59.999Z), 0042 (Mar 2 00:00Z), sku:AB-99 (01:00Z)            -> 4 1 3
# u-17:  0042 (08:30Z), sku:AB-99 (09:00Z, row 1), x-ä (09:00Z, row 4), 42 (10:00Z)     -> 1 3 4 2
# u-2:   sku:AB-99 (16:00Z), 42 (17:00Z, row 3), 0042 (17:00Z, row 7), x-ä (18:30Z)     -> 3 2 1 4
HAND_FILES = {
    "test.txt": "4 1 3\n1 3 4 2\n3 2 1 4\n",
    "valid.txt": "4 1\n1 3 4\n3 2 1\n",
    "train.txt": "4\n1 3\n3 2\n",
    "users.txt": "u-100\nu-17\nu-2\n",
}
HAND_VOCAB = "0042\n42\nsku:AB-99\nx-ä\n"
HAND_REPORT = [
    "read: 14 interactions, 4 users, 5 items",
    "items with at least 2 interactions: 13 interactions, 4 users, 4 items; dropped 1 interactions, 0 users, 1 items",
    "users with at least 3 interactions: 11 interactions, 3 users, 4 items; dropped 2 interactions, 1 users, 0 items",
    "leave-one-out: 3 users, 4 items, 11 interactions (mean length 3.7)",
]


def _utc_ms(text: str) -> int:
    """Unix milliseconds of an ISO time (no zone = UTC), computed with pandas, not seqrec."""
    stamp = pd.Timestamp(text)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return int(stamp.value // 1_000_000)


def _csv(rows=ROWS, sep=",", header=("user", "item", "time"), quote=False) -> str:
    q = (lambda v: f'"{v}"') if quote else (lambda v: v)
    lines = [sep.join(header)] if header else []
    lines += [sep.join(q(v) for v in row) for row in rows]
    return "".join(line + "\n" for line in lines)


def _ok(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def _error_line(result) -> str:
    """The whole output must be one 'Error: ...' line."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.output.endswith("\n") and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return result.output.rstrip("\n")


def _folder(root: Path, name: str) -> dict[str, str]:
    out = {f: (root / "data" / name / f).read_text(encoding="utf-8") for f in HAND_FILES}
    out["vocab"] = (root / "vocab" / f"{name}.txt").read_text(encoding="utf-8")
    return out


def _manifest(root: Path, name: str) -> dict:
    return json.loads((root / "data" / name / "manifest.json").read_text())


def test_hand_leave_one_out_string_ids_zones_and_ties(runner, workdir):
    (workdir / "shop.csv").write_text(_csv(quote=True), encoding="utf-8")
    lines = _ok(invoke(runner, "preprocess", "interactions", "shop.csv", *LOO_ARGS))
    assert lines[0] == (
        "read shop.csv: text, comma-separated, header line; group by 'user', items 'item', time 'time' (iso); "
        "ids: users lexicographic, items lexicographic"
    )
    assert lines[1:5] == HAND_REPORT
    assert lines[5:] == [
        "wrote data/shop/{train,valid,test}.txt, data/shop/users.txt, data/shop/manifest.json, vocab/shop.txt",
        "next: seqrec train bert4rec --train-dir data/shop",
    ]
    assert _folder(workdir, "shop") == {**HAND_FILES, "vocab": HAND_VOCAB}
    manifest = _manifest(workdir, "shop")
    assert manifest["eval_target"] == "last" and manifest["has_users"] is True and manifest["n_items"] == 4
    params = manifest["params"]
    assert params["split"] == "leave-one-out"
    assert (params["min_item_count"], params["min_user_count"]) == (2, 3)
    read = params["read"]
    assert (read["user_col"], read["item_col"], read["time_col"]) == ("user", "item", "time")
    assert (read["format"], read["sep"], read["header"], read["time_format"], read["time_format_option"]) == (
        "text", ",", True, "iso", "auto"
    )
    assert read["id_order"] == {"users": "lexicographic", "items": "lexicographic"}
    assert [s["rule"] for s in manifest["counts"]["steps"]] == [
        "read", "items with at least 2 interactions", "users with at least 3 interactions"
    ]
    data = formats.load_processed(workdir / "data" / "shop")  # checksums, vocabulary, leakage guard
    assert data.users == ["u-100", "u-17", "u-2"]
    assert listing(workdir) == [
        "data/shop/manifest.json", "data/shop/test.txt", "data/shop/train.txt", "data/shop/users.txt",
        "data/shop/valid.txt", "shop.csv", "vocab/shop.txt",
    ]


def _variants(workdir: Path) -> dict[str, tuple[str, ...]]:
    """The hand case written eight ways; each maps to the extra options it needs."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import zstandard

    (workdir / "plain.csv").write_text(_csv(), encoding="utf-8")
    (workdir / "quoted.csv").write_text(_csv(quote=True), encoding="utf-8")
    (workdir / "bom-crlf.csv").write_bytes(b"\xef\xbb\xbf" + _csv().replace("\n", "\r\n").encode("utf-8"))
    with gzip.open(workdir / "tabs.tsv.gz", "wt", encoding="utf-8") as fh:
        fh.write(_csv(sep="\t", header=("time", "item", "user"), rows=[(t, i, u) for u, i, t in ROWS]))
    raw = _csv(sep="::", header=None, rows=[(u, i, "3", t) for u, i, t in ROWS]).encode("utf-8")
    (workdir / "colons.dat.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))
    ms_rows = [(u, i, str(_utc_ms(t))) for u, i, t in ROWS]
    (workdir / "ms.csv").write_text(_csv(rows=ms_rows, sep=";", header=("uid", "sku", "ts")), encoding="utf-8")
    frame = pd.DataFrame(ROWS, columns=["user", "item", "time"])
    frame.to_parquet(workdir / "text-times.parquet", index=False)
    stamps = pd.to_datetime(frame["time"], format="ISO8601", utc=True)
    pq.write_table(
        pa.table({"user": frame["user"], "item": frame["item"], "time": pa.array(stamps, pa.timestamp("ms", tz="UTC"))}),
        workdir / "typed.parquet",
    )
    return {
        "plain.csv": (),
        "quoted.csv": (),
        "bom-crlf.csv": (),
        "tabs.tsv.gz": ("--sep", "\\t"),
        "colons.dat.zst": ("--sep", "::", "--columns", "user,item,rating,time"),
        "ms.csv": ("--user-col", "uid", "--item-col", "sku", "--time-col", "ts", "--time-format", "unix-ms"),
        "text-times.parquet": (),
        "typed.parquet": (),
    }


def test_every_kind_of_file_gives_the_same_folder(runner, workdir):
    """Acceptance 3: string ids, ISO times with zones, and copies of the data in other formats
    (Parquet among them) give identical processed folders."""
    for k, (name, options) in enumerate(_variants(workdir).items()):
        _ok(invoke(runner, "preprocess", "interactions", name, *LOO_ARGS, *options, "--name", f"v{k}"))
        assert _folder(workdir, f"v{k}") == {**HAND_FILES, "vocab": HAND_VOCAB}, name
        manifest = _manifest(workdir, f"v{k}")
        reference = _manifest(workdir, "v0")
        for key in ("splits", "vocab_sha256", "n_items", "eval_target"):
            assert manifest[key] == reference[key], (name, key)
        assert manifest["counts"]["steps"] == reference["counts"]["steps"], name
    assert _manifest(workdir, "v3")["params"]["read"]["compression"] == "gzip"
    assert _manifest(workdir, "v4")["params"]["read"]["sep"] == "::"
    assert _manifest(workdir, "v5")["params"]["read"]["time_format"] == "unix-ms"
    assert _manifest(workdir, "v6")["params"]["read"]["format"] == "parquet"
    assert _manifest(workdir, "v7")["params"]["read"]["time_format"] == "native"


def test_time_formats(runner, workdir):
    """Unix seconds (auto by magnitude) and a strftime pattern give the same order as ISO."""
    seconds = [(u, i, str(_utc_ms(t) // 1000)) for u, i, t in ROWS]
    (workdir / "s.csv").write_text(_csv(rows=seconds))
    # whole seconds: u-100's 23:59:59.999 becomes 23:59:59, still before midnight: same result
    _ok(invoke(runner, "preprocess", "interactions", "s.csv", *LOO_ARGS))
    assert _folder(workdir, "s") == {**HAND_FILES, "vocab": HAND_VOCAB}
    assert _manifest(workdir, "s")["params"]["read"]["time_format"] == "unix-s"
    pattern = [(u, i, pd.Timestamp(_utc_ms(t), unit="ms").strftime("%d/%m/%Y %H:%M:%S")) for u, i, t in ROWS]
    (workdir / "p.csv").write_text(_csv(rows=pattern))
    _ok(invoke(runner, "preprocess", "interactions", "p.csv", *LOO_ARGS, "--time-format", "%d/%m/%Y %H:%M:%S"))
    assert _folder(workdir, "p") == {**HAND_FILES, "vocab": HAND_VOCAB}


def test_min_rating(runner, workdir):
    rows = [(u, i, "4" if k % 4 else "2", t) for k, (u, i, t) in enumerate(ROWS)]  # rows 0, 4, 8, 12 rated 2
    (workdir / "r.csv").write_text(_csv(rows=rows, header=("user", "item", "stars", "time")))
    lines = _ok(invoke(runner, "preprocess", "interactions", "r.csv", "--rating-col", "stars", "--min-rating", "3",
                       "--min-item-count", "1", "--min-user-count", "3"))
    assert lines[2] == "ratings of at least 3: 10 interactions, 4 users, 4 items; dropped 4 interactions, 0 users, 1 items"
    # u-17 loses sku:AB-99 (row 0); u-2 loses sku:AB-99 (row 4); u-100 loses rare (row 8); u-9 loses 42 (row 12)
    assert (workdir / "data" / "r" / "users.txt").read_text() == "u-100\nu-17\nu-2\n"
    vocab = (workdir / "vocab" / "r.txt").read_text().split()
    test = [[vocab[int(i) - 1] for i in line.split()] for line in (workdir / "data" / "r" / "test.txt").read_text().splitlines()]
    assert test == [["x-ä", "0042", "sku:AB-99"], ["0042", "x-ä", "42"], ["42", "0042", "x-ä"]]
    assert _manifest(workdir, "r")["params"]["read"]["min_rating"] == 3


# ---------------------------------------------------------------- leave-one-out = preprocess ml-1m
def test_leave_one_out_equals_preprocess_ml1m_on_the_hand_ratings(runner, workdir):
    text = "".join(line + "\n" for line in ML_HAND_LINES)
    (workdir / "ratings.dat").write_text(text)
    (workdir / "ratings.csv").write_text("user,item,rating,time\n" + text.replace("::", ","))
    _ok(invoke(runner, "preprocess", "ml-1m", "--input", "ratings.dat"))
    _ok(invoke(runner, "preprocess", "interactions", "ratings.dat", "--sep", "::", "--columns", "user,item,rating,time",
               "--name", "dat"))
    _ok(invoke(runner, "preprocess", "interactions", "ratings.csv", "--name", "csv"))
    for name in ("dat", "csv"):
        for f in ("train.txt", "valid.txt", "test.txt", "users.txt"):
            assert (workdir / "data" / name / f).read_bytes() == (workdir / "data" / "ml-1m" / f).read_bytes(), (name, f)
        assert (workdir / "vocab" / f"{name}.txt").read_bytes() == (workdir / "vocab" / "ml-1m.txt").read_bytes()
        ours, theirs = _manifest(workdir, name)["counts"], _manifest(workdir, "ml-1m")["counts"]
        for key in ("users", "items", "interactions", "raw_interactions", "raw_users", "raw_items", "dropped_items",
                    "dropped_users"):
            assert ours[key] == theirs[key], key


@pytest.mark.slow
def test_leave_one_out_equals_preprocess_ml1m_on_the_real_file(runner, workdir):
    """Acceptance 1: ML-1M's ratings.dat through the generic path is byte-identical."""
    ratings = shared_file("movielens-1m", "reconstructed", "ratings.dat")
    _ok(invoke(runner, "preprocess", "ml-1m", "--input", ratings))
    lines = _ok(invoke(runner, "preprocess", "interactions", ratings, "--sep", "::", "--columns", "user,item,rating,time",
                       "--split", "leave-one-out", "--name", "generic"))
    assert lines[1:4] == [
        "read: 1,000,209 interactions, 6,040 users, 3,706 items",
        "items with at least 5 interactions: 999,611 interactions, 6,040 users, 3,416 items; "
        "dropped 598 interactions, 0 users, 290 items",
        "users with at least 5 interactions: 999,611 interactions, 6,040 users, 3,416 items; "
        "dropped 0 interactions, 0 users, 0 items",
    ]
    for f in ("train.txt", "valid.txt", "test.txt", "users.txt"):
        assert (workdir / "data" / "generic" / f).read_bytes() == (workdir / "data" / "ml-1m" / f).read_bytes(), f
    assert (workdir / "vocab" / "generic.txt").read_bytes() == (workdir / "vocab" / "ml-1m.txt").read_bytes()


# ---------------------------------------------------------------- session-time = the RSC15 commands
def _clicks_csv(path: Path, prefix: bool = False) -> Path:
    s, i = ("s-", "sku:") if prefix else ("", "")
    hms = lambda d, t: f"2014-04-{d:02d}T{t}Z"  # noqa: E731
    path.write_text("session,item,time,category\n" + "".join(f"{s}{a},{i}{b},{hms(d, t)},{c}\n" for a, b, d, t, c in CLICKS))
    return path


def test_session_time_equals_session_filter_convert_text2id(runner, workdir):
    """The hand-built RSC15 clicks (every rule effect worked out in test_rsc15): the same splits,
    byte for byte, as the three RSC15 commands."""
    (workdir / "clicks.dat").write_text("".join(f"{a},2014-04-{d:02d}T{t}Z,{b},{c}\n" for a, b, d, t, c in CLICKS))
    _clicks_csv(workdir / "clicks.csv")
    _ok(invoke(runner, "preprocess", "session-filter", "--input", "clicks.dat", "--out-dir", "f"))
    _ok(invoke(runner, "preprocess", "convert-format", "--in-dir", "f", "--out-dir", "s"))
    _ok(invoke(runner, "preprocess", "text2id", "--train", "s/train_full.txt", "--test", "s/test.txt", "--name", "full"))
    _ok(invoke(runner, "preprocess", "text2id", "--train", "s/train_tr.txt", "--valid", "s/train_valid.txt",
               "--test", "s/test.txt", "--name", "tr"))
    lines = _ok(invoke(runner, "preprocess", "interactions", "clicks.csv", "--split", "session-time", "--name", "g0"))
    assert lines[1:6] == [
        "read: 46 events, 18 sessions, 7 items",
        "step 2: sessions with more than 1 event: 44 events, 16 sessions, 7 items; dropped 2 events, 2 sessions, 0 items",
        "step 3: items with at least 5 events: 40 events, 16 sessions, 6 items; dropped 4 events, 0 sessions, 1 items",
        "step 4: sessions with at least 2 events: 39 events, 15 sessions, 6 items; dropped 1 events, 1 sessions, 0 items",
        "steps 5-6: test = sessions ending in the last 86,400 s: boundary 2014-04-09T12:00:00.000Z, 5 sessions held "
        "out as test; dropped 5 test events with items unseen in training, then 2 test sessions too short",
    ]
    _ok(invoke(runner, "preprocess", "interactions", "clicks.csv", "--split", "session-time", "--valid-days", "1",
               "--name", "g1"))
    for ours, theirs, files in (("g0", "full", ("train.txt", "test.txt")), ("g1", "tr", ("train.txt", "valid.txt", "test.txt"))):
        for f in files:
            assert (workdir / "data" / ours / f).read_bytes() == (workdir / "data" / theirs / f).read_bytes(), (ours, f)
        assert (workdir / "vocab" / f"{ours}.txt").read_bytes() == (workdir / "vocab" / f"{theirs}.txt").read_bytes()
        assert not (workdir / "data" / ours / "valid.txt").exists() or ours == "g1"
    filtered = json.loads((workdir / "f" / "manifest.json").read_text())
    manifest = _manifest(workdir, "g1")
    assert manifest["counts"]["time_splits"] == {
        k: {"events": v["events"], "sessions": v["sessions"], "items": v["items"]} for k, v in filtered["splits"].items()
    }
    assert manifest["counts"]["steps"][1:] == filtered["steps"][1:]
    assert manifest["eval_target"] == "all" and manifest["has_users"] is False
    assert manifest["params"]["train_split"] == "train_tr" and manifest["params"]["valid_days"] == 1
    assert _manifest(workdir, "g0")["params"]["train_split"] == "train_full"


def test_session_time_string_ids_hand_computed(runner, workdir):
    """Session and item ids as strings: the same sessions (test_rsc15's hand-computed ones), in
    lexicographic session order, item ids verbatim."""
    _clicks_csv(workdir / "clicks.csv", prefix=True)
    _ok(invoke(runner, "preprocess", "interactions", "clicks.csv", "--split", "session-time", "--valid-days", "1"))
    vocab = (workdir / "vocab" / "clicks.txt").read_text().split()
    assert vocab == ["sku:100", "sku:200", "sku:300", "sku:505"]  # items of train_tr only
    sessions = {"train_tr": [4, 5, 6, 7, 8, 17], "train_valid": [9, 16, 18], "test": [10, 11, 14]}
    for split, ours in (("train_tr", "train"), ("train_valid", "valid"), ("test", "test")):
        expected = dict(zip((f"s-{n}" for n in sessions[split]), EXPECTED_SESSIONS[split]))
        want = [" ".join(f"sku:{i}" for i in expected[k].split()) for k in sorted(expected)]
        got = [" ".join(vocab[int(t) - 1] for t in line.split())
               for line in (workdir / "data" / "clicks" / f"{ours}.txt").read_text().splitlines()]
        assert got == want, split


@pytest.mark.parametrize("valid_days", ["0", "1"])
def test_session_time_on_the_yoochoose_sample(runner, workdir, valid_days):
    """Acceptance 1: the shared clicks sample gives the same splits as the RSC15 commands."""
    clicks = shared_file("rsc15-yoochoose", "reconstructed_raw", "yoochoose-clicks-sample.dat")
    _ok(invoke(runner, "preprocess", "session-filter", "--input", clicks, "--out-dir", "f"))
    _ok(invoke(runner, "preprocess", "convert-format", "--in-dir", "f", "--out-dir", "s"))
    if valid_days == "0":
        _ok(invoke(runner, "preprocess", "text2id", "--train", "s/train_full.txt", "--test", "s/test.txt", "--name", "ref"))
    else:
        _ok(invoke(runner, "preprocess", "text2id", "--train", "s/train_tr.txt", "--valid", "s/train_valid.txt",
                   "--test", "s/test.txt", "--name", "ref"))
    _ok(invoke(runner, "preprocess", "interactions", clicks, "--columns", "session,time,item,category",
               "--split", "session-time", "--valid-days", valid_days, "--name", "gen"))
    for f in ("train.txt", "valid.txt", "test.txt"):
        assert (workdir / "data" / "gen" / f).exists() == (workdir / "data" / "ref" / f).exists(), f
        if (workdir / "data" / "ref" / f).exists():
            assert (workdir / "data" / "gen" / f).read_bytes() == (workdir / "data" / "ref" / f).read_bytes(), f
    assert (workdir / "vocab" / "gen.txt").read_bytes() == (workdir / "vocab" / "ref.txt").read_bytes()
    filtered = json.loads((workdir / "f" / "manifest.json").read_text())
    counts = _manifest(workdir, "gen")["counts"]["time_splits"]
    for split, c in counts.items():
        assert c == {k: filtered["splits"][split][k] for k in ("events", "sessions", "items")}, split


def test_session_time_thresholds_are_options(runner, workdir):
    """--min-item-support 4 keeps 404 (4 clicks after step 2): session 3 [100 404] survives and
    sessions 4-6 keep their 404 click; --test-days 0.5 moves the boundary to day 10 00:00."""
    _clicks_csv(workdir / "clicks.csv")
    lines = _ok(invoke(runner, "preprocess", "interactions", "clicks.csv", "--split", "session-time",
                       "--min-item-support", "4", "--test-days", "0.5"))
    assert lines[3] == "step 3: items with at least 4 events: 44 events, 16 sessions, 7 items; dropped 0 events, 0 sessions, 0 items"
    assert lines[5].startswith("steps 5-6: test = sessions ending in the last 43,200 s: boundary 2014-04-10T00:00:00.000Z, ")
    params = _manifest(workdir, "clicks")["params"]
    assert (params["min_item_support"], params["test_days"], params["min_session_length"]) == (4, 0.5, 2)


# ---------------------------------------------------------------- bad input: one line, nothing written
BAD = {
    # name: (file name, content, options, exact error line)
    "missing column": ("a.csv", "user,sku,time\nu,i,1\n", (),
                       "Error: a.csv: no column 'item' (columns found: user, sku, time); name it with --item-col"),
    "no group column": ("a.csv", "who,item,time\nu,i,1\n", (),
                        "Error: a.csv: no column 'user' or 'session' (columns found: who, item, time); "
                        "name it with --user-col or --session-col"),
    "missing named column": ("a.csv", "user,item,time\nu,i,1\n", ("--session-col", "visit"),
                             "Error: a.csv: no column 'visit' (columns found: user, item, time); name it with --user-col or --session-col"),
    "columns count": ("a.dat", "u::i::1\n", ("--columns", "user,item,rating,time"),
                      "Error: a.dat:1: --columns names 4 columns (user,item,rating,time) but the first line has "
                      "3 fields separated by '::'"),
    "bad ISO timestamp": ("a.csv", "user,item,time\nu,i,2024-01-01T00:00:00Z\n\nu,j,2024-13-01T00:00:00Z\n", (),
                          "Error: a.csv:4: bad timestamp '2024-13-01T00:00:00Z' in column 'time' "
                          "(expected ISO-8601 like 2014-04-07T10:51:09.277Z; --time-format to say otherwise)"),
    "bad Unix time": ("a.tsv", "user\titem\ttime\nu\ti\t1700000000\nu\tj\t17e8x\n", (),
                      "Error: a.tsv:3: bad timestamp '17e8x' in column 'time' "
                      "(expected Unix time in seconds; --time-format to say otherwise)"),
    "empty timestamp": ("a.csv", "user,item,time\nu,i,1700000000\nu,j,\n", (),
                        "Error: a.csv:3: bad timestamp '' in column 'time' "
                        "(expected Unix time in seconds; --time-format to say otherwise)"),
    "pattern mismatch": ("a.csv", "user,item,time\nu,i,01/02/2024\nu,j,2024-02-01\n", ("--time-format", "%d/%m/%Y"),
                         "Error: a.csv:3: bad timestamp '2024-02-01' in column 'time' "
                         "(expected the pattern '%d/%m/%Y'; --time-format to say otherwise)"),
    "empty item id": ("a.csv", "user,item,time\nu,i,1\nu,,2\n", (),
                      "Error: a.csv:3: empty item id in column 'item'"),
    "item id with a space": ("a.csv", 'user,item,time\nu,i,1\nu,"sku 9",2\n', (),
                             "Error: a.csv:3: item id with whitespace (item ids are written space-separated) "
                             "in column 'item': 'sku 9'"),
    "user id with a tab": ("a.csv", 'user,item,time\nu,i,1\n"a\tb",i,2\n', (),
                           "Error: a.csv:3: user id with a line break or tab in column 'user': 'a\\tb'"),
    "quoted line break counts lines": ("a.csv", 'user,item,time,note\nu,i,1,"two\nlines"\nu,,2,x\n', (),
                                       "Error: a.csv:4: empty item id in column 'item'"),
    "too many fields": ("a.csv", "user,item,time\nu,i,1\nu,j,2,3\n", (),
                        "Error: a.csv:3: expected 3 fields separated by commas, found 4"),
    "too many fields, first row": ("a.csv", "user,item,time\nu,i,1,0\n", (),
                                   "Error: a.csv:2: expected 3 fields separated by commas, found 4"),
    "not UTF-8": ("a.csv", b"user,item,time\nu,i,1\nu,\xe9,2\n", (), "Error: a.csv:3: not utf-8 text (byte b'\\xe9')"),
    "bad rating": ("a.csv", "user,item,r,time\nu,i,4,1\nu,j,five,2\n", ("--rating-col", "r"),
                   "Error: a.csv:3: rating 'five' in column 'r' is not a number"),
    "empty file": ("a.csv", "", (), "Error: a.csv: empty file: no interactions"),
    "blank lines only": ("a.csv", "\n \n", (), "Error: a.csv: empty file: no interactions"),
    "header only": ("a.csv", "user,item,time\n", (), "Error: a.csv: no interactions (only a header)"),
    "no separator": ("a.dat", "useritemtime\n", (),
                     "Error: a.dat:1: cannot tell the separator from the first line 'useritemtime'; give --sep"),
    "item rule empties": ("a.csv", "user,item,time\nu,i,1\nu,j,2\nu,k,3\n", (),
                          "Error: a.csv: nothing is left after the rule 'items with at least 5 interactions' "
                          "(items first, then users; lower --min-item-count)"),
    "user rule empties": ("a.csv", "user,item,time\nu,i,1\nu,j,2\nv,i,3\nv,j,4\n", ("--min-item-count", "1"),
                          "Error: a.csv: nothing is left after the rule 'users with at least 5 interactions' "
                          "(items first, then users; lower --min-user-count)"),
    "rating rule empties": ("a.csv", "user,item,r,time\nu,i,1,1\n", ("--rating-col", "r", "--min-rating", "4"),
                            "Error: a.csv: nothing is left after the rule 'ratings of at least 4' (lower --min-rating)"),
    "session rule empties": ("a.csv", "session,item,time\ns,i,1\nt,j,2\n", ("--split", "session-time"),
                             "Error: a.csv: no events left after step 2: sessions with more than 1 event "
                             "(lower --min-session-length)"),
    "item support empties": ("a.csv", "session,item,time\ns,i,1\ns,j,2\n", ("--split", "session-time"),
                             "Error: a.csv: no events left after step 3: items with at least 5 events "
                             "(lower --min-item-support)"),
    "no training session": ("a.csv", "session,item,time\ns,i,1\ns,j,2\n",
                            ("--split", "session-time", "--min-item-support", "1"),
                            "Error: a.csv: every session ends in the final 86,400 s: nothing left for train_full "
                            "(lower --test-days)"),
    "no test session": ("a.csv", "session,item,time\ns,i,1\ns,j,2\nt,k,200000\nt,l,200001\n",
                        ("--split", "session-time", "--min-item-support", "1"),
                        "Error: a.csv: no test session is left after the rule 'steps 5-6: test = sessions ending in "
                        "the last 86,400 s' (items unseen in training dropped, then sessions under 2 events): "
                        "widen --test-days"),
    "LOO option with session-time": ("a.csv", "user,item,time\nu,i,1\n", ("--split", "session-time", "--min-user-count", "3"),
                                     "Error: --min-user-count applies to --split leave-one-out, not session-time"),
    "session option with LOO": ("a.csv", "user,item,time\nu,i,1\n", ("--test-days", "2"),
                                "Error: --test-days applies to --split session-time, not leave-one-out"),
    "min-rating without column": ("a.csv", "user,item,time\nu,i,1\n", ("--min-rating", "3"),
                                  "Error: --min-rating needs --rating-col (the column holding the rating)"),
    "both group options": ("a.csv", "user,item,time\nu,i,1\n", ("--user-col", "a", "--session-col", "b"),
                           "Error: give --user-col or --session-col, not both"),
    "unknown time format": ("a.csv", "user,item,time\nu,i,1\n", ("--time-format", "epoch"),
                            "Error: --time-format: 'epoch' is none of auto, unix-s, unix-ms, unix-us, unix-ns, iso and "
                            "not a strftime pattern (such as '%d/%m/%Y %H:%M')"),
    "missing file": (None, None, (), "Error: interaction file not found: nowhere.csv"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_error_line_and_nothing_is_written(runner, workdir, case):
    name, content, options, expected = BAD[case]
    if name is not None:
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        (workdir / name).write_bytes(data)
    result = invoke(runner, "preprocess", "interactions", name or "nowhere.csv", *options)
    assert _error_line(result) == expected
    assert listing(workdir) == ([name] if name else [])


def _parquet(path: Path, **columns) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(columns), path)
    return path


def test_bad_parquet_rows_are_named(runner, workdir):
    import pyarrow as pa

    cases = {
        "time.parquet": (dict(user=["a", "a", "b"], item=["x", "y", "z"], time=["2024-01-01", "2024-01-02", "soon"]),
                         "Error: time.parquet: row 3: bad timestamp 'soon' in column 'time' "
                         "(expected ISO-8601 like 2014-04-07T10:51:09.277Z; --time-format to say otherwise)"),
        "null.parquet": (dict(user=["a", None], item=["x", "y"], time=[1, 2]),
                         "Error: null.parquet: row 2: missing user id in column 'user'"),
        "float.parquet": (dict(user=["a", "b"], item=[1.0, 2.0], time=[1, 2]),
                          "Error: float.parquet: the item id column 'item' has type double: ids must be strings or integers"),
        "nat.parquet": (dict(user=["a", "b"], item=["x", "y"], time=pa.array([1, None], pa.timestamp("s"))),
                        "Error: nat.parquet: row 2: missing timestamp in column 'time'"),
        "cols.parquet": (dict(user=["a"], product=["x"], time=[1]),
                         "Error: cols.parquet: no column 'item' (columns found: user, product, time); name it with --item-col"),
    }
    for name, (columns, expected) in cases.items():
        _parquet(workdir / name, **columns)
        assert _error_line(invoke(runner, "preprocess", "interactions", name)) == expected, name
    (workdir / "junk.parquet").write_bytes(b"PAR1 not really")
    line = _error_line(invoke(runner, "preprocess", "interactions", "junk.parquet"))
    assert line.startswith("Error: junk.parquet: not a readable Parquet file ("), line
    assert listing(workdir) == sorted([*cases, "junk.parquet"])


def test_failed_rerun_keeps_the_earlier_folder(runner, workdir):
    (workdir / "shop.csv").write_text(_csv(), encoding="utf-8")
    _ok(invoke(runner, "preprocess", "interactions", "shop.csv", *LOO_ARGS))
    before = {p: (workdir / p).read_bytes() for p in listing(workdir)}
    (workdir / "shop.csv").write_text(_csv() + "u-1,sku:1,yesterday\n", encoding="utf-8")
    assert _error_line(invoke(runner, "preprocess", "interactions", "shop.csv", *LOO_ARGS)).startswith("Error: shop.csv:16: ")
    after = {p: (workdir / p).read_bytes() for p in listing(workdir)}
    del before["shop.csv"], after["shop.csv"]
    assert after == before
    formats.load_processed(workdir / "data" / "shop")


def test_multi_character_separator_refuses_unit_separator_in_data(runner, workdir):
    (workdir / "a.dat").write_text("u::i::1\nu::j\x1f::2\n")
    line = _error_line(invoke(runner, "preprocess", "interactions", "a.dat", "--columns", "user,item,time"))
    assert line == "Error: a.dat:2: holds the control character U+001F, which a multi-character --sep cannot read"


# ---------------------------------------------------------------- case 14: raw ids verbatim
CASE14 = REPO.parent / "shared" / "cases" / "14-raw-id-fidelity"
LEADING_ZERO_IDS = ["0108775015", "0111565001", "0110065002", "0108775044", "0110065001", "0108775051"]


def _case14_ratings() -> dict[str, str]:
    """The two ratings files of case 14, built here (the same content as the shared case's)."""
    rng = [[0, 1, 2, 3, 4, 5], [5, 2, 3, 1, 0, 4], [4, 1, 5, 2, 3, 0], [0, 1, 5, 3, 4, 2], [4, 2, 3, 5, 0, 1],
           [3, 0, 1, 4, 2, 5], [2, 1, 5, 4, 0, 3]]
    t = 1_000_000_000
    lines = []
    for user, order in enumerate(rng, start=1):
        for k in order:
            t += 7
            lines.append(f"{user}::{LEADING_ZERO_IDS[k]}::4::{t}")
    zeros = "".join(line + "\n" for line in lines)
    pair = "".join(
        f"{u}::{m}::3::{1_000_000_000 + 10 * u + k}\n" for u in range(1, 7) for k, m in enumerate(["42", "0042", "43", "44", "45", "46"])
    )
    return {"ratings_leading_zero_ids.dat": zeros, "ratings_42_vs_0042.dat": pair}


def test_case14_inputs_match_the_shared_case():
    if not CASE14.is_dir():
        pytest.skip(f"shared case not present: {CASE14}")
    for name, text in _case14_ratings().items():
        assert (CASE14 / name).read_text() == text, name


def test_case14_ml1m_keeps_movie_ids_verbatim(runner, workdir):
    for name, text in _case14_ratings().items():
        (workdir / name).write_text(text)
    _ok(invoke(runner, "preprocess", "ml-1m", "--input", "ratings_leading_zero_ids.dat", "--out-dir", "data/h",
               "--vocab", "vocab/h.txt"))
    assert (workdir / "vocab" / "h.txt").read_text().splitlines() == sorted(LEADING_ZERO_IDS)  # lexicographic, verbatim
    _ok(invoke(runner, "preprocess", "ml-1m", "--input", "ratings_42_vs_0042.dat", "--out-dir", "data/z",
               "--vocab", "vocab/z.txt"))
    assert (workdir / "vocab" / "z.txt").read_text().splitlines() == ["0042", "42", "43", "44", "45", "46"]
    # every user watched 42 then 0042: two items, in that order
    assert set((workdir / "data" / "z" / "test.txt").read_text().splitlines()) == {"2 1 3 4 5 6"}
    # the generic path agrees
    _ok(invoke(runner, "preprocess", "interactions", "ratings_42_vs_0042.dat", "--columns", "user,item,rating,time",
               "--name", "zz"))
    assert (workdir / "vocab" / "zz.txt").read_bytes() == (workdir / "vocab" / "z.txt").read_bytes()
    assert (workdir / "data" / "zz" / "test.txt").read_bytes() == (workdir / "data" / "z" / "test.txt").read_bytes()


def test_id_order_rule():
    assert table.id_order(["3", "10", "200", "0"]) == "numeric"
    for ids in (["42", "0042"], ["7", "007"], ["1", "-1"], ["1", "+1"], ["1", "1.0"], ["1", " 1"], ["1", "x"],
                ["1", "12345678901234567890123"]):
        assert table.id_order(ids) == "lexicographic", ids
    codes, ids = table.encode_ids(pd.Series(["10", "9", "10", "100"]))
    assert ids.raw.tolist() == ["9", "10", "100"] and codes.tolist() == [1, 0, 1, 2]
    codes, ids = table.encode_ids(pd.Series(["10", "9", "010", "x-ä", "B0"]))
    assert ids.raw.tolist() == ["010", "10", "9", "B0", "x-ä"] and codes.tolist() == [1, 2, 0, 4, 3]


# ---------------------------------------------------------------- read_sequences (recommend --input FILE)
def test_read_sequences_groups_in_order_of_appearance_and_time(workdir):
    (workdir / "new.csv").write_text(_csv(), encoding="utf-8")
    raw = interactions.read_sequences(workdir / "new.csv")
    assert raw.ids == ["u-17", "u-2", "u-100", "u-9"]
    assert raw.sequences == [
        ["0042", "sku:AB-99", "x-ä", "42"],
        ["sku:AB-99", "42", "0042", "x-ä"],
        ["x-ä", "0042", "sku:AB-99", "rare"],
        ["42", "sku:AB-99"],
    ]
    assert (raw.rows, raw.rows_dropped) == (14, 0)
    assert raw.read["time_format"] == "iso"


def test_read_sequences_defaults_to_the_training_manifest(runner, workdir):
    """Training data from a header-less '::' file with a rating threshold: a new file of the same
    kind needs no options (columns, separator, time format and min rating come from the manifest)."""
    train = [(u, i, "5", str(_utc_ms(t) // 1000)) for u, i, t in ROWS]
    (workdir / "log.dat").write_text(_csv(rows=train, sep="::", header=None))
    _ok(invoke(runner, "preprocess", "interactions", "log.dat", "--columns", "user,item,stars,time",
               "--rating-col", "stars", "--min-rating", "4", *LOO_ARGS))
    data = formats.load_processed(workdir / "data" / "log")
    (workdir / "new.dat").write_text("n-1::sku:AB-99::5::1700000100\nn-2::42::5::1700000000\nn-1::0042::5::1700000000\n"
                                     "n-1::x-ä::2::1700000050\nn-1::nope::5::1700000000\n")
    raw = interactions.read_sequences(workdir / "new.dat", manifest=data.manifest)
    assert raw.ids == ["n-1", "n-2"]
    assert raw.sequences == [["0042", "nope", "sku:AB-99"], ["42"]]  # x-ä rated 2: dropped; ties in file order
    assert raw.rows_dropped == 1
    vocab = formats.read_vocab(data.vocab_file)
    seqs, empty, unknown = interactions.to_index_sequences(raw, vocab)
    assert seqs.to_lists() == [[1, 3], [2]] and empty == [] and unknown == 1
    # the same manifest as a plain dict, and standard input
    stdin = io.BytesIO((workdir / "new.dat").read_bytes())
    again = interactions.read_sequences("-", manifest=_manifest(workdir, "log"), stdin=stdin)
    assert (again.ids, again.sequences) == (raw.ids, raw.sequences)
    # an explicit spec wins: a CSV with a header
    (workdir / "new.csv").write_text("visitor,item,time\nz,42,2024-01-01T00:00:00Z\nz,unknown,2024-01-01T00:00:01Z\n")
    spec = interactions.spec_from_manifest(data.manifest, user_col="visitor", columns=())
    assert (spec.columns, spec.sep, spec.rating_col) == (None, "::", "stars")
    spec = interactions.ReadSpec(user_col="visitor")
    other = interactions.read_sequences(workdir / "new.csv", spec)
    assert other.ids == ["z"] and other.sequences == [["42", "unknown"]]
    seqs, empty, unknown = interactions.to_index_sequences(
        interactions.RawSequences(["a", "b"], [["nope"], ["42"]], {}, 2, 0), vocab
    )
    assert empty == [0] and unknown == 1 and seqs.to_lists() == [[1], [2]]


def test_read_sequences_parquet_and_errors(workdir):
    _parquet(workdir / "new.parquet", session=["s9", "s9", "s1"], item=[7, 8, 7], time=[1_700_000_001, 1_700_000_000, 5])
    raw = interactions.read_sequences(workdir / "new.parquet")
    assert raw.ids == ["s9", "s1"] and raw.sequences == [["8", "7"], ["7"]]
    (workdir / "bad.csv").write_text("user,item,time\nu,i,2024-01-01\nu,j,later\n")
    with pytest.raises(BadInputError) as err:
        interactions.read_sequences(workdir / "bad.csv")
    assert str(err.value).startswith(f"{workdir / 'bad.csv'}:3: bad timestamp 'later' in column 'time'")
    with pytest.raises(MissingInputError):
        interactions.read_sequences(workdir / "absent.csv")
    with pytest.raises(SeqrecError):
        interactions.read_sequences(workdir / "new.parquet", interactions.ReadSpec(user_col="user"))


# ---------------------------------------------------------------- help and start-up
def test_help_names_every_option_and_loads_neither_pandas_nor_pyarrow():
    code = (
        "import sys\n"
        "from seqrec_cli.cli import app\n"
        "for path in ([], ['preprocess'], ['preprocess', 'interactions']):\n"
        "    try:\n"
        "        app([*path, '--help'], prog_name='seqrec')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'pyarrow', 'torch'))\n"
        "assert not heavy, heavy[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for option in ("--split", "--user-col", "--session-col", "--item-col", "--time-col", "--rating-col", "--min-rating",
                   "--columns", "--sep", "--time-format", "--encoding", "--name", "--out-dir", "--vocab",
                   "--min-item-count", "--min-user-count", "--min-session-length", "--min-item-support",
                   "--test-days", "--valid-days"):
        assert option in proc.stdout, option
    assert "interactions" in proc.stdout and "leave-one-out" in proc.stdout and "session-time" in proc.stdout


# ---------------------------------------------------------------- MovieLens 100K / 20M: download, then preprocess
def _movielens_zip(name: str, member: str, text: str) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}/README", "test copy\n")
        zf.writestr(f"{name}/{member}", text)
    return buf.getvalue()


ML_HAND = [line.split("::") for line in ML_HAND_LINES]
MOVIELENS_CASES = {
    "ml-100k": ("u.data", "".join("\t".join(f) + "\n" for f in ML_HAND), "0e33842e24a9c977be4e0107933c0723"),
    "ml-20m": ("ratings.csv", "userId,movieId,rating,timestamp\n" + "".join(f"{u},{m},{r}.5,{t}\n" for u, m, r, t in ML_HAND),
               "cd245b17a1ae2cc31bb14903e1204af3"),
}


@pytest.mark.parametrize("name", list(MOVIELENS_CASES))
def test_movielens_download_then_preprocess(runner, workdir, name):
    """download checks GroupLens' published MD5 (a different archive is refused), takes --checksum,
    and preprocess <name> reads the default path with the ML-1M rules: the same files as preprocess ml-1m."""
    import hashlib

    from httpserver import FileServer

    from seqrec_cli.datasets.sources import SOURCES

    member, text, published = MOVIELENS_CASES[name]
    assert SOURCES[name].md5 == published and SOURCES[name].member == f"{name}/{member}"
    archive = _movielens_zip(name, member, text)
    with FileServer({f"{name}.zip": archive}) as srv:
        refused = invoke(runner, "download", name, "--url", srv.url(f"{name}.zip"))
        assert refused.exit_code == 1 and "md5" in refused.output.lower(), refused.output
        assert not (workdir / "data" / "raw" / name / member).exists()
        got = invoke(runner, "download", name, "--url", srv.url(f"{name}.zip"), "--checksum", hashlib.md5(archive).hexdigest())
    assert got.exit_code == 0, got.output
    assert got.stdout.splitlines()[-1] == f"next: seqrec preprocess {name}"
    lines = _ok(invoke(runner, "preprocess", name))
    assert lines[-1] == f"next: seqrec train bert4rec --train-dir data/{name}"
    (workdir / "ratings.dat").write_text("".join(line + "\n" for line in ML_HAND_LINES))
    _ok(invoke(runner, "preprocess", "ml-1m", "--input", "ratings.dat"))
    for f in ("train.txt", "valid.txt", "test.txt", "users.txt"):
        assert (workdir / "data" / name / f).read_bytes() == (workdir / "data" / "ml-1m" / f).read_bytes(), f
    assert (workdir / "vocab" / f"{name}.txt").read_bytes() == (workdir / "vocab" / "ml-1m.txt").read_bytes()


def test_movielens_missing_input_names_the_download(runner, workdir):
    line = _error_line(invoke(runner, "preprocess", "ml-20m"))
    assert line == "Error: ratings file not found: data/raw/ml-20m/ml-20m/ratings.csv (run: seqrec download ml-20m)"


@pytest.mark.slow
def test_ml100k_real_file(runner, workdir):
    """Acceptance 2's first step: one command preprocesses ML-100K (tab-separated, real timestamps)."""
    u_data = shared_file("movielens-100k", "u.data")
    lines = _ok(invoke(runner, "preprocess", "ml-100k", "--input", u_data))
    assert lines[1:5] == [
        "read: 100,000 interactions, 943 users, 1,682 items",
        "items with at least 5 interactions: 99,287 interactions, 943 users, 1,349 items; dropped 713 interactions, 0 users, 333 items",
        "users with at least 5 interactions: 99,287 interactions, 943 users, 1,349 items; dropped 0 interactions, 0 users, 0 items",
        "leave-one-out: 943 users, 1,349 items, 99,287 interactions (mean length 105.3)",
    ]
    formats.load_processed(workdir / "data" / "ml-100k")
