#!/usr/bin/env python
"""GRU4Rec's training step on the CPU with and without the compiled kernels (issue 15, goal 2).

Times the training steps of GRU4Rec with the published setting (`--params
gru4rec_rsc15_xe_shared_100_best`: batch 32, 2,048 shared negatives, sampled softmax with logQ,
100 units, Adagrad with momentum) on yoochoose 1/64, one thread, outside the CLI: the session-
parallel batches, forward, backward and optimizer step of `seqrec train`, from the same seed.
Sides, alternated round by round (A B [C] A B [C] ...), each in a fresh process:

  A  compiled: this checkout with its numba kernels (seqrec_cli/kernels.py), the default
  B  torch:    this checkout with SEQREC_NUMBA=0 (the same update as torch operations)
  C  against:  another checkout (--against DIR, e.g. `git worktree add /tmp/old <commit>`), as is

Each side warms up for --warmup steps, then times --steps steps: ms per step, and of that the
batch (session-parallel step, negatives), forward, backward and optimizer. It also reports the
loss summed over the timed steps: A and B must agree to the last bit (the kernels give the torch
path's float32 results); C may differ where the code changed its arithmetic.

Data: --data, a processed yoochoose 1/64 folder; by default it is made under --work from the
shared copy (`seqrec preprocess text2id` of the SR-GNN split). Progress goes to stderr; stdout
gets one line, SUMMARY key=value ...: <side>_ms_per_step (median over rounds), per-part medians,
speedup (torch / compiled), against_speedup (against / compiled), same_loss (yes when A and B
summed the same loss).

    .venv/bin/python scripts/bench_gru4rec_step.py                          # about 2 minutes
    .venv/bin/python scripts/bench_gru4rec_step.py --against /tmp/old       # with an older checkout
    .venv/bin/python scripts/bench_gru4rec_step.py --data data/sample --steps 200 --warmup 20 --rounds 1
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import _bench as b

DERIVED = b.SHARED_DATA / "rsc15-yoochoose" / "srgnn_yoochoose1_64" / "derived_text"
PARAMS = "gru4rec_rsc15_xe_shared_100_best"
PARTS = ("batch", "forward", "backward", "optimizer")

# the measurement, run in a child process with the side's checkout first on sys.path
CHILD = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
from seqrec_cli import formats
from seqrec_cli.hparams import params_of, read_json_file, values_from_file
from seqrec_cli.models import REGISTRY
from seqrec_cli.models.base import to_device
import seqrec_cli
data_dir, params_file, warmup, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
entry = REGISTRY["gru4rec"]
data = formats.load_processed(data_dir)
body = read_json_file(params_file)
model_fields = {p.name for p in params_of(entry.config)}
values = {n: v for n, (v, _) in values_from_file(body, params_file, [*params_of(entry.config), *params_of(entry.train_config)]).items()}
mc = entry.config(n_items=data.n_items, **{k: v for k, v in values.items() if k in model_fields})
tc = entry.train_config(**{k: v for k, v in values.items() if k not in model_fields})
torch.manual_seed(tc.seed)
model = entry.load_model()(mc)
cpu = torch.device("cpu")
batcher = entry.load_train_batcher()(data, mc, tc, cpu)
optimizer, _ = model.configure_optimizers(tc, 10**6)
model.train()
model.reset_state()
batches = batcher.epoch_batches()
times = {k: 0.0 for k in ("batch", "forward", "backward", "optimizer")}
loss = 0.0
for i in range(warmup + steps):
    if i == warmup:
        times = {k: 0.0 for k in times}
        loss, t_start = 0.0, time.perf_counter()
    t0 = time.perf_counter()
    batch = to_device(next(batches), cpu)
    t1 = time.perf_counter()
    out = model(batch)
    t2 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    t3 = time.perf_counter()
    optimizer.step()
    t4 = time.perf_counter()
    for k, d in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
        times[k] += d
    loss += out.loss_sum
total = time.perf_counter() - t_start
print(json.dumps({"ms_per_step": 1000 * total / steps, **{k: 1000 * v / steps for k, v in times.items()},
                  "loss": loss, "source": seqrec_cli.__file__}))
"""


