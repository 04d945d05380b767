"""Download, verify and extract a raw data set archive: the library behind ``seqrec download``.

The order of work is what makes it safe to interrupt at any point (the destination folder is
locked for the whole run: a second ``seqrec download`` into it is refused):

1. fetch into ``<dest>/<archive>.part`` (resumed with an HTTP Range request when it exists;
   connection errors, timeouts and 5xx are retried with exponential back-off, each retry resuming
   from the bytes already written);
2. verify it: the published MD5/SHA-256, or the one given with ``--checksum``, or (when none is
   known) the size the server announced; then check every archive member (no absolute paths, no
   ``..``, no links or special files) and the sizes it declares (no member larger than the data
   set's file can be, no compression ratio beyond :data:`MAX_RATIO`) *before* anything is
   extracted. A file that fails is deleted;
3. extract only the member the pipeline reads into a temporary folder, decompressing and checking
   every byte (CRC-32, LZMA stream): a corrupt archive is deleted (the next run fetches it anew),
   never kept as downloaded;
4. rename the archive to ``<dest>/<archive>`` and the extracted file into place;
5. write ``<dest>/SOURCE.json`` last (with the SHA-256 of the extracted file): it is the marker of
   a complete download.

A folder with archive, extracted file and a SOURCE.json that still matches them is left alone.
A full disk at any step is one :class:`~seqrec_cli.fileio.DiskFullError` saying what was kept
(a verified ``.part`` is kept, so the next run extracts it without fetching it again).
Nothing here prints results or exits: it returns a :class:`DownloadResult` and raises
``SeqrecError`` subclasses for everything a user can fix. Progress goes to stderr (Tracker, note).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..console import Tracker, human_bytes, note
from ..errors import BadInputError, ChecksumError, MissingInputError, SeqrecError
from ..fileio import DiskFullError, file_digests, folder_lock, free_bytes, is_disk_full, replace_path, write_json
from ..formats import SOURCE_FILE, now_iso, raw_dir
from ..textio import read_json
from .sources import Source, get_source

DEFAULT_RETRIES = 4  # retries after the first attempt (connection errors, timeouts, 5xx)
DEFAULT_RETRY_WAIT = 1.0  # seconds before the first retry; doubles at every retry (1, 2, 4, 8 s)
DEFAULT_TIMEOUT = 30.0  # seconds to connect, and the longest silence tolerated while reading
NET_CHUNK = 1 << 16  # bytes written per network read
COPY_CHUNK = 1 << 20  # bytes per read when importing a file
PART_SUFFIX = ".part"  # the resumable download: <dest>/<archive>.part
EXTRACT_PREFIX = ".extract."  # temporary extraction folders: <dest>/.extract.XXXX.tmp
IMPORT_PREFIX = ".import."  # temporary copy of a --from-file archive: <dest>/.import.XXXX.tmp
SOURCE_KIND = "raw-source"  # the "kind" field of SOURCE.json
MAX_RATIO = 100  # a member may expand at most this many times (real data files: 4-8 times; zip bombs: 1000+)
RATIO_FLOOR = 1 << 20  # bytes: smaller members are not held to MAX_RATIO (a tiny file of zeros is harmless)
MAX_TOTAL_FACTOR = 4  # a 7z may declare at most this many times its source's max_bytes in all

# values of SOURCE.json "verified_against"
PUBLISHED, USER, CONTENT_LENGTH, NOT_VERIFIED = "published", "user", "content-length", "none"


# ---------------------------------------------------------------- results
@dataclass
class FetchStats:
    """What one call of :func:`fetch` transferred."""

    fetched: int = 0  # bytes received by this call (not counting what .part already held)
    total: int | None = None  # file size announced by the server (Content-Length / Content-Range)
    resumed_from: int = 0  # size of the .part the server agreed to continue (206), 0 if none
    seconds: float = 0.0
    attempts: int = 0


@dataclass
class DownloadResult:
    """What :func:`download` did, for the command to report."""

    source: Source
    dest: Path
    archive: Path
    record: dict[str, Any]  # the SOURCE.json content (written, or found when skipped)
    skipped: bool = False  # everything was already in place: nothing done
    origin: str = "download"  # "download" | "file" | "existing" (archive reused, only re-extracted)
    fetch: FetchStats = field(default_factory=FetchStats)


@dataclass(frozen=True)
class Expected:
    """The checksums an archive must match, and where they come from."""

    digests: dict[str, str]  # algorithm ("md5", "sha256") -> lower-case hex
    against: str  # PUBLISHED or USER


# ---------------------------------------------------------------- checksums
def parse_checksum(text: str) -> tuple[str, str]:
    """``"md5:<32 hex>"``, ``"sha256:<64 hex>"`` or bare hex (the length tells which) -> (algo, hex)."""
    value = text.strip().lower()
    algo = None
    if ":" in value:
        algo, _, value = value.partition(":")
        algo = algo.strip().replace("-", "")
        value = value.strip()
        if algo not in ("md5", "sha256"):
            raise SeqrecError(
                f"--checksum: unknown algorithm {algo!r}; use md5:<32 hex digits> or sha256:<64 hex digits>"
            )
    if not re.fullmatch(r"[0-9a-f]+", value or "-") or len(value) not in (32, 64):
        raise SeqrecError(f"--checksum: {text!r} is neither an MD5 (32 hex digits) nor a SHA-256 (64 hex digits)")
    found = "md5" if len(value) == 32 else "sha256"
    if algo is not None and algo != found:
        raise SeqrecError(f"--checksum: {algo} needs {32 if algo == 'md5' else 64} hex digits, got {len(value)}")
    return found, value


def expected_checksums(source: Source, checksum: str | None) -> Expected | None:
    """The user's ``--checksum`` if given (it overrides), else the published ones, else None."""
    if checksum:
        algo, value = parse_checksum(checksum)
        return Expected({algo: value}, USER)
    published = {k: v for k, v in (("md5", source.md5), ("sha256", source.sha256)) if v}
    return Expected(published, PUBLISHED) if published else None


