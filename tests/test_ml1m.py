"""seqrec preprocess ml-1m / sample, through the real CLI, on real files (docs/protocols.md §2)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, invoke, listing, shared_file

from seqrec_cli import formats
from seqrec_cli.errors import MissingInputError

# ---------------------------------------------------------------- a hand-built ratings.dat
# MovieIDs: 10, 20, 30, 77, 200 have >= 5 ratings, 40 exactly 5 (kept: the bound is "fewer than
# 5"), 99 exactly 4 (dropped). Vocabulary order is numeric (10 < 20 < 30 < 40 < 77 < 200), not
# lexicographic ("200" < "30"). User 9 has 5 ratings, one on 99: 4 left after the item filter, so
# the user filter drops them. That leaves item 77 with 4 ratings, but the filters run once (items,
# then users), so 77 stays. Users are written out of order (100 first; "100" < "12" as text),
# lines are shuffled within each user, and two users have equal timestamps whose file order is
# not the MovieID order (user 7: 20 then 10 at t=50; user 25: 10 then 30 at t=9).
HAND_LINES = [
    # user 100: chronological 30 20 10 40 200 77
    "100::200::4::5",
    "100::30::3::1",
    "100::77::2::6",
    "100::10::5::3",
    "100::20::4::2",
    "100::40::1::4",
    # user 7: chronological 20 10 (tie, file order) 77 30 99 200 40
    "7::30::3::70",
    "7::20::4::50",
    "7::200::5::90",
    "7::99::1::80",
    "7::10::2::50",
    "7::40::3::95",
    "7::77::4::60",
    # user 12: chronological 10 20 30 40 77 200
    "12::40::4::1000",
    "12::30::3::900",
    "12::200::1::1200",
    "12::20::2::800",
    "12::77::5::1100",
    "12::10::1::700",
    # user 9: 77 99 10 20 30 -> 4 after dropping 99 -> user dropped
    "9::30::3::50",
    "9::99::2::20",
    "9::77::4::10",
    "9::20::1::40",
    "9::10::5::30",
    # user 3: chronological 10 20 99 30 40 200
    "3::200::5::600",
    "3::10::4::100",
    "3::40::3::500",
    "3::99::2::300",
    "3::30::1::400",
    "3::20::5::200",
    # user 25: chronological 200 99 40 77 10 30 (tie, file order) 20
    "25::77::3::8",
    "25::10::4::9",
    "25::200::5::5",
    "25::20::1::10",
    "25::30::2::9",
    "25::99::3::6",
    "25::40::4::7",
]
HAND = "".join(line + "\n" for line in HAND_LINES)

# by hand: vocab 10->1, 20->2, 30->3, 40->4, 77->5, 200->6; users ascending 3, 7, 12, 25, 100
HAND_VOCAB = "10\n20\n30\n40\n77\n200\n"
HAND_USERS = "3\n7\n12\n25\n100\n"
HAND_TEST = "1 2 3 4 6\n2 1 5 3 6 4\n1 2 3 4 5 6\n6 4 5 1 3 2\n3 2 1 4 6 5\n"
HAND_VALID = "1 2 3 4\n2 1 5 3 6\n1 2 3 4 5\n6 4 5 1 3\n3 2 1 4 6\n"
HAND_TRAIN = "1 2 3\n2 1 5 3\n1 2 3 4\n6 4 5 1\n3 2 1 4\n"
HAND_SUMMARY = "ml-1m: 5 users, 6 items, 29 interactions (mean length 5.8; dropped 1 items, 1 users) in "

ML1M_RATINGS = ("movielens-1m", "reconstructed", "ratings.dat")
ML1M_RATINGS_SHA256 = "c2dbeafd8fdc84495c74e8aa6487244413fb49858d46e3912152c228dad53caa"  # PROVENANCE.md
ML1M_SEQUENCES = ("movielens-1m", "derived", "ml-1m_sequences.txt")


def _lines(path: Path) -> list[list[int]]:
    return [[int(t) for t in line.split()] for line in Path(path).read_text().splitlines()]


def _assert_hand_result(out_dir: Path, vocab: Path) -> None:
    assert (out_dir / "test.txt").read_text() == HAND_TEST
    assert (out_dir / "valid.txt").read_text() == HAND_VALID
    assert (out_dir / "train.txt").read_text() == HAND_TRAIN
    assert (out_dir / "users.txt").read_text() == HAND_USERS
    assert vocab.read_text() == HAND_VOCAB


def _error_line(result) -> str:
    """The whole output must be one 'Error: ...' line."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.output.endswith("\n") and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return result.output.rstrip("\n")


