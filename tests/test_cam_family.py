"""The gradient-free CAMs (Score-CAM, Ablation-CAM, Eigen-CAM) against numpy formulas
computed from the weights of a tiny model: every forward pass written out in numpy,
nothing taken from convviz but the method's output. The gradient CAMs' formulas are in
test_methods.py (test_cam_formulas_match_numpy_from_the_weights); the equality with
pytorch-grad-cam and torchcam on EfficientNet-Lite0 is in test_cam_references.py."""

import numpy as np
import pytest
from method_checks import (
    images,
    nested_model,
    numpy_conv,
    numpy_forward,
    numpy_normalise,
    numpy_tail,
    weights_of,
)

import convviz
from convviz.methods import GradientFreeCAM
from convviz.methods.scorecam import aligned_corners_matrix

ATOL = 1e-4  # float32 forward passes against float64 numpy, through a softmax / a ratio


def _bilinear_aligned_corners(a, height, width):
    """Resize a 2-D map bilinearly with aligned corners, one output pixel at a time."""
    h, w = a.shape
    out = np.empty((height, width))
    for i in range(height):
        y = i * (h - 1) / (height - 1)
        y0 = int(np.floor(y))
        y1, fy = min(y0 + 1, h - 1), y - y0
        for j in range(width):
            x = j * (w - 1) / (width - 1)
            x0 = int(np.floor(x))
            x1, fx = min(x0 + 1, w - 1), x - x0
            top = (1 - fx) * a[y0, x0] + fx * a[y0, x1]
            bottom = (1 - fx) * a[y1, x0] + fx * a[y1, x1]
            out[i, j] = (1 - fy) * top + fy * bottom
    return out


def _softmax(s):
    e = np.exp(s - s.max())
    return e / e.sum()


def test_aligned_corners_matrix_resizes_as_the_pixel_formula():
    a = np.random.default_rng(0).normal(size=(3, 5))
    got = aligned_corners_matrix(7, 3) @ a @ aligned_corners_matrix(11, 5).T
    np.testing.assert_allclose(got, _bilinear_aligned_corners(a, 7, 11), atol=1e-12)
    assert aligned_corners_matrix(4, 1).tolist() == [[1.0]] * 4


def test_scorecam_is_the_softmax_of_masked_scores():
    model = nested_model(head_activation="softmax")
    x = images(2, seed=11)
    classes = [2, 0]
    got = convviz.explain(model, x, method="scorecam", class_index=classes, batch_size=7)
    acts, _ = numpy_forward(model, x)
    expected = []
    for n, c in enumerate(classes):
        masked = []
        for k in range(acts.shape[-1]):
            up = _bilinear_aligned_corners(acts[n, :, :, k], 12, 12)
            mask = (up - up.min()) / (up.max() - up.min() + 1e-8)
            masked.append(x[n] * mask[..., None])
        scores = numpy_forward(model, np.stack(masked))[1][:, c]  # logits: before the softmax
        expected.append(np.einsum("hwk,k->hw", acts[n], _softmax(scores)))
    np.testing.assert_allclose(got.maps, numpy_normalise(np.stack(expected)), atol=ATOL)
    assert got.class_index.tolist() == classes


@pytest.mark.parametrize("layer", ["c2", "c1"])
def test_ablationcam_is_the_relative_score_drop(layer):
    """c2 (no activation) has negative outputs: an ablated channel is set to the minimum
    minus 1e7; c1 ends in a ReLU: an ablated channel is set to 0."""
    model = nested_model(head_activation=None)
    x = images(3, seed=12)
    classes = [1, 1, 0]
    got = convviz.cam(model, x, method="ablationcam", layer=layer, class_index=classes, batch_size=5)
    base = model.get_layer("base")
    acts, _ = numpy_forward(model, x)
    tail = lambda a: numpy_tail(model, a)  # noqa: E731
    if layer == "c1":
        acts = np.maximum(numpy_conv(x.astype(np.float64), *weights_of(base, "c1")), 0)
        tail = lambda a: numpy_tail(model, numpy_conv(a, *weights_of(base, "c2")))  # noqa: E731
    expected = []
    for n, c in enumerate(classes):
        a = acts[n]
        value = 0.0 if a.min() == 0 else a.min() - 1e7
        assert (value == 0.0) == (layer == "c1")
        ablated = np.repeat(a[None], a.shape[-1], axis=0)
        for k in range(a.shape[-1]):
            ablated[k, ..., k] = value
        s = tail(a[None])[0, c]
        weights = (s - tail(ablated)[:, c]) / s
        expected.append(np.einsum("hwk,k->hw", a, weights))
    np.testing.assert_allclose(got, numpy_normalise(np.stack(expected)), atol=ATOL)


def test_eigencam_is_the_first_principal_component_oriented_with_the_activations():
    model = nested_model()
    x = images(3, seed=13)
    got = convviz.explain(model, x, method="eigencam", class_index=[0, 1, 2])
    acts, _ = numpy_forward(model, x)
    expected = []
    for a in acts:
        flat = a.reshape(-1, a.shape[-1])
        centred = flat - flat.mean(axis=0)
        _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
        projection = centred @ vectors[:, -1]
        total = flat.sum(axis=1)
        projection *= np.sign(np.corrcoef(projection, total)[0, 1])
        expected.append(projection.reshape(a.shape[:2]))
    np.testing.assert_allclose(got.maps, numpy_normalise(np.stack(expected)), atol=ATOL)
    # No gradients, no class: every class gets the same map.
    np.testing.assert_array_equal(got.maps, convviz.cam(model, x, method="eigencam", class_index=2))
    assert got.class_index.tolist() == [0, 1, 2]


def test_gradient_free_methods_show_progress_on_long_work(capsys):
    model = nested_model()
    x = images(2, seed=14)
    convviz.cam(model, x, method="scorecam", batch_size=4)
    assert "input" in capsys.readouterr().err  # 10 masked images in chunks of 4: a bar
    convviz.cam(model, x, method="scorecam", batch_size=4, verbose=False)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("name", convviz.methods.method_names("cam"))
def test_memory_stays_flat_over_100_calls(name):
    psutil = pytest.importorskip("psutil")
    model = nested_model()
    x = images(4, seed=15)
    quiet = {"verbose": False} if issubclass(convviz.methods.get_method(name), GradientFreeCAM) else {}
    for _ in range(5):  # every chunk shape compiled first
        convviz.cam(model, x, method=name, batch_size=8, **quiet)
    rss = psutil.Process().memory_info().rss
    for _ in range(100):
        convviz.cam(model, x, method=name, batch_size=8, **quiet)
    growth_mb = (psutil.Process().memory_info().rss - rss) / 2**20
    assert growth_mb < 20, f"RSS grew by {growth_mb:.1f} MB over 100 calls of {name}"
