"""Terminal output: results on stdout, progress and notes on stderr.

On a terminal, long work shows a rich progress bar; when output goes to a file or a pipe (CI,
nohup, a cluster job) the same progress is written as plain log lines at a steady rate instead.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

out = Console(highlight=False, soft_wrap=True)  # results: stdout
err = Console(stderr=True, highlight=False, soft_wrap=True)  # progress, notes, errors: stderr

_ctrl_c = {"pending": False}  # a Ctrl-C whose KeyboardInterrupt Python dropped (see keep_ctrl_c)


def keep_ctrl_c() -> None:
    """Make every Ctrl-C stop the command, for the process's lifetime (the CLI calls it first).

    Python raises KeyboardInterrupt wherever the main thread is when SIGINT arrives; if that is a
    garbage-collection callback (a weakref callback or ``__del__``: matplotlib's figures run
    hundreds when a curve picture is freed), Python prints "Exception ignored in ..." with a
    traceback and carries on, so the interrupt is lost. This hook takes such a KeyboardInterrupt
    quietly and keeps it; :func:`check_ctrl_c` raises it again at the next safe point (every
    progress update, the end of each picture). Any other unraisable exception goes to Python's
    own hook as before.
    """
    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            _ctrl_c["pending"] = True
            return
        default(unraisable)

    sys.unraisablehook = hook


def check_ctrl_c() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that Python dropped (see :func:`keep_ctrl_c`)."""
    if _ctrl_c["pending"]:
        _ctrl_c["pending"] = False
        raise KeyboardInterrupt


def say(message: str = "") -> None:
    """A result line on stdout (never wrapped, so it stays parseable)."""
    out.print(message, markup=False)


def note(message: str) -> None:
    """A side remark on stderr."""
    err.print(message, markup=False)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n:.1f} GB"  # pragma: no cover


class Tracker:
    """A progress display: rich bar on a terminal, periodic plain lines elsewhere.

    ``kind="bytes"`` shows size, speed and ETA; ``kind="steps"`` shows n/total, a free-text
    status (running loss, throughput) and ETA. Use as a context manager.
    """

    def __init__(
        self,
        description: str,
        total: float | None,
        kind: str = "steps",
        log_every_s: float = 10.0,
        log_every_steps: int | None = None,
        completed: float = 0,
    ):
        self.description = description
        self.total = total
        self.kind = kind
        self.log_every_s = log_every_s
        self.log_every_steps = log_every_steps
        self.completed = completed
        self.status = ""
        self._start = time.monotonic()
        self._start_completed = completed
        self._last_log = self._start
        self._last_log_steps = completed
        self._progress: Progress | None = None
        self._task: Any = None
        self.interactive = err.is_terminal

    def __enter__(self) -> Tracker:
        if self.interactive:
            if self.kind == "bytes":
                columns: list[Any] = [
                    TextColumn("{task.description}"),
                    BarColumn(),
                    DownloadColumn(),
                    TransferSpeedColumn(),
                    TimeRemainingColumn(),
                ]
            else:
                columns = [
                    TextColumn("{task.description}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                ]
            self._progress = Progress(*columns, console=err, transient=False)
            self._progress.start()
            self._task = self._progress.add_task(
                self.description, total=self.total, completed=self.completed, status=""
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None and self.total and self.kind != "bytes":
            self.total = self.completed  # a step total may be an estimate: end on the real count, 100 %
        if self._progress is not None:
            if exc[0] is None:
                self._progress.update(self._task, total=self.total, completed=self.completed)
            self._progress.stop()
        elif exc[0] is None:
            self._log(final=True)

    def advance(self, amount: float = 1, status: str | None = None) -> None:
        check_ctrl_c()
        self.completed += amount
        if status is not None:
            self.status = status
        if self.total and self.completed > self.total:
            self.total = self.completed  # an estimated total was too low: never show more than 100 %
        if self._progress is not None:
            self._progress.update(self._task, total=self.total, completed=self.completed, status=self.status)
            return
        now = time.monotonic()
        due_steps = self.log_every_steps is not None and self.completed - self._last_log_steps >= self.log_every_steps
        due_time = self.log_every_steps is None and now - self._last_log >= self.log_every_s
        if due_steps or due_time:
            self._log()

    def _log(self, final: bool = False) -> None:
        now = time.monotonic()
        elapsed = max(now - self._start, 1e-9)
        rate = (self.completed - self._start_completed) / elapsed
        if self.kind == "bytes":
            done = human_bytes(self.completed)
            tot = f"/{human_bytes(self.total)}" if self.total else ""
            speed = f"{human_bytes(rate)}/s"
        else:
            done = f"{int(self.completed)}"
            tot = f"/{int(self.total)}" if self.total else ""
            speed = ""
        pct = f" {100 * self.completed / self.total:5.1f}%" if self.total else ""
        eta = ""
        if self.total and rate > 0 and not final:
            eta = f" eta {(self.total - self.completed) / rate:.0f}s"
        parts = [f"{self.description}:{pct} {done}{tot}", speed, self.status]
        line = " ".join(p for p in parts if p) + eta + (f" ({elapsed:.1f}s)" if final else "")
        err.print(line, markup=False)
        sys.stderr.flush()
        self._last_log = now
        self._last_log_steps = self.completed
