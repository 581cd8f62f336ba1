"""A Sphinx extension that renders convviz galleries and faithfulness tables while the
docs build.

Add ``"convviz.sphinxext"`` to ``extensions`` in ``conf.py``, then in any page::

    .. convviz-gallery::
       :model: efficientnet_lite0
       :images: skimage:chelsea skimage:coffee
       :kinds: gradcam activations
       :layers: stem_conv block4a_expand_conv top_conv

``:model:`` is a built-in model name (see :data:`convviz.sources.BUILTIN_MODELS`) or a
``.keras`` file, and ``:images:`` are image files or ``skimage:NAME`` photos; file
paths are relative to the page (or to the source folder when they start with ``/``).
Other options mirror :func:`convviz.gallery`: ``:kinds:`` (any of
:func:`convviz.galleries.kinds`, which include every registered CAM method, e.g.
``gradcam_plusplus``, ``cam_methods``, the methods side by side, and every pixel
attribution method, e.g. ``integrated_gradients``), ``:layers:``,
``:filter-layers:``, ``:filters:``, ``:filter-steps:``, ``:filter-parametrization:``, ``:max-channels:``,
``:cam-layer:``, ``:class-names:`` (comma-separated) and ``:output:`` (for a model with
several outputs, the one explained: a name or an index).

Each figure links to its PNG, so a wide one (``cam_methods``, an attribution method's)
opens at full size.
Figures are cached between builds in ``convviz_gallery_cache`` (default
``_convviz_cache`` in the source folder; keep it out of version control), keyed by
the options, the bytes of the model and image files, the Keras backend and the
convviz version, so an unchanged directive costs nothing on the next build.

The ``convviz-evaluation`` directive renders :func:`convviz.evaluate`'s ranking: a
table with a row per method and a column per metric (each method's mean over the
images and its rank), then the summary figure (bootstrap intervals), the deletion and
insertion curves and, on request, a randomization figure::

    .. convviz-evaluation::
       :model: efficientnet_lite0
       :images: skimage:chelsea skimage:coffee
       :methods: gradcam layercam saliency
       :metric-options: deletion.steps=10 mufidelity.samples=50
       :randomization-curves: gradcam

``:model:`` and ``:images:`` as above, or instead of ``:images:``, ``:dataset: SPLIT
COUNT``: COUNT images of one split of the chapter's data
(:func:`convviz.data.chapter_dataset`), spread evenly over each class, with their
object boxes when it is the offline shapes data (so the pointing game is measured).
``:methods:`` and ``:metrics:`` are names or ``all`` (default ``gradcam`` and
evaluate's default metrics); ``:cam-layer:`` is the layer of every CAM method;
``:method-options:`` and ``:metric-options:`` are ``NAME.OPTION=VALUE`` words
(:func:`convviz.evaluation.parse_options`); ``:bootstrap:`` and ``:seed:`` as in
:func:`convviz.evaluate`; ``:randomization-curves: METHOD`` adds
:func:`convviz.metrics.randomization`'s figure for one method; ``:figures:`` picks
among ``summary``, ``curves`` and ``randomization`` (default: all). It is cached the
same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import time

from docutils import nodes
from docutils.parsers.rst import Directive, directives

from convviz._validation import output_argument

__all__ = ["EvaluationDirective", "GalleryDirective", "setup"]


def _words(text: str | None) -> list[str]:
    return [] if not text else text.replace(",", " ").split()


def _comma_list(text: str | None) -> list[str]:
    return [] if not text else [t.strip() for t in text.split(",") if t.strip()]


class _ConvvizDirective(Directive):
    """What the directives share: models and files by name, the cache, figure nodes."""

    has_content = False
    required = ("model",)

    def run(self):
        env = self.state.document.settings.env
        for required in self.required:
            if not self.options.get(required):
                raise self.error(f"{self.name} needs a :{required}: option.")
        try:
            return self._run(env)
        except Exception as err:  # an error becomes a build error at this line
            raise self.error(f"{self.name} failed: {type(err).__name__}: {err}") from err

    def _run(self, env):  # pragma: no cover - each directive has its own
        raise NotImplementedError

    # -- inputs ---------------------------------------------------------------------

    def _path(self, env, text: str) -> str:
        _, absolute = env.relfn2path(text, env.docname)
        return absolute

    def _model(self, env):
        from convviz.sources import BUILTIN_MODELS

        spec = self.options["model"].strip()
        if spec in BUILTIN_MODELS:
            return spec, []
        path = self._path(env, spec)
        return path, [path]

    def _images(self, env):
        specs, files = [], []
        for word in _words(self.options.get("images")):
            if word.startswith("skimage:"):
                specs.append(word)
            else:
                path = self._path(env, word)
                specs.append(path)
                files.append(path)
        return specs, files

    # -- the cache ------------------------------------------------------------------

    def _cache_folder(self, env, key, files, *, prefix: str = "") -> pathlib.Path:
        """The folder of this directive's output, named by a hash of ``key`` (with the
        convviz version and backend) and of the bytes of ``files``."""
        import keras

        import convviz

        for path in files:
            env.note_dependency(path)
        digest = hashlib.sha256()
        digest.update(json.dumps([convviz.__version__, keras.backend.backend(), *key], sort_keys=True).encode())
        for path in files:
            if os.path.isfile(path):
                digest.update(pathlib.Path(path).read_bytes())
        return pathlib.Path(env.srcdir) / env.config.convviz_gallery_cache / (prefix + digest.hexdigest()[:16])

    def _log(self, text: str) -> None:
        from sphinx.util import logging

        logging.getLogger(__name__).info(text)

    # -- output ---------------------------------------------------------------------

    def _figure(self, env, folder: pathlib.Path, fig: dict):
        from PIL import Image

        relative = folder.relative_to(pathlib.Path(env.srcdir)).as_posix()
        figure = nodes.figure(classes=["convviz-figure", f"convviz-{fig['kind']}"])
        figure["align"] = "center"
        with Image.open(folder / fig["file"]) as picture:
            width = picture.width
        # Its own width, so that Sphinx links the picture to itself (html_scaled_image_link):
        # a wide figure shrunk to the page opens at full size.
        figure += nodes.image(uri=f"/{relative}/{fig['file']}", alt=fig["title"], width=f"{width}px")
        caption = nodes.caption()
        caption += nodes.strong(text=fig["title"])
        caption += nodes.Text(" \u2014 " + fig["caption"])
        figure += caption
        return figure


class GalleryDirective(_ConvvizDirective):
    """``.. convviz-gallery::`` — figures of a model on images, rendered at build time."""

    required = ("model", "images")
    option_spec = {
        "model": directives.unchanged_required,
        "images": directives.unchanged_required,
        "kinds": directives.unchanged,
        "layers": directives.unchanged,
        "filter-layers": directives.unchanged,
        "filters": directives.positive_int,
        "filter-steps": directives.positive_int,
        "filter-parametrization": lambda arg: directives.choice(arg, ("auto", "pixel", "fft", "maco")),
        "max-channels": directives.positive_int,
        "cam-layer": directives.unchanged,
        "class-names": directives.unchanged,
        "output": directives.unchanged,
    }

    def _run(self, env):
        model, model_files = self._model(env)
        images, image_files = self._images(env)
        settings = {
            "kinds": _words(self.options.get("kinds")) or None,
            "layers": _words(self.options.get("layers")) or None,
            "filter_layers": _words(self.options.get("filter-layers")) or None,
            "filters": self.options.get("filters", 16),
            "filter_steps": self.options.get("filter-steps"),
            "max_channels": self.options.get("max-channels", 64),
            "class_names": _comma_list(self.options.get("class-names")) or None,
        }
        cam_layer = (self.options.get("cam-layer") or "").strip()
        if cam_layer:  # only when given, so that other directives keep their cache keys
            settings["cam_layer"] = cam_layer
        output = output_argument(self.options.get("output"))
        if output is not None:  # only when given, as cam_layer
            settings["output"] = output
        if "filter-parametrization" in self.options:
            settings["filter_parametrization"] = self.options["filter-parametrization"]
        folder = self._cache_folder(env, [model, images, settings], model_files + image_files)
        if not (folder / "gallery.json").is_file():
            from convviz.galleries import gallery

            self._log(f"convviz: rendering a gallery of {model} into {folder}")
            gallery(model, images, folder, overwrite=True, verbose=False, **settings)
        manifest = json.loads((folder / "gallery.json").read_text(encoding="utf-8"))
        container = nodes.container(classes=["convviz-gallery"])
        for fig in manifest["figures"]:
            container += self._figure(env, folder, fig)
        return [container]


def _dataset_images(spec: str):
    """(files, boxes or None) for ``SPLIT COUNT``: COUNT images of the chapter's data,
    spread evenly over each class's sorted files, with their boxes on the offline data."""
    import numpy as np

    from convviz import data

    words = spec.split()
    if len(words) != 2 or not words[1].isdigit() or int(words[1]) < 1:
        raise ValueError(f":dataset: takes SPLIT COUNT (e.g. test 32), got {spec!r}.")
    split, count = words[0], int(words[1])
    chosen = data.chapter_dataset()
    folder = pathlib.Path(chosen.base_dir) / split
    if not folder.is_dir():
        raise ValueError(f"The chapter's data ({chosen.base_dir}) has no {split!r} split.")
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    files = []
    for k, cls in enumerate(classes):
        names = sorted((p for p in cls.iterdir() if p.is_file()), key=lambda p: (len(p.name), p.name))
        share = count // len(classes) + (k < count % len(classes))
        picks = np.unique(np.linspace(0, len(names) - 1, min(share, len(names))).round().astype(int))
        files += [str(names[i]) for i in picks]
    boxes = data.load_boxes(chosen.base_dir, split) if chosen.offline else None
    return files, boxes


