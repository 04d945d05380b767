"""BERT4Rec: config files, the model's invariants, the evaluation input, learning on structured
data, and the pretrain -> train -> infer/evaluate chain through the real CLI (docs/protocols.md §2, §4, §5).

Everything runs on the CPU with tiny settings. Torch is pinned to one thread here: on a busy
2-core machine two OpenMP threads spin against other processes and make small steps ~30x slower.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, invoke, usage_error

from seqrec_cli import formats
from seqrec_cli.data.cloze import ClozeBatch
from seqrec_cli.data.history import HistoryBatch
from seqrec_cli.models import REGISTRY
from seqrec_cli.models.bert4rec import Bert4Rec
from seqrec_cli.models.bert4rec_config import Bert4RecConfig
from seqrec_cli.scoring import score_batches as _score_batches
from seqrec_cli.sequences import Sequences

ENTRY = REGISTRY["bert4rec"]


def score_batches(model, seqs, mode, batch_size):
    return _score_batches(model, ENTRY, seqs, mode, batch_size)


def score_last(model, items: torch.Tensor) -> torch.Tensor:
    """Scores [B, V] of the last position of each row (the appended [MASK])."""
    return model.logits(model.encode(items)[:, -1])

SAMPLE = REPO / "data" / "sample"
SAMPLE_ITEMS = 240
TINY = ("--max-len", 50, "--hidden-size", 32, "--intermediate-size", 64)  # small enough for seconds on the sample


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def error_line(result) -> str:
    """The run failed with exit 1 and exactly one ``Error:`` line, the last thing on stderr."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip("\n").splitlines()[-1] == errors[0]
    return errors[0]


def ok(result):
    assert result.exit_code == 0, result.output + (repr(result.exception) if result.exception else "")
    return result


def epoch_records(model_dir: Path) -> list[dict]:
    lines = (Path(model_dir) / formats.METRICS_FILE).read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == "epoch"]


# ================================================================ config files
def bert_json(vocab_size: int, **changes) -> dict:
    """Like the original BERT4Rec's bert_config_ml-1m_64.json."""
    cfg = {
        "attention_probs_dropout_prob": 0.2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.2,
        "hidden_size": 64,
        "initializer_range": 0.02,
        "intermediate_size": 256,
        "max_position_embeddings": 200,
        "num_attention_heads": 2,
        "num_hidden_layers": 2,
        "type_vocab_size": 2,
        "vocab_size": vocab_size,
    }
    cfg.update(changes)
    return cfg


def write_json(path: Path, body) -> Path:
    path.write_text(json.dumps(body, indent=2), encoding="utf-8")
    return path


def train_with_config(runner, path, *extra):
    return invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--config", path, "--epochs", 1, "--model-dir", "m",
                  "--batch-size", 128, *extra)  # fmt: skip


@pytest.mark.parametrize("extra", [4, 2])
def test_bert_json_config_loads(runner, workdir, extra):
    body = bert_json(SAMPLE_ITEMS + extra, max_position_embeddings=20, hidden_size=16, intermediate_size=32,
                     hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.3)  # fmt: skip
    ok(train_with_config(runner, write_json(workdir / "c.json", body)))
    cfg = json.loads((workdir / "m/epoch_1/config.json").read_text(encoding="utf-8"))["model_config"]
    assert cfg == {
        "n_items": SAMPLE_ITEMS, "hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 32,
        "hidden_act": "gelu", "hidden_dropout": 0.2, "attention_dropout": 0.3, "max_len": 20,
        "initializer_range": 0.02, "label_smoothing": 0.1,  # not in a BERT file: the default
    }  # fmt: skip
    weights = torch.load(workdir / "m/epoch_1/model.pt", weights_only=True)
    assert weights["item_embedding.weight"].shape == (SAMPLE_ITEMS + 2, 16)
    assert weights["position_embedding.weight"].shape == (20, 16)


@pytest.mark.parametrize("vocab_size", [SAMPLE_ITEMS, SAMPLE_ITEMS + 1, SAMPLE_ITEMS + 3, SAMPLE_ITEMS + 5, 0])
def test_bert_json_wrong_vocab_size(runner, workdir, vocab_size):
    path = write_json(workdir / "c.json", bert_json(vocab_size))
    line = error_line(train_with_config(runner, "c.json"))
    assert line.startswith(f"Error: c.json: vocab_size {vocab_size} does not match"), line
    assert f"{SAMPLE_ITEMS + 2}" in line and f"{SAMPLE_ITEMS + 4}" in line  # the two accepted values are named
    assert path.is_file() and not (workdir / "m").exists()


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (bert_json(SAMPLE_ITEMS + 4, hidden_size=63), "hidden size 63 is not a multiple of the number of attention heads 2"),
        (bert_json(SAMPLE_ITEMS + 4, hidden_act="swish"), "hidden_act must be one of gelu, relu, got 'swish'"),
        (bert_json(SAMPLE_ITEMS + 4, num_hiden_layers=3), "unknown parameter(s): num_hiden_layers"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bert_json_bad_contents(runner, workdir, body, problem):
    write_json(workdir / "c.json", body)
    line = error_line(train_with_config(runner, "c.json"))
    assert line.startswith("Error: c.json") and problem in line, line


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"num_attention_heads": 0}, "num_attention_heads must be an integer from 1 to 256, got 0"),
        ({"hidden_size": "64"}, "hidden_size must be an integer from 1 to 16384, got '64'"),
        ({"num_hidden_layers": 1.5}, "num_hidden_layers must be an integer from 1 to 64, got 1.5"),
        ({"hidden_dropout_prob": 1.5}, "hidden_dropout_prob must be a number in [0, 1), got 1.5"),
        ({"hidden_size": -4, "num_attention_heads": 2}, "hidden_size must be an integer from 1 to 16384, got -4"),
    ],
    ids=["heads-0", "hidden-str", "layers-float", "dropout-1.5", "hidden-negative"],
)
def test_bert_json_bad_values_are_user_errors(runner, workdir, changes, key):
    write_json(workdir / "c.json", bert_json(SAMPLE_ITEMS + 4, **changes))
    assert error_line(train_with_config(runner, "c.json")) == f"Error: c.json: {key}"
    assert not (workdir / "m").exists()


