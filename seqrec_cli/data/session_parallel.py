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
from typing import Any

import numpy as np

from ..errors import SeqrecError
from ..sequences import Sequences


@dataclass
class Step:
    inputs: np.ndarray  # [b] item fed at this step
    targets: np.ndarray  # [b] item to predict (0 = none, only on a final step)
    reset: np.ndarray  # [b] bool: this row starts a new session -> zero its hidden state first
    keep: np.ndarray | None  # rows of the previous step's hidden state that survive (None = all, same order)
    rows: np.ndarray  # [b] index of the sequence each row walks
    positions: np.ndarray  # [b] position of the input within its sequence (0-based)


def session_parallel(
    seqs: Sequences, order: np.ndarray, batch_size: int, final_step: bool = False, rank: int = 0, world: int = 1
) -> Iterator[Step]:
    """Yield the steps of one pass over ``seqs`` in ``order`` (an array of sequence indices).

    To apply a step to hidden states H [b_prev, d]: ``H = H[keep]`` (if keep is not None),
    then ``H[reset] = 0``, then run the cell on ``inputs``.

    ``world`` > 1 (data parallel training): one walk with ``batch_size * world`` slots, of which
    this process (``rank``) follows the slots s with s % world == rank and yields their rows only.
    Every process of the run walks the same global walk, so all take the same number of steps
    (toward the end a process may have no rows left: its steps are then empty), no session is
    walked twice and none is left out, and together the processes see exactly the walk one process
    with ``batch_size * world`` slots would see.
    """
    items, offsets = seqs.items, seqs.offsets
    n_steps = seqs.lengths - (0 if final_step else 1)
    order = np.asarray(order, dtype=np.int64)
    order = order[n_steps[order] > 0]
    if len(order) == 0:
        return
    b = min(batch_size * world, len(order))
    rows = order[:b].copy()
    next_session = b
    pos = offsets[rows].copy()  # absolute index of the current input
    stop = pos + n_steps[rows]  # exclusive
    seq_end = offsets[rows + 1]
    reset = np.ones(b, dtype=bool)
    keep: np.ndarray | None = None
    owner = np.arange(b) % world  # the process each slot belongs to
    mine: np.ndarray | None = None if world == 1 else np.flatnonzero(owner == rank)
    last = len(items) - 1
    while True:
        tgt = pos + 1
        has_target = tgt < seq_end
        targets = np.where(has_target, items[np.minimum(tgt, last)], 0)
        if mine is None:
            yield Step(items[pos], targets, reset, keep, rows, pos - offsets[rows])
        else:
            p, r = pos[mine], rows[mine]
            yield Step(items[p], targets[mine], reset[mine], keep, r, p - offsets[r])
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
            if world > 1:  # this process's rows that survive, as indices into its previous step's rows
                mine_alive = alive[owner == rank]
                keep = None if mine_alive.all() else np.flatnonzero(mine_alive)
                owner = owner[alive]
                mine = np.flatnonzero(owner == rank)
            if len(pos) == 0:
                return


