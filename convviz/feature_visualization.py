"""Feature visualization beyond filters: neurons, directions, classes, and measures of
how good the produced images are.

:func:`visualize` optimises one image per target of an :class:`~convviz.objectives.Objective`
(channels, centre neurons, directions in a layer's channel space, class logits) with any
parametrisation (:mod:`convviz.parametrizations`) and transforms (:mod:`convviz.transforms`),
batched over targets as :func:`convviz.filters` is.

The measures say whether a set of patterns is worth looking at:

- :func:`robust_activation` - a target's activation on its pattern, averaged over random
  shifts, rescalings and rotations (a pattern that only works pixel-exactly scores low);
- :func:`selectivity` - whether pattern ``i`` excites target ``i`` more than the other
  patterns do;
- :func:`convviz.parametrizations.spectral_slope` - natural images have a 1/f amplitude
  spectrum (slope about -1 to -2); pixel-space ascent gives near 0;
- :func:`class_consistency` - whether a class visualisation is classified as its class
  under random crops and rescalings.
"""

from __future__ import annotations

import keras
import numpy as np

from convviz import transforms as _transforms
from convviz._feature_ascent import loss_window
from convviz._validation import check_positive_int, keyword_only
from convviz.errors import InputError
from convviz.filter_patterns import (
    DEFAULT_MEMORY_BUDGET,
    FilterPatterns,
    _check_feature_map,
    _head,
    _optimised,
    _resolve,
)
from convviz.inspector import Inspector
from convviz.objectives import Objective

__all__ = ["class_consistency", "robust_activation", "selectivity", "visualize"]


@keyword_only(2)
def visualize(
    model,
    objective: Objective,
    *,
    parametrization: str = "fft",
    transforms="auto",
    steps: int | None = None,
    learning_rate: float | None = None,
    size=None,
    seed: int | None = 0,
    pixel_range=(0.0, 255.0),
    crop: int | None = None,
    images_per_target: int = 1,
    diversity: float = 0.0,
    crops: int = 4,
    batch_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    output=None,
    verbose: bool = True,
) -> FilterPatterns:
    """The image that maximises each target of ``objective``.

    The same optimisation as :func:`convviz.filters` with its options (see there),
    for any :class:`~convviz.objectives.Objective`; the default parametrisation here is
    ``"fft"`` (Lucid: Adam, 512 steps, standard transforms).

    Parameters
    ----------
    model : keras.Model, convviz.Inspector or path
    objective : convviz.objectives.Objective
        ``Objective.channels(layer, indices)``, ``.neurons(layer, indices)``,
        ``.directions(layer, vectors)`` or ``.classes(indices)``.
    size : (height, width), int or None
        Image size. Default: the model's input size (required for ``classes`` when the
        model has one), else 224 x 224. For layer objectives the model up to the layer is
        rebuilt at this size, as in :func:`convviz.filters`.
    images_per_target : int
        Images per target (consecutive in the result); with ``diversity`` they are
        pushed apart (Lucid's Gram-matrix diversity at the objective's layer).
    output : str or int, optional
        For ``classes`` on a model with several outputs, the one whose classes are
        drawn (as :func:`convviz.explain`).

    Returns
    -------
    FilterPatterns
        One image per (target, copy); ``filter_indices`` holds the target's index
        (channel, class or row of the directions), ``objective`` its kind.

    Examples
    --------
    >>> import convviz
    >>> from convviz import models
    >>> from convviz.objectives import Objective
    >>> model = models.small_convnet(compile=False)
    >>> result = convviz.visualize(model, Objective.classes([0]), steps=4, size=None,
    ...                            verbose=False)
    >>> result.images.shape, result.objective
    ((1, 180, 180, 3), 'class')
    """
    if not isinstance(objective, Objective):
        raise InputError(
            f"objective must be a convviz.objectives.Objective (Objective.channels, .neurons, "
            f".directions or .classes); got {type(objective).__name__}."
        )
    inspector = Inspector.of(model)
    model_size = tuple(inspector.input_shape[:2])
    if size is None:
        size = model_size if None not in model_size else (224, 224)
    options = _resolve(
        parametrization=parametrization,
        transforms=transforms,
        steps=steps,
        learning_rate=learning_rate,
        size=size,
        crop=crop,
        pixel_range=pixel_range,
        images_per_target=images_per_target,
        diversity=diversity,
        crops=crops,
        batch_size=batch_size,
        memory_budget=memory_budget,
        verbose=verbose,
        seed=seed,
    )
    h, w = options.size
    if objective.kind == "class":
        if None not in model_size and model_size != (h, w):
            raise InputError(
                f"Class visualisation runs the whole model, whose input is {model_size}; "
                f"size={(h, w)} differs. Pass size=None."
            )
        if options.diversity:
            raise InputError(
                "diversity= needs a feature-map layer; class objectives have none. Use "
                "images_per_target= alone, or a channel objective."
            )
        inspector = inspector.for_output(output)
        head = inspector._score_model(logits=True)
        # The conv base's activations dominate what the backward pass keeps.
        _, elements = _head(inspector, inspector.find_layer(inspector.last_conv_layer()), h, w)
        layer = "scores"
    else:
        if output is not None:
            raise InputError(
                f"output= chooses the scores a class objective draws; a {objective.kind} "
                "objective is at a layer. Leave output out."
            )
        info = inspector.find_layer(objective.layer)
        _check_feature_map(info)
        head, elements = _head(inspector, info, h, w)
        layer = info.name
    channels = keras.tree.flatten(head.outputs)[0].shape[-1]
    weights = objective.weights(channels)
    indices = (
        np.arange(len(objective)) if objective.kind == "direction" else objective.targets
    )
    return _optimised(
        inspector, layer, head, elements, weights, indices, objective.kind, objective.spatial, options
    )


