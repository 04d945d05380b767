"""seqrec export: a checkpoint's scoring graph as ONNX or TorchScript, plus its JSON sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from .. import formats
from ..console import human_bytes, say
from .options import CheckpointPath, Epoch, ModelDir


def export(
    model_dir: ModelDir = formats.MODEL_DIR,
    epoch: Epoch = None,
    checkpoint: CheckpointPath = None,
    format: Annotated[
        Literal["onnx", "torchscript"],
        typer.Option(
            "--format",
            help="onnx (run with onnxruntime or any ONNX runtime; needs pip install 'seqrec[export]') | "
            "torchscript (torch.jit.load, no Python model code needed).",
        ),
    ] = "onnx",
    output: Annotated[
        Optional[Path],
        typer.Option(
            "--output", "-o", help="File to write; the sidecar goes beside it as <output>.json.",
            show_default="<model-dir>/model.onnx (torchscript: <model-dir>/model.torchscript.pt)",
        ),
    ] = None,  # fmt: skip
    top_k: Annotated[
        Optional[int],
        typer.Option(
            "--top-k", min=1, help="End the graph with a top-k: outputs top_scores and top_items [batch, K] "
            "instead of every item's score.", show_default="no top-k: scores [batch, items + 1]",
        ),
    ] = None,  # fmt: skip
) -> None:
    """Export a checkpoint's scoring graph: a padded history matrix in, the score of every item (or
    the top K) out, with dynamic batch and length axes. The written file is checked against seqrec's
    own scoring before it is kept; <output>.json states the input contract (tensor names, dtypes,
    padding, [MASK]), what the output columns mean and the vocabulary (path + SHA-256) that maps
    item indices to item ids."""
    from .. import checkpoint as ckpt
    from ..export import export_checkpoint, require_format
    from ..inference import resolve_checkpoint

    require_format(format)  # a missing extra: one error line before any work
    chosen = ckpt.read_checkpoint(checkpoint) if checkpoint is not None else resolve_checkpoint(model_dir, epoch)
    if output is None:
        output = chosen.path.parent / ("model.onnx" if format == "onnx" else "model.torchscript.pt")
    result = export_checkpoint(chosen, format, output, top_k)
    body = result.sidecar_body
    shapes = []
    for spec in body["inputs"]:
        shape = ", ".join(str(d) for d in spec["shape"])
        text = f"{spec['name']} {spec['dtype']} [{shape}]"
        if spec["name"] == "items":
            limit = f", length <= {spec['max_length']}" if spec["max_length"] is not None else ""
            text += f" ({spec['padding_side']}-padded with 0{limit}"
            if spec["append"] is not None:
                text += f", ending with {spec['append']['name']} = {spec['append']['index']}"
            text += ")"
        shapes.append(text)
    outs = ", ".join(f"{o['name']} {o['dtype']} [{', '.join(map(str, o['shape']))}]" for o in body["outputs"])
    opset = f", opset {body['opset']}" if body.get("opset") else ""
    say(
        f"model:{chosen.path} ({chosen.model_name}, epoch {chosen.epoch}) -> {result.output} "
        f"({format}{opset}, {human_bytes(result.output.stat().st_size)})"
    )
    say(f"inputs: {'; '.join(shapes)}")
    say(f"outputs: {outs}")
    say(f"checked against seqrec's scoring on {result.histories} histories: largest difference {result.max_abs_diff:.2g}")
    say(f"wrote {result.sidecar}")
