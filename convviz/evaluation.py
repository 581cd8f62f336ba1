"""Which explanation can you trust? Every faithfulness metric, for many methods at once.

:func:`evaluate` explains the images once with each method asked for (any registered
CAM or pixel attribution method) and judges the maps with the metrics of
:mod:`convviz.metrics`, image by image. The :class:`EvaluationTable` it returns holds
one value per method, image and metric; :meth:`EvaluationTable.summary` averages them
over the images with a seeded percentile-bootstrap interval, and ranks the methods by
each metric in its own direction (:data:`METRICS` says which way is better).
:meth:`EvaluationTable.report` writes the CSV tables, the figures and an
``index.html`` into a folder, as ``convviz evaluate`` does.

>>> import convviz
>>> table = convviz.evaluate(model, images, methods=["gradcam", "scorecam"])  # doctest: +SKIP
>>> print(table.summary())  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from convviz import _html, plot
from convviz import metrics as _metrics
from convviz._batches import is_stream, open_data
from convviz._files import build_atomically, check_out_dir, read_saved
from convviz._progress import Progress
from convviz._validation import (
    check_batch_size,
    check_fraction,
    check_positive_int,
    check_seed,
    check_verbose,
)
from convviz.errors import InputError, closest
from convviz.inspector import Inspector
from convviz.methods import get_method, method_names
from convviz.methods.core import create, option_names
from convviz.sources import load_images, open_inputs, open_model, unique_names

__all__ = [
    "METRICS", "EvaluationRow", "EvaluationSummary", "EvaluationTable", "MetricInfo", "SummaryRow", "evaluate",
    "metric_names", "parse_options", "read_boxes",
]


# --------------------------------------------------------------------------- #
# The metrics
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class MetricInfo:
    """What one metric of :func:`evaluate` measures and which way is better.

    Attributes
    ----------
    name : str
        The name :func:`evaluate` takes (``"deletion"``...).
    title : str
        How tables and figures name it.
    better : {"higher", "lower"}
        The direction of a more faithful map.
    computation : str
        The :mod:`convviz.metrics` function that computes it (one call can give two
        metrics: deletion and insertion, Average Drop and Increase in Confidence, the
        pointing game and its energy).
    needs_boxes : bool
        Whether it needs one object box per image.
    default : bool
        Whether :func:`evaluate` computes it unless told otherwise (where it applies).
    description : str
        One sentence: what a value is.

    Examples
    --------
    >>> METRICS["deletion"].better, METRICS["pointing_game"].needs_boxes, METRICS["randomization"].default
    ('lower', True, False)
    """

    name: str
    title: str
    better: str
    computation: str
    needs_boxes: bool = False
    default: bool = True
    description: str = ""

    @property
    def higher_is_better(self) -> bool:
        """True when a larger value is a more faithful map."""
        return self.better == "higher"


METRICS: dict[str, MetricInfo] = {info.name: info for info in (
    MetricInfo("deletion", "Deletion", "lower", "deletion_insertion", description=(
        "area under the class probability as the map's top pixels are removed (set to the baseline)")),
    MetricInfo("insertion", "Insertion", "higher", "deletion_insertion", description=(
        "area under the class probability as the map's top pixels are restored onto the baseline")),
    MetricInfo("average_drop", "Average Drop", "lower", "confidence_change", description=(
        "relu(p - p_masked) / p for the image multiplied by its map (scaled to [0, 1])")),
    MetricInfo("increase_in_confidence", "Increase in Confidence", "higher", "confidence_change", description=(
        "1 when the image multiplied by its map scores higher than the image, else 0")),
    MetricInfo("mufidelity", "MuFidelity", "higher", "mufidelity", description=(
        "rank correlation between the score lost when random grid cells are removed and the map's mass there")),
    MetricInfo("pointing_game", "Pointing game", "higher", "pointing_game", needs_boxes=True, description=(
        "1 when the map's maximum lies within 15 pixels of the object's box, else 0")),
    MetricInfo("energy", "Energy in the box", "higher", "pointing_game", needs_boxes=True, description=(
        "the share of the map's positive mass inside the object's box")),
    MetricInfo("randomization", "Randomization", "lower", "randomization", default=False, description=(
        "rank correlation of the map with the map after every weighted layer is re-initialised")),
)}
"""The metrics :func:`evaluate` computes, by name, in table order."""

# The options each computation takes from ``metric_options`` (passed on to convviz.metrics).
_OPTIONS = {
    "deletion_insertion": ("steps", "baseline", "score"),
    "confidence_change": ("score",),
    "mufidelity": ("grid", "subset_percent", "samples", "baseline", "score"),
    "pointing_game": ("tolerance",),
    "randomization": (),
}
_COMPUTATION_TITLES = {
    "deletion_insertion": "deletion and insertion", "confidence_change": "Average Drop and Increase in Confidence",
    "mufidelity": "MuFidelity", "pointing_game": "pointing game", "randomization": "model randomization",
}


def metric_names(*, boxes: bool = False, default: bool = False) -> list[str]:
    """The metric names, in table order: every one, or those :func:`evaluate` computes
    by default (``default=True``), the box metrics only with ``boxes=True``.

    >>> metric_names(default=True)
    ['deletion', 'insertion', 'average_drop', 'increase_in_confidence', 'mufidelity']
    >>> metric_names(boxes=True)[-3:]
    ['pointing_game', 'energy', 'randomization']
    """
    return [m.name for m in METRICS.values() if (boxes or not m.needs_boxes) and (m.default or not default)]


# --------------------------------------------------------------------------- #
# Results
# --------------------------------------------------------------------------- #


class EvaluationRow(NamedTuple):
    """One value: a metric of one method's map of one image."""

    method: str
    image: int
    name: str
    metric: str
    value: float


class SummaryRow(NamedTuple):
    """A metric of one method over the images: the mean and its bootstrap interval."""

    method: str
    metric: str
    mean: float
    low: float
    high: float
    better: str
    images: int


_ROW_FIELDS = list(EvaluationRow._fields)
_SUMMARY_FIELDS = list(SummaryRow._fields)


