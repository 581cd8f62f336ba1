"""Pixel attributions: the shared checks for every method, and each method against
numpy on a tiny hand-weighted model whose input gradients are written out from its
weights (Flatten -> Dense relu -> Dense). The comparison with captum on
EfficientNet-Lite0 is in test_attribution_references.py."""

import keras
import numpy as np
import pytest
from method_checks import run_attribution_checks

import convviz
from convviz.errors import InputError
from convviz.methods.integrated_gradients import path_rule

SHAPE = (5, 4, 3)
ATOL = 1e-5


def tiny_model(head_activation=None):
    """Flatten -> Dense(6, relu) -> Dense(3) with fixed, non-zero weights and biases."""
    rng = np.random.default_rng(42)
    model = keras.Sequential([
        keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(6, activation="relu"),
        keras.layers.Dense(3, activation=head_activation),
    ])
    for layer in model.layers[1:]:
        layer.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5 for w in layer.get_weights()])
    return model


def _dense(model):
    w1, b1 = (np.asarray(v, np.float64) for v in model.layers[1].get_weights())
    w2, b2 = (np.asarray(v, np.float64) for v in model.layers[2].get_weights())
    return w1, b1, w2, b2


def numpy_logits(model, x):
    w1, b1, w2, b2 = _dense(model)
    return np.maximum(x.reshape(len(x), -1) @ w1 + b1, 0) @ w2 + b2


def numpy_gradients(model, x, classes):
    """d logit_c / d x for each row, from the weights."""
    w1, b1, w2, _ = _dense(model)
    active = (x.reshape(len(x), -1) @ w1 + b1 > 0).astype(np.float64)
    classes = np.broadcast_to(classes, (len(x),))
    return np.stack([w1 @ (active[i] * w2[:, c]) for i, c in enumerate(classes)]).reshape(x.shape)


def inputs(n=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *SHAPE)).astype("float32")


@pytest.mark.parametrize("name", convviz.methods.method_names("attribution"))
def test_every_attribution_method_passes_the_shared_checks(name, tmp_path):
    run_attribution_checks(name, tmp_path)


def test_saliency_and_gradient_x_input_are_the_gradients():
    model, x, classes = tiny_model(), inputs(), [2, 0, 1]
    grads = numpy_gradients(model, x.astype(np.float64), classes)
    signed = convviz.attribute(model, x, method="saliency", class_index=classes, abs=False)
    np.testing.assert_allclose(signed.maps, grads, atol=ATOL)
    np.testing.assert_allclose(convviz.attribute(model, x, method="saliency", class_index=classes).maps,
                               np.abs(grads), atol=ATOL)
    np.testing.assert_allclose(convviz.attribute(model, x, method="gradient_x_input", class_index=classes).maps,
                               x * grads, atol=ATOL)


def test_probability_gradients_with_logits_false():
    model = tiny_model("softmax")
    x, classes = inputs(seed=1), [1, 1, 2]
    z = numpy_logits(model, x.astype(np.float64))
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    expected = []
    for i, c in enumerate(classes):
        dz = p[i, c] * ((np.arange(3) == c) - p[i])  # d p_c / d z
        expected.append(sum(dz[j] * numpy_gradients(model, x[i : i + 1].astype(np.float64), j)[0] for j in range(3)))
    got = convviz.attribute(model, x, method="saliency", abs=False, class_index=classes, logits=False)
    np.testing.assert_allclose(got.maps, np.stack(expected), atol=ATOL)
    logit = convviz.attribute(model, x, method="saliency", abs=False, class_index=classes)
    np.testing.assert_allclose(logit.maps, numpy_gradients(model, x.astype(np.float64), classes), atol=ATOL)


def _smoothgrad(model, x, classes, samples, noise, seed, squared=False):
    out = []
    for i, c in enumerate(classes):
        sigma = noise * (x[i].max() - x[i].min())
        rows = np.stack([
            x[i] + np.float32(sigma) * np.random.default_rng((seed, s)).standard_normal(SHAPE, np.float32)
            for s in range(samples)
        ])
        g = numpy_gradients(model, rows.astype(np.float64), c)
        out.append((g**2 if squared else g).mean(axis=0))
    return np.stack(out)


