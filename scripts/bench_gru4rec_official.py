#!/usr/bin/env python
"""seqrec GRU4Rec against the official GRU4Rec (PyTorch), side by side on one machine (issue 15, goal 2).

Data: RSC15 "yoochoose 1/64" (the SR-GNN split): seqrec's `preprocess text2id` of --train/--test
(116,167 training sessions, 486,026 events; 15,233 test sessions, 55,400 predictions over 17,376
items), written a second time as the official code's TSV (SessionId, ItemId, Time; ItemId = the
seqrec item index, Time = the event's position in the file, so sessions keep the file's order).
Setting: the official paramfile rsc15_xe_shared_100_best (batch 32, 2,048 shared popularity^0.5
negatives, cross-entropy with logQ, 100 units, Adagrad with momentum) for the official code, and
seqrec's shipped copy of it (--params gru4rec_rsc15_xe_shared_100_best); the script checks the two
agree. Both get the same thread count: seqrec --threads N, the official OMP_NUM_THREADS=N.

1. Timing, --rounds rounds of A B (A = seqrec, B = official), one epoch each: A is `seqrec train
   gru4rec --epochs 1` then `seqrec evaluate`, B is the official run.py with n_epochs=1 and its test
   evaluation (-e conservative), on the CPU. Epoch seconds come from each program's own epoch timer
   (seqrec's metrics.jsonl, the official "EpochN --> ... (Xs)" line): the training loop only, no
   start-up or data loading. events/s = training events / epoch seconds for both (the official's
   own "e/s" counts batch_size x minibatches, about the training targets; it is printed too).
   Evaluation seconds: seqrec evaluate's JSON "seconds", the official "Evaluation took Xs".
2. Accuracy (--epochs N > 0, N = 10 for the issue's figure): one N-epoch run of each, test
   recall@20 / MRR@20 of the last epoch, ties pessimistic in both (seqrec's rule; the official
   "conservative" mode), plus the official model's figures under its default "standard" mode
   (ties in the target's favour), to show the tie rule does not matter here.

Needs a clone of github.com/hidasib/GRU4Rec_PyTorch_Official (--official) and a Python with its
requirements (--official-python; numpy<2, pandas<3, torch, joblib), e.g.
    python3 -m venv /tmp/gru4rec-venv && /tmp/gru4rec-venv/bin/pip install 'numpy<2' 'pandas<3' torch joblib
Work files go under --work (default /tmp/seqrec-bench-gru4rec). Progress goes to stderr; stdout gets one
line, SUMMARY key=value ...: medians of both sides, speedup = seqrec events/s / official events/s
(the issue's goal: >= 2), eval_speedup likewise, and with --epochs the figures of both.

    .venv/bin/python scripts/bench_gru4rec_official.py --rounds 3 --epochs 10     # the issue's figures
    .venv/bin/python scripts/bench_gru4rec_official.py --sessions 3000 --test-sessions 600 \\
        --rounds 1 --official-args "-ss 204800"                                   # a smoke run
"""

from __future__ import annotations

import json
import re
import shlex
import sys
from pathlib import Path

import _bench as b

DERIVED = b.SHARED_DATA / "rsc15-yoochoose" / "srgnn_yoochoose1_64" / "derived_text"
SEQREC_PARAMS = "gru4rec_rsc15_xe_shared_100_best"
OFFICIAL_EVAL_BATCH = 512  # run.py's batch_eval(batch_size=512): the test set needs at least this many sessions
EPOCH_RE = re.compile(r"^Epoch(\d+) --> loss: ([-\d.naN]+)\s+\(([\d.]+)s\)\s+\[([\d.]+) mb/s \| ([\d.]+) e/s\]", re.M)
EVAL_RE = re.compile(r"^Evaluation took ([\d.]+)s", re.M)
METRIC_RE = re.compile(r"^Recall@(\d+): ([\d.]+) MRR@\d+: ([\d.]+)", re.M)

