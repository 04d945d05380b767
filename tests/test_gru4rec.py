"""GRU4Rec: losses and optimizer against hand-computed values, hidden-state resets in training and
scoring, and a learning test through the real CLI on synthetic sessions (docs/protocols.md §5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import invoke, usage_error

from seqrec_cli import formats
from seqrec_cli.data.sampling import PopularitySampler, popularity
from seqrec_cli.data.session_parallel import SessionParallelBatcher
from seqrec_cli.models import REGISTRY, losses
from seqrec_cli.models.gru4rec import GRU4Rec
from seqrec_cli.models.gru4rec_config import GRU4RecConfig, GRU4RecTrainConfig
from seqrec_cli.models.base import to_device
from seqrec_cli import kernels
from seqrec_cli.optim import AdagradM, sqrt_rounded
from seqrec_cli.scoring import score_batches as _score_batches
from seqrec_cli.sequences import Sequences

ENTRY = REGISTRY["gru4rec"]


def score_batches(model, seqs, mode, batch_size):
    return _score_batches(model, ENTRY, seqs, mode, batch_size)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny matrices: one thread is several times faster than two on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _neg_log_softmax(row: list[float], i: int) -> float:
    return -math.log(math.exp(row[i]) / sum(math.exp(v) for v in row))


# target of row i in column i
S = [[1.0, 2.0, 0.5], [0.0, 3.0, -1.0]]


# ---------------------------------------------------------------------------------------------- losses
def test_sampled_softmax_ce_by_hand():
    expected = _neg_log_softmax(S[0], 0) + _neg_log_softmax(S[1], 1)
    got = losses.sampled_softmax_ce(torch.tensor(S))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_sampled_softmax_ce_with_logq_by_hand():
    log_q = [0.1, -0.7, 1.2]
    shifted = [[v - q for v, q in zip(row, log_q)] for row in S]
    expected = _neg_log_softmax(shifted[0], 0) + _neg_log_softmax(shifted[1], 1)
    got = losses.sampled_softmax_ce(torch.tensor(S), torch.tensor(log_q))
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # the correction changes the value (guards against log_q being ignored)
    assert abs(expected - losses.sampled_softmax_ce(torch.tensor(S)).item()) > 0.1


def test_full_softmax_ce_by_hand():
    inf = float("inf")
    scores = [[-inf, 0.2, 1.5, -0.3], [-inf, 2.0, 0.0, 0.7]]
    targets = [2, 3]
    finite = [[v for v in row[1:]] for row in scores]  # padding column contributes exp(-inf) = 0
    expected = _neg_log_softmax(finite[0], 1) + _neg_log_softmax(finite[1], 2)
    got = losses.full_softmax_ce(torch.tensor(scores), torch.tensor(targets))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_bpr_by_hand():
    # row 0: target 1.0 vs 2.0 and 0.5; row 1: target 3.0 vs 0.0 and -1.0; mean over the 2 negatives
    row0 = (-math.log(_sig(1.0 - 2.0)) - math.log(_sig(1.0 - 0.5))) / 2
    row1 = (-math.log(_sig(3.0 - 0.0)) - math.log(_sig(3.0 + 1.0))) / 2
    got = losses.bpr(torch.tensor(S))
    assert got.item() == pytest.approx(row0 + row1, rel=1e-6)


def _bpr_max_row(row: list[float], i: int, bpreg: float) -> float:
    neg = [v for j, v in enumerate(row) if j != i]
    z = sum(math.exp(v) for v in neg)
    s = [math.exp(v) / z for v in neg]  # softmax over the negatives only
    prob = sum(sj * _sig(row[i] - v) for sj, v in zip(s, neg))
    reg = sum(sj * v * v for sj, v in zip(s, neg))
    return -math.log(prob) + bpreg * reg


@pytest.mark.parametrize("bpreg", [0.0, 0.5, 1.0])
def test_bpr_max_by_hand(bpreg):
    scores = [[1.0, 2.0, 0.5, -0.5], [0.0, 3.0, -1.0, 1.5], [0.3, 0.1, -2.0, 0.8]]
    expected = sum(_bpr_max_row(row, i, bpreg) for i, row in enumerate(scores))
    got = losses.bpr_max(torch.tensor(scores), bpreg=bpreg)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_bpr_max_with_elu_by_hand():
    alpha = 0.5
    elu = lambda x: x if x > 0 else alpha * (math.exp(x) - 1)  # noqa: E731
    scores = [[1.0, -2.0, 0.5], [-0.5, 3.0, -1.0]]
    transformed = [[elu(v) for v in row] for row in scores]
    expected = sum(_bpr_max_row(row, i, 1.0) for i, row in enumerate(transformed))
    got = losses.bpr_max(torch.tensor(scores), bpreg=1.0, elu_param=alpha)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_losses_sum_over_rows():
    """Each loss of a stacked batch is the sum of the losses of its single rows."""
    scores = torch.tensor(S)
    for fn in (losses.sampled_softmax_ce, losses.bpr, losses.bpr_max):
        whole = fn(scores).item()
        # row 1 alone: move its target to column 0 so "target of row i in column i" still holds
        row1 = scores[1:, [1, 0, 2]]
        assert whole == pytest.approx(fn(scores[:1]).item() + fn(row1).item(), rel=1e-6), fn.__name__


# ---------------------------------------------------------------------------------------------- AdagradM
def test_adagradm_dense_two_steps_by_hand():
    lr, mom_c, eps = 0.1, 0.5, 1e-6
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = AdagradM([p], lr=lr, momentum=mom_c, eps=eps)
    expected = [1.0, -2.0]
    acc = [0.0, 0.0]
    mom = [0.0, 0.0]
    for g in ([0.5, -1.0], [0.2, 0.3]):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        for j in range(2):
            acc[j] += g[j] ** 2
            mom[j] = mom_c * mom[j] - lr * g[j] / math.sqrt(acc[j] + eps)
            expected[j] += mom[j]
        assert p.detach().tolist() == pytest.approx(expected, rel=1e-12)


def test_adagradm_without_momentum_by_hand():
    p = torch.nn.Parameter(torch.tensor([3.0], dtype=torch.float64))
    opt = AdagradM([p], lr=0.2, momentum=0.0, eps=1e-6)
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()
    assert p.item() == pytest.approx(3.0 - 0.2 * 2.0 / math.sqrt(4.0 + 1e-6), rel=1e-12)


def test_adagradm_sparse_rows_by_hand():
    lr, mom_c, eps = 0.3, 0.4, 1e-6
    emb = torch.nn.Embedding(5, 2, sparse=True).double()
    with torch.no_grad():
        emb.weight.copy_(torch.arange(10, dtype=torch.float64).view(5, 2))
    start = emb.weight.detach().clone()
    opt = AdagradM(emb.parameters(), lr=lr, momentum=mom_c, eps=eps)

    def step(idx, coef):
        opt.zero_grad()
        (emb(torch.tensor(idx)) * torch.tensor(coef, dtype=torch.float64)).sum().backward()
        assert emb.weight.grad.is_sparse
        opt.step()

    # step 1 touches rows 1 (twice: gradients add up) and 3
    step([1, 3, 1], [[1.0, -2.0], [0.5, 0.5], [1.0, 1.0]])
    g1 = {1: [2.0, -1.0], 3: [0.5, 0.5]}
    acc = {r: [x * x for x in g] for r, g in g1.items()}
    mom = {r: [-lr * g[j] / math.sqrt(acc[r][j] + eps) for j in range(2)] for r, g in g1.items()}
    want = start.clone()
    for r in g1:
        want[r] += torch.tensor(mom[r], dtype=torch.float64)
    assert torch.allclose(emb.weight.detach(), want, rtol=0, atol=1e-12)
    # step 2 touches row 3 only: row 1 keeps its momentum but must not move
    step([3], [[-1.0, 2.0]])
    g2 = [-1.0, 2.0]
    for j in range(2):
        acc[3][j] += g2[j] ** 2
        mom[3][j] = mom_c * mom[3][j] - lr * g2[j] / math.sqrt(acc[3][j] + eps)
    want[3] += torch.tensor(mom[3], dtype=torch.float64)
    assert torch.allclose(emb.weight.detach(), want, rtol=0, atol=1e-12)
    for r in (0, 2, 4):  # never touched
        assert torch.equal(emb.weight[r].detach(), start[r])
    state = opt.state[emb.weight]
    assert state["acc"][1].tolist() == pytest.approx([4.0, 1.0])  # unchanged by step 2
    assert state["acc"][0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    ("rows", "values"),
    [([1, 3], [[2.0, -1.0], [0.5, 0.5]]), ([3, 1], [[0.5, 0.5], [2.0, -1.0]]),
     ([1, 3, 1], [[1.0, -2.0], [0.5, 0.5], [1.0, 1.0]])],
    ids=["sorted-unique-unflagged", "unsorted", "repeated"],
)  # fmt: skip
def test_adagradm_sparse_gradient_layouts(rows, values):
    """A sparse gradient reaches the update as one value per row however its rows are laid out:
    sorted unique rows without the coalesced flag (how autograd hands GRU4Rec's over; no sort
    needed), unsorted rows, repeated rows (summed)."""
    lr, eps = 0.3, 1e-6
    p = torch.nn.Parameter(torch.arange(10, dtype=torch.float64).view(5, 2))
    opt = AdagradM([p], lr=lr, momentum=0.4, eps=eps)
    grad = torch.sparse_coo_tensor(torch.tensor([rows]), torch.tensor(values, dtype=torch.float64), (5, 2), check_invariants=True)
    assert not grad.is_coalesced()
    p.grad = grad
    opt.step()
    want = torch.arange(10, dtype=torch.float64).view(5, 2)
    for r, g in {1: [2.0, -1.0], 3: [0.5, 0.5]}.items():
        want[r] -= torch.tensor([lr * x / math.sqrt(x * x + eps) for x in g], dtype=torch.float64)
    assert torch.allclose(p.detach(), want, rtol=0, atol=1e-12)
    assert opt.state[p]["acc"][1].tolist() == [4.0, 1.0] and opt.state[p]["acc"][3].tolist() == [0.25, 0.25]


def test_adagradm_rejects_bad_settings():
    p = torch.nn.Parameter(torch.zeros(1))
    with pytest.raises(ValueError):
        AdagradM([p], lr=0.0)
    with pytest.raises(ValueError):
        AdagradM([p], momentum=-0.1)


def _adagradm_run(use_numba, compiled: bool, momentum: float, dtype=torch.float32) -> list[torch.Tensor]:
    """Six steps of AdagradM over a sparse embedding (rows repeated within a step, so some
    gradients need summing) and a dense layer; the parameters after them."""
    use_numba(compiled)
    assert (kernels.compiled() is not None) == compiled
    torch.manual_seed(3)
    emb = torch.nn.Embedding(40, 5, sparse=True).to(dtype)
    lin = torch.nn.Linear(5, 3).to(dtype)
    params = [*emb.parameters(), *lin.parameters()]
    opt = AdagradM(params, lr=0.2, momentum=momentum, eps=1e-6)
    gen = torch.Generator().manual_seed(4)
    for _ in range(6):
        opt.zero_grad()
        lin(emb(torch.randint(0, 40, (16,), generator=gen))).pow(2).sum().backward()
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("momentum", [0.0, 0.3])
def test_compiled_adagradm_equals_the_torch_path_bit_for_bit(use_numba, momentum):
    """The compiled kernels (seqrec_cli/kernels.py, numba) and the torch operations give the same
    float32 parameters, sparse rows and dense layer alike, so results never depend on whether numba
    is there; in float64 they agree to rounding."""
    pytest.importorskip("numba")
    compiled = _adagradm_run(use_numba, True, momentum)
    plain = _adagradm_run(use_numba, False, momentum)
    for a, b in zip(compiled, plain):
        assert torch.equal(a, b)
    compiled = _adagradm_run(use_numba, True, momentum, torch.float64)
    plain = _adagradm_run(use_numba, False, momentum, torch.float64)
    for a, b in zip(compiled, plain):
        assert torch.allclose(a, b, rtol=1e-14, atol=0)


def test_sqrt_rounded_is_the_ieee_square_root():
    """AdagradM's square root in float32 is the correctly rounded one (numpy's, the compiled
    kernels'), on ordinary values and across whole binades of consecutive floats."""
    rng = np.random.default_rng(0)
    values = [np.exp(rng.uniform(-30, 30, 200_000)).astype(np.float32)]
    for start in (0x3F800000, 0x40000000, 0x358637BD):  # [1, 2), [2, 4), around 1e-6 (the eps)
        values.append(np.arange(start, start + (1 << 20), dtype=np.uint32).view(np.float32))
    x = np.concatenate(values)
    got = sqrt_rounded(torch.from_numpy(x.copy())).numpy()
    assert np.array_equal(got, np.sqrt(x))


