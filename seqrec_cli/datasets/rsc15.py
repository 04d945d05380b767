"""RSC15 (YOOCHOOSE clicks) preprocessing, as the official GRU4Rec ``examples/rsc15/preprocess.py``.

Three stages, each usable on its own (the ``seqrec preprocess`` commands are thin wrappers):

1. :func:`read_clicks` -> :func:`filter_sessions` -> :func:`write_events_tsv` (``session-filter``):
   raw ``yoochoose-clicks.dat`` -> ``train_full``/``test``/``train_tr``/``train_valid`` event tables,
   following docs/protocols.md §3, steps 2-7, exactly and in order.
2. :func:`read_events_tsv` -> :func:`sessions_from_events` -> :func:`write_token_lines`
   (``convert-format``): one session per line, raw item ids in time order.
3. :func:`read_token_lines` -> :func:`text2id` (``text2id``): vocabulary from the training lines
   only, every split mapped through it, unknown items dropped and counted.

The raw clicks are read a block of lines at a time: pyarrow splits the fields and every value is
checked to be in the file's usual layout (:func:`_fast_clicks`, :mod:`seqrec_cli.columnar`);
a block with any other line goes through the exact scanner (one regular expression per line,
pandas ``read_csv`` / ``to_datetime``), which reads the valid layouts and names the first bad
line, so both paths accept and read exactly the same. The rules are applied with numpy, and the
tables and session files are formatted by pyarrow kernels a chunk at a time (each row of
train_full once, for its subsets train_tr and train_valid too), with no Python loop over events:
the full 33M-line clicks file takes well under a minute and a few GB (docs/benchmarks.md).

Time is kept as integer Unix milliseconds, read as **UTC** (the official script used
``time.mktime``, i.e. the local time zone of the machine that ran it; only differences of times
matter, and integer milliseconds make the 86,400 s split boundary exact).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BadInputError, SeqrecError
from ..fileio import atomic_path
from ..textio import ProgressLater, iter_line_blocks, read_ahead, read_text_bytes

# ---------------------------------------------------------------- the official rules (docs/protocols.md §3)
MIN_SESSION_LENGTH = 2  # steps 2 and 4: a session needs more than 1 event (>= 2)
MIN_ITEM_SUPPORT = 5  # step 3: an item needs at least 5 events
SPLIT_WINDOW_MS = 86_400_000  # steps 5 and 7: sessions ending in the final day (86,400 s) are held out
MIN_TEST_SESSION_LENGTH = 2  # steps 6 and 7: held-out sessions left with fewer events are dropped

TSV_HEADER = ("SessionId", "ItemId", "Time")  # filtered event tables: SessionId<TAB>ItemId<TAB>Time
CLICK_FIELDS = "SessionId,Timestamp,ItemId,Category"

READ_BLOCK = 32 << 20  # bytes of raw clicks parsed at a time
WRITE_ROWS = 1 << 18  # rows (tokens for session lines) formatted at a time when writing text
MAX_DIGITS = 18  # integer ids longer than this are refused (int64 range)

Log = Callable[[str], None]
Progress = Callable[[int], None]


def _noop(*_: Any) -> None:
    return None


# ---------------------------------------------------------------- events
@dataclass
class Events:
    """Click events as three parallel arrays, normally sorted by session, then time (stable)."""

    session: np.ndarray  # int64 [n] raw session ids
    item: np.ndarray  # int64 [n] raw item ids
    time: np.ndarray  # int64 [n] Unix time in milliseconds (UTC)
    ordered: bool = False  # known to be sorted by session, then time

    def __len__(self) -> int:
        return len(self.session)

    def take(self, index: np.ndarray) -> Events:
        """A subset; a boolean mask keeps the order (and the ``ordered`` flag)."""
        keeps_order = self.ordered and index.dtype == bool
        return Events(self.session[index], self.item[index], self.time[index], keeps_order)

    def sorted(self) -> Events:
        """Sorted by session id, then time; ties keep their current (file) order."""
        if not (self.ordered or _is_sorted(self.session, self.time)):
            order = np.lexsort((self.time, self.session))  # lexsort is stable
            return Events(self.session[order], self.item[order], self.time[order], True)
        return Events(self.session, self.item, self.time, True)

    def session_starts(self) -> np.ndarray:
        """Index of the first event of each session (events must be sorted)."""
        if len(self.session) == 0:
            return np.zeros(0, dtype=np.int64)
        change = np.empty(len(self.session), dtype=bool)
        change[0] = True
        np.not_equal(self.session[1:], self.session[:-1], out=change[1:])
        return np.flatnonzero(change)


def _is_sorted(session: np.ndarray, time: np.ndarray) -> bool:
    if len(session) < 2:
        return True
    before, after = session[:-1], session[1:]
    if not (after >= before).all():
        return False
    return bool(((time[1:] >= time[:-1]) | (after != before)).all())


def _run_lengths(starts: np.ndarray, n: int) -> np.ndarray:
    return np.diff(starts, append=n)


def _n_distinct(codes: np.ndarray, n: int) -> int:
    """Distinct values among ``codes`` (integers in 0..n-1)."""
    present = np.zeros(n, dtype=bool)
    present[codes] = True
    return int(np.count_nonzero(present))


# ---------------------------------------------------------------- reading raw clicks
_ID = rb"[0-9]{1,18}"  # a non-negative int64 written plainly
# ISO-8601 as YOOCHOOSE writes it, fraction and zone optional (no zone = UTC); pandas checks the calendar
_TIMESTAMP = rb"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
_CLICK = _ID + b"," + _TIMESTAMP + b"," + _ID + rb",[^,\n]*"  # SessionId,Timestamp,ItemId,Category
# the newline before the first line that is neither a click nor blank (line ends are LF by now)
_BAD_LINE = re.compile(rb"\n(?!(?:" + _CLICK + rb")?(?:\n|\Z))")


def read_clicks(path: Path | str, progress: Progress = _noop, digest: Any = None) -> Events:
    """Parse a raw ``yoochoose-clicks.dat`` (no header) into events sorted by session, then time.

    Fields: ``SessionId,Timestamp,ItemId,Category``; the category is ignored. Session and item ids
    must be non-negative integers; timestamps ISO-8601 (``2014-04-07T10:51:09.277Z``; ``T`` or a
    space, fraction and zone optional, no zone = UTC). CRLF line ends and a UTF-8 BOM are
    accepted (read with :func:`seqrec_cli.textio.iter_line_blocks`: UTF-8, BOM, LF/CRLF/lone-CR line
    ends), blank lines are skipped anywhere (a click's line carries no meaning of its own). The
    first bad line raises :class:`BadInputError` with its line number. ``progress`` is called with
    bytes read; ``digest`` (a hashlib object), if given, is updated with every byte of the file.

    Each block of lines is read by the fast path (:func:`_fast_clicks`: pyarrow splits the fields,
    every value is checked to be in the file's usual layout) and, only when some line is not, by
    the exact scanner (:func:`_scan_clicks`: one regular expression per line, pandas for the
    values), which reads a valid block in a less usual layout and names the first bad line of
    any other. Both give the same values for every line the fast path accepts. The next block is
    read, checked and hashed in a background thread while this one is parsed.
    """
    from ..columnar import release_memory

    path = Path(path)
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    read = ProgressLater(progress)  # bytes counted by the reading thread, reported from this one
    blocks = iter_line_blocks(path, block=READ_BLOCK, progress=read, digest=digest, what="clicks file")
    for first_line, block in read_ahead(blocks):
        clicks = _fast_clicks(block)
        parts.append(clicks if clicks is not None else _scan_clicks(path, first_line, block))
        del block
        read.report()
    release_memory()  # what pyarrow's pool kept from parsing the blocks
    if not any(len(p[0]) for p in parts):
        raise BadInputError(path, "empty file (no clicks)", line=1)
    session, item, time = (np.concatenate(column) for column in zip(*parts))
    del parts
    return Events(session, item, time).sorted()


_CLICK_NAMES = CLICK_FIELDS.split(",")


def _fast_clicks(block: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(session, item, Unix ms) of every click of ``block`` when each line has 4 fields, plain
    integer ids (``[0-9]{1,18}``) and a timestamp ``YYYY-MM-DD[T ]hh:mm:ss.sssZ`` of a real
    calendar time (see :mod:`seqrec_cli.columnar`); None when any line is otherwise."""
    from .. import columnar

    columns = columnar.read_text_columns(block, _CLICK_NAMES, ",", _CLICK_NAMES[:3])
    if columns is None:
        return None
    session = columnar.plain_ints(columns[0])
    item = columnar.plain_ints(columns[2]) if session is not None else None
    ms = columnar.iso_ms(columns[1]) if item is not None else None
    if ms is None:
        return None
    return session, item, ms


def _scan_clicks(path: Path, first_line: int, block: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact scanner of a block: every line matched against the click pattern, the values read
    by pandas; raises :class:`BadInputError` at the first bad line (``first_line`` numbers the block's first)."""
    bad = _BAD_LINE.search(b"\n" + block)
    good = block if bad is None else block[: bad.start()]
    table = pd.read_csv(
        io.BytesIO(good),
        header=None,
        names=_CLICK_NAMES,
        usecols=[0, 1, 2],
        dtype={"SessionId": np.int64, "Timestamp": str, "ItemId": np.int64},
        na_filter=False,  # the line pattern has checked every field
        quoting=csv.QUOTE_NONE,
        engine="c",
    )
    when = _parse_times(table["Timestamp"])
    unreadable = when.isna().to_numpy()
    if unreadable.any():
        row = int(np.argmax(unreadable))
        line = first_line + _nonblank_lines(good)[row]
        raise BadInputError(path, _bad_timestamp(table["Timestamp"].iloc[row]), line=line)
    if bad is not None:
        line = first_line + good.count(b"\n")
        raise BadInputError(path, _click_problem(block[bad.start() :].partition(b"\n")[0]), line=line)
    ms = when.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)  # floors
    return table["SessionId"].to_numpy(), table["ItemId"].to_numpy(), ms


def _parse_times(text: pd.Series) -> pd.Series:
    """ISO-8601 text -> UTC datetimes (no zone = UTC); NaT where unreadable."""
    return pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")


def _nonblank_lines(block: bytes) -> list[int]:
    """0-based line numbers of the non-blank lines of a block (the rows pandas reads)."""
    return [k for k, line in enumerate(block.split(b"\n")) if line]


def _bad_timestamp(text: str) -> str:
    return f"bad timestamp {text!r} (expected ISO-8601 like 2014-04-07T10:51:09.277Z)"


def _click_problem(line: bytes) -> str:
    """What is wrong with a line that is neither a click nor blank."""
    fields = line.split(b",")
    if len(fields) != 4:
        return f"expected 4 comma-separated fields ({CLICK_FIELDS}), found {len(fields)}"
    session, timestamp, item, _ = (f.decode("utf-8", errors="replace") for f in fields)
    if not re.fullmatch(_ID, fields[0]):
        return f"SessionId is not a non-negative integer: {session!r}"
    if not re.fullmatch(_TIMESTAMP, fields[1]) or _parse_times(pd.Series([timestamp])).isna().any():
        return _bad_timestamp(timestamp)
    if not re.fullmatch(_ID, fields[2]):
        return f"ItemId is not a non-negative integer: {item!r}"
    return "unreadable line"  # pragma: no cover - the checks above name every way a line can fail


# ---------------------------------------------------------------- the filter (docs/protocols.md §3, steps 2-7)
@dataclass(frozen=True)
class SessionSplitParams:
    """The thresholds of the RSC15 rules; the defaults are the official script's.

    ``seqrec preprocess session-filter`` / ``yoochoose`` use the defaults; ``seqrec preprocess
    interactions --split session-time`` exposes each one as an option.
    """

    min_session_length: int = MIN_SESSION_LENGTH  # steps 2 and 4; steps 6-7 clean held-out sessions to it too
    min_item_support: int = MIN_ITEM_SUPPORT  # step 3
    test_window_ms: int = SPLIT_WINDOW_MS  # step 5: sessions ending in the final window are test
    valid_window_ms: int = SPLIT_WINDOW_MS  # step 7: the same inside train_full (0: no train_tr / train_valid)

    def __post_init__(self) -> None:
        if self.min_session_length < 2:
            raise ValueError("a session needs at least 2 events to hold a prediction")
        if self.min_item_support < 1 or self.test_window_ms <= 0 or self.valid_window_ms < 0:
            raise ValueError(f"invalid session split parameters: {self}")


@dataclass
class FilterResult:
    splits: dict[str, Events]  # train_full, test and (with a validation window) train_tr, train_valid
    counts: dict[str, dict[str, int]]  # events, sessions, items of each split
    steps: list[dict[str, Any]] = field(default_factory=list)  # what each rule left
    # split -> (parent split, bool mask over the parent's rows): the split is exactly those rows of
    # its parent, in order (train_tr and train_valid within train_full), so its text is a subset of
    # the parent's lines (write_event_tables formats the rows once)
    subsets: dict[str, tuple[str, np.ndarray]] = field(default_factory=dict)


class EmptyResultError(SeqrecError):
    """A rule left nothing; the message names the rule."""


def _window_text(ms: int) -> str:
    return f"{ms / 1000:,.0f} s" if ms % 1000 == 0 else f"{ms / 1000:,.3f} s"


def filter_sessions(
    events: Events, log: Log = _noop, params: SessionSplitParams = SessionSplitParams(), *, consume: bool = False
) -> FilterResult:
    """Apply the official GRU4Rec RSC15 rules, in order, to click events.

    Source: GRU4Rec ``examples/rsc15/preprocess.py`` (Hidasi et al.), docs/protocols.md §3; the
    numbers are ``params`` (defaults: the script's). 2. keep sessions with more than 1 event
    (``min_session_length``); 3. keep items with at least 5 events (``min_item_support``); 4. keep
    sessions with at least 2 events (one pass); 5. sessions whose last event is at or after
    tmax - 86,400 s (``test_window_ms``) are ``test``, the rest ``train_full``; 6. drop test events
    whose item is not in train_full, then test sessions left with fewer than 2 events; 7. split
    train_full the same way (with its own tmax, ``valid_window_ms``; skipped when 0) into
    ``train_tr`` and ``train_valid``. Every split comes out sorted by session id, then time (ties
    in input order). A rule of steps 2-4 that leaves no event, or a split that leaves train_full
    empty, raises :class:`EmptyResultError` naming it; an empty train_tr or held-out split is the
    caller's to judge (:func:`check_train_tr`; ``steps`` says what each rule dropped).

    ``consume=True`` hands ``events`` over: its arrays are dropped here (``events`` is left
    empty), so that the raw clicks are freed once the rows that pass steps 2-4 are copied instead
    of being held beside every split (a caller that has no further use for them saves a copy of
    the input at the peak).
    """
    ev = events.sorted()
    if consume:
        events.session = events.item = events.time = np.zeros(0, dtype=np.int64)
    starts = ev.session_starts()
    lengths = _run_lengths(starts, len(ev))
    n_sessions = len(lengths)
    run = np.repeat(np.arange(n_sessions, dtype=_index_type(n_sessions)), lengths)  # session number of each event
    codes, uniques = pd.factorize(ev.item)  # item number of each event
    n_items = len(uniques)
    codes = codes.astype(_index_type(n_items))
    steps: list[dict[str, Any]] = []
    min_len = params.min_session_length

    def record(rule: str, keep: np.ndarray) -> None:
        c = {
            "events": int(np.count_nonzero(keep)),
            "sessions": int(np.count_nonzero(np.logical_or.reduceat(keep, starts))) if len(keep) else 0,
            "items": _n_distinct(codes[keep], n_items),
        }
        steps.append({"rule": rule, **c})
        log(f"{rule}: {c['events']} events, {c['sessions']} sessions, {c['items']} items")
        if c["events"] == 0:
            raise EmptyResultError(f"no events left after {rule}")

    keep = np.ones(len(ev), dtype=bool)
    record("read", keep)
    keep = np.repeat(lengths >= min_len, lengths)
    record(f"step 2: sessions with more than {min_len - 1} event{'s' if min_len > 2 else ''}", keep)
    keep &= (np.bincount(codes[keep], minlength=n_items) >= params.min_item_support)[codes]
    record(f"step 3: items with at least {params.min_item_support} events", keep)
    keep &= (np.bincount(run[keep], minlength=n_sessions) >= min_len)[run]
    record(f"step 4: sessions with at least {min_len} events", keep)
    del run
    ev, codes = ev.take(keep), codes[keep]
    del keep

    window = _window_text(params.test_window_ms)
    train_full, train_codes, test, test_codes, info = _time_split(ev, codes, n_items, params.test_window_ms, min_len)
    del ev, codes
    rule = f"steps 5-6: test = sessions ending in the last {window}"
    steps.append({"rule": rule, **info})
    log(
        f"steps 5-6: tmax {info['tmax']:.3f}, boundary {info['boundary']:.3f}; "
        f"test: {info['unknown_events_dropped']} events with items not in train_full dropped, "
        f"then {info['short_sessions_dropped']} sessions under {min_len} events"
    )
    if len(train_full) == 0:
        raise EmptyResultError(f"every session ends in the final {window}: nothing left for train_full")
    splits = {"train_full": (train_full, train_codes), "test": (test, test_codes)}
    if params.valid_window_ms > 0:
        window = _window_text(params.valid_window_ms)
        rows: dict[str, np.ndarray] = {}
        train_tr, tr_codes, valid, valid_codes, info = _time_split(
            train_full, train_codes, n_items, params.valid_window_ms, min_len, rows
        )
        subsets = {"train_tr": ("train_full", rows["kept"]), "train_valid": ("train_full", rows["held"])}
        rule = f"step 7: train_valid = train_full sessions ending in its last {window}"
        steps.append({"rule": rule, **info})
        log(
            f"step 7: tmax {info['tmax']:.3f}, boundary {info['boundary']:.3f}; "
            f"train_valid: {info['unknown_events_dropped']} events with items not in train_tr dropped, "
            f"then {info['short_sessions_dropped']} sessions under {min_len} events"
        )
        splits["train_tr"] = (train_tr, tr_codes)
        splits["train_valid"] = (valid, valid_codes)
    counts = {
        name: {"events": len(e), "sessions": len(e.session_starts()), "items": _n_distinct(c, n_items)}
        for name, (e, c) in splits.items()
    }
    return FilterResult({name: e for name, (e, _) in splits.items()}, counts, steps, subsets if params.valid_window_ms > 0 else {})


def _index_type(n: int) -> type:
    """The narrowest of int32 / int64 that numbers ``n`` things (halves the memory of codes)."""
    return np.int32 if n < 2**31 else np.int64


def check_train_tr(result: FilterResult, params: SessionSplitParams) -> None:
    """Raise :class:`EmptyResultError` when step 7 left train_tr empty (for a caller that trains on it)."""
    if "train_tr" in result.splits and len(result.splits["train_tr"]) == 0:
        window = _window_text(params.valid_window_ms)
        raise EmptyResultError(f"every train_full session ends in its final {window}: nothing left for train_tr")


def _time_split(
    ev: Events,
    codes: np.ndarray,
    n_items: int,
    window_ms: int = SPLIT_WINDOW_MS,
    min_length: int = MIN_TEST_SESSION_LENGTH,
    rows: dict[str, np.ndarray] | None = None,
) -> tuple[Events, np.ndarray, Events, np.ndarray, dict[str, Any]]:
    """Hold out the sessions whose last event is in the final window; clean the held-out part.

    Returns (kept events, their item codes, held-out events, their item codes, counts). With
    ``rows`` (a dict), also puts there which rows of ``ev`` each part is: ``kept`` and ``held``,
    bool masks over ``ev``.
    """
    starts = ev.session_starts()
    lengths = _run_lengths(starts, len(ev))
    last_time = ev.time[starts + lengths - 1]  # sorted by time within a session: the maximum
    tmax = int(ev.time.max())
    boundary = tmax - window_ms
    held_session = last_time >= boundary
    held = np.repeat(held_session, lengths)
    train, train_codes = ev.take(~held), codes[~held]
    test, test_codes = ev.take(held), codes[held]

    in_train = np.zeros(n_items, dtype=bool)
    in_train[train_codes] = True
    known = in_train[test_codes]
    test, test_codes = test.take(known), test_codes[known]
    t_lengths = _run_lengths(test.session_starts(), len(test))
    long_enough = np.repeat(t_lengths >= min_length, t_lengths)
    test, test_codes = test.take(long_enough), test_codes[long_enough]
    if rows is not None:
        rows["kept"] = ~held
        rows["held"] = np.zeros(len(ev), dtype=bool)
        rows["held"][np.flatnonzero(held)[known][long_enough]] = True
    n_held = int(np.count_nonzero(held_session))
    info = {
        "tmax": tmax / 1000,
        "boundary": boundary / 1000,
        "sessions_held_out": n_held,
        "unknown_events_dropped": int(np.count_nonzero(~known)),
        # sessions left with fewer than min_length events (including those that lost every event)
        "short_sessions_dropped": n_held - int(np.count_nonzero(t_lengths >= min_length)),
    }
    return train, train_codes, test, test_codes, info


# ---------------------------------------------------------------- writing text
def _write_text(dest: Path, chunks: Iterable[bytes], staged: Path | None = None) -> dict[str, Any]:
    """Write bytes atomically (renamed into place when complete), or into ``staged`` (a temporary
    path of :func:`seqrec_cli.fileio.staged_files`, put in place by its commit); returns the
    record of ``dest``: path, bytes, sha256."""
    sha, size = hashlib.sha256(), 0
    with contextlib.ExitStack() as stack:
        target = staged if staged is not None else stack.enter_context(atomic_path(dest))
        with open(target, "wb") as fh:
            for data in chunks:
                sha.update(data)
                fh.write(data)
                size += len(data)
    return {"path": str(dest), "bytes": size, "sha256": sha.hexdigest()}


def write_events_tsv(
    path: Path | str, ev: Events, progress: Progress = _noop, staged: Path | None = None
) -> dict[str, Any]:
    """Write ``SessionId<TAB>ItemId<TAB>Time`` (Time in seconds with 3 decimals) atomically (or
    into ``staged``, see :func:`_write_text`); returns its record (path, bytes, sha256).

    The text is what ``"%d\\t%d\\t%.3f\\n" % (session, item, ms / 1000)`` gives for each row
    (``%.3f`` of milliseconds / 1000 is exact: the float is within 1e-6 s of the true value),
    formatted a block of rows at a time by :func:`seqrec_cli.columnar.event_rows`.
    """
    return write_event_tables([(Path(path), staged, None)], ev, progress)[0]


def write_event_tables(
    tables: list[tuple[Path, Path | None, np.ndarray | None]],
    ev: Events,
    progress: Progress = _noop,
    writing: Callable[[Path], None] = _noop,
) -> list[dict[str, Any]]:
    """Write several event tables whose rows are subsets of ``ev``'s, formatting each row once.

    ``tables``: (destination, staged path or None, bool mask over ``ev``'s rows or None for all
    of them), each written as :func:`write_events_tsv` writes the table of those rows (the same
    bytes), side by side; returns their records in the same order. ``progress`` counts rows of
    ``ev``; ``writing`` is told the destination about to be written (``StagedFiles.writing``, so
    that a full disk names the file that did not fit).
    """
    from .. import columnar

    header = ("\t".join(TSV_HEADER) + "\n").encode("ascii")
    sinks: list[_Sink] = []
    try:
        for dest, staged, _ in tables:
            sinks.append(_Sink(dest, staged, writing))
        for sink in sinks:
            sink.write(header)
        done = 0
        for text, rows in columnar.event_lines(ev.session, ev.item, ev.time, WRITE_ROWS):
            for sink, (_, _, mask) in zip(sinks, tables):
                sink.write(columnar.joined_lines(text if mask is None else columnar.take_lines(text, mask[done : done + rows])))
            done += rows
            progress(rows)
        return [sink.commit() for sink in sinks]
    except BaseException:
        _close_all(sinks, sys.exc_info())
        raise


class _Sink:
    """One output of :func:`write_event_tables`: a temporary file renamed into place by
    :meth:`commit` (or ``staged``, put in place by its stage), hashed as it goes, written
    unbuffered so that an error surfaces at the write of this file."""

    def __init__(self, dest: Path, staged: Path | None, writing: Callable[[Path], None]):
        self.dest, self.writing, self.failed = dest, writing, False
        self.stack = contextlib.ExitStack()
        try:
            target = staged if staged is not None else self.stack.enter_context(atomic_path(dest))
            self.fh = self.stack.enter_context(open(target, "wb", buffering=0))
        except BaseException:
            self.stack.__exit__(*sys.exc_info())  # removes the temporary file; may name the error better
            raise
        self.sha, self.size = hashlib.sha256(), 0

    def write(self, data: Any) -> None:
        self.writing(self.dest)
        self.failed = True  # until the bytes are all written
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.size += len(view)
        while view:
            view = view[self.fh.write(view) :]
        self.failed = False

    def commit(self) -> dict[str, Any]:
        self.writing(self.dest)
        self.failed = True
        self.stack.close()  # closes the file; atomic_path renames it into place
        self.failed = False
        return {"path": str(self.dest), "bytes": self.size, "sha256": self.sha.hexdigest()}


def _close_all(sinks: list[_Sink], exc_info: Any) -> None:
    """After an error: close every sink (their temporary files removed); raise the error as the
    sink that failed reports it (a full disk naming that file), else as the first does."""
    errors = []
    for sink in sinks:
        try:
            sink.stack.__exit__(*exc_info)
        except BaseException as exc:  # noqa: BLE001 - raised below, the failing file's first
            errors.append((sink.failed, exc))
    if errors:
        raise next((exc for failed, exc in errors if failed), errors[0][1])


# ---------------------------------------------------------------- reading filtered tables
def read_events_tsv(path: Path | str, digest: Any = None) -> Events:
    """Read a ``SessionId<TAB>ItemId<TAB>Time`` table (header required; other columns ignored).

    Read a block at a time with :func:`seqrec_cli.textio.iter_line_blocks` (UTF-8, BOM, any line
    ends); blank lines are skipped. The result is sorted by session id, then time (ties keep the
    file order). The first bad line raises :class:`BadInputError` with its line number.
    ``digest`` (a hashlib object), if given, is updated with every byte of the file.
    """
    path = Path(path)
    header: list[str] | None = None
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for first_line, block in iter_line_blocks(path, block=READ_BLOCK, digest=digest, what="table"):
        if header is None:
            head, _, block = block.partition(b"\n")
            header = _tsv_header(path, head)
            first_line += 1
        if not block.strip():
            continue
        try:
            df = pd.read_csv(
                io.BytesIO(block),
                sep="\t",
                header=None,
                names=header,
                usecols=list(TSV_HEADER),
                dtype={"SessionId": np.int64, "ItemId": np.int64, "Time": np.float64},
                engine="c",
                quoting=csv.QUOTE_NONE,
            )
            if not np.isfinite(df["Time"]).all() or (df["SessionId"] < 0).any() or (df["ItemId"] < 0).any():
                raise ValueError("negative id or non-finite time")
        except (ValueError, OverflowError, pd.errors.ParserError) as exc:
            _raise_first_bad_tsv_line(path, header, block, first_line, exc)
            raise  # pragma: no cover - the scan raises
        time_ms = np.rint(df["Time"].to_numpy() * 1000).astype(np.int64)
        parts.append((df["SessionId"].to_numpy(), df["ItemId"].to_numpy(), time_ms))
    if header is None:
        raise BadInputError(path, "empty file (expected the header SessionId<TAB>ItemId<TAB>Time)", line=1)
    if not parts:
        return Events(*(np.zeros(0, dtype=np.int64) for _ in range(3)), ordered=True)
    session, item, time = (np.concatenate(column) for column in zip(*parts))
    return Events(session, item, time).sorted()


def _tsv_header(path: Path, head: bytes) -> list[str]:
    if not head.strip():
        raise BadInputError(path, "empty file (expected the header SessionId<TAB>ItemId<TAB>Time)", line=1)
    header = head.decode("utf-8").split("\t")
    missing = [c for c in TSV_HEADER if c not in header]
    if missing:
        raise BadInputError(
            path, f"header must name SessionId, ItemId and Time (tab-separated); missing {', '.join(missing)}", line=1
        )
    if len(set(header)) != len(header):
        raise BadInputError(path, "header names a column twice", line=1)
    return header


_INT_RE = re.compile(r"\+?\d+")


def _raise_first_bad_tsv_line(path: Path, header: list[str], block: bytes, first_line: int, exc: Exception) -> None:
    """The error path of :func:`read_events_tsv`: find the first bad line of a block and say what is wrong."""
    cols = {name: header.index(name) for name in TSV_HEADER}
    for no, raw in enumerate(block.split(b"\n"), start=first_line):
        if not raw:
            continue
        fields = raw.decode("utf-8").split("\t")
        if len(fields) != len(header):
            raise BadInputError(path, f"expected {len(header)} tab-separated fields, found {len(fields)}", line=no)
        for name in ("SessionId", "ItemId"):
            v = fields[cols[name]]
            if not _INT_RE.fullmatch(v.strip()) or int(v) >= 2**63:
                raise BadInputError(path, f"{name} is not a non-negative integer: {v!r}", line=no)
        v = fields[cols["Time"]]
        try:
            ok = np.isfinite(float(v))
        except ValueError:
            ok = False
        if not ok:
            raise BadInputError(path, f"Time is not a number of seconds: {v!r}", line=no)
    raise BadInputError(path, f"cannot read the table ({exc})")


# ---------------------------------------------------------------- sessions (one per line)
@dataclass
class TokenLines:
    """Lines of whitespace-separated raw tokens: ``tokens[offsets[i]:offsets[i+1]]`` is line i.

    ``tokens`` is int64 when every token of the file is a plain decimal integer (no sign, no
    leading zero), else an object array of str.
    """

    tokens: np.ndarray
    offsets: np.ndarray  # int64 [n_lines + 1]
    path: Path | None = None
    record: dict[str, Any] | None = None  # path, bytes, sha256 once written

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def is_int(self) -> bool:
        return self.tokens.dtype != object

    def as_str(self) -> TokenLines:
        if not self.is_int:
            return self
        return TokenLines(self.tokens.astype(str).astype(object), self.offsets, self.path)

    def counts(self) -> dict[str, int]:
        return {"sessions": len(self), "events": len(self.tokens), "items": len(pd.unique(self.tokens))}


def sessions_from_events(ev: Events, path: Path | None = None) -> TokenLines:
    """One line per session (in order of session id), its items in time order (ties stable)."""
    ev = ev.sorted()
    return TokenLines(ev.item, np.append(ev.session_starts(), len(ev)), path)


def write_token_lines(
    path: Path | str, lines: TokenLines, progress: Progress = _noop, staged: Path | None = None
) -> dict[str, Any]:
    """Write one line per sequence, tokens separated by single spaces, atomically (or into
    ``staged``, see :func:`_write_text`); formatted by :func:`seqrec_cli.columnar.token_lines`."""
    from .. import columnar

    def chunks() -> Iterator[Any]:
        for text, tokens in columnar.token_lines(lines.tokens, lines.offsets, WRITE_ROWS):
            yield text
            progress(tokens)

    return _write_text(Path(path), chunks(), staged)


def read_token_lines(path: Path | str) -> TokenLines:
    """Read one sequence per line (whitespace-separated tokens) with the text reader
    (:mod:`seqrec_cli.textio`: UTF-8, BOM, LF/CRLF/lone-CR line ends, trailing blank lines
    ignored). A blank line before the last is an error at its line.
    """
    path = Path(path)
    data = read_text_bytes(path, what="sessions file")
    if not data.strip():
        raise BadInputError(path, "empty file (no sessions)", line=1)
    lines = data.removesuffix(b"\n").split(b"\n")
    lengths = np.array([len(line.split()) for line in lines], dtype=np.int64)
    if (lengths == 0).any():
        first_empty = int(np.argmin(lengths)) + 1
        raise BadInputError(path, "empty line (every line must hold at least one item)", line=first_empty)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    words = np.array(data.split())  # bytes, fixed width
    try:
        tokens = words.astype(np.int64)
        # integers only if every token is the plain decimal text of its value (no sign, no leading zero)
        plain = (tokens >= 0) & (tokens.astype(words.dtype) == words)
        is_int = words.dtype.itemsize <= MAX_DIGITS and bool(plain.all())
    except (ValueError, OverflowError):
        is_int = False
    if not is_int:
        tokens = np.array([w.decode("utf-8") for w in data.split()], dtype=object)
    return TokenLines(tokens, offsets, path)


# ---------------------------------------------------------------- text2id
@dataclass
class MappedSplit:
    sequences: Any  # formats.Sequences of item indices
    counts: dict[str, Any]


@dataclass
class Text2IdResult:
    vocab: list[str]  # raw ids; element i-1 is the raw id of item index i
    order: str  # "numeric" or "lexicographic"
    splits: dict[str, MappedSplit]


def text2id(train: TokenLines, others: dict[str, TokenLines]) -> Text2IdResult:
    """Build the vocabulary from ``train`` only and map every split through it.

    Item indices are 1..N in sorted raw-id order (numeric when every token of every input is an
    integer, else lexicographic); 0 is padding. In the other splits unknown items are dropped and
    counted, then sessions left with fewer than 2 items are dropped and counted.
    """
    from ..formats import Sequences

    inputs = {"train": train, **others}
    if all(t.is_int for t in inputs.values()):
        order = "numeric"
    else:
        inputs = {k: t.as_str() for k, t in inputs.items()}
        order = "lexicographic"
    vocab = pd.Index(np.sort(pd.unique(inputs["train"].tokens)))
    out: dict[str, MappedSplit] = {}
    for name, lines in inputs.items():
        idx = vocab.get_indexer(lines.tokens).astype(np.int64) + 1  # 0 = unknown
        lengths = lines.lengths
        n_lines = len(lines)
        if name == "train":
            out[name] = MappedSplit(
                Sequences(idx, lines.offsets),
                {"sessions": n_lines, "events": int(len(idx)), "short_sessions": int((lengths < 2).sum())},
            )
            continue
        known = idx > 0
        line_of = np.repeat(np.arange(n_lines), lengths)
        is_target = np.arange(len(idx)) > lines.offsets[line_of]  # every position but the first
        targets = int(np.count_nonzero(is_target))
        unknown_events = int((~known).sum())
        unknown_targets = int((~known & is_target).sum())
        new_len = np.bincount(line_of[known], minlength=n_lines)
        keep_line = new_len >= MIN_TEST_SESSION_LENGTH
        seqs = Sequences(idx[known & keep_line[line_of]], np.concatenate([[0], np.cumsum(new_len[keep_line])]))
        counts = {
            "input_sessions": n_lines,
            "input_events": int(len(idx)),
            "input_targets": targets,
            "unknown_events_dropped": unknown_events,
            "unknown_events_share": unknown_events / len(idx) if len(idx) else 0.0,
            "unknown_targets": unknown_targets,
            "unknown_targets_share": unknown_targets / targets if targets else 0.0,
            "short_sessions_dropped": int(n_lines - keep_line.sum()),
            "sessions": len(seqs),
            "events": seqs.n_events,
            "targets": int(seqs.n_events - len(seqs)),
        }
        out[name] = MappedSplit(seqs, counts)
    return Text2IdResult([str(v) for v in vocab.tolist()], order, out)