# ---------------------------------------------------------------- the real ML-1M file
@pytest.fixture(scope="module")
def ml1m_run(tmp_path_factory):
    """Run `seqrec preprocess ml-1m --input <reconstructed ratings.dat>` once, from an empty folder."""
    ratings = shared_file(*ML1M_RATINGS)
    sequences = shared_file(*ML1M_SEQUENCES)
    folder = tmp_path_factory.mktemp("ml1m")
    from typer.testing import CliRunner

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        result = invoke(CliRunner(), "preprocess", "ml-1m", "--input", ratings)
    return folder, result, ratings, sequences


def test_real_ml1m_counts_and_files(ml1m_run):
    folder, result, ratings, _ = ml1m_run
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(
        "ml-1m: 6,040 users, 3,416 items, 999,611 interactions (mean length 165.5; dropped 290 items, 0 users) in "
    ), lines[0]
    assert lines[1:] == [
        "wrote data/ml-1m/{train,valid,test}.txt, data/ml-1m/users.txt, data/ml-1m/manifest.json, vocab/ml-1m.txt",
        "next: seqrec train bert4rec",
    ]
    assert listing(folder) == [
        "data/ml-1m/manifest.json",
        "data/ml-1m/test.txt",
        "data/ml-1m/train.txt",
        "data/ml-1m/users.txt",
        "data/ml-1m/valid.txt",
        "vocab/ml-1m.txt",
    ]
    out = folder / "data" / "ml-1m"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == formats.MANIFEST_VERSION
    assert manifest["dataset"] == "ml-1m"
    assert manifest["eval_target"] == "last"
    assert manifest["n_items"] == 3416
    assert manifest["vocab_path"] == "../../vocab/ml-1m.txt"
    assert manifest["has_users"] is True
    n_users, n_events = 6040, 999_611
    expected_splits = {"train": n_events - 2 * n_users, "valid": n_events - n_users, "test": n_events}
    for name, events in expected_splits.items():
        info = manifest["splits"][name]
        assert info["path"] == f"{name}.txt"
        assert info["sequences"] == n_users
        assert info["events"] == events
        assert sum(len(line.split()) for line in (out / info["path"]).read_text().splitlines()) == events
    assert manifest["counts"]["users"] == n_users
    assert manifest["counts"]["items"] == 3416
    assert manifest["counts"]["interactions"] == n_events
    assert manifest["counts"]["raw_interactions"] == 1_000_209
    assert manifest["counts"]["raw_items"] == 3706
    assert manifest["inputs"][0]["sha256"] == ML1M_RATINGS_SHA256
    assert manifest["inputs"][0]["bytes"] == ratings.stat().st_size
    assert len((folder / "vocab" / "ml-1m.txt").read_text().splitlines()) == 3416
    # the library reads it back: checksums, vocabulary and the leakage guard all pass
    data = formats.load_processed(out)
    assert data.n_items == 3416 and len(data.split("test")) == n_users


