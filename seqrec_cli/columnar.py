"""Large delimited text as typed numpy columns, and numpy columns back to text, with pyarrow.

The fast paths of seqrec's large-file readers and writers (the RSC15 clicks, the filtered event
tables, session and sequence files, ISO-8601 time columns of ``preprocess interactions``).

Reading: :func:`read_text_columns` splits a block of lines into fields with pyarrow's
multithreaded CSV parser (every field kept as text, no quoting, no type guessing); the column
checkers then turn text columns into numpy arrays *only* when every value is in one plain
layout, and return ``None`` otherwise:

* :func:`plain_ints`: ``[0-9]{1,18}`` -> int64;
* :func:`iso_ms`: ``YYYY-MM-DD[T ]hh:mm:ss.sssZ`` (a real calendar time, years 1678-2261) ->
  int64 Unix milliseconds.

A caller that gets ``None`` runs its exact line-by-line scanner on the same lines, which reads
them (a valid but less common layout) or names the first bad line. A fast path therefore never
accepts a line the scanner would refuse, nor reads a value differently: it only skips the
scanner's work when the answer is known.

Writing: :func:`token_lines` (one sequence per line, tokens separated by single spaces) and
:func:`event_rows` (``session<TAB>item<TAB>seconds.mmm``) format whole arrays in C++ and hand
back the bytes, a bounded number of rows at a time, with no Python loop over rows.

Threads (:func:`threads`): ``SEQREC_THREADS`` when set (the thread policy of
:mod:`seqrec_cli.threads`), else the cores this process may run on; pyarrow's pool is sized to
match. Outputs do not depend on the number of threads.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

MAX_DIGITS = 18  # plain integers longer than this are left to the scanner (int64 holds 18 digits)
ISO_LENGTH = 24  # len("2014-04-07T10:51:09.277Z")
# whole years inside pandas' nanosecond range (1677-09-21 .. 2262-04-11); other times go the slow way
_MS_LOW = -9_214_560_000_000  # 1678-01-01T00:00:00Z
_MS_HIGH = 9_214_646_400_000  # 2262-01-01T00:00:00Z (exclusive)
_PARSE_BLOCK = 1 << 20  # bytes per pyarrow parse task (pyarrow runs the tasks on its thread pool)
WRITE_TOKENS = 1 << 18  # tokens (or rows) formatted per chunk of output

T = TypeVar("T")


def threads() -> int:
    """Threads for parsing and formatting: ``SEQREC_THREADS`` when set, else the available cores."""
    from .threads import available_cores

    text = os.environ.get("SEQREC_THREADS", "").strip()
    n = int(text) if text.isdigit() and int(text) > 0 else available_cores()
    if pa.cpu_count() != n:
        pa.set_cpu_count(n)
    return n


# ---------------------------------------------------------------- reading
def read_text_columns(data: bytes, names: Sequence[str], sep: str, use: Sequence[str]) -> list[pa.ChunkedArray] | None:
    """The columns ``use`` of ``data`` as text, or None when a line does not have ``len(names)`` fields.

    ``data``: whole lines with LF line ends, already checked to be UTF-8 (the text reader's
    policy). Fields are split at ``sep`` only (no quoting, no escapes); empty lines are skipped;
    a field is kept exactly as written (no trimming, no null values).
    """
    if not data:
        return [pa.chunked_array([], pa.string()) for _ in use]
    try:
        table = pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(column_names=list(names), block_size=_PARSE_BLOCK, use_threads=threads() > 1),
            parse_options=pacsv.ParseOptions(delimiter=sep, quote_char=False, escape_char=False, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in use},
                include_columns=list(use),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=False,  # checked by the text reader
            ),
        )
    except pa.ArrowException:
        return None  # a line with another number of fields (or anything pyarrow cannot split): the scanner decides
    return [table.column(name) for name in use]


def plain_ints(column: pa.ChunkedArray) -> np.ndarray | None:
    """int64 values when every value is a non-negative integer written plainly (``[0-9]{1,18}``), else None."""
    if len(column) == 0:
        return np.zeros(0, dtype=np.int64)
    if column.null_count:
        return None
    shortest, longest = pc.min_max(pc.binary_length(column)).values()
    if shortest.as_py() < 1 or longest.as_py() > MAX_DIGITS or not pc.all(pc.ascii_is_decimal(column)).as_py():
        return None
    return pc.cast(column, pa.int64()).to_numpy()


def iso_ms(column: pa.ChunkedArray) -> np.ndarray | None:
    """Unix milliseconds (int64) when every value is ``YYYY-MM-DD[T ]hh:mm:ss.sssZ``, else None.

    The layout is checked here (length, the ``.`` and the ``Z``), the digits and the calendar
    (month 1-12, the days of that month, leap years, hour < 24, minute and second < 60) by
    pyarrow's ISO-8601 parser; years outside 1678-2261 are left to the caller's slow path too.
    """
    if len(column) == 0:
        return np.zeros(0, dtype=np.int64)
    if column.null_count:  # a missing value (a pandas column's NaN) is the caller's to name
        return None
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        offsets = _offsets(chunk)
        if not (np.diff(offsets) == ISO_LENGTH).all():
            return None
        text = np.frombuffer(chunk.buffers()[2], dtype=np.uint8, count=ISO_LENGTH * len(chunk), offset=int(offsets[0]))
        text = text.reshape(-1, ISO_LENGTH)
        if not ((text[:, 19] == ord(".")).all() and (text[:, 23] == ord("Z")).all()):
            return None
    try:
        stamps = pc.cast(column, pa.timestamp("ms", tz="UTC"))
    except pa.ArrowException:
        return None
    ms = stamps.cast(pa.int64()).to_numpy()
    if ms.min() < _MS_LOW or ms.max() >= _MS_HIGH:
        return None
    return ms


def release_memory() -> None:
    """Hand the memory pyarrow's pool keeps for reuse back to the system (after a large read or write)."""
    pa.default_memory_pool().release_unused()