@dataclass
class EvaluationSummary:
    """Methods x metrics: each metric's mean over the images, with a percentile
    bootstrap interval; prints as a table, ranks, exports, plots.

    Attributes
    ----------
    rows : list of SummaryRow
        One per method and metric, methods in order.
    methods, metrics : list of str
    titles : dict
        Method name -> title ("Grad-CAM").
    images : int
        How many images each mean is over.
    bootstrap : int
        Resamples of the images behind each interval.
    confidence : float
        The intervals' coverage (0.95: the 2.5th to 97.5th percentile of the
        resampled means).

    Examples
    --------
    >>> values = {"gradcam": {"deletion": [0.1, 0.3]}, "scorecam": {"deletion": [0.2, 0.2]}}
    >>> summary = EvaluationTable(["gradcam", "scorecam"], ["deletion"], ["a", "b"], values,
    ...                           {"gradcam": [0, 0], "scorecam": [0, 0]}).summary()
    >>> summary.ranks("deletion"), summary.best("deletion")  # lower deletion is better
    ({'gradcam': 1, 'scorecam': 1}, 'gradcam')
    >>> summary.to_csv().splitlines()[0]
    'method,metric,mean,low,high,better,images'
    """

    rows: list
    methods: list
    metrics: list
    titles: dict
    images: int
    bootstrap: int
    confidence: float = 0.95

    def row(self, method: str, metric: str) -> SummaryRow:
        """The row of one method and metric."""
        for r in self.rows:
            if r.method == method and r.metric == metric:
                return r
        raise KeyError(f"No row for method {method!r} and metric {metric!r}; methods: {', '.join(self.methods)}; "
                       f"metrics: {', '.join(self.metrics)}.")

    def ranks(self, metric: str) -> dict[str, int]:
        """Method -> its rank by ``metric`` in the metric's direction (1 is the most
        faithful; equal means share the better rank)."""
        means = {m: self.row(m, metric).mean for m in self.methods}
        sign = -1 if METRICS[metric].higher_is_better else 1
        ordered = sorted(sign * v for v in means.values())
        return {m: 1 + ordered.index(sign * v) for m, v in means.items()}

    def best(self, metric: str) -> str:
        """The method ranked first by ``metric`` (the first such in method order)."""
        ranks = self.ranks(metric)
        return min(self.methods, key=lambda m: ranks[m])

    def mean_ranks(self) -> dict[str, float]:
        """Method -> its rank averaged over the metrics."""
        per_metric = [self.ranks(metric) for metric in self.metrics]
        return {m: float(np.mean([r[m] for r in per_metric])) for m in self.methods}

    def to_records(self) -> list[dict]:
        """A list of dicts, one per row."""
        return [r._asdict() for r in self.rows]

    def to_csv(self, path=None) -> str:
        """CSV text (method, metric, mean, low, high, better, images); also written to
        ``path`` if given."""
        return _csv(self.to_records(), _SUMMARY_FIELDS, path)

    def plot(self, *, ncols: int = 4, figsize=None, save=None):
        """One panel per metric: each method's mean as a point with its interval as a
        bar, the most faithful one in red, the direction under the title. Returns a
        :class:`matplotlib.figure.Figure`."""
        return _summary_figure(self, ncols=ncols, figsize=figsize, save=save)

    def __str__(self) -> str:
        width = max(len("method"), *map(len, self.methods)) + 2
        cells = {(r.method, r.metric): f"{r.mean:.3f} [{r.low:.3f}, {r.high:.3f}]" for r in self.rows}
        columns = [max(len(f"{m} ({METRICS[m].better})"), 22) + 2 for m in self.metrics]
        lines = [
            f"Faithfulness over {self.images} image(s): mean [{self.confidence:.0%} bootstrap interval, "
            f"{self.bootstrap} resamples]",
            "method".ljust(width) + "".join(f"{m} ({METRICS[m].better})".ljust(c)
                                            for m, c in zip(self.metrics, columns)).rstrip(),
        ]
        for method in self.methods:
            lines.append(method.ljust(width) + "".join(cells[method, m].ljust(c)
                                                       for m, c in zip(self.metrics, columns)).rstrip())
        return "\n".join(lines)

    __repr__ = __str__


