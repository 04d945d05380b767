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
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._state(p, momentum)
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()  # the update is non-linear: indices must be unique
                    idx, val = grad.indices()[0], grad.values()  # [k], [k, ...]
                    # index_select: a row gather, several times faster than advanced indexing
                    acc = state["acc"].index_select(0, idx) + val.pow(2)
                    state["acc"].index_copy_(0, idx, acc)
                    update = val / (acc + eps).sqrt() * -lr
                    if momentum > 0:
                        update = state["mom"].index_select(0, idx).mul_(momentum).add_(update)
                        state["mom"].index_copy_(0, idx, update)
                    p.index_add_(0, idx, update)
                else:
                    state["acc"].add_(grad.pow(2))
                    denom = (state["acc"] + eps).sqrt_()
                    if momentum > 0:
                        mom = state["mom"]
                        mom.mul_(momentum).addcdiv_(grad, denom, value=-lr)
                        p.add_(mom)
                    else:
                        p.addcdiv_(grad, denom, value=-lr)
        return loss


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