def test_cli_window_step_larger_than_max_len(runner, workdir):
    result = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--model-dir", "m", "--max-len", 20,
                    "--window-step", 60, "--hidden-size", 16, "--intermediate-size", 32)  # fmt: skip
    assert "--window-step 60 is larger than the max length 20" in error_line(result)
    assert not (workdir / "m").exists()


def test_cli_heads_not_dividing_hidden_size(runner, workdir):
    result = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--model-dir", "m", "--hidden-size", 30, "--heads", 4)
    assert "hidden size 30 is not a multiple of the number of attention heads 4" in error_line(result)
    assert not (workdir / "m").exists()


def test_bert_json_missing_or_not_json(runner, workdir):
    assert error_line(train_with_config(runner, "nope.json")) == "Error: config file not found: nope.json"
    (workdir / "bad.json").write_text('{"hidden_size": 64,\n', encoding="utf-8")
    assert re.search(r"bad\.json:\d+: not valid JSON", error_line(train_with_config(runner, "bad.json")))


def test_cli_config_with_wrong_vocab_size(runner, workdir):
    write_json(workdir / "bad.json", bert_json(SAMPLE_ITEMS + 3))
    result = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--config", "bad.json", "--epochs", 1, "--model-dir", "m")
    line = error_line(result)
    assert line.startswith("Error: bad.json: vocab_size 243 does not match the vocabulary: 240 items need 242")
    assert not (workdir / "m").exists()  # refused before anything was written


# ================================================================ the model
def tiny_model(n_items: int = 30, max_len: int = 16, seed: int = 0, **kw) -> Bert4Rec:
    torch.manual_seed(seed)
    cfg = Bert4RecConfig(n_items=n_items, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, max_len=max_len, **kw)
    return Bert4Rec(cfg).eval()


def test_logits_only_for_selected_positions():
    model = tiny_model()
    items = torch.tensor([[0, 0, 3, 4, 31], [5, 6, 7, 31, 8]])  # 31 = [MASK]
    select = torch.tensor([[False, False, False, False, True], [False, True, False, True, False]])
    hidden = model.encode(items)
    logits = model.logits(hidden[select])
    assert logits.shape == (3, 32)  # [select.sum(), n_items + 2]
    assert torch.isneginf(logits[:, 0]).all() and torch.isneginf(logits[:, 31]).all()
    assert torch.isfinite(logits[:, 1:31]).all()
    assert torch.allclose(logits[0], score_last(model, items)[0])
    assert model.logits(hidden[torch.zeros_like(select)]).shape == (0, 32)
    # score(): the [MASK] position's scores over padding + items (the [MASK] column dropped)
    batch = HistoryBatch(items, torch.tensor([3, 5]), np.zeros(2, np.int64), np.arange(2), np.ones(2, np.int64))
    scores = model.score(batch)
    assert scores.shape == (2, 31) and torch.isneginf(scores[:, 0]).all()
    assert torch.allclose(scores, score_last(model, items)[:, :31])


def test_scoring_runs_the_last_layer_for_the_mask_position_only_with_the_same_result():
    model = tiny_model()
    items = torch.tensor([[0, 0, 0, 3, 4, 31], [5, 6, 7, 1, 8, 31], [0, 9, 9, 9, 2, 31]])
    everywhere = model.encode(items)  # [B, T, H]: every position through every layer
    last = model.encode(items, last_only=True)
    assert last.shape == (3, 1, 16)
    assert torch.allclose(last[:, 0], everywhere[:, -1], atol=1e-5)
    batch = HistoryBatch(items, torch.tensor([3, 5, 5]), np.zeros(3, np.int64), np.arange(3), np.ones(3, np.int64))
    expected = model.logits(everywhere[:, -1])[:, :31]
    assert torch.allclose(model.score(batch), expected, atol=1e-5)
    assert torch.allclose(model.history_scorer()(items), expected, atol=1e-5)


