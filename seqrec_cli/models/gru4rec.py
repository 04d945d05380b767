"""GRU4Rec (Hidasi et al. 2016, 2018): a GRU over the items of a session, scoring the next item.

The input of a step is the current item, through the output embedding itself
(``shared_embedding``, the best published RSC15 setting), a separate embedding, or a one-hot
vector (then the first GRU layer's input weights are an item lookup). The score of item i is
``h . W[i] + b[i]``. Output weights are looked up only for the candidates of a step (targets of
the batch + sampled negatives) during training, and taken whole for full ranking; they are
sparse embeddings so an optimizer updates only the rows a step touched.

Training and scoring walk sessions side by side (session-parallel, ``seqrec_cli.data.
session_parallel``); the hidden state of that walk is carried from batch to batch inside the
model (``self.hidden``, not a parameter or buffer) and zeroed by :meth:`reset_state` at the start
of every pass, so ``forward`` and ``score`` each take one step. The losses (docs/protocols.md §5):
``ce`` (softmax over every item), ``sampled-ce`` (softmax over the batch's targets + the shared
negatives, minus ``logq`` x log sampling probability: the logQ correction), ``bpr-max`` and
``bpr`` over the same candidates; the loss of a step is summed over its rows and divided by the
batch size, as in the original.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import kernels
from . import losses
from .base import SequentialRecommender, TrainOutput
from .gru4rec_config import GRU4RecConfig


class _TouchedRows(torch.autograd.Function):
    """The output rows a training step touches, each once: (weight[rows] [u, H], bias[rows] [u, 1],
    weight[rows][inputs] [n, H]) for sorted unique ``rows`` and ``inputs`` indexing into them (the
    step's input items, shared embedding; may be empty). The gradients of weight and bias are
    coalesced sparse tensors, what a sparse ``nn.Embedding`` lookup gives, with one row per touched
    item however often the step used it; the input rows' gradient is added into the output rows'
    (no gradient the size of the touched rows is filled with zeros for the inputs alone)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bias: torch.Tensor, rows: torch.Tensor, inputs: torch.Tensor):  # type: ignore[override]
        ctx.save_for_backward(rows, inputs)
        ctx.shapes, ctx.dtype = (weight.shape, bias.shape), weight.dtype
        w = weight.index_select(0, rows)
        return w, bias.index_select(0, rows), w.index_select(0, inputs)

    @staticmethod
    def backward(ctx, grad_w: torch.Tensor | None, grad_b: torch.Tensor | None, grad_in: torch.Tensor | None):  # type: ignore[override]
        rows, inputs = ctx.saved_tensors
        (w_shape, b_shape), at = ctx.shapes, rows.unsqueeze(0)
        like = dict(dtype=ctx.dtype, device=rows.device)
        if grad_w is None:
            grad_w = torch.zeros((len(rows), w_shape[1]), **like)
        if grad_in is not None and len(inputs):
            grad_w = grad_w.index_add(0, inputs, grad_in)  # [u, H]: rows used as input and as output sum up
        if grad_b is None:
            grad_b = torch.zeros((len(rows), 1), **like)
        # rows are sorted and unique by construction: no invariant check needed
        sparse = dict(is_coalesced=True, check_invariants=False)
        return (
            torch.sparse_coo_tensor(at, grad_w, w_shape, **sparse),
            torch.sparse_coo_tensor(at, grad_b, b_shape, **sparse),
            None, None,
        )  # fmt: skip


def _uniform_(t: torch.Tensor, fan_in: float, fan_out: float) -> None:
    """Glorot-uniform with explicit fans (GRU gate matrices count each gate separately)."""
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        t.uniform_(-bound, bound)


