"""The benchmark suite's quiet-machine protocol (benchmarks/common.py, benchmarks/report.py).

A fake load average stands in for the machine's: nothing real is timed, nothing waits.
"""

import os
import pathlib
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import common  # noqa: E402  (from benchmarks/, put on the path above)

CORES = 2
BUSY, QUIET = 3.5, 0.4


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """No Keras here: conftest's per-test Keras reset is not needed (nor its import)."""
    yield


@pytest.fixture(autouse=True)
def machine(monkeypatch):
    """Two cores; no pause between attempts; no load readings left over from elsewhere."""
    monkeypatch.setattr(os, "cpu_count", lambda: CORES)
    monkeypatch.setattr(common, "LOAD_PAUSE", 0.0)
    common.take_loads()
    yield
    common.take_loads()


def fake_loads(monkeypatch, *readings):
    """Make load_average() return these 1-minute loads in turn, then quiet ones."""
    queue = list(readings)
    monkeypatch.setattr(
        common, "load_average", lambda: [queue.pop(0) if queue else QUIET, 1.0, 1.0]
    )
    return queue


def counting(calls):
    return {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}


def test_a_loaded_round_is_timed_again(monkeypatch):
    # Round 1: loaded before, then quiet on the retry; rounds 2 and 3 quiet.
    fake_loads(monkeypatch, BUSY, BUSY, QUIET, QUIET)
    calls, samples, loads = [], {}, []
    result = common.median_times(counting(calls), 3, warmup=1, samples=samples, retries=3,
                                 loads=loads)
    assert calls == ["a", "b"] + ["a", "b"] * 4  # warm-up, round 1 twice, rounds 2 and 3
    assert set(result) == {"a", "b"} and all(len(v) == 3 for v in samples.values())
    assert loads[0]["seen"] == [[BUSY, BUSY], [QUIET, QUIET]] and not loads[0]["under_load"]
    assert [len(r["seen"]) for r in loads] == [2, 1, 1]
    rec = common.record("demo", "model", result, {})
    assert rec["under_load"] is False
    assert rec["load"]["repeated"] == 1 and rec["load"]["loaded"] == 0
    assert rec["load"]["cores"] == CORES and rec["load"]["seen"][:2] == [[BUSY, BUSY], [QUIET, QUIET]]


def test_the_load_after_the_round_counts_too(monkeypatch):
    fake_loads(monkeypatch, QUIET, BUSY)  # quiet before, loaded after: timed again
    calls = []
    common.median_times(counting(calls), 1, warmup=0, retries=1)
    assert calls == ["a", "b", "a", "b"]
    assert common.take_loads()["seen"] == [[QUIET, BUSY], [QUIET, QUIET]]


def test_retries_are_bounded_and_a_busy_machine_is_flagged(monkeypatch):
    fake_loads(monkeypatch, *[BUSY] * 100)
    sleeps = []
    monkeypatch.setattr(common.time, "sleep", sleeps.append)
    calls = []
    common.median_times(counting(calls), 3, warmup=0, retries=3, pause=5.0)
    # Round 1: 1 + 3 attempts, all loaded; the machine is busy for good, so rounds 2
    # and 3 are timed once each.
    assert len(calls) == 2 * (4 + 2)
    assert sleeps == [5.0] * 3
    rec = common.record("demo", "model", {"a": 1.0}, {})
    assert rec["under_load"] is True
    assert rec["load"]["repeated"] == 3 and rec["load"]["loaded"] == 3
    assert rec["load"]["retries"] == 3 and rec["load"]["pause"] == 5.0


def test_when_imported_loaded_rounds_are_only_flagged(monkeypatch):
    # The defaults when common is imported (the tests): no retries, the call order kept.
    assert common.LOAD_RETRIES == 0 and not common._run_as_script()
    fake_loads(monkeypatch, *[BUSY] * 100)
    calls = []
    common.median_times(counting(calls), 3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert common.record("demo", "model", {}, {})["under_load"] is True


def test_retries_are_on_when_the_suite_runs_as_a_program(monkeypatch):
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(BENCHMARKS / "run.py"), raising=False)
    assert common._run_as_script()
    monkeypatch.setattr(sys.modules["__main__"], "__file__", "/elsewhere/run.py", raising=False)
    assert not common._run_as_script()


def test_a_record_takes_the_loads_of_its_own_measurements(monkeypatch):
    fake_loads(monkeypatch)  # quiet
    common.median_times({"a": lambda: None}, 2, warmup=0)
    common.median_times({"b": lambda: None}, 3, warmup=0)
    first = common.record("two calls", "model", {}, {})
    assert len(first["load"]["seen"]) == 5 and first["under_load"] is False
    memory = common.record("memory", "model", {}, {})  # nothing timed since
    assert "load" not in memory and "under_load" not in memory


def _payload(records):
    machine = {"cpu": "Test CPU", "virtual": True, "cores": CORES, "ram_gib": 8.0, "os": "Linux",
               "python": "3.11", "backend": "x", "versions": {"keras": "3.12"},
               "date": "2026-01-01T00:00:00+00:00", "load_average": [1.0, 1.0, 1.0]}
    return {"quick": False, "machine": machine, "load_average_end": [1.0] * 3, "wall_seconds": 60.0,
            "results": records}


def _measured(monkeypatch, value, *readings):
    fake_loads(monkeypatch, *readings)
    t = common.median_times({"forward": lambda: None, "activations": lambda: None}, 1, warmup=0,
                            retries=1)
    return common.record("activations", "small convnet 180", {"forward": 0.1, "activations": 0.1 * value},
                         {"activations/forward": value},
                         [common.target("activations <= 1.15x forward", value, 1.15)],
                         medians=t)


def test_report_marks_numbers_measured_under_load(monkeypatch):
    import report

    loaded = _measured(monkeypatch, 1.40, *[BUSY] * 4)  # loaded, and loaded again on the retry
    quiet = _measured(monkeypatch, 1.05, BUSY, BUSY)  # loaded, then quiet on the retry
    assert loaded["under_load"] and not quiet["under_load"]
    page = report.page({"tensorflow": _payload([quiet]), "jax": _payload([loaded])}, "")
    targets = page.split("Targets\n")[1].split("Median times\n")[0]
    assert "1.05 ✓\n" in targets and f"1.40 ✗ missed {report.LOADED}\n" in targets
    note = "measured while the load average exceeded the core count"
    assert f"{report.LOADED} {note}, even after the rounds under load were timed again." in targets
    times = page.split("Median times\n")[1].split("Reproduce\n")[0]
    assert "activations 140 ms †" in times and "activations 105 ms\n" in times
    assert note in times
    assert "timed again (after 0 s, up to 1 time)" in page.split("Machine\n")[0]


def test_report_renders_records_from_before_the_protocol(monkeypatch):
    import report

    old = common.record("activations", "small convnet 180", {"forward": 0.1}, {"activations/forward": 1.4},
                        [common.target("activations <= 1.15x forward", 1.4, 1.15)])
    assert "load" not in old
    page = report.page({"tensorflow": _payload([old])}, "")
    assert "1.40 ✗ missed\n" in page and report.LOADED not in page
    assert "load average is read before and after" not in page
