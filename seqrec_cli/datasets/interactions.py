"""Your own interaction log: CSV / TSV / Parquet -> the standard processed folder, and back to raw ids.

``seqrec preprocess interactions FILE`` is :func:`read_interactions` followed by one of the two
split protocols, each through the very code that the data sets' own commands run:

* ``leave-one-out`` (docs/protocols.md §2, ``preprocess ml-1m``): ``ml1m.build_sequences`` ->
  ``ml1m.save_leave_one_out``, with the k-core thresholds as parameters;
* ``session-time`` (docs/protocols.md §3, ``preprocess yoochoose``): ``rsc15.filter_sessions`` with
  :class:`rsc15.SessionSplitParams`, then ``rsc15.text2id`` (vocabulary from the training split
  only, unknown test items dropped and counted).

Reading goes a chunk of rows at a time: plain text (UTF-8, a ``,`` tab ``;`` or ``|`` separator,
no quotes) is split by pyarrow (:func:`_plain_text_chunks`, the reader of
:mod:`seqrec_cli.columnar` that ``preprocess yoochoose`` uses), any other text by pandas, which
also takes over a plain-looking file at the first line pyarrow cannot split the way pandas would;
Parquet by pyarrow. Ids become integer codes as they are read (the raw strings are kept once per
distinct id, hashed and sorted by pyarrow), ISO times of the common layout are parsed by
pyarrow and all others by pandas, into int64 Unix milliseconds, so a 33M-row click log needs a
few GB, not tens.

* **Files**: text with any separator (one character, or several such as ``::``; ``\\t`` typed as a
  backslash and a t is a tab), a header line naming the columns or ``columns`` naming them for a
  header-less file; gzip, zstd, bzip2 or xz compression (recognised by content, not by name);
  Parquet (recognised by its ``PAR1`` magic); ``-`` reads standard input.
* **Ids** are kept verbatim as strings of any kind; ``table.py`` states their order. An empty id,
  an item id containing whitespace (ids are written space-separated) or a user id containing a
  line break or tab is an error.
* **Time**: ``auto`` (numbers are Unix time, seconds / ms / µs / ns told apart by magnitude;
  text is ISO-8601), ``unix-s``, ``unix-ms``, ``unix-us``, ``unix-ns``, ``iso`` or a strftime
  pattern such as ``%d/%m/%Y %H:%M``. Times without a zone are UTC. Kept as integer Unix
  milliseconds (ISO and pattern times floored, numeric ones rounded, to the millisecond); equal
  times keep file order (stable), as the ML-1M rules do.

A bad value is one ``BadInputError`` naming the file, the line (for Parquet the row) and the value.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import re
import sys
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import BadInputError, MissingInputError, SeqrecError
from ..formats import Sequences, input_record, save_processed
from . import ml1m, rsc15
from .table import IdCoder, Interactions

CHUNK_ROWS = 1 << 20  # rows parsed, checked and coded at a time
TEXT_BLOCK = 32 << 20  # bytes of plain text split by pyarrow at a time (_plain_text_chunks)
READ_BYTES = 1 << 20  # bytes read at a time from the file
# what a corrupt or truncated file raises while it is decompressed and read (gzip: EOFError, zlib.error,
# BadGzipFile; xz: EOFError, LZMAError; bz2: EOFError, OSError; zstd: EOFError from _ZstdFrames)
_STREAM_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)
LEAVE_ONE_OUT = "leave-one-out"
SESSION_TIME = "session-time"
SPLITS = (LEAVE_ONE_OUT, SESSION_TIME)
DAY_MS = 86_400_000

TIME_FORMATS = ("auto", "unix-s", "unix-ms", "unix-us", "unix-ns", "iso")
NATIVE_TIME = "native"  # a Parquet timestamp or date column: no parsing
_UNIX_TO_MS = {"unix-s": 1000.0, "unix-ms": 1.0, "unix-us": 1e-3, "unix-ns": 1e-6}
_UNIX_DIVISOR = {"unix-s": -1000, "unix-ms": 1, "unix-us": 1000, "unix-ns": 1_000_000}  # <0: multiply
# auto: the largest |value| of the first chunk picks the unit (1e11 s is the year 5138, 1e11 ms 1973)
_UNIX_BOUNDS = ((1e11, "unix-s"), (1e14, "unix-ms"), (1e17, "unix-us"))
_SNIFF_SEPS = ("\t", "::", ",", ";", "|")  # tried in this order on the first line when --sep is not given
_EXT_SEPS = {".tsv": "\t", ".tab": "\t", ".csv": ","}
_COMPRESSED_EXT = (".gz", ".gzip", ".zst", ".zstd", ".bz2", ".xz")
_UNIT = "\x1f"  # a multi-character separator is read as this one (pandas' fast parser takes one character)
_ITEM_BAD = r"\s"  # item ids are written space-separated (vocabulary, recommend --input lines)
_USER_BAD = "[\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]"  # users.txt is one id per line; outputs are TSV


# ---------------------------------------------------------------- what to read
@dataclass(frozen=True)
class ReadSpec:
    """How to read an interaction file: the column mapping, separator, time format.

    ``None`` means: find out (group column ``user``, else ``session``; separator from the name,
    else the first line). The resolved values are recorded in the manifest (``params.read``) so
    that a later file of the same kind is read the same way (:func:`spec_from_manifest`).
    """

    user_col: str | None = None  # the column that groups interactions into sequences (user or session)
    item_col: str = "item"
    time_col: str = "time"
    rating_col: str | None = None
    min_rating: float | None = None  # keep rows whose rating is at least this (needs rating_col)
    sep: str | None = None  # text only; "\\t" (backslash, t) and "tab" mean a tab
    columns: tuple[str, ...] | None = None  # the column names of a header-less text file
    time_format: str = "auto"  # one of TIME_FORMATS, or a strftime pattern
    encoding: str = "utf-8"  # of text files (a UTF-8 BOM is skipped)

    def __post_init__(self) -> None:
        if self.min_rating is not None and self.rating_col is None:
            raise SeqrecError("--min-rating needs --rating-col (the column holding the rating)")
        if self.time_format not in (*TIME_FORMATS, NATIVE_TIME) and "%" not in self.time_format:
            raise SeqrecError(
                f"--time-format: {self.time_format!r} is none of {', '.join(TIME_FORMATS)} and not a strftime "
                "pattern (such as '%d/%m/%Y %H:%M')"
            )
        if self.columns is not None:
            if len(self.columns) < 2 or any(not c for c in self.columns):
                raise SeqrecError("--columns: give every column a name, comma-separated (e.g. user,item,rating,time)")
            if len(set(self.columns)) != len(self.columns):
                raise SeqrecError(f"--columns: a name appears twice: {','.join(self.columns)}")
        roles = [c for c in (self.user_col, self.item_col, self.time_col, self.rating_col) if c is not None]
        if len(set(roles)) != len(roles):
            raise SeqrecError(f"one column cannot play two roles: {', '.join(roles)}")


def parse_sep(text: str) -> str:
    """The separator a user typed: ``\\t`` (backslash, t) or ``tab`` is a tab, ``space`` a space."""
    named = {"\\t": "\t", "tab": "\t", "TAB": "\t", "space": " ", "\\s": " "}
    sep = named.get(text, text)
    if not sep or "\n" in sep or "\r" in sep or '"' in sep or _UNIT in sep:
        raise SeqrecError(f"--sep: not a usable separator: {text!r}")
    return sep


def parse_columns(text: str) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(","))


def spec_from_manifest(manifest: Any, **overrides: Any) -> ReadSpec:
    """The :class:`ReadSpec` a processed folder's data was read with, ``overrides`` winning.

    ``manifest`` is a ``formats.DatasetManifest`` or the manifest as a dict (or ``None``); data
    made by other commands (``preprocess ml-1m`` / ``yoochoose``) record no reading, and give the
    defaults. Overrides whose value is ``None`` are ignored; ``columns=()`` says the new file has a
    header line although the training file had none.
    """
    params = getattr(manifest, "params", None)
    if params is None and isinstance(manifest, Mapping):
        params = manifest.get("params", {})
    read = dict((params or {}).get("read") or {})
    fields = {
        "user_col": read.get("user_col"),
        "item_col": read.get("item_col", "item"),
        "time_col": read.get("time_col", "time"),
        "rating_col": read.get("rating_col"),
        "min_rating": read.get("min_rating"),
        "sep": read.get("sep") if read.get("format") == "text" else None,
        "columns": tuple(read["columns"]) if read.get("columns") else None,
        "time_format": read.get("time_format", "auto"),
        "encoding": read.get("encoding", "utf-8"),
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    if fields["columns"] == ():
        fields["columns"] = None  # the new file has a header line
    if fields["time_format"] == NATIVE_TIME:
        fields["time_format"] = "auto"  # a timestamp column there; parse whatever this file holds
    if fields["rating_col"] is None:
        fields["min_rating"] = None
    return ReadSpec(**fields)


# ---------------------------------------------------------------- the source: a file or standard input
class Source:
    """An input that can be opened more than once: a path, or standard input read into memory."""

    def __init__(self, path: Path | str, stdin: BinaryIO | None = None):
        if str(path) == "-":
            self.path, self.name = None, "<stdin>"
            self.data: bytes | None = (stdin or sys.stdin.buffer).read()
            self.size = len(self.data)
        else:
            self.path, self.name, self.data = Path(path), str(path), None
            if not self.path.is_file():
                raise MissingInputError(self.path, what="interaction file")
            self.size = self.path.stat().st_size
        with self._open_raw() as fh:
            head = fh.read(6)
        self.parquet = head[:4] == b"PAR1"
        self.compression = _compression(head)

    def _open_raw(self) -> BinaryIO:
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")  # type: ignore[arg-type]

    def open(self, progress: Callable[[int], None] | None = None) -> BinaryIO:
        """The decompressed bytes (``progress`` is told the raw bytes read)."""
        raw = self._open_raw()
        if progress is not None:
            raw = io.BufferedReader(_Counting(raw, progress), READ_BYTES)  # type: ignore[assignment]
        if self.compression == "gzip":
            return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
        if self.compression == "bz2":
            return bz2.BZ2File(raw)  # type: ignore[return-value]
        if self.compression == "xz":
            return lzma.LZMAFile(raw)  # type: ignore[return-value]
        if self.compression == "zstd":
            return io.BufferedReader(_ZstdFrames(raw), READ_BYTES)  # type: ignore[return-value]
        return raw

    def record(self) -> dict[str, Any]:
        """How a manifest names the input (path, bytes, SHA-256)."""
        if self.path is None:
            import hashlib

            return {"path": self.name, "bytes": self.size, "sha256": hashlib.sha256(self.data or b"").hexdigest()}
        return input_record(self.path)


def _compression(head: bytes) -> str | None:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if head[:3] == b"BZh":
        return "bz2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return None


class _ZstdFrames(io.RawIOBase):
    """zstd frames one after another, decompressed. A file that ends inside a frame raises
    EOFError, as gzip, bz2 and xz do (zstandard's own stream reader returns the part it has, so a
    truncated file would silently lose its last rows)."""

    def __init__(self, raw: BinaryIO):
        import zstandard

        self.raw, self._new = raw, zstandard.ZstdDecompressor().decompressobj
        self.d = self._new()
        self.in_frame = False  # bytes of an unfinished frame were fed
        self.out, self.pos = b"", 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self.pos == len(self.out):
            chunk = self.raw.read(READ_BYTES)
            if not chunk:
                if self.in_frame:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
                return 0
            parts = []
            while chunk:
                self.in_frame = True
                parts.append(self.d.decompress(chunk))
                if not self.d.eof:
                    break
                chunk, self.d, self.in_frame = self.d.unused_data, self._new(), False
            self.out, self.pos = b"".join(parts), 0
        n = min(len(buffer), len(self.out) - self.pos)
        buffer[:n] = self.out[self.pos : self.pos + n]
        self.pos += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Counting(io.RawIOBase):
    """A raw stream that reports how many bytes were read."""

    def __init__(self, raw: BinaryIO, progress: Callable[[int], None]):
        self.raw, self.progress = raw, progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        buffer[: len(data)] = data
        self.progress(len(data))
        return len(data)

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Translate(io.RawIOBase):
    """The bytes of ``raw`` with every multi-character separator replaced by U+001F.

    Lines are handled whole (a separator never spans a line end); a file that already holds
    U+001F cannot be read this way and is refused at its line.
    """

    def __init__(self, raw: BinaryIO, sep: bytes, name: str):
        self.raw, self.sep, self.name = raw, sep, name
        self.pending = b""
        self.buf, self.pos = b"", 0
        self.line = 1  # number of the first line of `pending`

    def readable(self) -> bool:
        return True

    def _fix(self, block: bytes) -> bytes:
        at = block.find(_UNIT.encode())
        if at >= 0:
            line = self.line + block.count(b"\n", 0, at)
            raise BadInputError(self.name, "holds the control character U+001F, which a multi-character --sep cannot read", line=line)
        self.line += block.count(b"\n")
        return block.replace(self.sep, _UNIT.encode())

    def readinto(self, buffer: Any) -> int:
        while self.pos >= len(self.buf):
            chunk = self.raw.read(READ_BYTES)
            if not chunk:
                if not self.pending:
                    return 0
                self.buf, self.pos, self.pending = self._fix(self.pending), 0, b""
                break
            data = self.pending + chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                self.pending = data
                continue
            self.buf, self.pos, self.pending = self._fix(data[:cut]), 0, data[cut:]
        n = min(len(buffer), len(self.buf) - self.pos)
        buffer[:n] = self.buf[self.pos : self.pos + n]
        self.pos += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


# ---------------------------------------------------------------- text layout
@dataclass
class _Layout:
    sep: str
    header: bool
    names: list[str]  # every column, in file order
    encoding: str  # what pandas decodes with ("utf-8-sig" for UTF-8: a BOM is skipped)


def _text_encoding(encoding: str) -> str:
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def _records(source: Source, layout_sep: str, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank record, as pandas counts them; undecodable bytes replaced."""
    with source.open() as fh:
        text = io.TextIOWrapper(fh, encoding=encoding, errors="replace", newline="")
        if len(layout_sep) == 1:
            reader = csv.reader(text, delimiter=layout_sep, quotechar='"', strict=False)
            for fields in reader:
                if fields and not (len(fields) == 1 and not fields[0].strip()):
                    yield reader.line_num, fields
        else:
            for no, line in enumerate(_physical_lines(text), start=1):
                if line.strip():
                    yield no, line.split(layout_sep)