def _check_digests(label: str, got: dict[str, str], expected: Expected, outcome: str = "the file was deleted") -> None:
    for algo, want in expected.digests.items():
        if got[algo] != want:
            if expected.against == USER:
                advice = "check the value given with --checksum"
            else:
                advice = (
                    "if it comes from a mirror whose copy differs from the published one, "
                    f"pass that copy's checksum with --checksum {algo}:<hex>"
                )
            raise ChecksumError(
                f"{label}: {algo} mismatch: expected {want} ({expected.against}), got {got[algo]}; {outcome}; {advice}"
            )


# ---------------------------------------------------------------- HTTP
class _Retry(Exception):
    """A failure worth retrying (5xx, a transfer cut short)."""


def _range_total(content_range: str | None) -> int | None:
    """The total size from ``Content-Range: bytes a-b/TOTAL`` or ``bytes */TOTAL``."""
    m = re.match(r"\s*bytes\s+(?:\d+-\d+|\*)/(\d+)\s*$", content_range or "")
    return int(m.group(1)) if m else None


def _range_start(content_range: str | None) -> int | None:
    m = re.match(r"\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", content_range or "")
    return int(m.group(1)) if m else None


def _int_header(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    """A short, one-line reason for a network failure."""
    import requests

    if isinstance(exc, _Retry):
        return str(exc)
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    m = re.search(r"\[Errno (-?\d+)\] ([^'\")\]]+)", text)
    if m:
        msg = m.group(2).strip()
        if m.group(1).startswith("-") or "name" in msg.lower():
            return f"cannot resolve the host name ({msg})"
        return msg[:1].lower() + msg[1:]
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broken during the transfer"
    return f"connection failed ({type(exc).__name__})"


def fetch(
    url: str,
    part: Path,
    *,
    retries: int = DEFAULT_RETRIES,
    retry_wait: float = DEFAULT_RETRY_WAIT,
    timeout: float = DEFAULT_TIMEOUT,
    label: str | None = None,
    offline_hint: str = "",
) -> FetchStats:
    """Stream ``url`` into ``part``, resuming what it already holds; retry what can be retried.

    The server's answer to ``Range: bytes=N-`` decides: 206 appends, 200 (Range ignored) starts
    over, 416 means ``part`` is already complete (same size as the file) or larger than the file
    (then it starts over). A 4xx other than 416 is an error at once. On giving up, ``part`` keeps
    what was fetched so that the next call resumes.
    """
    import requests

    stats = FetchStats()
    label = label or part.name.removesuffix(PART_SUFFIX)
    started = time.monotonic()
    failures = 0  # consecutive attempts that failed without receiving anything
    restarts = 0
    with requests.Session() as session:
        while True:
            have = part.stat().st_size if part.is_file() else 0
            headers = {"Accept-Encoding": "identity"}  # the bytes as stored: checksums are of those
            if have:
                headers["Range"] = f"bytes={have}-"
            stats.attempts += 1
            got_before = stats.fetched
            try:
                with session.get(url, headers=headers, stream=True, timeout=timeout) as resp:
                    status = resp.status_code
                    if status == 416 and have:
                        total = _range_total(resp.headers.get("Content-Range"))
                        if total is None or total == have:
                            stats.total = total if total is not None else have
                            break  # .part already holds the whole file; verification decides
                        restarts += 1
                        if restarts > 2:
                            raise SeqrecError(f"{url}: the server keeps refusing the range request (HTTP 416)")
                        note(f"{part} is larger than the file on the server ({have} > {total} bytes); starting over")
                        part.unlink()
                        continue
                    if status >= 500 or status in (408, 429):
                        raise _Retry(f"HTTP {status} {resp.reason or ''}".strip())
                    if status not in (200, 206):
                        raise SeqrecError(
                            f"{url}: HTTP {status} {resp.reason or ''}".rstrip()
                            + "; check the URL (--url) or download the file elsewhere and use --from-file"
                        )
                    if status == 206:
                        start = _range_start(resp.headers.get("Content-Range"))
                        if start != have:
                            restarts += 1
                            if restarts > 2:
                                raise SeqrecError(f"{url}: the server answers range requests inconsistently")
                            note(f"the server resumed at byte {start}, not {have}; starting over")
                            part.unlink()
                            continue
                        stats.total = _range_total(resp.headers.get("Content-Range"))
                        if not stats.resumed_from:
                            stats.resumed_from = have
                        mode = "ab"
                    else:
                        if have:
                            note(f"the server ignored the range request; downloading {label} from the start")
                        have = 0
                        stats.total = _int_header(resp.headers.get("Content-Length"))
                        mode = "wb"
                    part.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        with open(part, mode) as fh, Tracker(label, stats.total, kind="bytes", completed=have) as bar:
                            for chunk in resp.iter_content(NET_CHUNK):
                                fh.write(chunk)
                                stats.fetched += len(chunk)
                                bar.advance(len(chunk))
                    except OSError as exc:
                        if not is_disk_full(exc):
                            raise
                        kept = part.stat().st_size if part.is_file() else 0
                        raise DiskFullError(
                            part,
                            f"the {human_bytes(kept)} fetched so far are kept there: free space and run the same "
                            "command again to resume",
                        ) from exc
                    size = part.stat().st_size
                    if stats.total is not None and size < stats.total:
                        raise _Retry(f"connection closed after {size} of {stats.total} bytes")
                    break
            except KeyboardInterrupt:
                kept = part.stat().st_size if part.is_file() else 0
                if kept:
                    note(f"interrupted: {kept} bytes kept in {part}; run the same command again to resume")
                raise
            except (
                requests.exceptions.InvalidURL,
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
            ) as exc:
                raise SeqrecError(f"bad URL {url!r}: {exc}") from None
            except (
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
                _Retry,
            ) as exc:
                failures = 1 if stats.fetched > got_before else failures + 1  # progress resets the count
                reason = _reason(exc)
                if failures > retries:
                    kept = part.stat().st_size if part.is_file() else 0
                    keep = (
                        f"; the {kept} bytes fetched so far are kept in {part} and the next run resumes" if kept else ""
                    )
                    tries = f" (after {stats.attempts} attempts)" if stats.attempts > 1 else ""
                    raise SeqrecError(f"cannot download {url}: {reason}{tries}{keep}{offline_hint}") from None
                wait = retry_wait * 2 ** (failures - 1)
                note(f"{label}: {reason}; retrying in {wait:g} s ({failures} of {retries} retries)")
                time.sleep(wait)
    stats.seconds = time.monotonic() - started
    return stats


# ---------------------------------------------------------------- archive members
@dataclass(frozen=True)
class Member:
    name: str  # "/"-separated, without a trailing "/"
    is_dir: bool
    size: int | None = None  # uncompressed size the archive declares
    packed: int | None = None  # compressed size (zip; None for members of a solid 7z block)
    stored: str = ""  # the name exactly as stored (what the archive library is asked for)


def _unsafe(name: str) -> str | None:
    """Why a member path must not be extracted, or None."""
    if not name or "\x00" in name:
        return "empty or invalid name"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "path with '..'"
    return None


def _file_type_problem(mode: int | None) -> str | None:
    fmt = stat.S_IFMT(mode or 0)
    if fmt in (0, stat.S_IFREG, stat.S_IFDIR):
        return None
    return "symbolic link" if fmt == stat.S_IFLNK else "link or special file"


def list_members(path: Path, kind: str, label: str | Path | None = None) -> list[Member]:
    """Every member of a zip or 7z archive; refuses unsafe ones before anything is extracted.

    ``label`` names the archive in errors (the URL or the user's file rather than a temporary name).
    """
    label = label if label is not None else path
    members: list[Member] = []
    problems: list[tuple[str, str]] = []
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    why = _unsafe(info.filename) or _file_type_problem(info.external_attr >> 16)
                    if why:
                        problems.append((info.filename, why))
                    members.append(
                        Member(info.filename.rstrip("/"), info.is_dir(), info.file_size, info.compress_size, info.filename)
                    )
        except (zipfile.BadZipFile, EOFError) as exc:
            raise BadInputError(label, f"not a readable zip archive ({exc})") from None
    elif kind == "7z":
        import py7zr

        try:
            with py7zr.SevenZipFile(path, mode="r") as sz:
                for f in sz.files:
                    why = _unsafe(f.filename)
                    if not why and (f.is_symlink or f.is_junction or f.is_socket):
                        why = "symbolic link" if f.is_symlink else "link or special file"
                    why = why or _file_type_problem(f.st_fmt)
                    if why:
                        problems.append((f.filename, why))
                    size = None if f.is_directory else int(f.uncompressed or 0)
                    members.append(Member(f.filename.rstrip("/"), bool(f.is_directory), size, None, f.filename))
        except (py7zr.Bad7zFile, EOFError, KeyError, ValueError) as exc:
            raise BadInputError(label, f"not a readable 7z archive ({exc})") from None
    else:  # pragma: no cover - the registry only holds zip and 7z
        raise SeqrecError(f"unknown archive kind {kind!r}")
    if problems:
        name, why = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BadInputError(label, f"refusing to extract member {name!r}: {why}{more}; nothing was extracted")
    return members


def plan_extraction(label: str | Path, members: list[Member], source: Source) -> str:
    """The folder prefix to strip so that ``source.member`` lands where the pipeline reads it.

    Normally "" (the archive already has the expected layout). If the needed file sits one folder
    deeper (``yoochoose-data/yoochoose-clicks.dat``) and everything is in that folder, the folder
    is flattened away: its prefix is returned. Also refuses names that would overwrite the archive,
    its .part or SOURCE.json.
    """
    names = [m.name.removeprefix("./") for m in members]
    files = {n for n, m in zip(names, members, strict=True) if not m.is_dir}
    prefix = ""
    if source.member not in files:
        found = sorted(n for n in files if n.endswith("/" + source.member))
        if len(found) == 1:
            prefix = found[0][: -len(source.member)]
        if not prefix or not all(n.startswith(prefix) or n + "/" == prefix for n in names):
            shown = ", ".join(sorted(files)[:5]) + (", ..." if len(files) > 5 else "")
            raise BadInputError(
                label, f"no {source.member} in this archive (it holds: {shown or 'nothing'}); is it the right file?"
            )
    reserved = {source.archive, source.archive + PART_SUFFIX, SOURCE_FILE}
    for n in names:
        top = n[len(prefix) :].split("/", 1)[0] if n.startswith(prefix) else ""
        if top in reserved:
            raise BadInputError(label, f"refusing to extract member {n!r}: it would overwrite {top}")
    return prefix


def needed_members(members: list[Member], source: Source, strip: str) -> list[Member]:
    """The members the pipeline reads (``source.member``, under the ``strip`` prefix): all that is extracted."""
    want = strip + source.member
    return [m for m in members if not m.is_dir and m.name.removeprefix("./") == want]


def check_bounds(label: str | Path, members: list[Member], wanted: list[Member], archive_bytes: int, source: Source) -> None:
    """Refuse to extract what no real copy of the data set can be: a needed member larger than
    ``source.max_bytes``, or data that expands more than :data:`MAX_RATIO` times (a zip member on
    its own; a 7z, whose members share compressed blocks, as a whole). Raises BadInputError."""
    for m in wanted:
        if m.size is not None and m.size > source.max_bytes:
            raise BadInputError(
                label,
                f"refusing to extract member {m.name!r}: it declares {human_bytes(m.size)}, more than any "
                f"{source.name} {source.member} ({human_bytes(source.max_bytes)} at most); nothing was extracted",
            )
    if source.kind == "zip":
        checks = [(m.name, m.size or 0, m.packed) for m in wanted]
    else:
        total = sum(m.size or 0 for m in members if not m.is_dir)
        if total > MAX_TOTAL_FACTOR * source.max_bytes:
            raise BadInputError(
                label,
                f"refusing to extract: the archive declares {human_bytes(total)} of content, more than any "
                f"{source.name} archive holds; nothing was extracted",
            )
        checks = [(m.name, total, archive_bytes) for m in wanted]
    for name, size, packed in checks:
        ratio = size / max(packed or 0, 1)
        if size > RATIO_FLOOR and ratio > MAX_RATIO:
            raise BadInputError(
                label,
                f"refusing to extract member {name!r}: it would expand {ratio:,.0f} times "
                f"({human_bytes(packed or 0)} to {human_bytes(size)}; data files expand at most {MAX_RATIO} times); "
                "nothing was extracted",
            )


class CorruptArchiveError(Exception):
    """Raised by :func:`extract_members` when the compressed data cannot be decoded (a reason)."""


def extract_members(path: Path, kind: str, out: Path, wanted: list[Member]) -> None:
    """Extract only ``wanted`` from the archive ``path`` into the folder ``out`` (names as stored).

    Every byte is decompressed and checked (zip CRC-32, 7z CRC and LZMA stream); a failure is
    :class:`CorruptArchiveError`. The output of a member is bounded by the size it declares (both
    libraries stop there). A full disk is the ``OSError`` itself (the caller words it).
    """
    import lzma
    import zlib

    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as zf:
                for m in wanted:
                    target = out / m.name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(m.stored or m.name) as src, open(target, "wb") as dst:
                        while chunk := src.read(COPY_CHUNK):
                            dst.write(chunk)
        else:
            import py7zr

            with py7zr.SevenZipFile(path, mode="r") as sz:
                sz.extract(path=out, targets=[m.stored or m.name for m in wanted])
            for m in wanted:
                if not (out / m.name).is_file():
                    raise CorruptArchiveError(f"{m.name} could not be extracted")
    except CorruptArchiveError:
        raise
    except OSError as exc:
        if exc.errno is not None:
            raise  # a real I/O error (or a full disk): not the archive's fault
        raise CorruptArchiveError(str(exc) or type(exc).__name__) from None  # bz2 reports bad data this way
    except RuntimeError as exc:  # zipfile: an encrypted member
        raise CorruptArchiveError(f"{exc}; seqrec reads unencrypted archives only") from None
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, ValueError, KeyError) as exc:
        raise CorruptArchiveError(str(exc) or type(exc).__name__) from None
    except Exception as exc:
        import py7zr

        if isinstance(exc, py7zr.exceptions.CrcError):
            name = exc.args[2] if len(exc.args) > 2 and exc.args[2] else "a member"
            raise CorruptArchiveError(f"CRC check failed for {name}") from None
        if isinstance(exc, (py7zr.exceptions.ArchiveError, py7zr.PasswordRequired)):
            raise CorruptArchiveError(str(exc) or type(exc).__name__) from None
        raise


