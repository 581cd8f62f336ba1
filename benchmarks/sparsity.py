"""Sparsity over a stream of images: time vs the forward pass, and peak memory vs size.

The stream is a generator of batches drawn from a small pool of random batches, so
producing it costs nothing and holds no more memory for 2,000 images than for 64.

- time: ``convviz.sparsity(model, stream)`` against ``model.predict_on_batch`` over
  the same stream, interleaved, medians. Target: <= 1.2x.
- memory: the peak while ``convviz.sparsity`` streams ``n_large`` images vs
  ``n_small`` images, after a warm-up: resident set size above its level before
  the call (sampled every 2 ms; covers the backend's buffers) and the peak of Python
  allocations (numpy included, ``tracemalloc``). Target: the RSS peak for the large
  stream <= 1.2x that for the small one.

    KERAS_BACKEND=tensorflow python benchmarks/sparsity.py [--quick]   # = run.py --only sparsity
"""

from __future__ import annotations

import gc

import common  # first: it quiets TensorFlow's start-up logs
from cases import images

import convviz

TARGET_TIME = 1.2
TARGET_MEMORY = 1.2
POOL = 4  # distinct batches the stream cycles through


class Stream:
    """``n`` images in batches of ``batch``, cycling through a pool of random batches."""

    def __init__(self, model, n, batch):
        self.pool = [images(model, batch, seed=k) for k in range(POOL)]
        self.n, self.batch = n, batch

    def __len__(self):
        return -(-self.n // self.batch)

    def __iter__(self):
        for k, start in enumerate(range(0, self.n, self.batch)):
            yield self.pool[k % POOL][: min(self.batch, self.n - start)]


def against_forward(model, stream, name: str, fn, repeats) -> tuple[dict, dict]:
    """(median times, every sample) of ``fn()`` and of ``model.predict_on_batch`` over
    the same ``stream``, interleaved; ``name`` names ``fn``'s times."""

    def forward():
        for b in stream:
            model.predict_on_batch(b)

    samples: dict = {}
    return common.median_times({"forward": forward, name: fn}, repeats, samples=samples), samples


def run_time(model, label, n, batch, repeats) -> list[dict]:
    stream = Stream(model, n, batch)
    t, samples = against_forward(
        model, stream, "sparsity", lambda: convviz.sparsity(model, stream, batch_size=batch, verbose=False), repeats
    )
    ratio = t["sparsity"] / t["forward"]
    return [
        common.record(
            "sparsity", label, t, {"sparsity/forward": ratio},
            [common.target(f"sparsity stream <= {TARGET_TIME}x forward", ratio, TARGET_TIME)],
            images=n, batch=batch, samples=samples,
        )
    ]


def run_memory(model, label, n_small, n_large, batch) -> list[dict]:
    if n_small % batch or n_large % batch:
        raise ValueError("Whole batches only: a last, smaller batch would compile a new shape.")
    # Warm-up (compilation, the allocator's first pools), so neither measurement pays it.
    convviz.sparsity(model, Stream(model, n_small, batch), batch_size=batch, verbose=False)

    def measure(n):
        stream = Stream(model, n, batch)
        gc.collect()
        table, rss, python = common.peak_memory(
            lambda: convviz.sparsity(model, stream, batch_size=batch, verbose=False)
        )
        assert table.images == n
        return rss, python

    small_rss, small_py = measure(n_small)
    large_rss, large_py = measure(n_large)
    # Compared with a floor of one batch of input images: below it, RSS noise
    # (allocator pages coming and going) would dominate the ratio.
    floor = images(model, batch).nbytes
    ratio = max(large_rss, floor) / max(small_rss, floor)
    mib = 2**20
    return [
        common.record(
            "sparsity memory", label,
            {},
            {f"peak RSS {n_large}/{n_small} images": ratio,
             f"peak Python {n_large}/{n_small} images": max(large_py, 1) / max(small_py, 1)},
            [common.target(f"sparsity peak memory {n_large} <= {TARGET_MEMORY}x {n_small} images",
                    ratio, TARGET_MEMORY)],
            memory_mib={
                f"rss {n_small}": small_rss / mib, f"rss {n_large}": large_rss / mib,
                f"python {n_small}": small_py / mib, f"python {n_large}": large_py / mib,
                "one input batch": floor / mib,
            },
            batch=batch,
        )
    ]


if __name__ == "__main__":
    import sys

    from run import main

    main(["--only", "sparsity", *sys.argv[1:]])