def _physical_lines(text: io.TextIOBase) -> Iterator[str]:
    for line in text:
        yield line.rstrip("\r\n")


def _layout(source: Source, spec: ReadSpec) -> _Layout:
    encoding = _text_encoding(spec.encoding)
    try:
        with source.open() as fh:
            text = io.TextIOWrapper(fh, encoding=encoding, errors="replace", newline="")
            first = next((line for line in _physical_lines(text) if line.strip()), None)
    except (*_STREAM_ERRORS, ValueError) as exc:
        raise _unreadable(source, exc) from None
    except LookupError:
        raise SeqrecError(f"--encoding: unknown encoding {spec.encoding!r}") from None
    if first is None:
        raise BadInputError(source.name, "empty file: no interactions")
    if spec.sep is not None:
        sep = parse_sep(spec.sep)
    else:
        by_name = _sep_from_name(source.name)
        sep = by_name if by_name and by_name in first else next((s for s in _SNIFF_SEPS if s in first), "")
        if not sep:
            raise BadInputError(
                source.name, f"cannot tell the separator from the first line {first[:80]!r}; give --sep", line=1
            )
    fields = next(csv.reader([first], delimiter=sep)) if len(sep) == 1 else first.split(sep)
    if spec.columns is not None:
        if len(fields) != len(spec.columns):
            raise BadInputError(
                source.name,
                f"--columns names {len(spec.columns)} columns ({','.join(spec.columns)}) but the first line has "
                f"{len(fields)} fields separated by {_sep_text(sep)}",
                line=_first_record_line(source, sep, encoding),
            )
        return _Layout(sep, False, list(spec.columns), encoding)
    names = [f.strip() for f in fields]
    return _Layout(sep, True, names, encoding)


