"""Shared test helpers: small models and independent reference computations."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest


def file_tree(root) -> dict[str, bytes]:
    """Every file under ``root``: relative path -> bytes (to compare two folders)."""
    root = str(root)
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def random_images(n=2, size=(64, 64), channels=3, seed=0) -> np.ndarray:
    """uint8 NHWC images, deterministic."""
    return np.random.default_rng(seed).integers(0, 256, (n, *size, channels), dtype=np.uint8)


def reference_output(inputs, tensor, x) -> np.ndarray:
    """Independent computation: a plain keras.Model(inputs, tensor) run on ``x``."""
    if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
        inputs = inputs[0]  # called with one tensor below (Keras 3.8 warns on a one-item list)
    model = keras.Model(inputs, tensor)
    return keras.ops.convert_to_numpy(model(keras.ops.convert_to_tensor(x), training=False))


def vgg16_base(size=64) -> keras.Model:
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))


def vgg16_in_sequential(base, size=64) -> keras.Model:
    """The chapter's end-to-end feature extraction: augmentation, frozen base, head."""
    base.trainable = False
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomRotation(0.1),
            keras.layers.RandomZoom(0.2),
            keras.layers.Rescaling(1 / 255),
            base,
            keras.layers.Flatten(),
            keras.layers.Dense(16),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def vgg16_in_functional(base, size=64) -> keras.Model:
    base.trainable = False
    inputs = keras.Input((size, size, 3))
    x = keras.layers.RandomFlip("horizontal")(inputs)
    x = keras.layers.Rescaling(1 / 255)(x)
    x = base(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def xception_backbone():
    """keras-hub's xception_41_imagenet architecture with random weights (offline)."""
    keras_hub = pytest.importorskip("keras_hub", reason='keras-hub: pip install "convviz[hub]"')

    return keras_hub.models.XceptionBackbone(
        stackwise_conv_filters=[[32, 64], [128, 128], [256, 256], [728, 728]]
        + [[728, 728, 728]] * 8
        + [[728, 1024], [1536, 2048]],
        stackwise_pooling=[False, True, True, True] + [False] * 8 + [True, False],
        image_shape=(None, None, 3),
    )


def xception_classifier(size=96):
    """The chapter's 3rd-edition feature-extraction model on the offline Xception backbone."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)  # what the ImageConverter does
    x = xception_backbone()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.25)(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)