def test_left_padding_does_not_change_the_last_score():
    """Positions count from the right, so padding to any width sees the same positions."""
    model = tiny_model(max_len=16, hidden_dropout=0.3, attention_dropout=0.3)  # dropout must be off in eval mode
    seq = [4, 9, 2, 2, 17, 30, 31]
    ref = score_last(model, torch.tensor([seq]))
    for width in (8, 11, 16):
        padded = torch.tensor([[0] * (width - len(seq)) + seq])
        assert torch.allclose(score_last(model, padded), ref, atol=1e-5), width
    # in a batch beside a longer sequence (the way score_batches pads)
    batch = torch.tensor([[0] * 6 + seq, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 31]])
    assert torch.allclose(score_last(model, batch)[0], ref[0], atol=1e-5)
    # and the padded positions' own hidden states do not leak into the real ones
    h_short = model.encode(torch.tensor([seq]))[0]
    h_pad = model.encode(torch.tensor([[0] * 9 + seq]))[0, 9:]
    assert torch.allclose(h_short, h_pad, atol=1e-5)


def test_positions_matter_and_training_mode_uses_dropout():
    model = tiny_model(hidden_dropout=0.3)
    a = score_last(model, torch.tensor([[4, 9, 2, 31]]))
    b = score_last(model, torch.tensor([[9, 4, 2, 31]]))  # same items, another order
    assert not torch.allclose(a, b)
    model.train()
    torch.manual_seed(1)
    c = score_last(model, torch.tensor([[4, 9, 2, 31]]))
    assert not torch.allclose(a, c)


def test_padding_embedding_is_zero_and_output_is_tied():
    model = tiny_model(n_items=40)
    assert (model.item_embedding.weight[0] == 0).all()
    names = dict(model.named_parameters())
    assert "output_bias" in names and names["output_bias"].shape == (42,)
    # no separate output matrix: the only [V, H] parameter is the item embedding
    assert [n for n, p in names.items() if p.shape[0] == 42 and p.ndim == 2] == ["item_embedding.weight"]


def test_a_batch_in_length_chunks_has_the_whole_batch_loss_and_gradient():
    """The CPU runs a random batch as length-sorted chunks; with dropout off nothing may change."""
    from seqrec_cli.data.cloze import cloze_mask
    from seqrec_cli.data.windows import length_chunks

    rng = np.random.default_rng(0)
    seqs = Sequences.from_lists([rng.integers(1, 31, size=int(n)).tolist() for n in rng.integers(2, 16, size=20)])
    inputs, labels = cloze_mask(seqs, 0.3, 30, rng, force_last=True)
    inputs, labels = Sequences(inputs, seqs.offsets), Sequences(labels, seqs.offsets)
    rows = rng.permutation(20)
    model = tiny_model(n_items=30, max_len=16)

    def run(chunk_rows):
        chunks = [(torch.from_numpy(inputs.padded(c)), torch.from_numpy(labels.padded(c)))
                  for c in length_chunks(rows, seqs.lengths, chunk_rows)]  # fmt: skip
        out = model(ClozeBatch(chunks))
        grads = torch.autograd.grad(out.loss, [p for p in model.parameters() if p.requires_grad], allow_unused=True)
        return out.loss, out.loss_sum, out.n_targets, grads, len(chunks)

    whole, chunked = run(20), run(4)
    assert whole[4] == 1 and chunked[4] == 5
    assert whole[2] == chunked[2] == int((labels.items > 0).sum())
    assert torch.allclose(whole[0], chunked[0], atol=1e-6) and abs(whole[1] - chunked[1]) < 1e-3
    assert all(a is None and b is None or torch.allclose(a, b, atol=1e-6) for a, b in zip(whole[3], chunked[3]))


def test_label_smoothing_spreads_only_over_real_items():
    """--label-smoothing: (1 - e) * cross-entropy + e * mean over items 1..N of -log p, finite although
    padding and [MASK] score -inf; 0 gives the plain cross-entropy."""
    n_items = 30
    items = torch.tensor([[0, 0, 3, 31, 7], [4, 5, 31, 9, 31]])  # [2, 5], 31 = [MASK]
    labels = torch.tensor([[0, 0, 0, 12, 0], [0, 0, 6, 0, 2]])
    model = tiny_model(n_items=n_items, max_len=5)  # eval mode: no dropout, the same logits in every call
    with torch.no_grad():
        select = labels > 0
        logp = torch.log_softmax(model.logits(model.encode(items)[select])[:, 1 : n_items + 1], dim=-1)  # [3, N]
        nll = -logp[torch.arange(3), labels[select] - 1].mean()
        uniform = -logp.mean(dim=-1).mean()
        for eps in (0.0, 0.1, 0.3):
            model.config.label_smoothing = eps
            out = model(ClozeBatch([(items, labels)]))
            assert out.n_targets == 3 and torch.isfinite(out.loss)
            assert torch.allclose(out.loss, (1 - eps) * nll + eps * uniform, atol=1e-5)


# ================================================================ evaluation input
def test_score_batches_feeds_history_plus_mask_and_yields_last_items():
    max_len = 8
    model = tiny_model(n_items=30, max_len=max_len)
    mask = 31
    lists = [[5], [1, 2], [3, 4, 5, 6, 7], [int(x) for x in np.arange(12) % 30 + 1], list(range(30, 0, -1)), [7, 8, 9]]
    seqs = Sequences.from_lists(lists)
    seen_inputs: list[torch.Tensor] = []
    real = model.score

    def spy(batch):
        seen_inputs.append(batch.items.clone())
        return real(batch)

    model.score = spy
    batches = list(score_batches(model, seqs, "last", 2))
    model.score = real
    rows = np.concatenate([b.rows for b in batches])
    assert sorted(rows.tolist()) == [1, 2, 3, 4, 5]  # a one-item line has no history to predict from
    for batch, fed in zip(batches, seen_inputs):
        assert batch.scores.shape == (len(batch.rows), 31)
        for j, r in enumerate(batch.rows):
            line = lists[r]
            assert batch.targets[j] == line[-1]  # the target is the last item of the test line
            assert batch.target_pos[j] == len(line) - 1
            history = line[:-1][-(max_len - 1) :]  # cut from the left to max_len - 1 items
            row = fed[j].tolist()
            assert row[len(row) - len(history) - 1 :] == history + [mask]  # + [MASK], right-aligned
            assert all(x == 0 for x in row[: len(row) - len(history) - 1])  # padding on the left only
            # the same scores as the hand-built, unpadded input
            own = score_last(model, torch.tensor([history + [mask]]))[0, :31]
            assert torch.allclose(batch.scores[j], own, atol=1e-5)


