"""SASRec: the causal mask, right padding, the three losses against hand formulas, the causal
windows, and learning on the bundled sample through the real CLI (docs/protocols.md §7)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, invoke

from seqrec_cli import formats
from seqrec_cli.data.history import HistoryBatch
from seqrec_cli.data.sasrec import CausalBatch, CausalWindowBatcher
from seqrec_cli.models import REGISTRY
from seqrec_cli.models.sasrec import SASRec
from seqrec_cli.models.sasrec_config import SASRecConfig, SASRecTrainConfig
from seqrec_cli.scoring import score_batches
from seqrec_cli.sequences import Sequences

SAMPLE = REPO / "data" / "sample"
ENTRY = REGISTRY["sasrec"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(n_items=30, max_len=12, seed=0, **kw) -> SASRec:
    torch.manual_seed(seed)
    cfg = dict(n_items=n_items, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=24, max_len=max_len)
    cfg.update(kw)
    return SASRec(SASRecConfig(**cfg)).eval()


# ---------------------------------------------------------------------------------------------- the model
BLOCKS = pytest.mark.parametrize("block", ["pre-ln", "original", "from-end"])  # from-end: pre-ln, positions from the end


def tiny_as(block: str, **kw) -> SASRec:
    return tiny(positions="from-end", **kw) if block == "from-end" else tiny(block=block, **kw)


@BLOCKS
def test_changing_a_later_item_never_changes_an_earlier_position(block):
    """The causal mask: position t sees items 0..t only."""
    model = tiny_as(block)
    seq = torch.tensor([[3, 7, 1, 9, 22, 5, 14, 2]])
    base = model.encode(seq)[0]
    for t in range(seq.shape[1]):
        changed = seq.clone()
        changed[0, t] = (changed[0, t] % 30) + 1
        out = model.encode(changed)[0]
        assert torch.allclose(out[:t], base[:t], atol=1e-6), f"changing position {t} moved an earlier one"
        assert not torch.allclose(out[t], base[t], atol=1e-4), f"position {t} ignores its own item"


@BLOCKS
def test_right_padding_does_not_change_the_scores(block):
    model = tiny_as(block, hidden_dropout=0.3, attention_dropout=0.3)  # eval mode: no dropout
    seq = [4, 9, 2, 2, 17, 30]
    ref = model.encode(torch.tensor([seq]))[0]
    for width in (7, 12):
        out = model.encode(torch.tensor([seq + [0] * (width - len(seq))]))[0, : len(seq)]
        assert torch.allclose(out, ref, atol=1e-5), width
    batch = HistoryBatch(
        torch.tensor([seq + [0] * 4, [5] * 10]), torch.tensor([6, 10]), np.zeros(2, np.int64), np.arange(2), np.full(2, 6)
    )
    scores = model.score(batch)
    assert scores.shape == (2, 31) and torch.isneginf(scores[:, 0]).all()
    assert torch.allclose(scores[0, 1:], ref[-1] @ model.item_embedding.weight[1:].T, atol=1e-5)


@BLOCKS
def test_scoring_runs_the_last_block_for_the_last_position_only_with_the_same_result(block):
    model = tiny_as(block, num_layers=3)
    lengths = torch.tensor([12, 1, 5, 11])
    items = torch.randint(1, 31, (4, 12), generator=torch.Generator().manual_seed(1))
    for row, n in enumerate(lengths):
        items[row, n:] = 0
    everywhere = model.encode(items)  # [B, T, H]: every position through every block
    expected_states = everywhere[torch.arange(4), lengths - 1]
    last = model.encode(items, last=lengths - 1)
    assert last.shape == (4, 1, 16)
    assert torch.allclose(last[:, 0], expected_states, atol=1e-5)
    expected = expected_states @ model.item_embedding.weight.T
    scores = model.score_histories(items, lengths)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.allclose(scores[:, 1:], expected[:, 1:], atol=1e-5)


def test_original_block_by_hand():
    """--block original: q = LN1(x), keys and values from x, x = q + Attn, y = LN2(x), y + FFN(y)
    (Kang & McAuley's code), written out with explicit causal softmax attention."""
    model = tiny(num_layers=1, num_heads=1, block="original")
    blk = model.blocks[0]
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(3))
    h = 16
    q_in = F.layer_norm(x, (h,), blk.norm1.weight, blk.norm1.bias, eps=1e-8)
    w, b = blk.qkv.weight, blk.qkv.bias
    q, k, v = q_in @ w[:h].T + b[:h], x @ w[h : 2 * h].T + b[h : 2 * h], x @ w[2 * h :].T + b[2 * h :]
    att = (q @ k.transpose(1, 2)) / math.sqrt(h)
    att = att.masked_fill(torch.triu(torch.ones(5, 5, dtype=torch.bool), 1), float("-inf")).softmax(-1)
    y = F.layer_norm(q_in + blk.out(att @ v), (h,), blk.norm2.weight, blk.norm2.bias, eps=1e-8)
    expected = y + blk.ff2(F.relu(blk.ff1(y)))
    assert torch.allclose(blk(x), expected, atol=1e-5)
    pre = tiny(num_layers=1, num_heads=1)  # same weights (same seed), the other wiring: a different function
    assert not torch.allclose(pre.blocks[0](x), expected, atol=1e-3)


