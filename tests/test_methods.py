"""The method layer: the registry, the shared checks for every method, exact formulas
against numpy, the Explanation result, and the gradient-free base."""

import keras
import numpy as np
import pytest
from method_checks import (
    ATOL,
    images,
    independent_cam_inputs,
    nested_model,
    numpy_normalise,
    run_cam_checks,
    run_saved_model_check,
)

import convviz
from convviz.errors import InputError
from convviz.methods import CAM, GradientFreeCAM, LazyBatch, core, method_names


@pytest.mark.parametrize("name", method_names("cam"))
def test_every_cam_method_passes_the_shared_checks(name):
    run_cam_checks(name)


@pytest.mark.parametrize("name", method_names("cam"))
def test_every_cam_method_explains_a_saved_model_the_same(name, tmp_path):
    run_saved_model_check(name, tmp_path)


def _gradcam_plusplus(acts, grads, eps=1e-6):
    """Grad-CAM++ written out element by element (Chattopadhay et al., closed form)."""
    n, h, w, k = acts.shape
    out = np.zeros((n, h, w))
    for i in range(n):
        for c in range(k):
            total = acts[i, :, :, c].sum()
            weight = 0.0
            for y in range(h):
                for x in range(w):
                    g = grads[i, y, x, c]
                    if g != 0:
                        weight += max(g, 0.0) * g * g / (2 * g * g + total * g**3 + eps)
            out[i] += weight * acts[i, :, :, c]
    return numpy_normalise(out)


@pytest.mark.parametrize(
    ("name", "formula"),
    [
        ("gradcam", lambda a, g: numpy_normalise(np.einsum("nhwk,nk->nhw", a, g.mean(axis=(1, 2))))),
        ("gradcam_plusplus", _gradcam_plusplus),
        ("xgradcam", lambda a, g: numpy_normalise(
            np.einsum("nhwk,nk->nhw", a, (g * a).sum(axis=(1, 2)) / (a.sum(axis=(1, 2)) + 1e-7)))),
        ("hirescam", lambda a, g: numpy_normalise((a * g).sum(axis=-1))),
        ("layercam", lambda a, g: numpy_normalise((a * np.maximum(g, 0)).sum(axis=-1))),
    ],
)
def test_cam_formulas_match_numpy_from_the_weights(name, formula):
    model = nested_model(head_activation=None)
    x = images(3, seed=1)
    classes = [2, 0, 1]
    acts, grads = independent_cam_inputs(model, x, classes)
    got = convviz.cam(model, x, method=name, class_index=classes)
    np.testing.assert_allclose(got, formula(acts, grads), atol=ATOL)


def test_gradcam_plusplus_eps_sets_the_scale_of_tiny_gradients():
    model = nested_model(head_activation=None)
    model.get_layer("head").kernel.assign(keras.ops.convert_to_numpy(model.get_layer("head").kernel) * 1e-4)
    x = images(2, seed=2)
    acts, grads = independent_cam_inputs(model, x, [0, 0])
    for eps in (1e-6, 1e-9):
        got = convviz.cam(model, x, method="gradcam_plusplus", class_index=0, eps=eps)
        np.testing.assert_allclose(got, _gradcam_plusplus(acts, grads, eps), atol=1e-4)
    result = convviz.explain(model, x, method="gradcam_plusplus", eps=1e-9)
    assert result.options == {"logits": True, "eps": 1e-9}


def test_gradcam_verb_is_the_gradcam_method():
    model = nested_model()
    x = images()
    np.testing.assert_array_equal(convviz.gradcam(model, x), convviz.cam(model, x, method="gradcam"))
    np.testing.assert_array_equal(
        convviz.gradcam(model, x, upsample=True), convviz.explain(model, x).upsampled()
    )
    with pytest.warns(DeprecationWarning, match="by position"):
        old = convviz.gradcam(model, x, 1)
    np.testing.assert_array_equal(old, convviz.gradcam(model, x, class_index=1))
    with pytest.warns(DeprecationWarning, match="img="):
        convviz.gradcam(model, img=x)


