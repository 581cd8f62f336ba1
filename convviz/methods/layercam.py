"""Layer-CAM (Jiang et al. 2021): positive gradients times activations, position by position."""

from __future__ import annotations

import numpy as np

from convviz.methods.cam import CAM

__all__ = ["LayerCAM"]


class LayerCAM(CAM):
    """Layer-CAM: ``map = relu(sum_k relu(G_k) * A_k)``, divided by its maximum.

    Like HiResCAM, the gradients weight the activations position by position, but only
    where they are positive; the maps stay sharp at shallow layers, where Grad-CAM's
    spatial average blurs them.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.cam(model, np.random.rand(1, 16, 16, 3), method="layercam").shape
    (1, 14, 14)
    """

    name = "layercam"
    order = 4
    title = "Layer-CAM"
    reference = (
        "Jiang et al., LayerCAM: Exploring Hierarchical Class Activation Maps for "
        "Localization, IEEE Transactions on Image Processing 30, 2021"
    )

    def combine(self, activations, gradients):
        return (activations * np.maximum(gradients, 0)).sum(axis=-1, dtype=np.float64)
