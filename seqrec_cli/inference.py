"""From checkpoint folders to the data they evaluate on: which epoch, which data, which dtype.

A checkpoint rebuilds its model alone (``checkpoint.load_model``) and names the data it was
trained on, so ``infer`` needs no flags: it evaluates each epoch_N on the test split of that data,
checking that the data's vocabulary is the one the model was trained with. Scoring and metrics
are ``seqrec_cli.scoring``'s, the same code validation uses during training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import checkpoint as ckpt
from . import formats
from .errors import MismatchError, MissingInputError, SeqrecError
from .evaluation import EvalResult, EvalSpec
from .models.base import SequentialRecommender, autocast_dtype
from .scoring import evaluate_model


@dataclass
class LoadedModel:
    checkpoint: ckpt.Checkpoint
    model: SequentialRecommender
    device: torch.device

    @property
    def entry(self):
        return self.checkpoint.entry

    @property
    def dtype(self) -> torch.dtype | None:
        """Scoring arithmetic: the training precision on CUDA, fp32 on a CPU."""
        if self.device.type != "cuda":
            return None
        return autocast_dtype(self.checkpoint.config.train_config.precision, self.device, self.model.cuda_precision)


def load(checkpoint: ckpt.Checkpoint, device: torch.device) -> LoadedModel:
    return LoadedModel(checkpoint, ckpt.load_model(checkpoint, device), device)


def data_for(checkpoint: ckpt.Checkpoint, test_dir: Path | None = None) -> formats.ProcessedData:
    """The processed data to evaluate a checkpoint on: ``test_dir``, or the folder it was trained on."""
    if test_dir is None:
        stored = checkpoint.config.data
        folder = Path(stored.train_dir)
        if not (folder / formats.MANIFEST_FILE).is_file() and Path(stored.train_dir_abs).is_dir():
            folder = Path(stored.train_dir_abs)
    else:
        folder = Path(test_dir)
    data = formats.load_processed(folder)
    vocab = checkpoint.config.vocab
    if data.manifest.vocab_sha256 != vocab.sha256:
        raise MismatchError(
            f"{folder} uses vocabulary {data.vocab_file}, but {checkpoint.path} was trained with "
            f"{vocab.path} (different content): item indices would not match"
        )
    return data


def evaluate_checkpoint(lm: LoadedModel, data: formats.ProcessedData, spec: EvalSpec) -> EvalResult:
    return evaluate_model(lm.model, lm.entry, data, spec, lm.dtype)


def resolve_checkpoint(model_dir: Path, epoch: int | None) -> ckpt.Checkpoint:
    """epoch_<epoch>, or the best epoch recorded in run.json, or the last one."""
    model_dir = Path(model_dir)
    epochs = ckpt.list_epochs(model_dir)
    if not epochs:
        raise MissingInputError(model_dir, "seqrec train ...", what="checkpoints (epoch_N folders)")
    if epoch is None:
        run = ckpt.read_run(model_dir)
        best = run.best.epoch if run is not None and run.best is not None else None
        epoch = best if best in epochs else epochs[-1]
    if epoch not in epochs:
        raise MissingInputError(formats.checkpoint_dir(model_dir, epoch), what=f"checkpoint (have epochs {_ranges(epochs)})")
    return ckpt.read_checkpoint(formats.checkpoint_dir(model_dir, epoch))


def _ranges(epochs: list[int]) -> str:
    return f"{epochs[0]}..{epochs[-1]}" if epochs == list(range(epochs[0], epochs[-1] + 1)) else ", ".join(map(str, epochs))


def checkpoints_in_range(model_dir: Path, start: int, last: int) -> tuple[list[ckpt.Checkpoint], list[int], list[str]]:
    """(checkpoints of this folder's run for epochs start..last, missing epochs, skipped: one line
    each for a folder that holds another run's or another epoch's checkpoint)."""
    if start > last:
        raise SeqrecError(f"--start-index {start} is after --last-index {last}")
    model_dir = Path(model_dir)
    present = set(ckpt.list_epochs(model_dir))
    if not present:
        raise MissingInputError(model_dir, "seqrec train ...", what="checkpoints (epoch_N folders)")
    run = ckpt.read_run(model_dir)
    found, skipped = [], []
    for e in range(start, last + 1):
        if e not in present:
            continue
        c = ckpt.read_checkpoint(formats.checkpoint_dir(model_dir, e))
        if c.epoch != e:
            skipped.append(f"{c.path} holds epoch {c.epoch} of its run, not epoch {e}")
        elif run is not None and run.run_id and c.config.run_id != run.run_id:
            skipped.append(f"{c.path} belongs to another run than {model_dir / formats.RUN_FILE} ({c.model_name}, run {c.config.run_id})")
        else:
            found.append(c)
    missing = [e for e in range(start, last + 1) if e not in present]
    if not found:
        raise MissingInputError(
            formats.checkpoint_dir(model_dir, start),
            what=f"checkpoints {start}..{last} of this run (have epochs {_ranges(sorted(present))})",
        )
    return found, missing, skipped
