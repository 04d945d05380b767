"""GRU4Rec's settings and its registry entry (torch-free; the model is in ``gru4rec.py``).

Sources: Hidasi et al. 2016, "Session-based recommendations with recurrent neural networks"
(ICLR; session-parallel mini-batches, §3.1.1); Hidasi & Karatzoglou 2018, "Recurrent neural
networks with top-k gains" (CIKM; BPR-max, §4.2, sampled negatives shared by the batch, §4.1);
the official GRU4Rec code's tuned parameter file ``rsc15_xe_shared_100_best`` (cross-entropy
with logQ correction, shared embedding, 100 units, 2,048 negatives, Adagrad with momentum), whose
values are the defaults here (docs/protocols.md §3 and §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .. import formats
from ..hparams import hp
from .spec import MODEL, TRAINING, HistoryLayout, ModelEntry, TrainConfig


@dataclass
class GRU4RecConfig:
    n_items: int  # item indices 1..n_items; index 0 is padding and never scored
    hidden_size: int = hp(100, "Units of each GRU layer.", min=1, max=1 << 16, panel=MODEL)
    num_layers: int = hp(1, "Number of GRU layers.", min=1, max=64, flag="--layers", panel=MODEL)
    embedding_size: int = hp(
        0, "Separate input embedding size (with --no-shared-embedding); 0 = one-hot input.", min=0, max=1 << 16, panel=MODEL
    )
    shared_embedding: bool = hp(
        True, "Use the output item embedding as the input embedding (the best RSC15 setting).", panel=MODEL
    )
    dropout_embed: float = hp(0.0, "Dropout on the input embedding.", min=0.0, max=1.0, max_open=True, panel=MODEL)
    dropout_hidden: float = hp(0.4, "Dropout on the output of each GRU layer.", min=0.0, max=1.0, max_open=True, panel=MODEL)
    loss: Literal["ce", "sampled-ce", "bpr-max", "bpr"] = hp(
        "sampled-ce", "ce (softmax over all items) | sampled-ce (in-batch targets + sampled negatives, logQ "
        "correction) | bpr-max | bpr.", arch=False, panel=MODEL,
    )  # fmt: skip
    logq: float = hp(1.0, "Weight of the logQ correction of sampled-ce (0 = off).", min=0.0, arch=False, panel=MODEL)
    bpreg: float = hp(1.0, "Score regularisation of bpr-max (Hidasi & Karatzoglou 2018, eq. 7).", min=0.0, arch=False, panel=MODEL)
    elu_param: float = hp(0.0, "bpr-max: ELU applied to the scores when > 0.", min=0.0, arch=False, panel=MODEL)

    @property
    def input_mode(self) -> str:
        if self.shared_embedding:
            return "shared"
        return "embedding" if self.embedding_size > 0 else "onehot"

    def validate(self, where: str) -> None:
        """Checks across fields (none for GRU4Rec)."""


@dataclass
class GRU4RecTrainConfig(TrainConfig):
    epochs: int = hp(10, "Passes over the training sessions.", min=1, max=100_000, panel=TRAINING)
    batch_size: int = hp(32, "Session-parallel slots per mini-batch.", min=1, max=1 << 20, panel=TRAINING)
    lr: float = hp(0.2, "Learning rate.", min=0.0, min_open=True, panel=TRAINING)
    optimizer: Literal["adagrad", "adam"] = hp("adagrad", "adagrad (with momentum, the original's) | adam.", panel=TRAINING)
    momentum: float = hp(0.2, "Momentum of adagrad.", min=0.0, panel=TRAINING)
    n_sample: int = hp(
        2048, "Extra negatives per step, shared by the batch (sampled losses).", min=0, max=1 << 24, panel=TRAINING
    )
    sample_alpha: float = hp(0.5, "Negatives are drawn by popularity ** alpha.", min=0.0, panel=TRAINING)
    session_order: Literal["shuffle", "file"] = hp(
        "shuffle", "shuffle (a new seeded order every epoch) | file (the order of train.txt).", panel=TRAINING
    )


def _model():
    from .gru4rec import GRU4Rec

    return GRU4Rec


def _train_batcher():
    from ..data.session_parallel import SessionParallelBatcher

    return SessionParallelBatcher


def _score_batches(seqs, mode, batch_size, config, shard=None):
    from ..data.session_parallel import session_parallel_score_batches

    return session_parallel_score_batches(seqs, mode, batch_size, shard)


def _history_layout(config: GRU4RecConfig) -> HistoryLayout:
    # seqrec scores session-parallel, step by step; the history scorer runs the same GRU over whole
    # right-padded sessions (every item: the session-parallel walk never truncates) and reads the state
    # after each session's last item
    return HistoryLayout(side="right", max_items=None, lengths=True)


ENTRY = ModelEntry(
    name="gru4rec",
    title="GRU4Rec",
    help="Train GRU4Rec with session-parallel mini-batches (default data: data/rsc15; defaults = the "
    "best published RSC15 setting). Each epoch is saved to <model-dir>/epoch_N; evaluate them with seqrec infer.",
    config=GRU4RecConfig,
    train_config=GRU4RecTrainConfig,
    load_model=_model,
    load_train_batcher=_train_batcher,
    score_batches=_score_batches,
    history_layout=_history_layout,
    headline=("recall@20", "mrr@20"),
    valid_metric="recall@20",
    default_data=formats.RSC15,
    lowercase_labels=True,
    # one thread: at batch 32 every operation is too small to split, and a second thread only adds
    # the hand-over (2 threads were 2.03x slower on a 2-core AMD VM, 1.18x on an Intel one:
    # docs/benchmarks.md, "GRU4Rec against the official GRU4Rec"); --threads N for large batches or --loss ce
    run_defaults={"log_every": 1000, "eval_batch_size": 512, "threads": 1},
)
