"""Several processes, one run (issue 13): real torchrun launches on the CPU (gloo, 2 processes,
1 thread each), no mocks.

* 2-process training of every model completes, writes one set of checkpoints and beats the
  popularity baseline by the margins the 1-process tests ask for; its validation (2 processes)
  equals a 1-process evaluation of the same checkpoint exactly, prediction count included;
* ``evaluate`` / ``recommend`` with ``--num-devices 2`` equal 1 process exactly;
* kill -9 of one worker: one ``Error:`` line, non-zero exit, within 60 s, no worker left;
* two torchrun "nodes" on 127.0.0.1 (c10d rendezvous, one process each) train what
  ``--num-devices 2`` trains, bitwise; killed with kill -9 in the middle of their second epoch and
  resumed with ``--num-devices 2``, they end bit-identical to the uninterrupted run. They also
  all-reduce GRU4Rec's sparse gradients the NCCL way (dense + row mask,
  ``SEQREC_SPARSE_ALLREDUCE=dense``), so that path is tested without a GPU.

Every launch starts three Python processes that import torch: the runs are kept tiny, and the
three trainings run side by side.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, invoke
from helpers import error_line

from seqrec_cli import formats
from seqrec_cli.sequences import Sequences

SAMPLE = REPO / "data" / "sample"
TIMEOUT = 300  # no launch may hang the suite
ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "200"}
ENV.pop("SEQREC_DEBUG", None)

GRU = ["train", "gru4rec", "--train-dir", str(SAMPLE), "--epochs", "2", "--hidden-size", "32", "--n-sample", "64",
       "--batch-size", "32", "--lr", "0.1", "--dropout-hidden", "0.1", "--log-every", "20", "--threads", "1"]  # fmt: skip
SAS = ["train", "sasrec", "--train-dir", str(SAMPLE), "--epochs", "4", "--max-len", "50", "--batch-size", "32",
       "--lr", "5e-3", "--valid-every", "4", "--threads", "1"]  # fmt: skip
BERT = ["train", "bert4rec", "--epochs", "5", "--max-len", "32", "--hidden-size", "32", "--layers", "1", "--heads", "2",
        "--intermediate-size", "64", "--batch-size", "32", "--lr", "1e-2", "--warmup-steps", "10", "--objective", "both",
        "--last-share", "1", "--dropout", "0.1", "--label-smoothing", "0", "--valid-every", "5", "--threads", "1"]  # fmt: skip


def seqrec(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "seqrec_cli", *map(str, args)], cwd=cwd, env=env or ENV, capture_output=True, text=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    return done


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Error" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


def epochs(model_dir: Path) -> list[dict]:
    return [r for r in map(json.loads, (model_dir / "metrics.jsonl").read_text().splitlines()) if r["event"] == "epoch"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path / "model.pt", weights_only=True)


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def synthetic_bert_data(root: Path) -> Path:
    """The 1-process BERT4Rec test's data (tests/test_bert4rec.py): 800 users, 80 items, next item
    perm[current] with probability 0.8. BERT4Rec needs far more epochs on the bundled sample than a
    test can spend before it beats popularity (1 process alike); this is the data its own
    far-better-than-popularity test uses."""
    n_items, rng = 80, np.random.default_rng(0)
    perm = rng.permutation(n_items) + 1
    seqs = []
    for _ in range(800):
        s = [int(rng.integers(1, n_items + 1))]
        for _ in range(int(rng.integers(15, 31)) - 1):
            s.append(int(perm[s[-1] - 1]) if rng.random() < 0.8 else int(rng.integers(1, n_items + 1)))
        seqs.append(s)
    formats.write_vocab(root / "vocab.txt", [f"item{i}" for i in range(1, n_items + 1)])
    splits = {"train": [s[:-2] for s in seqs], "valid": [s[:-1] for s in seqs], "test": seqs}
    formats.save_processed(
        root / "syn", dataset="synthetic", eval_target="last", vocab_file=root / "vocab.txt",
        splits={k: Sequences.from_lists(v) for k, v in splits.items()},
    )  # fmt: skip
    return root / "syn"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """Every model trained with --num-devices 2, the three runs side by side (GRU4Rec's run is
    also the reference of the resume and two-node test)."""
    root = tmp_path_factory.mktemp("dist")
    syn = synthetic_bert_data(root)
    runs = [
        start([*args, "--model-dir", name, "--num-devices", "2"], root, name)
        for name, args in (("gru4rec", GRU), ("sasrec", SAS), ("bert4rec", [*BERT, "--train-dir", str(syn)]))
    ]
    for proc in runs:
        ok(finish(proc))
    return root


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def rank_of(pid: int) -> int | None:
    try:
        env = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


def alive(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start(args: list[str], cwd: Path, log: str, env: dict | None = None, python: tuple[str, ...] = ("-m", "seqrec_cli")):
    """A background process whose output goes to <cwd>/<log>.out and .err (no pipe to fill up)."""
    out, err = open(cwd / f"{log}.out", "w"), open(cwd / f"{log}.err", "w")
    proc = subprocess.Popen([sys.executable, *python, *args], cwd=cwd, env=env or ENV, stdout=out, stderr=err, text=True)
    out.close(), err.close()
    proc.log = cwd / log  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    proc.wait(timeout=timeout)
    log = proc.log  # type: ignore[attr-defined]
    out, err = Path(f"{log}.out").read_text(), Path(f"{log}.err").read_text()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for(predicate, proc: subprocess.Popen | None = None, timeout: float = TIMEOUT):
    """Poll until ``predicate()`` is truthy (returned), ``proc`` ends, or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (proc is None or proc.poll() is None):
        got = predicate()
        if got:
            return got
        time.sleep(0.01)
    return predicate()