# -- measures ---------------------------------------------------------------------------


def _layer_means(inspector, layer, images, batch_size=16) -> np.ndarray:
    """(N, C) per-channel mean activation (the chapter's 2-pixel border excluded)."""
    info = inspector.find_layer(layer)
    h, w = images.shape[1:3]
    head, _ = _head(inspector, info, h, w)
    parts = []
    for start in range(0, len(images), batch_size):
        out = keras.tree.flatten(head.predict_on_batch(images[start : start + batch_size]))[0]
        out = np.asarray(out, dtype=np.float64)
        rows, cols = loss_window(out.shape)
        parts.append(out[:, rows, cols].mean(axis=(1, 2)))
    return np.concatenate(parts)


@keyword_only(3)
def robust_activation(
    model, layer, patterns, *, filters=None, n: int = 32, seed: int = 0, pixel_range=(0, 255)
) -> np.ndarray:
    """Each pattern's target activation averaged over ``n`` random transformations.

    Every image is shifted by up to 8 pixels per axis, scaled by 0.9-1.1 and rotated by
    up to 10 degrees (:func:`convviz.transforms.random_transforms`, the same ``n`` maps
    for every pattern; mid-grey fill), and the mean activation of its own channel of
    ``layer`` (2-pixel border excluded) is averaged over the ``n`` versions.

    Parameters
    ----------
    model : keras.Model, Inspector or path
    layer : str
    patterns : FilterPatterns or array
        A result of :func:`convviz.filters` (its ``raw`` images and ``filter_indices``)
        or (N, H, W, C) images in the model's input units with ``filters=`` giving
        each image's channel.

    Returns
    -------
    numpy.ndarray
        float64 (N,).

    Examples
    --------
    >>> import convviz
    >>> from convviz import models
    >>> from convviz.feature_visualization import robust_activation
    >>> model = models.small_convnet(compile=False)
    >>> p = convviz.filters(model, "conv2d", filters=[0, 1], steps=2, verbose=False)
    >>> robust_activation(model, "conv2d", p, n=4).shape
    (2,)
    """
    inspector = Inspector.of(model)
    images, channels = _patterns(patterns, filters)
    n = check_positive_int(n, "n")
    maps = _transforms.random_transforms(seed, n, images.shape[1:3])
    lo, hi = pixel_range
    total = np.zeros(len(images))
    for m in maps:
        moved = keras.ops.convert_to_numpy(
            _transforms.apply(images, m, fill_value=float(lo + (hi - lo) / 2))
        )
        means = _layer_means(inspector, layer, moved)
        total += means[np.arange(len(images)), channels]
    return total / n


