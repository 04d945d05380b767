"""seqrec infer / evaluate / recommend: checkpoints -> metrics and top-k items."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

from .. import formats
from ..console import note, out, say
from ..errors import SeqrecError
from ..fileio import write_json
from ..hparams import EVAL_BATCH_SIZE
from .options import (
    READING,
    CheckpointPath,
    Cutoffs,
    Epoch,
    EvalBatchSize,
    FilterSeen,
    ModelDir,
    Negatives,
    NumDevices,
    SampleSeed,
    Sampling,
    Split,
    TestDir,
    Threads,
    UseCuda,
    explicit,
    parse_cutoffs,
    reading_options,
)
from .preprocess_interactions import reading_text


class InputFormat(str, Enum):
    auto = "auto"
    lines = "lines"
    interactions = "interactions"


class OutputFormat(str, Enum):
    tsv = "tsv"
    csv = "csv"
    jsonl = "jsonl"


def _spec(split: str, cutoffs: str, negatives: int, sampling: str, filter_seen: bool, seed: int, batch: int):
    from ..evaluation import EvalSpec

    return EvalSpec(split, parse_cutoffs(cutoffs), negatives, sampling, filter_seen and negatives == 0, seed, batch)


def _metric_label(key: str) -> str:
    """hr@10 -> HR@10, ndcg@10 -> NDCG@10, mrr -> MRR; recall@20 stays as the session literature writes it."""
    name, _, k = key.partition("@")
    label = {"hr": "HR", "ndcg": "NDCG", "mrr": "MRR", "recall": "recall"}[name]
    return f"{label}@{k}" if k else label


def infer(
    model_dir: ModelDir = formats.MODEL_DIR,
    start_index: Annotated[int, typer.Option("--start-index", min=1, help="First epoch to evaluate.")] = 1,
    last_index: Annotated[int, typer.Option("--last-index", min=1, help="Last epoch to evaluate.")] = 10,
    test_dir: TestDir = None,
    split: Split = "test",
    cutoffs: Cutoffs = "1,5,10,20",
    negatives: Negatives = 0,
    sampling: Sampling = "popularity",
    filter_seen: FilterSeen = False,
    sample_seed: SampleSeed = 0,
    eval_batch_size: EvalBatchSize = EVAL_BATCH_SIZE,
    use_cuda: UseCuda = False,
    num_devices: NumDevices = None,
    threads: Threads = None,
    output_json: Annotated[
        Optional[Path], typer.Option("--output-json", help="Where to write every figure.", show_default="<model-dir>/infer.json")
    ] = None,
) -> None:
    """Evaluate each checkpoint epoch_N, N in start..last, on the test split of the data it was
    trained on: one line per checkpoint (the figures the model's literature reports: GRU4Rec
    recall@20, MRR@20; BERT4Rec and SASRec HR@10, NDCG@10), then a table; all figures go to a JSON
    file. Missing epochs, and folders holding another run's checkpoint, are skipped and flagged."""
    from rich import box
    from rich.table import Table

    from .. import distributed
    from ..evaluation import metric_key
    from ..inference import checkpoints_in_range, data_for, evaluate_checkpoint, load

    proc = distributed.start(num_devices, use_cuda, threads)
    if proc is None:  # this process launched the workers, and they are done
        return
    device = proc.device
    spec = _spec(split, cutoffs, negatives, sampling, filter_seen, sample_seed, eval_batch_size)
    found, missing, skipped = checkpoints_in_range(model_dir, start_index, last_index)
    data_cache: dict[str, formats.ProcessedData] = {}
    results = []
    protocol = description = ""
    for e in missing:
        say(f"model:{formats.checkpoint_dir(model_dir, e)} missing (skipped)")
    for line in skipped:
        say(f"model:{line} (skipped)")
    for checkpoint in found:
        key = json.dumps(dataclasses.asdict(checkpoint.config.data), sort_keys=True) + str(test_dir)
        if key not in data_cache:
            data_cache[key] = data_for(checkpoint, test_dir)
        data = data_cache[key]
        lm = load(checkpoint, device)
        result = evaluate_checkpoint(lm, data, spec)
        protocol, description = result.protocol, result.description
        # the model's headline figures, as this data names them ("recall@k" and "hr@k" are one number)
        shown = [metric_key(k, data.manifest.eval_target) for k in lm.entry.headline]
        # session-based tools print lower-case names (the Paddle GRU4Rec's recall@20:… mrr@20:…)
        label = (lambda k: k) if lm.entry.lowercase_labels else _metric_label
        figures = " ".join(f"{label(k)}:{result.metrics[k]:.4f}" for k in shown if k in result.metrics)
        say(f"model:{checkpoint.path} {figures} time_cost(s):{result.seconds:.1f} protocol:{protocol}")
        results.append(
            {
                "checkpoint": str(checkpoint.path),
                "epoch": checkpoint.epoch,
                "model": lm.entry.name,
                "data": str(data.folder),
                "split": split,
                "predictions": result.predictions,
                "protocol": protocol,
                "metrics": result.metrics,
                "seconds": round(result.seconds, 3),
            }
        )
    columns = [k for k in results[0]["metrics"] if k.split("@")[-1] in ("10", "20") and not k.startswith("mrr@10")]
    table = Table(title=f"{split} split, {description}", title_justify="left", box=box.SIMPLE)
    table.add_column("epoch", justify="right")
    for k in columns:
        table.add_column(_metric_label(k), justify="right")
    table.add_column("predictions", justify="right")
    for r in results:
        table.add_row(str(r["epoch"]), *(f"{r['metrics'][k]:.4f}" for k in columns), f"{r['predictions']:,}")
    out.print(table)
    dest = output_json or Path(model_dir) / "infer.json"
    if not proc.is_main:  # rank 0 writes
        return
    write_json(
        dest,
        {
            "protocol": protocol,
            "protocol_description": description,
            "split": split,
            "results": results,
            "missing_epochs": missing,
            "skipped": skipped,
        },
    )
    say(f"wrote {dest}")


