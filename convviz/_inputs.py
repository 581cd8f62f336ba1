"""Every accepted image form becomes one float32 NHWC numpy batch here, and only here."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from convviz.errors import InputError

_CHANNELS_OK = (1, 3, 4)


def _describe(obj) -> str:
    shape = getattr(obj, "shape", None)
    dtype = getattr(obj, "dtype", None)
    if shape is not None:
        return f"{type(obj).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return repr(obj) if isinstance(obj, (str, os.PathLike)) else type(obj).__name__


def _load_path(path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(
            f"{path!r} is a folder, not an image file: pass the image files in it "
            "(e.g. sorted(pathlib.Path(folder).glob('*.jpg'))), or use the functions "
            "that take a dataset folder."
        )
    if not os.path.isfile(path):
        raise InputError(f"Image file not found: {path!r}.")
    try:
        with Image.open(path) as im:
            return _from_pil(im)
    except Image.DecompressionBombError as err:
        # Raised from the header alone (no pixel is decoded): a hostile or broken file,
        # or a genuinely huge image.
        raise InputError(
            f"{path!r} claims to be larger than PIL's safety limit for one image "
            f"({err}). If you trust the file, raise PIL.Image.MAX_IMAGE_PIXELS first; "
            "otherwise the file is broken or hostile (a decompression bomb)."
        ) from err
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"Cannot read {path!r} as an image ({err}).") from err


def _from_pil(im) -> np.ndarray:
    # Palette, CMYK, 16-bit ... images become RGB or L so the array has 1, 3 or 4 channels.
    if im.mode not in ("L", "RGB", "RGBA", "F", "I;16", "I"):
        im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
    return np.asarray(im)


# Floating-point types numpy itself does not know (``ml_dtypes``' bfloat16 and float8
# variants, which TensorFlow and JAX arrays convert to): read as float32, exactly.
_EXTENSION_FLOATS = ("bfloat16", "float8")


def _to_numpy(obj) -> np.ndarray:
    arr = _backend_to_numpy(obj)
    if arr.dtype.name.startswith(_EXTENSION_FLOATS):
        return arr.astype(np.float32)
    return arr


def _backend_to_numpy(obj) -> np.ndarray:
    if isinstance(obj, np.ndarray):
        return obj
    if hasattr(obj, "detach") and hasattr(obj, "cpu"):  # torch.Tensor
        obj = obj.detach().cpu()
        if getattr(obj, "is_floating_point", lambda: False)() and obj.element_size() < 4:
            obj = obj.float()  # numpy has no bfloat16 (.numpy() refuses it); float16 goes the same way
        return obj.numpy()
    if hasattr(obj, "numpy") and callable(obj.numpy):  # tf.Tensor
        return np.asarray(obj.numpy())
    if hasattr(obj, "__array__"):  # jax.Array, keras variables, ...
        return np.asarray(obj)
    raise InputError(
        f"Cannot read an image from {_describe(obj)}: expected a file path, a PIL image, "
        "a numpy array, a backend tensor, or a list of those."
    )


def refuse_mapping(obj) -> None:
    """A dict where images are expected is an InputError that names its keys (walking
    it would read the keys as file names)."""
    if isinstance(obj, Mapping):
        keys = ", ".join(map(repr, list(obj)[:4])) + (", ..." if len(obj) > 4 else "")
        raise InputError(
            f"Cannot read images from a dict (keys {keys}): pass the images themselves "
            "(e.g. data['image']), a list of them, paths, or an iterable of batches."
        )


def _single_to_array(obj) -> np.ndarray:
    """One item of a list: a path, a PIL image or an array-like of rank 2 or 3."""
    if isinstance(obj, (str, os.PathLike)):
        return _load_path(obj)
    if type(obj).__module__.startswith("PIL."):
        return _from_pil(obj)
    return _to_numpy(obj)


def _to_nhwc(arr: np.ndarray, what: str, channels: int | None) -> np.ndarray:
    """Bring a rank 2-4 array to NHWC; decide ambiguous rank-3 cases by the channel rule."""
    if arr.ndim == 2:
        return arr[None, :, :, None]
    if arr.ndim == 3:
        if arr.shape[-1] in _CHANNELS_OK:
            return arr[None]
        if channels == 1:  # (N, H, W) grayscale batch, e.g. MNIST digits
            return arr[..., None]
        raise InputError(
            f"Cannot interpret {what}: a rank-3 array must be one HWC image whose last axis "
            f"has 1, 3 or 4 channels (or an (N, H, W) batch for a grayscale model)."
            + _channels_first_hint(arr)
        )
    if arr.ndim == 4:
        return arr
    raise InputError(
        f"Cannot interpret {what}: expected an image of rank 2 (H, W), 3 (H, W, C) or a batch "
        f"of rank 4 (N, H, W, C), got rank {arr.ndim}."
    )


def _channels_first_hint(arr: np.ndarray) -> str:
    if arr.ndim >= 3 and arr.shape[-3] in _CHANNELS_OK and arr.shape[-1] > 4:
        axis = arr.ndim - 3
        return (
            f" It looks channels-first; convviz expects channels-last: "
            f"use np.moveaxis(x, {axis}, -1)."
        )
    return ""


def _match_channels(batch: np.ndarray, channels: int | None, what: str) -> np.ndarray:
    c = batch.shape[-1]
    if c not in _CHANNELS_OK:
        raise InputError(
            f"Cannot interpret {what}: images must have 1 (grayscale), 3 (RGB) or 4 (RGBA, "
            f"alpha dropped) channels on the last axis, got {c}." + _channels_first_hint(batch)
        )
    if c == 4:
        batch, c = batch[..., :3], 3
    if channels is None or channels == c:
        return batch
    if channels == 3 and c == 1:
        return np.repeat(batch, 3, axis=-1)
    if channels == 1 and c == 3:
        # ITU-R 601-2 luma, the weights PIL uses for convert("L").
        luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return (batch.astype(np.float32) @ luma)[..., None]
    raise InputError(f"The model expects {channels} channels; {what} has {c}.")


# Planes whose largest stage (input, after the horizontal pass, output) has at most this
# many pixels are resized many at a time; a larger plane is resized alone, where PIL's own
# arithmetic dominates and stacking would only add the two transposes.
_STACK_MAX_PIXELS = 1 << 14
# Values per PIL call when planes are stacked: about 1 MiB, so each call stays in cache.
_STACK_CHUNK = 1 << 18


def _pil_bilinear(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL's bilinear resize of one 2-D float32 array (PIL mode ``"F"``) to (height, width)."""
    from PIL import Image

    return np.asarray(Image.fromarray(plane).resize((width, height), Image.BILINEAR))


