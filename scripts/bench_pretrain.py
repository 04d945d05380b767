#!/usr/bin/env python
"""Does cloze pretraining help BERT4Rec on ML-1M? Pretrain epochs 0 / 10 / 20 / 40, then the same
fine-tuning (issue 15, goal 5).

One pretraining run of the largest epoch count (``seqrec pretrain bert4rec``; it saves every
epoch, so epochs 10 and 20 are snapshots of the same run, taken before its learning rate has
decayed to 0), then for every count P one fine-tuning with the same options,

    seqrec train bert4rec FINETUNE_OPTIONS [--init-from pretrain_output/epoch_P]     # none for P = 0
    seqrec evaluate --model-dir ft_P --filter-seen                                  # its best validation epoch

all in --work, one after the other (never two at once). Reported per P: the validation NDCG@10
(full+filter-seen, the fine-tuning's own validation every few epochs) curve, the best validation
epoch, the first fine-tuning epoch whose validation NDCG@10 reaches --target, the test
full+filter-seen HR@10 / NDCG@10 of the best epoch, and the wall seconds of pretraining (P / the
largest count of the one run's training seconds: its share), of fine-tuning and of both. Progress
on stderr; a table and one stdout line SUMMARY key=value ... at the end.

    .venv/bin/python scripts/bench_pretrain.py --ml1m-dir data/ml-1m               # the measurement (about 70 min)
    .venv/bin/python scripts/bench_pretrain.py --ml1m-dir data/sample --pretrain-epochs 0,1,2 \\
        --finetune-epochs 2 --extra "--max-len 20"                                  # a smoke run (a minute)
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import _bench as b

# The fine-tuning and pretraining recipe: BERT4Rec's measured CPU recipe (docs/benchmarks.md,
# "BERT4Rec on MovieLens-1M", run 3) on each user's last window, validation every 5 epochs.
COMMON = "--dropout 0.2 --attention-dropout 0 --max-windows 1"
FINETUNE = COMMON + " --objective cloze-last --label-smoothing 0.1 --valid-every 5 --valid-filter-seen"
PRETRAIN = COMMON + " --valid-every 10 --valid-filter-seen"


def parse_args(argv):
    ap = b.parser(__doc__)
    ap.add_argument("--ml1m-dir", type=Path, required=True, help="processed ML-1M folder (seqrec preprocess ml-1m)")
    ap.add_argument("--pretrain-epochs", default="0,10,20,40", help="pretraining epoch counts, comma-separated [%(default)s]")
    ap.add_argument("--finetune-epochs", type=b.positive, default=40, help="fine-tuning epochs of every run [%(default)s]")
    ap.add_argument("--finetune-args", default=FINETUNE, help="options of every fine-tuning [%(default)s]")
    ap.add_argument("--pretrain-args", default=PRETRAIN, help="options of the pretraining [%(default)s]")
    ap.add_argument("--extra", default="", help="options added to both (e.g. a smaller --max-len for a smoke run)")
    ap.add_argument("--target", type=float, default=0.15, help="validation NDCG@10 whose first epoch is reported [%(default)s]")
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-pretrain"), help="scratch folder (emptied first) [%(default)s]")
    args = ap.parse_args(argv)
    try:
        args.counts = sorted({int(x) for x in args.pretrain_epochs.split(",")})
    except ValueError:
        raise b.BenchError(f"--pretrain-epochs {args.pretrain_epochs!r}: integers separated by commas") from None
    if not args.counts or args.counts[0] < 0:
        raise b.BenchError(f"--pretrain-epochs {args.pretrain_epochs!r}: counts >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    data = b.need_file(args.ml1m_dir / "manifest.json", "--ml1m-dir").parent.absolute()
    work = b.work_dir(args.work, fresh=True)
    logs, seqrec, env = work / "logs", b.seqrec_exe(), b.child_env()
    extra = shlex.split(args.extra)

    def step(name: str, *cmd) -> b.Result:
        return b.run([seqrec, *map(str, cmd)], work, env, logs, name, f"seqrec {' '.join(map(str, cmd[:2]))}")

    top = args.counts[-1]
    pretrain_s = 0.0
    if top > 0:
        pre = step("pretrain", "pretrain", "bert4rec", "--train-dir", data, "--model-dir", "pretrain_output",
                   "--epochs", top, *shlex.split(args.pretrain_args), *extra)  # fmt: skip
        pretrain_s = sum(r["seconds"] for r in b.epoch_records(work / "pretrain_output"))
        b.log(f"pretraining: {top} epochs, {pre.wall:.0f}s wall ({pretrain_s:.0f}s of training epochs)")
    rows = []
    for p in args.counts:
        model_dir = work / f"ft_{p}"
        init = ["--init-from", work / "pretrain_output" / f"epoch_{p}"] if p else []
        ft = step(f"finetune_{p}", "train", "bert4rec", "--train-dir", data, "--model-dir", model_dir,
                  "--epochs", args.finetune_epochs, *init, *shlex.split(args.finetune_args), *extra)  # fmt: skip
        out = work / f"test_{p}.json"
        step(f"evaluate_{p}", "evaluate", "--model-dir", model_dir, "--test-dir", data, "--filter-seen",
             "--cutoffs", "10", "--output-json", out)  # fmt: skip
        test = json.loads(out.read_text())
        curve = [(r["epoch"], r["valid"]["ndcg@10"]) for r in b.epoch_records(model_dir) if r.get("valid")]
        reached = next((e for e, v in curve if v >= args.target), None)
        share = pretrain_s * p / top if top else 0.0
        rows.append({
            "p": p, "curve": curve, "best_epoch": test["epoch"], "reached": reached,
            "hr": test["metrics"]["hr@10"], "ndcg": test["metrics"]["ndcg@10"],
            "pre_s": share, "ft_s": ft.wall, "total_s": share + ft.wall,
        })  # fmt: skip
        b.log(f"pretrain {p}: best epoch {test['epoch']}, test HR@10 {rows[-1]['hr']:.4f} NDCG@10 {rows[-1]['ndcg']:.4f}, "
              f"fine-tuning {ft.wall:.0f}s")  # fmt: skip
    print("| pretrain epochs | valid NDCG@10 every validation | first epoch >= target | best epoch "
          "| test HR@10 | test NDCG@10 | pretrain s | fine-tune s | total s |", file=sys.stderr)
    for r in rows:
        curve = " ".join(f"{v:.4f}" for _, v in r["curve"])
        print(f"| {r['p']} | {curve} | {r['reached'] or '-'} | {r['best_epoch']} | {r['hr']:.4f} | {r['ndcg']:.4f} "
              f"| {r['pre_s']:.0f} | {r['ft_s']:.0f} | {r['total_s']:.0f} |", file=sys.stderr)  # fmt: skip
    fields: dict[str, object] = {"finetune_epochs": args.finetune_epochs, "target": args.target}
    for r in rows:
        p = r["p"]
        fields.update({
            f"p{p}_best_epoch": r["best_epoch"], f"p{p}_reached": r["reached"] or "no",
            f"p{p}_hr@10": r["hr"], f"p{p}_ndcg@10": r["ndcg"], f"p{p}_total_s": round(r["total_s"]),
        })  # fmt: skip
    best = max(rows, key=lambda r: r["ndcg"])
    fields["best_pretrain_epochs"] = best["p"]
    fields["ndcg_gain_over_0"] = round(best["ndcg"] - rows[0]["ndcg"], 4) if rows[0]["p"] == 0 else "n/a"
    b.summary(fields)
    return 0


if __name__ == "__main__":
    sys.exit(b.main_guard(main))
