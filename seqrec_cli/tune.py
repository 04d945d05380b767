"""``seqrec tune``: hyperparameter search with Optuna over a model's declared hyperparameters.

A search space is a JSON file (``seqrec_cli/spaces/<model>.json`` ships one per model) whose keys
are the model's hyperparameters, named as in ``--params`` files, each with a range or a list of
choices; every key and bound is checked against the declaration (``seqrec_cli.hparams``), so a
typo or a range the model does not accept is one error naming the file and key before anything
runs. Every other hyperparameter is fixed: the value given on the command line, in ``--params`` or
``--config``, else its default.

Each trial is a normal training run (``training.train_model``) in its own folder
``<output-dir>/trial_<n>/`` (checkpoints, metrics.jsonl, curves.png; its console output in
``train.log``). After each validated epoch the trial reports the chosen validation metric to
Optuna through ``Trainer.epoch_callbacks``; the median pruner (Optuna's ``MedianPruner``) may stop
it there by raising ``TrialPruned``, which leaves the folder a valid partial run (the epoch's
checkpoint is saved before the callbacks run). A trial's value is its best validated figure.
Parameters are proposed by Optuna's TPE sampler.

The study lives in SQLite beside the trials (``<output-dir>/study.db``), so a tuning run that is
killed resumes when the same command is run again: ``--trials`` is the number of finished
trials the study should hold, trials that a killed run left unfinished are marked failed and run
again with the same parameters (in a new folder), and the folder's lock keeps two tuning runs out
of one study. ``--n-jobs J`` runs the trials in J worker processes on the shared storage, each
with ``cores // J`` torch threads. ``--timeout S`` is a budget: no trial starts after S seconds,
and a running one stops at the end of its current epoch (recorded as pruned).

At the end the best trial's options are written as a ready ``--params`` file
(``<output-dir>/best_params.json``). Needs ``pip install 'seqrec[tune]'`` (optuna).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .threads import default_threads
from . import formats
from .console import note, say
from .errors import BadInputError, MismatchError, SeqrecError
from .extras import require
from .hparams import EVAL_BATCH_SIZE, Param, check_value, params_of, read_json_file
from .models import REGISTRY
from .models.spec import ModelEntry

EXTRA = "tune"
FEATURE = "seqrec tune"
TUNE_DIR = Path("tune_output")  # default --output-dir
STUDY_FILE = "study.db"  # the Optuna study (SQLite) in the output folder
BEST_FILE = "best_params.json"  # the best trial's options, a --params file
TRIAL_PREFIX = "trial_"  # <output-dir>/trial_<n>/: one training run per trial
TRIAL_LOG = "train.log"  # a trial's console output, in its folder
STUDY_NAME = "seqrec"
VALID_CUTOFFS = (10, 20)  # the cutoffs the training loop validates with (Trainer.validate)
PRUNE_STARTUP_TRIALS = 5  # trials that must finish before the median pruner stops any (Optuna's default)
SPACE_FIELDS = ("low", "high", "step", "log", "choices")
SEED_MODULUS = 2**32  # numpy seeds (Optuna's samplers) are below 2**32


# ---------------------------------------------------------------------------------------------- spaces
@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter: a range (``low``..``high``, optionally ``step`` or ``log``) or
    ``choices``."""

    param: Param
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        """The config field."""
        return self.param.name

    @property
    def key(self) -> str:
        """The --params key (the option name with underscores): the name Optuna records."""
        return self.param.key

    def suggest(self, trial) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.param.kind == "int":
            step = int(self.step) if self.step is not None else 1
            return trial.suggest_int(self.key, int(self.low), int(self.high), step=step, log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), step=self.step, log=self.log)

    def describe(self) -> str:
        if self.choices:
            return f"{self.key} one of {', '.join(map(_show, self.choices))}"
        how = "log-uniform" if self.log else ("integer" if self.param.kind == "int" else "uniform")
        step = f" step {_show(self.step)}" if self.step is not None else ""
        return f"{self.key} {how} [{_show(self.low)}, {_show(self.high)}]{step}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key}
        if self.choices:
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, step=self.step, log=self.log)
        return out


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def shipped_space(model: str) -> Path:
    """The search space seqrec ships for a model (``seqrec_cli/spaces/<model>.json``)."""
    return Path(str(resources.files("seqrec_cli") / "spaces" / f"{model}.json"))


