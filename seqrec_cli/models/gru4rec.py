"""GRU4Rec (Hidasi et al. 2016, 2018): a GRU over the items of a session, scoring the next item.

The input of a step is the current item, through the output embedding itself
(``shared_embedding``, the best published RSC15 setting), a separate embedding, or a one-hot
vector (then the first GRU layer's input weights are an item lookup). The score of item i is
``h . W[i] + b[i]``. Output weights are looked up only for the candidates of a step (targets of
the batch + sampled negatives) during training, and taken whole for full ranking; they are
sparse embeddings so an optimizer updates only the rows a step touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class GRU4RecConfig:
    n_items: int  # item indices 1..n_items; index 0 is padding and never scored
    hidden_size: int = 100  # units of each GRU layer
    num_layers: int = 1
    embedding_size: int = 0  # > 0: separate input embedding of this size (ignored with shared_embedding)
    shared_embedding: bool = True  # input embedding = output weights ("constrained embedding")
    dropout_embed: float = 0.0  # dropout on the input embedding
    dropout_hidden: float = 0.4  # dropout on the output of each GRU layer

    @property
    def input_mode(self) -> str:
        if self.shared_embedding:
            return "shared"
        return "embedding" if self.embedding_size > 0 else "onehot"


def _uniform_(t: torch.Tensor, fan_in: float, fan_out: float) -> None:
    """Glorot-uniform with explicit fans (GRU gate matrices count each gate separately)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        t.uniform_(-bound, bound)


class GRU4Rec(nn.Module):
    def __init__(self, config: GRU4RecConfig):
        super().__init__()
        self.config = config
        h, v = config.hidden_size, config.n_items + 1
        self.out_weight = nn.Embedding(v, h, sparse=True)  # W: [V, H]
        self.out_bias = nn.Embedding(v, 1, sparse=True)  # b: [V, 1]
        mode = config.input_mode
        if mode == "embedding":
            self.in_embedding = nn.Embedding(v, config.embedding_size, sparse=True)
            first_in = config.embedding_size
        elif mode == "onehot":
            # one-hot x times the first layer's input weights == a lookup of 3H gate inputs
            self.onehot_gates = nn.Embedding(v, 3 * h, sparse=True)  # [V, 3H]
            self.onehot_hh = nn.Parameter(torch.empty(3 * h, h))
            self.onehot_bias = nn.Parameter(torch.zeros(3 * h))
            first_in = 0
        else:
            first_in = h
        start = 1 if mode == "onehot" else 0
        self.cells = nn.ModuleList(
            nn.GRUCell(first_in if i == 0 else h, h) for i in range(start, config.num_layers)
        )
        self.drop_embed = nn.Dropout(config.dropout_embed)
        self.drop_hidden = nn.Dropout(config.dropout_hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        h = self.config.hidden_size
        _uniform_(self.out_weight.weight, self.config.n_items + 1, h)
        nn.init.zeros_(self.out_bias.weight)
        if hasattr(self, "in_embedding"):
            _uniform_(self.in_embedding.weight, self.config.n_items + 1, self.config.embedding_size)
        if hasattr(self, "onehot_gates"):
            _uniform_(self.onehot_gates.weight, self.config.n_items + 1, h)
            _uniform_(self.onehot_hh, h, h)
            nn.init.zeros_(self.onehot_bias)
        for cell in self.cells:
            _uniform_(cell.weight_ih, cell.input_size, h)
            _uniform_(cell.weight_hh, h, h)
            nn.init.zeros_(cell.bias_ih)
            nn.init.zeros_(cell.bias_hh)

    def init_hidden(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.zeros(self.config.num_layers, batch, self.config.hidden_size, device=device)  # [L, B, H]

    def step(self, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One event per row. inputs: [B] item indices; hidden: [L, B, H] -> (output [B, H], new hidden)."""
        new_h = []
        mode = self.config.input_mode
        if mode == "onehot":
            gx = self.onehot_gates(inputs) + self.onehot_bias  # [B, 3H]
            gh = hidden[0] @ self.onehot_hh.T  # [B, 3H]
            xr, xz, xn = gx.chunk(3, dim=1)
            hr, hz, hn = gh.chunk(3, dim=1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            x = (1 - z) * n + z * hidden[0]
            new_h.append(x)
            x = self.drop_hidden(x)
            first = 1
        else:
            emb = self.out_weight(inputs) if mode == "shared" else self.in_embedding(inputs)  # [B, E]
            x = self.drop_embed(emb)
            first = 0
        for i, cell in enumerate(self.cells):
            x = cell(x, hidden[first + i])
            new_h.append(x)
            x = self.drop_hidden(x)
        return x, torch.stack(new_h)

    def score_candidates(self, out: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """out: [B, H], candidates: [C] item indices -> scores [B, C]."""
        w = self.out_weight(candidates)  # [C, H]
        b = self.out_bias(candidates).squeeze(1)  # [C]
        return out @ w.T + b

    def score_all(self, out: torch.Tensor) -> torch.Tensor:
        """out: [B, H] -> scores over every index [B, V] (column 0, padding, is set to -inf)."""
        scores = out @ self.out_weight.weight.T + self.out_bias.weight.squeeze(1)
        scores[:, 0] = float("-inf")
        return scores