# ---------------------------------------------------------------- the state of a destination folder
def read_source_record(dest: Path) -> dict[str, Any] | None:
    """The SOURCE.json of a raw folder, or None when absent or unreadable."""
    path = Path(dest) / SOURCE_FILE
    try:
        data = read_json(path, what="download record")
    except (OSError, SeqrecError):
        return None
    return data if isinstance(data, dict) else None


def _complete_record(source: Source, dest: Path, archive: Path) -> tuple[dict[str, Any] | None, str]:
    """(record, "") when archive, extraction and SOURCE.json agree; else (record or None, why not)."""
    record = read_source_record(dest)
    if record is None:
        return None, "no SOURCE.json"
    try:
        if record["archive"] != archive.name or not archive.is_file():
            return record, "the archive is missing"
        if archive.stat().st_size != record["bytes"]:
            return record, f"{archive.name} changed size since SOURCE.json was written"
        listed = {f["path"]: f for f in record["extracted"]}
        if source.member not in listed:
            return record, f"SOURCE.json does not list {source.member}"
        for rel, entry in listed.items():
            p = dest / rel
            if not p.is_file() or p.stat().st_size != entry["bytes"]:
                return record, f"extracted file {p} is missing or changed"
        member_sha = listed[source.member].get("sha256")
        if member_sha is not None and file_digests(dest / source.member, ("sha256",))["sha256"] != member_sha:
            return record, f"extracted file {dest / source.member} changed since SOURCE.json was written"
        if file_digests(archive, ("sha256",))["sha256"] != record["sha256"]:
            return record, f"{archive.name} no longer matches the sha256 in SOURCE.json"
    except (KeyError, TypeError, AttributeError):
        return record, "SOURCE.json is incomplete"
    return record, ""


