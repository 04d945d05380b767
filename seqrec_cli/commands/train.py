"""seqrec train <model> and seqrec pretrain <model>: one command per registry entry and stage.

The options of each command derive from the model's typed configs (``seqrec_cli.hparams``):
every hyperparameter is declared once, as a dataclass field, and the option, its help, its
choices and its range checks follow from it. Values come from the command line, then a
``--params`` file, then a ``--config`` file (model fields; the model may accept other key names,
e.g. BERT-style ones), then the defaults. Every value is checked before any data is read.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .. import formats
from ..console import say
from ..errors import MismatchError
from ..hparams import EVAL_BATCH_SIZE, Param, check_value, params_of, read_json_file, typer_parameters, values_from_file, with_signature
from ..models import REGISTRY
from ..models.spec import ModelEntry
from .options import (
    RUN,
    EvalBatchSize,
    LogEvery,
    NumDevices,
    Overwrite,
    Resume,
    Threads,
    UseCuda,
    default_train_dir,
    explicit,
    read_params,
    shipped_params,
    threads_option,
)

train_app = typer.Typer(
    help="Train a model on processed data; each epoch is saved as <model-dir>/epoch_N.", no_args_is_help=True
)
pretrain_app = typer.Typer(help="Pretraining stages (BERT4Rec's masked-item cloze pretraining).", no_args_is_help=True)


def _run_parameters(entry: ModelEntry, model_dir: Path) -> list[inspect.Parameter]:
    """The options every training command has, besides the model's hyperparameters."""
    kw = inspect.Parameter.KEYWORD_ONLY
    aliases = f" (or the {'/'.join(sorted({k.split('_')[0] for k in entry.config_aliases}))}-style keys of the model's JSON configs)" if entry.config_aliases else ""
    threads = Threads
    if "threads" in entry.run_defaults:  # a model whose steps gain nothing from more threads says so in --help
        n = entry.run_defaults["threads"]
        threads = threads_option(f"{n} for {entry.title}: its steps are too small to split; more for large batches")
    opts: list[tuple[str, Any, Any]] = [
        ("ctx", typer.Context, inspect.Parameter.empty),
        (
            "train_dir",
            Annotated[
                Optional[Path],
                typer.Option(
                    "--train-dir", help="Processed data folder (train.txt, test.txt, manifest.json).",
                    show_default=str(default_train_dir(entry.default_data)), rich_help_panel=RUN,
                ),
            ],
            None,
        ),  # fmt: skip
        (
            "model_dir",
            Annotated[Path, typer.Option("--model-dir", help="Folder of the epoch_N checkpoints.", rich_help_panel=RUN)],
            model_dir,
        ),
        (
            "params",
            Annotated[
                Optional[str],
                typer.Option(
                    "--params",
                    help="JSON file of option values (keys: the option names with _ for -), or the name of a shipped "
                    f"one ({', '.join(shipped_params())}). Options given on the command line win.",
                    show_default=False, rich_help_panel=RUN,
                ),
            ],
            None,
        ),  # fmt: skip
        (
            "config",
            Annotated[
                Optional[Path],
                typer.Option(
                    "--config",
                    help=f"JSON file of model settings: keys are the model options' names{aliases}. "
                    "Options given on the command line or in --params win.",
                    show_default=False, rich_help_panel=RUN,
                ),
            ],
            None,
        ),  # fmt: skip
        (
            "init_from",
            Annotated[
                Optional[Path],
                typer.Option(
                    "--init-from",
                    help="Start from the weights of a checkpoint folder of this model (e.g. pretrain_output/epoch_10); "
                    "its architecture is used.",
                    show_default=False, rich_help_panel=RUN,
                ),
            ],
            None,
        ),  # fmt: skip
        (
            "tensorboard",
            Annotated[
                bool,
                typer.Option(
                    "--tensorboard", help="Also log loss, learning rate, throughput and validation figures as "
                    "TensorBoard event files (<model-dir>/tensorboard/; needs pip install 'seqrec[tensorboard]').",
                    rich_help_panel=RUN,
                ),
            ],
            False,
        ),  # fmt: skip
        (
            "tensorboard_dir",
            Annotated[
                Optional[Path],
                typer.Option(
                    "--tensorboard-dir", help="Folder of the TensorBoard event files (implies --tensorboard).",
                    show_default="<model-dir>/tensorboard", rich_help_panel=RUN,
                ),
            ],
            None,
        ),  # fmt: skip
        ("use_cuda", UseCuda, False),
        ("num_devices", NumDevices, None),
        ("threads", threads, None),
        ("resume", Resume, False),
        ("overwrite", Overwrite, False),
        ("log_every", LogEvery, 200),
        ("eval_batch_size", EvalBatchSize, EVAL_BATCH_SIZE),
    ]
    return [
        inspect.Parameter(name, kw, default=entry.run_defaults.get(name, default), annotation=ann)
        for name, ann, default in opts
    ]


