"""The on-disk contract: default paths, file names, file formats, format version, manifests.

Every step of the pipeline hands the next one files at these default paths, so that
``seqrec download ml-1m``, ``seqrec preprocess ml-1m`` and ``seqrec train bert4rec`` chain with no
flags. ``docs/formats.md`` describes the same contract for people; keep the two in step.

Processed data (what ``train``, ``infer`` and ``evaluate`` read, for both models) is a folder with

* ``train.txt`` / ``valid.txt`` (optional) / ``test.txt``: one sequence per line, item indices
  separated by single spaces, in time order. Indices run 1..N; 0 is padding and N+1 the BERT
  [MASK] token, neither ever appears in a file.
* ``manifest.json``: a :class:`DatasetManifest`; it names the vocabulary (path relative to the
  folder + SHA-256), the evaluation target of the test lines (``last`` item only, leave-one-out;
  or ``all`` positions, session-based) and the checksums of the split files and ``users.txt``.
* ``users.txt`` (optional): the raw user/session id of each line, same order in every split.

A folder's files are written as one unit (:func:`seqrec_cli.fileio.staged_files`), and every
step checks what it reads against the manifest of the step before (:func:`check_input_file`,
:func:`check_raw_input`, :func:`load_processed`).

The vocabulary ``vocab/<name>.txt`` holds one raw item id per line: line i is item index i.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import BadInputError, MismatchError, MissingInputError, SeqrecError
from .fileio import atomic_path, half_written, interrupted, sha256_file, staged_files, stale_temporaries
from .sequences import Sequences
from .textio import read_json, read_lines, read_text

FORMAT_VERSION = 1  # checkpoint config.json (checkpoint.py)
# manifest.json of every folder seqrec writes. 2: users.txt has a checksum (users_sha256); files are
# committed as a unit. Version-1 manifests are refused with the command that rewrites them.
MANIFEST_VERSION = 2

# ---------------------------------------------------------------- default locations (relative to the working folder)
DATA_DIR = Path("data")
RAW_DIR = DATA_DIR / "raw"
VOCAB_DIR = Path("vocab")
MODEL_DIR = Path("model_output")  # train (both models) and infer/evaluate/recommend
PRETRAIN_DIR = Path("pretrain_output")  # pretrain bert4rec

# ---------------------------------------------------------------- file names
TRAIN_FILE = "train.txt"
VALID_FILE = "valid.txt"
TEST_FILE = "test.txt"
USERS_FILE = "users.txt"
MANIFEST_FILE = "manifest.json"
SOURCE_FILE = "SOURCE.json"  # written by download next to the extracted archive
SPLIT_FILES = {"train": TRAIN_FILE, "valid": VALID_FILE, "test": TEST_FILE}

# raw downloads: data/raw/<name>/<archive>, extracted beside it, SOURCE.json records what was fetched
ML1M_RATINGS = RAW_DIR / "ml-1m" / "ml-1m" / "ratings.dat"  # inside ml-1m.zip: ml-1m/ratings.dat
YOOCHOOSE_CLICKS = RAW_DIR / "yoochoose" / "yoochoose-clicks.dat"  # inside yoochoose-data.7z

# processed data sets known by name
ML1M = "ml-1m"
RSC15 = "rsc15"
SAMPLE = "sample"

# RSC15 intermediate stages (session-filter -> convert-format -> text2id)
RSC15_SPLITS = ("train_full", "test", "train_tr", "train_valid")
RSC15_FILTERED_DIR = DATA_DIR / RSC15 / "filtered"  # <split>.tsv: SessionId<TAB>ItemId<TAB>Time
RSC15_SESSIONS_DIR = DATA_DIR / RSC15 / "sessions"  # <split>.txt: one session per line, raw item ids

# checkpoints: <model_dir>/epoch_<N>/{model.pt, config.json, train_state.pt}
CHECKPOINT_PREFIX = "epoch_"
WEIGHTS_FILE = "model.pt"  # state_dict only, loads with weights_only=True
CONFIG_FILE = "config.json"  # model + training config, data paths, vocabulary reference
STATE_FILE = "train_state.pt"  # optimizer, scheduler, RNG states (tensors and plain values only)
RUN_FILE = "run.json"  # what a model folder holds (model name, data set); guards against mixing
METRICS_FILE = "metrics.jsonl"  # one JSON object per logged event (step, epoch, validation)

# how to make each default input, for error messages
MAKE_WITH = {
    ML1M: "seqrec preprocess ml-1m",
    RSC15: "seqrec preprocess yoochoose",
    SAMPLE: "seqrec preprocess sample",
}

EVAL_TARGETS = ("last", "all")  # leave-one-out (last item of each test line) | every position


def processed_dir(name: str) -> Path:
    return DATA_DIR / name


def vocab_path(name: str) -> Path:
    return VOCAB_DIR / f"{name}.txt"


def raw_dir(name: str) -> Path:
    return RAW_DIR / name


def checkpoint_dir(model_dir: Path, epoch: int) -> Path:
    return Path(model_dir) / f"{CHECKPOINT_PREFIX}{epoch}"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def make_hint(folder: Path) -> str | None:
    """The command that creates a default processed folder, for 'not found' errors."""
    folder = Path(folder)
    for name, cmd in MAKE_WITH.items():
        if folder.name == name:
            return cmd
    return None


# ---------------------------------------------------------------- sequence files (the processed format)
_DIGITS = re.compile(r"[0-9]{1,18}")  # a non-negative int64 written plainly (no sign, no exponent)
_SEQ_TEXT = re.compile(r"[0-9 \t\n]*")  # everything a well-formed sequence file may contain
_TOO_LONG = re.compile(r"[0-9]{19,}")


def read_sequences(path: Path | str, n_items: int | None = None) -> Sequences:
    """Read a processed sequence file, checking every token; errors name the file and line.

    Read with the text reader (:mod:`seqrec_cli.textio`: UTF-8, BOM, LF/CRLF/lone-CR line ends,
    trailing blank lines ignored); anything but plain non-negative integers (signs, exponents,
    letters, numbers beyond int64) and a blank line before the last are errors at their line.
    """
    path = Path(path)
    text = read_text(path, what="sequence file", make_with=make_hint(path.parent))
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise BadInputError(path, "empty file: no sequences")
    lengths = np.fromiter((len(line.split()) for line in lines), dtype=np.int64, count=len(lines))
    if not _SEQ_TEXT.fullmatch(text) or _TOO_LONG.search(text) or (lengths == 0).any():
        _raise_first_bad_line(path, lines)
    items = np.array(text.split(), dtype=np.int64)
    bad = (items < 1) | ((items > n_items) if n_items is not None else False)
    if bad.any():
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        first = int(np.argmax(bad))
        line_no = int(np.searchsorted(offsets, first, side="right"))
        hi = f"..{n_items}" if n_items is not None else " or more"
        raise BadInputError(path, f"item index {items[first]} outside 1{hi}", line=line_no)
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Sequences(items, offsets)


def _raise_first_bad_line(path: Path, lines: list[str]) -> None:
    for no, line in enumerate(lines, start=1):
        tokens = line.split()
        if not tokens:
            raise BadInputError(path, "empty line (every line must hold at least one item)", line=no)
        for tok in tokens:
            if not _DIGITS.fullmatch(tok):
                raise BadInputError(path, f"not an item index: {tok!r}", line=no)
    raise BadInputError(path, "unreadable sequence file")  # pragma: no cover - the scan above finds it


def write_sequences(path: Path | str, seqs: Sequences | list[list[int]]) -> None:
    """Write sequences atomically, one per line, space-separated (DiskFullError on a full disk)."""
    with atomic_path(path) as tmp:
        _write_sequences_to(tmp, seqs)


def _write_sequences_to(path: Path, seqs: Sequences | list[list[int]]) -> None:
    from .columnar import token_lines  # pyarrow: imported only when a file is written

    if not isinstance(seqs, Sequences):
        seqs = Sequences.from_lists(seqs)
    with open(path, "wb") as fh:
        for text, _ in token_lines(seqs.items, seqs.offsets):
            fh.write(text)


# ---------------------------------------------------------------- vocabulary
def read_vocab(path: Path | str) -> list[str]:
    """Raw item ids; element i-1 is the raw id of item index i."""
    path = Path(path)
    tokens = read_lines(path, what="vocabulary", blank=None)
    for no, tok in enumerate(tokens, start=1):
        if not tok.strip() or tok.strip() != tok:
            raise BadInputError(path, "blank line or surrounding whitespace in the vocabulary", line=no)
    if not tokens:
        raise BadInputError(path, "empty vocabulary")
    if len(set(tokens)) != len(tokens):
        raise BadInputError(path, "duplicate item ids in the vocabulary")
    return tokens


def check_vocab_ids(raw_ids: list[str], where: Path | str) -> None:
    """Refuse raw ids that would not read back as the same vocabulary (blank, padded, repeated, multi-line)."""
    if not raw_ids:
        raise BadInputError(where, "empty vocabulary: no item")
    for i, tok in enumerate(raw_ids, start=1):
        if not tok.strip() or tok.strip() != tok or any(c in tok for c in "\r\n"):
            raise BadInputError(where, f"item id {tok!r} (item {i}) is blank, padded or spans lines: it cannot be a vocabulary line")
    if len(set(raw_ids)) != len(raw_ids):
        raise BadInputError(where, "duplicate item ids in the vocabulary")


def write_vocab(path: Path | str, raw_ids: list[str]) -> None:
    """Write a vocabulary atomically (one raw id per line)."""
    with atomic_path(path) as tmp:
        _write_vocab_to(tmp, raw_ids)


def _write_vocab_to(path: Path, raw_ids: list[str]) -> None:
    path.write_text("".join(f"{r}\n" for r in raw_ids), encoding="utf-8")


# ---------------------------------------------------------------- manifests
def manifest_text(manifest: dict[str, Any]) -> str:
    """``manifest.json`` content: the common header (format version, tool version, time), then ``manifest``."""
    body = {"format_version": MANIFEST_VERSION, "seqrec_version": __version__, "created": now_iso()}
    body.update(manifest)
    return json.dumps(body, indent=2) + "\n"


def read_manifest(folder: Path | str, make_with: str | None = None) -> dict[str, Any]:
    """The ``manifest.json`` of a folder seqrec wrote, checked for its format version.

    Raises MissingInputError (absent: ``make_with`` or the folder's default command says how to
    make it), InterruptedWriteError (a run was killed while replacing the folder; LockedError
    while its writer is still at work), BadInputError
    (not JSON, not an object), MismatchError (another format version, with the command to rerun).
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    make_with = make_with or make_hint(folder)
    if interrupted(folder):
        raise half_written(folder, make_with)
    if not path.is_file():
        raise MissingInputError(path, make_with, what="manifest")
    data = read_json(path, what="manifest")
    if not isinstance(data, dict):
        raise BadInputError(path, "not a seqrec manifest (expected a JSON object)")
    version = data.get("format_version")
    if version != MANIFEST_VERSION:
        by = f" (written by seqrec {data['seqrec_version']})" if isinstance(data.get("seqrec_version"), str) else ""
        rerun = f"rerun: {make_with}" if make_with else "rerun the step that made it"
        raise MismatchError(
            f"{path}: manifest format version {version}{by}; this seqrec reads version {MANIFEST_VERSION}; {rerun}"
        )
    return data


