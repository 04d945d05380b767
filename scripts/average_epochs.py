"""Would averaging the weights of the last epochs beat the best single epoch? Average the
state_dicts of epochs FIRST..LAST of a run and evaluate the mean model on the validation and test
targets (`full+filter-seen`, leave-one-out data such as ML-1M).

    python scripts/average_epochs.py model_output 106 125
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from seqrec_cli import checkpoint as ckpt
from seqrec_cli.evaluation import EvalSpec
from seqrec_cli.inference import data_for, evaluate_checkpoint, load


def main(model_dir: Path, first: int, last: int) -> None:
    checkpoints = [ckpt.read_checkpoint(model_dir / f"epoch_{e}") for e in range(first, last + 1)]
    lm = load(checkpoints[-1], torch.device("cpu"))
    states = [ckpt.load_weights(c) for c in checkpoints]
    lm.model.load_state_dict({k: sum(s[k].float() for s in states) / len(states) for k in states[0]})
    data = data_for(checkpoints[-1])
    for split in ("valid", "test"):
        m = evaluate_checkpoint(lm, data, EvalSpec(split=split, cutoffs=(10,), filter_seen=True)).metrics
        print(f"mean of epochs {first}-{last}, {split} [full+filter-seen]: HR@10 {m['hr@10']:.4f}, NDCG@10 {m['ndcg@10']:.4f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