def test_methods_are_classes_and_names():
    model = nested_model()
    x = images(2)
    explainer = convviz.methods.GradCAMPlusPlus(model, layer="c2")
    np.testing.assert_array_equal(explainer.explain(x).maps, explainer(x).maps)
    np.testing.assert_array_equal(
        explainer.explain(x).maps, convviz.cam(model, x, method=convviz.methods.GradCAMPlusPlus)
    )
    assert convviz.methods.get_method("gradcam") is convviz.methods.GradCAM
    with pytest.raises(InputError, match="did you mean 'gradcam'"):
        convviz.explain(model, x, method="gradcma")
    with pytest.raises(InputError, match="Grad-CAM takes no option .eps.; its options: layer"):
        convviz.explain(model, x, method="gradcam", eps=1e-3)  # Grad-CAM has no eps
    with pytest.raises(InputError, match="batch_size"):
        convviz.explain(model, x, batch_size=0)
    with pytest.raises(InputError, match="logits"):
        convviz.explain(model, x, logits="no")
    for eps in (0, -1e-6, "1e-6", float("nan")):
        with pytest.raises(InputError, match="eps"):
            convviz.explain(model, x, method="gradcam_plusplus", eps=eps)
    with pytest.raises(InputError, match="base class"):
        convviz.explain(model, x, method=CAM)
    with pytest.raises(TypeError, match="base class"):
        GradientFreeCAM(model)
    assert convviz.methods.GradCAM(model).batch_size == 16  # kept for the backward pass
    result = convviz.explain(model, x)
    assert result != convviz.explain(model, x) and result == result  # identity, not array truth


def test_a_second_class_with_a_taken_or_reserved_name_is_refused():
    with pytest.raises(TypeError, match="taken"):

        class GradCAM(CAM):  # same class name, another module: not the built-in
            name = "gradcam"

    with pytest.raises(TypeError, match="figure kind"):

        class Sparse(CAM):  # noqa: F841
            name = "sparsity"

    assert convviz.methods.get_method("gradcam").__module__ == "convviz.methods.gradcam"


def test_an_unregistered_subclass_works_under_its_class_name():
    class MaxGradCAM(CAM, register=False):
        title = "Max-Grad-CAM"

        def channel_weights(self, activations, gradients):
            return gradients.max(axis=(1, 2)).astype(np.float64)

    model = nested_model(head_activation=None)
    x = images(2)
    acts, grads = independent_cam_inputs(model, x, [1, 1])
    result = convviz.explain(model, x, method=MaxGradCAM, class_index=1)
    assert result.method == "MaxGradCAM" and "MaxGradCAM" not in method_names()
    np.testing.assert_allclose(
        result.maps, numpy_normalise(np.einsum("nhwk,nk->nhw", acts, grads.max(axis=(1, 2)))), atol=ATOL
    )


@pytest.mark.parametrize("name", method_names())
def test_every_method_kind_has_a_shared_harness(name):
    assert convviz.methods.get_method(name).kind in {"cam", "attribution"}, "add the kind's checks to method_checks.py"


def test_inspector_is_one_per_model_and_its_cache_is_bounded():
    model = nested_model()
    inspector = convviz.Inspector(model)
    assert convviz.Inspector(model) is inspector is convviz.Inspector.of(model)
    assert convviz.methods.GradCAM(model).inspector is inspector
    convviz.gradcam(model, images(1))
    assert ("cam-step", ("c2", True)) in inspector._cache.keys()
    inspector._cache.max_entries = 2
    for layers in (["c1"], ["c2"], ["c1", "c2"]):
        inspector.activations(images(1), layers=layers)
    assert [k for ns, k in inspector._cache.keys() if ns == "features"] == [("c2",), ("c1", "c2")]


def test_explanation_saves_loads_and_plots(tmp_path):
    model = nested_model()
    x = images(3)
    result = convviz.explain(model, x, method="gradcam_plusplus")
    path = result.save(tmp_path / "maps")
    assert path.name == "maps.npz"
    loaded = convviz.Explanation.load(path)
    np.testing.assert_array_equal(loaded.maps, result.maps)
    np.testing.assert_array_equal(loaded.class_index, result.class_index)
    np.testing.assert_array_equal(loaded.predictions, result.predictions)
    assert (loaded.layer, loaded.method, loaded.input_size, loaded.options) == (
        "c2", "gradcam_plusplus", (12, 12), {"logits": True, "eps": 1e-6},
    )
    assert result.upsampled().shape == (3, 12, 12)
    fig = result.plot(class_names=["ant", "bee", "cow"], ncols=2, save=tmp_path / "fig.png")
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    expected = [
        f"{['ant', 'bee', 'cow'][c]} ({result.predictions[i, c]:.3f})" for i, c in enumerate(result.class_index)
    ]
    assert titles == expected and (tmp_path / "fig.png").stat().st_size > 0
    with pytest.raises(InputError, match="no images"):
        loaded.plot()


