"""seqrec recommend --input (issue 12): new users and sessions from raw-id lines or an interaction
file, through the real CLI, after training on a folder made by ``preprocess interactions``.

* Session data with string ids ("s-17", "sku:AB-07") and ISO times in three zones -> GRU4Rec; a
  CSV of new sessions comes back in the original string ids, grouped and ordered by time (the
  same lists as the time-ordered raw-id lines); the Parquet copy and standard input give the same
  bytes; tsv / csv / jsonl; unknown items counted; the popularity fallback by hand; every bad
  input one ``Error:`` line naming file and line or row, nothing written.
* Leave-one-out data from a header-less tab file with a rating rule -> SASRec: a new file of the
  same kind needs --input-format interactions (auto refuses the ambiguity), a header line is
  recognised, a file without the rating column is read without the rule.
* Raw-id lines keep working: the shared text reader's policy (BOM, CRLF), standard input.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import random
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, invoke
from typer.testing import CliRunner

from seqrec_cli.cli import app

GRU = ("--hidden-size", "16", "--n-sample", "16", "--batch-size", "8", "--seed", "3")
SAS = ("--max-len", "16", "--hidden-size", "16", "--heads", "1", "--intermediate-size", "32", "--batch-size", "8")
ZONES = [dt.timezone.utc, dt.timezone(dt.timedelta(hours=2)), dt.timezone(dt.timedelta(hours=-5))]

# new sessions, in file order; unknown items: 'unknown-1', 'nope'; s-9 has no known item.
# '2024-05-01T10:00:00+02:00' is 08:00Z: before u-17's 08:01Z row though written first.
NEW_ROWS = [
    ("u-17", "sku:AB-03", "2024-05-01T10:00:00+02:00"),
    ("u-17", "sku:AB-04", "2024-05-01T08:01:00Z"),
    ("u-9", "nope", "2024-05-01T09:00:00Z"),
    ("u-17", "unknown-1", "2024-05-01T08:30:00Z"),
    ("w,1", "sku:AB-10", "2024-05-01T09:00:00-05:00"),
    ("w,1", "sku:AB-11", "2024-05-01T09:00:00-05:00"),
]
# the same sessions as raw-id lines, each ordered by time (ties in file order), unknown items left in
NEW_LINES = "sku:AB-03 sku:AB-04 unknown-1\nnope\nsku:AB-10 sku:AB-11\n"
NEW_IDS = ["u-17", "u-9", "w,1"]


@contextmanager
def _cwd(path: Path):
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _ok(result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def _error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.output.endswith("\n") and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: "), result.output
    return result.output.rstrip("\n")


def _clicks_csv(path: Path) -> None:
    """300 sessions over 30 items 'sku:AB-00'..'sku:AB-29' (mostly the next item follows), times in three zones."""
    rng = random.Random(7)
    start = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)
    rows = []
    for s in range(300):
        t = start + dt.timedelta(minutes=20 * s)
        k = rng.randrange(30)
        for j in range(rng.randint(2, 6)):
            rows.append((f"s-{s}", f"sku:AB-{k:02d}", t.astimezone(ZONES[(s + j) % 3]).isoformat()))
            k = (k + 1) % 30 if rng.random() < 0.8 else rng.randrange(30)
            t += dt.timedelta(seconds=rng.randint(10, 300))
    rng.shuffle(rows)
    path.write_text("session,item,time\n" + "".join(",".join(r) + "\n" for r in rows), encoding="utf-8")


def _new_csv(rows=NEW_ROWS, header="session,item,time") -> str:
    quote = lambda v: f'"{v}"' if "," in v else v  # noqa: E731
    return header + "\n" + "".join(",".join(quote(v) for v in r) + "\n" for r in rows)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """data/clicks (session-time, string ids) and a GRU4Rec trained on it: model_output/epoch_1."""
    root = tmp_path_factory.mktemp("shop")
    runner = CliRunner()
    with _cwd(root):
        _clicks_csv(root / "clicks.csv")
        _ok(invoke(runner, "preprocess", "interactions", "clicks.csv", "--split", "session-time"))
        _ok(invoke(runner, "train", "gru4rec", "--train-dir", "data/clicks", "--epochs", 1, *GRU))
    return root


@pytest.fixture
def here(shop, workdir):
    """Run from the shop folder (default model_output/), writing new files into the test's own folder."""
    with _cwd(shop):
        yield workdir