def test_real_ml1m_order_matches_the_chronological_sequences(ml1m_run):
    """Every user's test line, mapped back to MovieIDs, is that user's real chronological sequence
    (from an independent source) minus the movies with fewer than 5 ratings."""
    folder, result, _, sequences = ml1m_run
    assert result.exit_code == 0, result.output
    reference: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    for line in sequences.read_text().splitlines():
        user, *movies = line.split()
        reference[user] = movies
        counts.update(movies)
    assert len(reference) == 6040 and len(counts) == 3706
    vocab = (folder / "vocab" / "ml-1m.txt").read_text().splitlines()
    # the vocabulary: exactly the movies with >= 5 ratings, ascending MovieID
    assert vocab == sorted((m for m, c in counts.items() if c >= 5), key=int)
    assert len(vocab) == 3416
    keep = set(vocab)
    users = (folder / "data" / "ml-1m" / "users.txt").read_text().splitlines()
    assert users == sorted(reference, key=int)
    test = (folder / "data" / "ml-1m" / "test.txt").read_text().splitlines()
    assert len(test) == len(users)
    mismatched = []
    for user, line in zip(users, test):
        ours = [vocab[int(i) - 1] for i in line.split()]
        theirs = [m for m in reference[user] if m in keep]
        if ours != theirs:
            mismatched.append(user)
    assert mismatched == []


def test_real_ml1m_no_leakage(ml1m_run):
    folder, result, _, _ = ml1m_run
    assert result.exit_code == 0, result.output
    out = folder / "data" / "ml-1m"
    train, valid, test = (_lines(out / f"{s}.txt") for s in ("train", "valid", "test"))
    assert len(train) == len(valid) == len(test) == 6040
    for i, (tr, va, te) in enumerate(zip(train, valid, test)):
        assert len(te) >= 5, i
        assert len(tr) == len(te) - 2 and len(va) == len(te) - 1, i
        assert tr == te[:-2], i  # the validation and test targets are outside every train input
        assert va == te[:-1], i  # validation input + target never reach the test target
        assert min(te) >= 1 and max(te) <= 3416, i


# ---------------------------------------------------------------- default paths
def test_default_input_missing_then_present(runner, workdir):
    result = invoke(runner, "preprocess", "ml-1m")
    line = _error_line(result)
    assert "data/raw/ml-1m/ml-1m/ratings.dat" in line
    assert "run: seqrec download ml-1m" in line
    assert listing(workdir) == []

    default = workdir / "data" / "raw" / "ml-1m" / "ml-1m" / "ratings.dat"
    default.parent.mkdir(parents=True)
    default.write_text(HAND)
    result = invoke(runner, "preprocess", "ml-1m")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(HAND_SUMMARY) and re.fullmatch(r"\d+\.\ds", lines[0][len(HAND_SUMMARY) :]), lines[0]
    assert lines[1:] == [
        "wrote data/ml-1m/{train,valid,test}.txt, data/ml-1m/users.txt, data/ml-1m/manifest.json, vocab/ml-1m.txt",
        "next: seqrec train bert4rec",
    ]
    _assert_hand_result(workdir / "data" / "ml-1m", workdir / "vocab" / "ml-1m.txt")
    assert listing(workdir) == [
        "data/ml-1m/manifest.json",
        "data/ml-1m/test.txt",
        "data/ml-1m/train.txt",
        "data/ml-1m/users.txt",
        "data/ml-1m/valid.txt",
        "data/raw/ml-1m/ml-1m/ratings.dat",
        "vocab/ml-1m.txt",
    ]


def test_explicit_input_missing_names_no_download(runner, workdir):
    result = invoke(runner, "preprocess", "ml-1m", "--input", "nowhere/ratings.dat")
    line = _error_line(result)
    assert line == "Error: ratings file not found: nowhere/ratings.dat"
    assert listing(workdir) == []