def test_score_batches_all_mode_predicts_every_position_after_the_first():
    max_len = 4
    model = tiny_model(n_items=30, max_len=max_len)
    lists = [[1, 2, 3, 4, 5, 6], [7], [8, 9]]
    batches = list(score_batches(model, Sequences.from_lists(lists), "all", 3))
    got = sorted(
        (int(r), int(tp), int(t), tuple(np.round(sc.numpy(), 5)))
        for b in batches
        for r, tp, t, sc in zip(b.rows, b.target_pos, b.targets, b.scores[:, 1:31])
    )
    want = []
    for r, line in enumerate(lists):
        for tp in range(1, len(line)):
            history = line[:tp][-(max_len - 1) :]
            sc = score_last(model, torch.tensor([history + [31]]))[0, 1:31]
            want.append((r, tp, line[tp], tuple(np.round(sc.detach().numpy(), 5))))
    assert [g[:3] for g in got] == [w[:3] for w in sorted(want)]
    assert all(np.allclose(g[3], w[3], atol=1e-4) for g, w in zip(got, sorted(want)))


def test_score_batches_next_mode_recommends_after_the_whole_sequence():
    model = tiny_model(n_items=30, max_len=6)
    lists = [[1, 2, 3], [4, 5, 6, 7, 8, 9, 10, 11]]
    batches = list(score_batches(model, Sequences.from_lists(lists), "next", 8))
    rows = np.concatenate([b.rows for b in batches]).tolist()
    targets = np.concatenate([b.targets for b in batches]).tolist()
    scores = torch.cat([b.scores for b in batches])
    assert sorted(rows) == [0, 1] and targets == [0, 0]  # no known target
    for k, r in enumerate(rows):
        own = score_last(model, torch.tensor([lists[r][-5:] + [31]]))[0, :31]
        assert torch.allclose(scores[k], own, atol=1e-5)


# ================================================================ learning on structured data
N_SYN = 80


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """800 users, 80 items: the next item is perm[current] with probability 0.8, else random.
    Leave-one-out splits saved as processed data; returns (folder, full sequences)."""
    rng = np.random.default_rng(0)
    perm = rng.permutation(N_SYN) + 1
    seqs = []
    for _ in range(800):
        s = [int(rng.integers(1, N_SYN + 1))]
        for _ in range(int(rng.integers(15, 31)) - 1):
            s.append(int(perm[s[-1] - 1]) if rng.random() < 0.8 else int(rng.integers(1, N_SYN + 1)))
        seqs.append(s)
    root = tmp_path_factory.mktemp("synthetic")
    formats.write_vocab(root / "vocab.txt", [f"item{i}" for i in range(1, N_SYN + 1)])
    folder = root / "data"
    formats.save_processed(
        folder,
        dataset="synthetic",
        eval_target="last",
        vocab_file=root / "vocab.txt",
        splits={
            "train": Sequences.from_lists([s[:-2] for s in seqs]),
            "valid": Sequences.from_lists([s[:-1] for s in seqs]),
            "test": Sequences.from_lists(seqs),
        },
    )
    return folder, seqs


SYN_ARCH = ("--max-len", 32, "--hidden-size", 32, "--layers", 1, "--heads", 2, "--intermediate-size", 64)


def test_learns_structured_sequences_far_better_than_popularity(runner, workdir, synthetic):
    folder, seqs = synthetic
    counts = np.bincount(np.concatenate([s[:-2] for s in seqs]), minlength=N_SYN + 1)
    counts[0] = -1
    top10 = set(np.argsort(-counts, kind="stable")[:10].tolist())
    pop_hr10 = float(np.mean([s[-1] in top10 for s in seqs]))
    ok(invoke(runner, "train", "bert4rec", "--train-dir", folder, "--model-dir", "m", "--epochs", 12, *SYN_ARCH,
              "--batch-size", 64, "--lr", "5e-3", "--warmup-steps", 20, "--last-share", 1))  # fmt: skip
    result = ok(invoke(runner, "evaluate", "--model-dir", "m", "--output-json", "eval.json"))
    body = json.loads((workdir / "eval.json").read_text(encoding="utf-8"))
    assert body["protocol"] == "full" and body["predictions"] == 800 and body["split"] == "test"
    hr10 = body["metrics"]["hr@10"]
    assert f"HR@10 {hr10:.4f}" in " ".join(result.stdout.split()), result.stdout
    assert hr10 > 2 * pop_hr10 and hr10 > pop_hr10 + 0.2, (hr10, pop_hr10)
    assert 1 >= body["metrics"]["ndcg@10"] > 0.3


