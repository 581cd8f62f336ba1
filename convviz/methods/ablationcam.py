"""Ablation-CAM (Desai & Ramaswamy 2020): channels weighted by the score lost without them."""

from __future__ import annotations

import numpy as np

from convviz.methods.cam import GradientFreeCAM, LazyBatch

__all__ = ["AblationCAM"]

ABLATION_OFFSET = 1e7
"""Below the layer's minimum, for layers whose outputs are not 0 at least (pytorch-grad-cam)."""


class AblationCAM(GradientFreeCAM):
    """Ablation-CAM: channel ``k``'s weight is ``(s - s_k) / s``, with ``s`` the class
    score and ``s_k`` the score with channel ``k`` ablated.

    The map is ``relu(sum_k weight_k A_k)``, divided by its maximum. As in
    pytorch-grad-cam, an ablated channel is set to 0 where the image's activations at
    the layer have minimum 0 (after a ReLU), and otherwise to that minimum minus
    ``1e7``, so that the layers after it (a BatchNorm's activation, say) see it as
    absent. Only the layers after the ablated one run, on the N x K ablated
    activations in compiled chunks of ``batch_size``: a model's head costs far less
    than the whole model per channel.

    The weights are differences of nearly equal scores: float32 rounding shows in the
    map at ~1e-4 of its maximum.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.cam(model, np.random.rand(1, 16, 16, 3), method="ablationcam").shape
    (1, 14, 14)
    """

    name = "ablationcam"
    order = 11
    title = "Ablation-CAM"
    reference = (
        "Desai & Ramaswamy, Ablation-CAM: Visual Explanation for Deep Convolutional Network "
        "via Gradient-free Localization, WACV 2020"
    )
    default_batch_size = 256

    def ablated_activations(self, activations: np.ndarray) -> LazyBatch:
        """The N x K ablated activations (row ``n * K + k``: image ``n``'s with channel
        ``k`` ablated), built lazily."""
        n, k = len(activations), activations.shape[-1]
        lowest = activations.reshape(n, -1).min(axis=1)
        value = np.where(lowest == 0, 0.0, lowest - ABLATION_OFFSET).astype(activations.dtype)

        def build(start, stop):
            index = np.arange(start, stop)
            rows = activations[index // k].copy()
            rows[np.arange(len(index)), ..., index % k] = value[index // k, None, None]
            return rows

        return LazyBatch(n * k, build)

    def compute(self, images, activations, classes):
        n, k = len(images), activations.shape[-1]
        score = self.layer_scores(activations, classes, images=images)
        ablated = self.layer_scores(
            self.ablated_activations(activations), np.repeat(classes, k), images=LazyBatch.repeat(images, k)
        ).reshape(n, k)
        weights = (score[:, None] - ablated) / score[:, None]
        return np.einsum("nhwk,nk->nhw", activations.astype(np.float64), weights)
