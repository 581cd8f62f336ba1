"""Grad-CAM: where in an image the evidence for a class is.

The chapter's algorithm: the gradient of the class score with respect to a conv
layer's output; channel weights are that gradient averaged over space; the heatmap
is ``relu(sum_k weight_k * feature_map_k)`` divided by its maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from convviz._autodiff import gradient_step
from convviz._inputs import _resize
from convviz.errors import InputError, ModelStructureError
from convviz.inspector import Inspector


@dataclass
class GradCAMResult:
    """Grad-CAM heatmaps with what they explain.

    Attributes
    ----------
    heatmaps : numpy.ndarray
        (N, h, w) float32 in [0, 1] at the layer's resolution.
    class_index : numpy.ndarray
        (N,) the class each heatmap explains. For a single sigmoid unit: 1 is the
        positive class (the unit's output, "dog" in dogs-vs-cats), 0 the negative one.
    predictions : numpy.ndarray
        (N, C) the model outputs (probabilities for softmax/sigmoid heads).
    layer : str
        The explained layer.
    input_size : (int, int)
        Height and width of the images as the model saw them.
    """

    heatmaps: np.ndarray
    class_index: np.ndarray
    predictions: np.ndarray
    layer: str
    input_size: tuple[int, int]

    def upsampled(self, size=None) -> np.ndarray:
        """Heatmaps resized (bilinear) to ``size=(height, width)``, by default the
        model's input size; still in [0, 1]."""
        return upsample(self.heatmaps, self.input_size if size is None else size)


def upsample(heatmaps: np.ndarray, size) -> np.ndarray:
    """Resize (N, h, w) heatmaps to (N, height, width) with bilinear interpolation."""
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    return np.clip(_resize(heatmaps[..., None], tuple(size))[..., 0], 0.0, 1.0)


def heatmaps_from(feature_maps: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """The Grad-CAM combination: relu(sum_k mean(grad_k) * A_k), divided by its max.

    Images whose map is nowhere positive (all-zero gradients, all-negative evidence)
    get an all-zero heatmap, never NaN.
    """
    weights = gradients.mean(axis=(1, 2), dtype=np.float64)
    cam = np.maximum(np.einsum("nhwc,nc->nhw", feature_maps.astype(np.float64), weights), 0.0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0).astype(np.float32)


def _objective(threshold: float):
    """Sum over the batch of each image's class score, the class picked per image.

    ``weights`` holds +1 at the wanted class (for a single sigmoid unit: +1 for the
    positive class, -1 for the negative one); rows with ``use_top`` set take the
    predicted class instead, decided inside the compiled step so one forward pass
    serves both the choice and the gradient.
    """

    def objective(outputs, weights, use_top):
        scores = outputs[1]
        if scores.shape[-1] == 1:
            top = keras.ops.where(scores >= threshold, 1.0, -1.0)
        else:
            top = keras.ops.one_hot(keras.ops.argmax(scores, axis=-1), scores.shape[-1])
        chosen = keras.ops.where(keras.ops.expand_dims(use_top, -1) > 0, top, weights)
        return keras.ops.sum(scores * keras.ops.stop_gradient(chosen))

    return objective


def _class_weights(class_index, n: int, n_classes: int):
    """(weights (N, C), use_top (N,)) for the objective from the user's class_index."""
    weights = np.zeros((n, n_classes), np.float32)
    if class_index is None:
        return weights, np.ones(n, np.float32)
    idx = np.asarray(class_index)
    if idx.ndim == 0:
        idx = np.full(n, idx)
    if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
        raise InputError(
            f"class_index must be None, an int, or one int per image ({n}); got {class_index!r}."
        )
    valid = 2 if n_classes == 1 else n_classes
    if idx.min() < 0 or idx.max() >= valid:
        what = "0 (negative) or 1 (positive) for a single sigmoid unit" if n_classes == 1 else f"0..{n_classes - 1}"
        raise InputError(f"class_index {idx.tolist()} out of range: expected {what}.")
    if n_classes == 1:
        weights[:, 0] = np.where(idx == 1, 1.0, -1.0)
    else:
        weights[np.arange(n), idx] = 1.0
    return weights, np.zeros(n, np.float32)


def _probabilities(scores: np.ndarray, activation: str | None) -> np.ndarray:
    scores = scores.astype(np.float64)
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-scores))).astype(np.float32)
    if activation == "softmax":
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return scores.astype(np.float32)


def _chosen_class(scores: np.ndarray, threshold: float) -> np.ndarray:
    if scores.shape[-1] == 1:
        return (scores[:, 0] >= threshold).astype(np.int64)
    return scores.argmax(axis=-1)