# ---------------------------------------------------------------- writing
def _text_of(values: np.ndarray) -> pa.Array:
    """Decimal text of integers (as ``str(int)``), or the strings of an object array as they are."""
    if values.dtype == object:
        return pa.array(values, type=pa.string())
    return pc.cast(pa.array(values, type=pa.int64()), pa.string())


def _with_lf(lines: pa.Array) -> pa.Array:
    """Each value followed by LF (``binary_join_element_wise`` puts its last argument between the others)."""
    return pc.binary_join_element_wise(lines, "", "\n")


def _offsets(strings: pa.Array) -> np.ndarray:
    """The value offsets of a string or large_string array (its own slice of them)."""
    kind = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    size = np.dtype(kind).itemsize
    return np.frombuffer(strings.buffers()[1], dtype=kind, count=len(strings) + 1, offset=size * strings.offset)


def joined_lines(lines: pa.Array) -> pa.Buffer:
    """The values of a string array one after the other (each already ends with its line end)."""
    offsets = _offsets(lines)
    data = lines.buffers()[2]
    if data is None:  # every value empty
        return pa.py_buffer(b"")
    return data.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))


def token_lines(tokens: np.ndarray, offsets: np.ndarray, chunk: int = WRITE_TOKENS) -> Iterator[tuple[pa.Buffer, int]]:
    """Text of the lines ``tokens[offsets[i]:offsets[i+1]]``, tokens separated by one space, each
    line ended by LF (an empty line for an empty sequence); yields (bytes, tokens written) about
    ``chunk`` tokens at a time, whole lines only, in order (formatted by :func:`in_order`'s
    threads). ``tokens``: int64, or an object array of str."""
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    cuts = [0]
    while cuts[-1] < n:
        line = cuts[-1]
        end = int(np.searchsorted(offsets, offsets[line] + chunk, side="right")) - 1  # last line that fits
        cuts.append(min(max(end, line + 1), n))

    def lines(line: int, end: int) -> tuple[pa.Buffer, int]:
        start, stop = int(offsets[line]), int(offsets[end])
        words = _text_of(tokens[start:stop])
        lists = pa.ListArray.from_arrays(pa.array(offsets[line : end + 1] - start, type=pa.int32()), words)
        return joined_lines(_with_lf(pc.binary_join(lists, " "))), stop - start

    return in_order(partial(lines, a, z) for a, z in zip(cuts, cuts[1:]))


