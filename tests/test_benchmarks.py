"""The benchmark suite (benchmarks/run.py) in quick mode, and its helpers.

CI checks only that every benchmark ran and produced finite numbers: timings on
shared CI machines are too noisy for thresholds.
"""

import json
import math
import pathlib
import sys
import time

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import common  # noqa: E402  (from benchmarks/, put on the path above)
import run  # noqa: E402

# The whole quick suite runs in the TensorFlow session; the JAX and PyTorch sessions run
# the benchmarks with rows only they have (CI time: the whole suite took 2.6 minutes on
# JAX and 3.3 on PyTorch, where convviz's own paths are tested by the rest of the suite).
QUICK_ONLY = {"tensorflow": run.BENCHMARKS, "jax": ("streaming",), "torch": ("cams", "attributions", "metrics")}


@pytest.mark.slow
def test_quick_suite_runs_every_benchmark_with_finite_numbers(tmp_path, capsys):
    import keras

    only = QUICK_ONLY.get(keras.backend.backend(), run.BENCHMARKS)
    payload = run.main(["--quick", "--json", str(tmp_path / "quick.json"), "--only", *only])
    records = payload["results"]
    extra = {"sparsity memory", "cams gradient", "cams gradient-free", "attributions ig", "attributions occlusion"}
    if any(r["benchmark"] == "cams vs pytorch-grad-cam" for r in records):  # torch, peers installed
        extra.add("cams vs pytorch-grad-cam")
        peers = [r for r in records if r["benchmark"] == "cams vs pytorch-grad-cam"]
        assert len(peers) == 3 and all(r["max_abs_diff"] < 2e-2 for r in peers), peers
    if any(r["benchmark"] == "attributions vs captum" for r in records):  # torch, captum installed
        extra.add("attributions vs captum")
        peers = [r for r in records if r["benchmark"] == "attributions vs captum"]
        assert len(peers) == 2 and all(r["max_relative_l2"] < 2e-2 for r in peers), peers
    extra |= {"metrics deletion", "metrics mufidelity", "feature vis fft", "feature vis maco"}
    if any(r["benchmark"] == "metrics vs torchcam" for r in records):  # torch, torchcam installed
        extra.add("metrics vs torchcam")
        (peer,) = [r for r in records if r["benchmark"] == "metrics vs torchcam"]
        assert peer["max_auc_diff"] < 1e-2 and peer["max_auc_diff_own_maps"] < 1e-2, peer
        assert peer["max_map_diff"] < 1e-3, peer
    extra |= {"explain_dataset", "explain_dataset memory"}
    # JAX: two virtual devices vs one, a ratio reported without a target (on a CPU the
    # devices share the cores: it shows the cost of sharding).
    untargeted = {"explain_dataset devices"} if payload["backend"] == "jax" else set()
    named = {"cams", "attributions", "metrics", "feature_vis", "streaming"}
    expected = set(run.BENCHMARKS) - named | extra | untargeted
    assert {r["benchmark"] for r in records} == {name for name in expected if _suite_of(name) in only}
    for r in records:
        assert r["ratios"], r["benchmark"]
        assert r["targets"] or r["benchmark"] in untargeted, r["benchmark"]
        numbers = [*r["times"].values(), *r["ratios"].values(), *(t["value"] for t in r["targets"])]
        assert all(math.isfinite(x) for x in numbers), r
        assert all(x > 0 for x in numbers), r
    for r in records:
        if r["benchmark"] == "gradcam":  # convviz and the textbook loop explain the same class
            assert r["max_abs_diff"] < 1e-3
        if r["benchmark"] == "filters":
            assert r["rel_diff_vs_textbook"] < 1e-2
    written = json.loads((tmp_path / "quick.json").read_text())
    assert written["machine"]["cores"] >= 1 and written["machine"]["backend"] == payload["backend"]
    assert len(written["results"]) == len(records)
    out = capsys.readouterr().out
    assert all(t["name"] in out for r in records for t in r["targets"])


def _suite_of(record: str) -> str:
    """The benchmarks/run.py benchmark a record comes from: "feature vis fft" from
    feature_vis, "explain_dataset memory" from streaming, "cams gradient" from cams."""
    first = record.split(" ")[0]
    return {"feature": "feature_vis", "explain_dataset": "streaming"}.get(first, first)


def test_median_times_interleaves_and_skips_warmup():
    calls = []
    samples = {}
    result = common.median_times(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=2,
        samples=samples,
    )
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert set(result) == {"a", "b"} and all(len(v) == 3 for v in samples.values())
    assert result["a"] == sorted(samples["a"])[1]


def test_peak_memory_sees_a_large_numpy_allocation():
    size = 64 * 2**20

    def allocate():
        x = np.ones(size, np.uint8)  # touched, so resident
        time.sleep(0.05)  # held while the sampler thread gets the GIL
        return int(x[::4096].sum())

    result, rss, python = common.peak_memory(allocate)
    assert result == size // 4096
    assert python >= size
    assert rss >= size * 0.9


def test_target_and_finite_numbers():
    assert common.target("t", 1.1, 1.15)["met"] and not common.target("t", 1.2, 1.15)["met"]
    assert common.target("t", 5.0, 4.0, ">=")["met"] and not common.target("t", 3.0, 4.0, ">=")["met"]
    assert common.finite_numbers({"a": [1.0, 2], "b": {"c": "text", "d": None}})
    assert not common.finite_numbers({"a": [1.0, float("nan")]})
    assert not common.finite_numbers({"a": {"b": float("inf")}})


def test_table_marks_missed_targets():
    rec = common.record(
        "demo", "model", {"forward": 0.5}, {"x/forward": 2.0},
        [common.target("x <= 1.2x forward", 2.0, 1.2), common.target("y >= 4x", 5.0, 4.0, ">=")],
    )
    lines = run.table([rec]).splitlines()
    assert "NO" in lines[2] and lines[2].rstrip().endswith("NO")
    assert lines[3].rstrip().endswith("yes")


def test_report_writes_the_page_and_chart_from_full_results_only(tmp_path):
    import report

    results = tmp_path / "results"
    results.mkdir()

    def payload(backend, quick, value):
        rec = common.record(
            "activations", "small convnet 180", {"forward": 0.1, "activations": 0.1 * value},
            {"activations/forward": value}, [common.target("activations <= 1.15x forward", value, 1.15)],
        )
        machine = {**common.machine_info(), "backend": backend}
        return {"backend": backend, "quick": quick, "machine": machine, "load_average_end": [1.0] * 3,
                "wall_seconds": 60.0, "results": [rec]}

    (results / "tensorflow.json").write_text(json.dumps(payload("tensorflow", False, 1.05)))
    (results / "jax.json").write_text(json.dumps(payload("jax", False, 1.40)))
    (results / "torch.json").write_text(json.dumps(payload("torch", True, 9.99)))  # quick: ignored
    (results / "notes.rst").write_text("The misses, explained.\n")
    page = report.main(["--results", str(results), "--docs", str(tmp_path / "docs")]).read_text()
    assert "1.05 ✓" in page and "1.40 ✗ missed" in page and "9.99" not in page
    assert "PyTorch" not in page.split("Machine")[1].split("Targets")[0]
    assert "The misses, explained." in page and ".. image:: _static/performance.png" in page
    assert (tmp_path / "docs" / "_static" / "performance.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
