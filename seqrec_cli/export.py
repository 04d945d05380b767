"""``seqrec export``: a checkpoint's scoring graph (history in, item scores out) as an ONNX or
TorchScript file, with a JSON sidecar that states the input contract.

Every model gives a stateless ``history_scorer()`` (in its own model file) that computes from one
padded history matrix what seqrec's scoring computes after each history; its registry entry's
``history_layout`` says how that matrix is laid out (padding side, how many of the most recent
items, an index appended after the history such as BERT4Rec's [MASK], whether ``lengths`` is an
input). This module exports that module with dynamic batch and length axes (``torch.onnx.export``
through ``torch.export``, or ``torch.jit.trace``), optionally followed by a top-k, then checks the
written file, run as a user would run it (``onnxruntime`` / ``torch.jit.load``), against seqrec's
own scoring of the checkpoint on histories of several lengths, in two batches of different shapes:
a file that disagrees by more than :data:`CHECK_ATOL` is not kept. The sidecar
(``<output>.json``, docs/formats.md) names the vocabulary (path + SHA-256) that maps item
indices to item ids, the inputs and outputs with their dtypes and shapes, and the check.

``pip install 'seqrec[export]'`` provides onnx, onnxruntime and onnxscript; TorchScript needs
torch only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__, formats
from .checkpoint import Checkpoint, load_model
from .errors import SeqrecError
from .extras import EXTRAS, require
from .fileio import atomic_path, sha256_file, write_json
from .models.spec import HistoryLayout
from .scoring import score_batches
from .sequences import Sequences

EXTRA = "export"
FEATURE = "seqrec export"
FORMATS = ("onnx", "torchscript")
SIDECAR_VERSION = 1  # of the <output>.json sidecar
SIDECAR_KIND = "seqrec-export"
CHECK_ATOL = 1e-4  # largest |exported - seqrec| score difference a written file may show
CHECK_LONGEST = 40  # longest check history of a model that reads every item (GRU4Rec)
CHECK_SEED = 0


@dataclass
class ExportResult:
    output: Path
    sidecar: Path
    sidecar_body: dict[str, Any]
    max_abs_diff: float
    histories: int


def sidecar_path(output: Path | str) -> Path:
    """``model.onnx`` -> ``model.onnx.json``."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def require_format(fmt: str) -> None:
    """The packages a format needs, imported up front: a missing one is one ``Error:`` line."""
    if fmt not in FORMATS:
        raise SeqrecError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "onnx":
        for module in EXTRAS[EXTRA]:
            require(module, EXTRA, FEATURE)


# ---------------------------------------------------------------------------------------------- inputs
def history_inputs(seqs: Sequences, layout: HistoryLayout) -> dict[str, np.ndarray]:
    """The exported graph's inputs for the histories ``seqs`` (one row each, in order): ``items``
    [B, T] int64 (the most recent ``layout.max_items`` items, then ``layout.append``, padded with 0
    on ``layout.side``) and, when the layout says so, ``lengths`` [B] int64. This is the
    contract of the sidecar, in code."""
    lengths = seqs.lengths
    keep = lengths if layout.max_items is None else np.minimum(lengths, layout.max_items)
    hist = seqs.slice(np.arange(len(seqs)), lengths - keep, lengths)
    if layout.append is not None:
        hist = hist.append(layout.append)
    out = {"items": hist.padded(side=layout.side)}
    if layout.lengths:
        out["lengths"] = hist.lengths.astype(np.int64)
    return out