def test_identical_runs_give_identical_losses(runner, workdir, synthetic):
    folder, _ = synthetic
    args = ("train", "bert4rec", "--train-dir", folder, "--epochs", 2, "--max-len", 24, "--hidden-size", 16,
            "--layers", 1, "--intermediate-size", 32, "--batch-size", 64, "--log-every", 5, "--seed", 3)  # fmt: skip
    ok(invoke(runner, *args, "--model-dir", "a"))
    ok(invoke(runner, *args, "--model-dir", "b"))
    ok(invoke(runner, *args, "--model-dir", "c", "--seed", 4))

    def losses(d):
        recs = [json.loads(x) for x in (workdir / d / formats.METRICS_FILE).read_text(encoding="utf-8").splitlines()]
        return [(r["event"], r["epoch"], r["step"], r.get("train_loss", r.get("loss")), r.get("valid")) for r in recs]

    a, b = losses("a"), losses("b")
    assert len([r for r in a if r[0] == "step"]) >= 4 and len([r for r in a if r[0] == "epoch"]) == 2
    assert a == b
    assert losses("c") != a
    wa = torch.load(workdir / "a/epoch_2/model.pt", weights_only=True)
    wb = torch.load(workdir / "b/epoch_2/model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_cli_config_file_and_command_line_overrides(runner, workdir, synthetic):
    folder, _ = synthetic
    write_json(workdir / "c.json", bert_json(N_SYN + 4))
    ok(invoke(runner, "train", "bert4rec", "--train-dir", folder, "--config", "c.json", "--epochs", 1, "--model-dir", "m",
              "--hidden-size", 16, "--intermediate-size", 32, "--layers", 1, "--max-len", 24))  # fmt: skip
    cfg = json.loads((workdir / "m/epoch_1/config.json").read_text(encoding="utf-8"))["model_config"]
    assert cfg == {
        "n_items": N_SYN, "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "hidden_act": "gelu",
        "hidden_dropout": 0.2, "attention_dropout": 0.2, "max_len": 24, "initializer_range": 0.02, "label_smoothing": 0.1,
    }  # fmt: skip
    # a checkpoint of another vocabulary cannot initialise a model for the sample
    result = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--init-from", "m/epoch_1", "--model-dir", "x")
    line = error_line(result)
    assert line.startswith("Error: --init-from m/epoch_1 was trained with vocabulary") and "vocab/sample.txt" in line


def test_bf16_on_cpu_runs(runner, workdir, synthetic):
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.ones(2, 2) @ torch.ones(2, 2)
    except RuntimeError as exc:  # pragma: no cover - depends on the CPU build
        pytest.skip(f"bf16 autocast unsupported on this CPU: {exc}")
    folder, _ = synthetic
    result = ok(invoke(runner, "train", "bert4rec", "--train-dir", folder, "--epochs", 1, "--model-dir", "m", "--max-len", 24,
                       "--hidden-size", 16, "--layers", 1, "--intermediate-size", 32, "--precision", "bf16"))  # fmt: skip
    assert "bfloat16" in result.output
    (rec,) = epoch_records(workdir / "m")
    assert np.isfinite(rec["train_loss"]) and rec["valid"]["hr@10"] >= 0


def test_batching_is_recorded_and_checked(runner, workdir, synthetic):
    folder, _ = synthetic
    args = ("train", "bert4rec", "--train-dir", folder, "--epochs", 1, "--max-len", 24, "--hidden-size", 16,
            "--layers", 1, "--intermediate-size", 32, "--batch-size", 64)  # fmt: skip
    ok(invoke(runner, *args, "--model-dir", "r"))
    ok(invoke(runner, *args, "--model-dir", "b", "--batching", "bucket"))
    for d, want in (("r", "random"), ("b", "bucket")):
        cfg = json.loads((workdir / d / "epoch_1" / "config.json").read_text(encoding="utf-8"))
        assert cfg["train_config"]["batching"] == want
    wr = torch.load(workdir / "r/epoch_1/model.pt", weights_only=True)
    wb = torch.load(workdir / "b/epoch_1/model.pt", weights_only=True)
    assert not all(torch.equal(wr[k], wb[k]) for k in wr)  # different batches, different steps
    result = invoke(runner, *args, "--model-dir", "x", "--batching", "sorted")
    usage_error(result, "--batching", "random", "bucket")
    assert not (workdir / "x").exists()


def test_valid_filter_seen_validates_like_evaluate_filter_seen(runner, workdir, synthetic):
    folder, _ = synthetic
    args = ("train", "bert4rec", "--train-dir", folder, "--epochs", 2, "--max-len", 24, "--hidden-size", 16,
            "--layers", 1, "--intermediate-size", 32, "--batch-size", 64)  # fmt: skip
    ok(invoke(runner, *args, "--model-dir", "plain"))
    result = ok(invoke(runner, *args, "--model-dir", "filtered", "--valid-filter-seen"))
    assert "full+filter-seen" in " ".join(result.output.split())
    plain, filtered = epoch_records(workdir / "plain"), epoch_records(workdir / "filtered")
    # the same training (validation does not touch the random streams), validated two ways
    assert [r["train_loss"] for r in plain] == [r["train_loss"] for r in filtered]
    assert filtered[-1]["valid"]["ndcg@10"] != plain[-1]["valid"]["ndcg@10"]
    ok(invoke(runner, "evaluate", "--checkpoint", "filtered/epoch_2", "--split", "valid", "--filter-seen",
              "--cutoffs", "10", "--output-json", "v.json"))  # fmt: skip
    body = json.loads((workdir / "v.json").read_text(encoding="utf-8"))
    assert body["protocol"] == "full+filter-seen"
    assert abs(body["metrics"]["ndcg@10"] - filtered[-1]["valid"]["ndcg@10"]) < 1e-9


def test_fp16_on_cpu_is_refused(runner, workdir, synthetic):
    folder, _ = synthetic
    result = invoke(runner, "train", "bert4rec", "--train-dir", folder, "--epochs", 1, "--model-dir", "m", "--precision", "fp16")
    assert "--precision fp16 needs --use-cuda" in error_line(result)
    assert not (workdir / "m").exists()


# ================================================================ the CLI chain on the bundled sample
@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """One cloze epoch on the sample: <tmp>/p/epoch_1 (absolute path)."""
    from typer.testing import CliRunner

    root = tmp_path_factory.mktemp("pretrain")
    result = invoke(CliRunner(), "pretrain", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--model-dir", root / "p", *TINY)
    ok(result)
    return root / "p"


def test_pretrain_train_infer_evaluate_chain(runner, workdir, pretrained):
    stage = json.loads((pretrained / "epoch_1/config.json").read_text(encoding="utf-8"))
    assert stage["stage"] == "pretrain" and stage["train_config"]["objective"] == "cloze"

    result = ok(invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 2, "--init-from", pretrained / "epoch_1",
                       "--model-dir", "m", "--valid-every", 1))  # fmt: skip
    assert "initialised from" in result.stderr
    cfg = json.loads((workdir / "m/epoch_2/config.json").read_text(encoding="utf-8"))
    assert cfg["model_config"] == stage["model_config"]  # the architecture came from the checkpoint
    assert cfg["model_config"]["hidden_size"] == 32 and cfg["model_config"]["max_len"] == 50
    assert cfg["stage"] == "train" and cfg["train_config"]["objective"] == "cloze-last"  # the default

    # validation metrics per epoch; run.json records the best epoch
    recs = epoch_records(workdir / "m")
    assert [r["epoch"] for r in recs] == [1, 2]
    for r in recs:
        assert {"hr@10", "ndcg@10"} <= set(r["valid"]) and all(0 <= r["valid"][k] <= 1 for k in ("hr@10", "ndcg@10"))
    values = [r["valid"]["ndcg@10"] for r in recs]
    best_epoch = 1 + int(np.argmax(values))
    run = json.loads((workdir / "m/run.json").read_text(encoding="utf-8"))
    assert run["model"] == "bert4rec" and run["best"]["epoch"] == best_epoch
    assert run["best"]["metric"] == "ndcg@10" and run["best"]["value"] == pytest.approx(max(values))

    result = ok(invoke(runner, "infer", "--model-dir", "m", "--start-index", 1, "--last-index", 2))
    lines = [x for x in result.stdout.splitlines() if x.startswith("model:")]
    assert len(lines) == 2
    for epoch, line in zip((1, 2), lines):
        assert re.fullmatch(
            rf"model:m/epoch_{epoch} HR@10:0\.\d{{4}} NDCG@10:0\.\d{{4}} time_cost\(s\):\d+\.\d protocol:full", line
        ), line
    infer_json = json.loads((workdir / "m/infer.json").read_text(encoding="utf-8"))
    assert infer_json["protocol"] == "full" and [r["predictions"] for r in infer_json["results"]] == [600, 600]

    # the figures agree with a hand computation: history + [MASK] right-aligned, pessimistic full ranking
    hand = hand_metrics(workdir / "m/epoch_2")
    assert infer_json["results"][1]["metrics"]["hr@10"] == pytest.approx(hand["hr@10"], abs=1e-9)
    assert infer_json["results"][1]["metrics"]["ndcg@10"] == pytest.approx(hand["ndcg@10"], abs=1e-6)

    result = ok(invoke(runner, "evaluate", "--model-dir", "m"))
    assert result.stdout.splitlines()[0] == f"model:m/epoch_{best_epoch} (bert4rec, epoch {best_epoch}) on {SAMPLE} test split"
    assert "protocol: full ranking over all 240 items; last item of each line (leave-one-out); pessimistic ties" in result.stdout
    full = json.loads((workdir / f"m/epoch_{best_epoch}/eval_test_full.json").read_text(encoding="utf-8"))
    assert full["protocol"] == "full" and full["predictions"] == 600
    assert full["metrics"]["hr@10"] == pytest.approx(infer_json["results"][best_epoch - 1]["metrics"]["hr@10"])

    result = ok(invoke(runner, "evaluate", "--model-dir", "m", "--negatives", 100, "--sampling", "uniform"))
    assert "protocol: sampled: target vs 100 uniform-sampled negatives" in result.stdout
    sampled = json.loads((workdir / f"m/epoch_{best_epoch}/eval_test_uniform-100.json").read_text(encoding="utf-8"))
    assert sampled["protocol"] == "uniform-100"
    # 101 candidates instead of 240: the sampled figure is higher than the full one
    assert sampled["metrics"]["hr@10"] >= full["metrics"]["hr@10"]


def hand_metrics(checkpoint: Path) -> dict[str, float]:
    """HR@10 and NDCG@10 of a sample checkpoint on the test split, computed here from scratch."""
    cfg = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))["model_config"]
    model = Bert4Rec(Bert4RecConfig(**cfg))
    model.load_state_dict(torch.load(checkpoint / "model.pt", weights_only=True))
    model.eval()
    lines = [[int(x) for x in line.split()] for line in (SAMPLE / "test.txt").read_text(encoding="ascii").splitlines()]
    keep = cfg["max_len"] - 1
    ranks = []
    with torch.no_grad():
        for line in lines:
            history = line[:-1][-keep:]
            scores = score_last(model, torch.tensor([history + [cfg["n_items"] + 1]]))[0][1 : cfg["n_items"] + 1]
            target = scores[line[-1] - 1]
            ranks.append(int((scores >= target).sum()))  # pessimistic: the target + every item scoring >= it
    r = np.array(ranks, dtype=float)
    return {"hr@10": float(np.mean(r <= 10)), "ndcg@10": float(np.mean(np.where(r <= 10, 1 / np.log2(r + 1), 0)))}


