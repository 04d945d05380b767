"""RSC15 preprocessing outputs pinned byte for byte, and the fast reader checked against the scanner.

The SHA-256 of every data file that ``preprocess yoochoose`` and ``preprocess session-filter``
write were taken with the code before the pyarrow fast paths (commit 0ea47b2), on the shared
YOOCHOOSE sample and on a small synthetic clicks file of the real format: any change of a
single byte fails here. The fast reader (``rsc15._fast_clicks``) must never accept a line the
exact scanner (``rsc15._scan_clicks``) refuses, nor read one differently: checked on every
layout the scanner accepts and on thousands of mutated lines.
"""

from __future__ import annotations

import hashlib
import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, invoke, shared_file

from seqrec_cli.datasets import rsc15

SAMPLE = ("rsc15-yoochoose", "reconstructed_raw", "yoochoose-clicks-sample.dat")
SYNTHETIC_ARGS = ["--sessions", "4000", "--items", "3000", "--days", "30"]  # seed 15
SYNTHETIC_SHA256 = "a442043473c652e41ceeea1b0a3508dae69211e2cba39a22bd760793d4e791de"

FILTERED = ("data/rsc15/filtered/test.tsv", "data/rsc15/filtered/train_full.tsv",
            "data/rsc15/filtered/train_tr.tsv", "data/rsc15/filtered/train_valid.tsv")
PINNED = {
    "sample": {
        "data/rsc15/filtered/test.tsv": "ba91d2016b1b9465f92797643b3af21e1009e8e9bb7f112b1d93efad9321742f",
        "data/rsc15/filtered/train_full.tsv": "4238d93394308e87f06de23fb385f09d83d09a18cc69f043b760babd71656599",
        "data/rsc15/filtered/train_tr.tsv": "22a9c4b32bda1d127b0c5e0f91bc927450a007eddac1b9b7e4ad90589b7fd47b",
        "data/rsc15/filtered/train_valid.tsv": "b0ae2f6f6f68760263870d8e02378b0edd6a4eddbd5c61eebda6a11d78082316",
        "data/rsc15/sessions/test.txt": "d50f17085484fddb0bba985d6c4dc29436b53d7511168303e89c30c6f0b6689a",
        "data/rsc15/sessions/train_full.txt": "3f772831933c999c19ee449fa5b810a5dfb2e9ad4809c3503b705b7044090c2e",
        "data/rsc15/sessions/train_tr.txt": "3c07f52419479fb1226e915a02699e62d86e4650b9bdbbc822e1b111d741e7a2",
        "data/rsc15/sessions/train_valid.txt": "9fff13d649aea879a5931b29c6439475e27664c0983b9efaac76eef99cada2d2",
        "data/rsc15/test.txt": "e1b77bb020539b5356c3a4fb2c40702fc0ffa5d3e4bd456baec4b9efc13e7f68",
        "data/rsc15/train.txt": "63917cb60d369d7f359c5730e169956c0133b3b05172b2fb128766862b00fa5f",
        "vocab/rsc15.txt": "02bb8af5d5250a03fa3e22a11369c68f60ce25ccce05510a02665424d2ef7831",
    },
    "synthetic": {
        "data/rsc15/filtered/test.tsv": "8226c3319ab2268f5ceb7eca8552d9efa87d3f9964c1bdc44cb06551cbd435ec",
        "data/rsc15/filtered/train_full.tsv": "f47d0b84314913b5d6afb99ec7f4287fea39a7a77e8dbe0e0e2bbc414b266b50",
        "data/rsc15/filtered/train_tr.tsv": "1e211bffe2080404cd4052a79a64b14e3d90acf328cc24774415a0c5dcb28c66",
        "data/rsc15/filtered/train_valid.tsv": "c9864bb35d79340f450f335a375fbd7d29b6624a74d7e1c13c681bc6402f8399",
        "data/rsc15/sessions/test.txt": "ce7a4289093131ef3815a0b2058aa561a9fe796771e1eb7700b6bd8b9e5e1f45",
        "data/rsc15/sessions/train_full.txt": "995706eb4271115bed413cccac194d48e132e03be329abbcd493a86c9b1343e9",
        "data/rsc15/sessions/train_tr.txt": "d76fdeddfc151249ab1b76ed23f7c514acf7dec058f8e76f22fdb83921c90aae",
        "data/rsc15/sessions/train_valid.txt": "d3d88410de52e6b816ebb7cd6da4a5bb9a293e523c2578397f86189768944134",
        "data/rsc15/test.txt": "c46ccdb19c2c072cdf1ed99fdf119d614c6a4e1ecc618b6d385c478d76f13710",
        "data/rsc15/train.txt": "c88f9ee4d032609dd1d8a8cc84a47d9bdc256ee3810a28ab631fcb6279c29ea7",
        "vocab/rsc15.txt": "2b586b25c24465c3e1786a63e2775b81daf38758d6d9220b0ba4e8910da526ac",
    },
}