def manifest_outputs(folder: Path | str, kind: str) -> list[str]:
    """Names of the files the manifest of ``folder`` lists as its own (splits, users.txt) when it
    is a manifest of ``kind``: what a new run of the same step replaces. Empty when there is no
    readable manifest of that kind (another step's files are never removed). Plain names only."""
    try:
        data = json.loads((Path(folder) / MANIFEST_FILE).read_text(encoding="utf-8-sig"))
        if data.get("kind") != kind:
            return []
        names = [str(info["path"]) for info in data.get("splits", {}).values()]
        if data.get("has_users"):
            names.append(USERS_FILE)
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return []
    return [n for n in names if n and "/" not in n and "\\" not in n and n not in (".", "..")]


def input_folder_state(folder: Path | str, make_with: str | None = None) -> dict[str, Any] | None:
    """The manifest of a folder a step reads from, or None when it has none (the user's own files).

    Raises :class:`~seqrec_cli.fileio.InterruptedWriteError` when the folder holds the journal of
    an interrupted commit, or, without a manifest, temporary files of a killed seqrec writer (a
    half-rewritten folder is never read), or LockedError when its writer is still at work; and
    what :func:`read_manifest` raises.
    """
    folder = Path(folder)
    if interrupted(folder):
        raise half_written(folder, make_with)
    if not (folder / MANIFEST_FILE).is_file():
        if stale_temporaries(folder):
            raise half_written(folder, make_with)
        return None
    return read_manifest(folder, make_with)