@pytest.mark.parametrize("n_values", [50, 100_000], ids=["scan", "sort"])
def test_compiled_unique_rows_equal_torch_unique(use_numba, n_values):
    """The rows a step touches and each candidate's place among them, as torch.unique(sorted=True,
    return_inverse=True) gives them: by a scan of the catalogue (small) or a sort (large)."""
    pytest.importorskip("numba")
    use_numba(True)
    assert kernels.compiled() is not None
    unique = kernels.UniqueRows(n_values)
    gen = torch.Generator().manual_seed(5)
    for size in (1, 7, 300, 2112):
        values = torch.randint(0, n_values, (size,), generator=gen)
        values[: size // 3] = values[size // 3 : 2 * (size // 3)]  # repeats for sure
        rows, inverse = unique(values)
        want_rows, want_inverse = torch.unique(values, sorted=True, return_inverse=True)
        assert torch.equal(rows, want_rows) and torch.equal(inverse, want_inverse)
    assert (unique._mark == -1).all()  # the scratch is clean for the next step
    with pytest.raises(IndexError):
        unique(torch.tensor([1, n_values]))


def test_compiled_negative_sampling_equals_searchsorted(use_numba):
    """Popularity-sampled negatives: the compiled guide-table search draws exactly the items of
    torch.searchsorted (the same uniform numbers, the same first cdf entry above each), including
    items of zero weight (never drawn) and draws on the guide table's bucket edges."""
    pytest.importorskip("numba")
    counts = np.array([0, 5, 0, 1, 100, 0, 3, 40, 2, 0, 0, 7], dtype=np.float64)
    draws = {}
    for on in (True, False):
        use_numba(on)
        sampler = PopularitySampler(counts, 64, 0.5, torch.Generator().manual_seed(6), cache_events=64 * 500)
        draws[on] = torch.stack([sampler.draw() for _ in range(700)])  # two refills
    assert torch.equal(draws[True], draws[False])
    assert set(draws[True].unique().tolist()) == {1, 3, 4, 6, 7, 8, 11}
    use_numba(True)
    compiled = kernels.compiled()
    cdf = np.cumsum(counts) / counts.sum()
    cdf[-1] = 1.0
    guide = kernels.cdf_guide(cdf)
    u = np.concatenate([cdf[:-1], np.arange(len(cdf)) / len(cdf), np.nextafter(cdf[:-1], 0), [0.0, np.nextafter(1.0, 0)]])
    out = np.empty(len(u), dtype=np.int64)
    compiled.guided_search(cdf, guide, u, out)
    want = torch.searchsorted(torch.from_numpy(cdf), torch.from_numpy(u), right=True).clamp_(max=len(cdf) - 1)
    assert out.tolist() == want.tolist()


def test_compiled_and_plain_training_give_the_same_model(runner, workdir, tiny_data, use_numba):
    """seqrec train gru4rec with the compiled optimizer kernels and with SEQREC_NUMBA=0: the same
    losses and the same weights, bit for bit."""
    pytest.importorskip("numba")
    runs = {}
    for name, on in (("compiled", True), ("plain", False)):
        use_numba(on)
        result = invoke(
            runner, "train", "gru4rec", "--train-dir", tiny_data, "--model-dir", name, "--epochs", "2",
            "--hidden-size", "8", "--n-sample", "16", "--batch-size", "8",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        losses_ = [json.loads(line)["train_loss"] for line in (workdir / name / "metrics.jsonl").read_text().splitlines()
                   if json.loads(line)["event"] == "epoch"]  # fmt: skip
        weights = torch.load(workdir / name / "epoch_2" / "model.pt", weights_only=True)
        runs[name] = (losses_, weights)
    assert runs["compiled"][0] == runs["plain"][0] and len(runs["plain"][0]) == 2
    assert runs["compiled"][1].keys() == runs["plain"][1].keys()
    for key, value in runs["plain"][1].items():
        assert torch.equal(runs["compiled"][1][key], value), key


# ---------------------------------------------------------------------------------------------- negative sampling
def test_popularity_counts():
    counts = popularity(np.array([1, 3, 3, 2, 3]), 4)
    assert counts.tolist() == [0, 1, 1, 3, 0]


def test_popularity_sampler_follows_counts_to_the_alpha():
    counts = np.array([0.0, 1.0, 4.0, 0.0, 16.0, 9.0])  # item 3 never seen: never drawn
    gen = torch.Generator().manual_seed(0)
    sampler = PopularitySampler(counts, n_sample=1000, alpha=0.5, generator=gen, cache_events=20_000)
    draws = torch.cat([sampler.draw() for _ in range(40)]).numpy()  # 2 refills of 20 blocks
    assert draws.shape == (40_000,)
    assert not np.isin(draws, [0, 3]).any()
    share = np.bincount(draws, minlength=6) / len(draws)
    # weights sqrt(counts) = 1, 2, 4, 3 over items 1, 2, 4, 5 -> 0.1, 0.2, 0.4, 0.3
    assert share[[1, 2, 4, 5]] == pytest.approx([0.1, 0.2, 0.4, 0.3], abs=0.015)


def test_popularity_sampler_epoch_draws_depend_only_on_the_generator_state():
    counts = np.arange(11, dtype=float)
    gen = torch.Generator().manual_seed(5)
    sampler = PopularitySampler(counts, 8, 0.75, gen, cache_events=8 * 3)
    sampler.draw()
    saved = gen.get_state()  # what a checkpoint stores at an epoch boundary
    sampler.new_epoch()
    first = [sampler.draw() for _ in range(5)]  # crosses a refill
    gen2 = torch.Generator()
    gen2.set_state(saved)
    resumed = PopularitySampler(counts, 8, 0.75, gen2, cache_events=8 * 3)
    assert all(torch.equal(a, b) for a, b in zip(first, [resumed.draw() for _ in range(5)]))


# ---------------------------------------------------------------------------------------------- hidden-state resets
N_ITEMS = 12
A = [1, 2, 3, 4, 5]
B = [6, 7, 8, 9]
C = [10, 11]
D = [12, 1, 7]
E = [3, 3, 3, 3, 3, 3]


def _model(seed=0, **kw) -> GRU4Rec:
    torch.manual_seed(seed)
    cfg = dict(n_items=N_ITEMS, hidden_size=8, dropout_hidden=0.0, dropout_embed=0.0)
    cfg.update(kw)
    model = GRU4Rec(GRU4RecConfig(**cfg))
    model.eval()
    return model


def _scores(model, lists, mode="all", batch_size=1) -> dict[tuple[int, int], torch.Tensor]:
    """(session, target position) -> scores [V]."""
    seqs = Sequences.from_lists(lists)
    out = {}
    for batch in score_batches(model, seqs, mode, batch_size):
        for i in range(len(batch.rows)):
            key = (int(batch.rows[i]), int(batch.target_pos[i]))
            assert key not in out
            out[key] = batch.scores[i]
    return out


def _manual_scores(model, seq, hidden=None) -> list[torch.Tensor]:
    """Scores after each input of seq, stepping the model by hand from ``hidden`` (zeros if None)."""
    h = model.init_hidden(1, torch.device("cpu")) if hidden is None else hidden
    out = []
    with torch.no_grad():
        for item in seq:
            o, h = model.step(torch.tensor([item]), h)
            out.append(model.score_all(o)[0])
    return out, h


@pytest.mark.parametrize("input_mode", ["shared", "embedding", "onehot"])
def test_scoring_resets_the_hidden_state_between_sessions(input_mode):
    kw = {"shared": {}, "embedding": {"shared_embedding": False, "embedding_size": 6},
          "onehot": {"shared_embedding": False, "embedding_size": 0}}[input_mode]  # fmt: skip
    model = _model(num_layers=2, **kw)
    alone = _scores(model, [B])
    after_a = _scores(model, [A, B])  # batch size 1: B follows A in the same slot
    for pos in range(1, len(B)):
        assert torch.allclose(after_a[(1, pos)], alone[(0, pos)], atol=1e-6), f"B position {pos} saw A's state"
    # the same scores as stepping B by hand from a zero state
    manual, _ = _manual_scores(model, B)
    for pos in range(1, len(B)):
        assert torch.allclose(alone[(0, pos)], manual[pos - 1], atol=1e-6)
    # and the check is sensitive: carrying A's state into B gives different scores
    _, h_a = _manual_scores(model, A)
    leaked, _ = _manual_scores(model, B, h_a)
    assert not torch.allclose(leaked[0], manual[0], atol=1e-3)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7])
