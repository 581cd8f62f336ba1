"""Eigen-CAM (Muhammad & Yeasin 2020): the activations' first principal component."""

from __future__ import annotations

import numpy as np

from convviz.methods.cam import GradientFreeCAM

__all__ = ["EigenCAM"]


class EigenCAM(GradientFreeCAM):
    """Eigen-CAM: the layer's activations projected on their first principal component.

    For each image the (h * w, K) activations are centred (each channel's mean over the
    positions subtracted) and projected on their first right singular vector; the map
    is the relu of that projection, divided by its maximum. No gradients and no class:
    every class of an image gets the same map (``class_index`` is still reported).

    A singular vector's sign is arbitrary (pytorch-grad-cam's map may be the negative
    of another run's): convviz orients it so that the projection correlates
    positively with the channel-summed activation, where the evidence is.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.cam(model, np.random.rand(1, 16, 16, 3), method="eigencam").shape
    (1, 14, 14)
    """

    name = "eigencam"
    order = 12
    title = "Eigen-CAM"
    reference = (
        "Muhammad & Yeasin, Eigen-CAM: Class Activation Map using Principal Components, "
        "IJCNN 2020"
    )

    def compute(self, images, activations, classes):
        n, h, w, k = activations.shape
        maps = np.zeros((n, h, w))
        for i, a in enumerate(activations.astype(np.float64)):
            flat = a.reshape(h * w, k)
            centred = flat - flat.mean(axis=0)
            if not np.any(centred):
                continue  # constant activations: no component, an all-zero map
            _, _, vt = np.linalg.svd(centred, full_matrices=False)
            projection = centred @ vt[0]
            total = flat.sum(axis=1)
            if projection @ (total - total.mean()) < 0:
                projection = -projection
            maps[i] = projection.reshape(h, w)
        return maps
