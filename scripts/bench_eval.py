#!/usr/bin/env python
"""Full-ranking evaluation time of seqrec, and its memory bounded by --eval-batch-size (issue 15, goal 3).

1. Time: `seqrec evaluate` (full ranking, the test split) of a GRU4Rec checkpoint on yoochoose 1/64
   (55,400 predictions over 17,376 items) and of a BERT4Rec and a SASRec checkpoint on ML-1M
   (6,040 users, 3,416 items), --repeats times, the models interleaved round by round (G B S G B S
   ...), the median of the evaluation's own seconds (evaluate's JSON "seconds": scoring and ranking,
   no start-up or data loading) and of the process wall time. Checkpoints are given
   (--gru4rec-checkpoint ...) or trained briefly here (one epoch; BERT4Rec and SASRec on one window
   per user): evaluation time does not depend on how well a model was trained.
2. Memory: a synthetic catalogue of --catalogue items (1,000,000) with a small GRU4Rec (16 units,
   trained one epoch), evaluated at two --catalogue-batch-sizes; the peak RSS of each evaluate
   process (its own ru_maxrss) against the score matrix the batch size allows (batch x items x 4
   bytes). Memory bounded by the batch size means the difference between the two peaks follows the
   difference of the score matrices, and neither grows with the number of predictions.

With --against DIR (another checkout of seqrec, e.g. `git worktree add /tmp/old <commit>`), every
timed evaluation is also run by that checkout's code (PYTHONPATH=DIR), right after this one's, so
the two are measured side by side (A B A B ...); the SUMMARY adds <model>_against_eval_s,
<model>_speedup (against / this) and <model>_same_figures (yes when both gave identical metrics).

Data: --yoochoose-dir and --ml1m-dir are processed folders; by default they are made under --work
from the shared copies (`seqrec preprocess text2id` of the SR-GNN split, `seqrec preprocess ml-1m`
of the reconstructed ratings.dat). Work files go under --work (default /tmp/seqrec-bench-eval).
Progress goes to stderr; stdout gets one line, SUMMARY key=value ...: <model>_eval_s (the goals: <= 3 s
for yoochoose 1/64, <= 2 s for ML-1M), the peak RSS at both batch sizes and
rss_diff_over_score_matrix_diff (the memory growth per unit of score matrix).

    .venv/bin/python scripts/bench_eval.py                       # the measurement (about 10 minutes)
    .venv/bin/python scripts/bench_eval.py --yoochoose-dir data/sample --ml1m-dir data/sample \\
        --repeats 1 --catalogue 20000                            # a smoke run on the bundled sample
"""

from __future__ import annotations

import json
import random
import re
import shlex
import sys
from pathlib import Path

import _bench as b

DERIVED = b.SHARED_DATA / "rsc15-yoochoose" / "srgnn_yoochoose1_64" / "derived_text"
ML1M_RATINGS = b.SHARED_DATA / "movielens-1m" / "reconstructed" / "ratings.dat"
MODELS = ("gru4rec", "bert4rec", "sasrec")
# brief training: one epoch; the transformers on one window per user (the time of an evaluation
# does not depend on how well the model learnt)
BRIEF = {
    "gru4rec": "--epochs 1 --log-every 100000",
    "bert4rec": "--epochs 1 --max-windows 1",
    "sasrec": "--epochs 1 --max-windows 1",
}


def parse_args(argv):
    ap = b.parser(__doc__)
    ap.add_argument("--yoochoose-dir", type=Path, help="processed yoochoose 1/64 folder [made under --work]")
    ap.add_argument("--ml1m-dir", type=Path, help="processed ML-1M folder [made under --work]")
    for m in MODELS:
        ap.add_argument(f"--{m}-checkpoint", type=Path, help=f"a {m} checkpoint folder (epoch_N) [trained briefly here]")
    ap.add_argument("--models", default=",".join(MODELS), help="models to time, comma-separated [%(default)s]")
    ap.add_argument("--repeats", type=b.positive, default=5, help="evaluations of each checkpoint [%(default)s]")
    ap.add_argument("--threads", type=b.positive, default=2, help="--threads of every seqrec command [%(default)s]")
    ap.add_argument("--eval-batch-size", type=b.positive, default=128, help="--eval-batch-size of the timed evaluations [%(default)s]")
    ap.add_argument("--against", type=Path, help="another seqrec checkout to time beside this one (its seqrec_cli/ is imported) [none]")
    ap.add_argument("--catalogue", type=b.non_negative, default=1_000_000, help="items of the synthetic catalogue (0 = skip part 2) [%(default)s]")
    ap.add_argument("--catalogue-batch-sizes", default="32,256", help="the two --eval-batch-size values of part 2 [%(default)s]")
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-eval"), help="scratch folder (emptied first) [%(default)s]")
    return ap.parse_args(argv)


