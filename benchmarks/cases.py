"""The models the benchmarks run on, with random weights (offline), full size or quick.

- ``small``: the chapter's small convnet (``convviz.models.small_convnet``) at 180 x 180;
- ``vgg16``: ``keras.applications.VGG16(weights=None, include_top=False)`` at 180 x 180
  with the chapter's head (Flatten, Dense(256), Dropout, Dense(1, sigmoid)), one flat
  graph so the textbook Grad-CAM can split it at the last conv layer;
- ``xception``: ``keras.applications.Xception(weights=None)`` at 299 x 299 with its
  1000-class top.

``--quick`` shrinks the inputs to the smallest each architecture takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from convviz import models


@dataclass(frozen=True)
class Case:
    key: str
    name: str
    size: int
    quick_size: int
    build: Callable[[int], keras.Model]

    def label(self, quick: bool) -> str:
        return f"{self.name} {self.quick_size if quick else self.size}"


def _small(size: int) -> keras.Model:
    return models.small_convnet(input_shape=(size, size, 3), compile=False)


def _vgg16(size: int) -> keras.Model:
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    x = keras.layers.Flatten(name="flatten")(base.output)
    x = keras.layers.Dense(256, name="dense")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="dense_1")(x)
    return keras.Model(base.inputs[0], outputs, name="vgg16_classifier")


def _xception(size: int) -> keras.Model:
    # include_top needs 299 x 299; below that (quick mode) a pooled 1000-way head.
    if size == 299:
        return keras.applications.Xception(weights=None)
    base = keras.applications.Xception(weights=None, include_top=False, input_shape=(size, size, 3))
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(base.output)
    outputs = keras.layers.Dense(1000, activation="softmax", name="predictions")(x)
    return keras.Model(base.inputs[0], outputs, name="xception")


CASES = {
    "small": Case("small", "small convnet", 180, 80, _small),
    "vgg16": Case("vgg16", "VGG16", 180, 32, _vgg16),
    "xception": Case("xception", "Xception", 299, 71, _xception),
}


def build(key: str, quick: bool) -> tuple[keras.Model, str]:
    """The model for ``key`` and its label (e.g. ``"VGG16 180"``)."""
    case = CASES[key]
    keras.utils.set_random_seed(0)
    return case.build(case.quick_size if quick else case.size), case.label(quick)


def images(model: keras.Model, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random 0-255 float32 images of the model's input size."""
    h, w, c = model.inputs[0].shape[1:]
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c)).astype("float32")
