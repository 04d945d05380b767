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
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInputError

# keys of BERT-style config files (the original BERT4Rec's bert_config_*.json) -> our fields
BERT_JSON_KEYS = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "hidden_act": "hidden_act",
    "hidden_dropout_prob": "hidden_dropout",
    "attention_probs_dropout_prob": "attention_dropout",
    "max_position_embeddings": "max_len",
    "initializer_range": "initializer_range",
}
ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu}


@dataclass
class Bert4RecConfig:
    n_items: int  # items 1..n_items; 0 = padding; n_items + 1 = [MASK]
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 256  # feed-forward width
    hidden_act: str = "gelu"
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    max_len: int = 200  # longest input, [MASK] included
    initializer_range: float = 0.02  # std of the truncated-normal initialisation

    @property
    def vocab_size(self) -> int:
        return self.n_items + 2

    @property
    def mask_index(self) -> int:
        return self.n_items + 1

    def check(self, source: str = "config") -> None:
        """Types and ranges of every field, so a bad config file is an error line, not a traceback."""
        for name in ("n_items", "hidden_size", "num_layers", "num_heads", "intermediate_size", "max_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise BadInputError(source, f"{_key(name)} must be a positive integer, got {value!r}")
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise BadInputError(source, f"{_key(name)} must be a number in [0, 1), got {value!r}")
        if isinstance(self.initializer_range, bool) or not isinstance(self.initializer_range, (int, float)) or self.initializer_range <= 0:
            raise BadInputError(source, f"initializer_range must be a positive number, got {self.initializer_range!r}")
        if self.hidden_size % self.num_heads:
            raise BadInputError(source, f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_heads}")
        if self.hidden_act not in ACTIVATIONS:
            raise BadInputError(source, f"hidden_act must be one of {', '.join(ACTIVATIONS)}, got {self.hidden_act!r}")
        if self.max_len < 2:
            raise BadInputError(source, "max length must be >= 2")

    @classmethod
    def from_bert_json(cls, path: Path, n_items: int) -> Bert4RecConfig:
        """Read a BERT-style JSON config (PROTOCOLS.md §5); ``vocab_size`` must fit the vocabulary:
        n_items + 2 (seqrec: padding, items, [MASK]) or n_items + 4 (the original BERT4Rec code's
        layout with its extra special tokens). ``type_vocab_size`` is accepted and unused."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInputError(path, "config file not found") from None
        except json.JSONDecodeError as exc:
            raise BadInputError(path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
        if not isinstance(raw, dict):
            raise BadInputError(path, "expected a JSON object")
        known = set(BERT_JSON_KEYS) | {"vocab_size", "type_vocab_size"} | {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise BadInputError(path, f"unknown key(s): {', '.join(unknown)}")
        if "vocab_size" in raw and raw["vocab_size"] not in (n_items + 2, n_items + 4):
            raise BadInputError(
                path,
                f"vocab_size {raw['vocab_size']} does not match the vocabulary: {n_items} items need "
                f"{n_items + 2} (padding + items + [MASK]) or {n_items + 4} (original BERT4Rec layout)",
            )
        values = {}
        for key, value in raw.items():
            name = BERT_JSON_KEYS.get(key, key)
            if name in ("vocab_size", "type_vocab_size", "n_items"):
                continue
            values[name] = value
        try:
            cfg = cls(n_items=n_items, **values)
        except TypeError as exc:
            raise BadInputError(path, str(exc)) from None
        cfg.check(str(path))
        return cfg


def _key(field_name: str) -> str:
    """The BERT-style JSON key of a config field (for messages)."""
    for key, name in BERT_JSON_KEYS.items():
        if name == field_name:
            return key
    return field_name


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

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """x: [B, T, H]; attn_mask: [B, 1, 1, T] bool, True = may attend (real item)."""
        b, t, h = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.num_heads, h // self.num_heads).permute(2, 0, 3, 1, 4)  # 3 x [B, nh, T, hd]
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.attention_dropout if self.training else 0.0
        )  # [B, nh, T, hd]
        a = a.transpose(1, 2).reshape(b, t, h)
        x = self.norm1(x + self.drop(self.out(a)))
        return self.norm2(x + self.drop(self.ff2(self.act(self.ff1(x)))))


class Bert4Rec(nn.Module):
    def __init__(self, config: Bert4RecConfig):
        super().__init__()
        config.check()
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

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """items: [B, T] left-padded (0 = padding), T <= max_len -> hidden states [B, T, H]."""
        b, t = items.shape
        positions = torch.arange(self.config.max_len - t, self.config.max_len, device=items.device)  # [T]
        x = self.item_embedding(items) + self.position_embedding(positions)  # [B, T, H]
        x = self.drop(self.norm(x))
        attn_mask = (items > 0).view(b, 1, 1, t)  # [B, 1, 1, T]
        for layer in self.layers:
            x = layer(x, attn_mask)
        return x

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: [M, H] states at the positions to predict -> [M, V]; padding and [MASK] are -inf."""
        h = self.head_norm(self.act(self.head(hidden)))
        scores = h @ self.item_embedding.weight.T + self.output_bias  # [M, V]
        scores[:, 0] = float("-inf")
        scores[:, self.config.mask_index] = float("-inf")
        return scores

    def forward(self, items: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        """items: [B, T]; select: [B, T] bool, the positions to predict -> logits [M, V], M = select.sum()."""
        return self.logits(self.encode(items)[select])

    def score_last(self, items: torch.Tensor) -> torch.Tensor:
        """Scores of the last position of each row (the appended [MASK]). items: [B, T] -> [B, V]."""
        return self.logits(self.encode(items)[:, -1])
