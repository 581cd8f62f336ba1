"""Grad-CAM (Selvaraju et al. 2017), the chapter's algorithm."""

from __future__ import annotations

import numpy as np

from convviz.methods.cam import CAM

__all__ = ["GradCAM"]


class GradCAM(CAM):
    """Grad-CAM: channel weights are the class score's gradients averaged over space.

    ``map = relu(sum_k mean_ij(dS/dA_ijk) * A_k)``, divided by its maximum.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    >>> result = convviz.methods.GradCAM(model).explain(np.random.rand(2, 32, 32, 3))
    >>> result.maps.shape, result.method
    ((2, 30, 30), 'gradcam')
    """

    name = "gradcam"
    order = 0
    title = "Grad-CAM"
    reference = (
        "Selvaraju et al., Grad-CAM: Visual Explanations from Deep Networks via "
        "Gradient-based Localization, ICCV 2017"
    )

    def channel_weights(self, activations, gradients):
        return gradients.mean(axis=(1, 2), dtype=np.float64)
