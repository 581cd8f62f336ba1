"""Feature visualization beyond the chapter: parametrisations, transforms, objectives.

Independent computations: numpy's FFT for the Fourier and MaCo images, numpy finite
differences for the first Adam step on a tiny hand-weighted model (one 1x1 convolution),
numpy forward passes for every objective's value and for the measures. Tiny images
(12 x 12) and a few steps keep each backend's compile count small.
"""

import keras
import numpy as np
import pytest

import convviz
from convviz import _feature_ascent, parametrizations, transforms
from convviz.errors import InputError
from convviz.feature_visualization import robust_activation, selectivity
from convviz.objectives import Objective
from convviz.parametrizations import COLOR_CORRELATION

SIZE = 12
# A 1x1 convolution (3 -> 4 channels) on a 0-255 input, then a 4-unit "classifier".
W1 = np.array(
    [[0.02, -0.01, 0.03, 0.00], [-0.02, 0.02, 0.01, 0.01], [0.01, 0.03, -0.02, -0.01]],
    dtype=np.float32,
)
B1 = np.array([-2.0, 0.5, -1.0, 0.1], dtype=np.float32)
W2 = np.array(np.arange(16).reshape(4, 4) / 10.0 - 0.7, dtype=np.float32)


@pytest.fixture(scope="module")
def tiny():
    image = keras.Input((SIZE, SIZE, 3))
    conv = keras.layers.Conv2D(4, 1, name="conv")(image)
    pooled = keras.layers.GlobalAveragePooling2D()(conv)
    scores = keras.layers.Dense(4, activation="softmax", name="scores")(pooled)
    model = keras.Model(image, scores)
    model.get_layer("conv").set_weights([W1[None, None], B1])
    model.get_layer("scores").set_weights([W2, np.zeros(4, np.float32)])
    return model


def _conv(x):
    return np.asarray(x, np.float64) @ W1 + B1


def _fft_images_numpy(spectrum, h, w, pixel_range=(0.0, 255.0)):
    scale = parametrizations.fft_scale(h, w)
    z = (spectrum[:, 0] + 1j * spectrum[:, 1]) * scale
    image = np.fft.irfft2(z, s=(h, w)) / 4.0
    x = np.moveaxis(image, 1, -1) @ COLOR_CORRELATION.T.astype(np.float64)
    lo, hi = pixel_range
    return lo + (hi - lo) / (1 + np.exp(-x))


# -- parametrisations --------------------------------------------------------------------


@pytest.mark.parametrize("h, w", [(8, 8), (6, 7)])
def test_irfft2_equals_numpy(h, w):
    rng = np.random.default_rng(0)
    z = np.fft.rfft2(rng.normal(size=(2, 3, h, w)))
    got = keras.ops.convert_to_numpy(
        parametrizations.irfft2(z.real.astype("float32"), z.imag.astype("float32"), h, w)
    )
    np.testing.assert_allclose(got, np.fft.irfft2(z, s=(h, w)), atol=1e-5)


def test_fft_inverse_is_exact_on_a_known_spectrum():
    """An image built in numpy, written as Lucid's spectrum, comes back exactly."""
    h, w = 8, 10
    rng = np.random.default_rng(1)
    decorrelated = rng.normal(size=(2, 3, h, w))
    spectrum = np.fft.rfft2(decorrelated) * 4.0 / parametrizations.fft_scale(h, w)
    variable = np.stack([spectrum.real, spectrum.imag], axis=1).astype("float32")
    got = keras.ops.convert_to_numpy(
        parametrizations.fft_images(variable, parametrizations.fft_scale(h, w), width=w)
    )
    rgb = np.moveaxis(decorrelated, 1, -1) @ COLOR_CORRELATION.T.astype(np.float64)
    np.testing.assert_allclose(got, 255.0 / (1 + np.exp(-rgb)), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got, _fft_images_numpy(variable, h, w), rtol=1e-4, atol=1e-3)


