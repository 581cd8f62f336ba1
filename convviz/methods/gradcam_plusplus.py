"""Grad-CAM++ (Chattopadhay et al. 2018), in pytorch-grad-cam's closed form."""

from __future__ import annotations

import numpy as np

from convviz._validation import check_positive_number
from convviz.methods.cam import CAM

__all__ = ["GradCAMPlusPlus"]


class GradCAMPlusPlus(CAM):
    """Grad-CAM++: positive gradients weighted per position by the closed-form alpha.

    With ``G`` the class score's gradient at the layer and ``A`` its activations,
    ``alpha = G**2 / (2 G**2 + sum_ij(A) * G**3 + eps)`` (0 where ``G == 0``) and
    channel ``k``'s weight is ``sum_ij relu(G_ijk) * alpha_ijk``; the map is
    ``relu(sum_k weight_k A_k)`` divided by its maximum. ``eps = 1e-6`` as in
    pytorch-grad-cam; it sets the scale when gradients are tiny (deep ImageNet heads),
    so another ``eps`` gives another map.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.cam(model, np.random.rand(1, 16, 16, 3), method="gradcam_plusplus").shape
    (1, 14, 14)
    """

    name = "gradcam_plusplus"
    order = 1
    title = "Grad-CAM++"
    reference = (
        "Chattopadhay et al., Grad-CAM++: Generalized Gradient-Based Visual Explanations "
        "for Deep Convolutional Networks, WACV 2018"
    )

    def __init__(self, model, *, eps: float = 1e-6, **kwargs):
        super().__init__(model, **kwargs)
        self.eps = check_positive_number(eps, "eps")

    def options(self) -> dict:
        return {**super().options(), "eps": self.eps}

    def channel_weights(self, activations, gradients):
        # Element-wise in float32 (as the model's own numbers; ~1e-7 relative), sums in
        # float64: a quarter of the time of float64 throughout on a 7x7x1280 head.
        g = np.asarray(gradients, np.float32)
        total = activations.sum(axis=(1, 2), keepdims=True, dtype=np.float64).astype(np.float32)
        g2 = g * g
        denominator = g2 * (2 + total * g) + np.float32(self.eps)  # 2 G^2 + sum(A) G^3 + eps
        alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=(g != 0) & (denominator != 0))
        return (np.maximum(g, 0) * alpha).sum(axis=(1, 2), dtype=np.float64)
