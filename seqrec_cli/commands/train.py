"""seqrec train gru4rec | bert4rec, seqrec pretrain bert4rec."""

# No "from __future__ import annotations" here: the BERT4Rec commands are built by a factory and
# Typer must evaluate their annotations (defaults differ between pretrain and train) in its scope.


from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .. import formats
from ..console import note, say
from ..errors import MissingInputError
from .options import (
    DEFAULT_TRAIN_DIRS,
    EvalBatchSize,
    LogEvery,
    ModelDir,
    Overwrite,
    Resume,
    Seed,
    UseCuda,
    explicit,
    read_params_file,
)

train_app = typer.Typer(
    help="Train a model on processed data; each epoch is saved as <model-dir>/epoch_N.", no_args_is_help=True
)
pretrain_app = typer.Typer(help="Masked-item (cloze) pretraining of BERT4Rec.", no_args_is_help=True)

def _train_dir_option(model: str):
    return Annotated[
        Optional[Path],
        typer.Option(
            "--train-dir",
            help="Processed data folder (train.txt, test.txt, manifest.json).",
            show_default=str(DEFAULT_TRAIN_DIRS[model]),
        ),
    ]


def _load_data(model: str, train_dir: Path | None):
    """The processed data to train on; for the default ML-1M folder, preprocess the download first if needed."""
    from ..datasets.ml1m import preprocess_ml1m

    folder = train_dir or DEFAULT_TRAIN_DIRS[model]
    if train_dir is None and model == "bert4rec" and not (folder / formats.MANIFEST_FILE).is_file():
        if not formats.ML1M_RATINGS.is_file():
            raise MissingInputError(folder, "seqrec download ml-1m", what="processed ML-1M data (and the raw download)")
        note(f"{folder} is missing: running the default preprocessing first (seqrec preprocess ml-1m)")
        r = preprocess_ml1m(formats.ML1M_RATINGS, folder, formats.vocab_path(formats.ML1M))
        note(f"ml-1m: {r.users:,} users, {r.items:,} items, {r.interactions:,} interactions")
    return formats.load_processed(folder), folder


def _fit(recipe, run, data, folder) -> None:
    from ..training import Trainer, data_info

    result = Trainer(recipe, run, data_info(data, folder)).fit()
    best = result["best"]
    if best.get("epoch") is not None:
        say(f"best epoch {best['epoch']} ({best['metric']} {best['value']:.4f} on the validation split)")
    say(f"next: seqrec infer --model-dir {run.model_dir} --start-index 1 --last-index {run.epochs}")


# ---------------------------------------------------------------------------------------------- GRU4Rec
GRU_PARAM_NAMES = {
    "epochs", "batch_size", "hidden_size", "layers", "embedding_size", "shared_embedding", "dropout_embed",
    "dropout_hidden", "loss", "n_sample", "sample_alpha", "logq", "bpreg", "elu_param", "optimizer", "lr",
    "momentum", "session_order", "seed",
}  # fmt: skip


