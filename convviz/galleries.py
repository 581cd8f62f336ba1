"""Figure galleries: every convviz figure for a model and a few images, in one folder.

:func:`gallery` writes PNG figures (activation grids per layer and image, filter
patterns per layer, a class activation map per image for each CAM method asked for,
the CAM methods side by side, the pixel attributions of each attribution method asked
for, how faithful the CAM methods' maps are, the sparsity curve) and an ``index.html``
that shows them with captions. The ``convviz gallery`` command and the Sphinx directive
(:mod:`convviz.sphinxext`) are thin layers over it.
"""

from __future__ import annotations

import json
import pathlib
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from convviz import _html, _layers, plot
from convviz._files import build_atomically, check_out_dir
from convviz._validation import check_positive_int, check_verbose
from convviz.errors import InputError
from convviz.evaluation import (
    _computations,
    _evaluate,
    _StepLines,
    _summary_caption,
    metric_names,
)
from convviz.filter_patterns import filters as find_patterns
from convviz.inspector import Inspector
from convviz.methods import LayerMethod, get_method, method_names
from convviz.methods.core import class_name, class_probability, option_names
from convviz.parametrizations import PARAMETRIZATIONS
from convviz.sources import (
    BUILTIN_MODELS,
    builtin_model,
    load_images,
    open_inputs,
    open_model,
    unique_names,
)
from convviz.sparsity_stats import sparsity

__all__ = [
    "BUILTIN_MODELS",
    "DEFAULT_KINDS",
    "Gallery",
    "GalleryFigure",
    "builtin_model",
    "gallery",
    "kinds",
    "load_images",
    "open_model",
]

DEFAULT_KINDS = ("activations", "filters", "gradcam", "sparsity")

DEEP_PARAMETRIZATION = "fft"
"""The filter patterns' parametrisation for layers after the first convolution
(``filter_parametrization="auto"``): the one that scored best on EfficientNet-Lite0's
deep layers (robust activation, selectivity, natural-image spectrum; see the filters page)."""

FILTER_STEPS = {"pixel": 30, "fft": 128, "maco": 64}
"""Default steps per parametrisation in a gallery: the chapter's 30 for pixel ascent; for
``fft`` and ``maco`` a quarter of their references' 512 and 256, which already give
structured patterns and keep a gallery of a deep model within a minute or two per layer."""
"""The figure kinds a gallery holds unless told otherwise, in page order."""


def kinds() -> tuple[str, ...]:
    """Every figure kind a gallery can hold, in page order: activation grids, filter
    patterns, one kind per registered CAM method (``convviz.methods.method_names("cam")``),
    ``"cam_methods"`` (the CAM methods side by side, one figure for all images), one kind
    per registered pixel attribution method (``method_names("attribution")``),
    ``"faithfulness"`` (the CAM methods' maps judged by :func:`convviz.evaluate`) and the
    sparsity curve.

    >>> kinds()[:3], kinds()[-2:]
    (('activations', 'filters', 'gradcam'), ('faithfulness', 'sparsity'))
    >>> kinds().index("cam_methods") < kinds().index("integrated_gradients") < kinds().index("faithfulness")
    True
    """
    # No method takes the name of another kind: convviz.methods.core.RESERVED holds them.
    return (
        "activations",
        "filters",
        *method_names("cam"),
        "cam_methods",
        *method_names("attribution"),
        "faithfulness",
        "sparsity",
    )


@dataclass
class GalleryFigure:
    """One figure of a gallery.

    Attributes
    ----------
    kind : str
        One of :func:`kinds`.
    file : str
        Path of the PNG relative to the gallery folder.
    title : str
        Short heading (a layer or image name).
    caption : str
        What the figure shows: layer, shape, predicted class and probability...
    group : str
        Sub-heading the figure is shown under (the image, for activation grids).
    """

    kind: str
    file: str
    title: str
    caption: str
    group: str = ""


