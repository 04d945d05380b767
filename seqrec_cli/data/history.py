"""Scoring batches of histories: for each prediction, the items before its target, padded.

Which positions of a split are predictions is the data's ``eval_target`` (docs/protocols.md §4):
the last item of each line (``last``, leave-one-out) or every position after the first (``all``,
session-based); ``next`` asks for a recommendation after each whole line (target unknown).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..sequences import Sequences, ragged_arange


def prediction_positions(seqs: Sequences, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, target_pos) of every prediction of a split, in order; the history of prediction j
    is ``seqs[rows[j]][:target_pos[j]]``. mode: "last" (the last item of each line of 2 or more),
    "all" (every position after the first) or "next" (after each whole line; target unknown)."""
    lengths = seqs.lengths
    if mode == "next":
        return np.arange(len(seqs), dtype=np.int64), lengths.copy()
    if mode == "last":
        rows = np.flatnonzero(lengths >= 2)
        return rows, lengths[rows] - 1
    n_pred = np.clip(lengths - 1, 0, None)
    rows = np.repeat(np.arange(len(seqs), dtype=np.int64), n_pred)
    return rows, ragged_arange(n_pred) + 1


def targets_at(seqs: Sequences, rows: np.ndarray, target_pos: np.ndarray) -> np.ndarray:
    """[m] the item at each (row, position), 0 where the position is past the line's end ("next")."""
    inside = target_pos < seqs.lengths[rows]
    at = np.minimum(seqs.offsets[rows] + target_pos, max(len(seqs.items) - 1, 0))
    return np.where(inside, seqs.items[at] if len(seqs.items) else 0, 0)


@dataclass
class HistoryBatch:
    """items: [b, T] histories (the last ``max_history`` items before each target, then the
    appended token if any), padded with 0 on ``side``; lengths: [b] real items per row (appended
    token included). targets / rows / target_pos: [b] numpy, what is predicted (host only)."""

    items: Any
    lengths: Any
    targets: np.ndarray
    rows: np.ndarray
    target_pos: np.ndarray
    host_fields = ("targets", "rows", "target_pos")


def history_batches(
    seqs: Sequences,
    mode: str,
    batch_size: int,
    max_history: int,
    append: int | None = None,
    side: str = "left",
    shard: Any = None,
) -> Iterator[HistoryBatch]:
    """Batches of the predictions of ``seqs`` (see :func:`prediction_positions`), sorted by history
    length so each batch needs little padding; ``append`` (e.g. BERT4Rec's [MASK]) is added after
    each history. ``shard`` (a ``distributed.Shard``): only batches rank, rank + world, ... of that
    sequence, so each prediction is scored in the very batch one process would score it in."""
    rows, target_pos = prediction_positions(seqs, mode)
    hist_len = np.minimum(target_pos, max_history)
    order = np.argsort(hist_len, kind="stable")  # similar lengths together: little padding
    rank, world = (shard.rank, shard.world) if shard is not None else (0, 1)
    for start in range(rank * batch_size, len(order), batch_size * world):
        idx = order[start : start + batch_size]
        r, tp, hl = rows[idx], target_pos[idx], hist_len[idx]
        hist = seqs.slice(r, tp - hl, tp)
        if append is not None:
            hist = hist.append(append)
        yield HistoryBatch(hist.padded(side=side), hist.lengths, targets_at(seqs, r, tp), r, tp)
