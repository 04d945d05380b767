"""Training curves: loss and the validation metric per epoch, one line per run, PNG or SVG.

Everything is read from what training leaves in a model folder (docs/formats.md):
``metrics.jsonl`` (step and epoch records), ``run.json`` (model, data set, best epoch) and the
last checkpoint's ``config.json`` (the settings, from which the legend and the validation
protocol come). Several folders are drawn overlaid in one picture (the "which setting won"
picture); the legend names each run by the settings that differ between them.

Drawn with matplotlib's Agg canvas on a ``Figure`` of its own (no pyplot, no GUI, no global
state), and matplotlib is imported only when a picture is drawn, so ``seqrec --help`` stays light.
The training loop calls :func:`update_run_curves` after every epoch to keep
``<model-dir>/curves.png`` current; ``seqrec plot`` calls :func:`plot_runs`.
"""

from __future__ import annotations

import dataclasses

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import formats
from .checkpoint import list_epochs, read_run
from .console import check_ctrl_c, note
from .errors import BadInputError, MissingInputError, SeqrecError
from .fileio import atomic_path

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

CURVES_FILE = "curves.png"  # <model-dir>/curves.png, redrawn by training after every epoch
PICTURE_FORMATS = (".png", ".svg")  # by the output file's extension
DPI = 110  # PNG resolution: an 11 x 4.4 inch figure -> 1210 x 484 pixels

# the default metric when runs picked their best epoch by different ones: the first all runs have
METRIC_PREFERENCE = ("ndcg@10", "recall@20", "hr@20", "hr@10", "ndcg@20", "mrr@20", "mrr")
MAX_LEGEND_SETTINGS = 4  # differing settings named per run; more are shown as "…"
_NOT_SETTINGS = {"n_items"}  # config entries that follow from the data, not a choice
_LAST_IN_LEGEND = {"epochs", "seed"}  # named after the other differing settings
_NATS_LOSSES = {None, "ce", "sampled-ce"}  # losses logged as nats per target (BERT4Rec: always CE)


@dataclass
class RunHistory:
    """One model folder's training history, as logged."""

    folder: Path
    model: str | None = None
    dataset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the last checkpoint's config.json, {} if none
    epochs: list[int] = field(default_factory=list)  # epochs with an epoch record, ascending
    epoch_end_steps: list[int] = field(default_factory=list)  # global step at the end of each epoch
    epoch_lengths: list[int] = field(default_factory=list)  # optimizer steps in each epoch
    train_loss: list[float] = field(default_factory=list)  # mean training loss per target, each epoch
    valid: list[dict[str, float] | None] = field(default_factory=list)  # None: not validated (--valid-every)
    step_steps: list[int] = field(default_factory=list)  # global step of each step record
    step_epochs: list[int] = field(default_factory=list)  # its epoch
    step_loss: list[float] = field(default_factory=list)  # mean loss per target over the last --log-every steps
    best: dict[str, Any] | None = None  # {"epoch", "metric", "value"}: the best validation epoch so far
    protocol: str = "full"  # validation protocol label: full | full+filter-seen

    @property
    def name(self) -> str:
        return self.folder.name or str(self.folder)

    def metric_keys(self) -> list[str]:
        """Every validation metric logged, in the order the records give them."""
        keys: dict[str, None] = {}
        for v in self.valid:
            keys.update(dict.fromkeys(v or {}))
        return list(keys)

    def metric_points(self, key: str) -> tuple[list[int], list[float]]:
        """(epochs, values) of ``key`` on the validated epochs only."""
        pairs = [(e, v[key]) for e, v in zip(self.epochs, self.valid) if v and v.get(key) is not None]
        return [e for e, _ in pairs], [float(x) for _, x in pairs]

    def step_positions(self) -> list[float]:
        """Each step record's place on the epoch axis: epoch e spans (e-1, e], steps spread evenly."""
        ends = dict(zip(self.epochs, self.epoch_end_steps))
        lengths = dict(zip(self.epochs, self.epoch_lengths))
        fallback = self.epoch_lengths[-1] if self.epoch_lengths else max(self.step_steps, default=1)
        xs = []
        for e, s in zip(self.step_epochs, self.step_steps):
            start = ends[e] - lengths[e] if e in ends else ends.get(e - 1, 0)
            n = lengths.get(e) or fallback or 1
            xs.append(e - 1 + min(max((s - start) / n, 0.0), 1.0))
        return xs