def test_positions_from_end_give_the_most_recent_item_position_zero():
    """--positions from-end: in a full row (max_len items) position t gets embedding max_len - 1 - t,
    so it equals the from-start model with its position table reversed; a shorter history gets
    0 at its last item, whatever the padding after it."""
    end = tiny(positions="from-end", max_len=6)
    start = tiny(max_len=6)
    start.load_state_dict(end.state_dict())
    with torch.no_grad():
        start.position_embedding.weight.copy_(end.position_embedding.weight.flip(0))
    full = torch.tensor([[4, 9, 2, 7, 1, 30]])
    assert torch.allclose(end.encode(full), start.encode(full), atol=1e-6)
    assert not torch.allclose(end.encode(full), tiny(max_len=6).encode(full), atol=1e-3)
    alone = end.score_histories(torch.tensor([[4, 9, 2]]), torch.tensor([3]))
    padded = end.score_histories(torch.tensor([[4, 9, 2, 0, 0, 0]]), torch.tensor([3]))
    assert torch.allclose(alone, padded, atol=1e-5)


def test_output_embedding_is_tied_and_padding_is_zero():
    model = tiny(n_items=40)
    assert (model.item_embedding.weight[0] == 0).all()
    big = [n for n, p in model.named_parameters() if p.ndim == 2 and p.shape[0] == 41]
    assert big == ["item_embedding.weight"]


def _chunk(inputs, targets, negatives=None):
    t = (torch.tensor(inputs), torch.tensor(targets))
    return t + ((torch.tensor(negatives),) if negatives is not None else ())


INPUTS = [[3, 7, 1, 9], [5, 2, 0, 0]]
TARGETS = [[7, 1, 9, 4], [2, 8, 0, 0]]


def _states(model):
    """Final states of the 6 target positions, in row-major order, and their targets."""
    h = model.encode(torch.tensor(INPUTS))
    sel = torch.tensor(TARGETS) > 0
    return h[sel], torch.tensor(TARGETS)[sel]


def test_full_cross_entropy_by_hand():
    model = tiny(loss="ce", label_smoothing=0.0)  # the plain cross-entropy (smoothing: tests/test_losses.py)
    with torch.no_grad():
        h, y = _states(model)
        logp = torch.log_softmax(h @ model.item_embedding.weight[1:].T, dim=-1)  # items 1..N only
        expected = -logp[torch.arange(len(y)), y - 1].mean()
        out = model(CausalBatch([_chunk(INPUTS, TARGETS)], None))
    assert out.n_targets == 6 and torch.allclose(out.loss, expected, atol=1e-6)


def test_sampled_cross_entropy_removes_accidental_hits():
    model = tiny(loss="sampled-ce")
    negatives = torch.tensor([1, 11, 12, 13])  # 1 is the target of one position: it must not count
    with torch.no_grad():
        h, y = _states(model)
        w = model.item_embedding.weight
        total = 0.0
        for i in range(len(y)):
            cands = [int(y[i])] + [int(n) for n in negatives if n != y[i]]
            logits = h[i] @ w[cands].T
            total += float(-torch.log_softmax(logits, dim=0)[0])
        out = model(CausalBatch([_chunk(INPUTS, TARGETS)], negatives))
    assert out.loss.item() == pytest.approx(total / len(y), rel=1e-5)