class Ctx:
    def __init__(self, args, work: Path):
        self.args, self.work, self.logs = args, work, work / "logs"
        self.seqrec = b.seqrec_exe()
        self.env = b.child_env(PYTHONPATH=str(b.REPO))  # this checkout's code, whatever the venv has installed
        self.against_env = b.child_env(PYTHONPATH=str(args.against)) if args.against else None
        self.threads = ["--threads", str(args.threads)]

    def seqrec_run(self, name: str, *cmd, what: str | None = None, env: dict[str, str] | None = None) -> b.Result:
        return b.run([self.seqrec, *map(str, cmd)], self.work, env or self.env, self.logs, name, what or f"seqrec {cmd[0]} ({name})")


def ensure_data(ctx: Ctx) -> tuple[Path, Path]:
    a = ctx.args
    yc, ml = a.yoochoose_dir, a.ml1m_dir
    if yc is None and ("gru4rec" in a.models_list and a.gru4rec_checkpoint is None):
        b.need_file(DERIVED / "train_sessions.txt", "the shared yoochoose 1/64 file")
        ctx.seqrec_run("text2id", "preprocess", "text2id", "--train", DERIVED / "train_sessions.txt",
                       "--test", DERIVED / "test_sessions.txt", "--name", "yoochoose1_64")  # fmt: skip
        yc = ctx.work / "data" / "yoochoose1_64"
    if ml is None and any(m in a.models_list and getattr(a, f"{m}_checkpoint") is None for m in ("bert4rec", "sasrec")):
        b.need_file(ML1M_RATINGS, "the shared ML-1M ratings file")
        ctx.seqrec_run("preprocess-ml1m", "preprocess", "ml-1m", "--input", ML1M_RATINGS)
        ml = ctx.work / "data" / "ml-1m"
    return yc, ml


def checkpoint_for(ctx: Ctx, model: str, data_dir: Path | None) -> Path:
    given = getattr(ctx.args, f"{model}_checkpoint")
    if given is not None:
        if not (given / "config.json").is_file():
            raise b.BenchError(f"--{model}-checkpoint {given} is not a checkpoint folder (no config.json)")
        return given
    model_dir = ctx.work / "runs" / model
    ctx.seqrec_run(f"train-{model}", "train", model, "--train-dir", data_dir, "--model-dir", model_dir,
                   *shlex.split(BRIEF[model]), *ctx.threads)  # fmt: skip
    return model_dir / "epoch_1"


def evaluate(
    ctx: Ctx, name: str, checkpoint: Path, test_dir: Path | None, batch: int, out: Path, env: dict[str, str] | None = None
) -> tuple[dict, b.Result]:
    cmd = ["evaluate", "--checkpoint", checkpoint, "--eval-batch-size", batch, *ctx.threads, "--cutoffs", "10,20", "--output-json", out]
    if test_dir is not None:
        cmd += ["--test-dir", test_dir]
    res = ctx.seqrec_run(name, *cmd, env=env)
    return json.loads(out.read_text()), res


def items_of(figures: dict) -> int | str:
    """The catalogue size an evaluation ranked over, from its protocol sentence."""
    found = re.search(r"over all ([\d,]+) items", figures.get("protocol_description", ""))
    return int(found.group(1).replace(",", "")) if found else "?"


def write_catalogue(folder: Path, n_items: int, seed: int = 15) -> tuple[Path, Path]:
    """Raw session files over n_items ids: training sessions of 4 items that together use every id
    once (so text2id's vocabulary has all of them), and test sessions of 5 random ids."""
    rng = random.Random(seed)
    ids = list(range(1, n_items + 1))
    rng.shuffle(ids)
    train, test = folder / "train_sessions.txt", folder / "test_sessions.txt"
    with open(train, "w") as fo:
        for i in range(0, n_items - n_items % 4, 4):
            fo.write(" ".join(map(str, ids[i : i + 4])) + "\n")
        if n_items % 4:
            fo.write(" ".join(map(str, ids[n_items - 4 :])) + "\n")
    n_test = 1000
    with open(test, "w") as fo:
        for _ in range(n_test):
            fo.write(" ".join(str(rng.randint(1, n_items)) for _ in range(5)) + "\n")
    return train, test


