"""Timing helpers shared by the benchmark scripts: one process, warm-up excluded, medians."""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_times(fns: dict, repeats: int, warmup: int = 1) -> dict:
    """Median wall time of each callable; calls interleaved so drift hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def machine() -> str:
    import keras

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs, load {load:.1f}"
