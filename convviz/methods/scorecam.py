"""Score-CAM (Wang et al. 2020): channels weighted by the scores of the images they mask."""

from __future__ import annotations

import numpy as np

from convviz.methods.cam import GradientFreeCAM, LazyBatch

__all__ = ["ScoreCAM"]


def aligned_corners_matrix(size: int, source: int) -> np.ndarray:
    """(size, source) bilinear interpolation weights with aligned corners: output ``i``
    samples the source at ``i * (source - 1) / (size - 1)`` (PyTorch's
    ``UpsamplingBilinear2d``).

    >>> aligned_corners_matrix(3, 2).tolist()
    [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    """
    position = np.arange(size) * ((source - 1) / (size - 1) if size > 1 else 0.0)
    low = np.minimum(np.floor(position).astype(np.int64), source - 1)
    high = np.minimum(low + 1, source - 1)
    frac = position - low
    matrix = np.zeros((size, source))
    np.add.at(matrix, (np.arange(size), low), 1 - frac)
    np.add.at(matrix, (np.arange(size), high), frac)
    return matrix


class ScoreCAM(GradientFreeCAM):
    """Score-CAM: each channel, as a mask on the input, scores itself.

    Each activation channel ``A_k`` is upsampled to the input size (bilinear, aligned
    corners), min-max scaled to [0, 1] (``(A - min) / (max - min + 1e-8)``) and
    multiplies the model input; the class scores ``s_k`` of those N x K masked images,
    soft-maxed over the channels, weight the channels: ``map = relu(sum_k
    softmax(s)_k A_k)``, divided by its maximum. As in pytorch-grad-cam and torchcam;
    the paper's score increase over a baseline image gives the same softmax (a shift
    per image).

    The masked images are built one chunk of ``batch_size`` at a time and scored by
    the compiled model, so memory stays at one chunk; the cost is one forward pass per
    channel and image (a layer with fewer channels, or a smaller input, is faster).

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.cam(model, np.random.rand(1, 16, 16, 3), method="scorecam").shape
    (1, 14, 14)
    """

    name = "scorecam"
    order = 10
    title = "Score-CAM"
    reference = (
        "Wang et al., Score-CAM: Score-Weighted Visual Explanations for Convolutional "
        "Neural Networks, CVPR Workshops 2020"
    )

    def masked_images(self, images: np.ndarray, activations: np.ndarray) -> LazyBatch:
        """The N x K masked images (row ``n * K + k``: image ``n`` times channel ``k``'s
        upsampled, min-max scaled map), built lazily."""
        n, h, w, k = activations.shape
        # float32 as the model computes (and as the PyTorch peers build the masks).
        rows_up = aligned_corners_matrix(images.shape[1], h).astype(np.float32)
        cols_up = aligned_corners_matrix(images.shape[2], w).astype(np.float32)
        images = np.asarray(images, np.float32)

        def build(start, stop):
            index = np.arange(start, stop)
            channels = activations[index // k, :, :, index % k].astype(np.float32)
            masks = np.einsum("Hh,bhw,Ww->bHW", rows_up, channels, cols_up, optimize=True)
            low = masks.min(axis=(1, 2), keepdims=True)
            masks -= low
            masks /= masks.max(axis=(1, 2), keepdims=True) + np.float32(1e-8)
            return images[index // k] * masks[..., None]

        return LazyBatch(n * k, build)

    def compute(self, images, activations, classes):
        n, k = len(images), activations.shape[-1]
        scores = self.class_scores(self.masked_images(images, activations), np.repeat(classes, k))
        scores = scores.reshape(n, k)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("nhwk,nk->nhw", activations.astype(np.float64), weights)