def main(argv=None) -> int:
    args = parse_args(argv)
    args.models_list = [m.strip() for m in args.models.split(",") if m.strip()]
    if not args.models_list or any(m not in MODELS for m in args.models_list):
        raise b.BenchError(f"--models {args.models!r}: a comma-separated list of {', '.join(MODELS)}")
    try:
        cat_batches = [int(x) for x in args.catalogue_batch_sizes.split(",")]
    except ValueError:
        cat_batches = []
    if len(cat_batches) != 2 or min(cat_batches) < 1 or cat_batches[0] == cat_batches[1]:
        raise b.BenchError(f"--catalogue-batch-sizes {args.catalogue_batch_sizes!r}: two different positive integers, e.g. 32,256")
    if 0 < args.catalogue < 4:
        raise b.BenchError(f"--catalogue {args.catalogue}: at least 4 items (or 0 to skip)")
    for name in ("yoochoose_dir", "ml1m_dir"):
        folder = getattr(args, name)
        if folder is not None:
            setattr(args, name, folder.absolute())
            b.need_file(folder.absolute() / "manifest.json", f"--{name.replace('_', '-')}: its")
    if args.against is not None:
        args.against = args.against.absolute()
        b.need_file(args.against / "seqrec_cli" / "__init__.py", "--against: a seqrec checkout needs")
    for m in MODELS:
        if getattr(args, f"{m}_checkpoint") is not None:
            setattr(args, f"{m}_checkpoint", getattr(args, f"{m}_checkpoint").absolute())
    work = b.work_dir(args.work, fresh=True)
    ctx = Ctx(args, work)
    fields: dict[str, object] = {"threads": args.threads, "repeats": args.repeats, "eval_batch_size": args.eval_batch_size}

    # 1. time, the models interleaved
    yc, ml = ensure_data(ctx)
    data_of = {"gru4rec": yc, "bert4rec": ml, "sasrec": ml}
    ckpts = {m: checkpoint_for(ctx, m, data_of[m]) for m in args.models_list}
    test_dir = {m: data_of[m] for m in args.models_list}  # None: the folder the given checkpoint was trained on
    secs: dict[str, list[float]] = {m: [] for m in args.models_list}
    walls: dict[str, list[float]] = {m: [] for m in args.models_list}
    against: dict[str, list[float]] = {m: [] for m in args.models_list}
    same: dict[str, bool] = {m: True for m in args.models_list}
    info: dict[str, dict] = {}
    for r in range(1, args.repeats + 1):
        for m in args.models_list:
            figures, res = evaluate(ctx, f"eval-{m}-r{r}", ckpts[m], test_dir[m], args.eval_batch_size, work / f"eval-{m}-r{r}.json")
            secs[m].append(figures["seconds"])
            walls[m].append(res.wall)
            info[m] = figures
            b.log(f"round {r}, {m}: {figures['predictions']:,} predictions in {figures['seconds']:.2f}s (process {res.wall:.1f}s)")
            if ctx.against_env is not None:
                other, _ = evaluate(ctx, f"eval-{m}-r{r}-against", ckpts[m], test_dir[m], args.eval_batch_size,
                                    work / f"eval-{m}-r{r}-against.json", env=ctx.against_env)  # fmt: skip
                against[m].append(other["seconds"])
                same[m] &= other["metrics"] == figures["metrics"]
                b.log(f"round {r}, {m}, --against: {other['seconds']:.2f}s")
    for m in args.models_list:
        fields |= {
            f"{m}_predictions": info[m]["predictions"],
            f"{m}_items": items_of(info[m]),
            f"{m}_eval_s": b.median(secs[m]),
            f"{m}_process_s": b.median(walls[m]),
        }
        if against[m]:
            fields |= {
                f"{m}_against_eval_s": b.median(against[m]),
                f"{m}_speedup": round(b.median(against[m]) / b.median(secs[m]), 2),
                f"{m}_same_figures": "yes" if same[m] else "no",
            }
        b.log(f"{m}: evaluation {b.spread(secs[m])}s, process {b.spread(walls[m])}s")

    # 2. memory at a large catalogue
    if args.catalogue:
        cat = work / "catalogue"
        cat.mkdir()
        b.log(f"synthetic catalogue of {args.catalogue:,} items")
        train, test = write_catalogue(cat, args.catalogue)
        ctx.seqrec_run("catalogue-text2id", "preprocess", "text2id", "--train", train, "--test", test, "--name", "catalogue")
        cat_dir = work / "data" / "catalogue"
        ctx.seqrec_run("catalogue-train", "train", "gru4rec", "--train-dir", cat_dir, "--model-dir", work / "runs" / "catalogue",
                       "--epochs", "1", "--hidden-size", "16", "--n-sample", "64", "--batch-size", "256", "--log-every", "100000",
                       *ctx.threads)  # fmt: skip
        n_items = json.loads((cat_dir / "manifest.json").read_text())["n_items"]
        peaks = []
        for batch in cat_batches:
            figures, res = evaluate(ctx, f"catalogue-eval-b{batch}", work / "runs" / "catalogue" / "epoch_1", None, batch, cat / f"eval-b{batch}.json")
            peaks.append(res.peak_rss_kib / 2**20)
            b.log(f"catalogue, --eval-batch-size {batch}: peak RSS {peaks[-1]:.2f} GiB, score matrix "
                  f"{batch * n_items * 4 / 2**30:.2f} GiB, {figures['predictions']:,} predictions in {figures['seconds']:.1f}s")  # fmt: skip
        lo, hi = cat_batches
        fields |= {
            "catalogue_items": n_items,
            "catalogue_predictions": figures["predictions"],
            f"rss_b{lo}_gib": round(peaks[0], 3),
            f"rss_b{hi}_gib": round(peaks[1], 3),
            "rss_diff_gib": round(peaks[1] - peaks[0], 3),
            "score_matrix_diff_gib": round((hi - lo) * n_items * 4 / 2**30, 3),
            "rss_diff_over_score_matrix_diff": round((peaks[1] - peaks[0]) / ((hi - lo) * n_items * 4 / 2**30), 2),
        }
    b.summary(fields)
    return 0


if __name__ == "__main__":
    sys.exit(b.main_guard(main))
