"""MovieLens-1M for BERT4Rec: ratings.dat -> leave-one-out sequences (PROTOCOLS.md §2).

Every rating is an interaction. Each user's items are ordered by timestamp, ties kept in file
order; items with fewer than 5 interactions are dropped, then users with fewer than 5. Item
indices 1..N follow the ascending MovieID, users the ascending UserID. Per user: train = all but
the last two items, valid = all but the last (its target is the second-to-last item), test =
the whole sequence (its target is the last item), so the test target never enters training.
"""

from __future__ import annotations

import io
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import BadInputError
from ..formats import Sequences, check_raw_input, input_record, save_processed
from ..textio import read_text

FIELDS = ("UserID", "MovieID", "Rating", "Timestamp")


@dataclass(frozen=True)
class Ml1mParams:
    min_item_count: int = 5  # items with fewer interactions are dropped first
    min_user_count: int = 5  # then users with fewer interactions


@dataclass
class Ml1mResult:
    users: int
    items: int
    interactions: int
    mean_length: float
    raw_lines: int
    dropped_items: int
    dropped_users: int


_INT = re.compile(r"[0-9]{1,18}")  # a non-negative int64 written plainly (no sign, point or exponent)


def read_ratings(path: Path) -> pd.DataFrame:
    """Parse ``UserID::MovieID::Rating::Timestamp`` lines, read with the text reader as Latin-1
    (:mod:`seqrec_cli.textio`: BOM, LF/CRLF/lone-CR line ends, trailing blank lines ignored).

    Every field must be a plain non-negative integer. Returns columns user, item, ts and the
    original line order in ``line`` (for stable ties).
    """
    text = read_text(path, encoding="latin-1", what="ratings file").removesuffix("\n")
    if not text.strip():
        raise BadInputError(path, "empty file: no ratings")
    try:
        # a fifth column catches lines with too many fields (pandas would shift the columns otherwise)
        df = pd.read_csv(
            io.StringIO(text.replace("::", "\t")),
            sep="\t",
            header=None,
            names=[*FIELDS, "extra"],
            dtype=str,
            engine="c",
            skip_blank_lines=False,
            keep_default_na=False,
            na_values=[],
        )
    except (ValueError, pd.errors.ParserError):
        df = None
    if df is None or not _all_plain_ints(df):
        _raise_first_bad_line(path, text)
    assert df is not None
    return pd.DataFrame(
        {
            "user": df["UserID"].astype(np.int64).to_numpy(),
            "item": df["MovieID"].astype(np.int64).to_numpy(),
            "ts": df["Timestamp"].astype(np.int64).to_numpy(),
            "line": np.arange(len(df), dtype=np.int64),
        }
    )


def _all_plain_ints(df: pd.DataFrame) -> bool:
    if (df["extra"] != "").any():
        return False
    return all(df[name].str.fullmatch(_INT.pattern).all() for name in FIELDS)


def _raise_first_bad_line(path: Path, text: str) -> None:
    for no, line in enumerate(text.split("\n"), start=1):
        parts = line.split("::")
        if len(parts) != 4:
            raise BadInputError(path, f"expected 4 fields UserID::MovieID::Rating::Timestamp, got {len(parts)}", line=no)
        for name, value in zip(FIELDS, parts):
            if not _INT.fullmatch(value):
                what = f"{name} is not an integer (plain non-negative digits): {value!r}"
                raise BadInputError(path, ("bad timestamp: " if name == "Timestamp" else "") + what, line=no)
    raise BadInputError(path, "could not parse the file")  # pragma: no cover - the scan above finds it