def evaluate(
    model_dir: ModelDir = formats.MODEL_DIR,
    epoch: Epoch = None,
    checkpoint: CheckpointPath = None,
    test_dir: TestDir = None,
    split: Split = "test",
    cutoffs: Cutoffs = "1,5,10,20",
    negatives: Negatives = 0,
    sampling: Sampling = "popularity",
    filter_seen: FilterSeen = False,
    sample_seed: SampleSeed = 0,
    eval_batch_size: EvalBatchSize = EVAL_BATCH_SIZE,
    use_cuda: UseCuda = False,
    num_devices: NumDevices = None,
    threads: Threads = None,
    output_json: Annotated[
        Optional[Path],
        typer.Option(
            "--output-json", help="Where to write the figures.", show_default="<checkpoint>/eval_<split>_<protocol>.json"
        ),
    ] = None,
    baseline: Annotated[
        Optional[Literal["popularity"]],
        typer.Option(
            "--baseline",
            help="Evaluate a baseline instead of a checkpoint: popularity (rank items by training counts); "
            "needs --test-dir.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Evaluate one checkpoint with every metric (HR/recall@k, NDCG@k, MRR@k, MRR) under a stated
    protocol: full ranking by default, or --negatives 100 --sampling popularity|uniform for the
    papers' sampled protocol. Every figure is printed with its protocol. --baseline popularity
    gives the yardstick a sequence model must beat."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from .. import checkpoint as ckpt
    from .. import distributed
    from ..evaluation import evaluate_popularity
    from ..inference import data_for, evaluate_checkpoint, load, resolve_checkpoint

    proc = distributed.start(num_devices, use_cuda, threads)
    if proc is None:  # this process launched the workers, and they are done
        return
    device = proc.device
    spec = _spec(split, cutoffs, negatives, sampling, filter_seen, sample_seed, eval_batch_size)
    if baseline is not None:
        if test_dir is None:
            raise SeqrecError("--baseline popularity needs --test-dir (the processed data folder to evaluate on)")
        data = formats.load_processed(test_dir)
        result = evaluate_popularity(data, spec)
        name, where, epoch_no = "popularity", "baseline:popularity", None
    else:
        chosen = ckpt.read_checkpoint(checkpoint) if checkpoint is not None else resolve_checkpoint(model_dir, epoch)
        data = data_for(chosen, test_dir)
        lm = load(chosen, device)
        result = evaluate_checkpoint(lm, data, spec)
        name, where, epoch_no = lm.entry.name, f"model:{chosen.path}", chosen.epoch
    say(f"{where} ({name}" + (f", epoch {epoch_no})" if epoch_no else ")") + f" on {data.folder} {split} split")
    say(f"protocol: {result.description}")
    table = Table(title=f"{result.predictions:,} predictions, {result.seconds:.1f}s", title_justify="left", box=box.SIMPLE)
    table.add_column("metric")
    table.add_column(escape(f"value [{result.protocol}]"), justify="right")
    for k, v in result.metrics.items():
        table.add_row(_metric_label(k), f"{v:.4f}")
    out.print(table)
    if output_json is not None:
        dest = output_json
    elif baseline is not None:
        dest = Path(test_dir) / f"baseline_{baseline}_{split}_{result.protocol}.json"
    else:
        dest = chosen.path / f"eval_{split}_{result.protocol}.json"
    if not proc.is_main:  # rank 0 writes
        return
    write_json(
        dest,
        {
            "checkpoint": None if baseline else str(chosen.path),
            "model": name,
            "epoch": epoch_no,
            "data": str(data.folder),
            "split": split,
            "protocol": result.protocol,
            "protocol_description": result.description,
            "predictions": result.predictions,
            "metrics": result.metrics,
            "seconds": round(result.seconds, 3),
        },
    )
    say(f"wrote {dest}")


# --user-col, --item-col, --sep, ...: the declarations of preprocess interactions (options.py)
(UserCol, SessionCol, ItemCol, TimeCol, RatingCol, MinRating, Columns, Sep, TimeFormat, Encoding) = reading_options(
    "the training data's reading (manifest)", panel=READING
)


def recommend(
    ctx: typer.Context,
    model_dir: ModelDir = formats.MODEL_DIR,
    epoch: Epoch = None,
    checkpoint: CheckpointPath = None,
    input: Annotated[
        Optional[Path],
        typer.Option(
            "--input",
            help="New sequences to recommend for: raw-id lines (one sequence per line, raw item ids separated by "
            "spaces, oldest first) or an interaction file like those preprocess interactions reads (CSV / TSV / "
            "Parquet / compressed); see --input-format. - reads standard input.",
            show_default="the test sequences of the data the model was trained on",
        ),
    ] = None,
    input_format: Annotated[
        InputFormat,
        typer.Option(
            "--input-format",
            help="lines | interactions | auto: an option below given, Parquet or compressed, or a first line naming "
            "the user/session, item and time columns -> interactions; a first line holding a field separator "
            "without naming them -> refused as ambiguous; else lines.",
        ),
    ] = InputFormat.auto,
    user_col: UserCol = None,
    session_col: SessionCol = None,
    item_col: ItemCol = None,
    time_col: TimeCol = None,
    rating_col: RatingCol = None,
    min_rating: MinRating = None,
    columns: Columns = None,
    sep: Sep = None,
    time_format: TimeFormat = None,
    encoding: Encoding = None,
    test_dir: TestDir = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Items to recommend per sequence.")] = 10,
    exclude_seen: Annotated[bool, typer.Option("--exclude-seen", help="Never recommend an item already in the sequence.")] = False,
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output",
            help="File to write (one row per sequence: its id, then the raw item ids, best first); - writes standard output.",
            show_default="<model-dir>/recommendations.<format>",
        ),
    ] = None,
    output_format: Annotated[
        Optional[OutputFormat],
        typer.Option(
            "--format",
            help="tsv (id<TAB>items), csv (id,items) or jsonl ({id, items, source}). A third column 'source' "
            "(model | popularity) appears in tsv and csv when some sequence had no known item.",
            show_default="from --output's extension (.csv, .jsonl), else tsv",
        ),
    ] = None,
    eval_batch_size: EvalBatchSize = EVAL_BATCH_SIZE,
    use_cuda: UseCuda = False,
    num_devices: NumDevices = None,
    threads: Threads = None,
) -> None:
    """Top-k next items after each sequence, as raw item ids through the vocabulary. By default
    for every test sequence of the training data (for leave-one-out data: every user's full
    history, i.e. a recommendation beyond the data); with --input for new users or sessions, in
    your own ids. An interaction file is read as the training data was (the column mapping,
    separator and time format in its manifest), the reading options overriding: grouped by user or
    session, ordered by time. Unknown items are skipped and counted; a sequence with no known item
    gets the most popular training items instead, flagged (source popularity)."""
    from .. import checkpoint as ckpt
    from .. import distributed
    from .. import recommend_input as ri
    from ..inference import data_for, load, resolve_checkpoint
    from ..scoring import recommend as rec

    import numpy as np

    reading = {
        "user_col": user_col or session_col, "item_col": item_col, "time_col": time_col, "rating_col": rating_col,
        "min_rating": min_rating, "columns": columns, "sep": sep, "time_format": time_format, "encoding": encoding,
    }  # fmt: skip
    given = [f"--{k.replace('_', '-')}" for k in (*reading, "session_col") if explicit(ctx, k)]
    if given and input is None:
        raise SeqrecError(f"{', '.join(given)} {'apply' if len(given) > 1 else 'applies'} to an interaction file given with --input")
    if explicit(ctx, "input_format") and input is None:
        raise SeqrecError("--input-format applies to a file given with --input")
    if user_col is not None and session_col is not None:
        raise SeqrecError("give --user-col or --session-col, not both")
    fmt = ri.output_format(output_format.value if output_format else None, output)
    report = note if output is not None and str(output) == "-" else say  # keep standard output for the rows
    if input is not None and str(input) == "-" and num_devices is not None and num_devices > 1:
        raise SeqrecError("--input - (standard input) needs one process: give the file's path with --num-devices")
    proc = distributed.start(num_devices, use_cuda, threads)
    if proc is None:  # this process launched the workers, and they are done
        return
    device = proc.device
    chosen = ckpt.read_checkpoint(checkpoint) if checkpoint is not None else resolve_checkpoint(model_dir, epoch)
    data = data_for(chosen, test_dir)
    vocab = formats.read_vocab(data.vocab_file)
    fallback: list[int] = []
    new = None
    if input is None:
        seqs = data.split("test")
        ids = data.users or [str(i + 1) for i in range(len(seqs))]
    else:
        new = ri.read_input(input, input_format.value, manifest=data.manifest, overrides=_reading_overrides(reading))
        for line in new.notes:
            report(f"note: {line}")
        report(_input_text(new))
        mapped = ri.map_to_vocab(new, vocab)
        seqs, ids, fallback = mapped.seqs, new.ids, mapped.fallback
        if mapped.unknown:
            report(
                f"note: {mapped.unknown:,} of {_n(mapped.events, 'item')} of {new.name} ({_n(mapped.unknown_ids, 'distinct id')}) "
                f"{'is' if mapped.unknown == 1 else 'are'} not in the vocabulary and {'was' if mapped.unknown == 1 else 'were'} skipped"
            )
    lm = load(chosen, device)
    top = rec(lm.model, lm.entry, seqs, top_k, exclude_seen, eval_batch_size, lm.dtype)
    if top is None:  # another process than rank 0: rank 0 writes the recommendations of all
        return
    sources = None
    if fallback:
        top[fallback] = 0
        popular = ri.popularity_ranking(data.split("train"), data.n_items, top_k)
        top[np.asarray(fallback)[:, None], np.arange(len(popular))] = popular
        sources = [ri.MODEL] * len(ids)
        for i in fallback:
            sources[i] = ri.POPULARITY
    items = [[vocab[j - 1] for j in row if j > 0] for row in top.tolist()]
    dest = output or (chosen.path.parent / f"recommendations.{fmt}")
    ri.write_recommendations(dest, fmt, ids, items, sources)
    report(f"model:{chosen.path} top-{top_k} for {len(ids):,} sequences -> {'standard output' if str(dest) == '-' else dest}")
    if fallback:
        what = "line" if new is not None and new.kind == ri.LINES else "sequence"
        report(
            f"note: {_n(len(fallback), what)} had no known item and got the {_n(top_k, 'most popular training item')} "
            "instead (source popularity)"
        )


def _n(count: int, word: str) -> str:
    """'1 line', '2 lines'."""
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _reading_overrides(reading: dict[str, Any]) -> dict[str, Any]:
    """The reading options given, as ReadSpec fields (separator and columns parsed as preprocess does)."""
    from ..datasets.interactions import parse_columns, parse_sep

    out = dict(reading)
    if out["sep"] is not None:
        out["sep"] = parse_sep(out["sep"])
    if out["columns"] is not None:
        out["columns"] = parse_columns(out["columns"])
    return out


def _input_text(new: Any) -> str:
    from .. import recommend_input as ri

    if new.kind == ri.LINES:
        return f"read {new.name}: raw-id lines: {_n(len(new.ids), 'sequence')}, {_n(new.events, 'item')}"
    dropped = f" ({new.rows_dropped:,} below the rating threshold)" if new.rows_dropped else ""
    return (
        f"read {new.name}: interactions, {reading_text(new.read)}: {_n(new.rows, 'row')}{dropped}, "
        f"{_n(len(new.ids), 'sequence')}"
    )
