"""seqrec plot: the training curves of one or more model folders, overlaid, as PNG or SVG."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import formats
from ..console import say


def plot(
    run_dirs: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="Model folders to draw (each with the metrics.jsonl its training wrote); several are overlaid.",
            show_default=str(formats.MODEL_DIR),
            metavar="RUN_DIR",
        ),
    ] = None,
    metric: Annotated[
        Optional[str],
        typer.Option(
            "--metric",
            help="Validation metric to draw, e.g. ndcg@10, hr@10, recall@20, mrr.",
            show_default="the one the runs picked their best epoch by",
        ),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Picture to write: .png or .svg.")
    ] = Path("curves.png"),
) -> None:
    """Draw training loss and the validation metric per epoch (logged steps too), one line per run,
    the best epoch starred, the validation protocol in the title and each run labelled by the
    settings that differ between the runs. Training writes the same picture of its own run to
    <model-dir>/curves.png."""
    from ..plots import plot_runs

    folders = list(run_dirs) if run_dirs else [formats.MODEL_DIR]
    _, runs = plot_runs(folders, output, metric)
    for run in runs:
        best = run.best or {}
        line = f"{run.folder}: {len(run.epochs)} epochs"
        if best.get("epoch") is not None:
            line += f", best epoch {best['epoch']} ({best.get('metric')} {best.get('value', float('nan')):.4f})"
        say(line)
    say(f"wrote {output}")