def _resize(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an NHWC batch to ``size`` = (height, width), as float32.

    The result is PIL's float bilinear resize (mode ``"F"``, ``Image.BILINEAR``) of each
    channel of each image: a separable triangle filter that widens with the scale factor
    on a downscale (antialiasing), applied along the width, then along the height.

    Both passes treat the lines of a plane independently, so small planes are resized
    many per PIL call: a chunk of images is laid out as (H, images, C, W), which is at
    once a stack of rows for the horizontal pass (an (H * images * C, W) image) and the
    planes side by side for the vertical pass (an (H, images * C * w) image). The
    values are PIL's own, computed in the same order (equal up to the last bit of
    float32 where the compiler's vectorisation of PIL's loop differs with the width).
    Larger planes are resized one PIL call per plane, where the call overhead is small.

    Parameters
    ----------
    batch : numpy.ndarray
        (N, H, W, C) images, float32 (other dtypes are converted).
    size : (int, int)
        Target (height, width).

    Returns
    -------
    numpy.ndarray
        float32 array of shape (N, height, width, C).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    >>> _resize(x, (2, 6)).shape
    (2, 2, 6, 3)
    >>> float(_resize(np.full((1, 5, 7, 1), 3.0, np.float32), (9, 2)).max())
    3.0
    """
    batch = np.asarray(batch, dtype=np.float32)
    h, w = size
    n, height, width, c = batch.shape
    largest = max(height * width, height * w, h * w)
    if largest > _STACK_MAX_PIXELS:
        return _resize_per_plane(batch, size)
    out = np.empty((n, h, w, c), dtype=np.float32)
    step = max(1, _STACK_CHUNK // (c * largest))
    for start in range(0, n, step):
        part = batch[start:start + step]
        m = len(part)
        lines = np.ascontiguousarray(part.transpose(1, 0, 3, 2))  # (H, m, C, W)
        if w != width:  # every row of every plane: one row of an (H * m * C, W) image
            lines = _pil_bilinear(lines.reshape(height * m * c, width), w, height * m * c)
        if h != height:  # every column of every plane: one column of an (H, m * C * w) image
            lines = _pil_bilinear(lines.reshape(height, m * c * w), m * c * w, h)
        out[start:start + m] = lines.reshape(h, m, c, w).transpose(1, 0, 3, 2)
    return out


def _resize_per_plane(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`_resize` with one PIL call per channel of each image (its path for large
    planes; float32 NHWC in and out)."""
    h, w = size
    out = np.empty((len(batch), h, w, batch.shape[-1]), dtype=np.float32)
    for i, image in enumerate(batch):
        for k in range(batch.shape[-1]):
            out[i, ..., k] = _pil_bilinear(np.ascontiguousarray(image[..., k]), w, h)
    return out


