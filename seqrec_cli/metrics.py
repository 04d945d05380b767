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

import torch


def full_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Pessimistic rank of each target among all columns.

    scores: [B, V] (excluded columns already -inf); targets: [B] column indices -> ranks [B] (1-based).
    """
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
    """Sums per-prediction metrics batch by batch, so no score matrix outlives its batch.

    ``hit_name`` is "hr" (leave-one-out literature) or "recall" (session-based literature); with
    one target per prediction they are the same number.
    """

    cutoffs: tuple[int, ...] = (1, 5, 10, 20)
    hit_name: str = "hr"
    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)

    def add(self, ranks: torch.Tensor) -> None:
        r = ranks.detach().to("cpu", torch.float64)
        self.count += int(r.numel())
        inv = 1.0 / r
        self._add("mrr", float(inv.sum()))
        for k in self.cutoffs:
            hit = r <= k
            self._add(f"{self.hit_name}@{k}", float(hit.sum()))
            self._add(f"ndcg@{k}", float((hit / torch.log2(r + 1.0)).sum()))
            self._add(f"mrr@{k}", float((hit * inv).sum()))

    def _add(self, key: str, value: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value

    def result(self) -> dict[str, float]:
        if self.count == 0:
            return {}
        keys = [f"{self.hit_name}@{k}" for k in self.cutoffs]
        keys += [f"ndcg@{k}" for k in self.cutoffs] + [f"mrr@{k}" for k in self.cutoffs] + ["mrr"]
        return {k: self.sums.get(k, 0.0) / self.count for k in keys}


def ndcg_at(rank: int, k: int) -> float:
    """NDCG@k of a single rank (for tests and docs)."""
    return 1.0 / math.log2(rank + 1) if rank <= k else 0.0
