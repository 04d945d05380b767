"""Ranks, metrics and evaluation helpers against hand-computed cases (docs/protocols.md §4).

Every expected value below is worked out by hand in the comment beside it, not by calling the
code under test: pessimistic ties (rank = 1 + #other candidates scoring >= the target), -inf
columns excluded, a NaN target is the worst rank.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqrec_cli.errors import SeqrecError

from seqrec_cli.evaluation import (
    EvalSpec,
    ScoreBatch,
    evaluate_batches,
    hit_name,
    mask_history,
    prediction_positions,
    protocol_labels,
    sample_negatives,
)
from seqrec_cli.sequences import Sequences
from seqrec_cli import metrics
from seqrec_cli.metrics import MetricAccumulator, full_ranks, metrics_from_ranks, ndcg_at, sampled_ranks

INF = float("inf")
NAN = float("nan")


# ---------------------------------------------------------------------------------------------- full ranks
@pytest.fixture(params=[True, False], ids=["compiled", "torch"])
def either_rank_count(request, use_numba, monkeypatch):
    """Each full_ranks test runs twice: the compiled count (also for these small rows) and torch's."""
    use_numba(request.param)
    monkeypatch.setattr(metrics, "COMPILED_RANKS_MIN", 0)


def test_full_ranks_pessimistic_ties_by_hand(either_rank_count):
    scores = torch.tensor(
        [
            # target col 1 (0.5) ties with cols 3 and 4; col 2 (0.2) and col 5 (0.1) are below -> rank 3
            [-INF, 0.5, 0.2, 0.5, 0.5, 0.1],
            # target col 1 (0.3) is the strict maximum -> rank 1
            [-INF, 0.3, 0.1, 0.2, 0.0, -INF],
            # target col 4 (0.0): cols 1, 2, 3 are higher; cols 0 and 5 are -inf and do not count -> rank 4
            [-INF, 0.3, 0.1, 0.2, 0.0, -INF],
            # everything recommendable scores the same: the target is last among the 5 -> rank 5 (not 1)
            [-INF, 1.0, 1.0, 1.0, 1.0, 1.0],
            # target col 2 (0.7) beats 0.6 but ties 0.7 at col 5; -inf cols 0, 3 excluded -> rank 2
            [-INF, 0.6, 0.7, -INF, 0.1, 0.7],
        ]
    )
    targets = torch.tensor([1, 1, 4, 2, 2])
    assert full_ranks(scores, targets).tolist() == [3, 1, 4, 5, 2]


def test_full_ranks_nan_target_is_the_worst_rank(either_rank_count):
    scores = torch.tensor(
        [
            [-INF, NAN, 0.2, 0.1],  # NaN target: worst possible rank = number of columns (4)
            [-INF, 0.9, 0.2, 0.1],  # an ordinary row beside it is unaffected -> rank 1
            [-INF, NAN, NAN, NAN],  # all NaN: still the worst rank, not rank 1 (NaN >= NaN is False)
        ]
    )
    ranks = full_ranks(scores, torch.tensor([1, 1, 2]))
    assert ranks.tolist() == [4, 1, 4]


def test_full_ranks_a_filtered_target_is_never_a_hit(either_rank_count):
    """A target whose column was set to -inf (filtered) ranks behind every candidate."""
    scores = torch.tensor([[-INF, 0.5, -INF, 0.1, -INF]])
    # everything is >= -inf: all 5 columns count -> rank 5, a miss at every cutoff below 5
    assert full_ranks(scores, torch.tensor([2])).tolist() == [5]


def test_full_ranks_integer_dtype_and_shape(either_rank_count):
    scores = torch.randn(7, 11)
    ranks = full_ranks(scores, torch.arange(7))
    assert ranks.shape == (7,)
    assert not ranks.is_floating_point()
    assert ((ranks >= 1) & (ranks <= 11)).all()