def _upsampled_masks(acts, size):
    """Each channel min-max normalised and resized to the input, in numpy (per image)."""
    from PIL import Image

    n, h, w, k = acts.shape
    out = np.zeros((n, k, *size))
    for i in range(n):
        for c in range(k):
            a = acts[i, :, :, c].astype(np.float32)
            up = np.asarray(Image.fromarray(a, mode="F").resize(size[::-1], Image.BILINEAR), np.float64)
            lo, hi = up.min(), up.max()
            out[i, c] = (up - lo) / (hi - lo) if hi > lo else 0.0
    return out


@pytest.fixture
def masked_scores_method():
    """A gradient-free CAM for testing the base: channels weighted by the softmax of
    the class scores of the image masked by each (normalised, upsampled) channel."""

    class MaskedScores(GradientFreeCAM):
        name = "test_masked_scores"
        title = "masked scores (test)"
        reference = "a test of GradientFreeCAM"

        def compute(self, images, activations, classes):
            masks = _upsampled_masks(activations, images.shape[1:3])
            n, k = masks.shape[:2]
            masked = (images[:, None] * masks[..., None]).reshape(n * k, *images.shape[1:])
            scores = self.class_scores(masked, np.repeat(classes, k)).reshape(n, k)
            weights = np.exp(scores - scores.max(axis=1, keepdims=True))
            weights /= weights.sum(axis=1, keepdims=True)
            return np.einsum("nhwk,nk->nhw", activations.astype(np.float64), weights)

    yield MaskedScores
    core._REGISTRY.pop("test_masked_scores")


def test_gradient_free_base_scores_many_inputs_in_chunks(masked_scores_method):
    model = nested_model(head_activation="softmax")
    x = images(3, seed=4)
    classes = [1, 0, 2]
    result = convviz.explain(model, x, method="test_masked_scores", class_index=classes, batch_size=4)
    # Independent: the flat twin's logits, one masked image at a time.
    twin = nested_model(head_activation=None)
    twin.set_weights(model.get_weights())
    acts = convviz.activations(model, x, layers=["c2"])["c2"].astype(np.float64)
    masks = _upsampled_masks(acts, (12, 12))
    expected = []
    for i, c in enumerate(classes):
        s = np.array([
            keras.ops.convert_to_numpy(twin(x[i : i + 1] * masks[i, k][None, ..., None], training=False))[0, c]
            for k in range(acts.shape[-1])
        ], np.float64)
        wts = np.exp(s - s.max())
        wts /= wts.sum()
        expected.append(np.einsum("hwk,k->hw", acts[i], wts))
    np.testing.assert_allclose(result.maps, numpy_normalise(np.stack(expected)), atol=1e-4)
    assert result.class_index.tolist() == classes
    run_cam_checks("test_masked_scores")
    # Gallery kinds follow the registry.
    assert "test_masked_scores" in convviz.galleries.kinds()


def test_one_sigmoid_unit_class_scores_are_opposite():
    model = nested_model("sigmoid", n_classes=1)

    class Probe(GradientFreeCAM, register=False):
        def compute(self, images, activations, classes):
            return activations.sum(axis=-1)

    x = images(2)
    logit_probe, prob_probe = Probe(model), Probe(model, logits=False)
    z = logit_probe.scores(x)[:, 0]
    p = keras.ops.convert_to_numpy(model(x, training=False))[:, 0]
    np.testing.assert_allclose(1 / (1 + np.exp(-z)), p, atol=ATOL)
    np.testing.assert_allclose(logit_probe.class_scores(x, 0), -z)
    np.testing.assert_allclose(prob_probe.class_scores(x, [0, 1]), [1 - p[0], p[1]], atol=ATOL)
    # Any object with len() and slicing is scored chunk by chunk, as an array would be.
    class Lazy:
        def __init__(self, n):
            self.n, self.asked = n, []

        def __len__(self):
            return self.n

        def __getitem__(self, rows):
            self.asked.append((rows.start, min(rows.stop, self.n)))
            return x[rows]

    lazy = Lazy(2)
    one_by_one = Probe(model, batch_size=1)
    # The same chunks as the array itself: equal to the bit (another batch size may
    # round differently in float32, ~2e-6 relative seen on JAX).
    np.testing.assert_array_equal(one_by_one.scores(lazy), one_by_one.scores(x))
    assert lazy.asked == [(0, 1), (1, 2)]


