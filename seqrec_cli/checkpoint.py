"""Checkpoints that describe and verify themselves, the one path from a checkpoint to a model, and
the guard that keeps one model folder to one run.

``<model_dir>/epoch_<N>/`` holds ``model.pt`` (a state_dict), ``train_state.pt`` (optimizer,
scheduler and RNG states) and ``config.json`` (a :class:`CheckpointConfig`: model name, typed
model and training configs, data folder, vocabulary path + SHA-256, the epoch's metrics and the
SHA-256 of both ``.pt`` files). Everything loads with ``torch.load(weights_only=True)``: no pickled
objects. A checkpoint folder is written under a temporary name and renamed when complete, so an
``epoch_N`` folder is always whole; on load the ``.pt`` files are checked against their recorded
checksums, and anything unusable (truncated, foreign, pickled, of another shape, edited) is one
error naming the file.

``<model_dir>/run.json`` records which model, data set and run the folder belongs to; training
refuses to mix another model or data set into it, and ``infer`` flags checkpoints of another run.
"""

from __future__ import annotations

import json
import pickle
import re
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import formats
from .errors import BadInputError, MismatchError, MissingInputError, SeqrecError
from .fileio import atomic_dir, sha256_file, write_json
from .hparams import from_json, parse_record, read_json_file
from .models import entry_for
from .models.spec import ModelEntry

_EPOCH_RE = re.compile(rf"^{formats.CHECKPOINT_PREFIX}(\d+)$")
FORMAT_VERSION = 2  # of checkpoint config.json; 2: typed configs, loss settings in model_config, file checksums


@dataclass
class DataRef:
    """The processed data a checkpoint was trained on."""

    train_dir: str  # as given on the command line
    train_dir_abs: str  # resolved, used when the relative path no longer points at it
    dataset: str  # manifest name, e.g. ml-1m
    eval_target: str  # last | all
    data_fingerprint: str  # SHA-256 over the vocabulary and split checksums (16 hex digits)


@dataclass
class VocabRef:
    path: str
    sha256: str


@dataclass
class BestEpoch:
    epoch: int | None  # None until a validation ran
    metric: str
    value: float | None


@dataclass
class CheckpointConfig:
    """What ``config.json`` holds; ``model_config`` / ``train_config`` are the entry's dataclasses."""

    model: str
    stage: str  # train | pretrain
    epoch: int
    model_config: Any
    train_config: Any
    data: DataRef
    vocab: VocabRef
    metrics: dict[str, Any]  # the epoch's statistics (loss, steps, seconds, validation figures)
    best: BestEpoch
    run_id: str  # the run this checkpoint belongs to (run.json of its folder)
    seqrec_version: str
    files: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256, filled in when saved
    world_size: int = 1  # processes that trained it (data parallel; --resume needs as many)

    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, **asdict(self)}


@dataclass
class Checkpoint:
    path: Path
    config: CheckpointConfig
    entry: ModelEntry

    @property
    def epoch(self) -> int:
        return self.config.epoch

    @property
    def model_name(self) -> str:
        return self.config.model


@dataclass
class RunRecord:
    """``run.json``: which model, data set and run a model folder belongs to."""

    model: str
    dataset: str
    train_dir: str
    data_fingerprint: str
    run_id: str = ""
    created: str = ""
    best: BestEpoch | None = None


# ---------------------------------------------------------------------------------------------- listing
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


# ---------------------------------------------------------------------------------------------- saving
def save_checkpoint(
    model_dir: Path, config: CheckpointConfig, state_dict: dict, train_state: dict[str, Any] | None
) -> Path:
    """Write ``epoch_<config.epoch>`` as a unit; a full disk is one error and leaves nothing behind."""
    import torch

    dest = formats.checkpoint_dir(model_dir, config.epoch)
    kept = list_epochs(model_dir)
    note = f"the checkpoints of earlier epochs ({kept[0]}..{kept[-1]}) are kept" if kept else "no checkpoint was written"
    with atomic_dir(dest, kept=note) as tmp:  # a full disk: DiskFullError naming dest, nothing left behind
        files = {formats.WEIGHTS_FILE: state_dict}
        if train_state is not None:
            files[formats.STATE_FILE] = train_state
        for name, obj in files.items():
            torch.save(obj, tmp / name)
            config.files[name] = sha256_file(tmp / name)
        (tmp / formats.CONFIG_FILE).write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")
    return dest


