"""Issue 11, kind 10: error texts point at the thing the user can fix.

Never an internal temporary name, never a bare ``Aborted!``, never a traceback, never a number
other than the one given: a Ctrl-C is one ``Error: interrupted ...`` line (exit 130) with every
file whole; an input that ends early (a truncated or corrupt compressed file, any EOFError) is one
line naming it; an output that cannot be made names the output (or the file standing where its
folder must be); a setting is shown as it was written.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import invoke
from helpers import CASES, env, error_line, seqrec_cmd, snapshot, wait_for
from typer.testing import CliRunner

from seqrec_cli import checkpoint, console, formats
from seqrec_cli.fileio import stale_temporaries

GRU = ["--hidden-size", "8", "--n-sample", "4", "--batch-size", "8"]
INTERRUPTED = (
    "Error: interrupted; every file written so far is whole (a training run continues with --resume, "
    "a download resumes on the next run)"
)
IN_THE_WAY = "Error: afile: is a file where a folder is needed; move it away or choose another path"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The case's ratings preprocessed (40 users, 20 items) and one GRU4Rec epoch trained on them."""
    root = tmp_path_factory.mktemp("texts")
    runner = CliRunner()
    data = root / "data" / "t"
    result = invoke(runner, "preprocess", "ml-1m", "--input", CASES / "08" / "ratings.dat", "--out-dir", data, "--vocab", root / "vocab" / "t.txt")
    assert result.exit_code == 0, result.output
    result = invoke(runner, "train", "gru4rec", "--train-dir", data, "--model-dir", root / "m", "--epochs", 1, *GRU)
    assert result.exit_code == 0, result.output
    return {"data": data, "m": root / "m"}


# ---------------------------------------------------------------- Ctrl-C
def test_ctrl_c_during_training_is_one_line_and_the_run_resumes(run, workdir):
    """A real seqrec process interrupted with SIGINT (what Ctrl-C sends) in the middle of its epochs."""
    cmd = seqrec_cmd("train", "gru4rec", "--train-dir", run["data"], "--model-dir", "m", "--epochs", 500, *GRU)
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: (workdir / "m" / "epoch_2").is_dir(), timeout=240, step=0.05, proc=proc), proc.communicate()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert err.rstrip("\n").splitlines()[-1] == INTERRUPTED, err
    assert "Traceback" not in out + err and "Aborted" not in out + err
    assert [line for line in (out + err).splitlines() if line.startswith("Error:")] == [INTERRUPTED]
    epochs = checkpoint.list_epochs(workdir / "m")
    assert epochs == list(range(1, epochs[-1] + 1)) and epochs[-1] >= 2
    for e in epochs:  # every checkpoint written is whole: its files match their checksums and load
        ckpt = checkpoint.read_checkpoint(workdir / "m" / f"epoch_{e}")
        checkpoint.load_weights(ckpt)
        checkpoint.load_train_state(ckpt)
    assert not stale_temporaries(workdir / "m") and not (workdir / ".m.lock").exists()  # the lock went with the process
    runner = CliRunner()
    result = invoke(runner, "train", "gru4rec", "--train-dir", run["data"], "--model-dir", "m", "--epochs", epochs[-1] + 1, "--resume", *GRU)
    assert result.exit_code == 0, result.output
    assert checkpoint.list_epochs(workdir / "m") == [*epochs, epochs[-1] + 1]


def test_a_ctrl_c_dropped_in_a_garbage_collection_callback_still_stops_the_command(capfd):
    """The kind of fault behind a Ctrl-C that training ignored: SIGINT landed while matplotlib freed
    a curve picture, inside a weakref callback, where Python prints "Exception ignored in ..." and
    drops the KeyboardInterrupt. seqrec keeps it, silently, and raises it at the next safe point."""

    class DropsCtrlC:
        def __del__(self):
            raise KeyboardInterrupt  # what SIGINT does when it arrives during this callback

    saved = sys.unraisablehook
    try:
        console.keep_ctrl_c()
        DropsCtrlC()  # freed at once; Python cannot raise from __del__
        assert capfd.readouterr().err == ""  # no "Exception ignored" traceback
        with pytest.raises(KeyboardInterrupt):
            console.check_ctrl_c()
        console.check_ctrl_c()  # raised once, not again
    finally:
        sys.unraisablehook = saved


