"""Training curves (seqrec plot, <model-dir>/curves.png) and the TensorBoard sink, on real runs.

One module-scoped pair of real trainings on the bundled sample (GRU4Rec 2 epochs; BERT4Rec 2
epochs, validated only on epoch 2 with --valid-every 2) feeds every test; the pictures are
checked through the data of the figure's lines, the event files through TensorBoard's own reader.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from conftest import REPO, invoke
from typer.testing import CliRunner

from seqrec_cli import plots
from seqrec_cli.errors import BadInputError, SeqrecError
from seqrec_cli.extras import MissingExtraError, require

SAMPLE = REPO / "data" / "sample"
GRU = ["--epochs", 2, "--hidden-size", 32, "--n-sample", 64, "--batch-size", 64, "--log-every", 20]
BERT = ["--epochs", 2, "--max-len", 20, "--hidden-size", 16, "--layers", 1, "--intermediate-size", 32,
        "--batch-size", 64, "--log-every", 10, "--valid-every", 2]  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Two real training runs on the sample, through the CLI."""
    root = tmp_path_factory.mktemp("runs")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster on a busy 2-core machine
    try:
        runner = CliRunner()
        for name, model, extra in (("gru", "gru4rec", GRU), ("bert", "bert4rec", BERT)):
            result = invoke(runner, "train", model, "--train-dir", SAMPLE, "--model-dir", root / name, *extra)
            assert result.exit_code == 0, result.output
    finally:
        torch.set_num_threads(before)
    return {"gru": root / "gru", "bert": root / "bert"}


def _records(folder: Path, event: str) -> list[dict]:
    lines = (folder / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [r for r in map(json.loads, lines) if r["event"] == event]


def _line(fig, gid: str):
    found = [line for ax in fig.axes for line in ax.lines if line.get_gid() == gid]
    assert len(found) == 1, (gid, [line.get_gid() for ax in fig.axes for line in ax.lines])
    return found[0]


def _gids(fig) -> set[str]:
    return {line.get_gid() for ax in fig.axes for line in ax.lines if line.get_gid()}


def _one_line_error(result, *needles) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    return err[0]


# ---------------------------------------------------------------- seqrec plot


def test_plot_one_run_png(runs, runner, tmp_path):
    gru = runs["gru"]
    out = tmp_path / "g.png"
    result = invoke(runner, "plot", gru, "--output", out)
    assert result.exit_code == 0, result.output
    best = json.loads((gru / "run.json").read_text())["best"]
    assert result.stdout.splitlines() == [
        f"{gru}: 2 epochs, best epoch {best['epoch']} (hr@20 {best['value']:.4f})",
        f"wrote {out}",
    ]
    import matplotlib.image

    assert matplotlib.image.imread(out).shape[:2] == (484, 1210)  # 11 x 4.4 inches at 110 dpi

    fig, (run,) = plots.plot_runs([gru], tmp_path / "again.png")
    epochs, steps = _records(gru, "epoch"), _records(gru, "step")
    assert len(epochs) == 2 and len(steps) >= 2 * 5  # 345 steps per epoch, a record every 20
    loss = _line(fig, "run0-train-loss")
    assert list(loss.get_xdata()) == [1, 2]
    assert list(loss.get_ydata()) == [r["train_loss"] for r in epochs]
    step_loss = _line(fig, "run0-step-loss")
    assert len(step_loss.get_xdata()) == len(steps)
    assert list(step_loss.get_ydata()) == [r["loss"] for r in steps]
    x = list(step_loss.get_xdata())
    assert x == sorted(x) and 0 < x[0] and x[-1] <= 2  # placed within their epochs
    valid = _line(fig, "run0-valid")  # the sample is leave-one-out: GRU4Rec picks its best by hr@20
    assert list(valid.get_xdata()) == [1, 2]
    assert list(valid.get_ydata()) == [r["valid"]["hr@20"] for r in epochs]
    star = _line(fig, "run0-best")
    assert list(star.get_xdata()) == [best["epoch"]] and list(star.get_ydata()) == [best["value"]]
    loss_ax, metric_ax = fig.axes[:2]
    assert "HR@20" in metric_ax.get_ylabel() and "0-1" in metric_ax.get_ylabel()
    assert loss_ax.get_xlabel() == "epoch" and "nats per target" in loss_ax.get_ylabel()
    step_axis = [c for ax in fig.axes for c in ax.child_axes if "global step" in c.get_xlabel()]
    assert len(step_axis) == 1  # the steps' second axis
    title = fig.get_suptitle()
    assert "gru4rec on sample" in title and "validation protocol: full" in title
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["gru"]  # one run: its folder
    assert run.protocol == "full" and run.best == best


def test_plot_overlays_two_runs(runs, runner, tmp_path):
    gru, bert = runs["gru"], runs["bert"]
    result = invoke(runner, "plot", gru, bert, "-o", tmp_path / "both.png")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"wrote {tmp_path / 'both.png'}"
    assert (tmp_path / "both.png").stat().st_size > 10_000

    fig, hist = plots.plot_runs([gru, bert], tmp_path / "both2.png")
    assert _gids(fig) == {f"run{i}-{k}" for i in (0, 1) for k in ("train-loss", "step-loss", "valid", "best")}
    assert len(_line(fig, "run1-train-loss").get_xdata()) == 2
    assert len(_line(fig, "run1-step-loss").get_xdata()) == len(_records(bert, "step"))
    # --valid-every 2: epoch 1 was not validated (valid: null), so the line has one point
    bert_epochs = _records(bert, "epoch")
    assert bert_epochs[0]["valid"] is None
    valid = _line(fig, "run1-valid")
    assert list(valid.get_xdata()) == [2] and list(valid.get_ydata()) == [bert_epochs[1]["valid"]["ndcg@10"]]
    # the runs picked their best epochs by different metrics (hr@20, ndcg@10): ndcg@10 is drawn for both
    assert list(_line(fig, "run0-valid").get_ydata()) == [r["valid"]["ndcg@10"] for r in _records(gru, "epoch")]
    assert "NDCG@10" in fig.axes[1].get_ylabel()
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0].startswith("gru4rec, ") and labels[1].startswith("bert4rec, ")
    assert "batch_size=64" in labels[0] or "hidden_size=32" in labels[0]  # settings, not folder names
    assert "gru4rec / bert4rec on sample" in fig.get_suptitle()
    assert [len(h.epochs) for h in hist] == [2, 2]