class EvaluationDirective(_ConvvizDirective):
    """``.. convviz-evaluation::`` — methods ranked by faithfulness metrics, computed at
    build time (:func:`convviz.evaluate`)."""

    option_spec = {
        "model": directives.unchanged_required,
        "images": directives.unchanged,
        "dataset": directives.unchanged,
        "methods": directives.unchanged,
        "metrics": directives.unchanged,
        "cam-layer": directives.unchanged,
        "method-options": directives.unchanged,
        "metric-options": directives.unchanged,
        "bootstrap": directives.positive_int,
        "seed": directives.nonnegative_int,
        "randomization-curves": directives.unchanged,
        "figures": directives.unchanged,
    }

    def _run(self, env):
        from convviz import evaluation

        model, model_files = self._model(env)
        images, files = self._images(env)
        dataset = (self.options.get("dataset") or "").strip()
        boxes = None
        if bool(images) == bool(dataset):
            raise ValueError("give :images: or :dataset: (SPLIT COUNT), one of them.")
        if dataset:
            images, boxes = _dataset_images(dataset)
            files = list(images)
        methods, metrics = _words(self.options.get("methods")) or ["gradcam"], _words(self.options.get("metrics"))
        settings = {
            "methods": "all" if methods == ["all"] else methods,
            "metrics": "all" if metrics == ["all"] else (metrics or None),
            "cam_layer": (self.options.get("cam-layer") or "").strip() or None,
            "method_options": evaluation.parse_options(_words(self.options.get("method-options")),
                                                       what=":method-options:"),
            "metric_options": evaluation.parse_options(_words(self.options.get("metric-options")),
                                                       what=":metric-options:"),
            "bootstrap": self.options.get("bootstrap", 1000),
            "seed": self.options.get("seed", 0),
            "randomization": (self.options.get("randomization-curves") or "").strip() or None,
        }
        shown = _words(self.options.get("figures")) or None
        # Keyed by the options as written and the files' bytes (not where the files are).
        key = [self.options["model"].strip(), self.options.get("images", "").split(), dataset, settings]
        folder = self._cache_folder(env, key, model_files + files, prefix="evaluation-")
        if not (folder / "report.json").is_file():
            self._log(f"convviz: evaluating {settings['methods']} on {model} into {folder}")
            with _one_blas_thread():
                _evaluation_report(model, images, boxes, folder, **settings)
        table = evaluation.EvaluationTable.load(folder / "evaluation.json")
        figures = json.loads((folder / "report.json").read_text(encoding="utf-8"))["figures"]
        container = nodes.container(classes=["convviz-evaluation"])
        container += _ranking_table(table.summary())
        container += nodes.paragraph(text=_ranking_note(table))
        for fig in figures:
            if shown is None or fig["kind"] in shown:
                container += self._figure(env, folder, fig)
        return [container]


