"""Faithfulness metrics on EfficientNet-Lite0 (ImageNet weights), and torchcam's.

On every backend, 16 photos at 224 x 224 (cams.py's scikit-image photos, repeated),
on the Lite0 taking ``(pixels - 127) / 128`` (so the zero baseline is the checkpoint's
mean grey, as torchcam's), judged with their Grad-CAM maps at ``top_bn`` (of the class
probability, ``logits=False``: the maps torchcam's metrics judge):

- ``deletion_insertion`` (20 steps: 2 x 20 - 1 = 39 perturbed copies per image) vs the
  floor of its 39 x 16 compiled forward passes, measured with Keras' own compiled
  inference (``model.predict_on_batch`` on a batch of 32, scaled; convviz also scores
  the 16 unperturbed images, 2.6% more); target <= 1.1x;
- ``mufidelity`` (200 samples: 200 forward passes per image; 4 images) per image vs
  its floor, reported.

On the PyTorch backend, side by side in the same process with torchcam 0.5.0's
``DeletionInsertionMetric`` (its ``GradCAM`` at ``_bn1``, ``logits_fn`` the softmax,
batch_size 32, same 16 images and classes) on the PyTorch Lite0
(``efficientnet_lite_pytorch``, same checkpoint): convviz's Grad-CAM + deletion and
insertion vs torchcam's ``update`` (which computes its Grad-CAM too), reported. The
record holds the largest per-image AUC difference between the two libraries given
exactly torchcam's maps (recorded from its extractor), and between convviz's own
maps and torchcam's, so speed is never bought with another answer.

    KERAS_BACKEND=torch python benchmarks/metrics.py [--quick]   # = run.py --only metrics
"""

from __future__ import annotations

import sys
from functools import partial

import cams  # imports common first, which quiets TensorFlow's start-up logs
import common
import keras
import numpy as np

import convviz
from convviz import efficientnet

HEAD = cams.HEAD  # top_bn
TARGET_DELETION = 1.1
# chunk: the floor's batch, and both libraries' batch_size. Quick: 2 images (PyTorch on
# CPU can take 10x longer for a batch of 1 than of 2), batches of 8.
FULL = {"images": 16, "steps": 20, "mufidelity_images": 4, "samples": 200, "chunk": 32}
QUICK = {"images": 2, "steps": 4, "mufidelity_images": 2, "samples": 8, "chunk": 8}


def photos(n: int) -> np.ndarray:
    """``n`` photos at 224 x 224, cams.py's (scikit-image) repeated as needed."""
    base = cams.photos(min(n, len(cams.PHOTOS)))
    return np.resize(base, (n, *base.shape[1:]))


