"""SASRec's settings and its registry entry (torch-free; the model is in ``sasrec.py``).

Sources: Kang & McAuley 2018, "Self-attentive sequential recommendation" (ICDM; causal
self-attention blocks §III-B/C, learned positions, shared item embedding §III-E, binary
cross-entropy with one sampled negative per position §III-F); Klenitskiy & Vasilev 2023,
"Turning dross into gold loss: is BERT4Rec really better than SASRec?" (RecSys; "SASRec+": the
same model trained with cross-entropy over all items at every position, ML-1M settings hidden 64,
2 blocks, 1 head, dropout 0.1, max length 200, Adam lr 1e-3, batch 128; sampled cross-entropy
with 3,000 negatives for large catalogues). Defaults that differ were measured on ML-1M
(docs/benchmarks.md) and say so in their help; ``--params sasrec_plus`` restores SASRec+'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .. import formats
from ..errors import SeqrecError
from ..hparams import hp
from .spec import MODEL, TRAINING, HistoryLayout, ModelEntry, TrainConfig


@dataclass
class SASRecConfig:
    n_items: int  # items 1..n_items; 0 = padding
    hidden_size: int = hp(64, "Embedding and block width (SASRec+, ML-1M: 64).", min=1, max=1 << 14, panel=MODEL)
    num_layers: int = hp(2, "Self-attention blocks (SASRec: 2).", min=1, max=64, flag="--layers", panel=MODEL)
    num_heads: int = hp(1, "Attention heads (SASRec: 1); must divide the hidden size.", min=1, max=256, flag="--heads", panel=MODEL)
    intermediate_size: int = hp(
        64, "Width of the point-wise feed-forward layer (SASRec: the hidden size).", min=1, max=1 << 16, panel=MODEL
    )
    hidden_dropout: float = hp(
        0.1, "Dropout on embeddings and block outputs (SASRec+, ML-1M: 0.1).", min=0.0, max=1.0, max_open=True,
        flag="--dropout", panel=MODEL,
    )  # fmt: skip
    attention_dropout: float = hp(
        0.0, "Dropout on the attention weights (0 lets the fused causal attention kernel run).",
        min=0.0, max=1.0, max_open=True, panel=MODEL,
    )  # fmt: skip
    block: Literal["pre-ln", "original"] = hp(
        "pre-ln", "Block wiring: pre-ln (x + Attention(LN(x)), then x + FFN(LN(x))) | original (Kang & McAuley's "
        "code: queries LN(x), keys and values x, residual from LN(x); then y = LN(x), y + FFN(y); the query/key/value "
        "projection Xavier-initialised).",
        panel=MODEL, legacy="pre-ln",
    )  # fmt: skip
    positions: Literal["from-start", "from-end"] = hp(
        "from-start", "Learned positions counted from-start (the window's first item is 0, right padding) | from-end "
        "(the most recent item is 0, as the original's left padding gives: the scored position always has the same one).",
        panel=MODEL, legacy="from-start",
    )  # fmt: skip
    max_len: int = hp(200, "Longest input in items (ML-1M: 200); longer histories keep their most recent items.", min=1, max=1 << 16, panel=MODEL)
    initializer_range: float = hp(
        0.02, "Std of the normal weight initialisation.", min=0.0, min_open=True, max=10.0, flag="--init-range", panel=MODEL
    )
    label_smoothing: float = hp(
        0.1, "--loss ce: label smoothing over the real items (0 = plain cross-entropy, as SASRec+; 0.1 measured better "
        "on ML-1M; the logged loss includes it).",
        min=0.0, max=1.0, max_open=True, arch=False, panel=MODEL,
    )  # fmt: skip
    loss: Literal["ce", "sampled-ce", "bce"] = hp(
        "ce", "ce (softmax over every item at every position: SASRec+) | sampled-ce (softmax over the target and "
        "--n-negatives shared uniform negatives, for large catalogues) | bce (the original: one uniform negative per "
        "position).", arch=False, panel=MODEL,
    )  # fmt: skip

    def validate(self, where: str) -> None:
        if self.hidden_size % self.num_heads:
            raise SeqrecError(
                f"{where}: hidden size {self.hidden_size} is not a multiple of the number of attention heads {self.num_heads}"
            )


@dataclass
class SASRecTrainConfig(TrainConfig):
    epochs: int = hp(
        50, "Passes over the training windows (50 with the other defaults: about 20 minutes on ML-1M on 2 CPU cores).",
        min=1, max=100_000, panel=TRAINING,
    )  # fmt: skip
    batch_size: int = hp(
        32, "Training windows per step (SASRec+: 128; 32 learns more per epoch on ML-1M on a CPU).", min=1, max=1 << 20,
        panel=TRAINING,
    )  # fmt: skip
    lr: float = hp(
        2e-3, "Peak learning rate of AdamW (SASRec+: Adam, 1e-3 at batch 128; 2e-3 measured at batch 32).", min=0.0,
        min_open=True, panel=TRAINING,
    )  # fmt: skip
    weight_decay: float = hp(0.0, "AdamW weight decay (not on biases and LayerNorm).", min=0.0, panel=TRAINING)
    warmup_steps: int = hp(100, "Linear warm-up steps (SASRec+: none).", min=0, panel=TRAINING)
    schedule: Literal["constant", "linear"] = hp(
        "linear", "Learning rate after warm-up: constant (SASRec+; a run may then be extended with --resume) | linear "
        "(decays to 0 at the last epoch: measured better on ML-1M).", panel=TRAINING,
    )  # fmt: skip
    max_grad_norm: float = hp(0.0, "Gradient clipping norm (0 = off).", min=0.0, panel=TRAINING)
    n_negatives: int = hp(
        3000, "--loss sampled-ce: uniform negatives per step, shared by the batch (SASRec+ 3000).", min=1, max=1 << 24,
        panel=TRAINING,
    )  # fmt: skip
    max_windows: int = hp(
        1, "Train on only the N most recent windows of each sequence (0 = all; 1 = each user's last max-length "
        "items, as SASRec+ does: on ML-1M as good as all windows in 0.66 of the time).", min=0, panel=TRAINING,
    )  # fmt: skip
    valid_every: int = hp(
        5, "Validate after every N-th epoch (and after the last); with the linear schedule the best epoch is near the end.",
        min=1, panel=TRAINING,
    )  # fmt: skip


def _model():
    from .sasrec import SASRec

    return SASRec


def _train_batcher():
    from ..data.sasrec import CausalWindowBatcher

    return CausalWindowBatcher


def _history_layout(config: SASRecConfig) -> HistoryLayout:
    # the last max_len items before the target, right-padded: the causal model reads left to right
    return HistoryLayout(side="right", max_items=config.max_len, lengths=True)


def _score_batches(seqs, mode, batch_size, config, shard=None):
    from ..data.history import history_batches

    layout = _history_layout(config)
    return history_batches(seqs, mode, batch_size, layout.max_items, side=layout.side, shard=shard)


ENTRY = ModelEntry(
    name="sasrec",
    title="SASRec",
    help="Train SASRec (default data: data/ml-1m, preprocessed from the download if needed): causal "
    "self-attention over each user's items, trained to predict the next item at every position with a "
    "cross-entropy over all items (SASRec+). Each epoch is saved to <model-dir>/epoch_N; evaluate with "
    "seqrec evaluate or seqrec infer.",
    config=SASRecConfig,
    train_config=SASRecTrainConfig,
    load_model=_model,
    load_train_batcher=_train_batcher,
    score_batches=_score_batches,
    history_layout=_history_layout,
    headline=("hr@10", "ndcg@10"),
    valid_metric="ndcg@10",
    default_data=formats.ML1M,
)
