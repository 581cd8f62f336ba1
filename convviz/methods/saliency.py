"""Saliency (Simonyan et al. 2014): the gradient of the class score at each pixel."""

from __future__ import annotations

import numpy as np

from convviz.errors import InputError
from convviz.methods.attribution import Attribution

__all__ = ["Saliency"]


class Saliency(Attribution):
    """Saliency: ``|d score / d x|``, the class score's gradient with respect to each
    input pixel and channel (``abs=False``: the signed gradient).

    One forward and one backward pass of the whole model per chunk of images.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.attribute(model, np.random.rand(2, 16, 16, 3), method="saliency").maps.shape
    (2, 16, 16, 3)
    """

    name = "saliency"
    title = "Saliency"
    reference = (
        "Simonyan et al., Deep Inside Convolutional Networks: Visualising Image Classification "
        "Models and Saliency Maps, ICLR Workshop 2014"
    )
    order = 20

    def __init__(self, model, *, abs: bool = True, **kwargs):  # noqa: A002 (captum's name)
        super().__init__(model, **kwargs)
        if not isinstance(abs, (bool, np.bool_)):
            raise InputError(f"abs must be True or False, got {abs!r}.")
        self.abs = bool(abs)

    def options(self) -> dict:
        return {**super().options(), "abs": self.abs}

    def compute(self, images, classes, scores):
        grads = self.input_gradients(images, classes)
        return np.abs(grads) if self.abs else grads