def in_epoch(model_dir: Path, epoch: int) -> bool:
    path = model_dir / "metrics.jsonl"
    if not path.is_file():
        return False
    return any(line.endswith("}") and json.loads(line).get("epoch") == epoch for line in path.read_text().splitlines())


# ---------------------------------------------------------------------------------------------- the parts, in this process
def test_session_parallel_shards_are_the_global_walk_and_take_equal_steps():
    """N processes x B slots: together exactly the walk of one process with N x B slots (every
    event a target once), the same number of steps each, empty steps once a process's slots are
    done, and keep/reset consistent with each process's own rows."""
    from seqrec_cli.data.session_parallel import session_parallel

    rng = np.random.default_rng(0)
    seqs = Sequences.from_lists([list(range(1, int(n) + 1)) for n in rng.integers(1, 12, size=40)])
    order = rng.permutation(len(seqs))
    whole = list(session_parallel(seqs, order, 6))
    parts = [list(session_parallel(seqs, order, 3, rank=r, world=2)) for r in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole)
    for step, mine, theirs in zip(whole, *parts):
        got = sorted(zip(np.concatenate([mine.rows, theirs.rows]).tolist(), np.concatenate([mine.positions, theirs.positions]).tolist()))
        assert got == sorted(zip(step.rows.tolist(), step.positions.tolist()))
    assert any(len(p.rows) == 0 for part in parts for p in part)  # the tail: a process with no rows left
    for part in parts:  # each process's hidden state follows its own rows
        prev = None
        for p in part:
            if prev is not None:
                carried = prev if p.keep is None else prev[p.keep]
                assert len(carried) == len(p.rows)
                assert all(r == c for r, c, new in zip(p.rows, carried, p.reset) if not new)
            prev = p.rows


def test_gru4rec_takes_an_empty_step():
    from seqrec_cli.data.session_parallel import SessionParallelBatch
    from seqrec_cli.models.gru4rec import GRU4Rec
    from seqrec_cli.models.gru4rec_config import GRU4RecConfig

    model = GRU4Rec(GRU4RecConfig(n_items=10, hidden_size=4))
    empty = np.zeros(0, dtype=np.int64)
    batch = SessionParallelBatch(torch.from_numpy(empty), torch.from_numpy(empty), torch.zeros(0, dtype=torch.bool), None,
                                 torch.tensor([3, 4]), torch.zeros(2), 5, empty, empty)  # fmt: skip
    out = model(batch)
    out.loss.backward()
    assert out.loss.item() == 0.0 and out.n_targets == 0
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("model", ["bert4rec", "sasrec"])
def test_window_shards_cover_every_window_and_take_equal_steps(model):
    from seqrec_cli.distributed import Shard
    from seqrec_cli.models import REGISTRY

    entry = REGISTRY[model]
    data = formats.load_processed(SAMPLE)
    config = entry.config(n_items=data.n_items, max_len=20)
    tc = entry.train_config(batch_size=7, seed=3)
    batchers = [entry.load_train_batcher()(data, config, tc, torch.device("cpu"), shard=Shard(r, 2)) for r in range(2)]
    one = entry.load_train_batcher()(data, config, tc, torch.device("cpu"))
    steps = [b.steps_per_epoch() for b in batchers]
    assert steps[0] == steps[1] and [len(list(b.epoch_batches())) for b in batchers] == steps  # twice: epochs 1, 2
    windows = batchers[0].windows if model == "bert4rec" else batchers[0].inputs
    others = batchers[1].windows if model == "bert4rec" else batchers[1].inputs
    whole = one.windows if model == "bert4rec" else one.inputs
    assert len(windows) + len(others) == len(whole) and abs(len(windows) - len(others)) <= 1
    assert one.rng.bit_generator.state == np.random.default_rng(3).bit_generator.state  # 1 process: seqrec's own streams
    assert batchers[0].rng.bit_generator.state != batchers[1].rng.bit_generator.state


