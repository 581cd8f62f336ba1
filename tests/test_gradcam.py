"""Grad-CAM against hand-computed maps and independent numpy computations."""

import keras
import numpy as np
import pytest
from helpers import (
    random_images,
    vgg16_base,
    vgg16_in_functional,
    vgg16_in_sequential,
    xception_classifier,
)

import convviz
from convviz.errors import InputError, ModelStructureError
from convviz.methods import GradCAM, normalize_maps

ATOL = 1e-5


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _normalise(cam):
    cam = np.maximum(cam, 0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0)


def _hand_model(activation=None):
    """4x4x1 input; 1x1 conv giving A0 = x and A1 = -x; GAP; Dense with identity weights."""
    inputs = keras.Input((4, 4, 1))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    x = conv(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(2, use_bias=False, activation=activation)
    outputs = dense(x)
    model = keras.Model(inputs, outputs)
    conv.kernel.assign(np.array([1.0, -1.0], "float32").reshape(1, 1, 1, 2))
    dense.kernel.assign(np.eye(2, dtype="float32"))
    return model


def test_hand_weighted_model_gives_the_hand_computed_map():
    x = (np.arange(16, dtype="float32") - 5).reshape(1, 4, 4, 1)
    model = _hand_model()
    # Class 0: weights (1/16, 0) -> relu(x) / max = relu(x) / 10.
    np.testing.assert_allclose(convviz.gradcam(model, x, class_index=0)[0], np.maximum(x[0, ..., 0], 0) / 10, atol=ATOL)
    # Class 1: weights (0, 1/16) on A1 = -x -> relu(-x) / 5.
    np.testing.assert_allclose(convviz.gradcam(model, x, class_index=1)[0], np.maximum(-x[0, ..., 0], 0) / 5, atol=ATOL)
    # Top class: mean(x) = 2.5 > mean(-x), so class 0.
    result = convviz.explain(model, x)
    assert result.class_index.tolist() == [0] and result.layer == "conv"


def _random_mlp_head_model(head_activation):
    inputs = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Conv2D(6, 3, name="last")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(5, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(3, activation=head_activation, name="head")(x)
    return keras.Model(inputs, outputs)


def _independent_gradcam(model, images, class_index, through_softmax=False):
    """Analytic gradient of the head in numpy, from the conv maps and the weights."""
    acts = convviz.activations(model, images, layers=["last"])["last"].astype(np.float64)
    w1, b1 = (_numpy(v).astype(np.float64) for v in model.get_layer("hidden").weights)
    w2, b2 = (_numpy(v).astype(np.float64) for v in model.get_layer("head").weights)
    flat = acts.reshape(len(acts), -1)
    pre = flat @ w1 + b1
    mask = (pre > 0).astype(np.float64)
    logits = np.maximum(pre, 0) @ w2 + b2
    maps = []
    for n, c in enumerate(class_index):
        if through_softmax:  # d p_c / d z = p_c (onehot_c - p)
            p = np.exp(logits[n] - logits[n].max())
            p /= p.sum()
            dz = p[c] * (np.eye(3)[c] - p)
        else:
            dz = np.eye(3)[c]
        grad = w1 @ (mask[n] * (w2 @ dz))
        weights = grad.reshape(acts.shape[1:]).mean(axis=(0, 1))
        maps.append(np.einsum("hwk,k->hw", acts[n], weights))
    return _normalise(np.stack(maps))


@pytest.mark.parametrize("head_activation", [None, "softmax"])
def test_random_model_matches_independent_numpy_computation(head_activation):
    model = _random_mlp_head_model(head_activation)
    images = np.random.default_rng(3).normal(size=(3, 10, 10, 3)).astype("float32")
    classes = [0, 2, 1]
    got = convviz.gradcam(model, images, class_index=classes)
    np.testing.assert_allclose(got, _independent_gradcam(model, images, classes), atol=ATOL)
    if head_activation == "softmax":
        # The chapter's variant: the gradient of the probability itself.
        got = convviz.gradcam(model, images, class_index=classes, logits=False)
        expected = _independent_gradcam(model, images, classes, through_softmax=True)
        np.testing.assert_allclose(got, expected, atol=ATOL)


def test_top_class_is_the_argmax_and_predictions_are_probabilities():
    model = _random_mlp_head_model("softmax")
    images = np.random.default_rng(4).normal(size=(4, 10, 10, 3)).astype("float32")
    result = convviz.explain(model, images)
    probs = _numpy(model(images))
    np.testing.assert_allclose(result.predictions, probs, atol=ATOL)
    assert result.class_index.tolist() == probs.argmax(axis=1).tolist()
    np.testing.assert_allclose(result.heatmaps, convviz.gradcam(model, images, class_index=result.class_index), atol=ATOL)


def _sigmoid_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="last")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="head")(x)
    return keras.Model(inputs, outputs)