# the official parameter names -> seqrec's (train gru4rec option names with _), for the same-setting check
SAME = {
    "layers": None,  # -> hidden_size and layers, below
    "batch_size": "batch_size",
    "dropout_p_embed": "dropout_embed",
    "dropout_p_hidden": "dropout_hidden",
    "learning_rate": "lr",
    "momentum": "momentum",
    "n_sample": "n_sample",
    "sample_alpha": "sample_alpha",
    "bpreg": "bpreg",
    "logq": "logq",
    "elu_param": "elu_param",
    "constrained_embedding": "shared_embedding",
    "embedding": "embedding_size",
}


def parse_args(argv):
    ap = b.parser(__doc__)
    ap.add_argument("--train", type=Path, default=DERIVED / "train_sessions.txt", help="training sessions, one per line (raw ids) [%(default)s]")
    ap.add_argument("--test", type=Path, default=DERIVED / "test_sessions.txt", help="test sessions, one per line [%(default)s]")
    ap.add_argument("--sessions", type=b.non_negative, default=0, help="use only the first N training sessions (0 = all; for smoke runs)")
    ap.add_argument("--test-sessions", type=b.non_negative, default=0, help=f"use only the first N test sessions (0 = all; at least {OFFICIAL_EVAL_BATCH})")
    ap.add_argument("--official", type=Path, default=Path("/tmp/gru4rec_official"), help="clone of the official GRU4Rec_PyTorch_Official [%(default)s]")
    ap.add_argument("--official-python", type=Path, default=Path("/tmp/gru4rec-venv/bin/python"), help="Python with the official code's requirements [%(default)s]")
    ap.add_argument("--paramfile", type=Path, help="official parameter file [<official>/paramfiles/rsc15_xe_shared_100_best.py]")
    ap.add_argument("--threads", type=b.positive, default=2, help="CPU threads of each program [%(default)s]")
    ap.add_argument("--rounds", type=b.positive, default=2, help="timing rounds, each one epoch of A (seqrec) then B (official) [%(default)s]")
    ap.add_argument("--epochs", type=b.non_negative, default=0, help="then one N-epoch run of each for the accuracy (0 = skip; 10 for the issue) [%(default)s]")
    ap.add_argument("--omp-wait-policy", choices=("PASSIVE", "ACTIVE", "own"), default="PASSIVE",
                    help="OMP_WAIT_POLICY of both programs; own: each its own (seqrec sets PASSIVE with a spin of 4,000, the official "
                         "leaves OpenMP's default, which spins) [%(default)s]")  # fmt: skip
    ap.add_argument("--seqrec-args", default="", help='extra options of seqrec train gru4rec, e.g. "--session-order file"')
    ap.add_argument("--official-args", default="", help='extra options of the official run.py, e.g. "-ss 204800" (a smaller sample store)')
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-gru4rec"), help="scratch folder (emptied first) [%(default)s]")
    return ap.parse_args(argv)


def first_lines(src: Path, dst: Path, n: int) -> Path:
    """The first n lines of src (all when n == 0) as dst."""
    if n == 0:
        return src
    with open(src) as fi, open(dst, "w") as fo:
        for i, line in enumerate(fi):
            if i >= n:
                break
            fo.write(line)
    return dst


def write_tsv(seq_file: Path, tsv: Path) -> dict[str, int]:
    """seqrec's processed sessions (one line of item indices each) as the official TSV; counts."""
    sessions = events = 0
    with open(seq_file) as fi, open(tsv, "w") as fo:
        fo.write("SessionId\tItemId\tTime\n")
        for sid, line in enumerate(fi):
            items = line.split()
            if not items:
                continue
            fo.writelines(f"{sid}\t{item}\t{events + j}\n" for j, item in enumerate(items))
            sessions += 1
            events += len(items)
    return {"sessions": sessions, "events": events, "targets": events - sessions}


def official_params(args, paramfile: Path, logs: Path) -> dict:
    """The official parameter file's dict, read by the official Python (it is a .py file)."""
    code = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('p', sys.argv[1]); m = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(m); print(json.dumps(dict(m.gru4rec_params)))\n"
    )
    res = b.run([args.official_python, "-c", code, paramfile], logs, b.child_env(), logs, "official-params", "reading the official paramfile")
    return json.loads(res.out().strip().splitlines()[-1])


