"""SmoothGrad (Smilkov et al. 2017): gradients averaged over noisy copies."""

from __future__ import annotations

import math
import numbers

import numpy as np

from convviz._validation import check_positive_int, check_seed
from convviz.errors import InputError
from convviz.methods.attribution import Attribution
from convviz.methods.cam import LazyBatch

__all__ = ["SmoothGrad"]


class SmoothGrad(Attribution):
    """SmoothGrad: the mean gradient of the class score over ``samples`` noisy copies
    of each image, ``x + N(0, sigma^2)`` with ``sigma = noise * (max(x) - min(x))``.

    ``squared=True`` averages the squared gradients (SmoothGrad-Squared). The noise is
    seeded per sample (``seed``), so an image's result depends neither on
    ``batch_size`` nor on the other images; ``noise=0`` gives the signed saliency. The N x ``samples`` noisy
    copies are built one chunk at a time and run through the compiled gradient step.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.attribute(model, np.random.rand(1, 16, 16, 3), method="smoothgrad", samples=8).maps.shape
    (1, 16, 16, 3)
    """

    name = "smoothgrad"
    title = "SmoothGrad"
    reference = (
        "Smilkov et al., SmoothGrad: removing noise by adding noise, ICML Workshop on "
        "Visualization for Deep Learning, 2017"
    )
    order = 22

    def __init__(self, model, *, samples: int = 50, noise: float = 0.15, squared: bool = False, seed: int = 0,
                 **kwargs):
        super().__init__(model, **kwargs)
        check_positive_int(samples, "samples")
        if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not 0 <= noise < math.inf:
            raise InputError(f"noise must be a number >= 0, got {noise!r}.")
        if not isinstance(squared, (bool, np.bool_)):
            raise InputError(f"squared must be True or False, got {squared!r}.")
        self.samples, self.noise, self.squared, self.seed = int(samples), float(noise), bool(squared), check_seed(seed)

    def options(self) -> dict:
        return {**super().options(), "samples": self.samples, "noise": self.noise, "squared": self.squared,
                "seed": self.seed}

    def noisy_images(self, images: np.ndarray) -> LazyBatch:
        """The N x ``samples`` noisy copies (row ``n * samples + s``), built lazily.

        Sample ``s`` adds ``sigma_n`` times the noise of
        ``numpy.random.default_rng((seed, s))`` to image ``n``: an image gets the same
        noise whatever the batch it is in, or its place in it."""
        k = self.samples
        spread = images.reshape(len(images), -1)
        sigma = self.noise * (spread.max(axis=1) - spread.min(axis=1))

        def build(start, stop):
            rows = []
            for m in range(start, stop):
                n, s = divmod(m, k)
                noise = np.random.default_rng((self.seed, s)).standard_normal(images.shape[1:], np.float32)
                rows.append(images[n] + np.float32(sigma[n]) * noise)
            return np.stack(rows)

        return LazyBatch(len(images) * k, build)

    def compute(self, images, classes, scores):
        n, k = len(images), self.samples
        sums = self.gradient_sums(
            self.noisy_images(images), np.repeat(classes, k), np.full(n * k, 1.0 / k), np.repeat(np.arange(n), k), n,
            squared=self.squared,
        )
        return sums
