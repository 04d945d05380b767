#!/usr/bin/env python
"""The full-catalogue cross-entropy of SASRec's training step, two ways, side by side in one process.

  plain    F.cross_entropy(hidden @ weight.T, targets): the [rows, items] score matrix, its
           log-softmax and their gradients are each written to memory and read back
  blocked  seqrec_cli.models.losses.linear_cross_entropy: the same loss and gradients taken block
           by block of rows, each block's scores used while they are in cache (what SASRec's
           --loss ce runs on a CPU)

Forward and backward of each (the gradients of hidden and weight), alternating A B A B over
--rounds rounds of --repeats steps; the defaults are one SASRec step on ML-1M (about 3,000 target
positions in a batch of 32 windows, hidden 64, 3,416 items, label smoothing 0.1). The result is
the median milliseconds per step of each and their ratio; it also checks that both give the same
loss and gradients. stdout gets one line, SUMMARY key=value ...: plain_ms, blocked_ms, speedup
(plain / blocked), max_grad_diff.

    .venv/bin/python scripts/bench_loss.py                    # about half a minute
    .venv/bin/python scripts/bench_loss.py --rows 200 --items 500 --rounds 1 --repeats 2
"""

from __future__ import annotations

import sys
import time

import _bench as b


def parse_args(argv):
    ap = b.parser(__doc__)
    ap.add_argument("--rows", type=b.positive, default=3000, help="target positions per step [%(default)s]")
    ap.add_argument("--hidden", type=b.positive, default=64, help="hidden size [%(default)s]")
    ap.add_argument("--items", type=b.positive, default=3416, help="catalogue size [%(default)s]")
    ap.add_argument("--label-smoothing", type=float, default=0.1, help="[%(default)s]")
    ap.add_argument("--rounds", type=b.positive, default=5, help="rounds of (plain, blocked) [%(default)s]")
    ap.add_argument("--repeats", type=b.positive, default=20, help="steps timed per side and round [%(default)s]")
    ap.add_argument("--threads", type=b.positive, help="torch threads [torch's default: the cores]")
    args = ap.parse_args(argv)
    if not 0.0 <= args.label_smoothing < 1.0:
        ap.error(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch
    import torch.nn.functional as F

    from seqrec_cli.models import losses

    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(args.rows, args.hidden, generator=g)
    weight = torch.randn(args.items, args.hidden, generator=g) * 0.3
    targets = torch.randint(0, args.items, (args.rows,), generator=g)
    eps = args.label_smoothing

    def plain(h, w):
        return F.cross_entropy(h @ w.T, targets, reduction="sum", label_smoothing=eps)

    def blocked(h, w):
        return losses.linear_cross_entropy(h, w, targets, label_smoothing=eps)

    def step(fn):
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        loss = fn(h, w)
        loss.backward()
        return loss.detach(), h.grad, w.grad

    ref, got = step(plain), step(blocked)
    diff = max(float((a - c).abs().max()) for a, c in zip(ref[1:], got[1:]))
    if abs(float(ref[0]) - float(got[0])) > 1e-4 * abs(float(ref[0])) + 1e-3 or diff > 1e-3:
        raise b.BenchError(f"the two losses disagree: {float(ref[0])} against {float(got[0])}, gradients by {diff}")
    times: dict[str, list[float]] = {"plain": [], "blocked": []}
    for r in range(1, args.rounds + 1):
        for name, fn in (("plain", plain), ("blocked", blocked)):
            start = time.perf_counter()
            for _ in range(args.repeats):
                step(fn)
            times[name].append((time.perf_counter() - start) / args.repeats * 1000)
        b.log(f"round {r}: plain {times['plain'][-1]:.1f} ms, blocked {times['blocked'][-1]:.1f} ms")
    p, q = b.median(times["plain"]), b.median(times["blocked"])
    b.summary(
        {
            "threads": torch.get_num_threads(), "rows": args.rows, "hidden": args.hidden, "items": args.items,
            "plain_ms": p, "blocked_ms": q, "speedup": round(p / q, 2), "max_grad_diff": diff,
        }
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(b.main_guard(main))
