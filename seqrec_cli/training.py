"""One training loop for both models: epochs, steps, progress, metrics.jsonl, checkpoints, resume.

What differs between models lives in a :class:`Recipe` (batches, loss, optimizer, validation);
this module owns everything around it, so both models checkpoint, resume, log and stop early in
exactly the same way.

Determinism: the model is initialised after ``torch.manual_seed(seed)``; every random stream a
recipe uses (shuffling, masking, negative sampling) comes from generators seeded from the same
seed; the states of all of them and of torch's global RNG (dropout) are saved with each epoch's
checkpoint and restored by ``--resume``, so an interrupted run resumed from its last checkpoint
ends with the same weights and metrics as an uninterrupted one (on the CPU).
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import checkpoint as ckpt
from . import formats
from .console import Tracker, note, say
from .errors import MismatchError, SeqrecError
from .fileio import atomic_path


@dataclass
class RunOptions:
    """Options about the run, not the model: where it goes and how it is watched."""

    model_dir: Path
    epochs: int
    resume: bool = False
    overwrite: bool = False
    use_cuda: bool = False
    log_every: int = 200  # steps between plain log lines / metrics.jsonl step records
    patience: int = 0  # validations without improvement before stopping (0 = never)
    valid_every: int = 1  # validate after every N-th epoch (and after the last)


def pick_device(use_cuda: bool) -> torch.device:
    if not use_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise SeqrecError(
            f"--use-cuda: CUDA is not available (torch {torch.__version__}, "
            f"{'built without CUDA' if torch.version.cuda is None else 'no GPU visible'}); "
            "drop --use-cuda to train on the CPU"
        )
    return torch.device("cuda")


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)


class Recipe(ABC):
    """The model-specific half of training."""

    name: str  # registry name, e.g. "gru4rec"
    model: nn.Module
    device: torch.device
    max_grad_norm: float | None = None
    scaler: Any = None  # torch.amp.GradScaler when training in fp16
    valid_key: str = "ndcg@10"  # validation metric that picks the best epoch (higher is better)
    loss_label: str = "loss"
    perplexity: bool = False  # the loss is a full-softmax cross-entropy: show exp(loss) too

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able description: {"model": name, "model_config": ..., "train_config": ...}."""

    @abstractmethod
    def make_optimizer(self, total_steps: int) -> tuple[Any, Any | None]:
        """(optimizer, scheduler or None); total_steps is the planned number of steps of the run."""

    @abstractmethod
    def steps_per_epoch(self) -> int: ...

    @abstractmethod
    def epoch_batches(self) -> Iterator[Any]:
        """Batches of one epoch, drawn from the recipe's own seeded generators."""

    @abstractmethod
    def train_step(self, batch: Any) -> tuple[torch.Tensor, float, int]:
        """(loss to backpropagate, summed loss over targets for logging, number of targets)."""

    def validate(self) -> dict[str, float] | None:
        return None

    def rng_state(self) -> dict[str, Any]:
        """States of the recipe's own generators (shuffling, masking, sampling), for checkpoints."""
        return {}

    def load_rng_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what :meth:`rng_state` returned (on --resume)."""

    def summary(self) -> list[str]:
        n = sum(p.numel() for p in self.model.parameters())
        return [f"{self.name}: {n:,} parameters"]


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's config that must not change across --resume."""
    train = {k: v for k, v in cfg.get("train_config", {}).items() if k not in ("epochs",)}
    return {"model_config": cfg.get("model_config"), "train_config": train}


