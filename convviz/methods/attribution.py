"""The base of pixel attributions: which input pixels moved a class score.

- :class:`Attribution`: the methods' base. It owns the compiled input-gradient step
  (one forward and one backward pass of the whole model per chunk, the class chosen
  per row, in inference mode, on the class score before a final softmax/sigmoid) and
  :meth:`Attribution.gradient_sums`, which runs thousands of perturbed copies
  (interpolation steps, noise samples) through it in chunks of ``batch_size`` and
  keeps only each image's weighted sum of gradients. A subclass implements
  :meth:`Attribution.compute`.
- :class:`Attributions`: the result, an :class:`~convviz.methods.Explanation` whose
  maps are (N, H, W, C) signed attributions at the model's input resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np

from convviz import plot
from convviz._autodiff import gradient_step
from convviz._validation import check_verbose
from convviz.errors import InputError
from convviz.methods.core import Explanation, Method, _label, class_weights

__all__ = ["Attribution", "Attributions", "baseline_images"]


@dataclass(eq=False)
class Attributions(Explanation):
    """Pixel attributions: an :class:`~convviz.methods.Explanation` whose ``maps`` are
    (N, H, W, C) float32 signed attributions at the model's input resolution
    (``layer`` is None).

    Attributes
    ----------
    details : dict
        Per-image arrays a method reports besides the maps (``integrated_gradients``:
        ``completeness_gap``, ``relative_gap``, ``steps``...).
    """

    details: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Attributions(method={self.method!r}, maps={self.maps.shape}, "
            f"class_index={self.class_index.tolist()}, details={sorted(self.details)})"
        )

    def aggregate(self, how: str = "sum") -> np.ndarray:
        """(N, H, W) maps from the channels: ``"sum"`` (signed), ``"abs_sum"`` or
        ``"max_abs"`` (see :func:`convviz.plot.aggregate_channels`)."""
        return plot.aggregate_channels(self.maps, how)

    @property
    def heatmaps(self) -> np.ndarray:
        """The channel sums, (N, H, W), signed."""
        return self.aggregate("sum")

    def upsampled(self, size=None) -> np.ndarray:
        """The channel sums (:attr:`heatmaps`), resized bilinearly to ``size`` (default:
        the input size, where they already are); signed, not clipped."""
        from convviz._inputs import _resize

        maps = self.heatmaps.astype(np.float32)
        size = tuple(self.input_size if size is None else size)
        return maps if maps.shape[1:] == size else _resize(maps[..., None], size)[..., 0]

    def plot(self, *, view: str = "signed", aggregate: str = "sum", percentile: float = 99.0,
             class_names=None, ncols: int = 4, alpha: float = 0.5, cmap=None, figsize=None, save=None):
        """The attribution views (:func:`convviz.plot.attributions`): ``"signed"``
        (diverging colours centred at 0), ``"absolute"``, ``"overlay"`` on the image,
        or ``"all"``; values beyond the ``percentile``-th of ``|attribution|`` are
        clipped. Titled with each class and its probability."""
        if self.images is None:
            raise InputError(
                "These Attributions hold no images (loaded from a file); use "
                "convviz.plot.attributions(images, attributions.maps) with the images."
            )
        titles = [_label(p, int(c), class_names) for p, c in zip(self.predictions, self.class_index)]
        return plot.attributions(self.images, self.maps, view=view, aggregate=aggregate, percentile=percentile,
                                 titles=titles, ncols=ncols, alpha=alpha, cmap=cmap, figsize=figsize, save=save)

    def _extra_arrays(self) -> dict:
        return {f"details/{k}": v for k, v in self.details.items()}

    @classmethod
    def _fields_from_arrays(cls, arrays: dict) -> dict:
        return {"details": {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("details/")}}


def baseline_images(baseline, images: np.ndarray, *, blur_sigma: float | None = None) -> np.ndarray:
    """The (N, H, W, C) reference images for ``baseline``, in the model's input space.

    ``baseline`` is a number (every pixel), ``"black"`` (0, a black image for a model
    that takes 0-255 pixels), ``"blur"`` (each image blurred with a Gaussian of
    ``blur_sigma`` pixels, default a sixteenth of its longer side), or an array
    broadcastable to the images ((H, W, C) or (N, H, W, C)).

    >>> baseline_images(0.5, np.zeros((2, 4, 4, 3))).shape
    (2, 4, 4, 3)
    """
    images = np.asarray(images, np.float32)
    if isinstance(baseline, str):
        if baseline == "black":
            return np.zeros_like(images)
        if baseline == "blur":
            sigma = max(images.shape[1:3]) / 16 if blur_sigma is None else float(blur_sigma)
            return _gaussian_blur(images, sigma)
        raise InputError(f'baseline must be a number, an array, "black" or "blur"; got {baseline!r}.')
    if isinstance(baseline, bool):
        raise InputError(f"baseline must be a number or an array, not {baseline!r}.")
    try:
        values = np.asarray(baseline, np.float32)
        return np.ascontiguousarray(np.broadcast_to(values, images.shape))
    except (TypeError, ValueError):
        raise InputError(
            f"baseline must be a number, \"black\", \"blur\" or an array broadcastable to the images "
            f"{images.shape}; got {getattr(baseline, 'shape', baseline)!r}."
        ) from None


def _row_shape(images) -> tuple:
    """The shape of one row of an array or a LazyBatch (built once for a LazyBatch)."""
    shape = getattr(images, "shape", None)
    return tuple(shape[1:]) if shape is not None else tuple(np.shape(images[0:1])[1:])


def _gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of (N, H, W, C) images over H and W (edges reflected)."""
    if sigma <= 0:
        return images.copy()
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = images.astype(np.float64)
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="reflect" if out.shape[axis] > radius else "edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, len(taps), axis=axis)
        out = windows @ taps
    return out.astype(np.float32)


