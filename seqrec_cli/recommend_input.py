"""What ``seqrec recommend --input FILE`` reads, and the lists it writes.

**Input**: one of two kinds of file, chosen by ``--input-format`` (docs/formats.md, *recommend*):

* ``lines``: one sequence per line, raw item ids separated by whitespace, oldest first; the id
  of each output row is the line number. Read through the shared text reader (``textio``):
  UTF-8, a BOM skipped, LF / CRLF / CR line ends, trailing blank lines ignored, a blank line
  before the last record refused (line i is sequence i).
* ``interactions``: a file of the kinds ``preprocess interactions`` reads (CSV / TSV / any
  separator, Parquet, gzip / zstd / bz2 / xz text; user or session, item and time columns),
  read by :func:`interactions.read_sequences` with the reading recorded in the training data's
  manifest (``params.read``), options overriding it: grouped by user or session (groups in
  order of first appearance), each group ordered by time (ties in file order).
* ``auto`` (the default) decides by these rules, in order, and never by the file name:

  1. an option saying how to read columns was given (``--item-col``, ``--sep``, ...) -> interactions;
  2. Parquet (``PAR1``) or compressed (gzip, zstd, bzip2, xz magic bytes) -> interactions;
  3. the first non-blank line is a header naming the group (user / session), item and time
     columns of the reading -> interactions;
  4. the first non-blank line holds the reading's field separator (the manifest's, or for data
     read by another command tab, ``::``, comma, ``;`` or ``|``; never a space) -> refused as
     ambiguous (an interaction file without a header, or ids holding that character), naming
     the two ``--input-format`` values that settle it;
  5. otherwise -> lines.

``-`` reads standard input (read once into memory, then treated as a file).

**Mapping**: items outside the model's vocabulary are skipped and counted; a sequence left with
no known item gets the popularity ranking (training counts of the data the model was trained
on, ties in vocabulary order, as ``evaluate --baseline popularity``) and is flagged.

**Output** (:func:`write_recommendations`): ``tsv`` (header ``id<TAB>items``), ``csv`` (``id,items``)
or ``jsonl`` (``{"id": ..., "items": [...], "source": "model"|"popularity"}`` per line). Items are
raw ids, best first; in tsv / csv separated by single spaces. When at least one row got the
popularity ranking, tsv and csv carry a third column ``source`` (``model`` or ``popularity``);
jsonl always does. Written atomically (``fileio.atomic_path``), or to standard output for ``-``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import numpy as np

from . import textio
from .errors import BadInputError, MissingInputError, SeqrecError
from .fileio import atomic_path
from .sequences import Sequences

AUTO, LINES, INTERACTIONS = "auto", "lines", "interactions"
INPUT_FORMATS = (AUTO, LINES, INTERACTIONS)
OUTPUT_FORMATS = ("tsv", "csv", "jsonl")
MODEL, POPULARITY = "model", "popularity"  # where a row's list came from (the `source` column)
STDIN_NAME = "<stdin>"
_PEEK = 1 << 16  # bytes looked at to tell the kind of file
_SNIFF_SEPS = ("\t", "::", ",", ";", "|")  # the separators preprocess interactions tries, in its order
_MAGIC = ((b"PAR1", "Parquet"), (b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"))


@dataclass
class NewSequences:
    """What ``--input`` held: raw-id sequences with their ids, and how the file was read."""

    name: str  # the file as messages name it (<stdin> for -)
    kind: str  # LINES or INTERACTIONS
    ids: list[str]  # the id of each sequence: line number (lines) or the user / session id
    sequences: list[list[str]]  # raw item ids, oldest first
    rows: int  # lines or interaction rows read
    read: dict[str, Any] | None = None  # interactions: how the file was read (as params.read)
    rows_dropped: int = 0  # interactions: rows below the rating threshold
    notes: list[str] = field(default_factory=list)  # things the reader decided that the user should hear

    @property
    def events(self) -> int:
        return sum(len(s) for s in self.sequences)


# ---------------------------------------------------------------- reading
def read_input(
    path: Path | str,
    input_format: str = AUTO,
    *,
    manifest: Any = None,
    overrides: Mapping[str, Any] | None = None,
    stdin: BinaryIO | None = None,
) -> NewSequences:
    """Read ``--input`` (``-`` = standard input) as raw-id lines or an interaction file (module doc).

    ``manifest``: the training data's manifest (its ``params.read`` is the default reading);
    ``overrides``: the reading options given on the command line (``ReadSpec`` field -> value,
    ``None`` = not given). Raises ``MissingInputError`` / ``BadInputError`` naming the file and
    the line (or Parquet row).
    """
    if input_format not in INPUT_FORMATS:
        raise SeqrecError(f"--input-format must be one of {', '.join(INPUT_FORMATS)}, not {input_format!r}")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if given and input_format == LINES:
        raise SeqrecError(f"{_options(given)} {'apply' if len(given) > 1 else 'applies'} to interaction files, not --input-format lines")
    name, data = _source(path, stdin)
    head = data[:_PEEK] if data is not None else _head(Path(path))
    magic = next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)
    kind = input_format
    if kind == AUTO:
        kind = INTERACTIONS if given or magic else _sniff(name, head, _spec(manifest, given))
    if kind == LINES:
        if magic is not None:
            raise BadInputError(name, f"a {magic} file, not raw-id lines; give --input-format interactions (or auto)")
        return _read_lines(name, path, data)
    return _read_interactions(name, path, data, head, magic, manifest, given)


def _options(given: Mapping[str, Any]) -> str:
    return ", ".join("--" + k.replace("_", "-") for k in given)


def _source(path: Path | str, stdin: BinaryIO | None) -> tuple[str, bytes | None]:
    """(name for messages, the bytes of standard input or None for a file, which must exist)."""
    if str(path) == "-":
        return STDIN_NAME, (stdin or sys.stdin.buffer).read()
    path = Path(path)
    if not path.exists():
        raise MissingInputError(path, what="input file")
    if path.is_dir():
        raise BadInputError(path, "is a folder; expected an input file")
    return str(path), None


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(_PEEK)


def _first_line(head: bytes) -> str | None:
    """The first non-blank line of the peeked bytes (BOM dropped, any line end), or None."""
    text = textio.normalize_line_ends(head.removeprefix(textio.BOM)).decode("utf-8", errors="replace")
    return next((line for line in text.split("\n") if line.strip()), None)


def _spec(manifest: Any, given: Mapping[str, Any]):
    from .datasets.interactions import spec_from_manifest

    return spec_from_manifest(manifest, **given)


def _split(line: str, sep: str) -> list[str]:
    fields = next(csv.reader([line], delimiter=sep)) if len(sep) == 1 else line.split(sep)
    return [f.strip() for f in fields]


def _header_sep(line: str, spec: Any, name: str) -> str | None:
    """The separator that makes ``line`` a header naming the reading's group, item and time
    columns, or None when it is not such a header."""
    from .datasets.interactions import _sep_from_name, parse_sep

    if spec.sep is not None:
        candidates = [parse_sep(spec.sep)]
    else:
        by_name = _sep_from_name(name)
        candidates = [s for s in ((by_name,) if by_name else ()) + _SNIFF_SEPS if s in line][:1]
    for sep in candidates:
        names = _split(line, sep)
        group = [spec.user_col] if spec.user_col else ["user", "session"]
        if spec.item_col in names and spec.time_col in names and any(g in names for g in group):
            return sep
    return None


def _sniff(name: str, head: bytes, spec: Any) -> str:
    """Rules 3-5 of ``auto`` on the first non-blank line of a text file."""
    line = _first_line(head)
    if line is None:
        return LINES  # empty: the lines reader says so
    if _header_sep(line, spec, name) is not None:
        return INTERACTIONS
    from .datasets.interactions import parse_sep

    seps = [parse_sep(spec.sep)] if spec.sep is not None else list(_SNIFF_SEPS)
    found = next((s for s in seps if s != " " and s in line), None)
    if found is not None:
        shown = {"\t": "a tab", ",": "a comma", ";": "a semicolon", "|": "a '|'"}.get(found, repr(found))
        where = "the training data's separator" if spec.sep is not None else "a separator"
        raise BadInputError(
            name,
            f"cannot tell whether this is an interaction file without a header or raw-id lines (the first line holds "
            f"{shown}, {where}, and names no columns); give --input-format interactions or --input-format lines",
            line=_line_no(head, line),
        )
    return LINES


def _line_no(head: bytes, line: str) -> int:
    text = textio.normalize_line_ends(head.removeprefix(textio.BOM)).decode("utf-8", errors="replace")
    return text.split("\n").index(line) + 1


def _read_lines(name: str, path: Path | str, data: bytes | None) -> NewSequences:
    blank = "empty line (every line must hold at least one item id)"  # line i is sequence i
    if data is None:
        lines = textio.read_lines(path, what="input file", blank=blank)
    else:  # standard input, under the same policy as textio.read_lines
        data = textio.drop_trailing_blank_lines(textio.normalize_line_ends(data.removeprefix(textio.BOM)))
        textio.check_decodes(name, data)
        text = data.decode("utf-8")
        lines = text.removesuffix("\n").split("\n") if text else []
        for no, line in enumerate(lines, start=1):
            if not line.strip():
                raise BadInputError(name, blank, line=no)
    if not lines:
        raise BadInputError(name, "empty input file")
    return NewSequences(name, LINES, [str(i + 1) for i in range(len(lines))], [line.split() for line in lines], len(lines))


def _read_interactions(
    name: str, path: Path | str, data: bytes | None, head: bytes, magic: str | None, manifest: Any, given: Mapping[str, Any]
) -> NewSequences:
    from .datasets import interactions as lib

    spec = lib.spec_from_manifest(manifest, **given)
    notes: list[str] = []
    columns: list[str] | None = None
    if magic == "Parquet":
        columns = _parquet_columns(name, path, data)
    elif magic is None:
        line = _first_line(head)
        sep = _header_sep(line, spec, name) if line is not None else None
        if sep is not None:
            columns = _split(line, sep)  # type: ignore[arg-type]
            if spec.columns is not None and "columns" not in given:
                spec = replace(spec, columns=None)  # training file had no header, this one has
        elif spec.columns is not None:
            columns = list(spec.columns)
    if spec.rating_col is not None and "rating_col" not in given and columns is not None and spec.rating_col not in columns:
        rule = f"ratings of at least {spec.min_rating:g}" if spec.min_rating is not None else "the rating column"
        notes.append(f"{name} has no column {spec.rating_col!r}: read without the training data's rule '{rule}'")
        spec = replace(spec, rating_col=None, min_rating=None)
    stream = io.BytesIO(data) if data is not None else None
    raw = lib.read_sequences(path, spec, stdin=stream)
    return NewSequences(name, INTERACTIONS, raw.ids, raw.sequences, raw.rows, raw.read, raw.rows_dropped, notes)


def _parquet_columns(name: str, path: Path | str, data: bytes | None) -> list[str] | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return list(pq.ParquetFile(io.BytesIO(data) if data is not None else str(path)).schema_arrow.names)
    except (pa.ArrowException, OSError):
        return None  # the reader names the problem


# ---------------------------------------------------------------- mapping and the fallback
@dataclass
class Mapped:
    """The new sequences as item indices of the model's vocabulary."""

    seqs: Sequences  # a placeholder [1] where no item is known (its list is replaced)
    fallback: list[int]  # positions of the sequences with no known item
    unknown: int  # item occurrences outside the vocabulary (skipped)
    events: int  # item occurrences read
    unknown_ids: int  # distinct unknown item ids


