"""seqrec tune on the bundled sample: tiny trials through the real CLI, the best trial as a --params
file, a resume after the tuning process is killed (SIGKILL), parallel workers, pruning, and
search-space files checked against the models' declared hyperparameters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
import torch
from conftest import REPO, invoke
from helpers import env, error_line, seqrec_cmd, wait_for

from seqrec_cli.threads import default_threads
from seqrec_cli import tune as tuning
from seqrec_cli.hparams import params_of
from seqrec_cli.models import REGISTRY

SAMPLE = REPO / "data" / "sample"
# SASRec, small enough that an epoch on the sample takes a second or two
TINY = ["--epochs", 2, "--hidden-size", 16, "--layers", 1, "--max-len", 10, "--batch-size", 256, "--valid-every", 1]
SPACE = {
    "_about": "two dimensions, as a user would write them",
    "lr": {"low": 0.001, "high": 0.01, "log": True},
    "dropout": {"low": 0.0, "high": 0.3, "step": 0.1},
}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _space(folder: Path, body=SPACE, name="space.json") -> Path:
    path = folder / name
    path.write_text(body if isinstance(body, str) else json.dumps(body), encoding="utf-8")
    return path


def _tune_args(folder: Path, trials: int, *extra) -> list:
    return ["tune", "sasrec", "--train-dir", SAMPLE, "--trials", trials, "--space", folder / "space.json",
            "--output-dir", folder / "tune", *TINY, *extra]  # fmt: skip


def _study(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name=tuning.STUDY_NAME, storage=f"sqlite:///{folder / 'tune' / 'study.db'}")


def _states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


def _is_run(folder: Path, epochs: int) -> None:
    """A normal training run's folder: run.json, metrics.jsonl, the epoch checkpoints, the trial's log."""
    assert (folder / "run.json").is_file() and (folder / "train.log").is_file()
    assert sorted(p.name for p in folder.glob("epoch_*")) == [f"epoch_{e}" for e in range(1, epochs + 1)]
    records = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == list(range(1, epochs + 1))


# ---------------------------------------------------------------------------------------------- three trials
@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune")
    _space(folder)
    from typer.testing import CliRunner

    result = invoke(CliRunner(), *_tune_args(folder, 3))
    assert result.exit_code == 0, result.output
    return folder, result


@pytest.mark.slow
def test_three_tiny_trials_and_the_best_as_a_params_file(tuned):
    folder, result = tuned
    out = result.stdout
    assert "seqrec tune sasrec: 3 trials, best by ndcg@10 on the validation split of" in out
    assert "search space (" in out and "lr log-uniform [0.001, 0.01]; dropout uniform [0, 0.3] step 0.1" in out
    assert "fixed: --hidden-size 16, --layers 1, --max-len 10, --valid-every 1, --epochs 2, --batch-size 256;" in out
    study = _study(folder)
    assert _states(study) == ["COMPLETE"] * 3
    for t in study.get_trials():
        _is_run(folder / "tune" / f"trial_{t.number}", 2)
        assert t.user_attrs["folder"] == str(folder / "tune" / f"trial_{t.number}")
        assert sorted(t.params) == ["dropout", "lr"] and 0.001 <= t.params["lr"] <= 0.01
        assert sorted(t.intermediate_values) == [1, 2]  # reported after each validated epoch
        assert t.value == max(t.intermediate_values.values())
        records = (folder / "tune" / f"trial_{t.number}" / "metrics.jsonl").read_text().splitlines()
        logged = [json.loads(r)["valid"]["ndcg@10"] for r in records if json.loads(r)["event"] == "epoch"]
        assert logged == pytest.approx([t.intermediate_values[1], t.intermediate_values[2]])
        assert f"trial {t.number}: ndcg@10 {t.value:.4f} (epoch {t.user_attrs['best_epoch']} of 2" in out
    best = max(study.get_trials(), key=lambda t: t.value)
    params = json.loads((folder / "tune" / "best_params.json").read_text())
    about = params.pop("_about")
    assert f"trial {best.number} of {folder / 'tune' / 'study.db'}" in about and f"ndcg@10 {best.value:.4f}" in about
    fixed = {"hidden_size": 16, "layers": 1, "max_len": 10, "valid_every": 1, "epochs": 2, "batch_size": 256}
    assert params == {**fixed, **best.params}
    assert list(params)[:6] == list(fixed)
    assert f"best: trial {best.number}, ndcg@10 {best.value:.4f}" in out
    assert f"wrote {folder / 'tune' / 'best_params.json'}" in out
    assert f"next: seqrec train sasrec --train-dir {SAMPLE} --params {folder / 'tune' / 'best_params.json'}" in out
    printed = out[out.index("{\n") : out.index("\n}\n") + 2]
    assert json.loads(printed)["lr"] == best.params["lr"]


@pytest.mark.slow
def test_the_best_params_file_retrains_the_best_trial(tuned, runner, workdir):
    folder, _ = tuned
    best = max(_study(folder).get_trials(), key=lambda t: t.value)
    result = invoke(runner, "train", "sasrec", "--train-dir", SAMPLE, "--params", folder / "tune" / "best_params.json",
                    "--model-dir", "again")  # fmt: skip
    assert result.exit_code == 0, result.output
    trial_cfg = json.loads((folder / "tune" / f"trial_{best.number}" / "epoch_2" / "config.json").read_text())
    cfg = json.loads((workdir / "again" / "epoch_2" / "config.json").read_text())
    assert cfg["model_config"] == trial_cfg["model_config"] and cfg["train_config"] == trial_cfg["train_config"]
    assert cfg["metrics"]["valid"]["ndcg@10"] == pytest.approx(best.value, abs=0.02)  # thread counts differ


@pytest.mark.slow
def test_a_finished_study_reruns_nothing_and_refuses_other_settings(tuned, runner):
    folder, _ = tuned
    before = (folder / "tune" / "study.db").stat().st_mtime_ns
    result = invoke(runner, *_tune_args(folder, 3))
    assert result.exit_code == 0, result.output
    assert "study " in result.stdout and "3 of 3 trials finished" in result.stdout
    assert "this run finished 0" in result.stdout and _states(_study(folder)) == ["COMPLETE"] * 3
    args = _tune_args(folder, 4)
    args[args.index("--epochs") + 1] = 3
    line = error_line(invoke(runner, *args), alone=False)
    assert line == (
        f"Error: {folder / 'tune' / 'study.db'} holds a study started with other settings (--epochs); rerun with the "
        "same options (only --trials, --timeout and --n-jobs may change) or use another --output-dir"
    )
    assert len(_study(folder).get_trials()) == 3 and before <= (folder / "tune" / "study.db").stat().st_mtime_ns


# ---------------------------------------------------------------------------------------------- resume
@pytest.mark.slow
def test_a_killed_tuning_run_resumes_and_the_trial_count_adds_up(tmp_path):
    _space(tmp_path)
    args = [str(a) for a in _tune_args(tmp_path, 3)]
    proc = subprocess.Popen(seqrec_cmd(*args), cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        running = wait_for(lambda: (tmp_path / "tune" / "trial_1" / "epoch_1" / "config.json").is_file(), 600, 0.02, proc)
        assert running, proc.communicate()
        proc.send_signal(signal.SIGKILL)  # mid-way through trial 1: trial 0 done, trial 1 half trained
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    study = _study(tmp_path)
    assert _states(study) == ["COMPLETE", "RUNNING"]
    killed = study.get_trials()[1]

    done = subprocess.run(seqrec_cmd(*args), cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "1 of 3 trials finished, 1 interrupted trial(s) to run again (1)" in done.stdout
    study = _study(tmp_path)
    trials = study.get_trials()
    assert _states(study) == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]  # 3 finished, as asked
    assert trials[1].user_attrs["interrupted"] is True
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params == killed.params  # run again, same values
    assert "trial 1: interrupted (run again as a new trial)" in done.stdout
    for n in (0, 2, 3):
        _is_run(tmp_path / "tune" / f"trial_{n}", 2)
    assert (tmp_path / "tune" / "trial_1" / "epoch_1").is_dir()  # the killed trial's partial run stays
    assert (tmp_path / "tune" / "best_params.json").is_file()


# ---------------------------------------------------------------------------------------------- parallel, pruning
@pytest.mark.slow
def test_n_jobs_runs_trials_in_parallel_processes(tmp_path, runner):
    _space(tmp_path)
    result = invoke(runner, *_tune_args(tmp_path, 2, "--n-jobs", 2))
    assert result.exit_code == 0, result.output
    threads = default_threads(2)
    assert f"2 process(es) x {threads} torch thread(s)" in result.stdout
    trials = _study(tmp_path).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    pids = {t.user_attrs["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids
    assert {t.user_attrs["threads"] for t in trials} == {threads}
    assert torch.get_num_threads() == 1  # the test process's setting is left alone
    for t in trials:
        _is_run(tmp_path / "tune" / f"trial_{t.number}", 2)


@pytest.mark.slow
def test_a_pruned_trial_leaves_a_valid_partial_run(tmp_path, runner):
    """Median pruning from the epoch callback: a trial far below the first one at epoch 1 stops there,
    its folder a normal run of one epoch that evaluate reads."""
    _space(tmp_path)
    data_out = tmp_path / "tune"
    data_out.mkdir()
    storage = f"sqlite:///{data_out / 'study.db'}"
    study = optuna.create_study(study_name=tuning.STUDY_NAME, storage=storage, direction="maximize")
    study.enqueue_trial({"lr": 0.01, "dropout": 0.0})
    study.enqueue_trial({"lr": 0.001, "dropout": 0.3})  # learns far less in its first epoch
    space = tuning.load_space(tmp_path / "space.json", REGISTRY["sasrec"])
    entry = REGISTRY["sasrec"]
    values = {p.name: p.default for p in params_of(entry.config) + params_of(entry.train_config)}
    values.update(epochs=3, hidden_size=16, num_layers=1, max_len=10, batch_size=256, valid_every=1)
    setup = tuning.TuneSetup(
        model="sasrec", train_dir=SAMPLE, train_dir_given=SAMPLE, output_dir=data_out, values=values,
        explicit=["epochs"], space=space, space_file=tmp_path / "space.json", metric="ndcg@10", trials=2,
        prune_startup_trials=1,
    )  # fmt: skip
    result = tuning.run_tuning(setup)
    states = _states(_study(tmp_path))
    assert states == ["COMPLETE", "PRUNED"], states
    assert result.counts == {"complete": 1, "pruned": 1}
    pruned = data_out / "trial_1"
    _is_run(pruned, 1)
    assert _study(tmp_path).get_trials()[1].intermediate_values.keys() == {1}
    done = invoke(runner, "evaluate", "--model-dir", pruned, "--output-json", tmp_path / "e.json")
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "e.json").read_text())["epoch"] == 1


def test_the_timeout_stops_a_trial_at_the_end_of_an_epoch():
    class Trial:
        reported: list = []
        attrs: dict = {}

        def report(self, value, step):
            self.reported.append((step, value))

        def should_prune(self):
            return False

        def set_user_attr(self, key, value):
            self.attrs[key] = value

    trial = Trial()
    reporter = tuning._Reporter(trial, "ndcg@10", deadline=time.time() - 1, epochs=3)
    with pytest.raises(optuna.TrialPruned, match="--timeout reached after epoch 1"):
        reporter(1, {"valid": {"ndcg@10": 0.25, "hr@10": 0.5}}, None)
    assert trial.reported == [(1, 0.25)] and trial.attrs == {"stopped": "timeout"} and reporter.best == 0.25
    last = tuning._Reporter(Trial(), "ndcg@10", deadline=time.time() - 1, epochs=3)
    last(3, {"valid": {"ndcg@10": 0.3}}, None)  # the last epoch: the trial simply completes
    assert last.best == 0.3 and not last.stopped


# ---------------------------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("name", list(REGISTRY))
def test_the_shipped_spaces_fit_their_models(name):
    """Every shipped space loads, and random draws from it make valid configs (heads divide the width)."""
    entry = REGISTRY[name]
    space = tuning.load_space(tuning.shipped_space(name), entry)
    assert len(space) >= 5
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    defaults = {p.name: p.default for p in params_of(entry.config)}
    for _ in range(30):
        trial = study.ask()
        chosen = {d.name: d.suggest(trial) for d in space}
        model = {k: chosen.get(k, v) for k, v in defaults.items()}
        entry.config(n_items=10, **model).validate(name)
        study.tell(trial, 0.0)


BAD_SPACES = [
    ({"learning_rate": {"low": 0.1, "high": 1}},
     "unknown parameter(s): learning_rate (not hyperparameters of sasrec; see seqrec train sasrec --help)"),
    ({"dropout": {"low": 0.0, "high": 1.5}}, "dropout: high must be a number in [0, 1), got 1.5"),
    ({"lr": {"low": 0, "high": 0.1}}, "lr: low must be a number > 0, got 0"),
    ({"layers": {"low": 1, "high": 100}}, "layers: high must be an integer from 1 to 64, got 100"),
    ({"layers": {"low": 1.5, "high": 3}}, "layers: low must be an integer from 1 to 64, got 1.5"),
    ({"loss": {"choices": ["ce", "xe"]}}, "loss: choices must be one of ce, sampled-ce, bce, got 'xe'"),
    ({"loss": {"low": 0, "high": 1}}, "loss: --loss is one of ce, sampled-ce, bce: give choices, not a range"),
    ({"lr": {"low": 0.01, "high": 0.001}}, "lr: low (0.01) must be below high (0.001)"),
    ({"lr": {"low": 0.001, "hgih": 0.01}}, "lr: unknown field(s) hgih (a dimension has low, high, step, log, choices)"),
    ({"lr": {"low": 0.001, "high": 0.01, "log": True, "step": 0.001}}, "lr: step and log exclude each other"),
    ({"weight_decay": {"low": 0.0, "high": 0.1, "log": True}}, "weight_decay: a log range needs low > 0, got 0"),
    ({"lr": [0.001, 0.01]}, "lr must be an object: {\"low\": ..., \"high\": ...} or {\"choices\": [...]}, got [0.001, 0.01]"),
    ({"lr": {"choices": []}}, "lr: choices must be a non-empty list, got []"),
    ({"layers": {"low": 1, "high": 3}, "num_layers": {"choices": [1, 2]}}, "num_layers: the same parameter as layers"),
    ({"_about": "only a comment"}, "the search space is empty: name at least one parameter"),
    ([{"lr": 1}], "expected a JSON object: parameter name -> {low, high[, step][, log]} or {choices}"),
]  # fmt: skip


@pytest.mark.parametrize("body,message", BAD_SPACES, ids=[m.split(":")[0] for _, m in BAD_SPACES])
def test_a_bad_space_file_is_one_error_line_naming_file_and_key(runner, workdir, body, message):
    path = _space(workdir, body, "bad.json")
    result = invoke(runner, "tune", "sasrec", "--train-dir", SAMPLE, "--trials", 1, "--space", path)
    assert error_line(result) == f"Error: {path}: {message}"
    assert sorted(p.name for p in workdir.iterdir()) == ["bad.json"]  # nothing else made


def test_space_file_not_json_and_metric_errors(runner, workdir):
    path = _space(workdir, "{\"lr\": ", "broken.json")
    line = error_line(invoke(runner, "tune", "sasrec", "--train-dir", SAMPLE, "--trials", 1, "--space", path))
    assert line.startswith(f"Error: {path}") and "JSON" in line
    line = error_line(invoke(runner, "tune", "sasrec", "--train-dir", SAMPLE, "--trials", 1, "--metric", "auc"))
    assert line.startswith("Error: --metric must be a validation metric: hr@10|20")
    good = _space(workdir, {"lr": {"low": 0.001, "high": 0.01}}, "lr.json")
    line = error_line(invoke(runner, "tune", "sasrec", "--train-dir", SAMPLE, "--trials", 1, "--space", good, "--lr", 0.01),
                      alone=False)  # fmt: skip
    assert line == f"Error: nothing left to search: every parameter of {good} is fixed by the options given"
    assert sorted(p.name for p in workdir.iterdir()) == ["broken.json", "lr.json"]


def test_tune_without_optuna_is_one_error_line(tmp_path):
    code = """
        import sys
        sys.modules["optuna"] = None  # as if not installed
        from seqrec_cli.cli import app
        app(["tune", "sasrec", "--trials", "3"], prog_name="seqrec")
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "Error: seqrec tune needs the optional package optuna, which could not be imported "
        "(import of optuna halted; None in sys.modules); install it with: pip install 'seqrec[tune]'"
    ]
    assert list(tmp_path.iterdir()) == []