def test_full_ranks_compiled_equal_torch_on_random_rows(use_numba, monkeypatch):
    """The compiled count (one pass per row) and the torch comparison give the same ranks, ties,
    -inf columns and NaN scores included; a target outside the columns is an error in both."""
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 50, (64, 300), generator=gen).float() / 7  # many ties
    scores[:, 0] = -INF
    scores[5, 10] = NAN
    scores[6, :] = NAN
    targets = torch.randint(0, 300, (64,), generator=gen)
    targets[5] = 10
    monkeypatch.setattr(metrics, "COMPILED_RANKS_MIN", 0)
    got = {}
    for on in (True, False):
        use_numba(on)
        got[on] = full_ranks(scores, targets)
        with pytest.raises((IndexError, RuntimeError)):  # the kernel's IndexError, torch's RuntimeError
            full_ranks(scores, torch.tensor([300] * 64))
    assert got[True].dtype == got[False].dtype == torch.int32
    assert torch.equal(got[True], got[False]) and got[True][5] == got[True][6] == 300


# ---------------------------------------------------------------------------------------------- sampled ranks
def test_sampled_ranks_by_hand():
    target = torch.tensor([0.5, 0.5, NAN, 0.0, 1.0])
    negatives = torch.tensor(
        [
            [0.1, 0.5, 0.7],  # 0.5 tie and 0.7 above -> rank 3
            [0.1, 0.2, 0.3],  # all below -> rank 1
            [0.0, 0.0, 0.0],  # NaN target -> worst = K + 1 = 4
            [0.0, 0.0, 0.0],  # three ties -> rank 4
            [-INF, 2.0, -INF],  # one above -> rank 2
        ]
    )
    assert sampled_ranks(target, negatives).tolist() == [3, 1, 4, 4, 2]


# ---------------------------------------------------------------------------------------------- metrics
def test_metric_accumulator_by_hand():
    acc = MetricAccumulator(cutoffs=(1, 10))
    acc.add(torch.tensor([1, 3, 11]))
    m = acc.result()
    assert list(m) == ["hr@1", "hr@10", "ndcg@1", "ndcg@10", "mrr@1", "mrr@10", "mrr"]
    assert m["hr@1"] == pytest.approx(1 / 3)  # only rank 1
    assert m["hr@10"] == pytest.approx(2 / 3)  # ranks 1 and 3
    # NDCG@10: 1/log2(2) = 1, 1/log2(4) = 0.5, rank 11 -> 0; mean = 1.5 / 3
    assert m["ndcg@10"] == pytest.approx(0.5)
    assert m["ndcg@1"] == pytest.approx(1 / 3)
    assert m["mrr@1"] == pytest.approx(1 / 3)
    assert m["mrr@10"] == pytest.approx((1 + 1 / 3) / 3)  # 4/9
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 11) / 3)  # no cutoff: rank 11 counts 1/11


def test_metric_accumulator_batches_add_up():
    """Adding ranks batch by batch gives the mean over all predictions, not a mean of batch means."""
    acc = MetricAccumulator(cutoffs=(5,))
    acc.add(torch.tensor([1]))
    acc.add(torch.tensor([7, 2, 6]))
    acc.add(torch.tensor([], dtype=torch.int64))
    m = acc.result()
    assert acc.count == 4
    assert m["hr@5"] == pytest.approx(2 / 4)  # ranks 1 and 2
    # 1/log2(2) + 1/log2(3) over 4 predictions
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert m["mrr@5"] == pytest.approx((1 + 1 / 2) / 4)
    assert m["mrr"] == pytest.approx((1 + 1 / 7 + 1 / 2 + 1 / 6) / 4)


def test_metric_values_at_the_cutoff_boundary():
    # rank == k is a hit, rank k + 1 is not; rank 7: NDCG = 1/log2(8) = 1/3
    m = metrics_from_ranks(torch.tensor([7]), (6, 7))
    assert m["hr@6"] == 0.0 and m["hr@7"] == 1.0
    assert m["ndcg@6"] == 0.0 and m["ndcg@7"] == pytest.approx(1 / 3)
    assert m["mrr@7"] == pytest.approx(1 / 7)
    assert ndcg_at(7, 7) == pytest.approx(1 / 3)
    assert ndcg_at(8, 7) == 0.0


