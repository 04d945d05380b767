"""Interaction tables with raw ids kept verbatim: what every reader hands the split protocols.

A reader (``ml1m.read_ratings`` for ``ratings.dat``, ``interactions.read_interactions`` for CSV /
TSV / Parquet) returns an :class:`Interactions`: one row per interaction **in file order**, the
user (or session) and item of each row as integer codes into sorted tables of the raw id strings,
exactly as the file writes them: ``0108775015`` stays ``0108775015`` and ``42`` and ``0042`` are
two ids. Codes follow the order below, so sorting by code is sorting by raw id.

Id order (the vocabulary's, and the order of the user lines) is decided once per column over
every id of the input file, before any filter:

* **numeric** when every id is the canonical decimal text of a non-negative integer (digits only,
  no sign, no leading zero, at most 18 digits: ``0``, ``7``, ``3952``), which keeps every
  existing MovieLens / YOOCHOOSE vocabulary exactly as before;
* **lexicographic** (by Unicode code point, Python's string order) otherwise:
  ``0042`` < ``42`` < ``B00ZT0SSG1`` < ``sku:AB-99`` < ``x-ä``.

``text2id`` orders its vocabulary by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

NUMERIC = "numeric"
LEXICOGRAPHIC = "lexicographic"
CANONICAL_INT = r"0|[1-9][0-9]{0,17}"  # a non-negative int64 written plainly, without leading zeros


def id_order(raw: np.ndarray | list[str]) -> str:
    """``numeric`` if every id is a canonical non-negative integer, else ``lexicographic``."""
    values = pd.Series(raw, dtype=object)
    if len(values) and not bool(values.str.fullmatch(CANONICAL_INT).all()):
        return LEXICOGRAPHIC
    return NUMERIC


@dataclass
class IdTable:
    """Distinct raw ids in their sorted order: code ``c`` stands for ``raw[c]``."""

    raw: np.ndarray  # object [n] of str, sorted by `order`
    order: str  # NUMERIC or LEXICOGRAPHIC

    def __len__(self) -> int:
        return len(self.raw)

    def tokens(self) -> np.ndarray:
        """The ids as int64 values when the order is numeric, else as strings (object)."""
        return self.raw.astype(np.int64) if self.order == NUMERIC else self.raw

    def take(self, codes: np.ndarray) -> list[str]:
        return self.raw[codes].tolist()


class IdCoder:
    """Codes ids chunk by chunk, then renumbers them in sorted order.

    ``add`` returns provisional codes (each chunk numbers its own distinct ids); ``finish``
    returns the :class:`IdTable` and the array that maps a provisional code to its final one,
    the rank of its id in the order above. Memory: each chunk's distinct ids until ``finish``.
    """

    def __init__(self) -> None:
        self._uniques: list[Any] = []  # the distinct ids of each chunk, strings
        self._count = 0  # provisional codes handed out

    def add(self, values: pd.Series | np.ndarray) -> np.ndarray:
        """Provisional int64 codes of ``values`` (strings, no missing values)."""
        codes, uniques = pd.factorize(np.asarray(values, dtype=object) if isinstance(values, np.ndarray) else values)
        return self.add_factorized(codes, uniques)

    def add_factorized(self, codes: np.ndarray, uniques: Any) -> np.ndarray:
        """Provisional codes of a column already factorized (``uniques[codes]`` are its values, strings)."""
        self._uniques.append(uniques)
        provisional = np.asarray(codes, dtype=np.int64) + self._count
        self._count += len(uniques)
        return provisional

    def finish(self) -> tuple[IdTable, np.ndarray]:
        try:
            return _sorted_ids_arrow(self._uniques)
        except (ImportError, TypeError, ValueError, UnicodeError):  # pyarrow cannot hold them as UTF-8 strings
            return _sorted_ids_python(self._uniques)


def _sorted_ids_python(chunks: list[Any]) -> tuple[IdTable, np.ndarray]:
    """:meth:`IdCoder.finish` with Python strings: the reference for :func:`_sorted_ids_arrow`."""
    index: dict[str, int] = {}
    first = np.fromiter(
        (index.setdefault(str(u), len(index)) for chunk in chunks for u in np.asarray(chunk, dtype=object)),
        dtype=np.int64,
        count=sum(len(chunk) for chunk in chunks),
    )
    raw = np.empty(len(index), dtype=object)
    raw[:] = list(index)  # first-seen order
    order = id_order(raw)
    if order == NUMERIC:
        perm = np.argsort(raw.astype(np.int64), kind="stable")
    else:
        perm = np.argsort(raw, kind="stable")  # Python str comparison: code point order
    rank = np.empty(len(raw), dtype=np.int64)
    rank[perm] = np.arange(len(raw), dtype=np.int64)
    return IdTable(raw[perm], order), rank[first]


def _sorted_ids_arrow(chunks: list[Any]) -> tuple[IdTable, np.ndarray]:
    """:meth:`IdCoder.finish` with pyarrow's hashing and sorting: the same table and codes.

    Distinct ids in first-seen order (``dictionary_encode``), the numeric rule by kernels
    (``0|[1-9][0-9]{0,17}``), numeric order by int64 value, lexicographic order by UTF-8 bytes,
    which is code point order, Python's string order.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arrays = [chunk if isinstance(chunk, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(chunk, dtype=object), type=pa.large_string())
              for chunk in chunks]
    if not all(pa.types.is_large_string(a.type) or pa.types.is_string(a.type) for a in arrays):
        raise TypeError("ids are not strings")
    everything = pa.chunked_array([a.cast(pa.large_string()) for a in arrays], type=pa.large_string()).combine_chunks()
    if everything.null_count:
        raise ValueError("missing id")
    encoded = pc.dictionary_encode(everything)
    first = encoded.indices.to_numpy().astype(np.int64)
    distinct = encoded.dictionary
    lengths = pc.binary_length(distinct)
    canonical = pc.and_(
        pc.ascii_is_decimal(distinct),
        pc.and_(pc.less_equal(lengths, 18), pc.or_(pc.equal(lengths, 1), pc.invert(pc.starts_with(distinct, "0")))),
    )
    order = NUMERIC if pc.all(canonical).as_py() is not False else LEXICOGRAPHIC
    if order == NUMERIC:
        perm = np.argsort(pc.cast(distinct, pa.int64()).to_numpy(), kind="stable")
    else:
        perm = pc.sort_indices(distinct).to_numpy()  # byte order of UTF-8 = code point order
    rank = np.empty(len(distinct), dtype=np.int64)
    rank[perm] = np.arange(len(distinct), dtype=np.int64)
    raw = np.asarray(distinct.take(pa.array(perm)).to_numpy(zero_copy_only=False), dtype=object)
    return IdTable(raw, order), rank[first]