@dataclass
class Gallery:
    """What :func:`gallery` wrote.

    Attributes
    ----------
    path : pathlib.Path
        The gallery folder.
    model : str
        The model's name.
    figures : list of GalleryFigure
        In page order.
    info : dict
        Model facts shown on the page (parameters, input shape, backend...).
    """

    path: pathlib.Path
    model: str
    figures: list[GalleryFigure] = field(default_factory=list)
    info: dict = field(default_factory=dict)

    @property
    def index(self) -> pathlib.Path:
        """The gallery's ``index.html``."""
        return self.path / "index.html"

    def files(self, kind: str | None = None) -> list[pathlib.Path]:
        """Absolute paths of the figures, optionally of one kind."""
        return [self.path / f.file for f in self.figures if kind is None or f.kind == kind]

    def plot(self, kind: str | None = None, *, ncols: int = 3, figsize=None, save=None):
        """The gallery's figures (of one ``kind``) as panels of one matplotlib figure,
        each under its title.

        Examples
        --------
        >>> import keras, numpy as np, convviz
        >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
        ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
        >>> g = convviz.gallery(model, np.zeros((1, 16, 16, 3)), "g", kinds="gradcam", verbose=False)  # doctest: +SKIP
        >>> len(g.plot("gradcam").axes)  # doctest: +SKIP
        1
        """
        from PIL import Image

        figures = [f for f in self.figures if kind is None or f.kind == kind]
        if not figures:
            raise InputError(
                f"This gallery has no figure of kind {kind!r}; it has {sorted({f.kind for f in self.figures})}."
            )
        pictures = [np.asarray(Image.open(self.path / f.file).convert("RGB")) for f in figures]
        titles = [f"{f.group}: {f.title}" if f.group else f.title for f in figures]
        return plot.panels(pictures, titles=titles, ncols=ncols, figsize=figsize, save=save)

    def __repr__(self) -> str:
        counts = ", ".join(
            f"{k}={len(self.files(k))}" for k in dict.fromkeys(f.kind for f in self.figures)
        )
        return f"Gallery({str(self.path)!r}, model={self.model!r}, {counts})"


# --------------------------------------------------------------------------- #
# The gallery
# --------------------------------------------------------------------------- #


