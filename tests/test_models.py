"""convviz.models: the chapter's architectures, fine-tuning flags, offline weight errors."""

from __future__ import annotations

import socket
import sys

import keras
import numpy as np
import pytest

from convviz import models
from convviz.errors import InputError, WeightsUnavailableError

L = keras.layers


def _summary(model):
    return [(type(layer).__name__, tuple(layer.output.shape[1:])) for layer in model.layers[1:]]


@pytest.fixture
def no_network(monkeypatch):
    """Every host name fails to resolve: urllib, requests and kagglehub all go through this."""

    def refuse(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "simulated: no network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)


# --------------------------------------------------------------------------- #
# Architectures
# --------------------------------------------------------------------------- #


def test_mnist_convnet_architecture():
    model = models.mnist_convnet()
    assert model.input_shape == (None, 28, 28, 1)
    assert _summary(model) == [
        ("Conv2D", (26, 26, 32)),
        ("MaxPooling2D", (13, 13, 32)),
        ("Conv2D", (11, 11, 64)),
        ("MaxPooling2D", (5, 5, 64)),
        ("Conv2D", (3, 3, 128)),
        ("Flatten", (1152,)),
        ("Dense", (10,)),
    ]
    assert model.count_params() == 104_202
    assert model.layers[-1].get_config()["activation"] == "softmax"
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert model.loss == "sparse_categorical_crossentropy"
    assert not models.mnist_convnet(compile=False).compiled


def test_small_convnet_architecture_matches_the_chapter():
    model = models.small_convnet()
    assert model.count_params() == 991_041
    assert _summary(model) == [
        ("Rescaling", (180, 180, 3)),
        ("Conv2D", (178, 178, 32)),
        ("MaxPooling2D", (89, 89, 32)),
        ("Conv2D", (87, 87, 64)),
        ("MaxPooling2D", (43, 43, 64)),
        ("Conv2D", (41, 41, 128)),
        ("MaxPooling2D", (20, 20, 128)),
        ("Conv2D", (18, 18, 256)),
        ("MaxPooling2D", (9, 9, 256)),
        ("Conv2D", (7, 7, 256)),
        ("Flatten", (12544,)),
        ("Dense", (1,)),
    ]
    assert [layer.count_params() for layer in model.layers if layer.weights] == [
        896, 18496, 73856, 295168, 590080, 12545,
    ]
    assert model.get_layer("rescaling").get_config()["scale"] == pytest.approx(1 / 255)
    assert all(layer.get_config()["kernel_size"] == (3, 3) for layer in model.layers if isinstance(layer, L.Conv2D))
    assert [layer.name for layer in model.layers if isinstance(layer, L.Conv2D)] == [
        "conv2d", "conv2d_1", "conv2d_2", "conv2d_3", "conv2d_4",
    ]
    assert model.layers[-1].get_config()["activation"] == "sigmoid"
    assert isinstance(model.optimizer, keras.optimizers.RMSprop) and model.loss == "binary_crossentropy"


def test_small_convnet_with_augmentation_and_dropout():
    model = models.small_convnet(augmentation=True)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[:3] == ["InputLayer", "Sequential", "Rescaling"]
    assert kinds[-3:] == ["Flatten", "Dropout", "Dense"]
    assert model.get_layer("dropout").rate == 0.5
    assert [type(x).__name__ for x in model.get_layer("data_augmentation").layers] == [
        "RandomFlip", "RandomRotation", "RandomZoom",
    ]
    assert model.count_params() == 991_041
    assert "Dropout" not in [type(x).__name__ for x in models.small_convnet().layers]
    assert models.small_convnet(dropout=0.3).get_layer("dropout").rate == 0.3
    assert "Dropout" not in [type(x).__name__ for x in models.small_convnet(augmentation=True, dropout=0).layers]


def test_small_convnet_input_size_limits():
    assert models.small_convnet((78, 78, 3)).get_layer("conv2d_4").output.shape[1:3] == (1, 1)
    with pytest.raises(InputError, match=">= 78"):
        models.small_convnet((77, 77, 3))
    with pytest.raises(InputError, match="dropout"):
        models.small_convnet(dropout=1.5)


def test_vgg16_conv_base_architecture():
    base = models.vgg16_conv_base(weights=None)
    assert base.name == "vgg16"
    assert base.count_params() == 14_714_688
    assert base.output_shape == (None, 5, 5, 512)
    assert [layer.name for layer in base.layers[-4:]] == ["block5_conv1", "block5_conv2", "block5_conv3", "block5_pool"]
    assert not base.trainable and not base.trainable_weights


def test_vgg16_fast_feature_extraction():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (6, 32, 32, 3)).astype("float32")
    labels = np.array([0, 1, 1, 0, 1, 0])
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    base = models.vgg16_conv_base(weights=None, input_shape=(32, 32, 3))
    features, got_labels = models.vgg16_features(ds, base)
    assert features.shape == (6, 1, 1, 512)
    assert got_labels.tolist() == labels.tolist()
    # Independent path: the chapter's preprocessing (RGB->BGR, minus ImageNet means).
    bgr = images[..., ::-1] - np.array([103.939, 116.779, 123.68], dtype="float32")
    np.testing.assert_allclose(features, base.predict(bgr, verbose=0), rtol=1e-4, atol=1e-4)

    head = models.vgg16_feature_classifier()
    assert _summary(head) == [("Flatten", (12800,)), ("Dense", (256,)), ("Dropout", (256,)), ("Dense", (1,))]
    assert head.get_layer("dense").get_config()["activation"] == "linear"
    assert head.get_layer("dropout").rate == 0.5
    assert head.count_params() == 3_277_313
    with pytest.raises(InputError, match="images, labels"):
        models.vgg16_features([images], base)


