"""The CAM family on EfficientNet-Lite0 (ImageNet weights), and the PyTorch peers.

On every backend, a batch of 8 photos at 224 x 224, explained at the head BatchNorm
``top_bn`` (7 x 7 x 1280):

- each gradient CAM (Grad-CAM++, XGrad-CAM, HiResCAM, Layer-CAM) vs convviz's Grad-CAM:
  they share its compiled step, so the target is <= 1.1x;
- Ablation-CAM (1280 channels ablated per image, only the layers after ``top_bn``
  re-run) and Score-CAM (one forward pass per channel: at ``block4c_project_bn``,
  14 x 14 x 80, on the (pixels - 127) / 128 input) — time per image.

Side by side in the same process with pytorch-grad-cam 1.5.7 (on the PyTorch backend,
and on TensorFlow when torch is installed beside it) on the PyTorch Lite0 (``efficientnet_lite_pytorch``, same checkpoint, run as its users run
it: default memory format, ``torch.no_grad`` where the peer uses it): Grad-CAM++ (same
layer, batch 8; <= 1.1x the peer is not a target, reported), Score-CAM (same layer
``_blocks[7]._bn2``, batch 8; target convviz >= 2x faster) and Ablation-CAM (``_bn1``;
the peer re-runs the whole network per ablated channel, 1280 x 2 images; target convviz
>= 10x faster per image). Each row reports the largest difference between the two
libraries' normalised maps, so speed is never bought with another answer.

    KERAS_BACKEND=torch python benchmarks/cams.py [--quick]   # = run.py --only cams
"""

from __future__ import annotations

import pathlib
import sys

import common  # first: it quiets TensorFlow's start-up logs
import keras
import numpy as np

import convviz
from convviz import efficientnet

HEAD = "top_bn"
SCORE_LAYER = "block4c_project_bn"  # 80 channels: Score-CAM is one forward pass per channel
QUICK_LAYER = "block1a_project_bn"  # 16 channels at 112 x 112: the smoke test's gradient-free layer
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "cat", "hubble_deep_field", "immunohistochemistry", "retina")
GRADIENT = ("gradcam_plusplus", "xgradcam", "hirescam", "layercam")
TARGET_GRADIENT = 1.1
TARGET_SCORECAM = 2.0
TARGET_ABLATIONCAM = 10.0


def photos(n: int) -> np.ndarray:
    """``n`` scikit-image photos through the ImageNet evaluation crop, (n, 224, 224, 3)."""
    import skimage.data

    return np.stack([efficientnet.eval_transform(getattr(skimage.data, name)()) for name in PHOTOS[:n]])


def _minmax(maps) -> np.ndarray:
    maps = np.asarray(maps, np.float64)
    low = maps.min(axis=(1, 2), keepdims=True)
    return (maps - low) / (maps.max(axis=(1, 2), keepdims=True) - low + 1e-7)


def _quiet(method: str) -> dict:
    """No progress bar from the gradient-free methods (they take ``verbose``)."""
    return {"verbose": False} if issubclass(convviz.methods.get_method(method), convviz.methods.GradientFreeCAM) else {}


