"""Options shared by several commands, declared once."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import formats
from ..errors import BadInputError

ModelDir = Annotated[Path, typer.Option("--model-dir", help="Folder of the epoch_N checkpoints.")]
UseCuda = Annotated[
    bool, typer.Option("--use-cuda", help="Run on the GPU (clear error if CUDA is not available).")
]
Resume = Annotated[
    bool, typer.Option("--resume", help="Continue from the last complete checkpoint in --model-dir (same settings).")
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Delete the checkpoints already in --model-dir and start over.")
]
Seed = Annotated[int, typer.Option("--seed", help="Seed of every random stream (init, shuffling, masking, sampling).")]
LogEvery = Annotated[
    int, typer.Option("--log-every", min=1, help="Steps between log lines (when not on a terminal) and metrics.jsonl records.")
]
EvalBatchSize = Annotated[
    int,
    typer.Option("--eval-batch-size", min=1, help="Predictions scored at once; bounds the [batch x items] score matrix."),
]
Cutoffs = Annotated[str, typer.Option("--cutoffs", help="Comma-separated cutoffs k for HR/recall@k, NDCG@k, MRR@k.")]


def parse_cutoffs(text: str) -> tuple[int, ...]:
    try:
        values = tuple(sorted({int(x) for x in text.split(",") if x.strip()}))
    except ValueError:
        raise BadInputError("--cutoffs", f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise BadInputError("--cutoffs", "cutoffs must be positive integers")
    return values


def explicit(ctx: typer.Context, name: str) -> bool:
    """Was option ``name`` given on the command line (rather than left at its default)?"""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT")


def read_params_file(spec: str, allowed: set[str]) -> dict[str, Any]:
    """A JSON parameter file: a path, or the name of one shipped in seqrec_cli/params/."""
    path = Path(spec)
    if not path.is_file():
        shipped = resources.files("seqrec_cli") / "params" / f"{spec}.json"
        if not shipped.is_file():
            names = sorted(p.name[:-5] for p in (resources.files("seqrec_cli") / "params").iterdir() if p.name.endswith(".json"))
            raise BadInputError(spec, f"no such parameter file (shipped: {', '.join(names)})")
        text = shipped.read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInputError(spec, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(data, dict):
        raise BadInputError(spec, "expected a JSON object of option names")
    data = {k: v for k, v in data.items() if not k.startswith("_")}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadInputError(spec, f"unknown parameter(s): {', '.join(unknown)}")
    return data


DEFAULT_TRAIN_DIRS = {"gru4rec": formats.processed_dir(formats.RSC15), "bert4rec": formats.processed_dir(formats.ML1M)}
