"""Issue 11, kind 6: archives are bounded and verified. A corrupt member (bad deflate, CRC,
LZMA) is one ``Error:`` line and the bad archive is not kept as downloaded (the next run fetches
it again); only the member seqrec reads is extracted; a member whose declared size or compression
ratio is absurd is refused before anything is extracted. Real archives, a real HTTP server.

Case 22 (../shared/cases/22-corrupt-archives) is the first two tests, with the same archives.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
from pathlib import Path

import py7zr
import pytest
from conftest import invoke, listing
from helpers import CASES, error_line, ratings_text
from httpserver import FileServer

from seqrec_cli import formats

CLICKS = b"".join(b"%d,2014-04-07T10:%02d:09.277Z,2145365%02d,0\n" % (s, s % 60, s % 97) for s in range(1, 300))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, (2000, 1, 1, 0, 0, 0)), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _7z(members: dict[str, bytes], copy: bool = False) -> bytes:
    buf = io.BytesIO()
    filters = [{"id": py7zr.FILTER_COPY}] if copy else None
    with py7zr.SevenZipFile(buf, "w", filters=filters) as sz:
        for name, data in members.items():
            sz.writestr(data, name)
    return buf.getvalue()


# ---------------------------------------------------------------- case 22: corrupt compressed data
@pytest.mark.parametrize(
    ("archive", "dataset", "reason"),
    [
        ("zip_bad_deflate.zip", "ml-1m", "Error -3 while decompressing data: invalid code lengths set"),
        ("zip_bad_crc.zip", "ml-1m", "Bad CRC-32 for file 'ml-1m/ratings.dat'"),
        ("7z_bad_lzma.7z", "yoochoose", "Corrupt input data"),
    ],
)
def test_case22_corrupt_archive_is_one_error_and_nothing_is_kept(runner, workdir, archive, dataset, reason):
    data = (CASES / "22" / archive).read_bytes()
    Path(archive).write_bytes(data)
    line = error_line(
        invoke(runner, "download", dataset, "--from-file", archive, "--dest", "r", "--checksum", f"sha256:{_sha256(data)}"),
        alone=False,
    )
    assert line == f"Error: {archive}: corrupt archive ({reason}); nothing was imported or extracted"
    assert listing(workdir) == [archive]


def test_case22_corrupt_download_is_deleted_and_fetched_again(runner, workdir):
    data = (CASES / "22" / "7z_bad_lzma.7z").read_bytes()
    with FileServer({"yoochoose-data.7z": data}) as srv:
        url = srv.url("yoochoose-data.7z")
        for run in (1, 2):
            line = error_line(invoke(runner, "download", "yoochoose", "--url", url, "--dest", "y", "--retries", "0"), alone=False)
            assert line == (
                f"Error: {url}: corrupt archive (Corrupt input data); nothing was extracted and the download was "
                "deleted: run again to fetch it anew (or give another mirror with --url)"
            )
            assert listing(workdir) == []
            assert len(srv.requests) == run  # every run fetches it again: nothing corrupt is kept


# ---------------------------------------------------------------- more corrupt archives
def test_corrupt_ml1m_download_with_the_right_checksum_is_deleted(runner, workdir):
    good = _zip({"ml-1m/ratings.dat": ratings_text().encode()})
    bad = bytearray(good)
    at = bad.find(b"ml-1m/ratings.dat") + len("ml-1m/ratings.dat") + 5  # inside the deflate stream
    bad[at] ^= 0xFF
    with FileServer({"ml-1m.zip": bytes(bad)}) as srv:
        args = ("download", "ml-1m", "--url", srv.url("ml-1m.zip"), "--checksum", _sha256(bytes(bad)), "--retries", "0")
        line = error_line(invoke(runner, *args), alone=False)
        assert line.startswith(f"Error: {srv.url('ml-1m.zip')}: corrupt archive (")
        assert line.endswith("); nothing was extracted and the download was deleted: run again to fetch it anew (or give another mirror with --url)")
        assert listing(workdir) == []
        srv.files["ml-1m.zip"] = good  # the mirror is fixed: the next run fetches and succeeds
        result = invoke(runner, "download", "ml-1m", "--url", srv.url("ml-1m.zip"), "--checksum", _sha256(good))
        assert result.exit_code == 0, result.output
        assert len(srv.requests) == 2
    assert formats.ML1M_RATINGS.read_text() == ratings_text()


def test_7z_member_failing_its_crc(runner, workdir):
    raw = bytearray(_7z({"yoochoose-clicks.dat": CLICKS}, copy=True))
    raw[raw.find(b"2145365")] ^= 1  # stored data: only the CRC can tell
    Path("c.7z").write_bytes(bytes(raw))
    line = error_line(invoke(runner, "download", "yoochoose", "--from-file", "c.7z"), alone=False)
    assert line == "Error: c.7z: corrupt archive (CRC check failed for yoochoose-clicks.dat); nothing was imported or extracted"
    assert listing(workdir) == ["c.7z"]


def test_corrupt_archive_already_in_place_is_deleted_and_fetched_again(runner, workdir):
    """An archive left in the folder (by an older seqrec, or copied there) that turns out corrupt
    is deleted, never re-extracted forever: the next run fetches it."""
    good = _7z({"yoochoose-clicks.dat": CLICKS})
    dest = formats.raw_dir("yoochoose")
    dest.mkdir(parents=True)
    (dest / "yoochoose-data.7z").write_bytes((CASES / "22" / "7z_bad_lzma.7z").read_bytes())
    with FileServer({"yoochoose-data.7z": good}) as srv:
        url = srv.url("yoochoose-data.7z")
        line = error_line(invoke(runner, "download", "yoochoose", "--url", url), alone=False)
        assert line == (
            f"Error: {dest / 'yoochoose-data.7z'}: corrupt archive (Corrupt input data); nothing was extracted and "
            f"{dest / 'yoochoose-data.7z'} was deleted: run again to fetch it anew"
        )
        assert listing(workdir) == [] and srv.requests == []
        result = invoke(runner, "download", "yoochoose", "--url", url)
        assert result.exit_code == 0, result.output
        assert len(srv.requests) == 1
    assert formats.YOOCHOOSE_CLICKS.read_bytes() == CLICKS


def test_truncated_zip_is_refused(runner, workdir):
    data = _zip({"ml-1m/ratings.dat": ratings_text().encode()})
    Path("cut.zip").write_bytes(data[: len(data) // 2])
    line = error_line(invoke(runner, "download", "ml-1m", "--from-file", "cut.zip", "--checksum", _sha256(data[: len(data) // 2])), alone=False)
    assert line == "Error: cut.zip: not a readable zip archive (File is not a zip file)"
    assert listing(workdir) == ["cut.zip"]


# ---------------------------------------------------------------- bounds: absurd sizes and ratios refused first
def test_zip_bomb_by_ratio_is_refused_before_extraction(runner, workdir):
    data = _zip({"ml-1m/ratings.dat": b"1::1::1::1\n" * (2 << 20)})  # 22 MB of one line, a few KB packed
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("ml-1m/ratings.dat")
    Path("bomb.zip").write_bytes(data)
    line = error_line(invoke(runner, "download", "ml-1m", "--from-file", "bomb.zip", "--checksum", _sha256(data)), alone=False)
    from seqrec_cli.console import human_bytes

    ratio = info.file_size / info.compress_size
    assert ratio > 500
    assert line == (
        f"Error: bomb.zip: refusing to extract member 'ml-1m/ratings.dat': it would expand {ratio:,.0f} times "
        f"({human_bytes(info.compress_size)} to {human_bytes(info.file_size)}; data files expand at most 100 times); "
        "nothing was extracted"
    )
    assert listing(workdir) == ["bomb.zip"]


def _declare_size(data: bytes, size: int) -> bytes:
    """The same zip whose headers declare ``size`` uncompressed bytes for its one member."""
    raw = bytearray(data)
    local = raw.find(b"PK\x03\x04")
    struct.pack_into("<I", raw, local + 22, size)
    central = raw.find(b"PK\x01\x02")
    struct.pack_into("<I", raw, central + 24, size)
    return bytes(raw)


def test_member_declaring_an_absurd_size_is_refused(runner, workdir):
    data = _declare_size(_zip({"ml-1m/ratings.dat": ratings_text().encode()}), 3 << 30)
    Path("huge.zip").write_bytes(data)
    line = error_line(invoke(runner, "download", "ml-1m", "--from-file", "huge.zip", "--checksum", _sha256(data)), alone=False)
    assert line == (
        "Error: huge.zip: refusing to extract member 'ml-1m/ratings.dat': it declares 3.2 GB, more than any "
        "ml-1m ml-1m/ratings.dat (268.4 MB at most); nothing was extracted"
    )
    assert listing(workdir) == ["huge.zip"]


def test_7z_expanding_absurdly_is_refused(runner, workdir):
    data = _7z({"yoochoose-clicks.dat": CLICKS, "padding.bin": b"\0" * (8 << 20)})
    Path("b.7z").write_bytes(data)
    line = error_line(invoke(runner, "download", "yoochoose", "--from-file", "b.7z"), alone=False)
    assert line.startswith("Error: b.7z: refusing to extract member 'yoochoose-clicks.dat': it would expand ")
    assert line.endswith("data files expand at most 100 times); nothing was extracted")
    assert listing(workdir) == ["b.7z"]


def test_only_the_member_seqrec_reads_is_extracted(runner, workdir):
    data = _zip({"ml-1m/ratings.dat": ratings_text().encode(), "ml-1m/movies.dat": b"1::x::y\n", "ml-1m/README": b"r\n"})
    Path("a.zip").write_bytes(data)
    result = invoke(runner, "download", "ml-1m", "--from-file", "a.zip", "--checksum", _sha256(data))
    assert result.exit_code == 0, result.output
    assert listing(workdir / "data") == ["raw/ml-1m/SOURCE.json", "raw/ml-1m/ml-1m.zip", "raw/ml-1m/ml-1m/ratings.dat"]
