"""Random geometric transforms for feature visualization, as batched affine maps.

Optimising an image under small random shifts, rescalings and rotations
("transformation robustness", Olah et al., Distill 2017) keeps gradient ascent from
exploiting pixel-exact high-frequency patterns. Every transform here is one row of
eight numbers in the convention of ``keras.ops.image.affine_transform``: the output
pixel ``(x, y)`` (column, row) is read from the input at
``(a0 x + a1 y + a2, b0 x + b1 y + b2)`` with bilinear interpolation, and from a
constant fill outside the image. So a step applies all of them in one batched,
differentiable op (:func:`apply`), on every backend.

The draws are numpy generators seeded by ``(seed, step)`` only: every image of a batch
sees the same transform at a given step, so batching never changes a result.

- :func:`standard_transforms` - Lucid's ``standard_transforms`` (pad 12, jitter 8,
  scale 0.90-1.10 in steps of 0.02, rotation -10..10 degrees with 0 five times more
  likely, jitter 4) composed into one map per step. The output keeps the input's size:
  it is the central window of Lucid's (slightly larger) transformed canvas, and the
  padding shows as the constant fill (mid-grey).
- :func:`crop_transforms` - MaCo's random crops: square boxes centred at
  ``0.5 + normal(0, 0.15)`` of the image, of side ``normal(s, 0.05)`` (clipped to
  [0.05, 1]) with ``s`` going linearly from 0.8 to 0.5 of the image over the steps,
  each resized to the full size.
- :func:`random_transforms` - i.i.d. jitter / scale / rotation, for measuring how
  robust a pattern's activation is (:func:`convviz.feature_visualization.robust_activation`).
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = ["apply", "crop_transforms", "random_transforms", "standard_transforms"]

_LUCID_SCALES = np.array([1 + (i - 5) / 50.0 for i in range(11)])
_LUCID_ANGLES = np.array(list(range(-10, 11)) + 5 * [0], dtype=np.float64)
_CROP_SIZES = (0.8, 0.5)  # MaCo crops' mean side, first and last step, as image fractions


def _affine(size, *, scale, angle, shift) -> np.ndarray:
    """The 8-vector that shows the image scaled by ``scale`` and rotated by ``angle``
    (degrees) about its centre, then shifted by ``shift = (dx, dy)`` pixels."""
    h, w = size
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    t = math.radians(angle)
    # input = centre + R(-angle) / scale @ (output - centre - shift)
    m = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]]) / scale
    ox, oy = cx + shift[0], cy + shift[1]
    a2 = cx - (m[0, 0] * ox + m[0, 1] * oy)
    b2 = cy - (m[1, 0] * ox + m[1, 1] * oy)
    return np.array([m[0, 0], m[0, 1], a2, m[1, 0], m[1, 1], b2, 0.0, 0.0])


def standard_transforms(seed: int, steps: int, size) -> np.ndarray:
    """Lucid's standard transforms, one composed affine map per step.

    Parameters
    ----------
    seed : int
    steps : int
    size : (height, width)

    Returns
    -------
    numpy.ndarray
        float32 (steps, 8); step ``s`` depends only on ``(seed, s)``.

    Examples
    --------
    >>> standard_transforms(0, 3, (64, 64)).shape
    (3, 8)
    """
    out = np.empty((steps, 8), dtype=np.float32)
    for s in range(steps):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2, s)))
        first = rng.integers(0, 9, size=2) - 4.0  # jitter 8: a crop 8 px smaller
        scale = rng.choice(_LUCID_SCALES)
        angle = rng.choice(_LUCID_ANGLES)
        second = rng.integers(0, 5, size=2) - 2.0  # jitter 4, after the rescaling
        out[s] = _affine(size, scale=scale, angle=angle, shift=first * scale + second)
    return out


def crop_transforms(seed: int, steps: int, crops: int, size) -> np.ndarray:
    """MaCo's random square crops, resized to the full image, ``crops`` per step.

    Returns
    -------
    numpy.ndarray
        float32 (steps, crops, 8).

    Examples
    --------
    >>> crop_transforms(0, 4, 2, (32, 32)).shape
    (4, 2, 8)
    """
    h, w = size
    first, last = _CROP_SIZES
    out = np.zeros((steps, crops, 8), dtype=np.float32)
    for s in range(steps):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, s)))
        mean = first + (last - first) * (s / max(1, steps - 1))
        centre = 0.5 + rng.normal(0.0, 0.15, size=(crops, 2))
        side = np.clip(rng.normal(mean, 0.05, size=crops), 0.05, 1.0)
        # Output pixel (x, y) reads the box's own (x, y), scaled by the side.
        out[s, :, 0] = side
        out[s, :, 2] = (centre[:, 0] - side / 2) * (w - 1)
        out[s, :, 4] = side
        out[s, :, 5] = (centre[:, 1] - side / 2) * (h - 1)
    return out


def random_transforms(
    seed: int, n: int, size, *, jitter: int = 8, scale=(0.9, 1.1), angle: float = 10.0
) -> np.ndarray:
    """``n`` independent random maps: a shift of up to ``jitter`` pixels per axis, a
    scale uniform in ``scale`` and a rotation uniform in ``[-angle, angle]`` degrees.

    Returns
    -------
    numpy.ndarray
        float32 (n, 8).

    Examples
    --------
    >>> random_transforms(0, 32, (224, 224)).shape
    (32, 8)
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(4,)))
    out = np.empty((n, 8), dtype=np.float32)
    for k in range(n):
        shift = rng.uniform(-jitter, jitter, size=2)
        out[k] = _affine(
            size, scale=rng.uniform(*scale), angle=rng.uniform(-angle, angle), shift=shift
        )
    return out