def test_sigmoid_positive_and_negative_class():
    model = _sigmoid_model()
    images = np.random.default_rng(5).normal(size=(3, 8, 8, 3)).astype("float32")
    acts = convviz.activations(model, images, layers=["last"])["last"]
    w = _numpy(model.get_layer("head").kernel)[:, 0]
    evidence = np.einsum("nhwk,k->nhw", acts, w)  # positive-class map, up to a positive factor
    np.testing.assert_allclose(convviz.gradcam(model, images, class_index=1), _normalise(evidence), atol=ATOL)
    np.testing.assert_allclose(convviz.gradcam(model, images, class_index=0), _normalise(-evidence), atol=ATOL)
    result = convviz.explain(model, images)
    p = _numpy(model(images))[:, 0]
    assert result.class_index.tolist() == (p >= 0.5).astype(int).tolist()
    np.testing.assert_allclose(result.predictions[:, 0], p, atol=ATOL)


def test_saturated_sigmoid_still_explains_with_logits():
    model = _sigmoid_model()
    head = model.get_layer("head")
    head.bias.assign(np.array([60.0], "float32"))  # p == 1.0 exactly in float32
    images = np.random.default_rng(6).normal(size=(1, 8, 8, 3)).astype("float32")
    assert convviz.gradcam(model, images, class_index=1).max() == pytest.approx(1.0)
    assert convviz.gradcam(model, images, class_index=1, logits=False).max() == 0.0


def test_zero_gradient_and_all_negative_maps_give_zero_heatmaps_not_nan():
    model = _sigmoid_model()
    model.get_layer("head").kernel.assign(np.zeros((4, 1), "float32"))
    images = np.random.default_rng(7).normal(size=(2, 8, 8, 3)).astype("float32")
    heat = convviz.gradcam(model, images)
    assert np.all(heat == 0) and not np.isnan(heat).any()
    maps = np.full((1, 3, 3, 2), 1.0)
    assert np.all(normalize_maps(GradCAM(model).combine(maps, -np.ones_like(maps))) == 0)


@pytest.mark.parametrize("wrap", [vgg16_in_sequential, vgg16_in_functional])
def test_nested_vgg16_base_with_augmentation_equals_the_flat_model(wrap):
    base = vgg16_base()
    nested = wrap(base)
    images = random_images(2)
    got = convviz.explain(nested, images)
    assert got.layer == "block5_conv3" and got.heatmaps.shape == (2, 4, 4)
    # The same layers, not nested: every layer applied in sequence on one graph.
    inputs = keras.Input((64, 64, 3))
    x = inputs
    for layer in nested.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if layer is base:
            for inner in base.layers[1:]:
                x = inner(x)
        else:
            x = layer(x)
    flat = keras.Model(inputs, x)
    expected = convviz.gradcam(flat, images, class_index=got.class_index, layer="block5_conv3")
    np.testing.assert_allclose(got.heatmaps, expected, atol=1e-4)
    assert np.isfinite(got.heatmaps).all() and got.heatmaps.max() <= 1.0


@pytest.mark.slow
def test_keras_hub_xception_backbone_default_layer():
    model = xception_classifier()
    result = convviz.explain(model, random_images(2, (96, 96)))
    assert result.layer == "block14_sepconv2_act"
    assert result.heatmaps.shape == (2, 3, 3)
    assert np.isfinite(result.heatmaps).all() and (result.heatmaps >= 0).all() and (result.heatmaps <= 1).all()


def test_upsampled_maps_have_the_input_size_and_range():
    model = _sigmoid_model()
    images = np.random.default_rng(8).normal(size=(2, 8, 8, 3)).astype("float32")
    up = convviz.gradcam(model, images, upsample=True)
    assert up.shape == (2, 8, 8) and up.min() >= 0 and up.max() <= 1


