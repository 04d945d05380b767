"""Training losses. Every function returns the *sum* over rows; the caller divides by the count.

GRU4Rec scores each row against the candidates of the step: the batch's own targets (column i
is row i's target, the others act as negatives) followed by shared sampled negatives
(``sampled_softmax_ce``, ``bpr_max``, ``bpr``). ``linear_cross_entropy`` is the full-catalogue
softmax of the transformers, computed from the hidden states and the output embedding without
ever holding the whole [rows, items] score matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Score-matrix elements per block of ``linear_cross_entropy`` on a CPU: 2 MiB of fp32, so a block
#: stays in the core's L2 cache between the product, the softmax and the two gradient products.
CPU_BLOCK_ELEMENTS = 1 << 19


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


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Summed cross-entropy of ``softmax(hidden @ weight.T + bias)`` against ``targets``, with label
    smoothing as ``F.cross_entropy`` defines it (target distribution (1 - e) one-hot + e / N).

    hidden: [M, H]; weight: [N, H] (the output embedding of the N candidate items); targets: [M]
    in 0..N-1; bias: [N] or None. Returns a scalar (the sum over the M rows, in nats).

    On a CPU without autocast the product is taken block by block of rows (``CPU_BLOCK_ELEMENTS``
    scores per block) and each block's gradient, softmax - target distribution, is multiplied back
    into the gradients of ``hidden``, ``weight`` and ``bias`` at once while the block is still in
    cache (the fused linear cross-entropy of Liger Kernel, Hsu et al. 2024, §3.2; Wijmans et al.
    2024, "Cut your losses in large-vocabulary language models"). The [M, N] matrix and its
    gradient never exist in memory: the step's largest memory pass is gone and the loss of one
    ML-1M step is 2.18x faster (``scripts/bench_loss.py``, docs/benchmarks.md). Equal to the plain
    formula up to float rounding. Elsewhere (CUDA, autocast) it is the plain formula.
    """
    if hidden.device.type != "cpu" or torch.is_autocast_enabled("cpu"):
        scores = hidden @ weight.T
        if bias is not None:
            scores = scores + bias
        return F.cross_entropy(scores.float(), targets, reduction="sum", label_smoothing=label_smoothing)
    block = max(16, CPU_BLOCK_ELEMENTS // max(1, weight.shape[0]))
    return _BlockedLinearCrossEntropy.apply(hidden, weight, bias, targets, label_smoothing, block)


class _BlockedLinearCrossEntropy(torch.autograd.Function):
    """``linear_cross_entropy`` on a CPU. The loss is a scalar, so the gradients are taken in the
    forward pass, block by block, and backward only scales them by the upstream gradient."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, label_smoothing, block):
        need_grad = any(ctx.needs_input_grad[:3])
        m, n = hidden.shape[0], weight.shape[0]
        eps = float(label_smoothing)
        total = torch.zeros((), dtype=torch.float32)
        grad_h = torch.empty_like(hidden) if need_grad else None
        grad_w = torch.zeros_like(weight) if need_grad else None
        grad_b = torch.zeros(n, dtype=torch.float32) if need_grad and bias is not None else None
        w_t = weight.T
        for start in range(0, m, block):
            h = hidden[start : start + block]  # [b, H]
            y = targets[start : start + block].view(-1, 1)  # [b, 1]
            z = torch.mm(h, w_t) if bias is None else torch.addmm(bias, h, w_t)  # [b, N]
            z.sub_(z.amax(1, keepdim=True))  # shifted scores: the loss and the softmax are shift-free
            e = torch.exp(z)
            s = e.sum(1, keepdim=True)  # [b, 1]
            loss = s.log() - (1.0 - eps) * z.gather(1, y)  # log-sum-exp minus the target's (weighted) score
            if eps:
                loss = loss - eps * z.mean(1, keepdim=True)
            total += loss.sum()
            if need_grad:
                g = e.div_(s)  # softmax
                if eps:
                    g.sub_(eps / n)
                g.scatter_add_(1, y, torch.full(y.shape, eps - 1.0))  # softmax - target distribution
                torch.mm(g, weight, out=grad_h[start : start + block])
                grad_w.addmm_(g.T, h)
                if grad_b is not None:
                    grad_b += g.sum(0)
        ctx.save_for_backward(grad_h, grad_w, grad_b)
        return total

    @staticmethod
    def backward(ctx, grad):
        grads = [None if g is None else g * grad for g in ctx.saved_tensors]
        return *grads, None, None, None
