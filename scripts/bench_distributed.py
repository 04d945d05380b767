#!/usr/bin/env python
"""1 process against 2 (``--num-devices 2``) on this machine, side by side (issue 13).

For ML-1M BERT4Rec and yoochoose 1/64 GRU4Rec, alternating 1-process and 2-process runs (round 1:
1p, 2p; round 2: 2p, 1p; ...) of the same number of epochs, each from scratch:

* epoch time (the mean of the ``seconds`` of its epochs in metrics.jsonl, validation excluded)
  and the whole command's wall time, start-up included;
* peak RSS of every process (``peak_rss_mb`` of the last epoch record, rank order) and of the
  launcher (``ru_maxrss`` of the child, from ``os.wait4``; with 1 process that is the process);
* the test figures after those epochs (``seqrec evaluate``, 1 process: BERT4Rec HR@10 / NDCG@10
  full ranking, GRU4Rec recall@20 / MRR@20).

The 2-process runs keep the global batch: ``--batch-size`` per process is half the 1-process
batch (BERT4Rec 32 -> 16, GRU4Rec 32 -> 16, so both runs take the same number of optimizer steps
and learning rate, docs/distributed.md); ``--same-per-device-batch`` keeps the per-process batch
instead (global batch doubled, half the steps). Threads: the 1-process run uses all cores, each
of the 2 processes half of them (seqrec's default).

Data (made once under ``--work``, default /tmp/seqrec-bench-distributed, outside the repository):
ML-1M by ``seqrec download ml-1m --from-file <shared ml-1m.zip>`` + ``seqrec preprocess ml-1m``;
yoochoose 1/64 by ``seqrec preprocess text2id`` of the shared SR-GNN split. Prints one line per
run and one ``SUMMARY key=value ...`` line for docs/benchmarks.md. Run it on a quiet machine:

    .venv/bin/python scripts/bench_distributed.py                 # 3 epochs each, 2 rounds (~1 h on 2 cores)
    .venv/bin/python scripts/bench_distributed.py --epochs 10 --rounds 1
    .venv/bin/python scripts/bench_distributed.py --smoke         # the bundled sample, 1 epoch: checks the script
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _bench import epoch_records, md5

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ML1M_ZIP = SHARED / "movielens-1m" / "reconstructed" / "ml-1m.zip"
YOO = SHARED / "rsc15-yoochoose" / "srgnn_yoochoose1_64" / "derived_text"


def seqrec_bin() -> str:
    return shutil.which("seqrec") or str(Path(sys.executable).with_name("seqrec"))


def run(cmd: list[str], cwd: Path, log: Path) -> tuple[int, float, float]:
    """(exit code, wall seconds, peak RSS of the command's own process in MB)."""
    with open(log.with_suffix(".out"), "w") as fo, open(log.with_suffix(".err"), "w") as fe:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=cwd, stdout=fo, stderr=fe)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
    return os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss / 1024


def step(cmd: list[str], cwd: Path) -> None:
    """Run a preparation command; a failure ends the script with one Error: line."""
    if subprocess.run(cmd, cwd=cwd).returncode != 0:
        raise SystemExit(f"Error: {' '.join(cmd[1:3])} failed (its message is above)")


def prepare(work: Path, args) -> dict[str, Path]:
    """The processed data folders: given (--ml1m-dir, --yoochoose-dir) or made once under --work."""
    if args.smoke:
        return {"bert4rec": REPO / "data" / "sample", "gru4rec": REPO / "data" / "sample"}
    sq = seqrec_bin()
    ml1m, yoo = args.ml1m_dir or work / "data" / "ml-1m", args.yoochoose_dir or work / "data" / "yoochoose1_64"
    for given in (args.ml1m_dir, args.yoochoose_dir):
        if given is not None and not (given / "manifest.json").is_file():
            raise SystemExit(f"Error: {given}: not a processed data folder (no manifest.json)")
    if not (ml1m / "manifest.json").is_file():
        if not ML1M_ZIP.is_file():
            raise SystemExit(f"Error: {ML1M_ZIP}: not found (give --ml1m-dir, a processed ML-1M folder)")
        # this copy's own MD5: the benchmark measures training, not the download (the copy's
        # timestamps are reconstructed, so it differs from GroupLens' published archive)
        step([sq, "download", "ml-1m", "--from-file", str(ML1M_ZIP), "--checksum", md5(ML1M_ZIP)], work)
        step([sq, "preprocess", "ml-1m"], work)
    if not (yoo / "manifest.json").is_file():
        step(
            [sq, "preprocess", "text2id", "--name", "yoochoose1_64", "--train", str(YOO / "train_sessions.txt"),
             "--test", str(YOO / "test_sessions.txt")],
            work,
        )  # fmt: skip
    return {"bert4rec": ml1m, "gru4rec": yoo}


