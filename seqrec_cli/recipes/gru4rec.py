"""Training and scoring GRU4Rec with session-parallel mini-batches.

Training walks the training sessions in a fresh seeded order each epoch (or in file order,
``session_order="file"``), B sessions side by side; a slot whose session ends takes the next
session and its hidden-state row is zeroed. Losses (PROTOCOLS.md §5): ``ce`` (softmax over
every item), ``sampled-ce`` (softmax over the batch's targets + ``n_sample`` negatives drawn by
popularity^alpha, with logQ correction), ``bpr-max`` and ``bpr`` (same candidates). The loss of
a step is summed over its rows and divided by the batch size, as in the original.

Scoring runs the same session-parallel walk over the evaluation sessions in file order, hidden
state zeroed at each session start, and scores only the rows that are predictions.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from ..data.sampling import PopularitySampler, popularity
from ..data.session_parallel import Step, count_steps, session_parallel
from ..errors import SeqrecError
from ..evaluation import EvalSpec, ScoreBatch, evaluate_batches, hit_name
from ..formats import ProcessedData, Sequences
from ..models import losses
from ..models.gru4rec import GRU4Rec, GRU4RecConfig
from ..optim import AdagradM, OptimizerGroup
from ..training import Recipe

LOSSES = ("ce", "sampled-ce", "bpr-max", "bpr")
OPTIMIZERS = ("adagrad", "adam")
SESSION_ORDERS = ("shuffle", "file")


@dataclass
class GRU4RecTrainConfig:
    epochs: int = 10
    batch_size: int = 32  # session-parallel slots
    lr: float = 0.2
    optimizer: str = "adagrad"  # adagrad (with momentum, the original's) | adam
    momentum: float = 0.2  # adagrad only
    loss: str = "sampled-ce"  # ce | sampled-ce | bpr-max | bpr
    n_sample: int = 2048  # extra negatives per step, shared by the batch (sampled losses)
    sample_alpha: float = 0.5  # negatives drawn by popularity ** alpha
    logq: float = 1.0  # weight of the logQ correction (sampled-ce)
    bpreg: float = 1.0  # score regularisation of bpr-max
    elu_param: float = 0.0  # bpr-max: ELU on the scores when > 0
    session_order: str = "shuffle"  # shuffle (seeded, per epoch) | file
    seed: int = 42

    def check(self) -> None:
        if self.loss not in LOSSES:
            raise SeqrecError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise SeqrecError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.session_order not in SESSION_ORDERS:
            raise SeqrecError(f"--session-order must be one of {', '.join(SESSION_ORDERS)}")
        if self.batch_size < 1 or self.epochs < 1 or self.lr <= 0:
            raise SeqrecError("--batch-size and --epochs must be >= 1 and --lr > 0")
        if self.loss != "ce" and self.n_sample < 0:
            raise SeqrecError("--n-sample must be >= 0")


class GRU4RecRecipe(Recipe):
    name = "gru4rec"
    valid_key = "recall@20"
    loss_label = "loss"

    def __init__(
        self,
        data: ProcessedData,
        model_config: GRU4RecConfig,
        train_config: GRU4RecTrainConfig,
        device: torch.device,
        eval_batch_size: int = 512,
    ):
        train_config.check()
        self.valid_key = f"{hit_name(data.manifest.eval_target)}@20"  # recall@20 on sessions, hr@20 leave-one-out
        self.perplexity = train_config.loss == "ce"  # over the whole vocabulary only
        self.data = data
        self.train = data.split("train")
        self.model_config = model_config
        self.tc = train_config
        self.device = device
        self.eval_batch_size = eval_batch_size
        self.model = GRU4Rec(model_config).to(device)
        self.rng = np.random.default_rng(train_config.seed)
        self.counts = popularity(self.train.items, data.n_items)  # [N+1]
        self.sampler = None
        if train_config.loss != "ce" and train_config.n_sample > 0:
            gen = torch.Generator(device=device).manual_seed(train_config.seed + 1)
            steps = self.steps_per_epoch()
            self.sampler = PopularitySampler(
                self.counts,
                train_config.n_sample,
                train_config.sample_alpha,
                gen,
                cache_events=min(10_000_000, train_config.n_sample * steps),
                device=device,
            )
        # logQ: log popularity of in-batch targets (sampled by the data itself) and of the
        # extra negatives (sampled by popularity ** alpha)
        with np.errstate(divide="ignore"):
            logc = np.log(np.maximum(self.counts, 1.0))
        self.log_pop = torch.tensor(logc, dtype=torch.float32, device=device)  # [N+1]
        self.hidden: torch.Tensor | None = None

    # ------------------------------------------------------------------ training
    def config(self) -> dict[str, Any]:
        return {"model": self.name, "model_config": asdict(self.model_config), "train_config": asdict(self.tc)}

    def summary(self) -> list[str]:
        c = self.model_config
        n = sum(p.numel() for p in self.model.parameters())
        neg = f"{self.tc.n_sample} negatives (pop^{self.tc.sample_alpha})" if self.sampler else "no extra negatives"
        return [
            f"gru4rec: {c.num_layers} GRU layer(s) x {c.hidden_size} units, input {c.input_mode}, "
            f"{c.n_items:,} items, {n:,} parameters",
            f"loss {self.tc.loss} with {neg}, {self.tc.optimizer} lr {self.tc.lr}, batch {self.tc.batch_size}, "
            f"{len(self.train):,} training sessions / {self.train.n_events:,} events on {self.device.type}",
        ]

    def make_optimizer(self, total_steps: int):
        params = list(self.model.parameters())
        if self.tc.optimizer == "adagrad":
            return AdagradM(params, lr=self.tc.lr, momentum=self.tc.momentum), None
        sparse = [p for n, p in self.model.named_parameters() if _is_sparse_param(self.model, n)]
        dense = [p for n, p in self.model.named_parameters() if not _is_sparse_param(self.model, n)]
        opts: list[torch.optim.Optimizer] = [torch.optim.SparseAdam(sparse, lr=self.tc.lr)]
        if dense:
            opts.append(torch.optim.Adam(dense, lr=self.tc.lr))
        return OptimizerGroup(opts), None

    def steps_per_epoch(self) -> int:
        return count_steps(self.train, self.tc.batch_size)

    def epoch_batches(self) -> Iterator[Step]:
        n = len(self.train)
        order = self.rng.permutation(n) if self.tc.session_order == "shuffle" else np.arange(n)
        if self.sampler is not None:
            self.sampler.new_epoch()
        self.hidden = None
        yield from session_parallel(self.train, order, self.tc.batch_size)

    def train_step(self, step: Step) -> tuple[torch.Tensor, float, int]:
        hidden = _advance_hidden(self.model, self.hidden, step, self.device)
        inputs = torch.from_numpy(step.inputs).to(self.device)
        targets = torch.from_numpy(step.targets).to(self.device)
        out, new_hidden = self.model.step(inputs, hidden)  # [b, H], [L, b, H]
        self.hidden = new_hidden.detach()
        tc = self.tc
        if tc.loss == "ce":
            loss_sum = losses.full_softmax_ce(self.model.score_all(out), targets)
        else:
            if self.sampler is not None:
                cands = torch.cat([targets, self.sampler.draw()])  # [b + S]
            else:
                cands = targets
            scores = self.model.score_candidates(out, cands)  # [b, b + S]
            if tc.loss == "sampled-ce":
                log_q = None
                if tc.logq > 0:
                    b = len(targets)
                    log_q = self.log_pop[cands].clone()
                    log_q[b:] *= tc.sample_alpha
                    log_q = tc.logq * log_q
                loss_sum = losses.sampled_softmax_ce(scores, log_q)
            elif tc.loss == "bpr-max":
                loss_sum = losses.bpr_max(scores, tc.bpreg, tc.elu_param)
            else:
                loss_sum = losses.bpr(scores)
        return loss_sum / tc.batch_size, float(loss_sum.detach()), len(targets)

    def validate(self) -> dict[str, float] | None:
        if "valid" not in self.data.splits:
            return None
        seqs = self.data.splits["valid"]
        result = evaluate_batches(
            score_batches(self.model, seqs, self.data.manifest.eval_target, self.eval_batch_size, self.device),
            seqs,
            self.data.n_items,
            self.data.manifest.eval_target,
            EvalSpec(split="valid", cutoffs=(10, 20)),
        )
        return result.metrics

    def rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"numpy": self.rng.bit_generator.state}
        if self.sampler is not None:
            state["sampler"] = self.sampler.generator.get_state()
        return state

    def load_rng_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["numpy"]
        if self.sampler is not None:
            self.sampler.generator.set_state(state["sampler"])


def _is_sparse_param(model: GRU4Rec, name: str) -> bool:
    module_name = name.rsplit(".", 1)[0]
    module = dict(model.named_modules()).get(module_name)
    return isinstance(module, torch.nn.Embedding) and module.sparse


def _advance_hidden(model: GRU4Rec, hidden: torch.Tensor | None, step: Step, device: torch.device) -> torch.Tensor:
    """Carry the hidden state into this step: drop finished rows, zero the rows of new sessions."""
    if hidden is None:
        return model.init_hidden(len(step.inputs), device)
    if step.keep is not None:
        hidden = hidden[:, torch.from_numpy(step.keep).to(device)]
    if step.reset.any():
        reset = torch.from_numpy(step.reset).to(device)
        hidden = hidden.masked_fill(reset.view(1, -1, 1), 0.0)
    return hidden


@torch.no_grad()
def score_batches(
    model: GRU4Rec, seqs: Sequences, mode: str, batch_size: int, device: torch.device
) -> Iterator[ScoreBatch]:
    """Scores for the predictions of ``seqs``: mode "all" (every position), "last" (last item of
    each line) or "next" (after the whole line: recommendation, target unknown)."""
    model.eval()
    hidden = None
    lengths = seqs.lengths
    for step in session_parallel(seqs, np.arange(len(seqs)), batch_size, final_step=(mode == "next")):
        hidden = _advance_hidden(model, hidden, step, device)
        out, hidden = model.step(torch.from_numpy(step.inputs).to(device), hidden)
        if mode == "all":
            sel = np.flatnonzero(step.targets > 0)
        elif mode == "last":
            sel = np.flatnonzero(step.positions == lengths[step.rows] - 2)
        else:
            sel = np.flatnonzero(step.targets == 0)
        if len(sel) == 0:
            continue
        scores = model.score_all(out[torch.from_numpy(sel).to(device)])
        yield ScoreBatch(scores, step.targets[sel], step.rows[sel], step.positions[sel] + 1)
