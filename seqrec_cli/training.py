"""One training loop for every model: epochs, steps, progress, metrics.jsonl, checkpoints, resume.

The loop calls the model and nothing else: ``model(batch)`` gives the loss of a batch from the
model's training batcher (``seqrec_cli.data``), ``model.configure_optimizers`` the optimizer and
schedule; validation goes through the scoring layer shared with ``infer`` and ``evaluate``
(``seqrec_cli.scoring``). So every model checkpoints, resumes, logs and stops early in exactly the
same way, and a wrapper such as ``DistributedDataParallel`` sees every forward pass.

Determinism: the model is initialised after ``torch.manual_seed(seed)``; every random stream a
batcher uses (shuffling, masking, negative sampling) comes from generators seeded from the same
seed; the states of all of them and of torch's global RNG (dropout) are saved with each epoch's
checkpoint and restored by ``--resume``, so an interrupted run resumed from its last checkpoint
ends with the same weights and metrics as an uninterrupted one (on the CPU).

Several processes (``--num-devices``, torchrun): ``seqrec_cli.distributed`` wraps the model for
data parallelism and gives each process its share of the data; every process runs this same loop,
and only rank 0 writes (checkpoints with every process's RNG states, metrics.jsonl, run.json,
curves, TensorBoard) and prints (docs/distributed.md).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from . import __version__, distributed, formats
from . import checkpoint as ckpt
from .console import Tracker, note, say
from .errors import MismatchError, SeqrecError
from .evaluation import EvalSpec, check_filter_seen, metric_key
from .fileio import atomic_path, folder_lock
from .hparams import EVAL_BATCH_SIZE
from .models.base import SequentialRecommender, autocast, autocast_dtype, to_device
from .models.spec import RESUMABLE, ModelEntry
from .scoring import evaluate_model

HEADLINE_VALID = ("hr@10", "ndcg@10", "recall@20", "mrr@20", "hr@20")  # shown on each epoch's line


@dataclass
class RunOptions:
    """Options about the run, not the model: where it goes and how it is watched."""

    model_dir: Path
    resume: bool = False
    overwrite: bool = False
    log_every: int = 200  # steps between plain log lines / metrics.jsonl step records
    eval_batch_size: int = EVAL_BATCH_SIZE  # predictions scored at once in validation
    stage: str = "train"
    tensorboard: Path | None = None  # TensorBoard event folder (None = no TensorBoard)
    curves: bool = True  # redraw <model_dir>/curves.png after every epoch


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


def precision_dtype(precision: str, device: torch.device, model: SequentialRecommender) -> torch.dtype | None:
    try:
        return autocast_dtype(precision, device, model.cuda_precision)
    except ValueError as exc:
        raise SeqrecError(str(exc)) from None


def data_info(data: formats.ProcessedData, train_dir: Path) -> dict[str, Any]:
    """What a checkpoint records about its data: where, which, and a fingerprint of the content."""
    import hashlib

    m = data.manifest
    fp = hashlib.sha256()
    fp.update(m.vocab_sha256.encode())
    for name in sorted(m.splits):
        fp.update(f"{name}:{m.splits[name].sha256}".encode())
    return {
        "data": ckpt.DataRef(
            train_dir=str(train_dir),
            train_dir_abs=str(Path(train_dir).resolve()),
            dataset=m.dataset,
            eval_target=m.eval_target,
            data_fingerprint=fp.hexdigest()[:16],
        ),
        "vocab": ckpt.VocabRef(str(data.vocab_file), m.vocab_sha256),
    }


def _comparable(model_config: Any, train_config: Any) -> dict[str, Any]:
    """The settings that must not change across --resume."""
    train = {k: v for k, v in asdict(train_config).items() if k not in RESUMABLE}
    return {"model_config": asdict(model_config), "train_config": train}


class Trainer:
    def __init__(
        self,
        entry: ModelEntry,
        model: SequentialRecommender,
        batcher: Any,
        train_config: Any,
        run: RunOptions,
        data: formats.ProcessedData,
        train_dir: Path,
    ):
        self.entry = entry
        self.model = model
        self.batcher = batcher
        self.tc = train_config
        self.run = run
        self.data = data
        self.info = data_info(data, train_dir)
        self.device = next(model.parameters()).device
        self.dtype = precision_dtype(train_config.precision, self.device, model)
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None
        self.valid_key = metric_key(entry.valid_metric, data.manifest.eval_target)
        self.valid_protocol = "full+filter-seen" if train_config.valid_filter_seen else "full"
        self.metrics_path = Path(run.model_dir) / formats.METRICS_FILE
        self.sink: Any = None  # TensorBoardSink while fit() runs with --tensorboard
        self.epoch_callbacks: list[Any] = []  # f(epoch, stats, best) after each saved epoch (seqrec tune; rank 0 only)
        self.proc = distributed.context()  # this process's rank and world (rank 0 of 1 in one process)
        self.main = self.proc.is_main  # rank 0 writes and prints; the other processes only compute
        self.parallel = distributed.DataParallel(model)  # what a training step calls: model(batch), DDP-wrapped
        self.valid_predictions = 0  # predictions the last validation scored

    # ------------------------------------------------------------------ bookkeeping
    def _log(self, record: dict[str, Any]) -> None:
        if not self.main:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        if self.sink is not None:
            self.sink.write(record)

    def _draw(self) -> None:
        if self.run.curves and self.main:
            from .plots import update_run_curves

            update_run_curves(self.run.model_dir)

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
            if isinstance(rec, dict) and rec.get("epoch", 0) <= last_epoch:
                kept.append(line)
        with atomic_path(self.metrics_path) as tmp:
            tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")

    def validate(self) -> dict[str, float] | None:
        if "valid" not in self.data.splits:
            return None
        spec = EvalSpec(
            split="valid", cutoffs=(10, 20), filter_seen=self.tc.valid_filter_seen, batch_size=self.run.eval_batch_size
        )
        result = evaluate_model(self.model, self.entry, self.data, spec, self.dtype)
        self.valid_predictions = result.predictions  # every process's together (checked against the split)
        return result.metrics

    def _restore(self, start_epoch: int, record: ckpt.RunRecord, optimizer, scheduler, planned_steps: int):
        """--resume: check the settings, then load weights, optimizer, schedule and every RNG state."""
        last = ckpt.read_checkpoint(formats.checkpoint_dir(self.run.model_dir, start_epoch))
        if _comparable(last.config.model_config, last.config.train_config) != _comparable(self.model.config, self.tc):
            raise MismatchError(
                f"--resume: the settings differ from those {last.path} was trained with; "
                f"rerun with the same options (only {', '.join('--' + k.replace('_', '-') for k in RESUMABLE)} may "
                "change) or use a new --model-dir"
            )
        if last.config.world_size != self.proc.world_size:
            n = last.config.world_size
            raise MismatchError(
                f"--resume: {last.path} was trained by {n} process(es), this run has {self.proc.world_size}: resume with "
                + ("no --num-devices (one process)" if n == 1 else f"--num-devices {n} (or torchrun with {n} processes in all)")
                + ": each process's share of the data and its random streams are saved for that number"
            )
        state = ckpt.load_train_state(last)
        if getattr(scheduler, "depends_on_total_steps", scheduler is not None) and state.get("planned_steps") not in (None, planned_steps):
            was = last.config.train_config.epochs
            raise MismatchError(
                f"--resume with --epochs {self.tc.epochs}: the learning rate of this run follows a schedule over "
                f"--epochs {was} (it decays to 0 at the end); resume with --epochs {was}, or start a new run"
            )
        ckpt.load_state(self.model, last, self.device)
        try:
            optimizer.load_state_dict(state["optimizer"])
            if scheduler is not None and state.get("scheduler") is not None:
                scheduler.load_state_dict(state["scheduler"])
            rng = state["rng_ranks"][self.proc.rank] if "rng_ranks" in state else state["rng"]
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])
            self.batcher.load_rng_state(rng["batcher"])
            step = int(state["step"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise SeqrecError(
                f"{last.path / formats.STATE_FILE}: not the training state of this run ({type(exc).__name__}: {exc})"
            ) from None
        note(f"resuming from {last.path} (epoch {start_epoch}, step {step})")
        return step, last.config.best

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        """Train (or resume) into ``run.model_dir``, holding its lock: a second writer is refused
        (with several processes rank 0 holds it)."""
        if not self.main:
            return self._fit()
        with folder_lock(self.run.model_dir):
            return self._fit()

    def _fit(self) -> dict[str, Any]:
        model, tc, run = self.model, self.tc, self.run
        data_ref = self.info["data"]
        wanted = ckpt.RunRecord(self.entry.name, data_ref.dataset, data_ref.train_dir, data_ref.data_fingerprint)
        start_epoch, record = distributed.from_main(
            lambda: ckpt.claim_model_dir(run.model_dir, wanted, run.resume, run.overwrite)
        )
        steps_per_epoch = self.batcher.steps_per_epoch()  # an estimate; corrected by each finished epoch's count
        planned_steps = steps_per_epoch * tc.epochs
        optimizer, scheduler = model.configure_optimizers(tc, planned_steps)
        best = ckpt.BestEpoch(None, self.valid_key, None)
        global_step = 0
        if start_epoch:
            global_step, best = self._restore(start_epoch, record, optimizer, scheduler, planned_steps)
            if self.main:
                self._truncate_log(start_epoch)
            self._draw()
        elif self.main and self.metrics_path.exists():
            self.metrics_path.unlink()
        if run.tensorboard is not None and self.main:
            from .tensorboard import TensorBoardSink

            self.sink = TensorBoardSink(run.tensorboard, start_step=global_step)
        try:
            return self._epochs(start_epoch, global_step, best, record, optimizer, scheduler, steps_per_epoch, planned_steps)
        finally:
            if self.sink is not None:
                self.sink.close()
                self.sink = None

    def _epochs(self, start_epoch, global_step, best, record, optimizer, scheduler, steps_per_epoch, planned_steps):
        model, tc, run = self.model, self.tc, self.run

        for line in model.summary(tc):
            note(line)
        note(
            f"{self.batcher.describe()} on {self.device.type}" + (f" ({self.dtype})" if self.dtype else "")
            + f"; validation: full ranking{' without the items already in the history (full+filter-seen)' if tc.valid_filter_seen else ''}"
            + f", best epoch by {self.valid_key}"
        )  # fmt: skip
        if self.proc.distributed:
            p = self.proc
            note(
                f"{p.world_size} process{'es' if p.world_size > 1 else ''} ({p.backend}, {p.threads} thread(s) each): global batch "
                f"{tc.batch_size * p.world_size} = {tc.batch_size} per process x {p.world_size}"
            )
        if start_epoch >= tc.epochs:
            note(f"nothing to do: {run.model_dir} already has epoch {start_epoch} of {tc.epochs}")
        bad_epochs = 0
        history: list[dict[str, Any]] = []
        for epoch in range(start_epoch + 1, tc.epochs + 1):
            stats = self._train_epoch(epoch, optimizer, scheduler, global_step, steps_per_epoch)
            global_step += stats["steps"]
            steps_per_epoch = stats["steps"]
            model.eval()
            t1 = time.perf_counter()
            due = epoch % tc.valid_every == 0 or epoch == tc.epochs
            valid = self.validate() if due else None
            stats["valid"] = valid
            stats["valid_predictions"] = self.valid_predictions if valid is not None else None
            stats["valid_protocol"] = self.valid_protocol if valid is not None else None
            stats["valid_seconds"] = round(time.perf_counter() - t1, 2) if valid is not None else None
            improved = False
            if valid is not None:
                value = valid.get(self.valid_key)
                if value is not None and (best.value is None or value > best.value):
                    best = ckpt.BestEpoch(epoch, self.valid_key, value)
                    improved = True
            path = self._save(epoch, stats, best, record, optimizer, scheduler, global_step, planned_steps)
            self._log({"event": "epoch", "epoch": epoch, "step": global_step, **stats, "best": asdict(best)})
            if best.epoch is not None:
                record = replace(record, best=best)
                if self.main:
                    ckpt.write_run(run.model_dir, record)
            history.append({"epoch": epoch, **stats})
            if self.sink is not None:
                self.sink.flush()
            self._draw()
            for callback in self.epoch_callbacks if self.main else ():
                callback(epoch, stats, best)
            line = (
                f"epoch {epoch}: loss {stats['train_loss']:.4f}, {stats['steps']:,} steps, {stats['seconds']:.1f}s "
                f"({stats['targets_per_s']:,.0f} targets/s)"
            )
            if valid is not None:
                shown = ", ".join(f"{k} {v:.4f}" for k, v in valid.items() if k in HEADLINE_VALID)
                line += f"; valid {shown}" + (" *" if improved else "")
            say(line + f" -> {path}")
            if valid is not None and tc.patience > 0:
                bad_epochs = 0 if improved else bad_epochs + 1
                if bad_epochs >= tc.patience:
                    say(f"early stop: no {self.valid_key} improvement in {tc.patience} validations (best epoch {best.epoch})")
                    break
        return {"best": best, "history": history}

    def _train_epoch(self, epoch: int, optimizer, scheduler, global_step: int, steps_estimate: int) -> dict[str, Any]:
        model, run = self.model, self.run
        model.train()
        model.reset_state()
        t0 = time.perf_counter()
        loss_sum, n_targets, n_steps = 0.0, 0, 0
        window_loss, window_n, shown = 0.0, 0, 0
        perplexity = model.full_softmax_loss()
        with Tracker(f"epoch {epoch}/{self.tc.epochs}", steps_estimate, kind="steps", log_every_steps=run.log_every) as tracker:
            for batch in self.batcher.epoch_batches():
                with autocast(self.device, self.dtype):
                    out = self.parallel.forward(to_device(batch, self.device))
                optimizer.zero_grad(set_to_none=True)
                if self.scaler is not None:  # fp16 on CUDA
                    self.scaler.scale(out.loss).backward()
                    self.parallel.after_backward()
                    self.scaler.unscale_(optimizer)
                else:
                    out.loss.backward()
                    self.parallel.after_backward()
                if self.tc.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), self.tc.max_grad_norm)
                if self.scaler is not None:
                    self.scaler.step(optimizer)
                    self.scaler.update()
                else:
                    optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                if not math.isfinite(out.loss_sum):
                    raise SeqrecError(
                        f"the loss became {out.loss_sum} at epoch {epoch}, step {n_steps + 1}; "
                        "lower --lr (nothing of this epoch was saved)"
                    )
                n_steps += 1
                loss_sum += out.loss_sum
                n_targets += out.n_targets
                window_loss += out.loss_sum
                window_n += out.n_targets
                if n_steps - shown >= 20 or n_steps == 1:
                    elapsed = time.perf_counter() - t0
                    mean = loss_sum / max(1, n_targets)
                    ppl = f" ppl {math.exp(min(mean, 50)):,.1f}" if perplexity else ""
                    tracker.advance(n_steps - shown, status=f"loss {mean:.4f}{ppl} | {n_targets / elapsed:,.0f} targets/s")
                    shown = n_steps
                if n_steps % run.log_every == 0:
                    elapsed = time.perf_counter() - t0
                    window_loss, window_n = distributed.sum_float64(window_loss, window_n)  # every process's
                    self._log(
                        {
                            "event": "step",
                            "epoch": epoch,
                            "step": global_step + n_steps,
                            "loss": window_loss / max(1, window_n),
                            "lr": optimizer.param_groups[0]["lr"],
                            "targets_per_s": round(n_targets / elapsed, 1),
                        }
                    )
                    window_loss, window_n = 0.0, 0
            tracker.advance(n_steps - shown)
        loss_sum, n_targets = distributed.sum_float64(loss_sum, n_targets)  # over every process
        n_targets = int(n_targets)
        if n_targets == 0:
            raise SeqrecError(f"epoch {epoch} had no training targets: nothing to learn (no checkpoint was written)")
        seconds = time.perf_counter() - t0
        stats = {
            "train_loss": loss_sum / n_targets,
            "steps": n_steps,
            "targets": n_targets,
            "seconds": round(seconds, 2),
            "targets_per_s": round(n_targets / max(seconds, 1e-9), 1),
        }
        if self.device.type == "cuda":  # the epoch's peak, MiB (torch's allocator; the driver holds a little more)
            stats["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
            torch.cuda.reset_peak_memory_stats(self.device)
        if self.proc.distributed:  # what each process holds (docs/distributed.md: memory)
            stats["peak_rss_mb"] = distributed.all_gather(distributed.peak_rss_mb())  # rank order
        return stats

    def _save(self, epoch, stats, best, record, optimizer, scheduler, global_step, planned_steps) -> Path:
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "batcher": self.batcher.rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        train_state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng,
            "step": global_step,
            "epoch": epoch,
            "planned_steps": planned_steps,
            "world_size": self.proc.world_size,
        }
        if self.proc.distributed:  # every process's streams, so that --resume continues each exactly
            train_state["rng_ranks"] = distributed.all_gather(rng)
            distributed.check_replicas(self.model)
            if not self.main:
                return formats.checkpoint_dir(self.run.model_dir, epoch)
        config = ckpt.CheckpointConfig(
            model=self.entry.name,
            stage=self.run.stage,
            epoch=epoch,
            model_config=self.model.config,
            train_config=self.tc,
            data=self.info["data"],
            vocab=self.info["vocab"],
            metrics=stats,
            best=best,
            run_id=record.run_id,
            seqrec_version=__version__,
            world_size=self.proc.world_size,
        )
        return ckpt.save_checkpoint(self.run.model_dir, config, self.model.state_dict(), train_state)


def train_model(
    entry: ModelEntry,
    data: formats.ProcessedData,
    train_dir: Path,
    model_values: dict[str, Any],
    train_values: dict[str, Any],
    run: RunOptions,
    device: torch.device,
    init_from: Path | None = None,
    arch_given: dict[str, str] | None = None,
    epoch_callbacks: tuple[Any, ...] = (),
) -> dict[str, Any]:
    """Build the model and its batcher from checked settings and train it (see :class:`Trainer`).

    ``init_from``: a checkpoint of the same model and vocabulary whose architecture and weights
    the run starts from; ``arch_given`` (field -> where it was given) names architecture settings
    the user asked for, refused when they differ from the checkpoint's; ``epoch_callbacks``: added
    to :attr:`Trainer.epoch_callbacks` (seqrec tune reports and prunes through them).
    """
    train_config = entry.train_config(**train_values)
    model_config = entry.config(n_items=data.n_items, **model_values)
    if train_config.valid_filter_seen:
        check_filter_seen(data.manifest.eval_target, "--valid-filter-seen")
    source = None
    if init_from is not None:
        source = ckpt.read_checkpoint(init_from)
        if source.model_name != entry.name:
            raise MismatchError(f"--init-from {init_from} is a {source.model_name} checkpoint, not {entry.name}")
        if source.config.vocab.sha256 != data.manifest.vocab_sha256:
            raise MismatchError(
                f"--init-from {init_from} was trained with vocabulary {source.config.vocab.path}, "
                f"which differs from {data.vocab_file}"
            )
        fixed = source.config.model_config
        clash = [where for name, where in (arch_given or {}).items() if getattr(fixed, name) != model_values[name]]
        if clash:
            raise MismatchError(f"--init-from {init_from} fixes the architecture; drop {', '.join(clash)}")
        from .hparams import params_of

        loss = {p.name: model_values[p.name] for p in params_of(entry.config) if not p.arch}
        model_config = replace(fixed, **loss)
    torch.manual_seed(train_config.seed)  # the same initial weights in every process
    model = ckpt.build_model(entry, model_config, device)
    if source is not None:
        ckpt.load_state(model, source, device)
        note(f"initialised from {source.path} ({source.config.stage} epoch {source.epoch})")
    shard = distributed.shard()
    if shard.world > 1:
        torch.manual_seed(shard.seed(train_config.seed, 1))  # dropout: each process its own stream
    batcher = entry.load_train_batcher()(data, model_config, train_config, device, shard=shard)
    trainer = Trainer(entry, model, batcher, train_config, run, data, train_dir)
    trainer.epoch_callbacks.extend(epoch_callbacks)
    return trainer.fit()
