"""Ranking metrics: pure functions over score matrices and target indices, one tie policy.

Ranks are pessimistic (docs/protocols.md §4): rank = 1 + the number of *other* candidates whose score
is >= the target's, so a model that scores everything equal gets the worst rank, not the best.
Candidates that must never be recommended (padding, [MASK], filtered items) carry score -inf;
a NaN target score counts as the worst rank.

With one target per prediction:
    HR@k (= recall@k)  = 1 if rank <= k else 0
    NDCG@k             = 1 / log2(rank + 1) if rank <= k else 0
    MRR@k              = 1 / rank if rank <= k else 0
    MRR                = 1 / rank
and every figure is the mean over all predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from . import kernels


#: Scores per batch from which full_ranks counts with the compiled kernel: a [128 x 17,377] batch
#: (yoochoose 1/64) takes 0.35 ms instead of 1.5 ms, but a whole ML-1M evaluation ([128 x 3,417]
#: batches) saves less than loading numba costs (~0.35 s), so small batches keep the torch count.
COMPILED_RANKS_MIN = 1 << 21


def full_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pessimistic rank of each target among all columns.

    scores: [B, V] (excluded columns already -inf); targets: [B] column indices -> ranks [B] (1-based).
    On the CPU, for batches of at least ``COMPILED_RANKS_MIN`` scores, the count is one compiled
    pass per row (``kernels.compiled``): the same integers.
    """
    if scores.device.type == "cpu" and scores.dtype == torch.float32 and scores.numel() >= COMPILED_RANKS_MIN:
        compiled = kernels.compiled()
        if compiled is not None:
            out = np.empty(len(targets), dtype=np.int32)
            compiled.pessimistic_ranks(scores.detach().numpy(), targets.detach().to(torch.int64).numpy(), out)
            return torch.from_numpy(out)
    target_scores = scores.gather(1, targets.view(-1, 1))  # [B, 1]
    ranks = (scores >= target_scores).sum(dim=1, dtype=torch.int32)  # the target itself counts once: 1 + others
    worst = torch.full_like(ranks, scores.shape[1])
    return torch.where(torch.isnan(target_scores.squeeze(1)), worst, ranks)


def sampled_ranks(target_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
    """Pessimistic rank of each target among itself and its sampled negatives.

    target_scores: [B]; negative_scores: [B, K] -> ranks [B] in 1..K+1.
    """
    ranks = 1 + (negative_scores >= target_scores.view(-1, 1)).sum(dim=1)
    worst = torch.full_like(ranks, negative_scores.shape[1] + 1)
    return torch.where(torch.isnan(target_scores), worst, ranks)


def metrics_from_ranks(ranks: torch.Tensor, cutoffs: tuple[int, ...], hit_name: str = "hr") -> dict[str, float]:
    """Mean metrics of a vector of ranks (see the module docstring for the formulas)."""
    acc = MetricAccumulator(cutoffs, hit_name)
    acc.add(ranks)
    return acc.result()


@dataclass
class MetricAccumulator:
    """Counts predictions per rank, batch by batch, so no score matrix outlives its batch.

    Every metric is a function of the rank alone, so the histogram of ranks (``hist[r]``:
    predictions of rank r) holds all of them exactly: histograms of any split of the predictions
    (batches, processes) add up to the same integers, and :meth:`result` turns them into the same
    figures whatever the batch size or number of processes.

    ``hit_name`` is "hr" (leave-one-out literature) or "recall" (session-based literature); with
    one target per prediction they are the same number.
    """

    cutoffs: tuple[int, ...] = (1, 5, 10, 20)
    hit_name: str = "hr"
    hist: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))  # [max rank + 1]

    @property
    def count(self) -> int:
        return int(self.hist.sum())

    def add(self, ranks: torch.Tensor) -> None:
        r = ranks.detach().to("cpu", torch.int64).view(-1)
        if r.numel() == 0:
            return
        self.add_hist(torch.bincount(r).numpy())

    def add_hist(self, hist: np.ndarray) -> None:
        """Add another histogram of ranks (another batch, another process)."""
        if len(hist) > len(self.hist):
            self.hist = np.concatenate([self.hist, np.zeros(len(hist) - len(self.hist), dtype=np.int64)])
        self.hist[: len(hist)] += hist

    def result(self) -> dict[str, float]:
        count = self.count
        if count == 0:
            return {}
        nz = np.flatnonzero(self.hist)
        h = self.hist[nz].astype(np.float64)  # ranks with predictions, ascending: a fixed order of summation
        r = nz.astype(np.float64)
        inv = h / r
        out: dict[str, float] = {}
        for k in self.cutoffs:
            hit = nz <= k
            out[f"{self.hit_name}@{k}"] = float(h[hit].sum()) / count
        for k in self.cutoffs:
            hit = nz <= k
            out[f"ndcg@{k}"] = float((h[hit] / np.log2(r[hit] + 1.0)).sum()) / count
        for k in self.cutoffs:
            out[f"mrr@{k}"] = float(inv[nz <= k].sum()) / count
        out["mrr"] = float(inv.sum()) / count
        return out


def ndcg_at(rank: int, k: int) -> float:
    """NDCG@k of a single rank (for tests and docs)."""
    return 1.0 / math.log2(rank + 1) if rank <= k else 0.0
