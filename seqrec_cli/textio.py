"""The one text reader: every text file seqrec reads goes through here, with one policy.

* **Encoding**: UTF-8, or Latin-1 where a format documents it (MovieLens ``ratings.dat``). A
  UTF-8 byte-order mark at the start is dropped. A byte that does not decode is
  ``Error: <file>:<line>: not valid UTF-8 (byte 0xNN in column C); save the file as UTF-8``.
* **Line ends**: LF, CRLF and a lone CR (classic Mac, some spreadsheet exports) all end a line,
  and may be mixed; the text handed on has LF only, so line numbers are those an editor shows.
  The last line may lack its line end.
* **Blank lines**: blank (empty or whitespace-only) lines at the *end* of a file are ignored,
  in every file. A blank line before the last record is the reader's caller to judge: files in
  which line i means sequence, item or user i refuse it (:func:`read_lines` with the default
  ``blank``), event tables skip it.

Readers: :func:`read_text` (str), :func:`read_text_bytes` (the same as bytes, for numpy/pandas
parsers of large files), :func:`read_lines`, :func:`read_json` (decoded here, then parsed), and
:func:`iter_line_blocks` for files too large to hold (the raw clicks). Each raises
:class:`MissingInputError` for an absent file and :class:`BadInputError` (``<file>:<line>: ...``)
for a bad one; nothing else a user can cause escapes.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from .errors import BadInputError, MissingInputError

BOM = b"\xef\xbb\xbf"
ENCODINGS = ("utf-8", "latin-1")  # latin-1: only where a format documents it (MovieLens)
BLOCK = 32 << 20  # bytes per block in iter_line_blocks
_BLANK = b" \t\n"  # what a blank line may hold once line ends are LF


def _check_encoding(encoding: str) -> str:
    enc = encoding.lower().replace("_", "-")
    if enc in ("utf8", "utf-8-sig"):
        enc = "utf-8"
    if enc in ("latin1", "iso-8859-1"):
        enc = "latin-1"
    if enc not in ENCODINGS:
        raise ValueError(f"seqrec reads text as one of {ENCODINGS}, not {encoding!r}")
    return enc


def _open_bytes(path: Path, what: str, make_with: str | None) -> bytes:
    if not path.exists():
        raise MissingInputError(path, make_with, what=what)
    if path.is_dir():
        raise BadInputError(path, f"is a folder; expected a {what}")
    return path.read_bytes()


def normalize_line_ends(data: bytes) -> bytes:
    """CRLF and lone CR -> LF (one LF per line end, so line numbers are kept)."""
    if b"\r" not in data:
        return data
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def drop_trailing_blank_lines(data: bytes) -> bytes:
    """Cut blank (whitespace-only) lines at the end; the last real line keeps its line end."""
    end = len(data.rstrip(_BLANK))
    if end == len(data) or end == 0:
        return data[:end]
    eol = data.find(b"\n", end)
    return data[: eol + 1] if eol >= 0 else data


def check_decodes(path: Path | str, data: bytes, encoding: str = "utf-8", first_line: int = 1) -> None:
    """Raise ``BadInputError(path:line)`` at the first byte of ``data`` that ``encoding`` cannot decode.

    ``data`` must have LF line ends; ``first_line`` is the number of its first line in the file.
    """
    if _check_encoding(encoding) == "latin-1" or data.isascii():
        return  # every byte is Latin-1
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + data.count(b"\n", 0, exc.start)
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise BadInputError(
            path, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} in column {column}); save the file as UTF-8", line=line
        ) from None


def read_text_bytes(
    path: Path | str, *, encoding: str = "utf-8", what: str = "file", make_with: str | None = None
) -> bytes:
    """A text file as bytes under the policy above: no BOM, LF line ends only, no trailing blank
    lines, checked to decode in ``encoding``. ``b""`` for a file with nothing but blank lines.

    Raises MissingInputError (absent; ``what``/``make_with`` word the message), BadInputError
    (a folder, or a byte that does not decode: ``<file>:<line>``).
    """
    path = Path(path)
    data = _open_bytes(path, what, make_with).removeprefix(BOM)
    data = drop_trailing_blank_lines(normalize_line_ends(data))
    check_decodes(path, data, encoding)
    return data


def read_text(path: Path | str, *, encoding: str = "utf-8", what: str = "file", make_with: str | None = None) -> str:
    """:func:`read_text_bytes`, decoded."""
    return read_text_bytes(path, encoding=encoding, what=what, make_with=make_with).decode(_check_encoding(encoding))


def read_lines(
    path: Path | str,
    *,
    encoding: str = "utf-8",
    what: str = "file",
    make_with: str | None = None,
    blank: str | None = "blank line",
) -> list[str]:
    """The lines of a text file, without line ends (``[]`` for an empty file).

    ``blank``: the problem reported for a blank line before the last record (``<file>:<line>:
    <blank>``); ``None`` returns such lines as they are. Trailing blank lines are always dropped.
    """
    text = read_text(path, encoding=encoding, what=what, make_with=make_with)
    if not text:
        return []
    lines = text.removesuffix("\n").split("\n")
    if blank is not None:
        for no, line in enumerate(lines, start=1):
            if not line.strip():
                raise BadInputError(path, blank, line=no)
    return lines


# ---------------------------------------------------------------- JSON
_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')


class _JsonProblem(ValueError):
    def __init__(self, problem: str, key: str | None = None, constant: bool = False):
        super().__init__(problem)
        self.problem, self.key, self.constant = problem, key, constant


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _JsonProblem(f"key {json.dumps(key)} given twice", key=key)
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise _JsonProblem(f"{name} is not a JSON number (JSON has no NaN or Infinity)", constant=True)


def _line_of(text: str, pos: int | None) -> int | None:
    return None if pos is None else text.count("\n", 0, pos) + 1


def read_json(path: Path | str, *, what: str = "JSON file", make_with: str | None = None) -> Any:
    """Decode a JSON file with the text reader (UTF-8, BOM, any line ends), then parse it strictly.

    Refused, as ``BadInputError`` naming the file and line: invalid JSON, an empty file,
    ``NaN``/``Infinity`` (not JSON numbers), and a key given twice in one object (Python's json
    would silently keep the last). The result is whatever the file holds; checking its shape and
    types is the caller's job.
    """
    path = Path(path)
    text = read_text(path, what=what, make_with=make_with)
    if not text.strip():
        raise BadInputError(path, "empty file (expected JSON)")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise BadInputError(path, f"not valid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    except _JsonProblem as exc:
        pos = None  # json does not say where: find the spot in the text (best effort)
        if exc.constant:
            pos = next((m.start(1) for m in _CONSTANT.finditer(text) if m.group(1)), None)
        elif exc.key is not None:
            hits = [m.start() for m in re.finditer(re.escape(json.dumps(exc.key)) + r"\s*:", text)]
            pos = hits[1] if len(hits) > 1 else None
        raise BadInputError(path, f"not valid JSON: {exc.problem}", line=_line_of(text, pos)) from None


# ---------------------------------------------------------------- large files, a block at a time
def iter_line_blocks(
    path: Path | str,
    *,
    encoding: str = "utf-8",
    block: int = BLOCK,
    progress: Callable[[int], None] | None = None,
    digest: Any = None,
    what: str = "file",
    make_with: str | None = None,
    stream: BinaryIO | None = None,
) -> Iterator[tuple[int, bytes]]:
    """The file as blocks of whole lines under the policy above (no BOM, LF line ends, checked to
    decode), each with the number of its first line; the last block ends with a line end too.

    For files too large to hold at once. Blank lines are passed on (trailing ones included): the
    caller decides. ``progress`` gets the number of raw bytes read, ``digest`` (a hashlib object)
    every raw byte, so a checksum of the file costs no second read. ``stream``: read these bytes
    (an open binary stream, e.g. decompressed) instead of opening ``path``, which then only
    names the input in errors; the caller closes it.
    """
    path = Path(path)
    if stream is None and not path.exists():
        raise MissingInputError(path, make_with, what=what)
    if stream is None and path.is_dir():
        raise BadInputError(path, f"is a folder; expected a {what}")
    line_no = 1
    with open(path, "rb") if stream is None else contextlib.nullcontext(stream) as fh:

        def read(size: int) -> bytes:
            data = fh.read(size)
            if progress is not None:
                progress(len(data))
            if digest is not None:
                digest.update(data)
            return data

        rest = read(len(BOM))
        rest = b"" if rest == BOM else rest
        while chunk := read(block):
            data = rest + chunk
            hold = 1 if data.endswith(b"\r") else 0  # maybe the CR of a CRLF cut by the block edge
            data, held = normalize_line_ends(data[: len(data) - hold]), data[len(data) - hold :]
            cut = data.rfind(b"\n") + 1
            out, rest = data[:cut], data[cut:] + held
            if out:
                check_decodes(path, out, encoding, line_no)
                yield line_no, out
                line_no += out.count(b"\n")
    if rest:  # the last line, without its line end (or a lone CR)
        out = normalize_line_ends(rest)
        out = out if out.endswith(b"\n") else out + b"\n"
        check_decodes(path, out, encoding, line_no)
        yield line_no, out


class ProgressLater:
    """A progress callback for a reading thread: ``self(n)`` counts there, :meth:`report` hands the
    count so far to ``progress`` in the caller's thread (progress displays are not thread-safe)."""

    def __init__(self, progress: Callable[[int], None] | None):
        self.progress, self.count, self.reported = progress, 0, 0

    def __call__(self, n: int) -> None:
        self.count += n

    def report(self) -> None:
        count = self.count
        if self.progress is not None and count > self.reported:
            self.progress(count - self.reported)
        self.reported = count


def read_ahead(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """The items of ``items`` in order, produced by a background thread up to ``depth`` ahead.

    For :func:`iter_line_blocks`: the next block is read, line-end normalised, checked to decode
    and hashed (``hashlib`` and file reads release the GIL) while the caller parses this one
    (give it a :class:`ProgressLater` as ``progress``).
    An exception of the producer is raised here, at the item where it happened; when the caller
    stops early the producer stops too and its generator is closed (the file with it).
    """
    import queue
    import threading

    box: queue.Queue[tuple[bool, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                box.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((False, item)):
                    return
            put((True, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((True, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="seqrec-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            done, value = box.get()
            if done:
                if value is not None:
                    raise value
                return
            yield value
    finally:
        stop.set()
        worker.join()