def make_command(entry: ModelEntry, stage: str = "train"):
    """The ``train``/``pretrain`` command of one registry entry."""
    spec = entry.stages.get(stage)
    model_params = params_of(entry.config)
    train_params = params_of(entry.train_config)
    defaults = dict(spec.defaults) if spec else {}
    fixed = dict(spec.fixed) if spec else {}
    model_dir = spec.model_dir if spec else formats.MODEL_DIR
    signature = _run_parameters(entry, model_dir) + typer_parameters(model_params + train_params, defaults, hidden=fixed)

    def command(ctx: typer.Context, **kwargs: Any) -> None:
        from .. import distributed
        from ..datasets import load_training_data
        from ..training import RunOptions, train_model

        settings = resolve_settings(ctx, entry, kwargs, fixed)
        model_values, train_values = settings.model_values, settings.train_values
        init_from = kwargs["init_from"]
        run = RunOptions(
            model_dir=kwargs["model_dir"], resume=kwargs["resume"], overwrite=kwargs["overwrite"],
            log_every=kwargs["log_every"], eval_batch_size=kwargs["eval_batch_size"], stage=stage,
            tensorboard=_tensorboard_dir(kwargs),
        )  # fmt: skip
        proc = distributed.start(kwargs["num_devices"], kwargs["use_cuda"], kwargs["threads"], resumable=True)
        if proc is None:  # this process launched the workers, and they are done
            return
        device = proc.device
        data, folder = load_training_data(entry.default_data, kwargs["train_dir"])
        settings.check_config_file(entry, data.n_items)
        arch_given = {p.name: settings.sources[p.name] for p in model_params if p.arch and p.name in settings.given}
        result = train_model(entry, data, folder, model_values, train_values, run, device, init_from, arch_given)
        best = result["best"]
        if best.epoch is not None:
            say(f"best epoch {best.epoch} ({best.metric} {best.value:.4f} on the validation split)")
        say(f"next: seqrec infer --model-dir {run.model_dir} --start-index 1 --last-index {train_values['epochs']}")

    command.__doc__ = spec.help if spec else entry.help
    command.__name__ = f"{stage}_{entry.name}"
    return with_signature(command, signature)


@dataclass
class Settings:
    """The checked hyperparameters of one training command line (see :func:`resolve_settings`)."""

    model_values: dict[str, Any]  # model config fields (n_items comes from the data)
    train_values: dict[str, Any]  # train config fields
    sources: dict[str, str]  # field -> where its value came from, for messages (--lr, p.json: lr, ...)
    given: set[str]  # fields set on the command line or in --params
    from_config: set[str]  # fields set by the --config file
    config_file: Path | None = None
    raw_config: Any = None  # the parsed --config file

    @property
    def explicit(self) -> set[str]:
        """Every field whose value the user chose (command line, --params, --config), not a default."""
        return self.given | self.from_config

    def check_config_file(self, entry: ModelEntry, n_items: int) -> None:
        """The model's own check of a --config file against the data (e.g. BERT4Rec's vocab_size)."""
        if self.raw_config is not None and entry.check_config_file is not None:
            entry.check_config_file(self.raw_config, n_items, str(self.config_file))


def resolve_settings(
    ctx: typer.Context, entry: ModelEntry, kwargs: dict[str, Any], fixed: dict[str, Any] | None = None,
    validate: bool = True,
) -> Settings:  # fmt: skip
    """Every hyperparameter of ``entry`` from a command's options: the command line, then --params,
    then --config (model fields), then the defaults; every value checked (one error naming the
    option or file and key), and, with ``validate``, the model config's cross-field checks."""
    model_params = params_of(entry.config)
    train_params = params_of(entry.train_config)
    params = model_params + train_params
    values, sources, given = resolve_values(ctx, entry, params, kwargs, fixed or {})
    config_file, init_from = kwargs.get("config"), kwargs.get("init_from")
    raw_config = None
    from_config: set[str] = set()
    if config_file is not None:
        if init_from is not None:
            raise MismatchError(f"--init-from {init_from} fixes the architecture; drop --config")
        raw_config = read_json_file(config_file, "config file")
        body = {k: v for k, v in raw_config.items() if k not in entry.config_ignored} if isinstance(raw_config, dict) else raw_config
        for name, (value, where) in values_from_file(body, config_file, model_params, entry.config_aliases).items():
            if name not in given:
                values[name], sources[name] = value, where
                from_config.add(name)
    checked = {p.name: check_value(p, values[p.name], sources[p.name]) for p in params}
    model_values = {p.name: checked[p.name] for p in model_params}
    train_values = {p.name: checked[p.name] for p in train_params}
    if validate:
        entry.config(n_items=1, **model_values).validate(str(config_file) if config_file else "the model options")
    return Settings(model_values, train_values, sources, given, from_config, config_file, raw_config)


def _tensorboard_dir(kwargs: dict[str, Any]) -> Path | None:
    """--tensorboard-dir, or <model-dir>/tensorboard with --tensorboard, else None; a missing
    tensorboard package is one error before any data is read."""
    if kwargs["tensorboard_dir"] is None and not kwargs["tensorboard"]:
        return None
    from ..tensorboard import EXTRA, FEATURE, default_log_dir
    from ..extras import require

    require("tensorboard", EXTRA, FEATURE)
    return kwargs["tensorboard_dir"] or default_log_dir(kwargs["model_dir"])


def resolve_values(
    ctx: typer.Context, entry: ModelEntry, params: list[Param], kwargs: dict[str, Any], fixed: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str], set[str]]:
    """(value of each field, where it came from for messages, fields given on the command line):
    the command line wins over --params, which wins over the defaults; a stage's fixed values win."""
    values = {p.name: kwargs[p.key] for p in params}
    sources = {p.name: p.flag for p in params}
    given = {p.name for p in params if explicit(ctx, p.key)}
    if kwargs.get("params"):
        body, path = read_params(kwargs["params"])
        for name, (value, where) in values_from_file(body, path, params, entry.config_aliases).items():
            if name not in given:
                values[name], sources[name] = value, where
                given.add(name)  # a --config file does not override it either
    for name, value in fixed.items():
        values[name], sources[name] = value, f"{ctx.info_name} (fixed)"
    return values, sources, given


for _entry in REGISTRY.values():
    train_app.command(_entry.name)(make_command(_entry, "train"))
    for _stage in _entry.stages:
        if _stage == "pretrain":
            pretrain_app.command(_entry.name)(make_command(_entry, _stage))