def event_rows(
    session: np.ndarray, item: np.ndarray, time_ms: np.ndarray, chunk: int = WRITE_TOKENS
) -> Iterator[tuple[pa.Buffer, int]]:
    """Text of the rows ``session<TAB>item<TAB>seconds``, seconds = ``time_ms / 1000`` with 3
    decimals exactly as ``"%.3f"`` writes it, each row ended by LF; yields (bytes, rows) ``chunk``
    rows at a time, in order (formatted by :func:`in_order`'s threads)."""
    for lines, rows in event_lines(session, item, time_ms, chunk):
        yield joined_lines(lines), rows


def event_lines(
    session: np.ndarray, item: np.ndarray, time_ms: np.ndarray, chunk: int = WRITE_TOKENS
) -> Iterator[tuple[pa.Array, int]]:
    """:func:`event_rows` as string arrays, one line (with its LF) per row, for
    :func:`take_lines` to pick subsets from and :func:`joined_lines` to turn into bytes.

    Times outside 0 .. 10^15 ms (where the float ``"%.3f"`` formats could differ from the exact
    decimal) are formatted by Python, one row at a time, to stay byte-identical.
    """

    def rows(a: int, z: int) -> tuple[pa.Array, int]:
        ms = time_ms[a:z]
        if ms.min() < 0 or ms.max() >= 10**15:
            values = zip(session[a:z].tolist(), item[a:z].tolist(), (ms / 1000).tolist())
            return pa.array(list(map("%d\t%d\t%.3f\n".__mod__, values)), type=pa.string()), z - a
        stamp = pc.binary_join_element_wise(_text_of(ms // 1000), _fraction_lf(ms % 1000), "")
        return pc.binary_join_element_wise(_text_of(session[a:z]), _text_of(item[a:z]), stamp, "\t"), z - a

    n = len(session)
    return in_order(partial(rows, a, min(a + chunk, n)) for a in range(0, n, chunk))


def take_lines(lines: pa.Array, mask: np.ndarray) -> pa.Array:
    """The lines where ``mask`` (bool, one per line) holds, in order."""
    return pc.filter(lines, pa.array(mask, type=pa.bool_()))


def _fraction_lf(ms: np.ndarray) -> pa.Array:
    """``.mmm`` and LF for each value of ``ms`` (0..999), as a string array of fixed width 5."""
    n = len(ms)
    text = np.empty((5, n), dtype=np.uint8)  # one row per character, transposed at the end
    text[0] = ord(".")
    text[1] = ms // 100 + ord("0")
    text[2] = ms // 10 % 10 + ord("0")
    text[3] = ms % 10 + ord("0")
    text[4] = ord("\n")
    offsets = np.arange(0, 5 * n + 1, 5, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(text.T))])


def in_order(tasks: Iterable[Callable[[], T]], workers: int | None = None) -> Iterator[T]:
    """The results of ``tasks`` in order, computed by ``workers`` threads (default: :func:`threads`),
    at most ``workers`` results ahead of the consumer.

    pyarrow's kernels, numpy's, hashing and file writes release the GIL, so chunks of output are
    formatted side by side while the caller hashes and writes the previous one.
    """
    workers = workers or min(threads(), 4)
    tasks = iter(tasks)
    if workers == 1:
        for task in tasks:
            yield task()
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="seqrec-format") as pool:
        pending: deque[Future[T]] = deque()
        try:
            for task in tasks:
                pending.append(pool.submit(task))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
    release_memory()
