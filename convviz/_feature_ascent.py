"""The batched, compiled, seeded optimisation behind feature visualization.

One engine for every objective and parametrisation: a batch of images (one per target,
``images_per_target`` copies each) is optimised together, one compiled
:func:`convviz._autodiff.optimizer_step` per step. Each image's objective is a
weighted sum of one layer's channels (a one-hot row for a channel, neuron or class, a
vector for a direction), reduced over space (the chapter's window mean, the centre
unit, or nothing for a (batch, units) output). Callers: :func:`convviz.filters` and
:func:`convviz.visualize`.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from convviz import parametrizations, transforms
from convviz._autodiff import optimizer_step
from convviz._progress import Progress

__all__ = ["Settings", "normalize_gradient", "optimise"]

_BETA1, _BETA2, _ADAM_EPS = 0.9, 0.999, 1e-8
_LOSS_BORDER = 2  # the chapter's loss ignores a 2-pixel border of the feature map
_NOISE = 0.04  # MaCo's per-crop noise: 0.08 on a (-1, 1) range, as a fraction of the range


@dataclass(frozen=True)
class Settings:
    """Everything that shapes one run (validated by the caller)."""

    parametrization: str  # "pixel" | "fft" | "maco"
    transforms: str  # "none" | "standard" | "crops"
    optimizer: str  # "normalized" (the chapter's step) | "adam" | "nadam"
    steps: int
    learning_rate: float
    size: tuple  # (h, w)
    channels: int
    pixel_range: tuple
    seed: int
    spatial: str  # "window" | "centre" | "flat"
    images_per_target: int = 1
    diversity: float = 0.0
    crops: int = 1
    batch_size: int = 1  # targets optimised together


def optimise(inspector, key, head, weights, keys, settings: Settings, progress: Progress):
    """Optimise one image per (target, copy).

    Parameters
    ----------
    inspector : Inspector
        Caches the compiled step.
    key : hashable
        Identifies ``head`` in the cache.
    head : keras.Model
        Image -> the objective's layer output.
    weights : numpy.ndarray
        float32 (K, C): target ``k``'s objective is ``sum_c weights[k, c] * out[..., c]``.
    keys : list of tuple
        One seed key per target (its start images depend on ``(seed, key, copy)`` only).

    Returns
    -------
    raw, values, transparency
        float32 (K * n, H, W, C) images in the pixel range, float32 (K * n,) objective
        values on the final untransformed images, and (K * n, H, W) summed absolute image
        gradients (MaCo) or None. Copies of a target are consecutive.
    """
    s = settings
    n = s.images_per_target
    h, w = s.size
    batch = s.batch_size
    # Only what shapes the compiled program is in the key: the step count, seed,
    # learning rate and batch size are not (the rate is an argument of the step).
    graph = (key, s.parametrization, s.transforms, s.optimizer, s.size, s.channels)
    graph += (s.pixel_range, s.spatial, s.images_per_target, s.diversity, s.crops)
    step = inspector._cached("step:visualize", graph, lambda: _build_step(head, s))
    schedule = _schedule(s)
    # Steps outside, chunks inside: a step's transforms and noise are drawn once and
    # shared by every chunk (the chunks' variables and optimiser states are small next
    # to the activations a chunk's backward pass keeps).
    chunks = []
    for start in range(0, len(keys), batch):
        chunk_weights = np.repeat(weights[start : start + batch], n, axis=0)
        image_keys = [(*k, c) for k in keys[start : start + batch] for c in range(n)]
        var = parametrizations.initial_parameters(
            s.parametrization, s.seed, image_keys, (h, w, s.channels)
        )
        if s.parametrization == "pixel":
            lo, hi = s.pixel_range
            var = (lo + var * (hi - lo)).astype(np.float32)
        chunks.append([chunk_weights, *_start(var, s)])
    for t in range(s.steps):
        extra = schedule(t)
        for chunk in chunks:
            chunk[1], chunk[2], _, _ = step(chunk[1], chunk[2], chunk[0], *extra)
        progress.add(1)
    raw_parts, value_parts, transparency_parts = [], [], []
    for chunk_weights, params, state in chunks:
        images = keras.ops.convert_to_numpy(_images(params[0], s))
        raw_parts.append(images)
        value_parts.append(final_values(head, images, chunk_weights, s.spatial))
        if s.parametrization == "maco":
            transparency_parts.append(keras.ops.convert_to_numpy(state[-1]).sum(axis=-1))
    transparency = np.concatenate(transparency_parts) if transparency_parts else None
    return np.concatenate(raw_parts), np.concatenate(value_parts), transparency


def normalize_gradient(grad):
    """Divide each batch element's gradient by its own L2 norm over all other axes.

    ``grad[i] / ||grad[i]||`` with the norm over (H, W, C): the 2nd edition's (and
    keras.io's) normalisation of the whole gradient tensor, applied per image so
    that filters optimised in one batch do not influence each other's step size.
    An all-zero gradient (a filter that never fires) stays zero.

    Parameters
    ----------
    grad : tensor
        (N, ...) backend tensor or numpy array.

    Returns
    -------
    tensor
        Same shape; every non-zero element ``i`` has unit L2 norm.

    Examples
    --------
    >>> import numpy as np, keras
    >>> g = np.array([[3.0, 4.0], [0.0, 0.5]], "float32")
    >>> keras.ops.convert_to_numpy(normalize_gradient(g))
    array([[0.6, 0.8],
           [0. , 1. ]], dtype=float32)
    """
    axes = tuple(range(1, len(grad.shape)))
    squared = keras.ops.sum(keras.ops.square(grad), axis=axes, keepdims=True)
    # The floor (tf.math.l2_normalize's epsilon) keeps dead filters at zero, not NaN.
    return keras.ops.multiply(grad, keras.ops.rsqrt(keras.ops.maximum(squared, 1e-12)))


def final_values(head, images, weights, spatial) -> np.ndarray:
    """Each image's objective on the images as given (no transform), in numpy."""
    out = np.asarray(keras.tree.flatten(head.predict_on_batch(images))[0], dtype=np.float64)
    return _reduce(np.einsum("b...c,bc->b...", out, weights), spatial, np).astype(np.float32)