def test_scoring_in_a_batch_equals_scoring_each_session_alone(batch_size):
    """Slots that refill, rows that are dropped: every prediction equals its session scored alone."""
    model = _model()
    sessions = [A, [4], B, C, D, E, [9]]
    together = _scores(model, sessions, batch_size=batch_size)
    expected_keys = {(s, p) for s, seq in enumerate(sessions) for p in range(1, len(seq))}
    assert set(together) == expected_keys
    for s, seq in enumerate(sessions):
        if len(seq) < 2:
            continue
        alone = _scores(model, [seq])
        for p in range(1, len(seq)):
            assert torch.allclose(together[(s, p)], alone[(0, p)], atol=1e-5), (s, p)


def test_scoring_modes_last_and_next():
    model = _model()
    sessions = [A, [4], B, C]
    every = _scores(model, sessions, "all", batch_size=2)
    last = _scores(model, sessions, "last", batch_size=2)
    assert set(last) == {(0, 4), (2, 3), (3, 1)}
    for key, value in last.items():
        assert torch.allclose(value, every[key], atol=1e-6)
    seqs = Sequences.from_lists(sessions)
    nxt = list(score_batches(model, seqs, "next", 2))
    rows = np.concatenate([b.rows for b in nxt])
    assert sorted(rows.tolist()) == [0, 1, 2, 3]
    assert all((b.targets == 0).all() for b in nxt)
    for b in nxt:
        for i, r in enumerate(b.rows):
            assert b.target_pos[i] == len(sessions[r])  # history = the whole session
            manual, _ = _manual_scores(model, sessions[r])
            assert torch.allclose(b.scores[i], manual[-1], atol=1e-5)
    assert all(torch.isinf(b.scores[:, 0]).all() for b in nxt)  # padding never recommended