def gallery(
    model,
    images,
    out_dir,
    *,
    kinds: Sequence[str] = DEFAULT_KINDS,
    layers=None,
    filter_layers=None,
    filters: int = 16,
    filter_steps: int | None = None,
    filter_parametrization: str = "auto",
    max_channels: int = 64,
    cam_layer: str | None = None,
    class_names: Sequence[str] | None = None,
    image_names: Sequence[str] | None = None,
    sparsity_data=None,
    output=None,
    overwrite: bool = False,
    verbose: bool = True,
) -> Gallery:
    """Write every convviz figure for ``model`` and ``images`` into ``out_dir``.

    The folder gets ``activations/``, ``filters/`` and ``gradcam/`` (a folder per CAM
    method) PNGs, ``cam_methods.png``, one PNG per attribution method
    (``integrated_gradients.png``...), ``faithfulness.png`` and its CSV tables,
    ``sparsity.png`` and ``sparsity.csv``, a
    ``gallery.json`` manifest and an ``index.html`` that shows the figures with
    captions (layer names and shapes, predicted classes and probabilities). It is
    written in a temporary sibling folder and renamed when complete, so a failure
    leaves nothing half-written.

    Parameters
    ----------
    model : keras.Model, path or str
        A built model, a ``.keras`` file, or a name from :data:`BUILTIN_MODELS`
        (``"efficientnet_lite0"``: real ImageNet weights, offline).
    images : image or list of images
        Paths, arrays, PIL images, or ``"skimage:NAME"`` for a photo shipped with
        scikit-image (``"skimage:chelsea"``). They are resized to the model's input.
    out_dir : path
        Created; if it exists it must be empty unless ``overwrite=True``.
    kinds : sequence of str
        Which figure kinds, from :func:`kinds`: ``"activations"``, ``"filters"``,
        ``"sparsity"``, any CAM method name (``"gradcam"``, ``"gradcam_plusplus"``,
        ...: one overlay per image) and ``"cam_methods"``: one figure with a row per
        image and a column per CAM method. It compares the CAM methods also named in
        ``kinds``, or every registered one (``convviz.methods.method_names("cam")``)
        when ``kinds`` names none; each method runs once for both. Any pixel
        attribution method name (``"saliency"``, ``"integrated_gradients"``, ...; see
        :func:`convviz.attribute`) adds one figure: a row per image with the image and
        its attributions signed, in magnitude and over the image
        (:func:`convviz.plot.attributions`' ``"all"`` view). ``"faithfulness"``
        judges the CAM methods named in ``kinds`` (Grad-CAM when none is) with
        :func:`convviz.evaluate`'s default metrics on the gallery's images (their maps
        are computed once for every figure): one figure with each metric's mean and
        its bootstrap interval per method, the numbers in its caption, and
        ``faithfulness.csv`` (one line per method, image and metric) and
        ``faithfulness_summary.csv``. Default: :data:`DEFAULT_KINDS`.
    layers : list of str, optional
        Layers for activation grids and the sparsity curve. Default: the conv and
        pooling layers, thinned to 8 evenly spaced ones for deep models.
    filter_layers : list of str, optional
        Layers whose filter patterns are drawn. Default: the first, middle and last
        convolution layers.
    filters : int
        Filters drawn per layer (the first ``filters`` channels).
    filter_steps : int or None
        Optimisation steps per pattern. Default: :data:`FILTER_STEPS` of the
        parametrisation (30 for the chapter's pixel ascent, 128 for ``fft``, 64 for ``maco``).
    filter_parametrization : {"auto", "pixel", "fft", "maco"}
        How the filter patterns are optimised (:func:`convviz.filters`). ``"auto"``
        (default): the chapter's pixel ascent for the model's first convolution, whose
        patterns are colours and edges it renders well, and :data:`DEEP_PARAMETRIZATION`
        for deeper layers, where pixel ascent gives high-frequency noise (the measures
        on the :doc:`filters page </user_guide/filters>` chose it).
    max_channels : int
        Channels drawn per activation grid (the first ones).
    cam_layer : str, optional
        The layer every CAM method explains (name or ``outer/inner`` path). Default:
        the methods' own, the last convolution. A layer with fewer channels makes the
        gradient-free methods faster: Score-CAM runs the model once per channel and
        image. Attribution methods take no layer: they explain the input pixels.
    class_names : sequence of str, optional
        Output class names, for captions. For a single sigmoid unit give two names
        (negative, positive). Built-in ImageNet models name their classes already.
    image_names : sequence of str, optional
        Captions for the images (default: file stems).
    sparsity_data : optional
        Data for the sparsity curve (anything :func:`convviz.sparsity` streams);
        default: the gallery's images.
    output : str or int, optional
        For a model with several outputs, the one the CAM and attribution figures
        explain (as :func:`convviz.explain`); required then.
    overwrite : bool
        Replace an existing non-empty ``out_dir``.
    verbose : bool
        Print progress to standard error: a line per step (each method is named as
        it starts), and a progress bar while a method runs its perturbed inputs
        (Score-CAM's masked images, integrated gradients' interpolation steps...).

    Returns
    -------
    Gallery

    Raises
    ------
    InputError
        ``out_dir`` is not empty (without ``overwrite``), an image cannot be read, an
        unknown kind or model name.

    Examples
    --------
    >>> import keras, convviz
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")])
    >>> g = convviz.gallery(model, ["skimage:chelsea"], "cat_gallery", verbose=False)  # doctest: +SKIP
    >>> g.index  # doctest: +SKIP
    PosixPath('cat_gallery/index.html')
    """
    kinds = _check_kinds(kinds)
    verbose = check_verbose(verbose)
    target = check_out_dir(out_dir, overwrite=overwrite)
    net, raw, names, builtin_names = open_inputs(model, images)
    if class_names is None:
        class_names = builtin_names
    if image_names is not None:
        if len(image_names) != len(raw):
            raise InputError(f"{len(raw)} images but {len(image_names)} image_names.")
        names = unique_names([str(n) for n in image_names])
    inspector = Inspector.of(net)
    batch = inspector.prepare(_same_size(raw, inspector))
    check_positive_int(filters, "filters")
    if filter_steps is not None:
        check_positive_int(filter_steps, "filter_steps")
    if filter_parametrization not in ("auto", *PARAMETRIZATIONS):
        raise InputError(
            f"filter_parametrization must be 'auto', 'pixel', 'fft' or 'maco'; got "
            f"{filter_parametrization!r}."
        )
    check_positive_int(max_channels, "max_channels")
    act_layers = _default_layers(inspector) if layers is None else inspector.select_layers(layers)
    if cam_layer is not None:
        cam_layer = inspector.find_layer(cam_layer).name
    if "filters" in kinds:
        conv_layers = (
            _default_filter_layers(inspector)
            if filter_layers is None
            else inspector.select_layers(filter_layers)
        )
    else:
        conv_layers = []

    result = Gallery(path=target, model=net.name, info=_html.model_info(net, inspector, len(batch)))
    cams = [k for k in kinds if k in method_names("cam")]
    compared = (cams or method_names("cam")) if "cam_methods" in kinds else []
    judged = (cams or ["gradcam"]) if "faithfulness" in kinds else []
    attributions = [k for k in kinds if k in method_names("attribution")]
    # The explained output of a model with several (an error naming them when not chosen).
    explained = inspector.for_output(output) if cams or compared or judged or attributions else inspector
    steps = (
        ("activations" in kinds) * len(batch) * len(act_layers)
        + len(conv_layers)
        + len({*cams, *compared, *judged})
        + bool(compared)
        + len(attributions)
        + len(judged) * len(_computations(metric_names(default=True), None))
        + ("sparsity" in kinds)
    )
    progress = _StepLines(steps, verbose)
    explain = _Explanations(explained, batch, cam_layer, verbose, progress)
    builders: dict[str, Callable] = {
        "activations": lambda tmp: _activation_figures(
            inspector, batch, names, act_layers, max_channels, tmp, progress
        ),
        "filters": lambda tmp: _filter_figures(
            inspector, conv_layers, filters, filter_steps, filter_parametrization, tmp, progress
        ),
        "cam_methods": lambda tmp: _cam_methods_figure(
            explain, compared, batch, names, class_names, tmp, progress
        ),
        "faithfulness": lambda tmp: _faithfulness_figure(
            explain, judged, explained, batch, names, cam_layer, tmp, verbose, progress
        ),
        "sparsity": lambda tmp: _sparsity_figures(
            inspector, batch if sparsity_data is None else sparsity_data, act_layers, tmp, progress
        ),
    }
    for method in cams:
        builders[method] = lambda tmp, method=method: _cam_figures(
            explain(method), batch, names, class_names, tmp
        )
    for method in attributions:
        builders[method] = lambda tmp, method=method: _attribution_figures(
            explain(method), batch, names, class_names, tmp
        )

    def build(tmp: pathlib.Path) -> None:
        for kind in kinds:
            result.figures += builders[kind](tmp)
        (tmp / "gallery.json").write_text(_manifest(result), encoding="utf-8")
        (tmp / "index.html").write_text(
            _html.page(result, _section_titles(kinds)), encoding="utf-8"
        )

    build_atomically(target, build)
    progress.say(f"Gallery written in {progress.elapsed:.1f} s: {target / 'index.html'}")
    return result


