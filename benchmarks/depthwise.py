"""Where JAX loses on EfficientNet-Lite0's depthwise convolutions (issue 19), and what
convviz does about it. One depthwise layer of Lite0's shapes, its forward pass and the
gradient with respect to its input (what filter visualization's ascent needs), timed on
the current Keras backend as

- ``keras``: ``keras.layers.DepthwiseConv2D`` as Keras writes it (on JAX
  ``lax.conv_general_dilated`` with ``feature_group_count`` = channels, which XLA's CPU
  backend runs as a loop over the channels, each a one-wide contraction), traced with
  ``convviz._autodiff.JAX_DEPTHWISE_SLICES`` off;
- ``convviz``: the same layer through convviz's compiled programs as they run by default
  (on JAX traced as shifted slices, see ``_autodiff._jax_slices_depthwise``; elsewhere the
  same program as ``keras``);
- ``slices``: the same convolution written with ``keras.ops`` as the sum over the
  kernel's positions of the shifted input times that position's per-channel weights
  (9 or 25 multiply-adds that the compiler fuses into one elementwise loop);
- ``conv``: a dense ``Conv2D`` with as many input as output channels at the same
  spatial size, as a yardstick of what the CPU does with a convolution it is built for.

Then, on JAX, the whole EfficientNet-Lite0 (224 x 224, ImageNet weights): its forward
pass and the gradient of a class score with respect to the images, traced both ways,
and ``convviz.filters`` on ``block5c_expand_conv`` (one run each way: without the
slices it takes minutes).

Every form gives the same numbers (checked, float32 rounding). Prints a table of
milliseconds per call (median of interleaved repetitions) and the ratios.

    KERAS_BACKEND=jax python benchmarks/depthwise.py [--batch 8] [--repeats 5] [--lite0-only]
"""

import argparse
import contextlib
import os
import sys
import time

import keras
import numpy as np
from keras import ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from convviz import _autodiff  # noqa: E402

# Lite0's depthwise layers: (name, size, channels, kernel, stride).
LAYERS = [
    ("block2a_dwconv", 112, 96, 3, 2),
    ("block3a_dwconv", 56, 144, 5, 2),
    ("block4b_dwconv", 14, 480, 3, 1),
    ("block6b_dwconv", 7, 1152, 5, 1),
]