def run(quick: bool, repeats: int) -> list[dict]:
    n = 1 if quick else 8
    images = photos(n)
    normalised = (images.astype(np.float32) - 127) / 128
    model = efficientnet.efficientnet_lite0(classifier_activation=None)
    bare = efficientnet.efficientnet_lite0(classifier_activation=None, include_preprocessing=False)
    score_layer = QUICK_LAYER if quick else SCORE_LAYER
    ablation_layer = QUICK_LAYER if quick else HEAD
    label = f"EfficientNet-Lite0 224, {n} image{'s' * (n > 1)}"

    def cam(method, net=model, x=images, layer=HEAD):
        return lambda: convviz.cam(net, x, method=method, layer=layer, **_quiet(method))

    samples: dict = {}
    t = common.median_times({"gradcam": cam("gradcam"), **{m: cam(m) for m in GRADIENT}}, repeats, samples=samples)
    ratios = {f"{m}/gradcam": t[m] / t["gradcam"] for m in GRADIENT}
    records = [common.record(
        "cams gradient", label, t, ratios,
        [common.target(f"{m} <= {TARGET_GRADIENT}x Grad-CAM", ratios[f"{m}/gradcam"], TARGET_GRADIENT)
         for m in GRADIENT],
        batch=n, layer=HEAD, samples=samples,
    )]
    # Gradient-free methods against the floor of the forward passes they stand for:
    # Score-CAM runs K (channels) passes of the whole model per image, in batches of 32;
    # Ablation-CAM would need as many whole-model passes if it could not stop at the layer.
    chunk = np.resize(normalised, (32, *normalised.shape[1:]))
    free = common.median_times(
        {"forward 32": lambda: bare.predict_on_batch(chunk),
         "ablationcam": cam("ablationcam", layer=ablation_layer),
         "scorecam": cam("scorecam", net=bare, x=normalised, layer=score_layer)},
        max(1, repeats // 2),
    )
    inspector = convviz.Inspector.of(model)
    k_score, k_ablation = (inspector.find_layer(layer).output_shape[-1] for layer in (score_layer, ablation_layer))
    forward = free["forward 32"] / 32  # per image
    ratios = {
        "scorecam/(K x forward)": free["scorecam"] / (k_score * n * forward),
        "(K x forward)/ablationcam": k_ablation * n * forward / free["ablationcam"],
    }
    records.append(common.record(
        "cams gradient-free", label,
        {**free, "scorecam per image": free["scorecam"] / n, "ablationcam per image": free["ablationcam"] / n},
        ratios,
        [common.target("Score-CAM <= 1.15x its K forward passes", ratios["scorecam/(K x forward)"], 1.15),
         common.target(f"Ablation-CAM >= {TARGET_ABLATIONCAM:g}x faster than K whole-model passes",
                       ratios["(K x forward)/ablationcam"], TARGET_ABLATIONCAM, ">=")],
        batch=n, layers={"ablationcam": ablation_layer, "scorecam": score_layer},
        channels={"ablationcam": k_ablation, "scorecam": k_score},
    ))
    # Side by side with pytorch-grad-cam wherever torch and the peer import: on the
    # PyTorch backend, and on TensorFlow when torch is installed beside it (nox's bench
    # session does both), so that "what I use now" is compared on the same machine.
    records += _peers(quick, repeats, model, bare, images, normalised, score_layer, ablation_layer, label)
    return records


# --------------------------------------------------------------------------- #
# pytorch-grad-cam, same weights, same process
# --------------------------------------------------------------------------- #


def _pytorch_grad_cam():
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
    from peer_stubs import import_pytorch_grad_cam  # torchvision stand-ins, see there

    return import_pytorch_grad_cam()


def _torch_lite0():
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(efficientnet._packaged_checkpoint(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()


def _module(net, layer: str):
    """The reference's module standing for a convviz Lite0 layer."""
    blocks = {QUICK_LAYER: 0, SCORE_LAYER: 7}
    return net._bn1 if layer == HEAD else net._blocks[blocks[layer]]._bn2


def _peers(quick, repeats, model, bare, images, normalised, score_layer, ablation_layer, label) -> list[dict]:
    try:
        pgc = _pytorch_grad_cam()
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        net = _torch_lite0()
    except ImportError as error:
        print(f"  (pytorch-grad-cam side by side skipped: {error}; see noxfile.py's bench session)")
        return []
    label = f"{label}, convviz on {keras.backend.backend()}"
    import torch

    x = torch.from_numpy(normalised).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        classes = net(x).argmax(dim=1).tolist()
    targets = [ClassifierOutputTarget(c) for c in classes]

    def peer(method, layer, inputs, rows, **attributes):
        def call():
            cam = method(net, [_module(net, layer)])
            for name, value in attributes.items():
                setattr(cam, name, value)
            with cam:
                return cam(inputs[:rows], targets=targets[:rows])
        return call

    def ours(method, net_, x_, layer, rows):
        return lambda: convviz.explain(
            net_, x_[:rows], method=method, layer=layer, class_index=classes[:rows], **_quiet(method)
        )

    def compare(name, method_ours, method_peer, layer, rows, reps, net_=model, x_=images, **attributes):
        samples: dict = {}
        fns = {"convviz": ours(method_ours, net_, x_, layer, rows),
               "pytorch-grad-cam": peer(method_peer, layer, x, rows, **attributes)}
        t = common.median_times(fns, reps, samples=samples)
        # pytorch-grad-cam returns its maps min-max scaled and resized to the input
        # (OpenCV, bilinear): convviz's, upsampled, are min-max scaled to compare.
        theirs = np.asarray(fns["pytorch-grad-cam"](), np.float64)
        mine = _minmax(fns["convviz"]().upsampled())
        return t, samples, float(np.abs(mine - theirs).max())

    n = len(images)
    records = []
    reps = max(1, repeats)
    t, samples, diff = compare("gradcam_plusplus", "gradcam_plusplus", pgc.GradCAMPlusPlus, HEAD, n, reps)
    records.append(common.record(
        "cams vs pytorch-grad-cam", f"{label}: Grad-CAM++ at {HEAD}", t,
        {"pytorch-grad-cam/convviz": t["pytorch-grad-cam"] / t["convviz"]},
        [common.target("convviz Grad-CAM++ vs the peer (x faster), reported",
                       t["pytorch-grad-cam"] / t["convviz"], 0.0, ">=")],
        batch=n, max_abs_diff=diff, samples=samples,
    ))
    t, samples, diff = compare("scorecam", "scorecam", pgc.ScoreCAM, score_layer, n, max(1, reps // 2),
                               net_=bare, x_=normalised)
    records.append(common.record(
        "cams vs pytorch-grad-cam", f"{label}: Score-CAM at {score_layer}", t,
        {"pytorch-grad-cam/convviz": t["pytorch-grad-cam"] / t["convviz"]},
        [common.target(f"Score-CAM >= {TARGET_SCORECAM:g}x faster than the peer",
                       t["pytorch-grad-cam"] / t["convviz"], TARGET_SCORECAM, ">=")],
        batch=n, max_abs_diff=diff, samples=samples,
    ))
    rows = 1 if quick else 2  # the peer: 1280 whole-network passes per image
    t, samples, diff = compare("ablationcam", "ablationcam", pgc.AblationCAM, ablation_layer, rows, 1)
    records.append(common.record(
        "cams vs pytorch-grad-cam", f"{label}: Ablation-CAM at {ablation_layer} ({rows} image{'s' * (rows > 1)})",
        t, {"pytorch-grad-cam/convviz": t["pytorch-grad-cam"] / t["convviz"]},
        [common.target(f"Ablation-CAM >= {TARGET_ABLATIONCAM:g}x faster than the peer",
                       t["pytorch-grad-cam"] / t["convviz"], TARGET_ABLATIONCAM, ">=")],
        batch=rows, max_abs_diff=diff, samples=samples,
    ))
    return records


if __name__ == "__main__":
    from run import main

    main(["--only", "cams", *sys.argv[1:]])