def read_history(folder: Path | str) -> RunHistory:
    """Read a model folder's ``metrics.jsonl`` (+ ``run.json`` and the last ``config.json``).

    A record repeated for the same epoch or step (a log appended to by hand) keeps its last copy;
    an unfinished last line (training is writing it) is skipped. Raises SeqrecError when the log
    is missing, malformed, or holds no training record yet.
    """
    folder = Path(folder)
    path = folder / formats.METRICS_FILE
    if not path.is_file():
        raise MissingInputError(path, "seqrec train ...", what="training log")
    lines = path.read_text(encoding="utf-8").splitlines()
    epochs: dict[int, dict[str, Any]] = {}
    steps: dict[int, dict[str, Any]] = {}
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines):
                continue  # being written right now
            raise BadInputError(path, "not a JSON record", line=i) from None
        if not isinstance(rec, dict):
            raise BadInputError(path, "not a JSON object", line=i)
        try:
            if rec.get("event") == "epoch":
                epochs[int(rec["epoch"])] = rec
            elif rec.get("event") == "step":
                steps[int(rec["step"])] = rec
        except (KeyError, TypeError, ValueError):
            raise BadInputError(path, f"{rec.get('event')} record without a valid epoch/step", line=i) from None
    if not epochs and not steps:
        raise SeqrecError(f"{path}: no training record yet (the first is written after --log-every steps)")

    record = read_run(folder)
    run: dict[str, Any] = dataclasses.asdict(record) if record is not None else {}
    last = list_epochs(folder)
    config: dict[str, Any] = {}
    if last:
        cfg_file = formats.checkpoint_dir(folder, last[-1]) / formats.CONFIG_FILE
        try:
            config = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            config = {}  # the settings only label the picture; the curves do not need them
    h = RunHistory(
        folder=folder,
        model=run.get("model") or config.get("model"),
        dataset=run.get("dataset") or config.get("data", {}).get("dataset"),
        config=config,
    )
    for e in sorted(epochs):
        rec = epochs[e]
        h.epochs.append(e)
        h.epoch_end_steps.append(int(rec.get("step", 0)))
        h.epoch_lengths.append(int(rec.get("steps", 0)))
        h.train_loss.append(float(rec["train_loss"]) if rec.get("train_loss") is not None else float("nan"))
        h.valid.append(rec.get("valid") or None)
        if rec.get("best"):
            h.best = rec["best"]
    for s in sorted(steps):
        rec = steps[s]
        if rec.get("loss") is None:
            continue
        h.step_steps.append(s)
        h.step_epochs.append(int(rec.get("epoch", 1)))
        h.step_loss.append(float(rec["loss"]))
    if h.best is None or h.best.get("epoch") is None:
        h.best = run.get("best") if (run.get("best") or {}).get("epoch") in h.epochs else None
    h.protocol = _protocol(config, [epochs[e] for e in sorted(epochs)])
    return h


def _protocol(config: dict[str, Any], epoch_records: list[dict[str, Any]]) -> str:
    """The validation protocol label: from the records if they carry one, else from the settings."""
    for rec in reversed(epoch_records):
        for key in ("valid_protocol", "protocol"):
            if rec.get(key):
                return str(rec[key])
    filter_seen = bool(config.get("train_config", {}).get("valid_filter_seen"))
    return "full+filter-seen" if filter_seen else "full"


def choose_metric(runs: Sequence[RunHistory], metric: str | None = None) -> str | None:
    """The validation metric to draw.

    ``metric`` given: every run must have logged it, else one SeqrecError listing the metrics
    the first run without it has. Otherwise: the metric the runs picked their best epoch by
    (BERT4Rec ndcg@10, GRU4Rec recall@20 or hr@20) when they agree, else the first of
    :data:`METRIC_PREFERENCE` that every run has. None when no run was ever validated.
    """
    validated = [r for r in runs if r.metric_keys()]
    if metric is not None:
        metric = metric.strip().lower()
        for r in runs:
            keys = r.metric_keys()
            if metric not in keys:
                available = ", ".join(keys) if keys else "none: no epoch was validated"
                raise SeqrecError(f"no validation metric {metric!r} in {r.folder / formats.METRICS_FILE} (available: {available})")
        return metric
    if not validated:
        return None
    common = [k for k in validated[0].metric_keys() if all(k in r.metric_keys() for r in validated[1:])]
    picked = {(r.best or {}).get("metric") for r in validated} - {None}
    if len(picked) == 1 and next(iter(picked)) in common:
        return next(iter(picked))
    for k in METRIC_PREFERENCE:
        if k in common:
            return k
    if common:
        return common[0]
    listing = "; ".join(f"{r.name}: {', '.join(r.metric_keys())}" for r in validated)
    raise SeqrecError(f"the runs share no validation metric ({listing})")