def test_colour_matrix_round_trips_and_is_normalised():
    m = COLOR_CORRELATION.astype(np.float64)
    assert np.isclose(np.linalg.norm(m, axis=0).max(), 1.0)
    rng = np.random.default_rng(2)
    rgb = rng.normal(size=(50, 3))
    decorrelated = rgb @ np.linalg.inv(m.T)
    np.testing.assert_allclose(decorrelated @ m.T, rgb, atol=1e-10)
    # The decorrelated basis of Lucid's matrix: its columns are orthogonal.
    gram = m.T @ m
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=0.02)


def test_maco_images_equal_numpy():
    h, w = 8, 8
    rng = np.random.default_rng(3)
    phase = rng.normal(size=(2, 3, h, w // 2 + 1)).astype("float32")
    magnitude = parametrizations.natural_spectrum(h, w)
    got = keras.ops.convert_to_numpy(parametrizations.maco_images(phase, magnitude))

    def standardise(x):
        axes = tuple(range(1, x.ndim))
        x = x - x.mean(axis=axes, keepdims=True)
        return x / (x.std(axis=axes, keepdims=True) + 1e-5)

    p = standardise(phase.astype(np.float64))
    image = standardise(np.fft.irfft2(magnitude * np.exp(1j * p), s=(h, w)))
    rgb = np.moveaxis(image, 1, -1) @ COLOR_CORRELATION.T.astype(np.float64)
    np.testing.assert_allclose(got, 255.0 / (1 + np.exp(-rgb)), rtol=1e-4, atol=2e-3)


def test_natural_spectrum_is_measured_from_photographs_with_1_over_f_falloff():
    import skimage.data

    spectrum = parametrizations.natural_spectrum(64, 64)
    assert spectrum.shape == (3, 64, 33) and (spectrum > 0).all()
    assert not spectrum.flags.writeable
    # Low frequencies carry far more amplitude than high ones (about 1/f).
    assert spectrum[:, 1, 1].mean() > 10 * spectrum[:, 32, 32].mean()
    slopes = parametrizations.spectral_slope(skimage.data.astronaut()[None, :256, :256])
    assert -2.5 < slopes[0] < -1.0


# -- transforms --------------------------------------------------------------------------


def test_transforms_are_seeded_and_move_pixels_as_their_matrices_say():
    a = transforms.standard_transforms(3, 5, (SIZE, SIZE))
    np.testing.assert_array_equal(a, transforms.standard_transforms(3, 5, (SIZE, SIZE)))
    assert not np.array_equal(a, transforms.standard_transforms(4, 5, (SIZE, SIZE)))
    # A pure shift of (+2, +1): output (x, y) reads input (x - 2, y - 1).
    shift = transforms._affine((SIZE, SIZE), scale=1.0, angle=0.0, shift=(2.0, 1.0))
    x = np.random.default_rng(4).random((1, SIZE, SIZE, 3)).astype("float32")
    moved = keras.ops.convert_to_numpy(transforms.apply(x, shift.astype("float32")))
    np.testing.assert_allclose(moved[0, 1:, 2:], x[0, :-1, :-2], atol=1e-5)
    np.testing.assert_array_equal(moved[0, 0], 0.0)  # the fill
    # The same sampling as Keras' own affine_transform, for every standard map.
    for m in a:
        ours = keras.ops.convert_to_numpy(transforms.apply(x, m, fill_value=0.5))
        keras_ = keras.ops.image.affine_transform(
            x, m[None], interpolation="bilinear", fill_mode="constant", fill_value=0.5
        )
        np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(keras_), atol=1e-4)
    crops = transforms.crop_transforms(0, 3, 2, (SIZE, SIZE))
    assert crops.shape == (3, 2, 8) and (crops[:, :, 0] <= 1.0).all()


def test_axis_aligned_maps_take_the_separable_path_with_the_same_numbers():
    """Crops (two per step, over two images, some reaching outside the image) through
    the separable row/column path equal the per-pixel gather and Keras' own sampling."""
    crops = transforms.crop_transforms(1, 1, 2, (SIZE, SIZE))[0]
    crops[1, 2] = -3.0  # the second crop starts 3 pixels left of the image: fill shows
    x = np.random.default_rng(7).random((2, SIZE, SIZE, 3)).astype("float32")
    separable = keras.ops.convert_to_numpy(transforms.apply(x, crops, fill_value=0.5))
    gathered = transforms.apply(x, crops, fill_value=0.5, axis_aligned=False)
    np.testing.assert_allclose(separable, keras.ops.convert_to_numpy(gathered), atol=1e-5)
    for k, m in enumerate(crops):
        keras_ = keras.ops.image.affine_transform(
            x, np.repeat(m[None], 2, axis=0), interpolation="bilinear", fill_mode="constant",
            fill_value=0.5,
        )
        np.testing.assert_allclose(separable[k::2], keras.ops.convert_to_numpy(keras_), atol=1e-4)
    assert (separable[1, :, 0] == np.float32(0.5)).all()


@pytest.mark.parametrize("kind", ["standard", "crop"])
def test_transforms_are_differentiable(kind):
    """The gradient through a batched affine map equals numpy's finite differences."""
    if kind == "standard":
        matrix = transforms.standard_transforms(0, 1, (SIZE, SIZE))[0]
    else:  # the separable path
        matrix = transforms.crop_transforms(0, 1, 1, (SIZE, SIZE))[0, 0]
    weights = np.random.default_rng(5).normal(size=(1, SIZE, SIZE, 3)).astype("float32")
    x = np.random.default_rng(6).random((1, SIZE, SIZE, 3)).astype("float32")
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Identity()])
    from convviz._autodiff import ascent_step

    def objective(out, x_):
        return keras.ops.sum(keras.ops.multiply(out, weights)), ()

    step = ascent_step(
        model, objective, lambda x_, g: g, lambda x_: transforms.apply(x_, matrix, fill_value=0.5)
    )
    grad = keras.ops.convert_to_numpy(step(x)[0])

    def value(v):
        out = keras.ops.convert_to_numpy(transforms.apply(v, matrix, fill_value=0.5))
        return float((out.astype(np.float64) * weights).sum())

    # Bilinear sampling is linear in the image: finite differences are exact.
    for index in [(0, 5, 5, 0), (0, 3, 7, 2), (0, 6, 2, 1)]:
        bumped = x.copy()
        bumped[index] += 1.0
        assert np.isclose(grad[index], value(bumped) - value(x), atol=1e-3)
    assert np.abs(grad).sum() > 0