@pytest.mark.parametrize("squared", [False, True])
def test_smoothgrad_is_the_mean_gradient_over_seeded_noise(squared):
    model, x, classes = tiny_model(), inputs(seed=2), [0, 2, 1]
    got = convviz.attribute(model, x, method="smoothgrad", class_index=classes, samples=7, noise=0.3, seed=5,
                            squared=squared, batch_size=4, verbose=False)
    np.testing.assert_allclose(got.maps, _smoothgrad(model, x, classes, 7, 0.3, 5, squared), atol=ATOL)
    again = convviz.attribute(model, x, method="smoothgrad", class_index=classes, samples=7, noise=0.3, seed=5,
                              squared=squared, batch_size=16, verbose=False)
    # The same noise whatever the batching (float32 gradients of another batch: last bits).
    np.testing.assert_allclose(got.maps, again.maps, atol=1e-6)
    other = convviz.attribute(model, x, method="smoothgrad", class_index=classes, samples=7, noise=0.3, seed=6,
                              squared=squared, verbose=False)
    assert np.abs(other.maps - got.maps).max() > 1e-3


def test_smoothgrad_without_noise_is_the_signed_saliency():
    model, x = tiny_model(), inputs(seed=3)
    smooth = convviz.attribute(model, x, method="smoothgrad", samples=5, noise=0.0, verbose=False)
    plain = convviz.attribute(model, x, method="saliency", abs=False)
    np.testing.assert_allclose(smooth.maps, plain.maps, atol=ATOL)


def test_path_rules_integrate_as_their_textbook_definitions():
    for rule, steps in (("gausslegendre", 5), ("riemann_trapezoid", 6), ("riemann_left", 4),
                        ("riemann_right", 4), ("riemann_middle", 4)):
        alphas, weights = path_rule(rule, steps)
        assert np.isclose(weights.sum(), 1.0) and alphas.min() >= 0 and alphas.max() <= 1
    a, w = path_rule("gausslegendre", 5)  # exact for polynomials of degree <= 9
    np.testing.assert_allclose((w * a**9).sum(), 1 / 10, rtol=1e-12)
    a, w = path_rule("riemann_trapezoid", 6)  # exact for straight lines
    np.testing.assert_allclose((w * (3 * a + 1)).sum(), 2.5, rtol=1e-12)
    assert path_rule("riemann_left", 4)[0].tolist() == [0, 0.25, 0.5, 0.75]
    assert path_rule("riemann_right", 4)[0].tolist() == [0.25, 0.5, 0.75, 1.0]
    assert path_rule("riemann_middle", 2)[0].tolist() == [0.25, 0.75]
    with pytest.raises(InputError, match="rule"):
        path_rule("simpson", 4)


@pytest.mark.parametrize("rule", ["gausslegendre", "riemann_trapezoid", "riemann_middle"])
def test_integrated_gradients_is_the_rule_applied_to_numpy_gradients(rule):
    model, x, classes = tiny_model(), inputs(seed=4), [1, 0, 2]
    baseline = np.full(SHAPE, 0.25, np.float32)
    got = convviz.attribute(model, x, class_index=classes, steps=9, rule=rule, baseline=baseline, batch_size=5,
                            verbose=False)
    alphas, weights = path_rule(rule, 9)
    expected, differences = [], []
    for i, c in enumerate(classes):
        path = baseline + alphas[:, None, None, None] * (x[i] - baseline)
        g = numpy_gradients(model, path.astype(np.float64), c)
        expected.append((x[i] - baseline) * np.tensordot(weights, g, axes=1))
        differences.append(numpy_logits(model, x[i : i + 1].astype(np.float64))[0, c]
                           - numpy_logits(model, baseline[None].astype(np.float64))[0, c])
    np.testing.assert_allclose(got.maps, np.stack(expected), atol=ATOL)
    gaps = np.stack(expected).reshape(3, -1).sum(axis=1) - np.array(differences)
    np.testing.assert_allclose(got.details["score_difference"], differences, atol=ATOL)
    np.testing.assert_allclose(got.details["completeness_gap"], gaps, atol=ATOL)
    np.testing.assert_allclose(got.details["relative_gap"], np.abs(gaps) / np.abs(differences), atol=1e-5)
    assert got.details["steps"].tolist() == [9, 9, 9]


def test_integrated_gradients_gap_falls_with_steps_and_auto_reaches_the_tolerance():
    model, x = tiny_model(), inputs(6, seed=5) * 3
    gaps = [np.abs(convviz.attribute(model, x, steps=s, rule="riemann_middle", verbose=False)
                   .details["completeness_gap"]).sum() for s in (4, 16, 64)]
    assert gaps[0] > gaps[1] > gaps[2], gaps
    auto = convviz.attribute(model, x, steps="auto", tolerance=1e-3, rule="riemann_middle", verbose=False)
    ok = auto.details["relative_gap"] <= 1e-3
    assert np.all(ok | (auto.details["steps"] == 1600)), auto.details
    assert set(auto.details["steps"].tolist()) <= {50, 100, 200, 400, 800, 1600}
    # Each image's map is the fixed-steps map at the steps it needed.
    for s in np.unique(auto.details["steps"]):
        rows = auto.details["steps"] == s
        fixed = convviz.attribute(model, x[rows], steps=int(s), rule="riemann_middle", verbose=False)
        np.testing.assert_allclose(auto.maps[rows], fixed.maps, atol=ATOL)