def build_sequences(
    df: pd.DataFrame, params: Ml1mParams
) -> tuple[list[str], list[str], Sequences, dict[str, int]]:
    """Filter and order: returns raw item ids (vocab order), raw user ids, full sequences, counts."""
    item_counts = df["item"].value_counts()
    keep_items = item_counts.index[item_counts >= params.min_item_count]
    kept = df[df["item"].isin(keep_items)]
    user_counts = kept["user"].value_counts()
    keep_users = user_counts.index[user_counts >= params.min_user_count]
    kept = kept[kept["user"].isin(keep_users)]

    # order: user ascending, then timestamp, then original line (stable ties)
    order = np.lexsort((kept["line"].to_numpy(), kept["ts"].to_numpy(), kept["user"].to_numpy()))
    users_col = kept["user"].to_numpy()[order]
    items_col = kept["item"].to_numpy()[order]

    vocab_ids = np.unique(items_col)  # ascending MovieID -> index 1..N
    item_index = np.searchsorted(vocab_ids, items_col) + 1
    user_ids, starts = np.unique(users_col, return_index=True)
    offsets = np.append(starts, len(users_col)).astype(np.int64)
    seqs = Sequences(item_index, offsets)
    counts = {
        "raw_interactions": int(len(df)),
        "raw_users": int(df["user"].nunique()),
        "raw_items": int(df["item"].nunique()),
        "dropped_items": int(df["item"].nunique() - len(vocab_ids)),
        "dropped_users": int(df["user"].nunique() - len(user_ids)),
    }
    return [str(v) for v in vocab_ids], [str(u) for u in user_ids], seqs, counts


def leave_one_out(full: Sequences) -> dict[str, Sequences]:
    """train = all but the last two, valid = all but the last, test = everything."""
    lengths = full.lengths
    if (lengths < 3).any():
        raise ValueError("leave-one-out needs at least 3 items per user")
    starts = full.offsets[:-1]

    def cut(drop: int) -> Sequences:
        new_len = lengths - drop
        offsets = np.zeros(len(full) + 1, dtype=np.int64)
        np.cumsum(new_len, out=offsets[1:])
        # gather the first new_len items of every row, vectorised
        row = np.repeat(np.arange(len(full)), new_len)
        pos = np.arange(offsets[-1]) - offsets[:-1][row]
        return Sequences(full.items[starts[row] + pos], offsets)

    return {"train": cut(2), "valid": cut(1), "test": full}


def preprocess_ml1m(
    ratings: Path,
    out_dir: Path,
    vocab_file: Path,
    params: Ml1mParams = Ml1mParams(),
    name: str = "ml-1m",
) -> Ml1mResult:
    """ratings.dat -> the processed folder ``out_dir`` and ``vocab_file``, written as one unit.

    A ratings file extracted by ``seqrec download`` is first checked against its SOURCE.json.
    Raises BadInputError (a bad line, too little data), MismatchError (ratings.dat changed since
    the download), LockedError (another process writes ``out_dir`` or ``vocab_file``), DiskFullError.
    """
    check_raw_input(ratings)
    df = read_ratings(ratings)
    vocab, users, full, counts = build_sequences(df, params)
    if len(users) == 0:
        raise BadInputError(ratings, "no user is left after the 5-core filter")
    if (full.lengths < 3).any():
        raise BadInputError(ratings, "leave-one-out needs at least 3 interactions per user; raise --min-user-count")
    splits = leave_one_out(full)
    result = Ml1mResult(
        users=len(users),
        items=len(vocab),
        interactions=full.n_events,
        mean_length=round(float(full.lengths.mean()), 2),
        raw_lines=counts["raw_interactions"],
        dropped_items=counts["dropped_items"],
        dropped_users=counts["dropped_users"],
    )
    save_processed(
        out_dir,
        dataset=name,
        eval_target="last",
        vocab_file=vocab_file,
        splits=splits,
        users=users,
        inputs=[input_record(ratings)],
        params={"protocol": "leave-one-out (PROTOCOLS.md §2)", **asdict(params)},
        counts={**asdict(result), **counts},
        vocab=vocab,  # written with the data folder, as one unit: a failing run leaves the old vocabulary
    )
    return result