# ---------------------------------------------------------------- a hand-computed case
def test_hand_built_ratings(runner, workdir):
    (workdir / "ratings.dat").write_text(HAND)
    result = invoke(runner, "preprocess", "ml-1m", "--input", "ratings.dat", "--out-dir", "out", "--vocab", "v/hand.txt")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(HAND_SUMMARY), lines[0]
    assert lines[1:] == [
        "wrote out/{train,valid,test}.txt, out/users.txt, out/manifest.json, v/hand.txt",
        "next: seqrec train bert4rec --train-dir out",
    ]
    _assert_hand_result(workdir / "out", workdir / "v" / "hand.txt")
    manifest = json.loads((workdir / "out" / "manifest.json").read_text())
    assert manifest["n_items"] == 6
    assert manifest["vocab_path"] == "../v/hand.txt"
    assert {k: (v["sequences"], v["events"]) for k, v in manifest["splits"].items()} == {
        "train": (5, 19),
        "valid": (5, 24),
        "test": (5, 29),
    }
    counts = manifest["counts"]
    assert (counts["raw_interactions"], counts["raw_users"], counts["raw_items"]) == (37, 6, 7)
    assert (counts["dropped_items"], counts["dropped_users"]) == (1, 1)
    assert manifest["params"]["min_item_count"] == 5 and manifest["params"]["min_user_count"] == 5
    assert listing(workdir) == [
        "out/manifest.json",
        "out/test.txt",
        "out/train.txt",
        "out/users.txt",
        "out/valid.txt",
        "ratings.dat",
        "v/hand.txt",
    ]


def test_min_item_count_option(runner, workdir):
    """--min-item-count 6 also drops 40, 77 and 200 (5 ratings each): every user, 9 included, keeps
    exactly 10, 20 and 30, which --min-user-count 3 accepts."""
    (workdir / "ratings.dat").write_text(HAND)
    result = invoke(runner, "preprocess", "ml-1m", "--input", "ratings.dat", "--min-item-count", "6", "--min-user-count", "3")
    assert result.exit_code == 0, result.output
    assert (workdir / "vocab" / "ml-1m.txt").read_text() == "10\n20\n30\n"
    # users ascending; 9 now keeps 10 20 30 (t=30, 40, 50); ties keep file order
    assert (workdir / "data" / "ml-1m" / "users.txt").read_text() == "3\n7\n9\n12\n25\n100\n"
    assert (workdir / "data" / "ml-1m" / "test.txt").read_text() == "1 2 3\n2 1 3\n1 2 3\n1 2 3\n1 3 2\n3 2 1\n"


def test_crlf_and_bom_give_the_same_result(runner, workdir):
    (workdir / "ratings.dat").write_bytes(b"\xef\xbb\xbf" + HAND.replace("\n", "\r\n").encode("ascii"))
    result = invoke(runner, "preprocess", "ml-1m", "--input", "ratings.dat", "--out-dir", "out", "--vocab", "v.txt")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(HAND_SUMMARY)
    _assert_hand_result(workdir / "out", workdir / "v.txt")


def test_no_trailing_newline(runner, workdir):
    (workdir / "ratings.dat").write_text(HAND.rstrip("\n"))
    result = invoke(runner, "preprocess", "ml-1m", "--input", "ratings.dat", "--out-dir", "out", "--vocab", "v.txt")
    assert result.exit_code == 0, result.output
    _assert_hand_result(workdir / "out", workdir / "v.txt")


# ---------------------------------------------------------------- bad input
def _with_line(lineno: int, bad: str) -> str:
    """HAND with its line ``lineno`` (1-based) replaced by ``bad``."""
    lines = list(HAND_LINES)
    lines[lineno - 1] = bad
    return "".join(line + "\n" for line in lines)


BAD_CASES = {
    "three fields": (7, "7::30::3", "expected 4 fields"),
    "five fields": (12, "7::40::3::95::1", "expected 4 fields"),
    "single colons": (3, "100:77:2:6", "expected 4 fields"),
    "blank line": (20, "", "expected 4 fields"),
    "user not an integer": (14, "u12::40::4::1000", "UserID is not an integer"),
    "movie not an integer": (1, "100::abc::4::5", "MovieID is not an integer"),
    "rating not an integer": (30, "3::20::five::200", "Rating is not an integer"),
    "timestamp not an integer": (37, "25::40::4::tomorrow", "Timestamp is not an integer"),
    "timestamp is a float": (2, "100::30::3::1.5", "Timestamp is not an integer"),
    "timestamp empty": (9, "7::200::5::", "Timestamp is not an integer"),
    "negative timestamp": (16, "12::200::1::-1200", "bad timestamp"),
}