def test_plot_svg(runs, runner, tmp_path):
    out = tmp_path / "pictures" / "curves.svg"
    result = invoke(runner, "plot", runs["gru"], runs["bert"], "--output", out, "--metric", "mrr")
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    root = ET.fromstring(text.encode())
    assert root.tag.endswith("svg")
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    assert {"run0-train-loss", "run0-valid", "run1-train-loss", "run1-valid", "run1-best"} <= ids
    assert sorted(p.name for p in out.parent.iterdir()) == ["curves.svg"]  # no temporary file left


def test_plot_missing_metric_is_one_error_line(runs, runner, tmp_path):
    out = tmp_path / "x.png"
    result = invoke(runner, "plot", runs["gru"], "--metric", "ndcg@5", "-o", out)
    line = _one_line_error(result, "'ndcg@5'", "metrics.jsonl")
    assert line.endswith("(available: hr@10, hr@20, ndcg@10, ndcg@20, mrr@10, mrr@20, mrr)")
    assert not out.exists()


def test_plot_defaults_to_model_output(runs, runner, workdir):
    result = invoke(runner, "plot")
    _one_line_error(result, "training log not found: model_output/metrics.jsonl")
    shutil.copytree(runs["gru"], workdir / "model_output")
    result = invoke(runner, "plot")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "wrote curves.png"
    assert (workdir / "curves.png").stat().st_size > 10_000


def test_plot_refuses_other_picture_formats(runs, runner, tmp_path):
    result = invoke(runner, "plot", runs["gru"], "-o", tmp_path / "c.jpg")
    _one_line_error(result, "c.jpg", ".png or .svg")


