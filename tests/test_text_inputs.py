"""Issue 11, kind 1: every text file seqrec reads goes through one reader with one policy
(UTF-8 or the documented Latin-1, BOM, LF/CRLF/lone CR, trailing blank lines ignored, an
undecodable byte is ``Error: <file>:<line>: ...``), driven through the real CLI on real files.

Case 07 (../shared/cases/07-session-line-ends) is the first test, with the same inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke, listing
from helpers import CASES, error_line, ratings_text, reseal, snapshot

from seqrec_cli import formats

BOM = b"\xef\xbb\xbf"


def _variants(lf: bytes) -> dict[str, bytes]:
    return {"lf": lf, "crlf_bom": BOM + lf.replace(b"\n", b"\r\n"), "cr": lf.replace(b"\n", b"\r")}


# ---------------------------------------------------------------- case 07: text2id on LF, CRLF+BOM and lone-CR files
def test_case07_session_files_with_any_line_end_give_the_same_data(runner, workdir):
    train = _variants((CASES / "07" / "train_lf.txt").read_bytes())
    test = _variants((CASES / "07" / "test_lf.txt").read_bytes())
    for v in train:
        Path(f"train_{v}.txt").write_bytes(train[v])
        Path(f"test_{v}.txt").write_bytes(test[v])
        result = invoke(runner, "preprocess", "text2id", "--train", f"train_{v}.txt", "--test", f"test_{v}.txt", "--name", v)
        assert result.exit_code == 0, result.output
        assert "train: 80 sessions, 326 events" in result.stdout.splitlines(), result.output
    for v in ("crlf_bom", "cr"):
        for name in ("train.txt", "test.txt"):
            assert (workdir / "data" / v / name).read_bytes() == (workdir / "data" / "lf" / name).read_bytes()
        assert (workdir / "vocab" / f"{v}.txt").read_bytes() == (workdir / "vocab" / "lf.txt").read_bytes()
    assert len(formats.read_sequences(workdir / "data" / "cr" / "train.txt")) == 80
    assert len(formats.read_sequences(workdir / "data" / "cr" / "test.txt")) == 20


# ---------------------------------------------------------------- other files, other commands
def test_ratings_with_lone_cr_line_ends_give_the_same_data(runner, workdir):
    lf = ratings_text().encode("latin-1")
    for v, data in _variants(lf).items():
        Path(f"r_{v}.dat").write_bytes(data + b"\r\n\r\n" if v == "crlf_bom" else data)  # trailing blank lines too
        result = invoke(runner, "preprocess", "ml-1m", "--input", f"r_{v}.dat", "--out-dir", f"d_{v}", "--vocab", f"v_{v}.txt")
        assert result.exit_code == 0, result.output
    for v in ("crlf_bom", "cr"):
        for name in ("train.txt", "valid.txt", "test.txt", "users.txt"):
            assert (workdir / f"d_{v}" / name).read_bytes() == (workdir / "d_lf" / name).read_bytes(), (v, name)
        assert (workdir / f"v_{v}.txt").read_bytes() == (workdir / "v_lf.txt").read_bytes()


def test_filtered_table_with_lone_cr_line_ends_converts_the_same(runner, workdir):
    rows = b"SessionId\tItemId\tTime\n10\t5\t3.5\n9\t7\t2\n10\t6\t1.25\n9\t8\t2\n9\t1\t1.999\n10\t5\t3.5\n"
    for v, data in _variants(rows).items():
        Path(f"in_{v}").mkdir()
        Path(f"in_{v}/x.tsv").write_bytes(data)
        result = invoke(runner, "preprocess", "convert-format", "--in-dir", f"in_{v}", "--out-dir", f"out_{v}", "--splits", "x")
        assert result.exit_code == 0, result.output
        assert (workdir / f"out_{v}" / "x.txt").read_text() == "1 7 8\n6 5 5\n"


@pytest.mark.parametrize(
    ("where", "content", "expected"),
    [
        ("test", b"1 2\n2 1\n1 \xe92\n", "test.txt:3: not valid UTF-8 (byte 0xe9 in column 3); save the file as UTF-8"),
        ("train", b"1 2\r2 1\r\xff\r", "train.txt:3: not valid UTF-8 (byte 0xff in column 1); save the file as UTF-8"),
        ("test", b"1 2\n\n2 1\n", "test.txt:2: empty line (every line must hold at least one item)"),
    ],
    ids=["latin1-byte", "cr-ff", "blank-inside"],
)
def test_undecodable_or_blank_session_line_is_one_error_and_nothing_is_written(runner, workdir, where, content, expected):
    Path("train.txt").write_bytes(b"1 2\n2 1\n")
    Path("test.txt").write_bytes(b"1 2\n2 1\n")
    Path(f"{where}.txt").write_bytes(content)
    line = error_line(invoke(runner, "preprocess", "text2id", "--train", "train.txt", "--test", "test.txt"))
    assert line == f"Error: {expected}"
    assert listing(workdir) == ["test.txt", "train.txt"]


def test_undecodable_ratings_line_is_latin1_not_an_error(runner, workdir):
    """MovieLens is documented Latin-1: every byte decodes, so a stray 0xE9 is a bad field, not an encoding error."""
    text = ratings_text().splitlines()
    text[3] = "1::4\xe90::3::978300003"
    Path("r.dat").write_bytes(("\n".join(text) + "\n").encode("latin-1"))
    line = error_line(invoke(runner, "preprocess", "ml-1m", "--input", "r.dat", "--out-dir", "d", "--vocab", "v.txt"))
    assert line == "Error: r.dat:4: MovieID is not an integer (plain non-negative digits): '4é0'"
    assert listing(workdir) == ["r.dat"]


@pytest.fixture
def processed(runner, workdir) -> Path:
    Path("r.dat").write_text(ratings_text())
    result = invoke(runner, "preprocess", "ml-1m", "--input", "r.dat", "--out-dir", "d", "--vocab", "v.txt")
    assert result.exit_code == 0, result.output
    return workdir / "d"


def test_processed_split_with_an_undecodable_byte_is_one_error(runner, processed):
    path = processed / "test.txt"
    lines = path.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b" ", b" \xc3", 1)  # a truncated UTF-8 sequence
    path.write_bytes(b"\n".join(lines))
    reseal(processed, "test.txt")  # the manifest agrees: only the reader can object
    before = snapshot(processed)
    line = error_line(invoke(runner, "evaluate", "--baseline", "popularity", "--test-dir", "d"))
    assert line == f"Error: {Path('d/test.txt')}:2: not valid UTF-8 (byte 0xc3 in column 3); save the file as UTF-8"
    assert snapshot(processed) == before


def test_users_and_vocabulary_with_lone_cr_read_as_lines(processed):
    users = (processed / "users.txt").read_text().splitlines()
    (processed / "users.txt").write_bytes(b"\r".join(u.encode() for u in users) + b"\r\r")
    reseal(processed, "users.txt")
    vocab = (processed.parent / "v.txt").read_bytes()
    (processed.parent / "v.txt").write_bytes(BOM + vocab.replace(b"\n", b"\r"))
    manifest = json.loads((processed / "manifest.json").read_text())
    manifest["vocab_sha256"] = formats.sha256_file(processed.parent / "v.txt")
    (processed / "manifest.json").write_text(json.dumps(manifest))
    data = formats.load_processed(processed)
    assert data.users == users
    assert formats.read_vocab(data.vocab_file) == vocab.decode().splitlines()


def test_manifest_with_bom_and_crlf_loads_and_nan_is_refused_at_its_line(runner, processed):
    text = (processed / "manifest.json").read_text()
    (processed / "manifest.json").write_bytes(BOM + text.replace("\n", "\r\n").encode())
    result = invoke(runner, "evaluate", "--baseline", "popularity", "--test-dir", "d")
    assert result.exit_code == 0, result.output
    lines = text.splitlines()
    no = next(i for i, line in enumerate(lines, start=1) if '"n_items"' in line)
    lines[no - 1] = '  "n_items": NaN,'
    (processed / "manifest.json").write_text("\n".join(lines))
    line = error_line(invoke(runner, "evaluate", "--baseline", "popularity", "--test-dir", "d"))
    assert line == (
        f"Error: {Path('d/manifest.json')}:{no}: not valid JSON: NaN is not a JSON number (JSON has no NaN or Infinity)"
    )


def test_download_record_read_with_the_reader(runner, workdir):
    """SOURCE.json written with CRLF line ends and a BOM (an editor's save) still marks a complete download."""
    from seqrec_cli.datasets.download import read_source_record

    Path("raw").mkdir()
    Path("raw/SOURCE.json").write_bytes(BOM + b'{\r\n  "kind": "raw-source",\r\n  "dataset": "ml-1m"\r\n}\r\n')
    assert read_source_record(Path("raw")) == {"kind": "raw-source", "dataset": "ml-1m"}
    Path("raw/SOURCE.json").write_bytes(b'{"kind": "raw-source", "kind": "x"}')
    assert read_source_record(Path("raw")) is None  # unreadable: the download is redone, never trusted
