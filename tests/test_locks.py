"""Issue 11, kind 4: one writer per folder. Every output folder (and the vocabulary) of download
and preprocess is held with an OS lock; a second writer gets one ``Error:`` line naming the
holder's PID, and nothing is written. The lock goes with its process, however that ends.

Every test uses two real processes: a holder (a plain Python process taking the lock with
``seqrec_cli.fileio.folder_lock``, or a real ``seqrec`` run) and the seqrec command under test.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import invoke, listing
from helpers import env, error_line, hold_lock, ratings_text, seqrec_cmd, snapshot, wait_for

from seqrec_cli.fileio import LockedError, folder_lock, lock_file


def _refusal(path: str, proc: subprocess.Popen, holder_dir: Path) -> str:
    return (
        f"Error: {path} is being written by another seqrec process (PID {proc.pid}: holder.py {path}); "
        "wait for it to finish (or stop it), then run this again"
    )


@pytest.fixture
def holder_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("holder")


@pytest.fixture
def holders():
    procs: list[subprocess.Popen] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


ML1M = ("preprocess", "ml-1m", "--input", "r.dat", "--out-dir", "d", "--vocab", "v.txt")


@pytest.mark.parametrize(
    ("locked", "args"),
    [
        ("d", ML1M),
        ("v.txt", ML1M),
        ("s", ("preprocess", "sample", "--out-dir", "s", "--vocab", "vs.txt")),
        ("f", ("preprocess", "session-filter", "--input", "clicks.dat", "--out-dir", "f")),
        ("t", ("preprocess", "text2id", "--train", "a.txt", "--test", "b.txt", "--out-dir", "t", "--vocab", "vt.txt")),
        ("o", ("preprocess", "convert-format", "--in-dir", "in", "--out-dir", "o", "--splits", "x")),
        ("y", ("preprocess", "yoochoose", "--input", "clicks.dat", "--out-dir", "y", "--vocab", "vy.txt")),
        ("y/sessions", ("preprocess", "yoochoose", "--input", "clicks.dat", "--out-dir", "y", "--vocab", "vy.txt")),
        ("raw", ("download", "ml-1m", "--from-file", "ml-1m.zip", "--dest", "raw")),
    ],
    ids=["ml-1m-folder", "ml-1m-vocab", "sample", "session-filter", "text2id", "convert-format", "yoochoose",
         "yoochoose-sessions", "download"],
)
def test_second_writer_is_refused_with_the_holders_pid(runner, workdir, holder_dir, holders, locked, args):
    Path("r.dat").write_text(ratings_text())
    Path("clicks.dat").write_text("1,2014-04-01T10:00:00.000Z,5,0\n")
    Path("a.txt").write_text("1 2\n")
    Path("b.txt").write_text("1 2\n")
    Path("in").mkdir()
    Path("in/x.tsv").write_text("SessionId\tItemId\tTime\n1\t2\t3.0\n")
    Path("ml-1m.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    before = snapshot(workdir)
    holders.append(proc := hold_lock(locked, holder_dir))
    line = error_line(invoke(runner, *args))
    assert line == _refusal(locked, proc, holder_dir)
    assert snapshot(workdir) == {**before, str(lock_file(locked)): f"{proc.pid}\nholder.py {locked}\n".encode()}


def test_the_lock_goes_with_a_killed_holder(runner, workdir, holder_dir, holders):
    Path("r.dat").write_text(ratings_text())
    holders.append(proc := hold_lock("d", holder_dir))
    assert error_line(invoke(runner, *ML1M)) == _refusal("d", proc, holder_dir)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (workdir / ".d.lock").is_file()  # a killed holder cannot remove its lock file: harmless
    result = invoke(runner, *ML1M)
    assert result.exit_code == 0, result.output
    assert listing(workdir) == sorted(
        ["r.dat", "v.txt"] + [f"d/{n}" for n in ("manifest.json", "test.txt", "train.txt", "users.txt", "valid.txt")]
    )  # the lock file is removed by the run that held it last


def _holds(lock: Path, pid: int) -> bool:
    """The PID is written into the lock file only once the lock is held."""
    try:
        return lock.read_text().startswith(f"{pid}\n")
    except OSError:
        return False


def test_two_real_seqrec_runs_into_one_folder(workdir):
    """Two ``seqrec preprocess session-filter`` processes into one --out-dir: the second is refused
    with the first one's PID and command, the first completes, and the folder is its output. The
    first is paused (SIGSTOP) once it holds the lock, so that the second surely meets it."""
    lines = []
    for s in range(3000):
        for k in range(3):
            lines.append(f"{s},2014-04-{1 + s % 20:02d}T10:{s % 60:02d}:0{k}.000Z,{(s * 7 + k) % 50},0")
    Path("clicks.dat").write_text("\n".join(lines) + "\n")
    args = ("preprocess", "session-filter", "--input", "clicks.dat", "--out-dir", "f")
    first = subprocess.Popen(seqrec_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    try:
        assert wait_for(lambda: _holds(workdir / ".f.lock", first.pid), proc=first), "the first run never took the lock"
        first.send_signal(signal.SIGSTOP)
        second = subprocess.run(seqrec_cmd(*args), capture_output=True, text=True, env=env(), timeout=120)
        first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert second.returncode == 1 and second.stdout == "", second
    assert second.stderr == (
        f"Error: f is being written by another seqrec process (PID {first.pid}: seqrec {' '.join(args)}); "
        "wait for it to finish (or stop it), then run this again\n"
    )
    assert sorted(p.name for p in (workdir / "f").iterdir()) == [
        "manifest.json", "test.tsv", "train_full.tsv", "train_tr.tsv", "train_valid.tsv"
    ]
    assert not (workdir / ".f.lock").exists()


def test_folder_lock_is_reentrant_and_exclusive_across_processes(tmp_path, holder_dir, holders):
    target = tmp_path / "model_output"
    with folder_lock(target):
        with folder_lock(target):  # the same process may nest (a command and the library it calls)
            assert lock_file(target).read_text().startswith(f"{os.getpid()}\n")
        assert lock_file(target).is_file()
    assert not lock_file(target).exists() and not target.exists()
    holders.append(proc := hold_lock(target, holder_dir))
    with pytest.raises(LockedError) as exc:
        with folder_lock(target):
            pass
    assert exc.value.pid == proc.pid and str(exc.value).startswith(f"{target} is being written by another seqrec process")


def test_a_reader_meeting_a_folder_being_written_names_the_writer(workdir):
    """A first session-filter paused while its tables are staged (no manifest yet): convert-format
    on that folder is told who is writing it, not that a run was interrupted."""
    lines = [f"{s},2014-04-{1 + s % 20:02d}T10:{s % 60:02d}:0{k}.000Z,{(s * 7 + k) % 50},0" for s in range(20000) for k in range(3)]
    Path("clicks.dat").write_text("\n".join(lines) + "\n")
    args = ("preprocess", "session-filter", "--input", "clicks.dat", "--out-dir", "f")
    writer = subprocess.Popen(seqrec_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    try:
        staged = wait_for(lambda: sorted((workdir / "f").glob(".*.tmp")), proc=writer, step=0.0005)
        writer.send_signal(signal.SIGSTOP)
        assert staged, "session-filter finished before its staged tables could be seen"
        reader = subprocess.run(seqrec_cmd("preprocess", "convert-format", "--in-dir", "f", "--out-dir", "s"),
                                capture_output=True, text=True, env=env(), timeout=120)
        writer.send_signal(signal.SIGCONT)
        assert writer.wait(timeout=300) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert reader.returncode == 1 and reader.stderr == (
        f"Error: f is being written by another seqrec process (PID {writer.pid}: seqrec {' '.join(args)}); "
        "wait for it to finish (or stop it), then run this again\n"
    )
    assert not (workdir / "s").exists()
