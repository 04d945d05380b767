"""seqrec preprocess session-filter / convert-format / text2id / yoochoose (RSC15, GRU4Rec rules).

Each command parses its options, calls ``seqrec_cli.datasets.rsc15`` and reports. The library
(numpy, pandas) is imported inside the commands so that ``seqrec --help`` stays fast.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .. import formats
from ..console import Tracker, note, say
from ..errors import MissingInputError, SeqrecError
from ..fileio import folder_lock, folder_locks, staged_files

if TYPE_CHECKING:
    from ..datasets import rsc15

DOWNLOAD_CMD = "seqrec download yoochoose"
DEFAULT_TRAIN = formats.RSC15_SESSIONS_DIR / "train_full.txt"  # text2id reads convert-format's output
DEFAULT_TEST = formats.RSC15_SESSIONS_DIR / "test.txt"
FILTER_CMD = "seqrec preprocess session-filter"
CONVERT_CMD = "seqrec preprocess convert-format"
TRAIN_CMD = "seqrec train gru4rec"

TIME_NOTE = (
    "Time = Unix seconds read as UTC, kept to the millisecond (the official script used the local "
    "time zone of its machine; only differences of times matter)."
)


# ---------------------------------------------------------------- stages (shared by the commands and yoochoose)
def _record(info: dict[str, Any]) -> dict[str, Any]:
    return {"path": info["path"], "bytes": info["bytes"], "sha256": info["sha256"]}


def _fmt(c: dict[str, int]) -> str:
    return f"{c['events']} events, {c['sessions']} sessions, {c['items']} items"


def _run_session_filter(input_path: Path, out_dir: Path, default_input: bool) -> dict[str, rsc15.Events]:
    from ..datasets import rsc15

    if not input_path.is_file():
        raise MissingInputError(input_path, DOWNLOAD_CMD if default_input else None, what="clicks file")
    with folder_lock(out_dir):  # a second writer is refused now, not after the filtering
        size = input_path.stat().st_size
        digest = hashlib.sha256()
        with Tracker(f"reading {input_path.name}", total=size, kind="bytes") as tracker:
            events = rsc15.read_clicks(input_path, progress=tracker.advance, digest=digest)
        source = {"path": str(input_path), "bytes": size, "sha256": digest.hexdigest()}  # as formats.input_record
        formats.check_raw_input(input_path, sha256=source["sha256"])
        note("filtering (GRU4Rec RSC15 rules, docs/protocols.md §3)")
        result = rsc15.filter_sessions(events, log=lambda m: note(f"  {m}"), consume=True)
        note(TIME_NOTE)
        del events
        _write_filtered(out_dir, result, source)
    return result.splits


def _write_filtered(out_dir: Path, result: rsc15.FilterResult, source: dict[str, Any]) -> None:
    """The four tables and the manifest, as one unit (the earlier folder stays whole until all are written)."""
    from ..datasets import rsc15

    names = [f"{n}.tsv" for n in formats.RSC15_SPLITS]
    with staged_files(out_dir, owns=names, replaces=formats.manifest_outputs(out_dir, "rsc15-filtered")) as stage:
        written: dict[str, dict[str, Any]] = {}
        for name in formats.RSC15_SPLITS:
            if name in result.subsets:
                continue  # written with the split it is a subset of
            subsets = [child for child, (parent, _) in result.subsets.items() if parent == name]
            group = [name, *subsets]
            tables = [(out_dir / f"{n}.tsv", stage.path(out_dir / f"{n}.tsv"), None) for n in group]
            tables[1:] = [(dest, staged, result.subsets[child][1]) for (dest, staged, _), child in zip(tables[1:], subsets)]
            ev = result.splits[name]
            with Tracker(f"writing {', '.join(f'{n}.tsv' for n in group)}", total=len(ev)) as tracker:
                records = rsc15.write_event_tables(tables, ev, progress=tracker.advance, writing=stage.writing)
            written.update(zip(group, records))
        splits_info: dict[str, Any] = {}
        for name in formats.RSC15_SPLITS:
            counts = result.counts[name]
            splits_info[name] = {"path": f"{name}.tsv", "sha256": written[name]["sha256"], "bytes": written[name]["bytes"], **counts}
            say(f"{name}.tsv: {_fmt(counts)}")
        manifest = {
            "kind": "rsc15-filtered",
            "inputs": [source],
            "parameters": {
                "rules": "GRU4Rec examples/rsc15/preprocess.py (docs/protocols.md §3, steps 2-7)",
                "min_session_length": rsc15.MIN_SESSION_LENGTH,
                "min_item_support": rsc15.MIN_ITEM_SUPPORT,
                "split_window_s": rsc15.SPLIT_WINDOW_MS / 1000,
                "min_test_session_length": rsc15.MIN_TEST_SESSION_LENGTH,
                "time": "Unix seconds, UTC, 3 decimals",
                "order": "SessionId, then Time (ties in file order)",
                "columns": list(rsc15.TSV_HEADER),
            },
            "steps": result.steps,
            "splits": splits_info,
        }
        stage.commit(formats.manifest_text(manifest))
    say(f"wrote {out_dir}/{{{','.join(formats.RSC15_SPLITS)}}}.tsv + {formats.MANIFEST_FILE}")


_SPLIT_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def _parse_splits(values: list[str] | None) -> list[str]:
    if not values:
        return list(formats.RSC15_SPLITS)
    names: list[str] = []
    for v in values:
        for name in v.split(","):
            name = name.strip()
            if not name:
                continue
            if not _SPLIT_NAME.fullmatch(name):
                raise SeqrecError(f"--splits: not a split name: {name!r}")
            if name not in names:
                names.append(name)
    if not names:
        raise SeqrecError("--splits: no split named")
    return names


def _run_convert(
    out_dir: Path,
    sources: dict[str, tuple[Path, dict[str, Any] | None, rsc15.Events | None]],
) -> dict[str, rsc15.TokenLines]:
    """Write ``<split>.txt`` for each (tsv path, tsv record, events); with events None the table is
    read, checked against the manifest of its folder, and its record made from what was read."""
    from ..datasets import rsc15

    with folder_lock(out_dir):
        lines: dict[str, rsc15.TokenLines] = {}
        records = []
        for name, (tsv, record, events) in sources.items():
            if events is None:
                digest = hashlib.sha256()
                events = rsc15.read_events_tsv(tsv, digest=digest)
                formats.check_input_file(tsv, sha256=digest.hexdigest(), make_with=FILTER_CMD)
                record = {"path": str(tsv), "bytes": tsv.stat().st_size, "sha256": digest.hexdigest()}
            lines[name] = rsc15.sessions_from_events(events, out_dir / f"{name}.txt")
            records.append(record)
        names = [f"{n}.txt" for n in lines]
        with staged_files(out_dir, owns=names, replaces=formats.manifest_outputs(out_dir, "rsc15-sessions")) as stage:
            splits_info: dict[str, Any] = {}
            for name, seqs in lines.items():
                dest = out_dir / f"{name}.txt"
                with Tracker(f"writing {dest.name}", total=len(seqs.tokens)) as tracker:
                    written = rsc15.write_token_lines(dest, seqs, progress=tracker.advance, staged=stage.path(dest))
                seqs.path, seqs.record = dest, written
                counts = seqs.counts()
                splits_info[name] = {"path": dest.name, "sha256": written["sha256"], "bytes": written["bytes"], **counts}
                say(f"{dest.name}: {counts['sessions']} sessions, {counts['events']} events, {counts['items']} items")
            manifest = {
                "kind": "rsc15-sessions",
                "inputs": records,
                "parameters": {
                    "format": "one session per line, raw item ids separated by single spaces",
                    "order": "sessions by SessionId; items by Time, ties in input order",
                },
                "splits": splits_info,
            }
            stage.commit(formats.manifest_text(manifest))
    say(f"wrote {out_dir}/{{{','.join(lines)}}}.txt + {formats.MANIFEST_FILE}")
    return lines


def _run_text2id(
    inputs: dict[str, rsc15.TokenLines],
    records: list[dict[str, Any]],
    out_dir: Path,
    vocab_file: Path,
    name: str,
) -> rsc15.Text2IdResult:
    from ..datasets import rsc15

    others = {k: v for k, v in inputs.items() if k != "train"}
    result = rsc15.text2id(inputs["train"], others)
    for split in others:
        if len(result.splits[split].sequences) == 0:
            raise SeqrecError(
                f"{inputs[split].path}: no {split} session keeps 2 or more items known to the training vocabulary"
            )
    splits = {k: result.splits[k].sequences for k in ("train", "valid", "test") if k in result.splits}
    counts: dict[str, Any] = {"items": len(result.vocab)}
    counts.update({k: result.splits[k].counts for k in splits})
    note(f"writing {out_dir}")
    formats.save_processed(
        out_dir,
        dataset=name,
        eval_target="all",
        vocab_file=vocab_file,
        splits=splits,
        inputs=records,
        params={
            "vocabulary": "distinct items of the train file only",
            "vocab_order": result.order,
            "unknown_items": "dropped from valid/test, then sessions under 2 items dropped",
            "min_session_length": rsc15.MIN_TEST_SESSION_LENGTH,
        },
        counts=counts,
        vocab=result.vocab,  # written with the data folder, as one unit: a failing run leaves the old vocabulary
    )
    say(f"vocabulary: {len(result.vocab)} items (from train, {result.order} order) -> {vocab_file}")
    tr = result.splits["train"].counts
    say(f"train: {tr['sessions']} sessions, {tr['events']} events")
    for split in ("valid", "test"):
        if split not in result.splits:
            continue
        c = result.splits[split].counts
        say(
            f"{split}: {c['sessions']} sessions, {c['events']} events; "
            f"unknown items dropped: {c['unknown_events_dropped']} of {c['input_events']} events "
            f"({100 * c['unknown_events_share']:.2f}%), {c['unknown_targets']} of {c['input_targets']} targets "
            f"({100 * c['unknown_targets_share']:.2f}%); sessions dropped (< 2 items): {c['short_sessions_dropped']}"
        )
    say(f"wrote {out_dir}/{{{','.join(formats.SPLIT_FILES[k] for k in splits)}}} + {formats.MANIFEST_FILE}")
    return result


# ---------------------------------------------------------------- commands
def session_filter(
    input: Annotated[
        Optional[Path],
        typer.Option("--input", help=f"Raw clicks file. [default: {formats.YOOCHOOSE_CLICKS}]", show_default=False),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Folder for <split>.tsv and manifest.json.")
    ] = formats.RSC15_FILTERED_DIR,
) -> None:
    """Filter raw YOOCHOOSE clicks and split them by time, exactly as the official GRU4Rec script.

    Rules, in order: keep sessions with more than 1 event; keep items with at least 5 events; keep
    sessions with at least 2 events; sessions whose last event falls in the final 86,400 s are
    test, the rest train_full; test events with items not in train_full are dropped, then test
    sessions under 2 events; train_full is split the same way into train_tr and train_valid.
    Writes train_full/test/train_tr/train_valid.tsv (SessionId<TAB>ItemId<TAB>Time, sorted by
    session then time). Time = Unix seconds read as UTC (the official script used local time;
    only differences matter).
    """
    _run_session_filter(input or formats.YOOCHOOSE_CLICKS, out_dir, default_input=input is None)


def convert_format(
    in_dir: Annotated[
        Path, typer.Option("--in-dir", help="Folder with the <split>.tsv tables of session-filter.")
    ] = formats.RSC15_FILTERED_DIR,
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Folder for <split>.txt and manifest.json.")
    ] = formats.RSC15_SESSIONS_DIR,
    splits: Annotated[
        Optional[list[str]],
        typer.Option(
            "--splits",
            help=f"Splits to convert (repeat, or comma-separated). [default: {','.join(formats.RSC15_SPLITS)}]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Turn each <split>.tsv into <split>.txt: one session per line, raw item ids in time order.

    Sessions come in order of SessionId; items of a session in order of Time (ties keep the
    table's order), separated by single spaces.
    """
    names = _parse_splits(splits)
    if in_dir.resolve() == out_dir.resolve():
        raise SeqrecError(f"--out-dir {out_dir} is the --in-dir: give the session files a folder of their own")
    manifest = formats.input_folder_state(in_dir, FILTER_CMD)  # a folder a killed run left is refused here
    for name in names:
        tsv = in_dir / f"{name}.tsv"
        if not tsv.is_file():
            raise MissingInputError(tsv, FILTER_CMD, what=f"{name} table")
    if manifest is not None and manifest.get("kind") != "rsc15-filtered":
        raise SeqrecError(
            f"{in_dir / formats.MANIFEST_FILE} is a manifest of kind {manifest.get('kind')!r}, not of "
            f"session-filter's tables (rsc15-filtered); give --in-dir the folder of {FILTER_CMD}"
        )
    _run_convert(out_dir, {name: (in_dir / f"{name}.tsv", None, None) for name in names})