class TopK(nn.Module):
    """A scorer followed by ``topk``: (scores [B, k], item indices [B, k]), best first."""

    def __init__(self, scorer: nn.Module, k: int):
        super().__init__()
        self.scorer = scorer
        self.k = k

    def forward(self, items: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.scorer(items) if lengths is None else self.scorer(items, lengths)
        top = scores.topk(self.k, dim=1)
        return top.values, top.indices


# ---------------------------------------------------------------------------------------------- export
def export_checkpoint(checkpoint: Checkpoint, fmt: str, output: Path | str, top_k: int | None = None) -> ExportResult:
    """Write ``checkpoint``'s scoring graph to ``output`` (``fmt``: onnx | torchscript; ``top_k``:
    end the graph with a top-k) and its sidecar to ``<output>.json``, after checking the written
    file against seqrec's scoring. Nothing is left at ``output`` if anything fails."""
    require_format(fmt)
    output = Path(output)
    model = load_model(checkpoint, "cpu")
    digest, diff, checks = export_model(model, checkpoint.entry, fmt, output, top_k, str(checkpoint.path))
    layout = checkpoint.entry.history_layout(model.config)
    opset = _onnx_opset(output) if fmt == "onnx" else None
    body = _sidecar(checkpoint, model.config, fmt, opset, output, digest, layout, top_k, checks, diff)
    sidecar = sidecar_path(output)
    write_json(sidecar, body)
    return ExportResult(output, sidecar, body, diff, sum(len(s) for s in checks))


def export_model(
    model, entry, fmt: str, output: Path | str, top_k: int | None = None, name: str = "the model"
) -> tuple[str, float, list[Sequences]]:
    """Write ``model``'s history scorer (``entry``: its registry entry) to ``output`` as ``fmt`` and
    check the written file against seqrec's scoring of ``model``: (SHA-256 of the file, largest
    score difference, the check histories). Raises SeqrecError, leaving nothing at ``output``, when
    the file does not run or disagrees by more than :data:`CHECK_ATOL`."""
    output = Path(output)
    n_items = model.config.n_items
    if top_k is not None and not 1 <= top_k <= n_items:
        raise SeqrecError(f"--top-k must be from 1 to the number of items ({n_items}), got {top_k}")
    layout = entry.history_layout(model.config)
    scorer = model.history_scorer().eval()
    graph: nn.Module = scorer if top_k is None else TopK(scorer, top_k).eval()
    input_names = ["items", "lengths"] if layout.lengths else ["items"]
    output_names = ["scores"] if top_k is None else ["top_scores", "top_items"]
    checks = _check_histories(layout, n_items)
    example = tuple(torch.from_numpy(v) for v in history_inputs(checks[-1], layout).values())
    with atomic_path(output, suffix=output.suffix) as tmp:
        with torch.no_grad(), _quiet():
            if fmt == "onnx":
                _export_onnx(graph, example, tmp, input_names, output_names, layout)
            else:
                torch.jit.save(torch.jit.trace(graph, example, check_trace=False), str(tmp))
        run = _runner(fmt, tmp, input_names)
        diff = max(_check(model, entry, seqs, layout, run, top_k) for seqs in checks)
        if not diff <= CHECK_ATOL:
            raise SeqrecError(
                f"the exported {fmt} graph disagrees with seqrec's scoring of {name} by {diff:.3g} "
                f"(more than {CHECK_ATOL}); {output} was not written"
            )
        digest = sha256_file(tmp)
    return digest, diff, checks


@contextlib.contextmanager
def _quiet():
    """torch.onnx / torch.export report progress and warnings on stdout and stderr: keep them off
    the command's output (a failure still raises with its own message)."""
    sink = io.StringIO()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_onnx(graph, example, path: Path, input_names, output_names, layout: HistoryLayout) -> None:
    from torch.export import Dim

    batch = Dim("batch")
    length = Dim("length") if layout.max_length is None else Dim("length", max=layout.max_length)
    shapes = dict(zip(("items", "lengths"), ({0: batch, 1: length}, {0: batch})[: len(input_names)]))
    # torch.onnx swaps in a while-loop decomposition of nn.GRU (a dynamic length) for the export's
    # duration, but the op's dispatch cache keeps the first export's choice: a second export in the same
    # process would unroll the loop for the example's length. Forget the cached choice each time.
    for op in (torch.ops.aten.gru.input, torch.ops.aten.lstm.input):
        op._dispatch_cache.clear()
    torch.onnx.export(
        graph, example, str(path), dynamo=True, input_names=input_names, output_names=output_names,
        dynamic_shapes=shapes, external_data=False, verbose=False,
    )  # fmt: skip


def _onnx_opset(path: Path) -> int | None:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _runner(fmt: str, path: Path, input_names: list[str]):
    """A function (inputs dict of numpy arrays) -> list of numpy outputs, running the written file."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda inputs: session.run(None, inputs)
    with warnings.catch_warnings():  # torch.jit.load warns that TorchScript is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        loaded = torch.jit.load(str(path), map_location="cpu")

    def run(inputs):
        with torch.no_grad():
            out = loaded(*(torch.from_numpy(inputs[n]) for n in input_names))
        return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]

    return run


# ---------------------------------------------------------------------------------------------- the check
def _check_histories(layout: HistoryLayout, n_items: int) -> list[Sequences]:
    """Seeded random histories in two batches of different shapes; the second holds histories longer
    than the model reads (cut by the layout, as seqrec's scoring cuts them)."""
    rng = np.random.default_rng(CHECK_SEED)
    longest = layout.max_items if layout.max_items is not None else CHECK_LONGEST
    batches = []
    for sizes in ((1, 2, 3, 5, 8), (longest + 3, longest, 4)):
        batches.append(Sequences.from_lists([rng.integers(1, n_items + 1, size=s) for s in sizes]))
    return batches


def _check(model, entry, seqs: Sequences, layout: HistoryLayout, run, top_k: int | None) -> float:
    """Largest |difference| between the file's output and seqrec's scores for ``seqs``; inf when the
    -inf columns differ or a top-k item's own score does not match its reported score."""
    ref = np.zeros((len(seqs), model.config.n_items + 1), np.float32)
    for batch in score_batches(model, entry, seqs, "next", len(seqs)):
        ref[batch.rows] = batch.scores.cpu().numpy()
    inputs = history_inputs(seqs, layout)
    try:
        got = run(inputs)
    except Exception as exc:  # e.g. an axis the export fixed to the example's size
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        shape = "x".join(map(str, inputs["items"].shape))
        raise SeqrecError(f"the exported graph does not run on a {shape} history matrix ({first}); nothing was written") from None
    if top_k is None:
        scores = got[0]
        if scores.shape != ref.shape or not np.array_equal(np.isfinite(scores), np.isfinite(ref)):
            return float("inf")
        finite = np.isfinite(ref)
        return float(np.abs(scores[finite] - ref[finite]).max(initial=0.0))
    values, items = got
    best = -np.sort(-ref, axis=1)[:, :top_k]  # seqrec's top-k scores
    own = np.take_along_axis(ref, items.astype(np.int64), axis=1)  # seqrec's score of each reported item
    if not (np.isfinite(values).all() and np.isfinite(own).all()):
        return float("inf")
    return float(max(np.abs(values - best).max(initial=0.0), np.abs(values - own).max(initial=0.0)))


# ---------------------------------------------------------------------------------------------- sidecar
def _sidecar(checkpoint, model_config, fmt, opset, output, digest, layout, top_k, checks, diff) -> dict[str, Any]:
    cfg = checkpoint.config
    n = model_config.n_items
    kept = f"at most the {layout.max_items} most recent" if layout.max_items is not None else "every item"
    items: dict[str, Any] = {
        "name": "items",
        "dtype": "int64",
        "shape": ["batch", "length"],
        "meaning": f"one row per history: its item indices, oldest first ({kept})"
        + (f", then {layout.append_name} ({layout.append})" if layout.append is not None else "")
        + f", padded with 0 on the {layout.side}",
        "padding_index": 0,
        "padding_side": layout.side,
        "max_length": layout.max_length,
        "max_history_items": layout.max_items,
        "append": None if layout.append is None else {"index": layout.append, "name": layout.append_name},
    }
    inputs = [items]
    if layout.lengths:
        inputs.append(
            {
                "name": "lengths",
                "dtype": "int64",
                "shape": ["batch"],
                "meaning": "entries of each row of items that are not padding (>= 1)",
            }
        )
    column = f"column i is the score of item index i (1..{n}); column 0 (padding) is -inf; higher is better"
    if top_k is None:
        outputs = [{"name": "scores", "dtype": "float32", "shape": ["batch", n + 1], "meaning": column}]
    else:
        outputs = [
            {"name": "top_scores", "dtype": "float32", "shape": ["batch", top_k], "meaning": "the k best scores, best first"},
            {"name": "top_items", "dtype": "int64", "shape": ["batch", top_k], "meaning": "their item indices (1..%d)" % n},
        ]
    return {
        "format_version": SIDECAR_VERSION,
        "kind": SIDECAR_KIND,
        "format": fmt,
        "opset": opset,
        "file": output.name,
        "sha256": digest,
        "model": cfg.model,
        "checkpoint": {"path": str(checkpoint.path), "epoch": cfg.epoch, "stage": cfg.stage, "run_id": cfg.run_id},
        "model_config": asdict(model_config),
        "vocab": {
            "path": cfg.vocab.path,
            "sha256": cfg.vocab.sha256,
            "n_items": n,
            "item_index": f"item index i (1..{n}) is line i of the vocabulary file; index 0 is padding",
        },
        "inputs": inputs,
        "outputs": outputs,
        "top_k": top_k,
        "dynamic_axes": ["batch", "length"],
        "check": {
            "against": "seqrec's scoring of the checkpoint (what seqrec recommend ranks by)",
            "histories": sum(len(s) for s in checks),
            "max_abs_diff": diff,
            "tolerance": CHECK_ATOL,
        },
        "seqrec_version": __version__,
        "created": formats.now_iso(),
    }
