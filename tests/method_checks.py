"""The checks every explanation method must pass (like keras-hub's ``run_*_test`` helpers).

``run_cam_checks(name)`` runs them on tiny models for one registered CAM method; the
tests in ``test_methods.py`` call it for every name in the registry, so a new method
is checked as soon as its file exists. ``independent_cam_inputs`` gives activations
and gradients computed without convviz (numpy, from the weights), for methods'
formulas to be checked against.
"""

from __future__ import annotations

import keras
import numpy as np

import convviz

ATOL = 1e-5
CONSISTENCY_ATOL = 1e-4
"""Between two runs of one method that differ only in batching: float32 gradients of a
batch and of one image may differ in the last bits, and a method's formula may amplify
that (Grad-CAM++'s cubes: ~2e-5 seen on TensorFlow)."""


def nested_model(head_activation="softmax", n_classes=3, size=12):
    """Augmentation, a nested Sequential conv base, Flatten, Dropout and a dense head."""
    base = keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
            keras.layers.Conv2D(5, 3, name="c2"),
        ],
        name="base",
    )
    inputs = keras.Input((size, size, 3))
    x = keras.layers.RandomFlip("horizontal", name="flip")(inputs)
    x = base(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dropout(0.5, name="dropout")(x)
    x = keras.layers.Dense(6, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(n_classes, activation=head_activation, name="head")(x)
    return keras.Model(inputs, outputs)


def flat_twin(model) -> keras.Model:
    """The same layers (shared weights) without nesting, augmentation or dropout."""
    base = model.get_layer("base")
    inputs = keras.Input(model.input_shape[1:])
    x = inputs
    for layer in base.layers:
        x = layer(x)
    for name in ("flatten", "hidden", "head"):
        x = model.get_layer(name)(x)
    return keras.Model(inputs, x)


def images(n=4, size=12, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, size, size, 3)).astype("float32")


def independent_cam_inputs(model, x, classes):
    """Activations of ``base/c2`` and the gradients of the class logits with respect to
    them, computed in numpy from the weights (Flatten -> Dense relu -> Dense)."""
    acts = convviz.activations(model, x, layers=["c2"])["c2"].astype(np.float64)
    w1, b1 = weights_of(model, "hidden")
    w2 = weights_of(model, "head")[0]
    flat = acts.reshape(len(acts), -1)
    mask = (flat @ w1 + b1 > 0).astype(np.float64)
    grads = np.stack([w1 @ (mask[n] * w2[:, c]) for n, c in enumerate(classes)])
    return acts, grads.reshape(acts.shape)


def _check_result(result, name, n, n_classes):
    assert isinstance(result, convviz.Explanation)
    assert result.method == name
    maps = result.maps
    assert maps.dtype == np.float32 and maps.ndim == 3 and len(maps) == n
    assert np.isfinite(maps).all(), "NaN or inf in the maps"
    assert maps.min() >= 0.0 and maps.max() <= 1.0
    assert result.class_index.shape == (n,) and result.predictions.shape == (n, n_classes)


def run_cam_checks(name: str) -> None:
    """Every check a CAM method must pass, on the current backend."""
    cls = convviz.methods.get_method(name)
    assert cls.kind == "cam" and cls.title and cls.reference
    model = nested_model()
    x = images()
    n = len(x)

    # Shapes, range, no NaN; the default layer is the last conv, inside the base.
    result = convviz.explain(model, x, method=name)
    _check_result(result, name, n, 3)
    assert result.layer == "c2" and result.maps.shape == (n, 8, 8)
    assert result.maps.max() == 1.0, "every map is normalised to its maximum"
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(result.predictions, probs, atol=ATOL)
    assert result.class_index.tolist() == probs.argmax(axis=1).tolist()

    # Batched equals one by one, and batch_size does not change the result.
    one_by_one = np.concatenate([convviz.cam(model, x[i : i + 1], method=name) for i in range(n)])
    np.testing.assert_allclose(result.maps, one_by_one, atol=CONSISTENCY_ATOL)
    small_batches = convviz.explain(model, x, method=name, batch_size=3).maps
    np.testing.assert_allclose(result.maps, small_batches, atol=CONSISTENCY_ATOL)

    # A class per image: each map equals that image explained alone for its class.
    classes = [0, 2, 1, 2]
    per_image = convviz.cam(model, x, method=name, class_index=classes)
    for i, c in enumerate(classes):
        alone = convviz.cam(model, x[i : i + 1], method=name, class_index=c)
        np.testing.assert_allclose(per_image[i], alone[0], atol=CONSISTENCY_ATOL)
    assert convviz.explain(model, x, method=name, class_index=classes).class_index.tolist() == classes

    # Inference mode and nesting: the flat twin (no augmentation, no dropout, no
    # nesting, same weights) gives the same maps.
    twin = convviz.cam(flat_twin(model), x, method=name, class_index=classes, layer="c2")
    np.testing.assert_allclose(per_image, twin, atol=CONSISTENCY_ATOL)
    np.testing.assert_array_equal(per_image, convviz.cam(model, x, method=name, class_index=classes))

    # logits=False explains the probability itself and still gives valid maps.
    _check_result(convviz.explain(model, x, method=name, logits=False), name, n, 3)

    # Another layer, by path.
    shallow = convviz.explain(model, x, method=name, layer="base/c1")
    assert shallow.layer == "c1" and shallow.maps.shape == (n, 10, 10)

    # A single sigmoid unit: both sides explained, predicted class by threshold.
    binary = nested_model("sigmoid", n_classes=1)
    both = [convviz.explain(binary, x, method=name, class_index=c) for c in (0, 1)]
    for r in both:
        _check_result(r, name, n, 1)
    p = keras.ops.convert_to_numpy(binary(x, training=False))[:, 0]
    assert convviz.explain(binary, x, method=name).class_index.tolist() == (p >= 0.5).astype(int).tolist()


def run_saved_model_check(name: str, tmp_path) -> None:
    """A .keras round trip explains the same."""
    model = nested_model()
    x = images()
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_allclose(
        convviz.cam(model, x, method=name), convviz.cam(str(path), x, method=name), atol=ATOL
    )


def weights_of(model, name):
    """A layer's weights as float64 numpy arrays."""
    return [keras.ops.convert_to_numpy(v).astype(np.float64) for v in model.get_layer(name).weights]


def numpy_conv(x, kernel, bias):
    """A 'valid' 2-D convolution (cross-correlation, as Keras) in numpy, float64."""
    kh, kw = kernel.shape[:2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))  # (N, h, w, C, kh, kw)
    return np.einsum("nhwcij,ijck->nhwk", windows, kernel) + bias


