"""Issue 11, kind 9: what ``--resume`` keeps, what may change, and the learning-rate schedule rule.

* Resuming is bit-exact: a run resumed from its last checkpoint ends with the same weights as the
  same run never interrupted (weights, optimizer, schedule and every random stream are restored).
* Only ``--epochs``, ``--patience`` and ``--valid-every`` may change on ``--resume``; any other
  setting is refused.
* ``--epochs`` may change only where the learning rate does not depend on it: GRU4Rec (no
  schedule) and SASRec with a constant rate (with or without warm-up) may be extended, and then
  end exactly where a run planned that long from the start ends. BERT4Rec (train and pretrain)
  and SASRec ``--schedule linear`` decay the rate to 0 at the last planned epoch: another
  ``--epochs`` is refused with one line naming the ``--epochs`` the run was planned with.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import invoke
from helpers import CASES, error_line, snapshot
from typer.testing import CliRunner

GRU = ["gru4rec", "--hidden-size", "8", "--n-sample", "4", "--batch-size", "8"]
BERT = ["bert4rec", "--max-len", "16", "--hidden-size", "16", "--heads", "1", "--layers", "1", "--intermediate-size", "32",
        "--batch-size", "16", "--warmup-steps", "3"]  # fmt: skip
SAS = ["sasrec", "--max-len", "16", "--hidden-size", "16", "--batch-size", "16"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    result = invoke(CliRunner(), "preprocess", "ml-1m", "--input", CASES / "08" / "ratings.dat", "--out-dir", root / "d", "--vocab", root / "v.txt")
    assert result.exit_code == 0, result.output
    return root / "d"


def _train(runner, data, stage, model, model_dir, epochs, *extra):
    return invoke(runner, stage, model[0], "--train-dir", data, "--model-dir", model_dir, "--epochs", epochs, *model[1:], *extra)


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _weights(model_dir, epoch):
    return torch.load(Path(model_dir) / f"epoch_{epoch}" / "model.pt", weights_only=True)


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _epochs_run(model_dir) -> list[dict]:
    lines = (Path(model_dir) / "metrics.jsonl").read_text().splitlines()
    return [{k: r[k] for k in ("epoch", "step", "train_loss", "valid")} for r in map(json.loads, lines) if r["event"] == "epoch"]


def _planned(model_dir, epoch) -> int:
    return json.loads((Path(model_dir) / f"epoch_{epoch}" / "config.json").read_text())["train_config"]["epochs"]


def _schedule_error(given: int, planned: int) -> str:
    return (
        f"Error: --resume with --epochs {given}: the learning rate of this run follows a schedule over --epochs {planned} "
        f"(it decays to 0 at the end); resume with --epochs {planned}, or start a new run"
    )


# ---------------------------------------------------------------- a decaying schedule: refused, and resumed exactly with its own --epochs
def test_bert4rec_stopped_after_epoch_1_of_3(runner, workdir, data):
    _ok(_train(runner, data, "train", BERT, "full", 3))
    shutil.copytree("full", "cut")
    for e in (2, 3):  # as if the run had been stopped after epoch 1
        shutil.rmtree(f"cut/epoch_{e}")
    before = snapshot(workdir / "cut")
    for epochs in (2, 4):
        result = _train(runner, data, "train", BERT, "cut", epochs, "--resume")
        assert error_line(result) == _schedule_error(epochs, 3)
        assert snapshot(workdir / "cut") == before  # nothing trained, nothing lost
    result = _ok(_train(runner, data, "train", BERT, "cut", 3, "--resume"))
    assert "resuming from cut/epoch_1 (epoch 1" in result.output
    assert _same(_weights("cut", 3), _weights("full", 3))  # bit-exact: the same run
    assert _epochs_run("cut") == _epochs_run("full")


@pytest.mark.parametrize(
    ("stage", "model", "extra"),
    [("pretrain", BERT, []), ("train", BERT, []), ("train", SAS, ["--schedule", "linear"]),
     ("train", SAS, ["--schedule", "linear", "--warmup-steps", "2"])],
    ids=["bert4rec-pretrain", "bert4rec", "sasrec-linear", "sasrec-linear-warmup"],
)  # fmt: skip
def test_a_decaying_schedule_cannot_be_extended(runner, workdir, data, stage, model, extra):
    _ok(_train(runner, data, stage, model, "m", 1, *extra))
    before = snapshot(workdir / "m")
    result = _train(runner, data, stage, model, "m", 2, "--resume", *extra)
    assert error_line(result) == _schedule_error(2, 1)
    assert snapshot(workdir / "m") == before


def test_switching_the_schedule_on_resume_is_refused(runner, workdir, data):
    """The rule cannot be dodged by resuming a linear run as a constant one: the schedule is a setting."""
    _ok(_train(runner, data, "train", SAS, "m", 1, "--schedule", "linear"))
    before = snapshot(workdir / "m")
    result = _train(runner, data, "train", SAS, "m", 2, "--resume", "--schedule", "constant")
    assert error_line(result) == (
        f"Error: --resume: the settings differ from those {Path('m/epoch_1')} was trained with; rerun with the same "
        "options (only --epochs, --patience, --valid-every may change) or use a new --model-dir"
    )
    assert snapshot(workdir / "m") == before


# ---------------------------------------------------------------- no schedule over the epochs: extended, ending where a longer run ends
@pytest.mark.parametrize(
    "model, extra",
    [(GRU, []), (SAS, ["--schedule", "constant", "--warmup-steps", "0", "--valid-every", "1"]),
     (SAS, ["--schedule", "constant", "--warmup-steps", "7", "--valid-every", "1"])],
    ids=["gru4rec", "sasrec-constant", "sasrec-constant-warmup"],
)
def test_a_run_extended_from_1_to_2_epochs_equals_a_2_epoch_run(runner, workdir, data, model, extra):
    _ok(_train(runner, data, "train", model, "two", 2, *extra))
    _ok(_train(runner, data, "train", model, "ext", 1, *extra))
    result = _ok(_train(runner, data, "train", model, "ext", 2, "--resume", *extra))
    assert "resuming from ext/epoch_1 (epoch 1" in result.output
    assert _same(_weights("ext", 2), _weights("two", 2))
    assert _epochs_run("ext") == _epochs_run("two")  # the same losses and validation figures, epoch by epoch
    assert (_planned("ext", 1), _planned("ext", 2)) == (1, 2)  # each checkpoint records the --epochs it was trained under


def test_patience_and_valid_every_may_change_other_settings_may_not(runner, workdir, data):
    _ok(_train(runner, data, "train", GRU, "two", 2))
    _ok(_train(runner, data, "train", GRU, "m", 1))
    before = snapshot(workdir / "m")
    for changed in (["--lr", "0.1"], ["--seed", "7"], ["--hidden-size", "16"], ["--n-sample", "8"], ["--session-order", "file"]):
        result = _train(runner, data, "train", GRU, "m", 2, "--resume", *changed)
        assert error_line(result) == (
            f"Error: --resume: the settings differ from those {Path('m/epoch_1')} was trained with; rerun with the same "
            "options (only --epochs, --patience, --valid-every may change) or use a new --model-dir"
        ), changed
        assert snapshot(workdir / "m") == before
    _ok(_train(runner, data, "train", GRU, "m", 2, "--resume", "--patience", "3", "--valid-every", "2"))
    assert _same(_weights("m", 2), _weights("two", 2))  # they change what is validated and when to stop, not the weights