def test_metric_histograms_add_up_exactly():
    from seqrec_cli.metrics import MetricAccumulator

    ranks = torch.from_numpy(np.random.default_rng(1).integers(1, 500, size=1000))
    whole, parts = MetricAccumulator((1, 10, 20)), [MetricAccumulator((1, 10, 20)) for _ in range(3)]
    whole.add(ranks)
    for k, part in enumerate(parts):
        for chunk in ranks[k::3].split(7):
            part.add(chunk)
    total = MetricAccumulator((1, 10, 20))
    for part in parts:
        total.add_hist(part.hist)
    assert total.count == whole.count == 1000 and total.result() == whole.result()  # to the last bit
    assert whole.result()["mrr"] == pytest.approx(float((1.0 / ranks.double()).mean()))


# ---------------------------------------------------------------------------------------------- training + evaluation
MARGINS = {  # model -> (protocol flag, metric, factor, gap): those of the 1-process tests
    "gru4rec": ([], "hr@10", 2.0, 0.3),  # test_gru4rec_learns_sequential_structure
    "sasrec": (["--filter-seen"], "hr@10", 3.0, 0.3),  # test_sasrec_beats_popularity_on_the_sample
    "bert4rec": ([], "hr@10", 2.0, 0.2),  # test_learns_structured_sequences_far_better_than_popularity
}


@pytest.mark.parametrize("model", ["gru4rec", "sasrec", "bert4rec"])
def test_two_process_training_beats_popularity_and_validates_exactly_once(trained, runner, monkeypatch, model):
    monkeypatch.chdir(trained)
    folder = trained / model
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == sorted(
        ["run.json", "metrics.jsonl", "curves.png", *(f"epoch_{e}" for e in range(1, len(epochs(folder)) + 1))]
    )  # one set of checkpoints, written by rank 0 alone
    last = epochs(folder)[-1]
    config = json.loads((folder / f"epoch_{last['epoch']}" / "config.json").read_text())
    assert config["world_size"] == 2 and len(last["peak_rss_mb"]) == 2
    data = Path(config["data"]["train_dir"])
    # validation ran in 2 processes; 1 process evaluating the checkpoint finds the same, exactly
    one = invoke(runner, "evaluate", "--model-dir", model, "--split", "valid", "--cutoffs", "10,20",
                 "--eval-batch-size", 512 if model == "gru4rec" else 256, "--output-json", f"{model}_valid.json")  # fmt: skip
    assert one.exit_code == 0, one.output
    single = json.loads((trained / f"{model}_valid.json").read_text())
    assert last["valid"] == single["metrics"] and last["valid_predictions"] == single["predictions"] == 600 + 200 * (
        model == "bert4rec"
    )
    # the margin over popularity that 1 process must reach
    flags, metric, factor, gap = MARGINS[model]
    assert invoke(runner, "evaluate", "--model-dir", model, *flags, "--output-json", f"{model}.json").exit_code == 0
    assert invoke(runner, "evaluate", "--baseline", "popularity", "--test-dir", data, *flags,
                  "--output-json", f"{model}_pop.json").exit_code == 0  # fmt: skip
    value = json.loads((trained / f"{model}.json").read_text())["metrics"][metric]
    pop = json.loads((trained / f"{model}_pop.json").read_text())["metrics"][metric]
    assert value > factor * pop and value > pop + gap, (value, pop)


def test_evaluate_and_recommend_with_two_processes_equal_one_process(trained, runner, monkeypatch):
    """GRU4Rec's evaluation (session-parallel scoring, sharded by session) under the sampled
    protocol (the full protocol of every model is checked through validation above), and SASRec's
    recommendations: one file, in input order, byte for byte what 1 process writes; a user error
    in 2 processes is the one line 1 process prints. The launches run side by side."""
    monkeypatch.chdir(trained)
    evaluate = ["evaluate", "--model-dir", "gru4rec", "--eval-batch-size", "64", "--negatives", "20"]
    recommend = ["recommend", "--model-dir", "sasrec", "--top-k", "5", "--exclude-seen", "--eval-batch-size", "64"]
    two = [
        start([*evaluate, "--num-devices", "2", "--threads", "1", "--output-json", "two.json"], trained, "ev2"),
        start([*recommend, "--num-devices", "2", "--threads", "1", "--output", "two.tsv"], trained, "rec2"),
        start([*GRU, "--model-dir", "gru4rec", "--num-devices", "2"], trained, "refused"),  # a user error
    ]
    result = invoke(runner, *evaluate, "--output-json", "one.json")
    assert result.exit_code == 0, result.output
    assert invoke(runner, *recommend, "--output", "one.tsv").exit_code == 0
    done = [ok(finish(proc)) for proc in two[:2]]
    refused = finish(two[2])  # what 1 process says, once, and nothing of the workers' own
    assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
        "Error: gru4rec already has checkpoints (epoch 1..2); pass --resume to continue that run or --overwrite to start over"
    ], refused.stderr[-2000:]
    one, two_json = (json.loads((trained / f"{n}.json").read_text()) for n in ("one", "two"))
    assert two_json["protocol"] == one["protocol"] == "popularity-20"
    assert two_json["predictions"] == one["predictions"] == 600 and two_json["metrics"] == one["metrics"]
    assert done[1].stdout.count("top-5 for 600 sequences") == 1  # rank 0 alone reports
    assert (trained / "two.tsv").read_bytes() == (trained / "one.tsv").read_bytes()


