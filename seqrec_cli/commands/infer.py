"""seqrec infer / evaluate / recommend: checkpoints -> metrics and top-k items."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from .. import formats
from ..console import out, say
from ..errors import BadInputError, SeqrecError
from ..fileio import atomic_path, write_json
from .options import (
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
    parse_cutoffs,
)

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
    eval_batch_size: EvalBatchSize = 512,
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
    eval_batch_size: EvalBatchSize = 512,
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


def recommend(
    model_dir: ModelDir = formats.MODEL_DIR,
    epoch: Epoch = None,
    checkpoint: CheckpointPath = None,
    input: Annotated[
        Optional[Path],
        typer.Option(
            "--input",
            help="Sequences of RAW item ids, one per line, space-separated, oldest first.",
            show_default="the test sequences of the data the model was trained on",
        ),
    ] = None,
    test_dir: TestDir = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="Items to recommend per sequence.")] = 10,
    exclude_seen: Annotated[bool, typer.Option("--exclude-seen", help="Never recommend an item already in the sequence.")] = False,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", help="TSV to write (id, then the raw item ids, best first).", show_default="<model-dir>/recommendations.tsv"),
    ] = None,
    eval_batch_size: EvalBatchSize = 512,
    use_cuda: UseCuda = False,
    num_devices: NumDevices = None,
    threads: Threads = None,
) -> None:
    """Top-k next items after each sequence, as raw item ids through the vocabulary. By default
    for every test sequence of the training data (for leave-one-out data: every user's full
    history, i.e. a recommendation beyond the data)."""
    from .. import checkpoint as ckpt
    from .. import distributed
    from ..inference import data_for, load, resolve_checkpoint
    from ..scoring import recommend as rec

    proc = distributed.start(num_devices, use_cuda, threads)
    if proc is None:  # this process launched the workers, and they are done
        return
    device = proc.device
    chosen = ckpt.read_checkpoint(checkpoint) if checkpoint is not None else resolve_checkpoint(model_dir, epoch)
    data = data_for(chosen, test_dir)
    vocab = formats.read_vocab(data.vocab_file)
    if input is None:
        seqs = data.split("test")
        ids = data.users or [str(i + 1) for i in range(len(seqs))]
        empty: list[int] = []
    else:
        seqs, ids, empty, unknown = _read_raw_sequences(input, {raw: i + 1 for i, raw in enumerate(vocab)})
        if unknown:
            say(f"note: {unknown:,} item ids of {input} are not in the vocabulary and were ignored")
    lm = load(chosen, device)
    top = rec(lm.model, lm.entry, seqs, top_k, exclude_seen, eval_batch_size, lm.dtype)
    if top is None:  # another process than rank 0: rank 0 writes the recommendations of all
        return
    dest = output or (chosen.path.parent / "recommendations.tsv")
    rows = {i: " ".join(vocab[j - 1] for j in r if j > 0) for i, r in enumerate(top)}
    with atomic_path(dest) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write("id\titems\n")
            for i, ident in enumerate(ids):
                fh.write(f"{ident}\t{rows.get(i, '') if i not in empty else ''}\n")
    say(f"model:{chosen.path} top-{top_k} for {len(ids):,} sequences -> {dest}")
    if empty:
        say(f"note: {len(empty):,} input lines had no known item and got no recommendation")


def _read_raw_sequences(path: Path, index: dict[str, int]):
    """Raw-id lines -> (Sequences of indices, line ids, lines left empty, unknown item count)."""
    from ..sequences import Sequences
    from ..textio import read_lines

    # the shared text reader: UTF-8 (an undecodable byte is an error at its line), any line end,
    # trailing blank lines ignored; line i is sequence i, so a blank line before the last is an error
    lines = read_lines(path, what="input file", blank="empty line (every line must hold at least one item id)")
    if not lines:
        raise BadInputError(path, "empty input file")
    seqs, empty, unknown = [], [], 0
    for no, line in enumerate(lines):
        tokens = line.split()
        mapped = [index[t] for t in tokens if t in index]
        unknown += len(tokens) - len(mapped)
        if not mapped:
            empty.append(no)
            mapped = [1]  # placeholder, its output is blanked
        seqs.append(mapped)
    return Sequences.from_lists(seqs), [str(i + 1) for i in range(len(lines))], empty, unknown