def test_vgg16_end_to_end_model():
    model = models.vgg16_end_to_end(weights=None, input_shape=(32, 32, 3))
    assert [type(layer).__name__ for layer in model.layers] == [
        "InputLayer", "Sequential", "Functional", "Flatten", "Dense", "Dropout", "Dense",
    ]
    base = model.get_layer("vgg16")
    assert not base.trainable
    assert len(model.trainable_weights) == 4  # the two Dense layers only
    # preprocess_input sits between augmentation and base: check against an
    # independent computation of the whole forward pass.
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    bgr = x[..., ::-1] - np.array([103.939, 116.779, 123.68], dtype="float32")
    head = keras.Sequential([model.get_layer("flatten"), model.get_layer("dense"), model.get_layer("dense_1")])
    expected = keras.ops.convert_to_numpy(head(base(bgr)))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-5)
    no_aug = models.vgg16_end_to_end(weights=None, input_shape=(32, 32, 3), augmentation=False)
    assert "Sequential" not in [type(x).__name__ for x in no_aug.layers]


# --------------------------------------------------------------------------- #
# Fine-tuning
# --------------------------------------------------------------------------- #


def test_unfreeze_top_layers_vgg16_block5():
    model = models.vgg16_end_to_end(weights=None, input_shape=(32, 32, 3))
    out = models.unfreeze_top_layers(model, 4)
    assert out is model
    base = model.get_layer("vgg16")
    assert [layer.name for layer in base.layers if layer.trainable] == [
        "block5_conv1", "block5_conv2", "block5_conv3", "block5_pool",
    ]
    assert len(model.trainable_weights) == 3 * 2 + 4
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(1e-5)
    assert model.loss == "binary_crossentropy"

    models.unfreeze_top_layers(model, 2, optimizer="adam", learning_rate=3e-5)
    assert [layer.name for layer in base.layers if layer.trainable] == ["block5_conv3", "block5_pool"]
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    with pytest.raises(InputError, match="optimizer"):
        models.unfreeze_top_layers(model, 2, optimizer="sgd!")
    with pytest.raises(InputError, match="n_layers"):
        models.unfreeze_top_layers(model, -1)


def test_unfreeze_top_layers_keeps_batchnorm_frozen():
    base = keras.Sequential(
        [
            keras.Input((16, 16, 3)),
            L.Conv2D(4, 3, name="c1"),
            L.BatchNormalization(name="bn1"),
            L.Conv2D(4, 3, name="c2"),
            L.BatchNormalization(name="bn2"),
            L.ReLU(name="act"),
        ],
        name="base",
    )
    inputs = keras.Input((16, 16, 3))
    x = base(inputs)
    model = keras.Model(inputs, L.Dense(1, activation="sigmoid", name="head")(L.Flatten()(x)))
    base.trainable = False
    models.unfreeze_top_layers(model, 3)  # c2, bn2, act: bn2 must stay frozen
    assert {layer.name: layer.trainable for layer in base.layers} == {
        "c1": False, "bn1": False, "c2": True, "bn2": False, "act": True,
    }
    models.unfreeze_top_layers(model, None, compile=False)  # everything but BN
    assert [layer.name for layer in base.layers if not layer.trainable] == ["bn1", "bn2"]
    assert model.get_layer("head").trainable


def test_unfreeze_top_layers_on_offline_xception():
    pytest.importorskip("keras_hub")
    model = models.xception_feature_extractor(preset=None, image_size=(71, 71))
    backbone = model.layers[2]
    assert not backbone.trainable_weights
    models.unfreeze_top_layers(model, 4, optimizer="adam")
    assert [(layer.name, layer.trainable) for layer in backbone.layers[-4:]] == [
        ("block14_sepconv1_act", True),
        ("block14_sepconv2", True),
        ("block14_sepconv2_bn", False),
        ("block14_sepconv2_act", True),
    ]
    assert not any(layer.trainable for layer in backbone.layers[:-4])
    bn = [layer for layer in backbone.layers if isinstance(layer, L.BatchNormalization)]
    assert len(bn) == 40 and not any(layer.trainable for layer in bn)
    assert isinstance(model.optimizer, keras.optimizers.Adam)