def numpy_tail(model, acts):
    """``nested_model``'s class scores (logits) from the activations of ``base/c2``."""
    w1, b1 = weights_of(model, "hidden")
    w2, b2 = weights_of(model, "head")
    return np.maximum(acts.reshape(len(acts), -1) @ w1 + b1, 0) @ w2 + b2


def numpy_forward(model, x):
    """``nested_model``'s (c2 activations, class logits) in numpy, in inference mode
    (no flip, no dropout)."""
    base = model.get_layer("base")
    a1 = np.maximum(numpy_conv(x.astype(np.float64), *weights_of(base, "c1")), 0)
    a2 = numpy_conv(a1, *weights_of(base, "c2"))
    return a2, numpy_tail(model, a2)


def numpy_normalise(cam):
    """relu, then each map divided by its maximum (all-zero maps stay zero)."""
    cam = np.maximum(cam, 0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0)


# --------------------------------------------------------------------------- #
# Pixel attributions
# --------------------------------------------------------------------------- #

QUICK_OPTIONS = {
    "smoothgrad": {"samples": 4},
    "integrated_gradients": {"steps": 8},
    "occlusion": {"window": 4, "stride": 4},
}
"""Options that keep the shared checks fast (the defaults are checked elsewhere)."""


def _attribute(model, x, name, **kwargs):
    return convviz.attribute(model, x, method=name, verbose=False, **{**QUICK_OPTIONS.get(name, {}), **kwargs})


def _check_attributions(result, name, n, n_classes, size=12):
    assert isinstance(result, convviz.methods.Attributions)
    assert result.method == name and result.layer is None
    maps = result.maps
    assert maps.dtype == np.float32 and maps.shape == (n, size, size, 3)
    assert np.isfinite(maps).all(), "NaN or inf in the attributions"
    assert np.abs(maps).max() > 0, "all-zero attributions"
    assert result.class_index.shape == (n,) and result.predictions.shape == (n, n_classes)


def run_attribution_checks(name: str, tmp_path) -> None:
    """Every check a pixel attribution method must pass, on the current backend."""
    cls = convviz.methods.get_method(name)
    assert cls.kind == "attribution" and cls.title and cls.reference
    model = nested_model()
    x = images()
    n = len(x)

    result = _attribute(model, x, name)
    _check_attributions(result, name, n, 3)
    probs = keras.ops.convert_to_numpy(model(x, training=False))
    np.testing.assert_allclose(result.predictions, probs, atol=ATOL)
    assert result.class_index.tolist() == probs.argmax(axis=1).tolist()
    scale = np.abs(result.maps).max()

    # Batched equals one by one, and batch_size does not change the result.
    one_by_one = np.concatenate([_attribute(model, x[i : i + 1], name).maps for i in range(n)])
    np.testing.assert_allclose(result.maps, one_by_one, atol=CONSISTENCY_ATOL * scale)
    np.testing.assert_allclose(result.maps, _attribute(model, x, name, batch_size=3).maps,
                               atol=CONSISTENCY_ATOL * scale)

    # A class per image: each equals that image attributed alone for its class.
    classes = [0, 2, 1, 2]
    per_image = _attribute(model, x, name, class_index=classes)
    assert per_image.class_index.tolist() == classes
    for i, c in enumerate(classes):
        alone = _attribute(model, x[i : i + 1], name, class_index=c).maps[0]
        np.testing.assert_allclose(per_image.maps[i], alone, atol=CONSISTENCY_ATOL * scale)

    # Inference mode and nesting: the flat twin gives the same attributions.
    twin = _attribute(flat_twin(model), x, name, class_index=classes)
    np.testing.assert_allclose(per_image.maps, twin.maps, atol=CONSISTENCY_ATOL * scale)

    # logits=False attributes the probability; a single sigmoid unit, both classes.
    _check_attributions(_attribute(model, x, name, logits=False), name, n, 3)
    binary = nested_model("sigmoid", n_classes=1)
    for c in (0, 1):
        _check_attributions(_attribute(binary, x, name, class_index=c), name, n, 1)

    # Saved and loaded with its details; plotted.
    loaded = convviz.Explanation.load(result.save(tmp_path / f"{name}.npz"))
    assert isinstance(loaded, convviz.methods.Attributions)
    np.testing.assert_array_equal(loaded.maps, result.maps)
    assert sorted(loaded.details) == sorted(result.details)
    for key, value in result.details.items():
        np.testing.assert_array_equal(loaded.details[key], value)
    assert result.aggregate("sum").shape == result.heatmaps.shape == (n, 12, 12)
    assert len(result.plot().axes) >= n
