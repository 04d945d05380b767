"""Optimizers that the models need and torch does not ship.

``AdagradM`` is Adagrad with momentum, the optimizer of the original GRU4Rec. For sparse
gradients (the item embeddings) it updates only the rows a step touched, accumulator and
momentum included; momentum of untouched rows does not keep moving them. That is both the
original's behaviour and what makes a step over a 37k-item catalogue cheap.
"""

from __future__ import annotations

import torch
from torch.optim import Optimizer


class AdagradM(Optimizer):
    def __init__(self, params, lr: float = 0.05, momentum: float = 0.0, eps: float = 1e-6):
        if lr <= 0:
            raise ValueError(f"learning rate must be > 0, got {lr}")
        if momentum < 0:
            raise ValueError(f"momentum must be >= 0, got {momentum}")
        super().__init__(params, dict(lr=lr, momentum=momentum, eps=eps))

    def _state(self, p: torch.Tensor, momentum: float) -> dict:
        state = self.state[p]
        if "acc" not in state:
            state["acc"] = torch.zeros_like(p)
            if momentum > 0:
                state["mom"] = torch.zeros_like(p)
        return state

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            lr, momentum, eps = group["lr"], group["momentum"], group["eps"]
            dense = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    self._sparse_step(p, self._state(p, momentum), lr, momentum, eps)
                else:
                    dense.append(p)
            if dense:
                self._dense_step(dense, lr, momentum, eps)
        return loss

    def _sparse_step(self, p: torch.Tensor, state: dict, lr: float, momentum: float, eps: float) -> None:
        """The rows of one sparse gradient: acc += g^2; u = -lr g / sqrt(acc + eps); with momentum
        m = momentum m + u, p += m; else p += u (the untouched rows keep their state)."""
        idx, val = _unique_rows(p.grad)  # [k], [k, ...]
        # index_add_ / index_select / index_copy_: row scatters and gathers, several times faster than
        # advanced indexing; adding g^2 in place (rows are unique) is cheaper than gather, add, copy back
        state["acc"].index_add_(0, idx, val.pow(2))
        denom = state["acc"].index_select(0, idx).add_(eps).sqrt_()
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
        denoms = torch._foreach_add(accs, eps)
        torch._foreach_sqrt_(denoms)
        if momentum > 0:
            moms = [st["mom"] for st in states]
            torch._foreach_mul_(moms, momentum)
            torch._foreach_addcdiv_(moms, grads, denoms, value=-lr)
            torch._foreach_add_(params, moms)
        else:
            torch._foreach_addcdiv_(params, grads, denoms, value=-lr)


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
