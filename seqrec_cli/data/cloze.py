"""BERT4Rec's training samples: cloze masking of training windows, and the batches it trains on.

Masking is a data transform, outside the model, vectorised over the flat item array of all
windows (``seqrec_cli.data.windows``); it is redrawn every epoch from the batcher's seeded
generator (Sun et al. 2019, §3.6; BERT's 80/10/10 replacement, Devlin et al. 2019, §3.1).

* Cloze: each position is chosen with probability ``mask_prob`` (at least one per window);
  a chosen position becomes [MASK] 80 % of the time, a random item 10 %, stays unchanged 10 %; its
  label is the original item. Unchosen positions (and padding, always) have label 0.
* Last: only the last item of the window is masked (the next-item task the model is tested on).
* Cloze-last: cloze, and the last item of every window masked as well (both tasks in one pass).
* Both (the paper's): every window as a cloze sample, plus last-item samples of a random
  ``last_share`` of the windows each epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import SeqrecError
from ..sequences import Sequences
from .windows import bucketed_batches, equal_share, length_chunks, make_windows, random_batches

MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen positions; the remaining 0.1 stay unchanged
CPU_CHUNK_ROWS = 8  # a random batch on a CPU runs as length-sorted chunks of this many rows


def cloze_mask(
    windows: Sequences, mask_prob: float, n_items: int, rng: np.random.Generator, force_last: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels), both flat like ``windows.items``; labels are 0 where nothing is asked.

    ``force_last``: the last item of every window is always chosen too (and always becomes
    [MASK]), so each cloze sample also carries the next-item task of the test.
    """
    items = windows.items
    total = len(items)
    chosen = rng.random(total) < mask_prob
    starts = windows.offsets[:-1]
    lengths = windows.lengths
    none = np.add.reduceat(chosen.astype(np.int64), starts) == 0 if total else np.zeros(0, bool)
    if none.any():  # at least one masked position per window
        pick = starts[none] + (rng.random(int(none.sum())) * lengths[none]).astype(np.int64)
        chosen[pick] = True
    labels = np.where(chosen, items, 0)
    inputs = items.copy()
    idx = np.flatnonzero(chosen)
    r = rng.random(len(idx))
    to_mask = idx[r < MASK_SHARE]
    to_random = idx[(r >= MASK_SHARE) & (r < MASK_SHARE + RANDOM_SHARE)]
    inputs[to_mask] = n_items + 1
    inputs[to_random] = rng.integers(1, n_items + 1, size=len(to_random))
    if force_last:
        last = windows.offsets[1:] - 1
        labels[last] = items[last]
        inputs[last] = n_items + 1
    return inputs, labels


def last_mask(windows: Sequences, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Mask only the last item of every window."""
    inputs = windows.items.copy()
    labels = np.zeros_like(inputs)
    last = windows.offsets[1:] - 1
    labels[last] = inputs[last]
    inputs[last] = n_items + 1
    return inputs, labels


@dataclass
class ClozeBatch:
    """One step of BERT4Rec: chunks of (items [b, T] left-padded with masked positions, labels
    [b, T], 0 = no label), each padded to its own longest row; one loss over all chunks."""

    chunks: list[tuple[Any, Any]]


class ClozeBatcher:
    """BERT4Rec's training batches from the training split (see the module docstring).

    On a CPU, a random batch runs as length-sorted chunks of 8 rows (far less padding, same
    gradient); on a GPU one padded matrix is faster; a bucketed batch already holds similar lengths.
    ``shard`` (a ``distributed.Shard``, data parallel training): this process trains on windows
    rank, rank + world, ... with its own generator, and every process takes the same number of
    steps (:func:`windows.equal_share`).
    Raises SeqrecError when ``window_step`` exceeds ``max_len`` (items would be skipped), and when
    no training sequence has two items: a masked item with no item around it has nothing to be
    predicted from (the model could only learn the items' popularity).
    """

    def __init__(self, data, model_config, train_config, device, shard=None):
        from ..distributed import Shard

        tc = self.tc = train_config
        train = data.split("train")
        if not (train.lengths >= 2).any():
            raise SeqrecError(
                f"{data.folder / 'train.txt'}: nothing to learn: no training sequence has 2 or more items "
                "(BERT4Rec predicts each masked item from the items around it)"
            )
        self.shard = shard or Shard()
        self.n_items = model_config.n_items
        step = tc.window_step or model_config.max_len
        if step > model_config.max_len:
            raise SeqrecError(
                f"--window-step {step} is larger than the max length {model_config.max_len}: items between "
                "windows would never be trained on"
            )
        chunked = device.type == "cpu" and tc.batching == "random"
        self.chunk_rows = CPU_CHUNK_ROWS if chunked else tc.batch_size
        self.rng = np.random.default_rng(self.shard.seed(tc.seed))
        windows = make_windows(train, model_config.max_len, step, tc.max_windows)
        total = len(windows)
        self.windows = windows if self.shard.world == 1 else windows.take(self.shard.rows(total))
        self.n_last, self.n_samples = self._samples(len(self.windows))
        # the most samples any process has (shares differ by at most one window): every process pads to it
        self.n_padded = max(self._samples(n)[1] for n in equal_share(total, self.shard.world))

    def _samples(self, n: int) -> tuple[int, int]:
        """(last-item samples, all samples) per epoch of n windows."""
        tc = self.tc
        n_last = n if tc.objective == "last" else 0
        if tc.objective == "both":
            n_last = int(round(tc.last_share * n))
        return n_last, (n if tc.objective != "last" else 0) + n_last

    def steps_per_epoch(self) -> int:
        return -(-self.n_padded // self.tc.batch_size)

    def describe(self) -> str:
        return f"{len(self.windows):,} training windows -> {self.n_samples:,} samples/epoch"

    def epoch_batches(self) -> Iterator[ClozeBatch]:
        w, tc = self.windows, self.tc
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (inputs, labels, lengths)
        if tc.objective in ("cloze", "both", "cloze-last"):
            force_last = tc.objective == "cloze-last"
            parts.append((*cloze_mask(w, tc.mask_prob, self.n_items, self.rng, force_last), w.lengths))
        if self.n_last:
            chosen = np.sort(self.rng.choice(len(w), self.n_last, replace=False))
            sub = w.take(chosen)
            parts.append((*last_mask(sub, self.n_items), sub.lengths))
        lengths = np.concatenate([p[2] for p in parts])
        inputs = Sequences.from_lengths(np.concatenate([p[0] for p in parts]), lengths)
        labels = Sequences.from_lengths(np.concatenate([p[1] for p in parts]), lengths)
        if tc.batching == "bucket":
            batches = bucketed_batches(lengths, tc.batch_size, self.rng, self.n_padded)
        else:
            batches = random_batches(len(lengths), tc.batch_size, self.rng, self.n_padded)
        for rows in batches:
            yield ClozeBatch(
                [(inputs.padded(chunk), labels.padded(chunk)) for chunk in length_chunks(rows, lengths, self.chunk_rows)]
            )

    def rng_state(self) -> dict[str, Any]:
        return {"numpy": self.rng.bit_generator.state}

    def load_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy"]
