"""seqrec preprocess interactions: your own CSV / TSV / Parquet log -> the standard processed folder.

Parses the options, calls ``seqrec_cli.datasets.interactions`` (imported inside the command so
that ``seqrec --help`` loads neither pandas nor pyarrow) and reports what each rule kept and
dropped.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .. import formats
from ..console import Tracker, say
from ..errors import SeqrecError
from .options import reading_options

DAY_MS = 86_400_000
# --user-col, --item-col, --sep, ...: declared once (options.py), shared with recommend --input
UserCol, SessionCol, ItemCol, TimeCol, RatingCol, MinRating, Columns, Sep, TimeFormat, Encoding = reading_options()


class Split(str, Enum):
    leave_one_out = "leave-one-out"
    session_time = "session-time"


LOO_OPTIONS = {"min_item_count": "--min-item-count", "min_user_count": "--min-user-count"}
SESSION_OPTIONS = {
    "min_session_length": "--min-session-length",
    "min_item_support": "--min-item-support",
    "test_days": "--test-days",
    "valid_days": "--valid-days",
}


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def interactions(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="Interaction file: CSV / TSV (any separator), gzip / zstd / bz2 / xz-compressed text, or Parquet; - reads standard input.",
            show_default=False,
            metavar="FILE",
        ),
    ],
    split: Annotated[
        Split,
        typer.Option(
            "--split",
            help=(
                "leave-one-out: per user, train = all but the last two items, valid target = second-to-last, test "
                "target = last, after k-core filtering (the ML-1M rules; BERT4Rec, SASRec). session-time: the RSC15 "
                "rules, test = sessions ending in the last --test-days (GRU4Rec)."
            ),
        ),
    ] = Split.leave_one_out,
    user_col: UserCol = None,
    session_col: SessionCol = None,
    item_col: ItemCol = "item",
    time_col: TimeCol = "time",
    rating_col: RatingCol = None,
    min_rating: MinRating = None,
    columns: Columns = None,
    sep: Sep = None,
    time_format: TimeFormat = "auto",
    encoding: Encoding = "utf-8",
    name: Annotated[
        Optional[str],
        typer.Option("--name", help="Data set name: manifest and default paths. [default: the file name without extensions]", show_default=False),
    ] = None,
    out_dir: Annotated[
        Optional[Path], typer.Option("--out-dir", help="Processed data folder. [default: data/<name>]", show_default=False)
    ] = None,
    vocab: Annotated[
        Optional[Path], typer.Option("--vocab", help="Vocabulary file to write. [default: vocab/<name>.txt]", show_default=False)
    ] = None,
    min_item_count: Annotated[
        int, typer.Option("--min-item-count", min=1, help="leave-one-out: drop items with fewer interactions (first).")
    ] = 5,
    min_user_count: Annotated[
        int, typer.Option("--min-user-count", min=3, help="leave-one-out: then drop users with fewer interactions.")
    ] = 5,
    min_session_length: Annotated[
        int,
        typer.Option(
            "--min-session-length", min=2, help="session-time: keep sessions with at least this many events (before and after the item rule; test sessions too)."
        ),
    ] = 2,
    min_item_support: Annotated[
        int, typer.Option("--min-item-support", min=1, help="session-time: keep items with at least this many events.")
    ] = 5,
    test_days: Annotated[
        float,
        typer.Option("--test-days", help="session-time: sessions whose last event is in the final DAYS of the data are test."),
    ] = 1.0,
    valid_days: Annotated[
        float,
        typer.Option(
            "--valid-days",
            min=0.0,
            help=(
                "session-time: 0 = train on all earlier sessions (train_full, the published setting); D > 0 = hold out "
                "the training sessions ending in their final D days as the validation split and train on the rest (train_tr)."
            ),
        ),
    ] = 0.0,
) -> None:
    """Your own interaction log -> the processed folder that train, infer, evaluate and recommend read.

    Ids of any kind are kept verbatim (the vocabulary maps them; recommend maps back). Every
    interaction is ordered by time, ties in file order. --split leave-one-out runs the ML-1M rules
    (docs/protocols.md §2) and --split session-time the RSC15 rules (docs/protocols.md §3), through the same
    code as preprocess ml-1m and preprocess yoochoose, with their thresholds as options. Writes
    data/<name>/ (train, valid, test, users.txt for leave-one-out, manifest.json recording the
    column mapping, time format and every parameter) and vocab/<name>.txt.
    """
    from ..datasets import interactions as lib
    from ..datasets import ml1m, rsc15

    loo = split is Split.leave_one_out
    for param, option in (SESSION_OPTIONS if loo else LOO_OPTIONS).items():
        if _given(ctx, param):
            raise SeqrecError(f"{option} applies to --split {'session-time' if loo else 'leave-one-out'}, not {split.value}")
    if user_col is not None and session_col is not None:
        raise SeqrecError("give --user-col or --session-col, not both")
    name = name or lib.default_name(file)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SeqrecError(f"--name: not a data set name: {name!r}")
    spec = lib.ReadSpec(
        user_col=user_col or session_col,
        item_col=item_col,
        time_col=time_col,
        rating_col=rating_col,
        min_rating=min_rating,
        sep=lib.parse_sep(sep) if sep is not None else None,
        columns=lib.parse_columns(columns) if columns is not None else None,
        time_format=time_format,
        encoding=encoding,
    )
    out = out_dir or formats.processed_dir(name)
    vocab_file = vocab or formats.vocab_path(name)
    if not test_days > 0:
        raise SeqrecError(f"--test-days must be more than 0, not {test_days:g}")
    if round(test_days * DAY_MS) < 1 or (valid_days > 0 and round(valid_days * DAY_MS) < 1):
        raise SeqrecError("--test-days / --valid-days: a window shorter than a millisecond")
    try:
        session = rsc15.SessionSplitParams(
            min_session_length=min_session_length,
            min_item_support=min_item_support,
            test_window_ms=round(test_days * DAY_MS),
            valid_window_ms=round(valid_days * DAY_MS),
        )
    except ValueError as exc:
        raise SeqrecError(str(exc)) from None
    size = file.stat().st_size if str(file) != "-" and file.is_file() else None
    with Tracker(f"reading {file.name or 'stdin'}", total=size, kind="bytes") as tracker:
        result = lib.preprocess_interactions(
            file,
            split.value,
            out,
            vocab_file,
            name=name,
            spec=spec,
            loo=ml1m.LeaveOneOutParams(min_item_count, min_user_count),
            session=session,
            progress=tracker.advance,
        )
    _report(file, result)


def reading_text(read: dict[str, Any]) -> str:
    """How a file was read (a manifest's params.read), in words: layout, then the column mapping."""
    if read["format"] == "parquet":
        how = "Parquet"
    else:
        sep = {"\t": "tab", ",": "comma", ";": "semicolon", " ": "space"}.get(read["sep"], repr(read["sep"]))
        how = f"text, {sep}-separated, " + ("header line" if read["header"] else f"columns {','.join(read['columns'])}")
        if read["compression"]:
            how += f", {read['compression']}"
    return f"{how}; group by {read['user_col']!r}, items {read['item_col']!r}, time {read['time_col']!r} ({read['time_format']})"


def _read_text(file: Path, read: dict[str, Any]) -> str:
    return f"read {file}: {reading_text(read)}; ids: users {read['id_order']['users']}, items {read['id_order']['items']}"


def _fmt_time(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _report(file: Path, result: Any) -> None:
    """What each rule kept and dropped, the splits, where it went and what to run next."""
    say(_read_text(file, result.read))
    loo = result.split == Split.leave_one_out.value
    keys = ("interactions", "users", "items") if loo else ("events", "sessions", "items")
    previous: dict[str, Any] | None = None
    for step in result.steps:
        if keys[0] in step:
            kept = ", ".join(f"{step[k]:,} {k}" for k in keys)
            line = f"{step['rule']}: {kept}"
            if previous is not None:
                line += "; dropped " + ", ".join(f"{previous[k] - step[k]:,} {k}" for k in keys)
            say(line)
            previous = step
        else:  # a time split of session-time
            held = "test" if step["rule"].startswith("steps 5-6") else "train_valid"
            say(
                f"{step['rule']}: boundary {_fmt_time(step['boundary'])}, {step['sessions_held_out']:,} sessions held out as {held}; "
                f"dropped {step['unknown_events_dropped']:,} {held} events with items unseen in training, then "
                f"{step['short_sessions_dropped']:,} {held} sessions too short"
            )
    names = ",".join(formats.SPLIT_FILES[k].removesuffix(".txt") for k in result.splits)
    if loo:
        say(
            f"leave-one-out: {result.users:,} users, {result.items:,} items, {result.splits['test']['events']:,} interactions "
            f"(mean length {result.extra['mean_length']:.1f})"
        )
        wrote = f"{result.out_dir}/{{{names}}}.txt, {result.out_dir}/{formats.USERS_FILE}"
    else:
        mapped = result.extra["mapped"]
        tr = mapped["train"]
        say(f"vocabulary: {result.items:,} items of {result.extra['train_split']} (train: {tr['sessions']:,} sessions, {tr['events']:,} events)")
        for split in ("valid", "test"):
            if split in mapped:
                c = mapped[split]
                say(
                    f"{split}: {c['sessions']:,} sessions, {c['events']:,} events, {c['targets']:,} predictions; unknown items "
                    f"dropped: {c['unknown_events_dropped']:,} of {c['input_events']:,} events; sessions dropped (< 2 items): "
                    f"{c['short_sessions_dropped']:,}"
                )
        wrote = f"{result.out_dir}/{{{names}}}.txt"
    say(f"wrote {wrote}, {result.out_dir}/{formats.MANIFEST_FILE}, {result.vocab_file}")
    say(f"next: seqrec train {'bert4rec' if loo else 'gru4rec'} --train-dir {result.out_dir}")


# ---------------------------------------------------------------- MovieLens 100K / 20M through the generic path
# name -> (file inside data/raw/<name>/, how to read it, what it is)
MOVIELENS = {
    "ml-100k": ("ml-100k/u.data", {"sep": "\t", "columns": ("user", "item", "rating", "time")},
                "u.data (user<TAB>item<TAB>rating<TAB>timestamp, no header)"),
    "ml-20m": ("ml-20m/ratings.csv", {"user_col": "userId", "item_col": "movieId", "rating_col": "rating",
                                      "time_col": "timestamp", "sep": ","},
               "ratings.csv (header userId,movieId,rating,timestamp)"),
}


def _movielens_command(name: str):
    member, reading, what = MOVIELENS[name]
    default_input = formats.raw_dir(name) / member

    # options as default values (not Annotated): the help texts are built from this data set's details
    def command(
        input: Optional[Path] = typer.Option(None, "--input", help=f"{what}. [default: {default_input}]", show_default=False),
        out_dir: Path = typer.Option(formats.processed_dir(name), "--out-dir", help="Processed data folder."),
        vocab: Path = typer.Option(formats.vocab_path(name), "--vocab", help="Vocabulary file to write."),
        min_item_count: int = typer.Option(5, "--min-item-count", min=1, help="Drop items with fewer interactions (first)."),
        min_user_count: int = typer.Option(5, "--min-user-count", min=3, help="Then drop users with fewer interactions."),
    ) -> None:
        from ..datasets import interactions as lib
        from ..datasets import ml1m
        from ..errors import MissingInputError

        path = input or default_input
        if not path.is_file():
            raise MissingInputError(path, f"seqrec download {name}" if input is None else None, what="ratings file")
        spec = lib.ReadSpec(time_format="unix-s", **reading)
        with Tracker(f"reading {path.name}", total=path.stat().st_size, kind="bytes") as tracker:
            result = lib.preprocess_interactions(
                path, lib.LEAVE_ONE_OUT, out_dir, vocab, name=name, spec=spec,
                loo=ml1m.LeaveOneOutParams(min_item_count, min_user_count), progress=tracker.advance,
            )
        _report(path, result)

    command.__doc__ = (
        f"MovieLens {name[3:].upper()} -> leave-one-out sequences, the ML-1M rules (docs/protocols.md §2) through "
        f"preprocess interactions: every rating an interaction, time-ordered per user (ties in file order), "
        f"5-core items then users. Reads {what}."
    )
    return command


def register(app: typer.Typer) -> None:
    app.command("interactions", no_args_is_help=True)(interactions)
    for name in MOVIELENS:
        app.command(name)(_movielens_command(name))
