"""Leave-one-out sequences (docs/protocols.md §2): the ML-1M rules, for MovieLens and for any interaction log.

``seqrec preprocess ml-1m`` (``ratings.dat``, read here by :func:`read_ratings`) and ``seqrec
preprocess interactions --split leave-one-out`` (CSV / TSV / Parquet, read by
``interactions.read_interactions``) both run :func:`build_sequences` -> :func:`leave_one_out` ->
:func:`save_leave_one_out`; only the reader differs.

The rules (Sun et al. 2019, BERT4Rec, as docs/protocols.md §2 states them): every rating is an
interaction; items with fewer than ``min_item_count`` (5) interactions are dropped, then users
with fewer than ``min_user_count`` (5), each filter once (not iterated to a fixed point). Each
user's items are ordered by timestamp, ties kept in file order (stable). Raw ids are kept
verbatim; item indices 1..N and the user lines follow the id order of ``table.py`` (numeric for
plain integers such as MovieIDs, so ML-1M is in ascending MovieID / UserID order; lexicographic
otherwise). Per user: train = all but the last two items, valid = all but the last (its target
is the second-to-last item), test = the whole sequence (its target is the last item), so the
test target never enters training.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import BadInputError
from ..formats import Sequences, check_raw_input, input_record, save_processed
from ..textio import read_text
from .table import Interactions, encode_ids

FIELDS = ("UserID", "MovieID", "Rating", "Timestamp")


@dataclass(frozen=True)
class LeaveOneOutParams:
    min_item_count: int = 5  # items with fewer interactions are dropped first
    min_user_count: int = 5  # then users with fewer interactions (at least 3: train, valid and test targets)


Ml1mParams = LeaveOneOutParams  # the ML-1M defaults are the protocol's


@dataclass
class Ml1mResult:
    users: int
    items: int
    interactions: int
    mean_length: float
    raw_lines: int
    dropped_items: int
    dropped_users: int


@dataclass
class LooSequences:
    """What the leave-one-out filters keep, ordered; ready to split."""

    vocab: list[str]  # raw item ids; element i-1 is item index i
    users: list[str]  # raw user id of each line
    full: Sequences  # each user's whole time-ordered sequence of item indices
    counts: dict[str, int]  # raw_interactions, raw_users, raw_items, dropped_items, dropped_users
    steps: list[dict[str, Any]] = field(default_factory=list)  # interactions/users/items left after each rule


_INT = re.compile(r"[0-9]{1,18}")  # a non-negative int64 written plainly (no sign, point or exponent)


def read_ratings(path: Path) -> Interactions:
    """Parse ``UserID::MovieID::Rating::Timestamp`` lines, read with the text reader as Latin-1
    (:mod:`seqrec_cli.textio`: BOM, LF/CRLF/lone-CR line ends, trailing blank lines ignored).

    Every field must be plain digits. UserID and MovieID are kept as written (``0042`` and ``42``
    are two movies); the Timestamp is read as an integer. Rows stay in file order.
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
    user, users = encode_ids(df["UserID"])
    item, items = encode_ids(df["MovieID"])
    return Interactions(user, item, df["Timestamp"].astype(np.int64).to_numpy(), users, items)


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


def _step(rule: str, table: Interactions) -> dict[str, Any]:
    return {"rule": rule, **table.counts()}


def build_sequences(
    table: Interactions, params: LeaveOneOutParams, log: Callable[[dict[str, Any]], None] | None = None
) -> LooSequences:
    """Filter (items, then users, once each) and order (user id, then time, then file order).

    ``log`` is called with each rule's record (``rule``, ``interactions``, ``users``, ``items``
    left) as it is applied.
    """
    steps = [_step("read", table)]
    report = log or (lambda _: None)
    report(steps[-1])
    keep = (np.bincount(table.item, minlength=len(table.items)) >= params.min_item_count)[table.item]
    steps.append(_step(f"items with at least {params.min_item_count} interactions", table.take(keep)))
    report(steps[-1])
    user_counts = np.bincount(table.user[keep], minlength=len(table.users))
    keep &= (user_counts >= params.min_user_count)[table.user]
    steps.append(_step(f"users with at least {params.min_user_count} interactions", table.take(keep)))
    report(steps[-1])

    # order: user, then timestamp, then original line (stable ties)
    line = np.flatnonzero(keep)
    users_col, items_col, time_col = table.user[line], table.item[line], table.time[line]
    order = np.lexsort((line, time_col, users_col))
    users_col, items_col = users_col[order], items_col[order]

    vocab_codes = np.unique(items_col)  # id order -> index 1..N
    item_index = np.searchsorted(vocab_codes, items_col) + 1
    user_codes, starts = np.unique(users_col, return_index=True)
    offsets = np.append(starts, len(users_col)).astype(np.int64)
    read = steps[0]
    counts = {
        "raw_interactions": read["interactions"],
        "raw_users": read["users"],
        "raw_items": read["items"],
        "dropped_items": read["items"] - len(vocab_codes),
        "dropped_users": read["users"] - len(user_codes),
    }
    return LooSequences(
        table.items.take(vocab_codes), table.users.take(user_codes), Sequences(item_index, offsets), counts, steps
    )


def check_not_empty(loo: LooSequences, source: Path | str) -> None:
    """Refuse a result that leave-one-out cannot split, naming the rule that emptied it."""
    for step in loo.steps[1:]:
        if step["interactions"] == 0:
            option = "--min-item-count" if step["rule"].startswith("items") else "--min-user-count"
            raise BadInputError(
                source, f"nothing is left after the rule '{step['rule']}' (items first, then users; lower {option})"
            )
    if (loo.full.lengths < 3).any():
        raise BadInputError(source, "leave-one-out needs at least 3 interactions per user; raise --min-user-count")


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


def save_leave_one_out(
    loo: LooSequences,
    out_dir: Path,
    vocab_file: Path,
    *,
    name: str,
    inputs: list[dict[str, Any]],
    params: dict[str, Any],
    counts: dict[str, Any],
) -> None:
    """Split (train / valid / test) and write the processed folder (users.txt included) and the
    vocabulary as one unit (``formats.save_processed``)."""
    splits = leave_one_out(loo.full)
    save_processed(
        out_dir,
        dataset=name,
        eval_target="last",
        vocab_file=vocab_file,
        splits=splits,
        users=loo.users,
        inputs=inputs,
        params=params,
        counts=counts,
        vocab=loo.vocab,  # written with the data folder, as one unit: a failing run leaves the old vocabulary
    )


def preprocess_ml1m(
    ratings: Path,
    out_dir: Path,
    vocab_file: Path,
    params: LeaveOneOutParams = LeaveOneOutParams(),
    name: str = "ml-1m",
) -> Ml1mResult:
    check_raw_input(ratings)  # a ratings.dat extracted by seqrec download: checked against its SOURCE.json
    loo = build_sequences(read_ratings(ratings), params)
    check_not_empty(loo, ratings)
    full = loo.full
    result = Ml1mResult(
        users=len(loo.users),
        items=len(loo.vocab),
        interactions=full.n_events,
        mean_length=round(float(full.lengths.mean()), 2),
        raw_lines=loo.counts["raw_interactions"],
        dropped_items=loo.counts["dropped_items"],
        dropped_users=loo.counts["dropped_users"],
    )
    save_leave_one_out(
        loo,
        out_dir,
        vocab_file,
        name=name,
        inputs=[input_record(ratings)],
        params={"protocol": "leave-one-out (docs/protocols.md §2)", **asdict(params)},
        counts={**asdict(result), **loo.counts},
    )
    return result
