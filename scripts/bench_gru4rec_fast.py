#!/usr/bin/env python
"""GRU4Rec's time to recall@20 >= 0.71 on yoochoose 1/64 (issue 15, goal 2): the parameter files
side by side, each trained and evaluated as a user would.

For each --params name, alternately (A B A B ... for --rounds rounds, never two at once):

    seqrec train gru4rec --train-dir <yoochoose1_64> --params NAME     # seqrec's default threads
    seqrec evaluate --model-dir <its folder>                           # its last epoch, full ranking

then ``seqrec infer`` over every epoch checkpoint of the first round of each (not timed), for the
curve. Timed: the wall seconds of the train command (start-up, data loading and checkpoints
included) and of the evaluate command; the goal is train + evaluate <= 300 s with test recall@20
>= 0.71 (every position of every test session ranked against all 17,376 items, pessimistic ties).

The data is the SR-GNN split in the shared folder, mapped by ``seqrec preprocess text2id`` under
--work, or --yoochoose-dir (a processed folder). Progress on stderr; one stdout line, SUMMARY
key=value ...: per parameter file its median train_s, eval_s, wall_s, recall@20, mrr@20, the
first epoch with recall@20 >= 0.71 and met (yes when both goals hold in every round).

    .venv/bin/python scripts/bench_gru4rec_fast.py                                  # ~10 minutes
    .venv/bin/python scripts/bench_gru4rec_fast.py --yoochoose-dir data/sample --rounds 1 \\
        --extra "--epochs 1"                                                         # a smoke run
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import _bench as b

DERIVED = b.SHARED_DATA / "rsc15-yoochoose" / "srgnn_yoochoose1_64" / "derived_text"
GOAL_S, GOAL_RECALL = 300.0, 0.71  # issue 15, goal 2


def parse_args(argv):
    ap = b.parser(__doc__)
    ap.add_argument("--params", default="gru4rec_rsc15_fast,gru4rec_rsc15_xe_shared_100_best",
                    help="parameter files to compare, comma-separated [%(default)s]")  # fmt: skip
    ap.add_argument("--rounds", type=b.positive, default=2, help="timed runs of each [%(default)s]")
    ap.add_argument("--extra", default="", help="options added to every train command [none]")
    ap.add_argument("--yoochoose-dir", type=Path, help="processed yoochoose 1/64 folder [made under --work]")
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-gru4rec-fast"), help="scratch folder (emptied first) [%(default)s]")
    return ap.parse_args(argv)


def hits(metrics: dict) -> dict:
    """recall@k of session data is HR@k of leave-one-out data (the smoke run's sample)."""
    return {k.replace("hr@", "recall@"): v for k, v in metrics.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    names = [p for p in args.params.split(",") if p]
    work = b.work_dir(args.work, fresh=True)
    logs, seqrec, env = work / "logs", b.seqrec_exe(), b.child_env(PYTHONPATH=str(b.REPO))

    def step(name: str, *cmd) -> b.Result:
        return b.run([seqrec, *map(str, cmd)], work, env, logs, name, f"seqrec {cmd[0]} ({name})")

    data = args.yoochoose_dir
    if data is None:
        b.need_file(DERIVED / "train_sessions.txt", "the shared yoochoose 1/64 file")
        step("text2id", "preprocess", "text2id", "--train", DERIVED / "train_sessions.txt",
             "--test", DERIVED / "test_sessions.txt", "--name", "yoochoose1_64")  # fmt: skip
        data = work / "data" / "yoochoose1_64"
    data = b.need_file(data / "manifest.json", "--yoochoose-dir").parent.absolute()
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(1, args.rounds + 1):
        for n in names:
            model_dir = work / f"{n}-r{r}"
            train = step(f"train-{n}-r{r}", "train", "gru4rec", "--train-dir", data, "--model-dir", model_dir,
                         "--params", n, "--log-every", 100000, *shlex.split(args.extra))  # fmt: skip
            out = work / f"{n}-r{r}.json"
            ev = step(f"evaluate-{n}-r{r}", "evaluate", "--model-dir", model_dir, "--test-dir", data,
                      "--cutoffs", "20", "--output-json", out)  # fmt: skip
            m = hits(json.loads(out.read_text())["metrics"])
            runs[n].append({"train": train.wall, "eval": ev.wall, "recall": m["recall@20"], "mrr": m["mrr@20"], "dir": model_dir})
            b.log(f"round {r}, {n}: train {train.wall:.1f}s + evaluate {ev.wall:.1f}s, recall@20 {m['recall@20']:.4f}, mrr@20 {m['mrr@20']:.4f}")
    fields: dict[str, object] = {"rounds": args.rounds, "goal": f"wall<={GOAL_S:.0f},recall@20>={GOAL_RECALL}"}
    for n in names:
        first = runs[n][0]["dir"]
        last = len(list(first.glob("epoch_*")))
        step(f"infer-{n}", "infer", "--model-dir", first, "--test-dir", data, "--start-index", 1, "--last-index", last, "--cutoffs", "20")
        curve = json.loads((first / "infer.json").read_text())
        recalls = [(row["epoch"], hits(row["metrics"])["recall@20"]) for row in curve["results"]]
        b.log(f"{n}, round 1, recall@20 by epoch: " + " ".join(f"{e}:{v:.4f}" for e, v in recalls))
        rs = runs[n]
        walls = [x["train"] + x["eval"] for x in rs]
        fields.update({
            f"{n}_train_s": round(b.median([x["train"] for x in rs]), 1),
            f"{n}_eval_s": round(b.median([x["eval"] for x in rs]), 1),
            f"{n}_wall_s": round(b.median(walls), 1),
            f"{n}_recall@20": round(b.median([x["recall"] for x in rs]), 4),
            f"{n}_mrr@20": round(b.median([x["mrr"] for x in rs]), 4),
            f"{n}_epochs": last,
            f"{n}_first_epoch_0.71": next((e for e, v in recalls if v >= GOAL_RECALL), "none"),
            f"{n}_met": "yes" if all(w <= GOAL_S for w in walls) and all(x["recall"] >= GOAL_RECALL for x in rs) else "no",
        })  # fmt: skip
    b.summary(fields)
    return 0


if __name__ == "__main__":
    sys.exit(b.main_guard(main))
