"""The one error type for user mistakes.

Anything raised as a ``SeqrecError`` is a problem the user can fix (a missing file, a bad line,
a checksum mismatch); the CLI prints it as a single ``Error: ...`` line and exits with 1.
Every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class SeqrecError(Exception):
    """A user-facing error: its message is printed after ``Error:``."""


class MissingInputError(SeqrecError):
    """An input file or folder is absent; the message names the command that makes it."""

    def __init__(self, path: Path | str, make_with: str | None = None, what: str | None = None):
        self.path = Path(path)
        label = what or "input"
        msg = f"{label} not found: {path}"
        if make_with:
            msg += f" (run: {make_with})"
        super().__init__(msg)


class BadInputError(SeqrecError):
    """An input file is malformed; points at the file and, when known, the line (1-based)."""

    def __init__(self, path: Path | str, problem: str, line: int | None = None):
        self.path = Path(path)
        self.line = line
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")


class ChecksumError(SeqrecError):
    """A downloaded or imported file does not match its expected checksum or size."""


class MismatchError(SeqrecError):
    """Two artefacts that must agree do not (vocabulary vs checkpoint, model dir vs model...)."""
