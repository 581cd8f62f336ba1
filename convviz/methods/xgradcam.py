"""XGrad-CAM (Fu et al. 2020): gradients weighted by the activations they act on."""

from __future__ import annotations

import numpy as np

from convviz._validation import check_positive_number
from convviz.methods.cam import CAM

__all__ = ["XGradCAM"]


class XGradCAM(CAM):
    """XGrad-CAM: channel ``k``'s weight is ``sum_ij(G_ijk * A_ijk) / (sum_ij A_ijk + eps)``.

    ``G`` is the class score's gradient at the layer, ``A`` its activations; the map
    is ``relu(sum_k weight_k A_k)`` divided by its maximum. ``eps = 1e-7`` as in
    pytorch-grad-cam and torchcam. The weights are the axioms' solution for layers
    with non-negative activations (after a ReLU); where a channel's ``sum_ij A`` is
    near zero (a layer before its activation, such as a BatchNorm) the ratio is
    ill-conditioned and float32 rounding shows in the map (~1e-3 of its maximum).

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.cam(model, np.random.rand(1, 16, 16, 3), method="xgradcam").shape
    (1, 14, 14)
    """

    name = "xgradcam"
    order = 2
    title = "XGrad-CAM"
    reference = (
        "Fu et al., Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation "
        "of CNNs, BMVC 2020"
    )

    def __init__(self, model, *, eps: float = 1e-7, **kwargs):
        super().__init__(model, **kwargs)
        self.eps = check_positive_number(eps, "eps")

    def options(self) -> dict:
        return {**super().options(), "eps": self.eps}

    def channel_weights(self, activations, gradients):
        total = activations.sum(axis=(1, 2), dtype=np.float64)
        return (gradients * activations).sum(axis=(1, 2), dtype=np.float64) / (total + self.eps)