def _reduce(contracted, spatial, xp):
    """(B, h, w) or (B,) weighted channel sums -> (B,) objective values."""
    if spatial == "flat":
        return contracted
    h, w = contracted.shape[1], contracted.shape[2]
    if spatial == "centre":
        return contracted[:, h // 2, w // 2]
    rows, cols = loss_window(contracted.shape)
    return xp.mean(contracted[:, rows, cols], axis=(1, 2))


def loss_window(shape):
    """Slices of the feature map the chapter's loss averages: a 2-pixel border off.

    Maps too small to lose the border (4 pixels or fewer on an axis) keep it.
    """
    h, w = shape[1], shape[2]
    bh = _LOSS_BORDER if h > 2 * _LOSS_BORDER else 0
    bw = _LOSS_BORDER if w > 2 * _LOSS_BORDER else 0
    return slice(bh, h - bh), slice(bw, w - bw)


def _images(var, s: Settings):
    return parametrizations.parameters_to_images(
        s.parametrization, var, pixel_range=s.pixel_range, size=s.size
    )


def _start(var, s: Settings):
    params = (var,)
    state = ()
    if s.optimizer != "normalized":
        state = (np.zeros_like(var), np.zeros_like(var))
    if s.parametrization == "maco":
        # A zero image offset, differentiated to read the gradient with respect to the
        # image itself (MaCo's transparency), summed in the last state slot.
        zeros = np.zeros((len(var), *s.size, s.channels), dtype=np.float32)
        params = (var, zeros)
        state = (*state, zeros)
    return params, state


def _schedule(s: Settings):
    """``schedule(t)``: the step's extra arrays (transform, noise, optimiser scalars)."""
    h, w = s.size
    if s.transforms == "standard":
        maps = transforms.standard_transforms(s.seed, s.steps, s.size)
    elif s.transforms == "crops":
        maps = transforms.crop_transforms(s.seed, s.steps, s.crops, s.size)
    else:
        maps = np.tile(np.array([1, 0, 0, 0, 1, 0, 0, 0], np.float32), (s.steps, 1))
    lo, hi = s.pixel_range
    scale = np.float32(s.learning_rate * (hi - lo) if s.optimizer == "normalized" else 1.0)
    rate = np.float32(s.learning_rate) if s.optimizer != "normalized" else scale

    def schedule(t):
        if s.parametrization == "maco":
            rng = np.random.default_rng(np.random.SeedSequence(s.seed, spawn_key=(5, t)))
            std = np.float32(_NOISE * (hi - lo))
            shape = (s.crops, h, w, s.channels)
            noise = rng.standard_normal(shape, dtype=np.float32) * std
            noise += (rng.random(shape, dtype=np.float32) - np.float32(0.5)) * std
        else:
            noise = np.zeros((1, 1, 1, 1), np.float32)
        corrections = np.array(
            [1 - _BETA1 ** (t + 1), 1 - _BETA2 ** (t + 1), 1 - _BETA1 ** (t + 2)], np.float32
        )
        return maps[t], noise, rate, corrections

    return schedule


def _build_step(head, s: Settings):
    ops = keras.ops
    lo, hi = s.pixel_range
    mid = float(lo + (hi - lo) / 2)
    crops = s.crops if s.transforms == "crops" else 1

    def transform(params, weights, matrix, noise, rate, corrections):
        image = _images(params[0], s)
        if s.parametrization == "maco":
            image = image + params[1]
        if s.transforms == "standard":
            image = transforms.apply(image, matrix, fill_value=mid)
        elif s.transforms == "crops":
            batch = ops.shape(image)[0]
            # Image-major crops; crops are axis-aligned (a scale and a shift per axis).
            image = transforms.apply(image, matrix, fill_value=mid, axis_aligned=True)
            if s.parametrization == "maco":
                image = image + ops.tile(noise, (batch, 1, 1, 1))
        return image

    def objective(outputs, params, weights, matrix, noise, rate, corrections):
        act = keras.tree.flatten(outputs)[0]
        if crops > 1:
            weights = ops.repeat(weights, crops, axis=0)
        equation = "bc,bc->b" if s.spatial == "flat" else "bhwc,bc->bhw"
        values = _reduce(ops.einsum(equation, act, weights), s.spatial, ops)
        values = ops.mean(ops.reshape(values, (-1, crops)), axis=1)
        total = ops.sum(values)
        if s.diversity > 0 and s.images_per_target > 1:
            total = total - s.diversity * _similarity(act, crops, s.images_per_target)
        return total, values

    def update(params, grads, state, weights, matrix, noise, rate, corrections):
        var, grad = params[0], grads[0]
        if s.optimizer == "normalized":
            new = var + rate * normalize_gradient(grad)
            new_state = state
        else:
            m = _BETA1 * state[0] + (1 - _BETA1) * grad
            v = _BETA2 * state[1] + (1 - _BETA2) * ops.square(grad)
            if s.optimizer == "nadam":
                momentum = _BETA1 * m / corrections[2] + (1 - _BETA1) * grad / corrections[0]
            else:
                momentum = m / corrections[0]
            new = var + rate * momentum / (ops.sqrt(v / corrections[1]) + _ADAM_EPS)
            new_state = (m, v)
        if s.parametrization == "maco":
            return (new, params[1]), (*new_state, state[-1] + ops.abs(grads[1]))
        return (new,), new_state

    return optimizer_step(head, objective, update, transform)


def _similarity(act, crops, n):
    """Lucid's diversity penalty: the summed cosine similarity of the Gram matrices of
    different images of the same target, divided by ``n``."""
    ops = keras.ops
    b, h, w, c = act.shape
    flat = ops.reshape(act, (-1, h * w, c))
    gram = ops.einsum("bpc,bpd->bcd", flat, flat) / (h * w)
    gram = ops.reshape(gram, (-1, crops, c * c))
    gram = ops.mean(gram, axis=1)
    gram = gram / (ops.sqrt(ops.sum(ops.square(gram), axis=1, keepdims=True)) + 1e-12)
    groups = ops.reshape(gram, (-1, n, c * c))
    sim = ops.einsum("gic,gjc->gij", groups, groups)
    return (ops.sum(sim) - ops.sum(ops.diagonal(sim, axis1=1, axis2=2))) / n
