"""TensorBoard event files from the training loop's records (``train --tensorboard [DIR]``).

:class:`TensorBoardSink` takes the same record dicts that the loop appends to ``metrics.jsonl``
(docs/formats.md) and writes them with ``torch.utils.tensorboard.SummaryWriter``; view them with
``tensorboard --logdir <model-dir>/tensorboard``. Needs the ``tensorboard`` package
(``pip install 'seqrec[tensorboard]'``); without it the sink raises one SeqrecError naming that
command.

Every scalar is logged against the **global step** (optimizer updates since the start of the
run), epoch figures at the step that ended their epoch, so that one step axis serves all curves
and a resumed run can hide what the interrupted one logged after its checkpoint:

=========================  ===============================================================
tag                        from
=========================  ===============================================================
``train/loss``             step record ``loss``: mean loss per target over the last ``--log-every`` steps
``train/targets_per_s``    step record ``targets_per_s``: training throughput so far in the epoch
``train/lr``               step record ``lr`` (a list of several parameter groups: ``train/lr/<i>``)
``epoch/train_loss``       epoch record ``train_loss``: mean loss per target over the epoch
``epoch/targets_per_s``    epoch record ``targets_per_s``
``epoch/seconds``          epoch record ``seconds``: training time of the epoch (validation excluded)
``epoch/valid_seconds``    epoch record ``valid_seconds`` (validated epochs only)
``epoch/epoch``            the epoch number, to read epochs off the step axis
``valid/<metric>``         every entry of the epoch record's ``valid`` (e.g. ``valid/ndcg@10``)
=========================  ===============================================================
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from .extras import MissingExtraError, require

LOG_DIR_NAME = "tensorboard"  # <model-dir>/tensorboard/ unless --tensorboard names another folder
FLUSH_SECS = 30  # at most this long before logged scalars reach the event file (and close() flushes)
FEATURE = "--tensorboard"
EXTRA = "tensorboard"


def default_log_dir(model_dir: Path | str) -> Path:
    """Where ``--tensorboard`` without a folder writes: ``<model-dir>/tensorboard``."""
    return Path(model_dir) / LOG_DIR_NAME


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class TensorBoardSink:
    """Writes metrics.jsonl records as TensorBoard scalars into ``log_dir``.

    ``start_step`` is the global step the run starts from: 0 for a new run, the resumed
    checkpoint's step on ``--resume``. Events an earlier writer left in ``log_dir`` at a later step
    (the part of an interrupted run after its checkpoint, or all of a run started over with
    ``--overwrite``) are purged from TensorBoard's view (``SummaryWriter(purge_step=start_step + 1)``),
    so the resumed curves continue the old ones with no step drawn twice.

    Use as a context manager, or call :meth:`close` when training ends (also on errors).
    """

    def __init__(self, log_dir: Path | str, start_step: int = 0, flush_secs: int = FLUSH_SECS):
        require("tensorboard", EXTRA, FEATURE)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch's own check of the tensorboard version
            raise MissingExtraError(FEATURE, "tensorboard", EXTRA, str(exc).splitlines()[0]) from exc
        self.log_dir = Path(log_dir)
        self.start_step = int(start_step)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=self.start_step + 1, flush_secs=flush_secs)

    def write(self, record: dict[str, Any]) -> None:
        """Log one metrics.jsonl record (``event`` step or epoch); other events are ignored."""
        event = record.get("event")
        if event not in ("step", "epoch") or record.get("step") is None:
            return
        step = int(record["step"])
        if event == "step":
            self._scalar("train/loss", record.get("loss"), step)
            self._scalar("train/targets_per_s", record.get("targets_per_s"), step)
            lr = record.get("lr")
            if isinstance(lr, (list, tuple)):
                if len(set(lr)) == 1:
                    self._scalar("train/lr", lr[0], step)
                else:
                    for i, value in enumerate(lr):
                        self._scalar(f"train/lr/{i}", value, step)
            else:
                self._scalar("train/lr", lr, step)
            return
        for key in ("train_loss", "targets_per_s", "seconds", "valid_seconds"):
            self._scalar(f"epoch/{key}", record.get(key), step)
        self._scalar("epoch/epoch", record.get("epoch"), step)
        for key, value in (record.get("valid") or {}).items():
            self._scalar(f"valid/{key}", value, step)

    def _scalar(self, tag: str, value: Any, step: int) -> None:
        number = _number(value)
        if number is not None:
            self.writer.add_scalar(tag, number, step)

    def flush(self) -> None:
        """Write what is buffered to the event file now (TensorBoard shows it on its next reload)."""
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> TensorBoardSink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