def one_run(model: str, data: Path, n: int, args, work: Path, tag: str) -> dict:
    sq = seqrec_bin()
    batch = 32 if (n == 1 or args.same_per_device_batch) else 32 // n
    model_dir = work / "runs" / tag
    shutil.rmtree(model_dir, ignore_errors=True)
    cmd = [sq, "train", model, "--train-dir", str(data), "--model-dir", str(model_dir), "--epochs", str(args.epochs),
           "--batch-size", str(batch), "--log-every", "100000", "--valid-every", str(10**6)]  # fmt: skip
    if n > 1:
        cmd += ["--num-devices", str(n)]
    if args.smoke:
        cmd += ["--hidden-size", "16"] + (["--max-len", "50"] if model == "bert4rec" else ["--n-sample", "64"])
    rc, wall, launcher_mb = run(cmd, work, work / "runs" / f"{tag}.train")
    if rc != 0:
        raise SystemExit(f"{tag}: training failed ({rc}); see {work / 'runs' / tag}.train.err")
    epochs = epoch_records(model_dir)
    out = work / "runs" / f"{tag}.eval.json"
    ev = [sq, "evaluate", "--model-dir", str(model_dir), "--epoch", str(args.epochs), "--output-json", str(out)]
    rc, eval_wall, _ = run(ev, work, work / "runs" / f"{tag}.eval")
    if rc != 0:
        raise SystemExit(f"{tag}: evaluation failed ({rc})")
    metrics = json.loads(out.read_text())["metrics"]
    keys = ("hr@10", "ndcg@10") if model == "bert4rec" else ("recall@20", "mrr@20")
    if model == "gru4rec" and "recall@20" not in metrics:  # leave-one-out data (--smoke): hr@20
        keys = ("hr@20", "mrr@20")
    result = {
        "model": model, "processes": n, "batch_per_process": batch,
        "epoch_s": statistics.mean(r["seconds"] for r in epochs), "wall_s": wall,
        "rss_mb": epochs[-1].get("peak_rss_mb", [launcher_mb]), "launcher_mb": launcher_mb,  # 1 process: itself
        "steps_per_epoch": epochs[-1]["steps"], "metrics": {k: metrics[k] for k in keys}, "eval_s": eval_wall,
    }  # fmt: skip
    shown = " ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
    print(
        f"{tag}: {n} process(es), batch {batch}/process, {result['steps_per_epoch']} steps/epoch, epoch "
        f"{result['epoch_s']:.1f} s (wall {wall:.0f} s), peak RSS {'/'.join(f'{m:.0f}' for m in result['rss_mb'])} MB "
        f"(launcher {launcher_mb:.0f} MB); after {args.epochs} epoch(s): {shown}",
        flush=True,
    )
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-distributed"), help="scratch folder")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (1 process, 2 processes), order alternating")
    ap.add_argument("--models", default="bert4rec,gru4rec", help="comma-separated: bert4rec, gru4rec")
    ap.add_argument("--same-per-device-batch", action="store_true", help="2 processes x the 1-process batch")
    ap.add_argument("--smoke", action="store_true", help="the bundled sample, tiny models, 1 epoch, 1 round")
    ap.add_argument("--ml1m-dir", type=Path, help="processed ML-1M folder [made under --work]")
    ap.add_argument("--yoochoose-dir", type=Path, help="processed yoochoose 1/64 folder [made under --work]")
    args = ap.parse_args(argv)
    if args.smoke:
        args.epochs, args.rounds = 1, 1
    work = args.work.resolve()
    (work / "runs").mkdir(parents=True, exist_ok=True)
    data = prepare(work, args)
    results: dict[tuple[str, int], list[dict]] = {}
    for r in range(args.rounds):
        for model in args.models.split(","):
            for n in (1, 2) if r % 2 == 0 else (2, 1):
                results.setdefault((model, n), []).append(one_run(model, data[model], n, args, work, f"{model}-{n}p-r{r + 1}"))
    summary: dict[str, object] = {"cpus": os.cpu_count(), "epochs": args.epochs, "rounds": args.rounds}
    for model in args.models.split(","):
        for n in (1, 2):
            runs = results[(model, n)]
            summary[f"{model}_{n}p_epoch_s"] = round(statistics.mean(x["epoch_s"] for x in runs), 1)
            summary[f"{model}_{n}p_rss_mb"] = "/".join(f"{max(x['rss_mb'][i] for x in runs):.0f}" for i in range(n))
            for k, v in runs[-1]["metrics"].items():
                summary[f"{model}_{n}p_{k}"] = round(v, 4)
        one, two = summary[f"{model}_1p_epoch_s"], summary[f"{model}_2p_epoch_s"]
        summary[f"{model}_speedup"] = round(float(one) / float(two), 2) if two else None  # type: ignore[arg-type]
    print("SUMMARY " + " ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
