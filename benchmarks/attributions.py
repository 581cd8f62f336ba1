"""Pixel attributions on EfficientNet-Lite0 (ImageNet weights), and captum.

On every backend, 4 photos at 224 x 224, on the Lite0 that takes the normalised input
``(pixels - 127) / 128`` (``include_preprocessing=False``, as the PyTorch model),
each photo at its top class (logits):

- Integrated Gradients (50 Gauss-Legendre steps, zero baseline, 50 interpolated
  images per compiled call) vs its floor: 50 x N forward+backward passes of the whole
  model, timed as convviz's own compiled input-gradient step on N batches of 50 rows.
  Target <= 1.15x.
- Occlusion (window 16, stride 8: 27 x 27 = 729 occluded copies per image, 32 per
  compiled call) vs its floor: 729 x N forward passes (``predict_on_batch`` on 32
  rows, scaled). Target <= 1.15x; the time per image is reported.
- Memory (full mode only): Integrated Gradients with 200 steps on 16 images (3,200
  interpolated images, 1.8 GiB if they were built at once) vs 50 steps on the same
  images: peak resident memory above its level before the call
  (``common.peak_memory``). The chunk rule: the interpolated images are built
  ``batch_size`` rows at a time (default 32), and at most two chunks of them are alive,
  the one running and the next one being built on a worker thread; only each image's
  running sum of gradients is kept. Target: the peak for 200 steps <= 1.2x that for 50.

On the PyTorch backend, side by side in the same process with captum 0.9.0 on the
PyTorch Lite0 (``efficientnet_lite_pytorch``, same checkpoint, NCHW, default memory
format): ``IntegratedGradients`` (``internal_batch_size=50``: captum runs 50 // N
steps of all N images per pass, 48 rows for 4 images) and ``Occlusion``
(``perturbations_per_eval=32``, the same 32 occluded copies per forward pass as
convviz). Target (issue 15): convviz <= 1.0x captum's time. Each row reports the
largest relative L2 error between the two libraries' maps over the images, and the
ratio of Keras' own forward (and forward+backward) pass on PyTorch to the native
model's, which bounds what convviz can do on that backend.

``--quick``: 1 photo, Integrated Gradients with 4 steps (4 per call), occlusion with
window 56 and stride 56 (16 copies, 16 per call), no warm-up, no memory measurement.

    KERAS_BACKEND=torch python benchmarks/attributions.py [--quick]   # = run.py --only attributions
"""

from __future__ import annotations

import gc
import math
import sys

import common  # first: it quiets TensorFlow's start-up logs
import keras
import numpy as np
from cams import _torch_lite0, photos

import convviz
from convviz import efficientnet
from convviz.methods.integrated_gradients import IntegratedGradients

TARGET_FLOOR = 1.15
TARGET_CAPTUM = 1.0
TARGET_MEMORY = 1.2
FULL = {"images": 4, "steps": 50, "chunk": 50, "window": 16, "stride": 8, "forward_batch": 32, "warmup": 1}
# A smoke test: every call once, no warm-up (its timings are not compared with targets).
QUICK = {"images": 1, "steps": 4, "chunk": 4, "window": 56, "stride": 56, "forward_batch": 16, "warmup": 0}
MEMORY = {"images": 16, "steps": (50, 200)}  # full mode only


def _keeping(fns: dict) -> tuple[dict, dict]:
    """The callables, changed to keep their last result in the returned dict."""
    results: dict = {}

    def keep(name, fn):
        def call():
            results[name] = fn()
        return call

    return {name: keep(name, fn) for name, fn in fns.items()}, results


def _relative_l2(ours, theirs) -> float:
    """The largest ``||ours - theirs|| / ||theirs||`` over the images."""
    ours = np.asarray(ours, np.float64).reshape(len(ours), -1)
    theirs = np.asarray(theirs, np.float64).reshape(len(theirs), -1)
    return float((np.linalg.norm(ours - theirs, axis=1) / np.linalg.norm(theirs, axis=1)).max())