def test_ctrl_c_while_preprocessing_keeps_the_earlier_folder(runner, workdir, monkeypatch):
    args = ("preprocess", "ml-1m", "--input", CASES / "08" / "ratings.dat", "--out-dir", "d", "--vocab", "v.txt")
    assert invoke(runner, *args).exit_code == 0
    before = snapshot(workdir)

    def ctrl_c(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr(formats, "_write_sequences_to", ctrl_c)
    result = invoke(runner, *args)
    assert result.exit_code == 130, result.output
    assert result.output == INTERRUPTED + "\n"
    assert snapshot(workdir) == before  # the staged files were removed; the earlier folder and vocabulary are whole


# ---------------------------------------------------------------- inputs that end early: never "Aborted!"
ROWS = "user,item,time\n" + "".join(f"{u},{i},{1000 + 10 * u + i}\n" for u in range(1, 300) for i in range(1, 12))


def _zstd(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


def _truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def _corrupt(data: bytes) -> bytes:
    out = bytearray(data)
    for k in range(len(out) // 2, len(out) // 2 + 8):
        out[k] ^= 0x55
    return bytes(out)


ENDED = "Compressed file ended before the end-of-stream marker was reached"


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("t.csv.gz", lambda: _truncated(gzip.compress(ROWS.encode())), f"corrupt or truncated gzip data ({ENDED})"),
        ("c.csv.gz", lambda: _corrupt(gzip.compress(ROWS.encode())),
         "corrupt or truncated gzip data (Error -3 while decompressing data: invalid distance too far back)"),
        ("t.csv.xz", lambda: _truncated(lzma.compress(ROWS.encode())), f"corrupt or truncated xz data ({ENDED})"),
        ("c.csv.xz", lambda: _corrupt(lzma.compress(ROWS.encode())), "corrupt or truncated xz data (Corrupt input data)"),
        ("t.csv.bz2", lambda: _truncated(bz2.compress(ROWS.encode())), f"corrupt or truncated bz2 data ({ENDED})"),
        ("c.csv.bz2", lambda: _corrupt(bz2.compress(ROWS.encode())), "corrupt or truncated bz2 data (Invalid data stream)"),
        ("t.csv.zst", lambda: _truncated(_zstd(ROWS.encode())), f"corrupt or truncated zstd data ({ENDED})"),
        ("big.csv.zst", lambda: _truncated(_zstd((ROWS * 40).encode())), f"corrupt or truncated zstd data ({ENDED})"),
    ],
    ids=["gzip-truncated", "gzip-corrupt", "xz-truncated", "xz-corrupt", "bz2-truncated", "bz2-corrupt", "zstd-truncated", "zstd-truncated-long"],
)  # fmt: skip
def test_a_corrupt_or_truncated_compressed_file_is_one_error(runner, workdir, name, make, problem):
    """gzip and xz ended in a bare 'Aborted!' or a zlib/LZMA traceback; a truncated zstd file was read
    silently short (its complete blocks only)."""
    Path(name).write_bytes(make())
    result = invoke(runner, "preprocess", "interactions", name, "--name", "x", "--min-item-count", 1)
    assert error_line(result) == f"Error: {name}: {problem}"
    assert "Aborted" not in result.output
    assert not Path("data").exists() and not Path("vocab").exists()


def test_a_whole_multi_frame_zstd_file_reads_like_the_plain_file(runner, workdir):
    zstandard = pytest.importorskip("zstandard")
    c = zstandard.ZstdCompressor()
    Path("two.csv.zst").write_bytes(c.compress(ROWS[:2000].encode()) + c.compress(ROWS[2000:].encode()))
    Path("two.csv").write_text(ROWS)
    for name in ("two.csv.zst", "two.csv"):
        result = invoke(runner, "preprocess", "interactions", name, "--name", name.replace(".", "_"))
        assert result.exit_code == 0, result.output
    for f in ("train.txt", "valid.txt", "test.txt", "users.txt"):
        assert (workdir / "data" / "two_csv_zst" / f).read_bytes() == (workdir / "data" / "two_csv" / f).read_bytes()


def test_any_eof_error_is_one_line_not_aborted(runner, workdir, monkeypatch):
    from seqrec_cli.datasets import ml1m

    def ends(*_args, **_kwargs):
        raise EOFError("Ran out of input")

    monkeypatch.setattr(ml1m, "preprocess_ml1m", ends)
    result = invoke(runner, "preprocess", "ml-1m", "--input", CASES / "08" / "ratings.dat", "--out-dir", "d", "--vocab", "v.txt")
    assert error_line(result) == "Error: an input ended before it was complete (Ran out of input); --debug shows where"
    assert "Aborted" not in result.output


# ---------------------------------------------------------------- outputs that cannot be made
def test_a_file_where_a_folder_is_needed_is_named(runner, workdir, run):
    Path("afile").write_text("mine\n")
    for args in (
        ["recommend", "--model-dir", run["m"], "--output", "afile/r.tsv"],
        ["evaluate", "--model-dir", run["m"], "--output-json", "afile/e.json"],
        ["infer", "--model-dir", run["m"], "--start-index", 1, "--last-index", 1, "--output-json", "afile/sub/i.json"],
        ["train", "gru4rec", "--train-dir", run["data"], "--model-dir", "afile/m", "--epochs", 1, *GRU],
        ["preprocess", "ml-1m", "--input", CASES / "08" / "ratings.dat", "--out-dir", "afile/d", "--vocab", "v.txt"],
        ["preprocess", "ml-1m", "--input", CASES / "08" / "ratings.dat", "--out-dir", "d", "--vocab", "afile/v.txt"],
    ):
        result = invoke(runner, *args)
        assert error_line(result, alone=False) == IN_THE_WAY, args
        assert ".tmp" not in result.output
    assert sorted(p.name for p in workdir.iterdir()) == ["afile"] and Path("afile").read_text() == "mine\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc (a folder where no file can be created)")