def apply(images, transforms, *, fill_value: float = 0.0, axis_aligned: bool | None = None):
    """Every image under every affine map, differentiably.

    Bilinear sampling written with ``keras.ops``: the maps are shared by the batch, so
    the four neighbours of every output pixel are gathered as whole rows of an
    (H * W, N * C) view of the batch, one gather for all images and channels. Its
    gradient is the exact adjoint on every backend (TensorFlow's own
    ``ImageProjectiveTransform`` gradient only approximates it by the inverse map). Each
    result equals ``keras.ops.image.affine_transform(..., interpolation="bilinear",
    fill_mode="constant")``: a neighbour outside the image reads ``fill_value``.

    Maps without rotation or shear (``a1 = b0 = 0``: crops, rescalings, shifts) take a
    separable path: bilinear weights are then a product of a row weight and a column
    weight, so the result is two gathers of whole image rows and columns (the same
    numbers, 3-6 times faster forward and backward than the per-pixel gather on one
    image, measured on 224 x 224 crops).

    Parameters
    ----------
    images : tensor
        (N, H, W, C).
    transforms : array
        (8,) for one map, or (K, 8) for K maps (numpy or a tensor); the last two
        entries of a map (its projective part) must be 0.
    fill_value : float
        Value read outside the image.
    axis_aligned : bool, optional
        Whether every map has ``a1 = b0 = 0`` (the separable path). Default: read from
        ``transforms`` when it is a numpy array, else False. Pass True only for maps
        that are axis-aligned (a tensor's values cannot be checked while tracing).

    Returns
    -------
    tensor
        (N, H, W, C) for one map; (N * K, H, W, C) for K maps, image-major (image
        ``i`` under map ``k`` at ``i * K + k``).

    Examples
    --------
    >>> import numpy as np, keras
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> identity = np.array([1, 0, 0, 0, 1, 0, 0, 0], "float32")
    >>> bool(np.allclose(keras.ops.convert_to_numpy(apply(x, identity)), x))
    True
    >>> apply(x, np.stack([identity, identity])).shape[0]
    2
    """
    ops = keras.ops
    if axis_aligned is None:
        axis_aligned = isinstance(transforms, np.ndarray) and not np.any(
            np.reshape(transforms, (-1, 8))[:, [1, 3]]
        )
    images = ops.convert_to_tensor(images, dtype="float32")
    t = ops.convert_to_tensor(transforms, dtype="float32")
    if len(t.shape) == 1:
        t = t[None]
    if axis_aligned:
        return _apply_separable(images, t, fill_value)
    k = t.shape[0]
    h, w, c = images.shape[1], images.shape[2], images.shape[3]
    rows, cols = np.meshgrid(
        np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij"
    )
    xs = ops.convert_to_tensor(cols.reshape(1, -1))
    ys = ops.convert_to_tensor(rows.reshape(1, -1))
    # Input coordinates of every output pixel under every map: (K, H * W).
    sx = t[:, 0:1] * xs + t[:, 1:2] * ys + t[:, 2:3]
    sy = t[:, 3:4] * xs + t[:, 4:5] * ys + t[:, 5:6]
    col_index, col_weight = _neighbours(sx, w)  # (K, H * W, 2) each
    row_index, row_weight = _neighbours(sy, h)
    # The four neighbours: a 2-D bilinear weight is its row weight times its column
    # weight, and a neighbour is inside the image iff its row and its column are.
    indices, weights = [], []
    for dy in (0, 1):
        for dx in (0, 1):
            indices.append(row_index[..., dy] * w + col_index[..., dx])
            weights.append(row_weight[..., dy] * col_weight[..., dx])
    index = ops.stack(indices)  # (4, K, H * W)
    weight = ops.stack(weights)
    # (H * W, N * C): a pixel's values for every image and channel are one row.
    table = ops.reshape(ops.transpose(images, (1, 2, 0, 3)), (h * w, -1))
    picked = ops.take(table, ops.reshape(index, (-1,)), axis=0)
    picked = ops.reshape(picked, (4, k, h * w, -1))
    out = ops.sum(picked * weight[..., None], axis=0)
    out = out + fill_value * (1.0 - ops.sum(weight, axis=0))[..., None]
    out = ops.reshape(out, (k, h, w, -1, c))  # (K, H, W, N, C)
    out = ops.transpose(out, (3, 0, 1, 2, 4))  # (N, K, H, W, C)
    return ops.reshape(out, (-1, h, w, c))