def _first_record_line(source: Source, sep: str, encoding: str) -> int:
    return next(_records(source, sep, encoding), (1, []))[0]


def _sep_from_name(name: str) -> str | None:
    lower = name.lower()
    for ext in _COMPRESSED_EXT:
        lower = lower.removesuffix(ext)
    return next((sep for ext, sep in _EXT_SEPS.items() if lower.endswith(ext)), None)


def _sep_text(sep: str) -> str:
    return {"\t": "tabs", ",": "commas", ";": "semicolons", " ": "spaces"}.get(sep, repr(sep))


def _resolve_group(spec: ReadSpec, names: list[str], where: str) -> ReadSpec:
    """Fill in the group column (``user``, else ``session``) and check every named column exists."""
    if spec.user_col is None:
        group = next((c for c in ("user", "session") if c in names), None)
        if group is None:
            raise BadInputError(
                where, f"no column 'user' or 'session' (columns found: {', '.join(names)}); name it with --user-col or --session-col"
            )
        spec = replace(spec, user_col=group)
    options = {"user_col": "--user-col or --session-col", "item_col": "--item-col", "time_col": "--time-col", "rating_col": "--rating-col"}
    for attr, option in options.items():
        col = getattr(spec, attr)
        if col is not None and col not in names:
            found = ", ".join(names) if names else "none"
            raise BadInputError(where, f"no column {col!r} (columns found: {found}); name it with {option}")
        if col is not None and names.count(col) > 1:
            raise BadInputError(where, f"the column {col!r} appears {names.count(col)} times in the header")
    return spec


# ---------------------------------------------------------------- reading
@dataclass
class ReadResult:
    """What :func:`read_interactions` read."""

    table: Interactions  # every row in file order, ids coded, time in Unix ms
    rating: np.ndarray | None  # float64 [n] when a rating column was read
    read: dict[str, Any]  # how the file was read (the manifest's params.read)
    source: Source

    @property
    def rows(self) -> int:
        return len(self.table)


class _Where:
    """Turns a row number of the data into 'file:line' (text) or 'file: row N' (Parquet) for errors."""

    def __init__(self, source: Source, layout: _Layout | None):
        self.source, self.layout = source, layout

    def error(self, row: int, problem: str) -> BadInputError:
        if self.layout is None:
            return BadInputError(self.source.name, f"row {row + 1}: {problem}")
        return BadInputError(self.source.name, problem, line=self.line_of(row))

    def line_of(self, row: int) -> int | None:
        assert self.layout is not None
        records = _records(self.source, self.layout.sep, self.layout.encoding)
        if self.layout.header:
            next(records, None)
        for k, (line, _) in enumerate(records):
            if k == row:
                return line
        return None  # pragma: no cover - the row exists