def _one_blas_thread():
    """numpy's BLAS on one thread, when threadpoolctl is installed: its threads and the
    backend's contend on a busy machine (Eigen-CAM's SVDs took 26 s instead of 0.2 s
    on two shared cores)."""
    import contextlib

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn, in the docs extra, brings it
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _evaluation_report(model, images, boxes, folder, *, methods, metrics, cam_layer, method_options, metric_options,
                       bootstrap, seed, randomization):
    """Evaluate and write the report (with the randomization figure) into ``folder``."""
    import convviz
    from convviz import evaluation
    from convviz.methods import LayerMethod, get_method
    from convviz.sources import open_inputs

    start = time.perf_counter()
    method_options = {name: dict(options) for name, options in method_options.items()}
    net, arrays, names, _ = open_inputs(model, images)
    names_of_methods = evaluation._check_methods(methods)
    if cam_layer:
        for name in names_of_methods:
            if issubclass(get_method(name), LayerMethod):
                method_options.setdefault(name, {}).setdefault("layer", cam_layer)
    if boxes is not None:
        size = convviz.Inspector.of(net).input_shape[:2]
        boxes = evaluation.read_boxes(boxes, names=names, sizes=[a.shape[:2] for a in arrays], size=size)
    table = convviz.evaluate(
        net, arrays, methods=names_of_methods, metrics=metrics, boxes=boxes, method_options=method_options,
        metric_options=metric_options, image_names=names, seed=seed, bootstrap=bootstrap, verbose=False,
    )
    extra = []
    if randomization:
        options = {k: v for k, v in method_options.get(randomization, {}).items() if k != "verbose"}
        result = convviz.metrics.randomization(net, arrays, method=randomization, seed=seed, **options)
        extra.append(("randomization.png", result.plot(), f"Model randomization: {evaluation._title(randomization)}",
                      _randomization_caption(result, randomization, len(names))))
    table.settings["seconds"] = round(time.perf_counter() - start, 1)
    table.report(folder, overwrite=True, figures=extra)


