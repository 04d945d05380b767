"""seqrec preprocess: raw files -> the processed format that train and infer read."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import formats
from ..console import say
from ..errors import MissingInputError
from ..fileio import folder_locks
from . import preprocess_interactions, preprocess_rsc15

app = typer.Typer(
    help=(
        "Prepare data exactly as the papers did. ml-1m: leave-one-out for BERT4Rec; yoochoose: the "
        "official RSC15 rules for GRU4Rec (also as three separate steps); interactions: your own CSV / TSV / "
        "Parquet log through either protocol; sample: regenerate the bundled sample."
    ),
    no_args_is_help=True,
)


@app.command("ml-1m")
def ml_1m(
    input: Annotated[
        Optional[Path],
        typer.Option("--input", help=f"ratings.dat (UserID::MovieID::Rating::Timestamp). [default: {formats.ML1M_RATINGS}]"),
    ] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for train/valid/test.txt + manifest.json.")] = formats.processed_dir(formats.ML1M),
    vocab: Annotated[Path, typer.Option("--vocab", help="Vocabulary file to write (line i = item index i).")] = formats.vocab_path(formats.ML1M),
    name: Annotated[str, typer.Option("--name", help="Data set name recorded in the manifest.")] = formats.ML1M,
    min_item_count: Annotated[int, typer.Option(min=1, help="Drop items with fewer interactions (first).")] = 5,
    min_user_count: Annotated[int, typer.Option(min=3, help="Then drop users with fewer interactions.")] = 5,
) -> None:
    """MovieLens-1M -> leave-one-out sequences (docs/protocols.md §2): every rating an interaction,
    time-ordered per user, 5-core items then users; train = all but the last two items,
    validation target = second-to-last, test target = last."""
    from ..datasets.ml1m import Ml1mParams, preprocess_ml1m

    ratings = input or formats.ML1M_RATINGS
    if not ratings.is_file():
        raise MissingInputError(ratings, "seqrec download ml-1m" if input is None else None, what="ratings file")
    start = time.perf_counter()
    with folder_locks(out_dir, vocab):  # a second writer is refused before any work
        result = preprocess_ml1m(ratings, out_dir, vocab, Ml1mParams(min_item_count, min_user_count), name=name)
    say(
        f"{name}: {result.users:,} users, {result.items:,} items, {result.interactions:,} interactions "
        f"(mean length {result.mean_length:.1f}; dropped {result.dropped_items:,} items, {result.dropped_users:,} users) "
        f"in {time.perf_counter() - start:.1f}s"
    )
    say(f"wrote {out_dir}/{{train,valid,test}}.txt, {out_dir}/{formats.USERS_FILE}, {out_dir}/{formats.MANIFEST_FILE}, {vocab}")
    if out_dir == formats.processed_dir(formats.ML1M):
        say("next: seqrec train bert4rec")
    else:
        say(f"next: seqrec train bert4rec --train-dir {out_dir}")


@app.command("sample")
def sample(
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the processed sample (raw file goes to <out-dir>/raw/).")] = formats.processed_dir(formats.SAMPLE),
    vocab: Annotated[Path, typer.Option("--vocab", help="Vocabulary file to write.")] = formats.vocab_path(formats.SAMPLE),
    seed: Annotated[int, typer.Option(help="Generator seed; the bundled sample uses the default.")] = 2024,
) -> None:
    """Regenerate the bundled sample deterministically: a synthetic MovieLens-style ratings.dat
    with item-to-item transitions and popularity skew, processed by the ml-1m pipeline."""
    from ..datasets.ml1m import preprocess_ml1m
    from ..datasets.sample import SampleSpec, generate_ratings, write_ratings

    raw = out_dir / "raw" / "ratings.dat"
    with folder_locks(out_dir, vocab):
        write_ratings(raw, generate_ratings(SampleSpec(seed=seed)))
        result = preprocess_ml1m(raw, out_dir, vocab, name=formats.SAMPLE)
    say(
        f"sample: {result.users:,} users, {result.items:,} items, {result.interactions:,} interactions "
        f"(raw {raw}, {result.raw_lines:,} lines)"
    )
    say(f"wrote {out_dir}/{{train,valid,test}}.txt, {out_dir}/{formats.MANIFEST_FILE}, {vocab}")


preprocess_rsc15.register(app)
preprocess_interactions.register(app)