def read_interactions(
    path: Path | str, spec: ReadSpec = ReadSpec(), progress: Callable[[int], None] | None = None, *, stdin: BinaryIO | None = None
) -> ReadResult:
    """Read an interaction file (text or Parquet) into a coded table; errors name file, line or row, value.

    ``path`` ``-`` is standard input (``stdin`` to pass another stream). ``progress`` is told the
    bytes read from the file as it goes.
    """
    source = Source(path, stdin)
    if source.parquet:
        chunks, spec, layout = _parquet_chunks(source, spec, progress)
        columns = _read_columns(chunks, spec, _Where(source, None))
    else:
        layout = _layout(source, spec)
        spec = _resolve_group(spec, layout.names, source.name)
        seen = _HighWater(progress)  # a second pass reports only the bytes beyond the first's
        try:
            columns = _read_columns(_plain_text_chunks(source, layout, seen), spec, _Where(source, layout))
        except _NotPlain:
            seen.rewind()
            columns = _read_columns(_text_chunks(source, layout, seen), spec, _Where(source, layout))
    users, items, user_parts, item_parts, time_parts, rating_parts, time_format = columns
    if not user_parts or not sum(len(p) for p in user_parts):
        raise BadInputError(source.name, "no interactions (only a header)" if layout and layout.header else "no interactions")
    user_table, user_remap = users.finish()
    item_table, item_remap = items.finish()
    table = Interactions(
        user_remap[np.concatenate(user_parts)],
        item_remap[np.concatenate(item_parts)],
        np.concatenate(time_parts),
        user_table,
        item_table,
    )
    del user_parts, item_parts, time_parts
    read = {
        "format": "parquet" if source.parquet else "text",
        "compression": source.compression,
        "sep": layout.sep if layout else None,
        "header": layout.header if layout else None,
        "columns": list(spec.columns) if spec.columns else None,
        "encoding": spec.encoding,
        "user_col": spec.user_col,
        "item_col": spec.item_col,
        "time_col": spec.time_col,
        "rating_col": spec.rating_col,
        "min_rating": spec.min_rating,
        "time_format": time_format,
        "time_format_option": spec.time_format,
        "time": "Unix milliseconds, UTC (times without a zone are read as UTC)",
        "id_order": {"users": user_table.order, "items": item_table.order},
    }
    rating = np.concatenate(rating_parts) if rating_parts else None
    return ReadResult(table, rating, read, source)


def _read_columns(chunks: Iterator[tuple[int, Any]], spec: ReadSpec, where: _Where) -> tuple[Any, ...]:
    """Code the ids, parse the times (and ratings) of every chunk: the coders, the parts, the time format used."""
    users, items = IdCoder(), IdCoder()
    user_parts, item_parts, time_parts, rating_parts = [], [], [], []
    time_format = spec.time_format
    for first_row, frame in chunks:
        assert spec.user_col is not None
        user_parts.append(_code_ids(frame[spec.user_col], users, "user", spec.user_col, _USER_BAD, first_row, where))
        item_parts.append(_code_ids(frame[spec.item_col], items, "item", spec.item_col, _ITEM_BAD, first_row, where))
        if time_format == "auto":
            time_format = _detect_time_format(frame[spec.time_col])
        time_parts.append(_times(frame[spec.time_col], time_format, spec.time_col, first_row, where))
        if spec.rating_col is not None:
            rating_parts.append(_ratings(frame[spec.rating_col], spec.rating_col, first_row, where))
    return users, items, user_parts, item_parts, time_parts, rating_parts, time_format


class _HighWater:
    """Progress that a second pass over the same bytes does not count twice."""

    def __init__(self, progress: Callable[[int], None] | None):
        self.progress, self.done, self.high = progress, 0, 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress is not None and self.done > self.high:
            self.progress(self.done - self.high)
            self.high = self.done

    def rewind(self) -> None:
        self.done = 0


def _unique_names(names: list[str]) -> list[str]:
    """Column names made unique as pandas would (``x``, ``x.1``); required columns are never duplicates."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        k = seen.get(name, 0)
        seen[name] = k + 1
        out.append(name if k == 0 else f"{name}.{k}")
    return out


def _text_chunks(
    source: Source, layout: _Layout, progress: Callable[[int], None] | None
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Chunks of rows (every column as text) with the number of their first data row.

    Every column is read (not only the mapped ones) so that a line with more fields than the
    header is an error rather than silently shifted.
    """
    multi = len(layout.sep) > 1
    fh = source.open(progress)
    sep_bytes = layout.sep.encode(layout.encoding.replace("-sig", ""))
    stream: Any = io.BufferedReader(_Translate(fh, sep_bytes, source.name), READ_BYTES) if multi else fh
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            reader = pd.read_csv(
                stream,
                sep=_UNIT if multi else layout.sep,
                header=0 if layout.header else None,
                names=_unique_names(layout.names),
                index_col=False,
                dtype=str,
                keep_default_na=False,
                na_values=[],
                quoting=csv.QUOTE_NONE if multi else csv.QUOTE_MINIMAL,
                skip_blank_lines=True,
                encoding=layout.encoding,
                engine="c",
                chunksize=CHUNK_ROWS,
            )
            first_row = 0
            for frame in reader:
                yield first_row, frame
                first_row += len(frame)
    except UnicodeDecodeError:
        raise _undecodable(source, layout) from None
    except pd.errors.EmptyDataError:
        raise BadInputError(source.name, "empty file: no interactions") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError) as exc:
        raise _bad_record(source, layout, exc) from None
    except _STREAM_ERRORS as exc:  # a corrupt or truncated compressed file (was a bare "Aborted!" or a traceback)
        raise _unreadable(source, exc) from None
    finally:
        stream.close()


def _unreadable(source: Source, exc: Exception) -> BadInputError:
    """A file that cannot be read to its end: for a compressed one, its data are corrupt or truncated."""
    if source.compression and not isinstance(exc, ValueError):
        return BadInputError(source.name, f"corrupt or truncated {source.compression} data ({exc})")
    return BadInputError(source.name, f"cannot read the file ({exc})")


class _NotPlain(Exception):
    """The text needs pandas' tokenizer after all: the caller reads it again with :func:`_text_chunks`."""