def test_an_output_where_no_file_can_be_created_names_the_output(runner, workdir, run):
    for args, dest in (
        (["infer", "--model-dir", run["m"], "--start-index", 1, "--last-index", 1, "--output-json", "/proc/x.json"], "/proc/x.json"),
        (["evaluate", "--model-dir", run["m"], "--output-json", "/proc/e.json"], "/proc/e.json"),
        (["recommend", "--model-dir", run["m"], "--output", "/proc/r.tsv"], "/proc/r.tsv"),
    ):
        result = invoke(runner, *args)
        assert error_line(result, alone=False) == f"Error: {dest}: No such file or directory", args  # not /proc/.x.json.<random>.tmp
    # a model folder there: one error at once (the folder lock used to retry forever)
    done = subprocess.run(
        seqrec_cmd("train", "gru4rec", "--train-dir", run["data"], "--model-dir", "/proc/m", "--epochs", 1, *GRU),
        env=env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == "Error: /proc: cannot create files in this folder (No such file or directory); choose another path"


# ---------------------------------------------------------------- numbers and values as given
def test_too_many_negatives_says_how_many_the_line_leaves(runner, workdir, run):
    for negatives, sampling, seen in ((11, "popularity", " and seen in training"), (19, "uniform", "")):
        result = invoke(runner, "evaluate", "--model-dir", run["m"], "--negatives", negatives, "--sampling", sampling, "--output-json", "e.json")
        assert error_line(result) == (
            f"Error: --negatives {negatives}: line 1 of the test split leaves only 8 items (not in that line{seen}) to "
            "sample negatives from; lower --negatives"
        )
    assert invoke(runner, "evaluate", "--model-dir", run["m"], "--negatives", 8, "--output-json", "e.json").exit_code == 0


def test_settings_are_shown_as_given(runner, workdir, run):
    result = invoke(runner, "train", "gru4rec", "--train-dir", run["data"], "--model-dir", "m", "--dropout-hidden", "1")
    assert error_line(result) == "Error: --dropout-hidden must be a number in [0, 1), got 1"  # not 1.0
    Path("p.json").write_text('{"dropout_hidden": 5, "shared_embedding": null}')
    result = invoke(runner, "train", "gru4rec", "--train-dir", run["data"], "--model-dir", "m", "--params", "p.json")
    assert error_line(result) == "Error: p.json: dropout_hidden must be a number in [0, 1), got 5"  # not 5.0
    Path("p.json").write_text('{"shared_embedding": null}')
    result = invoke(runner, "train", "gru4rec", "--train-dir", run["data"], "--model-dir", "m", "--params", "p.json")
    assert error_line(result) == "Error: p.json: shared_embedding must be true or false, got null"  # not None
    assert not Path("m").exists()


# ---------------------------------------------------------------- recommend --input: the shared reader
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"1000 1010\n\xe9 1020\n", "in.txt:2: not valid UTF-8 (byte 0xe9 in column 1); save the file as UTF-8"),
        (b"1000 1010\n\n1020\n", "in.txt:2: empty line (every line must hold at least one item id)"),
        (b"\n\n", "in.txt: empty input file"),
    ],
    ids=["undecodable", "blank-inside", "only-blank"],
)
def test_recommend_input_errors_at_their_line(runner, workdir, run, content, problem):
    Path("in.txt").write_bytes(content)
    result = invoke(runner, "recommend", "--model-dir", run["m"], "--input", "in.txt", "--output", "r.tsv")
    assert error_line(result) == f"Error: {problem}"  # the first was a UnicodeDecodeError traceback
    assert not Path("r.tsv").exists()


def test_recommend_input_with_any_line_end_gives_the_same_rows(runner, workdir, run):
    rows = {}
    for name, data in (("lf", b"1000 1010\n1020\n"), ("cr", b"1000 1010\r1020\r\r"), ("crlf", b"\xef\xbb\xbf1000 1010\r\n1020\r\n\r\n")):
        Path(f"{name}.txt").write_bytes(data)
        result = invoke(runner, "recommend", "--model-dir", run["m"], "--input", f"{name}.txt", "--top-k", 3, "--output", f"{name}.tsv")
        assert result.exit_code == 0, result.output
        rows[name] = Path(f"{name}.tsv").read_text()
    assert rows["cr"] == rows["lf"] == rows["crlf"] and len(rows["lf"].splitlines()) == 3  # header + 2 sequences

