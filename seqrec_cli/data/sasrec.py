"""SASRec's training samples: causal next-item windows of the training sequences.

Each training sequence is cut into windows of ``max_len + 1`` items, the first ending at its last
item, the next ``max_len`` items earlier, and so on (``data.windows.make_windows``), so every
transition (item t -> item t + 1) is a target exactly once per epoch. A window gives the inputs
``items[:-1]`` and the targets ``items[1:]`` (Kang & McAuley 2018, §III-F); both are right-padded,
so with causal attention no real position ever sees padding. Batches are random samples of
windows; on a CPU they run as length-sorted chunks of 8 rows with one loss over the batch.

Negatives (``--loss sampled-ce``: ``n_negatives`` per step shared by the batch; ``bce``: one per
position) are drawn uniformly from the items by the batcher's seeded generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SeqrecError
from .windows import equal_share, length_chunks, make_windows, random_batches

CPU_CHUNK_ROWS = 8


@dataclass
class CausalBatch:
    """One step of SASRec: chunks of (inputs [b, T], targets [b, T], 0 = no target) right-padded,
    with (bce) negatives [b, T] as a third element; ``negatives``: [S] items shared by the batch
    (sampled-ce) or None."""

    chunks: list[tuple[Any, ...]]
    negatives: Any


class CausalWindowBatcher:
    """SASRec's training batches from the training split (see the module docstring). Raises
    SeqrecError when no training sequence has two items (no transition to learn)."""

    def __init__(self, data, model_config, train_config, device, shard=None):
        from ..distributed import Shard

        self.tc = train_config
        self.shard = shard or Shard()
        self.loss = model_config.loss
        self.n_items = model_config.n_items
        train = data.split("train")
        windows = make_windows(train, model_config.max_len + 1, model_config.max_len, train_config.max_windows)
        rows = np.flatnonzero(windows.lengths >= 2)
        if len(rows) == 0:
            raise SeqrecError(
                f"{data.folder / 'train.txt'}: nothing to learn: no training sequence has 2 or more items "
                "(SASRec predicts each next item)"
            )
        windows = windows.take(rows)
        total = len(windows)
        if self.shard.world > 1:  # this process's windows: rank, rank + world, ...
            windows = windows.take(self.shard.rows(total))
        self.n_padded = max(equal_share(total, self.shard.world))  # every process takes as many steps
        n = len(windows)
        self.inputs = windows.slice(np.arange(n), np.zeros(n, np.int64), windows.lengths - 1)
        self.targets = windows.slice(np.arange(n), np.ones(n, np.int64), windows.lengths)
        self.chunk_rows = CPU_CHUNK_ROWS if device.type == "cpu" else train_config.batch_size
        self.rng = np.random.default_rng(self.shard.seed(train_config.seed))

    def steps_per_epoch(self) -> int:
        return -(-self.n_padded // self.tc.batch_size)

    def describe(self) -> str:
        neg = {"ce": "all items", "sampled-ce": f"{self.tc.n_negatives} shared uniform negatives", "bce": "one uniform negative per position"}
        return (
            f"{len(self.inputs):,} training windows, {self.targets.n_events:,} next-item targets/epoch, "
            f"loss {self.loss} over {neg[self.loss]}, random batches of {self.tc.batch_size}"
        )

    def epoch_batches(self) -> Iterator[CausalBatch]:
        lengths = self.inputs.lengths
        for rows in random_batches(len(lengths), self.tc.batch_size, self.rng, self.n_padded):
            chunks: list[tuple[Any, ...]] = []
            for chunk in length_chunks(rows, lengths, self.chunk_rows):
                inputs = self.inputs.padded(chunk, side="right")
                targets = self.targets.padded(chunk, side="right")
                if self.loss == "bce":
                    chunks.append((inputs, targets, self.rng.integers(1, self.n_items + 1, size=targets.shape)))
                else:
                    chunks.append((inputs, targets))
            shared = None
            if self.loss == "sampled-ce":
                shared = self.rng.integers(1, self.n_items + 1, size=self.tc.n_negatives)
            yield CausalBatch(chunks, shared)

    def rng_state(self) -> dict[str, Any]:
        return {"numpy": self.rng.bit_generator.state}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy"]
