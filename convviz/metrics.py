"""Is an explanation faithful? Metrics that put numbers next to the maps.

Each metric takes the model, the images, the maps to judge (an
:class:`~convviz.Explanation`, :class:`~convviz.methods.Attributions`, or an array at
any resolution) and the classes they explain, and perturbs the images as the map
says. Every perturbed copy of every image goes through the compiled model in chunks
of ``batch_size`` (built one chunk at a time): never one Python call per copy.

- :func:`deletion_insertion` (RISE, Petsiuk et al. 2018, as torchcam 0.5 computes it):
  the class probability as the map's top pixels are removed (deletion, lower is
  better) or restored onto a baseline (insertion, higher is better); areas under the
  curves.
- :func:`confidence_change`: Average Drop (lower is better) and Increase in Confidence
  (higher) of the image multiplied by the map (Chattopadhay et al. 2018, as torchcam).
- :func:`mufidelity` (Bhatt et al. 2020, as xplique): the rank correlation between the
  score lost when random grid cells are removed and the map's mass on those cells.
- :func:`pointing_game` (Zhang et al. 2016): is the map's maximum on the object (with
  15 pixels' tolerance), and which share of its mass is.
- :func:`randomization` (Adebayo et al. 2018): do the maps change when the model's
  weights are re-initialised from the top (they should), and with the class?

Maps are resized bilinearly (half-pixel centres) to the input size first; maps with
channels ((N, H, W, C) attributions) are summed over them. Scores are class
probabilities (the softmax or sigmoid of the class logits) unless ``score="logit"``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field

import keras
import numpy as np

from convviz import plot
from convviz._inputs import _resize
from convviz._validation import check_choice, check_fraction, check_positive_int, check_verbose
from convviz.errors import InputError
from convviz.inspector import Inspector
from convviz.methods import get_method
from convviz.methods.attribution import Attributions, baseline_images
from convviz.methods.cam import LazyBatch
from convviz.methods.core import Explanation, Method, class_weights

__all__ = [
    "ConfidenceChange", "DeletionInsertion", "PointingGame", "Randomization", "confidence_change",
    "deletion_insertion", "grid_masks", "input_size_maps", "mufidelity", "pointing_game", "randomization",
    "spearman", "weighted_layers",
]

SCORES = ("probability", "logit")


# --------------------------------------------------------------------------- #
# Shared pieces
# --------------------------------------------------------------------------- #


class _Scorer(Method, register=False):
    """The model's class scores for many inputs (compiled, chunked, lazily built)."""

    def __init__(self, model, *, score: str = "probability", batch_size: int | None = None, verbose=True):
        check_choice(score, "score", SCORES)
        super().__init__(model, logits=True, batch_size=batch_size)
        self.score = score
        self.verbose = check_verbose(verbose)

    def explain(self, images, *, class_index=None):  # pragma: no cover - not an explanation method
        raise NotImplementedError

    def class_scores(self, images, classes) -> np.ndarray:
        logits = self.scores(images)
        if self.score == "logit":
            return self._pick(logits, classes)
        if logits.shape[-1] == 1:  # one sigmoid unit: class 1 is p, class 0 is 1 - p
            p = 1 / (1 + np.exp(-logits[:, 0]))
            return np.where(np.broadcast_to(classes, p.shape) == 1, p, 1 - p)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
        return probs[np.arange(len(probs)), np.broadcast_to(np.asarray(classes, np.int64), (len(probs),))]


def _prepare(model, images, maps, class_index, score, batch_size, verbose):
    """(scorer, batch, maps at input size (N, H, W) float64, classes, class scores)."""
    scorer = _Scorer(model, score=score, batch_size=batch_size, verbose=verbose)
    batch = scorer.inspector.prepare(images)
    if class_index is None and isinstance(maps, Explanation):
        class_index = maps.class_index
    resized = input_size_maps(maps, size=batch.shape[1:3])
    if len(resized) != len(batch):
        raise InputError(f"{len(batch)} images but {len(resized)} maps.")
    n_classes = scorer._score_shape()[-1]
    class_weights(class_index, len(batch), n_classes)  # validates class_index
    logits = scorer.scores(batch)
    classes = scorer._classes(logits, class_index)
    return scorer, batch, resized, classes, scorer.class_scores(batch, classes)