# ---------------------------------------------------------------------------------------------- reading
def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint folder ``path`` with its typed, checked config (weights are not loaded yet)."""
    path = Path(path)
    cfg_file = path / formats.CONFIG_FILE
    if not path.is_dir():
        raise MissingInputError(path, "seqrec train ...", what="checkpoint")
    for name in (formats.CONFIG_FILE, formats.WEIGHTS_FILE):  # a folder without them is not a checkpoint: name what is missing
        if not (path / name).is_file():
            raise MissingInputError(path / name, what="checkpoint file")
    raw = read_json_file(cfg_file, "checkpoint config")
    if not isinstance(raw, dict) or "model" not in raw:
        raise BadInputError(cfg_file, "not a seqrec checkpoint config (no \"model\" key)")
    version = raw.get("format_version")
    if version != FORMAT_VERSION:
        wrote = f" (written by seqrec {raw['seqrec_version']})" if isinstance(raw.get("seqrec_version"), str) else ""
        raise MismatchError(
            f"{cfg_file}: checkpoint format version {version!r}{wrote}; this seqrec reads version {FORMAT_VERSION}: "
            "retrain, or use the seqrec version that wrote it"
        )
    body = {k: v for k, v in raw.items() if k != "format_version"}
    entry = entry_for(body["model"], cfg_file)
    body["model_config"] = from_json(entry.config, body.get("model_config"), f"{cfg_file}: model_config")
    body["train_config"] = from_json(entry.train_config, body.get("train_config"), f"{cfg_file}: train_config")
    cfg = parse_record(CheckpointConfig, body, cfg_file)  # the typed configs pass through as they are
    if cfg.epoch < 1:
        raise BadInputError(cfg_file, f"epoch must be >= 1, got {cfg.epoch}")
    if cfg.stage != "train" and cfg.stage not in entry.stages:
        raise BadInputError(cfg_file, f"stage must be train{''.join(', ' + s for s in entry.stages)}, got {cfg.stage!r}")
    return Checkpoint(path, cfg, entry)


def _load_pt(ckpt: Checkpoint, name: str, device: Any) -> Any:
    """torch.load(weights_only=True) of a checkpoint file, checked against its recorded SHA-256;
    every failure is one error naming the file (never advice to turn weights_only off)."""
    import torch

    path = ckpt.path / name
    if not path.is_file():
        raise MissingInputError(path, what="checkpoint file")
    expected = ckpt.config.files.get(name)
    matches = expected is not None and sha256_file(path) == expected
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise BadInputError(path, "not a seqrec checkpoint file (it holds pickled Python objects); it was not loaded") from None
    except (RuntimeError, EOFError, ValueError, OSError, IndexError, KeyError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0].split(". ")[0].rstrip(".")
        raise BadInputError(path, f"unreadable checkpoint file (truncated or not written by torch.save: {reason})") from None
    if not matches:
        raise BadInputError(
            path,
            "does not match the SHA-256 recorded in config.json: the file changed after the checkpoint was written"
            if expected is not None
            else "no SHA-256 is recorded for it in config.json",
        )
    return obj


def load_weights(ckpt: Checkpoint, device: Any = "cpu") -> dict:
    return _load_pt(ckpt, formats.WEIGHTS_FILE, device)


def load_train_state(ckpt: Checkpoint) -> dict:
    path = ckpt.path / formats.STATE_FILE
    if not path.is_file():
        raise MissingInputError(path, what="training state (needed by --resume)")
    return _load_pt(ckpt, formats.STATE_FILE, "cpu")


TRAINING_COPIES = 4  # weights, gradients and two optimizer moments (Adam's m and v; Adagrad's sum and momentum)


def build_model(entry: ModelEntry, model_config: Any, device: Any, training: bool = True):
    """A fresh model of ``entry`` from its config, on ``device``.

    Before anything is allocated, the model is laid out on torch's ``meta`` device to count its
    parameters; when they cannot fit in the memory left on the device (``training``: four copies,
    see :data:`TRAINING_COPIES`; for scoring one), that is one error naming the sizes to change,
    instead of an allocation that fails deep in torch or a process the kernel kills.
    """
    import torch

    with torch.device("meta"):
        n = sum(t.numel() for t in entry.load_model()(model_config).state_dict().values())
    weights = 4 * n  # float32
    need = weights * (TRAINING_COPIES if training else 1)
    have, where = available_memory(device)
    if have is not None and need > have:
        raise SeqrecError(_too_large(entry, model_config, n, need, have, where, training))
    try:
        return entry.load_model()(model_config).to(device)
    except (RuntimeError, MemoryError) as exc:
        if isinstance(exc, MemoryError) or "alloc" in str(exc) or "memory" in str(exc):
            raise SeqrecError(_too_large(entry, model_config, n, need, have, where, training)) from None
        raise


def _too_large(entry: ModelEntry, model_config: Any, n: int, need: int, have: int | None, where: str, training: bool) -> str:
    from .hparams import params_of

    sizes = " ".join(
        f"{p.flag} {getattr(model_config, p.name)}"
        for p in params_of(type(model_config))
        if p.arch and p.kind == "int" and getattr(model_config, p.name) != p.default
    )
    free = f"{where} has {_gib(have)} GiB available" if have is not None else f"{where} could not allocate it"
    need_text = f"; training needs about {TRAINING_COPIES} times that ({_gib(need)} GiB: weights, gradients, optimizer state)"
    return (
        f"{entry.title}{' with ' + sizes if sizes else ''} ({model_config.n_items:,} items) has {n:,} parameters "
        f"({_gib(4 * n)} GiB of float32 weights){need_text if training else ''}, but {free}; choose smaller sizes"
    )


def _gib(nbytes: int | None) -> str:
    return f"{(nbytes or 0) / 2**30:,.1f}"


def available_memory(device: Any) -> tuple[int | None, str]:
    """(bytes that can still be allocated on ``device``, or None when unknown; the device in words)."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
        except RuntimeError:
            return None, "the GPU"
        return int(free), "the GPU"
    have = None
    try:  # Linux: what can be allocated without pushing other programs out (swap counts: it still fits)
        info = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info[key] = int(value.split()[0]) * 1024
        have = info["MemAvailable"] + info.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        return None, "this machine"
    try:  # a container's memory limit
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            have = min(have, int(limit) - used)
    except (OSError, ValueError):
        pass
    return have, "this machine"


