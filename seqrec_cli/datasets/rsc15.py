"""RSC15 (YOOCHOOSE clicks) preprocessing, as the official GRU4Rec ``examples/rsc15/preprocess.py``.

Three stages, each usable on its own (the ``seqrec preprocess`` commands are thin wrappers):

1. :func:`read_clicks` -> :func:`filter_sessions` -> :func:`write_events_tsv` (``session-filter``):
   raw ``yoochoose-clicks.dat`` -> ``train_full``/``test``/``train_tr``/``train_valid`` event tables,
   following docs/PROTOCOLS.md section 3, steps 2-7, exactly and in order.
2. :func:`read_events_tsv` -> :func:`sessions_from_events` -> :func:`write_token_lines`
   (``convert-format``): one session per line, raw item ids in time order.
3. :func:`read_token_lines` -> :func:`text2id` (``text2id``): vocabulary from the training lines
   only, every split mapped through it, unknown items dropped and counted.

Everything is vectorised with numpy, with no Python loop over events, so that the full
33M-line clicks file is handled on a small machine: the raw file is parsed from bytes in small
blocks (fixed-width windows over the bytes of each field), and text is written by laying every
row out as 4-byte words of digits (from lookup tables, NUL-padded) and squeezing the NULs out.

Time is kept as integer Unix milliseconds, read as **UTC** (the official script used
``time.mktime``, i.e. the local time zone of the machine that ran it; only differences of times
matter, and integer milliseconds make the 86,400 s split boundary exact).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import BadInputError, SeqrecError
from ..fileio import atomic_path

# ---------------------------------------------------------------- the official rules (PROTOCOLS.md section 3)
MIN_SESSION_LENGTH = 2  # steps 2 and 4: a session needs more than 1 event (>= 2)
MIN_ITEM_SUPPORT = 5  # step 3: an item needs at least 5 events
SPLIT_WINDOW_MS = 86_400_000  # steps 5 and 7: sessions ending in the final day (86,400 s) are held out
MIN_TEST_SESSION_LENGTH = 2  # steps 6 and 7: held-out sessions left with fewer events are dropped

TSV_HEADER = ("SessionId", "ItemId", "Time")  # filtered event tables: SessionId<TAB>ItemId<TAB>Time
CLICK_FIELDS = "SessionId,Timestamp,ItemId,Category"

READ_BLOCK = 512 << 10  # bytes of raw clicks parsed at a time (small blocks stay in the CPU cache)
WRITE_ROWS = 1 << 15  # rows formatted at a time when writing text (small: stays in the CPU cache)
PARSE_TOKENS = 1 << 15  # tokens decoded at a time when reading session lines
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

    def is_sorted(self) -> bool:
        """True if ordered by session id, then time."""
        return self.ordered or _is_sorted(self.session, self.time)

    def sorted(self) -> Events:
        """Sorted by session id, then time; ties keep their current (file) order."""
        if self.is_sorted():
            return Events(self.session, self.item, self.time, True)
        order = np.lexsort((self.time, self.session))  # lexsort is stable
        return Events(self.session[order], self.item[order], self.time[order], True)

    def session_starts(self) -> np.ndarray:
        """Index of the first event of each session (events must be sorted)."""
        return _run_starts(self.session)

    def counts(self) -> dict[str, int]:
        return {"events": len(self), "sessions": len(self.session_starts()), "items": _n_unique(self.item)}


def _is_sorted(session: np.ndarray, time: np.ndarray) -> bool:
    if len(session) < 2:
        return True
    ds = np.diff(session)
    if (ds < 0).any():
        return False
    return not ((ds == 0) & (np.diff(time) < 0)).any()


def _run_starts(keys: np.ndarray) -> np.ndarray:
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))


def _run_lengths(starts: np.ndarray, n: int) -> np.ndarray:
    return np.diff(np.append(starts, n))


def _n_unique(values: np.ndarray) -> int:
    if len(values) == 0:
        return 0
    import pandas as pd

    return len(pd.unique(values))


# ---------------------------------------------------------------- parsing raw clicks
_TS_LEN = 24  # 2014-04-07T10:51:09.277Z
_TS_SEPARATORS = {4: ord("-"), 7: ord("-"), 10: ord("T"), 13: ord(":"), 16: ord(":"), 19: ord("."), 23: ord("Z")}
_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?"
)
_BOM = b"\xef\xbb\xbf"


def read_clicks(path: Path | str, progress: Progress = _noop, digest: Any = None) -> Events:
    """Parse a raw ``yoochoose-clicks.dat`` (no header) into events sorted by session, then time.

    Fields: ``SessionId,Timestamp,ItemId,Category``; the category is ignored. Session and item ids
    must be non-negative integers; timestamps ISO-8601 (``2014-04-07T10:51:09.277Z``; no zone =
    UTC). CRLF line ends and a UTF-8 BOM are accepted, blank lines are skipped. The first bad line
    raises :class:`BadInputError` with its line number. ``progress`` is called with bytes read;
    ``digest`` (a hashlib object), if given, is updated with every byte of the file. The file is
    read in small blocks into one reused buffer (no copy of the text is kept).
    """
    path = Path(path)
    sessions: list[np.ndarray] = []
    items: list[np.ndarray] = []
    times: list[np.ndarray] = []
    ordered = True
    last: tuple[int, int] | None = None  # (session, time) of the previous block's last event
    line_no = 1  # number of the first line of the next block
    buf = np.zeros(_PAD + 2 * READ_BLOCK + _PAD, dtype=np.uint8)
    have = 0  # bytes of an unfinished line carried at buf[_PAD : _PAD + have]
    first = True
    with open(path, "rb", buffering=0) as fh:
        while True:
            if _PAD + have + READ_BLOCK + _PAD > len(buf):  # a line longer than a block: grow
                bigger = np.zeros(2 * len(buf), dtype=np.uint8)
                bigger[: len(buf)] = buf
                buf = bigger
            got = fh.readinto(memoryview(buf)[_PAD + have : _PAD + have + READ_BLOCK])
            if digest is not None:
                digest.update(memoryview(buf)[_PAD + have : _PAD + have + got])
            progress(got)
            if first:
                first = False
                if bytes(buf[_PAD : _PAD + 3]) == _BOM and got >= 3:
                    buf[_PAD : _PAD + got - 3] = buf[_PAD + 3 : _PAD + got].copy()
                    got -= 3
            total = have + got
            if got == 0:  # end of file: the last line may lack its newline
                if total == 0:
                    break
                if buf[_PAD + total - 1] != 10:
                    buf[_PAD + total] = 10
                    total += 1
                cut = total
            else:
                newlines = np.flatnonzero(buf[_PAD + have : _PAD + total] == 10)
                if len(newlines) == 0:
                    have = total
                    continue
                cut = have + int(newlines[-1]) + 1
            s, i, t, n_lines = _parse_click_block(buf, _PAD, _PAD + cut, path, line_no)
            line_no += n_lines
            if len(s):
                if ordered:
                    ordered = _is_sorted(s, t) and (
                        last is None or s[0] > last[0] or (s[0] == last[0] and t[0] >= last[1])
                    )
                last = (int(s[-1]), int(t[-1]))
                sessions.append(s)
                items.append(i)
                times.append(t)
            if got == 0:
                break
            have = total - cut
            buf[_PAD : _PAD + have] = buf[_PAD + cut : _PAD + total].copy()
            buf[_PAD + have : _PAD + total] = 0
    if not sessions:
        raise BadInputError(path, "empty file (no clicks)", line=1)
    events = Events(np.concatenate(sessions), np.concatenate(items), np.concatenate(times), ordered)
    del sessions, items, times
    return events.sorted()


_PAD = 32  # zero bytes around a block, so fixed-size windows never leave the buffer


def _windows(b: np.ndarray, width: int) -> np.ndarray:
    """Overlapping views: row i is ``b[i : i + width]``."""
    return as_strided(b, shape=(len(b) - width + 1, width), strides=(1, 1), writeable=False)


def _parse_click_block(
    b: np.ndarray, lo: int, hi: int, path: Path, first_line: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Parse the whole lines in ``b[lo:hi]`` (ending with a newline; ``b`` has ``_PAD`` bytes
    before ``lo`` and at least ``_PAD`` after ``hi``). Returns session, item, time, line count."""
    seg = b[lo:hi]
    nl = np.flatnonzero(seg == 10) + lo
    n_lines = len(nl)
    starts = np.empty(n_lines, dtype=np.int64)
    starts[0] = lo
    starts[1:] = nl[:-1] + 1
    ends = nl - (b[nl - 1] == 13)  # CRLF: the CR is not part of the last field
    ends = np.maximum(ends, starts)
    nonempty = ends > starts

    commas = np.flatnonzero(seg == 44) + lo
    if len(commas) == 3 * n_lines and nonempty.all():
        c = commas.reshape(-1, 3)
        fast = bool(((c[:, 0] > starts) & (c[:, 2] < ends)).all())  # 3 commas inside every line
    else:
        fast = False
    n_commas = None
    if fast:
        rows = np.arange(n_lines)
        count_bad = np.zeros(n_lines, dtype=bool)
    else:
        comma_line = np.searchsorted(nl, commas)
        n_commas = np.bincount(comma_line, minlength=n_lines)
        good_count = n_commas == 3
        count_bad = nonempty & ~good_count
        rows = np.flatnonzero(nonempty & good_count)  # line index of each parsed row
        c = commas[good_count[comma_line]].reshape(-1, 3)
    s_start, s_end = starts[rows], c[:, 0]
    t_start, t_end = c[:, 0] + 1, c[:, 1]
    i_start, i_end = c[:, 1] + 1, c[:, 2]

    session, s_bad = _parse_uints(b, s_start, s_end)
    item, i_bad = _parse_uints(b, i_start, i_end)
    time, t_bad = _parse_timestamps(b, t_start, t_end)

    field_bad = s_bad | i_bad | t_bad
    first_bad = None
    if count_bad.any():
        first_bad = int(np.argmax(count_bad))
    if field_bad.any():
        r = int(np.argmax(field_bad))
        if first_bad is None or rows[r] < first_bad:
            first_bad = int(rows[r])
    if first_bad is not None:
        line = first_line + first_bad
        if count_bad[first_bad]:
            assert n_commas is not None
            found = int(n_commas[first_bad]) + 1
            raise BadInputError(
                path, f"expected 4 comma-separated fields ({CLICK_FIELDS}), found {found}", line=line
            )
        r = int(np.searchsorted(rows, first_bad))

        def text(a: int, z: int) -> str:
            return bytes(b[a:z]).decode("utf-8", errors="replace")

        if s_bad[r]:
            raise BadInputError(
                path, f"SessionId is not a non-negative integer: {text(s_start[r], s_end[r])!r}", line=line
            )
        if t_bad[r]:
            raise BadInputError(
                path,
                f"bad timestamp {text(t_start[r], t_end[r])!r} (expected ISO-8601 like 2014-04-07T10:51:09.277Z)",
                line=line,
            )
        raise BadInputError(path, f"ItemId is not a non-negative integer: {text(i_start[r], i_end[r])!r}", line=line)
    return session, item, time, n_lines


