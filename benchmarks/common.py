"""Shared by the benchmark scripts: timing (one process, warm-up excluded, medians),
peak-memory sampling, the machine description and the result records.

Every benchmark returns :func:`record` dicts; ``run.py`` prints them as one table and
writes them to JSON, ``report.py`` turns the JSON of several backends into the docs'
Performance page.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import threading
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_times(fns: dict, repeats: int, warmup: int = 1, samples: dict | None = None) -> dict:
    """Median wall time of each callable, in seconds.

    The calls are interleaved (a, b, c, a, b, c, ...) so that a change in the machine's
    load during the run hits every callable alike and the ratios stay meaningful.
    ``warmup`` untimed rounds first (compilation, allocator growth). If ``samples`` is
    a dict, every timing is stored in it under the callable's name.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    if samples is not None:
        samples.update(times)
    return {name: statistics.median(t) for name, t in times.items()}


def _rss() -> int:
    """Resident set size of this process in bytes."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:  # Linux without psutil: statm's second field is resident pages
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_free_memory() -> None:
    """Hand the C allocator's free pages back to the system (glibc's ``malloc_trim``).

    Otherwise memory freed earlier stays resident, a new allocation reuses it, and the
    resident set does not grow: the peak would miss it. Elsewhere this does nothing.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory(fn, interval: float = 0.002):
    """Run ``fn()``; return ``(result, rss_peak_bytes, python_peak_bytes)``.

    ``rss_peak_bytes``: the highest resident set size seen while ``fn`` ran (sampled
    every ``interval`` seconds by a thread, and once at the end) minus the size before
    it started; it covers the backends' own buffers. ``python_peak_bytes``: the peak
    of memory allocated through Python's allocator (numpy arrays included) during
    the call, from ``tracemalloc``.
    """
    _release_free_memory()
    base = _rss()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    tracemalloc.start()
    thread.start()
    try:
        result = fn()
    finally:
        done.set()
        thread.join()
        _, python_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    peak[0] = max(peak[0], _rss())
    return result, peak[0] - base, python_peak


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _virtual() -> bool:
    """True on a virtual machine (the CPU flags say so on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " hypervisor" in line for line in f)
    except OSError:
        return False


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (None where the OS has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _version(module: str) -> str | None:
    from importlib import metadata

    for dist in {"tensorflow": ("tensorflow", "tensorflow-cpu")}.get(module, (module,)):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def machine_info() -> dict:
    """What the numbers were measured on: CPU, cores, RAM, load, backend and versions."""
    import keras

    backend = keras.backend.backend()
    ram = _ram_bytes()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "virtual": _virtual(),
        "ram_gib": round(ram / 2**30, 1) if ram else None,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "backend": backend,
        "versions": {
            name: version
            for name in ("keras", "numpy", "tensorflow", "jax", "jaxlib", "torch")
            if (version := _version(name)) is not None
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_average": load_average(),
    }


def machine() -> str:
    """One line: backend, CPU count, 1-minute load."""
    import keras

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs, load {load:.1f}"


def target(name: str, value: float, limit: float, op: str = "<=") -> dict:
    """A target check: ``value op limit`` with ``op`` one of ``<=`` or ``>=``."""
    met = value <= limit if op == "<=" else value >= limit
    return {"name": name, "value": value, "limit": limit, "op": op, "met": bool(met)}


def record(benchmark: str, model: str, times: dict, ratios: dict, targets=(), **extra) -> dict:
    """One benchmark result: median ``times`` (seconds), ``ratios``, ``targets``, extras."""
    return {
        "benchmark": benchmark,
        "model": model,
        "times": times,
        "ratios": ratios,
        "targets": list(targets),
        "load_average": load_average(),
        **extra,
    }


def finite_numbers(value) -> bool:
    """True if every number inside ``value`` (dicts, lists, scalars) is finite."""
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(finite_numbers(v) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    return math.isfinite(float(value))
