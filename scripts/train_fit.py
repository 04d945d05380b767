"""How much does a checkpoint memorise? Score each user's last *training* item (which the model
was trained on) and the validation target with the same input rule (history + [MASK],
`full+filter-seen`); a gap that grows while validation stays flat is memorisation.

    python scripts/train_fit.py model_output/epoch_125
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from seqrec_cli import checkpoint as ckpt
from seqrec_cli.evaluation import EvalSpec
from seqrec_cli.inference import data_for, evaluate_checkpoint, load


def main(path: Path) -> None:
    checkpoint = ckpt.read_checkpoint(path)
    lm = load(checkpoint, torch.device("cpu"))
    data = data_for(checkpoint)
    for split in ("train", "valid"):
        m = evaluate_checkpoint(lm, data, EvalSpec(split=split, cutoffs=(10,), filter_seen=True)).metrics
        print(f"{path}, last {split} item [full+filter-seen]: HR@10 {m['hr@10']:.4f}, NDCG@10 {m['ndcg@10']:.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