def parse_args(argv):
    ap = b.parser(__doc__)
    ap.add_argument("--data", type=Path, help="processed yoochoose 1/64 folder [made under --work]")
    ap.add_argument("--against", type=Path, help="another seqrec checkout, timed as side C")
    ap.add_argument("--steps", type=b.positive, default=2000, help="timed steps per side and round [%(default)s]")
    ap.add_argument("--warmup", type=b.non_negative, default=200, help="untimed steps first [%(default)s]")
    ap.add_argument("--rounds", type=b.positive, default=3, help="rounds of A B [C] [%(default)s]")
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-gru4rec-step"), help="scratch folder [%(default)s]")
    return ap.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    work = b.work_dir(args.work)
    data = None if args.data is None else args.data.resolve()
    if data is None:
        data = work / "data" / "yoochoose1_64"
        if not (data / "manifest.json").exists():
            b.need_file(DERIVED / "train_sessions.txt", "the shared yoochoose 1/64 split")
            b.run([b.seqrec_exe(), "preprocess", "text2id", "--train", DERIVED / "train_sessions.txt", "--test",
                   DERIVED / "test_sessions.txt", "--name", "yoochoose1_64"], work, b.child_env(), work, "text2id", "text2id")  # fmt: skip
    elif not (data / "manifest.json").exists():
        raise b.BenchError(f"--data {data} is not a processed folder (no manifest.json)")
    if args.against is not None and not (args.against / "seqrec_cli").is_dir():
        raise b.BenchError(f"--against {args.against} is not a seqrec checkout (no seqrec_cli folder)")
    sides = {"compiled": (b.REPO, {}), "torch": (b.REPO, {"SEQREC_NUMBA": "0"})}
    if args.against is not None:
        sides["against"] = (args.against.resolve(), {})
    params_file = b.REPO / "seqrec_cli" / "params" / f"{PARAMS}.json"
    results: dict[str, list[dict]] = {name: [] for name in sides}
    for r in range(args.rounds):
        for name, (source, extra) in sides.items():
            env = b.child_env(PYTHONPATH=str(source), OMP_NUM_THREADS="1", **extra)
            cmd = [sys.executable, "-c", CHILD, str(data), str(params_file), str(args.warmup), str(args.steps)]
            done = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True)  # cwd: not this checkout
            if done.returncode != 0:
                sys.stderr.write(done.stderr[-3000:])
                raise b.BenchError(f"side {name} failed (exit {done.returncode})")
            res = json.loads(done.stdout.strip().splitlines()[-1])
            if Path(res["source"]).parent.parent != source:
                raise b.BenchError(f"side {name} imported seqrec from {res['source']}, not from {source}")
            results[name].append(res)
            b.log(f"round {r + 1}/{args.rounds} {name}: {res['ms_per_step']:.3f} ms/step ("
                  + ", ".join(f"{k} {res[k]:.3f}" for k in PARTS) + f"), loss sum {res['loss']:.6f}; {Path(res['source']).parent.parent}")  # fmt: skip
    fields: dict[str, object] = {"steps": args.steps, "rounds": args.rounds}
    for name, res in results.items():
        fields[f"{name}_ms_per_step"] = b.median([x["ms_per_step"] for x in res])
        for k in PARTS:
            fields[f"{name}_{k}_ms"] = b.median([x[k] for x in res])
    fields["speedup"] = fields["torch_ms_per_step"] / fields["compiled_ms_per_step"]
    if "against" in results:
        fields["against_speedup"] = fields["against_ms_per_step"] / fields["compiled_ms_per_step"]
    same = all(a["loss"] == t["loss"] for a, t in zip(results["compiled"], results["torch"]))
    fields["same_loss"] = "yes" if same else "no"
    b.summary(fields)


if __name__ == "__main__":
    sys.exit(b.main_guard(main))