def input_size_maps(maps, *, size) -> np.ndarray:
    """(N, H, W) float64 maps at ``size``: an Explanation's maps, Attributions summed
    over channels, or an array (N, h, w) / (N, H, W, C) resized bilinearly
    (half-pixel centres).

    >>> input_size_maps(np.ones((2, 4, 4)), size=(8, 8)).shape
    (2, 8, 8)
    """
    if isinstance(maps, Attributions):
        maps = maps.heatmaps
    elif isinstance(maps, Explanation):
        maps = maps.maps
    maps = np.asarray(maps, np.float32)
    if maps.ndim == 4:
        maps = maps.sum(axis=-1)
    if maps.ndim != 3:
        raise InputError(f"maps must be (N, h, w) or (N, H, W, C), got shape {maps.shape}.")
    if not np.isfinite(maps).all():
        raise InputError("maps hold NaN or inf values.")
    if maps.shape[1:] != tuple(size):
        maps = _resize(maps[..., None], tuple(size))[..., 0]
    return maps.astype(np.float64)


def _unit_masks(maps: np.ndarray) -> np.ndarray:
    """Maps already in [0, 1] as they are; others relu'd and divided by their maximum."""
    if maps.min() >= 0 and maps.max() <= 1:
        return maps
    maps = np.maximum(maps, 0)
    peak = maps.max(axis=(1, 2), keepdims=True)
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return ((y[..., 1:] + y[..., :-1]) / 2 * np.diff(x)).sum(axis=-1)