def check_input_file(path: Path | str, *, sha256: str | None = None, make_with: str | None = None) -> bool:
    """Check a file a step reads against the manifest of the folder it lies in.

    :func:`input_folder_state` first; then, when the manifest lists the file (as a split or as
    ``users.txt``), its SHA-256 (``sha256`` if the caller computed it while reading) must match,
    else :class:`MismatchError` naming the file and the command to rerun; returns True. A folder
    without a manifest, or a file the manifest does not list (the user's own file): False.
    """
    path = Path(path)
    folder = path.parent
    manifest = input_folder_state(folder, make_with)
    if manifest is None:
        return False
    listed = {str(info.get("path")): info for info in manifest.get("splits", {}).values() if isinstance(info, dict)}
    if manifest.get("has_users") and manifest.get("users_sha256"):
        listed[USERS_FILE] = {"sha256": manifest["users_sha256"]}
    if path.name not in listed:
        return False
    got = sha256 or sha256_file(path)
    if got != listed[path.name].get("sha256"):
        rerun = f"; rerun: {make_with}" if make_with else "; rerun the step that made it"
        raise MismatchError(
            f"{path} does not match {folder / MANIFEST_FILE} (changed since, or left from another run){rerun}"
        )
    return True


def check_raw_input(path: Path | str, *, sha256: str | None = None) -> bool:
    """Check a raw input (``ratings.dat``, the clicks) against the ``SOURCE.json`` of its download.

    Looks for SOURCE.json in the file's folder and the one above (``ml-1m/ratings.dat``). When it
    lists the file, the size and (if recorded) SHA-256 must match, else :class:`MismatchError`
    saying how to restore it; returns True. A file from no download: False.
    """
    path = Path(path)
    for root in (path.parent, path.parent.parent):
        record_file = root / SOURCE_FILE
        if not record_file.is_file():
            continue
        try:
            record = read_json(record_file, what="download record")
            rel = path.relative_to(root).as_posix()
            entry = next((f for f in record.get("extracted", []) if f.get("path") == rel), None)
        except (SeqrecError, AttributeError, TypeError, ValueError):
            return False
        if entry is None:
            return False
        fix = f"run: seqrec download {record.get('dataset', '<name>')} (it extracts the file again from the verified archive)"
        if path.stat().st_size != entry.get("bytes"):
            raise MismatchError(f"{path} is not the file {record_file} recorded ({entry.get('bytes')} bytes); {fix}")
        want = entry.get("sha256")
        if want is not None and (sha256 or sha256_file(path)) != want:
            raise MismatchError(f"{path} changed since {record_file} was written (SHA-256 differs); {fix}")
        return True
    return False