def test_bce_with_one_negative_per_position_by_hand():
    model = tiny(loss="bce")
    negs = [[11, 12, 9, 13], [14, 15, 0, 0]]  # the third position's negative equals its target: no negative term
    with torch.no_grad():
        h, y = _states(model)
        w = model.item_embedding.weight
        n = torch.tensor(negs)[torch.tensor(TARGETS) > 0]
        pos = (h * w[y]).sum(-1)
        neg = (h * w[n]).sum(-1)
        expected = (-F.logsigmoid(pos)).sum() + (-F.logsigmoid(-neg)).masked_fill(n == y, 0.0).sum()
        out = model(CausalBatch([_chunk(INPUTS, TARGETS, negs)], None))
    assert out.loss.item() == pytest.approx(float(expected) / 6, rel=1e-5)


def test_one_batch_in_chunks_has_the_whole_batch_loss():
    model = tiny()
    whole = model(CausalBatch([_chunk(INPUTS, TARGETS)], None))
    split = model(CausalBatch([_chunk(INPUTS[:1], TARGETS[:1]), _chunk([[5, 2]], [[2, 8]])], None))
    assert whole.n_targets == split.n_targets == 6
    assert torch.allclose(whole.loss, split.loss, atol=1e-6)


# ---------------------------------------------------------------------------------------------- the windows
def _data(tmp_path, train_lists, n_items=30):
    vocab = tmp_path / "vocab.txt"
    formats.write_vocab(vocab, [f"i{i}" for i in range(1, n_items + 1)])
    seqs = Sequences.from_lists(train_lists)
    formats.save_processed(tmp_path / "d", dataset="toy", eval_target="all", vocab_file=vocab, splits={"train": seqs, "test": seqs})
    return formats.load_processed(tmp_path / "d")


def test_every_transition_is_a_target_exactly_once(tmp_path):
    rng = np.random.default_rng(0)
    lists = [rng.integers(1, 31, size=n).tolist() for n in (1, 2, 5, 12, 13, 30, 31)]
    data = _data(tmp_path, lists)
    b = CausalWindowBatcher(data, SASRecConfig(n_items=30, max_len=6), SASRecTrainConfig(batch_size=3, max_windows=0), torch.device("cpu"))
    pairs = []
    for batch in b.epoch_batches():
        for inputs, targets in batch.chunks:
            assert (targets[:, : inputs.shape[1]] > 0).sum() == (inputs > 0).sum()  # right-padded alike
            for row_in, row_t in zip(inputs, targets):
                pairs += [(int(a), int(c)) for a, c in zip(row_in, row_t) if c > 0]
    expected = [(s[i], s[i + 1]) for s in lists for i in range(len(s) - 1)]
    assert sorted(pairs) == sorted(expected)
    assert max(w for w in b.inputs.lengths) == 6  # windows of max_len inputs


def test_a_training_file_without_transitions_is_an_error(runner, workdir):
    data = _data(workdir, [[3], [7], [9]])
    result = invoke(runner, "train", "sasrec", "--train-dir", data.folder, "--epochs", 1, "--model-dir", "m")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().endswith("nothing to learn: no training sequence has 2 or more items (SASRec predicts each next item)")
    assert not (workdir / "m").exists()


def test_scoring_reads_the_last_max_len_items(tmp_path):
    model = tiny(max_len=4)
    lists = [[1, 2, 3, 4, 5, 6, 7], [8, 9]]
    batches = list(score_batches(model, ENTRY, Sequences.from_lists(lists), "last", 8))
    got = {int(r): sc for b in batches for r, sc in zip(b.rows, b.scores)}
    with torch.no_grad():
        for r, line in enumerate(lists):
            history = line[:-1][-4:]
            own = model.encode(torch.tensor([history]))[0, -1] @ model.item_embedding.weight[1:].T
            assert torch.allclose(got[r][1:], own, atol=1e-5)