def test_update_run_curves_never_fails_training(runs, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "run"
    shutil.copytree(runs["gru"], folder)
    assert plots.update_run_curves(folder) == folder / "curves.png"
    assert (folder / "curves.png").stat().st_size > 10_000
    # matplotlib broken: a warning, no exception, the old picture stays
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    assert plots.update_run_curves(folder) is None
    assert "warning: could not draw" in capsys.readouterr().err
    monkeypatch.undo()
    # no log yet: the same
    assert plots.update_run_curves(tmp_path / "empty") is None
    assert "training log not found" in capsys.readouterr().err
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


def _history(name: str, model: str = "gru4rec", **train) -> plots.RunHistory:
    config = {"model": model, "model_config": {"n_items": 240, "hidden_size": 32},
              "train_config": {"lr": 0.1, "batch_size": 64, **train}}  # fmt: skip
    return plots.RunHistory(folder=Path("runs") / name, model=model, dataset="sample", config=config)


def test_legend_names_the_settings_that_differ():
    assert plots.run_labels([_history("a", lr=0.1), _history("b", lr=0.05)]) == ["lr=0.1", "lr=0.05"]
    assert plots.run_labels([_history("a"), _history("b", seed=3)]) == ["a", "seed=3"]
    assert plots.run_labels([_history("a"), _history("b")]) == ["a", "b"]  # nothing differs: folders
    assert plots.run_labels([_history("a")]) == ["a"]
    many = dict(lr=0.3, batch_size=8, momentum=0.1, dropout=0.2, loss="bpr")
    assert plots.run_labels([_history("a"), _history("b", **many)])[1].endswith(", …")
    other = _history("c", model="bert4rec", lr=0.002, max_len=20)
    assert plots.run_labels([_history("a"), other]) == ["gru4rec, lr=0.1", "bert4rec, lr=0.002"]


def test_read_history_tolerates_a_line_being_written(tmp_path):
    log = tmp_path / "metrics.jsonl"
    step = {"event": "step", "epoch": 1, "step": 5, "loss": 2.0, "targets_per_s": 10.0}
    epoch = {"event": "epoch", "epoch": 1, "step": 8, "train_loss": 1.5, "steps": 8, "valid": None, "best": None}
    log.write_text(json.dumps(step) + "\n" + json.dumps(epoch) + "\n" + '{"event": "st', encoding="utf-8")
    h = plots.read_history(tmp_path)
    assert h.epochs == [1] and h.step_steps == [5] and h.valid == [None]
    assert h.step_positions() == [5 / 8]
    assert plots.choose_metric([h]) is None  # never validated: the loss panel only
    fig = plots.draw_curves([h])
    assert _gids(fig) == {"run0-train-loss", "run0-step-loss"}
    with pytest.raises(SeqrecError, match="available: none"):
        plots.choose_metric([h], "ndcg@10")
    log.write_text('{"event": "st\n' + json.dumps(epoch) + "\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"metrics.jsonl:1: not a JSON record"):
        plots.read_history(tmp_path)


# ---------------------------------------------------------------- TensorBoard


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})  # 0: keep every event
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_tensorboard_takes_the_loop_records(runs, tmp_path):
    from seqrec_cli.tensorboard import TensorBoardSink, default_log_dir

    records = [json.loads(line) for line in (runs["bert"] / "metrics.jsonl").read_text().splitlines()]
    log_dir = default_log_dir(tmp_path)
    assert log_dir == tmp_path / "tensorboard"
    with TensorBoardSink(log_dir) as sink:
        for rec in records:
            sink.write({**rec, "lr": 0.002} if rec["event"] == "step" else rec)
    got = _scalars(log_dir)
    steps = [r for r in records if r["event"] == "step"]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert [s for s, _ in got["train/loss"]] == [r["step"] for r in steps]
    assert [v for _, v in got["train/loss"]] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    assert [s for s, _ in got["train/lr"]] == [r["step"] for r in steps]
    assert len(got["train/targets_per_s"]) == len(steps)
    assert got["epoch/epoch"] == [(epochs[0]["step"], 1.0), (epochs[1]["step"], 2.0)]
    assert [v for _, v in got["epoch/train_loss"]] == pytest.approx([r["train_loss"] for r in epochs], rel=1e-6)
    # --valid-every 2: only epoch 2 has validation figures, each metric at that epoch's last step
    valid = epochs[1]["valid"]
    for key, value in valid.items():
        assert got[f"valid/{key}"] == [(epochs[1]["step"], pytest.approx(value, rel=1e-6))]
    assert len(got["epoch/valid_seconds"]) == 1


def _loop_records(epochs: range, steps_per_epoch: int = 10, log_every: int = 5, loss: float = 1.0) -> list[dict]:
    """Records shaped as the training loop writes them (step records every log_every steps)."""
    out = []
    for e in epochs:
        first = (e - 1) * steps_per_epoch
        for s in range(first + log_every, first + steps_per_epoch + 1, log_every):
            out.append({"event": "step", "epoch": e, "step": s, "loss": loss, "targets_per_s": 100.0, "lr": [0.1, 0.01]})
        out.append({"event": "epoch", "epoch": e, "step": first + steps_per_epoch, "train_loss": loss, "steps": steps_per_epoch,
                    "targets": 640, "seconds": 1.0, "targets_per_s": 640.0, "valid": {"ndcg@10": loss / 10},
                    "valid_seconds": 0.1, "best": None})  # fmt: skip
    return out