# -- the optimisation --------------------------------------------------------------------


def test_first_adam_step_equals_numpy(tiny):
    """Adam's first step is ``lr * g / (|g| + eps)`` per coefficient; ``g`` is numpy's
    central difference through the whole numpy pipeline (spectrum -> image -> conv ->
    the chapter's loss), so the image after one step is known independently."""
    lr, channel = 0.05, 1
    result = convviz.filters(
        tiny, "conv", filters=[channel], parametrization="fft", transforms=None, steps=1,
        learning_rate=lr, size=SIZE, verbose=False,
    )
    start = parametrizations.initial_parameters("fft", 0, [(channel, 0)], (SIZE, SIZE, 3))
    start = start.astype(np.float64)

    def loss(spectrum):
        act = _conv(_fft_images_numpy(spectrum, SIZE, SIZE))
        return act[0, 2:-2, 2:-2, channel].mean()

    grad = np.zeros(start.size)
    for i in range(start.size):
        bump = np.zeros(start.size)
        bump[i] = 1e-3
        bump = bump.reshape(start.shape)
        grad[i] = (loss(start + bump) - loss(start - bump)) / 2e-3
    grad = grad.reshape(start.shape)
    expected = _fft_images_numpy(start + lr * grad / (np.abs(grad) + 1e-8), SIZE, SIZE)
    moved = np.abs(expected - _fft_images_numpy(start, SIZE, SIZE)).max()
    assert moved > 1.0
    # float32 gradients make the coefficients whose gradient is near zero (where
    # g / (|g| + eps) is ill-conditioned) differ by a few percent of the movement.
    assert np.abs(result.raw - expected).max() < 0.05 * moved


