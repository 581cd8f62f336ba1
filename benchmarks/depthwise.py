"""Where JAX loses on EfficientNet-Lite0's depthwise convolutions (issue 19): one
depthwise layer of Lite0's shapes, its forward pass and the gradient with respect to its
input (what filter visualization's ascent needs), timed on the current Keras backend as

- ``keras``: ``keras.layers.DepthwiseConv2D`` (on JAX ``lax.conv_general_dilated`` with
  ``feature_group_count`` = channels, which XLA's CPU backend runs as a loop over the
  channels, each a one-wide contraction);
- ``slices``: the same convolution written as the sum over the kernel's positions of
  the shifted input times that position's per-channel weights (``keras.ops`` only: 9 or
  25 multiply-adds that the compiler fuses into one elementwise loop);
- ``conv``: a dense ``Conv2D`` with as many input as output channels at the same
  spatial size, as a yardstick of what the CPU does with a convolution it is built for.

Both depthwise forms give the same numbers (checked, float32 rounding). Prints a table
of milliseconds per call (median of interleaved repetitions) and the ratios.

    KERAS_BACKEND=jax python benchmarks/depthwise.py [--batch 8] [--repeats 5]
"""

import argparse
import os
import sys

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


def run(batch: int, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for name, size, channels, k, stride in LAYERS:
        x = rng.normal(size=(batch, size, size, channels)).astype("float32")
        kernel = (rng.normal(size=(k, k, channels, 1)) / k).astype("float32")
        models = {kind: _model(kind, size, channels, k, stride, kernel) for kind in ("keras", "slices", "conv")}
        forward = {kind: _autodiff.inference_function(m) for kind, m in models.items()}
        # The ascent's step: the gradient of the output's sum with respect to the input
        # (the weights are constants, no kernel gradient).
        grads = {kind: _autodiff.gradient_step(m, lambda y: ops.sum(y)) for kind, m in models.items()}
        (a,), (b,) = forward["keras"](x), forward["slices"](x)
        diff = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
        ga = np.asarray(grads["keras"]([x])[1])
        gb = np.asarray(grads["slices"]([x])[1])
        diff = max(diff, float(np.max(np.abs(ga - gb)) / np.max(np.abs(ga))))
        calls = {f"{kind} forward": (lambda f=f, x=x: f(x)) for kind, f in forward.items()}
        calls |= {f"{kind} gradient": (lambda g=g, x=x: np.asarray(g([x])[1])) for kind, g in grads.items()}
        times = common.median_times(calls, repeats, warmup=1)
        row = {"layer": name, "shape": (batch, size, size, channels), "kernel": k, "stride": stride,
               "relative_diff": diff, "ms": {key: 1e3 * t for key, t in times.items()}}
        rows.append(row)
        print(f"{name:15s} {size:3d}x{size:<3d}x{channels:<5d} k{k} s{stride}: "
              + "  ".join(f"{key} {1e3 * t:8.1f} ms" for key, t in times.items())
              + f"  keras/slices forward {times['keras forward'] / times['slices forward']:5.2f}"
              + f" gradient {times['keras gradient'] / times['slices gradient']:5.2f}"
              + f"  (diff {diff:.1e})")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"depthwise convolutions, {keras.backend.backend()}, batch {args.batch}")
    return run(args.batch, args.repeats)


if __name__ == "__main__":
    main()
