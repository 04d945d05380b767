"""Optimizers that the models need and torch does not ship.

``AdagradM`` is Adagrad with momentum, the optimizer of the original GRU4Rec. For sparse
gradients (the item embeddings) it updates only the rows a step touched, accumulator and
momentum included; momentum of untouched rows does not keep moving them. That is both the
original's behaviour and what makes a step over a 37k-item catalogue cheap. On the CPU each
parameter's update is one compiled pass (``seqrec_cli.kernels``, numba); elsewhere, or without
numba, the same update runs as torch operations, with the same float32 results bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.optim import Optimizer

from . import kernels as _kernels


class AdagradM(Optimizer):
    def __init__(self, params, lr: float = 0.05, momentum: float = 0.0, eps: float = 1e-6):
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, eps=eps))
        self._plans: dict = {}  # parameter -> (key, plan) of the compiled path (see _plan); not state

    def _state(self, p: torch.Tensor, momentum: float) -> dict:
        state = self.state[p]
        if "acc" not in state:
            state["acc"] = torch.zeros_like(p)
        if momentum > 0 and "mom" not in state:
            state["mom"] = torch.zeros_like(p)
        return state

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        kernels = _kernels.compiled()
        for group in self.param_groups:
            lr, momentum, eps = group["lr"], group["momentum"], group["eps"]
            dense = []
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                plan = self._plan(p, lr, momentum, eps) if kernels is not None else None
                if plan is None:
                    if grad.is_sparse:
                        self._sparse_step(p, self._state(p, momentum), lr, momentum, eps)
                    else:
                        dense.append(p)
                elif grad.is_sparse:
                    rows, values = _unique_rows_numpy(grad, kernels.strictly_increasing)
                    kernels.rows_step(*plan[0], rows, values, *plan[1])
                elif grad.is_contiguous():
                    kernels.dense_step(*plan[0], grad.numpy().reshape(-1), *plan[1])
                else:
                    dense.append(p)
            if dense:
                self._dense_step(dense, lr, momentum, eps)
        return loss

    def _plan(self, p: torch.Tensor, lr: float, momentum: float, eps: float):
        """What the compiled kernels need for parameter p, kept between steps: numpy views of its
        data and state (rows [n, d] for a sparse update, flat [n] for a dense one; no momentum = an
        empty view the kernels never read) and the scalars (-lr, momentum, eps as numpy scalars of
        p's float type, so a float32 update is computed in float32 as torch computes it, and the
        momentum switch). None where the kernels do not apply: not on the CPU, not float32/64, or
        not contiguous. Rebuilt when the tensors or the settings change (load_state_dict, .to())."""
        state = self._state(p, momentum)
        acc, mom = state["acc"], state["mom"] if momentum > 0 else None
        key = (p.data_ptr(), acc.data_ptr(), 0 if mom is None else mom.data_ptr(), lr, momentum, eps, p.grad.is_sparse)
        cached = self._plans.get(p)
        if cached is not None and cached[0] == key:
            return cached[1]
        plan = None
        if _fits(p, acc, mom):
            shape = (p.shape[0], -1) if p.grad.is_sparse else (-1,)
            data, acc_, mom_ = (None if t is None else t.detach().view(shape).numpy() for t in (p, acc, mom))
            kind = np.float32 if p.dtype == torch.float32 else np.float64
            plan = (data, acc_, data[:0] if mom_ is None else mom_), (kind(-lr), kind(momentum), kind(eps), mom is not None)
        self._plans[p] = (key, plan)
        return plan

    def _sparse_step(self, p: torch.Tensor, state: dict, lr: float, momentum: float, eps: float) -> None:
        """The rows of one sparse gradient: acc += g^2; u = -lr g / sqrt(acc + eps); with momentum
        m = momentum m + u, p += m; else p += u (the untouched rows keep their state)."""
        idx, val = _unique_rows(p.grad)  # [k], [k, ...]
        # index_add_ / index_select / index_copy_: row scatters and gathers, several times faster than
        # advanced indexing; adding g^2 in place (rows are unique) is cheaper than gather, add, copy back
        state["acc"].index_add_(0, idx, val.pow(2))
        denom = sqrt_rounded(state["acc"].index_select(0, idx).add_(eps))
        update = torch.div(val, denom, out=denom).mul_(-lr)
        if momentum > 0:
            update = state["mom"].index_select(0, idx).mul_(momentum).add_(update)
            state["mom"].index_copy_(0, idx, update)
        p.index_add_(0, idx, update)

    def _dense_step(self, params: list[torch.Tensor], lr: float, momentum: float, eps: float) -> None:
        """The same update for dense parameters, all at once (torch's _foreach kernels: one call per
        operation for every parameter, instead of one per parameter)."""
        states = [self._state(p, momentum) for p in params]
        grads = [p.grad for p in params]
        accs = [st["acc"] for st in states]
        torch._foreach_add_(accs, torch._foreach_pow(grads, 2))
        denoms = [sqrt_rounded(d) for d in torch._foreach_add(accs, eps)]
        updates = torch._foreach_div(grads, denoms)
        torch._foreach_mul_(updates, -lr)
        if momentum > 0:
            moms = [st["mom"] for st in states]
            torch._foreach_mul_(moms, momentum)
            torch._foreach_add_(moms, updates)
            updates = moms
        torch._foreach_add_(params, updates)


def sqrt_rounded(t: torch.Tensor) -> torch.Tensor:
    """sqrt of a float32 tensor, IEEE-rounded (computed in float64, then rounded: exact for float32);
    torch's own float32 sqrt on the CPU was one unit in the last place off for ~0.7 % of inputs
    (torch 2.13, AVX-512), and the compiled kernels (``seqrec_cli.kernels``) round exactly, so both
    paths of AdagradM give the same bits."""
    if t.dtype == torch.float32 and t.device.type == "cpu":
        return t.double().sqrt_().to(torch.float32)
    return t.sqrt_()


def _fits(p: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """Whether the compiled kernels apply to parameter p and the tensors updated with it: all on
    the CPU, contiguous, of p's type (float32 or float64)."""
    if p.device.type != "cpu" or p.dtype not in (torch.float32, torch.float64) or not p.is_contiguous():
        return False
    for t in others:
        if t is not None and (t.device.type != "cpu" or t.dtype != p.dtype or not t.is_contiguous()):
            return False
    return True


