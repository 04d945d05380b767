"""Evaluation protocols shared by every model: full ranking or sampled negatives, labelled.

A model contributes only a stream of :class:`ScoreBatch` (scores of every item for a batch of
predictions); this module turns them into metrics under the chosen protocol, so the rank and
tie rules are the same for every model. Protocols (docs/protocols.md §4):

* full ranking (default): the target against every item 1..N;
* sampled: the target against K negatives drawn per sequence by popularity (training counts) or
  uniformly, never one of the sequence's own items, seeded.

``eval_target`` of the data decides which positions are predictions: the last item of each line
("last", leave-one-out) or every position after the first ("all", session-based).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .data.history import prediction_positions, targets_at
from .data.sampling import popularity
from .errors import SeqrecError
from .hparams import EVAL_BATCH_SIZE
from .metrics import MetricAccumulator, full_ranks, sampled_ranks
from .sequences import Sequences


@dataclass
class ScoreBatch:
    scores: torch.Tensor  # [b, V] scores of every index; padding (and [MASK]) columns are -inf
    targets: np.ndarray  # [b] item to predict (0 = unknown: recommendation after the sequence)
    rows: np.ndarray  # [b] index of the sequence
    target_pos: np.ndarray  # [b] position of the target in its sequence; the history is seq[:target_pos]


@dataclass(frozen=True)
class EvalSpec:
    split: str = "test"
    cutoffs: tuple[int, ...] = (1, 5, 10, 20)
    negatives: int = 0  # 0 = full ranking
    sampling: str = "popularity"  # popularity | uniform (with negatives > 0)
    filter_seen: bool = False  # full ranking: the items already in the history cannot be recommended
    seed: int = 0  # for sampled negatives
    batch_size: int = EVAL_BATCH_SIZE  # predictions scored at once: bounds the [batch, items] score matrix


@dataclass
class EvalResult:
    metrics: dict[str, float]
    predictions: int
    protocol: str  # short label, e.g. "full" or "popularity-100"
    description: str  # one sentence for people
    seconds: float


def hit_name(eval_target: str) -> str:
    """'recall' in the session-based literature (GRU4Rec), 'hr' in the leave-one-out literature."""
    return "recall" if eval_target == "all" else "hr"


def metric_key(name: str, eval_target: str) -> str:
    """A metric as this data names it: with one target per prediction recall@k and HR@k are the
    same number, called recall@k on session data (eval target "all") and hr@k on leave-one-out."""
    base, at, k = name.partition("@")
    if base in ("recall", "hr"):
        base = hit_name(eval_target)
    return f"{base}{at}{k}"


def protocol_labels(spec: EvalSpec, eval_target: str, n_items: int) -> tuple[str, str]:
    where = "last item of each line (leave-one-out)" if eval_target == "last" else "every position of every line"
    if spec.negatives > 0:
        short = f"{spec.sampling}-{spec.negatives}"
        desc = (
            f"sampled: target vs {spec.negatives} {spec.sampling}-sampled negatives (none of the sequence's own items, "
            f"seed {spec.seed}); {where}; pessimistic ties"
        )
    else:
        short = "full"
        desc = f"full ranking over all {n_items:,} items; {where}; pessimistic ties"
        if spec.filter_seen:
            short += "+filter-seen"
            desc += "; items already in the history excluded"
    return short, desc


def sample_negatives(
    seqs: Sequences, n_items: int, k: int, counts: np.ndarray | None, seed: int, chunk: int = 2048, where: str = "the split"
) -> torch.Tensor:
    """[n_seqs, k] negatives per sequence, without replacement, excluding the sequence's items
    (``where`` names the sequences in the error raised when a line leaves fewer than k candidates).

    Weighted sampling without replacement by the Gumbel-top-k trick: the k largest of
    log(w) + Gumbel noise are a draw of k items without replacement proportional to w.
    """
    gen = torch.Generator().manual_seed(seed)
    weights = torch.ones(n_items + 1, dtype=torch.float64) if counts is None else torch.tensor(counts, dtype=torch.float64)
    weights[0] = 0.0
    log_w = torch.log(weights.clamp(min=0))  # -inf where weight 0
    out = torch.empty(len(seqs), k, dtype=torch.long)
    for start in range(0, len(seqs), chunk):
        stop = min(start + chunk, len(seqs))
        b = stop - start
        u = torch.rand(b, n_items + 1, generator=gen, dtype=torch.float64).clamp_(min=1e-300)
        keys = log_w.expand(b, -1) - torch.log(-torch.log(u))
        own = seqs.take(np.arange(start, stop))
        keys[torch.from_numpy(own.row_ids()), torch.from_numpy(own.items)] = float("-inf")
        available = torch.isfinite(keys).sum(1)
        if (available < k).any():
            first = int(torch.nonzero(available < k)[0])
            seen = " and seen in training" if counts is not None else ""
            raise SeqrecError(
                f"--negatives {k}: line {start + first + 1} of {where} leaves only {int(available[first])} items "
                f"(not in that line{seen}) to sample negatives from; lower --negatives"
            )
        out[start:stop] = keys.topk(k, dim=1).indices
    return out


def evaluate_batches(
    batches: Iterable[ScoreBatch],
    seqs: Sequences,
    n_items: int,
    eval_target: str,
    spec: EvalSpec,
    train_counts: np.ndarray | None = None,
    combine: bool = False,
) -> EvalResult:
    """Consume score batches and return metrics under ``spec``'s protocol. ``combine``: the batches
    are this process's share of the predictions; the ranks of every process are added up (exactly:
    a histogram of integers) and each process returns the metrics of all predictions."""
    start = time.perf_counter()
    acc = MetricAccumulator(spec.cutoffs, hit_name(eval_target))
    negatives = None
    if spec.negatives > 0:
        counts = train_counts if spec.sampling == "popularity" else None
        negatives = sample_negatives(seqs, n_items, spec.negatives, counts, spec.seed, where=f"the {spec.split} split")
    for batch in batches:
        scores = batch.scores.float()
        targets = torch.from_numpy(batch.targets).to(scores.device)
        if negatives is not None:
            neg = negatives[torch.from_numpy(batch.rows)].to(scores.device)  # [b, K]
            ranks = sampled_ranks(scores.gather(1, targets.view(-1, 1)).squeeze(1), scores.gather(1, neg))
        else:
            if spec.filter_seen:
                mask_history(scores, seqs, batch.rows, batch.target_pos)
            ranks = full_ranks(scores, targets)
        acc.add(ranks)
    if combine:
        from . import distributed

        mine = np.zeros(distributed.max_int(len(acc.hist)), dtype=np.int64)  # one length for every process
        mine[: len(acc.hist)] = acc.hist
        acc.hist = distributed.sum_int64(mine)
    short, desc = protocol_labels(spec, eval_target, n_items)
    return EvalResult(acc.result(), acc.count, short, desc, time.perf_counter() - start)


def check_filter_seen(eval_target: str, flag: str) -> None:
    """Filtering seen items is meant for leave-one-out data, whose targets never repeat a history item."""
    if eval_target != "last":
        raise SeqrecError(f"{flag} applies to leave-one-out data (eval target 'last') only")


def mask_history(scores: torch.Tensor, seqs: Sequences, rows: np.ndarray, target_pos: np.ndarray) -> None:
    """Set the scores of each prediction's history items (seq[:target_pos]) to -inf, in place.
    scores: [b, V]; rows, target_pos: [b]."""
    history = seqs.slice(rows, np.zeros(len(rows), dtype=np.int64), target_pos)
    device = scores.device
    scores[torch.from_numpy(history.row_ids()).to(device), torch.from_numpy(history.items).to(device)] = float("-inf")


def evaluate_popularity(data, spec: EvalSpec) -> EvalResult:
    """The yardstick: every prediction ranks items by their training popularity (ties pessimistic)."""
    seqs, target, counts = eval_inputs(data, spec)
    scores = torch.tensor(counts, dtype=torch.float32)
    scores[0] = float("-inf")
    rows, target_pos = prediction_positions(seqs, target)

    def batches() -> Iterator[ScoreBatch]:
        for start in range(0, len(rows), spec.batch_size):
            r, tp = rows[start : start + spec.batch_size], target_pos[start : start + spec.batch_size]
            yield ScoreBatch(scores.expand(len(r), -1).clone(), targets_at(seqs, r, tp), r, tp)

    return evaluate_batches(batches(), seqs, data.n_items, target, spec, counts)


def eval_inputs(data, spec: EvalSpec) -> tuple[Sequences, str, np.ndarray]:
    """(sequences of the split, eval target, training popularity) shared by every evaluation."""
    seqs = data.split(spec.split)
    target = data.manifest.eval_target
    if spec.filter_seen:
        check_filter_seen(target, "--filter-seen")
    return seqs, target, popularity(data.split("train").items, data.n_items)