def spearman(a, b) -> float:
    """Spearman's rank correlation of two equally long sequences (ties share their
    mean rank); 0 where either is constant.

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40]), spearman([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    """
    from scipy.stats import rankdata

    ra, rb = rankdata(np.ravel(a)), rankdata(np.ravel(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0


# --------------------------------------------------------------------------- #
# Deletion and insertion
# --------------------------------------------------------------------------- #


@dataclass
class DeletionInsertion:
    """Deletion and insertion curves and their areas, one row per image.

    Attributes
    ----------
    deletion, insertion : numpy.ndarray
        (N,) areas under the curves (deletion: lower is better; insertion: higher).
    fractions : numpy.ndarray
        (K,) the fraction of the input's positions removed (deletion) or restored
        (insertion) at each point of the curves, from 0 to 1.
    deletion_curve, insertion_curve : numpy.ndarray
        (N, K) the class score at each point.
    classes : numpy.ndarray
        (N,) the explained classes.
    score : str
        ``"probability"`` or ``"logit"``.
    """

    deletion: np.ndarray
    insertion: np.ndarray
    fractions: np.ndarray
    deletion_curve: np.ndarray
    insertion_curve: np.ndarray
    classes: np.ndarray
    score: str = "probability"

    def plot(self, *, names=None, figsize=None, save=None):
        """Both curves of every image, with their areas in the legend."""
        from matplotlib.figure import Figure

        width, height = plot._figsize(figsize)
        fig = Figure(figsize=(width or 9.0, height or 3.5), layout="constrained")
        axes = fig.subplots(1, 2)
        names = names or [f"image {i}" for i in range(len(self.deletion))]
        for ax, curve, auc, title in ((axes[0], self.deletion_curve, self.deletion, "Deletion (lower is better)"),
                                      (axes[1], self.insertion_curve, self.insertion, "Insertion (higher is better)")):
            for name, row, area in zip(names, curve, auc):
                ax.plot(self.fractions, row, label=f"{name}: AUC {area:.3f}")
            ax.set(title=title, xlabel="fraction of the positions", ylabel=f"class {self.score}")
            ax.legend(fontsize=8)
        return plot._save(fig, save)


def deletion_insertion(model, images, maps, *, class_index=None, steps: int = 20, baseline=0.0,
                       score: str = "probability", batch_size: int | None = None,
                       verbose: bool = True) -> DeletionInsertion:
    """Deletion and insertion (RISE), computed as torchcam 0.5's ``DeletionInsertionMetric``.

    The map is resized to the input (bilinear, half-pixel centres) and its P positions
    ranked by a stable descending sort. The curves have a point every ``ceil(P /
    steps)`` positions, and at P: deletion replaces the top-ranked positions (every
    channel) by the baseline, insertion puts them back onto the baseline. Each area is
    the trapezoid over the fractions actually perturbed. The 2 x ``steps`` - 1
    perturbed copies per image are scored in compiled chunks.

    Parameters
    ----------
    model, images
        As :func:`convviz.explain`.
    maps : Explanation, Attributions or array
        The maps to judge, one per image, at any resolution.
    class_index : int or sequence of int, optional
        The classes the maps explain; default an Explanation's own, else each image's
        top class.
    steps : int
        Intervals of the curves.
    baseline : number, array, "black" or "blur"
        What removed positions become, in the model's input space (default 0; "blur":
        a blurred copy, as in RISE's insertion).
    score : {"probability", "logit"}
        The class probability (softmax/sigmoid of the logits), or the logit.
    batch_size : int, optional
        Perturbed copies per compiled call (default 32).
    verbose : bool
        A progress bar for long runs.

    Returns
    -------
    DeletionInsertion

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    >>> x = np.random.rand(2, 8, 8, 3)
    >>> result = convviz.metrics.deletion_insertion(model, x, convviz.explain(model, x), steps=4)
    >>> result.deletion.shape, result.fractions.tolist()
    ((2,), [0.0, 0.25, 0.5, 0.75, 1.0])
    """
    steps = check_positive_int(steps, "steps")
    scorer, batch, maps, classes, original = _prepare(model, images, maps, class_index, score, batch_size, verbose)
    n, (h, w) = len(batch), batch.shape[1:3]
    positions = h * w
    base = baseline_images(baseline, batch)
    ranks = np.argsort(np.argsort(-maps.reshape(n, -1), axis=1, kind="stable"), axis=1, kind="stable")
    size = -(-positions // steps)
    counts = [*range(0, positions, size), positions]
    fractions = np.asarray(counts, np.float64) / positions
    # Per image: the all-baseline copy, then deletion and insertion at each interior count.
    jobs = [(2, positions)] + [(curve, c) for c in counts[1:-1] for curve in (0, 1)]

    def build(start, stop):
        rows = []
        for m in range(start, stop):
            i, (curve, count) = m // len(jobs), jobs[m % len(jobs)]
            removed = (ranks[i] < count).reshape(h, w, 1)
            keep_original = removed if curve == 1 else ~removed
            rows.append(np.where(keep_original, batch[i], base[i]))
        return np.stack(rows)

    scored = scorer.class_scores(LazyBatch(n * len(jobs), build), np.repeat(classes, len(jobs)))
    scored = scored.reshape(n, len(jobs))
    k = len(counts)
    deletion, insertion = np.empty((n, k)), np.empty((n, k))
    deletion[:, 0], insertion[:, -1] = original, original
    deletion[:, -1], insertion[:, 0] = scored[:, 0], scored[:, 0]
    deletion[:, 1:-1], insertion[:, 1:-1] = scored[:, 1::2], scored[:, 2::2]
    return DeletionInsertion(_trapezoid(deletion, fractions), _trapezoid(insertion, fractions), fractions,
                             deletion, insertion, classes, score)


# --------------------------------------------------------------------------- #
# Average Drop and Increase in Confidence
# --------------------------------------------------------------------------- #


@dataclass
class ConfidenceChange:
    """The class score of each image and of the image multiplied by its map.

    Attributes
    ----------
    average_drop : numpy.ndarray
        (N,) ``relu(p - p_masked) / p`` (lower is better; its mean is Average Drop).
    increase : numpy.ndarray
        (N,) 1.0 where ``p_masked > p`` (its mean is Increase in Confidence).
    scores, masked_scores : numpy.ndarray
        (N,) ``p`` and ``p_masked``.
    classes : numpy.ndarray
        (N,) the explained classes.
    """

    average_drop: np.ndarray
    increase: np.ndarray
    scores: np.ndarray
    masked_scores: np.ndarray
    classes: np.ndarray


def confidence_change(model, images, maps, *, class_index=None, score: str = "probability",
                      batch_size: int | None = None) -> ConfidenceChange:
    """Average Drop and Increase in Confidence (Chattopadhay et al. 2018), as torchcam's
    ``ClassificationMetric`` computes them: the input multiplied by its map, resized
    to the input (bilinear); maps outside [0, 1] (attributions) are relu'd and
    divided by their maximum first. Arguments as :func:`deletion_insertion`.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    >>> x = np.random.rand(2, 8, 8, 3)
    >>> convviz.metrics.confidence_change(model, x, convviz.explain(model, x)).average_drop.shape
    (2,)
    """
    scorer, batch, maps, classes, p = _prepare(model, images, maps, class_index, score, batch_size, False)
    masked = scorer.class_scores(batch * _unit_masks(maps)[..., None].astype(np.float32), classes)
    drop = np.divide(np.maximum(p - masked, 0), p, out=np.zeros_like(p), where=p != 0)
    return ConfidenceChange(drop, (masked > p).astype(np.float64), p, masked, classes)


# --------------------------------------------------------------------------- #
# MuFidelity
# --------------------------------------------------------------------------- #


def grid_masks(samples: int, *, grid: int, size, subset_percent: float = 0.2, seed: int = 0) -> np.ndarray:
    """(samples, H, W) bool: True where a pixel is kept. Each of the ``grid`` x ``grid``
    cells is removed with probability ``subset_percent`` (xplique's MuFidelity: a
    uniform draw above ``subset_percent`` keeps the cell), and cells are resized to
    ``size`` by nearest neighbour (half-pixel centres).

    >>> grid_masks(3, grid=2, size=(4, 4)).shape
    (3, 4, 4)
    """
    keep = np.random.default_rng(seed).random((samples, grid, grid)) > subset_percent
    rows = np.minimum(((np.arange(size[0]) + 0.5) * grid / size[0]).astype(np.int64), grid - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * grid / size[1]).astype(np.int64), grid - 1)
    return keep[:, rows][:, :, cols]


def mufidelity(model, images, maps, *, class_index=None, grid: int = 9, subset_percent: float = 0.2,
               samples: int = 200, baseline=0.0, score: str = "probability", seed: int = 0,
               batch_size: int | None = None, verbose: bool = True) -> np.ndarray:
    """MuFidelity (Bhatt et al. 2020), as xplique computes it: (N,) correlations.

    ``samples`` random subsets of a ``grid`` x ``grid`` grid of cells (each cell
    removed with probability ``subset_percent``; the same subsets for every image,
    seeded) are set to the ``baseline``; the score each removal costs and the map's
    sum over the removed pixels are rank-correlated (Spearman) per image. 0 where
    the scores do not vary. Higher is better. Other arguments as
    :func:`deletion_insertion`.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((9, 9, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    >>> x = np.random.rand(2, 9, 9, 3)
    >>> convviz.metrics.mufidelity(model, x, convviz.explain(model, x), samples=20, verbose=False).shape
    (2,)
    """
    grid, samples = check_positive_int(grid, "grid"), check_positive_int(samples, "samples")
    subset_percent = check_fraction(subset_percent, "subset_percent")
    scorer, batch, maps, classes, original = _prepare(model, images, maps, class_index, score, batch_size, verbose)
    n = len(batch)
    keep = grid_masks(samples, grid=grid, size=batch.shape[1:3], subset_percent=subset_percent, seed=seed)
    base = baseline_images(baseline, batch)

    def build(start, stop):
        index = np.arange(start, stop)
        mask = keep[index % samples][..., None]
        return np.where(mask, batch[index // samples], base[index // samples])

    scored = scorer.class_scores(LazyBatch(n * samples, build), np.repeat(classes, samples)).reshape(n, samples)
    drops = original[:, None] - scored
    removed_mass = np.einsum("nhw,shw->ns", maps, (~keep).astype(np.float64))
    return np.array([spearman(d, a) for d, a in zip(drops, removed_mass)])


# --------------------------------------------------------------------------- #
# Pointing game
# --------------------------------------------------------------------------- #


@dataclass
class PointingGame:
    """Where each map points, against the object's box.

    Attributes
    ----------
    hits : numpy.ndarray
        (N,) bool: the map's maximum lies within ``tolerance`` pixels of the box.
    energy : numpy.ndarray
        (N,) the share of the map's positive mass inside the box (Wang et al. 2020).
    points : numpy.ndarray
        (N, 2) the (row, column) of each map's maximum, at the input size.
    """

    hits: np.ndarray
    energy: np.ndarray
    points: np.ndarray

    @property
    def hit_rate(self) -> float:
        """The fraction of hits."""
        return float(np.mean(self.hits))


def _box(box) -> tuple[int, int, int, int]:
    values = (box.x0, box.y0, box.x1, box.y1) if hasattr(box, "x0") else tuple(box)
    if len(values) != 4:
        raise InputError(f"A box is (x0, y0, x1, y1) or a convviz.shapes.BoundingBox; got {box!r}.")
    x0, y0, x1, y1 = (int(v) for v in values)
    if x1 <= x0 or y1 <= y0:
        raise InputError(f"An empty box: {box!r} (x1 and y1 are one past the object, as a numpy slice).")
    return x0, y0, x1, y1


def pointing_game(maps, boxes, *, size=None, tolerance: int = 15) -> PointingGame:
    """The pointing game (Zhang et al. 2016) and its energy-based variant.

    Parameters
    ----------
    maps : Explanation, Attributions or array
        One map per image; resized (bilinear) to ``size``.
    boxes : sequence
        One object box per image, in pixels of the image as the model sees it:
        ``(x0, y0, x1, y1)`` with ``x1, y1`` one past the object (numpy slices), or
        :class:`convviz.shapes.BoundingBox`.
    size : (int, int), optional
        The input size; an Explanation knows its own.
    tolerance : int
        A maximum this close to the box (in pixels) still hits.

    Examples
    --------
    >>> maps = np.zeros((2, 10, 10)); maps[0, 2, 2] = maps[1, 9, 9] = 1
    >>> pointing_game(maps, [(0, 0, 5, 5), (0, 0, 5, 5)], tolerance=2).hits.tolist()
    [True, False]
    """
    if size is None:
        if isinstance(maps, Explanation):
            size = maps.input_size
        else:
            size = np.shape(maps)[1:3]
    maps = input_size_maps(maps, size=size)
    if len(boxes) != len(maps):
        raise InputError(f"{len(maps)} maps but {len(boxes)} boxes.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, numbers.Real) or tolerance < 0:
        raise InputError(f"tolerance must be a number >= 0, got {tolerance!r}.")
    hits, energy, points = [], [], []
    rows, cols = np.mgrid[: size[0], : size[1]]
    for heat, box in zip(maps, boxes):
        x0, y0, x1, y1 = _box(box)
        y, x = np.unravel_index(np.argmax(heat), heat.shape)
        # Distance from the maximum to the box (0 inside), pixel centres.
        dy, dx = max(y0 - y, 0, y - (y1 - 1)), max(x0 - x, 0, x - (x1 - 1))
        hits.append(np.hypot(dy, dx) <= tolerance)
        positive = np.maximum(heat, 0)
        inside = positive[(rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)].sum()
        energy.append(inside / positive.sum() if positive.sum() > 0 else 0.0)
        points.append((y, x))
    return PointingGame(np.array(hits), np.array(energy), np.array(points))


# --------------------------------------------------------------------------- #
# Randomization sanity checks
# --------------------------------------------------------------------------- #


@dataclass
class Randomization:
    """How the maps change as the model's weights are re-initialised from the top.

    Attributes
    ----------
    layers : list of str
        The weighted layers, from the output side: ``layers[:k]`` are re-initialised
        at cascade depth ``k``.
    depths : numpy.ndarray
        (D,) the cascade depths measured.
    spearman, ssim : numpy.ndarray
        (D, N) rank correlation and structural similarity of each image's map with
        its map on the intact model (both near 1 mean the method ignores the model).
    random_class_spearman, random_class_ssim : numpy.ndarray
        (N,) the same between the map of each image's class and of another class,
        drawn at random (near 1: the method ignores the class).
    """

    layers: list
    depths: np.ndarray
    spearman: np.ndarray
    ssim: np.ndarray
    random_class_spearman: np.ndarray
    random_class_ssim: np.ndarray
    other_classes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def plot(self, *, figsize=None, save=None):
        """Mean rank correlation and SSIM against the cascade depth."""
        from matplotlib.figure import Figure

        width, height = plot._figsize(figsize)
        fig = Figure(figsize=(width or 6.0, height or 3.5), layout="constrained")
        ax = fig.subplots()
        for values, label in ((self.spearman, "Spearman rank correlation"), (self.ssim, "SSIM")):
            ax.plot(self.depths, values.mean(axis=1), marker="o", label=label)
        ax.set(xlabel="layers re-initialised from the output", ylabel="similarity to the intact model's maps",
               title="Model-parameter randomization", ylim=(-0.1, 1.05))
        ax.legend(fontsize=8)
        return plot._save(fig, save)


def _comparable(result) -> np.ndarray:
    """(N, H, W) maps compared: CAMs at the input size, attributions' |sum|, in [0, 1]."""
    maps = np.abs(result.heatmaps) if isinstance(result, Attributions) else result.upsampled()
    maps = np.asarray(maps, np.float64)
    peak = maps.reshape(len(maps), -1).max(axis=1)[:, None, None]
    return np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0)


def _similarity(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from skimage.metrics import structural_similarity

    rho = np.array([spearman(x, y) for x, y in zip(a, b)])
    win = min(7, *a.shape[1:]) // 2 * 2 + 1 if min(a.shape[1:]) >= 3 else None
    ssim = np.array([structural_similarity(x, y, data_range=1.0, win_size=win) if win else float(np.allclose(x, y))
                     for x, y in zip(a, b)])
    return rho, ssim


def _weights(layer) -> list:
    """A layer's float weights (not the state of its random seed generators)."""
    return [v for v in layer.weights if "float" in str(v.dtype) and "seed_generator" not in getattr(v, "path", "")]


def weighted_layers(model) -> list[str]:
    """Names of the layers with weights (inside nested models too), output side first."""
    inspector = Inspector.of(model)
    return [info.name for info in reversed(inspector.layers())
            if _weights(info.layer) and not isinstance(info.layer, keras.Model)]


def _reinitialise(layer, rng) -> None:
    """New values for every weight of ``layer``: its initializers where it has them
    (``kernel_initializer``, ``bias_initializer``...), else a normal draw with the
    weight's own spread."""
    for variable in _weights(layer):
        short = variable.path.rsplit("/", 1)[-1]
        initializer = getattr(layer, f"{short}_initializer", None)
        shape = tuple(variable.shape)
        if isinstance(initializer, keras.initializers.Initializer):
            config = initializer.get_config()
            if "seed" in config:  # a random initializer: a new seed, reproducibly
                initializer = type(initializer).from_config({**config, "seed": int(rng.integers(2**31 - 1))})
            values = keras.ops.convert_to_numpy(initializer(shape))
        else:
            current = keras.ops.convert_to_numpy(variable)
            values = rng.normal(current.mean(), current.std() or 1.0, shape)
        variable.assign(np.asarray(values, np.float32))


def randomization(model, images, *, method="gradcam", class_index=None, depths=None, seed: int = 0,
                  **options) -> Randomization:
    """Model-parameter randomization (Adebayo et al. 2018), cascading from the output
    side, and the random-class check.

    On a copy of the model (the user's model is untouched) the weighted layers are
    re-initialised one by one from the output; at each depth in ``depths`` the maps
    of the same images and classes are recomputed and compared with the intact
    model's: Spearman rank correlation and SSIM per image, on maps at the input size
    scaled to [0, 1] (attributions: the absolute channel sum). A faithful method's
    maps lose their resemblance as more layers are randomised. The random-class check
    compares each image's map with the map of another class drawn at random.

    Parameters
    ----------
    model, images, class_index
        As :func:`convviz.explain` (``class_index`` None: each image's top class on
        the intact model, kept for every depth).
    method : str or Method subclass
        Any registered method.
    depths : sequence of int, optional
        Cascade depths (numbers of layers re-initialised); default 1, 2, 4, ... and
        all of them.
    seed : int
        Seeds the new weights and the random classes.
    **options
        Passed to the method (``layer``, ``steps``...).

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="conv"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, name="head")])
    >>> result = convviz.metrics.randomization(model, np.random.rand(2, 8, 8, 3), depths=[1, 2])
    >>> result.layers, result.spearman.shape
    (['head', 'conv'], (2, 2))
    """
    cls = get_method(method)
    quiet = {"verbose": False} if "verbose" in _init_parameters(cls) else {}
    inspector = Inspector.of(model)
    batch = inspector.prepare(images)
    original = cls(inspector, **quiet, **options).explain(batch, class_index=class_index)
    classes = original.class_index
    names = weighted_layers(inspector.model)
    if not names:
        raise InputError("The model has no weights to randomise.")
    if depths is None:
        depths = sorted({*(2**i for i in range(int(np.log2(len(names))) + 1)), len(names)})
    depths = sorted({check_positive_int(d, "depths") for d in depths})
    if depths[-1] > len(names):
        raise InputError(f"depths go up to {depths[-1]} but the model has {len(names)} weighted layers.")
    rng = np.random.default_rng(seed)
    reference = _comparable(original)

    # The random-class check, on the intact model.
    n_classes = original.predictions.shape[-1]
    choices = 2 if n_classes == 1 else n_classes
    others = (classes + rng.integers(1, choices, size=len(classes))) % choices
    other = cls(inspector, **quiet, **options).explain(batch, class_index=others)
    class_rho, class_ssim = _similarity(reference, _comparable(other))

    clone = keras.models.clone_model(inspector.model)
    clone.set_weights(inspector.model.get_weights())
    copy = Inspector.of(clone)
    explainer = cls(copy, **quiet, **options)
    layers_by_name = {info.name: info.layer for info in copy.layers()}
    rho, ssim, done = [], [], 0
    for depth in depths:
        for name in names[done:depth]:
            _reinitialise(layers_by_name[name], rng)
        done = depth
        r, s = _similarity(reference, _comparable(explainer.explain(batch, class_index=classes)))
        rho.append(r)
        ssim.append(s)
    return Randomization(names, np.array(depths), np.array(rho), np.array(ssim), class_rho, class_ssim, others)


def _init_parameters(cls) -> set[str]:
    import inspect

    return {name for klass in cls.__mro__ if "__init__" in vars(klass)
            for name in inspect.signature(klass.__init__).parameters}
