"""seqrec tune <model>: hyperparameter search, one command per registry entry.

Each command takes the tuning options and every option of ``seqrec train <model>`` (the same
declarations and the same resolution: command line, then --params, then --config, then the
defaults), except those that name one run's folder (--model-dir, --resume, --overwrite,
--init-from, --tensorboard-dir): each trial has its own folder. A training option given here is a
fixed value of every trial and leaves the search space.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..threads import default_threads
from ..console import note, say
from ..errors import SeqrecError
from ..hparams import params_of, typer_parameters, with_signature
from ..models import REGISTRY
from ..models.spec import ModelEntry
from .options import RUN
from .train import _run_parameters, _tensorboard_dir, resolve_settings

TUNING = "Tuning"  # help panel
NOT_PASSED = ("model_dir", "init_from", "resume", "overwrite", "tensorboard_dir")  # one run's folder: per trial here

tune_app = typer.Typer(
    help="Hyperparameter search with Optuna (TPE sampler, median pruner on the per-epoch validation metric): "
    "each trial is a training run in <output-dir>/trial_<n>/, the study is <output-dir>/study.db (rerun the same "
    "command to continue it), the best trial's options end up in <output-dir>/best_params.json. Needs "
    "pip install 'seqrec[tune]'.",
    no_args_is_help=True,
)


def _tune_parameters(entry: ModelEntry) -> list[inspect.Parameter]:
    from ..tune import BEST_FILE, STUDY_FILE, TUNE_DIR

    kw = inspect.Parameter.KEYWORD_ONLY
    opts: list[tuple[str, Any, Any]] = [
        (
            "trials",
            Annotated[
                int,
                typer.Option(
                    "--trials", min=1, help="Finished trials the study should hold (complete, pruned or failed); "
                    "a rerun of a study runs only the missing ones.", rich_help_panel=TUNING,
                ),
            ],
            inspect.Parameter.empty,
        ),  # fmt: skip
        (
            "space",
            Annotated[
                Optional[Path],
                typer.Option(
                    "--space", help="JSON search space: parameter (as in --params files) -> {\"low\", \"high\"[, \"step\"]"
                    "[, \"log\"]} or {\"choices\": [...]}; checked against the model's declared ranges.",
                    show_default=f"the shipped seqrec_cli/spaces/{entry.name}.json", rich_help_panel=TUNING,
                ),
            ],
            None,
        ),  # fmt: skip
        (
            "metric",
            Annotated[
                Optional[str],
                typer.Option(
                    "--metric", help="Validation metric to maximise, reported after every validated epoch: hr@10, "
                    "hr@20 (recall@k on session data), ndcg@10, ndcg@20, mrr@10, mrr@20 or mrr.",
                    show_default=entry.valid_metric, rich_help_panel=TUNING,
                ),
            ],
            None,
        ),  # fmt: skip
        (
            "timeout",
            Annotated[
                Optional[float],
                typer.Option(
                    "--timeout", min=1.0, help="Budget in seconds: no trial starts after it, and "
                    "running trials stop at the end of their current epoch (recorded as pruned).",
                    show_default="none", rich_help_panel=TUNING,
                ),
            ],
            None,
        ),  # fmt: skip
        (
            "output_dir",
            Annotated[
                Path,
                typer.Option(
                    "--output-dir", help=f"Folder of the study ({STUDY_FILE}), the trial_<n>/ runs and {BEST_FILE}.",
                    rich_help_panel=TUNING,
                ),
            ],
            TUNE_DIR,
        ),  # fmt: skip
        (
            "n_jobs",
            Annotated[
                int,
                typer.Option(
                    "--n-jobs", min=1, help="Trials run at once, each in its own process on the shared study, with "
                    "(CPU cores // N) torch threads each.", rich_help_panel=TUNING,
                ),
            ],
            1,
        ),  # fmt: skip
    ]
    return [inspect.Parameter(name, kw, default=default, annotation=ann) for name, ann, default in opts]


def _per_trial(param: inspect.Parameter) -> inspect.Parameter:
    """train's --tensorboard, saying where the event files of a trial go."""
    if param.name != "tensorboard":
        return param
    option = typer.Option(
        "--tensorboard", help="Also log each trial's training as TensorBoard event files (<output-dir>/trial_<n>/"
        "tensorboard/; needs pip install 'seqrec[tensorboard]').", rich_help_panel=RUN,
    )  # fmt: skip
    return param.replace(annotation=Annotated[bool, option])