# ---------------------------------------------------------------- the whole operation
def download(
    name: str,
    dest: Path | str | None = None,
    *,
    url: str | None = None,
    checksum: str | None = None,
    force: bool = False,
    from_file: Path | str | None = None,
    retries: int = DEFAULT_RETRIES,
    retry_wait: float = DEFAULT_RETRY_WAIT,
    timeout: float = DEFAULT_TIMEOUT,
) -> DownloadResult:
    """Fetch (or import), verify, extract and record one registered data set. See the module doc."""
    source = get_source(name)
    dest = Path(dest) if dest is not None else raw_dir(source.name)
    expected = expected_checksums(source, checksum)  # parse --checksum before any work
    if url is not None and from_file is not None:
        raise SeqrecError("--url and --from-file exclude each other: give one")
    if retries < 0 or retry_wait < 0 or timeout <= 0:
        raise SeqrecError("--retries and --retry-wait must be >= 0 and --timeout > 0")
    src_file = Path(from_file) if from_file is not None else None
    if src_file is not None and not src_file.is_file():
        raise MissingInputError(src_file, what="archive given with --from-file")
    if dest.exists() and not dest.is_dir():
        raise SeqrecError(f"--dest {dest} exists and is not a folder")
    archive = dest / source.archive
    part = dest / (source.archive + PART_SUFFIX)
    fetch_url = url or source.url
    with folder_lock(dest):  # one writer per folder: a second download into it is refused
        return _download(source, dest, expected, src_file, archive, part, fetch_url, force, retries, retry_wait, timeout)