def test_resume_after_an_interruption_gives_the_same_run(runner, workdir, synthetic):
    import shutil

    folder, _ = synthetic
    args = ("train", "bert4rec", "--train-dir", folder, "--max-len", 24, "--hidden-size", 16, "--layers", 1,
            "--intermediate-size", 32, "--batch-size", 128, "--warmup-steps", 3, "--epochs", 3)  # fmt: skip
    ok(invoke(runner, *args, "--model-dir", "full"))
    # an interruption during epoch 2: only epoch_1 is complete
    shutil.copytree(workdir / "full", workdir / "part")
    shutil.rmtree(workdir / "part/epoch_2")
    shutil.rmtree(workdir / "part/epoch_3")
    result = ok(invoke(runner, *args, "--model-dir", "part", "--resume"))
    assert "resuming from part/epoch_1" in result.stderr

    def strip(recs):
        return [{k: v for k, v in r.items() if "seconds" not in k and "per_s" not in k} for r in recs]

    assert [r["epoch"] for r in epoch_records(workdir / "part")] == [1, 2, 3]
    assert strip(epoch_records(workdir / "part")) == strip(epoch_records(workdir / "full"))
    wa = torch.load(workdir / "full/epoch_3/model.pt", weights_only=True)
    wb = torch.load(workdir / "part/epoch_3/model.pt", weights_only=True)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_recommend_top_k_raw_ids(runner, workdir, pretrained):
    vocab = (REPO / "vocab/sample.txt").read_text(encoding="utf-8").split()
    users = (SAMPLE / "users.txt").read_text(encoding="utf-8").split()
    test = [line.split() for line in (SAMPLE / "test.txt").read_text(encoding="ascii").splitlines()]
    for flag in ((), ("--exclude-seen",)):
        ok(invoke(runner, "recommend", "--checkpoint", pretrained / "epoch_1", "--top-k", 5, "--output", "rec.tsv", *flag))
        rows = (workdir / "rec.tsv").read_text(encoding="utf-8").splitlines()
        assert rows[0] == "id\titems" and len(rows) == 601
        for row, user, line in zip(rows[1:], users, test):
            ident, items = row.split("\t")
            recs = items.split()
            assert ident == user and len(recs) == len(set(recs)) == 5 and set(recs) <= set(vocab)
            if flag:
                assert not set(recs) & {vocab[int(i) - 1] for i in line}