_PLAIN_SEPS = (",", "\t", ";", "|")  # one-character separators the fast path splits at


def _plain_text_chunks(
    source: Source, layout: _Layout, progress: Callable[[int], None] | None
) -> Iterator[tuple[int, dict[str, pd.Series]]]:
    """What :func:`_text_chunks` yields (the same rows, cut into the same chunks of
    ``CHUNK_ROWS``, as the same pandas string columns), split by pyarrow
    (:func:`seqrec_cli.columnar.read_text_columns`) when the text is plain: UTF-8, a separator of
    ``_PLAIN_SEPS``, no double quote or NUL byte, no line that starts with a space or tab (pandas
    skips whitespace-only lines and quotes fields; pyarrow would not), every line with as many
    fields as the header (pyarrow refuses any other count). Raises :class:`_NotPlain` at the
    first block that is not, before any row of it is handed on; pandas then reads the whole file
    again, and names what is wrong.
    """
    from .. import columnar
    from ..textio import ProgressLater, iter_line_blocks, read_ahead

    probe = pd.Series([""], dtype=str)  # what read_csv(dtype=str) makes: pyarrow strings from pandas 3 on
    if layout.sep not in _PLAIN_SEPS or layout.encoding != "utf-8-sig" or not isinstance(probe.array, pd.arrays.ArrowStringArray):
        raise _NotPlain
    str_dtype = probe.dtype
    names = _unique_names(layout.names)
    pending: list[Any] = []  # pyarrow tables of rows read and not yet handed on
    held, first_row, header = 0, 0, layout.header
    read = ProgressLater(progress)
    with source.open(read) as fh:
        blocks = read_ahead(iter_line_blocks(source.name, block=TEXT_BLOCK, stream=fh, what="interaction file"))
        try:
            for _, block in blocks:
                read.report()
                if b'"' in block or b"\x00" in block:  # quoting, or a byte pandas' tokenizer treats apart
                    raise _NotPlain
                if header:  # the header is the first non-blank line
                    block = block.lstrip(b"\n")
                    if not block:
                        continue
                    if block.startswith((b" ", b"\t")):
                        raise _NotPlain
                    block, header = block.partition(b"\n")[2], False
                columns = columnar.read_text_columns(block, names, layout.sep, names)
                if columns is None or _starts_with_space(columns[0]):  # pandas skips or trims such lines
                    raise _NotPlain
                table = pa.table(dict(zip(names, columns)))
                pending.append(table)
                held += table.num_rows
                while held >= CHUNK_ROWS:
                    rows = pa.concat_tables(pending)
                    chunk, rest = rows.slice(0, CHUNK_ROWS), rows.slice(CHUNK_ROWS)
                    pending, held = [rest], rest.num_rows
                    yield first_row, _frame(chunk, str_dtype)
                    first_row += chunk.num_rows
            if held:
                yield first_row, _frame(pa.concat_tables(pending), str_dtype)
        except BadInputError:
            raise _NotPlain from None  # not UTF-8: pandas' reading names the byte its own way
        except _STREAM_ERRORS as exc:  # a corrupt or truncated compressed file
            raise _unreadable(source, exc) from None
        finally:
            blocks.close()


def _starts_with_space(column: pa.ChunkedArray) -> bool:
    """Whether a line starts with a space or tab (its first field does; a blank line has no field)."""
    return bool(pc.any(pc.or_(pc.starts_with(column, " "), pc.starts_with(column, "\t"))).as_py())


def _frame(table: Any, str_dtype: Any) -> dict[str, pd.Series]:
    """The columns of a pyarrow table of strings as the pandas ``str`` columns read_csv makes."""
    return {name: table.column(name).cast(pa.large_string()).to_pandas(types_mapper={pa.large_string(): str_dtype}.get)
            for name in table.column_names}


def _undecodable(source: Source, layout: _Layout) -> BadInputError:
    with source.open() as fh:
        for no, raw in enumerate(_byte_lines(fh), start=1):
            try:
                raw.decode(layout.encoding)
            except UnicodeDecodeError as exc:
                bad = raw[exc.start : exc.end]
                return BadInputError(source.name, f"not {layout.encoding.replace('-sig', '')} text (byte {bad!r})", line=no)
    return BadInputError(source.name, f"not {layout.encoding.replace('-sig', '')} text")  # pragma: no cover


def _byte_lines(fh: BinaryIO) -> Iterator[bytes]:
    """Lines of a binary stream, split at LF, CRLF or a lone CR (as the text readers count them)."""
    rest = b""
    while chunk := fh.read(READ_BYTES):
        data = rest + chunk
        held = b"\r" if data.endswith(b"\r") else b""  # maybe the first half of a CRLF
        lines = (data[:-1] if held else data).replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        rest = lines.pop() + held
        yield from lines
    if rest:
        yield rest.rstrip(b"\r")


def _bad_record(source: Source, layout: _Layout, exc: Exception) -> BadInputError:
    """The first record whose field count differs from the header's (what pandas refused)."""
    expected = len(layout.names)
    records = _records(source, layout.sep, layout.encoding)
    for line, fields in records:
        if len(fields) > expected:
            return BadInputError(
                source.name, f"expected {expected} fields separated by {_sep_text(layout.sep)}, found {len(fields)}", line=line
            )
    return BadInputError(source.name, f"cannot parse the file ({exc})")


def _parquet_chunks(
    source: Source, spec: ReadSpec, progress: Callable[[int], None] | None
) -> tuple[Iterator[tuple[int, dict[str, pd.Series]]], ReadSpec, None]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source._open_raw())
    except (pa.ArrowException, OSError) as exc:
        raise BadInputError(source.name, f"not a readable Parquet file ({exc})") from None
    names = list(pf.schema_arrow.names)
    spec = _resolve_group(replace(spec, columns=None), names, source.name)  # Parquet names its own columns
    wanted = [c for c in (spec.user_col, spec.item_col, spec.time_col, spec.rating_col) if c is not None]
    types = {name: pf.schema_arrow.field(name).type for name in wanted}
    for role, col in (("user", spec.user_col), ("item", spec.item_col)):
        t = types[col]
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_integer(t) or pa.types.is_dictionary(t)):
            raise BadInputError(
                source.name, f"the {role} id column {col!r} has type {t}: ids must be strings or integers"
            )

    def chunks() -> Iterator[tuple[int, dict[str, pd.Series]]]:
        first_row = 0
        try:
            for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=wanted):
                frame: dict[str, pd.Series] = {}
                for col in wanted:
                    arr = batch.column(col)
                    if pa.types.is_dictionary(arr.type):
                        arr = arr.dictionary_decode()
                    if col in (spec.user_col, spec.item_col) and pa.types.is_integer(arr.type):
                        arr = arr.cast(pa.string())
                    frame[col] = arr.to_pandas(date_as_object=False)
                yield first_row, frame
                first_row += batch.num_rows
                if progress is not None:  # bytes, in proportion to the rows read
                    done = source.size * first_row // max(1, pf.metadata.num_rows)
                    progress(done - reported[0])
                    reported[0] = done
        except (pa.ArrowException, OSError) as exc:
            raise BadInputError(source.name, f"not a readable Parquet file ({exc})") from None

    reported = [0]
    return chunks(), spec, None


