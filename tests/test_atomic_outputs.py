"""Issue 11, kind 5: multi-file outputs are committed as a unit, and every step verifies its inputs.

A folder's files (and the vocabulary written with it) are staged under temporary names and put in
place together, the manifest last; a run killed while staging leaves the earlier folder whole, one
killed during the renames leaves a journal that readers refuse and the next writer finishes. Every
step checks what it reads against the manifest of the step before it (checksums of tables, session
files, splits, users.txt; SOURCE.json of raw files). Real files, real processes, real kills.

Case 20 (../shared/cases/20-session-filter-kill) is the first test, with the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import invoke, listing, shared_file
from helpers import env, error_line, ratings_text, seqrec_cmd, snapshot, wait_for

from seqrec_cli import formats
from seqrec_cli.fileio import JOURNAL, recover

TABLES = ("train_full.tsv", "test.tsv", "train_tr.tsv", "train_valid.tsv")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.name.endswith(".tmp") or p.name == JOURNAL)


# ---------------------------------------------------------------- case 20: session-filter killed while it rewrites its folder
def test_case20_killed_session_filter_leaves_the_earlier_run_whole(runner, workdir):
    clicks = shared_file("rsc15-yoochoose", "reconstructed_raw", "yoochoose-clicks-sample.dat")
    result = invoke(runner, "preprocess", "session-filter", "--input", clicks, "--out-dir", "f")
    assert result.exit_code == 0, result.output
    before = {t: _sha(workdir / "f" / t) for t in TABLES}
    manifest_before = (workdir / "f" / "manifest.json").read_bytes()
    # the same clicks 4 times, session ids shifted: writing its tables takes a while
    with open(clicks) as src, open("big_clicks.dat", "w") as dst:
        lines = src.read().splitlines()
        for k in range(4):
            for line in lines:
                s, rest = line.split(",", 1)
                dst.write(f"{int(s) + k * 100000000},{rest}\n")
    proc = subprocess.Popen(
        seqrec_cmd("preprocess", "session-filter", "--input", "big_clicks.dat", "--out-dir", "f"),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env(),
    )
    try:  # kill it while it writes its second table (test.tsv), as the case does
        hit = wait_for(lambda: sorted((workdir / "f").glob(".test.tsv.*.tmp")), proc=proc, timeout=120)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert hit, "session-filter finished before it could be killed; the test could not be set up"
    assert {t: _sha(workdir / "f" / t) for t in TABLES} == before  # still the whole earlier run
    assert (workdir / "f" / "manifest.json").read_bytes() == manifest_before
    assert _temporaries(workdir / "f")  # what the killed run staged is left ...
    result = invoke(runner, "preprocess", "convert-format", "--in-dir", "f", "--out-dir", "s")
    assert result.exit_code == 0, result.output  # ... and never read
    assert json.loads((workdir / "s" / "manifest.json").read_text())["inputs"][0]["sha256"] == before["train_full.tsv"]
    result = invoke(runner, "preprocess", "session-filter", "--input", clicks, "--out-dir", "f")
    assert result.exit_code == 0, result.output
    assert _temporaries(workdir / "f") == []  # the next run cleans up after the killed one
    assert {t: _sha(workdir / "f" / t) for t in TABLES} == before


# ---------------------------------------------------------------- killed during the commit itself
KILL_IN_COMMIT = """
import os, signal, sys
from pathlib import Path
from seqrec_cli import fileio
from seqrec_cli.datasets.ml1m import preprocess_ml1m

def apply_then_die(moves, removes):  # the commit's renames: the manifest goes, one file moves, then SIGKILL
    moves[-1][1].unlink(missing_ok=True)
    os.replace(*moves[0])
    os.kill(os.getpid(), signal.SIGKILL)

