#!/usr/bin/env python
"""Two small `seqrec train` runs side by side against one alone, under several thread policies (issue 15, goal 7).

The same small training command (default: GRU4Rec, 3 epochs on the bundled sample, a few seconds
alone) runs alone, then twice at once, under each policy, alternating policies round by round:

  seqrec   seqrec's thread policy: no thread variables set, so seqrec sets OMP_WAIT_POLICY=PASSIVE
           and GOMP_SPINCOUNT=4000 (threads that wait spin briefly, then sleep; libgomp, the
           OpenMP runtime of torch's wheels) and gives each process --threads (default: the
           available cores; --threads N here passes an explicit count to both runs)
  passive  the policy before it: OMP_WAIT_POLICY=PASSIVE alone (waiting threads sleep at once), same threads
  spin     another spin count: GOMP_SPINCOUNT=--spin-count (default 1,000, measured and rejected
           earlier), same threads
  old      the behaviour before any policy: OMP_WAIT_POLICY=ACTIVE (waiting threads spin) and every
           process on all the cores (--threads <cores>)

The figure is pair seconds / single seconds per policy, wall time of the processes (start-up
included), medians over --rounds; the goal is about 2 (two runs' work on the same cores), not
the 40x measured before the policy existed. The per-epoch training seconds of the runs (from
their metrics.jsonl) are printed too. Work files go under --work (default /tmp/seqrec-bench-threads).
Progress goes to stderr; stdout gets one line, SUMMARY key=value ..., with <policy>_pair_over_single.

    .venv/bin/python scripts/bench_threads.py                         # the measurement (a few minutes)
    .venv/bin/python scripts/bench_threads.py --rounds 1 --command "train gru4rec --epochs 1 --hidden-size 32 --n-sample 64"
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import _bench as b

DEFAULT_COMMAND = "train gru4rec --epochs 3 --hidden-size 64 --n-sample 128 --lr 0.1"
POLICIES = ("seqrec", "passive", "spin", "old")


def parse_args(argv):
    ap = b.parser(__doc__)
    ap.add_argument("--command", default=DEFAULT_COMMAND,
                    help="the seqrec training command, without --train-dir/--model-dir/--threads [%(default)s]")  # fmt: skip
    ap.add_argument("--train-dir", type=Path, default=b.SAMPLE_DIR, help="processed data folder [the bundled sample]")
    ap.add_argument("--rounds", type=b.positive, default=3, help="rounds of (single, pair) under each policy [%(default)s]")
    ap.add_argument("--spin-count", type=int, default=1000, help="GOMP_SPINCOUNT of the spin policy [%(default)s]")
    ap.add_argument("--policies", default="seqrec,passive,old", help="policies to measure, comma-separated: seqrec, passive, spin, old [%(default)s]")
    ap.add_argument("--threads", type=b.positive, help="--threads of each run under the seqrec policy [seqrec's default]")
    ap.add_argument("--work", type=Path, default=Path("/tmp/seqrec-bench-threads"), help="scratch folder (emptied first) [%(default)s]")
    return ap.parse_args(argv)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def main(argv=None) -> int:
    args = parse_args(argv)
    command = shlex.split(args.command)
    if len(command) < 2 or command[0] != "train":
        raise b.BenchError(f"--command must be a seqrec training command such as {DEFAULT_COMMAND!r}, got {args.command!r}")
    clash = [o for o in command if o.split("=")[0] in ("--train-dir", "--model-dir", "--threads", "--use-cuda")]
    if clash:
        raise b.BenchError(f"--command must not set {', '.join(clash)}: the script sets them")
    b.need_file(args.train_dir.absolute() / "manifest.json", "--train-dir: its")
    if args.spin_count < 0:
        raise b.BenchError(f"--spin-count {args.spin_count}: a count of spins, 0 or more")
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    if not policies or any(p not in POLICIES for p in policies) or len(set(policies)) != len(policies):
        raise b.BenchError(f"--policies {args.policies!r}: a comma-separated list of {', '.join(POLICIES)}")
    work = b.work_dir(args.work, fresh=True)
    logs = work / "logs"
    seqrec = b.seqrec_exe()
    n_cores = cores()
    threads = ["--threads", str(args.threads)] if args.threads else []  # seqrec's default unless given
    setups = {
        "seqrec": (b.child_env(), threads),
        "passive": (b.child_env(OMP_WAIT_POLICY="PASSIVE"), threads),
        "spin": (b.child_env(GOMP_SPINCOUNT=str(args.spin_count)), threads),
        "old": (b.child_env(OMP_WAIT_POLICY="ACTIVE"), ["--threads", str(n_cores)]),
    }
    walls: dict[str, dict[str, list[float]]] = {p: {"single": [], "pair": []} for p in POLICIES}
    train_s: dict[str, dict[str, list[float]]] = {p: {"single": [], "pair": []} for p in POLICIES}
    runs = 0

    def cmd_for(policy: str) -> tuple[list[str], Path]:
        nonlocal runs
        runs += 1
        model_dir = work / "runs" / f"{policy}-{runs}"
        return [seqrec, *command, "--train-dir", str(args.train_dir.absolute()), "--model-dir", str(model_dir), *setups[policy][1]], model_dir

    def epoch_seconds(model_dir: Path) -> float:
        return sum(r["seconds"] for r in b.epoch_records(model_dir))

    b.log(f"{n_cores} cores; command: seqrec {' '.join(command)} --train-dir {args.train_dir}")
    for r in range(1, args.rounds + 1):
        for policy in policies:
            env = setups[policy][0]
            cmd, model_dir = cmd_for(policy)
            single = b.run(cmd, work, env, logs, f"r{r}-{policy}-single", f"the single run ({policy} policy)")
            walls[policy]["single"].append(single.wall)
            train_s[policy]["single"].append(epoch_seconds(model_dir))
            (c1, d1), (c2, d2) = cmd_for(policy), cmd_for(policy)
            pair_wall, results = b.run_together([c1, c2], work, env, logs, f"r{r}-{policy}-pair")
            for res in results:
                res.check(f"a side-by-side run ({policy} policy)")
            walls[policy]["pair"].append(pair_wall)
            train_s[policy]["pair"].append(max(epoch_seconds(d1), epoch_seconds(d2)))
            b.log(f"round {r}, {policy}: single {single.wall:.1f}s, pair {pair_wall:.1f}s "
                  f"(x{pair_wall / single.wall:.2f}); training seconds {train_s[policy]['single'][-1]:.1f} / "
                  f"{train_s[policy]['pair'][-1]:.1f}")  # fmt: skip
    fields: dict[str, object] = {"cores": n_cores, "rounds": args.rounds, "threads": args.threads or "default"}
    for policy in policies:
        single, pair = b.median(walls[policy]["single"]), b.median(walls[policy]["pair"])
        fields |= {
            f"{policy}_single_s": single,
            f"{policy}_pair_s": pair,
            f"{policy}_pair_over_single": round(pair / single, 2),
            f"{policy}_train_pair_over_single": round(b.median(train_s[policy]["pair"]) / b.median(train_s[policy]["single"]), 2),
        }
    b.summary(fields)
    return 0


if __name__ == "__main__":
    sys.exit(b.main_guard(main))