def _apply_separable(images, t, fill_value):
    """:func:`apply` for axis-aligned maps: rows, then columns, each one gather of
    whole lines (the same per-axis neighbours as the per-pixel gather)."""
    ops = keras.ops
    k = t.shape[0]
    h, w, c = images.shape[1], images.shape[2], images.shape[3]
    row_index, row_weight = _line_sampling(t[:, 4], t[:, 5], h)  # (K, H, 2)
    col_index, col_weight = _line_sampling(t[:, 0], t[:, 2], w)  # (K, W, 2)
    # Rows: an (H, N * W * C) table, two source rows per output row and map.
    table = ops.reshape(ops.transpose(images, (1, 0, 2, 3)), (h, -1))
    rows = ops.take(table, ops.reshape(row_index, (-1,)), axis=0)
    rows = ops.sum(ops.reshape(rows, (k, h, 2, -1)) * row_weight[..., None], axis=2)
    # Columns: a (K * W, H * N * C) table, map k's columns at rows k * W ...
    rows = ops.reshape(rows, (k, h, -1, w, c))  # the batch may be unknown while tracing
    table = ops.reshape(ops.transpose(rows, (0, 3, 1, 2, 4)), (k * w, -1))
    offset = np.arange(k, dtype=np.int32)[:, None, None] * w
    cols = ops.take(table, ops.reshape(col_index + offset, (-1,)), axis=0)
    out = ops.sum(ops.reshape(cols, (k, w, 2, -1)) * col_weight[..., None], axis=2)
    out = ops.reshape(out, (k, w, h, -1, c))
    inside = ops.sum(col_weight, axis=-1)[:, :, None] * ops.sum(row_weight, axis=-1)[:, None, :]
    out = out + fill_value * (1.0 - inside)[..., None, None]  # (K, W, H, N, C)
    out = ops.transpose(out, (3, 0, 2, 1, 4))  # (N, K, H, W, C)
    return ops.reshape(out, (-1, h, w, c))


def _line_sampling(scale, shift, n):
    """:func:`_neighbours` of output ``i`` of map ``k`` reading ``scale[k] * i + shift[k]``
    along an axis of length ``n``: int32 and float32 (K, n, 2)."""
    ops = keras.ops
    where = scale[:, None] * ops.convert_to_tensor(np.arange(n, dtype=np.float32))[None]
    return _neighbours(where + shift[:, None], n)


def _neighbours(where, n):
    """The two bilinear neighbours of each coordinate ``where`` along an axis of length
    ``n``: clipped int32 indices and float32 weights, shape ``where.shape + (2,)``, a
    neighbour outside ``[0, n - 1]`` weighted 0."""
    ops = keras.ops
    low = ops.floor(where)
    frac = where - low
    indices, weights = [], []
    for step, weight in ((0, 1.0 - frac), (1, frac)):
        at = low + step
        inside = ops.cast((at >= 0) & (at <= n - 1), "float32")
        indices.append(ops.cast(ops.clip(at, 0, n - 1), "int32"))
        weights.append(weight * inside)
    return ops.stack(indices, axis=-1), ops.stack(weights, axis=-1)
