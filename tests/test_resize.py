"""The batched input resize (convviz._inputs._resize) against PIL's own per-channel resize.

The contract: PIL's float ("F") bilinear resize of every channel of every image, which
antialiases on a downscale (its triangle filter widens with the scale factor), to
within 1/255 of the value range: at most 1.0 for images on a 0-255 scale.
"""

import numpy as np
import pytest
from PIL import Image

from convviz import _inputs
from convviz._inputs import _resize

TOLERANCE = 1.0  # 1/255 of the 0-255 range of the test images


def pil_reference(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The former implementation: one PIL call per image and per channel."""
    h, w = size
    out = np.empty((batch.shape[0], h, w, batch.shape[-1]), dtype=np.float32)
    for i, image in enumerate(batch):
        for c in range(batch.shape[-1]):
            plane = Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
            assert plane.mode == "F"
            out[i, ..., c] = np.asarray(plane.resize((w, h), Image.BILINEAR))
    return out


def naive_bilinear(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear interpolation between the two nearest pixels, without antialiasing."""

    def axis(n_in, n_out):
        x = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        lo = np.floor(x).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (x - lo).astype(np.float32)

    (y0, y1, fy), (x0, x1, fx) = axis(batch.shape[1], size[0]), axis(batch.shape[2], size[1])
    rows = batch[:, y0] * (1 - fy)[None, :, None, None] + batch[:, y1] * fy[None, :, None, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :, None] + rows[:, :, x1] * fx[None, None, :, None]


def images(n, height, width, channels, seed=0):
    """Random images on a 0-255 scale, each channel with its own content."""
    return np.random.default_rng(seed).uniform(0, 255, (n, height, width, channels)).astype(np.float32)


SIZES = [
    ((32, 32), (16, 16)),  # downscale by 2
    ((40, 56), (13, 29)),  # downscale, non-integer, non-square
    ((12, 7), (90, 61)),  # upscale, non-square
    ((30, 20), (17, 41)),  # down in height, up in width
    ((9, 50), (31, 9)),  # up in height, down in width
    ((25, 25), (25, 40)),  # width only
    ((25, 25), (8, 25)),  # height only
    ((6, 5), (1, 1)),  # to a single pixel
]


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize(("shape", "size"), SIZES)
def test_equal_to_pil_per_channel(shape, size, channels):
    batch = images(5, *shape, channels)
    out = _resize(batch, size)
    assert out.shape == (5, *size, channels) and out.dtype == np.float32
    assert np.abs(out - pil_reference(batch, size)).max() <= TOLERANCE


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("shape", "size"), [((256, 320), (180, 180)), ((14, 14), (224, 224))])
def test_large_planes_equal_to_pil(shape, size, channels):
    # Planes above _STACK_MAX_PIXELS take the one-call-per-plane path.
    assert max(shape[0] * shape[1], size[0] * size[1]) > _inputs._STACK_MAX_PIXELS
    batch = images(2, *shape, channels, seed=1)
    assert np.abs(_resize(batch, size) - pil_reference(batch, size)).max() <= TOLERANCE


@pytest.mark.parametrize("stack_max", [0, 1 << 30])
def test_both_paths_and_chunk_boundaries(monkeypatch, stack_max):
    # Many chunks (a short last one) when stacking, or one call per plane: same values,
    # each image in its place.
    monkeypatch.setattr(_inputs, "_STACK_MAX_PIXELS", stack_max)
    monkeypatch.setattr(_inputs, "_STACK_CHUNK", 3 * 21 * 33 * 2)  # two images per chunk
    batch = images(7, 21, 33, 3, seed=2)
    out = _resize(batch, (10, 17))
    assert np.abs(out - pil_reference(batch, (10, 17))).max() <= TOLERANCE
    # Each image resized alone gives the same values as inside the batch.
    np.testing.assert_allclose(out[5], _resize(batch[5:6], (10, 17))[0], rtol=0, atol=1e-4)


def test_other_dtypes_are_read_as_float32():
    batch = images(2, 10, 12, 3, seed=3)
    expected = _resize(batch, (5, 7))
    np.testing.assert_array_equal(_resize(batch.astype(np.float64), (5, 7)), expected)
    assert _resize(batch.astype(np.float64), (5, 7)).dtype == np.float32


def test_the_tolerance_separates_antialiasing_from_naive_bilinear():
    # The check can fail: bilinear without PIL's antialiasing is far outside the
    # tolerance on a downscale, and within it on an upscale (where the two agree).
    batch = images(3, 64, 48, 3, seed=4)
    reference = pil_reference(batch, (16, 12))
    assert np.abs(naive_bilinear(batch, (16, 12)) - reference).max() > 10 * TOLERANCE
    assert np.abs(_resize(batch, (16, 12)) - reference).max() <= TOLERANCE
    upscale = images(2, 9, 11, 1, seed=5)
    np.testing.assert_allclose(
        naive_bilinear(upscale, (27, 22)), pil_reference(upscale, (27, 22)), atol=1e-3
    )
