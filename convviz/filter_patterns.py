"""Filter visualization: the input pattern each filter responds to, by gradient ascent.

The chapter's algorithm, batched over filters: start from a grey noise image,
repeatedly move it along the normalised gradient of the filter's mean activation,
then display the result. Many filters are optimised together, one batch element per
filter, in one compiled step per iteration (see :func:`convviz._autodiff.ascent_step`).

Conventions (all documented on :func:`filters`):

- **Pixel range.** The start image and the step size follow the model's input
  range, ``pixel_range`` (default ``(0, 255)``). The chapter starts from uniform noise
  in [0.4, 0.6] with steps of length 10 for a model taking [0, 1] inputs; convviz
  maps both into ``pixel_range``: the start is uniform in
  ``lo + [0.4, 0.6] * (hi - lo)`` and each step has L2 length
  ``learning_rate * (hi - lo)``.
- **Gradient normalisation.** Each image's gradient is divided by its own L2 norm
  over (H, W, C) (:func:`normalize_gradient`), the 2nd edition's global normalisation
  applied per batch element, so batching never couples filters.
- **Batching.** Filters are processed in chunks sized so that the activations kept
  for the backward pass stay within ``memory_budget`` (:func:`chunk_size`).
- **Seeds.** Filter ``f``'s start image depends only on ``(seed, f)``, so results do
  not depend on how filters are chunked.

The figure is :func:`convviz.plot.filters` (also :meth:`FilterPatterns.plot`);
:func:`filter_grid`, the tiled image it shows, is importable from here too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import keras
import numpy as np

from convviz import _feature_ascent, _layers, plot
from convviz._autodiff import ascent_step
from convviz._feature_ascent import loss_window as _loss_window
from convviz._feature_ascent import normalize_gradient  # re-exported: the chapter's step
from convviz._progress import Progress
from convviz._validation import (
    check_batch_size,
    check_choice,
    check_image_size,
    check_positive_int,
    check_seed,
    check_verbose,
    keyword_only,
)
from convviz.errors import InputError, ModelStructureError, layer_error_reason
from convviz.inspector import Inspector, LayerInfo
from convviz.parametrizations import PARAMETRIZATIONS
from convviz.plot import filter_grid  # re-exported: the grid is numeric, the figure is plot.filters

__all__ = [
    "FilterPatterns",
    "chunk_size",
    "deprocess",
    "display",
    "filter_grid",
    "filters",
    "normalize_gradient",
    "start_images",
]

DEFAULT_MEMORY_BUDGET = 1 << 30
"""Bytes of activations (and their gradients) one chunk may keep: 1 GiB."""

_START_LOW, _START_HIGH = 0.4, 0.6  # the chapter's start noise, as fractions of the range
_BYTES_PER_ELEMENT = 4 * 2  # float32 activation kept for the backward pass + its gradient
_CHAPTER_CROP = 25
_DEFAULT_STEPS = {"pixel": 30, "fft": 512, "maco": 256}
_DEFAULT_RATES = {"pixel": 10.0, "fft": 0.05, "maco": 1.0}
_OPTIMIZERS = {"pixel": "normalized", "fft": "adam", "maco": "nadam"}
_AUTO_TRANSFORMS = {"pixel": "none", "fft": "standard", "maco": "crops"}


@dataclass(frozen=True, eq=False)
class FilterPatterns:
    """What :func:`filters` returns: one pattern per filter.

    Attributes
    ----------
    images : numpy.ndarray
        uint8 (N, H - 2 * crop, W - 2 * crop, C): the chapter's display of each pattern
        (:func:`deprocess`). C is the model's input channels (3 for RGB models).
    losses : numpy.ndarray
        float32 (N,): the chapter's loss, the filter's mean activation (2-pixel
        border excluded), on the final ``raw`` image.
    layer : str
        The layer's name as convviz reports it (``outer/inner`` when ambiguous).
    filter_indices : numpy.ndarray
        int64 (N,): which filter each pattern belongs to.
    raw : numpy.ndarray
        float32 (N, H, W, C): the final images before display, in the model's input
        units (``pixel_range``), uncropped.
    seed : int
        The seed that reproduces this result (drawn at random when ``seed=None``).
    parametrization : str
        ``"pixel"``, ``"fft"`` or ``"maco"`` (see :mod:`convviz.parametrizations`).
    objective : str
        What each image maximised: ``"channel"`` (a filter's mean activation),
        ``"neuron"`` (its centre unit), ``"direction"`` or ``"class"``
        (:func:`convviz.visualize`).
    transparency : numpy.ndarray or None
        MaCo only: float32 (N, H, W), the absolute gradient of the objective with
        respect to the image summed over the steps and channels, uncropped: where the
        image mattered to the objective (MaCo's transparency map).
    images_per_filter : int
        Images per filter (with ``diversity``); the copies of a filter are consecutive.
    """

    images: np.ndarray
    losses: np.ndarray
    layer: str
    filter_indices: np.ndarray
    raw: np.ndarray
    seed: int
    parametrization: str = "pixel"
    objective: str = "channel"
    transparency: np.ndarray | None = None
    images_per_filter: int = 1

    def __len__(self) -> int:
        return len(self.images)

    def plot(self, **kwargs):
        """:func:`convviz.plot.filters` of these patterns; keyword arguments are passed on
        (``ncols``, ``margin``, ``title``, ``figsize``, ``save``, ``transparency`` for MaCo
        results). Returns a matplotlib Figure."""
        return plot.filters(self, **kwargs)

    def __repr__(self) -> str:
        return (
            f"FilterPatterns(layer={self.layer!r}, filters={len(self)}, "
            f"images={self.images.shape}, parametrization={self.parametrization!r}, "
            f"objective={self.objective!r}, seed={self.seed})"
        )


@keyword_only(2, "filters")
def filters(
    model,
    layer,
    *,
    filters=None,
    parametrization: str = "pixel",
    transforms="auto",
    objective: str = "channel",
    steps: int | None = None,
    learning_rate: float | None = None,
    size=(200, 200),
    seed: int | None = 0,
    pixel_range=(0.0, 255.0),
    crop: int | None = None,
    images_per_filter: int = 1,
    diversity: float = 0.0,
    crops: int = 4,
    jitter: int = 0,
    blur: float = 0.0,
    tv: float = 0.0,
    batch_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    verbose: bool = True,
) -> FilterPatterns:
    """The input pattern each filter of ``layer`` responds to most (gradient ascent).

    By default, the chapter's method: for each filter ``f``, starting from grey noise,
    ``steps`` times: compute the chapter's loss ``mean(activation[:, 2:-2, 2:-2, f])``,
    take its gradient with respect to the image, divide it by its L2 norm (per image,
    over H, W and C) and add ``learning_rate * (hi - lo)`` times it to the image. The
    final image is shown standardised, ``x * 64 + 128``, clipped and cropped
    (:func:`deprocess`). Only the model up to ``layer`` runs; augmentation and dropout
    are inactive.

    On deep layers of ImageNet networks pixel ascent gives high-frequency noise. Two
    parametrisations of the field fix that (:mod:`convviz.parametrizations`):
    ``parametrization="fft"`` (Lucid: a decorrelated, 1/f-scaled Fourier spectrum,
    Adam with ``learning_rate`` 0.05, 512 steps, under Lucid's standard random
    transforms) and ``parametrization="maco"`` (MaCo: only the phase of a spectrum
    whose magnitude is that of natural photographs, NAdam with ``learning_rate`` 1.0,
    256 steps, ``crops`` random crops per step with a little noise; the result also
    carries MaCo's ``transparency`` map). Both produce images inside ``pixel_range``
    (a sigmoid), shown as they are. Everything stays batched over filters, compiled
    and seeded.

    Parameters
    ----------
    model : keras.Model, convviz.Inspector or path
        Any model convviz can open, including one whose conv base is a nested model.
    layer : str or keras.Layer
        A layer with a (batch, height, width, channels) output, e.g. a convolution.
        Nested layers are named as usual (``"block3_conv1"`` or ``"vgg16/block3_conv1"``).
    filters : None, int, slice, range or iterable of int
        Which filters (output channels). ``None``: all of them. Keyword-only (passing
        it by position still works, with a DeprecationWarning, until the next release).
    parametrization : {"pixel", "fft", "maco"}
        What is optimised: the pixels (the chapter, default), a Fourier spectrum, or a
        phase under a natural magnitude (see above).
    transforms : {"auto", "standard", "crops", None}
        Random geometric transforms applied before each step (:mod:`convviz.transforms`),
        seeded by ``(seed, step)`` and the same for every image of a step. ``"auto"``:
        none for ``pixel`` (the chapter), ``"standard"`` (Lucid's pad 12, jitter 8,
        scale 0.9-1.1, rotate +-10 degrees, jitter 4, as one affine map) for ``fft``,
        ``"crops"`` (MaCo's random crops) for ``maco``.
    objective : {"channel", "neuron"}
        ``"channel"``: the filter's mean activation (the chapter's loss, a 2-pixel
        border excluded); ``"neuron"``: its single centre unit.
    steps : int or None
        Optimisation steps. Default: 30 (the chapter) for ``pixel``, 512 (Lucid) for
        ``fft``, 256 (MaCo) for ``maco``.
    learning_rate : float or None
        ``pixel``: the L2 length of each step in units of the pixel range (default 10,
        the chapter; the per-pixel step is smaller on larger images). ``fft``: Adam's
        learning rate (default 0.05). ``maco``: NAdam's (default 1.0).
    size : (height, width) or int
        Size of the optimised image (the chapter: 200 x 200). When the model has a
        fixed input size that differs, the model up to ``layer`` is rebuilt on an
        input of this size (its layers and weights are shared, nothing is resized).
        This works for convolutional layers; a layer whose output size is fixed by
        the input size (after a Flatten or Reshape) cannot be visualised at another size.
    seed : int or None
        Seed of the start images (and of the jitter shifts). Filter ``f``'s start image
        depends only on ``(seed, f)``. ``None`` draws a seed (stored in the result).
    pixel_range : (low, high)
        The pixel values the model expects at its input. The default ``(0, 255)`` fits
        the chapter's models and every model that rescales inside (``Rescaling``,
        keras.applications EfficientNet/ConvNeXt, a keras-hub ``ImageConverter``
        inside the model). For a model that expects preprocessed inputs pass their
        range: ``(-1, 1)`` for Xception/MobileNet-style preprocessing or a keras-hub
        backbone used without its converter, ``(0, 1)`` for models trained on
        ``x / 255``. It sets the start noise (uniform in ``lo + [0.4, 0.6] * (hi - lo)``)
        and scales the step size; images are not clipped to it during the ascent.
    crop : int or None
        Pixels removed from each border for display. Default: 25 (the chapter) for
        ``pixel``, 0 for ``fft`` and ``maco``.
    images_per_filter : int
        Images optimised per filter (default 1); with ``diversity`` they are pushed
        apart.
    diversity : float
        Weight of Lucid's diversity term (Olah et al. 2017): the summed cosine
        similarity between the Gram matrices of the layer's activations for different
        images of the same filter, divided by ``images_per_filter``, is subtracted from
        the objective. Needs ``images_per_filter > 1``.
    crops : int
        ``transforms="crops"`` only: random crops per image and step (default 4; MaCo's
        paper uses 32 for a single objective). Each step costs ``crops`` forward and
        backward passes per image.
    jitter : int
        The chapter's method only (as ``blur`` and ``tv``). Regularisation, off by
        default: before each step the batch is rolled
        (circularly) by a random shift of up to ``jitter`` pixels per axis; the
        gradient flows back through the roll. Shifts depend only on ``seed`` and the
        step, so all filters see the same ones.
    blur : float
        Regularisation, off by default: after each step each image is blurred with a
        Gaussian of this standard deviation in pixels (reflected borders). 0.5-1 gives
        smoother patterns on deep layers.
    tv : float
        Regularisation, off by default: weight of a total-variation penalty (mean
        absolute difference between neighbouring pixels, in units of the pixel range)
        subtracted from each filter's loss. Its useful size depends on the layer's
        activation scale.
    batch_size : int or None
        Filters optimised together, a positive integer. Default ``None``: automatic,
        the largest chunk whose activations fit in ``memory_budget`` (:func:`chunk_size`).
    memory_budget : int
        Bytes of activations one chunk may keep (default 1 GiB); see :func:`chunk_size`.
        Only used when ``batch_size`` is None.
    verbose : bool
        A progress bar over filters on standard error, updated per chunk (default
        True). Keras-style 0, 1 and 2 (one line at the end) are accepted.

    Returns
    -------
    FilterPatterns
        ``images`` (uint8), ``losses``, ``layer``, ``filter_indices``, ``raw``, ``seed``.

    Raises
    ------
    convviz.errors.LayerNotFoundError
        Unknown layer (the message lists the closest names).
    convviz.errors.ModelStructureError
        The layer's output is not a (batch, height, width, channels) feature map.
    convviz.errors.InputError
        A filter index out of range, ``steps < 1``, a ``batch_size`` that is neither
        None nor a positive integer, or another invalid argument.

    Examples
    --------
    >>> import convviz
    >>> from convviz import models
    >>> model = models.small_convnet(compile=False)
    >>> patterns = convviz.filters(model, "conv2d_1", filters=range(4), verbose=False)
    >>> patterns.images.shape, patterns.images.dtype
    ((4, 150, 150, 3), dtype('uint8'))
    >>> fig = patterns.plot()  # the chapter's grid, as convviz.plot.filters(patterns)
    >>> fft = convviz.filters(model, "conv2d_1", filters=range(2), parametrization="fft",
    ...                       steps=8, size=64, verbose=False)
    >>> fft.images.shape, fft.parametrization
    ((2, 64, 64, 3), 'fft')
    """
    inspector = Inspector.of(model)
    info = inspector.find_layer(layer)
    _check_feature_map(info)
    objective = check_choice(objective, "objective", ("channel", "neuron"))
    check_positive_int(images_per_filter, "images_per_filter")  # checked as images_per_target below
    options = _resolve(
        parametrization=parametrization,
        transforms=transforms,
        steps=steps,
        learning_rate=learning_rate,
        size=size,
        crop=crop,
        pixel_range=pixel_range,
        images_per_target=images_per_filter,
        diversity=diversity,
        crops=crops,
        batch_size=batch_size,
        memory_budget=memory_budget,
        verbose=verbose,
        seed=seed,
    )
    parametrization, transforms, steps = options.parametrization, options.transforms, options.steps
    (h, w), (lo, hi), crop = options.size, options.pixel_range, options.crop
    learning_rate, entropy = options.learning_rate, options.seed
    images_per_filter = options.images_per_target
    chapter = (
        parametrization == "pixel"
        and transforms == "none"
        and objective == "channel"
        and images_per_filter == 1
    )
    if not chapter and (jitter or blur or tv):
        raise InputError(
            "jitter=, blur= and tv= regularise the chapter's pixel ascent only; with "
            f"parametrization={parametrization!r}, transforms={transforms!r}, "
            f"objective={objective!r} and images_per_filter={images_per_filter} use "
            "transforms='standard' for robustness instead."
        )
    jitter = _non_negative_int(jitter, "jitter")
    blur = _non_negative(blur, "blur")
    tv = _non_negative(tv, "tv")

    head, elements = _head(inspector, info, h, w)
    indices = _filter_indices(filters, head.output.shape[-1], info.name)
    if not chapter:
        weights = np.eye(head.output.shape[-1], dtype=np.float32)[indices]
        spatial = "window" if objective == "channel" else "centre"
        return _optimised(
            inspector, info.name, head, elements, weights, indices, objective, spatial, options
        )
    batch_size = options.batch_size or chunk_size(
        elements, len(indices), memory_budget=options.memory_budget
    )
    step = _step(inspector, info.name, head, h, w, jitter > 0, blur > 0, tv > 0)
    scale = hi - lo
    extra = [
        np.float32(learning_rate * scale),
        np.float32(tv / scale),
        _gaussian_kernel(blur, inspector.input_shape[-1]),
    ]
    shifts = _jitter_shifts(entropy, steps, jitter)
    eye = np.eye(head.output.shape[-1], dtype=np.float32)

    progress = Progress(len(indices), options.verbose, "filter")
    raw_parts, loss_parts = [], []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        x = start_images(entropy, chunk, (h, w, inspector.input_shape[-1]), pixel_range=(lo, hi))
        onehot = eye[chunk]
        for s in range(steps):
            x, _, _ = step(x, onehot, shifts[s], *extra)
        raw = keras.ops.convert_to_numpy(x)
        raw_parts.append(raw)
        loss_parts.append(_chapter_loss(head, raw, chunk))
        progress.add(len(chunk))
    raw = np.concatenate(raw_parts)
    losses = np.concatenate(loss_parts).astype(np.float32)
    inspector.check_finite(raw, {"The filter patterns": raw, "Their objective values": losses})
    return FilterPatterns(
        images=deprocess(raw, crop=crop),
        losses=losses,
        layer=info.name,
        filter_indices=indices,
        raw=raw,
        seed=entropy,
    )


@dataclass(frozen=True)
class _Options:
    """The resolved options of a non-chapter run (shared with :func:`convviz.visualize`)."""

    parametrization: str
    transforms: str
    steps: int
    learning_rate: float
    size: tuple
    pixel_range: tuple
    crop: int
    images_per_target: int
    diversity: float
    crops: int
    batch_size: int | None
    memory_budget: int
    verbose: int
    seed: int


def _resolve(**given) -> _Options:
    """Check the options shared by :func:`filters` and :func:`convviz.visualize` and
    fill in the defaults that depend on the parametrisation."""
    p = check_choice(given["parametrization"], "parametrization", PARAMETRIZATIONS)
    steps = given["steps"]
    rate = given["learning_rate"]
    crop = given["crop"]
    if crop is None:
        crop = _CHAPTER_CROP if p == "pixel" else 0
    n = check_positive_int(given["images_per_target"], "images_per_target")
    diversity = _non_negative(given["diversity"], "diversity")
    if diversity and n < 2:
        raise InputError(
            f"diversity={diversity} pushes apart several images of the same target: pass "
            "images_per_filter=2 or more (images_per_target= for convviz.visualize)."
        )
    return _Options(
        parametrization=p,
        transforms=_transforms(given["transforms"], p),
        steps=check_positive_int(_DEFAULT_STEPS[p] if steps is None else steps, "steps"),
        learning_rate=_non_negative(
            _DEFAULT_RATES[p] if rate is None else rate, "learning_rate", strict=True
        ),
        size=_size(given["size"], crop),
        pixel_range=_pixel_range(given["pixel_range"]),
        crop=crop,
        images_per_target=n,
        diversity=diversity,
        crops=check_positive_int(given["crops"], "crops"),
        batch_size=check_batch_size(given["batch_size"], allow_none=True),
        memory_budget=check_positive_int(given["memory_budget"], "memory_budget"),
        verbose=check_verbose(given["verbose"]),
        seed=_entropy(given["seed"]),
    )


def _optimised(inspector, layer, head, elements, weights, indices, objective, spatial, o):
    """Run :mod:`convviz._feature_ascent` for targets ``indices`` (rows of ``weights``)."""
    copies = o.images_per_target * (o.crops if o.transforms == "crops" else 1)
    batch_size = o.batch_size
    if batch_size is None:
        batch_size = chunk_size(elements * copies, len(indices), memory_budget=o.memory_budget)
    settings = _feature_ascent.Settings(
        parametrization=o.parametrization,
        transforms=o.transforms,
        optimizer=_OPTIMIZERS[o.parametrization],
        steps=o.steps,
        learning_rate=o.learning_rate,
        size=o.size,
        channels=inspector.input_shape[-1],
        pixel_range=o.pixel_range,
        seed=o.seed,
        spatial=spatial,
        images_per_target=o.images_per_target,
        diversity=o.diversity,
        crops=o.crops if o.transforms == "crops" else 1,
        batch_size=batch_size,
    )
    raw, values, transparency = _feature_ascent.optimise(
        inspector,
        (layer, objective),
        head,
        weights,
        [(int(i),) for i in indices],
        settings,
        Progress(o.steps, o.verbose, "step"),
    )
    inspector.check_finite(raw, {"The optimised images": raw, "Their objective values": values})
    images = display(raw, parametrization=o.parametrization, pixel_range=o.pixel_range, crop=o.crop)
    return FilterPatterns(
        images=images,
        losses=values,
        layer=layer,
        filter_indices=np.repeat(indices, o.images_per_target),
        raw=raw,
        seed=o.seed,
        parametrization=o.parametrization,
        objective=objective,
        transparency=transparency,
        images_per_filter=o.images_per_target,
    )


# -- the math ---------------------------------------------------------------------------


@keyword_only(3, "pixel_range")
def start_images(seed: int, indices, shape, *, pixel_range=(0.0, 255.0)) -> np.ndarray:
    """The chapter's start images: uniform noise in ``lo + [0.4, 0.6] * (hi - lo)``.

    Image ``k`` comes from its own generator seeded by ``(seed, indices[k])``, so a
    filter's start does not depend on which other filters share its batch.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    indices : iterable of int
        Filter indices, one image each.
    shape : (height, width, channels)
    pixel_range : (low, high)

    Returns
    -------
    numpy.ndarray
        float32 (len(indices), height, width, channels).

    Examples
    --------
    >>> x = start_images(0, [3, 7], (4, 4, 3), pixel_range=(0, 255))
    >>> x.shape, bool(x.min() >= 102.0 and x.max() <= 153.0)
    ((2, 4, 4, 3), True)
    """
    lo, hi = pixel_range
    out = np.empty((len(indices), *shape), dtype=np.float32)
    for k, f in enumerate(indices):
        # spawn_key, not [seed, f]: SeedSequence treats trailing zeros as absent,
        # so (seed, 0) would collide with the plain seed.
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, int(f))))
        out[k] = lo + rng.uniform(_START_LOW, _START_HIGH, shape) * (hi - lo)
    return out


@keyword_only(1, "crop")
def deprocess(raw: np.ndarray, *, crop: int = 25) -> np.ndarray:
    """The chapter's display transform for filter patterns.

    Per image: standardise over all pixels and channels, ``x * 64 + 128``, clip to
    [0, 255], convert to uint8, remove ``crop`` pixels from each border. An image with
    no variation becomes uniform grey (128).

    Parameters
    ----------
    raw : numpy.ndarray
        (N, H, W, C) or (H, W, C) float images.
    crop : int
        Border width removed on each side.

    Returns
    -------
    numpy.ndarray
        uint8, spatial size reduced by ``2 * crop``.

    Examples
    --------
    >>> import numpy as np
    >>> deprocess(np.random.default_rng(0).random((1, 60, 60, 3)), crop=25).shape
    (1, 10, 10, 3)
    """
    x = np.asarray(raw, dtype=np.float64)
    single = x.ndim == 3
    if single:
        x = x[None]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    z = np.divide(x - mean, std, out=np.zeros_like(x), where=std > 0)
    out = np.clip(z * 64 + 128, 0, 255).astype(np.uint8)
    if crop:
        out = out[:, crop:-crop, crop:-crop, :]
    return out[0] if single else out


def display(raw, *, parametrization: str = "pixel", pixel_range=(0.0, 255.0), crop: int = 0):
    """uint8 images for display: :func:`deprocess` for ``pixel`` (the chapter's
    standardisation), a linear map of ``pixel_range`` to 0-255 for ``fft`` and ``maco``
    (their images already lie in the range); then ``crop`` pixels off each border.

    Examples
    --------
    >>> import numpy as np
    >>> display(np.full((1, 4, 4, 3), 127.5), parametrization="fft")[0, 0, 0]
    array([128, 128, 128], dtype=uint8)
    """
    if parametrization == "pixel":
        return deprocess(raw, crop=crop)
    lo, hi = pixel_range
    x = np.clip((np.asarray(raw, dtype=np.float64) - lo) / (hi - lo) * 255.0, 0, 255)
    out = np.round(x).astype(np.uint8)
    return out[..., crop : out.shape[-3] - crop, crop : out.shape[-2] - crop, :]


@keyword_only(2, "memory_budget")
def chunk_size(
    elements_per_image: int, n_filters: int, *, memory_budget: int = DEFAULT_MEMORY_BUDGET
) -> int:
    """How many filters to optimise together.

    Rule: the backward pass keeps every layer output up to the target layer, and
    produces a gradient of the same size, so one image costs about
    ``8 bytes * elements_per_image`` (float32 activation + gradient), where
    ``elements_per_image`` sums the sizes of all layer outputs of the truncated model
    for one image. The chunk is ``memory_budget`` divided by that, at least 1, at most
    ``n_filters``; then the chunks are evened out (64 filters with room for 12 run as
    6 chunks of 11, 11, 11, 11, 11, 9) so no chunk is needlessly small.

    Examples
    --------
    >>> chunk_size(1_000_000, 64, memory_budget=96_000_000)
    11
    """
    fit = max(1, int(memory_budget) // max(1, _BYTES_PER_ELEMENT * int(elements_per_image)))
    fit = min(fit, n_filters)
    n_chunks = -(-n_filters // fit)
    return -(-n_filters // n_chunks)


# -- building blocks --------------------------------------------------------------------


def _head(inspector: Inspector, info: LayerInfo, h: int, w: int):
    """The model up to ``info`` on an (h, w) input, and its activation elements per image."""

    def build():
        features = inspector._feature_model([info.name])
        image = keras.Input(shape=(h, w, inspector.input_shape[-1]), name="convviz_filter_input")
        try:
            flat = _layers.trace(features, image)
        except ValueError as err:
            raise InputError(
                f"Cannot run the model up to layer {info.name!r} on a {h}x{w} image: "
                f"{layer_error_reason(err)} Pass a larger size=, or the model's own input size "
                f"{inspector.input_shape[:2]} if a layer before {info.name!r} needs it."
            ) from err
        output = keras.tree.flatten(flat.outputs)[0]
        if len(output.shape) != 4 or min(output.shape[1:3]) < 1:
            raise InputError(
                f"size=({h}, {w}) leaves layer {info.name!r} with an output of shape "
                f"{tuple(output.shape)}; pass a larger size=."
            )
        head = _layers.flat_model(image, output, flat.taps, "convviz_filter_head")
        elements = h * w * inspector.input_shape[-1]
        for tap in flat.taps:
            for t in keras.tree.flatten(tap.output):
                elements += math.prod(d or 1 for d in t.shape[1:])
        return head, elements

    return inspector._cached("filters:head", (info.name, h, w), build)


def _step(inspector, key, head, h, w, use_jitter, use_blur, use_tv):
    """The compiled step ``(x, onehot, shift, rate, tv_weight, kernel) -> (x, value, losses)``."""
    rows, cols = _loss_window(head.output.shape)
    ops = keras.ops

    def transform(x, onehot, shift, rate, tv_weight, kernel):
        if not use_jitter:
            return x
        # A roll written as a gather: works with a traced shift on every backend.
        x = ops.take(x, ops.mod(ops.arange(h) - shift[0], h), axis=1)
        return ops.take(x, ops.mod(ops.arange(w) - shift[1], w), axis=2)

    def objective(act, x, onehot, shift, rate, tv_weight, kernel):
        # One filter per image: the chapter's loss for image i is the mean of its own
        # channel f_i; summing over the batch keeps the images' gradients separate.
        # Picking the channel first (a one-hot contraction) keeps the crop and the mean,
        # and their gradients, on (N, H, W) maps instead of the full activation.
        own = ops.einsum("bhwc,bc->bhw", act, onehot)
        per_filter = ops.mean(own[:, rows, cols], axis=(1, 2))
        total = ops.sum(per_filter)
        if use_tv:
            total = total - tv_weight * ops.sum(_total_variation(x))
        return total, per_filter

    def update(x, grad, onehot, shift, rate, tv_weight, kernel):
        x = x + rate * normalize_gradient(grad)
        return _blur(x, kernel) if use_blur else x

    return inspector._cached(
        "step:filters",
        (key, h, w, use_jitter, use_blur, use_tv),
        lambda: ascent_step(head, objective, update, transform),
    )


def _total_variation(x):
    """Per image: mean |horizontal difference| + mean |vertical difference|."""
    ops = keras.ops
    dy = ops.mean(ops.abs(x[:, 1:, :, :] - x[:, :-1, :, :]), axis=(1, 2, 3))
    dx = ops.mean(ops.abs(x[:, :, 1:, :] - x[:, :, :-1, :]), axis=(1, 2, 3))
    return dx + dy


def _gaussian_kernel(sigma: float, channels: int) -> np.ndarray:
    """A (k, k, channels, 1) depthwise Gaussian kernel; a 1x1 identity for sigma 0."""
    if sigma <= 0:
        return np.ones((1, 1, channels, 1), dtype=np.float32)
    radius = max(1, math.ceil(2 * sigma))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    k = np.outer(g, g).astype(np.float32)
    return np.repeat(k[:, :, None, None], channels, axis=2)


def _blur(x, kernel):
    r = (kernel.shape[0] - 1) // 2
    # Reflected borders: zero padding would darken the edges a little at every step.
    padded = keras.ops.pad(x, [[0, 0], [r, r], [r, r], [0, 0]], mode="reflect")
    return keras.ops.depthwise_conv(padded, kernel, strides=1, padding="valid")


def _jitter_shifts(seed: int, steps: int, jitter: int) -> np.ndarray:
    if jitter == 0:
        return np.zeros((steps, 2), dtype=np.int32)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    return rng.integers(-jitter, jitter + 1, size=(steps, 2)).astype(np.int32)


def _chapter_loss(head: keras.Model, raw: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The chapter's loss per image on its own filter, from a plain forward pass."""
    act = np.asarray(keras.tree.flatten(head.predict_on_batch(raw))[0])
    rows, cols = _loss_window(act.shape)
    return act[np.arange(len(indices)), rows, cols, indices].mean(axis=(1, 2))


# -- argument checks --------------------------------------------------------------------


def _check_feature_map(info: LayerInfo) -> None:
    if len(info.output_shape) != 4 or info.output_shape[-1] is None:
        shape = info.output_shape or "several outputs"
        raise ModelStructureError(
            f"Layer {info.name!r} ({type(info.layer).__name__}) outputs {shape}; filter "
            "visualization needs a (batch, height, width, channels) feature map. Pick a "
            "convolution layer (convviz.Inspector(model).feature_layers() lists them)."
        )


def _filter_indices(filters, n: int, layer: str) -> np.ndarray:
    if filters is None:
        chosen = list(range(n))
    elif isinstance(filters, slice):
        chosen = list(range(n)[filters])
    elif isinstance(filters, (bool, np.bool_)):
        raise InputError(f"filters={filters!r}: give filter indices (int, slice, range or list).")
    elif isinstance(filters, (int, np.integer)):
        chosen = [filters]
    elif isinstance(filters, Iterable) and not isinstance(filters, (str, bytes)):
        chosen = list(np.ravel(filters)) if isinstance(filters, np.ndarray) else list(filters)
    else:
        raise InputError(
            f"filters={filters!r}: give None (all), an int, a slice, a range or a list of ints."
        )
    for f in chosen:
        if isinstance(f, (bool, np.bool_)) or not isinstance(f, (int, np.integer)):
            raise InputError(f"Filter indices must be integers; got {f!r}.")
        if not 0 <= f < n:
            raise InputError(
                f"Filter index {int(f)} is out of range: layer {layer!r} has {n} filters "
                f"(indices 0 to {n - 1})."
            )
    if not chosen:
        raise InputError(f"filters={filters!r} selects no filter of layer {layer!r} ({n} filters).")
    return np.asarray(chosen, dtype=np.int64)


def _non_negative_int(value, name: str) -> int:
    # check_positive_int's rule with 0 allowed: here 0 means "off" (no jitter, no crop).
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise InputError(f"{name} must be a non-negative integer (0 turns it off); got {value!r}.")
    return int(value)


def _non_negative(value, name: str, strict: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not math.isfinite(v) or v < 0 or (strict and v == 0):
        bound = "positive" if strict else "non-negative (0 turns it off)"
        raise InputError(f"{name} must be a finite {bound} number; got {value!r}.")
    return v


def _size(size, crop) -> tuple[int, int]:
    h, w = check_image_size(size)
    crop = _non_negative_int(crop, "crop")
    if 2 * crop >= min(h, w):
        raise InputError(f"crop={crop} removes the whole {h}x{w} image; use a smaller crop.")
    return h, w


def _pixel_range(pixel_range) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in pixel_range)
    except (TypeError, ValueError):
        lo = hi = math.nan
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise InputError(
            f"pixel_range must be (low, high) with low < high, e.g. (0, 255) or (-1, 1); "
            f"got {pixel_range!r}."
        )
    return lo, hi


def _entropy(seed) -> int:
    seed = check_seed(seed, allow_none=True)
    return int(np.random.SeedSequence().entropy) if seed is None else seed


def _transforms(value, parametrization: str) -> str:
    if value is None:
        return "none"
    value = check_choice(value, "transforms", ("auto", "standard", "crops", "none"))
    return _AUTO_TRANSFORMS[parametrization] if value == "auto" else value
