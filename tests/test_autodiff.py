"""The gradient step against central finite differences, on the current backend."""

import keras
import numpy as np
import pytest

from convviz._autodiff import gradient_step


def _smooth_model():
    inputs = keras.Input((5, 5, 2))
    x = keras.layers.Conv2D(3, 3, activation="tanh")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(2, activation="tanh")(x)
    return keras.Model(inputs, outputs)


def _finite_difference(f, x, eps=1e-2):
    grad = np.zeros_like(x, dtype=np.float64)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        grad[idx] = (f(up) - f(down)) / (2 * eps)
    return grad


def _objective(outputs, weights):
    return keras.ops.sum(outputs * weights)


def test_gradient_matches_finite_differences():
    model = _smooth_model()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 5, 2)).astype("float32")
    weights = np.array([1.0, -2.0], dtype="float32")
    step = gradient_step(model, _objective)
    value, grad, outputs = step([x], weights)

    def f(v):
        return float(np.sum(keras.ops.convert_to_numpy(model(v.astype("float32"))) * weights))

    assert float(value) == pytest.approx(f(x), rel=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs), keras.ops.convert_to_numpy(model(x)), atol=1e-6)
    expected = _finite_difference(f, x.astype(np.float64))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grad), expected, rtol=2e-2, atol=2e-3)


def test_gradient_with_respect_to_second_input():
    a = keras.Input((3,))
    b = keras.Input((3,))
    outputs = keras.layers.Dense(1)(keras.layers.Multiply()([a, b]))
    model = keras.Model([a, b], outputs)
    xa = np.array([[1.0, 2.0, 3.0]], "float32")
    xb = np.array([[0.5, -1.0, 2.0]], "float32")
    step = gradient_step(model, lambda y: keras.ops.sum(y), wrt=1)
    _, grad, _ = step([xa, xb])
    kernel = keras.ops.convert_to_numpy(model.layers[-1].kernel)[:, 0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grad)[0], xa[0] * kernel, rtol=1e-5)


def test_step_sees_weights_changed_after_it_was_built():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    step = gradient_step(model, lambda y: keras.ops.sum(y))
    x = np.ones((1, 2), "float32")
    step([x])  # compile once
    model.layers[0].kernel.assign(np.array([[3.0], [-4.0]], "float32"))
    _, grad, _ = step([x])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grad), [[3.0, -4.0]])


def test_inference_mode_dropout_off():
    model = keras.Sequential([keras.Input((50,)), keras.layers.Dropout(0.9), keras.layers.Dense(1)])
    step = gradient_step(model, lambda y: keras.ops.sum(y))
    x = np.ones((4, 50), "float32")
    _, grad, _ = step([x])
    kernel = keras.ops.convert_to_numpy(model.layers[-1].kernel)[:, 0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grad), np.tile(kernel, (4, 1)), rtol=1e-5)