def _unique_rows_numpy(grad: torch.Tensor, strictly_increasing) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_unique_rows` as numpy views (rows [k] int64, values [k, d]) for the compiled kernels,
    read without torch operations where the rows are already sorted and unique (each torch call
    costs more than the check)."""
    rows = grad._indices().numpy()[0]
    if not grad.is_coalesced() and not strictly_increasing(rows):
        grad = grad.coalesce()
        rows = grad._indices().numpy()[0]
    return rows, grad._values().numpy().reshape(len(rows), -1)


def _unique_rows(grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(row indices [k], values [k, ...]) of a sparse gradient with each row once. The update is
    non-linear, so repeated rows must be summed first (``coalesce``, a sort). GRU4Rec's gradients
    already hold sorted unique rows, but autograd hands them over without the coalesced flag; a
    strictly increasing index is checked instead (one comparison per row) and needs no sort."""
    if not grad.is_coalesced():
        idx = grad._indices()[0]
        if len(idx) < 2 or bool((idx[1:] > idx[:-1]).all()):
            return idx, grad._values()
        grad = grad.coalesce()
    return grad.indices()[0], grad.values()


class OptimizerGroup:
    """Several optimizers stepped as one (e.g. SparseAdam for embeddings + Adam for the rest)."""

    def __init__(self, optimizers: list[Optimizer]):
        self.optimizers = optimizers

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> list[dict]:
        return [opt.state_dict() for opt in self.optimizers]

    def load_state_dict(self, states: list[dict]) -> None:
        if len(states) != len(self.optimizers):
            raise ValueError("optimizer state does not match the optimizers")
        for opt, state in zip(self.optimizers, states):
            opt.load_state_dict(state)

    @property
    def param_groups(self) -> list[dict]:
        return [g for opt in self.optimizers for g in opt.param_groups]
