"""Ragged integer sequences stored flat, and the vectorised operations every part of seqrec uses.

A :class:`Sequences` holds n variable-length lines in two arrays: ``items`` (every line's items,
one after the other) and ``offsets`` (line i is ``items[offsets[i]:offsets[i+1]]``). Training
windows, evaluation histories, leave-one-out cuts and padded batches are all *slices* of such
lines; the helpers here do the offset arithmetic once, with numpy and no Python loop over lines.

Only numpy is imported (no torch), so the on-disk readers can use it at no start-up cost.
"""

from __future__ import annotations

import numpy as np


def ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """``[0..l0-1, 0..l1-1, ...]`` for ``lengths = [l0, l1, ...]``: the position of each element
    inside its run. lengths: [n] non-negative ints -> [sum(lengths)] int64."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths  # [n] where each run begins
    return np.arange(total, dtype=np.int64) - np.repeat(starts, lengths)


def offsets_of(lengths: np.ndarray) -> np.ndarray:
    """Offsets [n + 1] of lines with these lengths: ``[0, l0, l0 + l1, ...]``."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


class Sequences:
    """Variable-length integer sequences stored flat: ``items[offsets[i]:offsets[i+1]]`` is line i."""

    __slots__ = ("items", "offsets")

    def __init__(self, items: np.ndarray, offsets: np.ndarray):
        self.items = np.ascontiguousarray(items, dtype=np.int64)  # [total]
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)  # [n + 1]

    @classmethod
    def from_lists(cls, seqs: list[list[int]] | list[np.ndarray]) -> Sequences:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        items = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if seqs else np.zeros(0, np.int64)
        return cls(items, offsets_of(lengths))

    @classmethod
    def from_lengths(cls, items: np.ndarray, lengths: np.ndarray) -> Sequences:
        """Lines of the given lengths cut from a flat array, in order."""
        return cls(items, offsets_of(lengths))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.items[self.offsets[i] : self.offsets[i + 1]]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Sequences)
            and np.array_equal(self.offsets, other.offsets)
            and np.array_equal(self.items, other.items)
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def lengths(self) -> np.ndarray:
        """[n] items per line."""
        return np.diff(self.offsets)

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    def to_lists(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]

    # ------------------------------------------------------------------ ragged operations
    def row_ids(self) -> np.ndarray:
        """[n_events] the line each item belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def positions(self) -> np.ndarray:
        """[n_events] the position of each item inside its line (0-based)."""
        return ragged_arange(self.lengths)

    def take(self, rows: np.ndarray) -> Sequences:
        """The lines ``rows`` (any order, repeats allowed), as a new Sequences."""
        rows = np.asarray(rows, dtype=np.int64)
        return self.slice(rows, np.zeros(len(rows), dtype=np.int64), self.lengths[rows])

    def slice(self, rows: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> Sequences:
        """Line j of the result is ``self[rows[j]][starts[j]:stops[j]]``.

        rows, starts, stops: [m] ints with ``0 <= starts <= stops <= length`` of each line (not
        clipped: a slice past a line's end would read the next line, so callers keep to bounds).
        """
        rows = np.asarray(rows, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64)
        lengths = np.asarray(stops, dtype=np.int64) - starts
        src = np.repeat(self.offsets[rows] + starts, lengths) + ragged_arange(lengths)
        return Sequences(self.items[src], offsets_of(lengths))

    def append(self, value: int) -> Sequences:
        """Every line with one more item ``value`` at its end (e.g. BERT4Rec's [MASK])."""
        lengths = self.lengths + 1
        offsets = offsets_of(lengths)
        items = np.full(int(offsets[-1]), value, dtype=np.int64)
        items[np.repeat(offsets[:-1], self.lengths) + self.positions()] = self.items
        return Sequences(items, offsets)

    def padded(self, rows: np.ndarray | None = None, width: int | None = None, side: str = "left") -> np.ndarray:
        """Lines ``rows`` (default: all) as a matrix [len(rows), width] padded with 0.

        ``side="left"`` puts each line at the right end of its row (the last item in the last
        column: BERT4Rec's layout), ``"right"`` at the left end (SASRec's causal layout). ``width``
        defaults to the longest selected line and must not be shorter than it.
        """
        rows = np.arange(len(self), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        lens = self.offsets[rows + 1] - self.offsets[rows]
        w = (int(lens.max()) if len(lens) else 0) if width is None else width
        out = np.zeros((len(rows), w), dtype=np.int64)
        within = ragged_arange(lens)
        r = np.repeat(np.arange(len(rows)), lens)
        col = w - np.repeat(lens, lens) + within if side == "left" else within
        out[r, col] = self.items[np.repeat(self.offsets[rows], lens) + within]
        return out