def test_integrated_gradients_baselines():
    model, x = tiny_model(), inputs(2, seed=6)
    zero = convviz.attribute(model, x, steps=8, verbose=False)
    np.testing.assert_array_equal(zero.maps, convviz.attribute(model, x, steps=8, baseline="black", verbose=False).maps)
    blur = convviz.attribute(model, x, steps=8, baseline="blur", verbose=False)
    assert np.abs(blur.maps - zero.maps).max() > 1e-3
    assert blur.options["baseline"] == "blur"
    with pytest.raises(InputError, match="baseline"):
        convviz.attribute(model, x, baseline="white")
    with pytest.raises(InputError, match="broadcastable"):
        convviz.attribute(model, x, baseline=np.zeros((3, 3)), verbose=False)
    for bad in ({"steps": 0}, {"steps": "many"}, {"tolerance": 0}, {"max_steps": 1}):
        with pytest.raises(InputError):
            convviz.attribute(model, x, **bad)


def test_occlusion_averages_the_score_drop_over_covering_windows():
    model, x, classes = tiny_model(), inputs(2, seed=7), [2, 1]
    got = convviz.attribute(model, x, method="occlusion", window=(2, 3), stride=(2, 1), baseline=0.5,
                            class_index=classes, batch_size=4, verbose=False)
    expected = np.zeros((2, 5, 4))
    for i, c in enumerate(classes):
        base = numpy_logits(model, x[i : i + 1].astype(np.float64))[0, c]
        total, count = np.zeros((5, 4)), np.zeros((5, 4))
        for y in (0, 2, 4):  # height 2 at stride 2: rows 0, 2 and 4 (cut at the edge, as captum's)
            for left in (0, 1):  # width 3 at stride 1: columns 0 and 1
                occluded = x[i].astype(np.float64).copy()
                occluded[y : y + 2, left : left + 3] = 0.5
                drop = base - numpy_logits(model, occluded[None])[0, c]
                total[y : y + 2, left : left + 3] += drop
                count[y : y + 2, left : left + 3] += 1
        expected[i] = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    np.testing.assert_allclose(got.maps, np.repeat(expected[..., None], 3, axis=-1), atol=ATOL)
    # A stride longer than the window leaves pixels uncovered: 0 there.
    sparse = convviz.attribute(model, x, method="occlusion", window=1, stride=2, verbose=False)
    assert np.all(sparse.maps[:, 1::2] == 0) and np.all(sparse.maps[:, :, 1::2] == 0)
    with pytest.raises(InputError, match="larger than the image"):
        convviz.attribute(model, x, method="occlusion", window=8)
    with pytest.raises(InputError, match="stride"):
        convviz.attribute(model, x, method="occlusion", stride=0)


def test_attribute_refuses_cam_methods_and_explain_takes_attributions():
    model, x = tiny_model(), inputs(2)
    with pytest.raises(InputError, match="not a pixel attribution"):
        convviz.attribute(model, x, method="gradcam")
    via_explain = convviz.explain(model, x, method="saliency")
    np.testing.assert_array_equal(via_explain.maps, convviz.attribute(model, x, method="saliency").maps)


def test_memory_of_integrated_gradients_is_one_chunk_whatever_the_steps():
    """The interpolated images are built a chunk at a time: building N x steps of them
    would need 4 x 1000 x 5 x 4 x 3 floats (240 kB here; 1.9 GB for 16 photos at 224 with 200 steps); the rows built at once
    never exceed two chunks (the one running and the next)."""
    from convviz.methods import cam

    built = []
    original = cam.LazyBatch.__getitem__

    def spy(self, rows):
        out = original(self, rows)
        built.append(len(out))
        return out

    model, x = tiny_model(), inputs(4, seed=8)
    try:
        cam.LazyBatch.__getitem__ = spy
        convviz.attribute(model, x, steps=1000, batch_size=64, verbose=False)
    finally:
        cam.LazyBatch.__getitem__ = original
    assert built[0] == 1  # one row first, for the shape of the gradients' sums
    assert sum(built[1:]) == 4 * 1000 and max(built) <= 64