def explain(
    inspector: Inspector, img, class_index=None, layer=None, *, logits: bool = True, batch_size: int = 16
) -> GradCAMResult:
    """Grad-CAM with everything that goes with it; see :func:`gradcam`."""
    batch = inspector.prepare(img)
    info = inspector.find_layer(inspector.last_conv_layer() if layer is None else layer)
    layer = info.name
    if len(info.output_shape) != 4:
        raise ModelStructureError(
            f"Grad-CAM needs a layer with a spatial output (N, H, W, C); {layer!r} outputs "
            f"{info.output_shape}."
        )
    model = inspector.gradient_model(layer, logits=logits)
    scores_shape = keras.tree.flatten(model.outputs)[1].shape
    if len(scores_shape) != 2:
        raise ModelStructureError(f"Grad-CAM needs class scores of shape (N, C); the model outputs {scores_shape}.")
    activation = inspector.output_activation(logits)
    threshold = 0.5 if scores_shape[-1] == 1 and activation is None else 0.0
    step = inspector.cached(
        ("gradcam-step", layer, logits), lambda: gradient_step(model, _objective(threshold), wrt=1)
    )
    weights, use_top = _class_weights(class_index, len(batch), scores_shape[-1])
    delta_shape = tuple(info.output_shape[1:])
    maps, scores = [], []
    for i in range(0, len(batch), batch_size):
        chunk = batch[i : i + batch_size]
        if None in delta_shape:  # a model without a fixed input size: ask the layer
            delta_shape = tuple(inspector.activations(chunk[:1], layers=[layer])[layer].shape[1:])
        delta = np.zeros((len(chunk), *delta_shape), np.float32)
        _, grads, (acts, out) = step([chunk, delta], weights[i : i + batch_size], use_top[i : i + batch_size])
        acts, grads, out = (keras.ops.convert_to_numpy(t) for t in (acts, grads, out))
        maps.append(heatmaps_from(acts, grads))
        scores.append(out)
    scores = np.concatenate(scores)
    chosen = _chosen_class(scores, threshold)
    if class_index is not None:
        chosen = np.broadcast_to(np.asarray(class_index), chosen.shape).astype(np.int64)
    return GradCAMResult(
        np.concatenate(maps), chosen, _probabilities(scores, activation), layer, batch.shape[1:3]
    )


def gradcam(
    model, img, class_index=None, layer=None, *, upsample: bool = False, logits: bool = True, batch_size: int = 16
) -> np.ndarray:
    """Grad-CAM heatmaps: where the evidence for a class is, one map per image.

    Parameters
    ----------
    model : keras.Model, convviz.Inspector or path
        Any built Sequential or Functional convnet; the layer may sit inside a nested
        conv base (a frozen ``keras.applications`` model, a keras-hub backbone), with
        augmentation or ``Rescaling`` layers in front: no rebuilding needed. It runs
        in inference mode (augmentation and dropout off, BatchNorm frozen).
    img : path, PIL image, array or tensor, or a list of those
        One image or a batch (see :func:`convviz.activations`).
    class_index : int or sequence of int, optional
        The class to explain, for all images or one per image. ``None``: each image's
        top predicted class. For a single sigmoid unit (binary, e.g. dogs-vs-cats):
        ``1`` explains the positive class (the unit's output, "dog"), ``0`` the
        negative one ("cat": evidence *against* the unit), ``None`` the predicted one.
    layer : str, optional
        A layer with a spatial output, by name or ``outer/inner`` path. Default: the
        last convolution layer, followed through BatchNorm/activation layers of the
        same shape (Xception: ``block14_sepconv2_act``, the chapter's choice).
    upsample : bool
        Return maps resized (bilinear) to the model's input size instead of the
        layer's resolution.
    logits : bool
        Differentiate the class score before a final softmax/sigmoid (the Grad-CAM
        paper's choice, immune to saturated probabilities). ``False`` uses the model
        output itself, as the chapter's code does.
    batch_size : int
        Images per compiled forward+backward pass.

    Returns
    -------
    numpy.ndarray
        (N, h, w) float32 heatmaps in [0, 1]; all zeros where no evidence is positive.
        Use ``convviz.Inspector(model).gradcam(...)`` for the classes and predictions too.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    >>> convviz.gradcam(model, np.random.rand(2, 32, 32, 3)).shape
    (2, 30, 30)
    """
    result = explain(Inspector.of(model), img, class_index, layer, logits=logits, batch_size=batch_size)
    return result.upsampled() if upsample else result.heatmaps