def _check_kinds(requested) -> tuple[str, ...]:
    known = kinds()
    if requested is None:
        return DEFAULT_KINDS
    if isinstance(requested, str):
        requested = [requested]
    requested = tuple(requested)
    unknown = [k for k in requested if k not in known]
    if unknown or not requested:
        raise InputError(f"Unknown figure kind(s) {unknown}; choose from {', '.join(known)}.")
    return tuple(k for k in known if k in requested)  # page order, each once


def _section_titles(selected) -> dict[str, str]:
    fixed = {
        "activations": "Activations",
        "filters": "Filter patterns",
        "cam_methods": "CAM methods compared",
        "faithfulness": "Faithfulness",
        "sparsity": "Sparsity across depth",
    }
    return {k: fixed[k] if k in fixed else get_method(k).title for k in selected}


def _same_size(images: list[np.ndarray], inspector: Inspector):
    h, w = inspector.input_shape[:2]
    if h is not None and w is not None:
        return [np.asarray(im) for im in images]  # prepare() resizes each one
    sizes = {im.shape[:2] for im in images}
    if len(sizes) > 1:
        raise InputError(
            f"The model takes any image size, so the images must share one; got sizes {sorted(sizes)}."
        )
    return images


def _spread(names: list[str], k: int) -> list[str]:
    if len(names) <= k:
        return names
    picks = np.unique(np.linspace(0, len(names) - 1, k).round().astype(int))
    return [names[i] for i in picks]


