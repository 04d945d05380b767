"""BERT4Rec training samples: windows of the training sequences, cloze masking, bucketed batches.

Masking is a data transform, outside the model, vectorised over the flat item array of all
windows; it is redrawn every epoch from the recipe's seeded generator.

* Windows: a sequence longer than ``max_len`` is cut into windows of at most ``max_len`` items,
  the first ending at its end, the next ``step`` items earlier, and so on until one starts at its
  first item, so no interaction is thrown away (step = max_len: no overlap). ``max_windows`` > 0
  keeps only the most recent windows of each sequence (older items are then not trained on).
* Cloze (BERT): each position is chosen with probability ``mask_prob`` (at least one per window);
  a chosen position becomes [MASK] 80 % of the time, a random item 10 %, stays unchanged 10 %; its
  label is the original item. Unchosen positions (and padding, always) have label 0.
* Last: only the last item of the window is masked (the next-item task the model is tested on).
* Cloze-last: cloze, and the last item of every window masked as well (both tasks in one pass).
* Batches: random (each padded to its own longest sample) or bucketed by length (least padding).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..formats import Sequences

MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen positions; the remaining 0.1 stay unchanged


def make_windows(seqs: Sequences, max_len: int, step: int, max_windows: int = 0) -> Sequences:
    """Cut sequences into windows of at most ``max_len`` items (see the module docstring)."""
    if not 1 <= step <= max_len:
        raise ValueError(f"window step must be in 1..max_len ({max_len}), got {step}: larger steps would skip items")
    lengths = seqs.lengths
    extra = np.maximum(lengths - max_len, 0)
    n_win = 1 + -(-extra // step)  # ceil
    if max_windows > 0:
        n_win = np.minimum(n_win, max_windows)  # windows are numbered from the end: the recent ones stay
    seq_of = np.repeat(np.arange(len(seqs)), n_win)
    k = np.arange(n_win.sum()) - np.repeat(np.cumsum(n_win) - n_win, n_win)  # window number from the end
    end = lengths[seq_of] - k * step
    start = np.maximum(end - max_len, 0)  # the last window of a sequence starts at 0
    win_len = end - start
    offsets = np.zeros(len(win_len) + 1, dtype=np.int64)
    np.cumsum(win_len, out=offsets[1:])
    src = np.repeat(seqs.offsets[:-1][seq_of] + start, win_len) + (
        np.arange(offsets[-1]) - np.repeat(offsets[:-1], win_len)
    )
    return Sequences(seqs.items[src], offsets)


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


def left_pad(flat: np.ndarray, offsets: np.ndarray, rows: np.ndarray, width: int | None = None) -> np.ndarray:
    """Rows ``rows`` of a flat ragged array as a left-padded matrix [len(rows), width] (0 = padding)."""
    lens = offsets[rows + 1] - offsets[rows]
    w = int(lens.max()) if width is None else width
    out = np.zeros((len(rows), w), dtype=np.int64)
    r = np.repeat(np.arange(len(rows)), lens)
    within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    out[r, w - np.repeat(lens, lens) + within] = flat[np.repeat(offsets[rows], lens) + within]
    return out


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Sample indices grouped into batches of similar length (little padding), batches in random order.

    Cheapest per epoch, but on ML-1M it learns less per epoch than random batches (a batch of only
    short or only long histories is a poor estimate of the full gradient; docs/benchmarks.md)."""
    batches = _cut(np.lexsort((rng.random(len(lengths)), lengths)), batch_size)
    for b in rng.permutation(len(batches)):
        yield batches[b]


def random_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Sample indices in a fresh random order, cut into batches (each is padded to its own longest)."""
    yield from _cut(rng.permutation(n), batch_size)


def length_chunks(rows: np.ndarray, lengths: np.ndarray, chunk_rows: int) -> list[np.ndarray]:
    """Split one batch into chunks of ``chunk_rows`` rows of similar length (sorted by length), so
    that each chunk is padded only to its own longest row. The loss is summed over the chunks and
    divided by the batch's label count, so the gradient is the whole batch's: a mixed batch at
    close to a bucketed batch's cost."""
    return _cut(rows[np.argsort(lengths[rows], kind="stable")], chunk_rows)


def _cut(order: np.ndarray, size: int) -> list[np.ndarray]:
    """``order`` in consecutive pieces of ``size`` (the last may be shorter)."""
    return [order[i : i + size] for i in range(0, len(order), max(1, size))]