def test_evaluate_filter_seen_is_labelled(runner, workdir, pretrained):
    ckpt = pretrained / "epoch_1"
    ok(invoke(runner, "evaluate", "--checkpoint", ckpt, "--output-json", "plain.json"))
    result = ok(invoke(runner, "evaluate", "--checkpoint", ckpt, "--filter-seen", "--output-json", "filtered.json"))
    assert "items already in the history excluded" in result.stdout
    plain = json.loads((workdir / "plain.json").read_text(encoding="utf-8"))
    filtered = json.loads((workdir / "filtered.json").read_text(encoding="utf-8"))
    assert plain["protocol"] == "full" and filtered["protocol"] == "full+filter-seen"
    assert filtered["predictions"] == plain["predictions"] == 600
    # 126 of the sample's 600 test targets repeat an item of their history: filtered, those can never be hit
    lines = [line.split() for line in (SAMPLE / "test.txt").read_text(encoding="ascii").splitlines()]
    repeats = sum(line[-1] in line[:-1] for line in lines)
    assert repeats == 126
    assert filtered["metrics"]["hr@20"] <= 1 - repeats / 600


def test_evaluate_table_header_names_the_protocol(runner, workdir, pretrained):
    for args, label in ((), "full"), (("--negatives", 100, "--sampling", "uniform"), "uniform-100"):
        result = ok(invoke(runner, "evaluate", "--checkpoint", pretrained / "epoch_1", "--output-json", "e.json", *args))
        assert f"value [{label}]" in result.stdout, result.stdout


def test_init_from_with_matching_arch_flags_is_accepted(runner, workdir, pretrained):
    ok(invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--init-from", pretrained / "epoch_1",
              "--model-dir", "m", "--hidden-size", 32, "--max-len", 50, "--batch-size", 256))  # fmt: skip


