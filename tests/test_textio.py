"""The one text reader (seqrec_cli.textio): encodings, BOM, line ends, blank lines, JSON, blocks.

Every case is a real file in tmp_path; errors are asserted as the exact text the CLI prints
after ``Error: ``.
"""

from __future__ import annotations

import hashlib
import random

import pytest

from seqrec_cli.errors import BadInputError, MissingInputError
from seqrec_cli.textio import iter_line_blocks, read_json, read_lines, read_text, read_text_bytes

LINES = ["1 2 3", "4", "10 9 8"]


@pytest.mark.parametrize(
    "raw",
    [
        b"1 2 3\n4\n10 9 8\n",
        b"1 2 3\r\n4\r\n10 9 8\r\n",
        b"1 2 3\r4\r10 9 8\r",
        b"\xef\xbb\xbf1 2 3\r\n4\r10 9 8\n",
        b"1 2 3\n4\n10 9 8",
        b"1 2 3\r4\r10 9 8",
        b"1 2 3\n4\n10 9 8\n\n  \n\t\n",
        b"1 2 3\r\n4\r\n10 9 8\r\n\r\n\r\n",
        b"1 2 3\r4\r10 9 8\r\r \r",
    ],
    ids=["lf", "crlf", "cr", "bom-mixed", "no-final-end", "cr-no-final-end", "trailing-blank", "crlf-trailing-blank", "cr-trailing-blank"],
)
def test_every_line_end_gives_the_same_lines(tmp_path, raw):
    path = tmp_path / "f.txt"
    path.write_bytes(raw)
    assert read_lines(path) == LINES
    assert read_text(path).splitlines() == LINES
    assert read_text_bytes(path) in (b"1 2 3\n4\n10 9 8\n", b"1 2 3\n4\n10 9 8")


def test_trailing_blank_lines_keep_the_last_line_whole(tmp_path):
    path = tmp_path / "v.txt"
    path.write_bytes(b"10\n20 \n\n")
    assert read_lines(path) == ["10", "20 "]  # the caller still sees the space of line 2


@pytest.mark.parametrize(
    ("raw", "line"),
    [(b"1 2\n\n3\n", 2), (b"1 2\r\r3\r", 2), (b"1\r\n  \r\n3", 2), (b"\n1\n", 1)],
    ids=["lf", "cr", "crlf-spaces", "first"],
)
def test_blank_line_inside_is_refused_with_its_number(tmp_path, raw, line):
    path = tmp_path / "s.txt"
    path.write_bytes(raw)
    with pytest.raises(BadInputError) as exc:
        read_lines(path, blank="empty line (every line must hold at least one item)")
    assert str(exc.value) == f"{path}:{line}: empty line (every line must hold at least one item)"
    assert read_lines(path, blank=None)[line - 1].strip() == ""


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        (b"abc\nd\xe9f\n", "2: not valid UTF-8 (byte 0xe9 in column 2)"),
        (b"abc\rdef\r\xff\r", "3: not valid UTF-8 (byte 0xff in column 1)"),
        (b"\xef\xbb\xbfok\r\nok\r\nok \xc3\n", "3: not valid UTF-8 (byte 0xc3 in column 4)"),
    ],
    ids=["latin1-e9", "cr-ff", "bom-crlf-truncated"],
)
def test_undecodable_byte_names_file_line_and_column(tmp_path, raw, where):
    path = tmp_path / "u.txt"
    path.write_bytes(raw)
    with pytest.raises(BadInputError) as exc:
        read_text(path)
    assert str(exc.value) == f"{path}:{where}; save the file as UTF-8"