@pytest.mark.parametrize("case", list(BAD_CASES), ids=list(BAD_CASES))
def test_bad_line_is_reported_with_its_number(runner, workdir, case):
    lineno, bad, problem = BAD_CASES[case]
    (workdir / "bad.dat").write_text(_with_line(lineno, bad))
    result = invoke(runner, "preprocess", "ml-1m", "--input", "bad.dat")
    line = _error_line(result)
    assert line.startswith(f"Error: bad.dat:{lineno}: "), line
    assert problem in line, line
    assert listing(workdir) == ["bad.dat"]


@pytest.mark.parametrize("movie", ["200.0", "2e2"])
def test_float_text_movie_id_is_a_bad_line(runner, workdir, movie):
    (workdir / "bad.dat").write_text(_with_line(25, f"3::{movie}::5::600"))
    result = invoke(runner, "preprocess", "ml-1m", "--input", "bad.dat")
    line = _error_line(result)
    assert line.startswith("Error: bad.dat:25: MovieID is not an integer"), line
    assert listing(workdir) == ["bad.dat"]


def test_timestamp_overflow_is_a_bad_line(runner, workdir):
    (workdir / "bad.dat").write_text(_with_line(5, "100::10::5::99999999999999999999"))
    result = invoke(runner, "preprocess", "ml-1m", "--input", "bad.dat")
    line = _error_line(result)
    assert line.startswith("Error: bad.dat:5: "), line
    assert listing(workdir) == ["bad.dat"]


def test_five_fields_on_every_line_is_rejected(runner, workdir):
    (workdir / "bad.dat").write_text("".join(f"{line}::0\n" for line in HAND_LINES))
    result = invoke(runner, "preprocess", "ml-1m", "--input", "bad.dat")
    line = _error_line(result)
    assert line.startswith("Error: bad.dat:1: "), line
    assert listing(workdir) == ["bad.dat"]


@pytest.mark.parametrize("content", [b"", b"\n\n", b"\xef\xbb\xbf", b"  \r\n"], ids=["empty", "newlines", "bom", "blank"])
def test_empty_file(runner, workdir, content):
    (workdir / "empty.dat").write_bytes(content)
    result = invoke(runner, "preprocess", "ml-1m", "--input", "empty.dat")
    line = _error_line(result)
    assert line.startswith("Error: empty.dat: empty"), line
    assert listing(workdir) == ["empty.dat"]


def test_no_user_left(runner, workdir):
    (workdir / "few.dat").write_text("1::10::3::1\n1::20::3::2\n2::10::3::3\n")
    result = invoke(runner, "preprocess", "ml-1m", "--input", "few.dat")
    line = _error_line(result)
    assert line.startswith("Error: few.dat: "), line
    assert listing(workdir) == ["few.dat"]


# ---------------------------------------------------------------- atomicity
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in listing(folder)}


def test_failed_rerun_leaves_earlier_outputs_intact(runner, workdir):
    (workdir / "good.dat").write_text(HAND)
    args = ("preprocess", "ml-1m", "--out-dir", "out", "--vocab", "vocab/x.txt")
    assert invoke(runner, *args, "--input", "good.dat").exit_code == 0
    before = _snapshot(workdir)
    (workdir / "bad.dat").write_text(_with_line(30, "3::20::5::200::oops"))
    result = invoke(runner, *args, "--input", "bad.dat")
    assert _error_line(result).startswith("Error: bad.dat:30: ")
    after = _snapshot(workdir)
    del after["bad.dat"]
    assert after == before
    assert [p for p in workdir.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")] == []
    formats.load_processed(workdir / "out")  # still complete and consistent


def test_failure_while_writing_leaves_no_manifest_and_no_temp_files(runner, workdir):
    """A write that fails (users.txt is in the way as a folder) changes nothing: the files are
    committed as a unit, so the earlier manifest and splits stay as they were, no temporary file
    is left, and the folder (whose users.txt the user broke) is still refused."""
    (workdir / "good.dat").write_text(HAND)
    args = ("preprocess", "ml-1m", "--input", "good.dat", "--out-dir", "out", "--vocab", "v.txt")
    assert invoke(runner, *args).exit_code == 0
    manifest_before = (workdir / "out" / "manifest.json").read_bytes()
    (workdir / "out" / "users.txt").unlink()
    (workdir / "out" / "users.txt" / "blocker").mkdir(parents=True)
    result = invoke(runner, *args)
    line = _error_line(result)
    assert line == f"Error: {Path('out/users.txt')}: a folder is in the way of this file", line
    assert (workdir / "out" / "manifest.json").read_bytes() == manifest_before
    assert [p for p in workdir.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".")] == []
    with pytest.raises(MissingInputError):
        formats.load_processed(workdir / "out")