def slices_depthwise(x, kernel, stride: int):
    """``DepthwiseConv2D(padding="same")`` as shifted slices: the same numbers."""
    k = kernel.shape[0]
    size = x.shape[1]
    out = -(-size // stride)
    pad = max((out - 1) * stride + k - size, 0)
    x = ops.pad(x, [[0, 0], [pad // 2, pad - pad // 2], [pad // 2, pad - pad // 2], [0, 0]])
    total = None
    for i in range(k):
        for j in range(k):
            window = x[:, i : i + (out - 1) * stride + 1 : stride, j : j + (out - 1) * stride + 1 : stride, :]
            term = window * kernel[i, j, :, 0]
            total = term if total is None else total + term
    return total


def _model(kind: str, size: int, channels: int, k: int, stride: int, kernel: np.ndarray) -> keras.Model:
    inputs = keras.Input((size, size, channels))
    if kind == "keras":
        layer = keras.layers.DepthwiseConv2D(k, strides=stride, padding="same", use_bias=False)
        outputs = layer(inputs)
        layer.set_weights([kernel])
    elif kind == "slices":
        weights = ops.convert_to_tensor(kernel)
        outputs = keras.layers.Lambda(lambda x: slices_depthwise(x, weights, stride))(inputs)
    else:
        outputs = keras.layers.Conv2D(channels, k, strides=stride, padding="same", use_bias=False)(inputs)
    return keras.Model(inputs, outputs)


@contextlib.contextmanager
def _slices(on: bool):
    """Trace convviz's compiled programs with (True) or without JAX's depthwise slices.
    A program keeps what it was traced with: its first call must be inside the block."""
    before = _autodiff.JAX_DEPTHWISE_SLICES
    _autodiff.JAX_DEPTHWISE_SLICES = on
    try:
        yield
    finally:
        _autodiff.JAX_DEPTHWISE_SLICES = before


def _relative(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(a)))


def run(batch: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for name, size, channels, k, stride in LAYERS:
        x = rng.normal(size=(batch, size, size, channels)).astype("float32")
        kernel = (rng.normal(size=(k, k, channels, 1)) / k).astype("float32")
        models = {kind: _model(kind, size, channels, k, stride, kernel) for kind in ("keras", "slices", "conv")}
        models["convviz"] = models["keras"]
        forward, grads, results = {}, {}, {}
        for kind, m in models.items():
            forward[kind] = _autodiff.inference_function(m)
            # The ascent's step: the gradient of the output's sum with respect to the
            # input (the weights are constants, no kernel gradient).
            grads[kind] = _autodiff.gradient_step(m, lambda y: ops.sum(y))
            with _slices(kind != "keras"):  # traced here, on the first call
                results[kind] = (forward[kind](x)[0], np.asarray(grads[kind]([x])[1]))
        diff = max(
            _relative(results["keras"][i], results[kind][i]) for kind in ("slices", "convviz") for i in (0, 1)
        )
        calls = {f"{kind} forward": (lambda f=f, x=x: f(x)) for kind, f in forward.items()}
        calls |= {f"{kind} gradient": (lambda g=g, x=x: np.asarray(g([x])[1])) for kind, g in grads.items()}
        times = common.median_times(calls, repeats, warmup=1)
        row = {"layer": name, "shape": (batch, size, size, channels), "kernel": k, "stride": stride,
               "relative_diff": diff, "ms": {key: 1e3 * t for key, t in times.items()}}
        rows.append(row)
        print(f"{name:15s} {size:3d}x{size:<3d}x{channels:<5d} k{k} s{stride}: "
              + "  ".join(f"{key} {1e3 * t:8.1f} ms" for key, t in times.items())
              + f"  keras/convviz forward {times['keras forward'] / times['convviz forward']:5.2f}"
              + f" gradient {times['keras gradient'] / times['convviz gradient']:5.2f}"
              + f"  (diff {diff:.1e})")
    return rows


def run_lite0(batch: int, repeats: int) -> dict:
    """JAX: EfficientNet-Lite0 traced without and with the depthwise slices."""
    from convviz import efficientnet, filters

    model = efficientnet.efficientnet_lite0()
    x = np.random.default_rng(0).uniform(0, 255, size=(batch, 224, 224, 3)).astype("float32")
    calls, results = {}, {}
    for on, kind in ((False, "keras"), (True, "convviz")):
        forward = _autodiff.inference_function(model)
        grad = _autodiff.gradient_step(model, lambda y: ops.sum(y[:, 281]))  # a class logit
        with _slices(on):
            results[kind] = (forward(x)[0], np.asarray(grad([x])[1]))
        calls[f"{kind} forward"] = lambda f=forward: f(x)
        calls[f"{kind} gradient"] = lambda g=grad: np.asarray(g([x])[1])
    diff = {
        "forward": _relative(results["keras"][0], results["convviz"][0]),
        "gradient": _relative(results["keras"][1], results["convviz"][1]),
    }
    times = common.median_times(calls, repeats, warmup=0)
    print(f"EfficientNet-Lite0 224x224, batch {batch}: "
          + "  ".join(f"{key} {1e3 * t:8.1f} ms" for key, t in times.items())
          + f"  keras/convviz forward {times['keras forward'] / times['convviz forward']:5.2f}"
          + f" gradient {times['keras gradient'] / times['convviz gradient']:5.2f}"
          + f"  (diff forward {diff['forward']:.1e}, gradient {diff['gradient']:.1e})")
    # convviz.filters end to end: 16 filters, 10 steps, one run each way (compilation
    # included, as a user meets it), each on its own copy of the model (convviz keeps a
    # model's compiled steps).
    runs = {}
    for on, kind in ((False, "keras"), (True, "convviz")):
        fresh = efficientnet.efficientnet_lite0()
        with _slices(on):
            start = time.perf_counter()
            filters(fresh, "block5c_expand_conv", filters=range(16), steps=10, verbose=False)
            runs[kind] = time.perf_counter() - start
    print(f"convviz.filters, Lite0 block5c_expand_conv, 16 filters x 10 steps, one run: "
          f"without slices {runs['keras']:.1f} s, with {runs['convviz']:.1f} s "
          f"({runs['keras'] / runs['convviz']:.2f}x)")
    return {"ms": {key: 1e3 * t for key, t in times.items()}, "relative_diff": diff, "filters_s": runs}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lite0-only", action="store_true", help="only the whole-model part (JAX)")
    args = parser.parse_args(argv)
    print(f"depthwise convolutions, {keras.backend.backend()}, batch {args.batch}")
    rows = [] if args.lite0_only else run(args.batch, args.repeats)
    if keras.backend.backend() == "jax":
        rows.append(run_lite0(args.batch, args.repeats))
    return rows


if __name__ == "__main__":
    main()