@pytest.mark.parametrize(
    "parametrization, transform", [("fft", "standard"), ("maco", "crops"), ("pixel", "standard")]
)
def test_same_seed_same_images_and_batched_equals_one_at_a_time(tiny, parametrization, transform):
    options = dict(
        filters=[0, 1, 3], parametrization=parametrization, transforms=transform, steps=3,
        size=SIZE, crops=2, crop=0, verbose=False,
    )
    together = convviz.filters(tiny, "conv", **options)
    again = convviz.filters(tiny, "conv", **options)
    alone = convviz.filters(tiny, "conv", batch_size=1, **options)
    np.testing.assert_array_equal(together.raw, again.raw)
    np.testing.assert_allclose(together.raw, alone.raw, atol=1e-3)
    other = convviz.filters(tiny, "conv", **{**options, "seed": 1})
    assert not np.allclose(together.raw, other.raw)
    lo, hi = (0, 255)
    if parametrization != "pixel":
        assert together.raw.min() >= lo and together.raw.max() <= hi
        assert together.images.shape == (3, SIZE, SIZE, 3)
    assert together.parametrization == parametrization
    if parametrization == "maco":
        t = together.transparency
        assert t.shape == (3, SIZE, SIZE) and (t >= 0).all() and t.sum() > 0
        faded = convviz.plot._faded(together)
        alpha = np.clip(t / np.percentile(t.reshape(3, -1), 99, axis=1)[:, None, None], 0, 1)
        expected = together.images * alpha[..., None] + 255 * (1 - alpha[..., None])
        np.testing.assert_allclose(faded, expected, atol=0.51)
        assert together.plot(transparency=True).axes
    else:
        assert together.transparency is None
        with pytest.raises(InputError, match="parametrization='maco'"):
            together.plot(transparency=True)


def test_optimisation_raises_the_objective(tiny):
    start = convviz.filters(tiny, "conv", filters=[1, 3], parametrization="fft", steps=1,
                            size=SIZE, verbose=False)
    later = convviz.filters(tiny, "conv", filters=[1, 3], parametrization="fft", steps=40,
                            size=SIZE, verbose=False)
    assert (later.losses > start.losses + 0.1).all()