def run_settings(run: RunHistory) -> dict[str, Any]:
    """A run's settings as one flat dict: model, stage, data set, then model_config and train_config."""
    cfg = run.config
    flat: dict[str, Any] = {"model": run.model or cfg.get("model")}
    if cfg.get("stage"):
        flat["stage"] = cfg["stage"]
    flat["dataset"] = run.dataset
    for section in ("model_config", "train_config"):
        for k, v in (cfg.get(section) or {}).items():
            if k not in _NOT_SETTINGS:
                flat[k if k not in flat else f"{section.split('_')[0]}.{k}"] = v
    return flat


def run_labels(runs: Sequence[RunHistory]) -> list[str]:
    """Legend labels: each run's settings that differ between the runs, else its folder name.

    Runs of different models are told apart by the model name plus the shared settings (lr,
    batch_size, ...) that differ; one run, or runs whose settings are all equal, by folder name.
    """
    if len(runs) < 2:
        return [r.name for r in runs]
    settings = [run_settings(r) for r in runs]
    keys = list(dict.fromkeys(k for s in settings for k in s))
    if len({s.get("model") for s in settings}) > 1:
        keys = ["model"] + [k for k in keys if k != "model" and all(k in s for s in settings)]
    differing = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True) for s in settings}) > 1]
    differing.sort(key=lambda k: k in _LAST_IN_LEGEND)  # the x axis already shows the epochs
    labels = []
    for s, r in zip(settings, runs):
        parts = [str(s[k]) if k == "model" else f"{k}={_fmt(s[k])}" for k in differing if k in s]
        label = ", ".join(parts[:MAX_LEGEND_SETTINGS]) + (", …" if len(parts) > MAX_LEGEND_SETTINGS else "")
        labels.append(label or r.name)
    labels = [  # runs with the same settings: add the folder name
        f"{label} ({r.name})" if labels.count(label) > 1 and label != r.name else label
        for label, r in zip(labels, runs)
    ]
    if len(set(labels)) < len(labels):
        labels = [f"{label} ({r.folder})" for label, r in zip(labels, runs)]
    return labels


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def metric_label(key: str) -> str:
    """hr@10 -> HR@10, ndcg@10 -> NDCG@10, mrr -> MRR; recall@20 as the session literature writes it."""
    name, _, k = key.partition("@")
    label = {"hr": "HR", "ndcg": "NDCG", "mrr": "MRR", "recall": "recall"}.get(name, name)
    return f"{label}@{k}" if k else label


def _joined(values: Sequence[Any]) -> str:
    distinct = list(dict.fromkeys(str(v) for v in values if v))
    return " / ".join(distinct) if distinct else "?"