@dataclass
class EvaluationTable:
    """What :func:`evaluate` measured: one value per method, image and metric.

    Attributes
    ----------
    methods : list of str
        The methods' registered names, in the order asked.
    metrics : list of str
        Metric names, in :data:`METRICS` order.
    image_names : list of str
        One per image.
    values : dict
        ``values[method][metric]``: (N,) float64, one value per image.
    classes : dict
        ``classes[method]``: (N,) the class each map explains.
    titles : dict
        Method name -> title ("Grad-CAM").
    seed : int
        Seeds the bootstrap, MuFidelity's grids and the randomized weights.
    bootstrap : int
        Resamples of the images for :meth:`summary`'s intervals.
    model : str
        The model's name.
    settings : dict
        The metrics' and methods' options, as given.
    curves : dict
        ``curves[method]``: the mean deletion and insertion curves
        (``{"fractions", "deletion", "insertion"}``), when deletion or insertion was
        measured.
    info : dict
        Model facts (parameters, input shape, backend...) for reports.

    Examples
    --------
    >>> table = convviz.evaluate(model, images, methods=["gradcam", "layercam"])  # doctest: +SKIP
    >>> table.values["gradcam"]["deletion"]  # one value per image  # doctest: +SKIP
    >>> print(table.summary()); table.to_csv("per_image.csv"); table.plot()  # doctest: +SKIP
    """

    methods: list
    metrics: list
    image_names: list
    values: dict
    classes: dict
    titles: dict = field(default_factory=dict)
    seed: int = 0
    bootstrap: int = 1000
    model: str = ""
    settings: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict, repr=False)
    info: dict = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> list[EvaluationRow]:
        """Every value as a row (method, image index, image name, metric, value):
        methods in order, then images, then metrics."""
        return [
            EvaluationRow(method, i, name, metric, float(self.values[method][metric][i]))
            for method in self.methods for i, name in enumerate(self.image_names) for metric in self.metrics
        ]

    def summary(self, *, confidence: float = 0.95) -> EvaluationSummary:
        """Each method's mean of each metric over the images, with a percentile
        bootstrap interval: the images are resampled with replacement ``bootstrap``
        times (seeded by ``seed``; the same resamples for every method and metric, so
        that methods are compared on the same draws) and the interval holds the middle
        ``confidence`` of the resampled means.

        Examples
        --------
        >>> table = EvaluationTable(["gradcam"], ["deletion"], ["a", "b"], {"gradcam": {"deletion": [0.1, 0.3]}},
        ...                         {"gradcam": [0, 0]}, bootstrap=200)
        >>> row = table.summary().row("gradcam", "deletion")
        >>> round(row.mean, 3), row.low >= 0.1, row.high <= 0.3
        (0.2, True, True)
        """
        check_fraction(confidence, "confidence")
        n = len(self.image_names)
        draws = np.random.default_rng(self.seed).integers(0, n, size=(self.bootstrap, n))
        tail = (1 - confidence) / 2 * 100
        rows = []
        for method in self.methods:
            for metric in self.metrics:
                values = np.asarray(self.values[method][metric], np.float64)
                low, high = np.percentile(values[draws].mean(axis=1), [tail, 100 - tail])
                rows.append(SummaryRow(method, metric, float(values.mean()), float(low), float(high),
                                       METRICS[metric].better, n))
        return EvaluationSummary(rows, list(self.methods), list(self.metrics), self._titles(), n, self.bootstrap,
                                 float(confidence))

    def _titles(self) -> dict:
        return {m: self.titles.get(m) or _title(m) for m in self.methods}

    def to_records(self) -> list[dict]:
        """A list of dicts, one per value (see :attr:`rows`)."""
        return [r._asdict() for r in self.rows]

    def to_csv(self, path=None) -> str:
        """CSV text, one line per value (method, image, name, metric, value); also
        written to ``path`` if given. The summary has its own:
        ``table.summary().to_csv(path)``."""
        return _csv(self.to_records(), _ROW_FIELDS, path)

    def to_json(self, path=None) -> str:
        """JSON text with every value and setting (:meth:`load` reads it back); also
        written to ``path`` if given."""
        payload = {
            "methods": self.methods, "metrics": self.metrics, "image_names": self.image_names,
            "values": {m: {k: np.asarray(v, np.float64).tolist() for k, v in d.items()} for m, d in self.values.items()},
            "classes": {m: np.asarray(c).tolist() for m, c in self.classes.items()},
            "titles": self.titles, "seed": self.seed, "bootstrap": self.bootstrap, "model": self.model,
            "settings": self.settings, "curves": self.curves, "info": self.info,
        }
        return _write(json.dumps(payload, indent=1, default=_jsonable), path)

    @classmethod
    def load(cls, path) -> EvaluationTable:
        """Read a table written by :meth:`to_json` (or the ``evaluation.json`` of a
        report)."""
        def read(path):
            payload = json.loads(path.read_text(encoding="utf-8"))
            payload["values"] = {m: {k: np.asarray(v, np.float64) for k, v in d.items()}
                                 for m, d in payload["values"].items()}
            payload["classes"] = {m: np.asarray(c, np.int64) for m, c in payload["classes"].items()}
            return cls(**payload)

        return read_saved(path, read, what="an evaluation table (.json)", writer="EvaluationTable.to_json()")

    def plot(self, *, view: str = "summary", ncols: int = 4, figsize=None, save=None):
        """A figure of the table: ``view="summary"`` (default) one panel per metric
        with each method's mean and bootstrap interval (:meth:`EvaluationSummary.plot`);
        ``"curves"`` the mean deletion and insertion curves of each method. Returns a
        :class:`matplotlib.figure.Figure`."""
        if view == "summary":
            return self.summary().plot(ncols=ncols, figsize=figsize, save=save)
        if view == "curves":
            if not self.curves:
                raise InputError("No deletion or insertion curves: evaluate with the deletion or insertion metric.")
            return _curves_figure(self, figsize=figsize, save=save)
        raise InputError(f'view must be "summary" or "curves", got {view!r}.')

    def report(self, out_dir, *, overwrite: bool = False, figures=()) -> pathlib.Path:
        """Write the tables, figures and an ``index.html`` into ``out_dir``:
        ``evaluation.csv`` (one line per value), ``summary.csv``, ``evaluation.json``
        (:meth:`load`), ``summary.png``, ``curves.png`` (with deletion or insertion),
        the page and ``report.json`` (its figures and captions). Written in a temporary sibling folder and renamed when complete;
        a non-empty ``out_dir`` is refused unless ``overwrite``. ``figures`` adds
        ``(file, figure, title, caption)`` entries to the page. Returns the
        ``index.html`` path."""
        target = check_out_dir(out_dir, overwrite=overwrite)
        build_atomically(target, lambda tmp: _write_report(self, tmp, figures))
        return target / "index.html"

    def __str__(self) -> str:
        return str(self.summary())

    __repr__ = __str__


def _write(text: str, path) -> str:
    if path is not None:
        pathlib.Path(os.fspath(path)).write_text(text, encoding="utf-8")
    return text


def _csv(records: list[dict], fields: list[str], path) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return _write(buffer.getvalue(), path)


def _jsonable(value):
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return repr(value)


def _title(method: str) -> str:
    try:
        return get_method(method).title or method
    except InputError:  # a table loaded where the method is not registered
        return method


# --------------------------------------------------------------------------- #
# Figures
# --------------------------------------------------------------------------- #


