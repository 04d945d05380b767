"""The interface every seqrec model implements, and what the training loop and the scorers use.

A model is an ``nn.Module`` built from its typed config alone (``Model(config)``) with two entry
points, so that a wrapper such as ``DistributedDataParallel`` sees every call:

* ``forward(batch) -> TrainOutput``: the training loss of one batch from the model's training
  batcher (nanoGPT's ``forward(idx, targets) -> loss``, RecBole's ``calculate_loss``);
* ``score(batch) -> [B, n_items + 1]``: the score of every item for each prediction of a batch
  from the model's scoring batcher (RecBole's ``full_sort_predict``). Column i is item index i;
  column 0 (padding) is -inf. Used alike by validation, ``infer``, ``evaluate`` and ``recommend``.

``configure_optimizers`` gives the optimizer and learning-rate schedule the model trains with,
and ``reset_state`` starts a new pass for a model that carries state from batch to batch
(GRU4Rec's session-parallel hidden state). ``history_scorer`` gives the model as a plain function
of one padded history matrix (history in, scores out) that ``torch.onnx`` and ``torch.jit`` can
export (``seqrec export``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class TrainOutput:
    loss: torch.Tensor  # scalar to backpropagate
    loss_sum: float  # summed loss over the batch's targets, for logging
    n_targets: int  # predictions the loss covers


class SequentialRecommender(nn.Module):
    """Base class: see the module docstring."""

    config: Any
    cuda_precision: str = "bf16"  # what precision "auto" means on CUDA for this model

    def forward(self, batch: Any) -> TrainOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, batch: Any) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def configure_optimizers(self, train_config: Any, total_steps: int) -> tuple[Any, Any | None]:
        """(optimizer, scheduler or None); ``total_steps`` is the planned number of steps of the run."""
        raise NotImplementedError  # pragma: no cover - abstract

    def full_softmax_loss(self) -> bool:
        """Whether the training loss is a cross-entropy over every item (progress then shows exp(loss),
        the perplexity, too)."""
        return False

    def reset_state(self) -> None:
        """Forget state carried between batches (start of an epoch or of a scoring pass)."""

    def history_scorer(self) -> nn.Module:
        """A module ``forward(items[, lengths]) -> scores [B, n_items + 1]`` that gives, from one padded
        history matrix laid out as the registry entry's ``history_layout`` says, the scores ``score``
        gives after each history (column 0, padding, -inf). Stateless, for eval mode, in tensor
        operations that ``torch.onnx.export`` and ``torch.jit.trace`` follow with any batch size and
        history length (``seqrec_cli.export``). It shares this model's weights."""
        raise NotImplementedError  # pragma: no cover - abstract

    def summary(self, train_config: Any) -> list[str]:
        n = sum(p.numel() for p in self.parameters())
        return [f"{type(self).__name__}: {n:,} parameters"]


def to_device(batch: Any, device: torch.device) -> Any:
    """A batch dataclass with its numpy arrays turned into tensors on ``device`` (fields named in
    the batch's ``host_fields`` stay numpy: they describe the batch, the model never reads them)."""
    keep = getattr(batch, "host_fields", ())
    values = {}
    for f in fields(batch):
        v = getattr(batch, f.name)
        if f.name not in keep:
            if isinstance(v, np.ndarray):
                v = torch.from_numpy(v).to(device)
            elif isinstance(v, torch.Tensor):
                v = v.to(device)
            elif isinstance(v, list):
                v = [tuple(torch.from_numpy(x).to(device) for x in item) for item in v]
        values[f.name] = v
    return type(batch)(**values)


def autocast_dtype(precision: str, device: torch.device, cuda_default: str = "bf16") -> torch.dtype | None:
    """The autocast dtype of a precision setting (None = plain fp32). Raises ValueError for fp16
    on a CPU (the caller turns it into an error line)."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        precision = cuda_default
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            precision = "fp16"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs --use-cuda; on the CPU use bf16 or fp32")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def no_autocast(device: torch.device):
    """Leave an autocast region: losses are computed in fp32 on fp32 logits."""
    return torch.autocast(device_type=device.type, enabled=False)


def adamw_with_warmup(
    model: nn.Module, lr: float, weight_decay: float, warmup_steps: int, total_steps: int, decay_to_zero: bool = True
):
    """AdamW with decoupled weight decay (none on biases and LayerNorm weights), a linear warm-up
    over ``warmup_steps`` and then a linear decay to 0 at ``total_steps`` (BERT, Devlin et al. 2019,
    §A.2; BERT4Rec trains the same way) or a constant rate (``decay_to_zero=False``; then the rate
    does not depend on ``total_steps`` (with no warm-up there is no schedule at all), and a run may
    be resumed with more epochs)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=lr
    )
    if not decay_to_zero and warmup_steps == 0:
        return opt, None
    warm = max(1, warmup_steps)
    total = max(total_steps, warm + 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if not decay_to_zero:
            return 1.0
        return max(0.0, (total - step) / (total - warm))

    schedule = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    schedule.depends_on_total_steps = decay_to_zero  # read by --resume: only then must --epochs stay the same
    return opt, schedule