def draw_curves(runs: Sequence[RunHistory], metric: str | None = None, labels: Sequence[str] | None = None) -> Figure:
    """The picture of ``runs`` as a matplotlib Figure (Agg canvas; nothing written).

    Left: training loss per epoch (mean per target, dots) and per logged step window (thin line),
    with the global step on a second axis when the runs agree on it. Right: the validation metric
    on the validated epochs, the best epoch starred. One colour per run. Every line carries a gid
    ``run<i>-train-loss``, ``run<i>-step-loss``, ``run<i>-valid``, ``run<i>-best`` (also the
    element ids in an SVG), so its data can be read back.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if not runs:
        raise SeqrecError("no run to draw")
    metric = choose_metric(runs, metric)
    labels = list(labels) if labels is not None else run_labels(runs)
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    FigureCanvasAgg(fig)
    if metric is not None:
        ax_loss, ax_metric = fig.subplots(1, 2)
    else:
        ax_loss, ax_metric = fig.subplots(1, 1), None

    handles = []
    for i, (run, label) in enumerate(zip(runs, labels)):
        color = f"C{i % 10}"
        if run.step_steps:
            ax_loss.plot(
                run.step_positions(), run.step_loss, color=color, lw=0.8, alpha=0.4, gid=f"run{i}-step-loss"
            )
        (line,) = ax_loss.plot(
            run.epochs, run.train_loss, color=color, lw=1.8, marker="o", ms=4, label=label, gid=f"run{i}-train-loss"
        )
        handles.append(line)
        if ax_metric is None or metric is None:
            continue
        xs, ys = run.metric_points(metric)
        if xs:
            ax_metric.plot(xs, ys, color=color, lw=1.8, marker="o", ms=4, gid=f"run{i}-valid")
        best = run.best or {}
        if best.get("epoch") in xs:
            value = ys[xs.index(best["epoch"])]
            ax_metric.plot(
                [best["epoch"]], [value], ls="none", marker="*", ms=15, color=color, mec="black", mew=0.6,
                gid=f"run{i}-best", zorder=5,
            )
            ax_metric.annotate(
                f"{value:.4f}", (best["epoch"], value), xytext=(0, 9), textcoords="offset points",
                ha="center", fontsize=8, color=color,
            )

    losses = {(r.config.get("train_config") or {}).get("loss") for r in runs}
    unit = "nats per target" if losses <= _NATS_LOSSES else "per target"
    ax_loss.set_title("training loss: epoch mean (dots), logged steps (thin)", fontsize=10)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel(f"training loss ({unit})")
    ax_loss.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.grid(alpha=0.3)
    knots = {tuple(zip(r.epochs, r.epoch_end_steps)) for r in runs if r.step_steps and r.epochs}
    if len(knots) == 1 and all(r.epochs for r in runs):
        ep = np.array([0.0] + [float(e) for e, _ in next(iter(knots))])
        st = np.array([0.0] + [float(s) for _, s in next(iter(knots))])
        if np.all(np.diff(ep) > 0) and np.all(np.diff(st) > 0):
            top = ax_loss.secondary_xaxis("top", functions=(lambda x: _interp(x, ep, st), lambda x: _interp(x, st, ep)))
            top.set_xlabel("global step (optimizer updates)", fontsize=9)
            top.tick_params(labelsize=8)

    if ax_metric is not None and metric is not None:
        shown = metric_label(metric)
        ax_metric.set_title(f"validation {shown} on the validated epochs", fontsize=10)
        ax_metric.set_xlabel("epoch")
        ax_metric.set_ylabel(f"{shown} on the valid split (0-1, higher is better)")
        ax_metric.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax_metric.set_xlim(ax_loss.get_xlim())
        ax_metric.margins(y=0.15)  # room for the starred value's label
        ax_metric.grid(alpha=0.3)
        by = _joined([(r.best or {}).get("metric") for r in runs])
        star = Line2D([], [], ls="none", marker="*", ms=12, color="0.6", mec="black", mew=0.6)
        ax_metric.legend([star], [f"best epoch (picked by {by})"], loc="best", fontsize=8)

    fig.suptitle(
        f"{_joined([r.model for r in runs])} on {_joined([r.dataset for r in runs])} · "
        f"validation protocol: {_joined([r.protocol for r in runs])}",
        fontsize=11,
    )
    # as many legend entries per row as fit the figure's width (about 160 characters at this size)
    widest = max((len(label) for label in labels), default=1)
    ncols = max(1, min(len(runs), 3, 160 // (widest + 6)))
    fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=9, frameon=False)
    return fig


def _interp(x: Any, xp: Any, fp: Any) -> Any:
    """Piecewise-linear map through the knots (xp, fp), continued linearly past both ends."""
    import numpy as np

    x = np.asarray(x, dtype=float)
    y = np.interp(x, xp, fp)
    lo = (fp[1] - fp[0]) / (xp[1] - xp[0])
    hi = (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * lo, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * hi, y)


def save_figure(fig: Figure, output: Path | str) -> Path:
    """Write ``fig`` as PNG or SVG (by extension) under a temporary name, then rename it into place."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in PICTURE_FORMATS:
        raise SeqrecError(f"{output}: the picture must end in {' or '.join(PICTURE_FORMATS)}")
    with atomic_path(output, suffix=suffix) as tmp:
        fig.savefig(tmp, format=suffix[1:], dpi=DPI)
    return output


def plot_runs(run_dirs: Sequence[Path | str], output: Path | str, metric: str | None = None) -> tuple[Figure, list[RunHistory]]:
    """Read each model folder, draw them overlaid and save the picture to ``output`` (.png/.svg).

    Returns the Figure (its lines hold the plotted data) and the histories read.
    """
    output = Path(output)
    if output.suffix.lower() not in PICTURE_FORMATS:
        raise SeqrecError(f"{output}: the picture must end in {' or '.join(PICTURE_FORMATS)}")
    runs = [read_history(d) for d in run_dirs]
    fig = draw_curves(runs, metric)
    save_figure(fig, output)
    return fig, runs


def update_run_curves(model_dir: Path | str, metric: str | None = None) -> Path | None:
    """Redraw ``<model_dir>/curves.png`` from the folder's log; for the training loop, after each epoch.

    Never fails training: any problem (matplotlib missing or broken, an unreadable log, a full
    disk) becomes one warning on stderr and None is returned. Takes a fraction of a second.
    """
    dest = Path(model_dir) / CURVES_FILE
    try:
        plot_runs([model_dir], dest, metric)
        check_ctrl_c()  # a Ctrl-C while matplotlib freed its objects may have been dropped there
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - a picture must never stop a training run
        note(f"warning: could not draw {dest}: {type(exc).__name__}: {exc}")
        return None
    return dest