def count_steps(seqs: Sequences, batch_size: int, final_step: bool = False) -> int:
    """An estimate of the number of steps in a pass (for progress bars): events / batch (the
    batch of all processes together in data parallel training)."""
    n = int((seqs.lengths - (0 if final_step else 1)).clip(min=0).sum())
    return max(1, -(-n // max(1, batch_size)))


# ---------------------------------------------------------------------------------------------- model batches
@dataclass
class SessionParallelBatch:
    """One training step of GRU4Rec: a :class:`Step` plus the step's shared sampled negatives.

    inputs, targets: [b] item indices; reset: [b] bool; keep: [b_prev] rows of the previous step's
    hidden state that survive, or None; negatives: [S] popularity-sampled items or None; log_q:
    [b + S] log sampling probability of each candidate (the b in-batch targets by popularity, the
    S negatives by popularity ** alpha; unweighted) or None; slots: the configured batch size B
    (the loss of a step is divided by it, as in the original, also when fewer rows are left);
    rows, positions: [b] numpy, the session and position each row walks (host only).
    """

    inputs: Any
    targets: Any
    reset: Any
    keep: Any
    negatives: Any
    log_q: Any
    slots: int
    rows: np.ndarray
    positions: np.ndarray
    host_fields = ("rows", "positions")


@dataclass
class SessionParallelScoreBatch:
    """One scoring step: advance every row (inputs, reset, keep as in :class:`Step`), then score
    the rows ``select``. targets / rows / target_pos ([m] numpy, for the selected rows) describe
    the predictions and stay on the host."""

    inputs: Any
    reset: Any
    keep: Any
    select: Any
    targets: np.ndarray
    rows: np.ndarray
    target_pos: np.ndarray
    host_fields = ("targets", "rows", "target_pos")


class SessionParallelBatcher:
    """GRU4Rec's training batches: session-parallel steps over the training sessions, in a new
    seeded order every epoch (or file order), with ``n_sample`` negatives per step drawn by
    popularity ** alpha and shared by the batch (Hidasi & Karatzoglou 2018, §4.1).

    ``shard`` (a ``distributed.Shard``, data parallel training): every process draws the same
    session order and follows its own ``batch_size`` slots of one walk with ``batch_size x world``
    slots (:func:`session_parallel`), so all take the same number of steps; its negatives come from
    its own generator.

    Raises SeqrecError when no training session has two items (nothing to predict).
    """

    def __init__(self, data, model_config, train_config, device, shard=None):
        import torch

        from ..distributed import Shard
        from .sampling import PopularitySampler, popularity

        self.train = data.split("train")
        if not (self.train.lengths >= 2).any():
            raise SeqrecError(
                f"{data.folder / 'train.txt'}: nothing to learn: no training session has 2 or more items "
                "(GRU4Rec predicts each next item of a session)"
            )
        self.tc = train_config
        self.device = device
        self.shard = shard or Shard()
        self.rng = np.random.default_rng(train_config.seed)  # the session order: the same in every process
        self.counts = popularity(self.train.items, data.n_items)  # [N+1]
        self.sampler = None
        if model_config.loss != "ce" and train_config.n_sample > 0:
            gen = torch.Generator(device=device).manual_seed(self.shard.seed(train_config.seed + 1))
            self.sampler = PopularitySampler(
                self.counts,
                train_config.n_sample,
                train_config.sample_alpha,
                gen,
                cache_events=min(10_000_000, train_config.n_sample * self.steps_per_epoch()),
                device=device,
            )
        self.log_pop = None
        if model_config.loss == "sampled-ce" and model_config.logq > 0:
            # logQ: log popularity of the in-batch targets (sampled by the data itself) and of the
            # extra negatives (sampled by popularity ** alpha)
            with np.errstate(divide="ignore"):
                logc = np.log(np.maximum(self.counts, 1.0))
            self.log_pop = torch.tensor(logc, dtype=torch.float32, device=device)  # [N+1]

    def steps_per_epoch(self) -> int:
        return count_steps(self.train, self.tc.batch_size * self.shard.world)

    def epoch_batches(self) -> Iterator[SessionParallelBatch]:
        import torch

        n = len(self.train)
        order = self.rng.permutation(n) if self.tc.session_order == "shuffle" else np.arange(n)
        if self.sampler is not None:
            self.sampler.new_epoch()
        for step in session_parallel(self.train, order, self.tc.batch_size, rank=self.shard.rank, world=self.shard.world):
            negatives = self.sampler.draw() if self.sampler is not None else None
            log_q = None
            if self.log_pop is not None:
                targets = torch.from_numpy(step.targets).to(self.device)
                cands = targets if negatives is None else torch.cat([targets, negatives])
                log_q = self.log_pop[cands]
                log_q[len(targets) :] *= self.tc.sample_alpha
            yield SessionParallelBatch(
                step.inputs, step.targets, step.reset, step.keep, negatives, log_q, self.tc.batch_size,
                step.rows, step.positions,
            )  # fmt: skip

    def describe(self) -> str:
        neg = f"{self.tc.n_sample} negatives (pop^{self.tc.sample_alpha})" if self.sampler else "no extra negatives"
        return f"{neg}, {len(self.train):,} training sessions / {self.train.n_events:,} events"

    def rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"numpy": self.rng.bit_generator.state}
        if self.sampler is not None:
            state["sampler"] = self.sampler.generator.get_state()
        return state

    def load_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy"]
        if self.sampler is not None:
            self.sampler.generator.set_state(state["sampler"])


def session_parallel_score_batches(
    seqs: Sequences, mode: str, batch_size: int, shard: Any = None
) -> Iterator[SessionParallelScoreBatch]:
    """Scoring steps over ``seqs`` in file order: mode "all" (every position after the first),
    "last" (the last item of each line) or "next" (after the whole line: recommendation, target
    unknown). Each session starts from a zero hidden state. ``shard`` (a ``distributed.Shard``):
    only the sessions rank, rank + world, ... (``rows`` stay indices into ``seqs``)."""
    lengths = seqs.lengths
    order = np.arange(len(seqs)) if shard is None else shard.rows(len(seqs))
    for step in session_parallel(seqs, order, batch_size, final_step=(mode == "next")):
        if mode == "all":
            sel = np.flatnonzero(step.targets > 0)
        elif mode == "last":
            sel = np.flatnonzero(step.positions == lengths[step.rows] - 2)
        else:
            sel = np.flatnonzero(step.targets == 0)
        yield SessionParallelScoreBatch(
            step.inputs, step.reset, step.keep, sel, step.targets[sel], step.rows[sel], step.positions[sel] + 1
        )