def check_same_setting(off: dict) -> None:
    """Compare the official paramfile with seqrec's shipped copy; a difference is an error."""
    ours = json.loads((b.REPO / "seqrec_cli" / "params" / f"{SEQREC_PARAMS}.json").read_text())
    diffs = []
    for key, mine in SAME.items():
        if key not in off:
            continue
        if key == "layers":
            if [ours["hidden_size"]] * ours["layers"] != list(off["layers"]):
                diffs.append(f"layers {off['layers']} vs hidden_size {ours['hidden_size']} x {ours['layers']}")
            continue
        a, c = off[key], ours.get(mine)
        if (float(a) if not isinstance(a, bool) else a) != (float(c) if not isinstance(c, bool) and c is not None else c):
            diffs.append(f"{key}={a} vs {mine}={c}")
    if off.get("loss") != "cross-entropy" or ours.get("loss") != "sampled-ce":
        diffs.append(f"loss={off.get('loss')} vs loss={ours.get('loss')}")
    if diffs:
        raise b.BenchError(f"the official paramfile and seqrec's {SEQREC_PARAMS} differ: " + "; ".join(diffs))


def write_paramfile(paramfile: Path, dst: Path, epochs: int) -> Path:
    """A parameter file that loads the official one and changes only n_epochs."""
    dst.write_text(
        "# the official parameter file, n_epochs changed (written by scripts/bench_gru4rec_official.py)\n"
        "import importlib.util\nfrom collections import OrderedDict\n"
        f"_spec = importlib.util.spec_from_file_location('official_params', {str(paramfile)!r})\n"
        "_mod = importlib.util.module_from_spec(_spec)\n_spec.loader.exec_module(_mod)\n"
        f"gru4rec_params = OrderedDict(_mod.gru4rec_params)\ngru4rec_params['n_epochs'] = {epochs}\n"
    )
    return dst


def seqrec_side(args, work: Path, logs: Path, name: str, epochs: int) -> dict:
    """seqrec train gru4rec for `epochs` epochs, then seqrec evaluate of the last epoch."""
    seqrec = b.seqrec_exe()
    env = b.child_env(OMP_WAIT_POLICY=None if args.omp_wait_policy == "own" else args.omp_wait_policy)
    model_dir = work / "runs" / name
    train = b.run(
        [seqrec, "train", "gru4rec", "--train-dir", "data/yoochoose1_64", "--model-dir", model_dir, "--params", SEQREC_PARAMS,
         "--epochs", str(epochs), "--threads", str(args.threads), "--log-every", "100000", *shlex.split(args.seqrec_args)],
        work, env, logs, f"{name}-train", f"seqrec train ({name})",
    )  # fmt: skip
    epoch_s = [r["seconds"] for r in b.epoch_records(model_dir)]
    out_json = model_dir / "eval.json"
    ev = b.run(
        [seqrec, "evaluate", "--model-dir", model_dir, "--epoch", str(epochs), "--cutoffs", "20", "--threads", str(args.threads),
         "--output-json", out_json],
        work, env, logs, f"{name}-eval", f"seqrec evaluate ({name})",
    )  # fmt: skip
    figures = json.loads(out_json.read_text())
    return {
        "epoch_s": epoch_s,
        "train_wall": train.wall,
        "eval_s": figures["seconds"],
        "eval_wall": ev.wall,
        "predictions": figures["predictions"],
        "recall20": figures["metrics"]["recall@20"],
        "mrr20": figures["metrics"]["mrr@20"],
    }


def official_env(args) -> dict[str, str]:
    """The official code sets no thread count: OpenMP's (and MKL's) variables give it --threads."""
    return b.child_env(
        OMP_NUM_THREADS=str(args.threads),
        MKL_NUM_THREADS=str(args.threads),
        OMP_WAIT_POLICY=None if args.omp_wait_policy == "own" else args.omp_wait_policy,
    )


def official_side(args, work: Path, logs: Path, name: str, paramfile: Path, save: Path | None = None) -> dict:
    """The official run.py: train (n_epochs from the paramfile) and evaluate on the test TSV."""
    env = official_env(args)
    cmd = [args.official_python, "-u", args.official / "run.py", work / "train.tsv", "-pf", paramfile, "-t", work / "test.tsv",
           "-m", "20", "-e", "conservative", "-d", "cpu", *shlex.split(args.official_args)]  # fmt: skip
    if save is not None:
        cmd += ["-s", save]
    res = b.run(cmd, work, env, logs, name, f"the official run.py ({name})")
    return parse_official(res, name) | {"wall": res.wall}