def test_layer_scores_ablate_channels_as_numpy_does():
    model = nested_model(head_activation=None)
    x = images(2, seed=5)

    class Ablation(GradientFreeCAM, register=False):
        def compute(self, images, activations, classes):
            return activations.sum(axis=-1)

    probe = Ablation(model, batch_size=3)
    acts = convviz.activations(model, x, layers=["c2"])["c2"].astype(np.float64)
    k = acts.shape[-1]
    # Ablate each channel of each image in turn: N * K inputs in chunks of 3.
    ablated = np.repeat(acts, k, axis=0)
    for i in range(2):
        for c in range(k):
            ablated[i * k + c, ..., c] = 0
    got = probe.layer_scores(ablated, 1)
    w1, b1 = (keras.ops.convert_to_numpy(v).astype(np.float64) for v in model.get_layer("hidden").weights)
    w2, b2 = (keras.ops.convert_to_numpy(v).astype(np.float64) for v in model.get_layer("head").weights)
    expected = (np.maximum(ablated.reshape(2 * k, -1) @ w1 + b1, 0) @ w2 + b2)[:, 1]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    # Only the layers after c2 run: the tail model takes the activations alone.
    tail, needs_image = convviz.Inspector.of(model)._tail_model("c2")
    assert not needs_image and len(tail.inputs) == 1
    assert {layer.name for layer in tail.layers} >= {"flatten", "hidden", "head"}
    assert not {"c1", "c2"} & {layer.name for layer in tail.layers}
    # Lazily built rows give the same scores.
    lazy = LazyBatch(len(ablated), lambda start, stop: ablated[start:stop])
    np.testing.assert_array_equal(probe.layer_scores(lazy, 1), got)


def _skip_model():
    """A conv layer with a skip connection around it: its tail needs the image."""
    inputs = keras.Input((8, 8, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = keras.layers.Conv2D(4, 3, padding="same", name="b")(a)
    x = keras.layers.Add(name="skip")([a, b])
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


def test_layer_scores_around_a_skip_connection_read_the_images():
    model = _skip_model()
    x = images(2, size=8, seed=6)

    class Probe(GradientFreeCAM, register=False):
        def compute(self, images, activations, classes):
            return activations.sum(axis=-1)

    probe = Probe(model, layer="b", batch_size=3)
    tail, needs_image = convviz.Inspector.of(model)._tail_model("b")
    assert needs_image and len(tail.inputs) == 2
    acts = convviz.activations(model, x, layers=["a", "b"])
    k = acts["b"].shape[-1]
    ablated = np.repeat(acts["b"], k, axis=0)
    ablated[np.arange(2 * k), ..., np.tile(np.arange(k), 2)] = 0
    got = probe.layer_scores(ablated, 0, images=LazyBatch.repeat(x, k))
    w, bias = (keras.ops.convert_to_numpy(v).astype(np.float64) for v in model.get_layer("head").weights)
    pooled = (np.repeat(acts["a"], k, axis=0) + ablated).mean(axis=(1, 2))
    np.testing.assert_allclose(got, (pooled @ w + bias)[:, 0], rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="needs the images"):
        probe.layer_scores(ablated, 0)
    with pytest.raises(InputError, match="activations"):
        probe.layer_scores(ablated, 0, images=x)


def test_chunks_share_one_shape_so_nothing_recompiles():
    class Probe(GradientFreeCAM, register=False):
        def compute(self, images, activations, classes):
            return activations.sum(axis=-1)

    probe = Probe(nested_model(), batch_size=4, verbose=False)
    x = images(10, seed=7)
    shapes = []

    def run(batch):
        shapes.append(batch.shape)
        return [batch.sum(axis=(1, 2, 3))[:, None]]

    got = probe._chunked(run, [x], output=0)
    assert shapes == [(4, 12, 12, 3)] * 3  # the last two rows padded to a chunk of 4
    np.testing.assert_allclose(got[:, 0], x.sum(axis=(1, 2, 3)), rtol=1e-6)
