"""seqrec export: every model's history scorer against seqrec's scoring, and the exported files (run
with onnxruntime, or loaded with torch.jit.load) against seqrec recommend on the bundled sample,
through the real CLI; the sidecar's contract is what the tests build their inputs from."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, invoke
from helpers import error_line
from typer.testing import CliRunner

from seqrec_cli import formats
from seqrec_cli.checkpoint import load_model, read_checkpoint
from seqrec_cli.export import export_model, history_inputs
from seqrec_cli.models import REGISTRY
from seqrec_cli.scoring import score_batches
from seqrec_cli.sequences import Sequences

SAMPLE = REPO / "data" / "sample"
VOCAB = REPO / "vocab" / "sample.txt"
# brief runs on the sample: histories longer than BERT4Rec's / SASRec's max length, two GRU layers
TRAIN = {
    "gru4rec": ["--epochs", 1, "--hidden-size", 32, "--layers", 2, "--n-sample", 64, "--batch-size", 64],
    "bert4rec": ["--epochs", 1, "--max-len", 20, "--hidden-size", 32, "--intermediate-size", 64, "--batch-size", 64],
    "sasrec": ["--epochs", 1, "--max-len", 20, "--hidden-size", 32, "--heads", 2, "--batch-size", 64],
}
TIE = 1e-5  # scores closer than this may come out of a top-k in either order
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- the scorers
def _tiny(name: str, **kw):
    entry = REGISTRY[name]
    torch.manual_seed(0)
    return entry, entry.load_model()(entry.config(n_items=30, **kw)).eval()


SCORERS = [
    ("gru4rec", {"hidden_size": 12}),
    ("gru4rec", {"hidden_size": 12, "num_layers": 3}),
    ("gru4rec", {"hidden_size": 12, "shared_embedding": False, "embedding_size": 7, "num_layers": 2}),
    ("gru4rec", {"hidden_size": 12, "shared_embedding": False, "embedding_size": 0}),  # one-hot input, 1 layer
    ("gru4rec", {"hidden_size": 12, "shared_embedding": False, "embedding_size": 0, "num_layers": 2}),
    ("bert4rec", {"hidden_size": 16, "num_heads": 2, "intermediate_size": 24, "max_len": 6}),
    ("sasrec", {"hidden_size": 16, "num_heads": 2, "intermediate_size": 24, "max_len": 6}),
]


@pytest.mark.parametrize("name,config", SCORERS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCORERS)])
def test_history_scorer_gives_seqrecs_scores(name, config):
    """The module each model exports computes, from one padded matrix, the scores seqrec's own
    scoring gives after each whole history (GRU4Rec: its session-parallel walk, step by step)."""
    entry, model = _tiny(name, **config)
    rng = np.random.default_rng(1)
    seqs = Sequences.from_lists([rng.integers(1, 31, size=n) for n in (1, 4, 2, 9, 6, 13, 3)])
    ref = torch.zeros(len(seqs), 31)
    for batch in score_batches(model, entry, seqs, "next", 3):  # several batches, the walk refills slots
        ref[batch.rows] = batch.scores
    layout = entry.history_layout(model.config)
    inputs = [torch.from_numpy(v) for v in history_inputs(seqs, layout).values()]
    assert len(inputs) == (2 if layout.lengths else 1)
    with torch.no_grad():
        got = model.history_scorer()(*inputs)
    assert got.shape == (7, 31) and torch.isneginf(got[:, 0]).all()
    assert torch.allclose(got[:, 1:], ref[:, 1:], atol=1e-5), (got - ref)[:, 1:].abs().max()


@pytest.mark.slow
@pytest.mark.parametrize("config", [SCORERS[2][1], SCORERS[4][1]], ids=["embedding-2-layers", "onehot-2-layers"])
def test_every_gru4rec_input_exports_to_onnx(config, tmp_path):
    """The one-hot input layer and a separate embedding export too (one nn.GRU call: torch.onnx keeps
    the length dynamic for the first GRU call of a graph only)."""
    import onnxruntime as ort

    entry, model = _tiny("gru4rec", **config)
    digest, diff, checks = export_model(model, entry, "onnx", tmp_path / "g.onnx")
    assert diff <= 1e-4 and digest == hashlib.sha256((tmp_path / "g.onnx").read_bytes()).hexdigest()
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    shapes = [i.shape for i in session.get_inputs()]
    assert shapes == [["batch", "length"], ["batch"]]


def test_history_inputs_follow_the_layout():
    seqs = Sequences.from_lists([[5, 6, 7, 8], [9]])
    bert = REGISTRY["bert4rec"].history_layout(REGISTRY["bert4rec"].config(n_items=10, max_len=4))
    got = history_inputs(seqs, bert)
    assert got["items"].tolist() == [[6, 7, 8, 11], [0, 0, 9, 11]] and list(got) == ["items"]
    sas = REGISTRY["sasrec"].history_layout(REGISTRY["sasrec"].config(n_items=10, max_len=3))
    got = history_inputs(seqs, sas)
    assert got["items"].tolist() == [[6, 7, 8], [9, 0, 0]] and got["lengths"].tolist() == [3, 1]
    gru = REGISTRY["gru4rec"].history_layout(REGISTRY["gru4rec"].config(n_items=10))
    got = history_inputs(seqs, gru)
    assert got["items"].tolist() == [[5, 6, 7, 8], [9, 0, 0, 0]] and got["lengths"].tolist() == [4, 1]


# ---------------------------------------------------------------------------------------------- parity
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Each model trained briefly on the sample through the CLI, and its seqrec recommend top-10."""
    folder = tmp_path_factory.mktemp("export")
    runner = CliRunner()
    for name, args in TRAIN.items():
        done = invoke(runner, "train", name, "--train-dir", SAMPLE, "--model-dir", folder / name, *args)
        assert done.exit_code == 0, done.output
        done = invoke(runner, "recommend", "--model-dir", folder / name, "--top-k", 10, "--output", folder / f"{name}.tsv")
        assert done.exit_code == 0, done.output
    return folder


