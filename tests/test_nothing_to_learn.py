"""Issue 11, kind 8: training that cannot learn is an error, and raw ids are kept verbatim.

A training split in which no sequence has two items gives no model anything to predict: GRU4Rec,
SASRec and BERT4Rec (train and pretrain) stop with one ``Error: ... nothing to learn`` line before
any model folder is made (they used to save untrained weights as epoch 1 and exit 0). Data whose
filters leave nothing are refused where they are made, keeping the earlier outputs. Raw item ids
(``0042`` and ``42``) stay two items from the file to ``recommend``'s output.

Case 13 of ../shared/cases is the first test, with the same inputs (tests/data/cases/13).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from conftest import invoke
from helpers import CASES, error_line, snapshot

from seqrec_cli import formats

GRU = ["--hidden-size", "8", "--n-sample", "4", "--batch-size", "4"]  # case 13's settings
BERT = ["--max-len", "16", "--hidden-size", "16", "--heads", "1", "--layers", "1", "--intermediate-size", "32", "--batch-size", "8"]
SAS = ["--max-len", "16", "--hidden-size", "16", "--batch-size", "8"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _text2id(runner, train: Path, name: str) -> None:
    result = invoke(runner, "preprocess", "text2id", "--train", train, "--test", CASES / "13" / "test_sessions.txt", "--name", name)
    assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- case 13: sessions of one item
def test_case13_single_item_sessions(runner, workdir):
    _text2id(runner, CASES / "13" / "train_mostly_single.txt", "mixed")
    counts = json.loads((workdir / "data" / "mixed" / "manifest.json").read_text())["counts"]["train"]
    assert counts["short_sessions"] == 48 and counts["sessions"] == 80  # short sessions are counted, and kept
    result = invoke(runner, "train", "gru4rec", "--train-dir", "data/mixed", "--model-dir", "mm", "--epochs", 1, *GRU)
    assert result.exit_code == 0, result.output
    result = invoke(runner, "recommend", "--model-dir", "mm", "--input", CASES / "13" / "recommend_single.txt", "--top-k", 3, "--output", "rec.tsv")
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in Path("rec.tsv").read_text().splitlines()[1:]]
    assert [r[0] for r in rows] == ["1", "2"] and all(len(r[1].split()) == 3 for r in rows)  # one-item inputs get 3 items
    vocab = set(formats.read_vocab(workdir / "vocab" / "mixed.txt"))
    assert all(set(r[1].split()) <= vocab for r in rows)

    _text2id(runner, CASES / "13" / "train_all_single.txt", "single")
    result = invoke(runner, "train", "gru4rec", "--train-dir", "data/single", "--model-dir", "ms", "--epochs", 1, *GRU)
    assert error_line(result) == (
        f"Error: {Path('data/single/train.txt')}: nothing to learn: no training session has 2 or more items "
        "(GRU4Rec predicts each next item of a session)"
    )
    assert not (workdir / "ms").exists()  # no untrained checkpoint, no folder


# ---------------------------------------------------------------- every model, every stage
@pytest.mark.parametrize(
    ("command", "why"),
    [
        (["train", "sasrec", *SAS], "sequence has 2 or more items (SASRec predicts each next item)"),
        (["train", "bert4rec", *BERT], "sequence has 2 or more items (BERT4Rec predicts each masked item from the items around it)"),
        (["train", "bert4rec", *BERT, "--objective", "last"],
         "sequence has 2 or more items (BERT4Rec predicts each masked item from the items around it)"),
        (["pretrain", "bert4rec", *BERT], "sequence has 2 or more items (BERT4Rec predicts each masked item from the items around it)"),
        (["train", "gru4rec", *GRU, "--loss", "ce"], "session has 2 or more items (GRU4Rec predicts each next item of a session)"),
    ],
    ids=["sasrec", "bert4rec", "bert4rec-last", "bert4rec-pretrain", "gru4rec-ce"],
)  # fmt: skip
def test_single_item_training_sequences_for_every_model(runner, workdir, command, why):
    _text2id(runner, CASES / "13" / "train_all_single.txt", "single")
    before = snapshot(workdir)
    result = invoke(runner, *command, "--train-dir", "data/single", "--model-dir", "m", "--epochs", 1)
    assert error_line(result) == f"Error: {Path('data/single/train.txt')}: nothing to learn: no training {why}"
    assert snapshot(workdir) == before and not (workdir / "m").exists()


def test_single_item_sessions_of_a_leave_one_out_folder(runner, workdir):
    """A processed folder of one's own (manifest and all) whose training lines all hold one item."""
    vocab = workdir / "v.txt"
    vocab.write_text("".join(f"{i}\n" for i in range(1, 6)))
    formats.save_processed(
        workdir / "d", dataset="own", eval_target="last", vocab_file=vocab,
        splits={"train": formats.Sequences.from_lists([[1], [2], [3]]), "test": formats.Sequences.from_lists([[1, 2], [2, 3], [3, 4]])},
    )  # fmt: skip
    for command in (["train", "sasrec", *SAS], ["train", "bert4rec", *BERT], ["train", "gru4rec", *GRU]):
        result = invoke(runner, *command, "--train-dir", "d", "--model-dir", "m", "--epochs", 1)
        assert error_line(result).startswith(f"Error: {Path('d/train.txt')}: nothing to learn: no training "), command
        assert not (workdir / "m").exists()