class GRU4Rec(SequentialRecommender):
    cuda_precision = "fp32"  # the original trains in fp32; its steps are too small to gain from bf16

    def __init__(self, config: GRU4RecConfig):
        super().__init__()
        self.config = config
        self.hidden: torch.Tensor | None = None  # [L, b, H] state of the current session-parallel pass
        self._unique = kernels.UniqueRows(config.n_items + 1)  # the rows a training step touches
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

    def step(
        self, inputs: torch.Tensor, hidden: torch.Tensor, emb: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One event per row. inputs: [B] item indices; hidden: [L, B, H] -> (output [B, H], new hidden).
        ``emb``: the input embedding rows when the caller already gathered them (shared mode)."""
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
            if emb is None:
                emb = self.out_weight(inputs) if mode == "shared" else self.in_embedding(inputs)  # [B, E]
            x = self.drop_embed(emb) if self.config.dropout_embed else emb
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

    # ------------------------------------------------------------------ the model interface
    def reset_state(self) -> None:
        self.hidden = None

    def _advance(
        self, inputs: torch.Tensor, reset: torch.Tensor, keep: torch.Tensor | None, emb: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Carry the hidden state into this step (drop finished rows, zero the rows of new
        sessions), run it, keep the new state; returns the GRU output [b, H]."""
        hidden = self.hidden
        if hidden is None:
            hidden = self.init_hidden(len(inputs), inputs.device)
        else:
            if keep is not None:
                hidden = hidden.index_select(1, keep)
            if reset.any():
                hidden = hidden.masked_fill(reset.view(1, -1, 1), 0.0)
        out, new_hidden = self.step(inputs, hidden, emb)  # [b, H], [L, b, H]
        self.hidden = new_hidden.detach()
        return out

    def forward(self, batch) -> TrainOutput:
        """batch: a SessionParallelBatch (inputs/targets [b], negatives [S], log_q [b+S]) -> the
        step's loss (summed over rows, divided by the batch size)."""
        c = self.config
        targets = batch.targets
        if c.loss == "ce":
            out = self._advance(batch.inputs, batch.reset, batch.keep)
            loss_sum = losses.full_softmax_ce(self.score_all(out), targets)
        else:
            cands = targets if batch.negatives is None else torch.cat([targets, batch.negatives])
            # the output rows this step touches, each once: gathered, scored, and given back as one
            # coalesced sparse gradient (no sparse sums and no coalescing in the optimizer)
            shared = c.input_mode == "shared"
            touched = torch.cat([batch.inputs, cands]) if shared else cands
            rows, inverse = self._unique(touched)  # torch.unique(sorted, return_inverse), compiled
            n_in = len(batch.inputs) if shared else 0
            w, bias, emb = _TouchedRows.apply(self.out_weight.weight, self.out_bias.weight, rows, inverse[:n_in])
            bias = bias.squeeze(1)  # [u]
            emb = emb if shared else None  # [b, H]
            out = self._advance(batch.inputs, batch.reset, batch.keep, emb)
            # score the unique rows, then take each candidate's column: duplicates among the
            # candidates cost a [b, 1] copy instead of a gathered output row (and its scatter back)
            scores = (out @ w.T + bias).index_select(1, inverse[n_in:])  # [b, u] -> [b, b + S]
            if c.loss == "sampled-ce":
                log_q = None if batch.log_q is None else c.logq * batch.log_q
                loss_sum = losses.sampled_softmax_ce(scores, log_q)
            elif c.loss == "bpr-max":
                loss_sum = losses.bpr_max(scores, c.bpreg, c.elu_param)
            else:
                loss_sum = losses.bpr(scores)
        return TrainOutput(loss_sum / batch.slots, float(loss_sum.detach()), len(targets))

    def score(self, batch) -> torch.Tensor:
        """batch: a SessionParallelScoreBatch -> scores [m, V] of its ``select`` rows after this step."""
        out = self._advance(batch.inputs, batch.reset, batch.keep)
        return self.score_all(out[batch.select])

    def full_softmax_loss(self) -> bool:
        return self.config.loss == "ce"

    def history_scorer(self) -> nn.Module:
        return GRU4RecHistoryScorer(self)

    def configure_optimizers(self, train_config, total_steps: int):
        """Adagrad with momentum (the original's) or Adam (SparseAdam for the sparse item
        embeddings); no schedule."""
        from ..optim import AdagradM, OptimizerGroup

        params = list(self.parameters())
        if train_config.optimizer == "adagrad":
            return AdagradM(params, lr=train_config.lr, momentum=train_config.momentum), None
        modules = dict(self.named_modules())

        def sparse(name: str) -> bool:
            module = modules.get(name.rsplit(".", 1)[0])
            return isinstance(module, nn.Embedding) and module.sparse

        opts: list[torch.optim.Optimizer] = [
            torch.optim.SparseAdam([p for n, p in self.named_parameters() if sparse(n)], lr=train_config.lr)
        ]
        dense = [p for n, p in self.named_parameters() if not sparse(n)]
        if dense:
            opts.append(torch.optim.Adam(dense, lr=train_config.lr))
        return OptimizerGroup(opts), None

    def summary(self, train_config) -> list[str]:
        c = self.config
        n = sum(p.numel() for p in self.parameters())
        return [
            f"gru4rec: {c.num_layers} GRU layer(s) x {c.hidden_size} units, input {c.input_mode}, "
            f"{c.n_items:,} items, {n:,} parameters",
            f"loss {c.loss}, {train_config.optimizer} lr {train_config.lr}, batch {train_config.batch_size}",
        ]


class GRU4RecHistoryScorer(nn.Module):
    """GRU4Rec over whole histories, for export (``seqrec export``): ``(items, lengths) -> scores``.

    seqrec scores GRU4Rec session-parallel, one event per step (:meth:`GRU4Rec.step` through
    ``nn.GRUCell``); an exported graph cannot carry that walk's state, so this module runs the same
    recurrence over a padded matrix with one ``nn.GRU`` built from the cells' weights (the same
    equations, gate order r, z, n) and reads the top layer's state after each history's last item.
    The one-hot input layer (no shared or separate embedding) is its first layer: input = the
    looked-up rows ``onehot_gates[item]``, input weights = identity, input bias ``onehot_bias``,
    no hidden bias. (One ``nn.GRU`` call: torch.onnx exports only the first GRU call of a graph with
    a dynamic length.)

    items: [B, T] int64, every item of each history, right-padded with 0 (padding after the last item
    never reaches the state that is read); lengths: [B] int64, items per row (>= 1) -> scores
    [B, n_items + 1] (column i = item index i; column 0, padding, is -inf), as the session-parallel
    scoring gives after the last item (eval mode: no dropout).
    """

    def __init__(self, model: GRU4Rec):
        super().__init__()
        self.model = model
        c = model.config
        h = c.hidden_size
        onehot = c.input_mode == "onehot"
        first_in = 3 * h if onehot else model.cells[0].input_size
        self.gru = nn.GRU(first_in, h, num_layers=c.num_layers, batch_first=True)
        layers = [(model.onehot_hh, model.onehot_bias)] if onehot else []
        layers += list(model.cells)
        with torch.no_grad():
            for i, layer in enumerate(layers):
                if isinstance(layer, nn.GRUCell):
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                        getattr(self.gru, f"{name}_l{i}").copy_(getattr(layer, name))
                else:  # the one-hot layer
                    weight_hh, bias_ih = layer
                    self.gru.weight_ih_l0.copy_(torch.eye(3 * h))
                    self.gru.bias_ih_l0.copy_(bias_ih)
                    self.gru.weight_hh_l0.copy_(weight_hh)
                    self.gru.bias_hh_l0.zero_()
        self.to(model.out_weight.weight.device)
        self.eval()

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m = self.model
        mode = m.config.input_mode
        if mode == "onehot":
            x = m.onehot_gates(items)  # [B, T, 3H]
        else:
            x = m.out_weight(items) if mode == "shared" else m.in_embedding(items)  # [B, T, E]
        x, _ = self.gru(x)  # [B, T, H]: the top layer's state after each step
        index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, x.shape[2])  # [B, 1, H]
        last = x.gather(1, index).squeeze(1)  # [B, H]
        return m.score_all(last)
