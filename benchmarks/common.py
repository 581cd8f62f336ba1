"""Shared by the benchmark scripts: timing (one process, warm-up excluded, medians),
peak-memory sampling, the machine description and the result records.

Every benchmark returns :func:`record` dicts; ``run.py`` prints them as one table and
writes them to JSON, ``report.py`` turns the JSON of several backends into the docs'
Performance page.

The quiet-machine protocol: :func:`median_times` reads the 1-minute load average
before and after every timed round; a round whose load exceeded the core count is
timed again (at most :data:`LOAD_RETRIES` more times, after :data:`LOAD_PAUSE`
seconds each), and :func:`record` keeps the loads seen and flags ``under_load`` when a
round kept in the medians was still measured under load. ``report.py`` marks those
numbers.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import sys
import threading
import time
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _run_as_script() -> bool:
    """True when the benchmarks run as a program (``python benchmarks/run.py``, or one
    benchmark's own script), False when this module is imported elsewhere (the tests)."""
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return bool(main) and os.path.dirname(os.path.abspath(main)) == os.path.dirname(
        os.path.abspath(__file__)
    )


#: How many more times a round measured under load is timed, at most. On when the suite
#: runs as a program; off (0) when imported, e.g. by the tests, which time trivial
#: callables and check the exact order of the calls (set it, or pass ``retries``).
LOAD_RETRIES = 3 if _run_as_script() else 0
#: Seconds to wait before timing a loaded round again: the kernel refreshes the load
#: average every 5 seconds, so an earlier look would read the same number.
LOAD_PAUSE = 5.0

# Load readings of the rounds timed since the last record(), which takes them: the
# benchmarks call median_times() and then record(), so every record carries the loads
# of its own measurements without passing them along.
_pending_rounds: list[dict] = []


def _one_minute_load() -> float | None:
    load = load_average()
    return None if load is None else load[0]


def _loaded(before: float | None, after: float | None, cores: int) -> bool:
    """True if the 1-minute load before or after a round exceeded the core count."""
    return any(x is not None and x > cores for x in (before, after))


def median_times(
    fns: dict,
    repeats: int,
    warmup: int = 1,
    samples: dict | None = None,
    *,
    retries: int | None = None,
    pause: float | None = None,
    loads: list | None = None,
) -> dict:
    """Median wall time of each callable, in seconds.

    The calls are interleaved (a, b, c, a, b, c, ...) so that a change in the machine's
    load during the run hits every callable alike and the ratios stay meaningful.
    ``warmup`` untimed rounds first (compilation, allocator growth). If ``samples`` is
    a dict, every timing is stored in it under the callable's name.

    Each timed round (one call of every callable) is bracketed by two readings of the
    1-minute load average. When either exceeds the core count (``os.cpu_count()``),
    the round is timed again, after ``pause`` seconds, at most ``retries`` more times;
    the last attempt's times are kept. Once a round has used up its retries the machine
    is busy for good, and the remaining rounds of this call are not retried. The load
    average is slow (an exponential average over about a minute), so a flag means the
    machine was busy around the measurement, not that this very round was slowed.

    Parameters
    ----------
    fns : dict
        name -> callable without arguments.
    repeats : int
        Timed rounds kept; the median is over them.
    warmup : int, default 1
        Untimed calls of each callable first.
    samples : dict, optional
        Receives name -> list of the kept times.
    retries : int, optional
        Extra attempts for a loaded round; default :data:`LOAD_RETRIES`.
    pause : float, optional
        Seconds before each extra attempt; default :data:`LOAD_PAUSE`.
    loads : list, optional
        Receives one dict per kept round: ``seen`` (the ``[before, after]`` readings of
        every attempt, the kept one last), ``under_load`` (the kept attempt was loaded),
        ``cores``, ``retries`` and ``pause``. The same dicts go to the next :func:`record`.

    Returns
    -------
    dict
        name -> median time in seconds.

    Examples
    --------
    >>> calls = []
    >>> t = median_times({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
    ...                  2, warmup=1, retries=0)
    >>> calls
    ['a', 'b', 'a', 'b', 'a', 'b']
    >>> sorted(t)
    ['a', 'b']
    """
    retries = LOAD_RETRIES if retries is None else retries
    pause = LOAD_PAUSE if pause is None else pause
    cores = os.cpu_count() or 1
    protocol = {"cores": cores, "retries": retries, "pause": pause}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    rounds = []
    for _ in range(repeats):
        seen = []
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(pause)
            before = _one_minute_load()
            timed = {}
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                timed[name] = time.perf_counter() - start
            after = _one_minute_load()
            seen.append([before, after])
            if not _loaded(before, after, cores):
                break
        loaded = _loaded(before, after, cores)
        if loaded:
            retries = 0  # busy for good: the next rounds are not retried
        for name, t in timed.items():
            times[name].append(t)
        rounds.append({"seen": seen, "under_load": loaded, **protocol})
    _pending_rounds.extend(rounds)
    if loads is not None:
        loads.extend(rounds)
    if samples is not None:
        samples.update(times)
    return {name: statistics.median(t) for name, t in times.items()}


def take_loads() -> dict | None:
    """The load readings of the rounds timed since the last call, summed up (or None).

    ``seen``: every ``[before, after]`` reading, retried attempts included, in order;
    ``repeated``: attempts discarded because the load exceeded ``cores``; ``loaded``:
    rounds kept in the medians that were measured under load; ``retries`` and ``pause``:
    the protocol's settings (the largest). :func:`record` calls it.

    Examples
    --------
    >>> _ = take_loads()  # forget earlier rounds
    >>> _ = median_times({"a": lambda: None}, 2, retries=0)
    >>> summary = take_loads()
    >>> len(summary["seen"]), summary["repeated"]
    (2, 0)
    >>> take_loads() is None
    True
    """
    if not _pending_rounds:
        return None
    rounds = list(_pending_rounds)
    _pending_rounds.clear()
    return {
        "cores": rounds[0]["cores"],
        "retries": max(r["retries"] for r in rounds),
        "pause": max(r["pause"] for r in rounds),
        "seen": [pair for r in rounds for pair in r["seen"]],
        "repeated": sum(len(r["seen"]) - 1 for r in rounds),
        "loaded": sum(r["under_load"] for r in rounds),
    }


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
    """One benchmark result: median ``times`` (seconds), ``ratios``, ``targets``, extras.

    It carries the load readings of the rounds timed since the previous record (see
    :func:`take_loads`) as ``load``, and ``under_load``: True when some round kept in
    the medians was measured while the load average exceeded the core count, even
    after its retries. A record without timed rounds (memory) has neither key.
    """
    rec = {
        "benchmark": benchmark,
        "model": model,
        "times": times,
        "ratios": ratios,
        "targets": list(targets),
        "load_average": load_average(),
    }
    load = take_loads()
    if load is not None:
        rec["load"] = load
        rec["under_load"] = load["loaded"] > 0
    return {**rec, **extra}


def finite_numbers(value) -> bool:
    """True if every number inside ``value`` (dicts, lists, scalars) is finite."""
    if isinstance(value, dict):
        return all(finite_numbers(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(finite_numbers(v) for v in value)
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    return math.isfinite(float(value))