def _setup(tmp_path: Path, sessions, batch_size, loss):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(f"item{i}\n" for i in range(1, N_ITEMS + 1)), encoding="utf-8")
    formats.save_processed(
        tmp_path / "data",
        dataset="toy",
        eval_target="all",
        vocab_file=vocab,
        splits={"train": Sequences.from_lists(sessions), "test": Sequences.from_lists(sessions)},
    )
    data = formats.load_processed(tmp_path / "data")
    torch.manual_seed(0)
    mc = GRU4RecConfig(n_items=N_ITEMS, hidden_size=8, num_layers=2, dropout_hidden=0.0, loss=loss)
    tc = GRU4RecTrainConfig(batch_size=batch_size, session_order="file", n_sample=4)
    model = GRU4Rec(mc)
    return model, SessionParallelBatcher(data, mc, tc, torch.device("cpu")), tc


@pytest.mark.parametrize("loss", ["sampled-ce", "ce"])
@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_training_resets_the_hidden_state_between_sessions(tmp_path, monkeypatch, batch_size, loss):
    """Record the hidden state each training step feeds the GRU: rows that start a session get
    zeros; every other row gets exactly the state its own session left at the previous step."""
    sessions = [A, B, [4], C, D, E]
    model, batcher, tc = _setup(tmp_path, sessions, batch_size, loss)
    fed: list[torch.Tensor] = []
    returned: list[torch.Tensor] = []
    real_step = model.step

    def recording_step(inputs, hidden, emb=None):
        out, new_hidden = real_step(inputs, hidden, emb)
        fed.append(hidden.detach().clone())
        returned.append(new_hidden.detach().clone())
        return out, new_hidden

    monkeypatch.setattr(model, "step", recording_step)
    optimizer, _ = model.configure_optimizers(tc, 100)
    model.train()
    steps = []
    for epoch in range(2):  # the second epoch must start from zeros too, not from epoch 1's last state
        model.reset_state()  # what the training loop does at every epoch start
        for step in batcher.epoch_batches():
            out = model(to_device(step, torch.device("cpu")))
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
            steps.append((epoch, step))
    assert len(fed) == len(steps)
    continued = 0
    for k, (epoch, step) in enumerate(steps):
        h = fed[k]  # [L, b, H]
        assert h.shape[1] == len(step.inputs)
        first_of_epoch = k == 0 or steps[k - 1][0] != epoch
        prev = None if first_of_epoch else returned[k - 1]
        if prev is not None and step.keep is not None:
            prev = prev[:, torch.from_numpy(step.keep)]
        for i in range(len(step.inputs)):
            if step.reset[i] or first_of_epoch:
                assert step.positions[i] == 0
                assert torch.count_nonzero(h[:, i]) == 0, f"step {k} row {i}: a new session got a non-zero state"
            else:
                assert torch.equal(h[:, i], prev[:, i]), f"step {k} row {i}: not its own session's state"
                assert torch.count_nonzero(h[:, i]) > 0
                continued += 1
    assert continued > 0
    # sessions start in file order in each epoch: A, B, C, D, E (the single-event one is skipped)
    starts = [int(step.rows[i]) for _, step in steps for i in np.flatnonzero(step.reset)]
    assert starts == [0, 1, 3, 4, 5] * 2