def test_objective_values_equal_numpy(tiny):
    """Neuron (centre unit), direction (mean dot product) and class (logit) objectives:
    the reported value is the numpy forward pass of the hand-weighted model."""
    options = dict(parametrization="fft", steps=2, size=SIZE, verbose=False)
    neurons = convviz.filters(tiny, "conv", filters=[0, 2], objective="neuron", **options)
    act = _conv(neurons.raw)
    np.testing.assert_allclose(
        neurons.losses, act[[0, 1], SIZE // 2, SIZE // 2, [0, 2]], rtol=1e-4, atol=1e-4
    )
    vectors = np.array([[1.0, -1.0, 0.5, 0.0], [0.0, 0.0, 1.0, 1.0]], np.float32)
    directions = convviz.visualize(tiny, Objective.directions("conv", vectors), **options)
    act = _conv(directions.raw)[:, 2:-2, 2:-2] @ vectors.T.astype(np.float64)
    np.testing.assert_allclose(directions.losses, act[[0, 1], ..., [0, 1]].mean(axis=(1, 2)),
                               rtol=1e-4, atol=1e-4)
    assert directions.objective == "direction" and list(directions.filter_indices) == [0, 1]
    classes = convviz.visualize(tiny, Objective.classes([2, 3]), **options)
    logits = _conv(classes.raw).mean(axis=(1, 2)) @ W2
    np.testing.assert_allclose(classes.losses, logits[[0, 1], [2, 3]], rtol=1e-4, atol=1e-4)


def test_diversity_pushes_copies_apart(tiny):
    options = dict(filters=[1], parametrization="fft", steps=30, size=SIZE, images_per_filter=3,
                   verbose=False)
    plain = convviz.filters(tiny, "conv", **options)
    diverse = convviz.filters(tiny, "conv", diversity=50.0, **options)
    assert list(diverse.filter_indices) == [1, 1, 1] and len(diverse) == 3

    def similarity(raw):
        act = _conv(raw).reshape(3, -1, 4)
        gram = np.einsum("bpc,bpd->bcd", act, act).reshape(3, -1)
        gram /= np.linalg.norm(gram, axis=1, keepdims=True)
        sim = gram @ gram.T
        return (sim.sum() - np.trace(sim)) / 3

    assert similarity(diverse.raw) < similarity(plain.raw)


def test_bad_options_are_refused(tiny):
    with pytest.raises(InputError, match="parametrization must be one of"):
        convviz.filters(tiny, "conv", parametrization="wavelet", verbose=False)
    with pytest.raises(InputError, match="transforms must be one of"):
        convviz.filters(tiny, "conv", parametrization="fft", transforms="some", verbose=False)
    with pytest.raises(InputError, match="chapter's pixel ascent only"):
        convviz.filters(tiny, "conv", parametrization="fft", jitter=2, verbose=False)
    with pytest.raises(InputError, match="images_per_filter=2 or more"):
        convviz.filters(tiny, "conv", parametrization="fft", diversity=1.0, verbose=False)
    with pytest.raises(InputError, match="objective must be one of"):
        convviz.filters(tiny, "conv", objective="class", verbose=False)
    with pytest.raises(InputError, match="4 channels"):
        convviz.visualize(tiny, Objective.directions("conv", np.ones(3)), verbose=False)
    with pytest.raises(InputError, match="size=None"):
        convviz.visualize(tiny, Objective.classes([0]), size=(16, 16), verbose=False)
    with pytest.raises(InputError, match="out of range"):
        convviz.visualize(tiny, Objective.classes([7]), verbose=False)
    with pytest.raises(InputError, match="Objective"):
        convviz.visualize(tiny, "conv", verbose=False)
    with pytest.raises(InputError, match="no row all zero"):
        Objective.directions("conv", np.zeros((1, 4)))


# -- measures ----------------------------------------------------------------------------


def test_selectivity_and_robust_activation_equal_numpy(tiny):
    rng = np.random.default_rng(7)
    images = rng.uniform(0, 255, size=(3, SIZE, SIZE, 3)).astype("float32")
    channels = [0, 1, 3]
    means = _conv(images)[:, 2:-2, 2:-2].mean(axis=(1, 2))[:, channels]
    expected = np.diag(means) - (means.sum(axis=0) - np.diag(means)) / 2
    np.testing.assert_allclose(selectivity(tiny, "conv", images, filters=channels), expected,
                               rtol=1e-4, atol=1e-4)
    maps = transforms.random_transforms(0, 4, (SIZE, SIZE))
    total = np.zeros(3)
    for m in maps:
        moved = keras.ops.convert_to_numpy(transforms.apply(images, m, fill_value=127.5))
        total += _conv(moved)[:, 2:-2, 2:-2].mean(axis=(1, 2))[np.arange(3), channels]
    got = robust_activation(tiny, "conv", images, filters=channels, n=4)
    np.testing.assert_allclose(got, total / 4, rtol=1e-4, atol=1e-4)


def test_final_values_reduce_as_documented():
    contracted = np.arange(2 * 6 * 6, dtype=np.float64).reshape(2, 6, 6)
    window = _feature_ascent._reduce(contracted, "window", np)
    np.testing.assert_allclose(window, contracted[:, 2:4, 2:4].mean(axis=(1, 2)))
    np.testing.assert_allclose(_feature_ascent._reduce(contracted, "centre", np),
                               contracted[:, 3, 3])