def test_hit_name_recall():
    m = metrics_from_ranks(torch.tensor([2, 30]), (20,), hit_name="recall")
    assert set(m) == {"recall@20", "ndcg@20", "mrr@20", "mrr"}
    assert m["recall@20"] == pytest.approx(0.5)
    assert m["mrr@20"] == pytest.approx(0.25)
    assert hit_name("all") == "recall"
    assert hit_name("last") == "hr"


def test_empty_accumulator_has_no_figures():
    assert MetricAccumulator().result() == {}


# ---------------------------------------------------------------------------------------------- evaluate_batches
def _seqs(lists):
    return Sequences.from_lists(lists)


def test_evaluate_batches_full_and_filter_seen_by_hand():
    seqs = _seqs([[1, 2, 3], [4, 1]])
    # leave-one-out: row 0 predicts 3 from [1, 2]; row 1 predicts 1 from [4]
    scores = torch.tensor(
        [
            [-INF, 0.9, 0.8, 0.5, 0.1, 0.0],  # items 1, 2 above the target 3 -> rank 3; without history -> 1
            [-INF, 0.2, 0.0, 0.1, 0.9, 0.3],  # item 4 (history) and 5 above target 1 -> 3; filtered -> 2
        ]
    )
    batch = ScoreBatch(scores, np.array([3, 1]), np.array([0, 1]), np.array([2, 1]))
    copy = ScoreBatch(scores.clone(), batch.targets, batch.rows, batch.target_pos)
    full = evaluate_batches([copy], seqs, 5, "last", EvalSpec(cutoffs=(1, 2, 3)))
    assert full.protocol == "full"
    assert full.predictions == 2
    assert full.metrics["hr@2"] == 0.0 and full.metrics["hr@3"] == 1.0
    assert full.metrics["mrr"] == pytest.approx(1 / 3)
    seen = evaluate_batches([batch], seqs, 5, "last", EvalSpec(cutoffs=(1, 2, 3), filter_seen=True))
    assert seen.protocol == "full+filter-seen"
    assert seen.metrics["hr@1"] == pytest.approx(0.5)
    assert seen.metrics["mrr"] == pytest.approx((1 + 1 / 2) / 2)


def test_evaluate_batches_sampled_protocol_label():
    seqs = _seqs([[1, 2], [3, 4]])
    scores = torch.zeros(2, 11)
    scores[:, 0] = -INF
    scores[0, 2] = 5.0  # row 0's target is the unique maximum -> rank 1 whatever is sampled
    batch = ScoreBatch(scores, np.array([2, 4]), np.array([0, 1]), np.array([1, 1]))
    counts = np.array([0, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5], dtype=float)
    res = evaluate_batches([batch], seqs, 10, "last", EvalSpec(negatives=3), counts)
    assert res.protocol == "popularity-3"
    assert "3 popularity-sampled negatives" in res.description
    # row 1: target 0 ties with 3 negatives at 0 -> rank 4 (pessimistic)
    assert res.metrics["hr@1"] == pytest.approx(0.5)
    assert res.metrics["mrr"] == pytest.approx((1 + 1 / 4) / 2)
    short, _ = protocol_labels(EvalSpec(negatives=100, sampling="uniform"), "last", 10)
    assert short == "uniform-100"


# ---------------------------------------------------------------------------------------------- negatives
def _random_seqs(rng, n, n_items, max_len):
    return _seqs([rng.choice(np.arange(1, n_items + 1), size=rng.integers(1, max_len + 1)).tolist() for _ in range(n)])


