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

from . import distributed
from .data.history import prediction_positions
from .distributed import Shard
from .errors import SeqrecError
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
    shard: Shard | None = None,
) -> Iterator[ScoreBatch]:
    """Scores of the predictions of ``seqs``: mode "last" / "all" (the split's targets, see
    ``data.history.prediction_positions``) or "next" (after each whole line: recommendation).
    ``shard``: only this process's share of them (``rows`` stay indices into ``seqs``).
    The model is put in eval mode and its carried state reset before and after the pass."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    model.reset_state()
    try:
        for batch in entry.score_batches(seqs, mode, batch_size, model.config, shard=shard):
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
    """Metrics of ``model`` on ``spec.split`` of ``data`` (a ProcessedData) under ``spec``'s protocol.

    With several processes each scores its share of the predictions and the ranks of all are
    added up, so every prediction counts exactly once; the count is checked against the split's."""
    seqs, target, counts = eval_inputs(data, spec)
    part = distributed.shard()
    batches = score_batches(model, entry, seqs, target, spec.batch_size, dtype, part)
    combine = distributed.context().distributed
    result = evaluate_batches(batches, seqs, data.n_items, target, spec, counts, combine=combine)
    expected = len(prediction_positions(seqs, target)[0])
    if result.predictions != expected:
        raise SeqrecError(
            f"{spec.split} split: {result.predictions:,} predictions were scored across {part.world} process(es), "
            f"but it has {expected:,} (a bug: please report it)"
        )
    return result


def recommend(
    model: SequentialRecommender,
    entry: ModelEntry,
    seqs: Sequences,
    top_k: int,
    exclude_seen: bool,
    batch_size: int,
    dtype: torch.dtype | None = None,
) -> np.ndarray | None:
    """[n_seqs, top_k] item indices recommended after each whole sequence (best first; 0 where
    fewer than top_k items can be recommended). With several processes each scores its share of
    the sequences and rank 0 gets the whole array (the others get None)."""
    part = distributed.shard()
    out = np.zeros((len(seqs), top_k), dtype=np.int64)
    done = np.zeros(len(seqs), dtype=np.int64)
    for batch in score_batches(model, entry, seqs, "next", batch_size, dtype, part):
        scores = batch.scores
        if exclude_seen:
            mask_history(scores, seqs, batch.rows, batch.target_pos)
        k = min(top_k, scores.shape[1])
        top = scores.topk(k, dim=1)
        idx = top.indices.cpu().numpy()
        idx[~torch.isfinite(top.values).cpu().numpy()] = 0  # fewer than k recommendable items
        out[batch.rows, :k] = idx
        done[batch.rows] += 1
    if distributed.context().distributed:
        out, done = distributed.reduce_to_main(out), distributed.reduce_to_main(done)
        if out is None:
            return None
    if not (done == 1).all():
        raise SeqrecError(
            f"recommend: {int((done != 1).sum()):,} of {len(seqs):,} sequences were not scored exactly once "
            "(a bug: please report it)"
        )
    return out