def _tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def _popular(shop: Path, k: int) -> list[str]:
    """The k most frequent items of train.txt, ties in vocabulary order, by hand."""
    vocab = (shop / "vocab" / "clicks.txt").read_text(encoding="utf-8").splitlines()
    counts = {}
    for line in (shop / "data" / "clicks" / "train.txt").read_text().split("\n"):
        for tok in line.split():
            counts[int(tok)] = counts.get(int(tok), 0) + 1
    order = sorted(range(1, len(vocab) + 1), key=lambda i: (-counts.get(i, 0), i))
    return [vocab[i - 1] for i in order[:k]]


# ---------------------------------------------------------------- the acceptance 3: a CSV of new sessions
def test_new_sessions_csv_in_string_ids(runner, shop, here):
    (here / "new.csv").write_text(_new_csv(), encoding="utf-8")
    lines = _ok(invoke(runner, "recommend", "--input", here / "new.csv", "--top-k", 5, "--output", here / "r.tsv"))
    assert lines == [
        f"read {here / 'new.csv'}: interactions, text, comma-separated, header line; group by 'session', items 'item', "
        "time 'time' (iso): 6 rows, 3 sequences",
        f"note: 2 of 6 items of {here / 'new.csv'} (2 distinct ids) are not in the vocabulary and were skipped",
        f"model:model_output/epoch_1 top-5 for 3 sequences -> {here / 'r.tsv'}",
        "note: 1 sequence had no known item and got the 5 most popular training items instead (source popularity)",
    ]
    rows = _tsv(here / "r.tsv")
    vocab = set((shop / "vocab" / "clicks.txt").read_text(encoding="utf-8").splitlines())
    assert rows[0] == ["id", "items", "source"]
    assert [r[0] for r in rows[1:]] == NEW_IDS  # the users' own ids, in order of first appearance
    assert [r[2] for r in rows[1:]] == ["model", "popularity", "model"]
    for r in rows[1:]:
        items = r[1].split(" ")
        assert len(items) == 5 == len(set(items)) and set(items) <= vocab, r
    assert rows[2][1].split(" ") == _popular(shop, 5)
    # grouped and ordered by time (zones honoured, unknown items skipped): the same lists as the sorted lines
    (here / "new.txt").write_text(NEW_LINES, encoding="utf-8")
    _ok(invoke(runner, "recommend", "--input", here / "new.txt", "--top-k", 5, "--output", here / "l.tsv"))
    by_lines = _tsv(here / "l.tsv")
    assert by_lines[0] == ["id", "items", "source"] and [r[0] for r in by_lines[1:]] == ["1", "2", "3"]
    assert [r[1:] for r in by_lines[1:]] == [r[1:] for r in rows[1:]]


def test_parquet_and_stdin_give_the_same_file(runner, shop, here):
    (here / "new.csv").write_text(_new_csv(), encoding="utf-8")
    pd.read_csv(here / "new.csv", dtype=str).to_parquet(here / "new.parquet")
    _ok(invoke(runner, "recommend", "--input", here / "new.csv", "--output", here / "csv.tsv"))
    lines = _ok(invoke(runner, "recommend", "--input", here / "new.parquet", "--output", here / "parquet.tsv"))
    assert lines[0].startswith(f"read {here / 'new.parquet'}: interactions, Parquet; group by 'session'")
    result = runner.invoke(
        app,
        ["recommend", "--input", "-", "--output", str(here / "stdin.tsv")],
        input=(here / "new.csv").read_bytes(),
    )
    assert _ok(result)[0].startswith("read <stdin>: interactions, text, comma-separated, header line")
    want = (here / "csv.tsv").read_bytes()
    assert (here / "parquet.tsv").read_bytes() == want == (here / "stdin.tsv").read_bytes()
    # gzip-compressed, through standard input too
    import gzip

    result = runner.invoke(
        app,
        ["recommend", "--input", "-", "--output", str(here / "gz.tsv")],
        input=gzip.compress((here / "new.csv").read_bytes()),
    )
    assert _ok(result)[0].startswith("read <stdin>: interactions, text, comma-separated, header line, gzip")
    assert (here / "gz.tsv").read_bytes() == want