def load_state(model, ckpt: Checkpoint, device: Any) -> None:
    """Load ``ckpt``'s weights into ``model``; weights of another shape or set are one error."""
    state = load_weights(ckpt, device)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()
        detail = next((line.strip() for line in first[1:] if line.strip()), first[0] if first else "")
        raise BadInputError(
            ckpt.path / formats.WEIGHTS_FILE, f"the weights do not fit the model described in config.json ({detail})"
        ) from None


def load_model(ckpt: Checkpoint, device: Any = "cpu"):
    """The one path from a checkpoint to a model (infer, evaluate, recommend, --init-from, --resume):
    build the registry's model from the typed config, load the verified weights, eval mode."""
    model = build_model(ckpt.entry, ckpt.config.model_config, device, training=False)
    load_state(model, ckpt, device)
    model.eval()
    return model


# ---------------------------------------------------------------------------------------------- run.json
def read_run(model_dir: Path) -> RunRecord | None:
    path = Path(model_dir) / formats.RUN_FILE
    if not path.is_file():
        return None
    return parse_record(RunRecord, read_json_file(path, "run record"), path)


def write_run(model_dir: Path, run: RunRecord) -> None:
    write_json(Path(model_dir) / formats.RUN_FILE, asdict(run))


def claim_model_dir(model_dir: Path, run: RunRecord, resume: bool, overwrite: bool) -> tuple[int, RunRecord]:
    """Make ``model_dir`` this run's folder: (the epoch to resume from, 0 = from scratch; the run record).

    A folder of another model or data set is refused; a folder with checkpoints of this run needs
    ``--resume`` or ``--overwrite``; ``--resume`` continues only from a last checkpoint of this folder's run
    (its run_id and epoch number), never one copied in from another run. The caller holds the folder's lock.
    """
    model_dir = Path(model_dir)
    existing = read_run(model_dir)
    epochs = list_epochs(model_dir)
    if model_dir.is_dir():  # a run killed while writing a checkpoint leaves its temporary folder
        for stale in model_dir.glob(f".{formats.CHECKPOINT_PREFIX}*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
    if existing is not None and not overwrite:
        if existing.model != run.model:
            raise MismatchError(
                f"{model_dir} holds {existing.model} checkpoints; this is {run.model}. "
                f"Use another --model-dir, or --overwrite to replace them"
            )
        if existing.data_fingerprint != run.data_fingerprint:
            raise MismatchError(
                f"{model_dir} holds checkpoints trained on {existing.train_dir} "
                f"(data set {existing.dataset}), not on {run.train_dir}. "
                f"Use another --model-dir, or --overwrite to replace them"
            )
    if resume:
        if overwrite:
            raise SeqrecError("--resume and --overwrite exclude each other")
        if not epochs or existing is None:
            raise MissingInputError(model_dir / f"{formats.CHECKPOINT_PREFIX}N", what="checkpoint to resume from")
        last = read_checkpoint(formats.checkpoint_dir(model_dir, epochs[-1]))
        run_file = model_dir / formats.RUN_FILE
        if last.epoch != epochs[-1] or (existing.run_id and last.config.run_id != existing.run_id):
            what = (
                f"holds epoch {last.epoch} of its run, not epoch {epochs[-1]}"
                if last.epoch != epochs[-1]
                else f"belongs to another run than {run_file} (run {last.config.run_id}, not {existing.run_id})"
            )
            raise MismatchError(
                f"--resume: {last.path} {what}: continuing from it would mix two runs in one folder; "
                "move it out of this folder, or start over with --overwrite"
            )
        return epochs[-1], existing
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
    record = RunRecord(**{**asdict(run), "run_id": secrets.token_hex(8), "created": formats.now_iso()})
    write_run(model_dir, record)
    return 0, record