def _make_synthetic(path: Path) -> Path:
    spec = importlib.util.spec_from_file_location("make_synthetic_clicks", REPO / "scripts" / "make_synthetic_clicks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main([str(path), *SYNTHETIC_ARGS]) == 0
    assert hashlib.sha256(path.read_bytes()).hexdigest() == SYNTHETIC_SHA256, "the generator changed: re-pin"
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    synthetic = _make_synthetic(tmp_path_factory.mktemp("synthetic") / "clicks.dat")
    return {"sample": shared_file(*SAMPLE), "synthetic": synthetic}


def _digests(folder: Path, names) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in names}


@pytest.mark.parametrize("threads", ["1", "3"])
@pytest.mark.parametrize("source", ["sample", "synthetic"])
@pytest.mark.parametrize("command", ["yoochoose", "session-filter"])
def test_outputs_are_pinned(runner, workdir, inputs, source, command, threads, monkeypatch):
    monkeypatch.setenv("SEQREC_THREADS", threads)  # pyarrow's pool and the formatting threads
    if source == "synthetic":
        monkeypatch.setattr(rsc15, "READ_BLOCK", 64 << 10)  # many blocks: block edges inside the file
        monkeypatch.setattr(rsc15, "WRITE_ROWS", 1000)  # many chunks of output, formatted side by side
    result = invoke(runner, "preprocess", command, "--input", inputs[source])
    assert result.exit_code == 0, result.output
    pinned = PINNED[source] if command == "yoochoose" else {k: PINNED[source][k] for k in FILTERED}
    assert _digests(workdir, pinned) == pinned


# ---------------------------------------------------------------- the fast path against the scanner
LAYOUTS = [  # every line here is one the scanner accepts; the fast path takes only the first kind
    "{s},2014-04-07T10:51:09.277Z,{i},0",
    "{s},2014-04-07 10:51:09.277Z,{i},S",
    "{s},2014-04-07T10:51:09Z,{i},",
    "{s},2014-04-07T10:51:09.2Z,{i},12",
    "{s},2014-04-07T10:51:09.123456Z,{i},x",
    "{s},2014-04-07T10:51:09.123456789Z,{i},x",
    "{s},2014-04-07T12:51:09.277+02:00,{i},0",
    "{s},2014-04-07T08:51:09.277-0200,{i},0",
    "{s},2014-04-07T10:51:09.277,{i},0",
    "{s},2014-04-07T10:51:09,{i},0",
    "0{s},2014-04-07T10:51:09.277Z,00{i},0",
    "",
]


def _read(path: Path, fast: bool, monkeypatch) -> rsc15.Events:
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(rsc15, "_fast_clicks", lambda block: None)
        return rsc15.read_clicks(path)