def input_record(path: Path | str) -> dict[str, Any]:
    """How a manifest names an input: path, size and SHA-256."""
    p = Path(path)
    return {"path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)}


@dataclass
class SplitInfo:
    path: str  # file name inside the data folder
    sha256: str
    sequences: int
    events: int


@dataclass
class DatasetManifest:
    """The manifest of a processed data folder (the input of train/infer/evaluate)."""

    dataset: str  # name, e.g. "ml-1m"
    eval_target: str  # "last" (leave-one-out) or "all" (every position of every test line)
    vocab_path: str  # relative to the data folder
    vocab_sha256: str
    n_items: int  # item indices are 1..n_items
    splits: dict[str, SplitInfo]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    has_users: bool = False
    users_sha256: str | None = None  # SHA-256 of users.txt when has_users
    kind: str = "sequences"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> DatasetManifest:
        """The typed manifest of a processed folder: every key of its type, counts in range, the
        split files those seqrec writes; anything else is one error naming ``source`` and the key."""
        from .hparams import parse_record, shown

        if data.get("kind") != "sequences":
            raise BadInputError(source, f"manifest of kind {data.get('kind')!r}, expected processed sequences")
        body = {k: v for k, v in data.items() if k not in ("format_version", "seqrec_version", "created")}
        m = parse_record(cls, body, source)
        if m.eval_target not in EVAL_TARGETS:
            raise BadInputError(source, f"eval_target must be one of {', '.join(EVAL_TARGETS)}, got {shown(m.eval_target)}")
        if m.n_items < 1:
            raise BadInputError(source, f"n_items must be a positive integer, got {m.n_items}")
        for name, info in m.splits.items():
            if name not in SPLIT_FILES:
                raise BadInputError(source, f"splits.{name}: not a split seqrec writes (those are {', '.join(SPLIT_FILES)})")
            if info.path != SPLIT_FILES[name]:
                raise BadInputError(source, f"splits.{name}.path must be {SPLIT_FILES[name]!r}, got {shown(info.path)}")
            for key in ("sequences", "events"):
                if getattr(info, key) < 0:
                    raise BadInputError(source, f"splits.{name}.{key} must be a non-negative integer, got {getattr(info, key)}")
        if m.has_users and m.users_sha256 is None:
            raise BadInputError(source, "users_sha256 must be a string when has_users is true, got null")
        if not m.has_users:
            m.users_sha256 = None
        return m


@dataclass
class ProcessedData:
    """A loaded processed data folder."""

    folder: Path
    manifest: DatasetManifest
    splits: dict[str, Sequences]
    users: list[str] | None

    @property
    def n_items(self) -> int:
        return self.manifest.n_items

    @property
    def vocab_file(self) -> Path:
        return resolve_vocab(self.folder, self.manifest)

    def split(self, name: str) -> Sequences:
        if name not in self.splits:
            raise MissingInputError(self.folder / SPLIT_FILES[name], make_hint(self.folder), what=f"{name} split")
        return self.splits[name]


def check_no_leakage(splits: dict[str, Sequences], eval_target: str, where: Path | str) -> None:
    """Refuse leave-one-out data in which a held-out target enters a training input.

    With ``eval_target == "last"`` line i of every split is the same user. The train line must
    be a prefix of the test line that stops before the test target, and before the validation
    target when there is a valid split; the valid line must be the test line minus its target.
    Anything else means a target leaks into what the model trains on.
    """
    if eval_target != "last" or "train" not in splits or "test" not in splits:
        return
    test = splits["test"]
    held_out = 2 if "valid" in splits else 1
    checks = [("train", splits["train"], test.lengths - held_out, False)]
    if "valid" in splits:
        checks.append(("valid", splits["valid"], test.lengths - 1, True))
    for name, seqs, limit, exact in checks:
        if len(seqs) != len(test):
            raise MismatchError(f"{where}: {name} has {len(seqs)} lines, test {len(test)}; leave-one-out needs one per user")
        bad = np.flatnonzero(seqs.lengths != limit if exact else seqs.lengths > limit)
        if len(bad):
            i = int(bad[0])
            raise MismatchError(
                f"{where}: line {i + 1}: the {name} sequence has {seqs.lengths[i]} items and the test line "
                f"{test.lengths[i]}: it would reach a held-out target (leakage)"
            )
        row = seqs.row_ids()
        differs = seqs.items != test.items[test.offsets[:-1][row] + seqs.positions()]
        if differs.any():
            i = int(row[np.argmax(differs)])
            raise MismatchError(f"{where}: line {i + 1}: the {name} sequence is not a prefix of the test sequence")


def resolve_vocab(folder: Path, manifest: DatasetManifest) -> Path:
    return Path(os.path.normpath(Path(folder) / manifest.vocab_path))


PROCESSED_FILES = (TRAIN_FILE, VALID_FILE, TEST_FILE, USERS_FILE)  # what save_processed writes besides the manifest


def save_processed(
    folder: Path | str,
    *,
    dataset: str,
    eval_target: str,
    vocab_file: Path | str,
    splits: dict[str, Sequences],
    users: list[str] | None = None,
    inputs: list[dict[str, Any]] | None = None,
    params: dict[str, Any] | None = None,
    counts: dict[str, Any] | None = None,
    vocab: list[str] | None = None,
) -> DatasetManifest:
    """Write a processed data folder as one unit: split files, optional users.txt, the manifest.

    With ``vocab`` (the raw ids, line i = item index i) the vocabulary file is written in the same
    unit; without it ``vocab_file`` must exist. Holds the locks of the folder (and of the
    vocabulary it writes); every file is staged under a temporary name and put in place only when
    all are complete (:func:`seqrec_cli.fileio.staged_files`), the manifest last, so a run that
    fails or is killed leaves the earlier folder and vocabulary whole. Files of the earlier run
    that this one does not write (a ``valid.txt``, a ``users.txt``) are removed; other files in
    the folder are left alone. Raises MismatchError (leakage), BadInputError (bad vocabulary ids),
    LockedError (another process is writing), DiskFullError.
    """
    folder = Path(folder)
    vocab_file = Path(vocab_file)
    check_no_leakage(splits, eval_target, folder)
    if vocab is not None:
        check_vocab_ids(vocab, vocab_file)
    others = [vocab_file] if vocab is not None else []
    with staged_files(folder, owns=PROCESSED_FILES, replaces=manifest_outputs(folder, "sequences"), others=others) as stage:
        if vocab is None:
            n_items, vocab_sha = len(read_vocab(vocab_file)), sha256_file(vocab_file)
        else:
            tmp = stage.path(vocab_file)
            _write_vocab_to(tmp, vocab)
            n_items, vocab_sha = len(vocab), sha256_file(tmp)
        infos: dict[str, SplitInfo] = {}
        for name, seqs in splits.items():
            tmp = stage.path(folder / SPLIT_FILES[name])
            _write_sequences_to(tmp, seqs)
            infos[name] = SplitInfo(SPLIT_FILES[name], sha256_file(tmp), len(seqs), seqs.n_events)
        users_sha = None
        if users is not None:
            tmp = stage.path(folder / USERS_FILE)
            tmp.write_text("".join(f"{u}\n" for u in users), encoding="utf-8")
            users_sha = sha256_file(tmp)
        manifest = DatasetManifest(
            dataset=dataset,
            eval_target=eval_target,
            vocab_path=os.path.relpath(vocab_file.resolve(), folder.resolve()),
            vocab_sha256=vocab_sha,
            n_items=n_items,
            splits=infos,
            inputs=inputs or [],
            params=params or {},
            counts=counts or {},
            has_users=users is not None,
            users_sha256=users_sha,
        )
        stage.commit(manifest_text(manifest.to_dict()))
    return manifest


def load_processed(folder: Path | str, verify: bool = True) -> ProcessedData:
    """Load a processed data folder, checking manifest, vocabulary, split and users.txt checksums.

    Raises MissingInputError (folder, manifest, vocabulary or a listed file absent, with the
    command that makes it), InterruptedWriteError (a run was killed while replacing the folder),
    MismatchError (a file changed since the manifest was written, leakage, another format
    version), BadInputError (a malformed file, at its line).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(folder, make_hint(folder), what="processed data folder")
    manifest = DatasetManifest.from_dict(read_manifest(folder), folder / MANIFEST_FILE)
    vocab_file = resolve_vocab(folder, manifest)
    if not vocab_file.is_file():
        raise MissingInputError(vocab_file, make_hint(folder), what="vocabulary")
    if verify and sha256_file(vocab_file) != manifest.vocab_sha256:
        raise MismatchError(f"{vocab_file} changed since {folder / MANIFEST_FILE} was written; rerun preprocessing")
    n_vocab = len(read_vocab(vocab_file)) if verify else manifest.n_items
    if n_vocab != manifest.n_items:
        raise BadInputError(folder / MANIFEST_FILE, f"n_items is {manifest.n_items}, but the vocabulary {vocab_file} has {n_vocab} items")
    splits: dict[str, Sequences] = {}
    for name, info in manifest.splits.items():
        path = folder / info.path
        if verify and path.is_file() and sha256_file(path) != info.sha256:
            raise MismatchError(f"{path} changed since {folder / MANIFEST_FILE} was written; rerun preprocessing")
        splits[name] = read_sequences(path, manifest.n_items)
    users = None
    if manifest.has_users:
        upath = folder / USERS_FILE
        if not upath.is_file():
            raise MissingInputError(upath, make_hint(folder), what="users file")
        if verify and sha256_file(upath) != manifest.users_sha256:
            raise MismatchError(f"{upath} changed since {folder / MANIFEST_FILE} was written; rerun preprocessing")
        users = read_lines(upath, what="users file", blank="empty line (every line must hold a user id)")
        n_lines = len(splits["test"]) if "test" in splits else len(splits.get("train", []))
        if manifest.eval_target == "last" and len(users) != n_lines:
            raise MismatchError(f"{upath} has {len(users)} lines, the splits {n_lines}: one user id per line is needed")
    if "train" not in splits:
        raise SeqrecError(f"{folder}: the manifest lists no train split")
    check_no_leakage(splits, manifest.eval_target, folder)
    return ProcessedData(folder, manifest, splits, users)