def test_output_formats(runner, shop, here):
    (here / "new.csv").write_text(_new_csv(), encoding="utf-8")
    _ok(invoke(runner, "recommend", "--input", here / "new.csv", "--top-k", 3, "--output", here / "r.tsv"))
    tsv = _tsv(here / "r.tsv")[1:]
    _ok(invoke(runner, "recommend", "--input", here / "new.csv", "--top-k", 3, "--format", "csv", "--output", here / "r.txt"))
    text = (here / "r.txt").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "id,items,source" and '\n"w,1",' in text  # csv quoting of the id with a comma
    assert pd.read_csv(here / "r.txt", dtype=str).values.tolist() == tsv
    # --format from the extension; jsonl always says where each list came from
    _ok(invoke(runner, "recommend", "--input", here / "new.csv", "--top-k", 3, "--output", here / "r.jsonl"))
    records = [json.loads(line) for line in (here / "r.jsonl").read_text(encoding="utf-8").splitlines()]
    assert records == [{"id": i, "items": s.split(" "), "source": src} for i, s, src in tsv]
    # every known item: no source column in tsv / csv, and jsonl still has it
    known = [r for r in NEW_ROWS if r[0] != "u-9"]
    (here / "known.csv").write_text(_new_csv(known), encoding="utf-8")
    _ok(invoke(runner, "recommend", "--input", here / "known.csv", "--top-k", 3, "--output", here / "k.tsv"))
    assert _tsv(here / "k.tsv") == [["id", "items"]] + [[i, s] for i, s, _ in tsv if i != "u-9"]
    _ok(invoke(runner, "recommend", "--input", here / "known.csv", "--top-k", 3, "--format", "jsonl", "--output", "-"))
    result = invoke(runner, "recommend", "--input", here / "known.csv", "--top-k", 3, "--format", "jsonl", "--output", "-")
    assert [json.loads(line)["source"] for line in result.stdout.splitlines()] == ["model", "model"]  # notes on stderr
    assert "top-3 for 2 sequences -> standard output" in result.stderr
    # the default test-split recommendation keeps its two columns
    _ok(invoke(runner, "recommend", "--top-k", 3, "--output", here / "test.tsv"))
    assert _tsv(here / "test.tsv")[0] == ["id", "items"]


def test_unknown_items_and_the_popularity_fallback(runner, shop, here):
    rows = [("a", "sku:AB-01", "2024-05-01T00:00:00Z"), ("a", "x1", "2024-05-01T00:01:00Z"), ("a", "x1", "2024-05-01T00:02:00Z"),
            ("b", "x2", "2024-05-01T00:00:00Z"), ("c", "x3", "2024-05-01T00:00:00Z")]  # fmt: skip
    (here / "new.csv").write_text(_new_csv(rows), encoding="utf-8")
    lines = _ok(invoke(runner, "recommend", "--input", here / "new.csv", "--top-k", 4, "--exclude-seen", "--output", here / "r.tsv"))
    assert lines[1] == f"note: 4 of 5 items of {here / 'new.csv'} (3 distinct ids) are not in the vocabulary and were skipped"
    assert lines[3] == "note: 2 sequences had no known item and got the 4 most popular training items instead (source popularity)"
    rows = _tsv(here / "r.tsv")
    assert rows[1][0] == "a" and rows[1][2] == "model" and "sku:AB-01" not in rows[1][1].split(" ")
    assert rows[2:] == [["b", " ".join(_popular(shop, 4)), "popularity"], ["c", " ".join(_popular(shop, 4)), "popularity"]]


