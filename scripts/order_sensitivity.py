"""Does a checkpoint use the order of a user's items? Evaluate the validation targets with each
history as it is, with its last 10 items shuffled, reversed, and fully shuffled (the target stays
last). A model that ignores order scores the same on all four.

    python scripts/order_sensitivity.py model_output/epoch_55
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from seqrec_cli import checkpoint as ckpt
from seqrec_cli.evaluation import EvalSpec, evaluate_batches
from seqrec_cli.sequences import Sequences
from seqrec_cli.inference import data_for, load
from seqrec_cli.scoring import score_batches


def permuted(seqs: Sequences, kind: str, rng: np.random.Generator) -> Sequences:
    items = seqs.items.copy()
    for u in range(len(seqs)):
        a, b = int(seqs.offsets[u]), int(seqs.offsets[u + 1]) - 1  # history [a, b), target at b
        if kind == "last10":
            lo = max(a, b - 10)
            items[lo:b] = rng.permutation(items[lo:b])
        elif kind == "reversed":
            items[a:b] = items[a:b][::-1]
        elif kind == "shuffled":
            items[a:b] = rng.permutation(items[a:b])
    return Sequences(items, seqs.offsets)


def main(path: str) -> None:
    cp = ckpt.read_checkpoint(Path(path))
    lm = load(cp, torch.device("cpu"))
    data = data_for(cp)
    seqs = data.split("valid")
    target = data.manifest.eval_target
    rng = np.random.default_rng(0)
    for kind in ("as-is", "last10", "reversed", "shuffled"):
        s = seqs if kind == "as-is" else permuted(seqs, kind, rng)
        spec = EvalSpec(split="valid", cutoffs=(10,))
        m = evaluate_batches(score_batches(lm.model, lm.entry, s, target, 512), s, data.n_items, target, spec).metrics
        print(f"{kind:9s} HR@10 {m['hr@10']:.4f}  NDCG@10 {m['ndcg@10']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