# ---------------------------------------------------------------- columns
def _code_ids(
    values: pd.Series, coder: IdCoder, role: str, col: str, bad_chars: str, first_row: int, where: _Where
) -> np.ndarray:
    codes, uniques = pd.factorize(values)
    missing = codes < 0
    if missing.any():
        raise where.error(first_row + int(np.argmax(missing)), f"missing {role} id in column {col!r}")
    arrow = getattr(uniques, "array", uniques)
    if isinstance(arrow, pd.arrays.ArrowStringArray):
        arrow = pa.array(arrow)
        if len(arrow) and pc.all(pc.ascii_is_decimal(arrow)).as_py():  # digits only: nothing to refuse
            return coder.add_factorized(codes, arrow)  # kept as pyarrow strings (no Python str per id)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=object).astype(str)
    bad = ((text == "") | text.str.contains(bad_chars, regex=True)).to_numpy()
    if bad.any():
        k = int(np.argmax(bad))
        row = first_row + int(np.argmax(codes == k))
        value = text.iloc[k]
        if value == "":
            raise where.error(row, f"empty {role} id in column {col!r}")
        what = "whitespace (item ids are written space-separated)" if role == "item" else "a line break or tab"
        raise where.error(row, f"{role} id with {what} in column {col!r}: {value!r}")
    return coder.add_factorized(codes, text.to_numpy())


def _detect_time_format(values: pd.Series) -> str:
    """``auto``: a datetime column is native; numbers are Unix time (unit by magnitude); text ISO-8601."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return NATIVE_TIME
    if len(values) == 0:
        return "iso"
    if not pd.api.types.is_numeric_dtype(values.dtype) and pd.isna(pd.to_numeric(values.iloc[:1], errors="coerce").iloc[0]):
        return "iso"  # the first value is text (decided before converting the whole chunk)
    numbers = pd.to_numeric(values, errors="coerce") if not pd.api.types.is_numeric_dtype(values.dtype) else values
    if pd.isna(numbers.iloc[0]):
        return "iso"
    biggest = float(np.nanmax(np.abs(numbers.to_numpy(dtype=np.float64, na_value=np.nan))))
    return next((unit for bound, unit in _UNIX_BOUNDS if biggest < bound), "unix-ns")


_EXPECTED_TIME = {
    "unix-s": "Unix time in seconds",
    "unix-ms": "Unix time in milliseconds",
    "unix-us": "Unix time in microseconds",
    "unix-ns": "Unix time in nanoseconds",
    "iso": "ISO-8601 like 2014-04-07T10:51:09.277Z",
    NATIVE_TIME: "a timestamp",
}


def _times(values: pd.Series, time_format: str, col: str, first_row: int, where: _Where) -> np.ndarray:
    """Unix milliseconds (int64) of one chunk of the time column."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values
        bad = stamps.isna().to_numpy()
        if bad.any():
            raise where.error(first_row + int(np.argmax(bad)), f"missing timestamp in column {col!r}")
        if stamps.dt.tz is not None:
            stamps = stamps.dt.tz_convert(None)
        return stamps.to_numpy().astype("datetime64[ms]").astype(np.int64)
    if time_format.startswith("unix-"):
        return _unix_ms(values, time_format, col, first_row, where)
    text = values if not pd.api.types.is_numeric_dtype(values.dtype) else values.astype(str)
    pattern = "ISO8601" if time_format in ("iso", NATIVE_TIME) else time_format
    if pattern == "ISO8601" and isinstance(text.array, pd.arrays.ArrowStringArray):
        from .. import columnar

        ms = columnar.iso_ms(_arrow_text(text))  # the common layout, exactly as pandas reads it; else pandas
        if ms is not None:
            return ms
    try:
        stamps = pd.to_datetime(text, format=pattern, utc=True, errors="coerce")
    except ValueError as exc:  # a pattern pandas cannot use at all
        raise SeqrecError(f"--time-format {time_format!r}: {exc}") from None
    bad = stamps.isna().to_numpy()
    if bad.any():
        k = int(np.argmax(bad))
        raise where.error(first_row + k, _bad_time_text(text.iloc[k], time_format, col))
    return stamps.dt.tz_convert(None).to_numpy().astype("datetime64[ms]").astype(np.int64)


def _arrow_text(values: pd.Series) -> pa.ChunkedArray:
    """The pyarrow strings behind a pandas ``str`` column (no copy)."""
    arrow = pa.array(values.array)
    return arrow if isinstance(arrow, pa.ChunkedArray) else pa.chunked_array([arrow])


def _shown(value: Any) -> str:
    return "(missing)" if value is None or (isinstance(value, float) and np.isnan(value)) else repr(value)


def _bad_time_text(value: Any, time_format: str, col: str) -> str:
    expected = _EXPECTED_TIME.get(time_format, f"the pattern {time_format!r}")
    return f"bad timestamp {_shown(value)} in column {col!r} (expected {expected}; --time-format to say otherwise)"


