"""Training windows over long sequences, and the ways to group them into batches.

Transformer models see at most ``max_len`` items at once, so a longer training sequence is cut
into windows: the first ends at the sequence's last item, the next ``step`` items earlier, and
so on until one starts at its first item, so no interaction is thrown away (step = max_len: no
overlap). ``max_windows`` > 0 keeps only the most recent windows of each sequence.

Batches are either random samples of windows (each padded to its own longest window) or groups
of windows of similar length (least padding). On a CPU a random batch is best run as
length-sorted chunks, each padded only to its own longest row, with one loss over the whole
batch: the batch's gradient at close to a bucketed batch's cost.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..sequences import Sequences, ragged_arange


def make_windows(seqs: Sequences, max_len: int, step: int, max_windows: int = 0) -> Sequences:
    """Cut sequences into windows of at most ``max_len`` items (see the module docstring).

    Windows of one sequence come newest first. Raises ValueError unless 1 <= step <= max_len.
    """
    if not 1 <= step <= max_len:
        raise ValueError(f"window step must be in 1..max_len ({max_len}), got {step}: larger steps would skip items")
    lengths = seqs.lengths
    extra = np.maximum(lengths - max_len, 0)
    n_win = 1 + -(-extra // step)  # ceil
    if max_windows > 0:
        n_win = np.minimum(n_win, max_windows)  # windows are numbered from the end: the recent ones stay
    seq_of = np.repeat(np.arange(len(seqs)), n_win)
    k = ragged_arange(n_win)  # window number from the end
    end = lengths[seq_of] - k * step
    start = np.maximum(end - max_len, 0)  # the last window of a sequence starts at 0
    return seqs.slice(seq_of, start, end)


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pad_to: int = 0
) -> Iterator[np.ndarray]:
    """Sample indices grouped into batches of similar length (little padding), batches in random order.

    Cheapest per epoch, but on ML-1M it learns less per epoch than random batches (a batch of only
    short or only long histories is a poor estimate of the full gradient; docs/benchmarks.md).
    ``pad_to``: see :func:`padded_order`."""
    idx = padded_order(len(lengths), pad_to, rng)
    batches = [idx[b] for b in cut(np.lexsort((rng.random(len(idx)), lengths[idx])), batch_size)]
    for b in rng.permutation(len(batches)):
        yield batches[b]


def random_batches(n: int, batch_size: int, rng: np.random.Generator, pad_to: int = 0) -> Iterator[np.ndarray]:
    """Sample indices in a fresh random order, cut into batches (each is padded to its own longest).
    ``pad_to``: see :func:`padded_order`."""
    order = rng.permutation(n)
    if pad_to > n:
        order = np.concatenate([order, padded_order(n, pad_to, rng)[n:]])
    yield from cut(order, batch_size)


def equal_share(n: int, world: int, what: str = "training windows") -> list[int]:
    """How many of n training units (windows) each of ``world`` processes gets when process r takes
    units r, r + world, ...: they differ by at most one. Raises SeqrecError when some process
    would get none."""
    if 1 < world and n < world:  # (one process with no window is the training loop's "nothing to learn")
        from ..errors import SeqrecError

        raise SeqrecError(f"the training split has {n:,} {what}, fewer than the {world} processes: use fewer processes")
    return [len(range(r, n, world)) for r in range(world)]


def padded_order(n: int, pad_to: int, rng: np.random.Generator) -> np.ndarray:
    """0..n-1, then (when ``pad_to`` > n) ``pad_to - n`` of them again, drawn at random: a data
    parallel process with one window fewer than another trains on one of its own twice that
    epoch, so that every process takes the same number of steps (DistributedDataParallel needs it).
    In one process ``pad_to`` <= n and nothing is drawn."""
    base = np.arange(n, dtype=np.int64)
    if pad_to <= n:
        return base
    return np.concatenate([base, rng.choice(n, pad_to - n, replace=pad_to - n > n)])


def length_chunks(rows: np.ndarray, lengths: np.ndarray, chunk_rows: int) -> list[np.ndarray]:
    """Split one batch into chunks of ``chunk_rows`` rows of similar length (sorted by length), so
    that each chunk is padded only to its own longest row. The loss is summed over the chunks and
    divided by the batch's label count, so the gradient is the whole batch's: a mixed batch at
    close to a bucketed batch's cost."""
    return cut(rows[np.argsort(lengths[rows], kind="stable")], chunk_rows)


def cut(order: np.ndarray, size: int) -> list[np.ndarray]:
    """``order`` in consecutive pieces of ``size`` (the last may be shorter)."""
    return [order[i : i + size] for i in range(0, len(order), max(1, size))]