def _next_second() -> None:
    """Event files are named by the second they were opened in; a resumed run opens its own later."""
    time.sleep(1.05 - time.time() % 1)


def test_tensorboard_resume_continues_without_duplicate_steps(tmp_path):
    from seqrec_cli.tensorboard import TensorBoardSink

    log_dir = tmp_path / "tb"
    first = _loop_records(range(1, 3), loss=2.0)  # epochs 1-2, checkpoint at step 20
    crashed = [r for r in _loop_records(range(3, 4), loss=9.0) if r["event"] == "step"]  # epoch 3, killed
    with TensorBoardSink(log_dir) as sink:
        for rec in first + crashed:
            sink.write(rec)
    _next_second()
    with TensorBoardSink(log_dir, start_step=20) as sink:  # --resume from epoch_2 (global step 20)
        for rec in _loop_records(range(3, 5), loss=1.0):
            sink.write(rec)
    got = _scalars(log_dir)
    assert got["train/loss"] == [(s, 2.0) for s in (5, 10, 15, 20)] + [(s, 1.0) for s in range(25, 41, 5)]
    assert got["epoch/epoch"] == [(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]
    assert [s for s, _ in got["valid/ndcg@10"]] == [10, 20, 30, 40]
    assert [s for s, _ in got["train/lr/0"]] == [5, 10, 15, 20, 25, 30, 35, 40]  # two parameter groups
    assert [v for _, v in got["train/lr/1"]] == pytest.approx([0.01] * 8)
    assert len(list(log_dir.iterdir())) == 2  # one event file per writer, nothing rewritten

    _next_second()
    with TensorBoardSink(log_dir) as sink:  # --overwrite: a new run from step 0 hides the old one
        for rec in _loop_records(range(1, 2), loss=3.0):
            sink.write(rec)
    got = _scalars(log_dir)
    assert got["train/loss"] == [(5, 3.0), (10, 3.0)]
    assert got["epoch/epoch"] == [(10, 1.0)]


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=cwd,
                          timeout=120, env=env)  # fmt: skip


def test_tensorboard_missing_is_one_error_line(tmp_path):
    """Without the tensorboard package the sink fails through the CLI's error path: one line."""
    proc = _python(
        """
        import sys
        sys.modules["tensorboard"] = None  # as if not installed: importing it raises ImportError
        from seqrec_cli.cli import app
        from seqrec_cli.tensorboard import TensorBoardSink

        @app.command("tb-probe", help="probe")
        def probe() -> None:
            TensorBoardSink("tb")

        app(["tb-probe"], prog_name="seqrec")
        """,
        tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "Error: --tensorboard needs the optional package tensorboard, which could not be imported "
        "(import of tensorboard halted; None in sys.modules); install it with: pip install 'seqrec[tensorboard]'"
    ]
    assert not (tmp_path / "tb").exists()


def test_require_names_the_extra(tmp_path):
    assert require("json", "export").dumps([1]) == "[1]"
    proc = _python(
        """
        import sys
        sys.modules["optuna"] = None
        from seqrec_cli.extras import require
        require("optuna", "tune", "seqrec tune")
        """,
        tmp_path,
    )
    assert proc.returncode == 1
    assert "MissingExtraError: seqrec tune needs the optional package optuna" in proc.stderr
    assert "pip install 'seqrec[tune]'" in proc.stderr
    with pytest.raises(MissingExtraError, match=r"pip install 'seqrec\[export\]'") as info:
        require("seqrec_no_such_module", "export", "seqrec export")
    assert isinstance(info.value, SeqrecError) and info.value.extra == "export"


def test_help_imports_neither_matplotlib_nor_torch():
    proc = _python(
        """
        import sys
        from seqrec_cli.cli import app
        for args in (["--help"], ["plot", "--help"]):
            try:
                app(args, prog_name="seqrec")
            except SystemExit as exc:
                assert exc.code in (0, None), exc.code
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "matplotlib", "tensorboard"))
        assert not heavy, heavy
        print("ok")
        """,
        REPO,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.rstrip().endswith("ok")