# ---------------------------------------------------------------- bad input: one Error line, nothing written
def _parquet_bad(path: Path) -> None:
    pd.DataFrame({"session": ["a", "a", None], "item": ["sku:AB-01", "sku:AB-02", "sku:AB-03"],
                  "time": ["2024-05-01T00:00:00Z"] * 3}).to_parquet(path)  # fmt: skip


BAD = {
    "bad time": (lambda p: p.write_text("session,item,time\na,sku:AB-01,2024-05-01T00:00:00Z\na,sku:AB-02,later\n"), (),
                 "{f}:3: bad timestamp 'later' in column 'time' (expected ISO-8601 like 2014-04-07T10:51:09.277Z; "
                 "--time-format to say otherwise)"),
    "missing column": (lambda p: p.write_text("session,product,time\na,sku:AB-01,1\n"), ("--input-format", "interactions"),
                       "{f}: no column 'item' (columns found: session, product, time); name it with --item-col"),
    "fields": (lambda p: p.write_text("session,item,time\na,sku:AB-01,2024-05-01T00:00:00Z,extra\n"), (),
               "{f}:2: expected 3 fields separated by commas, found 4"),
    "parquet row": (_parquet_bad, (), "{f}: row 3: missing user id in column 'session'"),
    "ambiguous": (lambda p: p.write_text("a,sku:AB-01,2024-05-01T00:00:00Z\n"), (),
                  "{f}:1: cannot tell whether this is an interaction file without a header or raw-id lines (the first "
                  "line holds a comma, the training data's separator, and names no columns); give --input-format "
                  "interactions or --input-format lines"),
    "blank line": (lambda p: p.write_text("sku:AB-01\n\nsku:AB-02\n"), (),
                   "{f}:2: empty line (every line must hold at least one item id)"),
    "not utf-8": (lambda p: p.write_bytes(b"sku:AB-01\nsku:\xff\n"), (),
                  "{f}:2: not valid UTF-8 (byte 0xff in column 5); save the file as UTF-8"),
    "empty": (lambda p: p.write_text("\n \n"), (), "{f}: empty input file"),
    "parquet as lines": (_parquet_bad, ("--input-format", "lines"),
                         "{f}: a Parquet file, not raw-id lines; give --input-format interactions (or auto)"),
    "missing": (None, (), "input file not found: {f}"),
    "folder": (lambda p: p.mkdir(), (), "{f}: is a folder; expected an input file"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_input_is_one_error_line(runner, shop, here, case):
    make, extra, message = BAD[case]
    f = here / "in.dat"
    if make is not None:
        make(f)
    result = invoke(runner, "recommend", "--input", f, *extra, "--output", here / "r.tsv")
    assert _error_line(result) == "Error: " + message.format(f=f)
    assert not (here / "r.tsv").exists()


def test_option_errors(runner, shop, here):
    assert _error_line(invoke(runner, "recommend", "--item-col", "x")) == (
        "Error: --item-col applies to an interaction file given with --input"
    )
    (here / "in.txt").write_text("sku:AB-01\n")
    assert _error_line(invoke(runner, "recommend", "--input", here / "in.txt", "--input-format", "lines", "--sep", ",")) == (
        "Error: --sep applies to interaction files, not --input-format lines"
    )
    assert _error_line(invoke(runner, "recommend", "--input", here / "in.txt", "--user-col", "a", "--session-col", "b")) == (
        "Error: give --user-col or --session-col, not both"
    )
    assert invoke(runner, "recommend", "--input", here / "in.txt", "--format", "xml").exit_code == 2


def test_reading_options_override_the_manifest(runner, shop, here):
    """Another layout: ';'-separated, other column names, Unix seconds; an option makes auto read interactions."""
    text = "visitor;product;ts\nz;sku:AB-03;1714550400\nz;sku:AB-02;1714550300\n"
    (here / "other.txt").write_text(text)
    lines = _ok(invoke(runner, "recommend", "--input", here / "other.txt", "--session-col", "visitor", "--item-col",
                       "product", "--time-col", "ts", "--sep", ";", "--time-format", "unix-s", "--output", here / "o.tsv"))  # fmt: skip
    assert lines[0] == (
        f"read {here / 'other.txt'}: interactions, text, semicolon-separated, header line; group by 'visitor', items "
        "'product', time 'ts' (unix-s): 2 rows, 1 sequence"
    )
    (here / "z.txt").write_text("sku:AB-02 sku:AB-03\n")
    _ok(invoke(runner, "recommend", "--input", here / "z.txt", "--output", here / "z.tsv"))
    assert _tsv(here / "o.tsv")[1][1:] == _tsv(here / "z.tsv")[1][1:]


# ---------------------------------------------------------------- raw-id lines (today's behaviour) and the text reader
def test_raw_id_lines_through_the_text_reader_and_stdin(runner, shop, here):
    (here / "a.txt").write_text("sku:AB-03 sku:AB-04\nsku:AB-10\n", encoding="utf-8")
    lines = _ok(invoke(runner, "recommend", "--input", here / "a.txt", "--top-k", 4, "--output", here / "a.tsv"))
    assert lines == [f"read {here / 'a.txt'}: raw-id lines: 2 sequences, 3 items",
                     f"model:model_output/epoch_1 top-4 for 2 sequences -> {here / 'a.tsv'}"]  # fmt: skip
    (here / "b.txt").write_bytes(b"\xef\xbb\xbfsku:AB-03\tsku:AB-04\r\nsku:AB-10\r\n\r\n")  # BOM, CRLF, tab, trailing blank
    _ok(invoke(runner, "recommend", "--input", here / "b.txt", "--input-format", "lines", "--top-k", 4, "--output", here / "b.tsv"))
    result = runner.invoke(app,
                           ["recommend", "--input", "-", "--top-k", "4", "--output", "-"], input=b"sku:AB-03 sku:AB-04\rsku:AB-10")  # fmt: skip
    assert result.exit_code == 0, result.output
    want = (here / "a.tsv").read_text(encoding="utf-8")
    assert (here / "b.tsv").read_text(encoding="utf-8") == want == result.stdout
    assert _tsv(here / "a.tsv")[0] == ["id", "items"]


# ---------------------------------------------------------------- header-less training data with a rating rule (u.data-like)
@pytest.fixture(scope="module")
def udata(tmp_path_factory):
    root = tmp_path_factory.mktemp("udata")
    lines = []
    for u in range(1, 21):
        for k in range(8):
            lines.append(f"{u}\t{100 + (u + k) % 12}\t{1 + (u * k) % 5}\t{880000000 + 1000 * u + 10 * k}")
    (root / "u.data").write_text("".join(line + "\n" for line in lines))
    runner = CliRunner()
    with _cwd(root):
        _ok(invoke(runner, "preprocess", "interactions", "u.data", "--columns", "user,item,rating,time", "--rating-col",
                   "rating", "--min-rating", "2", "--min-user-count", "3"))  # fmt: skip
        _ok(invoke(runner, "train", "sasrec", "--train-dir", "data/u", "--epochs", 1, *SAS))
    return root


def test_headerless_training_data(runner, udata, workdir):
    with _cwd(udata):
        (workdir / "new.data").write_text("7\t101\t5\t900000002\n7\t105\t1\t900000001\n7\t103\t4\t900000000\n8\t999\t5\t900000000\n")
        # auto cannot tell a header-less interaction file from raw-id lines separated by tabs
        result = invoke(runner, "recommend", "--input", workdir / "new.data", "--output", workdir / "r.tsv")
        assert _error_line(result).startswith(f"Error: {workdir / 'new.data'}:1: cannot tell whether this is an interaction file")
        lines = _ok(invoke(runner, "recommend", "--input", workdir / "new.data", "--input-format", "interactions",
                           "--output", workdir / "r.tsv"))  # fmt: skip
        assert lines[0] == (
            f"read {workdir / 'new.data'}: interactions, text, tab-separated, columns user,item,rating,time; group by 'user', "
            "items 'item', time 'time' (unix-s): 4 rows (1 below the rating threshold), 2 sequences"
        )
        # the same sessions as lines (rating 1 dropped, time order): 103 101; 999 unknown
        (workdir / "new.txt").write_text("103 101\n999\n")
        _ok(invoke(runner, "recommend", "--input", workdir / "new.txt", "--output", workdir / "l.tsv"))
        assert [r[1:] for r in _tsv(workdir / "r.tsv")[1:]] == [r[1:] for r in _tsv(workdir / "l.tsv")[1:]]
        assert [r[0] for r in _tsv(workdir / "r.tsv")[1:]] == ["7", "8"]
        # a header line naming the columns is recognised; without the rating column the rule is left out, said so
        (workdir / "h.tsv").write_text("user\titem\ttime\n7\t101\t900000002\n7\t103\t900000000\n8\t999\t900000000\n")
        lines = _ok(invoke(runner, "recommend", "--input", workdir / "h.tsv", "--output", workdir / "h.out"))
        assert lines[0] == (
            f"note: {workdir / 'h.tsv'} has no column 'rating': read without the training data's rule 'ratings of at least 2'"
        )
        assert lines[1].startswith(f"read {workdir / 'h.tsv'}: interactions, text, tab-separated, header line;")
        assert _tsv(workdir / "h.out")[1:] == _tsv(workdir / "r.tsv")[1:]


# ---------------------------------------------------------------- the shared cases still pass
@pytest.mark.slow
@pytest.mark.parametrize("case", ["13-single-item-sessions", "14-raw-id-fidelity"])
def test_shared_case_passes(case):
    script = REPO.parent / "shared" / "cases" / case / "run.sh"
    if not script.is_file():
        pytest.skip(f"shared case not present: {script}")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0 and proc.stdout.rstrip().splitlines()[-1].startswith("PASS"), proc.stdout + proc.stderr


def test_recommend_help_loads_no_heavy_module():
    code = (
        "import sys\n"
        "from seqrec_cli.cli import app\n"
        "try:\n"
        "    app(['recommend', '--help'], prog_name='seqrec')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code in (0, None)\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pandas', 'pyarrow', 'torch'))\n"
        "assert not heavy, heavy[:5]\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for option in ("--input-format", "--user-col", "--session-col", "--item-col", "--time-col", "--sep", "--columns",
                   "--time-format", "--format", "--output"):  # fmt: skip
        assert option in proc.stdout, option


def test_auto_rules_without_a_recorded_reading(workdir):
    """Data made by other commands (preprocess ml-1m, text2id) records no reading: the defaults of
    preprocess interactions, and the separators it would try, decide."""
    from seqrec_cli import recommend_input as ri
    from seqrec_cli.errors import BadInputError

    cases = {
        "h.csv": ("user,item,time\n1,10,2024-01-01\n1,20,2024-01-02\n", "interactions"),
        "h.txt": ("session;item;time\ns,10,1\n".replace(",", ";"), "interactions"),
        "l.txt": ("10 20 30\n0042\n", "lines"),
        "colon.txt": ("sku:AB-1 a:b\n", "lines"),  # one ':' is no separator
    }
    for name, (text, kind) in cases.items():
        (workdir / name).write_text(text)
        assert ri.read_input(workdir / name).kind == kind, name
    assert ri.read_input(workdir / "h.csv").sequences == [["10", "20"]]
    assert ri.read_input(workdir / "l.txt").sequences == [["10", "20", "30"], ["0042"]]
    (workdir / "r.dat").write_text("1::1193::5::978300760\n")
    with pytest.raises(BadInputError, match=r"r.dat:1: cannot tell .* \(the first line holds '::', a separator, and names no columns\)"):
        ri.read_input(workdir / "r.dat")
    assert ri.read_input(workdir / "r.dat", "lines").sequences == [["1::1193::5::978300760"]]
    raw = ri.read_input(workdir / "r.dat", "interactions", overrides={"columns": ("user", "item", "rating", "time"), "sep": "::"})
    assert (raw.ids, raw.sequences) == (["1"], [["1193"]])
    assert ri.read_input("-", stdin=io.BytesIO(b"\xef\xbb\xbf7 8\r\n9\r\n")).sequences == [["7", "8"], ["9"]]