# ---------------------------------------------------------------- the bundled sample
SAMPLE_FILES = ["train.txt", "valid.txt", "test.txt", "users.txt", "raw/ratings.dat"]


def test_sample_regenerates_byte_identical(runner, workdir):
    result = invoke(runner, "preprocess", "sample", "--out-dir", "data/sample", "--vocab", "vocab/sample.txt")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        "sample: 600 users, 240 items, 21,814 interactions (raw data/sample/raw/ratings.dat, 21,854 lines)"
    )
    for name in SAMPLE_FILES:
        assert (workdir / "data" / "sample" / name).read_bytes() == (REPO / "data" / "sample" / name).read_bytes(), name
    assert (workdir / "vocab" / "sample.txt").read_bytes() == (REPO / "vocab" / "sample.txt").read_bytes()
    ours = json.loads((workdir / "data" / "sample" / "manifest.json").read_text())
    committed = json.loads((REPO / "data" / "sample" / "manifest.json").read_text())
    ours.pop("created")
    committed.pop("created")
    assert ours == committed
    formats.load_processed(REPO / "data" / "sample")  # the committed copy is consistent with itself


def test_sample_other_paths(runner, workdir):
    result = invoke(runner, "preprocess", "sample", "--out-dir", "elsewhere/s", "--vocab", "v/s.txt")
    assert result.exit_code == 0, result.output
    for name in ("train.txt", "valid.txt", "test.txt"):
        assert (workdir / "elsewhere" / "s" / name).read_bytes() == (REPO / "data" / "sample" / name).read_bytes()
    assert (workdir / "v" / "s.txt").read_bytes() == (REPO / "vocab" / "sample.txt").read_bytes()
    data = formats.load_processed(workdir / "elsewhere" / "s")
    assert data.manifest.vocab_path == "../../v/s.txt"
    assert data.vocab_file.resolve() == (workdir / "v" / "s.txt").resolve()


def test_sample_has_sequential_structure():
    """A first-order 'most frequent successor' predictor from train.txt beats popularity by far."""
    train = _lines(REPO / "data" / "sample" / "train.txt")
    test = _lines(REPO / "data" / "sample" / "test.txt")
    n_items = len((REPO / "vocab" / "sample.txt").read_text().splitlines())
    transitions = np.zeros((n_items + 1, n_items + 1))
    popularity = np.zeros(n_items + 1)
    for seq in train:
        np.add.at(transitions, (seq[:-1], seq[1:]), 1)
        np.add.at(popularity, seq, 1)
    popularity[0] = -np.inf  # padding is never a candidate
    pop_top = np.argsort(-popularity, kind="stable")[:10]
    markov_hits = pop_hits = 0
    for seq in test:
        last_input, target = seq[-2], seq[-1]
        score = transitions[last_input] * (popularity.max() + 1) + popularity  # successors first, then popular
        top = np.argsort(-score, kind="stable")[:10]
        markov_hits += int(target in top)
        pop_hits += int(target in pop_top)
    markov_hr10, pop_hr10 = markov_hits / len(test), pop_hits / len(test)
    assert pop_hr10 > 0.05  # the popularity baseline is not degenerate
    assert markov_hr10 > 2 * pop_hr10, (markov_hr10, pop_hr10)
    assert markov_hr10 > 0.5, markov_hr10