def _parse_uints(b: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Decimal digit fields ``b[start:end]`` -> int64 values and a bad-field mask.

    ``b`` must hold at least 24 bytes before any field. Each field is read through a window of
    the block's widest field (rounded up to 8 bytes), right-aligned on the field's end; the bytes
    before the field are masked out.
    """
    length = end - start
    bad = (length <= 0) | (length > MAX_DIGITS)
    if len(start) == 0:
        return np.zeros(0, dtype=np.int64), bad
    width = int(min(length.max(), MAX_DIGITS))
    span = -(-width // 8) * 8
    win = _windows(b, span)[end - span]  # (n, span) copy
    win -= np.uint8(48)  # digits -> 0..9, anything else wraps above 9
    win *= np.arange(span, dtype=np.int32)[None, :] >= (span - length.astype(np.int32))[:, None]
    non_digit = (win > 9).view(np.uint64)  # 8 flags per word
    any_bad = non_digit[:, 0]
    for k in range(1, span // 8):
        any_bad = any_bad | non_digit[:, k]
    bad |= any_bad != 0
    columns = np.ascontiguousarray(win.T)
    value = np.zeros(len(start), dtype=np.int64)
    for k in range(span - width, span):
        value *= 10
        value += columns[k]
    return value, bad


_TS_TEMPLATE = np.frombuffer(b"0000-00-00T00:00:00.000Z", dtype=np.uint8)
_TS_SPAN = np.zeros(_TS_LEN, dtype=np.uint8)  # allowed excess over the template: 9 on digits, 0 on separators
_TS_SPAN[[p for p in range(_TS_LEN) if p not in _TS_SEPARATORS]] = 9
_DAYS_IN_MONTH_MAX = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int32)


def _parse_timestamps(b: np.ndarray, start: np.ndarray, end: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ISO-8601 fields -> Unix milliseconds (UTC) and a bad-field mask.

    The common layout ``YYYY-MM-DDTHH:MM:SS.sssZ`` is decoded with array arithmetic; any other
    field (other fraction lengths, no fraction, a zone offset) goes through a per-field parser.
    ``b`` must carry at least 24 bytes after the last field.
    """
    n = len(start)
    win = _windows(b, _TS_LEN)[start]  # (n, 24) copy
    win -= _TS_TEMPLATE
    off = (win > _TS_SPAN[None, :]).view(np.uint64)  # (n, 3): 8 flags per word
    fast = ((off[:, 0] | off[:, 1] | off[:, 2]) == 0) & ((end - start) == _TS_LEN)
    x = np.ascontiguousarray(win.T).astype(np.int32)  # (24, n), digits as 0..9
    year = x[0] * 1000 + x[1] * 100 + x[2] * 10 + x[3]
    month, day = x[5] * 10 + x[6], x[8] * 10 + x[9]
    hour, minute, second = x[11] * 10 + x[12], x[14] * 10 + x[15], x[17] * 10 + x[18]
    milli = x[20] * 100 + x[21] * 10 + x[22]
    month_ok = (month >= 1) & (month <= 12)
    month = np.where(month_ok, month, 1)
    fast &= month_ok & (day >= 1) & (day <= _DAYS_IN_MONTH_MAX[month])
    fast &= (hour <= 23) & (minute <= 59) & (second <= 59)
    feb29 = np.flatnonzero((month == 2) & (day == 29))
    if len(feb29):
        fast[feb29] &= _is_leap(year[feb29])
    # days since 1970 of the first of each month, computed once per distinct month in the block
    month_no = year.astype(np.int64) * 12 + (month - 1)
    lo = int(month_no.min()) if n else 0
    months = np.arange(lo, (int(month_no.max()) if n else 0) + 1)
    first_day = _days_from_civil(months // 12, months % 12 + 1, np.ones_like(months))
    days = first_day[month_no - lo] + (day - 1)
    ms = days * 86_400_000 + (hour * 3_600_000 + minute * 60_000 + second * 1000 + milli)
    bad = np.zeros(n, dtype=bool)
    for r in np.flatnonzero(~fast):  # rare: any layout other than the common one
        value = _parse_timestamp_slow(bytes(b[start[r] : end[r]]))
        if value is None:
            bad[r] = True
        else:
            ms[r] = value
    return ms, bad


def _parse_timestamp_slow(raw: bytes) -> int | None:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    m = _TS_RE.fullmatch(text)
    if m is None:
        return None
    y, mo, d, h, mi, s, frac, zone = m.groups()
    try:
        when = _dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), tzinfo=_dt.timezone.utc)
    except ValueError:
        return None
    ms = int((when - _EPOCH).total_seconds()) * 1000 + (int((frac or "0").ljust(3, "0")[:3]))
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        hh, mm = int(zone[1:3]), int(zone[-2:])
        ms -= sign * (hh * 60 + mm) * 60_000
    return ms


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _is_leap(year: np.ndarray) -> np.ndarray:
    return (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y = year - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def civil_from_days(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`_days_from_civil`: (year, month, day) arrays."""
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


# ---------------------------------------------------------------- the filter (PROTOCOLS.md section 3, steps 2-7)
@dataclass
class FilterResult:
    splits: dict[str, Events]  # train_full, test, train_tr, train_valid
    counts: dict[str, dict[str, int]]  # events, sessions, items of each split
    steps: list[dict[str, Any]] = field(default_factory=list)  # what each rule left


def filter_sessions(events: Events, log: Log = _noop) -> FilterResult:
    """Apply the official GRU4Rec RSC15 rules, in order, to click events.

    2. keep sessions with more than 1 event; 3. keep items with at least 5 events; 4. keep sessions
    with at least 2 events (one pass); 5. sessions whose last event is at or after tmax - 86,400 s
    are ``test``, the rest ``train_full``; 6. drop test events whose item is not in train_full,
    then test sessions left with fewer than 2 events; 7. split train_full the same way (with its
    own tmax) into ``train_tr`` and ``train_valid``. Every split comes out sorted by session id,
    then time (ties in input order).
    """
    import pandas as pd

    ev = events.sorted()
    n = len(ev)
    starts = ev.session_starts()
    lengths = _run_lengths(starts, n)
    n_runs = len(starts)
    run = np.repeat(np.arange(n_runs, dtype=np.int64), lengths)  # session number of each event
    codes, uniques = pd.factorize(ev.item)
    codes = np.asarray(codes, dtype=np.int64)
    n_items = len(uniques)
    steps: list[dict[str, Any]] = []

    def record(rule: str, keep: np.ndarray | None) -> None:
        if keep is None:
            c = {"events": n, "sessions": n_runs, "items": n_items}
        else:
            c = {
                "events": int(np.count_nonzero(keep)),
                "sessions": int(np.count_nonzero(np.bincount(run[keep], minlength=n_runs))),
                "items": int(np.count_nonzero(np.bincount(codes[keep], minlength=n_items))),
            }
        steps.append({"rule": rule, **c})
        log(f"{rule}: {c['events']} events, {c['sessions']} sessions, {c['items']} items")

    record("read", None)
    keep = np.repeat(lengths >= MIN_SESSION_LENGTH, lengths)
    record("step 2: sessions with more than 1 event", keep)
    support = np.bincount(codes[keep], minlength=n_items)
    keep &= (support >= MIN_ITEM_SUPPORT)[codes]
    record(f"step 3: items with at least {MIN_ITEM_SUPPORT} events", keep)
    kept_lengths = np.bincount(run[keep], minlength=n_runs)
    keep &= (kept_lengths >= MIN_SESSION_LENGTH)[run]
    record(f"step 4: sessions with at least {MIN_SESSION_LENGTH} events", keep)
    del run
    ev, codes = ev.take(keep), codes[keep]
    del keep
    if len(ev) == 0:
        raise SeqrecError("no events left after the session and item filters: input too small")

    train_full, train_codes, test, test_codes, info = _time_split(ev, codes, n_items)
    del ev, codes
    steps.append({"rule": "steps 5-6: test = sessions ending in the last 86,400 s", **info})
    log(
        f"steps 5-6: tmax {info['tmax']:.3f}, boundary {info['boundary']:.3f}; "
        f"test: {info['unknown_events_dropped']} events with items not in train_full dropped, "
        f"then {info['short_sessions_dropped']} sessions under {MIN_TEST_SESSION_LENGTH} events"
    )
    if len(train_full) == 0:
        raise SeqrecError("every session ends in the final day: nothing left for train_full")
    train_tr, tr_codes, valid, valid_codes, info = _time_split(train_full, train_codes, n_items)
    steps.append({"rule": "step 7: train_valid = train_full sessions ending in its last 86,400 s", **info})
    log(
        f"step 7: tmax {info['tmax']:.3f}, boundary {info['boundary']:.3f}; "
        f"train_valid: {info['unknown_events_dropped']} events with items not in train_tr dropped, "
        f"then {info['short_sessions_dropped']} sessions under {MIN_TEST_SESSION_LENGTH} events"
    )
    splits = {"train_full": train_full, "test": test, "train_tr": train_tr, "train_valid": valid}
    split_codes = {"train_full": train_codes, "test": test_codes, "train_tr": tr_codes, "train_valid": valid_codes}
    counts = {
        name: {
            "events": len(e),
            "sessions": len(e.session_starts()),
            "items": int(np.count_nonzero(np.bincount(split_codes[name], minlength=n_items))),
        }
        for name, e in splits.items()
    }
    return FilterResult(splits, counts, steps)


def _time_split(
    ev: Events, codes: np.ndarray, n_items: int
) -> tuple[Events, np.ndarray, Events, np.ndarray, dict[str, Any]]:
    """Hold out the sessions whose last event is in the final day; clean the held-out part.

    Returns (kept events, their item codes, held-out events, their item codes, counts).
    """
    n = len(ev)
    starts = ev.session_starts()
    lengths = _run_lengths(starts, n)
    last_time = ev.time[starts + lengths - 1]  # sorted by time within a session: the maximum
    tmax = int(ev.time.max())
    boundary = tmax - SPLIT_WINDOW_MS
    held_session = last_time >= boundary
    held = np.repeat(held_session, lengths)
    train, train_codes = ev.take(~held), codes[~held]
    test, test_codes = ev.take(held), codes[held]

    known = np.zeros(n_items, dtype=bool)
    known[train_codes] = True
    keep = known[test_codes]
    unknown = int(len(keep) - np.count_nonzero(keep))
    test, test_codes = test.take(keep), test_codes[keep]
    t_lengths = _run_lengths(test.session_starts(), len(test))
    keep = np.repeat(t_lengths >= MIN_TEST_SESSION_LENGTH, t_lengths)
    test, test_codes = test.take(keep), test_codes[keep]
    n_held = int(np.count_nonzero(held_session))
    info = {
        "tmax": tmax / 1000,
        "boundary": boundary / 1000,
        "sessions_held_out": n_held,
        "unknown_events_dropped": unknown,
        # sessions left with fewer than 2 events (including those that lost every event)
        "short_sessions_dropped": n_held - int(np.count_nonzero(t_lengths >= MIN_TEST_SESSION_LENGTH)),
    }
    return train, train_codes, test, test_codes, info


# ---------------------------------------------------------------- writing text fast
def _word(text: bytes) -> int:
    """Up to 4 bytes as one native uint32 (NUL-padded), as it lies in memory."""
    return int(np.frombuffer(text.ljust(4, b"\0"), dtype=np.uint32)[0])


def _digit_table(leading_zeros: bool) -> np.ndarray:
    """uint32 word for each k in 0..9999: its 4 decimal digits (leading zeros as NUL if not kept)."""
    k = np.arange(10_000)
    d = np.stack([(k // 1000) % 10, (k // 100) % 10, (k // 10) % 10, k % 10], axis=1).astype(np.uint8) + 48
    if not leading_zeros:
        for j in range(3):
            d[k < 10 ** (3 - j), j] = 0
    return np.ascontiguousarray(d).view(np.uint32).ravel()


_FULL4 = _digit_table(True)  # "0042"
_LEAD4 = _digit_table(False)  # "\0\0" "42"; 0 -> "\0\0\0" "0"
_MILLIS = np.ascontiguousarray(  # ".000" .. ".999"
    np.stack([np.full(1000, 46), *(((np.arange(1000) // 10**e) % 10) + 48 for e in (2, 1, 0))], axis=1).astype(np.uint8)
).view(np.uint32).ravel()
_MINUS = _word(b"-")


def digit_words(values: np.ndarray, negative: np.ndarray | None = None) -> list[np.ndarray]:
    """Decimal text of integers as columns of 4-byte words (most significant first), NUL-padded.

    Concatenated and with the NULs removed, the words of row i spell ``values[i]``.
    ``negative`` forces a minus sign (for a magnitude 0 standing for a negative number).
    """
    v = np.asarray(values, dtype=np.int64)
    neg = v < 0 if negative is None else (v < 0) | negative
    a = np.abs(v)
    top = int(a.max()) if len(a) else 0
    n_words = (len(str(top)) + 3) // 4
    if top < 2**32:
        a = a.astype(np.uint32)
    words: list[np.ndarray] = []
    if neg.any():
        words.append(np.where(neg, np.uint32(_MINUS), np.uint32(0)))
    for j in range(n_words):
        high = a // (10 ** (4 * (n_words - 1 - j))) if j < n_words - 1 else a  # this chunk and above
        chunk = high % 10_000
        lead = _LEAD4[chunk]
        if j < n_words - 1:
            lead = np.where(high > 0, lead, np.uint32(0))
        words.append(np.where(high >= 10_000, _FULL4[chunk], lead))
    return words


def pack_words(columns: list[np.ndarray | int], n: int) -> np.ndarray:
    """Lay out rows of 4-byte words and drop the NUL padding: the bytes of the text, as uint8.

    Each column is a uint32 array of n words, an (n, k) uint32 block, or a single byte value
    (one word on every row).
    """
    width = sum(c.shape[1] if isinstance(c, np.ndarray) and c.ndim == 2 else 1 for c in columns)
    m = np.empty((n, width), dtype=np.uint32)
    j = 0
    for c in columns:
        if isinstance(c, int):
            m[:, j] = _word(bytes([c]))
            j += 1
        elif c.ndim == 2:
            m[:, j : j + c.shape[1]] = c
            j += c.shape[1]
        else:
            m[:, j] = c
            j += 1
    flat = m.view(np.uint8).reshape(-1)
    return flat[flat != 0]


def _time_words(time_ms: np.ndarray) -> list[np.ndarray]:
    """Unix milliseconds -> words of ``<seconds>.<mmm>`` (with a minus sign before 1970)."""
    t = np.asarray(time_ms, dtype=np.int64)
    neg = t < 0
    a = np.abs(t)
    sec = a // 1000
    return [*digit_words(sec, negative=neg), _MILLIS[a - sec * 1000]]


class _HashingWriter:
    """Write bytes to a temporary file, hashing them on the way; renamed into place on success."""

    def __init__(self, dest: Path):
        self.dest = dest
        self.sha = hashlib.sha256()
        self.n = 0

    def write_all(self, chunks: Iterable[bytes | np.ndarray]) -> dict[str, Any]:
        with atomic_path(self.dest) as tmp:
            with open(tmp, "wb") as fh:
                for c in chunks:
                    mv = memoryview(c)
                    self.sha.update(mv)
                    fh.write(mv)
                    self.n += mv.nbytes
        return {"path": str(self.dest), "bytes": self.n, "sha256": self.sha.hexdigest()}


def _tsv_chunks(ev: Events, progress: Progress) -> Iterator[bytes | np.ndarray]:
    yield ("\t".join(TSV_HEADER) + "\n").encode("ascii")
    for a in range(0, len(ev), WRITE_ROWS):
        z = min(a + WRITE_ROWS, len(ev))
        columns = [*digit_words(ev.session[a:z]), 9, *digit_words(ev.item[a:z]), 9, *_time_words(ev.time[a:z]), 10]
        yield pack_words(columns, z - a)
        progress(z - a)


def write_events_tsv(path: Path | str, ev: Events, progress: Progress = _noop) -> dict[str, Any]:
    """Write ``SessionId<TAB>ItemId<TAB>Time`` (Time in seconds with 3 decimals) atomically."""
    return _HashingWriter(Path(path)).write_all(_tsv_chunks(ev, progress))


# ---------------------------------------------------------------- reading filtered tables
def read_events_tsv(path: Path | str) -> Events:
    """Read a ``SessionId<TAB>ItemId<TAB>Time`` table (header required; other columns ignored).

    The result is sorted by session id, then time (ties keep the file order).
    """
    import pandas as pd

    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.readline()
    if not head.strip():
        raise BadInputError(path, "empty file (expected the header SessionId<TAB>ItemId<TAB>Time)", line=1)
    header = head.decode("utf-8-sig", errors="replace").rstrip("\r\n").split("\t")
    missing = [c for c in TSV_HEADER if c not in header]
    if missing:
        raise BadInputError(
            path, f"header must name SessionId, ItemId and Time (tab-separated); missing {', '.join(missing)}", line=1
        )
    try:
        df = pd.read_csv(
            path,
            sep="\t",
            header=0,
            usecols=list(TSV_HEADER),
            dtype={"SessionId": np.int64, "ItemId": np.int64, "Time": np.float64},
            engine="c",
            encoding="utf-8-sig",
        )
        time_s = df["Time"].to_numpy()
        if not np.isfinite(time_s).all():
            raise ValueError("non-finite time")
        if (df["SessionId"].to_numpy() < 0).any() or (df["ItemId"].to_numpy() < 0).any():
            raise ValueError("negative id")
    except (ValueError, OverflowError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        _raise_first_bad_tsv_line(path, header, exc)
        raise  # pragma: no cover - the scan raises
    ev = Events(
        df["SessionId"].to_numpy(dtype=np.int64),
        df["ItemId"].to_numpy(dtype=np.int64),
        np.rint(time_s * 1000).astype(np.int64),
    )
    return ev.sorted()


_INT_RE = re.compile(r"\+?\d+")


def _raise_first_bad_tsv_line(path: Path, header: list[str], exc: Exception) -> None:
    cols = {name: header.index(name) for name in TSV_HEADER}
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, start=1):
            if no == 1:
                continue
            line = raw.rstrip(b"\n").rstrip(b"\r")
            if not line:
                continue
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise BadInputError(path, "not UTF-8 text", line=no) from None
            fields = text.split("\t")
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
        return {"sessions": len(self), "events": len(self.tokens), "items": _n_unique(self.tokens)}


def sessions_from_events(ev: Events, path: Path | None = None) -> TokenLines:
    """One line per session (in order of session id), its items in time order (ties stable)."""
    ev = ev.sorted()
    starts = ev.session_starts()
    offsets = np.append(starts, len(ev)).astype(np.int64)
    return TokenLines(ev.item, offsets, path)


_SPACE, _NEWLINE = _word(b" "), _word(b"\n")


def _lines_chunks(lines: TokenLines, progress: Progress) -> Iterator[np.ndarray]:
    n = len(lines.tokens)
    last = np.zeros(n, dtype=bool)  # the last token of each line is followed by a newline
    last[lines.offsets[1:] - 1] = True
    for a in range(0, n, WRITE_ROWS):
        z = min(a + WRITE_ROWS, n)
        sep = np.where(last[a:z], np.uint32(_NEWLINE), np.uint32(_SPACE))
        if lines.is_int:
            yield pack_words([*digit_words(lines.tokens[a:z]), sep], z - a)
        else:
            raw = np.array([t.encode("utf-8") for t in lines.tokens[a:z]])  # fixed width, NUL-padded
            width = -(-raw.dtype.itemsize // 4) * 4
            block = np.zeros((z - a, width), dtype=np.uint8)
            block[:, : raw.dtype.itemsize] = raw.view(np.uint8).reshape(z - a, -1)
            yield pack_words([block.view(np.uint32), sep], z - a)
        progress(z - a)


def write_token_lines(path: Path | str, lines: TokenLines, progress: Progress = _noop) -> dict[str, Any]:
    """Write one line per sequence, tokens separated by single spaces, atomically."""
    return _HashingWriter(Path(path)).write_all(_lines_chunks(lines, progress))


_WS = np.zeros(256, dtype=bool)
_WS[[9, 10, 11, 12, 13, 32]] = True


def read_token_lines(path: Path | str) -> TokenLines:
    """Read one sequence per line (whitespace-separated tokens). Blank lines are errors.

    CRLF line ends and a UTF-8 BOM are accepted.
    """
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if not data.strip():
        raise BadInputError(path, "empty file (no sessions)", line=1)
    if not data.endswith(b"\n"):
        data += b"\n"
    padded = np.zeros(len(data) + 2 * _PAD, dtype=np.uint8)
    padded[_PAD : _PAD + len(data)] = np.frombuffer(data, dtype=np.uint8)
    b = padded[_PAD : _PAD + len(data)]
    ws = _WS[b]
    prev_ws = np.empty_like(ws)
    prev_ws[0] = True
    prev_ws[1:] = ws[:-1]
    next_ws = np.empty_like(ws)
    next_ws[-1] = True
    next_ws[:-1] = ws[1:]
    tok_start = np.flatnonzero(~ws & prev_ws)
    tok_end = np.flatnonzero(~ws & next_ws) + 1
    del prev_ws, next_ws
    nl = np.flatnonzero(b == 10)
    line_of = np.searchsorted(nl, tok_start)
    per_line = np.bincount(line_of, minlength=len(nl))
    if (per_line == 0).any():
        first_empty = int(np.argmin(per_line)) + 1
        raise BadInputError(path, "empty line (every line must hold at least one item)", line=first_empty)
    offsets = np.zeros(len(nl) + 1, dtype=np.int64)
    np.cumsum(per_line, out=offsets[1:])

    digits = (b >= 48) & (b <= 57)
    lengths = tok_end - tok_start
    is_int = bool(
        (digits | ws).all()
        and lengths.max() <= MAX_DIGITS
        and not ((b[tok_start] == 48) & (lengths > 1)).any()
    )
    if is_int:
        tokens = np.empty(len(tok_start), dtype=np.int64)
        for a in range(0, len(tok_start), PARSE_TOKENS):
            z = a + PARSE_TOKENS
            tokens[a:z], _ = _parse_uints(padded, tok_start[a:z] + _PAD, tok_end[a:z] + _PAD)
    else:
        try:
            tokens = np.array([t.decode("utf-8") for t in data.split()], dtype=object)
        except UnicodeDecodeError:
            bad = next(i for i, t in enumerate(data.split()) if not _is_utf8(t))
            raise BadInputError(path, "not UTF-8 text", line=int(line_of[bad]) + 1) from None
    return TokenLines(tokens, offsets, path)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


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
    import pandas as pd

    from ..formats import Sequences

    inputs = {"train": train, **others}
    if not all(t.is_int for t in inputs.values()):
        inputs = {k: t.as_str() for k, t in inputs.items()}
        order = "lexicographic"
        vocab_arr = np.array(sorted(set(pd.unique(inputs["train"].tokens))), dtype=object)
    else:
        order = "numeric"
        vocab_arr = np.sort(pd.unique(inputs["train"].tokens))
    index = pd.Index(vocab_arr)
    out: dict[str, MappedSplit] = {}
    for name, lines in inputs.items():
        idx = index.get_indexer(lines.tokens).astype(np.int64) + 1  # 0 = unknown
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
        position = np.arange(len(idx)) - lines.offsets[line_of]
        targets = int((lengths - 1).clip(min=0).sum())
        unknown_events = int((~known).sum())
        unknown_targets = int((~known & (position > 0)).sum())
        new_len = np.bincount(line_of[known], minlength=n_lines)
        keep_line = new_len >= MIN_TEST_SESSION_LENGTH
        keep = known & keep_line[line_of]
        kept_len = new_len[keep_line]
        offsets = np.zeros(len(kept_len) + 1, dtype=np.int64)
        np.cumsum(kept_len, out=offsets[1:])
        seqs = Sequences(idx[keep], offsets)
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
    vocab = [str(v) for v in vocab_arr.tolist()]
    return Text2IdResult(vocab, order, out)