def test_compiled_step_is_cached_and_memory_stays_flat():
    psutil = pytest.importorskip("psutil")
    model = _random_mlp_head_model("softmax")
    images = np.random.default_rng(9).normal(size=(4, 10, 10, 3)).astype("float32")
    inspector = convviz.Inspector.of(model)
    for _ in range(10):
        convviz.gradcam(model, images)
    cached = {k: inspector._cache[k] for k in inspector._cache.keys()}
    rss = psutil.Process().memory_info().rss
    for _ in range(100):
        convviz.gradcam(model, images)
    growth_mb = (psutil.Process().memory_info().rss - rss) / 2**20
    assert inspector._cache.keys() == list(cached)
    assert all(inspector._cache[k] is cached[k] for k in cached)
    assert growth_mb < 20, f"RSS grew by {growth_mb:.1f} MB over 100 calls"


def test_errors():
    model = _random_mlp_head_model("softmax")
    images = np.zeros((2, 10, 10, 3), "float32")
    with pytest.raises(InputError, match="out of range"):
        convviz.gradcam(model, images, class_index=3)
    with pytest.raises(InputError, match="one int per image"):
        convviz.gradcam(model, images, class_index=[0, 1, 2])
    with pytest.raises(ModelStructureError, match="spatial output"):
        convviz.gradcam(model, images, layer="hidden")
    with pytest.raises(InputError, match="0 \\(negative\\) or 1"):
        convviz.gradcam(_sigmoid_model(), np.zeros((1, 8, 8, 3)), class_index=2)


def test_overlay_follows_the_chapter_recipe_and_figure_grid(tmp_path):
    import matplotlib
    from PIL import Image

    image = random_images(1, (40, 30))[0]
    heat = np.random.default_rng(10).random((5, 4)).astype("float32")
    got = convviz.plot.overlay(image, heat)
    # Independent: PIL bilinear resize, jet colors, 0.4 weight, rescale like array_to_img.
    resized = np.asarray(Image.fromarray(heat, mode="F").resize((30, 40), Image.BILINEAR))
    jet = matplotlib.colormaps["jet"](np.uint8(255 * np.clip(resized, 0, 1)))[..., :3] * 255
    mixed = jet * 0.4 + image
    mixed = (mixed - mixed.min()) / (mixed - mixed.min()).max() * 255
    np.testing.assert_allclose(got.astype(int), mixed.astype(np.uint8).astype(int), atol=1)  # rounding order
    fig = convviz.plot.gradcam([image, image, image], np.stack([heat] * 3), titles=["a", "b", "c"], ncols=2,
                               save=tmp_path / "g.png")
    assert len(fig.axes) == 4 and [ax.get_title() for ax in fig.axes[:3]] == ["a", "b", "c"]
    assert (tmp_path / "g.png").exists()


def _test_images(dataset_dir):
    from PIL import Image

    from convviz import data

    boxes = data.load_boxes(dataset_dir, "test")
    names = sorted(boxes)
    images = np.stack(
        [np.asarray(Image.open(dataset_dir / "test" / boxes[n].label / n).convert("RGB")) for n in names]
    )
    return images, [boxes[n] for n in names]


@pytest.mark.slow
def test_heatmap_peak_falls_inside_the_object_box(trained_shapes):
    """The pointing game on held-out images of the chapter's convnet trained on shapes.

    The sigmoid unit detects triangles (class 1), so evidence *for* it sits on the
    triangle. Class 0 ("circle") is evidence *against* triangle: the network decides
    "circle" from the absence of corners anywhere, so that map need not sit on the
    circle; its rate is reported, not asserted.
    """
    model, dataset_dir, _, _ = trained_shapes
    images, boxes = _test_images(dataset_dir)
    result = convviz.explain(model, images)
    maps = result.upsampled()
    hits = []
    for heat, box in zip(maps, boxes):
        y, x = np.unravel_index(np.argmax(heat), heat.shape)
        hits.append(box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1)
    hits = np.array(hits)
    triangles = np.array([b.label == "triangle" for b in boxes])
    accuracy = float((result.class_index == triangles).mean())
    print(
        f"\nGrad-CAM ({result.layer}, {result.heatmaps.shape[1:]} maps, model accuracy {accuracy:.0%}): "
        f"peak inside the box for {hits[triangles].mean():.0%} of {triangles.sum()} triangles, "
        f"{hits[~triangles].mean():.0%} of {(~triangles).sum()} circles"
    )
    assert accuracy >= 0.85
    assert hits[triangles].mean() >= 0.7