def make_command(entry: ModelEntry):
    """The ``tune`` command of one registry entry."""
    run_params = [_per_trial(p) for p in _run_parameters(entry, Path(".")) if p.name not in NOT_PASSED]
    signature = run_params[:1] + _tune_parameters(entry) + run_params[1:]
    signature += typer_parameters(params_of(entry.config) + params_of(entry.train_config))

    def command(ctx: typer.Context, **kwargs: Any) -> None:
        from .. import tune as tuning
        from ..datasets import load_training_data
        from ..evaluation import metric_key
        from ..extras import require

        require("optuna", tuning.EXTRA, tuning.FEATURE)  # before any work
        metric = tuning.check_metric(kwargs["metric"] or entry.valid_metric)
        settings = resolve_settings(ctx, entry, kwargs, validate=False)  # trial values are checked per trial
        space_file = kwargs["space"] or tuning.shipped_space(entry.name)
        space = tuning.load_space(space_file, entry)
        fixed = settings.explicit
        dropped = [d for d in space if d.name in fixed]
        if dropped:
            note("fixed, so not searched: " + ", ".join(f"{d.key} ({settings.sources[d.name]})" for d in dropped))
        space = [d for d in space if d.name not in fixed]
        if not space:
            raise SeqrecError(f"nothing left to search: every parameter of {space_file} is fixed by the options given")
        if kwargs["tensorboard"]:
            _tensorboard_dir({**kwargs, "tensorboard_dir": None, "model_dir": kwargs["output_dir"]})
        data, folder = load_training_data(entry.default_data, kwargs["train_dir"])
        settings.check_config_file(entry, data.n_items)
        if "valid" not in data.splits:
            raise SeqrecError(f"{folder}: no validation split (valid.txt): seqrec tune compares trials on it")
        from ..training import data_info

        setup = tuning.TuneSetup(
            model=entry.name,
            train_dir=Path(folder),
            train_dir_given=kwargs["train_dir"],
            output_dir=kwargs["output_dir"],
            values={**settings.model_values, **settings.train_values},
            explicit=[p.name for p in params_of(entry.config) + params_of(entry.train_config) if p.name in fixed],
            space=space,
            space_file=Path(space_file),
            metric=metric_key(metric, data.manifest.eval_target),
            trials=kwargs["trials"],
            timeout=kwargs["timeout"],
            n_jobs=kwargs["n_jobs"],
            use_cuda=kwargs["use_cuda"],
            tensorboard=kwargs["tensorboard"],
            log_every=kwargs["log_every"],
            eval_batch_size=kwargs["eval_batch_size"],
            data_fingerprint=data_info(data, folder)["data"].data_fingerprint,
        )
        threads = default_threads(setup.n_jobs)
        budget = f", budget {setup.timeout:g}s" if setup.timeout else ""
        say(
            f"seqrec tune {entry.name}: {setup.trials} trials{budget}, best by {setup.metric} on the validation split of "
            f"{folder}; TPE sampler, median pruner; {setup.n_jobs} process(es) x {threads} torch thread(s)"
        )
        say(f"search space ({space_file}): " + "; ".join(d.describe() for d in space))
        by_name = {p.name: p for p in params_of(entry.config) + params_of(entry.train_config)}
        shown = ", ".join(f"{by_name[n].flag} {json.dumps(setup.values[n])}" for n in setup.explicit if n in by_name)
        say(f"fixed: {shown or 'nothing'}; every other option at its default")
        result = tuning.run_tuning(setup)
        _report(entry, setup, result)

    command.__doc__ = (
        f"Search {entry.title}'s hyperparameters with Optuna: each trial trains in <output-dir>/trial_<n>/ and "
        "reports its validation metric after every validated epoch (the median pruner may stop it there); the "
        "study is <output-dir>/study.db, so rerunning the same command continues a killed run. Every training "
        f"option of seqrec train {entry.name} may be given: it is then a fixed value of every trial (and leaves "
        "the search space). At the end the best trial's options are printed and written to "
        "<output-dir>/best_params.json, a ready --params file. Needs pip install 'seqrec[tune]'."
    )
    command.__name__ = f"tune_{entry.name}"
    return with_signature(command, signature)


def _report(entry: ModelEntry, setup, result) -> None:
    from .. import tune as tuning

    import optuna

    study = optuna.load_study(study_name=tuning.STUDY_NAME, storage=setup.storage_url)
    trials = study.get_trials(deepcopy=False)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(result.counts.items()))
    say(f"study {result.study_file}: {len(trials)} trials ({counts}); this run finished {result.ran} in {result.seconds:.0f}s")
    for t in trials:
        if t.state.is_finished():
            say("  " + tuning.trial_summary(t, setup.metric))
    if result.best is None:
        raise SeqrecError(
            f"no trial of {result.study_file} completed, so there is no best one yet; rerun (with a longer --timeout "
            "or fewer --epochs) to continue the study"
        )
    best = result.best_trial
    say(
        f"best: trial {best.number}, {setup.metric} {best.value:.4f} at epoch {best.user_attrs.get('best_epoch')} "
        f"({best.user_attrs.get('folder')})"
    )
    say(json.dumps(result.best, indent=2))
    say(f"wrote {result.best_file}")
    say(f"next: {tuning.train_command(setup, result.best_file)}")
    seen = " --filter-seen" if setup.values.get("valid_filter_seen") else ""
    say(f"test figures of the best trial: seqrec evaluate --model-dir {best.user_attrs.get('folder')}{seen}")


for _entry in REGISTRY.values():
    tune_app.command(_entry.name)(make_command(_entry))
