"""From a model to scores, metrics and top-k lists: the layer that validation (training) and
``infer`` / ``evaluate`` / ``recommend`` (inference) share.

Every model is scored the same way: its registry entry's scoring batcher turns a split into
batches, the model's ``score(batch)`` gives ``[b, n_items + 1]`` scores, and
``seqrec_cli.evaluation`` turns them into metrics under a labelled protocol. Nothing here imports
the training code.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from .evaluation import EvalResult, EvalSpec, ScoreBatch, eval_inputs, evaluate_batches, mask_history
from .models.base import SequentialRecommender, autocast, to_device
from .models.spec import ModelEntry
from .sequences import Sequences


@torch.no_grad()
def score_batches(
    model: SequentialRecommender,
    entry: ModelEntry,
    seqs: Sequences,
    mode: str,
    batch_size: int,
    dtype: torch.dtype | None = None,
) -> Iterator[ScoreBatch]:
    """Scores of the predictions of ``seqs``: mode "last" / "all" (the split's targets, see
    ``data.history.prediction_positions``) or "next" (after each whole line: recommendation).
    The model is put in eval mode and its carried state reset before and after the pass."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    model.reset_state()
    try:
        for batch in entry.score_batches(seqs, mode, batch_size, model.config):
            with autocast(device, dtype):
                scores = model.score(to_device(batch, device))
            if len(batch.rows):
                yield ScoreBatch(scores.float(), batch.targets, batch.rows, batch.target_pos)
    finally:
        model.reset_state()
        model.train(was_training)


def evaluate_model(
    model: SequentialRecommender, entry: ModelEntry, data, spec: EvalSpec, dtype: torch.dtype | None = None
) -> EvalResult:
    """Metrics of ``model`` on ``spec.split`` of ``data`` (a ProcessedData) under ``spec``'s protocol."""
    seqs, target, counts = eval_inputs(data, spec)
    batches = score_batches(model, entry, seqs, target, spec.batch_size, dtype)
    return evaluate_batches(batches, seqs, data.n_items, target, spec, counts)


def recommend(
    model: SequentialRecommender,
    entry: ModelEntry,
    seqs: Sequences,
    top_k: int,
    exclude_seen: bool,
    batch_size: int,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """[n_seqs, top_k] item indices recommended after each whole sequence (best first; 0 where
    fewer than top_k items can be recommended)."""
    out = np.zeros((len(seqs), top_k), dtype=np.int64)
    for batch in score_batches(model, entry, seqs, "next", batch_size, dtype):
        scores = batch.scores
        if exclude_seen:
            mask_history(scores, seqs, batch.rows, batch.target_pos)
        k = min(top_k, scores.shape[1])
        top = scores.topk(k, dim=1)
        idx = top.indices.cpu().numpy()
        idx[~torch.isfinite(top.values).cpu().numpy()] = 0  # fewer than k recommendable items
        out[batch.rows, :k] = idx
    return out