def run(quick: bool, repeats: int) -> list[dict]:
    cfg = QUICK if quick else FULL
    n, steps, chunk = cfg["images"], cfg["steps"], cfg["chunk"]
    window, stride, forward_batch, warmup = cfg["window"], cfg["stride"], cfg["forward_batch"], cfg["warmup"]
    normalised = (photos(n).astype(np.float32) - 127) / 128
    bare = efficientnet.efficientnet_lite0(classifier_activation=None, include_preprocessing=False)
    classes = np.argmax(bare.predict_on_batch(normalised), axis=1)
    label = f"EfficientNet-Lite0 224, {n} image{'s' * (n > 1)}"

    # -- Integrated Gradients vs 50 x N compiled forward+backward passes --------------
    ig = IntegratedGradients(bare, steps=steps, batch_size=chunk, verbose=False)
    step = ig._step()
    rows = np.resize(normalised, (chunk, *normalised.shape[1:]))
    weights = ig._row_weights(np.resize(classes, chunk), chunk)
    n_chunks = math.ceil(n * steps / chunk)

    def floor():
        for _ in range(n_chunks):
            keras.ops.convert_to_numpy(step([rows], weights)[1])

    samples: dict = {}
    t = common.median_times(
        {"integrated_gradients": lambda: ig.explain(normalised, class_index=classes),
         f"floor ({steps} x {n} fwd+bwd)": floor},
        repeats, warmup, samples=samples,
    )
    ratio = t["integrated_gradients"] / t[f"floor ({steps} x {n} fwd+bwd)"]
    records = [common.record(
        "attributions ig", label, t, {"ig/floor": ratio},
        [common.target(f"IG ({steps} steps) <= {TARGET_FLOOR}x its fwd+bwd passes", ratio, TARGET_FLOOR)],
        batch=n, steps=steps, chunk=chunk, samples=samples,
    )]

    # -- Occlusion vs windows x N compiled forward passes -----------------------------
    occlusion = convviz.methods.get_method("occlusion")(bare, window=window, stride=stride,
                                                        batch_size=forward_batch, verbose=False)
    windows = len(occlusion.corners((224, 224)))
    forward_rows = np.resize(normalised, (forward_batch, *normalised.shape[1:]))
    if warmup:
        # On few windows: the same compiled shapes (the N images' scores, then the
        # occluded copies 32 at a time) for a fraction of the work.
        convviz.attribute(bare, normalised, class_index=classes, method="occlusion", window=32, stride=32,
                          batch_size=forward_batch, verbose=False)
        bare.predict_on_batch(forward_rows)
    occ = common.median_times(
        {"occlusion": lambda: occlusion.explain(normalised, class_index=classes),
         f"forward {forward_batch}": lambda: bare.predict_on_batch(forward_rows)},
        max(1, repeats // 5), warmup=0,
    )
    floor_occ = occ[f"forward {forward_batch}"] / forward_batch * windows * n
    ratio = occ["occlusion"] / floor_occ
    records.append(common.record(
        "attributions occlusion", label,
        {**occ, "occlusion per image": occ["occlusion"] / n, f"floor ({windows} x {n} forward)": floor_occ},
        {"occlusion/floor": ratio},
        [common.target(f"occlusion <= {TARGET_FLOOR}x its {windows} forward passes per image", ratio,
                       TARGET_FLOOR)],
        batch=n, window=window, stride=stride, windows=windows,
    ))
    if keras.backend.backend() == "torch":
        records += _captum(quick, repeats, bare, normalised, classes, cfg, label, windows)
    if not quick:
        records.append(_memory(bare))
    return records


# --------------------------------------------------------------------------- #
# captum, same weights, same process
# --------------------------------------------------------------------------- #


def _captum(quick, repeats, bare, normalised, classes, cfg, label, windows) -> list[dict]:
    try:
        from captum.attr import IntegratedGradients as CaptumIG
        from captum.attr import Occlusion as CaptumOcclusion
        net = _torch_lite0()
    except ImportError as error:
        print(f"  (captum side by side skipped: {error}; see noxfile.py's bench session)")
        return []
    import torch

    n, steps, chunk = cfg["images"], cfg["steps"], cfg["chunk"]
    window, stride, forward_batch, warmup = cfg["window"], cfg["stride"], cfg["forward_batch"], cfg["warmup"]
    x = torch.from_numpy(normalised).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        assert net(x).argmax(dim=1).tolist() == classes.tolist()  # the same classes in both models
    target = classes.tolist()

    def nhwc(t):
        return t.detach().numpy().transpose(0, 2, 3, 1)

    # The Keras model vs the native one on this backend: forward on 32 rows, and
    # forward+backward (input gradients of the class logits) on one chunk of rows.
    rows = np.resize(normalised, (forward_batch, *normalised.shape[1:]))
    x_rows = torch.from_numpy(rows).permute(0, 3, 1, 2).contiguous()
    grad_rows = np.resize(normalised, (chunk, *normalised.shape[1:]))
    x_grad = torch.from_numpy(grad_rows).permute(0, 3, 1, 2).contiguous()
    grad_classes = torch.from_numpy(np.resize(classes, chunk))
    ig = IntegratedGradients(bare, steps=steps, batch_size=chunk, verbose=False)
    step, weights = ig._step(), ig._row_weights(np.resize(classes, chunk), chunk)

    def torch_forward():
        with torch.no_grad():
            net(x_rows)

    def torch_gradient():
        leaf = x_grad.detach().requires_grad_()
        scores = net(leaf)[torch.arange(chunk), grad_classes].sum()
        torch.autograd.grad(scores, leaf)

    passes = common.median_times(
        {"keras forward": lambda: bare.predict_on_batch(rows), "torch forward": torch_forward,
         "keras fwd+bwd": lambda: keras.ops.convert_to_numpy(step([grad_rows], weights)[1]),
         "torch fwd+bwd": torch_gradient},
        max(1, repeats), warmup,
    )
    forward_ratio = passes["keras forward"] / passes["torch forward"]
    gradient_ratio = passes["keras fwd+bwd"] / passes["torch fwd+bwd"]

    records = []
    samples: dict = {}
    fns, results = _keeping({
        "convviz": lambda: ig.explain(normalised, class_index=classes).maps,
        "captum": lambda: nhwc(CaptumIG(net).attribute(x, baselines=0, target=target, n_steps=steps,
                                                       method="gausslegendre", internal_batch_size=chunk)),
    })
    t = common.median_times(fns, repeats, warmup, samples=samples)
    diff = _relative_l2(results["convviz"], results["captum"])
    records.append(common.record(
        "attributions vs captum", f"{label}: IG {steps} steps", {**t, **passes},
        {"convviz/captum": t["convviz"] / t["captum"], "keras fwd+bwd/torch fwd+bwd": gradient_ratio},
        [common.target(f"IG <= {TARGET_CAPTUM:g}x captum's time", t["convviz"] / t["captum"], TARGET_CAPTUM),
         common.target("Keras fwd+bwd / native PyTorch (bound), reported", gradient_ratio, 0.0, ">=")],
        batch=n, steps=steps, chunk=chunk, max_relative_l2=diff, samples=samples,
    ))

    occlusion = convviz.methods.get_method("occlusion")(bare, window=window, stride=stride,
                                                        batch_size=forward_batch, verbose=False)

    def captum_occlusion(size, step):
        return nhwc(CaptumOcclusion(net).attribute(
            x, sliding_window_shapes=(3, size, size), strides=(3, step, step), baselines=0, target=target,
            perturbations_per_eval=forward_batch))

    fns, results = _keeping({
        "convviz": lambda: occlusion.explain(normalised, class_index=classes).maps,
        "captum": lambda: captum_occlusion(window, stride),
    })
    if warmup:
        captum_occlusion(32, 32)  # on few windows, as convviz's in run()
    t = common.median_times(fns, max(1, repeats // 5), warmup=0)
    diff = _relative_l2(results["convviz"], results["captum"])
    records.append(common.record(
        "attributions vs captum", f"{label}: occlusion {window}/{stride}",
        {**t, "convviz per image": t["convviz"] / n, "captum per image": t["captum"] / n},
        {"convviz/captum": t["convviz"] / t["captum"], "keras forward/torch forward": forward_ratio},
        [common.target(f"occlusion <= {TARGET_CAPTUM:g}x captum's time", t["convviz"] / t["captum"],
                       TARGET_CAPTUM),
         common.target("Keras forward / native PyTorch (bound), reported", forward_ratio, 0.0, ">=")],
        batch=n, windows=windows, perturbations_per_eval=forward_batch, max_relative_l2=diff,
    ))
    return records


# --------------------------------------------------------------------------- #
# Memory: the steps do not add up
# --------------------------------------------------------------------------- #


def _memory(bare) -> dict:
    n = MEMORY["images"]
    normalised = (np.resize(photos(8), (n, 224, 224, 3)).astype(np.float32) - 127) / 128
    few, many = MEMORY["steps"]
    method = IntegratedGradients(bare, steps=few, verbose=False)
    classes = np.argmax(bare.predict_on_batch(normalised), axis=1)
    IntegratedGradients(bare, steps=2, verbose=False).explain(normalised, class_index=classes)  # warm-up

    def measure(steps):
        method = IntegratedGradients(bare, steps=steps, verbose=False)
        gc.collect()
        result, rss, python = common.peak_memory(lambda: method.explain(normalised, class_index=classes))
        assert np.all(result.details["steps"] == steps)
        return rss, python

    few_rss, few_py = measure(few)
    many_rss, many_py = measure(many)
    image = normalised[0].nbytes
    # Compared with a floor of one chunk of interpolated images: below it, RSS noise
    # (allocator pages coming and going) would dominate the ratio.
    floor = method.batch_size * image
    ratio = max(many_rss, floor) / max(few_rss, floor)
    mib = 2**20
    return common.record(
        "attributions memory", f"EfficientNet-Lite0 224, {n} images",
        {},
        {f"peak RSS {many}/{few} steps": ratio, f"peak Python {many}/{few} steps": max(many_py, 1) / max(few_py, 1)},
        [common.target(f"IG peak memory {many} steps <= {TARGET_MEMORY}x {few} steps", ratio, TARGET_MEMORY)],
        memory_mib={
            f"rss {few} steps": few_rss / mib, f"rss {many} steps": many_rss / mib,
            f"python {few} steps": few_py / mib, f"python {many} steps": many_py / mib,
            "two chunks of interpolated images": 2 * floor / mib,
            f"all {n * many} interpolated images": n * many * image / mib,
        },
        batch=n, chunk=method.batch_size,
        chunk_rule="batch_size rows per chunk; at most two chunks of interpolated images alive "
                   "(one running, the next being built on a worker thread); per image, only the "
                   "running sum of gradients is kept",
    )


if __name__ == "__main__":
    from run import main

    main(["--only", "attributions", *sys.argv[1:]])
