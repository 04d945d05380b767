"""Optional features and the packages they need.

seqrec's base install trains, evaluates and draws its curves. A few features need packages that
not everyone wants (TensorBoard, ONNX export, Optuna tuning); they are the extras of
``pyproject.toml``: ``pip install 'seqrec[tensorboard]'``, ``[export]``, ``[tune]`` or ``[all]``.
A feature imports its package through :func:`require`, so a missing one is a single
``Error: ...`` line naming the install command, not a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import SeqrecError

# extra name -> what it installs (keep in step with [project.optional-dependencies])
EXTRAS = {
    "tensorboard": ("tensorboard",),
    "export": ("onnx", "onnxruntime", "onnxscript"),
    "tune": ("optuna",),
}


class MissingExtraError(SeqrecError):
    """An optional feature was asked for but its package is not installed (or does not import)."""

    def __init__(self, feature: str, module: str, extra: str, reason: str):
        self.feature = feature
        self.module = module
        self.extra = extra
        super().__init__(
            f"{feature} needs the optional package {module.split('.')[0]}, which could not be imported "
            f"({reason}); install it with: {install_command(extra)}"
        )


def install_command(extra: str) -> str:
    """The command that installs an extra, as the error messages print it."""
    return f"pip install 'seqrec[{extra}]'"


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` and return it, or raise :class:`MissingExtraError`.

    ``extra`` is the pyproject extra that installs it (``tensorboard``, ``export``, ``tune``);
    ``feature`` names what the user asked for in the message (default: the module name), e.g.
    ``require("optuna", "tune", "seqrec tune")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # ModuleNotFoundError included; also a broken install of the package
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingExtraError(feature or module, module, extra, reason) from exc
