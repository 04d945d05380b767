"""Training losses over a score matrix whose row i has its target in column i.

GRU4Rec scores each row against the candidates of the step: the batch's own targets (column i
is row i's target, the others act as negatives) followed by shared sampled negatives. Every
function returns the *sum* over rows; the caller divides by the batch size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sampled_softmax_ce(scores: torch.Tensor, log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of a softmax over the candidates; target of row i is column i.

    scores: [B, C] with C >= B; log_q: [C] log sampling probability of each candidate. Subtracting
    it (logQ correction) removes the bias of sampling popular items more often as negatives.
    """
    if log_q is not None:
        scores = scores - log_q
    targets = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores, targets, reduction="sum")


def full_softmax_ce(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the whole vocabulary. scores: [B, V] (padding -inf); targets: [B]."""
    return F.cross_entropy(scores, targets, reduction="sum")


def _negative_softmax(scores: torch.Tensor) -> torch.Tensor:
    """Softmax of each row over its negatives only (the target column i gets weight 0)."""
    eye = torch.eye(scores.shape[0], scores.shape[1], dtype=torch.bool, device=scores.device)
    masked = scores.masked_fill(eye, float("-inf"))
    return torch.softmax(masked, dim=1)


def bpr_max(scores: torch.Tensor, bpreg: float = 1.0, elu_param: float = 0.0) -> torch.Tensor:
    """BPR-max (Hidasi & Karatzoglou 2018): -log sum_j s_j sigmoid(r_i - r_j) + bpreg * sum_j s_j r_j^2,
    s = softmax over the negatives. scores: [B, C], target of row i in column i."""
    if elu_param > 0:
        scores = F.elu(scores, elu_param)
    weights = _negative_softmax(scores)  # [B, C]
    target = scores.diagonal().unsqueeze(1)  # [B, 1]
    prob = (torch.sigmoid(target - scores) * weights).sum(dim=1)
    reg = (scores.pow(2) * weights).sum(dim=1)
    return (-torch.log(prob + 1e-24) + bpreg * reg).sum()


def bpr(scores: torch.Tensor) -> torch.Tensor:
    """Plain BPR averaged over the negatives: mean_j -log sigmoid(r_i - r_j), j != i."""
    b, c = scores.shape
    target = scores.diagonal().unsqueeze(1)  # [B, 1]
    eye = torch.eye(b, c, dtype=torch.bool, device=scores.device)
    per_pair = -F.logsigmoid(target - scores).masked_fill(eye, 0.0)
    return (per_pair.sum(dim=1) / (c - 1)).sum()
