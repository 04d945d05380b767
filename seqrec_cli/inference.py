"""From checkpoints to numbers and recommendations.

A checkpoint rebuilds its model alone (model name -> registry, config from config.json, weights
from model.pt with weights_only=True) and names the data it was trained on, so ``infer`` needs
no flags: it evaluates each epoch_N on the test split of that data, checking that the data's
vocabulary is the one the model was trained with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from . import formats
from .data.sampling import popularity
from .errors import MismatchError, MissingInputError, SeqrecError
from .evaluation import EvalResult, EvalSpec, ScoreBatch, check_filter_seen, evaluate_batches
from .models import REGISTRY

# the figures each model's literature reports, shown in infer's one-line-per-epoch output
HEADLINE = {"gru4rec": ("recall@20", "mrr@20"), "bert4rec": ("hr@10", "ndcg@10")}


@dataclass
class LoadedModel:
    name: str
    model: torch.nn.Module
    checkpoint: ckpt.Checkpoint
    device: torch.device


def load_model(checkpoint: ckpt.Checkpoint, device: torch.device) -> LoadedModel:
    name = checkpoint.model_name
    if name not in REGISTRY:
        raise MismatchError(f"{checkpoint.path}: unknown model {name!r} (known: {', '.join(REGISTRY)})")
    config_cls, model_cls = REGISTRY[name]
    model = model_cls(config_cls(**checkpoint.config["model_config"])).to(device)
    model.load_state_dict(ckpt.load_weights(checkpoint, device))
    model.eval()
    return LoadedModel(name, model, checkpoint, device)


def data_for(checkpoint: ckpt.Checkpoint, test_dir: Path | None = None) -> formats.ProcessedData:
    """The processed data to evaluate a checkpoint on: ``test_dir``, or the folder it was trained on."""
    if test_dir is None:
        stored = checkpoint.config["data"]
        folder = Path(stored["train_dir"])
        if not (folder / formats.MANIFEST_FILE).is_file() and Path(stored["train_dir_abs"]).is_dir():
            folder = Path(stored["train_dir_abs"])
    else:
        folder = Path(test_dir)
    data = formats.load_processed(folder)
    if data.manifest.vocab_sha256 != checkpoint.config["vocab"]["sha256"]:
        raise MismatchError(
            f"{folder} uses vocabulary {data.vocab_file}, but {checkpoint.path} was trained with "
            f"{checkpoint.config['vocab']['path']} (different content): item indices would not match"
        )
    return data


def score_batches(lm: LoadedModel, seqs: formats.Sequences, mode: str, batch_size: int) -> Iterator[ScoreBatch]:
    if lm.name == "gru4rec":
        from .recipes.gru4rec import score_batches as gru_scores

        return gru_scores(lm.model, seqs, mode, batch_size, lm.device)
    from .recipes.bert4rec import autocast_dtype
    from .recipes.bert4rec import score_batches as bert_scores

    precision = lm.checkpoint.config.get("train_config", {}).get("precision", "auto")
    dtype = autocast_dtype(precision, lm.device) if lm.device.type == "cuda" else None
    return bert_scores(lm.model, seqs, mode, batch_size, lm.device, dtype)


def evaluate_checkpoint(
    lm: LoadedModel, data: formats.ProcessedData, spec: EvalSpec
) -> EvalResult:
    seqs, target, counts = _eval_inputs(data, spec)
    return evaluate_batches(score_batches(lm, seqs, target, spec.batch_size), seqs, data.n_items, target, spec, counts)


def _eval_inputs(data: formats.ProcessedData, spec: EvalSpec) -> tuple[formats.Sequences, str, np.ndarray]:
    """(sequences of the split, eval target, training popularity) shared by every evaluation."""
    seqs = data.split(spec.split)
    target = data.manifest.eval_target
    if spec.filter_seen:
        check_filter_seen(target, "--filter-seen")
    return seqs, target, popularity(data.split("train").items, data.n_items)


def evaluate_popularity(data: formats.ProcessedData, spec: EvalSpec) -> EvalResult:
    """The yardstick: every prediction ranks items by their training popularity (ties pessimistic)."""
    from .evaluation import prediction_positions

    seqs, target, counts = _eval_inputs(data, spec)
    scores = torch.tensor(counts, dtype=torch.float32)
    scores[0] = float("-inf")
    rows, target_pos = prediction_positions(seqs, target)

    def batches() -> Iterator[ScoreBatch]:
        for start in range(0, len(rows), spec.batch_size):
            r, tp = rows[start : start + spec.batch_size], target_pos[start : start + spec.batch_size]
            yield ScoreBatch(scores.expand(len(r), -1).clone(), seqs.items[seqs.offsets[r] + tp], r, tp)

    return evaluate_batches(batches(), seqs, data.n_items, target, spec, counts)


def resolve_checkpoint(model_dir: Path, epoch: int | None) -> ckpt.Checkpoint:
    """epoch_<epoch>, or the best epoch recorded in run.json, or the last one."""
    model_dir = Path(model_dir)
    epochs = ckpt.list_epochs(model_dir)
    if not epochs:
        raise MissingInputError(model_dir, "seqrec train ...", what="checkpoints (epoch_N folders)")
    if epoch is None:
        run = ckpt.read_run(model_dir) or {}
        best = (run.get("best") or {}).get("epoch")
        epoch = best if best in epochs else epochs[-1]
    if epoch not in epochs:
        raise MissingInputError(formats.checkpoint_dir(model_dir, epoch), what=f"checkpoint (have epochs {_ranges(epochs)})")
    return ckpt.read_checkpoint(formats.checkpoint_dir(model_dir, epoch))


def _ranges(epochs: list[int]) -> str:
    return f"{epochs[0]}..{epochs[-1]}" if epochs == list(range(epochs[0], epochs[-1] + 1)) else ", ".join(map(str, epochs))


def checkpoints_in_range(model_dir: Path, start: int, last: int) -> tuple[list[ckpt.Checkpoint], list[int]]:
    """(present checkpoints, missing epochs) for epochs start..last."""
    if start > last:
        raise SeqrecError(f"--start-index {start} is after --last-index {last}")
    present = set(ckpt.list_epochs(model_dir))
    if not present:
        raise MissingInputError(model_dir, "seqrec train ...", what="checkpoints (epoch_N folders)")
    found = [ckpt.read_checkpoint(formats.checkpoint_dir(model_dir, e)) for e in range(start, last + 1) if e in present]
    missing = [e for e in range(start, last + 1) if e not in present]
    if not found:
        raise MissingInputError(
            formats.checkpoint_dir(model_dir, start), what=f"checkpoints {start}..{last} (have epochs {_ranges(sorted(present))})"
        )
    return found, missing


def recommend(
    lm: LoadedModel, seqs: formats.Sequences, top_k: int, exclude_seen: bool, batch_size: int
) -> np.ndarray:
    """[n_seqs, top_k] item indices recommended after each whole sequence (best first)."""
    out = np.zeros((len(seqs), top_k), dtype=np.int64)
    for batch in score_batches(lm, seqs, "next", batch_size):
        scores = batch.scores
        if exclude_seen:
            from .evaluation import mask_history

            mask_history(scores, seqs, batch.rows, batch.target_pos)
        k = min(top_k, scores.shape[1])
        top = scores.topk(k, dim=1)
        idx = top.indices.cpu().numpy()
        idx[~torch.isfinite(top.values).cpu().numpy()] = 0  # fewer than k recommendable items
        out[batch.rows, :k] = idx
    return out