@pytest.mark.parametrize("input_mode", ["shared", "embedding"])
def test_sampled_loss_and_gradients_equal_plain_embedding_lookups(tmp_path, input_mode):
    """forward() gathers each touched output row once (one coalesced sparse gradient); the loss and
    every gradient must equal those of plain sparse nn.Embedding lookups of the same rows."""
    kw = {} if input_mode == "shared" else {"shared_embedding": False, "embedding_size": 6}
    model, batcher, _ = _setup(tmp_path, [A, B, C, D, E], 3, "sampled-ce")
    model = GRU4Rec(GRU4RecConfig(n_items=N_ITEMS, hidden_size=8, dropout_hidden=0.0, loss="sampled-ce", **kw))
    for step in list(batcher.epoch_batches())[:3]:
        b = to_device(step, torch.device("cpu"))
        hidden = model.hidden
        model.zero_grad()
        out = model(b)
        out.loss.backward()
        after = model.hidden
        got = {n: (p.grad.to_dense() if p.grad.is_sparse else p.grad).clone() for n, p in model.named_parameters() if p.grad is not None}
        # the reference: the same step through plain lookups, from the same hidden state
        model.zero_grad()
        model.hidden = hidden
        h = model.init_hidden(len(b.inputs), torch.device("cpu")) if hidden is None else hidden
        if hidden is not None:
            if b.keep is not None:
                h = h[:, b.keep]
            h = h.masked_fill(b.reset.view(1, -1, 1), 0.0)
        o, _ = model.step(b.inputs, h)
        cands = torch.cat([b.targets, b.negatives])
        ref = losses.sampled_softmax_ce(model.score_candidates(o, cands), model.config.logq * b.log_q) / b.slots
        ref.backward()
        assert torch.allclose(out.loss, ref, atol=1e-6)
        for n, p in model.named_parameters():
            if n in got:
                g = p.grad.to_dense() if p.grad.is_sparse else p.grad
                assert torch.allclose(got[n], g, atol=1e-6), n
        model.hidden = after  # walk on from forward()'s state


