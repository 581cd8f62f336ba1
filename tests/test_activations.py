"""convviz.activations against independently built keras.Model(inputs, layer.output)."""

import keras
import numpy as np
import pytest
from helpers import (
    random_images,
    reference_output,
    vgg16_base,
    vgg16_in_functional,
    vgg16_in_sequential,
)

import convviz
from convviz.errors import InputError, LayerNotFoundError, ModelStructureError

ATOL = 1e-5


def small_convnet(size=180):
    """The chapter's small convnet from scratch (2nd edition)."""
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    for i, filters in enumerate([32, 64, 128, 256, 256]):
        x = keras.layers.Conv2D(filters, 3, activation="relu")(x)
        if i < 4:
            x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def _assert_matches_reference(acts, model, images):
    x = images.astype("float32")
    for name, value in acts.items():
        layer = model.get_layer(name)
        expected = reference_output(model.inputs, layer.output, x)
        np.testing.assert_allclose(value, expected, atol=ATOL, err_msg=name)


def test_small_convnet_all_conv_and_pool_layers():
    model = small_convnet()
    images = random_images(2, (180, 180))
    acts = convviz.activations(model, images)
    kinds = [type(model.get_layer(n)).__name__ for n in acts]
    assert kinds == ["Conv2D", "MaxPooling2D"] * 4 + ["Conv2D"]
    assert acts[next(iter(acts))].shape == (2, 178, 178, 32)
    _assert_matches_reference(acts, model, images)


def _nested_reference(base, name, images):
    # Independent path: the base's own graph, fed the rescaled images by hand.
    return reference_output(base.inputs, base.get_layer(name).output, images.astype("float32") / 255)


@pytest.mark.parametrize("wrap", [vgg16_in_sequential, vgg16_in_functional])
def test_vgg16_base_nested_every_layer(wrap):
    base = vgg16_base()
    model = wrap(base)
    images = random_images(2)
    acts = convviz.activations(model, images)
    assert list(acts) == [layer.name for layer in base.layers if "conv" in layer.name or "pool" in layer.name]
    for name, value in acts.items():
        np.testing.assert_allclose(value, _nested_reference(base, name, images), atol=ATOL, err_msg=name)
    # The nested model's own output and outer layers are reachable by name too.
    head = convviz.activations(model, images, layers=[base.name, model.layers[-1].name])
    np.testing.assert_allclose(head[base.name], _nested_reference(base, "block5_pool", images), atol=ATOL)
    expected = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    np.testing.assert_allclose(head[model.layers[-1].name], expected, atol=ATOL)


def test_model_round_tripped_through_keras_file(tmp_path):
    model = small_convnet(96)
    path = tmp_path / "model.keras"
    model.save(path)
    images = random_images(1, (96, 96))
    acts = convviz.activations(str(path), images)
    _assert_matches_reference(acts, model, images)
    loaded = keras.models.load_model(path)
    _assert_matches_reference(convviz.activations(loaded, images), model, images)


def test_sequential_built_without_input_and_one_hwc_image():
    model = keras.Sequential([keras.layers.Conv2D(4, 3, name="c1"), keras.layers.MaxPooling2D(name="p1")])
    model(np.zeros((1, 16, 16, 3), "float32"))
    image = random_images(1, (16, 16))[0]
    acts = convviz.activations(model, image)
    assert list(acts) == ["c1", "p1"]
    expected = keras.ops.convert_to_numpy(model.layers[0](image[None].astype("float32")))
    np.testing.assert_allclose(acts["c1"], expected, atol=ATOL)


def test_inference_mode_augmentation_and_dropout_off():
    base = vgg16_base()
    model = vgg16_in_sequential(base)
    images = random_images(2)
    first = convviz.activations(model, images, layers=model.layers[-1].name)
    second = convviz.activations(model, images, layers=model.layers[-1].name)
    np.testing.assert_array_equal(next(iter(first.values())), next(iter(second.values())))


def test_single_layer_request_keeps_the_batch_axis():
    model = small_convnet(96)
    images = random_images(3, (96, 96))
    acts = convviz.activations(model, images, layers=model.layers[4].name)
    ((_, value),) = acts.items()
    assert value.shape[0] == 3
    _assert_matches_reference(acts, model, images)