# ---------------------------------------------------------------------------------------------- failures and resume
def test_kill_one_worker_ends_the_run_with_one_error_line(trained):
    proc = start([*GRU, "--epochs", "20", "--model-dir", "w", "--num-devices", "2"], trained, "w")
    assert wait_for(lambda: in_epoch(trained / "w", 1), proc), finish(proc).stderr[-2000:]
    workers = children(proc.pid)
    victim = next(pid for pid in workers if rank_of(pid) == 1)
    os.kill(victim, signal.SIGKILL)
    t0 = time.monotonic()
    done = finish(proc, timeout=60)
    assert time.monotonic() - t0 < 60
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error:")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert errors[0].startswith(f"Error: worker 1 of 2 (PID {victim}) was killed by SIGKILL"), errors[0]
    assert "continue with --resume" in errors[0]
    assert wait_for(lambda: not any(alive(pid) for pid in workers), timeout=10), "a worker outlived the run"
    for folder in (trained / "w").glob("epoch_*"):  # every checkpoint there is whole
        assert weights(folder)


def test_two_nodes_equal_num_devices_two_and_a_killed_run_resumes_bit_identical(trained):
    """Two torchrun agents on 127.0.0.1, one process each (c10d rendezvous), train what
    --num-devices 2 trained (all-reducing GRU4Rec's sparse gradients the NCCL way). kill -9 of the
    whole run in its second epoch (the agents: their workers die with them), then --resume with
    --num-devices 2: every figure and weight ends bit-identical to the uninterrupted run."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**ENV, "SEQREC_SPARSE_ALLREDUCE": "dense"}
    nodes = [
        start(["--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(k), "--rdzv-backend", "c10d",
               "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "seqrec-test",
               "-m", "seqrec_cli", *GRU, "--model-dir", "k"], trained, f"node{k}", env, ("-m", "torch.distributed.run"))
        for k in (0, 1)
    ]  # fmt: skip
    reached = wait_for(lambda: in_epoch(trained / "k", 2), nodes[0])
    workers = [pid for node in nodes for pid in children(node.pid)]
    for node in nodes:  # kill -9 of the launchers: no chance to clean up; their workers must not live on
        node.kill()
    outs = [finish(node) for node in nodes]
    assert reached, [o.stderr[-2000:] for o in outs]
    assert len(workers) == 2
    assert wait_for(lambda: not any(alive(pid) for pid in workers), timeout=30), "a worker outlived its launcher"
    assert sum(o.stdout.count("epoch 1:") for o in outs) == 1  # rank 0 alone prints
    assert same_weights(trained / "k" / "epoch_1", trained / "gru4rec" / "epoch_1")  # two nodes == --num-devices 2
    assert not (trained / "k" / "epoch_2").exists(), "the kill came too late to be mid-epoch"

    resumed = ok(seqrec(*GRU, "--model-dir", "k", "--num-devices", "2", "--resume", cwd=trained))
    assert "resuming from k/epoch_1" in resumed.stderr
    assert [r["train_loss"] for r in epochs(trained / "k")] == [r["train_loss"] for r in epochs(trained / "gru4rec")]
    assert [r["valid"] for r in epochs(trained / "k")] == [r["valid"] for r in epochs(trained / "gru4rec")]
    assert same_weights(trained / "k" / "epoch_2", trained / "gru4rec" / "epoch_2")
    state = torch.load(trained / "k" / "epoch_2" / "train_state.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rng_ranks"]) == 2


def test_resume_with_another_number_of_processes_is_one_clear_error(trained, runner, monkeypatch):
    monkeypatch.chdir(trained)
    one_process = [a for a in GRU if a not in ("--threads", "1")]  # (in this process: leave its threads alone)
    other = invoke(runner, *one_process, "--model-dir", "gru4rec", "--epochs", "3", "--resume")
    assert error_line(other, alone=False) == (
        "Error: --resume: gru4rec/epoch_2 was trained by 2 process(es), this run has 1: resume with --num-devices 2 "
        "(or torchrun with 2 processes in all): each process's share of the data and its random streams are saved for "
        "that number"
    )