def _unix_ms(values: pd.Series, time_format: str, col: str, first_row: int, where: _Where) -> np.ndarray:
    numbers = values if pd.api.types.is_numeric_dtype(values.dtype) else pd.to_numeric(values, errors="coerce")
    array = numbers.to_numpy()
    if array.dtype.kind == "u" and len(array) and array.max() > np.iinfo(np.int64).max:
        array = array.astype(np.float64)  # beyond int64: refused below as out of range
    if array.dtype.kind in "iu":
        ints = array.astype(np.int64)
        divisor = _UNIX_DIVISOR[time_format]
        if divisor < 0:
            limit = np.iinfo(np.int64).max // -divisor
            bad = np.abs(ints) > limit
            if bad.any():
                k = int(np.argmax(bad))
                raise where.error(first_row + k, _bad_time_text(values.iloc[k], time_format, col))
            return ints * -divisor
        return ints // divisor
    floats = array.astype(np.float64)
    ms = floats * _UNIX_TO_MS[time_format]
    bad = ~np.isfinite(ms) | (np.abs(ms) >= 9.2e18)
    if bad.any():
        k = int(np.argmax(bad))
        raise where.error(first_row + k, _bad_time_text(values.iloc[k], time_format, col))
    return np.rint(ms).astype(np.int64)


def _ratings(values: pd.Series, col: str, first_row: int, where: _Where) -> np.ndarray:
    numbers = values if pd.api.types.is_numeric_dtype(values.dtype) else pd.to_numeric(values, errors="coerce")
    array = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(array)
    if bad.any():
        k = int(np.argmax(bad))
        raise where.error(first_row + k, f"rating {_shown(values.iloc[k])} in column {col!r} is not a number")
    return array


# ---------------------------------------------------------------- the rating rule
def apply_min_rating(result: ReadResult) -> tuple[Interactions, dict[str, Any] | None]:
    """Keep rows whose rating is at least ``min_rating`` (a no-op without one); returns the step record."""
    table, threshold = result.table, result.read["min_rating"]
    if threshold is None or result.rating is None:
        return table, None
    kept = table.take(result.rating >= threshold)
    return kept, {"rule": f"ratings of at least {threshold:g}", **kept.counts()}


# ---------------------------------------------------------------- preprocess interactions
@dataclass
class InteractionsResult:
    """What :func:`preprocess_interactions` wrote, for the report."""

    split: str
    read: dict[str, Any]
    steps: list[dict[str, Any]]  # what each rule left (and for session-time, what the time splits dropped)
    splits: dict[str, dict[str, int]]  # processed split -> sequences, events
    items: int
    users: int | None  # leave-one-out: users (lines)
    out_dir: Path
    vocab_file: Path
    extra: dict[str, Any] = field(default_factory=dict)


def default_name(path: Path | str) -> str:
    """A data set name from a file name: ``clicks.csv.gz`` -> ``clicks``."""
    name = Path(str(path)).name
    lower = name.lower()
    for ext in _COMPRESSED_EXT:
        if lower.endswith(ext):
            name, lower = name[: -len(ext)], lower[: -len(ext)]
    stem = name.rsplit(".", 1)[0] if "." in name.strip(".") else name
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip(".-")
    return stem or "interactions"


def preprocess_interactions(
    path: Path | str,
    split: str,
    out_dir: Path,
    vocab_file: Path,
    *,
    name: str,
    spec: ReadSpec = ReadSpec(),
    loo: ml1m.LeaveOneOutParams = ml1m.LeaveOneOutParams(),
    session: rsc15.SessionSplitParams = rsc15.SessionSplitParams(valid_window_ms=0),
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> InteractionsResult:
    """Read an interaction file and write the processed folder with ``split`` (``leave-one-out`` or
    ``session-time``). Everything is read and checked before anything is written."""
    if split not in SPLITS:
        raise SeqrecError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}")
    result = read_interactions(path, spec, progress)
    table, rating_step = apply_min_rating(result)
    steps: list[dict[str, Any]] = [{"rule": "read", **result.table.counts()}]
    if rating_step is not None:
        steps.append(rating_step)
        if rating_step["interactions"] == 0:
            raise BadInputError(result.source.name, f"nothing is left after the rule '{rating_step['rule']}' (lower --min-rating)")
    if split == LEAVE_ONE_OUT:
        return _leave_one_out(result, table, steps, out_dir, vocab_file, name, loo)
    steps = [{"rule": s["rule"], "events": s["interactions"], "sessions": s["users"], "items": s["items"]} for s in steps]
    return _session_time(result, table, steps, out_dir, vocab_file, name, session, log)


def _leave_one_out(
    result: ReadResult,
    table: Interactions,
    steps: list[dict[str, Any]],
    out_dir: Path,
    vocab_file: Path,
    name: str,
    params: ml1m.LeaveOneOutParams,
) -> InteractionsResult:
    loo = ml1m.build_sequences(table, params)
    steps = steps + loo.steps[1:]
    ml1m.check_not_empty(loo, result.source.name)
    full = loo.full
    counts = {
        "users": len(loo.users),
        "items": len(loo.vocab),
        "interactions": full.n_events,
        "mean_length": round(float(full.lengths.mean()), 2),
        "rows": len(result.table),
        **loo.counts,
        "steps": steps,
    }
    ml1m.save_leave_one_out(
        loo,
        out_dir,
        vocab_file,
        name=name,
        inputs=[result.source.record()],
        params={
            "protocol": "leave-one-out (docs/protocols.md §2)",
            "split": LEAVE_ONE_OUT,
            "read": result.read,
            **asdict(params),
            "order": "users and items in id order (read.id_order); each user's items by time, ties in file order",
        },
        counts=counts,
    )
    n = len(loo.users)
    return InteractionsResult(
        LEAVE_ONE_OUT,
        result.read,
        steps,
        {"train": {"sequences": n, "events": full.n_events - 2 * n}, "valid": {"sequences": n, "events": full.n_events - n},
         "test": {"sequences": n, "events": full.n_events}},
        len(loo.vocab),
        n,
        out_dir,
        vocab_file,
        {"mean_length": counts["mean_length"]},
    )