def _randomization_caption(result, method: str, n: int) -> str:
    from convviz import evaluation

    title = evaluation._title(method)
    depths = ", ".join(str(int(d)) for d in result.depths)
    last = f"{result.spearman[-1].mean():.2f} and {result.ssim[-1].mean():.2f}"
    return (f"{title} on {n} image(s): the weighted layers of a copy of the model are re-initialised one by one "
            f"from the output ({len(result.layers)} of them; depths {depths}), and each time the maps are compared "
            f"with the intact model's (mean Spearman rank correlation and SSIM, 1 = unchanged). With every layer "
            f"re-initialised they are {last}. The maps of another class, drawn at random, on the intact model: "
            f"{result.random_class_spearman.mean():.2f} and {result.random_class_ssim.mean():.2f}.")


def _ranking_table(summary):
    """Methods (rows, by mean rank) x metrics: the mean and the rank, the first in bold."""
    from convviz.evaluation import METRICS

    mean_ranks = summary.mean_ranks()
    order = sorted(summary.methods, key=lambda m: (mean_ranks[m], summary.methods.index(m)))
    ranks = {metric: summary.ranks(metric) for metric in summary.metrics}
    arrows = {True: "\u2191", False: "\u2193"}
    header = ["method"] + [f"{METRICS[m].title} {arrows[METRICS[m].higher_is_better]}"
                           for m in summary.metrics] + ["mean rank"]
    rows = []
    for method in order:
        cells = [nodes.Text(summary.titles.get(method, method))]
        for metric in summary.metrics:
            text = f"{summary.row(method, metric).mean:.3f} ({ranks[metric][method]})"
            cells.append(nodes.strong(text=text) if ranks[metric][method] == 1 else nodes.Text(text))
        cells.append(nodes.Text(f"{mean_ranks[method]:.1f}"))
        rows.append(cells)
    table = nodes.table(classes=["convviz-ranking"])
    group = nodes.tgroup(cols=len(header))
    table += group
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    for target, cells in ((head, [nodes.Text(h) for h in header]), *((body, r) for r in rows)):
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            paragraph = nodes.paragraph()
            paragraph += cell
            entry += paragraph
            row += entry
        target += row
    return table


def _ranking_note(table) -> str:
    from convviz.evaluation import _COMPUTATION_TITLES

    summary, settings = table.summary(), table.settings
    titles = summary.titles
    grouped: dict[str, list[str]] = {}  # the same options for several methods, said once
    for method, options in settings.get("method_options", {}).items():
        if options:
            grouped.setdefault(", ".join(f"{k}={v}" for k, v in options.items()), []).append(titles.get(method, method))
    said = [f"{text} for {', '.join(names)}" for text, names in grouped.items()]
    said += [f"{_COMPUTATION_TITLES.get(name, name)} with " + ", ".join(f"{k}={v}" for k, v in options.items())
             for name, options in settings.get("metric_options", {}).items() if options]
    seconds = settings.get("seconds")
    return (
        f"Each cell: the mean over {summary.images} image(s) and, in brackets, the method's rank by that metric "
        "(1, in bold, is the most faithful; \u2191 higher is better, \u2193 lower). Rows by mean rank. "
        f"{summary.confidence:.0%} bootstrap intervals ({summary.bootstrap} resamples) are in the figure below."
        + (f" Options: {'; '.join(said)}." if said else "")
        + (f" Computed in {seconds:.0f} s on {table.info.get('backend', '?')} when this page was built." if seconds
           else "")
    )


def setup(app):
    """Register the ``convviz-gallery`` and ``convviz-evaluation`` directives and their
    cache setting."""
    import convviz

    app.add_config_value("convviz_gallery_cache", "_convviz_cache", "env")
    app.add_directive("convviz-gallery", GalleryDirective)
    app.add_directive("convviz-evaluation", EvaluationDirective)
    return {"version": convviz.__version__, "parallel_read_safe": True, "parallel_write_safe": True}