# ---------------------------------------------------------------------------------------------- through the CLI
def _synthetic_sessions(rng, perm, n_items, n_sessions):
    """Next item = perm[current] with probability 0.8, else a uniformly random item."""
    out = []
    for _ in range(n_sessions):
        seq = [int(rng.integers(1, n_items + 1))]
        for _ in range(int(rng.integers(3, 11)) - 1):
            seq.append(int(perm[seq[-1]]) if rng.random() < 0.8 else int(rng.integers(1, n_items + 1)))
        out.append(seq)
    return out


def _write_synthetic(folder: Path, n_items=60, n_train=1500, n_test=300, seed=0):
    rng = np.random.default_rng(seed)
    perm = np.concatenate([[0], rng.permutation(n_items) + 1])
    train = _synthetic_sessions(rng, perm, n_items, n_train)
    test = _synthetic_sessions(rng, perm, n_items, n_test)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = folder / "vocab.txt"
    vocab.write_text("".join(f"i{i}\n" for i in range(1, n_items + 1)), encoding="utf-8")
    formats.save_processed(
        folder / "data",
        dataset="synthetic",
        eval_target="all",
        vocab_file=vocab,
        splits={"train": Sequences.from_lists(train), "test": Sequences.from_lists(test)},
    )
    return folder / "data", train, test