class Trainer:
    def __init__(self, recipe: Recipe, run: RunOptions, data_info: dict[str, Any]):
        self.recipe = recipe
        self.run = run
        self.data_info = data_info  # train_dir, dataset, data_fingerprint, vocab path/sha256
        self.metrics_path = Path(run.model_dir) / formats.METRICS_FILE

    # ------------------------------------------------------------------ bookkeeping
    def _log(self, record: dict[str, Any]) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def _truncate_log(self, last_epoch: int) -> None:
        """On resume: keep only what the checkpoint we resume from had seen."""
        if not self.metrics_path.is_file():
            return
        kept = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("epoch", 0) <= last_epoch:
                kept.append(line)
        with atomic_path(self.metrics_path) as tmp:
            tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")

    def _checkpoint_config(self, epoch: int, stats: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.recipe.config(),
            "data": {k: self.data_info[k] for k in ("train_dir", "train_dir_abs", "dataset", "eval_target", "data_fingerprint")},
            "vocab": {"path": self.data_info["vocab_path"], "sha256": self.data_info["vocab_sha256"]},
            "epoch": epoch,
            "metrics": stats,
            "best": best,
            "seqrec_version": self.data_info.get("seqrec_version"),
        }

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        recipe, run = self.recipe, self.run
        run_record = {
            "model": recipe.name,
            "dataset": self.data_info["dataset"],
            "train_dir": self.data_info["train_dir"],
            "data_fingerprint": self.data_info["data_fingerprint"],
        }
        start_epoch = ckpt.claim_model_dir(run.model_dir, run_record, run.resume, run.overwrite)
        steps_per_epoch = recipe.steps_per_epoch()  # an estimate; corrected by the count of each finished epoch
        optimizer, scheduler = recipe.make_optimizer(steps_per_epoch * run.epochs)
        best: dict[str, Any] = {"epoch": None, "metric": recipe.valid_key, "value": None}
        global_step = 0
        if start_epoch:
            last = ckpt.read_checkpoint(formats.checkpoint_dir(run.model_dir, start_epoch))
            if _comparable(last.config) != _comparable(recipe.config()):
                raise MismatchError(
                    f"--resume: the settings differ from those {last.path} was trained with; "
                    "rerun with the same options (only --epochs may change) or use a new --model-dir"
                )
            recipe.model.load_state_dict(ckpt.load_weights(last, recipe.device))
            state = ckpt.load_train_state(last)
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"]["torch"])
            if "cuda" in state["rng"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(state["rng"]["cuda"])
            recipe.load_rng_state(state["rng"]["recipe"])
            global_step = int(state["step"])
            best = last.config.get("best", best)
            self._truncate_log(start_epoch)
            note(f"resuming from {last.path} (epoch {start_epoch}, step {global_step})")
        elif self.metrics_path.exists():
            self.metrics_path.unlink()

        for line in recipe.summary():
            note(line)
        if start_epoch >= run.epochs:
            note(f"nothing to do: {run.model_dir} already has epoch {start_epoch} of {run.epochs}")
        bad_epochs = 0
        history: list[dict[str, Any]] = []
        for epoch in range(start_epoch + 1, run.epochs + 1):
            recipe.model.train()
            t0 = time.perf_counter()
            loss_sum, n_targets, n_steps = 0.0, 0, 0
            window_loss, window_n, shown = 0.0, 0, 0
            with Tracker(
                f"epoch {epoch}/{run.epochs}", steps_per_epoch, kind="steps", log_every_steps=run.log_every
            ) as tracker:
                for batch in recipe.epoch_batches():
                    loss, batch_loss_sum, n = recipe.train_step(batch)
                    optimizer.zero_grad(set_to_none=True)
                    scaler = recipe.scaler
                    if scaler is not None:  # fp16 on CUDA
                        scaler.scale(loss).backward()
                        scaler.unscale_(optimizer)
                    else:
                        loss.backward()
                    if recipe.max_grad_norm:
                        torch.nn.utils.clip_grad_norm_(recipe.model.parameters(), recipe.max_grad_norm)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    if not math.isfinite(batch_loss_sum):
                        raise SeqrecError(
                            f"the loss became {batch_loss_sum} at epoch {epoch}, step {n_steps + 1}; "
                            "lower --lr (nothing of this epoch was saved)"
                        )
                    global_step += 1
                    n_steps += 1
                    loss_sum += batch_loss_sum
                    n_targets += n
                    window_loss += batch_loss_sum
                    window_n += n
                    if n_steps - shown >= 20 or n_steps == 1:
                        elapsed = time.perf_counter() - t0
                        mean = loss_sum / max(1, n_targets)
                        ppl = f" ppl {math.exp(min(mean, 50)):,.1f}" if recipe.perplexity else ""
                        tracker.advance(
                            n_steps - shown,
                            status=f"{recipe.loss_label} {mean:.4f}{ppl} | {n_targets / elapsed:,.0f} targets/s",
                        )
                        shown = n_steps
                    if n_steps % run.log_every == 0:
                        elapsed = time.perf_counter() - t0
                        self._log(
                            {
                                "event": "step",
                                "epoch": epoch,
                                "step": global_step,
                                "loss": window_loss / max(1, window_n),
                                "targets_per_s": round(n_targets / elapsed, 1),
                            }
                        )
                        window_loss, window_n = 0.0, 0
                tracker.advance(n_steps - shown)
            seconds = time.perf_counter() - t0
            steps_per_epoch = n_steps
            train_loss = loss_sum / max(1, n_targets)
            recipe.model.eval()
            t1 = time.perf_counter()
            due = epoch % max(1, run.valid_every) == 0 or epoch == run.epochs
            with torch.no_grad():
                valid = recipe.validate() if due else None
            valid_seconds = time.perf_counter() - t1
            improved = False
            if valid is not None:
                value = valid.get(recipe.valid_key)
                if value is not None and (best["value"] is None or value > best["value"]):
                    best = {"epoch": epoch, "metric": recipe.valid_key, "value": value}
                    improved = True
            stats = {
                "train_loss": train_loss,
                "steps": n_steps,
                "targets": n_targets,
                "seconds": round(seconds, 2),
                "targets_per_s": round(n_targets / max(seconds, 1e-9), 1),
                "valid": valid,
                "valid_seconds": round(valid_seconds, 2) if valid is not None else None,
            }
            rng = {"torch": torch.get_rng_state(), "recipe": recipe.rng_state()}
            if recipe.device.type == "cuda":
                rng["cuda"] = torch.cuda.get_rng_state_all()
            train_state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng,
                "step": global_step,
                "epoch": epoch,
            }
            path = ckpt.save_checkpoint(
                run.model_dir, epoch, recipe.model.state_dict(), self._checkpoint_config(epoch, stats, best), train_state
            )
            self._log({"event": "epoch", "epoch": epoch, "step": global_step, **stats, "best": best})
            if best["epoch"] is not None:
                ckpt.write_run(run.model_dir, {**(ckpt.read_run(run.model_dir) or {}), "best": best})
            history.append({"epoch": epoch, **stats})
            line = (
                f"epoch {epoch}: {recipe.loss_label} {train_loss:.4f}, {n_steps:,} steps, {seconds:.1f}s "
                f"({n_targets / max(seconds, 1e-9):,.0f} targets/s)"
            )
            if valid is not None:
                shown = ", ".join(f"{k} {v:.4f}" for k, v in valid.items() if k in ("hr@10", "ndcg@10", "recall@20", "mrr@20"))
                line += f"; valid {shown}" + (" *" if improved else "")
            say(line + f" -> {path}")
            if valid is not None and run.patience > 0:
                bad_epochs = 0 if improved else bad_epochs + 1
                if bad_epochs >= run.patience:
                    say(f"early stop: no {recipe.valid_key} improvement in {run.patience} validations (best epoch {best['epoch']})")
                    break
        return {"best": best, "history": history}


def data_info(data: formats.ProcessedData, train_dir: Path) -> dict[str, Any]:
    """What a checkpoint records about its data: where, which, and a fingerprint of the content."""
    import hashlib

    from . import __version__

    m = data.manifest
    fp = hashlib.sha256()
    fp.update(m.vocab_sha256.encode())
    for name in sorted(m.splits):
        fp.update(f"{name}:{m.splits[name].sha256}".encode())
    return {
        "train_dir": str(train_dir),
        "train_dir_abs": str(Path(train_dir).resolve()),
        "dataset": m.dataset,
        "eval_target": m.eval_target,
        "data_fingerprint": fp.hexdigest()[:16],
        "vocab_path": str(data.vocab_file),
        "vocab_sha256": m.vocab_sha256,
        "seqrec_version": __version__,
    }
