import numpy as np
import pytest
from PIL import Image

from convviz._inputs import to_batch
from convviz.errors import InputError


@pytest.fixture
def rgb():
    return np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)


def test_hwc_uint8_becomes_float_batch_with_same_values(rgb):
    out = to_batch(rgb)
    assert out.shape == (1, 20, 30, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[0], rgb.astype(np.float32))


def test_nhwc_float_batch_is_kept(rgb):
    batch = np.stack([rgb, rgb[::-1]]).astype(np.float64) / 255
    out = to_batch(batch)
    assert out.shape == (2, 20, 30, 3)
    np.testing.assert_allclose(out, batch, rtol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_path_str_and_pathlib(tmp_path, rgb, suffix):
    path = tmp_path / f"img{suffix}"
    Image.fromarray(rgb).save(path)
    expected = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    np.testing.assert_array_equal(to_batch(str(path))[0], expected)
    np.testing.assert_array_equal(to_batch(path)[0], expected)


def test_pil_image_rgb_and_palette(rgb):
    np.testing.assert_array_equal(to_batch(Image.fromarray(rgb))[0], rgb)
    palette = Image.fromarray(rgb).convert("P")
    out = to_batch(palette)
    np.testing.assert_array_equal(out[0], np.asarray(palette.convert("RGB")))


def test_grayscale_forms_and_channel_matching(rgb):
    gray = rgb[..., 0]
    assert to_batch(gray).shape == (1, 20, 30, 1)
    assert to_batch(gray[..., None]).shape == (1, 20, 30, 1)
    as_rgb = to_batch(gray, channels=3)
    np.testing.assert_array_equal(as_rgb[0, ..., 0], as_rgb[0, ..., 2])
    luma = to_batch(rgb, channels=1)
    expected = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(luma[0, ..., 0], expected, rtol=1e-6)
    # An (N, H, W) stack is a grayscale batch when the model takes one channel.
    assert to_batch(np.zeros((5, 28, 28), np.uint8), channels=1).shape == (5, 28, 28, 1)


def test_rgba_drops_alpha(rgb):
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 7, np.uint8)], axis=-1)
    np.testing.assert_array_equal(to_batch(rgba)[0], rgb)
    np.testing.assert_array_equal(to_batch(Image.fromarray(rgba))[0], rgb)


def test_backend_tensor(rgb):
    import keras

    tensor = keras.ops.convert_to_tensor(rgb.astype("float32"))
    np.testing.assert_array_equal(to_batch(tensor)[0], rgb)


def test_list_of_mixed_forms_is_stacked(rgb, tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    out = to_batch([path, Image.fromarray(rgb), rgb])
    assert out.shape == (3, 20, 30, 3)
    np.testing.assert_array_equal(out[0], out[2])


def test_resize_bilinear_to_model_size(rgb):
    out = to_batch(rgb, size=(10, 15))
    assert out.shape == (1, 10, 15, 3)
    # Independent check: PIL bilinear on each channel.
    plane = Image.fromarray(rgb[..., 1].astype(np.float32), mode="F").resize((15, 10), Image.BILINEAR)
    np.testing.assert_allclose(out[0, ..., 1], np.asarray(plane), rtol=1e-5)
    # A constant image stays constant after resizing.
    np.testing.assert_allclose(to_batch(np.full((7, 9, 3), 3.5), size=(20, 20)), 3.5, rtol=1e-6)
    # None keeps the image's own size on that axis.
    assert to_batch(rgb, size=(None, None)).shape == (1, 20, 30, 3)


def test_list_of_different_sizes_needs_a_size(rgb):
    with pytest.raises(InputError, match="share one size"):
        to_batch([rgb, rgb[:10]])
    assert to_batch([rgb, rgb[:10]], size=(8, 8)).shape == (2, 8, 8, 3)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((1, 2, 8, 8, 3)), "rank 5"),
        (np.zeros((8, 8, 2)), "rank-3"),
        (np.zeros((1, 8, 8, 2)), "got 2"),
        (np.zeros((0, 8, 8, 3)), "empty batch"),
        ([], "empty list"),
        (np.zeros((1, 3, 32, 32)), "channels-first"),
        (np.full((4, 4, 3), np.nan), "NaN"),
        (np.array([["a"]]), "numeric"),
        ({"not": "an image"}, "Cannot read images from a dict .keys .not.."),
    ],
)
def test_bad_input_raises_clear_error(bad, message):
    with pytest.raises(InputError, match=message):
        to_batch(bad)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        to_batch(tmp_path / "nope.png")
    junk = tmp_path / "junk.jpg"
    junk.write_text("not an image")
    with pytest.raises(InputError, match="Cannot read"):
        to_batch(junk)


def test_input_error_is_a_value_error():
    with pytest.raises(ValueError):
        to_batch(np.zeros((1, 1, 1, 1, 1)))