@pytest.mark.parametrize("block", [64, 4096, 32 << 20])
def test_fast_path_reads_every_layout_as_the_scanner(tmp_path, monkeypatch, block):
    rng = random.Random(block)
    lines = []
    for k in range(600):
        layout = LAYOUTS[0] if rng.random() < 0.7 else rng.choice(LAYOUTS)
        lines.append(layout.format(s=1 + k // 3, i=rng.randrange(1, 10**9)))
    path = tmp_path / "clicks.dat"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    monkeypatch.setattr(rsc15, "READ_BLOCK", block)
    scanned = _read(path, False, monkeypatch)
    fast = _read(path, True, monkeypatch)
    for column in ("session", "item", "time"):
        assert np.array_equal(getattr(fast, column), getattr(scanned, column)), column


_MUTATIONS = "0123456789-:.TZ +,x\t\"é"


def _mutants(rng: random.Random, line: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        chars = list(line)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            pos = rng.randrange(len(chars) + 1)
            kind = rng.random()
            if kind < 0.5 and pos < len(chars):
                chars[pos] = rng.choice(_MUTATIONS)
            elif kind < 0.75:
                chars.insert(pos, rng.choice(_MUTATIONS))
            elif pos < len(chars):
                del chars[pos]
        out.append("".join(chars))
    return out


def test_fast_path_never_accepts_what_the_scanner_refuses(tmp_path):
    """Mutated click lines: whenever the fast path reads one, the scanner reads it to the same values."""
    rng = random.Random(15)
    base = ["1,2014-04-07T10:51:09.277Z,214536502,0", "9250000,2014-09-30T23:59:59.999Z,643078800,S",
            "7,2012-02-29T00:00:00.000Z,1,2089033297"]
    accepted = refused = 0
    path = tmp_path / "clicks.dat"
    for line in (m for b in base for m in _mutants(rng, b, 700)):
        block = line.encode() + b"\n"
        fast = rsc15._fast_clicks(block)
        try:
            scanned = rsc15._scan_clicks(path, 1, block)
        except rsc15.BadInputError:
            scanned = None
        if fast is None:
            refused += 1
            continue
        accepted += 1
        assert scanned is not None, line
        assert [a.tolist() for a in fast] == [a.tolist() for a in scanned], line
    assert accepted > 50 and refused > 1000  # both sides of the check were exercised


def test_tables_written_side_by_side_leave_nothing_when_writing_fails(tmp_path, monkeypatch):
    """write_event_tables: the three tables of one pass are all or nothing, no temporary file left."""
    from seqrec_cli import columnar

    ev = rsc15.Events(np.repeat(np.arange(1, 6), 4), np.arange(20), 1_396_000_000_000 + np.arange(20) * 1000, True)
    tables = [(tmp_path / "a.tsv", None, None), (tmp_path / "b.tsv", None, np.arange(20) % 2 == 0),
              (tmp_path / "c.tsv", None, np.arange(20) < 3)]
    records = rsc15.write_event_tables(tables, ev)
    assert [r["bytes"] for r in records] == [(tmp_path / n).stat().st_size for n in ("a.tsv", "b.tsv", "c.tsv")]
    lines = (tmp_path / "a.tsv").read_text().splitlines()
    assert (tmp_path / "b.tsv").read_text().splitlines() == [lines[0]] + lines[1::2]
    assert (tmp_path / "c.tsv").read_text().splitlines() == lines[:4]
    assert rsc15.write_events_tsv(tmp_path / "d.tsv", ev)["sha256"] == records[0]["sha256"]

    for p in tmp_path.iterdir():
        p.unlink()
    monkeypatch.setattr(rsc15, "WRITE_ROWS", 8)
    real = columnar.event_lines

    def fails_after_one_chunk(*args, **kwargs):
        chunks = real(*args, **kwargs)
        yield next(chunks)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(columnar, "event_lines", fails_after_one_chunk)
    with pytest.raises(OSError, match="Input/output error"):
        rsc15.write_event_tables(tables, ev)
    assert list(tmp_path.iterdir()) == []
