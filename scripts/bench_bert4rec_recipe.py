#!/usr/bin/env python
"""What `seqrec train bert4rec` with no options gives on ML-1M, and how long it takes (issue 15, goal 1).

In a fresh folder (--work, default /tmp/seqrec-bench-recipe-<model>), as a user would:

    seqrec download ml-1m --from-file <zip> --checksum <its MD5>
    seqrec preprocess ml-1m
    seqrec train <model> [TRAIN_OPTION ...]          # no options by default: the shipped defaults
    seqrec evaluate --filter-seen                    # the best validation epoch, full+filter-seen

then (progress on stderr) one stdout line, SUMMARY key=value ...: the wall seconds of training, of the evaluation and of both (the goal:
<= 1,200 s on the 2-core CPU), the test `full+filter-seen` HR@10 and NDCG@10 (the goal: >= 0.29
and >= 0.16), the best epoch, and whether all three goals are met. Thread settings are not passed:
seqrec's defaults apply (give --threads as a train option to change them). The same works for
SASRec (--model sasrec). Options after `--` go to `seqrec train` unchanged.

    .venv/bin/python scripts/bench_bert4rec_recipe.py                       # the measurement (~20 min)
    .venv/bin/python scripts/bench_bert4rec_recipe.py --model sasrec
    .venv/bin/python scripts/bench_bert4rec_recipe.py -- --params bert4rec_paper   # a shipped recipe
    .venv/bin/python scripts/bench_bert4rec_recipe.py --ratings data/sample/raw/ratings.dat -- --epochs 1
                                                                            # a smoke run (bundled sample)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _bench as b

ML1M_ZIP = b.SHARED_DATA / "movielens-1m" / "reconstructed" / "ml-1m.zip"
GOAL_S, GOAL_HR, GOAL_NDCG = 1200.0, 0.29, 0.16  # issue 15, goal 1


def parse_args(argv):
    ap = b.parser(__doc__)
    ap.add_argument("--model", choices=("bert4rec", "sasrec"), default="bert4rec", help="the model to train [%(default)s]")
    ap.add_argument("--zip", type=Path, default=ML1M_ZIP, help="the ml-1m.zip archive to import [%(default)s]")
    ap.add_argument("--checksum", help="its expected MD5 or SHA-256 [the file's own MD5: this measures training, not the download]")
    ap.add_argument("--ratings", type=Path, help="skip the download: preprocess this ratings.dat instead (e.g. the bundled sample's)")
    ap.add_argument("--work", type=Path, help="scratch folder (emptied first) [/tmp/seqrec-bench-recipe-<model>]")
    ap.add_argument("train_args", nargs=argparse.REMAINDER, help="after --: options of seqrec train, unchanged [none]")
    args = ap.parse_args(argv)
    if args.train_args and args.train_args[0] == "--":
        args.train_args = args.train_args[1:]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.ratings is not None:
        b.need_file(args.ratings, "--ratings")
        args.ratings = args.ratings.absolute()
    else:
        b.need_file(args.zip, "--zip")
        args.zip = args.zip.absolute()
    clash = [o for o in args.train_args if o.split("=")[0] in ("--model-dir", "--train-dir")]
    if clash:
        raise b.BenchError(f"{', '.join(clash)}: the script runs in its own folder with the default paths; leave them out")
    work = b.work_dir(args.work or Path(f"/tmp/seqrec-bench-recipe-{args.model}"), fresh=True)
    logs = work / "logs"
    seqrec = b.seqrec_exe()
    env = b.child_env()  # no thread variables: seqrec's defaults

    def step(name: str, *cmd) -> b.Result:
        return b.run([seqrec, *map(str, cmd)], work, env, logs, name, f"seqrec {' '.join(map(str, cmd[:2]))}")

    if args.ratings is None:
        prep = [step("download", "download", "ml-1m", "--from-file", args.zip, "--checksum", args.checksum or b.md5(args.zip))]
        prep.append(step("preprocess", "preprocess", "ml-1m"))
    else:
        prep = [step("preprocess", "preprocess", "ml-1m", "--input", args.ratings)]
    b.log(f"download + preprocess: {sum(r.wall for r in prep):.1f}s")
    train = step("train", "train", args.model, *args.train_args)
    b.log(f"train: {train.wall:.1f}s")
    out_json = work / "test_full_filter_seen.json"
    ev = step("evaluate", "evaluate", "--filter-seen", "--cutoffs", "10", "--output-json", out_json)
    figures = json.loads(out_json.read_text())
    hr, ndcg = figures["metrics"]["hr@10"], figures["metrics"]["ndcg@10"]
    wall = train.wall + ev.wall
    epoch_s = [r["seconds"] for r in b.epoch_records(work / "model_output")]
    b.log(f"evaluate: {ev.wall:.1f}s; {len(epoch_s)} epochs of {b.spread(epoch_s)}s; test [{figures['protocol']}] HR@10 {hr:.4f}, NDCG@10 {ndcg:.4f}")
    met = wall <= GOAL_S and hr >= GOAL_HR and ndcg >= GOAL_NDCG
    b.summary(
        {
            "model": args.model,
            "train_args": ",".join(args.train_args) or "none",  # the options, comma-separated
            "prep_s": round(sum(r.wall for r in prep), 1),
            "train_s": round(train.wall, 1),
            "eval_s": round(ev.wall, 1),
            "wall_s": round(wall, 1),
            "epochs": len(epoch_s),
            "epoch_s_median": b.median(epoch_s),
            "best_epoch": figures.get("epoch"),
            "protocol": figures["protocol"],
            "hr@10": hr,
            "ndcg@10": ndcg,
            "goal": f"wall<={GOAL_S:.0f},hr@10>={GOAL_HR},ndcg@10>={GOAL_NDCG}",
            "met": "yes" if met else "no",
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(b.main_guard(main))