def text2id(
    train: Annotated[
        Optional[Path],
        typer.Option(
            "--train",
            help=f"Training sessions, one per line (raw ids). [default: {DEFAULT_TRAIN}]",
            show_default=False,
        ),
    ] = None,
    test: Annotated[
        Optional[Path],
        typer.Option(
            "--test",
            help=f"Test sessions, one per line (raw ids). [default: {DEFAULT_TEST}]",
            show_default=False,
        ),
    ] = None,
    valid: Annotated[Optional[Path], typer.Option("--valid", help="Validation sessions (optional).")] = None,
    out_dir: Annotated[
        Optional[Path],
        typer.Option("--out-dir", help="Processed data folder. [default: data/<name>]", show_default=False),
    ] = None,
    vocab: Annotated[
        Optional[Path],
        typer.Option("--vocab", help="Vocabulary file to write. [default: vocab/<name>.txt]", show_default=False),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Data set name (manifest, default paths).")] = formats.RSC15,
) -> None:
    """Map raw item ids to indices 1..N with a vocabulary built from the TRAIN file only.

    The vocabulary is sorted (numerically when every id is an integer, else lexicographically);
    line i of it is item index i. Unknown items in valid/test are dropped and counted, then
    sessions left with fewer than 2 items are dropped and counted. Writes train.txt, test.txt
    (valid.txt) and manifest.json with eval_target "all" (every position is a prediction).
    """
    from ..datasets import rsc15

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise SeqrecError(f"--name: not a data set name: {name!r}")
    files: dict[str, Path] = {"train": train or DEFAULT_TRAIN}
    if valid is not None:
        files["valid"] = valid
    files["test"] = test or DEFAULT_TEST
    given = {"train": train, "valid": valid, "test": test}
    for split, path in files.items():
        if not path.is_file():
            hint = CONVERT_CMD if given[split] is None else None
            raise MissingInputError(path, hint, what=f"{split} sessions file")
    out_dir = out_dir or formats.processed_dir(name)
    vocab = vocab or formats.vocab_path(name)
    with folder_locks(out_dir, vocab):
        for path in files.values():
            formats.input_folder_state(path.parent, CONVERT_CMD)
        inputs: dict[str, rsc15.TokenLines] = {}
        records = []
        for split, path in files.items():
            inputs[split] = rsc15.read_token_lines(path)
            record = formats.input_record(path)
            formats.check_input_file(path, sha256=record["sha256"], make_with=CONVERT_CMD)
            records.append({"split": split, **record})
        _run_text2id(inputs, records, out_dir, vocab, name)


def yoochoose(
    input: Annotated[
        Optional[Path],
        typer.Option("--input", help=f"Raw clicks file. [default: {formats.YOOCHOOSE_CLICKS}]", show_default=False),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option("--out-dir", help="Data folder: filtered/, sessions/, train.txt, test.txt, manifest.json."),
    ] = formats.processed_dir(formats.RSC15),
    vocab: Annotated[
        Path, typer.Option("--vocab", help="Vocabulary file to write.")
    ] = formats.vocab_path(formats.RSC15),
) -> None:
    """Run session-filter, convert-format and text2id in order: raw clicks -> GRU4Rec-ready data.

    train = train_full, test = test (the published GRU4Rec setting: 31.6M train events, 15,324
    test sessions on the full data). Time is read as UTC (see session-filter).
    """
    import time

    started = time.monotonic()
    filtered_dir = out_dir / "filtered"
    sessions_dir = out_dir / "sessions"
    with folder_locks(out_dir, filtered_dir, sessions_dir, vocab):  # the whole pipeline is one writer
        _yoochoose(input, out_dir, filtered_dir, sessions_dir, vocab, started)


def _yoochoose(
    input: Path | None, out_dir: Path, filtered_dir: Path, sessions_dir: Path, vocab: Path, started: float
) -> None:
    import time

    splits = _run_session_filter(input or formats.YOOCHOOSE_CLICKS, filtered_dir, default_input=input is None)
    manifest = formats.read_manifest(filtered_dir)
    sources = {}
    for name in formats.RSC15_SPLITS:
        info = manifest["splits"][name]
        path = filtered_dir / info["path"]
        sources[name] = (path, {"path": str(path), "bytes": info["bytes"], "sha256": info["sha256"]}, splits[name])
    lines = _run_convert(sessions_dir, sources)
    del splits, sources
    inputs = {"train": lines["train_full"], "test": lines["test"]}
    records = [{"split": k, **_record(v.record)} for k, v in inputs.items() if v.record]
    result = _run_text2id(inputs, records, out_dir, vocab, formats.RSC15)
    tr, te = result.splits["train"].counts, result.splits["test"].counts
    note(f"done in {time.monotonic() - started:.1f}s")
    say(
        f"summary: train {tr['sessions']} sessions / {tr['events']} events, test {te['sessions']} sessions / "
        f"{te['events']} events, {len(result.vocab)} items; processed data in {out_dir}"
    )
    say(f"next: {TRAIN_CMD}")


def register(app: typer.Typer) -> None:
    """Add the RSC15 commands to the ``preprocess`` group."""
    app.command("session-filter")(session_filter)
    app.command("convert-format")(convert_format)
    app.command("text2id")(text2id)
    app.command("yoochoose")(yoochoose)
