"""Session-parallel mini-batches, the batching GRU4Rec was designed around (Hidasi et al. 2016).

Each of the B batch slots walks through one session, one event per step: at every step slot b
feeds the current item and is trained to predict the next one. When a slot's session has no
next item left, the next session in the order takes the slot and that row of the hidden state
must be zeroed (``reset``), so no information flows from one session into another. When the
sessions run out, finished slots are dropped and the batch shrinks (``keep``).

Every event except the first of its session is a target exactly once per pass. With
``final_step=True`` each session also gets one last step fed with its last item and target 0
(unknown): that is the step whose scores recommend what comes after the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..formats import Sequences


@dataclass
class Step:
    inputs: np.ndarray  # [b] item fed at this step
    targets: np.ndarray  # [b] item to predict (0 = none, only on a final step)
    reset: np.ndarray  # [b] bool: this row starts a new session -> zero its hidden state first
    keep: np.ndarray | None  # rows of the previous step's hidden state that survive (None = all, same order)
    rows: np.ndarray  # [b] index of the sequence each row walks
    positions: np.ndarray  # [b] position of the input within its sequence (0-based)


def session_parallel(
    seqs: Sequences, order: np.ndarray, batch_size: int, final_step: bool = False
) -> Iterator[Step]:
    """Yield the steps of one pass over ``seqs`` in ``order`` (an array of sequence indices).

    To apply a step to hidden states H [b_prev, d]: ``H = H[keep]`` (if keep is not None),
    then ``H[reset] = 0``, then run the cell on ``inputs``.
    """
    items, offsets = seqs.items, seqs.offsets
    n_steps = seqs.lengths - (0 if final_step else 1)
    order = np.asarray(order, dtype=np.int64)
    order = order[n_steps[order] > 0]
    if len(order) == 0:
        return
    b = min(batch_size, len(order))
    rows = order[:b].copy()
    next_session = b
    pos = offsets[rows].copy()  # absolute index of the current input
    stop = pos + n_steps[rows]  # exclusive
    seq_end = offsets[rows + 1]
    reset = np.ones(b, dtype=bool)
    keep: np.ndarray | None = None
    last = len(items) - 1
    while True:
        tgt = pos + 1
        has_target = tgt < seq_end
        targets = np.where(has_target, items[np.minimum(tgt, last)], 0)
        yield Step(items[pos], targets, reset, keep, rows, pos - offsets[rows])
        pos = pos + 1
        done = pos >= stop
        reset = np.zeros(len(pos), dtype=bool)
        keep = None
        if not done.any():
            continue
        finished = np.flatnonzero(done)
        n_new = min(len(finished), len(order) - next_session)
        if n_new:
            refill = finished[:n_new]
            new_rows = order[next_session : next_session + n_new]
            next_session += n_new
            rows = rows.copy()
            rows[refill] = new_rows
            pos[refill] = offsets[new_rows]
            stop[refill] = offsets[new_rows] + n_steps[new_rows]
            seq_end[refill] = offsets[new_rows + 1]
            reset[refill] = True
        dropped = finished[n_new:]
        if len(dropped):
            alive = np.ones(len(pos), dtype=bool)
            alive[dropped] = False
            keep = np.flatnonzero(alive)
            rows, pos, stop, seq_end, reset = rows[keep], pos[keep], stop[keep], seq_end[keep], reset[keep]
            if len(pos) == 0:
                return


def count_steps(seqs: Sequences, batch_size: int, final_step: bool = False) -> int:
    """An estimate of the number of steps in a pass (for progress bars): events / batch."""
    n = int((seqs.lengths - (0 if final_step else 1)).clip(min=0).sum())
    return max(1, -(-n // max(1, batch_size)))
