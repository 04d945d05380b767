"""seqrec_cli.columnar: the column checkers accept one plain layout only; the writers give the
bytes Python's formatting gives; textio.read_ahead keeps order, errors and early stops."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from seqrec_cli import columnar
from seqrec_cli.textio import read_ahead


def _col(values: list[str]) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(values[:2], pa.string()), pa.array(values[2:], pa.string())])


# ---------------------------------------------------------------- reading
def test_read_text_columns_keeps_fields_verbatim_and_refuses_other_field_counts():
    names = ["a", "b", "c"]
    cols = columnar.read_text_columns(b'1, x ,"q"\n\n4,,z\n', names, ",", ["a", "b", "c"])
    assert [c.to_pylist() for c in cols] == [["1", "4"], [" x ", ""], ['"q"', "z"]]
    assert columnar.read_text_columns(b"1,2,3\n4,5\n", names, ",", ["a"]) is None
    assert columnar.read_text_columns(b"1,2,3\n4,5,6,7\n", names, ",", ["a"]) is None
    assert columnar.read_text_columns(b"1,2,3\n \n", names, ",", ["a"]) is None  # a space is not a blank line here
    assert [len(c) for c in columnar.read_text_columns(b"\n\n", names, ",", ["a", "b"])] == [0, 0]
    assert [len(c) for c in columnar.read_text_columns(b"", names, ",", ["a"])] == [0]


def test_plain_ints():
    got = columnar.plain_ints(_col(["0", "7", "123456789012345678", "0042"]))
    assert got.dtype == np.int64 and got.tolist() == [0, 7, 123456789012345678, 42]
    for bad in ["", "-1", "-0", "+1", " 1", "1 ", "0x1", "1.0", "1e3", "1234567890123456789", "\u0663", "1_0"]:
        assert columnar.plain_ints(_col(["1", "2", bad])) is None, bad
    assert columnar.plain_ints(pa.chunked_array([], pa.string())).tolist() == []


def _ms(text: str) -> int:
    when = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.timezone.utc)
    return round(when.timestamp() * 1000)


def test_missing_values_are_left_to_the_caller():
    assert columnar.plain_ints(pa.chunked_array([pa.array(["1", None, "3"])])) is None
    stamps = pa.array(["2014-04-07T10:51:09.277Z", None, "2014-04-07T10:51:09.278Z"])
    assert columnar.iso_ms(pa.chunked_array([stamps])) is None
    large = pa.chunked_array([pa.array(["2014-04-07T10:51:09.277Z"] * 3, type=pa.large_string())])
    assert columnar.iso_ms(large).tolist() == [_ms("2014-04-07T10:51:09.277Z")] * 3


def test_iso_ms_reads_the_common_layout_exactly():
    texts = ["2014-04-07T10:51:09.277Z", "2012-02-29T23:59:59.999Z", "1970-01-01T00:00:00.000Z",
             "1969-12-31T23:59:59.999Z", "1678-01-01T00:00:00.000Z", "2261-12-31T23:59:59.999Z"]
    assert columnar.iso_ms(_col(texts)).tolist() == [_ms(t) for t in texts]
    assert columnar.iso_ms(_col(["2014-04-07 10:51:09.277Z"] * 3)).tolist() == [_ms("2014-04-07T10:51:09.277Z")] * 3


@pytest.mark.parametrize("text", [
    "2014-04-31T10:51:09.277Z",  # no 31 April
    "2014-02-29T10:51:09.277Z",  # 2014 is no leap year
    "2014-13-07T10:51:09.277Z", "2014-00-07T10:51:09.277Z", "2014-04-00T10:51:09.277Z",
    "2014-04-07T24:00:00.000Z", "2014-04-07T23:60:00.000Z", "2014-04-07T23:59:60.000Z",
    "2014-04-07t10:51:09.277Z", "2014-04-07T10:51:09.277z", "2014-04-07X10:51:09.277Z",
    "2014-04-07T10:51:09.27Z", "2014-04-07T10:51:09.2770Z", "2014-04-07T10:51:09Z",
    "2014-04-07T10:51:09.277", "2014-04-07T10:51:09.277+00:00", "2014-04-07T10:51:09.2+02",
    "2014-04-07T10:51+02:00.0Z", "2014-04-07", " 2014-04-07T10:51:09.27Z", "2014-04-07T10:51:09.27 Z",
    "1677-12-31T23:59:59.999Z", "2262-01-01T00:00:00.000Z", "0000-01-01T00:00:00.000Z",
    "2014-04-0aT10:51:09.277Z", "+014-04-07T10:51:09.277Z",
])
def test_iso_ms_leaves_everything_else_to_the_scanner(text):
    assert columnar.iso_ms(_col(["2014-04-07T10:51:09.277Z", "2014-04-07T10:51:09.278Z", text])) is None


# ---------------------------------------------------------------- writing
def _bytes(chunks) -> bytes:
    return b"".join(bytes(text) for text, _ in chunks)


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20])
def test_event_rows_are_percent_formatting(chunk):
    rng = np.random.default_rng(3)
    n = 200
    session = np.sort(rng.integers(0, 10**18, n))
    item = rng.integers(0, 10**12, n)
    ms = rng.integers(0, 4_102_444_800_000, n)
    ms[:6] = [0, 1, 999, 1000, 1001, 10**15 - 1]
    want = "".join("%d\t%d\t%.3f\n" % (s, i, t / 1000) for s, i, t in zip(session.tolist(), item.tolist(), ms.tolist()))
    assert _bytes(columnar.event_rows(session, item, ms, chunk)) == want.encode()
    odd = np.array([-1, -999, -1000, -1001, 10**15, 9 * 10**18], dtype=np.int64)  # Python formats these
    want = "".join("%d\t%d\t%.3f\n" % (1, 2, t / 1000) for t in odd.tolist())
    assert _bytes(columnar.event_rows(np.ones(6, np.int64), np.full(6, 2), odd, chunk)) == want.encode()
    assert _bytes(columnar.event_rows(*(np.zeros(0, np.int64) for _ in range(3)))) == b""


@pytest.mark.parametrize("chunk", [1, 3, 1 << 20])
def test_token_lines_are_space_joined_lines(chunk):
    seqs = [[5, 3, 10], [], [7], [1, 2, 3, 4, 5, 6, 7, 8], [], [0, 123456789012345678]]
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in seqs])])
    tokens = np.array([t for s in seqs for t in s], dtype=np.int64)
    want = "".join(" ".join(map(str, s)) + "\n" for s in seqs).encode()
    chunks = list(columnar.token_lines(tokens, offsets, chunk))
    assert _bytes(chunks) == want
    assert sum(n for _, n in chunks) == len(tokens)
    words = np.array(["b10", "a2", "x-ä", "007"], dtype=object)
    assert _bytes(columnar.token_lines(words, np.array([0, 2, 2, 4]), chunk)) == "b10 a2\n\nx-ä 007\n".encode()
    assert _bytes(columnar.token_lines(np.zeros(0, np.int64), np.array([0]))) == b""


def test_in_order_keeps_order_and_raises_at_the_failing_task():
    def task(k: int):
        def run() -> int:
            if k == 5:
                raise ValueError("five")
            return k * k
        return run

    assert list(columnar.in_order((task(k) for k in range(5)), workers=3)) == [0, 1, 4, 9, 16]
    got = []
    with pytest.raises(ValueError, match="five"):
        for value in columnar.in_order((task(k) for k in range(9)), workers=2):
            got.append(value)
    assert got == [0, 1, 4, 9, 16]
    assert list(columnar.in_order((task(k) for k in range(3)), workers=1)) == [0, 1, 4]


# ---------------------------------------------------------------- textio.read_ahead
def test_read_ahead_order_errors_and_early_stop():
    assert list(read_ahead(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield 1
        yield 2
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for value in read_ahead(failing()):
            got.append(value)
    assert got == [1, 2]

    closed = []

    def endless():
        try:
            k = 0
            while True:
                yield k
                k += 1
        finally:
            closed.append(True)

    ahead = read_ahead(endless())
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()  # the caller stops early: the producer stops and closes its generator
    assert closed == [True]
