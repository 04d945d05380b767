"""BERT4Rec's settings and its registry entry (torch-free; the model is in ``bert4rec.py``).

Sources: Sun et al. 2019, "BERT4Rec: Sequential recommendation with bidirectional encoder
representations from Transformer" (CIKM; cloze objective §3.6, the ML-1M settings §4.3: hidden
64, 2 layers, 2 heads, max length 200, mask probability 0.2); BERT (Devlin et al. 2019: 80/10/10
replacement, post-LN layers, AdamW with warm-up); Petrov & Macdonald 2022, "A systematic review
and replicability study of BERT4Rec" (RecSys; the original schedule under-trains, 10-30x more
training needed). Where the defaults leave the paper, the help says so and docs/benchmarks.md
has the measurement (docs/protocols.md §5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .. import formats
from ..errors import SeqrecError
from ..hparams import hp
from .spec import MODEL, TRAINING, HistoryLayout, ModelEntry, Stage, TrainConfig

# keys of BERT-style config files (the original BERT4Rec's bert_config_*.json) -> our fields
BERT_JSON_KEYS = {
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "hidden_dropout_prob": "hidden_dropout",
    "attention_probs_dropout_prob": "attention_dropout",
    "max_position_embeddings": "max_len",
}


@dataclass
class Bert4RecConfig:
    n_items: int  # items 1..n_items; 0 = padding; n_items + 1 = [MASK]
    hidden_size: int = hp(64, "Transformer width (paper, ML-1M: 64).", min=1, max=1 << 14, panel=MODEL)
    num_layers: int = hp(2, "Transformer layers (paper: 2).", min=1, max=64, flag="--layers", panel=MODEL)
    num_heads: int = hp(2, "Attention heads (paper: 2); must divide the hidden size.", min=1, max=256, flag="--heads", panel=MODEL)
    intermediate_size: int = hp(256, "Feed-forward width (paper: 4 x hidden).", min=1, max=1 << 16, panel=MODEL)
    hidden_act: Literal["gelu", "relu"] = hp("gelu", "Feed-forward activation (BERT: gelu).", panel=MODEL)
    hidden_dropout: float = hp(
        0.2, "Hidden dropout (paper: 0.1-0.2; 0.2 is the measured CPU recipe's).", min=0.0, max=1.0, max_open=True, flag="--dropout", panel=MODEL
    )
    attention_dropout: float = hp(
        0.0, "Attention dropout (paper: 0.1-0.2; 0, the default, lets the fused attention kernel run: ~1.5x "
        "faster on a CPU).",
        min=0.0, max=1.0, max_open=True, panel=MODEL,
    )  # fmt: skip
    max_len: int = hp(200, "Longest input in items, [MASK] included (paper, ML-1M: 200).", min=2, max=1 << 16, panel=MODEL)
    initializer_range: float = hp(
        0.02, "Std of the truncated-normal weight initialisation (BERT: 0.02).", min=0.0, min_open=True, max=10.0,
        flag="--init-range", panel=MODEL,
    )  # fmt: skip
    label_smoothing: float = hp(
        0.1, "Cross-entropy label smoothing over the real items (0 = plain cross-entropy, the paper's; 0.1 lifted "
        "test NDCG@10 on ML-1M by 0.011; the logged loss includes it).",
        min=0.0, max=1.0, max_open=True, arch=False, panel=MODEL,
    )  # fmt: skip

    @property
    def vocab_size(self) -> int:
        return self.n_items + 2

    @property
    def mask_index(self) -> int:
        return self.n_items + 1

    def validate(self, where: str) -> None:
        """Checks across fields; ``where`` names the source in the error."""
        if self.hidden_size % self.num_heads:
            raise SeqrecError(
                f"{where}: hidden size {self.hidden_size} is not a multiple of the number of attention heads {self.num_heads}"
            )

    @staticmethod
    def check_json(raw: dict, n_items: int, where: str) -> None:
        """A BERT-style file's ``vocab_size`` must fit the vocabulary: n_items + 2 (seqrec: padding,
        items, [MASK]) or n_items + 4 (the original BERT4Rec code's layout with its extra tokens)."""
        if "vocab_size" in raw and raw["vocab_size"] not in (n_items + 2, n_items + 4):
            raise SeqrecError(
                f"{where}: vocab_size {raw['vocab_size']!r} does not match the vocabulary: {n_items} items need "
                f"{n_items + 2} (padding + items + [MASK]) or {n_items + 4} (original BERT4Rec layout)"
            )


@dataclass
class Bert4RecTrainConfig(TrainConfig):
    epochs: int = hp(
        100, "Passes over the training windows (the learning rate decays to 0 at the last).", min=1, max=100_000, panel=TRAINING
    )
    batch_size: int = hp(
        32, "Samples per step (paper: 256; small batches learn faster per CPU second).", min=1, max=1 << 20, panel=TRAINING
    )
    lr: float = hp(
        2e-3, "Peak learning rate (AdamW) after warm-up; decays linearly to 0 (paper: 1e-4 for 400k steps, "
        "which under-trains in any CPU budget).", min=0.0, min_open=True, panel=TRAINING,
    )  # fmt: skip
    weight_decay: float = hp(0.01, "AdamW weight decay (not on biases and LayerNorm).", min=0.0, panel=TRAINING)
    warmup_steps: int = hp(200, "Linear warm-up steps.", min=0, panel=TRAINING)
    max_grad_norm: float = hp(5.0, "Gradient clipping norm (0 = off).", min=0.0, panel=TRAINING)
    mask_prob: float = hp(
        0.2, "Share of positions masked by the cloze objective (paper, ML-1M: 0.2).", min=0.0, max=1.0,
        min_open=True, max_open=True, panel=TRAINING,
    )  # fmt: skip
    objective: Literal["cloze", "last", "both", "cloze-last"] = hp(
        "cloze-last", "cloze | last (only the last item masked: the test task) | both (the paper's: cloze samples + "
        "last-item samples) | cloze-last (one pass: cloze with the last item always masked; half the cost of both).",
        panel=TRAINING,
    )  # fmt: skip
    last_share: float = hp(
        1.0, "--objective both: share of windows that also give a last-item sample each epoch.", min=0.0, max=1.0, panel=TRAINING
    )
    window_step: int = hp(
        0, "Sliding step of the training windows over long sequences (0 = max length).", min=0, panel=TRAINING
    )
    max_windows: int = hp(
        0, "Train on only the N most recent windows of each sequence (0 = all; 1 = each user's last max-length "
        "items, as the full-ranking reproduction does).", min=0, panel=TRAINING,
    )  # fmt: skip
    valid_every: int = hp(
        5, "Validate after every N-th epoch (and after the last); with the linear decay the best epoch is near the end.",
        min=1, panel=TRAINING,
    )  # fmt: skip
    batching: Literal["random", "bucket"] = hp(
        "random", "random (batches of random windows; on a CPU run as length-sorted chunks to cut padding) | "
        "bucket (windows of similar length: least padding, but clearly less learnt per epoch on ML-1M).", panel=TRAINING,
    )  # fmt: skip


def _model():
    from .bert4rec import Bert4Rec

    return Bert4Rec


def _train_batcher():
    from ..data.cloze import ClozeBatcher

    return ClozeBatcher


def _history_layout(config: Bert4RecConfig) -> HistoryLayout:
    # the last max_len - 1 items before the target, then [MASK]; left-padded (positions count from the right)
    return HistoryLayout(side="left", max_items=config.max_len - 1, append=config.mask_index, append_name="[MASK]")


def _score_batches(seqs, mode, batch_size, config, shard=None):
    from ..data.history import history_batches

    layout = _history_layout(config)
    return history_batches(seqs, mode, batch_size, layout.max_items, append=layout.append, side=layout.side, shard=shard)


ENTRY = ModelEntry(
    name="bert4rec",
    title="BERT4Rec",
    help="Train BERT4Rec (default data: data/ml-1m, preprocessed from the download if needed). "
    "Defaults: the measured CPU recipe (cloze with the last item always masked, dropout 0.2, no attention "
    "dropout, label smoothing 0.1, 100 epochs; --params bert4rec_paper for the paper's); validation NDCG@10/HR@10 "
    "every 5th epoch, best epoch recorded, optional early stopping. Each epoch is saved to <model-dir>/epoch_N; evaluate with "
    "seqrec evaluate or seqrec infer.",
    config=Bert4RecConfig,
    train_config=Bert4RecTrainConfig,
    load_model=_model,
    load_train_batcher=_train_batcher,
    score_batches=_score_batches,
    history_layout=_history_layout,
    headline=("hr@10", "ndcg@10"),
    valid_metric="ndcg@10",
    default_data=formats.ML1M,
    config_aliases=BERT_JSON_KEYS,
    config_ignored=("vocab_size", "type_vocab_size"),
    check_config_file=Bert4RecConfig.check_json,
    stages={
        "pretrain": Stage(
            help="Masked-item (cloze) pretraining of BERT4Rec on the training sequences (BERT's 80/10/10 "
            "replacement, masks redrawn every epoch). Saves epoch_N checkpoints to pretrain_output/; continue "
            "with seqrec train bert4rec --init-from pretrain_output/epoch_N.",
            model_dir=formats.PRETRAIN_DIR,
            defaults={"epochs": 50},
            fixed={"objective": "cloze", "last_share": 1.0},
        )
    },
)