def to_batch(
    images,
    *,
    size: tuple[int | None, int | None] | None = None,
    channels: int | None = None,
) -> np.ndarray:
    """Turn any accepted image form into a float32 NHWC numpy batch.

    Parameters
    ----------
    images : str, os.PathLike, PIL.Image.Image, array-like, or a sequence of those
        A file path, a PIL image, a numpy array or a backend tensor (TensorFlow,
        JAX, PyTorch) of shape (H, W), (H, W, C) or (N, H, W, C), uint8 or float,
        grayscale (1 channel), RGB or RGBA (alpha is dropped). A list mixes any of
        these; after resizing its items must share one size.
    size : (height, width), optional
        Resize every image to this size (bilinear) when it differs. ``None`` or a
        ``None`` entry keeps the image's own size on that axis.
    channels : int, optional
        Channels the model expects. Grayscale is repeated to RGB for a 3-channel
        model and RGB is converted to luma for a 1-channel model.

    Returns
    -------
    numpy.ndarray
        float32 array of shape (N, H, W, C). Pixel values keep their scale: uint8
        0-255 images become floats 0.0-255.0 (the chapter's models rescale inside).

    Raises
    ------
    InputError
        On an unreadable file, a rank other than 2-4, an unsupported channel count,
        or an empty batch. The message names what was received and what is expected.

    Examples
    --------
    >>> import numpy as np
    >>> to_batch(np.zeros((28, 28), dtype="uint8"), channels=1).shape
    (1, 28, 28, 1)
    >>> to_batch(np.zeros((64, 48, 3)), size=(32, 32)).shape
    (1, 32, 32, 3)
    """
    if isinstance(images, Sequence) and not isinstance(images, (str, bytes)):
        if len(images) == 0:
            raise InputError("Received an empty list of images; give at least one image.")
        parts = [to_batch(item, size=size, channels=channels) for item in images]
        shapes = {p.shape[1:] for p in parts}
        if len(shapes) > 1:
            raise InputError(
                f"Images in a list must share one size after resizing, got shapes {sorted(shapes)}; "
                "pass size=(height, width) or use a model with a fixed input size."
            )
        return np.concatenate(parts, axis=0)

    refuse_mapping(images)
    what = _describe(images)
    arr = _single_to_array(images)
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating)
    ):
        raise InputError(f"Cannot interpret {what}: expected a real numeric image, got dtype {arr.dtype}.")
    batch = _to_nhwc(arr, what, channels)
    if batch.shape[0] == 0:
        raise InputError(f"Received an empty batch ({what}); give at least one image.")
    if 0 in batch.shape[1:3]:
        raise InputError(f"Cannot interpret {what}: an image has zero height or width.")
    if batch.dtype.kind == "f" and batch.dtype.itemsize > 4 and batch.size:
        finite = np.abs(batch[np.isfinite(batch)])  # NaN and inf are refused below, as such
        peak = float(finite.max()) if finite.size else 0.0
        if peak > float(np.finfo(np.float32).max):
            raise InputError(
                f"{what} holds values up to {peak:.3g}, beyond float32's range (3.4e+38), "
                "which models compute in: rescale the images (uint8 0-255, or the range the "
                "model was trained on)."
            )
    batch = _match_channels(batch, channels, what).astype(np.float32, copy=False)
    if not np.all(np.isfinite(batch)):
        raise InputError(f"{what} contains NaN or infinite values.")
    if size is not None:
        target = tuple(t if t is not None else s for t, s in zip(size, batch.shape[1:3]))
        if target != batch.shape[1:3]:
            batch = _resize(batch, target)
    return batch
