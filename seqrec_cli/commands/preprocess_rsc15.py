"""seqrec preprocess session-filter / convert-format / text2id / yoochoose (placeholder)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the RSC15 commands to the ``preprocess`` group."""
