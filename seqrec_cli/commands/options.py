"""Options shared by several commands, declared once, and the reading of parameter files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from .. import formats
from ..errors import BadInputError

RUN = "Run"  # help panels
EVALUATION = "Evaluation"

ModelDir = Annotated[Path, typer.Option("--model-dir", help="Folder of the epoch_N checkpoints.", rich_help_panel=RUN)]
UseCuda = Annotated[
    bool, typer.Option("--use-cuda", help="Run on the GPU (clear error if CUDA is not available).", rich_help_panel=RUN)
]
NumDevices = Annotated[
    Optional[int],
    typer.Option(
        "--num-devices", min=1,
        help="Run in N processes on this machine, data parallel (CPU: gloo; with --use-cuda one GPU each, NCCL), "
        "started through torchrun's launcher. Under torchrun (one or several machines) leave it out: torchrun "
        "decides. docs/distributed.md.",
        show_default="1", rich_help_panel=RUN,
    ),
]  # fmt: skip
Resume = Annotated[
    bool,
    typer.Option(
        "--resume", help="Continue from the last complete checkpoint in --model-dir (same settings).", rich_help_panel=RUN
    ),
]
Overwrite = Annotated[
    bool,
    typer.Option("--overwrite", help="Delete the checkpoints already in --model-dir and start over.", rich_help_panel=RUN),
]
LogEvery = Annotated[
    int,
    typer.Option(
        "--log-every", min=1, help="Steps between log lines (when not on a terminal) and metrics.jsonl records.",
        rich_help_panel=RUN,
    ),
]  # fmt: skip
EvalBatchSize = Annotated[
    int,
    typer.Option(
        "--eval-batch-size", min=1, help="Predictions scored at once; bounds the [batch x items] score matrix.",
        rich_help_panel=EVALUATION,
    ),
]  # fmt: skip
Cutoffs = Annotated[
    str, typer.Option("--cutoffs", help="Comma-separated cutoffs k for HR/recall@k, NDCG@k, MRR@k.", rich_help_panel=EVALUATION)
]
TestDir = Annotated[
    Optional[Path],
    typer.Option(
        "--test-dir",
        help="Processed data folder to evaluate on (same vocabulary).",
        show_default="the folder the checkpoint was trained on",
        rich_help_panel=EVALUATION,
    ),
]
Split = Annotated[
    Literal["test", "valid"], typer.Option("--split", help="Which split's targets to predict.", rich_help_panel=EVALUATION)
]
Negatives = Annotated[
    int,
    typer.Option(
        "--negatives", min=0, help="0 = full ranking (default); N = rank the target against N sampled negatives.",
        rich_help_panel=EVALUATION,
    ),
]  # fmt: skip
Sampling = Annotated[
    Literal["popularity", "uniform"],
    typer.Option(
        "--sampling", help="How sampled negatives are drawn: popularity (training counts) | uniform.", rich_help_panel=EVALUATION
    ),
]
FilterSeen = Annotated[
    bool,
    typer.Option(
        "--filter-seen", help="Full ranking: never rank items already in the history (leave-one-out data).",
        rich_help_panel=EVALUATION,
    ),
]  # fmt: skip
SampleSeed = Annotated[
    int, typer.Option("--sample-seed", min=0, help="Seed of the sampled negatives.", rich_help_panel=EVALUATION)
]
Epoch = Annotated[
    Optional[int],
    typer.Option("--epoch", min=1, help="Checkpoint epoch_N to use.", show_default="the best validation epoch, else the last"),
]
CheckpointPath = Annotated[
    Optional[Path],
    typer.Option("--checkpoint", help="A checkpoint folder (instead of --model-dir/--epoch).", show_default=False),
]


Threads = Annotated[
    Optional[int],
    typer.Option(
        "--threads", min=1, envvar="SEQREC_THREADS", help="CPU threads torch may use in each process.",
        show_default="the available cores, divided among the processes on this machine (--num-devices, torchrun)",
        rich_help_panel=RUN,
    ),
]  # fmt: skip


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


def shipped_params() -> list[str]:
    folder = resources.files("seqrec_cli") / "params"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def params_file(spec: str) -> Path:
    """A JSON parameter file: a path, or the name of one shipped in seqrec_cli/params/."""
    path = Path(spec)
    if path.is_file():
        return path
    shipped = resources.files("seqrec_cli") / "params" / f"{spec}.json"
    if not shipped.is_file():
        raise BadInputError(spec, f"no such parameter file (shipped: {', '.join(shipped_params())})")
    return Path(str(shipped))


def read_params(spec: str) -> tuple[Any, Path]:
    """(the parsed JSON of a --params file, its path)."""
    from ..hparams import read_json_file

    path = params_file(spec)
    return read_json_file(path, "parameter file"), path


def default_train_dir(dataset: str) -> Path:
    return formats.processed_dir(dataset)