def _default_layers(inspector: Inspector) -> list[str]:
    return _spread(inspector.feature_layers(), 8)


def _default_filter_layers(inspector: Inspector) -> list[str]:
    convs = [
        info.name
        for info in inspector.layers()
        if _layers.is_conv(info.layer) and len(info.output_shape) == 4
    ]
    if not convs:
        raise InputError(
            "The model has no convolution layer to draw filters for; pass filter_layers=[...]."
        )
    return _spread(convs, 3)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def _save(fig, tmp: pathlib.Path, rel: str) -> str:
    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(tmp / rel, dpi=fig.dpi, bbox_inches="tight")
    return rel


def _activation_figures(inspector, batch, names, layers, max_channels, tmp, progress):
    acts = inspector.activations(batch, layers=layers)
    figures = []
    for i, image_name in enumerate(names):
        for layer in layers:
            a = acts[layer]
            progress.step(f"activation grid {layer} ({image_name})")
            if a.ndim != 4:
                continue
            channels = a.shape[-1]
            shown = a[i : i + 1, ..., :max_channels]
            fig = plot.activations(
                {layer: shown}, ncols=min(16, shown.shape[-1]), figsize=(8.0, None)
            )
            rel = _save(fig, tmp, f"activations/{i:02d}_{_slug(image_name)}/{_slug(layer)}.png")
            note = (
                f", first {max_channels} of {channels} channels" if channels > max_channels else ""
            )
            figures.append(
                GalleryFigure(
                    "activations",
                    rel,
                    layer,
                    f"Layer {layer}: output {_html.shape_text(a.shape[1:])}{note}, for {image_name}; "
                    "each tile is one channel, standardised.",
                    group=image_name,
                )
            )
    return figures