def parse_official(res: b.Result, name: str) -> dict:
    text = res.out()
    epochs = EPOCH_RE.findall(text)
    ev, metric = EVAL_RE.search(text), METRIC_RE.search(text)
    if "NaN error" in text:
        raise b.BenchError(f"the official run ({name}) stopped on a NaN loss (log: {res.stdout})")
    if metric is None or ev is None:
        raise b.BenchError(f"no evaluation figures in the official run's output ({name}; log: {res.stdout})")
    return {
        "epoch_s": [float(e[2]) for e in epochs],
        "printed_eps": [float(e[4]) for e in epochs],
        "eval_s": float(ev.group(1)),
        "recall20": float(metric.group(2)),
        "mrr20": float(metric.group(3)),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    for name in ("train", "test", "official", "official_python"):  # absolute, not resolved: a venv's python is a link
        setattr(args, name, getattr(args, name).absolute())
    b.need_file(args.train, "--train")
    b.need_file(args.test, "--test")
    b.need_file(args.official / "run.py", "--official: the official code's")
    paramfile = args.paramfile or args.official / "paramfiles" / "rsc15_xe_shared_100_best.py"
    b.need_file(paramfile, "--paramfile")
    if not args.official_python.is_file():
        raise b.BenchError(f"--official-python {args.official_python} does not exist (see --help for making its venv)")
    if 0 < args.test_sessions < OFFICIAL_EVAL_BATCH:
        raise b.BenchError(f"--test-sessions {args.test_sessions}: the official evaluation needs at least {OFFICIAL_EVAL_BATCH} test sessions")
    work = b.work_dir(args.work, fresh=True)
    logs = work / "logs"

    off_params = official_params(args, paramfile.resolve(), logs)
    check_same_setting(off_params)
    b.log(f"same setting: {off_params}")

    # the data: seqrec's text2id, then the same sessions as the official TSV
    train_src = first_lines(args.train, work / "train_sessions.txt", args.sessions)
    test_src = first_lines(args.test, work / "test_sessions.txt", args.test_sessions)
    b.run([b.seqrec_exe(), "preprocess", "text2id", "--train", train_src, "--test", test_src, "--name", "yoochoose1_64"],
          work, b.child_env(), logs, "text2id", "seqrec preprocess text2id")  # fmt: skip
    tr = write_tsv(work / "data" / "yoochoose1_64" / "train.txt", work / "train.tsv")
    te = write_tsv(work / "data" / "yoochoose1_64" / "test.txt", work / "test.tsv")
    n_items = json.loads((work / "data" / "yoochoose1_64" / "manifest.json").read_text())["n_items"]
    if te["sessions"] < OFFICIAL_EVAL_BATCH:
        raise b.BenchError(f"{te['sessions']} test sessions after text2id: the official evaluation needs at least {OFFICIAL_EVAL_BATCH}")
    b.log(f"train: {tr['sessions']:,} sessions, {tr['events']:,} events ({tr['targets']:,} targets); "
          f"test: {te['sessions']:,} sessions, {te['targets']:,} predictions; {n_items:,} items")  # fmt: skip

    # 1. timing: A B A B ..., one epoch each
    p1 = write_paramfile(paramfile.resolve(), work / "official_params_1epoch.py", 1)
    A: list[dict] = []
    B: list[dict] = []
    for r in range(1, args.rounds + 1):
        b.log(f"round {r}/{args.rounds}: A = seqrec")
        A.append(seqrec_side(args, work, logs, f"seqrec-r{r}", 1))
        b.log(f"  seqrec: epoch {A[-1]['epoch_s'][0]:.2f}s, eval {A[-1]['eval_s']:.2f}s ({A[-1]['predictions']:,} predictions)")
        b.log(f"round {r}/{args.rounds}: B = official")
        B.append(official_side(args, work, logs, f"official-r{r}", p1))
        b.log(f"  official: epoch {B[-1]['epoch_s'][0]:.2f}s, eval {B[-1]['eval_s']:.2f}s")
    a_epoch = [x["epoch_s"][0] for x in A]
    b_epoch = [x["epoch_s"][0] for x in B]
    a_eval, b_eval = [x["eval_s"] for x in A], [x["eval_s"] for x in B]
    events = tr["events"]
    fields: dict[str, object] = {
        "threads": args.threads,
        "omp_wait_policy": args.omp_wait_policy,
        "rounds": args.rounds,
        "train_events": events,
        "items": n_items,
        "seqrec_epoch_s": b.median(a_epoch),
        "official_epoch_s": b.median(b_epoch),
        "seqrec_events_per_s": round(events / b.median(a_epoch)),
        "official_events_per_s": round(events / b.median(b_epoch)),
        "speedup": round(b.median(b_epoch) / b.median(a_epoch), 3),
        "official_printed_e_per_s": round(b.median([x["printed_eps"][0] for x in B])),
        "predictions": A[0]["predictions"],
        "seqrec_eval_s": b.median(a_eval),
        "official_eval_s": b.median(b_eval),
        "eval_speedup": round(b.median(b_eval) / b.median(a_eval), 3),
    }
    b.log(f"epoch seconds: seqrec {b.spread(a_epoch)}, official {b.spread(b_epoch)}; "
          f"evaluation seconds: seqrec {b.spread(a_eval)}, official {b.spread(b_eval)}")  # fmt: skip
    b.log(f"process wall seconds (start-up and data loading included): seqrec train {b.spread([x['train_wall'] for x in A])} "
          f"+ evaluate {b.spread([x['eval_wall'] for x in A])}, official train+evaluate {b.spread([x['wall'] for x in B])}")  # fmt: skip
    b.log(f"after 1 epoch, recall@20 / MRR@20: seqrec {A[0]['recall20']:.4f} / {A[0]['mrr20']:.4f}, "
          f"official {B[0]['recall20']:.4f} / {B[0]['mrr20']:.4f}")  # fmt: skip

    # 2. accuracy after N epochs
    if args.epochs:
        b.log(f"accuracy: A = seqrec, {args.epochs} epochs")
        acc_a = seqrec_side(args, work, logs, f"seqrec-{args.epochs}ep", args.epochs)
        b.log(f"accuracy: B = official, {args.epochs} epochs")
        pn = write_paramfile(paramfile.resolve(), work / f"official_params_{args.epochs}epochs.py", args.epochs)
        model = work / "runs" / f"official-{args.epochs}ep.pt"
        acc_b = official_side(args, work, logs, f"official-{args.epochs}ep", pn, save=model)
        # run.py -l: torch.load of the whole pickled object this run saved, which torch >= 2.6 refuses
        # by default (weights_only); the file is our own, so allow it for this child only
        env = official_env(args) | {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}
        std = b.run(
            [args.official_python, "-u", args.official / "run.py", model, "-l", "-t", work / "test.tsv", "-m", "20", "-e", "standard", "-d", "cpu"],
            work, env, logs, f"official-{args.epochs}ep-standard", "the official evaluation in standard mode",
        )  # fmt: skip
        m = METRIC_RE.search(std.out())
        fields |= {
            "epochs": args.epochs,
            "seqrec_recall20": acc_a["recall20"],
            "seqrec_mrr20": acc_a["mrr20"],
            "official_recall20": acc_b["recall20"],
            "official_mrr20": acc_b["mrr20"],
            "official_standard_recall20": float(m.group(2)) if m else "n/a",
            "official_standard_mrr20": float(m.group(3)) if m else "n/a",
        }
        if args.epochs >= 2:  # steady state: epochs 2..N of the long runs (no first-epoch warm-up)
            sa, sb = b.median(acc_a["epoch_s"][1:]), b.median(acc_b["epoch_s"][1:])
            fields |= {"seqrec_epoch_s_steady": sa, "official_epoch_s_steady": sb, "speedup_steady": round(sb / sa, 3)}
        b.log(f"{args.epochs} epochs: seqrec epochs {b.spread(acc_a['epoch_s'])}s, official {b.spread(acc_b['epoch_s'])}s")
    b.summary(fields)
    return 0


if __name__ == "__main__":
    sys.exit(b.main_guard(main))
