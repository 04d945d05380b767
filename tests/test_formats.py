"""The on-disk contract (seqrec_cli.formats) and crash-safe writing (seqrec_cli.fileio), on real
files in tmp_path: the parts the CLI cannot reach directly."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import listing

from seqrec_cli import formats
from seqrec_cli.errors import BadInputError, MismatchError, MissingInputError
from seqrec_cli.fileio import atomic_dir, atomic_path, replace_path, sha256_file
from seqrec_cli.formats import check_no_leakage, load_processed, read_sequences, read_vocab, save_processed, write_sequences
from seqrec_cli.sequences import Sequences

# ---------------------------------------------------------------- read_sequences / write_sequences
SEQS = [[1, 2, 3], [4], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1], [7, 7]]


def test_sequences_round_trip(tmp_path):
    path = tmp_path / "s.txt"
    write_sequences(path, SEQS)
    assert path.read_bytes() == b"1 2 3\n4\n10 9 8 7 6 5 4 3 2 1\n7 7\n"
    seqs = read_sequences(path, n_items=10)
    assert seqs.to_lists() == SEQS
    assert seqs.lengths.tolist() == [3, 1, 10, 2]
    assert seqs.n_events == 16 and len(seqs) == 4
    assert seqs[2].tolist() == SEQS[2]
    # the Sequences object itself writes the same bytes
    write_sequences(tmp_path / "t.txt", Sequences.from_lists(SEQS))
    assert (tmp_path / "t.txt").read_bytes() == path.read_bytes()
    assert listing(tmp_path) == ["s.txt", "t.txt"]  # no temp files left


def test_sequences_crlf_bom_tabs_and_no_final_newline(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"\xef\xbb\xbf1 2 3\r\n4\r\n10\t9  8 7 6 5 4 3 2 1\r\n7 7")
    assert read_sequences(path, n_items=10).to_lists() == SEQS


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        (b"1 2\n\n3\n", 2, "empty line"),
        (b"1 2\n   \n3\n", 2, "empty line"),
        (b"\n4\n", 1, "empty line"),
        (b"1 2\n3 x 4\n", 2, "not an item index: 'x'"),
        (b"1 2\n3 4\n5 4.0\n", 3, "not an item index: '4.0'"),
        (b"1 2\n3 \xe94\n", 2, "not valid UTF-8 (byte 0xe9 in column 3)"),
        (b"1 2\n3 4\n5 0\n", 3, "item index 0 outside 1..10"),
        (b"0 2\n3 4\n", 1, "item index 0 outside 1..10"),
        (b"1 2\n3 4\n5 6\n7 11 1\n", 4, "item index 11 outside 1..10"),
        (b"1 2\n3 -4\n", 2, "not an item index: '-4'"),
        (b"\xef\xbb\xbf1 2\r\n3 12\r\n", 2, "item index 12 outside 1..10"),
    ],
    ids=["blank", "spaces-only", "first-blank", "letter", "float", "latin1", "zero", "zero-first", "too-big", "negative", "crlf-bom-too-big"],
)
def test_sequences_bad_line(tmp_path, content, line, problem):
    path = tmp_path / "s.txt"
    path.write_bytes(content)
    with pytest.raises(BadInputError) as exc:
        read_sequences(path, n_items=10)
    assert exc.value.line == line
    assert str(exc.value).startswith(f"{path}:{line}: ")
    assert problem in str(exc.value)


@pytest.mark.parametrize("tail", [b"\n", b"\n\n", b"\n   \n", b"\r\r", b"\r\n\t\r\n"])
def test_sequences_trailing_blank_lines_are_ignored(tmp_path, tail):
    """The one policy of the text reader: blank lines at the end of a file are ignored."""
    path = tmp_path / "s.txt"
    path.write_bytes(b"1 2\n3" + tail)
    assert read_sequences(path, n_items=10).to_lists() == [[1, 2], [3]]
    path.write_bytes(tail)
    with pytest.raises(BadInputError, match="empty file"):
        read_sequences(path)


def test_sequences_without_n_items_still_refuse_zero(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("5 100000\n1 0\n")
    with pytest.raises(BadInputError) as exc:
        read_sequences(path)
    assert exc.value.line == 2
    path.write_text("5 100000\n")
    assert read_sequences(path).to_lists() == [[5, 100000]]


def test_sequences_empty_and_missing(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"")
    with pytest.raises(BadInputError, match="empty file"):
        read_sequences(path)
    with pytest.raises(MissingInputError) as exc:
        read_sequences(tmp_path / "ml-1m" / "train.txt")
    assert "run: seqrec preprocess ml-1m" in str(exc.value)


def test_sequences_huge_index_names_its_line(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1 2\n3 99999999999999999999\n")
    with pytest.raises(BadInputError) as exc:
        read_sequences(path, n_items=10)
    assert exc.value.line == 2


def test_sequences_signed_token_is_refused(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1 2\n3 +2\n")
    with pytest.raises(BadInputError) as exc:
        read_sequences(path, n_items=10)
    assert exc.value.line == 2


def test_sequences_lone_cr_does_not_merge_lines(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"1 2\r3 4\r")
    try:
        seqs = read_sequences(path, n_items=10).to_lists()
    except BadInputError:
        return  # refusing the file is fine too
    assert seqs == [[1, 2], [3, 4]]


# ---------------------------------------------------------------- vocabulary
def test_vocab_round_trip_and_bom(tmp_path):
    path = tmp_path / "v.txt"
    formats.write_vocab(path, ["10", "200", "abc"])
    assert path.read_bytes() == b"10\n200\nabc\n"
    assert read_vocab(path) == ["10", "200", "abc"]
    path.write_bytes(b"\xef\xbb\xbf10\r\n200\r\n")
    assert read_vocab(path) == ["10", "200"]
    path.write_bytes(b"10\r200\r\r\n")  # lone CR line ends, trailing blank lines ignored
    assert read_vocab(path) == ["10", "200"]


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("10\n20\n10\n", None, "duplicate"),
        ("10\n\n20\n", 2, "blank line"),
        ("10\n\n\n20\n", 2, "blank line"),
        ("10\n 20\n", 2, "whitespace"),
        ("10\n20 \n", 2, "whitespace"),
        ("", None, "empty vocabulary"),
    ],
    ids=["duplicate", "blank", "two-blank", "leading-space", "trailing-space", "empty"],
)
def test_vocab_bad(tmp_path, content, line, problem):
    path = tmp_path / "v.txt"
    path.write_text(content)
    with pytest.raises(BadInputError) as exc:
        read_vocab(path)
    assert exc.value.line == line
    assert problem in str(exc.value)
    assert str(exc.value).startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_vocab_missing(tmp_path):
    with pytest.raises(MissingInputError, match="vocabulary not found"):
        read_vocab(tmp_path / "nope.txt")


# ---------------------------------------------------------------- processed folders
TEST = [[1, 2, 3, 4, 5], [2, 3, 4], [5, 4, 3, 2, 1, 6]]
VALID = [s[:-1] for s in TEST]
TRAIN = [s[:-2] for s in TEST]


def _splits(train=TRAIN, valid=VALID, test=TEST) -> dict[str, Sequences]:
    out = {"train": Sequences.from_lists(train), "test": Sequences.from_lists(test)}
    if valid is not None:
        out["valid"] = Sequences.from_lists(valid)
    return out


def _save(tmp_path: Path, name: str = "ml-1m", **kw) -> Path:
    vocab = tmp_path / "vocab" / f"{name}.txt"
    formats.write_vocab(vocab, ["11", "22", "33", "44", "55", "66"])
    folder = tmp_path / "data" / name
    save_processed(
        folder,
        dataset=name,
        eval_target=kw.pop("eval_target", "last"),
        vocab_file=vocab,
        splits=kw.pop("splits", None) or _splits(),
        users=["u1", "u2", "u3"],
        params={"p": 1},
        counts={"users": 3},
    )
    return folder


def test_processed_round_trip(tmp_path):
    folder = _save(tmp_path)
    assert listing(tmp_path) == [
        "data/ml-1m/manifest.json",
        "data/ml-1m/test.txt",
        "data/ml-1m/train.txt",
        "data/ml-1m/users.txt",
        "data/ml-1m/valid.txt",
        "vocab/ml-1m.txt",
    ]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == formats.MANIFEST_VERSION
    assert manifest["vocab_path"] == "../../vocab/ml-1m.txt"
    assert manifest["vocab_sha256"] == sha256_file(tmp_path / "vocab" / "ml-1m.txt")
    assert manifest["n_items"] == 6
    assert manifest["splits"]["train"] == {
        "path": "train.txt",
        "sha256": sha256_file(folder / "train.txt"),
        "sequences": 3,
        "events": 8,
    }
    assert (folder / "users.txt").read_text() == "u1\nu2\nu3\n"
    data = load_processed(folder)
    assert data.split("train").to_lists() == TRAIN
    assert data.split("valid").to_lists() == VALID
    assert data.split("test").to_lists() == TEST
    assert data.users == ["u1", "u2", "u3"]
    assert data.n_items == 6
    assert data.manifest.params == {"p": 1} and data.manifest.counts == {"users": 3}
    assert data.vocab_file.resolve() == (tmp_path / "vocab" / "ml-1m.txt").resolve()


def test_tampered_split_is_refused(tmp_path):
    folder = _save(tmp_path)
    with open(folder / "train.txt", "a") as fh:
        fh.write("1 2\n")
    with pytest.raises(MismatchError, match="changed") as exc:
        load_processed(folder)
    assert "train.txt" in str(exc.value)


def test_tampered_vocab_is_refused(tmp_path):
    folder = _save(tmp_path)
    with open(tmp_path / "vocab" / "ml-1m.txt", "a") as fh:
        fh.write("77\n")
    with pytest.raises(MismatchError, match="changed"):
        load_processed(folder)


def test_other_format_version_is_refused(tmp_path):
    folder = _save(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = formats.MANIFEST_VERSION + 1
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(MismatchError, match=f"format version {formats.MANIFEST_VERSION + 1}"):
        load_processed(folder)


def test_broken_manifest_json(tmp_path):
    folder = _save(tmp_path)
    (folder / "manifest.json").write_text('{\n  "format_version": 1,\n  oops\n}\n')
    with pytest.raises(BadInputError) as exc:
        load_processed(folder)
    assert exc.value.line == 3


@pytest.mark.parametrize(("name", "hint"), [("ml-1m", "seqrec preprocess ml-1m"), ("sample", "seqrec preprocess sample")])
def test_missing_manifest_names_the_command(tmp_path, name, hint):
    folder = _save(tmp_path, name=name)
    (folder / "manifest.json").unlink()
    with pytest.raises(MissingInputError) as exc:
        load_processed(folder)
    assert str(exc.value) == f"manifest not found: {folder / 'manifest.json'} (run: {hint})"


def test_missing_folder_names_the_command(tmp_path):
    with pytest.raises(MissingInputError, match=r"\(run: seqrec preprocess ml-1m\)"):
        load_processed(tmp_path / "data" / "ml-1m")
    with pytest.raises(MissingInputError) as exc:
        load_processed(tmp_path / "data" / "mine")
    assert "run:" not in str(exc.value)


# ---------------------------------------------------------------- the leakage guard
LEAKY = {
    "train-is-test": (dict(train=TEST), "leakage"),
    "train-has-valid-target": (dict(train=VALID), "leakage"),
    "valid-too-short": (dict(valid=TRAIN), "leakage"),
    "valid-is-test": (dict(valid=TEST), "leakage"),
    "train-swaps-in-test-target": (dict(train=[[1, 2, 5], [2], [5, 4, 3, 6]]), "prefix"),
    "valid-not-prefix": (dict(valid=[[1, 2, 3, 4], [2, 3], [5, 4, 3, 2, 6]]), "prefix"),
    "train-reordered": (dict(train=[[2, 1, 3], [2], [5, 4, 3, 2]]), "prefix"),
    "no-valid-train-is-test": (dict(train=TEST, valid=None), "leakage"),
    "fewer-train-lines": (dict(train=TRAIN[:2]), "one per user"),
}


@pytest.mark.parametrize("case", list(LEAKY), ids=list(LEAKY))
def test_leaky_split_is_refused_by_save(tmp_path, case):
    kw, word = LEAKY[case]
    vocab = tmp_path / "v.txt"
    formats.write_vocab(vocab, [str(i) for i in range(1, 7)])
    with pytest.raises(MismatchError, match=word):
        save_processed(tmp_path / "out", dataset="x", eval_target="last", vocab_file=vocab, splits=_splits(**kw))
    assert not (tmp_path / "out").exists()  # refused before anything is written


@pytest.mark.parametrize(
    "kw",
    [dict(), dict(valid=None), dict(valid=None, train=VALID), dict(train=[[1], [2], [5, 4]])],
    ids=["standard", "no-valid", "no-valid-test-minus-last", "shorter-prefix"],
)
def test_correct_split_passes(kw):
    check_no_leakage(_splits(**kw), "last", "here")


def test_session_data_is_not_leave_one_out():
    """eval_target 'all' (session-based: train and test are different sessions) is not checked."""
    check_no_leakage(_splits(train=[[1, 2], [3, 4, 5]], valid=None), "all", "here")


def test_leaky_folder_is_refused_by_load(tmp_path):
    """Leaky train.txt with a matching checksum: only the leakage guard can catch it."""
    folder = _save(tmp_path)
    write_sequences(folder / "train.txt", TEST)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["splits"]["train"]["sha256"] = sha256_file(folder / "train.txt")
    manifest["splits"]["train"]["events"] = sum(map(len, TEST))
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with pytest.raises(MismatchError, match="leakage") as exc:
        load_processed(folder)
    assert "line 1" in str(exc.value) and "train" in str(exc.value)


def test_leaky_valid_is_refused_by_load(tmp_path):
    folder = _save(tmp_path)
    write_sequences(folder / "valid.txt", [[1, 2, 3, 5], [2, 3], [5, 4, 3, 2, 1]])
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["splits"]["valid"]["sha256"] = sha256_file(folder / "valid.txt")
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    with pytest.raises(MismatchError, match="prefix") as exc:
        load_processed(folder)
    assert "line 1" in str(exc.value) and "valid" in str(exc.value)


# ---------------------------------------------------------------- crash-safe writing
class Boom(Exception):
    pass


def test_atomic_path_failure_leaves_nothing(tmp_path):
    dest = tmp_path / "sub" / "out.txt"
    with pytest.raises(Boom):
        with atomic_path(dest) as tmp:
            assert tmp.parent == dest.parent and tmp.name.startswith(".out.txt.") and tmp.name.endswith(".tmp")
            tmp.write_text("half")
            assert not dest.exists()
            raise Boom
    assert listing(tmp_path) == []


def test_atomic_path_failure_keeps_the_old_file(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    for exc_type in (Boom, KeyboardInterrupt):
        with pytest.raises(exc_type):
            with atomic_path(dest) as tmp:
                tmp.write_text("new but broken")
                raise exc_type
        assert dest.read_text() == "old"
        assert listing(tmp_path) == ["out.txt"]


def test_atomic_path_success_replaces(tmp_path):
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with atomic_path(dest, suffix=".part") as tmp:
        assert tmp.name.endswith(".part.tmp")
        tmp.write_text("new")
        assert dest.read_text() == "old"  # not visible until the block ends
    assert dest.read_text() == "new"
    assert listing(tmp_path) == ["out.txt"]


def test_atomic_path_gives_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o644


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    dest = tmp_path / "folder"
    with pytest.raises(Boom):
        with atomic_dir(dest) as tmp:
            assert tmp.is_dir() and tmp.parent == tmp_path and tmp.name.startswith(".folder.")
            (tmp / "a.txt").write_text("half")
            raise Boom
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_failure_keeps_the_old_folder(tmp_path):
    dest = tmp_path / "folder"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(Boom):
        with atomic_dir(dest) as tmp:
            (tmp / "new.txt").write_text("new")
            raise Boom
    assert listing(tmp_path) == ["folder/old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


def test_atomic_dir_success_replaces(tmp_path):
    dest = tmp_path / "folder"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with atomic_dir(dest) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (dest / "old.txt").exists() and not (dest / "new.txt").exists()
    assert listing(tmp_path) == ["folder/new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]  # no .folder.old or temp left
    assert (dest / "new.txt").read_text() == "new"
    with atomic_dir(tmp_path / "fresh") as tmp:
        (tmp / "x").write_text("x")
    assert listing(tmp_path) == ["folder/new.txt", "fresh/x"]


def test_replace_path_swaps_folders_files_and_never_follows_links(tmp_path):
    """One helper puts checkpoints and extracted archives in place: it must replace a whole folder
    (no leftovers of the old one), a file by a folder, and a planted link without following it."""
    dest = tmp_path / "out"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub" / "old.txt").write_text("old")
    with atomic_dir(dest) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or .old folder left

    plain = tmp_path / "plain"
    plain.write_text("a file")
    src = tmp_path / "src"
    src.mkdir()
    (src / "x").write_text("x")
    replace_path(src, plain)
    assert (plain / "x").read_text() == "x"

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(victim, target_is_directory=True)
    src2 = tmp_path / "src2"
    src2.mkdir()
    replace_path(src2, link)
    assert link.is_dir() and not link.is_symlink()
    assert (victim / "keep.txt").read_text() == "keep"  # the link's target was left alone
