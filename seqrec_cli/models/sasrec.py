"""SASRec (Kang & McAuley 2018): causal self-attention over a user's items, predicting the next
item at every position.

Input = item embedding x sqrt(hidden) + learned position embedding (position 0 = the first item
of the window, or with ``--positions from-end`` the most recent item), dropout; then blocks of causal attention
(``scaled_dot_product_attention(is_causal=True)``) and a ReLU point-wise feed-forward layer, wired
either pre-LN (``x + Attention(LN(x))``, then ``x + FFN(LN(x))``) or as the original code
(``--block original``: queries and residual from LN(x), keys and values from x, and the
query/key/value projection Xavier-initialised as torch's MultiheadAttention in the SASRec+ code);
a final LayerNorm. The score of item i at a position is the dot product of
the position's state with item i's embedding (tied output, §III-E). Sequences are right-padded,
so under the causal mask a real position attends only to real positions and no padding mask is
needed; padded positions are never asked for a prediction.

``forward`` takes a causal batch (``seqrec_cli.data.sasrec``) and returns the mean loss over its
target positions: ``ce`` (softmax over all items, Klenitskiy & Vasilev 2023's SASRec+),
``sampled-ce`` (softmax over the target and the batch's shared uniform negatives, accidental hits
removed) or ``bce`` (the original: the target against one uniform negative per position);
``score`` takes a history batch (``seqrec_cli.data.history``, right-padded) and returns the
scores after each history's last item.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import losses
from .base import SequentialRecommender, TrainOutput, adamw_with_warmup, no_autocast
from .sasrec_config import SASRecConfig


class CausalBlock(nn.Module):
    def __init__(self, c: SASRecConfig):
        super().__init__()
        self.num_heads = c.num_heads
        self.norm1 = nn.LayerNorm(c.hidden_size, eps=1e-8)
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        self.out = nn.Linear(c.hidden_size, c.hidden_size)
        self.norm2 = nn.LayerNorm(c.hidden_size, eps=1e-8)
        self.ff1 = nn.Linear(c.hidden_size, c.intermediate_size)
        self.ff2 = nn.Linear(c.intermediate_size, c.hidden_size)
        self.drop = nn.Dropout(c.hidden_dropout)
        self.attention_dropout = c.attention_dropout
        self.original = c.block == "original"

    def forward(self, x: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
        """x: [B, T, H] -> [B, T, H]; position t sees positions 0..t only. With ``last`` ([B] int64,
        one position per row) only that position's output, [B, 1, H]: its query against keys
        0..last (the other positions' outputs, which nothing after the last block reads, are not
        computed).

        ``pre-ln``: ``x + Drop(Attn(LN1(x)))``, then ``x + FFN(LN2(x))``. ``original`` (Kang &
        McAuley's released code, §III-B/C): ``q = LN1(x)``, ``x = q + Attn(q, k=x, v=x)``, then
        ``y = LN2(x)``, ``y + FFN(y)``."""
        b, t, h = x.shape
        nh, hd = self.num_heads, h // self.num_heads
        w, bias = self.qkv.weight, self.qkv.bias  # [3H, H], [3H]
        if self.original:
            block_input, x = x, self.norm1(x)  # LN1(x): the queries and the residual
            q = F.linear(x, w[:h], bias[:h])
            k, v = F.linear(block_input, w[h:], bias[h:]).view(b, t, 2, nh, hd).permute(2, 0, 3, 1, 4)
            q = q.view(b, t, nh, hd).transpose(1, 2)
        else:
            q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, nh, hd).permute(2, 0, 3, 1, 4)
        dropout = self.attention_dropout if self.training else 0.0
        if last is None:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)  # [B, nh, T, hd]
        else:
            q = q.gather(2, last.view(b, 1, 1, 1).expand(b, nh, 1, hd))  # [B, nh, 1, hd]
            x = x.gather(1, last.view(b, 1, 1).expand(b, 1, h))  # [B, 1, H]
            sees = torch.arange(t, device=x.device).view(1, 1, 1, t) <= last.view(b, 1, 1, 1)  # [B, 1, 1, T]
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=sees, dropout_p=dropout)  # [B, nh, 1, hd]
            t = 1
        a = self.out(a.transpose(1, 2).reshape(b, t, h))
        if self.original:
            x = self.norm2(x + a)
            return x + self.drop(self.ff2(self.drop(F.relu(self.ff1(x)))))
        x = x + self.drop(a)
        return x + self.drop(self.ff2(self.drop(F.relu(self.ff1(self.norm2(x))))))


class SASRec(SequentialRecommender):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = c = config
        self.item_embedding = nn.Embedding(c.n_items + 1, c.hidden_size, padding_idx=0)  # [N+1, H], tied with the output
        self.position_embedding = nn.Embedding(c.max_len, c.hidden_size)
        self.drop = nn.Dropout(c.hidden_dropout)
        self.blocks = nn.ModuleList(CausalBlock(c) for _ in range(c.num_layers))
        self.final_norm = nn.LayerNorm(c.hidden_size, eps=1e-8)
        self.apply(self._init)
        if c.block == "original":  # the original code's attention (torch's MultiheadAttention) keeps its own
            for block in self.blocks:  # initialisation of the query/key/value projection: Xavier-uniform
                nn.init.xavier_uniform_(block.qkv.weight)

    def _init(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=std)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def encode(self, items: torch.Tensor, last: torch.Tensor | None = None) -> torch.Tensor:
        """items: [B, T] right-padded (0 = padding), T <= max_len -> states [B, T, H]; with ``last``
        ([B] int64) the state at position ``last`` of each row only, [B, 1, H] (the last block runs
        for that position alone: scoring reads nothing else, and skips about half the work)."""
        t = items.shape[1]
        positions = torch.arange(t, device=items.device)  # [T]
        if self.config.positions == "from-end":  # [B, T]: real items are a prefix of each row (right padding)
            positions = ((items > 0).sum(1, keepdim=True) - 1 - positions).clamp_(min=0)
        x = self.item_embedding(items) * math.sqrt(self.config.hidden_size) + self.position_embedding(positions)
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, last if i == len(self.blocks) - 1 else None)
        return self.final_norm(x)

    def forward(self, batch) -> TrainOutput:
        """batch: a CausalBatch -> the mean loss over its target positions (see the module docstring)."""
        device = self.item_embedding.weight.device
        total = torch.zeros((), device=device)
        n = 0
        items_w = self.item_embedding.weight  # [N+1, H]
        for chunk in batch.chunks:
            inputs, targets = chunk[0], chunk[1]
            select = targets > 0
            h = self.encode(inputs)[select]  # [m, H]
            y = targets[select]  # [m]
            loss = self.config.loss
            if loss == "ce":  # softmax over the real items only
                total = total + losses.linear_cross_entropy(
                    h, items_w[1:], y - 1, label_smoothing=self.config.label_smoothing
                )
            elif loss == "sampled-ce":
                neg = batch.negatives  # [S]
                pos = (h * items_w[y]).sum(-1, keepdim=True)  # [m, 1]
                logits = torch.cat([pos, h @ items_w[neg].T], dim=1).float()  # [m, 1 + S]
                logits[:, 1:] = logits[:, 1:].masked_fill(neg.view(1, -1) == y.view(-1, 1), float("-inf"))
                with no_autocast(device):
                    total = total + F.cross_entropy(logits, torch.zeros_like(y), reduction="sum")
            else:  # bce
                neg = chunk[2][select]  # [m]
                pos = (h * items_w[y]).sum(-1).float()
                negs = (h * items_w[neg]).sum(-1).float()
                with no_autocast(device):
                    total = total + F.softplus(-pos).sum() + F.softplus(negs).masked_fill(neg == y, 0.0).sum()
            n += int(select.sum())
        return TrainOutput(total / max(n, 1), float(total.detach()), n)

    def score(self, batch) -> torch.Tensor:
        """batch: a HistoryBatch (items [B, T] right-padded, lengths [B]) -> scores [B, N + 1] after
        each history's last item (column 0, padding, is -inf)."""
        return self.score_histories(batch.items, batch.lengths)

    def score_histories(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """items: [B, T] right-padded, lengths: [B] (>= 1) -> scores [B, N + 1] after each history's
        last item (column 0, padding, is -inf)."""
        last = self.encode(items, last=lengths - 1).squeeze(1)  # [B, H]
        scores = last @ self.item_embedding.weight.T
        scores[:, 0] = float("-inf")
        return scores

    def history_scorer(self) -> nn.Module:
        return SASRecHistoryScorer(self)

    def full_softmax_loss(self) -> bool:
        return self.config.loss == "ce"

    def configure_optimizers(self, train_config, total_steps: int):
        return adamw_with_warmup(
            self, train_config.lr, train_config.weight_decay, train_config.warmup_steps, total_steps,
            decay_to_zero=train_config.schedule == "linear",
        )  # fmt: skip

    def summary(self, train_config) -> list[str]:
        c, tc = self.config, train_config
        n = sum(p.numel() for p in self.parameters())
        return [
            f"sasrec: {c.num_layers} causal blocks x {c.num_heads} heads, hidden {c.hidden_size}, feed-forward "
            f"{c.intermediate_size}, max length {c.max_len}, {c.n_items:,} items, {n:,} parameters",
            f"AdamW lr {tc.lr} ({tc.schedule}" + (f", warm-up {tc.warmup_steps} steps" if tc.warmup_steps else "")
            + f"), weight decay {tc.weight_decay}, batch {tc.batch_size}",
        ]  # fmt: skip


class SASRecHistoryScorer(nn.Module):
    """SASRec as ``(items, lengths) -> scores`` for export (``seqrec export``): ``items`` [B, T] int64
    holds the last ``max_len`` history items right-padded with 0 (T <= max_len), ``lengths`` [B] int64
    the real items per row (>= 1); the result is the scores after each history's last item
    [B, n_items + 1] (column i = item index i; column 0, padding, is -inf), as :meth:`SASRec.score`."""

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.model.score_histories(items, lengths)
