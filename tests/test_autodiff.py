"""The gradient step against central finite differences, on the current backend."""

import keras
import numpy as np
import pytest

from convviz import _autodiff
from convviz._autodiff import gradient_step, inference_function


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


def _two_output_model():
    inputs = keras.Input((8, 8, 3))
    features = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(features)
    x = keras.layers.Dropout(0.5)(x)
    scores = keras.layers.Dense(2, name="dense")(x)
    return keras.Model(inputs, [features, scores])


@pytest.mark.parametrize("n", [3, 1])
def test_inference_function_equals_the_model_call(n):
    model = _two_output_model()
    run = inference_function(model)
    x = np.random.default_rng(n).normal(size=(n, 8, 8, 3)).astype("float32")
    run(np.zeros((2, 8, 8, 3), "float32"))  # another batch size first: no stale trace
    features, scores = run(x)
    expected = [keras.ops.convert_to_numpy(t) for t in model(x, training=False)]
    np.testing.assert_allclose(features, expected[0], atol=1e-6)
    np.testing.assert_allclose(scores, expected[1], atol=1e-6)
    assert isinstance(features, np.ndarray) and not features.flags.writeable


def test_inference_function_sees_new_weights_and_predict_in_between():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False)])
    run = inference_function(model)
    x = np.array([[1.0, 2.0]], "float32")
    run(x)
    model.layers[0].kernel.assign(np.array([[3.0], [-4.0]], "float32"))
    # Keras' own predict replaces the weight buffers on JAX (donation).
    model.predict_on_batch(x)
    np.testing.assert_allclose(run(x)[0], [[-5.0]])


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="XLA compiler options are JAX's")
def test_jax_variants_are_known_options_and_all_give_the_same_outputs():
    variants = _autodiff._jax_variants()
    assert variants[0] is None  # XLA's defaults always compile
    assert all(v in _autodiff._JAX_VARIANTS for v in variants)
    import jax

    model = _two_output_model()
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype("float32")
    expected = [keras.ops.convert_to_numpy(t) for t in model(x, training=False)]
    for options in variants:
        fn = jax.jit(lambda xs, m=model: keras.tree.flatten(m(xs, training=False)),
                     compiler_options=options)
        for got, want in zip(fn(x), expected):
            np.testing.assert_allclose(np.asarray(got), want, atol=1e-6)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="autograd bookkeeping is PyTorch's")
def test_torch_step_freezes_parameters_only_during_the_step():
    model = _smooth_model()
    model.layers[1].trainable = False  # a frozen layer must stay frozen
    before = [v.value.requires_grad for v in model.variables]
    assert any(before) and not all(before)
    seen = []

    def objective(outputs, weights):
        seen.append([v.value.requires_grad for v in model.variables])
        return keras.ops.sum(outputs * weights)

    x = np.random.default_rng(0).normal(size=(2, 5, 5, 2)).astype("float32")
    weights = np.array([1.0, -2.0], dtype="float32")
    _, grad, _ = gradient_step(model, objective)([x], weights)
    assert seen == [[False] * len(before)]
    assert [v.value.requires_grad for v in model.variables] == before
    assert np.abs(keras.ops.convert_to_numpy(grad)).sum() > 0

    def failing(outputs, weights):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        gradient_step(model, failing)([x], weights)
    assert [v.value.requires_grad for v in model.variables] == before


# Depthwise convolutions: on JAX the compiled programs trace them as shifted slices
# (_autodiff.JAX_DEPTHWISE_SLICES); on every backend the result must be the convolution's.
DEPTHWISE_CASES = [
    dict(kernel_size=3, strides=1, padding="same", dilation_rate=1),
    dict(kernel_size=4, strides=1, padding="same", dilation_rate=1),  # padded unevenly
    dict(kernel_size=5, strides=2, padding="same", dilation_rate=1),
    dict(kernel_size=3, strides=2, padding="valid", dilation_rate=1),
    dict(kernel_size=3, strides=1, padding="same", dilation_rate=2),
    dict(kernel_size=(3, 5), strides=(1, 2), padding="valid", dilation_rate=1),
]