@keyword_only(3)
def selectivity(model, layer, patterns, *, filters=None) -> np.ndarray:
    """How much more pattern ``i`` excites its own channel than the other patterns do.

    With ``A[j, c]`` the mean activation of channel ``c`` on pattern ``j``:
    ``A[i, f_i] - mean_{j != i} A[j, f_i]``. Positive means selective.

    Returns
    -------
    numpy.ndarray
        float64 (N,); ``(selectivity(...) > 0).sum()`` counts selective patterns.

    Examples
    --------
    >>> import convviz
    >>> from convviz import models
    >>> from convviz.feature_visualization import selectivity
    >>> model = models.small_convnet(compile=False)
    >>> p = convviz.filters(model, "conv2d", filters=[0, 1], steps=2, verbose=False)
    >>> selectivity(model, "conv2d", p).shape
    (2,)
    """
    inspector = Inspector.of(model)
    images, channels = _patterns(patterns, filters)
    if len(images) < 2:
        raise InputError("selectivity compares patterns with each other: give at least two.")
    a = _layer_means(inspector, layer, images)[:, channels]  # a[j, i] = channel f_i on image j
    own = np.diag(a)
    others = (a.sum(axis=0) - own) / (len(images) - 1)
    return own - others


@keyword_only(2)
def class_consistency(model, patterns, *, n: int = 10, seed: int = 0, pixel_range=(0, 255)):
    """Fraction of ``n`` random crops/rescales of each class visualisation that the
    model classifies as the visualised class.

    Each map zooms in by 1.0-1.3 (a random crop of 77-100 % of the side) and shifts by
    up to 16 pixels (:func:`convviz.transforms.random_transforms`, no rotation).

    Returns
    -------
    numpy.ndarray
        float64 (N,) in [0, 1].
    """
    inspector = Inspector.of(model)
    if not isinstance(patterns, FilterPatterns) or patterns.objective != "class":
        raise InputError("class_consistency needs the result of visualize(model, Objective.classes(...)).")
    n = check_positive_int(n, "n")
    images = patterns.raw
    maps = _transforms.random_transforms(
        seed, n, images.shape[1:3], jitter=16, scale=(1.0, 1.3), angle=0.0
    )
    lo, hi = pixel_range
    model_ = inspector.model
    hits = np.zeros(len(images))
    for m in maps:
        moved = keras.ops.convert_to_numpy(
            _transforms.apply(images, m, fill_value=float(lo + (hi - lo) / 2))
        )
        scores = np.asarray(keras.tree.flatten(model_.predict_on_batch(moved))[0])
        hits += scores.argmax(axis=-1) == patterns.filter_indices
    return hits / n


def _patterns(patterns, filters):
    if isinstance(patterns, FilterPatterns):
        return patterns.raw, np.asarray(patterns.filter_indices)
    images = np.asarray(patterns, dtype=np.float32)
    if images.ndim != 4 or filters is None:
        raise InputError(
            "Give a FilterPatterns result, or (N, H, W, C) images with filters= (one "
            "channel index per image)."
        )
    channels = np.asarray(list(filters), dtype=np.int64)
    if len(channels) != len(images):
        raise InputError(f"{len(images)} images but {len(channels)} filter indices.")
    return images, channels