def map_to_vocab(new: NewSequences, vocab: list[str]) -> Mapped:
    from .datasets.interactions import RawSequences, to_index_sequences

    seqs, empty, unknown = to_index_sequences(RawSequences(new.ids, new.sequences, new.read or {}, new.rows, 0), vocab)
    known = set(vocab)
    distinct = len({t for s in new.sequences for t in s if t not in known})
    return Mapped(seqs, empty, unknown, new.events, distinct)


def popularity_ranking(train: Sequences, n_items: int, top_k: int) -> np.ndarray:
    """The ``top_k`` item indices most frequent in the training split, ties in vocabulary order."""
    from .data.sampling import popularity

    counts = popularity(train.items, n_items)[1:]  # items 1..n
    return np.argsort(-counts, kind="stable")[:top_k] + 1


# ---------------------------------------------------------------- writing
def output_format(fmt: str | None, output: Path | str | None) -> str:
    """``--format``, else the extension of ``--output`` (.csv, .jsonl / .json), else tsv."""
    if fmt is not None:
        if fmt not in OUTPUT_FORMATS:
            raise SeqrecError(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}")
        return fmt
    suffix = Path(str(output)).suffix.lower() if output is not None else ""
    return {".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}.get(suffix, "tsv")


def write_recommendations(
    dest: Path | str, fmt: str, ids: list[str], items: list[list[str]], sources: list[str] | None = None
) -> None:
    """One row per id: its items, best first (module doc). ``dest`` ``-`` is standard output;
    a file is replaced atomically. ``sources``: ``model`` / ``popularity`` per row (None: all model)."""
    flagged = sources is not None and POPULARITY in sources
    srcs = sources or [MODEL] * len(ids)
    if str(dest) == "-":
        _write(sys.stdout, fmt, ids, items, srcs, flagged)
        sys.stdout.flush()
        return
    with atomic_path(dest) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            _write(fh, fmt, ids, items, srcs, flagged)


def _write(fh: TextIO, fmt: str, ids: list[str], items: list[list[str]], sources: list[str], flagged: bool) -> None:
    if fmt == "jsonl":
        for ident, rec, src in zip(ids, items, sources):
            fh.write(json.dumps({"id": ident, "items": rec, "source": src}, ensure_ascii=False) + "\n")
        return
    header = ["id", "items"] + (["source"] if flagged else [])
    if fmt == "tsv":  # ids hold no tab or line break (users.txt, the readers refuse them); items no whitespace
        fh.write("\t".join(header) + "\n")
        for ident, rec, src in zip(ids, items, sources):
            fh.write("\t".join([ident, " ".join(rec)] + ([src] if flagged else [])) + "\n")
        return
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(header)
    for ident, rec, src in zip(ids, items, sources):
        writer.writerow([ident, " ".join(rec)] + ([src] if flagged else []))