def _filter_figures(inspector, layers, n_filters, steps, parametrization, tmp, progress):
    h, w = inspector.input_shape[:2]
    size = (h or 200, w or 200)
    first = _default_filter_layers(inspector)[0]
    figures = []
    for layer in layers:
        progress.step(f"filters {layer}")
        channels = inspector.find_layer(layer).output_shape[-1]
        count = min(n_filters, channels)
        p = parametrization
        if p == "auto":
            p = "pixel" if layer == first else DEEP_PARAMETRIZATION
        n_steps = steps or FILTER_STEPS[p]
        crop = min(25, min(size) // 8) if p == "pixel" else 0
        patterns = find_patterns(
            inspector,
            layer,
            filters=range(count),
            parametrization=p,
            steps=n_steps,
            size=size,
            crop=crop,
            verbose=False,
        )
        fig = plot.filters(patterns, title=f"{layer}: filters 0\u2013{count - 1} of {channels}")
        rel = _save(fig, tmp, f"filters/{_slug(layer)}.png")
        how = {
            "pixel": "gradient-ascent steps on the pixels from grey noise",
            "fft": "Adam steps on a decorrelated Fourier spectrum under random transforms",
            "maco": "NAdam steps on the phase of a natural-image spectrum, on random crops",
        }[p]
        figures.append(
            GalleryFigure(
                "filters",
                rel,
                layer,
                f"Layer {layer}: the input pattern that most activates each of its first {count} of "
                f"{channels} filters ({n_steps} {how} at {size[0]}\u00d7{size[1]}; mean activation "
                f"reached {float(np.mean(patterns.losses)):.3g}).",
            )
        )
    return figures


def _describe_prediction(pred: np.ndarray, cls: int, class_names) -> tuple[str, str]:
    """(explained class with its probability, top classes) for one image."""
    label = f"{class_name(cls, class_names)} (p={class_probability(pred, cls):.3f})"
    if pred.shape[-1] == 1:  # one sigmoid unit: class 1 = the unit, 0 = its complement
        p = float(pred[0])
        return (
            label,
            f"{class_name(1, class_names)} {p:.3f} / {class_name(0, class_names)} {1 - p:.3f}",
        )
    top = np.argsort(-pred, kind="stable")[:3]
    return label, ", ".join(f"{class_name(int(c), class_names)} {float(pred[c]):.3f}" for c in top)


class _Explanations:
    """Each method's explanation of the gallery's images, computed once on first
    request (a CAM's own section and the comparison share it), with a progress line
    naming the method as it starts."""

    def __init__(self, inspector, batch, layer, verbose, progress):
        self.inspector, self.batch, self.layer, self.verbose, self.progress = (
            inspector,
            batch,
            layer,
            verbose,
            progress,
        )
        self.done: dict = {}

    def __call__(self, method: str, *, why: str = ""):
        if method not in self.done:
            cls = get_method(method)
            # A method's own bar shows its perturbed inputs (masked images, interpolation steps...).
            options = {"verbose": self.verbose} if "verbose" in option_names(cls) else {}
            if self.layer is not None and issubclass(
                cls, LayerMethod
            ):  # attributions take no layer
                options["layer"] = self.layer
            explainer = cls(self.inspector, **options)
            where = f" at {explainer.layer}" if getattr(explainer, "layer", None) else ""
            self.progress.step(f"{why}{method} ({cls.title}){where}, {len(self.batch)} image(s)")
            self.done[method] = explainer.explain(self.batch)
        return self.done[method]


def _cam_figures(explained, batch, names, class_names, tmp):
    method, title = explained.method, get_method(explained.method).title
    h, w = explained.maps.shape[1:]
    figures = []
    for i, image_name in enumerate(names):
        label, top = _describe_prediction(
            explained.predictions[i], int(explained.class_index[i]), class_names
        )
        fig = plot.gradcam(batch[i], explained.maps[i], titles=[label], figsize=(4.0, 4.0))
        rel = _save(fig, tmp, f"{method}/{i:02d}_{_slug(image_name)}.png")
        figures.append(
            GalleryFigure(
                method,
                rel,
                f"{image_name}: {label}",
                f"{title} of {label} at layer {explained.layer} ({h}\u00d7{w} map, upsampled). "
                f"Top predictions: {top}.",
            )
        )
    return figures


def _cam_methods_figure(explain, methods, batch, names, class_names, tmp, progress):
    titles = [get_method(m).title for m in methods]
    results = {  # column headings: the titles, with the name where two share one
        title if titles.count(title) == 1 else f"{title} ({m})": explain(m, why="cam_methods: ")
        for m, title in zip(methods, titles)
    }
    progress.step(f"cam_methods: {len(results)} methods \u00d7 {len(batch)} image(s)")
    first = next(iter(results.values()))
    labels, rows = [], []
    for i, image_name in enumerate(names):
        label = _describe_prediction(first.predictions[i], int(first.class_index[i]), class_names)[
            0
        ]
        # Each method explains the image's top class; say so should one see another.
        others = [
            f"{title}: {_describe_prediction(r.predictions[i], int(r.class_index[i]), class_names)[0]}"
            for title, r in results.items()
            if int(r.class_index[i]) != int(first.class_index[i])
        ]
        labels.append(f"{image_name}: {label}" + (f" ({'; '.join(others)})" if others else ""))
        rows.append(f"{image_name}\n{label}")
    fig = plot.cam_methods(batch, results, row_titles=rows, figsize=(2.5 * len(results), None))
    rel = _save(fig, tmp, "cam_methods.png")
    layers = ", ".join(dict.fromkeys(r.layer for r in results.values()))
    h, w = first.maps.shape[1:]
    return [
        GalleryFigure(
            "cam_methods",
            rel,
            f"CAM methods at {layers}",
            f"{', '.join(results)} at layer {layers} ({h}\u00d7{w} maps, upsampled), one column per method "
            f"and one row per image, each explaining the image's class: {'; '.join(labels)}.",
        )
    ]


def _attribution_figures(explained, batch, names, class_names, tmp):
    """One figure for all images: a row per image, the ``"all"`` view."""
    method, title = explained.method, get_method(explained.method).title
    rows, notes = [], []
    for i, image_name in enumerate(names):
        label, top = _describe_prediction(
            explained.predictions[i], int(explained.class_index[i]), class_names
        )
        rows.append(f"{image_name}\n{label}")
        notes.append(
            f"{image_name}: {label}{_completeness(explained.details, i)}; top predictions: {top}"
        )
    fig = plot.attributions(batch, explained.maps, view="all", titles=rows, figsize=(12.0, None))
    rel = _save(fig, tmp, f"{method}.png")
    options = ", ".join(f"{k}={v}" for k, v in explained.options.items() if k != "logits")
    h, w = explained.input_size
    return [
        GalleryFigure(
            method,
            rel,
            f"{title}: {', '.join(names)}",
            f"{title}{f' ({options})' if options else ''}: which of the {h}\u00d7{w} input pixels moved each "
            "image's class score. Left to right: the image; its attributions summed over the colour channels, "
            "signed (red for the class, blue against); their magnitude; the magnitude over the image. Each map "
            f"is clipped at the 99th percentile of its magnitudes. {'. '.join(notes)}.",
        )
    ]


def _completeness(details: dict, i: int) -> str:
    """How far image ``i``'s attributions sum from its score's change (integrated
    gradients' completeness), when the method reports it."""
    if "completeness_gap" not in details:
        return ""
    text = f", completeness gap {float(details['completeness_gap'][i]):+.3g}"
    if "score_difference" in details:
        text += f" on a score change of {float(details['score_difference'][i]):.3g}"
    if "relative_gap" in details:
        relative = float(details["relative_gap"][i])
        text += " (under 0.1%)" if relative < 0.001 else f" ({relative:.1%})"
    if "steps" in details:
        text += f" with {int(details['steps'][i])} steps"
    return text


def _faithfulness_figure(explain, methods, inspector, batch, names, layer, tmp, verbose, progress):
    """The CAM methods judged on the gallery's images, with the maps it already has."""
    options = {
        m: {"layer": layer}
        for m in methods
        if layer is not None and issubclass(get_method(m), LayerMethod)
    }
    chosen = metric_names(default=True)
    table = _evaluate(
        inspector,
        batch,
        methods,
        chosen,
        explain=lambda m: explain(m, why="faithfulness: "),
        method_options=options,
        computations=_computations(chosen, None),
        boxes=None,
        image_names=names,
        seed=0,
        bootstrap=1000,
        batch_size=None,
        verbose=verbose,
        steps=progress,
    )
    summary = table.summary()
    table.to_csv(tmp / "faithfulness.csv")
    summary.to_csv(tmp / "faithfulness_summary.csv")
    rel = _save(summary.plot(), tmp, "faithfulness.png")
    layers = ", ".join(dict.fromkeys(explain(m).layer for m in methods))
    return [
        GalleryFigure(
            "faithfulness",
            rel,
            f"Faithfulness of {', '.join(summary.titles.values())}",
            f"How faithful each CAM method's maps at layer {layers} are to the model, on the {len(names)} image(s) "
            f"(convviz.evaluate's default metrics; tables: faithfulness.csv, faithfulness_summary.csv). "
            + _summary_caption(summary),
        )
    ]


def _sparsity_figures(inspector, data, layers, tmp, progress):
    progress.step("sparsity")
    table = sparsity(inspector, data, layers=layers, verbose=False)
    table.to_csv(tmp / "sparsity.csv")
    rel = _save(table.plot(), tmp, "sparsity.png")
    first, last = table.rows[0], table.rows[-1]
    return [
        GalleryFigure(
            "sparsity",
            rel,
            "Sparsity across depth",
            f"Over {table.images} image(s): the fraction of blank channels goes from "
            f"{first.blank_fraction:.0%} at {first.layer} to {last.blank_fraction:.0%} at {last.layer}; "
            f"zero activations from {first.zero_fraction:.0%} to {last.zero_fraction:.0%} "
            "(table: sparsity.csv).",
        )
    ]


def _manifest(result: Gallery) -> str:
    return json.dumps(
        {
            "model": result.model,
            "info": result.info,
            "figures": [asdict(f) for f in result.figures],
        },
        indent=2,
    )