def encode_ids(values: pd.Series | np.ndarray) -> tuple[np.ndarray, IdTable]:
    """Codes (int64, sorted-id order) and the id table of one column of strings."""
    coder = IdCoder()
    provisional = coder.add(values)
    table, remap = coder.finish()
    return remap[provisional], table


@dataclass
class Interactions:
    """Interactions in file order; ``users.raw[user[i]]`` / ``items.raw[item[i]]`` are row i's raw ids."""

    user: np.ndarray  # int64 [n] code into `users`
    item: np.ndarray  # int64 [n] code into `items`
    time: np.ndarray  # int64 [n]: ratings.dat seconds or Unix ms; only order and differences matter
    users: IdTable
    items: IdTable

    def __len__(self) -> int:
        return len(self.user)

    def take(self, keep: np.ndarray) -> Interactions:
        """The rows where ``keep`` (bool) holds, still in file order, same id tables."""
        return Interactions(self.user[keep], self.item[keep], self.time[keep], self.users, self.items)

    def counts(self) -> dict[str, int]:
        """Interactions, distinct users and distinct items present."""
        return {
            "interactions": int(len(self.user)),
            "users": int(np.count_nonzero(np.bincount(self.user, minlength=len(self.users)))),
            "items": int(np.count_nonzero(np.bincount(self.item, minlength=len(self.items)))),
        }