def load_space(path: Path | str, entry: ModelEntry) -> list[Dimension]:
    """The search space in ``path`` for ``entry``, every key and bound checked against the model's
    declared hyperparameters: an unknown key, a bound outside the declared range or a malformed
    entry is one :class:`BadInputError` naming the file and key. Keys starting with ``_`` are
    comments."""
    body = read_json_file(path, "search space file")
    if not isinstance(body, dict):
        raise BadInputError(path, "expected a JSON object: parameter name -> {low, high[, step][, log]} or {choices}")
    params = params_of(entry.config) + params_of(entry.train_config)
    by_key: dict[str, Param] = {}
    for p in params:
        by_key[p.key] = p
        by_key.setdefault(p.name, p)
    unknown = sorted(k for k in body if not k.startswith("_") and k not in by_key)
    if unknown:
        raise BadInputError(
            path, f"unknown parameter(s): {', '.join(unknown)} (not hyperparameters of {entry.name}; "
            f"see seqrec train {entry.name} --help)",
        )  # fmt: skip
    dims: list[Dimension] = []
    seen: dict[str, str] = {}
    for key, spec in body.items():
        if key.startswith("_"):
            continue
        p = by_key[key]
        if p.name in seen:
            raise BadInputError(path, f"{key}: the same parameter as {seen[p.name]}")
        seen[p.name] = key
        dims.append(_dimension(p, spec, f"{path}: {key}"))
    if not dims:
        raise BadInputError(path, "the search space is empty: name at least one parameter")
    return dims


