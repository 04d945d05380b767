"""Checkpoints that describe themselves, and the guard that keeps one model folder to one run.

``<model_dir>/epoch_<N>/`` holds ``model.pt`` (a state_dict), ``config.json`` (model name and
config, training config, data folder, vocabulary path + SHA-256, the epoch's metrics) and
``train_state.pt`` (optimizer, scheduler and RNG states). Everything loads with
``torch.load(weights_only=True)``: no pickled objects. A checkpoint folder is written under a
temporary name and renamed when complete, so an ``epoch_N`` folder is always whole.

``<model_dir>/run.json`` records which model and data set the folder belongs to; training
refuses to mix another model or data set into it.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import formats
from .errors import BadInputError, MismatchError, MissingInputError, SeqrecError
from .fileio import atomic_dir, write_json

_EPOCH_RE = re.compile(rf"^{formats.CHECKPOINT_PREFIX}(\d+)$")


@dataclass
class Checkpoint:
    path: Path
    epoch: int
    config: dict[str, Any]

    @property
    def model_name(self) -> str:
        return self.config["model"]


def list_epochs(model_dir: Path) -> list[int]:
    """Epochs with a complete checkpoint folder, ascending."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    epochs = []
    for child in model_dir.iterdir():
        m = _EPOCH_RE.match(child.name)
        if m and child.is_dir() and all((child / f).is_file() for f in (formats.WEIGHTS_FILE, formats.CONFIG_FILE)):
            epochs.append(int(m.group(1)))
    return sorted(epochs)


def save_checkpoint(
    model_dir: Path, epoch: int, state_dict: dict, config: dict[str, Any], train_state: dict[str, Any] | None
) -> Path:
    import torch

    dest = formats.checkpoint_dir(model_dir, epoch)
    with atomic_dir(dest) as tmp:
        torch.save(state_dict, tmp / formats.WEIGHTS_FILE)
        if train_state is not None:
            torch.save(train_state, tmp / formats.STATE_FILE)
        body = {"format_version": formats.FORMAT_VERSION, "epoch": epoch, **config}
        (tmp / formats.CONFIG_FILE).write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    return dest


def read_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    cfg_file = path / formats.CONFIG_FILE
    if not path.is_dir() or not cfg_file.is_file() or not (path / formats.WEIGHTS_FILE).is_file():
        raise MissingInputError(path, "seqrec train ...", what="checkpoint")
    try:
        config = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(cfg_file, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    if config.get("format_version") != formats.FORMAT_VERSION or "model" not in config:
        raise MismatchError(f"{cfg_file}: not a seqrec {formats.FORMAT_VERSION} checkpoint config")
    return Checkpoint(path, int(config.get("epoch", 0)), config)


def load_weights(ckpt: Checkpoint, device: Any = "cpu") -> dict:
    import torch

    return torch.load(ckpt.path / formats.WEIGHTS_FILE, map_location=device, weights_only=True)


def load_train_state(ckpt: Checkpoint) -> dict:
    import torch

    path = ckpt.path / formats.STATE_FILE
    if not path.is_file():
        raise MissingInputError(path, what="training state (needed by --resume)")
    return torch.load(path, map_location="cpu", weights_only=True)


def read_run(model_dir: Path) -> dict[str, Any] | None:
    path = Path(model_dir) / formats.RUN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None


def write_run(model_dir: Path, run: dict[str, Any]) -> None:
    write_json(Path(model_dir) / formats.RUN_FILE, run)


def claim_model_dir(model_dir: Path, run: dict[str, Any], resume: bool, overwrite: bool) -> int:
    """Make ``model_dir`` this run's folder; return the epoch to resume from (0 = from scratch).

    ``run`` holds at least ``model`` and ``data_fingerprint``. A folder of another model or data set
    is refused; a folder with checkpoints of this run needs ``--resume`` or ``--overwrite``.
    """
    model_dir = Path(model_dir)
    existing = read_run(model_dir)
    epochs = list_epochs(model_dir)
    if model_dir.is_dir():  # a run killed while writing a checkpoint leaves its temporary folder
        for stale in model_dir.glob(f".{formats.CHECKPOINT_PREFIX}*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    if existing is not None and not overwrite:
        if existing.get("model") != run["model"]:
            raise MismatchError(
                f"{model_dir} holds {existing.get('model')} checkpoints; this is {run['model']}. "
                f"Use another --model-dir, or --overwrite to replace them"
            )
        if existing.get("data_fingerprint") != run["data_fingerprint"]:
            raise MismatchError(
                f"{model_dir} holds checkpoints trained on {existing.get('train_dir')} "
                f"(data set {existing.get('dataset')}), not on {run['train_dir']}. "
                f"Use another --model-dir, or --overwrite to replace them"
            )
    if resume:
        if overwrite:
            raise SeqrecError("--resume and --overwrite exclude each other")
        if not epochs:
            raise MissingInputError(model_dir / f"{formats.CHECKPOINT_PREFIX}N", what="checkpoint to resume from")
        return epochs[-1]
    if epochs and not overwrite:
        raise SeqrecError(
            f"{model_dir} already has checkpoints (epoch {epochs[0]}..{epochs[-1]}); "
            "pass --resume to continue that run or --overwrite to start over"
        )
    if overwrite and model_dir.is_dir():
        for child in model_dir.iterdir():
            if _EPOCH_RE.match(child.name) or child.name in (formats.METRICS_FILE, formats.RUN_FILE):
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    model_dir.mkdir(parents=True, exist_ok=True)
    write_run(model_dir, {**run, "created": formats.now_iso()})
    return 0