fileio._apply = apply_then_die
preprocess_ml1m(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
"""


def test_run_killed_during_the_commit_is_refused_then_finished(runner, workdir, tmp_path_factory):
    Path("r1.dat").write_text(ratings_text(seed=0))
    Path("r2.dat").write_text(ratings_text(seed=1))
    args = ("preprocess", "ml-1m", "--out-dir", "d", "--vocab", "v.txt")
    assert invoke(runner, *args, "--input", "r2.dat").exit_code == 0
    expected = snapshot(workdir)  # what a whole run on r2.dat writes
    assert invoke(runner, *args, "--input", "r1.dat").exit_code == 0
    script = tmp_path_factory.mktemp("killer") / "kill_in_commit.py"
    script.write_text(KILL_IN_COMMIT)
    done = subprocess.run([sys.executable, str(script), "r2.dat", "d", "v.txt"], env=env(), capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert (workdir / "d" / JOURNAL).is_file() and not (workdir / "d" / "manifest.json").exists()
    # every reader refuses the half-committed folder
    refusal = f"Error: {Path('d')}: an earlier seqrec run was interrupted while writing this folder; run the step that writes it again"
    assert error_line(invoke(runner, "evaluate", "--baseline", "popularity", "--test-dir", "d")) == refusal
    assert error_line(invoke(runner, "preprocess", "text2id", "--train", "d/train.txt", "--test", "d/test.txt")) == (
        f"Error: {Path('d')}: an earlier seqrec run was interrupted while writing this folder "
        "(rerun: seqrec preprocess convert-format)"
    )
    # the next writer finishes the commit first: the folder is then the killed run's whole output
    assert recover(workdir / "d")
    assert _outputs(workdir) == _outputs_of(expected)
    formats.load_processed(workdir / "d")
    assert _temporaries(workdir) == []
    result = invoke(runner, *args, "--input", "r1.dat")  # and a new run goes ahead as usual
    assert result.exit_code == 0, result.output
    assert listing(workdir) == ["d/manifest.json", "d/test.txt", "d/train.txt", "d/users.txt", "d/valid.txt", "r1.dat", "r2.dat", "v.txt"]


def _outputs_of(files: dict[str, bytes]) -> dict[str, object]:
    """Files as written by a run: lock files of killed processes left out, manifests without their time."""
    out: dict[str, object] = {}
    for name, data in files.items():
        if name.endswith(".lock"):
            continue
        if name.endswith("manifest.json"):
            manifest = json.loads(data)
            manifest.pop("created")
            out[name] = manifest
        else:
            out[name] = data
    return out


def _outputs(root: Path) -> dict[str, object]:
    return _outputs_of(snapshot(root))


# ---------------------------------------------------------------- a failing run replaces nothing (vocabulary included)
def _prepare(name: str) -> tuple[tuple[str, ...], tuple[str, ...], Path]:
    """(first run, second run on other input, blocked folder) for each preprocess command."""
    Path("r1.dat").write_text(ratings_text(seed=0))
    Path("r2.dat").write_text(ratings_text(users=14, seed=2))
    Path("a1.txt").write_text("1 2 3\n3 2\n")
    Path("b1.txt").write_text("1 2\n2 3\n")
    Path("a2.txt").write_text("7 8 9\n9 8\n")
    Path("b2.txt").write_text("7 8\n8 9\n")
    Path("c1.dat").write_text("".join(f"{s},2014-04-0{1 + s % 3}T10:00:0{k}.000Z,{1 + (s + k) % 4},0\n" for s in range(40) for k in range(3)))
    Path("c2.dat").write_text("".join(f"{s},2014-04-0{1 + s % 3}T10:00:0{k}.000Z,{1 + (s + k) % 5},0\n" for s in range(50) for k in range(3)))
    if name == "ml-1m":
        base = ("preprocess", "ml-1m", "--out-dir", "d", "--vocab", "v.txt", "--input")
        return (*base, "r1.dat"), (*base, "r2.dat"), Path("d")
    if name == "text2id":
        base = ("preprocess", "text2id", "--out-dir", "d", "--vocab", "v.txt")
        return (*base, "--train", "a1.txt", "--test", "b1.txt"), (*base, "--train", "a2.txt", "--test", "b2.txt"), Path("d")
    if name == "sample":
        base = ("preprocess", "sample", "--out-dir", "d", "--vocab", "v.txt")
        return (*base,), (*base, "--seed", "7"), Path("d")
    base = ("preprocess", "yoochoose", "--out-dir", "d", "--vocab", "v.txt", "--input")
    return (*base, "c1.dat"), (*base, "c2.dat"), Path("d")


@pytest.mark.parametrize("name", ["ml-1m", "text2id", "sample", "yoochoose"])
def test_failing_preprocess_replaces_neither_folder_nor_vocabulary(runner, workdir, name):
    first, second, folder = _prepare(name)
    result = invoke(runner, *first)
    assert result.exit_code == 0, result.output
    (folder / "test.txt").unlink()
    (folder / "test.txt").mkdir()  # something in the way of one file of the unit
    before = snapshot(workdir)
    line = error_line(invoke(runner, *second), alone=False)
    assert line == f"Error: {folder / 'test.txt'}: a folder is in the way of this file"
    after = snapshot(workdir)
    if name == "sample":  # the sample writes its raw ratings first, then processes them
        before.pop("d/raw/ratings.dat"), after.pop("d/raw/ratings.dat")
    if name == "yoochoose":  # its earlier stages are units of their own, committed before text2id failed
        before = {k: v for k, v in before.items() if not k.startswith(("d/filtered/", "d/sessions/"))}
        after = {k: v for k, v in after.items() if not k.startswith(("d/filtered/", "d/sessions/"))}
    assert after == before  # v.txt included
    assert _temporaries(workdir) == []


# ---------------------------------------------------------------- users.txt has a checksum
@pytest.mark.parametrize("damage", ["truncated", "reordered", "one id changed"])
def test_users_file_is_verified(runner, workdir, damage):
    Path("r.dat").write_text(ratings_text())
    assert invoke(runner, "preprocess", "ml-1m", "--input", "r.dat", "--out-dir", "d", "--vocab", "v.txt").exit_code == 0
    users = (workdir / "d" / "users.txt").read_text().splitlines()
    changed = {"truncated": users[:-1], "reordered": [users[1], users[0], *users[2:]], "one id changed": ["99", *users[1:]]}
    (workdir / "d" / "users.txt").write_text("".join(u + "\n" for u in changed[damage]))
    before = snapshot(workdir)
    line = error_line(invoke(runner, "evaluate", "--baseline", "popularity", "--test-dir", "d"))
    assert line == f"Error: {Path('d/users.txt')} changed since {Path('d/manifest.json')} was written; rerun preprocessing"
    assert snapshot(workdir) == before


def test_manifest_of_the_old_format_is_one_clear_error(runner, workdir):
    assert invoke(runner, "preprocess", "sample", "--out-dir", "data/sample", "--vocab", "vocab/sample.txt").exit_code == 0
    path = workdir / "data" / "sample" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 1
    del manifest["users_sha256"]
    path.write_text(json.dumps(manifest, indent=2))
    line = error_line(invoke(runner, "evaluate", "--baseline", "popularity", "--test-dir", "data/sample"))
    assert line == (
        f"Error: {Path('data/sample/manifest.json')}: manifest format version 1 (written by seqrec 0.1.0); "
        "this seqrec reads version 2; rerun: seqrec preprocess sample"
    )


# ---------------------------------------------------------------- every step verifies what it reads
def _filtered(runner) -> None:
    Path("c.dat").write_text("".join(f"{s},2014-04-0{1 + s % 3}T10:00:0{k}.000Z,{1 + (s + k) % 4},0\n" for s in range(40) for k in range(3)))
    result = invoke(runner, "preprocess", "session-filter", "--input", "c.dat", "--out-dir", "f")
    assert result.exit_code == 0, result.output


def test_convert_format_refuses_a_table_changed_since_session_filter(runner, workdir):
    _filtered(runner)
    with open(workdir / "f" / "test.tsv", "a") as fh:
        fh.write("39\t1\t1396346400.000\n")  # a well-formed row: only the checksum can tell
    before = snapshot(workdir)
    line = error_line(invoke(runner, "preprocess", "convert-format", "--in-dir", "f", "--out-dir", "s"))
    assert line == (
        f"Error: {Path('f/test.tsv')} does not match {Path('f/manifest.json')} (changed since, or left from "
        "another run); rerun: seqrec preprocess session-filter"
    )
    assert snapshot(workdir) == before


def test_convert_format_refuses_a_folder_a_killed_writer_left(runner, workdir):
    """Without a manifest, a temporary file of a seqrec writer says the folder is half rewritten."""
    _filtered(runner)
    (workdir / "f" / "manifest.json").unlink()
    (workdir / "f" / ".test.tsv.k1ll3d00.tmp").write_text("SessionId\tItemId\tTime\n")
    before = snapshot(workdir)
    line = error_line(invoke(runner, "preprocess", "convert-format", "--in-dir", "f", "--out-dir", "s"))
    assert line == (
        f"Error: {Path('f')}: an earlier seqrec run was interrupted while writing this folder "
        "(rerun: seqrec preprocess session-filter)"
    )
    assert snapshot(workdir) == before


def test_convert_format_refuses_a_manifest_of_another_step(runner, workdir):
    Path("r.dat").write_text(ratings_text())
    assert invoke(runner, "preprocess", "ml-1m", "--input", "r.dat", "--out-dir", "d", "--vocab", "v.txt").exit_code == 0
    (workdir / "d" / "x.tsv").write_text("SessionId\tItemId\tTime\n1\t2\t3.0\n")
    line = error_line(invoke(runner, "preprocess", "convert-format", "--in-dir", "d", "--out-dir", "s", "--splits", "x"))
    assert line == (
        f"Error: {Path('d/manifest.json')} is a manifest of kind 'sequences', not of session-filter's tables "
        "(rsc15-filtered); give --in-dir the folder of seqrec preprocess session-filter"
    )
    assert not (workdir / "s").exists()


def test_text2id_refuses_a_session_file_changed_since_convert_format(runner, workdir):
    _filtered(runner)
    assert invoke(runner, "preprocess", "convert-format", "--in-dir", "f", "--out-dir", "s").exit_code == 0
    path = workdir / "s" / "train_full.txt"
    path.write_text(path.read_text().replace("1", "4", 1))
    before = snapshot(workdir)
    line = error_line(invoke(runner, "preprocess", "text2id", "--train", "s/train_full.txt", "--test", "s/test.txt"))
    assert line == (
        f"Error: {Path('s/train_full.txt')} does not match {Path('s/manifest.json')} (changed since, or left from "
        "another run); rerun: seqrec preprocess convert-format"
    )
    assert snapshot(workdir) == before


@pytest.mark.parametrize("dataset", ["ml-1m", "yoochoose"])
def test_preprocess_refuses_a_raw_file_changed_since_its_download(runner, workdir, dataset):
    if dataset == "ml-1m":
        import io
        import zipfile

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("ml-1m/ratings.dat", ratings_text())
        Path("a.zip").write_bytes(buf.getvalue())
        member, cmd = formats.ML1M_RATINGS, ("preprocess", "ml-1m")
    else:
        import py7zr

        with py7zr.SevenZipFile("a.7z", "w") as sz:
            sz.writestr("".join(f"{s},2014-04-0{1 + s % 3}T10:00:0{k}.000Z,{1 + (s + k) % 4},0\n" for s in range(40) for k in range(3)), "yoochoose-clicks.dat")
        member, cmd = formats.YOOCHOOSE_CLICKS, ("preprocess", "session-filter")
    archive = "a.zip" if dataset == "ml-1m" else "a.7z"
    digest = hashlib.sha256(Path(archive).read_bytes()).hexdigest()
    result = invoke(runner, "download", dataset, "--from-file", archive, "--checksum", f"sha256:{digest}")
    assert result.exit_code == 0, result.output
    text = member.read_text()
    member.write_text(text.replace("1", "2", 1))  # same size, other content
    before = snapshot(workdir)
    line = error_line(invoke(runner, *cmd), alone=dataset == "ml-1m")  # session-filter reports its reading first
    record = formats.raw_dir(dataset) / "SOURCE.json"
    assert line == (
        f"Error: {member} changed since {record} was written (SHA-256 differs); run: seqrec download {dataset} "
        "(it extracts the file again from the verified archive)"
    )
    assert snapshot(workdir) == before
    result = invoke(runner, "download", dataset, "--from-file", archive, "--checksum", f"sha256:{digest}")
    assert result.exit_code == 0, result.output
    assert member.read_text() == text  # restored from the archive
    assert invoke(runner, *cmd).exit_code == 0


# ---------------------------------------------------------------- leftovers cleaned, other files kept
def test_next_run_cleans_leftovers_and_keeps_unrelated_files(runner, workdir):
    Path("r.dat").write_text(ratings_text())
    args = ("preprocess", "ml-1m", "--input", "r.dat", "--out-dir", "d", "--vocab", "v.txt")
    assert invoke(runner, *args).exit_code == 0
    (workdir / "d" / "notes.txt").write_text("mine\n")
    (workdir / "d" / "raw").mkdir()
    (workdir / "d" / "raw" / "ratings.dat").write_text("kept\n")
    (workdir / "d" / ".train.txt.abcd1234.tmp").write_text("half")  # what a killed run leaves
    (workdir / "d" / ".manifest.json.zz9_8765.tmp").write_text("{")
    (workdir / ".v.txt.q1w2e3r4.tmp").write_text("half")
    (workdir / "d" / ".hidden-but-mine").write_text("kept\n")
    assert invoke(runner, *args).exit_code == 0
    assert _temporaries(workdir) == []
    assert (workdir / "d" / "notes.txt").read_text() == "mine\n"
    assert (workdir / "d" / "raw" / "ratings.dat").read_text() == "kept\n"
    assert (workdir / "d" / ".hidden-but-mine").read_text() == "kept\n"
    formats.load_processed(workdir / "d")


def test_outputs_of_the_earlier_run_that_this_run_does_not_make_are_removed(runner, workdir):
    Path("a.txt").write_text("1 2 3\n3 2\n")
    Path("b.txt").write_text("1 2\n2 3\n")
    base = ("preprocess", "text2id", "--train", "a.txt", "--test", "b.txt", "--out-dir", "d", "--vocab", "v.txt")
    assert invoke(runner, *base, "--valid", "b.txt").exit_code == 0
    assert (workdir / "d" / "valid.txt").is_file()
    (workdir / "d" / "mine.txt").write_text("x\n")
    assert invoke(runner, *base).exit_code == 0
    assert sorted(p.name for p in (workdir / "d").iterdir()) == ["manifest.json", "mine.txt", "test.txt", "train.txt"]
    assert "valid" not in formats.load_processed(workdir / "d").splits
    assert listing(workdir / "d") == ["manifest.json", "mine.txt", "test.txt", "train.txt"]


def test_a_step_never_removes_another_steps_files(runner, workdir):
    """Replacing 'the earlier run's outputs' only ever means outputs of the same step."""
    _filtered(runner)
    line = error_line(invoke(runner, "preprocess", "convert-format", "--in-dir", "f", "--out-dir", "f"))
    assert line == "Error: --out-dir f is the --in-dir: give the session files a folder of their own"
    assert invoke(runner, "preprocess", "convert-format", "--in-dir", "f", "--out-dir", "s").exit_code == 0
    sessions = snapshot(workdir / "s")
    result = invoke(runner, "preprocess", "text2id", "--train", "s/train_full.txt", "--test", "s/test.txt", "--out-dir", "s")
    assert result.exit_code == 0, result.output
    after = snapshot(workdir / "s")
    assert {k: v for k, v in after.items() if k in sessions and k != "manifest.json"} == {
        k: v for k, v in sessions.items() if k != "manifest.json"
    }  # the session files are still there, untouched
