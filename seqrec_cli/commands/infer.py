"""seqrec infer / evaluate / recommend (placeholder until the model issues land)."""

from __future__ import annotations

from ..errors import SeqrecError


def infer() -> None:
    """Evaluate a range of epoch checkpoints (not yet implemented)."""
    raise SeqrecError("infer is not yet implemented")


def evaluate() -> None:
    """Evaluate one checkpoint with every metric (not yet implemented)."""
    raise SeqrecError("evaluate is not yet implemented")


def recommend() -> None:
    """Top-k recommendations (not yet implemented)."""
    raise SeqrecError("recommend is not yet implemented")