def _download(
    source: Source,
    dest: Path,
    expected: Expected | None,
    src_file: Path | None,
    archive: Path,
    part: Path,
    fetch_url: str,
    force: bool,
    retries: int,
    retry_wait: float,
    timeout: float,
) -> DownloadResult:
    # 1. already complete? (a user --checksum / --from-file that differs from what is there: redo)
    record, why_not = _complete_record(source, dest, archive) if dest.is_dir() else (None, "")
    if not force and record is not None and not why_not:
        same = True
        if expected is not None and expected.against == USER:
            algo, value = next(iter(expected.digests.items()))
            same = record.get(algo) == value
        if src_file is not None:
            same = same and file_digests(src_file, ("sha256",))["sha256"] == record.get("sha256")
        if same:
            return DownloadResult(source, dest, archive, record, skipped=True, origin="existing")
    elif record is not None and why_not and not force:
        note(f"{dest}: {why_not}; fetching again")
    _remove_leftovers(dest)

    # 2. a verified archive, staged beside its final name
    result = DownloadResult(source, dest, archive, {}, origin="download")
    verified_against, verified_with = NOT_VERIFIED, []
    digests: dict[str, str] = {}
    staged: Path
    record_url, record_origin = fetch_url, "download"
    if src_file is not None:
        staged, digests = _import_file(src_file, dest, source)
        result.origin = record_origin = "file"
        record_url = src_file.resolve().as_uri()
        if expected is not None:
            _verify_or_delete(staged, f"{src_file}", digests, expected, "nothing was imported")
            verified_against, verified_with = expected.against, sorted(expected.digests)
    elif not force and archive.is_file() and _reusable(archive, expected, record):
        staged = archive
        result.origin = "existing"
        digests = file_digests(archive, ("md5", "sha256"))
        earlier = record is not None and record.get("sha256") == digests["sha256"]
        if earlier:  # only the extraction was missing or changed: keep where the archive came from
            record_url = record.get("url", record_url)
            record_origin = record.get("origin", record_origin)
        if expected is not None:
            verified_against, verified_with = expected.against, sorted(expected.digests)
        elif earlier:
            verified_against = record.get("verified_against", NOT_VERIFIED)
            verified_with = record.get("verified_with", [])
    else:
        if force:
            part.unlink(missing_ok=True)
        hint = (
            f"; if this machine is offline, download {fetch_url} elsewhere and run: "
            f"seqrec download {source.name} --from-file {source.archive}"
        )
        try:
            result.fetch = fetch(
                fetch_url,
                part,
                retries=retries,
                retry_wait=retry_wait,
                timeout=timeout,
                label=source.archive,
                offline_hint=hint,
            )
        except BaseException:
            if part.is_file() and part.stat().st_size == 0:
                part.unlink()
            raise
        staged = part
        size = part.stat().st_size
        total = result.fetch.total
        if total is not None and size != total:
            part.unlink()
            raise ChecksumError(
                f"{fetch_url}: got {size} bytes but the server announced {total}; the file was deleted, run again"
            )
        digests = file_digests(part, ("md5", "sha256"))
        if expected is not None:
            _verify_or_delete(part, fetch_url, digests, expected)
            verified_against, verified_with = expected.against, sorted(expected.digests)
        elif total is not None:
            verified_against, verified_with = CONTENT_LENGTH, ["size"]

    # 3. members checked before anything is extracted or renamed into place
    label = src_file if src_file is not None else (fetch_url if staged == part else archive)
    kept_if_full = _kept_when_full(staged, src_file, part, archive)
    try:
        members = list_members(staged, source.kind, label)
        strip = plan_extraction(label, members, source)
        wanted = needed_members(members, source, strip)
        size = staged.stat().st_size
        check_bounds(label, members, wanted, size, source)
    except SeqrecError:
        if staged != archive:
            staged.unlink(missing_ok=True)
        raise
    need = sum(m.size or 0 for m in wanted)
    free = free_bytes(dest)
    if free is not None and need > free:
        _drop_staged_import(staged, src_file)
        raise DiskFullError(
            dest / source.member, f"extracting it needs {human_bytes(need)}, {human_bytes(free)} are free; {kept_if_full}"
        )

    # 4. extraction into a temporary folder; a corrupt archive is deleted, never kept as downloaded
    if source.kind == "7z" or size > 50_000_000:
        note(f"extracting {label} ...")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=EXTRACT_PREFIX, suffix=".tmp", dir=dest))
    except OSError as exc:
        if is_disk_full(exc):
            _drop_staged_import(staged, src_file)
            raise DiskFullError(dest / source.member, f"nothing was extracted; {kept_if_full}") from exc
        raise
    try:
        try:
            extract_members(staged, source.kind, tmp, wanted)
        except CorruptArchiveError as exc:
            staged.unlink(missing_ok=True)
            if staged == archive:
                (dest / SOURCE_FILE).unlink(missing_ok=True)
            raise BadInputError(label, f"corrupt archive ({exc}); {_corrupt_outcome(staged, src_file, part, archive)}") from None
        except OSError as exc:
            if is_disk_full(exc, dest):
                _drop_staged_import(staged, src_file)
                raise DiskFullError(dest / source.member, f"nothing was extracted; {kept_if_full}") from exc
            _drop_staged_import(staged, src_file)
            raise type(exc)(exc.errno, exc.strerror, str(dest / source.member)) from exc  # never the temporary name
        files = []
        for m in wanted:
            extracted = tmp / m.name
            rel = m.name.removeprefix("./").removeprefix(strip)
            digests_of_member = file_digests(extracted, ("sha256",))
            files.append({"path": rel, "bytes": extracted.stat().st_size, "sha256": digests_of_member["sha256"]})
        # 5. the archive and the extracted files in place, the record last
        (dest / SOURCE_FILE).unlink(missing_ok=True)  # from here on the folder is incomplete until the record
        if staged != archive:
            os.replace(staged, archive)
        for m, f in zip(wanted, files):
            target = dest / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            replace_path(tmp / m.name, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    record = {
        "kind": SOURCE_KIND,
        "dataset": source.name,
        "description": source.description,
        "url": record_url,
        "origin": record_origin,
        "archive": source.archive,
        "bytes": size,
        "md5": digests["md5"],
        "sha256": digests["sha256"],
        "verified_against": verified_against,
        "verified_with": verified_with,
        "member": source.member,
        "archive_prefix_stripped": strip,
        "extracted": sorted(files, key=lambda f: f["path"]),
        "created": now_iso(),
        "seqrec_version": __version__,
    }
    try:
        write_json(dest / SOURCE_FILE, record)
    except DiskFullError as exc:
        raise DiskFullError(
            exc.path, f"{archive} and {dest / source.member} are in place but not recorded; free space and run again (nothing is fetched again)"
        ) from exc
    result.record = record
    return result


def _kept_when_full(staged: Path, src_file: Path | None, part: Path, archive: Path) -> str:
    if src_file is not None:
        return "nothing was imported; free space and run again"
    if staged == part:
        return f"the verified download is kept in {part}: free space and run again (it is extracted without fetching it again)"
    return f"{archive} is kept: free space and run again"


def _drop_staged_import(staged: Path, src_file: Path | None) -> None:
    if src_file is not None:
        staged.unlink(missing_ok=True)  # the user still has the file


def _corrupt_outcome(staged: Path, src_file: Path | None, part: Path, archive: Path) -> str:
    if src_file is not None:
        return "nothing was imported or extracted"
    if staged == part:
        return "nothing was extracted and the download was deleted: run again to fetch it anew (or give another mirror with --url)"
    return f"nothing was extracted and {archive} was deleted: run again to fetch it anew"


def _reusable(archive: Path, expected: Expected | None, record: dict[str, Any] | None) -> bool:
    """Whether an archive already in place (renamed there only after verification) can be kept."""
    if expected is not None:
        got = file_digests(archive, tuple(expected.digests))
        return all(got[a] == v for a, v in expected.digests.items())
    if record is not None and record.get("archive") == archive.name:
        return file_digests(archive, ("sha256",))["sha256"] == record.get("sha256")
    return True


def _verify_or_delete(
    path: Path, label: str, digests: dict[str, str], expected: Expected, outcome: str = "the file was deleted"
) -> None:
    try:
        _check_digests(label, digests, expected, outcome)
    except ChecksumError:
        path.unlink(missing_ok=True)
        raise


def _import_file(src: Path, dest: Path, source: Source) -> tuple[Path, dict[str, str]]:
    """Copy ``src`` to a temporary file in ``dest``, hashing it on the way."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=IMPORT_PREFIX, suffix=".tmp", dir=dest)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(dest / source.archive, "nothing was imported; free space and run again") from exc
        raise
    tmp = Path(tmp_name)
    hashers = {"md5": hashlib.md5(), "sha256": hashlib.sha256()}
    try:
        total = src.stat().st_size
        with (
            open(src, "rb") as fin,
            os.fdopen(fd, "wb") as fout,
            Tracker(f"importing {source.archive}", total, kind="bytes") as bar,
        ):
            while chunk := fin.read(COPY_CHUNK):
                fout.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
                bar.advance(len(chunk))
    except BaseException as exc:
        full = isinstance(exc, OSError) and is_disk_full(exc)
        tmp.unlink(missing_ok=True)
        if full:
            raise DiskFullError(dest / source.archive, "nothing was imported; free space and run again") from exc
        raise
    return tmp, {k: h.hexdigest() for k, h in hashers.items()}


def _remove_leftovers(dest: Path) -> None:
    """Temporary folders and files of an interrupted extraction or import."""
    if not dest.is_dir():
        return
    for p in dest.iterdir():
        stale = p.name.startswith((EXTRACT_PREFIX, IMPORT_PREFIX)) and p.name.endswith(".tmp")
        stale = stale or (p.name.startswith(".") and ".old." in p.name)  # a replaced folder not yet removed
        if stale and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif stale:
            p.unlink(missing_ok=True)
