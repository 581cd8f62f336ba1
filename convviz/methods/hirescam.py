"""HiResCAM (Draelos & Carin 2020): gradients times activations, position by position."""

from __future__ import annotations

import numpy as np

from convviz.methods.cam import CAM

__all__ = ["HiResCAM"]


class HiResCAM(CAM):
    """HiResCAM: ``map = relu(sum_k G_k * A_k)``, element-wise, divided by its maximum.

    Grad-CAM averages the gradients over space before weighting the channels; HiResCAM
    keeps them per position, so the map shows the positions whose activations raised
    the class score (for a model ending in global average pooling and one dense
    layer, HiResCAM and Grad-CAM coincide).

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.Flatten(), keras.layers.Dense(2)])
    >>> convviz.cam(model, np.random.rand(1, 16, 16, 3), method="hirescam").shape
    (1, 14, 14)
    """

    name = "hirescam"
    order = 3
    title = "HiResCAM"
    reference = (
        "Draelos & Carin, Use HiResCAM instead of Grad-CAM for faithful explanations of "
        "convolutional neural networks, arXiv:2011.08891, 2020"
    )

    def combine(self, activations, gradients):
        return (activations * gradients).sum(axis=-1, dtype=np.float64)
