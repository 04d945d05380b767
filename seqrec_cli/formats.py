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
  or ``all`` positions, session-based) and the checksums of the split files.
* ``users.txt`` (optional): the raw user/session id of each line, same order in every split.

The vocabulary ``vocab/<name>.txt`` holds one raw item id per line: line i is item index i.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .errors import BadInputError, MismatchError, MissingInputError, SeqrecError
from .fileio import atomic_path, sha256_file, write_json
from .textio import read_json, read_lines, read_text

FORMAT_VERSION = 1

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


# ---------------------------------------------------------------- sequences (the processed format)
class Sequences:
    """Variable-length integer sequences stored flat: ``items[offsets[i]:offsets[i+1]]`` is line i."""

    __slots__ = ("items", "offsets")

    def __init__(self, items: np.ndarray, offsets: np.ndarray):
        self.items = np.ascontiguousarray(items, dtype=np.int64)  # [total]
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)  # [n+1]

    @classmethod
    def from_lists(cls, seqs: list[list[int]] | list[np.ndarray]) -> Sequences:
        lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if seqs else np.zeros(0, np.int64)
        return cls(items, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.items[self.offsets[i] : self.offsets[i + 1]]

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def n_events(self) -> int:
        return int(self.offsets[-1])

    def to_lists(self) -> list[list[int]]:
        return [self[i].tolist() for i in range(len(self))]


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
    """Write sequences atomically, one per line, space-separated."""
    if not isinstance(seqs, Sequences):
        seqs = Sequences.from_lists(seqs)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="ascii", newline="\n") as fh:
            items = seqs.items.astype(str)
            for i in range(len(seqs)):
                fh.write(" ".join(items[seqs.offsets[i] : seqs.offsets[i + 1]]))
                fh.write("\n")


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


def write_vocab(path: Path | str, raw_ids: list[str]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(f"{r}\n" for r in raw_ids), encoding="utf-8")


# ---------------------------------------------------------------- manifests
def write_manifest(folder: Path | str, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` with the common header (format version, tool version, time)."""
    body = {"format_version": FORMAT_VERSION, "seqrec_version": __version__, "created": now_iso()}
    body.update(manifest)
    dest = Path(folder) / MANIFEST_FILE
    write_json(dest, body)
    return dest


def read_manifest(folder: Path | str, make_with: str | None = None) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise MissingInputError(path, make_with or make_hint(folder), what="manifest")
    data = read_json(path, what="manifest")
    if not isinstance(data, dict):
        raise BadInputError(path, "not a seqrec manifest (expected a JSON object)")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise MismatchError(
            f"{path}: format version {version}, this seqrec reads version {FORMAT_VERSION}; "
            "rerun the step that made it"
        )
    return data


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
    kind: str = "sequences"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: Path) -> DatasetManifest:
        try:
            splits = {k: SplitInfo(**v) for k, v in data["splits"].items()}
            fields = {k: data[k] for k in ("dataset", "eval_target", "vocab_path", "vocab_sha256", "n_items")}
        except (KeyError, TypeError) as exc:
            raise BadInputError(source, f"not a processed-data manifest (missing or bad field {exc})") from None
        if data.get("kind") != "sequences":
            raise BadInputError(source, f"manifest of kind {data.get('kind')!r}, expected processed sequences")
        if fields["eval_target"] not in EVAL_TARGETS:
            raise BadInputError(source, f"eval_target must be one of {EVAL_TARGETS}")
        return cls(
            splits=splits,
            inputs=data.get("inputs", []),
            params=data.get("params", {}),
            counts=data.get("counts", {}),
            has_users=bool(data.get("has_users", False)),
            **fields,
        )


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
        row = np.repeat(np.arange(len(seqs)), seqs.lengths)
        pos = np.arange(seqs.n_events) - seqs.offsets[:-1][row]
        differs = seqs.items != test.items[test.offsets[:-1][row] + pos]
        if differs.any():
            i = int(row[np.argmax(differs)])
            raise MismatchError(f"{where}: line {i + 1}: the {name} sequence is not a prefix of the test sequence")


def resolve_vocab(folder: Path, manifest: DatasetManifest) -> Path:
    return Path(os.path.normpath(Path(folder) / manifest.vocab_path))


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
) -> DatasetManifest:
    """Write a processed data folder: split files, optional users.txt, then the manifest last.

    The manifest is written last, so a folder without one (or with a stale one whose checksums no
    longer match) is never taken for complete data.
    """
    folder = Path(folder)
    check_no_leakage(splits, eval_target, folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_FILE).unlink(missing_ok=True)
    vocab_file = Path(vocab_file)
    n_items = len(read_vocab(vocab_file))
    infos: dict[str, SplitInfo] = {}
    for name, seqs in splits.items():
        dest = folder / SPLIT_FILES[name]
        write_sequences(dest, seqs)
        infos[name] = SplitInfo(SPLIT_FILES[name], sha256_file(dest), len(seqs), seqs.n_events)
    if users is not None:
        with atomic_path(folder / USERS_FILE) as tmp:
            tmp.write_text("".join(f"{u}\n" for u in users), encoding="utf-8")
    manifest = DatasetManifest(
        dataset=dataset,
        eval_target=eval_target,
        vocab_path=os.path.relpath(vocab_file.resolve(), folder.resolve()),
        vocab_sha256=sha256_file(vocab_file),
        n_items=n_items,
        splits=infos,
        inputs=inputs or [],
        params=params or {},
        counts=counts or {},
        has_users=users is not None,
    )
    write_manifest(folder, manifest.to_dict())
    return manifest


def load_processed(folder: Path | str, verify: bool = True) -> ProcessedData:
    """Load a processed data folder, checking manifest, vocabulary and split checksums."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(folder, make_hint(folder), what="processed data folder")
    manifest = DatasetManifest.from_dict(read_manifest(folder), folder / MANIFEST_FILE)
    vocab_file = resolve_vocab(folder, manifest)
    if not vocab_file.is_file():
        raise MissingInputError(vocab_file, make_hint(folder), what="vocabulary")
    if verify and sha256_file(vocab_file) != manifest.vocab_sha256:
        raise MismatchError(f"{vocab_file} changed since {folder / MANIFEST_FILE} was written; rerun preprocessing")
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
        users = read_lines(upath, what="users file", blank="empty line (every line must hold a user id)")
    if "train" not in splits:
        raise SeqrecError(f"{folder}: the manifest lists no train split")
    check_no_leakage(splits, manifest.eval_target, folder)
    return ProcessedData(folder, manifest, splits, users)