# ---------------------------------------------------------------------------------------------- learning
def test_sasrec_beats_popularity_on_the_sample(runner, workdir):
    ok = invoke(runner, "train", "sasrec", "--train-dir", SAMPLE, "--model-dir", "m", "--epochs", 6, "--max-len", 50,
                "--batch-size", 64, "--lr", "3e-3")  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "sasrec: 2 causal blocks x 1 heads" in ok.stderr
    assert invoke(runner, "evaluate", "--model-dir", "m", "--filter-seen", "--output-json", "m.json").exit_code == 0
    assert invoke(runner, "evaluate", "--baseline", "popularity", "--test-dir", SAMPLE, "--filter-seen",
                  "--output-json", "p.json").exit_code == 0  # fmt: skip
    model = json.loads((workdir / "m.json").read_text())
    pop = json.loads((workdir / "p.json").read_text())
    assert model["protocol"] == pop["protocol"] == "full+filter-seen" and model["predictions"] == 600
    hr, pop_hr = model["metrics"]["hr@10"], pop["metrics"]["hr@10"]
    assert hr > 3 * pop_hr and hr > pop_hr + 0.3, (hr, pop_hr)
    assert model["metrics"]["ndcg@10"] > 2 * pop["metrics"]["ndcg@10"]
    # infer prints the leave-one-out figures; the checkpoint rebuilds the model alone
    out = invoke(runner, "infer", "--model-dir", "m", "--start-index", 6, "--last-index", 6)
    assert out.exit_code == 0 and "HR@10:" in out.stdout and "NDCG@10:" in out.stdout
    assert math.isfinite(json.loads((workdir / "m" / "epoch_6" / "config.json").read_text())["metrics"]["train_loss"])


def test_block_original_trains_and_a_checkpoint_from_before_the_option_loads_as_pre_ln(runner, workdir):
    """``--block`` is an architecture choice recorded in the checkpoint; a checkpoint written before
    the option existed (no ``block`` key) is read as the pre-LN block it was trained with, and a
    value seqrec does not know is one error naming the file and the key."""
    tiny_run = ["--train-dir", SAMPLE, "--epochs", 1, "--max-len", 20, "--hidden-size", 16, "--batch-size", 64]
    assert invoke(runner, "train", "sasrec", *tiny_run, "--model-dir", "o", "--block", "original").exit_code == 0
    assert json.loads((workdir / "o" / "epoch_1" / "config.json").read_text())["model_config"]["block"] == "original"
    assert invoke(runner, "train", "sasrec", *tiny_run, "--model-dir", "p").exit_code == 0
    figures = {}
    for name in ("o", "p"):
        assert invoke(runner, "evaluate", "--model-dir", name, "--output-json", f"{name}.json").exit_code == 0
        figures[name] = json.loads((workdir / f"{name}.json").read_text())["metrics"]
    assert figures["o"] != figures["p"]  # same seed, same data: the wiring is what differs
    cfg = workdir / "p" / "epoch_1" / "config.json"
    body = json.loads(cfg.read_text())
    del body["model_config"]["block"]  # as written before --block existed (config.json is not checksummed)
    cfg.write_text(json.dumps(body))
    assert invoke(runner, "evaluate", "--model-dir", "p", "--output-json", "old.json").exit_code == 0
    assert json.loads((workdir / "old.json").read_text())["metrics"] == figures["p"]
    body["model_config"]["block"] = "post-ln"
    cfg.write_text(json.dumps(body))
    bad = invoke(runner, "evaluate", "--model-dir", "p")
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    assert "block" in bad.stderr and "one of pre-ln, original" in bad.stderr and "config.json" in bad.stderr
    usage = invoke(runner, "train", "sasrec", *tiny_run, "--model-dir", "q", "--block", "post-ln")
    assert usage.exit_code == 2 and "pre-ln" in usage.output


def test_sasrec_plus_params(runner, workdir):
    """The published SASRec+ setting is one flag away; every value of the file reaches the checkpoint."""
    result = invoke(runner, "train", "sasrec", "--train-dir", SAMPLE, "--params", "sasrec_plus", "--epochs", 1, "--max-len", 20)
    assert result.exit_code == 0, result.output
    cfg = json.loads((workdir / "model_output" / "epoch_1" / "config.json").read_text())
    mc, tc = cfg["model_config"], cfg["train_config"]
    assert mc["block"] == "original" and (mc["hidden_size"], mc["num_layers"], mc["num_heads"]) == (64, 2, 1)
    assert mc["hidden_dropout"] == mc["attention_dropout"] == 0.1 and mc["label_smoothing"] == 0.0
    assert (tc["batch_size"], tc["lr"], tc["schedule"], tc["warmup_steps"], tc["max_windows"]) == (128, 1e-3, "constant", 0, 1)
    assert (tc["patience"], tc["valid_every"], tc["valid_filter_seen"]) == (10, 1, True)
    assert tc["epochs"] == 1 and mc["max_len"] == 20  # the command line wins over the file
