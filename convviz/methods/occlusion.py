"""Occlusion (Zeiler & Fergus 2014): the score lost when a window of the image is covered."""

from __future__ import annotations

import numbers

import numpy as np

from convviz.errors import InputError
from convviz.methods.attribution import Attribution, baseline_images
from convviz.methods.cam import LazyBatch

__all__ = ["Occlusion"]


def _pair(value, name: str) -> tuple[int, int]:
    values = (value, value) if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value
    try:
        h, w = values
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a positive integer or a (height, width) pair, got {value!r}.") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise InputError(f"{name} must be a positive integer or a (height, width) pair, got {value!r}.")
    return int(h), int(w)


class Occlusion(Attribution):
    """Occlusion: slide a ``window`` over the image with ``stride``, replace what it
    covers (every channel) by the ``baseline``, and credit each covered pixel with the
    class score's drop ``score(x) - score(x occluded)``, averaged over the windows
    that cover it (captum's ``Occlusion``). Pixels no window covers get 0.

    Windows start at ``0, stride, 2 * stride, ...`` up to the first that reaches the
    image's far edge (``ceil((H - window) / stride) + 1`` of them per axis, as captum
    places them); one that would cross the edge is cut there. With ``stride`` larger
    than ``window`` some pixels are never covered: they get 0. The N x (windows per
    image) occluded copies are built one chunk of ``batch_size`` at a time and scored
    by the compiled model (forward passes only).

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.attribute(model, np.random.rand(1, 16, 16, 3), method="occlusion", window=8, stride=4).maps.shape
    (1, 16, 16, 3)
    """

    name = "occlusion"
    title = "Occlusion"
    reference = "Zeiler & Fergus, Visualizing and Understanding Convolutional Networks, ECCV 2014"
    order = 24

    def __init__(self, model, *, window=16, stride=8, baseline=0.0, **kwargs):
        super().__init__(model, **kwargs)
        self.window, self.stride = _pair(window, "window"), _pair(stride, "stride")
        if isinstance(baseline, str) and baseline not in ("black", "blur"):
            raise InputError(f'baseline must be a number, an array, "black" or "blur"; got {baseline!r}.')
        self.baseline = baseline

    def options(self) -> dict:
        baseline = self.baseline if isinstance(self.baseline, (str, numbers.Real)) else "array"
        return {**super().options(), "window": list(self.window), "stride": list(self.stride), "baseline": baseline}

    def corners(self, size: tuple[int, int]) -> list[tuple[int, int]]:
        """The windows' top-left corners on an image of ``size`` (height, width)."""
        (h, w), (wh, ww), (sh, sw) = size, self.window, self.stride
        if wh > h or ww > w:
            raise InputError(f"The occlusion window {self.window} is larger than the image ({h}, {w}).")
        rows = [i * sh for i in range(-(-(h - wh) // sh) + 1)]
        cols = [i * sw for i in range(-(-(w - ww) // sw) + 1)]
        return [(y, x) for y in rows for x in cols]

    def compute(self, images, classes, scores):
        n = len(images)
        corners = self.corners(images.shape[1:3])
        k, (wh, ww) = len(corners), self.window
        baselines = baseline_images(self.baseline, images)

        def build(start, stop):
            rows = images[np.arange(start, stop) // k].copy()
            for row, m in enumerate(range(start, stop)):
                (y, x), i = corners[m % k], m // k
                rows[row, y : y + wh, x : x + ww] = baselines[i, y : y + wh, x : x + ww]
            return rows

        occluded = self.class_scores(LazyBatch(n * k, build), np.repeat(classes, k)).reshape(n, k)
        drop = scores[:, None] - occluded
        total = np.zeros(images.shape[:3])
        covered = np.zeros(images.shape[1:3])
        for j, (y, x) in enumerate(corners):
            total[:, y : y + wh, x : x + ww] += drop[:, j, None, None]
            covered[y : y + wh, x : x + ww] += 1
        maps = np.divide(total, covered, out=np.zeros_like(total), where=covered > 0)
        return np.repeat(maps[..., None], images.shape[-1], axis=-1)
