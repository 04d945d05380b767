"""Issue 11, kind 7: a full disk while any output is written is one ``Error: <path>: No space left
on device; <what was kept>`` line, with nothing half-written and no internal temporary name.

The full disk is a real tmpfs of 2 MB mounted for each test (needs root; the tests skip cleanly
where mounting is impossible). Case 23 (../shared/cases/23-disk-full-checkpoint) is the first
test, with the same inputs.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

import pytest
from conftest import invoke, listing
from helpers import CASES, error_line, mount_tmpfs, ratings_text, snapshot, unmount
from httpserver import FileServer

from seqrec_cli.errors import SeqrecError
from seqrec_cli.fileio import DiskFullError, atomic_dir, atomic_path, write_json


@pytest.fixture
def full(workdir):
    fs = mount_tmpfs(workdir / "full", 2048)
    try:
        yield fs
    finally:
        unmount(fs)


def _no_temporaries(root: Path) -> None:
    assert [p.name for p in root.rglob("*") if p.name.endswith((".tmp", ".lock")) or ".old." in p.name] == []


# ---------------------------------------------------------------- case 23: a checkpoint that does not fit
@pytest.mark.slow
def test_case23_full_disk_while_saving_a_checkpoint(runner, workdir, full):
    result = invoke(runner, "preprocess", "ml-1m", "--input", CASES / "23" / "ratings.dat", "--out-dir", "data/t", "--vocab", "vocab/t.txt")
    assert result.exit_code == 0, result.output
    full.fill(leave_kb=40)
    model_dir = Path("full") / "m"
    result = invoke(
        runner, "train", "gru4rec", "--train-dir", "data/t", "--model-dir", model_dir, "--epochs", "1",
        "--hidden-size", "64", "--n-sample", "16", "--batch-size", "8",
    )
    line = error_line(result, alone=False)
    assert line.startswith(f"Error: {model_dir / 'epoch_1'}: No space left on device"), line
    assert not [p for p in (workdir / model_dir).iterdir() if p.name.startswith(("epoch_", ".epoch_"))]


# ---------------------------------------------------------------- preprocess
def test_full_disk_while_preprocessing_keeps_the_earlier_folder_and_vocabulary(runner, workdir, full):
    Path("r1.dat").write_text(ratings_text(seed=0))
    Path("r2.dat").write_text(ratings_text(users=20, seed=3))
    args = ("preprocess", "ml-1m", "--out-dir", "full/d", "--vocab", "full/v.txt", "--input")
    assert invoke(runner, *args, "r1.dat").exit_code == 0
    before = snapshot(workdir / "full")
    full.fill(leave_kb=0)
    before["filler"] = (workdir / "full" / "filler").read_bytes()
    line = error_line(invoke(runner, *args, "r2.dat"))
    assert line == (
        f"Error: {Path('full/v.txt')}: No space left on device; {Path('full/d')} and {Path('full/v.txt')} are unchanged"
    )
    assert snapshot(workdir / "full") == before
    _no_temporaries(workdir / "full")


def test_full_disk_while_session_filter_writes_keeps_the_earlier_tables(runner, workdir, full):
    Path("c.dat").write_text("".join(f"{s},2014-04-0{1 + s % 3}T10:00:0{k}.000Z,{1 + (s + k) % 4},0\n" for s in range(400) for k in range(3)))
    args = ("preprocess", "session-filter", "--input", "c.dat", "--out-dir", "full/f")
    assert invoke(runner, *args).exit_code == 0
    before = snapshot(workdir / "full")
    full.fill(leave_kb=0)
    before["filler"] = (workdir / "full" / "filler").read_bytes()
    line = error_line(invoke(runner, *args), alone=False)
    assert line == f"Error: {Path('full/f/train_full.tsv')}: No space left on device; {Path('full/f')} is unchanged"
    assert snapshot(workdir / "full") == before
    _no_temporaries(workdir / "full")


# ---------------------------------------------------------------- download
NOISE = hashlib.sha256(b"seed").digest() * 40_000  # 1.28 MB, incompressible enough to store


def _zip(members: dict[str, bytes], stored: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, (2000, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return buf.getvalue()


def test_full_disk_while_importing_an_archive(runner, workdir, full):
    data = _zip({"ml-1m/ratings.dat": ratings_text().encode(), "ml-1m/noise.bin": NOISE}, stored=True)
    Path("a.zip").write_bytes(data)
    full.fill(leave_kb=200)
    line = error_line(invoke(runner, "download", "ml-1m", "--from-file", "a.zip", "--dest", "full/raw", "--checksum", hashlib.sha256(data).hexdigest()), alone=False)
    assert line == f"Error: {Path('full/raw/ml-1m.zip')}: No space left on device; nothing was imported; free space and run again"
    assert listing(workdir / "full") == ["filler"]


def test_full_disk_while_downloading_keeps_the_part_and_resumes(runner, workdir, full):
    data = _zip({"ml-1m/ratings.dat": ratings_text().encode(), "ml-1m/noise.bin": NOISE}, stored=True)
    sha = hashlib.sha256(data).hexdigest()
    full.fill(leave_kb=400)
    with FileServer({"ml-1m.zip": data}) as srv:
        args = ("download", "ml-1m", "--url", srv.url("ml-1m.zip"), "--dest", "full/raw", "--checksum", sha)
        line = error_line(invoke(runner, *args), alone=False)
        m = re.fullmatch(
            rf"Error: {re.escape(str(Path('full/raw/ml-1m.zip.part')))}: No space left on device; the ([0-9.]+ KB) "
            r"fetched so far are kept there: free space and run the same command again to resume",
            line,
        )
        assert m, line
        kept = (workdir / "full" / "raw" / "ml-1m.zip.part").stat().st_size
        assert 0 < kept < len(data)
        assert listing(workdir / "full") == ["filler", "raw/ml-1m.zip.part"]
        full.make_room()
        result = invoke(runner, *args)
        assert result.exit_code == 0, result.output
        assert srv.requests[-1] == ("ml-1m.zip", f"bytes={kept}-")  # resumed, not fetched again
    assert (workdir / "full" / "raw" / "ml-1m" / "ratings.dat").read_text() == ratings_text()


def test_member_larger_than_the_free_space_is_refused_before_extraction(runner, workdir, full):
    text = "".join(f"{u}::{10 * (1 + k % 50)}::3::{978300000 + k}\n" for u in range(1, 400) for k in range(60))
    data = _zip({"ml-1m/ratings.dat": text.encode()})
    assert len(data) < 300_000 < len(text)
    Path("a.zip").write_bytes(data)
    full.fill(leave_kb=500)
    line = error_line(invoke(runner, "download", "ml-1m", "--from-file", "a.zip", "--dest", "full/raw", "--checksum", hashlib.sha256(data).hexdigest()), alone=False)
    assert re.fullmatch(
        rf"Error: {re.escape(str(Path('full/raw/ml-1m/ratings.dat')))}: No space left on device; extracting it needs "
        r"[0-9.]+ [KM]B, [0-9.]+ KB are free; nothing was imported; free space and run again",
        line,
    ), line
    assert listing(workdir / "full") == ["filler"]


# ---------------------------------------------------------------- the generic writers (also used for checkpoints)
def test_atomic_writers_on_a_full_disk(workdir, full):
    dest = workdir / "full" / "run.json"
    write_json(dest, {"old": True})
    full.fill(leave_kb=0)
    with pytest.raises(DiskFullError) as exc:
        write_json(dest, {"x": "y" * 100_000})
    assert str(exc.value) == f"{dest}: No space left on device; the earlier file is kept unchanged"
    assert isinstance(exc.value, SeqrecError) and dest.read_text() == '{\n  "old": true\n}\n'
    with pytest.raises(DiskFullError) as exc:
        with atomic_path(workdir / "full" / "new.txt", kept="the checkpoints of earlier epochs are kept") as tmp:
            tmp.write_bytes(b"x" * 100_000)
    assert str(exc.value) == f"{workdir / 'full' / 'new.txt'}: No space left on device; the checkpoints of earlier epochs are kept"
    with pytest.raises(DiskFullError) as exc:
        with atomic_dir(workdir / "full" / "epoch_3") as tmp:
            (tmp / "model.pt").write_bytes(b"x" * 100_000)
    assert str(exc.value) == f"{workdir / 'full' / 'epoch_3'}: No space left on device; nothing was written"
    _no_temporaries(workdir / "full")
    assert sorted(p.name for p in (workdir / "full").iterdir()) == ["filler", "run.json"]