@pytest.mark.parametrize("popular", [True, False], ids=["popularity", "uniform"])
def test_sample_negatives_excludes_own_items_padding_and_duplicates(popular):
    rng = np.random.default_rng(3)
    n_items = 30
    seqs = _random_seqs(rng, 200, n_items, 12)
    counts = np.arange(n_items + 1, dtype=float) if popular else None
    neg = sample_negatives(seqs, n_items, 10, counts, seed=7, chunk=64)  # several chunks
    assert neg.shape == (200, 10)
    for i in range(len(seqs)):
        row = neg[i].tolist()
        assert len(set(row)) == 10, f"duplicates in row {i}: {row}"
        assert 0 not in row
        assert all(1 <= x <= n_items for x in row)
        assert not set(row) & set(seqs[i].tolist()), f"row {i} sampled one of its own items"


def test_sample_negatives_is_seeded():
    rng = np.random.default_rng(0)
    seqs = _random_seqs(rng, 50, 40, 8)
    counts = np.arange(41, dtype=float)
    a = sample_negatives(seqs, 40, 5, counts, seed=11)
    b = sample_negatives(seqs, 40, 5, counts, seed=11)
    c = sample_negatives(seqs, 40, 5, counts, seed=12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_sample_negatives_prefers_popular_items():
    """Items 11..20 are 9x as frequent as 2..10: by popularity they should be ~90% of the draws
    (90 / 99), uniformly ~53% (10 / 19). Item 1 is in every sequence and never drawn."""
    n = 4000
    seqs = _seqs([[1]] * n)
    counts = np.zeros(21)
    counts[1] = 100.0
    counts[2:11] = 1.0
    counts[11:21] = 9.0
    pop = sample_negatives(seqs, 20, 1, counts, seed=0).squeeze(1).numpy()
    uni = sample_negatives(seqs, 20, 1, None, seed=0).squeeze(1).numpy()
    assert not (pop == 1).any() and not (uni == 1).any()
    share_pop = float((pop >= 11).mean())
    share_uni = float((uni >= 11).mean())
    assert 0.87 < share_pop < 0.95, share_pop
    assert 0.48 < share_uni < 0.58, share_uni


def test_sample_negatives_never_draws_items_without_training_counts():
    seqs = _seqs([[1], [2]] * 50)
    counts = np.array([0, 3, 3, 0, 3, 3, 0, 3], dtype=float)  # items 3 and 6 never seen in training
    neg = sample_negatives(seqs, 7, 3, counts, seed=1)
    assert not torch.isin(neg, torch.tensor([0, 3, 6])).any()


def test_sample_negatives_too_few_candidates():
    seqs = _seqs([[1, 2, 3]])
    with pytest.raises(SeqrecError, match="lower --negatives"):
        sample_negatives(seqs, 5, 3, None, seed=0)  # only items 4 and 5 are left


# ---------------------------------------------------------------------------------------------- history and positions
def test_mask_history_masks_exactly_the_history():
    seqs = _seqs([[3, 1, 3, 5], [2], [4, 6, 2]])
    rows = np.array([0, 2, 0, 1, 2])
    target_pos = np.array([3, 2, 1, 0, 0])
    scores = torch.zeros(5, 7)
    mask_history(scores, seqs, rows, target_pos)
    expected = [
        {3, 1},  # seq 0 before position 3: 3 1 3
        {4, 6},  # seq 2 before position 2
        {3},  # seq 0 before position 1
        set(),  # target_pos 0: nothing
        set(),
    ]
    for i, exp in enumerate(expected):
        masked = set(torch.nonzero(torch.isinf(scores[i])).flatten().tolist())
        assert masked == exp, (i, masked, exp)
        assert (scores[i][~torch.isinf(scores[i])] == 0).all()


def test_prediction_positions():
    seqs = _seqs([[5, 6, 7], [8], [9, 10]])
    rows, pos = prediction_positions(seqs, "last")
    assert rows.tolist() == [0, 2] and pos.tolist() == [2, 1]
    rows, pos = prediction_positions(seqs, "all")
    assert rows.tolist() == [0, 0, 2] and pos.tolist() == [1, 2, 1]