@pytest.mark.parametrize(
    ("flags", "named"),
    [(("--hidden-size", 16), "--hidden-size"), (("--layers", 1, "--heads", 4), "--layers, --heads"), (("--max-len", 60), "--max-len")],
)
def test_init_from_with_conflicting_arch_flag(runner, workdir, pretrained, flags, named):
    result = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--init-from", pretrained / "epoch_1",
                    "--model-dir", "m", *flags)  # fmt: skip
    line = error_line(result)
    assert "fixes the architecture; drop " + named in line, line
    assert not (workdir / "m").exists()


def test_init_from_with_config_file_is_refused(runner, workdir, pretrained):
    write_json(workdir / "c.json", bert_json(SAMPLE_ITEMS + 4))
    result = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--init-from", pretrained / "epoch_1",
                    "--model-dir", "m", "--config", "c.json")  # fmt: skip
    assert "drop --config" in error_line(result)


def test_init_from_a_gru4rec_checkpoint_is_refused(runner, workdir):
    ok(invoke(runner, "train", "gru4rec", "--train-dir", SAMPLE, "--epochs", 1, "--model-dir", "g", "--hidden-size", 8,
              "--n-sample", 16, "--batch-size", 64))  # fmt: skip
    result = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--init-from", "g/epoch_1", "--model-dir", "m")
    assert error_line(result) == "Error: --init-from g/epoch_1 is a gru4rec checkpoint, not bert4rec"
    assert not (workdir / "m").exists()


def test_init_from_a_missing_checkpoint(runner, workdir):
    result = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--init-from", "nope/epoch_3")
    assert "checkpoint not found: nope/epoch_3" in error_line(result)


# ================================================================ default paths (data/ml-1m from the download)
def test_default_train_dir_needs_the_download(runner, workdir):
    result = invoke(runner, "train", "bert4rec", "--epochs", 1)
    line = error_line(result)
    assert "seqrec download ml-1m" in line and "data/ml-1m" in line
    assert sorted(p.name for p in workdir.iterdir()) == []


def test_default_train_dir_is_preprocessed_from_the_download(runner, workdir):
    # 6 users x 8 movies, everyone rated everything (>= 5 per user and per item), distinct times
    rng = np.random.default_rng(0)
    lines = []
    for user in range(1, 7):
        movies = rng.permutation([10, 20, 30, 40, 50, 60, 70, 80])
        lines += [f"{user}::{m}::{1 + (m // 10) % 5}::{978300000 + 60 * user + t}" for t, m in enumerate(movies)]
    ratings = workdir / formats.ML1M_RATINGS
    ratings.parent.mkdir(parents=True)
    ratings.write_text("\n".join(lines) + "\n", encoding="latin-1")
    result = ok(invoke(runner, "train", "bert4rec", "--epochs", 1, "--max-len", 20, "--hidden-size", 16,
                       "--intermediate-size", 32, "--heads", 2, "--layers", 1))  # fmt: skip
    assert "running the default preprocessing first" in result.stderr
    assert "ml-1m: 6 users, 8 items, 48 interactions" in result.stderr
    assert (workdir / "data/ml-1m/manifest.json").is_file()
    assert (workdir / "vocab/ml-1m.txt").read_text(encoding="utf-8").split() == [str(m) for m in range(10, 90, 10)]
    data = formats.load_processed(workdir / "data/ml-1m")
    assert data.split("train").lengths.tolist() == [6] * 6 and data.split("test").lengths.tolist() == [8] * 6
    assert (workdir / "model_output/epoch_1/model.pt").is_file()
    cfg = json.loads((workdir / "model_output/epoch_1/config.json").read_text(encoding="utf-8"))
    assert cfg["data"]["dataset"] == "ml-1m" and cfg["data"]["train_dir"] == "data/ml-1m"
    # a second run finds the processed folder and does not preprocess again
    result = ok(invoke(runner, "train", "bert4rec", "--epochs", 1, "--max-len", 20, "--hidden-size", 16,
                       "--intermediate-size", 32, "--layers", 1, "--model-dir", "m2"))  # fmt: skip
    assert "preprocessing" not in result.stderr


def test_cli_max_windows_trains_on_each_users_last_window(runner, workdir):
    """--max-windows 1: one window per training sequence (its last --max-len items), recorded in the config."""
    every = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--model-dir", "a", "--max-len", 8,
                   "--hidden-size", 16, "--intermediate-size", 32)  # fmt: skip
    last = invoke(runner, "train", "bert4rec", "--train-dir", SAMPLE, "--epochs", 1, "--model-dir", "b", "--max-len", 8,
                  "--hidden-size", 16, "--intermediate-size", 32, "--max-windows", 1)  # fmt: skip
    assert every.exit_code == 0 and last.exit_code == 0, every.output + last.output
    n_every = int(re.search(r"([\d,]+) training windows", every.output).group(1).replace(",", ""))
    n_last = int(re.search(r"([\d,]+) training windows", last.output).group(1).replace(",", ""))
    users = len((SAMPLE / "users.txt").read_text(encoding="utf-8").splitlines())
    assert n_last == users < n_every  # the sample has users with more than 8 training items
    cfg = json.loads((workdir / "b/epoch_1/config.json").read_text(encoding="utf-8"))["train_config"]
    assert cfg["max_windows"] == 1
