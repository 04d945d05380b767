"""Training and scoring BERT4Rec.

Objectives (``--objective``): ``cloze`` (BERT's masked items, what ``pretrain`` uses), ``last``
(only the last item of each window masked: exactly the next-item task of the test) and ``both``
(the paper's: every window as a cloze sample, plus last-item samples of a random
``last_share`` of the windows each epoch) and ``cloze-last`` (one pass: cloze with the last item
of every window always masked as well). AdamW with decoupled weight
decay (none on biases and LayerNorm), linear warm-up then linear decay to 0, gradient clipping.
Batches are random samples of windows (``--batching random``, the default: mixed lengths learn
far more per epoch on ML-1M, docs/benchmarks.md) or windows of similar length (``bucket``). On
the CPU a random batch runs as length-sorted chunks of 8 rows, each padded only to its own
longest window, with one loss over the whole batch: the batch's gradient at close to a bucketed
batch's cost.

Scoring appends [MASK] to the history (cut to ``max_len`` from the left) and ranks the scores of
that position; the test target is never part of any training input (formats.check_no_leakage).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.masking import (
    bucketed_batches,
    cloze_mask,
    last_mask,
    left_pad,
    length_chunks,
    make_windows,
    random_batches,
)
from ..errors import SeqrecError
from ..evaluation import EvalSpec, ScoreBatch, check_filter_seen, evaluate_batches, prediction_positions
from ..formats import ProcessedData, Sequences
from ..models.bert4rec import Bert4Rec, Bert4RecConfig
from ..training import Recipe

OBJECTIVES = ("cloze", "last", "both", "cloze-last")
BATCHINGS = ("random", "bucket")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CPU_CHUNK_ROWS = 8


@dataclass
class Bert4RecTrainConfig:
    epochs: int = 100
    batch_size: int = 32
    lr: float = 2e-3  # peak learning rate after warm-up
    weight_decay: float = 0.01
    warmup_steps: int = 200
    max_grad_norm: float = 5.0
    mask_prob: float = 0.2  # share of positions chosen for the cloze objective
    label_smoothing: float = 0.0  # cross-entropy label smoothing (0 = plain cross-entropy)
    objective: str = "both"  # cloze | last | both | cloze-last
    last_share: float = 1.0  # "both": windows that also give a last-item sample each epoch
    window_step: int = 0  # sliding step of the training windows; 0 = max_len (no overlap)
    max_windows: int = 0  # most recent windows kept per training sequence; 0 = all
    valid_filter_seen: bool = False  # validate (and pick the best epoch) with the history's items excluded
    batching: str = "random"  # random (mixed lengths) | bucket (similar lengths: less padding, learns less per epoch)
    precision: str = "auto"  # auto (fp32 on CPU, bf16/fp16 on CUDA) | fp32 | bf16 | fp16 (CUDA)
    seed: int = 42

    def check(self) -> None:
        if self.objective not in OBJECTIVES:
            raise SeqrecError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        if self.batching not in BATCHINGS:
            raise SeqrecError(f"--batching must be one of {', '.join(BATCHINGS)}, got {self.batching!r}")
        if self.precision not in PRECISIONS:
            raise SeqrecError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not 0 < self.mask_prob < 1:
            raise SeqrecError("--mask-prob must be between 0 and 1")
        if not 0 <= self.label_smoothing < 1:
            raise SeqrecError("--label-smoothing must be in [0, 1)")
        if not 0 <= self.last_share <= 1:
            raise SeqrecError("--last-share must be between 0 and 1")
        if self.batch_size < 1 or self.epochs < 1 or self.lr <= 0 or self.window_step < 0 or self.max_windows < 0:
            raise SeqrecError("--batch-size and --epochs must be >= 1, --lr > 0, --window-step and --max-windows >= 0")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise SeqrecError("--precision fp16 needs --use-cuda; on the CPU use bf16 or fp32")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class Bert4RecRecipe(Recipe):
    name = "bert4rec"
    valid_key = "ndcg@10"
    loss_label = "loss"
    perplexity = True

    def __init__(
        self,
        data: ProcessedData,
        model_config: Bert4RecConfig,
        train_config: Bert4RecTrainConfig,
        device: torch.device,
        eval_batch_size: int = 256,
        init_state: dict | None = None,
        stage: str = "train",
    ):
        train_config.check()
        self.data = data
        self.model_config = model_config
        self.tc = train_config
        self.device = device
        self.stage = stage
        self.eval_batch_size = eval_batch_size
        # CPU: a random batch runs as length-sorted chunks of this many rows (far less padding, same
        # gradient); on a GPU padding is cheap and one big matrix product is faster; a bucketed
        # batch already holds similar lengths
        chunked = device.type == "cpu" and train_config.batching == "random"
        self.chunk_rows = CPU_CHUNK_ROWS if chunked else train_config.batch_size
        self.max_grad_norm = train_config.max_grad_norm
        self.dtype = autocast_dtype(train_config.precision, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.model = Bert4Rec(model_config).to(device)
        if init_state is not None:
            self.model.load_state_dict(init_state)
        self.rng = np.random.default_rng(train_config.seed)
        step = train_config.window_step or model_config.max_len
        if step > model_config.max_len:
            raise SeqrecError(
                f"--window-step {step} is larger than the max length {model_config.max_len}: items between "
                "windows would never be trained on"
            )
        if train_config.valid_filter_seen:
            check_filter_seen(data.manifest.eval_target, "--valid-filter-seen")
        self.windows = make_windows(data.split("train"), model_config.max_len, step, train_config.max_windows)
        n = len(self.windows)
        self.n_last = n if train_config.objective == "last" else 0
        if train_config.objective == "both":
            self.n_last = int(round(train_config.last_share * n))
        self.n_samples = (n if train_config.objective != "last" else 0) + self.n_last

    def config(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "stage": self.stage,
            "model_config": asdict(self.model_config),
            "train_config": asdict(self.tc),
        }

    def summary(self) -> list[str]:
        c = self.model_config
        n = sum(p.numel() for p in self.model.parameters())
        return [
            f"bert4rec: {c.num_layers} layers x {c.num_heads} heads, hidden {c.hidden_size}, feed-forward "
            f"{c.intermediate_size}, max length {c.max_len}, {c.n_items:,} items, {n:,} parameters",
            f"objective {self.tc.objective} (mask prob {self.tc.mask_prob}"
            + (f", last-item samples for {self.tc.last_share:.0%} of windows" if self.tc.objective == "both" else "")
            + (f", label smoothing {self.tc.label_smoothing}" if self.tc.label_smoothing else "")
            + f"), AdamW lr {self.tc.lr} "
            f"(warm-up {self.tc.warmup_steps} steps, linear decay), {self.tc.batching} batches of {self.tc.batch_size}, "
            f"{len(self.windows):,} training windows -> {self.n_samples:,} samples/epoch on {self.device.type}"
            + (f" ({self.dtype})" if self.dtype else ""),
            "validation: full ranking" + (" without the items already in the history (full+filter-seen)" if self.tc.valid_filter_seen else ""),
        ]

    def make_optimizer(self, total_steps: int):
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim < 2 or "norm" in name else decay).append(p)
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.tc.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.tc.lr,
        )
        warm = max(1, self.tc.warmup_steps)
        total = max(total_steps, warm + 1)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (total - step) / (total - warm))

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def steps_per_epoch(self) -> int:
        return -(-self.n_samples // self.tc.batch_size)

    def epoch_batches(self) -> Iterator[list[tuple[np.ndarray, np.ndarray]]]:
        """Each batch is a list of (inputs, labels) chunks, each left-padded to its own longest row."""
        w = self.windows
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (inputs, labels, lengths)
        if self.tc.objective in ("cloze", "both", "cloze-last"):
            force_last = self.tc.objective == "cloze-last"
            parts.append((*cloze_mask(w, self.tc.mask_prob, self.model_config.n_items, self.rng, force_last), w.lengths))
        if self.n_last:
            chosen = np.sort(self.rng.choice(len(w), self.n_last, replace=False))
            sub = Sequences(*_take(w, chosen))
            parts.append((*last_mask(sub, self.model_config.n_items), sub.lengths))
        inputs = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        lengths = np.concatenate([p[2] for p in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if self.tc.batching == "bucket":
            batches = bucketed_batches(lengths, self.tc.batch_size, self.rng)
        else:
            batches = random_batches(len(lengths), self.tc.batch_size, self.rng)
        for rows in batches:
            yield [
                (left_pad(inputs, offsets, chunk), left_pad(labels, offsets, chunk))
                for chunk in length_chunks(rows, lengths, self.chunk_rows)
            ]

    def train_step(self, batch: list[tuple[np.ndarray, np.ndarray]]) -> tuple[torch.Tensor, float, int]:
        """One loss over the whole batch (mean over its labelled positions), summed chunk by chunk."""
        total = torch.zeros((), device=self.device)
        n = 0
        items_only = slice(1, self.model.config.mask_index)  # columns of the real items 1..N
        for chunk_items, chunk_labels in batch:
            items = torch.from_numpy(chunk_items).to(self.device)  # [b, T]
            labels = torch.from_numpy(chunk_labels).to(self.device)  # [b, T]
            select = labels > 0
            with autocast(self.device, self.dtype):
                logits = self.model(items, select)  # [m, V]
            total = total + F.cross_entropy(  # over the real items only: padding and [MASK] score -inf
                logits[:, items_only].float(), labels[select] - 1, reduction="sum", label_smoothing=self.tc.label_smoothing
            )
            n += int(select.sum())
        return total / max(n, 1), float(total.detach()), n

    def validate(self) -> dict[str, float] | None:
        if "valid" not in self.data.splits:
            return None
        seqs = self.data.splits["valid"]
        target = self.data.manifest.eval_target
        result = evaluate_batches(
            score_batches(self.model, seqs, target, self.eval_batch_size, self.device, self.dtype),
            seqs,
            self.data.n_items,
            target,
            EvalSpec(split="valid", cutoffs=(10, 20), filter_seen=self.tc.valid_filter_seen),
        )
        return result.metrics

    def rng_state(self) -> dict[str, Any]:
        return {"numpy": self.rng.bit_generator.state}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy"]


def _take(seqs: Sequences, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(items, offsets) of the selected rows of a Sequences, vectorised."""
    lens = seqs.lengths[rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    src = np.repeat(seqs.offsets[rows], lens) + np.arange(offsets[-1]) - np.repeat(offsets[:-1], lens)
    return seqs.items[src], offsets


@torch.no_grad()
def score_batches(
    model: Bert4Rec,
    seqs: Sequences,
    mode: str,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> Iterator[ScoreBatch]:
    """Scores of a [MASK] appended to each history (the last ``max_len - 1`` items before the target).

    mode "last"/"all": the predictions of the split (see evaluation.prediction_positions); mode
    "next": after each whole sequence (recommendation, target unknown).
    """
    model.eval()
    if mode == "next":
        rows = np.arange(len(seqs))
        target_pos = seqs.lengths.copy()
    else:
        rows, target_pos = prediction_positions(seqs, mode)
    keep = model.config.max_len - 1
    hist_len = np.minimum(target_pos, keep)
    order = np.argsort(hist_len, kind="stable")  # similar lengths together: little padding
    mask = model.config.mask_index
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        r, tp, hl = rows[idx], target_pos[idx], hist_len[idx]
        # the history of prediction j is seq[r_j][tp_j - hl_j : tp_j]; append [MASK]
        offs = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(hl + 1, out=offs[1:])
        flat = np.full(int(offs[-1]), mask, dtype=np.int64)
        within = np.arange(int(hl.sum())) - np.repeat(np.cumsum(hl) - hl, hl)
        src = np.repeat(seqs.offsets[r] + tp - hl, hl) + within
        flat[np.repeat(offs[:-1], hl) + within] = seqs.items[src]
        batch = torch.from_numpy(left_pad(flat, offs, np.arange(len(idx)))).to(device)  # [b, T]
        with autocast(device, dtype):
            scores = model.score_last(batch)
        targets = np.where(tp < seqs.lengths[r], seqs.items[np.minimum(seqs.offsets[r] + tp, len(seqs.items) - 1)], 0)
        yield ScoreBatch(scores.float(), targets, r, tp)
