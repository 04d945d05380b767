"""BERT4Rec (Sun et al. 2019): a bidirectional Transformer over a user's items, trained to
recover masked items (cloze) and used to predict a [MASK] appended after the history.

Indices: 0 = padding, 1..N = items, N+1 = [MASK]. Input = item embedding + learned position
embedding, LayerNorm, dropout; then post-LN Transformer encoder layers (GELU feed-forward,
``scaled_dot_product_attention`` with a padding mask); the output head is BERT's: dense + GELU +
LayerNorm, then the *tied* item embedding plus a bias. Logits are computed only for the
positions asked for (those carrying a label, or the final [MASK]), never for every position.

Sequences are left-padded and position ids count from the right (the last real position always
has id max_len - 1), so a batch padded to its own longest sequence sees the same positions as a
batch padded to max_len.

``forward`` takes a cloze batch (``seqrec_cli.data.cloze``: chunks of masked windows with their
labels) and returns the mean cross-entropy over the batch's labelled positions, computed over the
real items only (padding and [MASK] score -inf), with optional label smoothing; ``score`` takes a
history batch (``seqrec_cli.data.history``: history + [MASK], left-padded) and returns the scores
of the [MASK] position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import SequentialRecommender, TrainOutput, adamw_with_warmup, no_autocast
from .bert4rec_config import Bert4RecConfig

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}

class EncoderLayer(nn.Module):
    def __init__(self, c: Bert4RecConfig):
        super().__init__()
        self.num_heads = c.num_heads
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        self.out = nn.Linear(c.hidden_size, c.hidden_size)
        self.norm1 = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.ff1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.ff2 = nn.Linear(c.intermediate_size, c.hidden_size)
        self.norm2 = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.drop = nn.Dropout(c.hidden_dropout)
        self.attention_dropout = c.attention_dropout
        self.act = ACTIVATIONS[c.hidden_act]

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x: [B, T, H]; attn_mask: [B, 1, 1, T] bool, True = may attend (real item) -> [B, T, H], or
        with ``last_only`` [B, 1, H]: only the last position's output (its query against every key;
        the other positions' outputs, which nothing after the last layer reads, are not computed)."""
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, h // self.num_heads).permute(2, 0, 3, 1, 4)  # 3 x [B, nh, T, hd]
        if last_only:
            q, x, t = q[:, :, -1:], x[:, -1:], 1
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attention_dropout if self.training else 0.0
        )  # [B, nh, T, hd]
        a = a.transpose(1, 2).reshape(b, t, h)
        x = self.norm1(x + self.drop(self.out(a)))
        return self.norm2(x + self.drop(self.ff2(self.act(self.ff1(x)))))


class Bert4Rec(SequentialRecommender):
    def __init__(self, config: Bert4RecConfig):
        super().__init__()
        self.config = config
        c = config
        self.item_embedding = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=0)  # [V, H], tied with the output
        self.position_embedding = nn.Embedding(c.max_len, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.drop = nn.Dropout(c.hidden_dropout)
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.num_layers))
        self.head = nn.Linear(c.hidden_size, c.hidden_size)  # output transform before the tied embedding
        self.head_norm = nn.LayerNorm(c.hidden_size, eps=1e-12)
        self.output_bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.act = ACTIVATIONS[c.hidden_act]
        self.apply(self._init)

    def _init(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def encode(self, items: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """items: [B, T] left-padded (0 = padding), T <= max_len -> hidden states [B, T, H]; with
        ``last_only`` the last position's only, [B, 1, H] (the last layer runs for that position
        alone: scoring reads nothing else, and skips about half the work)."""
        b, t = items.shape
        positions = torch.arange(self.config.max_len - t, self.config.max_len, device=items.device)  # [T]
        x = self.item_embedding(items) + self.position_embedding(positions)  # [B, T, H]
        x = self.drop(self.norm(x))
        attn_mask = (items > 0).view(b, 1, 1, t)  # [B, 1, 1, T]
        for i, layer in enumerate(self.layers):
            x = layer(x, attn_mask, last_only=last_only and i == len(self.layers) - 1)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: [M, H] states at the positions to predict -> [M, V]; padding and [MASK] are -inf."""
        h = self.head_norm(self.act(self.head(hidden)))
        scores = h @ self.item_embedding.weight.T + self.output_bias  # [M, V]
        scores[:, 0] = float("-inf")
        scores[:, self.config.mask_index] = float("-inf")
        return scores

    def forward(self, batch) -> TrainOutput:
        """batch: a ClozeBatch, chunks of (items [b, T], labels [b, T], 0 = no label) -> one loss over
        the whole batch (mean over its labelled positions), summed chunk by chunk."""
        device = self.output_bias.device
        total = torch.zeros((), device=device)
        n = 0
        items_only = slice(1, self.config.mask_index)  # columns of the real items 1..N
        for items, labels in batch.chunks:
            select = labels > 0
            logits = self.logits(self.encode(items)[select])  # [m, V]
            with no_autocast(device):  # over the real items only: padding and [MASK] score -inf
                total = total + F.cross_entropy(
                    logits[:, items_only].float(), labels[select] - 1, reduction="sum",
                    label_smoothing=self.config.label_smoothing,
                )  # fmt: skip
            n += int(select.sum())
        return TrainOutput(total / max(n, 1), float(total.detach()), n)

    def score(self, batch) -> torch.Tensor:
        """batch: a HistoryBatch (items [B, T] left-padded, [MASK] last) -> scores [B, N + 1] of the
        [MASK] position (column 0, padding, is -inf)."""
        return self.score_items(batch.items)

    def score_items(self, items: torch.Tensor) -> torch.Tensor:
        """items: [B, T] left-padded histories ending in [MASK] -> scores [B, N + 1] of the [MASK]
        position (column 0, padding, is -inf)."""
        return self.logits(self.encode(items, last_only=True)[:, -1])[:, : self.config.mask_index]

    def full_softmax_loss(self) -> bool:
        return True

    def history_scorer(self) -> nn.Module:
        return Bert4RecHistoryScorer(self)

    def configure_optimizers(self, train_config, total_steps: int):
        return adamw_with_warmup(
            self, train_config.lr, train_config.weight_decay, train_config.warmup_steps, total_steps
        )

    def summary(self, train_config) -> list[str]:
        c, tc = self.config, train_config
        n = sum(p.numel() for p in self.parameters())
        return [
            f"bert4rec: {c.num_layers} layers x {c.num_heads} heads, hidden {c.hidden_size}, feed-forward "
            f"{c.intermediate_size}, max length {c.max_len}, {c.n_items:,} items, {n:,} parameters",
            f"objective {tc.objective} (mask prob {tc.mask_prob}"
            + (f", last-item samples for {tc.last_share:.0%} of windows" if tc.objective == "both" else "")
            + (f", label smoothing {c.label_smoothing}" if c.label_smoothing else "")
            + f"), AdamW lr {tc.lr} (warm-up {tc.warmup_steps} steps, linear decay), {tc.batching} batches of "
            f"{tc.batch_size}",
        ]


class Bert4RecHistoryScorer(nn.Module):
    """BERT4Rec as ``items -> scores`` for export (``seqrec export``): ``items`` [B, T] int64 is what
    ``score`` reads, the last ``max_len - 1`` history items then [MASK] (index n_items + 1), left-padded
    with 0, T <= max_len; the result is the [MASK] position's scores [B, n_items + 1] (column i = item
    index i; column 0, padding, is -inf). The same computation as :meth:`Bert4Rec.score`."""

    def __init__(self, model: Bert4Rec):
        super().__init__()
        self.model = model

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.model.score_items(items)  # [B, N + 1]
