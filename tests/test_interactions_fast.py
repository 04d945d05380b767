"""preprocess interactions: the pyarrow path for plain text reads exactly what pandas' reader reads.

Each file is read twice, through ``read_interactions`` as shipped (pyarrow splits plain text,
ISO times in the common layout skip pandas) and with both fast paths switched off (pandas
only, the reader before issue 15): the coded table, the id tables, the reading record and every
error must be the same. Small chunks and blocks put chunk and block edges inside the files.
"""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from seqrec_cli import columnar
from seqrec_cli.datasets import interactions
from seqrec_cli.errors import SeqrecError

HEADER = ["session", "item", "time", "rating"]


def _rows(n: int, seed: int = 5) -> list[list[str]]:
    rng = random.Random(seed)
    return [
        [str(1 + k // 4), str(100 + rng.randrange(40)),
         f"2014-04-{1 + k % 28:02d}T{k % 24:02d}:{k % 60:02d}:{(k * 7) % 60:02d}.{k % 1000:03d}Z", str(1 + rng.randrange(5))]
        for k in range(n)
    ]


def _text(rows, sep=",", header=HEADER, nl="\n") -> bytes:
    lines = ([sep.join(header)] if header else []) + [sep.join(r) for r in rows]
    return (nl.join(lines) + nl).encode()


def _variants() -> dict[str, tuple[bytes, dict]]:
    base = _rows(400)

    def edit(k: int, col: int, value: str) -> list[list[str]]:
        rows = [r[:] for r in base]
        rows[k][col] = value
        return rows

    plain = _text(base)
    return {
        "plain": (plain, {}),
        "crlf and BOM": (b"\xef\xbb\xbf" + _text(base, nl="\r\n"), {}),
        "lone CR": (_text(base, nl="\r"), {}),
        "tab": (_text(base, sep="\t"), {"sep": "\t"}),
        "semicolon": (_text(base, sep=";"), {"sep": ";"}),
        "no header": (_text(base, header=None), {"columns": tuple(HEADER)}),
        "gzip": (gzip.compress(plain, mtime=0), {}),
        "blank lines": (b"\n\n" + plain.replace(b"\n1,", b"\n\n1,", 1) + b"\n\n", {}),
        "quoted field late": (_text(edit(300, 1, '"1,2"')), {}),
        "quote inside a field": (_text(edit(300, 1, 'a"b')), {}),
        "fewer fields": (_text([r if k != 250 else r[:3] for k, r in enumerate(base)]), {}),
        "more fields": (_text([r if k != 250 else r + ["x"] for k, r in enumerate(base)]), {}),
        "whitespace-only line": (plain.replace(b"\n2,", b"\n  \n2,", 1), {}),
        "leading space": (_text(edit(50, 0, " 13")), {}),
        "trailing space": (_text(edit(50, 0, "13 ")), {}),
        "empty item": (_text(edit(20, 1, "")), {}),
        "item with a space": (_text(edit(20, 1, "a b")), {}),
        "NA-like ids": (_text(edit(20, 1, "NA")), {}),
        "other ISO layouts": (_text(edit(30, 2, "2014-04-02 10:00:00+02:00")), {}),
        "bad day": (_text(edit(40, 2, "2014-02-30T10:00:00.000Z")), {}),
        "not UTF-8": (plain.replace(b"\n101,", b"\n10\xe9,", 1), {}),
        "NUL byte": (plain.replace(b"\n102,", b"\n10\x002,", 1), {}),
        "string ids": (_text([[f"s{r[0]}", f"i-{r[1]}", r[2], r[3]] for r in base]), {}),
        "unix seconds": (_text([r[:2] + [str(1_396_000_000 + 37 * k), r[3]] for k, r in enumerate(base)]), {}),
        "header only": (_text([]), {}),
    }


def _read(path: Path, spec: interactions.ReadSpec, fast: bool, monkeypatch):
    with monkeypatch.context() as patch:
        if not fast:
            def not_plain(*args, **kwargs):
                raise interactions._NotPlain
                yield  # pragma: no cover - a generator that refuses at once

            patch.setattr(interactions, "_plain_text_chunks", not_plain)
            patch.setattr(columnar, "iso_ms", lambda column: None)
        try:
            result = interactions.read_interactions(path, spec)
        except SeqrecError as exc:
            return ("error", type(exc).__name__, str(exc))
    t = result.table
    return (t.user.tolist(), t.item.tolist(), t.time.tolist(), t.users.raw.tolist(), t.users.order,
            t.items.raw.tolist(), t.items.order, None if result.rating is None else result.rating.tolist(), result.read)


VARIANTS = _variants()


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_fast_reading_equals_pandas_reading(tmp_path, monkeypatch, name):
    data, options = VARIANTS[name]
    path = tmp_path / ("clicks.csv" if not options.get("sep") == "\t" else "clicks.tsv")
    path.write_bytes(data)
    spec = interactions.ReadSpec(rating_col="rating", **options)
    monkeypatch.setattr(interactions, "CHUNK_ROWS", 64)
    monkeypatch.setattr(interactions, "TEXT_BLOCK", 1000)
    fast = _read(path, spec, True, monkeypatch)
    assert fast == _read(path, spec, False, monkeypatch)


def test_the_fast_paths_are_taken(tmp_path, monkeypatch):
    """On a plain CSV of the common layout neither pandas' tokenizer nor its ISO parser runs."""
    path = tmp_path / "clicks.csv"
    path.write_bytes(VARIANTS["plain"][0])
    monkeypatch.setattr(interactions, "CHUNK_ROWS", 64)
    monkeypatch.setattr(interactions, "_text_chunks", lambda *a: pytest.fail("pandas' tokenizer ran"))
    monkeypatch.setattr(interactions.pd, "to_datetime", lambda *a, **k: pytest.fail("pandas' ISO parser ran"))
    result = interactions.read_interactions(path)
    assert len(result.table) == 400 and result.read["time_format"] == "iso"
    assert np.all(np.diff(result.table.time[:4]) != 0)


def test_id_coder_pyarrow_equals_python():
    """IdCoder.finish through pyarrow gives the table and codes of the Python reference."""
    from seqrec_cli.datasets import table

    rng = random.Random(11)
    pools = {
        "numeric": [str(rng.randrange(10**12)) for _ in range(300)] + ["0", "7", "999999999999999999"],
        "lexicographic": ["10", "9", "010", "x-ä", "B0", "", "é", "a b", "\u00ff", "\u0100", "Z", "0", "007", "1e3", "-1"],
        "19 digits": ["1", "2", "1234567890123456789"],
    }
    for name, pool in pools.items():
        chunks = [[rng.choice(pool) for _ in range(rng.randrange(1, 40))] for _ in range(6)]
        for mixed in (False, True):
            coders = (table.IdCoder(), table.IdCoder())
            provisional = []
            for k, chunk in enumerate(chunks):
                values = pd.Series(chunk, dtype=str)
                codes, uniques = pd.factorize(values)
                plain = np.asarray(uniques, dtype=object)
                arrow = pa.array(plain.tolist(), type=pa.large_string())
                provisional.append((coders[0].add_factorized(codes, arrow if (mixed or k % 2) else plain),
                                    coders[1].add_factorized(codes, plain)))
            fast, ref = table._sorted_ids_arrow(coders[0]._uniques), table._sorted_ids_python(coders[1]._uniques)
            assert fast[0].order == ref[0].order, name
            assert fast[0].raw.tolist() == ref[0].raw.tolist(), name
            for a, b in provisional:
                assert fast[1][a].tolist() == ref[1][b].tolist(), name
    assert table.encode_ids(np.array(["10", "9", "10"], dtype=object))[0].tolist() == [1, 0, 1]