class Attribution(Method):
    """Base of the pixel attribution methods; a subclass implements :meth:`compute`.

    Parameters
    ----------
    model, logits, batch_size, output
        As :class:`~convviz.methods.Method`; ``batch_size`` counts the perturbed
        copies (interpolation steps, noise samples, occluded images) per compiled call.
    verbose : bool
        A progress bar on standard error while many copies are processed.
    """

    kind = "attribution"
    result_type = Attributions
    _abstract = True

    def __init__(self, model, *, logits: bool = True, batch_size: int | None = None, output=None,
                 verbose: bool = True):
        super().__init__(model, logits=logits, batch_size=batch_size, output=output)
        self.verbose = check_verbose(verbose)

    def compute(self, images: np.ndarray, classes: np.ndarray, scores: np.ndarray):
        """(N, H, W, C) attributions of ``classes`` on ``images`` (the batch the model
        sees); ``scores`` are the (N,) class scores of the images. May return
        ``(maps, details)`` with ``details`` a dict of per-image arrays."""
        raise NotImplementedError(f"{type(self).__name__} must define compute.")

    def explain(self, images, *, class_index=None) -> Attributions:
        batch = self.inspector.prepare(images)
        class_weights(class_index, len(batch), self._score_shape()[-1])  # validates class_index
        scores = self.scores(batch)
        classes = self._classes(scores, class_index)
        result = self.compute(batch, classes, self._pick(scores, classes))
        maps, details = result if isinstance(result, tuple) else (result, {})
        return self._result(np.asarray(maps, np.float32), scores, class_index, batch, details=details)

    # -- gradients of many inputs -------------------------------------------------------

    def _step(self):
        """The compiled step ``([images], weights) -> (value, gradient, scores)``."""
        inspector = self.inspector
        model = inspector._score_model(logits=self.logits)
        return inspector._cached(
            "input-gradient-step", self.logits,
            lambda: gradient_step(model, lambda scores, weights: keras.ops.sum(scores * weights), wrt=0),
        )

    def _row_weights(self, classes, rows: int) -> np.ndarray:
        """(rows, C) +1 at each row's class (a single sigmoid unit: -1 for class 0)."""
        weights, _ = class_weights(np.broadcast_to(np.asarray(classes, np.int64), (rows,)), rows,
                                   self._score_shape()[-1])
        return weights

    def input_gradients(self, images, classes) -> np.ndarray:
        """(M, H, W, C) float32 gradients of each input's class score with respect to
        the input: ``images`` an array or a :class:`~convviz.methods.LazyBatch`,
        ``classes`` an int or one per input."""
        out = np.zeros((len(images), *_row_shape(images)), np.float32)

        def keep(start, grads):
            out[start : start + len(grads)] = grads

        self._gradients(images, classes, keep)
        return out

    def gradient_sums(self, images, classes, weights, groups, n_groups: int, *, squared: bool = False):
        """(n_groups, H, W, C) float64: ``sum_m weights[m] * grad_m`` over the inputs
        ``m`` of each group (``groups[m]``), ``grad_m`` the gradient of input ``m``'s
        class score with respect to it (squared first with ``squared=True``).

        ``images`` (M rows) is an array or a :class:`~convviz.methods.LazyBatch`;
        only one chunk of them and of their gradients is in memory at a time.
        """
        weights = np.asarray(weights, np.float64)
        groups = np.asarray(groups, np.int64)
        total = np.zeros((n_groups, *_row_shape(images)), np.float64)

        def add(start, grads):
            rows = slice(start, start + len(grads))
            if squared:
                grads = grads * grads
            for g in np.unique(groups[rows]):
                mine = groups[rows] == g
                total[g] += np.tensordot(weights[rows][mine], grads[mine], axes=1)

        self._gradients(images, classes, add)
        return total

    def _gradients(self, images, classes, reduce) -> None:
        step = self._step()

        def run(chunk):
            x, w = chunk
            _, grad, _ = step([x], w)
            return [keras.ops.convert_to_numpy(grad)]

        self._chunked(run, [images, self._row_weights(classes, len(images))], output=0, reduce=reduce)