def test_gru4rec_learns_sequential_structure(runner, workdir):
    data_dir, train, test = _write_synthetic(workdir / "syn")
    result = invoke(
        runner, "train", "gru4rec", "--train-dir", data_dir, "--model-dir", "m", "--epochs", "1",
        "--n-sample", "32", "--hidden-size", "32", "--batch-size", "32", "--lr", "0.1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = invoke(runner, "evaluate", "--model-dir", "m", "--output-json", "eval.json")
    assert result.exit_code == 0, result.output
    assert "protocol: full ranking over all 60 items; every position of every line" in result.stdout
    report = json.loads((workdir / "eval.json").read_text())
    assert report["protocol"] == "full"
    assert report["predictions"] == sum(len(s) - 1 for s in test)
    model_recall = report["metrics"]["recall@20"]
    # the popularity baseline: the 20 most frequent training items, for every prediction
    counts = np.bincount(np.concatenate(train), minlength=61)[1:]
    top20 = set((np.argsort(-counts, kind="stable")[:20] + 1).tolist())
    pop_recall = float(np.mean([t in top20 for s in test for t in s[1:]]))
    assert 0.2 < pop_recall < 0.5, pop_recall  # the data is as intended: popularity alone is weak
    assert model_recall > pop_recall + 0.3, (model_recall, pop_recall)
    assert model_recall > 2 * pop_recall, (model_recall, pop_recall)
    assert report["metrics"]["mrr@20"] > 0.5


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    data_dir, _, _ = _write_synthetic(tmp_path_factory.mktemp("tiny"), n_items=30, n_train=120, n_test=30, seed=1)
    return data_dir


OPTION_SETS = {
    "ce": ["--loss", "ce"],
    "sampled-ce": ["--loss", "sampled-ce"],
    "sampled-ce-no-logq": ["--loss", "sampled-ce", "--logq", "0"],
    "sampled-ce-no-extra-negatives": ["--loss", "sampled-ce", "--n-sample", "0"],
    "bpr-max": ["--loss", "bpr-max"],
    "bpr-max-elu": ["--loss", "bpr-max", "--elu-param", "0.5"],
    "bpr": ["--loss", "bpr"],
    "adam": ["--optimizer", "adam"],
    "separate-embedding": ["--no-shared-embedding", "--embedding-size", "16"],
    "one-hot": ["--no-shared-embedding", "--embedding-size", "0"],
    "two-layers": ["--layers", "2"],
    "one-hot-two-layers-adam": ["--no-shared-embedding", "--embedding-size", "0", "--layers", "2", "--optimizer", "adam"],
    "file-order": ["--session-order", "file", "--dropout-embed", "0.2"],
}


@pytest.mark.parametrize("options", list(OPTION_SETS.values()), ids=list(OPTION_SETS))
def test_every_option_trains_and_evaluates(runner, workdir, tiny_data, options):
    result = invoke(
        runner, "train", "gru4rec", "--train-dir", tiny_data, "--epochs", "1", "--hidden-size", "8",
        "--n-sample", "16", "--batch-size", "8", *options,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads((workdir / "model_output" / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["event"] == "epoch" and math.isfinite(record["train_loss"])
    cfg = json.loads((workdir / "model_output" / "epoch_1" / "config.json").read_text())
    if "--no-shared-embedding" in options:
        assert cfg["model_config"]["shared_embedding"] is False
    # the checkpoint rebuilds its model alone and scores the test split
    result = invoke(runner, "evaluate", "--output-json", "e.json")
    assert result.exit_code == 0, result.output
    assert 0.0 <= json.loads((workdir / "e.json").read_text())["metrics"]["recall@20"] <= 1.0


@pytest.mark.parametrize(
    ("options", "option", "choices"),
    [
        (["--loss", "hinge"], "--loss", ("ce", "sampled-ce", "bpr-max", "bpr")),
        (["--optimizer", "sgd"], "--optimizer", ("adagrad", "adam")),
        (["--session-order", "random"], "--session-order", ("shuffle", "file")),
    ],
)
def test_bad_choices_are_usage_errors_before_any_data_is_read(runner, workdir, options, option, choices):
    result = invoke(runner, "train", "gru4rec", "--train-dir", "no/such/folder", "--epochs", "1", *options)
    usage_error(result, option, *choices)
