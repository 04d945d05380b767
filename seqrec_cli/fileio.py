"""Crash-safe writing, one writer per folder, and checksums.

Every output of seqrec is written under a temporary name beside its destination and put in
place only when complete, so an interrupted run never leaves a file that a later step could
mistake for a good one:

* one file: :func:`atomic_path` (a temporary file renamed onto the destination);
* one folder whose whole content is new (a checkpoint ``epoch_N/``): :func:`atomic_dir`;
* several files that belong together (a data folder's splits + ``users.txt`` + the vocabulary
  + ``manifest.json``): :func:`staged_files`. Each file is staged under a temporary name; the
  commit writes a journal, removes the manifest, renames every file into place and writes the
  manifest last. A run killed while staging leaves the earlier files whole; one killed during
  the renames leaves the journal, and the next writer finishes the commit (:func:`recover`).
  Files of the folder that the step does not own are never touched.

A full disk while any of these is written is one :class:`DiskFullError` (``<path>: No space
left on device; <what was kept>``), with the temporary files removed.

:func:`folder_lock` holds an OS lock (``fcntl.flock``) that keeps a second seqrec process from
writing the same folder or file; the kernel drops it when the process ends, however it ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import SeqrecError

CHUNK = 1 << 20  # bytes read at a time when hashing
LOW_SPACE = 1 << 20  # bytes: a filesystem with less free space than this counts as full (see is_disk_full)
JOURNAL = ".seqrec-commit.json"  # in a folder being committed by staged_files; removed when done
LOCK_WAIT_FOR_PID = 0.5  # seconds to wait for a new lock holder to write its PID
# the temporary names made here: .<name>.<8 random chars>[.<suffix>].tmp, and .<name>.old.<pid> (replace_path)
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?:[a-z0-9_]{8}(?:\.[^.]+)?\.tmp|old\.\d+)$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- a full disk
class DiskFullError(SeqrecError):
    """The disk filled up while ``path`` was written; nothing half-written is left.

    The message is ``<path>: No space left on device; <kept>``, ``kept`` saying what is still
    there (the earlier file or folder, or that nothing was written).
    """

    def __init__(self, path: Path | str, kept: str):
        self.path = Path(path)
        self.kept = kept
        super().__init__(f"{path}: No space left on device; {kept}")


def free_bytes(where: Path | str) -> int | None:
    """Bytes an unprivileged writer may still use on the filesystem holding ``where`` (None if unknown)."""
    p = Path(where)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        st = os.statvfs(p)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def is_disk_full(exc: BaseException, where: Path | str | None = None) -> bool:
    """Whether ``exc`` means the disk (or the user's quota) is full.

    True for an ``OSError`` ENOSPC/EDQUOT anywhere in its cause/context chain. Some writers report
    a full disk without an errno (torch.save raises ``RuntimeError: ... file write failed`` or
    ``unexpected pos``): for a ``RuntimeError`` it is true when the filesystem at ``where`` has
    less than :data:`LOW_SPACE` bytes free, checked before the partial file is removed.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        e = e.__cause__ or e.__context__
    if where is not None and isinstance(exc, RuntimeError):
        free = free_bytes(where)
        return free is not None and free < LOW_SPACE
    return False


def _kept(dest: Path, kind: str = "file") -> str:
    return f"the earlier {kind} is kept unchanged" if dest.exists() else "nothing was written"


def _refers_to(exc: OSError, tmp: Path) -> bool:
    for name in (exc.filename, exc.filename2):
        if name is not None and (Path(os.fsdecode(name)) == tmp or tmp in Path(os.fsdecode(name)).parents):
            return True
    return False


def _user_facing(exc: BaseException, tmp: Path, dest: Path, kept: str) -> BaseException | None:
    """The error to raise instead of ``exc`` (a failure while writing ``tmp`` for ``dest``), or None.

    A full disk becomes :class:`DiskFullError`; any other OS error that names the temporary path
    names ``dest`` instead (users never see an internal temporary name).
    """
    if not isinstance(exc, Exception) or isinstance(exc, SeqrecError):
        return None
    if is_disk_full(exc, dest.parent):
        return DiskFullError(dest, kept)
    if isinstance(exc, OSError) and _refers_to(exc, tmp):
        return type(exc)(exc.errno, exc.strerror, str(dest))
    return None


def _cannot_create(exc: OSError, dest: Path, kept: str) -> BaseException:
    """The error to raise when the temporary file or folder for ``dest`` (or its parent folder)
    cannot be made: a full disk, a file standing where a folder must be, or ``exc`` naming ``dest``
    instead of the temporary name."""
    if is_disk_full(exc):
        return DiskFullError(dest, kept)
    blocking = file_in_the_way(exc)
    if blocking is not None:
        return blocking
    if exc.filename and Path(exc.filename).name.startswith(f".{dest.name}.") and str(exc.filename).endswith(".tmp"):
        return type(exc)(exc.errno, exc.strerror, str(dest))
    return exc


def file_in_the_way(exc: OSError, path: Path | str | None = None) -> SeqrecError | None:
    """A file stands where a folder is needed (making ``a/b`` when ``a`` is a file): say so,
    instead of the system's 'File exists' or 'Not a directory'. ``path``: the path as the user
    gave it (default: the one the error names)."""
    if not isinstance(exc, (FileExistsError, NotADirectoryError)) or not (exc.filename or path):
        return None
    path = Path(path if path is not None else exc.filename)
    for candidate in (path, *path.parents):
        if candidate.is_file():
            return SeqrecError(f"{candidate}: is a file where a folder is needed; move it away or choose another path")
    return None


# ---------------------------------------------------------------- one file, one folder
@contextlib.contextmanager
def atomic_path(dest: Path | str, suffix: str = "", kept: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` if the block succeeds.

    On failure the temporary file is removed and ``dest`` is as it was. Raises
    :class:`DiskFullError` (``kept``: what to say is left; default: the earlier file, or nothing)
    when the disk fills up; other OS errors name ``dest``, not the temporary file.
    """
    dest = Path(dest)
    kept_text = kept or _kept(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix + ".tmp", dir=dest.parent)
    except OSError as exc:
        better = _cannot_create(exc, dest, kept_text)
        if better is exc:
            raise
        raise better from exc
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    except BaseException as exc:
        better = _user_facing(exc, tmp_path, dest, kept_text)  # before the unlink: free space is measured
        tmp_path.unlink(missing_ok=True)
        if better is not None:
            raise better from exc
        raise


@contextlib.contextmanager
def atomic_dir(dest: Path | str, kept: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside ``dest``; it replaces ``dest`` only if the block succeeds.

    The swap is one atomic exchange where the OS offers it (Linux ``renameat2``), so ``dest`` is
    at every instant either the old folder or the new one. On failure the temporary folder is
    removed; a full disk is :class:`DiskFullError` naming ``dest`` (``kept``: what to say is left,
    e.g. "the checkpoints of earlier epochs are kept"; default: the earlier folder, or nothing).
    """
    dest = Path(dest)
    kept_text = kept or _kept(dest, "folder")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    except OSError as exc:
        better = _cannot_create(exc, dest, kept_text)
        if better is exc:
            raise
        raise better from exc
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        replace_path(tmp, dest)
    except BaseException as exc:
        better = _user_facing(exc, tmp, dest, kept_text)
        shutil.rmtree(tmp, ignore_errors=True)
        if better is not None:
            raise better from exc
        raise


_RENAME_EXCHANGE = 2
_renameat2: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    global _renameat2
    if _renameat2 is None:
        _renameat2 = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError, TypeError):
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
                fn = libc.renameat2
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                fn.restype = ctypes.c_int
                _renameat2 = fn
    if not _renameat2:
        return False
    at_fdcwd = -100
    if _renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False  # this filesystem or kernel cannot exchange: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


def replace_path(src: Path, target: Path) -> None:
    """Rename ``src`` onto ``target``, replacing a file, a link or a whole folder already there.

    A folder replaces a folder in one atomic exchange where the OS offers it (the old content is
    then removed); elsewhere the old folder is first moved aside to ``.<name>.old.<pid>`` and
    removed after the swap. A link is removed, never followed.
    """
    src, target = Path(src), Path(target)
    if target.is_symlink() or (target.is_file() and src.is_dir()):
        target.unlink()
    if target.is_dir():
        if src.is_dir() and _exchange(src, target):
            shutil.rmtree(src, ignore_errors=True)  # src now holds the old folder
            return
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(src, target)
        shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(src, target)


def write_text(dest: Path | str, text: str, encoding: str = "utf-8") -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding=encoding)


def write_json(dest: Path | str, obj: Any) -> None:
    write_text(dest, json.dumps(obj, indent=2, sort_keys=False) + "\n")


# ---------------------------------------------------------------- one writer per folder
class LockedError(SeqrecError):
    """Another process holds the lock of a folder or file seqrec was about to write."""

    def __init__(self, path: Path, pid: int | None, command: str | None):
        self.path, self.pid, self.command = path, pid, command
        who = f"PID {pid}" if pid is not None else "PID unknown"
        if command:
            who += f": {command}"
        super().__init__(
            f"{path} is being written by another seqrec process ({who}); "
            "wait for it to finish (or stop it), then run this again"
        )


_held: dict[str, tuple[int, int]] = {}  # lock file (absolute) -> (fd, depth): re-entrant in one process


def lock_file(path: Path | str) -> Path:
    """The lock file of a folder or file: ``.<name>.lock`` beside it, so it survives the folder being swapped."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


def _holder(lock: Path) -> tuple[int | None, str | None]:
    deadline = time.monotonic() + LOCK_WAIT_FOR_PID
    while True:
        with contextlib.suppress(OSError, ValueError):
            pid_line, _, command = lock.read_text(encoding="utf-8").partition("\n")
            if pid_line.strip():
                return int(pid_line), command.strip() or None
        if time.monotonic() > deadline:
            return None, None
        time.sleep(0.02)


def _command_line() -> str:
    """How the holder was started, for the error a second writer gets (``seqrec preprocess ml-1m ...``)."""
    argv = sys.argv or [""]
    name = Path(argv[0]).name if argv[0] not in ("", "-c") else "python"
    text = " ".join([name, *argv[1:]])
    return text if len(text) <= 200 else text[:197] + "..."


@contextlib.contextmanager
def folder_lock(path: Path | str) -> Iterator[Path]:
    """Hold the exclusive OS lock of the folder (or file) ``path`` while the block runs.

    One line for any writer: ``with folder_lock(model_dir): ...``. The lock is ``fcntl.flock`` on
    ``.<name>.lock`` beside ``path`` (created, with the holder's PID and command line in it, and
    removed on release); the kernel releases it when the process exits or is killed, so a crash
    never leaves a folder locked. Re-entrant within one process. Creates the parent folder.

    Raises :class:`LockedError` (``<path> is being written by another seqrec process (PID N:
    <command>); ...``) at once if another process holds it: no waiting.
    """
    lock = lock_file(path).absolute()
    key = str(lock)
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
        try:
            yield Path(path)
        finally:
            fd, depth = _held[key]
            _held[key] = (fd, depth - 1)
        return
    made = _missing_parents(lock.parent)
    tries = 0
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666 & ~_umask())
        except FileNotFoundError as exc:  # a folder another process had just made was removed again: retry
            tries += 1
            if tries < 100:
                continue
            # the folder is there and still no file can be made in it (e.g. /proc): never loop forever
            raise SeqrecError(f"{lock.parent}: cannot create files in this folder ({exc.strerror}); choose another path") from exc
        except OSError as exc:
            if is_disk_full(exc):
                raise DiskFullError(Path(path), "nothing was written") from exc
            blocking = file_in_the_way(exc, path)
            if blocking is not None:
                raise blocking from exc
            raise type(exc)(exc.errno, exc.strerror, str(path)) from exc  # the folder, not its lock file
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid, command = _holder(lock)
            raise LockedError(Path(path), pid, command) from None
        except BaseException:
            os.close(fd)
            raise
        try:  # the file we locked may have been unlinked by a holder releasing it: then start over
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    with contextlib.suppress(OSError):  # best effort (a full disk must not stop the lock)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n{_command_line()}\n".encode())
    _held[key] = (fd, 1)
    try:
        yield Path(path)
    finally:
        _held.pop(key, None)
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still locked: a waiter that opened it re-checks the inode
        os.close(fd)
        for folder in made:  # folders made only to hold the lock go again when nothing else was put there
            with contextlib.suppress(OSError):
                folder.rmdir()


def _missing_parents(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first."""
    out = []
    while not folder.exists() and folder != folder.parent:
        out.append(folder)
        folder = folder.parent
    return out


def writer_of(path: Path | str) -> tuple[int, str | None] | None:
    """(PID, command) of a live process holding the lock of ``path``, or None; takes no lock itself.

    A lock file exists only while held (its holder removes it) or after its holder was killed, so
    a lock file whose PID is a live process means the folder is being written now.
    """
    lock = lock_file(path)
    try:
        pid_line, _, command = lock.read_text(encoding="utf-8").partition("\n")
        pid = int(pid_line)
    except (OSError, ValueError):
        return None
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return pid, command.strip() or None


@contextlib.contextmanager
def folder_locks(*paths: Path | str | None) -> Iterator[None]:
    """:func:`folder_lock` on several paths (``None`` skipped), taken in the order given."""
    with contextlib.ExitStack() as stack:
        for p in paths:
            if p is not None:
                stack.enter_context(folder_lock(p))
        yield


# ---------------------------------------------------------------- several files as one unit
class InterruptedWriteError(SeqrecError):
    """A folder holds the leftovers of a seqrec run killed while it replaced the folder's files."""

    def __init__(self, folder: Path, make_with: str | None = None):
        self.folder = folder
        rerun = f" (rerun: {make_with})" if make_with else "; run the step that writes it again"
        super().__init__(f"{folder}: an earlier seqrec run was interrupted while writing this folder{rerun}")


def half_written(folder: Path, make_with: str | None = None) -> SeqrecError:
    """The error for a reader that finds ``folder`` half written: :class:`LockedError` while a live
    process still holds its lock (it is being written right now), else :class:`InterruptedWriteError`."""
    holder = writer_of(folder)
    if holder is not None:
        return LockedError(Path(folder), *holder)
    return InterruptedWriteError(Path(folder), make_with)


def stale_temporaries(folder: Path | str, names: Iterable[str] | None = None) -> list[Path]:
    """Temporary files and folders that seqrec's writers leave in ``folder`` when killed.

    Only seqrec's own names count (``.<name>.<random>.tmp``, ``.<name>.old.<pid>``), and with
    ``names`` only those of the given destination names.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    wanted = set(names) if names is not None else None
    out = []
    for p in folder.iterdir():
        m = _TEMP_NAME.match(p.name)
        if m and (wanted is None or m.group("name") in wanted):
            out.append(p)
    return sorted(out)


def remove_stale(folder: Path | str, names: Iterable[str] | None = None) -> list[Path]:
    """Remove :func:`stale_temporaries` (call it holding the folder's lock); returns what was removed."""
    gone = stale_temporaries(folder, names)
    for p in gone:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return gone


def interrupted(folder: Path | str) -> bool:
    """Whether a commit of :func:`staged_files` into ``folder`` was cut short (its journal is there)."""
    return (Path(folder) / JOURNAL).is_file()


def recover(folder: Path | str) -> bool:
    """Finish a commit that a killed run left half done (roll forward from its journal).

    Every staged file was complete before the journal was written, so finishing the renames gives
    the whole output of that run. Call it holding the folder's lock. Returns whether there was
    anything to finish.
    """
    folder = Path(folder)
    journal = folder / JOURNAL
    if not journal.is_file():
        return False
    try:
        plan = json.loads(journal.read_text(encoding="utf-8"))
        moves = [(folder / a, folder / b) for a, b in plan["moves"]]
        removes = [folder / r for r in plan["remove"]]
    except (OSError, ValueError, KeyError, TypeError):
        journal.unlink(missing_ok=True)  # an unreadable journal was never acted on: the folder is as it was
        return False
    _apply(moves, removes)
    journal.unlink(missing_ok=True)
    return True


def _apply(moves: list[tuple[Path, Path]], removes: list[Path]) -> None:
    # the marker (manifest) is the last move: removed first, so the folder is never complete-looking mid-way
    marker = moves[-1][1]
    marker.unlink(missing_ok=True)
    for r in removes:
        r.unlink(missing_ok=True)
    for src, dest in moves:
        if src.exists():
            os.replace(src, dest)


class StagedFiles:
    """Files staged by :func:`staged_files`; use :meth:`path` for each, then :meth:`commit`."""

    def __init__(self, folder: Path, marker: str, replaces: Iterable[str]):
        self.folder = folder
        self.marker = folder / marker
        self.replaces = [n for n in replaces if "/" not in n and n not in ("", ".", "..")]
        self.staged: dict[Path, Path] = {}  # destination -> temporary path
        self.current: Path | None = None  # the destination being written (for error messages)
        self.journaled = False
        self.committed = False

    def path(self, dest: Path | str) -> Path:
        """A temporary path beside ``dest`` to write it to (put in place by :meth:`commit`)."""
        dest = Path(dest)
        if dest in self.staged:
            raise ValueError(f"{dest} staged twice")
        self.current = dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())
        self.staged[dest] = Path(tmp)
        self.current = dest
        return Path(tmp)

    def writing(self, dest: Path | str) -> None:
        """Say that the staged file of ``dest`` is the one being written now (for files written side
        by side): an error such as a full disk is then reported as that file's."""
        self.current = Path(dest)

    def commit(self, marker_text: str) -> None:
        """Put every staged file in place, then the marker (the folder's manifest) with ``marker_text``.

        Files named in ``replaces`` that were not staged are removed (the earlier run's outputs
        that this run does not make). Nothing else in the folder is touched.
        """
        for dest in [*self.staged, self.marker]:  # what would stop a rename: found before anything moves
            if dest.is_dir() and not dest.is_symlink():
                self.current = dest
                raise IsADirectoryError(errno.EISDIR, "a folder is in the way of this file", str(dest))
        tmp_marker = self.path(self.marker)
        tmp_marker.write_text(marker_text, encoding="utf-8")
        rel = lambda p: os.path.relpath(p, self.folder)  # noqa: E731
        moves = [(tmp, dest) for dest, tmp in self.staged.items() if dest != self.marker]
        moves.append((tmp_marker, self.marker))
        removes = [self.folder / n for n in self.replaces if self.folder / n not in self.staged]
        plan = {
            "about": "seqrec was replacing these files when it stopped; the next run that writes this folder finishes it",
            "pid": os.getpid(),
            "moves": [[rel(a), rel(b)] for a, b in moves],
            "remove": [rel(r) for r in removes],
        }
        journal = self.folder / JOURNAL
        tmp_journal = self.path(journal)  # a plain write: a full disk here is the marker's failure
        self.current = self.marker
        tmp_journal.write_text(json.dumps(plan, indent=2) + "\n", encoding="utf-8")
        del self.staged[journal]
        os.replace(tmp_journal, journal)
        self.journaled = True  # from here on the commit is decided: a failure leaves it to recover()
        self.current = None
        _apply(moves, removes)
        self.committed = True
        journal.unlink(missing_ok=True)

    def discard(self) -> None:
        for tmp in self.staged.values():
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_files(
    folder: Path | str,
    *,
    marker: str = "manifest.json",
    owns: Iterable[str] = (),
    replaces: Iterable[str] = (),
    others: Iterable[Path | str] = (),
) -> Iterator[StagedFiles]:
    """Write several files as one unit into ``folder`` (and beside the ``others`` it also writes).

    Locks ``folder`` and ``others`` (:func:`folder_lock`), finishes a commit that a killed run
    left (:func:`recover`) and removes the stale temporary files of ``owns`` (the names this step
    writes), then yields a :class:`StagedFiles`. The block stages every file with
    ``stage.path(dest)`` and ends with ``stage.commit(manifest_text)``. If the block fails, every
    staged file is removed and the folder is exactly as it was; a full disk is
    :class:`DiskFullError` naming the file being written and saying that ``folder`` is unchanged.
    """
    folder = Path(folder)
    others = [Path(o) for o in others]
    with folder_locks(folder, *others):
        created = not folder.exists()
        recover(folder)
        owned = set(owns) | {marker, JOURNAL}
        remove_stale(folder, owned)
        for o in others:
            remove_stale(o.parent, [o.name])
        stage = StagedFiles(folder, marker, replaces)
        try:
            yield stage
            if not stage.committed:
                raise RuntimeError("staged_files: the block ended without stage.commit()")  # a bug, not a user error
        except BaseException as exc:
            better = None
            if not stage.journaled:  # nothing moved yet: the folder is as it was
                failed = stage.current
                if failed is not None:
                    temp = stage.staged.get(failed, failed)
                    names = [str(folder), *(str(o) for o in others)]
                    kept = f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} unchanged"
                    better = _user_facing(exc, temp, failed, kept)
                stage.discard()
                if created:
                    with contextlib.suppress(OSError):
                        folder.rmdir()  # only if still empty
            if better is not None:
                raise better from exc
            raise


# ---------------------------------------------------------------- checksums
def file_digests(path: Path | str, algorithms: tuple[str, ...] = ("sha256",)) -> dict[str, str]:
    """Hex digests of a file, read once whatever the number of algorithms."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            for h in hashers.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashers.items()}


def sha256_file(path: Path | str) -> str:
    return file_digests(path, ("sha256",))["sha256"]