def test_latin1_is_read_where_documented(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_bytes(b"1::caf\xe9\r2::x\r\n")
    assert read_lines(path, encoding="latin-1") == ["1::café", "2::x"]


def test_empty_missing_and_folder(tmp_path):
    (tmp_path / "e.txt").write_bytes(b"\xef\xbb\xbf\r\n \n")
    assert read_lines(tmp_path / "e.txt") == [] and read_text(tmp_path / "e.txt") == ""
    with pytest.raises(MissingInputError) as exc:
        read_text(tmp_path / "nope.txt", what="vocabulary", make_with="seqrec preprocess ml-1m")
    assert str(exc.value) == f"vocabulary not found: {tmp_path / 'nope.txt'} (run: seqrec preprocess ml-1m)"
    with pytest.raises(BadInputError) as exc:
        read_text(tmp_path, what="vocabulary")
    assert str(exc.value) == f"{tmp_path}: is a folder; expected a vocabulary"


# ---------------------------------------------------------------- JSON
def test_json_with_bom_and_any_line_ends(tmp_path):
    path = tmp_path / "p.json"
    path.write_bytes(b'\xef\xbb\xbf{\r  "lr": 0.1,\r\n  "name": "caf\xc3\xa9"\r}')
    assert read_json(path) == {"lr": 0.1, "name": "café"}


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b'{\r"lr": 0.1,\r"layers": }\r', "3: not valid JSON: Expecting value (column 11)"),
        (b'{\n  "lr": 0.1,\n  "dropout": NaN\n}\n', "3: not valid JSON: NaN is not a JSON number (JSON has no NaN or Infinity)"),
        (b'{"a": 1,\n "b": -Infinity}', "2: not valid JSON: -Infinity is not a JSON number (JSON has no NaN or Infinity)"),
        (b'{\n "lr": 0.1,\n "lr": 2\n}', '3: not valid JSON: key "lr" given twice'),
        (b"\r\n\r\n", ": empty file (expected JSON)"),
        (b'{"a": "\xe9"}', "1: not valid UTF-8 (byte 0xe9 in column 8); save the file as UTF-8"),
    ],
    ids=["cr-line-number", "nan", "infinity", "duplicate-key", "empty", "latin1"],
)
def test_bad_json_is_one_error_with_its_line(tmp_path, raw, error):
    path = tmp_path / "config.json"
    path.write_bytes(raw)
    with pytest.raises(BadInputError) as exc:
        read_json(path)
    assert str(exc.value) == f"{path}{'' if error.startswith(':') else ':'}{error}"


def test_json_string_containing_nan_is_fine(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"note": "NaN and Infinity", "x": [1, 2]}')
    assert read_json(path) == {"note": "NaN and Infinity", "x": [1, 2]}


# ---------------------------------------------------------------- blocks
@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_blocks_equal_the_whole_file_reader_at_any_block_edge(tmp_path, block):
    rng = random.Random(block)
    ends = [b"\n", b"\r\n", b"\r"]
    raw = b"\xef\xbb\xbf" + b"".join(
        f"{rng.randrange(10**6)},{rng.randrange(99)}".encode() + rng.choice(ends) for _ in range(200)
    )
    path = tmp_path / "clicks.dat"
    path.write_bytes(raw + b"last,line")
    digest, seen = hashlib.sha256(), []
    blocks = list(iter_line_blocks(path, block=block, digest=digest, progress=seen.append))
    joined = b"".join(b for _, b in blocks)
    assert joined == read_text_bytes(path) + b"\n"
    assert joined.count(b"\n") == 201
    assert all(b.endswith(b"\n") for _, b in blocks)
    line = 1
    for first, b in blocks:  # each block knows the number of its first line
        assert first == line
        line += b.count(b"\n")
    assert digest.hexdigest() == hashlib.sha256(raw + b"last,line").hexdigest()
    assert sum(seen) == len(raw) + len(b"last,line")


def test_blocks_report_an_undecodable_byte_at_its_line(tmp_path):
    path = tmp_path / "clicks.dat"
    path.write_bytes(b"a\rb\r\nc\nd\xff\n")
    with pytest.raises(BadInputError) as exc:
        list(iter_line_blocks(path, block=2))
    assert str(exc.value) == f"{path}:4: not valid UTF-8 (byte 0xff in column 2); save the file as UTF-8"