def _contract_inputs(sidecar: dict, histories: list[list[int]]) -> dict[str, np.ndarray]:
    """The graph's inputs built from the sidecar alone, as a user of the exported file would."""
    spec = {s["name"]: s for s in sidecar["inputs"]}["items"]
    keep, append = spec["max_history_items"], spec["append"]
    rows = [(h[-keep:] if keep else list(h)) + ([append["index"]] if append else []) for h in histories]
    width = max(map(len, rows))
    assert spec["max_length"] is None or width <= spec["max_length"]
    items = np.full((len(rows), width), spec["padding_index"], dtype=np.int64)
    for r, row in enumerate(rows):
        if spec["padding_side"] == "left":
            items[r, width - len(row) :] = row
        else:
            items[r, : len(row)] = row
    out = {"items": items}
    if any(s["name"] == "lengths" for s in sidecar["inputs"]):
        out["lengths"] = np.array([len(r) for r in rows], dtype=np.int64)
    return out


def _seqrec_scores(model_dir: Path, seqs: Sequences) -> np.ndarray:
    ckpt = read_checkpoint(model_dir / "epoch_1")
    model = load_model(ckpt)
    ref = np.zeros((len(seqs), model.config.n_items + 1), np.float32)
    for batch in score_batches(model, ckpt.entry, seqs, "next", 256):
        ref[batch.rows] = batch.scores.numpy()
    return ref


def _recommended(tsv: Path, vocab: list[str]) -> list[list[int]]:
    index = {raw: i + 1 for i, raw in enumerate(vocab)}
    lines = tsv.read_text(encoding="utf-8").splitlines()[1:]
    return [[index[raw] for raw in line.split("\t")[1].split()] for line in lines]


def _same_top(got: np.ndarray, want: list[list[int]], ref: np.ndarray) -> None:
    """The same top-k lists, best first; a difference is allowed only between (near-)tied scores."""
    assert got.shape == (len(want), len(want[0]))
    differ = [r for r in range(len(want)) if got[r].tolist() != want[r]]
    for r in differ:  # same scores position by position: a swap of tied items only
        assert np.allclose(ref[r, got[r]], ref[r, want[r]], atol=TIE), (r, got[r], want[r])
    assert len(differ) <= 2, differ


def _run(fmt: str, path: Path, inputs: dict[str, np.ndarray], names: list[str]) -> list[np.ndarray]:
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == list(inputs)
        assert [o.name for o in session.get_outputs()] == names
        return session.run(None, inputs)
    module = torch.jit.load(str(path))
    with torch.no_grad():
        out = module(*(torch.from_numpy(v) for v in inputs.values()))
    return [o.numpy() for o in (out if isinstance(out, tuple) else (out,))]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", list(TRAIN))