def _session_time(
    result: ReadResult,
    table: Interactions,
    steps: list[dict[str, Any]],
    out_dir: Path,
    vocab_file: Path,
    name: str,
    params: rsc15.SessionSplitParams,
    log: Callable[[str], None] | None,
) -> InteractionsResult:
    where = result.source.name
    events = rsc15.Events(table.user, table.item, table.time)
    try:
        filtered = rsc15.filter_sessions(events, log or (lambda _: None), params)
        rsc15.check_train_tr(filtered, params)  # with --valid-days the model trains on train_tr
    except rsc15.EmptyResultError as exc:
        raise BadInputError(where, f"{exc} ({_empty_hint(str(exc))})") from None
    del events
    steps = steps + filtered.steps[1:]
    validating = params.valid_window_ms > 0
    train_name = "train_tr" if validating else "train_full"
    wanted = {"train": train_name, **({"valid": "train_valid"} if validating else {}), "test": "test"}
    for split, source_split in wanted.items():
        if split != "train" and len(filtered.splits[source_split]) == 0:
            rule = next(s["rule"] for s in filtered.steps if s["rule"].startswith("step 7" if split == "valid" else "steps 5-6"))
            raise BadInputError(
                where,
                f"no {source_split} session is left after the rule '{rule}' (items unseen in training dropped, then sessions "
                f"under {params.min_session_length} events): widen --{'valid' if split == 'valid' else 'test'}-days",
            )
    tokens = table.items.tokens()
    lines: dict[str, rsc15.TokenLines] = {}
    for split, source_split in wanted.items():
        seqs = rsc15.sessions_from_events(filtered.splits[source_split])
        lines[split] = rsc15.TokenLines(tokens[seqs.tokens], seqs.offsets)
    mapped = rsc15.text2id(lines["train"], {k: v for k, v in lines.items() if k != "train"})
    for split in wanted:
        if split != "train" and len(mapped.splits[split].sequences) == 0:
            raise BadInputError(
                where, f"no {split} session keeps 2 or more items known to the vocabulary of {train_name} (the training split)"
            )
    splits = {k: mapped.splits[k].sequences for k in ("train", "valid", "test") if k in mapped.splits}
    day = DAY_MS
    save_processed(
        out_dir,
        dataset=name,
        eval_target="all",
        vocab_file=vocab_file,
        vocab=mapped.vocab,  # written with the data folder, as one unit
        splits=splits,
        inputs=[result.source.record()],
        params={
            "protocol": "session-time (GRU4Rec RSC15 rules, docs/protocols.md §3)",
            "split": SESSION_TIME,
            "read": result.read,
            "min_session_length": params.min_session_length,
            "min_item_support": params.min_item_support,
            "test_days": params.test_window_ms / day,
            "valid_days": params.valid_window_ms / day,
            "train_split": train_name,
            "vocabulary": f"distinct items of {train_name} only",
            "vocab_order": mapped.order,
            "unknown_items": "dropped from valid/test, then sessions under 2 items dropped",
            "order": "sessions in session id order (read.id_order); items by time, ties in file order",
        },
        counts={
            "items": len(mapped.vocab),
            "rows": len(result.table),
            "steps": steps,
            "time_splits": filtered.counts,
            **{k: mapped.splits[k].counts for k in splits},
        },
    )
    return InteractionsResult(
        SESSION_TIME,
        result.read,
        steps,
        {k: {"sequences": len(v), "events": v.n_events} for k, v in splits.items()},
        len(mapped.vocab),
        None,
        out_dir,
        vocab_file,
        {"time_splits": filtered.counts, "mapped": {k: mapped.splits[k].counts for k in splits}, "train_split": train_name},
    )


def _empty_hint(message: str) -> str:
    """The option that loosens the session-time rule named in ``message``."""
    if "step 3" in message:
        return "lower --min-item-support"
    if "step 2" in message or "step 4" in message:
        return "lower --min-session-length"
    if "train_tr" in message:
        return "lower --valid-days"
    return "lower --test-days"


# ---------------------------------------------------------------- raw-id sequences (recommend --input FILE)
@dataclass
class RawSequences:
    """Interactions grouped into time-ordered sequences of raw item ids, ids kept as strings."""

    ids: list[str]  # the user / session id of each sequence, in order of first appearance in the file
    sequences: list[list[str]]  # raw item ids of each, oldest first (equal times: file order)
    read: dict[str, Any]  # how the file was read (format, separator, columns, time format, ...)
    rows: int  # rows read
    rows_dropped: int  # rows below min_rating (when the spec has one)


def read_sequences(path: Path | str, spec: ReadSpec | None = None, *, manifest: Any = None, stdin: BinaryIO | None = None) -> RawSequences:
    """Read an interaction file (CSV / TSV / Parquet / compressed, ``-`` = standard input) into raw-id
    sequences grouped by user or session and ordered by time.

    ``spec`` defaults to the reading recorded in ``manifest`` (the training data's manifest, a
    ``DatasetManifest`` or dict; see :func:`spec_from_manifest`), so a file of the same kind
    needs no options. Raises ``BadInputError`` / ``MissingInputError`` (both ``SeqrecError``)
    naming the file, line or row and value, as ``preprocess interactions`` does.
    """
    if spec is None:
        spec = spec_from_manifest(manifest)
    result = read_interactions(path, spec, stdin=stdin)
    table, step = apply_min_rating(result)
    if len(table) == 0:
        raise BadInputError(result.source.name, f"no interaction is left after the rule '{step['rule'] if step else 'read'}'")
    present, first = np.unique(table.user, return_index=True)
    by_appearance = present[np.argsort(first, kind="stable")]  # user codes in order of first appearance
    rank = np.zeros(len(table.users), dtype=np.int64)
    rank[by_appearance] = np.arange(len(by_appearance), dtype=np.int64)
    group = rank[table.user]
    order = np.lexsort((np.arange(len(table)), table.time, group))  # group, then time, then file order
    group, items = group[order], table.item[order]
    starts = np.flatnonzero(np.diff(group, prepend=-1))
    ends = np.append(starts[1:], len(group))
    raw_items = table.items.raw[items]
    ids = table.users.raw[by_appearance].tolist()
    sequences = [raw_items[a:z].tolist() for a, z in zip(starts, ends)]
    return RawSequences(ids, sequences, result.read, len(result.table), len(result.table) - len(table))


def to_index_sequences(raw: RawSequences, vocab: list[str]) -> tuple[Sequences, list[int], int]:
    """Map raw sequences through a vocabulary (line i = index i): (sequences of known items, the
    positions of sequences left with no known item (given the placeholder [1]), unknown item count)."""
    index = {raw_id: i + 1 for i, raw_id in enumerate(vocab)}
    seqs, empty, unknown = [], [], 0
    for k, items in enumerate(raw.sequences):
        mapped = [index[t] for t in items if t in index]
        unknown += len(items) - len(mapped)
        if not mapped:
            empty.append(k)
            mapped = [1]
        seqs.append(mapped)
    return Sequences.from_lists(seqs), empty, unknown
