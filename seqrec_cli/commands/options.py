"""Options shared by several commands, declared once, and the reading of parameter files."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Optional

import typer

from .. import formats
from ..errors import BadInputError

RUN = "Run"  # help panels
EVALUATION = "Evaluation"
READING = "Reading an interaction file (--input)"

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


def threads_option(default_text: str) -> Any:
    """The --threads option with ``default_text`` as its shown default."""
    return Annotated[
        Optional[int],
        typer.Option(
            "--threads", min=1, envvar="SEQREC_THREADS", help="CPU threads torch may use in each process.",
            show_default=default_text, rich_help_panel=RUN,
        ),
    ]  # fmt: skip


Threads = threads_option("the available cores, divided among the processes on this machine (--num-devices, torchrun)")


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


# ---------------------------------------------------------------- reading an interaction file
class ReadingOptions(NamedTuple):
    """The options saying how to read an interaction file, declared once for ``preprocess
    interactions`` and ``recommend --input`` (each ``Annotated`` type is one option)."""

    user_col: Any
    session_col: Any
    item_col: Any
    time_col: Any
    rating_col: Any
    min_rating: Any
    columns: Any
    sep: Any
    time_format: Any
    encoding: Any


def reading_options(defaults: str | None = None, panel: str | None = None) -> ReadingOptions:
    """The reading options. ``defaults``: None for the defaults preprocess interactions shows (item,
    time, auto, utf-8 as the commands' own default values), or a phrase shown as every option's
    default (recommend: how the training data was read)."""

    def opt(name: str, help: str, default_text: str | None = None, kind: Any = str, **extra: Any) -> Any:
        shown: Any = defaults if defaults is not None else (default_text if default_text is not None else True)
        return Annotated[
            Optional[kind], typer.Option(name, help=help, show_default=shown, rich_help_panel=panel, **extra)
        ]

    return ReadingOptions(
        user_col=opt(
            "--user-col", "Column whose value groups interactions into one sequence.", "user, else session"
        ),
        session_col=opt("--session-col", "The same as --user-col, for session data.", False),
        item_col=opt("--item-col", "Column of the item ids."),
        time_col=opt("--time-col", "Column of the timestamps."),
        rating_col=opt("--rating-col", "Column of a rating (read and checked; see --min-rating).", False),
        min_rating=opt(
            "--min-rating", "Keep only rows whose rating is at least this (before every other rule).", False, kind=float
        ),
        columns=opt(
            "--columns",
            "Comma-separated names of the columns of a header-less text file, e.g. user,item,rating,time (the first "
            "line is then data).",
            False,
        ),
        sep=opt(
            "--sep",
            "Field separator of text files, one or more characters (e.g. '::'); '\\t' or tab means a tab.",
            "tab for .tsv, comma for .csv when the first line has one, else the first of tab, ::, comma, ;, | found on "
            "the first line",
        ),
        time_format=opt(
            "--time-format",
            "auto (numbers = Unix seconds / ms / µs / ns by magnitude, text = ISO-8601), unix-s, unix-ms, unix-us, "
            "unix-ns, iso, or a strftime pattern such as '%d/%m/%Y %H:%M'. Times without a zone are UTC.",
        ),
        encoding=opt("--encoding", "Encoding of text files (a UTF-8 BOM is skipped)."),
    )
