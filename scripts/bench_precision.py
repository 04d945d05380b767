#!/usr/bin/env python
"""Training steps/s of BERT4Rec and SASRec in fp32 against bf16 autocast on this CPU (issue 15, goal 1 lever).

For each model, --rounds rounds of one training epoch per precision, alternating (fp32 bf16 fp32
bf16 ...): `seqrec train <model> --epochs 1 --precision P` on ML-1M (--ml1m-dir, by default made
under --work from the shared ratings.dat). steps/s = the epoch's steps / its seconds, from the run's
metrics.jsonl (the training loop only: no start-up, data loading or the validation after the
epoch); medians over the rounds and the ratio second/first precision (> 1: the second is faster).
Also reported: whether the CPU has native bf16 arithmetic (torch.cpu._is_avx512_bf16_supported(),
AVX512-BF16) and matrix units (torch.cpu._is_amx_tile_supported(), AMX), and the flags in
/proc/cpuinfo. Work files go under --work (default /tmp/seqrec-bench-precision). Progress goes to
stderr; stdout gets one line, SUMMARY key=value ..., with <model>_bf16_over_fp32 (> 1: bf16 is faster).

    .venv/bin/python scripts/bench_precision.py                                 # the measurement
    .venv/bin/python scripts/bench_precision.py --train-args "--attention-dropout 0 --objective cloze-last"
    .venv/bin/python scripts/bench_precision.py --ml1m-dir data/sample --rounds 1   # a smoke run
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import _bench as b

ML1M_RATINGS = b.SHARED_DATA / "movielens-1m" / "reconstructed" / "ratings.dat"
MODELS = ("bert4rec", "sasrec")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
CPU_PROBE = (
    "import json, torch\n"
    "c = torch.cpu\n"
    "print(json.dumps({'torch': torch.__version__,"
    " 'avx512_bf16': bool(getattr(c, '_is_avx512_bf16_supported', lambda: False)()),"
    " 'amx': bool(getattr(c, '_is_amx_tile_supported', lambda: False)()),"
    " 'amx_fp16': bool(getattr(c, '_is_amx_fp16_supported', lambda: False)())}))\n"
)


def parse_args(argv):
    ap = b.parser(__doc__)
    ap.add_argument("--ml1m-dir", type=Path, help="processed ML-1M folder [made under --work]")
    ap.add_argument("--models", default=",".join(MODELS), help="models, comma-separated [%(default)s]")
    ap.add_argument("--precision", default="fp32,bf16", help="the two --precision values compared, in order [%(default)s]")
    ap.add_argument("--rounds", type=b.positive, default=2, help="rounds of one epoch per precision [%(default)s]")
    ap.add_argument("--threads", type=b.positive, default=2, help="--threads of every run [%(default)s]")
    ap.add_argument("--train-args", default="", help="extra options of seqrec train, e.g. \"--attention-dropout 0\" [none]")
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-precision"), help="scratch folder (emptied first) [%(default)s]")
    return ap.parse_args(argv)


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = [f for f in flags if f in ("avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16")]
    return ",".join(wanted) or "none"


def main(argv=None) -> int:
    args = parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or any(m not in MODELS for m in models):
        raise b.BenchError(f"--models {args.models!r}: a comma-separated list of {', '.join(MODELS)}")
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    if len(precisions) != 2 or any(p not in PRECISIONS for p in precisions) or precisions[0] == precisions[1]:
        raise b.BenchError(f"--precision {args.precision!r}: two different values of {', '.join(PRECISIONS)}, e.g. fp32,bf16")
    if args.ml1m_dir is not None:
        args.ml1m_dir = args.ml1m_dir.absolute()
        b.need_file(args.ml1m_dir / "manifest.json", "--ml1m-dir: its")
    work = b.work_dir(args.work, fresh=True)
    logs = work / "logs"
    seqrec = b.seqrec_exe()
    env = b.child_env()

    probe = b.run([sys.executable, "-c", CPU_PROBE], work, env, logs, "cpu-probe", "the CPU probe")
    cpu = json.loads(probe.out().strip().splitlines()[-1])
    b.log(f"torch {cpu['torch']}: AVX512-BF16 {cpu['avx512_bf16']}, AMX {cpu['amx']}; /proc/cpuinfo: {cpu_flags()}")

    data = args.ml1m_dir
    if data is None:
        b.need_file(ML1M_RATINGS, "the shared ML-1M ratings file")
        b.run([seqrec, "preprocess", "ml-1m", "--input", str(ML1M_RATINGS)], work, env, logs, "preprocess", "seqrec preprocess ml-1m")
        data = work / "data" / "ml-1m"

    rates: dict[tuple[str, str], list[float]] = {(m, p): [] for m in models for p in precisions}
    for r in range(1, args.rounds + 1):
        for m in models:
            for p in precisions:
                model_dir = work / "runs" / f"{m}-{p}-r{r}"
                b.run(
                    [seqrec, "train", m, "--train-dir", str(data), "--model-dir", str(model_dir), "--epochs", "1",
                     "--precision", p, "--threads", str(args.threads), *shlex.split(args.train_args)],
                    work, env, logs, f"{m}-{p}-r{r}", f"seqrec train {m} --precision {p}",
                )  # fmt: skip
                rec = b.epoch_records(model_dir)[0]
                rates[(m, p)].append(rec["steps"] / rec["seconds"])
                b.log(f"round {r}, {m} {p}: {rec['steps']} steps in {rec['seconds']:.1f}s = {rates[(m, p)][-1]:.2f} steps/s")
    first, second = precisions
    fields: dict[str, object] = {
        "threads": args.threads,
        "rounds": args.rounds,
        "avx512_bf16": "yes" if cpu["avx512_bf16"] else "no",
        "amx": "yes" if cpu["amx"] else "no",
    }
    for m in models:
        a, c = b.median(rates[(m, first)]), b.median(rates[(m, second)])
        fields |= {f"{m}_{first}_steps_per_s": a, f"{m}_{second}_steps_per_s": c, f"{m}_{second}_over_{first}": round(c / a, 3)}
    b.summary(fields)
    return 0


if __name__ == "__main__":
    sys.exit(b.main_guard(main))
