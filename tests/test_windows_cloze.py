"""Training windows and batches (seqrec_cli.data.windows), BERT4Rec's cloze masking (BERT's 80/10/10)
and last-item masking (seqrec_cli.data.cloze), and padding (Sequences.padded). Pure numpy, no torch."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from seqrec_cli.data.cloze import cloze_mask, last_mask
from seqrec_cli.data.windows import bucketed_batches, length_chunks, make_windows, random_batches
from seqrec_cli.sequences import Sequences


def left_pad(flat, offsets, rows, width=None):
    return Sequences(flat, offsets).padded(rows, width)


def ragged(lengths: list[int], seed: int = 0, n_items: int = 1000) -> Sequences:
    """Sequences of the given lengths; items are distinct within the whole set when possible, so
    positions can be traced back through windows."""
    rng = np.random.default_rng(seed)
    total = sum(lengths)
    if total <= n_items:
        items = rng.permutation(n_items)[:total] + 1
    else:
        items = rng.integers(1, n_items + 1, size=total)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return Sequences(items.astype(np.int64), offsets)


def windows_of(w: Sequences, seq_lengths: list[int], max_len: int, step: int) -> list[list[list[int]]]:
    """Group the flat windows back per sequence (make_windows emits them sequence by sequence)."""
    out, i = [], 0
    for length in seq_lengths:
        n = 1 + max(0, -(-(length - max_len) // step))
        out.append([w[j].tolist() for j in range(i, i + n)])
        i += n
    assert i == len(w)
    return out


# ---------------------------------------------------------------- make_windows
LENGTHS = [1, 2, 9, 10, 11, 19, 20, 21, 35, 100]


def test_windows_without_overlap_cover_every_item_exactly_once():
    max_len = 10
    seqs = ragged(LENGTHS)
    w = make_windows(seqs, max_len, step=max_len)
    assert w.lengths.max() <= max_len and w.lengths.min() >= 1
    assert w.n_events == seqs.n_events  # nothing lost, nothing repeated
    per_seq = windows_of(w, LENGTHS, max_len, max_len)
    for i, wins in enumerate(per_seq):
        seq = seqs[i].tolist()
        assert wins[0] == seq[-max_len:]  # the first window ends at the sequence end
        assert all(len(x) == max_len for x in wins[:-1])  # only the one at the start may be short
        # the windows are consecutive slices: reversed and concatenated they give the sequence back
        assert [item for win in reversed(wins) for item in win] == seq
    assert len(w) == sum(1 + -(-max(0, n - max_len) // max_len) for n in LENGTHS)


@pytest.mark.parametrize("step", [10, 4])
def test_max_windows_keeps_only_the_most_recent_windows(step):
    max_len = 10
    seqs = ragged(LENGTHS)
    every = windows_of(make_windows(seqs, max_len, step), LENGTHS, max_len, step)
    for keep in (1, 2):
        w = make_windows(seqs, max_len, step, max_windows=keep)
        assert len(w) == sum(min(keep, len(wins)) for wins in every)
        got = [x.tolist() for x in w]
        assert got == [win for wins in every for win in wins[:keep]]  # the first `keep`: those ending latest
    last = make_windows(seqs, max_len, step, max_windows=1)
    assert last.to_lists() == [s[-max_len:] for s in seqs.to_lists()]  # each sequence's last max_len items


def test_windows_short_sequences_are_kept_whole():
    seqs = ragged([3, 7, 10])
    w = make_windows(seqs, 10, 10)
    assert w.to_lists() == seqs.to_lists()


@pytest.mark.parametrize("step", [1, 3, 7, 9])
def test_overlapping_windows_cover_every_item(step):
    max_len = 10
    seqs = ragged(LENGTHS)
    w = make_windows(seqs, max_len, step)
    assert w.lengths.max() <= max_len
    per_seq = windows_of(w, LENGTHS, max_len, step)
    for i, wins in enumerate(per_seq):
        seq = seqs[i].tolist()
        assert wins[0] == seq[-max_len:]
        assert wins[-1] == seq[: len(wins[-1])]  # the last window starts at the first item
        # each window is a contiguous slice of the sequence; consecutive ones end `step` apart
        text = " " + " ".join(map(str, seq)) + " "
        for k, win in enumerate(wins):
            assert " " + " ".join(map(str, win)) + " " in text
            if k < len(wins) - 1:
                assert seq.index(win[-1]) - seq.index(wins[k + 1][-1]) == step
        assert Counter(x for win in wins for x in win).keys() == Counter(seq).keys()  # every item covered


def test_windows_with_step_larger_than_max_len_lose_nothing_or_are_refused():
    """The docstring promises "no interaction is thrown away"; --window-step is only checked to be >= 0,
    so a step above max_len must either be refused or still cover every item."""
    max_len = 10
    seqs = ragged([35])
    try:
        w = make_windows(seqs, max_len, step=15)
    except ValueError:
        return
    assert set(w.items.tolist()) == set(seqs.items.tolist())


def test_windows_with_a_step_beyond_max_len_are_refused():
    seqs = ragged([45])
    with pytest.raises(ValueError, match="window step"):
        make_windows(seqs, 20, step=60)


# ---------------------------------------------------------------- cloze_mask
N_ITEMS = 5000
MASK = N_ITEMS + 1


@pytest.fixture(scope="module")
def cloze_draw():
    """~200k tokens in windows of 20..40 items, masked with p = 0.2, fixed seed."""
    rng = np.random.default_rng(123)
    lengths = rng.integers(20, 41, size=6700)
    items = rng.integers(1, N_ITEMS + 1, size=int(lengths.sum()))
    w = Sequences(items, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    inputs, labels = cloze_mask(w, 0.2, N_ITEMS, np.random.default_rng(7))
    return w, inputs, labels


def test_cloze_shares(cloze_draw):
    w, inputs, labels = cloze_draw
    assert w.n_events > 190_000
    chosen = labels > 0
    assert abs(chosen.mean() - 0.2) < 0.005
    n = chosen.sum()
    masked = inputs[chosen] == MASK
    unchanged = inputs[chosen] == w.items[chosen]
    random = ~masked & ~unchanged  # a random draw equal to the original (p = 1/5000) counts as unchanged
    assert abs(masked.sum() / n - 0.8) < 0.015
    assert abs(random.sum() / n - 0.1) < 0.015
    assert abs(unchanged.sum() / n - 0.1) < 0.015
    # unchosen positions are untouched
    assert np.array_equal(inputs[~chosen], w.items[~chosen])


def test_cloze_labels_and_replacements(cloze_draw):
    w, inputs, labels = cloze_draw
    chosen = labels > 0
    assert inputs.shape == labels.shape == w.items.shape
    assert np.array_equal(labels[chosen], w.items[chosen])  # the label is the original item
    assert (labels[~chosen] == 0).all()
    assert labels.min() >= 0 and labels.max() <= N_ITEMS  # never [MASK] as a label
    assert ((inputs >= 1) & (inputs <= MASK)).all()  # never padding
    replaced = chosen & (inputs != MASK) & (inputs != w.items)
    assert replaced.sum() > 1000
    assert ((inputs[replaced] >= 1) & (inputs[replaced] <= N_ITEMS)).all()
    # random replacements are spread over the whole vocabulary, not a few items
    assert len(np.unique(inputs[replaced])) > 0.4 * min(N_ITEMS, int(replaced.sum()))
    # every window asks for at least one item
    per_window = np.add.reduceat(chosen.astype(np.int64), w.offsets[:-1])
    assert (per_window >= 1).all()


def test_cloze_every_window_gets_a_label_even_when_tiny_and_rare():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 4, size=3000)
    items = rng.integers(1, 51, size=int(lengths.sum()))
    w = Sequences(items, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    inputs, labels = cloze_mask(w, 0.01, 50, np.random.default_rng(1))
    per_window = np.add.reduceat((labels > 0).astype(np.int64), w.offsets[:-1])
    assert (per_window >= 1).all()
    assert (labels[labels > 0] == items[labels > 0]).all()
    assert ((inputs >= 1) & (inputs <= 51)).all()


def test_cloze_is_seeded():
    w = ragged([30, 12, 50], seed=3)
    a = cloze_mask(w, 0.3, 1000, np.random.default_rng(5))
    b = cloze_mask(w, 0.3, 1000, np.random.default_rng(5))
    c = cloze_mask(w, 0.3, 1000, np.random.default_rng(6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[1], c[1])


def test_cloze_then_left_pad_never_touches_padding():
    rng = np.random.default_rng(4)
    lengths = rng.integers(1, 30, size=400)
    items = rng.integers(1, 101, size=int(lengths.sum()))
    w = Sequences(items, np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64))
    inputs, labels = cloze_mask(w, 0.25, 100, rng)
    rows = np.arange(len(w))
    x = left_pad(inputs, w.offsets, rows, width=32)
    y = left_pad(labels, w.offsets, rows, width=32)
    pad = np.arange(32)[None, :] < (32 - lengths)[:, None]
    assert (x[pad] == 0).all() and (y[pad] == 0).all()  # padding is neither masked nor labelled
    assert (x[~pad] > 0).all()  # and nothing real became padding
    assert ((y > 0) <= ~pad).all()


# ---------------------------------------------------------------- last_mask
def test_last_mask_masks_only_the_last_item():
    w = Sequences.from_lists([[5, 6, 7], [9], [1, 2]])
    inputs, labels = last_mask(w, n_items=10)
    assert inputs.tolist() == [5, 6, 11, 11, 1, 11]
    assert labels.tolist() == [0, 0, 7, 9, 0, 2]
    assert w.items.tolist() == [5, 6, 7, 9, 1, 2]  # the windows themselves are not modified


# ---------------------------------------------------------------- left_pad
def test_left_pad_right_aligns_rows():
    s = Sequences.from_lists([[1, 2, 3], [4], [5, 6]])
    assert left_pad(s.items, s.offsets, np.array([0, 1, 2])).tolist() == [[1, 2, 3], [0, 0, 4], [0, 5, 6]]
    # a subset of rows, in the order asked, padded to its own longest row
    assert left_pad(s.items, s.offsets, np.array([2, 1])).tolist() == [[5, 6], [0, 4]]
    # an explicit width
    assert left_pad(s.items, s.offsets, np.array([1, 0]), width=5).tolist() == [[0, 0, 0, 0, 4], [0, 0, 1, 2, 3]]
    assert left_pad(s.items, s.offsets, np.array([0])).dtype == np.int64


# ---------------------------------------------------------------- bucketed_batches
def test_bucketed_batches_cover_every_index_once_with_similar_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 201, size=5000)  # uniform lengths
    batches = list(bucketed_batches(lengths, 64, np.random.default_rng(1)))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(5000))
    assert [len(b) for b in batches].count(64) == len(batches) - 1  # one short batch
    spreads = [int(lengths[b].max() - lengths[b].min()) for b in batches]
    assert max(spreads) <= 5  # 64 of 5000 uniform lengths over 200 values: ~3 apart at most
    # the batches come in random order, not sorted by length
    means = [lengths[b].mean() for b in batches]
    assert means != sorted(means) and means != sorted(means, reverse=True)


def test_bucketed_batches_depend_on_the_seed():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)

    def draw(seed):
        return [b.tolist() for b in bucketed_batches(lengths, 32, np.random.default_rng(seed))]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)
    # equal lengths are shuffled too: same multiset of lengths per batch position differs in members
    same = np.full(256, 7)
    a = np.concatenate(list(bucketed_batches(same, 16, np.random.default_rng(0))))
    b = np.concatenate(list(bucketed_batches(same, 16, np.random.default_rng(1))))
    assert sorted(a.tolist()) == sorted(b.tolist()) == list(range(256))
    assert a.tolist() != b.tolist() and a.tolist() != list(range(256))


def test_bucketed_batches_smaller_than_one_batch():
    out = list(bucketed_batches(np.array([3, 1, 2]), 10, np.random.default_rng(0)))
    assert len(out) == 1 and sorted(out[0].tolist()) == [0, 1, 2]
    assert lengths_sorted(np.array([3, 1, 2])[out[0]])


# ---------------------------------------------------------------- random_batches
def test_random_batches_cover_every_index_once_with_mixed_lengths():
    lengths = np.random.default_rng(0).integers(1, 201, size=5000)
    batches = list(random_batches(len(lengths), 64, np.random.default_rng(1)))
    assert sorted(np.concatenate(batches).tolist()) == list(range(5000))
    assert [len(b) for b in batches] == [64] * 78 + [8]
    # unlike bucketed batches, a batch holds short and long samples together
    spreads = [int(lengths[b].max() - lengths[b].min()) for b in batches[:-1]]
    assert min(spreads) > 150


def test_random_batches_depend_on_the_seed():
    def draw(seed):
        return [b.tolist() for b in random_batches(300, 32, np.random.default_rng(seed))]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)
    assert np.concatenate(draw(3)).tolist() != list(range(300))  # shuffled, not in order


def test_length_chunks_split_a_batch_by_length():
    lengths = np.array([5, 200, 3, 90, 7, 150, 1, 60, 2])
    rows = np.array([8, 1, 3, 0, 6, 5])  # lengths 2, 200, 90, 5, 1, 150
    chunks = length_chunks(rows, lengths, 2)
    assert [c.tolist() for c in chunks] == [[6, 8], [0, 3], [5, 1]]  # (1, 2), (5, 90), (150, 200)
    assert [c.tolist() for c in length_chunks(rows, lengths, 4)] == [[6, 8, 0, 3], [5, 1]]
    assert [c.tolist() for c in length_chunks(rows, lengths, 64)] == [[6, 8, 0, 3, 5, 1]]
    # padding: the chunks hold (2 + 90 + 200) * 2 slots instead of 6 * 200
    assert sum(len(c) * lengths[c].max() for c in chunks) == 584


def lengths_sorted(values: np.ndarray) -> bool:
    return bool((np.diff(values) >= 0).all())


def test_cloze_mask_force_last_always_masks_the_last_item():
    rng = np.random.default_rng(7)
    w = Sequences.from_lists([[5, 6, 7, 8], [9], [1, 2, 3]])
    for _ in range(20):
        inputs, labels = cloze_mask(w, 0.01, n_items=10, rng=rng, force_last=True)
        last = w.offsets[1:] - 1
        assert inputs[last].tolist() == [11, 11, 11]  # always [MASK], never the 10 % random / unchanged
        assert labels[last].tolist() == [8, 9, 3]
        assert ((labels > 0) == (labels == w.items) & (labels > 0)).all()
