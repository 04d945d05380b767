"""seqrec download, through the real CLI, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import struct
import zipfile
import zlib
from pathlib import Path

import py7zr
import pytest
from conftest import invoke, listing, shared_file
from httpserver import FileServer, free_port

from seqrec_cli import formats
from seqrec_cli.console import human_bytes
from seqrec_cli.datasets.sources import SOURCES

FAST = ("--retry-wait", "0.01")  # retries without real waiting
ML1M_PUBLISHED_MD5 = "c4d9eecfca2ab87c1945afe126590906"
RAW = Path("data/raw/ml-1m")

RATINGS = "".join(
    f"{u}::{1000 + i}::{1 + (u + i) % 5}::{978300000 + 60 * u + i}\n" for u in range(1, 41) for i in range(25)
)
NOISE = random.Random(0).randbytes(600_000)  # incompressible: the transfer is long enough to cut midway


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes | str]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name, (2000, 1, 1, 0, 0, 0))
            zf.writestr(info, data, compress_type=zipfile.ZIP_STORED if data is NOISE else zipfile.ZIP_DEFLATED)
    return buf.getvalue()


ML1M_FILES = {
    "ml-1m/README": "test copy\n",
    "ml-1m/movies.dat": "1000::Toy Story (1995)::Animation\n",
    "ml-1m/ratings.dat": RATINGS,
    "ml-1m/noise.bin": NOISE,
}
ML1M_ZIP = _zip([("ml-1m/", b"")] + list(ML1M_FILES.items()))
ML1M_MD5 = hashlib.md5(ML1M_ZIP).hexdigest()
ML1M_SHA256 = hashlib.sha256(ML1M_ZIP).hexdigest()


def _7z(path: Path, members: dict[str, bytes], rename: dict[str, str] | None = None) -> bytes:
    """A real 7z made with py7zr. ``rename`` rewrites stored names (same length) in the plain
    header afterwards, fixing both CRCs: py7zr refuses to write unsafe names itself."""
    with py7zr.SevenZipFile(path, "w") as sz:
        sz.set_encoded_header_mode(False)
        for name, data in members.items():
            sz.writestr(data, name)
    raw = bytearray(path.read_bytes())
    if rename:
        offset, size = struct.unpack_from("<QQ", raw, 12)
        start = 32 + offset
        header = bytes(raw[start : start + size])
        for old, new in rename.items():
            a, b = old.encode("utf-16-le"), new.encode("utf-16-le")
            assert len(a) == len(b) and header.count(a) == 1
            header = header.replace(a, b)
        raw[start : start + size] = header
        struct.pack_into("<I", raw, 28, zlib.crc32(header))
        struct.pack_into("<I", raw, 8, zlib.crc32(bytes(raw[12:32])))
        path.write_bytes(bytes(raw))
    return bytes(raw)


def error_line(result) -> str:
    """The run failed with exit 1 and exactly one ``Error:`` line, the last thing on stderr."""
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip("\n").splitlines()[-1] == errors[0]
    return errors[0]


def ml1m_listing() -> list[str]:
    """Archive, record and the one member the pipeline reads: nothing else is extracted."""
    return sorted(f"data/raw/ml-1m/{n}" for n in ("SOURCE.json", "ml-1m.zip", "ml-1m/ratings.dat"))


def source_json(folder: Path = RAW) -> dict:
    return json.loads((folder / "SOURCE.json").read_text(encoding="utf-8"))


@pytest.fixture
def server():
    with FileServer({"ml-1m.zip": ML1M_ZIP}) as srv:
        yield srv


# ---------------------------------------------------------------- the normal path
def test_download_verifies_extracts_and_records(runner, workdir, server):
    url = server.url("ml-1m.zip")
    result = invoke(runner, "download", "ml-1m", "--url", url, "--checksum", ML1M_MD5)
    assert result.exit_code == 0, result.output
    assert listing(workdir) == ml1m_listing()
    assert (RAW / "ml-1m.zip").read_bytes() == ML1M_ZIP
    assert formats.ML1M_RATINGS.read_text() == RATINGS
    assert server.requests == [("ml-1m.zip", None)]
    out = result.stdout.splitlines()
    assert out[0].startswith(f"downloaded {RAW / 'ml-1m.zip'}: ")
    assert out[1] == f"verified md5 against the checksum given with --checksum (sha256 {ML1M_SHA256})"
    assert out[2] == f"extracted 1 file to {RAW}: {formats.ML1M_RATINGS}"
    assert out[3] == f"wrote {RAW / 'SOURCE.json'}"
    assert out[4] == "next: seqrec preprocess ml-1m"
    assert len(out) == 5
    rec = source_json()
    assert rec["dataset"] == "ml-1m" and rec["url"] == url and rec["origin"] == "download"
    assert rec["archive"] == "ml-1m.zip" and rec["bytes"] == len(ML1M_ZIP)
    assert rec["md5"] == ML1M_MD5 and rec["sha256"] == ML1M_SHA256
    assert rec["verified_against"] == "user" and rec["verified_with"] == ["md5"]
    assert rec["member"] == "ml-1m/ratings.dat" and rec["archive_prefix_stripped"] == ""
    assert rec["extracted"] == [
        {"path": "ml-1m/ratings.dat", "bytes": len(RATINGS), "sha256": hashlib.sha256(RATINGS.encode()).hexdigest()}
    ]


def test_sha256_prefixed_checksum_is_accepted(runner, workdir, server):
    result = invoke(
        runner, "download", "ml-1m", "--url", server.url("ml-1m.zip"), "--checksum", f"SHA256:{ML1M_SHA256.upper()}"
    )
    assert result.exit_code == 0, result.output
    assert source_json()["verified_with"] == ["sha256"]


def test_second_run_does_nothing_and_force_fetches_again(runner, workdir, server):
    args = ("download", "ml-1m", "--url", server.url("ml-1m.zip"), "--checksum", ML1M_MD5)
    assert invoke(runner, *args).exit_code == 0
    os.utime(RAW / "SOURCE.json", (1, 1))

    again = invoke(runner, *args)
    assert again.exit_code == 0, again.output
    assert again.stdout == (
        f"ml-1m is already in {RAW} (ml-1m.zip matches the sha256 in SOURCE.json); nothing to do "
        "(use --force to fetch it again)\n"
    )
    assert again.stderr == ""
    assert len(server.requests) == 1
    assert (RAW / "SOURCE.json").stat().st_mtime == 1

    forced = invoke(runner, *args, "--force")
    assert forced.exit_code == 0, forced.output
    assert forced.stdout.startswith("downloaded ")
    assert server.requests == [("ml-1m.zip", None)] * 2
    assert listing(workdir) == ml1m_listing()
    assert (RAW / "SOURCE.json").stat().st_mtime != 1


def test_missing_extracted_file_is_restored_from_the_archive_without_network(runner, workdir, server):
    args = ("download", "ml-1m", "--url", server.url("ml-1m.zip"), "--checksum", ML1M_MD5)
    assert invoke(runner, *args).exit_code == 0
    formats.ML1M_RATINGS.unlink()
    result = invoke(runner, *args)
    assert result.exit_code == 0, result.output
    assert f"kept {RAW / 'ml-1m.zip'} already in place" in result.stdout
    assert len(server.requests) == 1
    assert formats.ML1M_RATINGS.read_text() == RATINGS
    assert listing(workdir) == ml1m_listing()


# ---------------------------------------------------------------- interrupted transfers
def test_dropped_connection_is_retried_with_a_range_request(runner, workdir, server):
    server.drop_after = 300_000
    result = invoke(runner, "download", "ml-1m", "--url", server.url("ml-1m.zip"), "--checksum", ML1M_MD5, *FAST)
    assert result.exit_code == 0, result.output
    ranges = server.ranges()
    assert len(ranges) == 2 and ranges[0] is None
    resumed_at = int(ranges[1].removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= 300_000 and ranges[1] == f"bytes={resumed_at}-"
    assert "retrying in 0.01 s" in result.stderr
    assert (RAW / "ml-1m.zip").read_bytes() == ML1M_ZIP
    assert listing(workdir) == ml1m_listing()


def test_interrupted_download_resumes_on_the_next_run(runner, workdir, server):
    server.drop_after = 300_000
    url = server.url("ml-1m.zip")
    first = invoke(runner, "download", "ml-1m", "--url", url, "--checksum", ML1M_MD5, "--retries", "0")
    line = error_line(first)
    part = RAW / "ml-1m.zip.part"
    kept = part.stat().st_size
    assert 0 < kept <= 300_000
    assert part.read_bytes() == ML1M_ZIP[:kept]
    assert line == (
        f"Error: cannot download {url}: connection broken during the transfer; the {kept} bytes fetched so far "
        f"are kept in {part} and the next run resumes; if this machine is offline, download {url} elsewhere "
        "and run: seqrec download ml-1m --from-file ml-1m.zip"
    )
    assert listing(workdir) == ["data/raw/ml-1m/ml-1m.zip.part"]

    second = invoke(runner, "download", "ml-1m", "--url", url, "--checksum", ML1M_MD5)
    assert second.exit_code == 0, second.output
    assert server.ranges() == [None, f"bytes={kept}-"]
    assert "resumed at " in second.stdout.splitlines()[0]
    assert (RAW / "ml-1m.zip").read_bytes() == ML1M_ZIP
    assert listing(workdir) == ml1m_listing()


def test_server_ignoring_range_restarts_from_zero(runner, workdir, server):
    RAW.mkdir(parents=True)
    (RAW / "ml-1m.zip.part").write_bytes(b"stale bytes that are not the archive")
    server.ignore_range = True
    result = invoke(runner, "download", "ml-1m", "--url", server.url("ml-1m.zip"), "--checksum", ML1M_MD5)
    assert result.exit_code == 0, result.output
    assert server.ranges() == ["bytes=36-"]
    assert "the server ignored the range request" in result.stderr
    assert (RAW / "ml-1m.zip").read_bytes() == ML1M_ZIP
    assert listing(workdir) == ml1m_listing()


def test_complete_part_is_verified_without_transfer(runner, workdir, server):
    RAW.mkdir(parents=True)
    (RAW / "ml-1m.zip.part").write_bytes(ML1M_ZIP)
    result = invoke(runner, "download", "ml-1m", "--url", server.url("ml-1m.zip"), "--checksum", ML1M_MD5)
    assert result.exit_code == 0, result.output
    assert server.ranges() == [f"bytes={len(ML1M_ZIP)}-"]  # answered 416: nothing more to send
    assert result.stdout.startswith(f"downloaded {RAW / 'ml-1m.zip'}: 0 B in ")
    assert listing(workdir) == ml1m_listing()


def test_part_larger_than_the_file_starts_over(runner, workdir, server):
    RAW.mkdir(parents=True)
    (RAW / "ml-1m.zip.part").write_bytes(ML1M_ZIP + b"trailing junk")
    result = invoke(runner, "download", "ml-1m", "--url", server.url("ml-1m.zip"), "--checksum", ML1M_MD5)
    assert result.exit_code == 0, result.output
    assert server.ranges() == [f"bytes={len(ML1M_ZIP) + 13}-", None]
    assert (RAW / "ml-1m.zip").read_bytes() == ML1M_ZIP
    assert listing(workdir) == ml1m_listing()


# ---------------------------------------------------------------- server and network errors
def test_server_error_then_success(runner, workdir, server):
    server.fail_times = 2
    result = invoke(runner, "download", "ml-1m", "--url", server.url("ml-1m.zip"), "--checksum", ML1M_MD5, *FAST)
    assert result.exit_code == 0, result.output
    assert server.ranges() == [None, None, None]
    assert result.stderr.count("HTTP 500 Internal Server Error; retrying in") == 2
    assert listing(workdir) == ml1m_listing()


def test_server_error_that_persists_gives_up(runner, workdir, server):
    server.fail_times = 99
    url = server.url("ml-1m.zip")
    result = invoke(runner, "download", "ml-1m", "--url", url, "--checksum", ML1M_MD5, "--retries", "2", *FAST)
    line = error_line(result)
    assert line.startswith(f"Error: cannot download {url}: HTTP 500 Internal Server Error (after 3 attempts);")
    assert len(server.requests) == 3
    assert listing(workdir) == []


def test_not_found_is_an_error_without_retry(runner, workdir, server):
    url = server.url("missing.zip")
    result = invoke(runner, "download", "ml-1m", "--url", url, *FAST)
    line = error_line(result)
    assert line == (
        f"Error: {url}: HTTP 404 Not Found; check the URL (--url) or download the file elsewhere and use --from-file"
    )
    assert len(server.requests) == 1
    assert listing(workdir) == []


def test_offline_says_how_to_import_the_file(runner, workdir):
    url = f"http://127.0.0.1:{free_port()}/ml-1m.zip"
    result = invoke(runner, "download", "ml-1m", "--url", url, "--retries", "2", *FAST)
    line = error_line(result)
    assert line == (
        f"Error: cannot download {url}: connection refused (after 3 attempts); if this machine is offline, "
        f"download {url} elsewhere and run: seqrec download ml-1m --from-file ml-1m.zip"
    )
    assert result.stderr.count("retrying in") == 2
    assert listing(workdir) == []


# ---------------------------------------------------------------- verification
@pytest.mark.parametrize(
    "checksum, expected_text",
    [
        (None, f"md5 mismatch: expected {ML1M_PUBLISHED_MD5} (published), got {ML1M_MD5}"),
        ("sha256:" + "0" * 64, f"sha256 mismatch: expected {'0' * 64} (user), got {ML1M_SHA256}"),
    ],
)
def test_checksum_mismatch_keeps_nothing(runner, workdir, server, checksum, expected_text):
    url = server.url("ml-1m.zip")
    args = ["download", "ml-1m", "--url", url] + (["--checksum", checksum] if checksum else [])
    line = error_line(invoke(runner, *args))
    assert line.startswith(f"Error: {url}: {expected_text}; the file was deleted; ")
    if checksum is None:
        assert line.endswith("pass that copy's checksum with --checksum md5:<hex>")
    assert listing(workdir) == []


@pytest.mark.parametrize("bad", ["abc", "md5:" + "0" * 64, "crc32:1234abcd", "z" * 32])
def test_malformed_checksum_is_refused_before_any_request(runner, workdir, server, bad):
    line = error_line(invoke(runner, "download", "ml-1m", "--url", server.url("ml-1m.zip"), "--checksum", bad))
    assert line.startswith("Error: --checksum: ")
    assert server.requests == []


def test_unknown_dataset_lists_the_known_ones(runner, workdir):
    line = error_line(invoke(runner, "download", "ml-25m"))
    assert line == "Error: unknown data set 'ml-25m'; known data sets: ml-1m, ml-100k, ml-20m, yoochoose"


def test_url_and_from_file_exclude_each_other(runner, workdir):
    Path("ml-1m.zip").write_bytes(ML1M_ZIP)
    line = error_line(invoke(runner, "download", "ml-1m", "--url", "http://127.0.0.1:1/x", "--from-file", "ml-1m.zip"))
    assert line == "Error: --url and --from-file exclude each other: give one"


# ---------------------------------------------------------------- --from-file
def test_from_file_imports_verifies_and_extracts(runner, workdir):
    Path("ml-1m.zip").write_bytes(ML1M_ZIP)
    result = invoke(runner, "download", "ml-1m", "--from-file", "ml-1m.zip", "--checksum", ML1M_MD5)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"imported ml-1m.zip as {RAW / 'ml-1m.zip'} ({human_bytes(len(ML1M_ZIP))})"
    assert listing(workdir) == sorted(["ml-1m.zip"] + ml1m_listing())
    rec = source_json()
    assert rec["origin"] == "file" and rec["url"] == (workdir / "ml-1m.zip").resolve().as_uri()
    assert rec["verified_against"] == "user" and rec["sha256"] == ML1M_SHA256
    again = invoke(runner, "download", "ml-1m", "--from-file", "ml-1m.zip", "--checksum", ML1M_MD5)
    assert again.exit_code == 0 and again.stdout.startswith("ml-1m is already in ")


def test_from_file_checked_against_the_published_checksum(runner, workdir):
    Path("copy.zip").write_bytes(ML1M_ZIP)
    line = error_line(invoke(runner, "download", "ml-1m", "--from-file", "copy.zip"))
    assert line.startswith(
        f"Error: copy.zip: md5 mismatch: expected {ML1M_PUBLISHED_MD5} (published), got {ML1M_MD5}; "
        "nothing was imported; "
    )
    assert listing(workdir) == ["copy.zip"]


def test_from_file_missing(runner, workdir):
    line = error_line(invoke(runner, "download", "ml-1m", "--from-file", "nowhere.zip"))
    assert line == "Error: archive given with --from-file not found: nowhere.zip"


def test_archive_without_the_needed_member_is_refused(runner, workdir):
    data = _zip([("ml-1m/movies.dat", b"1::x::y\n")])
    Path("other.zip").write_bytes(data)
    line = error_line(
        invoke(runner, "download", "ml-1m", "--from-file", "other.zip", "--checksum", hashlib.md5(data).hexdigest())
    )
    assert "no ml-1m/ratings.dat in this archive (it holds: ml-1m/movies.dat); is it the right file?" in line
    assert listing(workdir) == ["other.zip"]


# ---------------------------------------------------------------- unsafe archives
def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, (2000, 1, 1, 0, 0, 0))
    info.create_system = 3
    info.external_attr = 0o120777 << 16
    return info


@pytest.mark.parametrize(
    "member, entry, why",
    [
        ("../evil.txt", "../evil.txt", "path with '..'"),
        ("ml-1m/../../evil.txt", "ml-1m/../../evil.txt", "path with '..'"),
        ("/tmp/evil.txt", "/tmp/evil.txt", "absolute path"),
        ("ml-1m/link", _symlink_info("ml-1m/link"), "symbolic link"),
    ],
)
def test_unsafe_zip_member_is_refused_before_extraction(runner, workdir, server, member, entry, why):
    data = _zip([("ml-1m/ratings.dat", RATINGS), (entry, "/etc/passwd" if why == "symbolic link" else "evil")])
    server.files["bad.zip"] = data
    url = server.url("bad.zip")
    line = error_line(invoke(runner, "download", "ml-1m", "--url", url, "--checksum", hashlib.md5(data).hexdigest()))
    assert line == f"Error: {url}: refusing to extract member {member!r}: {why}; nothing was extracted"
    assert listing(workdir) == []
    assert not (workdir.parent / "evil.txt").exists()


@pytest.mark.parametrize(
    "placeholder, member, why",
    [("XX/evil.txt", "../evil.txt", "path with '..'"), ("Xtmp/evil.txt", "/tmp/evil.txt", "absolute path")],
)
def test_unsafe_7z_member_is_refused_before_extraction(runner, workdir, placeholder, member, why):
    data = _7z(
        workdir / "bad.7z",
        {"yoochoose-clicks.dat": b"1,2014-04-07T10:51:09.277Z,214536502,0\n", placeholder: b"evil"},
        {placeholder: member},
    )
    line = error_line(
        invoke(runner, "download", "yoochoose", "--from-file", "bad.7z", "--checksum", hashlib.sha256(data).hexdigest())
    )
    assert line == f"Error: bad.7z: refusing to extract member {member!r}: {why}; nothing was extracted"
    assert listing(workdir) == ["bad.7z"]
    assert not (workdir.parent / "evil.txt").exists()


def test_7z_symlink_is_refused(runner, workdir):
    Path("yoochoose-clicks.dat").write_bytes(b"1,2014-04-07T10:51:09.277Z,214536502,0\n")
    os.symlink("/etc/passwd", "link")
    with py7zr.SevenZipFile("bad.7z", "w") as sz:
        sz.write("yoochoose-clicks.dat", "yoochoose-clicks.dat")
        sz.write("link", "link")
    os.unlink("link")
    os.unlink("yoochoose-clicks.dat")
    line = error_line(invoke(runner, "download", "yoochoose", "--from-file", "bad.7z"))
    assert line == "Error: bad.7z: refusing to extract member 'link': symbolic link; nothing was extracted"
    assert listing(workdir) == ["bad.7z"]


# ---------------------------------------------------------------- yoochoose (7z, no published checksum)
CLICKS = b"".join(b"%d,2014-04-07T10:%02d:09.277Z,2145365%02d,0\n" % (s, s % 60, s % 97) for s in range(1, 500))


def test_yoochoose_7z_verified_by_size_and_extracted(runner, workdir):
    members = {"yoochoose-clicks.dat": CLICKS, "yoochoose-buys.dat": b"", "dataset-README.txt": b"readme\n"}
    data = _7z(workdir / "src.7z", members)
    os.unlink("src.7z")
    with FileServer({"yoochoose-data.7z": data}) as srv:
        result = invoke(runner, "download", "yoochoose", "--url", srv.url("yoochoose-data.7z"))
    assert result.exit_code == 0, result.output
    assert formats.YOOCHOOSE_CLICKS.read_bytes() == CLICKS
    assert listing(workdir) == sorted(
        f"data/raw/yoochoose/{n}" for n in ["SOURCE.json", "yoochoose-data.7z", "yoochoose-clicks.dat"]
    )
    rec = source_json(Path("data/raw/yoochoose"))
    assert rec["verified_against"] == "content-length" and rec["verified_with"] == ["size"]
    assert rec["sha256"] == hashlib.sha256(data).hexdigest() and rec["bytes"] == len(data)
    assert rec["extracted"] == [
        {"path": "yoochoose-clicks.dat", "bytes": len(CLICKS), "sha256": hashlib.sha256(CLICKS).hexdigest()}
    ]
    out = result.stdout.splitlines()
    assert out[1] == (
        f"verified the size ({len(data)} bytes) against the server's Content-Length; no checksum is published, "
        f"recorded sha256 {rec['sha256']}"
    )
    assert out[-1] == "next: seqrec preprocess yoochoose"


def test_yoochoose_in_a_subfolder_is_flattened(runner, workdir):
    members = {"yoochoose-data/yoochoose-clicks.dat": CLICKS, "yoochoose-data/yoochoose-test.dat": b"t\n"}
    data = _7z(workdir / "yc.7z", members)
    result = invoke(
        runner, "download", "yoochoose", "--from-file", "yc.7z", "--checksum", hashlib.md5(data).hexdigest()
    )
    assert result.exit_code == 0, result.output
    assert formats.YOOCHOOSE_CLICKS.read_bytes() == CLICKS
    rec = source_json(Path("data/raw/yoochoose"))
    assert rec["archive_prefix_stripped"] == "yoochoose-data/"
    assert [f["path"] for f in rec["extracted"]] == ["yoochoose-clicks.dat"]
    assert "folder yoochoose-data/ flattened" in result.stdout
    assert listing(workdir) == sorted(
        ["yc.7z"] + [f"data/raw/yoochoose/{n}" for n in ("SOURCE.json", "yoochoose-data.7z", "yoochoose-clicks.dat")]
    )


# ---------------------------------------------------------------- help and registry
def test_help_documents_every_option(runner):
    result = invoke(runner, "download", "--help")
    assert result.exit_code == 0
    for opt in ("--dest", "--url", "--checksum", "--force", "--from-file", "--retries", "--retry-wait", "--timeout"):
        assert opt in result.stdout
    assert "[default: 4; x>=0]" in result.stdout


def test_registry_matches_the_protocol():
    ml, yc = SOURCES["ml-1m"], SOURCES["yoochoose"]
    assert ml.url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert ml.md5 == ML1M_PUBLISHED_MD5
    assert ml.sha256 == "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"
    assert formats.raw_dir("ml-1m") / ml.member == formats.ML1M_RATINGS
    assert yc.url == "https://s3-eu-west-1.amazonaws.com/yc-rdata/yoochoose-data.7z"
    assert yc.md5 is None and yc.sha256 is None and yc.kind == "7z"
    assert formats.raw_dir("yoochoose") / yc.member == formats.YOOCHOOSE_CLICKS


# ---------------------------------------------------------------- the real ML-1M archive (when present)
def test_real_ml1m_archive_from_a_local_mirror(runner, workdir):
    zip_path = shared_file("movielens-1m", "reconstructed", "ml-1m.zip")
    with FileServer({"ml-1m.zip": zip_path.read_bytes()}) as srv:
        result = invoke(
            runner, "download", "ml-1m", "--url", srv.url("ml-1m.zip"), "--checksum", "7f84fe353447f0e820cbd0e2378e75a1"
        )
    assert result.exit_code == 0, result.output
    with open(formats.ML1M_RATINGS, "rb") as fh:
        assert sum(1 for _ in fh) == 1_000_209
    assert [f["path"] for f in source_json()["extracted"]] == ["ml-1m/ratings.dat"]  # only what seqrec reads