def _dimension(p: Param, spec: Any, where: str) -> Dimension:
    if not isinstance(spec, dict):
        raise SeqrecError(f"{where} must be an object: {{\"low\": ..., \"high\": ...}} or {{\"choices\": [...]}}, got {spec!r}")
    extra = sorted(set(spec) - set(SPACE_FIELDS))
    if extra:
        raise SeqrecError(f"{where}: unknown field(s) {', '.join(extra)} (a dimension has {', '.join(SPACE_FIELDS)})")
    if "choices" in spec:
        if set(spec) != {"choices"}:
            raise SeqrecError(f"{where}: choices exclude low, high, step and log")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise SeqrecError(f"{where}: choices must be a non-empty list, got {choices!r}")
        checked = tuple(check_value(p, c, f"{where}: choices") for c in choices)
        if len(set(map(repr, checked))) != len(checked):
            raise SeqrecError(f"{where}: choices repeat a value")
        return Dimension(p, choices=checked)
    if p.kind not in ("int", "float"):
        raise SeqrecError(f"{where}: {p.flag} is {p.describe()}: give choices, not a range")
    if "low" not in spec or "high" not in spec:
        raise SeqrecError(f"{where}: a range needs low and high")
    low = check_value(p, spec["low"], f"{where}: low")
    high = check_value(p, spec["high"], f"{where}: high")
    if not low < high:
        raise SeqrecError(f"{where}: low ({_show(low)}) must be below high ({_show(high)})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SeqrecError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SeqrecError(f"{where}: a log range needs low > 0, got {_show(low)}")
    step = spec.get("step")
    if step is not None:
        if log:
            raise SeqrecError(f"{where}: step and log exclude each other")
        integral = isinstance(step, int) and not isinstance(step, bool)
        if not (integral or (p.kind == "float" and isinstance(step, float) and math.isfinite(step))) or step <= 0:
            raise SeqrecError(f"{where}: step must be a positive {'integer' if p.kind == 'int' else 'number'}, got {step!r}")
    return Dimension(p, low=low, high=high, step=step, log=log)


# ---------------------------------------------------------------------------------------------- setup
@dataclass
class TuneSetup:
    """Everything a tuning run (and each of its worker processes) needs; picklable."""

    model: str  # registry name
    train_dir: Path  # the processed data folder
    train_dir_given: Path | None  # --train-dir as given (for the printed train command)
    output_dir: Path
    values: dict[str, Any]  # every hyperparameter (field -> value) that the space does not set
    explicit: list[str]  # fields the user fixed (command line, --params, --config): kept in best_params.json
    space: list[Dimension]
    space_file: Path
    metric: str  # validation metric as the data names it (hr@10 / recall@10, ndcg@10, ...)
    trials: int  # finished trials the study should hold
    timeout: float | None = None  # seconds
    n_jobs: int = 1
    use_cuda: bool = False
    tensorboard: bool = False
    log_every: int = 200
    eval_batch_size: int = EVAL_BATCH_SIZE
    data_fingerprint: str = ""
    prune_startup_trials: int = PRUNE_STARTUP_TRIALS

    @property
    def entry(self) -> ModelEntry:
        return REGISTRY[self.model]

    @property
    def storage_url(self) -> str:
        return f"sqlite:///{(self.output_dir / STUDY_FILE).absolute()}"

    def study_settings(self) -> dict[str, Any]:
        """What a resumed study must have been started with (JSON)."""
        return {
            "model": self.model,
            "metric": self.metric,
            "data_fingerprint": self.data_fingerprint,
            "space": [d.to_json() for d in self.space],
            "values": {k: v for k, v in self.values.items() if k not in {d.name for d in self.space}},
        }


@dataclass
class TuneResult:
    study_file: Path
    best_file: Path | None
    best: dict[str, Any] | None  # the --params body written
    best_trial: Any  # optuna FrozenTrial or None
    counts: dict[str, int] = field(default_factory=dict)  # state -> trials
    ran: int = 0  # trials this run finished
    seconds: float = 0.0


def trial_dir(output_dir: Path, number: int) -> Path:
    return Path(output_dir) / f"{TRIAL_PREFIX}{number}"


def check_metric(metric: str) -> str:
    """A validation metric the training loop computes (hr|recall|ndcg|mrr @10|@20, or mrr)."""
    name = metric.strip().lower()
    base, at, k = name.partition("@")
    if name == "mrr" or (base in ("hr", "recall", "ndcg", "mrr") and at and k in {str(c) for c in VALID_CUTOFFS}):
        return name
    cut = "|".join(map(str, VALID_CUTOFFS))
    raise SeqrecError(f"--metric must be a validation metric: hr@{cut}, recall@{cut}, ndcg@{cut}, mrr@{cut} or mrr; got {metric!r}")


# ---------------------------------------------------------------------------------------------- the run
def run_tuning(setup: TuneSetup) -> TuneResult:
    """Create or continue the study in ``setup.output_dir`` and run trials until it holds
    ``setup.trials`` finished ones (or the timeout passes); then write the best trial's options."""
    optuna = require("optuna", EXTRA, FEATURE)
    from .fileio import folder_lock

    t0 = time.time()
    out = Path(setup.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):  # one tuning run per study; its trials are this run's (or a dead one's)
        study = _open_study(optuna, setup, sampler_seed=0)
        finished = _finished(optuna, study)
        remaining = max(0, setup.trials - finished)
        retried = _recover(optuna, study, room=remaining)
        say(
            f"study {out / STUDY_FILE}: {finished} of {setup.trials} trials finished"
            + (f", {len(retried)} interrupted trial(s) to run again ({', '.join(map(str, retried))})" if retried else "")
        )
        before = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        if remaining:
            deadline = None if setup.timeout is None else t0 + setup.timeout
            workers = min(setup.n_jobs, remaining)
            shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
            threads = default_threads(setup.n_jobs)
            if workers == 1:
                run_worker(setup, shares[0], 0, deadline, threads)
            else:
                _run_processes(setup, shares, deadline, threads)
        study = _open_study(optuna, setup, sampler_seed=0)
        trials = study.get_trials(deepcopy=False)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        ran = sum(1 for t in trials if t.state.is_finished() and t.number not in before)
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        result = TuneResult(out / STUDY_FILE, None, None, None, counts, ran, time.time() - t0)
        if complete:
            best = max(complete, key=lambda t: (t.value, -t.number))
            result.best_trial = best
            result.best = best_params_body(setup, best)
            result.best_file = out / BEST_FILE
            from .fileio import write_json

            write_json(result.best_file, result.best)
        return result


def _open_study(optuna, setup: TuneSetup, sampler_seed: int):
    """The study of ``setup`` (created on first use); a study started with other settings is refused."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = optuna.storages.RDBStorage(setup.storage_url, engine_kwargs={"connect_args": {"timeout": 120}})
    sampler = optuna.samplers.TPESampler(seed=sampler_seed % SEED_MODULUS, constant_liar=True)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=setup.prune_startup_trials, n_warmup_steps=0)
    study = optuna.create_study(
        study_name=STUDY_NAME, storage=storage, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
    )
    wanted = json.loads(json.dumps(setup.study_settings()))
    stored = study.user_attrs.get("settings")
    if stored is None:
        study.set_user_attr("settings", wanted)
        from . import __version__

        study.set_user_attr("seqrec_version", __version__)
    elif stored != wanted:
        differ = [k for k in wanted if stored.get(k) != wanted[k]]
        if "values" in differ:
            a, b = stored.get("values", {}), wanted["values"]
            differ.remove("values")
            differ += [f"--{k.replace('_', '-')}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        raise MismatchError(
            f"{setup.output_dir / STUDY_FILE} holds a study started with other settings ({', '.join(differ)}); "
            "rerun with the same options (only --trials, --timeout and --n-jobs may change) or use another --output-dir"
        )
    return study


def _finished(optuna, study) -> int:
    """Trials that count toward --trials: complete, pruned, and failed ones that were not interrupted."""
    n = 0
    for t in study.get_trials(deepcopy=False):
        if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED):
            n += 1
        elif t.state == optuna.trial.TrialState.FAIL and not t.user_attrs.get("interrupted"):
            n += 1
    return n


def _recover(optuna, study, room: int) -> list[int]:
    """Trials a killed or interrupted run left unfinished: marked failed (``interrupted``) and, while
    the study has ``room`` for more trials, queued again with the same parameters, once each (a
    retry already queued counts). Returns the numbers queued now. The caller holds the lock of the
    output folder, so no live process runs any of them."""
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    queued = {t.user_attrs.get("retry_of") for t in trials if t.user_attrs.get("retry_of") is not None}
    room -= sum(1 for t in trials if t.state == states.WAITING)
    again = []
    for t in trials:
        if t.state == states.RUNNING:  # its process is gone
            study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            study._storage.set_trial_state_values(t._trial_id, states.FAIL)
        elif not (t.state == states.FAIL and t.user_attrs.get("interrupted")):
            continue
        if t.number not in queued and t.params and len(again) < room:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
            again.append(t.number)
    return again


def _run_processes(setup: TuneSetup, shares: list[int], deadline: float | None, threads: int) -> None:
    """One spawned worker process per share, on the shared study; waits for all of them."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads
    procs = [
        ctx.Process(target=_process_main, args=(setup, n, i, deadline, threads, os.getpid()), name=f"seqrec-tune-{i}")
        for i, n in enumerate(shares)
    ]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:  # the workers got the same Ctrl-C: let them mark their trials interrupted
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.terminate()
        raise
    failed = [(i, p.exitcode) for i, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        which = ", ".join(f"{i} (exit code {code})" for i, code in failed)
        raise SeqrecError(
            f"tuning worker(s) {which} stopped; {setup.output_dir / STUDY_FILE} keeps every finished trial: "
            "rerun the same command to continue"
        )


def _process_main(setup: TuneSetup, n_trials: int, index: int, deadline: float | None, threads: int, parent: int) -> None:
    """A worker process: dies with its parent (Linux), reports a user error as one line."""
    import sys

    _die_with_parent(parent)
    try:
        run_worker(setup, n_trials, index, deadline, threads)
    except SeqrecError as exc:
        print(f"Error: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when the tuning process dies (so a killed run leaves no workers
    behind, and its trials are the unfinished ones the next run recovers)."""
    import signal

    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def run_worker(setup: TuneSetup, n_trials: int, index: int, deadline: float | None, threads: int) -> None:
    """Run up to ``n_trials`` trials of the study in this process (stops early at the deadline)."""
    import torch

    optuna = require("optuna", EXTRA, FEATURE)
    from .training import pick_device

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        existing = len(_open_study(optuna, setup, 0).get_trials(deepcopy=False))
        # a new sampler stream per run and per worker: a resumed study does not redraw its first trials
        study = _open_study(optuna, setup, sampler_seed=setup.values.get("seed", 0) + 7919 * existing + 104729 * index)
        data = formats.load_processed(setup.train_dir)
        device = pick_device(setup.use_cuda)
        objective = _Objective(setup, data, device, deadline)
        timeout = None if deadline is None else deadline - time.time()
        if timeout is not None and timeout <= 0:
            return
        study.optimize(objective, n_trials=n_trials, timeout=timeout, catch=(SeqrecError,), gc_after_trial=False)
    finally:
        torch.set_num_threads(before)


class _Objective:
    """One trial: a training run in ``trial_<n>/`` with the trial's parameters, reporting the metric
    after every validated epoch; its value is the best validated figure."""

    def __init__(self, setup: TuneSetup, data, device, deadline: float | None):
        self.setup, self.data, self.device, self.deadline = setup, data, device, deadline
        entry = setup.entry
        self.model_fields = [p.name for p in params_of(entry.config)]
        self.train_fields = [p.name for p in params_of(entry.train_config)]

    def __call__(self, trial) -> float:
        import optuna
        import torch

        from .training import RunOptions, train_model

        setup, entry = self.setup, self.setup.entry
        values = dict(setup.values)
        chosen = {d.name: d.suggest(trial) for d in setup.space}
        values.update(chosen)
        folder = trial_dir(setup.output_dir, trial.number)
        trial.set_user_attr("folder", str(folder))
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("threads", torch.get_num_threads())
        shown = ", ".join(f"{d.key} {_show(chosen[d.name])}" for d in setup.space)
        model_values = {k: values[k] for k in self.model_fields}
        train_values = {k: values[k] for k in self.train_fields}
        reporter = _Reporter(trial, setup.metric, self.deadline, values["epochs"])
        t0 = time.time()
        try:
            entry.config(n_items=self.data.n_items, **model_values).validate(f"trial {trial.number} ({shown})")
            run = RunOptions(
                model_dir=folder, overwrite=True, log_every=setup.log_every, eval_batch_size=setup.eval_batch_size,
                tensorboard=folder / "tensorboard" if setup.tensorboard else None,
            )  # fmt: skip
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / TRIAL_LOG, "a", encoding="utf-8") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                train_model(
                    entry, self.data, setup.train_dir, model_values, train_values, run, self.device,
                    epoch_callbacks=(reporter,),
                )  # fmt: skip
        except optuna.TrialPruned:
            why = "--timeout reached" if reporter.stopped else "below the median of earlier trials"
            value = f", {setup.metric} {reporter.last:.4f}" if reporter.last is not None else ""
            say(f"trial {trial.number}: pruned after epoch {reporter.epoch} ({why}{value}) -> {folder}  [{shown}]")
            raise
        except SeqrecError as exc:
            trial.set_user_attr("error", str(exc))
            say(f"trial {trial.number}: failed: {exc}  [{shown}]")
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        if reporter.best is None:
            msg = f"no validation figure {setup.metric} was logged (validated epochs: none)"
            trial.set_user_attr("error", msg)
            say(f"trial {trial.number}: failed: {msg}  [{shown}]")
            raise SeqrecError(msg)
        trial.set_user_attr("best_epoch", reporter.best_epoch)
        say(
            f"trial {trial.number}: {setup.metric} {reporter.best:.4f} (epoch {reporter.best_epoch} of {reporter.epoch}, "
            f"{time.time() - t0:.0f}s) -> {folder}  [{shown}]"
        )
        return reporter.best


class _Reporter:
    """The epoch callback of a trial: reports the metric, prunes, stops at the deadline."""

    def __init__(self, trial, metric: str, deadline: float | None, epochs: int):
        self.trial, self.metric, self.deadline, self.epochs = trial, metric, deadline, epochs
        self.epoch = 0
        self.last: float | None = None
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.stopped = False

    def __call__(self, epoch: int, stats: dict[str, Any], best: Any) -> None:
        import optuna

        self.epoch = epoch
        valid = stats.get("valid")
        if valid is not None:
            if self.metric not in valid:
                raise SeqrecError(f"the validation has no {self.metric} (it has {', '.join(valid)})")
            value = float(valid[self.metric])
            self.last = value
            if self.best is None or value > self.best:
                self.best, self.best_epoch = value, epoch
            self.trial.report(value, epoch)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: {self.metric} {value:.4f} below the median")
        if self.deadline is not None and time.time() >= self.deadline and epoch < self.epochs:
            self.stopped = True
            self.trial.set_user_attr("stopped", "timeout")
            raise optuna.TrialPruned(f"--timeout reached after epoch {epoch}")


# ---------------------------------------------------------------------------------------------- results
def best_params_body(setup: TuneSetup, trial) -> dict[str, Any]:
    """The best trial's options as a --params file: the searched values and the ones the user fixed."""
    by_name = {p.name: p for p in params_of(setup.entry.config) + params_of(setup.entry.train_config)}
    body: dict[str, Any] = {
        "_about": (
            f"best trial of seqrec tune {setup.model}: trial {trial.number} of {setup.output_dir / STUDY_FILE}, "
            f"{setup.metric} {trial.value:.4f} on the validation split of {setup.train_dir}"
            + (f" at epoch {trial.user_attrs['best_epoch']}" if trial.user_attrs.get("best_epoch") else "")
            + f"; checkpoints in {trial.user_attrs.get('folder', trial_dir(setup.output_dir, trial.number))}"
        ),
    }
    for name in setup.explicit:
        if name in by_name and name not in {d.name for d in setup.space}:
            body[by_name[name].key] = setup.values[name]
    for d in setup.space:
        body[d.key] = trial.params[d.key]
    return body


def train_command(setup: TuneSetup, best_file: Path) -> str:
    parts = ["seqrec", "train", setup.model]
    if setup.train_dir_given is not None:
        parts += ["--train-dir", str(setup.train_dir_given)]
    parts += ["--params", str(best_file)]
    if setup.use_cuda:
        parts.append("--use-cuda")
    return " ".join(parts)


def trial_summary(trial, metric: str) -> str:
    """One line about a finished trial, for the end of a tuning run."""
    state = trial.state.name.lower()
    params = ", ".join(f"{k} {_show(v)}" for k, v in trial.params.items())
    if state == "complete":
        what = f"{metric} {trial.value:.4f} (epoch {trial.user_attrs.get('best_epoch')})"
    elif state == "pruned":
        steps = trial.intermediate_values
        last = max(steps) if steps else None
        how = "stopped by --timeout" if trial.user_attrs.get("stopped") else "pruned"
        what = f"{how} after epoch {last}" + (f" ({steps[last]:.4f})" if last is not None else "")
    elif trial.user_attrs.get("interrupted"):
        what = "interrupted (run again as a new trial)"
    else:
        what = f"failed: {trial.user_attrs.get('error', 'see its train.log')}"
    return f"trial {trial.number}: {what}  [{params}]"
