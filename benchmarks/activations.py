"""Activations time / plain forward time, batch of 32 at 180x180, on the current backend.

Both are measured in this one process, interleaved, after a warm-up (compilation is
excluded); the ratio of medians is printed. Target: <= 1.15.

    KERAS_BACKEND=jax python benchmarks/activations.py [--repeats 7] [--quick]
"""

from __future__ import annotations

import argparse

import keras  # noqa: I001  (after common, which quiets TensorFlow's start-up logs)
import numpy as np
from common import machine, median_times

import convviz
from convviz import models


def bench(model, batch, repeats):
    t = median_times(
        {
            "forward": lambda: model.predict_on_batch(batch),
            "activations": lambda: convviz.activations(model, batch),
        },
        repeats,
    )
    return t["forward"], t["activations"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="2 repeats, batch 4 (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.batch = 2, 4
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (args.batch, 180, 180, 3)).astype("float32")
    cases = {
        "small convnet": models.small_convnet(compile=False),
        "VGG16(weights=None)": keras.applications.VGG16(
            weights=None, include_top=False, input_shape=(180, 180, 3)
        ),
    }
    print(f"{machine()}; batch {args.batch} x 180x180x3, {args.repeats} repeats")
    print(f"{'model':<22}{'forward s':>11}{'activations s':>15}{'ratio':>8}")
    for name, model in cases.items():
        forward, acts = bench(model, batch, args.repeats)
        ratio = acts / forward
        assert np.isfinite(ratio)
        print(f"{name:<22}{forward:>11.3f}{acts:>15.3f}{ratio:>8.2f}")


if __name__ == "__main__":
    main()