def _summary_figure(summary: EvaluationSummary, *, ncols: int, figsize, save):
    from matplotlib.figure import Figure

    ncols = min(check_positive_int(ncols, "ncols"), len(summary.metrics))
    nrows = math.ceil(len(summary.metrics) / ncols)
    width, height = plot._figsize(figsize)
    labels = [summary.titles.get(m, m) for m in summary.methods]
    fig = Figure(figsize=(width or 2.4 * ncols + 0.08 * max(map(len, labels)) + 0.4,
                          height or nrows * (0.25 * len(labels) + 1.1) + 0.3), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    y = np.arange(len(labels))[::-1]
    for ax, metric in zip(axes.flat, summary.metrics):
        info = METRICS[metric]
        rows = [summary.row(m, metric) for m in summary.methods]
        mean = np.array([r.mean for r in rows])
        spread = [mean - np.array([r.low for r in rows]), np.array([r.high for r in rows]) - mean]
        best = summary.best(metric)
        ax.errorbar(mean, y, xerr=np.maximum(spread, 0), fmt="none", ecolor="0.55", capsize=2, linewidth=1)
        ax.scatter(mean, y, s=22, zorder=3, c=["tab:red" if m == best else "tab:blue" for m in summary.methods])
        ax.set_title(info.title, fontsize=9)
        ax.set_xlabel("higher is better \u2192" if info.higher_is_better else "\u2190 lower is better", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(y, labels)
        ax.set_ylim(-0.7, len(labels) - 0.3)
    for ax in axes.flat[len(summary.metrics):]:
        ax.set_axis_off()
    fig.suptitle(f"Mean over {summary.images} image(s), {summary.confidence:.0%} bootstrap interval; "
                 "red: the most faithful", fontsize=9)
    return plot._save(fig, save)


def _curves_figure(table: EvaluationTable, *, figsize, save):
    import matplotlib
    from matplotlib.figure import Figure

    width, height = plot._figsize(figsize)
    fig = Figure(figsize=(width or 11.0, height or 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    titles = table._titles()
    colours = matplotlib.colormaps["tab20"].colors
    methods = [m for m in table.methods if m in table.curves]
    for i, method in enumerate(methods):
        points = table.curves[method]
        x = np.asarray(points["fractions"])
        areas = []
        for ax, curve in zip(axes, ("deletion", "insertion")):
            y = np.asarray(points[curve])
            areas.append(_metrics._trapezoid(y, x))
            # CAMs solid, pixel attributions dashed; 20 colours before one repeats.
            style = "--" if _kind(method) == "attribution" else "-"
            ax.plot(x, y, style, color=colours[(2 * i) % 20 + (2 * i) // 20 % 2], linewidth=1.2,
                    label=f"{titles[method]}: {areas[0]:.3f} / {areas[1]:.3f}" if curve == "insertion" else None)
    for ax, what, xlabel in ((axes[0], "Deletion (lower is better)", "fraction of the pixels removed"),
                             (axes[1], "Insertion (higher is better)", "fraction of the pixels restored")):
        ax.set(title=what, xlabel=xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean class probability")
    axes[1].legend(fontsize=7, title="area: deletion / insertion", title_fontsize=7, loc="center left",
                   bbox_to_anchor=(1.02, 0.5))
    return plot._save(fig, save)


def _kind(method: str) -> str:
    try:
        return get_method(method).kind
    except InputError:
        return ""


# --------------------------------------------------------------------------- #
# Checks
# --------------------------------------------------------------------------- #


def _check_methods(methods) -> list[str]:
    """Registered names (classes become theirs), each once, in the order given;
    ``"all"`` is every registered method."""
    if isinstance(methods, str) and methods == "all":
        methods = method_names()
    elif isinstance(methods, (str, type)):
        methods = [methods]
    names = []
    for method in methods:
        cls = get_method(method)  # an unknown name raises, naming the closest
        name = cls.name or cls.__name__
        if name not in names:
            names.append(name)
    if not names:
        raise InputError("methods is empty; name at least one, e.g. methods=['gradcam'].")
    return names


def _unknown(kind: str, name, known) -> InputError:
    hint = closest(str(name), known)
    return InputError(f"Unknown {kind} {name!r}; known: {', '.join(known)}"
                      + (f" (did you mean {hint[0]!r}?)" if hint else "") + ".")


def _check_metrics(metrics, *, boxes: bool) -> list[str]:
    if metrics is None:
        return metric_names(boxes=boxes, default=True)
    if isinstance(metrics, str):
        metrics = metric_names(boxes=boxes) if metrics == "all" else [metrics]
    chosen = set()
    for name in metrics:
        if name not in METRICS:
            raise _unknown("metric", name, list(METRICS))
        chosen.add(name)
    if not chosen:
        raise InputError(f"metrics is empty; choose from {', '.join(METRICS)} (None: the defaults).")
    need = [m for m in METRICS if m in chosen and METRICS[m].needs_boxes]
    if need and not boxes:
        raise InputError(f"{' and '.join(need)} need the objects' boxes: pass boxes=[(x0, y0, x1, y1), ...], one "
                         "per image, in pixels of the image as the model sees it.")
    return [m for m in METRICS if m in chosen]


def _check_options(options, evaluated, known, what: str) -> dict[str, dict]:
    """``{name: {option: value}}`` for the ``evaluated`` names; a name outside ``known``
    is refused (naming the closest), a known one not evaluated is left out."""
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise InputError(f"{what} must be a dict of {{name: {{option: value}}}}, got {type(options).__name__}.")
    for name, value in options.items():
        if name not in known:
            hint = closest(str(name), known)
            raise InputError(f"{what} for {name!r}, which is unknown (known: {', '.join(known)})"
                             + (f"; did you mean {hint[0]!r}?" if hint else "."))
        if not isinstance(value, dict):
            raise InputError(f"{what}[{name!r}] must be a dict of options, got {value!r}.")
    return {name: dict(value) for name, value in options.items() if name in evaluated}


def _computations(metrics: list[str], metric_options) -> dict[str, dict]:
    """The :mod:`convviz.metrics` calls the metrics need, in order, with their options
    (the options of two metrics of one call are merged; they may not disagree)."""
    given = _check_options(metric_options, metrics, list(METRICS), "metric_options")
    calls: dict[str, dict] = {}
    for metric in metrics:
        computation = METRICS[metric].computation
        options = calls.setdefault(computation, {})
        for key, value in given.get(metric, {}).items():
            if key not in _OPTIONS[computation]:
                allowed = ", ".join(_OPTIONS[computation]) or "none"
                raise InputError(f"metric_options[{metric!r}]: unknown option {key!r} (options: {allowed}).")
            if key in options and not _same(options[key], value):
                raise InputError(f"metric_options: {metric!r} and another metric of the same computation "
                                 f"({computation}) disagree on {key!r}.")
            options[key] = value
    return calls


def _same(a, b) -> bool:
    try:
        return bool(np.all(np.asarray(a) == np.asarray(b)))
    except (TypeError, ValueError):
        return a is b


def _check_boxes(boxes, n: int):
    if boxes is None:
        return None
    boxes = list(boxes)
    if len(boxes) != n:
        raise InputError(f"{n} image(s) but {len(boxes)} box(es): give one (x0, y0, x1, y1) box per image.")
    return [_metrics._box(box) for box in boxes]


def _open(model, images):
    """(inspector, batch, names) for any model and images the gallery takes."""
    if isinstance(model, Inspector):
        arrays, names = load_images(images)
        inspector = model
    else:
        net, arrays, names, _ = open_inputs(model, images)
        inspector = Inspector.of(net)
    return inspector, inspector.prepare(arrays), names


def _explainer(name: str, inspector: Inspector, options: dict, verbose: int):
    cls = get_method(name)
    options = dict(options)
    if "verbose" in option_names(cls):
        options.setdefault("verbose", verbose)
    return create(cls, inspector, what=f"method_options[{name!r}]", **options)


# --------------------------------------------------------------------------- #
# Progress
# --------------------------------------------------------------------------- #


class _StepLines:
    """``[k/n] what`` lines on standard error, with the seconds elapsed (nothing when
    ``verbose`` is false)."""

    def __init__(self, total: int, verbose):
        self.total, self.verbose, self.count, self.start = total, bool(verbose), 0, time.perf_counter()

    @property
    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    def step(self, what: str) -> None:
        """Count a step and say what it is."""
        self.count += 1
        self.say(f"[{self.count}/{self.total}] {what}  ({self.elapsed:.1f} s)")

    def say(self, text: str) -> None:
        """One line, when verbose."""
        if self.verbose:
            print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- #
# evaluate
# --------------------------------------------------------------------------- #


def evaluate(model, images, *, methods: Sequence[str] | str = ("gradcam",), metrics: Sequence[str] | str | None = None,
             boxes=None, class_index=None, method_options: dict | None = None, metric_options: dict | None = None,
             image_names: Sequence[str] | None = None, seed: int = 0, bootstrap: int = 1000,
             batch_size: int | None = None, output=None, verbose: bool = True) -> EvaluationTable:
    """How faithful is each method's explanation? Every metric, image by image.

    Each method (any registered name: a CAM or a pixel attribution method) explains
    the images once, with its options from ``method_options``; each metric then
    judges its maps (see :mod:`convviz.metrics` for the definitions):

    ============================ ======== =====================================================
    metric                       better   what a value is (one per image)
    ============================ ======== =====================================================
    ``"deletion"``               lower    area under the class probability as the map's top
                                          pixels are removed (:func:`~convviz.metrics.deletion_insertion`)
    ``"insertion"``              higher   the same as they are restored onto the baseline
    ``"average_drop"``           lower    ``relu(p - p_masked) / p``, the image multiplied by
                                          its map (:func:`~convviz.metrics.confidence_change`)
    ``"increase_in_confidence"`` higher   1 when the masked image scores higher, else 0
    ``"mufidelity"``             higher   :func:`~convviz.metrics.mufidelity`'s rank correlation
    ``"pointing_game"``          higher   1 when the map's maximum is on the object's box
                                          (:func:`~convviz.metrics.pointing_game`)
    ``"energy"``                 higher   the share of the map's positive mass in the box
    ``"randomization"``          lower    the rank correlation of the map with the map once
                                          every weighted layer is re-initialised
                                          (:func:`~convviz.metrics.randomization`)
    ============================ ======== =====================================================

    Parameters
    ----------
    model : keras.Model, Inspector, path or str
        As :func:`convviz.gallery`: a built model, a ``.keras`` file or a built-in
        name (``"efficientnet_lite0"``).
    images : image, list of images, or a dataset
        Paths, arrays, PIL images or ``"skimage:NAME"``, resized to the model's input;
        or a dataset, evaluated batch by batch with one batch in memory: a folder of
        image files, a ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a grain
        dataset or an iterable of batches (as :func:`convviz.explain_dataset` reads
        them; batch ``k``'s random draws are seeded with ``seed + k``).
    methods : sequence of str, or str
        Registered method names (``convviz.methods.method_names()``), or ``"all"``.
    metrics : sequence of str, or str, optional
        Names from :data:`METRICS`, or ``"all"`` (every one that applies). Default:
        deletion, insertion, Average Drop, Increase in Confidence and MuFidelity, and
        with ``boxes`` the pointing game and energy. Randomization is not a default:
        it costs each method three more explanations of the images (the intact
        model's maps again, another class's for the random-class check of
        :func:`convviz.metrics.randomization`, and a re-initialised copy's).
    boxes : sequence, optional
        One object box per image, ``(x0, y0, x1, y1)`` with ``x1, y1`` one past the
        object (numpy slices) or a :class:`convviz.shapes.BoundingBox`, in pixels of
        the image as the model sees it (resized to its input).
    class_index : int or sequence of int, optional
        The classes explained and judged; default each image's top class.
    method_options : dict, optional
        ``{method: {option: value}}``, e.g. ``{"scorecam": {"layer": "block7a_project_bn"},
        "occlusion": {"stride": 16}}``; the options of methods not evaluated are left
        out (an unknown method name is an error).
    metric_options : dict, optional
        ``{metric: {option: value}}`` passed on to the :mod:`convviz.metrics` call:
        ``steps``, ``baseline``, ``score`` (deletion, insertion); ``score`` (Average
        Drop, Increase in Confidence); ``grid``, ``subset_percent``, ``samples``,
        ``baseline``, ``score`` (MuFidelity); ``tolerance`` (pointing game, energy). As
        for ``method_options``, the options of metrics not measured are left out.
    image_names : sequence of str, optional
        Names for the rows (default: file stems, skimage names, ``image 1``...).
    seed : int
        Seeds MuFidelity's grids, the randomized weights and the bootstrap.
    bootstrap : int
        Resamples of the images for :meth:`EvaluationTable.summary`'s intervals.
    batch_size : int, optional
        Perturbed copies per compiled call, for the metrics and the methods (default:
        each one's own).
    output : str or int, optional
        For a model with several outputs, the one whose classes are explained and
        judged (as :func:`convviz.explain`); required then.
    verbose : bool
        A line on standard error as each method and metric starts, and the progress
        bars of the long ones.

    Returns
    -------
    EvaluationTable

    Raises
    ------
    InputError
        An unknown method or metric name (the closest known ones are named), box
        metrics without boxes, a box count that is not the image count, options a
        method or metric does not take. Everything is checked before the first map
        is computed.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    >>> table = convviz.evaluate(model, np.random.rand(3, 16, 16, 3), methods=["gradcam", "saliency"],
    ...                          metric_options={"mufidelity": {"samples": 20}}, verbose=False)
    >>> table.metrics
    ['deletion', 'insertion', 'average_drop', 'increase_in_confidence', 'mufidelity']
    >>> table.values["saliency"]["deletion"].shape, table.summary().best("insertion") in table.methods
    ((3,), True)
    """
    verbose = check_verbose(verbose)
    names = _check_methods(methods)
    chosen = _check_metrics(metrics, boxes=boxes is not None)
    method_options = _check_options(method_options, names, method_names(), "method_options")
    computations = _computations(chosen, metric_options)
    seed, bootstrap = check_seed(seed), check_positive_int(bootstrap, "bootstrap")
    batch_size = check_batch_size(batch_size, allow_none=True)
    if is_stream(images):
        return _evaluate_stream(model, images, names=names, metrics=chosen, boxes=boxes, class_index=class_index,
                                image_names=image_names,
                                method_options=method_options, computations=computations, seed=seed,
                                bootstrap=bootstrap, batch_size=batch_size, output=output, verbose=verbose)
    inspector, batch, default_names = _open(model, images)
    inspector = inspector.for_output(output)
    boxes = _check_boxes(boxes, len(batch))
    image_names = _image_names(image_names, default_names, len(batch))
    if batch_size is not None:
        for name in names:
            method_options.setdefault(name, {}).setdefault("batch_size", batch_size)
    # Every method's options and layer are checked before the first map is computed.
    explainers = {name: _explainer(name, inspector, method_options.get(name, {}), verbose) for name in names}
    steps = _StepLines(len(names) * (1 + len(computations)), verbose)

    def explain(name):
        explainer = explainers[name]
        where = f" at {explainer.layer}" if getattr(explainer, "layer", None) else ""
        steps.step(f"{name} ({_title(name)}){where}: explaining {len(batch)} image(s)")
        return explainer.explain(batch, class_index=class_index)

    table = _evaluate(inspector, batch, names, chosen, explain=explain, method_options=method_options,
                      computations=computations, boxes=boxes, image_names=image_names, seed=seed,
                      bootstrap=bootstrap, batch_size=batch_size, verbose=verbose, steps=steps)
    steps.say(f"Evaluated {len(names)} method(s) on {len(batch)} image(s) in {steps.elapsed:.1f} s.")
    return table


def _evaluate_stream(model, images, *, names, metrics, boxes, class_index, image_names, method_options, computations,
                     seed, bootstrap, batch_size, output, verbose) -> EvaluationTable:
    """:func:`evaluate` over a dataset, batch by batch: one batch's images and maps in
    memory at a time; the tables of the batches joined (batch ``k``'s random draws
    seeded with ``seed + k``)."""
    if isinstance(model, Inspector):
        inspector, preprocess = model, None
    else:
        net, preprocess, _ = open_model(model)
        inspector = Inspector.of(net)
    inspector = inspector.for_output(output)
    source = open_data(images, batch_size=batch_size or 32, preprocess=preprocess)
    boxes = None if boxes is None else list(boxes)
    if batch_size is not None:
        for name in names:
            method_options.setdefault(name, {}).setdefault("batch_size", batch_size)
    explainers = {name: _explainer(name, inspector, method_options.get(name, {}), 0) for name in names}
    quiet = _StepLines(0, False)
    progress = Progress(source.n_images, verbose, "image")
    tables, start = [], 0
    for k, raw in enumerate(source.batches()):
        batch = inspector.prepare(raw.images)
        n = len(batch)
        if boxes is not None and len(boxes) < start + n:
            raise InputError(f"The data holds more images than the {len(boxes)} box(es) given.")
        classes = class_index
        if class_index is not None and np.ndim(class_index):
            classes = np.asarray(class_index)[start : start + n]
        given = raw.names or [f"image {start + i + 1}" for i in range(n)]
        if image_names is not None:
            given = [str(name) for name in list(image_names)[start : start + n]]
            if len(given) != n:
                raise InputError(f"The data holds more images than the {len(image_names)} image_names given.")
        tables.append(_evaluate(
            inspector, batch, names, metrics,
            explain=lambda name, batch=batch, classes=classes: explainers[name].explain(batch, class_index=classes),
            method_options=method_options, computations=computations,
            boxes=None if boxes is None else _check_boxes(boxes[start : start + n], n), image_names=given,
            seed=seed + k, bootstrap=bootstrap, batch_size=batch_size, verbose=0, steps=quiet,
        ))
        start += n
        progress.update(start)
    progress.update(start, finalize=True)
    if not tables:
        raise InputError("The data holds no images.")
    for given, what in ((boxes, "box(es)"), (image_names, "image_names")):
        if given is not None and len(given) != start:
            raise InputError(f"{start} image(s) but {len(given)} {what}: give one per image.")
    return _joined(tables, seed=seed, n=start)


def _joined(tables: list[EvaluationTable], *, seed: int, n: int) -> EvaluationTable:
    """One table of the images of ``tables`` (batches of one evaluation), in order."""
    first = tables[0]
    values = {m: {k: np.concatenate([t.values[m][k] for t in tables]) for k in first.values[m]}
              for m in first.methods}
    classes = {m: np.concatenate([t.classes[m] for t in tables]) for m in first.methods}
    curves = {}
    sizes = np.array([len(t.image_names) for t in tables], np.float64)
    for method, curve in first.curves.items():
        curves[method] = {"fractions": curve["fractions"]}
        for key in ("deletion", "insertion"):
            stacked = np.array([t.curves[method][key] for t in tables])
            curves[method][key] = (sizes @ stacked / sizes.sum()).tolist()
    names = unique_names([name for t in tables for name in t.image_names])
    return EvaluationTable(first.methods, first.metrics, names, values, classes, first.titles, seed,
                           first.bootstrap, first.model, first.settings, curves, {**first.info, "images": n})


def _image_names(given, default: list[str], n: int) -> list[str]:
    if given is None:
        return list(default)
    if isinstance(given, str) or len(given) != n:
        raise InputError(f"{n} image(s) but image_names has {1 if isinstance(given, str) else len(given)} name(s).")
    return unique_names([str(name) for name in given])


def _evaluate(inspector, batch, methods, metrics, *, explain, method_options, computations, boxes, image_names,
              seed, bootstrap, batch_size, verbose, steps) -> EvaluationTable:
    """The table of ``methods`` x ``metrics``, each method's maps from ``explain(name)``
    (:func:`evaluate`, and the gallery with the maps it already has)."""
    values, classes, curves = {}, {}, {}
    scoring = {"batch_size": batch_size} if batch_size is not None else {}
    for method in methods:
        result = explain(method)
        classes[method] = np.asarray(result.class_index)
        values[method] = {}
        for computation, options in computations.items():
            steps.step(f"{method}: {_COMPUTATION_TITLES[computation]}")
            got = _compute(computation, inspector, batch, result, method, options=options, boxes=boxes, seed=seed,
                           scoring=scoring, verbose=verbose, method_options=method_options.get(method, {}))
            if computation == "deletion_insertion":
                curves[method] = {"fractions": got.pop("fractions").tolist(),
                                  "deletion": got.pop("deletion_curve").mean(axis=0).tolist(),
                                  "insertion": got.pop("insertion_curve").mean(axis=0).tolist()}
            values[method].update({k: np.asarray(v, np.float64) for k, v in got.items() if k in metrics})
    settings = {"metric_options": {k: v for k, v in computations.items() if v},
                "method_options": {k: {o: v for o, v in d.items() if o != "verbose"}
                                   for k, d in method_options.items()}}
    return EvaluationTable(
        list(methods), list(metrics), list(image_names), values, classes, {m: _title(m) for m in methods}, seed,
        bootstrap, inspector.model.name, json.loads(json.dumps(settings, default=_jsonable)), curves,
        _html.model_info(inspector.model, inspector, len(batch)),
    )


def _compute(computation, inspector, batch, result, method, *, options, boxes, seed, scoring, verbose,
             method_options) -> dict:
    """One :mod:`convviz.metrics` call: ``{metric: (N,) values}`` (and the curves)."""
    classes = result.class_index
    if computation == "deletion_insertion":
        r = _metrics.deletion_insertion(inspector, batch, result, class_index=classes, verbose=verbose,
                                        **scoring, **options)
        return {"deletion": r.deletion, "insertion": r.insertion, "fractions": r.fractions,
                "deletion_curve": r.deletion_curve, "insertion_curve": r.insertion_curve}
    if computation == "confidence_change":
        r = _metrics.confidence_change(inspector, batch, result, class_index=classes, **scoring, **options)
        return {"average_drop": r.average_drop, "increase_in_confidence": r.increase}
    if computation == "mufidelity":
        return {"mufidelity": _metrics.mufidelity(inspector, batch, result, class_index=classes, seed=seed,
                                                  verbose=verbose, **scoring, **options)}
    if computation == "pointing_game":
        r = _metrics.pointing_game(result, boxes, size=batch.shape[1:3], **options)
        return {"pointing_game": r.hits.astype(np.float64), "energy": r.energy}
    # Randomization: the maps once every weighted layer is re-initialised (one cascade depth).
    depth = len(_metrics.weighted_layers(inspector.model))
    quiet = {k: v for k, v in method_options.items() if k != "verbose"}
    r = _metrics.randomization(inspector, batch, method=method, class_index=classes, depths=[depth], seed=seed,
                               **quiet)
    return {"randomization": r.spearman[-1]}


# --------------------------------------------------------------------------- #
# Reports, options and boxes from text (the command line and the Sphinx directive)
# --------------------------------------------------------------------------- #


class _ReportFigure(NamedTuple):
    """One figure of a report's page (the fields the page shows)."""

    kind: str
    file: str
    title: str
    caption: str
    group: str = ""


def _summary_caption(summary: EvaluationSummary) -> str:
    """The summary in words: per metric, its direction and each method's mean with its
    interval, the most faithful first."""
    parts = []
    for metric in summary.metrics:
        ranks = summary.ranks(metric)
        ordered = sorted(summary.methods, key=lambda m: ranks[m])
        values = ", ".join(f"{summary.titles.get(m, m)} {summary.row(m, metric).mean:.3f} "
                           f"[{summary.row(m, metric).low:.3f}, {summary.row(m, metric).high:.3f}]" for m in ordered)
        parts.append(f"{METRICS[metric].title} ({METRICS[metric].better} is better): {values}")
    return (f"Mean over {summary.images} image(s) with its {summary.confidence:.0%} percentile-bootstrap interval "
            f"({summary.bootstrap} resamples). " + "; ".join(parts) + ".")


def _write_report(table: EvaluationTable, tmp: pathlib.Path, extra) -> None:
    summary = table.summary()
    table.to_csv(tmp / "evaluation.csv")
    summary.to_csv(tmp / "summary.csv")
    table.to_json(tmp / "evaluation.json")
    figures = [_ReportFigure("summary", "summary.png", "Every method by every metric", _summary_caption(summary))]
    plot._save(summary.plot(), tmp / "summary.png")
    if table.curves:
        plot._save(table.plot(view="curves"), tmp / "curves.png")
        figures.append(_ReportFigure(
            "curves", "curves.png", "Deletion and insertion curves",
            "The class probability averaged over the images as each method's top-ranked pixels are removed "
            "(left: a faithful map makes it fall fast) or restored onto the baseline (right: rise fast); "
            "the legend gives the area under each mean curve.",
        ))
    sections = {"summary": "Summary", "curves": "Deletion and insertion"}
    for file, fig, title, caption in extra:
        plot._save(fig, tmp / file)
        figures.append(_ReportFigure(pathlib.Path(file).stem, file, title, caption))
        sections.setdefault(figures[-1].kind, title)
    page = _html.page(
        _html.PageData(table.model, table.info, figures), sections,
        heading=f"Which explanation of {table.model} can you trust?", intro=_summary_html(summary),
    )
    (tmp / "index.html").write_text(page, encoding="utf-8")
    # Last: the figures with their captions, for the Sphinx directive.
    _write(json.dumps({"figures": [f._asdict() for f in figures]}, indent=1), tmp / "report.json")


def _summary_html(summary: EvaluationSummary) -> str:
    header = ["method"] + [f"{METRICS[m].title} ({METRICS[m].better} is better)" for m in summary.metrics]
    rows, best = [], {m: summary.best(m) for m in summary.metrics}
    for method in summary.methods:
        cells = [(summary.titles.get(method, method), False)]
        for metric in summary.metrics:
            r = summary.row(method, metric)
            cells.append((f"{r.mean:.3f} [{r.low:.3f}, {r.high:.3f}]", best[metric] == method))
        rows.append(cells)
    note = (f"Mean over {summary.images} image(s) [{summary.confidence:.0%} bootstrap interval]; the most faithful "
            "method by each metric in bold. Tables: <a href=\"evaluation.csv\">evaluation.csv</a> (one line per "
            "method, image and metric), <a href=\"summary.csv\">summary.csv</a>.")
    return _html.table(header, rows) + f"<p class=\"meta\">{note}</p>"


def parse_options(items, *, what: str = "option") -> dict[str, dict]:
    """``["occlusion.stride=16", "scorecam.layer=top_conv"]`` as
    ``{"occlusion": {"stride": 16}, "scorecam": {"layer": "top_conv"}}``: values are
    read as JSON when they are (numbers, ``true``, ``null``, lists), else kept as text.

    >>> parse_options(["occlusion.stride=16", "deletion.baseline=blur", "mufidelity.subset_percent=0.3"])
    {'occlusion': {'stride': 16}, 'deletion': {'baseline': 'blur'}, 'mufidelity': {'subset_percent': 0.3}}
    """
    options: dict[str, dict] = {}
    for item in items or ():
        name, dot, rest = str(item).partition(".")
        key, equals, text = rest.partition("=")
        if not (name and dot and key and equals):
            raise InputError(f"{what} {item!r}: expected NAME.OPTION=VALUE, e.g. occlusion.stride=16.")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        options.setdefault(name, {})[key] = value
    return options


def read_boxes(source, *, names: Sequence[str], sizes, size) -> list[tuple[int, int, int, int]]:
    """Object boxes, one per image, scaled to the model's input.

    ``source`` is a JSON file (or what one holds): a list of ``[x0, y0, x1, y1]`` (one
    per image, in order), an object ``{name: [x0, y0, x1, y1]}`` keyed by image name
    (file name or stem, or skimage name), or the ``boxes.json`` of
    :func:`convviz.shapes.make_offline_dataset` (what :func:`convviz.shapes.load_boxes`
    returns works too). Boxes are in pixels of each image as read (``sizes``: each
    one's (height, width)) and are scaled to ``size``, the model's input (outward, so
    that the box keeps the whole object).

    >>> read_boxes({"cat.jpg": [10, 20, 30, 40]}, names=["cat"], sizes=[(100, 100)], size=(50, 50))
    [(5, 10, 15, 20)]
    """
    where = source if isinstance(source, (str, os.PathLike)) else "boxes"
    spec = _read_json(source) if isinstance(source, (str, os.PathLike)) else source
    if isinstance(spec, dict) and isinstance(spec.get("boxes"), dict):  # make_offline_dataset's boxes.json
        spec = {name: record.get("box") if isinstance(record, dict) else record
                for name, record in spec["boxes"].items()}
    if isinstance(spec, dict):
        by_name = {}
        for key, box in spec.items():
            by_name.setdefault(str(key), box)
            by_name.setdefault(pathlib.Path(str(key)).stem, box)
        missing = [n for n in names if n not in by_name]
        if missing:
            raise InputError(f"{where} has no box for {', '.join(missing)}; its keys are image names (file names "
                             "or stems).")
        spec = [by_name[n] for n in names]
    if not isinstance(spec, (list, tuple)) or len(spec) != len(names):
        count = len(spec) if isinstance(spec, (list, tuple)) else "no list of"
        raise InputError(f"{where} has {count} box(es) for {len(names)} image(s): give a list of "
                         "[x0, y0, x1, y1], one per image, or an object keyed by image name.")
    return [_scale_box(box, own, size, where) for box, own in zip(spec, sizes)]


def _read_json(path):
    path = pathlib.Path(os.fspath(path))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"Cannot read the boxes file {path}: {err.strerror or err}.") from err
    except ValueError as err:
        raise InputError(f"The boxes file {path} is not JSON: {err}.") from err


def _scale_box(box, own, size, where) -> tuple[int, int, int, int]:
    try:
        x0, y0, x1, y1 = _metrics._box(box)
    except (TypeError, ValueError) as err:
        raise InputError(f"{where}: a box is [x0, y0, x1, y1] in pixels ({err}).") from err
    if size[0] is None or size[1] is None or tuple(own) == tuple(size):
        return x0, y0, x1, y1
    sy, sx = size[0] / own[0], size[1] / own[1]
    return (int(math.floor(x0 * sx)), int(math.floor(y0 * sy)),
            max(int(math.ceil(x1 * sx)), int(math.floor(x0 * sx)) + 1),
            max(int(math.ceil(y1 * sy)), int(math.floor(y0 * sy)) + 1))