def test_resizes_to_model_input_and_batches_in_chunks():
    model = small_convnet(96)
    image = random_images(1, (100, 80))[0]
    acts = convviz.activations(model, [image] * 5, batch_size=2)
    assert next(iter(acts.values())).shape == (5, 94, 94, 32)
    one = convviz.activations(model, image)
    for name in acts:
        np.testing.assert_allclose(acts[name][4], one[name][0], atol=ATOL)


def test_arrays_are_read_only_views_for_one_chunk_and_many():
    model = small_convnet(96)
    images = random_images(3, (96, 96))
    one_chunk = convviz.activations(model, images)
    chunked = convviz.activations(model, images, batch_size=2)
    for acts in (one_chunk, chunked):
        for name, value in acts.items():
            assert not value.flags.writeable, name
            with pytest.raises(ValueError, match="read-only"):
                value[...] = 0
    _assert_matches_reference(chunked, model, images)
    # A copy is an ordinary array.
    copy = one_chunk["conv2d"].copy()
    copy[...] = 0
    assert copy.flags.writeable


def test_result_is_a_dict_that_plots_itself(tmp_path):
    import copy
    import pickle

    from convviz import feature_maps, plot

    model = small_convnet(96)
    images = random_images(2, (96, 96))
    names = [layer.name for layer in model.layers[2:5]]  # conv, pool, conv
    acts = convviz.activations(model, images, layers=names)
    assert isinstance(acts, dict) and type(acts) is feature_maps.Activations
    # Exactly the dict it wraps: the Inspector's plain dict, same keys, order and arrays.
    plain = convviz.Inspector.of(model).activations(images, layers=names)
    assert type(plain) is dict
    assert list(acts) == list(plain) == names
    for name in acts:
        np.testing.assert_array_equal(acts[name], plain[name])
        assert not acts[name].flags.writeable
    same = {name: value for name, value in acts.items()}
    assert acts.keys() == same.keys() and all(acts[k] is same[k] for k in same)
    assert feature_maps.Activations({"a": 1}) == {"a": 1} and {"a": 1} == feature_maps.Activations({"a": 1})
    assert repr(feature_maps.Activations({"a": 1})) == repr({"a": 1})
    assert not hasattr(acts, "__dict__")  # no attributes besides the dict's
    restored = pickle.loads(pickle.dumps(acts))
    assert type(restored) is feature_maps.Activations and list(restored) == list(acts)
    assert type(copy.copy(acts)) is feature_maps.Activations

    fig = acts.plot(ncols=8, figsize=(6, None), save=tmp_path / "acts.png")
    expected = plot.activations(dict(acts), ncols=8, figsize=(6, None))
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == [ax.get_title(loc="left") for ax in expected.axes] and len(titles) == 3
    assert titles[0].startswith(names[0])
    assert tuple(fig.get_size_inches()) == tuple(expected.get_size_inches())
    assert (tmp_path / "acts.png").stat().st_size > 0
    one = acts.plot(layers=["conv2d_1"], image_index=1)
    assert [ax.get_title(loc="left") for ax in one.axes] == [titles[2]]


def test_inspector_is_cached_on_the_model_and_reuses_feature_models():
    model = small_convnet(96)
    inspector = convviz.Inspector.of(model)
    assert convviz.Inspector.of(model) is inspector
    assert inspector._feature_model() is inspector._feature_model(None)
    convviz.activations(model, random_images(1, (96, 96)))
    assert "_convviz_inspector" not in [w.path for w in model.weights]


def test_errors():
    model = small_convnet(96)
    with pytest.raises(LayerNotFoundError, match="Closest names"):
        convviz.activations(model, random_images(1, (32, 32)), layers=["conv2d_9"])
    with pytest.raises(InputError, match="empty batch"):
        convviz.activations(model, np.zeros((0, 32, 32, 3)))
    with pytest.raises(InputError, match="rank 5"):
        convviz.activations(model, np.zeros((1, 1, 32, 32, 3)))
    with pytest.raises(InputError, match="got 2"):
        convviz.activations(model, np.zeros((1, 32, 32, 2)))
    dense = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(ModelStructureError, match="no convolution or pooling"):
        convviz.activations(dense, np.zeros((4, 4, 3)))
    with pytest.raises(InputError, match="not found"):
        convviz.activations("missing.keras", np.zeros((4, 4, 3)))