def _numpy_depthwise(x, kernel, kernel_size, strides, padding, dilation_rate):
    """scipy's 2-D correlation of each channel with its dilated kernel, 'same' padding
    as TensorFlow and Keras pad (the extra row and column at the bottom and right), then
    every stride-th output: an independent computation of DepthwiseConv2D."""
    from scipy.signal import correlate2d

    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    sh, sw = (strides, strides) if isinstance(strides, int) else strides
    d = dilation_rate
    dilated = np.zeros((1 + d * (kh - 1), 1 + d * (kw - 1), x.shape[-1]))
    dilated[::d, ::d] = kernel[:, :, :, 0]
    n, h, w, c = x.shape
    if padding == "same":
        pads = []
        for size, window, stride in ((h, dilated.shape[0], sh), (w, dilated.shape[1], sw)):
            total = max((-(-size // stride) - 1) * stride + window - size, 0)
            pads.append((total // 2, total - total // 2))
        x = np.pad(x, [(0, 0), *pads, (0, 0)])
    out = np.stack([
        np.stack([correlate2d(x[i, :, :, ch], dilated[:, :, ch], mode="valid")[::sh, ::sw]
                  for ch in range(c)], axis=-1)
        for i in range(n)
    ])
    return out


def _depthwise_model(shape, kernel, options):
    inputs = keras.Input(shape)
    layer = keras.layers.DepthwiseConv2D(use_bias=False, **options)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([kernel])
    return model


@pytest.mark.parametrize("options", DEPTHWISE_CASES, ids=lambda o: "-".join(map(str, o.values())))
def test_depthwise_inference_and_gradient_equal_the_numpy_convolution(options):
    rng = np.random.default_rng(1)
    kh, kw = (options["kernel_size"],) * 2 if isinstance(options["kernel_size"], int) else options["kernel_size"]
    kernel = rng.normal(size=(kh, kw, 3, 1)).astype("float32")
    x = rng.normal(size=(2, 10, 9, 3)).astype("float32")
    model = _depthwise_model(x.shape[1:], kernel, options)
    want = _numpy_depthwise(x.astype("float64"), kernel, **options)
    (got,) = inference_function(model)(x)
    np.testing.assert_allclose(got, want, atol=1e-5)
    # The gradient of sum(output * weights) is linear in the weights: central differences
    # with a step of 1 on the float64 numpy convolution are exact.
    weights = rng.normal(size=want.shape).astype("float32")
    _, grad, _ = gradient_step(model, _objective)([x], weights)
    expected = _finite_difference(
        lambda z: float((_numpy_depthwise(z, kernel, **options) * weights[:1]).sum()),
        x[:1].astype("float64"), eps=1.0,
    )
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grad)[:1], expected, atol=1e-4)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="the slices are JAX's")
def test_jax_traces_depthwise_as_slices_only_inside_the_block():
    import jax

    kernel = np.ones((3, 3, 4, 1), "float32")
    x = np.ones((1, 6, 6, 4), "float32")

    def grouped_convolutions():
        # A new function each time: JAX caches the trace of one it has seen.
        def depthwise(z):
            return keras.ops.depthwise_conv(z, kernel, strides=1, padding="same")

        return str(jax.make_jaxpr(depthwise)(x)).count("feature_group_count=4")

    original = jax.lax.conv_general_dilated
    assert grouped_convolutions() == 1
    with _autodiff._jax_depthwise_as_slices():
        assert grouped_convolutions() == 0
        # A dense convolution is left as it is.
        dense = jax.make_jaxpr(lambda z: keras.ops.conv(z, np.ones((3, 3, 4, 2), "float32")))(x)
        assert "conv_general_dilated" in str(dense)
    assert jax.lax.conv_general_dilated is original
    with pytest.raises(RuntimeError, match="inside"):
        with _autodiff._jax_depthwise_as_slices():
            raise RuntimeError("inside")
    assert jax.lax.conv_general_dilated is original
    try:
        _autodiff.JAX_DEPTHWISE_SLICES = False
        with _autodiff._jax_depthwise_as_slices():
            assert grouped_convolutions() == 1
    finally:
        _autodiff.JAX_DEPTHWISE_SLICES = True