def test_exported_model_gives_recommends_top10(trained, name, fmt, runner):
    """The exported graph, run outside seqrec's model code, ranks the sample's test histories as seqrec
    recommend does (top-10 after each whole line) and scores every item within 1e-4 of seqrec."""
    out = trained / f"{name}.{fmt}"
    result = invoke(runner, "export", "--model-dir", trained / name, "--format", fmt, "--output", out)
    assert result.exit_code == 0, result.output
    assert f"-> {out} ({fmt}" in result.stdout and f"wrote {out}.json" in result.stdout
    sidecar = json.loads(Path(f"{out}.json").read_text())
    manifest = json.loads((SAMPLE / "manifest.json").read_text())
    assert sidecar["kind"] == "seqrec-export" and sidecar["format"] == fmt and sidecar["model"] == name
    assert sidecar["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest() and sidecar["file"] == out.name
    assert sidecar["vocab"]["sha256"] == manifest["vocab_sha256"] and sidecar["vocab"]["n_items"] == 240
    assert Path(sidecar["vocab"]["path"]).resolve() == VOCAB.resolve()
    assert sidecar["checkpoint"]["epoch"] == 1 and sidecar["check"]["max_abs_diff"] <= 1e-4
    assert sidecar["outputs"] == [
        {"name": "scores", "dtype": "float32", "shape": ["batch", 241], "meaning": sidecar["outputs"][0]["meaning"]}
    ]
    assert (sidecar["opset"] is not None) == (fmt == "onnx")

    test = formats.read_sequences(SAMPLE / "test.txt")
    histories = [test[i].tolist() for i in range(len(test))]
    (scores,) = _run(fmt, out, _contract_inputs(sidecar, histories), ["scores"])
    ref = _seqrec_scores(trained / name, test)
    assert scores.shape == (600, 241) and np.isneginf(scores[:, 0]).all()
    assert np.abs(scores[:, 1:] - ref[:, 1:]).max() <= 1e-4
    vocab = VOCAB.read_text(encoding="utf-8").splitlines()
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    _same_top(top, _recommended(trained / f"{name}.tsv", vocab), ref)
    # dynamic axes: one history alone, and a batch padded to other lengths
    (one,) = _run(fmt, out, _contract_inputs(sidecar, histories[5:6]), ["scores"])
    assert np.abs(one[0, 1:] - ref[5, 1:]).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("name,fmt", [("sasrec", "onnx"), ("gru4rec", "torchscript")])
def test_top_k_graph_gives_recommends_lists(trained, name, fmt, runner):
    out = trained / f"{name}_top.{fmt}"
    result = invoke(runner, "export", "--model-dir", trained / name, "--format", fmt, "-o", out, "--top-k", 10)
    assert result.exit_code == 0, result.output
    assert "outputs: top_scores float32 [batch, 10], top_items int64 [batch, 10]" in result.stdout
    sidecar = json.loads(Path(f"{out}.json").read_text())
    assert sidecar["top_k"] == 10 and [o["name"] for o in sidecar["outputs"]] == ["top_scores", "top_items"]
    test = formats.read_sequences(SAMPLE / "test.txt")
    histories = [test[i].tolist() for i in range(len(test))]
    values, items = _run(fmt, out, _contract_inputs(sidecar, histories), ["top_scores", "top_items"])
    ref = _seqrec_scores(trained / name, test)
    vocab = VOCAB.read_text(encoding="utf-8").splitlines()
    _same_top(items, _recommended(trained / f"{name}.tsv", vocab), ref)
    assert np.abs(values - np.take_along_axis(ref, items, axis=1)).max() <= 1e-4


@pytest.mark.slow
def test_export_defaults_and_errors(trained, runner, workdir):
    mdir = trained / "bert4rec"
    result = invoke(runner, "export", "--model-dir", mdir, "--format", "torchscript")
    assert result.exit_code == 0, result.output
    assert (mdir / "model.torchscript.pt").is_file() and (mdir / "model.torchscript.pt.json").is_file()
    assert "ending with [MASK] = 241" in result.stdout and "length <= 20" in result.stdout
    line = error_line(invoke(runner, "export", "--model-dir", mdir, "--top-k", 241, "-o", "x.onnx"))
    assert line == "Error: --top-k must be from 1 to the number of items (240), got 241"
    assert not (workdir / "x.onnx").exists() and not list(workdir.iterdir())
    line = error_line(invoke(runner, "export", "--model-dir", "nothing", "-o", "x.onnx"))
    assert "nothing" in line
    line = error_line(invoke(runner, "export", "--model-dir", mdir, "--epoch", 7, "-o", "x.onnx"))
    assert "epoch_7" in line and "have epochs 1" in line


@pytest.mark.parametrize("module", ["onnx", "onnxruntime"])
def test_export_without_its_extra_is_one_error_line(tmp_path, module):
    code = f"""
        import sys
        sys.modules[{module!r}] = None  # as if not installed
        from seqrec_cli.cli import app
        app(["export", "--model-dir", "absent", "-o", "m.onnx"], prog_name="seqrec")
    """
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"Error: seqrec export needs the optional package {module}, which could not be imported "
        f"(import of {module} halted; None in sys.modules); install it with: pip install 'seqrec[export]'"
    ]
    assert list(tmp_path.iterdir()) == []