@train_app.command("gru4rec")
def train_gru4rec(
    ctx: typer.Context,
    train_dir: _train_dir_option("gru4rec") = None,
    model_dir: ModelDir = formats.MODEL_DIR,
    params: Annotated[
        Optional[str],
        typer.Option(
            "--params",
            help="JSON file of option values (keys as the option names with _), or a shipped one: "
            "gru4rec_rsc15_xe_shared_100_best. Options given on the command line win.",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training sessions.")] = 10,
    batch_size: Annotated[int, typer.Option(min=1, help="Session-parallel slots per mini-batch.")] = 32,
    hidden_size: Annotated[int, typer.Option(min=1, help="Units of each GRU layer.")] = 100,
    layers: Annotated[int, typer.Option(min=1, help="Number of GRU layers.")] = 1,
    embedding_size: Annotated[
        int, typer.Option(min=0, help="Separate input embedding size (with --no-shared-embedding); 0 = one-hot input.")
    ] = 0,
    shared_embedding: Annotated[
        bool,
        typer.Option(
            "--shared-embedding/--no-shared-embedding", help="Use the output item embedding as the input embedding."
        ),
    ] = True,
    dropout_embed: Annotated[float, typer.Option(min=0.0, max=0.99, help="Dropout on the input embedding.")] = 0.0,
    dropout_hidden: Annotated[float, typer.Option(min=0.0, max=0.99, help="Dropout on the GRU outputs.")] = 0.4,
    loss: Annotated[
        str,
        typer.Option(
            help="ce (softmax over all items) | sampled-ce (in-batch + sampled negatives, logQ) | bpr-max | bpr."
        ),
    ] = "sampled-ce",
    n_sample: Annotated[int, typer.Option(min=0, help="Extra negatives per step, shared by the batch (sampled losses).")] = 2048,
    sample_alpha: Annotated[float, typer.Option(min=0.0, help="Negatives are drawn by popularity ** alpha.")] = 0.5,
    logq: Annotated[float, typer.Option(min=0.0, help="Weight of the logQ correction of sampled-ce (0 = off).")] = 1.0,
    bpreg: Annotated[float, typer.Option(min=0.0, help="Score regularisation of bpr-max.")] = 1.0,
    elu_param: Annotated[float, typer.Option(min=0.0, help="bpr-max: ELU applied to the scores when > 0.")] = 0.0,
    optimizer: Annotated[str, typer.Option(help="adagrad (with momentum, the original's) | adam.")] = "adagrad",
    lr: Annotated[float, typer.Option(min=0.0, help="Learning rate.")] = 0.2,
    momentum: Annotated[float, typer.Option(min=0.0, help="Momentum of adagrad.")] = 0.2,
    session_order: Annotated[
        str, typer.Option(help="shuffle (a new seeded order every epoch) | file (the order of train.txt).")
    ] = "shuffle",
    seed: Seed = 42,
    use_cuda: UseCuda = False,
    resume: Resume = False,
    overwrite: Overwrite = False,
    log_every: LogEvery = 1000,
    eval_batch_size: EvalBatchSize = 512,
) -> None:
    """Train GRU4Rec with session-parallel mini-batches (default data: data/rsc15; defaults = the
    best published RSC15 setting). Each epoch is saved to <model-dir>/epoch_N; evaluate them with
    seqrec infer."""
    values: dict[str, Any] = dict(
        epochs=epochs, batch_size=batch_size, hidden_size=hidden_size, layers=layers, embedding_size=embedding_size,
        shared_embedding=shared_embedding, dropout_embed=dropout_embed, dropout_hidden=dropout_hidden, loss=loss,
        n_sample=n_sample, sample_alpha=sample_alpha, logq=logq, bpreg=bpreg, elu_param=elu_param,
        optimizer=optimizer, lr=lr, momentum=momentum, session_order=session_order, seed=seed,
    )  # fmt: skip
    if params:
        for key, value in read_params_file(params, GRU_PARAM_NAMES).items():
            if not explicit(ctx, key):
                values[key] = value
    from ..models.gru4rec import GRU4RecConfig
    from ..recipes.gru4rec import GRU4RecRecipe, GRU4RecTrainConfig
    from ..training import RunOptions, pick_device, seed_everything

    device = pick_device(use_cuda)
    data, folder = _load_data("gru4rec", train_dir)
    v = values
    model_config = GRU4RecConfig(
        n_items=data.n_items,
        hidden_size=v["hidden_size"],
        num_layers=v["layers"],
        embedding_size=v["embedding_size"],
        shared_embedding=v["shared_embedding"],
        dropout_embed=v["dropout_embed"],
        dropout_hidden=v["dropout_hidden"],
    )
    train_config = GRU4RecTrainConfig(
        **{k: v[k] for k in ("epochs", "batch_size", "lr", "optimizer", "momentum", "loss", "n_sample",
                             "sample_alpha", "logq", "bpreg", "elu_param", "session_order", "seed")}
    )  # fmt: skip
    seed_everything(v["seed"])
    recipe = GRU4RecRecipe(data, model_config, train_config, device, eval_batch_size)
    run = RunOptions(model_dir, v["epochs"], resume, overwrite, use_cuda, log_every)
    _fit(recipe, run, data, folder)


# ---------------------------------------------------------------------------------------------- BERT4Rec
def _bert_command(stage: str):
    """Build the pretrain / train command for BERT4Rec (they share every option but a few)."""

    def command(
        ctx: typer.Context,
        train_dir: _train_dir_option("bert4rec") = None,
        model_dir: ModelDir = formats.PRETRAIN_DIR if stage == "pretrain" else formats.MODEL_DIR,
        config: Annotated[
            Optional[Path],
            typer.Option(
                "--config",
                help="BERT-style JSON config (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, "
                "hidden_act, hidden_dropout_prob, attention_probs_dropout_prob, max_position_embeddings, "
                "initializer_range, vocab_size, type_vocab_size). Architecture options given on the command line win.",
                show_default=False,
            ),
        ] = None,
        init_from: Annotated[
            Optional[Path],
            typer.Option(
                "--init-from",
                help="Start from the weights of a checkpoint (e.g. pretrain_output/epoch_10); its architecture is used.",
                show_default=False,
                hidden=stage == "pretrain",
            ),
        ] = None,
        epochs: Annotated[
            int, typer.Option(min=1, help="Passes over the training windows (the learning rate decays to 0 at the last).")
        ] = 100 if stage == "train" else 50,
        batch_size: Annotated[
            int, typer.Option(min=1, help="Samples per step (paper: 256; small batches learn faster per CPU second).")
        ] = 32,
        lr: Annotated[
            float,
            typer.Option(
                min=0.0,
                help="Peak learning rate (AdamW) after warm-up; decays linearly to 0 (paper: 1e-4 for 400k steps, "
                "which under-trains in any CPU budget).",
            ),
        ] = 2e-3,
        weight_decay: Annotated[float, typer.Option(min=0.0, help="AdamW weight decay (not on biases and LayerNorm).")] = 0.01,
        warmup_steps: Annotated[int, typer.Option(min=0, help="Linear warm-up steps.")] = 200,
        max_grad_norm: Annotated[float, typer.Option(min=0.0, help="Gradient clipping norm (0 = off).")] = 5.0,
        mask_prob: Annotated[float, typer.Option(help="Share of positions masked by the cloze objective.")] = 0.2,
        label_smoothing: Annotated[
            float, typer.Option(min=0.0, max=0.99, help="Cross-entropy label smoothing (0 = plain cross-entropy; the logged loss includes it).")
        ] = 0.0,
        objective: Annotated[
            str,
            typer.Option(
                help="cloze | last (only the last item masked: the test task) | both (the paper's: cloze samples + "
                "last-item samples) | cloze-last (one pass: cloze with the last item always masked; half the cost of both).",
                hidden=stage == "pretrain",
            ),
        ] = "both" if stage == "train" else "cloze",
        last_share: Annotated[
            float,
            typer.Option(
                min=0.0, max=1.0, help="--objective both: share of windows that also give a last-item sample each epoch.",
                hidden=stage == "pretrain",
            ),
        ] = 1.0,
        window_step: Annotated[
            int, typer.Option(min=0, help="Sliding step of the training windows over long sequences (0 = max length).")
        ] = 0,
        max_windows: Annotated[
            int,
            typer.Option(
                min=0,
                help="Train on only the N most recent windows of each sequence (0 = all; 1 = each user's last "
                "max-length items, as the full-ranking reproduction does).",
            ),
        ] = 0,
        batching: Annotated[
            str,
            typer.Option(
                help="random (batches of random windows; on a CPU run as length-sorted chunks to cut padding) | "
                "bucket (windows of similar length: least padding, but clearly less learnt per epoch on ML-1M)."
            ),
        ] = "random",
        max_len: Annotated[int, typer.Option(min=2, help="Longest input in items ([MASK] included).")] = 200,
        hidden_size: Annotated[int, typer.Option(min=1, help="Transformer width.")] = 64,
        layers: Annotated[int, typer.Option(min=1, help="Transformer layers.")] = 2,
        heads: Annotated[int, typer.Option(min=1, help="Attention heads.")] = 2,
        intermediate_size: Annotated[int, typer.Option(min=1, help="Feed-forward width.")] = 256,
        dropout: Annotated[float, typer.Option(min=0.0, max=0.99, help="Hidden dropout.")] = 0.1,
        attention_dropout: Annotated[
            float,
            typer.Option(
                min=0.0, max=0.99, help="Attention dropout (0 lets the fused attention kernel run: ~1.5x faster on a CPU)."
            ),
        ] = 0.1,
        init_range: Annotated[
            float, typer.Option(min=0.0, help="Std of the truncated-normal weight initialisation (BERT: 0.02).")
        ] = 0.02,
        precision: Annotated[
            str, typer.Option(help="auto (fp32 on CPU, bf16/fp16 on CUDA) | fp32 | bf16 | fp16 (CUDA only).")
        ] = "auto",
        patience: Annotated[
            int, typer.Option(min=0, help="Stop after this many validations without a better NDCG@10 (0 = never).")
        ] = 0,
        valid_filter_seen: Annotated[
            bool,
            typer.Option(
                "--valid-filter-seen",
                help="Validate (and pick the best epoch) ranking only items not already in the user's history: "
                "the full+filter-seen protocol of seqrec evaluate --filter-seen (leave-one-out data).",
            ),
        ] = False,
        valid_every: Annotated[
            int, typer.Option(min=1, help="Validate after every N-th epoch (and the last); N > 1 saves time on short epochs.")
        ] = 1,
        seed: Seed = 42,
        use_cuda: UseCuda = False,
        resume: Resume = False,
        overwrite: Overwrite = False,
        log_every: LogEvery = 200,
        eval_batch_size: EvalBatchSize = 256,
    ) -> None:
        from .. import checkpoint as ckpt
        from ..errors import MismatchError
        from ..models.bert4rec import Bert4RecConfig
        from ..recipes.bert4rec import Bert4RecRecipe, Bert4RecTrainConfig
        from ..training import RunOptions, pick_device, seed_everything

        device = pick_device(use_cuda)
        data, folder = _load_data("bert4rec", train_dir)
        arch = dict(
            hidden_size=hidden_size, num_layers=layers, num_heads=heads, intermediate_size=intermediate_size,
            hidden_dropout=dropout, attention_dropout=attention_dropout, max_len=max_len, initializer_range=init_range,
        )  # fmt: skip
        flag_of = dict(num_layers="layers", num_heads="heads", hidden_dropout="dropout", initializer_range="init_range")
        given = {k: v for k, v in arch.items() if explicit(ctx, flag_of.get(k, k))}
        init_state = None
        if init_from is not None:
            source = ckpt.read_checkpoint(init_from)
            if source.model_name != "bert4rec":
                raise MismatchError(f"--init-from {init_from} is a {source.model_name} checkpoint, not bert4rec")
            if source.config["vocab"]["sha256"] != data.manifest.vocab_sha256:
                raise MismatchError(
                    f"--init-from {init_from} was trained with vocabulary {source.config['vocab']['path']}, "
                    f"which differs from {data.vocab_file}"
                )
            model_config = Bert4RecConfig(**source.config["model_config"])
            clash = {k: v for k, v in given.items() if getattr(model_config, k) != v}
            if clash or config is not None:
                raise MismatchError(
                    f"--init-from {init_from} fixes the architecture; drop "
                    + (", ".join(f"--{flag_of.get(k, k).replace('_', '-')}" for k in clash) or "--config")
                )
            init_state = ckpt.load_weights(source, device)
            note(f"initialised from {source.path} ({source.config.get('stage', 'train')} epoch {source.epoch})")
        else:
            if config is not None:
                model_config = Bert4RecConfig.from_bert_json(config, data.n_items)
                for k, v in given.items():
                    setattr(model_config, k, v)
            else:
                model_config = Bert4RecConfig(n_items=data.n_items, **arch)
            model_config.check(str(config) if config is not None else "architecture options")
        train_config = Bert4RecTrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup_steps=warmup_steps,
            max_grad_norm=max_grad_norm, mask_prob=mask_prob, label_smoothing=label_smoothing, objective="cloze" if stage == "pretrain" else objective, last_share=last_share,
            window_step=window_step, max_windows=max_windows, batching=batching, valid_filter_seen=valid_filter_seen, precision=precision, seed=seed,
        )  # fmt: skip
        seed_everything(seed)
        recipe = Bert4RecRecipe(data, model_config, train_config, device, eval_batch_size, init_state, stage)
        run = RunOptions(model_dir, epochs, resume, overwrite, use_cuda, log_every, patience, valid_every)
        _fit(recipe, run, data, folder)

    return command


train_bert4rec = _bert_command("train")
train_bert4rec.__doc__ = """Train BERT4Rec (default data: data/ml-1m, preprocessed from the download if
    needed). Objective: cloze + last-item samples (the paper's); validation NDCG@10/HR@10 after
    every epoch, best epoch recorded, optional early stopping. Each epoch is saved to
    <model-dir>/epoch_N; evaluate with seqrec evaluate or seqrec infer."""
pretrain_bert4rec = _bert_command("pretrain")
pretrain_bert4rec.__doc__ = """Masked-item (cloze) pretraining of BERT4Rec on the training sequences
    (BERT's 80/10/10 replacement, masks redrawn every epoch). Saves epoch_N checkpoints to
    pretrain_output/; continue with seqrec train bert4rec --init-from pretrain_output/epoch_N."""
train_app.command("bert4rec")(train_bert4rec)
pretrain_app.command("bert4rec")(pretrain_bert4rec)