# ---------------------------------------------------------------- filters that leave nothing: refused where the data are made
def test_filters_that_leave_nothing_are_refused_and_keep_the_earlier_outputs(runner, workdir):
    # ml-1m's 5-core filter
    Path("few.dat").write_text("1::10::5::978300000\n1::20::5::978300001\n2::10::3::978300002\n")
    result = invoke(runner, "preprocess", "ml-1m", "--input", "few.dat", "--out-dir", "d1", "--vocab", "v1.txt")
    assert error_line(result) == (
        "Error: few.dat: nothing is left after the rule 'items with at least 5 interactions' (items first, then users; "
        "lower --min-item-count)"
    )
    assert not Path("d1").exists() and not Path("v1.txt").exists()
    # session-time: every session ends in the test window, so the training part is empty
    rows = "".join(f"{s},{1 + (s + k) % 4},{1_400_000_000 + 60 * k + s}\n" for s in range(1, 10) for k in range(6))
    Path("last_day.csv").write_text("session,item,time\n" + rows)
    result = invoke(runner, "preprocess", "interactions", "last_day.csv", "--split", "session-time", "--min-item-support", 1, "--name", "s")
    assert error_line(result) == (
        "Error: last_day.csv: every session ends in the final 86,400 s: nothing left for train_full (lower --test-days)"
    )
    assert not Path("data/s").exists() and not Path("vocab/s.txt").exists()
    # sessions of one event: nothing survives --min-session-length, and the folder of an earlier run is kept
    Path("log.csv").write_text("user,item,time\n" + "".join(f"{u},{i},{1000 + 10 * u + i}\n" for u in range(1, 13) for i in range(1, 10)))
    args = ("preprocess", "interactions", "--out-dir", "out", "--vocab", "out.txt")
    assert invoke(runner, *args, "log.csv").exit_code == 0
    before = snapshot(workdir / "out") | {"vocab": Path("out.txt").read_bytes()}
    Path("ones.csv").write_text("session,item,time\n" + "".join(f"{s},{s % 3},{1000 + s}\n" for s in range(1, 30)))
    result = invoke(runner, *args, "ones.csv", "--split", "session-time")
    assert error_line(result) == "Error: ones.csv: no events left after step 2: sessions with more than 1 event (lower --min-session-length)"
    assert snapshot(workdir / "out") | {"vocab": Path("out.txt").read_bytes()} == before


# ---------------------------------------------------------------- raw ids verbatim, through recommend --input
ITEMS = ["0042", "42", "007", "7", "0108775015", "108775015", "A", "a"]  # four pairs a reader could merge


def test_raw_ids_with_leading_zeros_stay_distinct_through_recommend(runner, workdir):
    lines = [f"u{u},{item},{1000 + 100 * u + (k * 5 + u) % 8}" for u in range(12) for k, item in enumerate(ITEMS)]
    Path("log.csv").write_text("user,item,time\n" + "\n".join(lines) + "\n")
    result = invoke(runner, "preprocess", "interactions", "log.csv", "--name", "z")
    assert result.exit_code == 0, result.output
    vocab = formats.read_vocab(workdir / "vocab" / "z.txt")
    assert sorted(vocab) == sorted(ITEMS)  # 8 items, not 4
    result = invoke(runner, "train", "sasrec", "--train-dir", "data/z", "--model-dir", "m", "--epochs", 1, *SAS)
    assert result.exit_code == 0, result.output
    Path("in.txt").write_text("0042 007\n42 7\n0108775015 A\n")
    result = invoke(runner, "recommend", "--model-dir", "m", "--input", "in.txt", "--exclude-seen", "--top-k", 6, "--output", "r.tsv")
    assert result.exit_code == 0, result.output
    got = [line.split("\t")[1].split() for line in Path("r.tsv").read_text().splitlines()[1:]]
    # with the seen items excluded, top-6 of 8 is every other item: each id is mapped to itself and no other
    assert [sorted(g) for g in got] == [
        sorted(set(ITEMS) - {"0042", "007"}),
        sorted(set(ITEMS) - {"42", "7"}),
        sorted(set(ITEMS) - {"0108775015", "A"}),
    ]


# ---------------------------------------------------------------- a loss that diverges
@pytest.mark.parametrize("command", [["train", "gru4rec", *GRU], ["train", "sasrec", *SAS]], ids=["gru4rec", "sasrec"])
def test_a_loss_that_becomes_nan_stops_the_run_and_saves_nothing_of_the_epoch(runner, workdir, command):
    result = invoke(runner, "preprocess", "ml-1m", "--input", CASES / "08" / "ratings.dat", "--out-dir", "d", "--vocab", "v.txt")
    assert result.exit_code == 0, result.output
    result = invoke(runner, *command, "--train-dir", "d", "--model-dir", "m", "--epochs", 1, "--lr", "1e30")
    line = error_line(result, alone=False)  # the step at which it happens depends on the arithmetic (threads)
    assert re.fullmatch(r"Error: the loss became nan at epoch 1, step \d+; lower --lr \(nothing of this epoch was saved\)", line), line
    assert not list((workdir / "m").glob("*epoch_*"))  # no checkpoint, no temporary one
