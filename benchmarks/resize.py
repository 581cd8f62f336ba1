"""Input preparation's resize on 2,000 images (issue 19): convviz's
``_inputs._resize`` against resizing each channel of each image with its own PIL call
(what it did before it stacked small planes) and against ``keras.ops.image.resize``
with antialiasing (batched, on the current backend), in chunks of 32 images as a
dataset run reads them. Each row: the median time for all 2,000 images, the ratio to
the per-plane loop, and the largest difference from it in units of 1/255 of the
pixel range.

    KERAS_BACKEND=tensorflow python benchmarks/resize.py [--images 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from convviz import _inputs  # noqa: E402

CASES = [  # (what, source (h, w), target (h, w))
    ("small images, CIFAR-sized, up to the small convnet's 90", (32, 32), (90, 90)),
    ("thumbnails down to 64", (128, 128), (64, 64)),
    ("photos (Kaggle cats vs dogs' typical 375 x 500) down to 180", (375, 500), (180, 180)),
]
CHUNK = 32


def keras_resize(batch: np.ndarray, size) -> np.ndarray:
    return keras.ops.convert_to_numpy(
        keras.ops.image.resize(batch, size, interpolation="bilinear", antialias=True))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"resize of {args.images} images in chunks of {CHUNK}, {keras.backend.backend()}, "
          f"median of {args.repeats}")
    rows = []
    for what, source, target in CASES:
        # 200 distinct images, cycled: the same work as 2,000 different ones.
        pool = rng.uniform(0, 255, size=(200, *source, 3)).astype(np.float32)
        chunks = [pool[np.arange(s, s + CHUNK) % len(pool)] for s in range(0, args.images, CHUNK)]
        chunks[-1] = chunks[-1][: args.images - CHUNK * (len(chunks) - 1)]

        def over(fn, chunks=chunks, target=target):
            return lambda: [fn(c, target) for c in chunks]

        calls = {"per-plane PIL": over(_inputs._resize_per_plane), "convviz": over(_inputs._resize),
                 "keras.ops.image.resize": over(keras_resize)}
        reference = _inputs._resize_per_plane(chunks[0], target)
        diffs = {name: float(np.max(np.abs(fn(chunks[0], target) - reference)))
                 for name, fn in (("convviz", _inputs._resize), ("keras.ops.image.resize", keras_resize))}
        times = common.median_times(calls, args.repeats, warmup=1)
        print(f"\n{what}: {source[0]} x {source[1]} -> {target[0]} x {target[1]}")
        for name, t in times.items():
            gain = times["per-plane PIL"] / t
            diff = diffs.get(name, 0.0)
            print(f"  {name:<24} {t:7.2f} s  {gain:5.2f}x the per-plane loop  max diff {diff:.3g} (x 1/255)")
        rows.append({"case": what, "source": source, "target": target, "times": times, "max_diff": diffs})
    return rows


if __name__ == "__main__":
    main()
