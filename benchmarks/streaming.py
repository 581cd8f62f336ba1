"""Grad-CAM over a whole dataset, streamed to disk (``convviz.explain_dataset``).

- time: Grad-CAM of ``n`` images at 180 x 180 through the small convnet, each batch's
  maps written to zarr and its rows to Parquet, against ``model.predict_on_batch`` over
  the same stream, interleaved, medians. Target: <= 1.3x.
- memory: the peak RSS while 2,000 images are explained vs 64 (``common.peak_memory``,
  after a warm-up). Target: <= 1.2x.
- devices (JAX only): the same run with a ``keras.distribution.DataParallel`` over two
  virtual CPU devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``) vs one
  device, in one child process, interleaved. On a 2-core machine the two devices
  share the same cores: the ratio shows the cost of sharding, not a speed-up.

The stream cycles through a small pool of random batches (as ``sparsity.py``'s), so
producing it costs nothing and holds no more memory for 2,000 images than for 64.

    KERAS_BACKEND=tensorflow python benchmarks/streaming.py [--quick]   # = run.py --only streaming
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile

import common  # first: it quiets TensorFlow's start-up logs
import keras
from sparsity import Stream, against_forward

import convviz

TARGET_TIME = 1.3
TARGET_MEMORY = 1.2


def _explain(model, stream, batch):
    out = tempfile.mkdtemp(prefix="convviz_bench_")
    try:
        run = convviz.explain_dataset(model, stream, out=out, batch_size=batch, verbose=False)
        assert len(run) == stream.n
        return run
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run_time(model, label, n, batch, repeats) -> list[dict]:
    stream = Stream(model, n, batch)
    t, samples = against_forward(model, stream, "explain_dataset", lambda: _explain(model, stream, batch), repeats)
    ratio = t["explain_dataset"] / t["forward"]
    return [
        common.record(
            "explain_dataset", label, t,
            {"explain_dataset/forward": ratio, "images/s": n / t["explain_dataset"],
             "forward images/s": n / t["forward"]},
            [common.target(f"Grad-CAM streamed to disk <= {TARGET_TIME}x forward", ratio, TARGET_TIME)],
            images=n, batch=batch, samples=samples,
        )
    ]


def run_memory(model, label, n_small, n_large, batch) -> list[dict]:
    # Warm-up (compilation, the allocator's first pools) with the large stream's last,
    # shorter batch too, so neither measurement pays for compiling a shape.
    _explain(model, Stream(model, n_small + n_large % batch, batch), batch)

    def measure(n):
        stream = Stream(model, n, batch)
        gc.collect()
        _, rss, python = common.peak_memory(lambda: _explain(model, stream, batch))
        return rss, python

    small_rss, small_py = measure(n_small)
    large_rss, large_py = measure(n_large)
    floor = stream_bytes = Stream(model, batch, batch).pool[0].nbytes  # one input batch: below it, RSS noise
    ratio = max(large_rss, floor) / max(small_rss, floor)
    mib = 2**20
    return [
        common.record(
            "explain_dataset memory", label, {},
            {f"peak RSS {n_large}/{n_small} images": ratio,
             f"peak Python {n_large}/{n_small} images": max(large_py, 1) / max(small_py, 1)},
            [common.target(f"explain_dataset peak memory {n_large} <= {TARGET_MEMORY}x {n_small} images",
                           ratio, TARGET_MEMORY)],
            memory_mib={f"rss {n_small}": small_rss / mib, f"rss {n_large}": large_rss / mib,
                        f"python {n_small}": small_py / mib, f"python {n_large}": large_py / mib,
                        "one input batch": stream_bytes / mib},
            batch=batch,
        )
    ]


_CHILD = """
import json, sys
sys.path.insert(0, {here!r})
import common, keras, convviz, cases
from streaming import Stream, _explain
model, label = cases.build("small", {quick!r})
stream = Stream(model, {n}, {batch})
mesh = keras.distribution.DataParallel(devices=keras.distribution.list_devices("cpu"))

def one():
    keras.distribution.set_distribution(None)
    _explain(model, stream, {batch})

def two():
    keras.distribution.set_distribution(mesh)
    try:
        _explain(model, stream, {batch})
    finally:
        keras.distribution.set_distribution(None)

t = common.median_times({{"one device": one, "two devices": two}}, {repeats})
print("RESULT", json.dumps({{"times": t, "label": label, "devices": len(mesh.device_mesh.devices.flat)}}))
"""


def run_devices(n, batch, repeats, quick) -> list[dict]:
    """JAX: two virtual devices vs one, measured in a child process (XLA reads the
    device count once, at start-up)."""
    if keras.backend.backend() != "jax":
        return []
    here = os.path.dirname(os.path.abspath(__file__))
    code = _CHILD.format(here=here, quick=quick, n=n, batch=batch, repeats=repeats)
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"The two-device run failed:\n{done.stderr[-3000:]}")
    got = json.loads(line[len("RESULT "):])
    t = got["times"]
    return [
        common.record(
            "explain_dataset devices", got["label"], t,
            {"two devices/one device": t["two devices"] / t["one device"]},
            images=n, batch=batch, devices=got["devices"],
            note="two virtual CPU devices on the same 2 cores: the cost of sharding, not a speed-up",
        )
    ]


if __name__ == "__main__":
    from run import main

    main(["--only", "streaming", *sys.argv[1:]])