def run(quick: bool, repeats: int) -> list[dict]:
    cfg = QUICK if quick else FULL
    n, steps, m, samples = cfg["images"], cfg["steps"], cfg["mufidelity_images"], cfg["samples"]
    size = cfg["chunk"]
    normalised = (photos(n).astype(np.float32) - 127) / 128
    bare = efficientnet.efficientnet_lite0(include_preprocessing=False)  # softmax head
    maps = convviz.explain(bare, normalised, method="gradcam", layer=HEAD, logits=False)
    label = f"EfficientNet-Lite0 224, {n} image{'s' * (n > 1)}"
    chunk = np.resize(normalised, (size, *normalised.shape[1:]))

    def forward():
        return bare.predict_on_batch(chunk)

    last: dict = {}  # each timed callable's last result (no extra run to report them)

    def deletion():
        last["deletion"] = convviz.metrics.deletion_insertion(
            bare, normalised, maps, steps=steps, batch_size=size, verbose=False
        )

    samples_d: dict = {}
    forward_name = f"forward {size}"
    t = common.median_times({forward_name: forward, "deletion_insertion": deletion}, repeats, samples=samples_d)
    passes = (2 * steps - 1) * n
    floor = t[forward_name] / size * passes
    ratio = t["deletion_insertion"] / floor
    result = last["deletion"]
    records = [common.record(
        "metrics deletion", label,
        {**t, f"floor ({2 * steps - 1} x {n} forward)": floor,
         "deletion_insertion per image": t["deletion_insertion"] / n},
        {"deletion_insertion/floor": ratio},
        [common.target(f"deletion+insertion <= {TARGET_DELETION}x its forward passes", ratio, TARGET_DELETION)],
        batch=n, steps=steps, batch_size=size, forward_passes=passes, layer=HEAD,
        mean_deletion=float(result.deletion.mean()), mean_insertion=float(result.insertion.mean()),
        samples=samples_d,
    )]

    def mufidelity():
        last["mufidelity"] = convviz.metrics.mufidelity(
            bare, normalised[:m], maps.maps[:m], class_index=maps.class_index[:m], samples=samples,
            batch_size=size, verbose=False,
        )

    t = common.median_times({forward_name: forward, "mufidelity": mufidelity}, max(1, repeats // 2))
    per_image = t["mufidelity"] / m
    floor = t[forward_name] / size * samples
    records.append(common.record(
        "metrics mufidelity", f"EfficientNet-Lite0 224, {m} image{'s' * (m > 1)}",
        {**t, "mufidelity per image": per_image, f"floor ({samples} forward)": floor},
        {"mufidelity/floor": per_image / floor},
        [common.target(f"MuFidelity ({samples} samples) / its forward passes, reported", per_image / floor, 0.0,
                       ">=")],
        batch=m, samples_per_image=samples, correlations=last["mufidelity"].tolist(),
    ))
    if keras.backend.backend() == "torch":
        records += _torchcam(repeats, bare, normalised, maps, steps, size, label)
    return records


# --------------------------------------------------------------------------- #
# torchcam, same weights, same process
# --------------------------------------------------------------------------- #


def _minmax(maps) -> np.ndarray:
    maps = np.asarray(maps, np.float64)
    low = maps.min(axis=(1, 2), keepdims=True)
    return (maps - low) / (maps.max(axis=(1, 2), keepdims=True) - low)


def _recorded(obj, name: str) -> list:
    """Wrap ``obj.name`` (on the instance) to keep what each call returns."""
    seen = []
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        out = original(*args, **kwargs)
        seen.append(out)
        return out

    setattr(obj, name, wrapper)
    return seen


def _torchcam(repeats, bare, normalised, maps, steps, size, label) -> list[dict]:
    try:
        import torch
        from torchcam.methods import GradCAM
        from torchcam.metrics import DeletionInsertionMetric, _resize_cam

        net = cams._torch_lite0()
    except ImportError as error:
        print(f"  (torchcam side by side skipped: {error}; see noxfile.py's bench session)")
        return []

    x = torch.from_numpy(normalised).permute(0, 3, 1, 2).contiguous()
    classes = [int(c) for c in maps.class_index]  # the Keras model's top classes, given to both
    with torch.no_grad():
        same_top = net(x).argmax(dim=1).tolist() == classes
    n = len(classes)
    extractor = GradCAM(net, net._bn1)
    try:
        their_maps = _recorded(extractor, "fuse_cams")  # the map each update judges
        metric = DeletionInsertionMetric(extractor, partial(torch.softmax, dim=-1), steps=steps, batch_size=size)
        curves = _recorded(metric, "_compute_curves")  # (fractions, deletion, insertion) per update

        def peer():
            metric.reset()
            their_maps.clear()
            curves.clear()
            metric.update(x, class_idx=classes)

        last: dict = {}

        def ours():
            explanation = convviz.explain(bare, normalised, method="gradcam", layer=HEAD, class_index=classes,
                                          logits=False)
            last["ours"] = convviz.metrics.deletion_insertion(bare, normalised, explanation, steps=steps,
                                                              batch_size=size, verbose=False)

        samples: dict = {}
        t = common.median_times({"convviz": ours, "torchcam": peer}, max(1, repeats // 2), samples=samples)
        mine = last["ours"]
        fractions, deletion, insertion = curves[-1]
        theirs = np.stack([torch.trapezoid(curve, fractions, dim=1).detach().numpy()
                           for curve in (deletion, insertion)])  # (2, n): deletion, insertion AUCs
        summary = metric.summary()
        assert np.allclose(theirs.mean(axis=1), [summary["deletion_auc"], summary["insertion_auc"]], atol=1e-6)
        their_map = their_maps[-1].detach()
        exact = convviz.metrics.deletion_insertion(
            bare, normalised, _resize_cam(their_map, tuple(x.shape[2:])).numpy(), class_index=classes, steps=steps,
            batch_size=size, verbose=False,
        )
    finally:
        extractor.remove_hooks()
    auc_diff = float(np.abs(np.stack([exact.deletion, exact.insertion]) - theirs).max())
    own_diff = float(np.abs(np.stack([mine.deletion, mine.insertion]) - theirs).max())
    map_diff = float(np.abs(_minmax(maps.maps) - their_map.numpy()).max())
    ratio = t["convviz"] / t["torchcam"]
    return [common.record(
        "metrics vs torchcam", f"{label}: Grad-CAM + deletion/insertion", t,
        {"convviz/torchcam": ratio},
        [common.target("convviz / torchcam time, reported", ratio, 0.0, ">=")],
        batch=n, steps=steps, batch_size=size, same_top_classes=same_top,
        max_auc_diff=auc_diff, max_auc_diff_own_maps=own_diff, max_map_diff=map_diff,
        deletion={"convviz": exact.deletion.tolist(), "torchcam": theirs[0].tolist()},
        insertion={"convviz": exact.insertion.tolist(), "torchcam": theirs[1].tolist()},
        samples=samples,
    )]


if __name__ == "__main__":
    from run import main

    main(["--only", "metrics", *sys.argv[1:]])