# --------------------------------------------------------------------------- #
# Xception (keras-hub)
# --------------------------------------------------------------------------- #


def test_xception_feature_extractor_offline_architecture():
    keras_hub = pytest.importorskip("keras_hub")
    model = models.xception_feature_extractor(preset=None)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == [
        "InputLayer", "XceptionImageConverter", "XceptionBackbone", "GlobalAveragePooling2D",
        "Dense", "Dropout", "Dense",
    ]
    converter, backbone = model.layers[1], model.layers[2]
    assert isinstance(backbone, keras_hub.models.Backbone)
    assert backbone.count_params() == 20_861_480  # the preset's size
    assert not backbone.trainable
    assert backbone.layers[-1].name == "block14_sepconv2_act"
    config = converter.get_config()
    assert tuple(config["image_size"]) == (180, 180)
    assert config["scale"] == pytest.approx(1 / 127.5) and config["offset"] == -1
    assert model.output_shape == (None, 1)
    assert model.get_layer("dropout").rate == 0.25
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    # The converter maps 0-255 to [-1, 1] like keras.applications.xception.preprocess_input.
    x = np.array([[[[0.0, 127.5, 255.0]] * 180] * 180], dtype="float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(converter(x))[0, 0, 0], [-1, 0, 1], atol=1e-5)


def test_missing_keras_hub_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras_hub", None)
    with pytest.raises(ImportError, match=r'pip install "convviz\[hub\]"'):
        models.xception_backbone(preset=None)


# --------------------------------------------------------------------------- #
# Pretrained weights offline
# --------------------------------------------------------------------------- #


def test_vgg16_imagenet_offline_raises_one_clear_error(no_network, tmp_path):
    cache = tmp_path / "keras_cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "other_weights.h5").write_bytes(b"keep me")
    with pytest.raises(WeightsUnavailableError) as info:
        models.vgg16_conv_base(weights="imagenet", cache_dir=cache)
    message = str(info.value)
    fname = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert "Could not download the VGG16 ImageNet weights" in message
    assert str(cache / "models" / fname) in message  # where to pre-place the file
    assert 'weights="/path/to/' in message and "weights=None" in message
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["other_weights.h5"]

    # A cache folder the attempt had to create is removed again.
    fresh = tmp_path / "fresh" / "cache"
    with pytest.raises(WeightsUnavailableError):
        models.vgg16_end_to_end(weights="imagenet", cache_dir=fresh)
    assert not (tmp_path / "fresh").exists()


def test_failed_download_leaves_no_partial_file(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "other.h5").write_bytes(b"keep me")

    def partial_download(fname, origin, cache_subdir="datasets", cache_dir=None, **kwargs):
        (cache / cache_subdir / fname).write_bytes(b"\x89HDF half")
        (cache / cache_subdir / "scratch").mkdir()
        raise Exception(f"URL fetch failure on {origin}: None -- connection reset")

    monkeypatch.setattr(keras.utils, "get_file", partial_download)
    with pytest.raises(WeightsUnavailableError, match="connection reset"):
        models.vgg16_conv_base(cache_dir=cache)
    assert sorted(p.name for p in (cache / "models").iterdir()) == ["other.h5"]


def test_vgg16_weights_from_a_local_file(tmp_path):
    base = models.vgg16_conv_base(weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "vgg16.weights.h5"
    base.save_weights(path)
    again = models.vgg16_conv_base(weights=str(path), input_shape=(32, 32, 3))
    for a, b in zip(base.weights, again.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    with pytest.raises(WeightsUnavailableError, match="not found"):
        models.vgg16_conv_base(weights=str(tmp_path / "missing.h5"))


def test_keras_hub_preset_offline_raises_one_clear_error(no_network, tmp_path, monkeypatch):
    pytest.importorskip("keras_hub")
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    for build in (models.xception_backbone, models.xception_image_converter, models.xception_feature_extractor):
        with pytest.raises(WeightsUnavailableError) as info:
            build()
        message = str(info.value)
        assert "xception_41_imagenet" in message
        assert 'preset="/path/to/preset_dir"' in message and "preset=None" in message
    # kagglehub creates the preset's cache folders before failing; they are gone again.
    assert not (tmp_path / "kagglehub").exists()
    with pytest.raises(WeightsUnavailableError, match="Preset directory not found"):
        models.xception_backbone(preset=str(tmp_path / "no_such_preset"))
