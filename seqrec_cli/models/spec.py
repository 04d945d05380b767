"""What the rest of seqrec knows about a model: one :class:`ModelEntry` each, and the training
settings every model shares (:class:`TrainConfig`).

An entry names the model's typed configs, its ``nn.Module``, the batchers that feed it (they
live in ``seqrec_cli/data/``), the figures its literature reports and its default data set. The
training loop, the evaluation commands and the CLI read these and never switch on a model's
name. Torch is imported only when a model or a batcher is actually built (the ``load_*``
callables), so the CLI can build its commands from the configs at start-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..hparams import SEED_MAX, hp

TRAINING = "Training"  # help panels
MODEL = "Model"


@dataclass
class TrainConfig:
    """Training settings shared by every model; each model's train config adds its own
    (``epochs``, ``batch_size``, ``lr`` and the rest) in a subclass."""

    seed: int = hp(
        42, "Seed of every random stream (initialisation, shuffling, masking, negatives, dropout).",
        min=0, max=SEED_MAX, panel=TRAINING,
    )  # fmt: skip
    precision: Literal["auto", "fp32", "bf16", "fp16"] = hp(
        "auto", "Arithmetic of the forward passes: auto (fp32 on a CPU; on CUDA the model's choice, bf16 "
        "where supported, else fp16) | fp32 | bf16 | fp16 (CUDA only).", panel=TRAINING,
    )  # fmt: skip
    max_grad_norm: float = hp(0.0, "Gradient clipping norm (0 = off).", min=0.0, panel=TRAINING)
    valid_every: int = hp(
        1, "Validate after every N-th epoch (and after the last); N > 1 saves time on short epochs.", min=1, panel=TRAINING
    )
    patience: int = hp(0, "Stop after this many validations without a better score (0 = never).", min=0, panel=TRAINING)
    valid_filter_seen: bool = hp(
        False, "Validate (and pick the best epoch) ranking only items not already in the history: the "
        "full+filter-seen protocol of seqrec evaluate --filter-seen (leave-one-out data).", panel=TRAINING,
    )  # fmt: skip


# settings that may change between a run and its --resume (they do not change the weights)
RESUMABLE = ("epochs", "patience", "valid_every")


@dataclass(frozen=True)
class Stage:
    """A second command of the same model (BERT4Rec's ``pretrain``): other defaults, values it
    fixes (their options hidden) and its default model folder."""

    help: str
    model_dir: Path
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryLayout:
    """How a model reads histories as one padded matrix ``items [B, T]`` (0 = padding): the input of
    its history scorer (``SequentialRecommender.history_scorer``, what ``seqrec export`` writes) and,
    for the models that score whole histories (BERT4Rec, SASRec), of their scoring batches."""

    side: Literal["left", "right"]  # where the padding goes: left (the last item in the last column) | right
    max_items: int | None  # the most recent history items kept (None = all of them)
    append: int | None = None  # index added after each history (BERT4Rec's [MASK]), None = nothing
    append_name: str = ""  # what the appended index is, for people ("[MASK]")
    lengths: bool = False  # the scorer also takes lengths [B]: real entries per row (appended index included)

    @property
    def max_length(self) -> int | None:
        """The widest ``items`` matrix the scorer takes (None = no limit)."""
        if self.max_items is None:
            return None
        return self.max_items + (self.append is not None)


@dataclass(frozen=True)
class ModelEntry:
    """Everything the rest of seqrec needs to know about one model."""

    name: str  # registry key, command name and the "model" of checkpoints
    title: str  # as its paper writes it
    help: str  # the train command's help text
    config: type  # model config dataclass: ``n_items`` (from the data) + declared fields
    train_config: type  # a TrainConfig subclass
    load_model: Callable[[], type]  # -> the nn.Module class (a SequentialRecommender)
    load_train_batcher: Callable[[], type]  # -> the training batcher class (seqrec_cli.data)
    score_batches: Callable[..., Iterator[Any]]  # (seqs, mode, batch_size, model_config, shard=None) -> score batches
    history_layout: Callable[[Any], HistoryLayout]  # model config -> how its history scorer reads histories (export)
    headline: tuple[str, ...]  # the figures infer prints per epoch, as the model's literature names them
    valid_metric: str  # the validation figure that picks the best epoch (higher is better)
    default_data: str  # processed data set trained on by default (data/<name>)
    lowercase_labels: bool = False  # infer lines as the session-based tools print them (recall@20:...)
    config_aliases: Mapping[str, str] = field(default_factory=dict)  # --config keys -> config fields
    config_ignored: tuple[str, ...] = ()  # --config keys accepted and not used
    check_config_file: Callable[[Any, int, str], None] | None = None  # (raw JSON, n_items, file) -> raises
    stages: Mapping[str, Stage] = field(default_factory=dict)  # extra commands, e.g. {"pretrain": ...}
    run_defaults: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"log_every": 1000} for many short steps
