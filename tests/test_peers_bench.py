"""The peers harness (benchmarks/peers.py) in --quick form: every row whose peer is
installed for this backend runs, and convviz's result agrees with the peer's.

The PyTorch rows (pytorch-grad-cam, torchcam, captum) run in the torch session, the
tf-keras-vis rows in the tensorflow session (the noxfile installs the peers there);
where none is installed (the JAX session, tests_oldest) that test skips. The
Performance page's peers tables (benchmarks/report.py) are checked on made-up records. Each row's
tolerance is the harness's own (``Row.tolerance``); where a peer defines the method
otherwise (tf-keras-vis' Grad-CAM++, torchcam's Score-CAM) it bounds the difference
from the peer's definition computed with convviz's machinery, and the gap between
the two definitions is only recorded. No timing is checked: the quick sizes time
compilation more than anything.
"""

import json
import math
import pathlib
import sys

import numpy as np
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import common  # noqa: E402  (from benchmarks/, put on the path above)
import peers  # noqa: E402
import report  # noqa: E402

RUNNABLE = [row for row in peers.rows() if peers.missing(row) is None]


def test_quick_peers_run_and_agree(tmp_path, capsys):
    if not RUNNABLE:
        reasons = sorted({peers.missing(row) for row in peers.rows()})
        pytest.skip(f"no peer installed for this backend ({'; '.join(reasons)}); see noxfile.py")
    payload = peers.main(["--quick", "--json", str(tmp_path / "peers.json")])
    assert not payload["failed"], payload["failed"]
    ran = [(r["peer"], r["api"], r["model"]) for r in payload["results"]]
    assert ran == [(row.peer, row.api, row.model) for row in RUNNABLE]
    skipped = {(r["peer"], r["api"], r["model"]) for r in payload["skipped"]}
    assert skipped == {(row.peer, row.api, row.model) for row in peers.rows()} - set(ran)
    for r in payload["results"]:
        numbers = [*r["times"].values(), r["ratios"]["peer/convviz"], r["max_difference"]]
        assert all(math.isfinite(x) for x in numbers) and all(x > 0 for x in r["times"].values()), r
        checked = r["max_difference"] if r["same_definition_difference"] is None else r["same_definition_difference"]
        assert r["agrees"] and checked <= r["tolerance"], (
            f"{r['peer']} {r['api']} on {r['model']}: {r['difference']} {checked:.3g} > {r['tolerance']:g}"
        )
        assert not r["targets"]  # quick: no targets
    written = json.loads((tmp_path / "peers.json").read_text())
    assert written["quick"] and len(written["results"]) == len(ran)
    out = capsys.readouterr().out
    assert all(api in out for _, api, _ in ran)
    assert ("skipped:" in out) == bool(skipped)


def test_half_pixel_matrix_is_torchs_bilinear_upsampling():
    torch = pytest.importorskip("torch")
    maps = np.random.default_rng(0).random((2, 7, 5))
    ours = np.einsum("Hh,nhw,Ww->nHW", peers.half_pixel_matrix(30, 7), maps, peers.half_pixel_matrix(22, 5))
    theirs = torch.nn.functional.interpolate(torch.from_numpy(maps)[:, None], (30, 22), mode="bilinear",
                                             align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-12)


def _peer_record(api, ratio, difference, *, target=None, same=None, smaller=None, note=""):
    common.take_loads()  # no load readings: not measured under load
    targets = [] if target is None else [common.target(f"{api} target", ratio, target, ">=")]
    return common.record(
        "peers", "EfficientNet-Lite0 (ImageNet)", {"peer": 0.5 * ratio, "convviz": 0.5}, {"peer/convviz": ratio},
        targets, peer="somepeer", api=api, method=api.lower(), setting="16 images 224², top_bn", smaller=smaller,
        unit="per call", max_difference=difference, difference="max |diff|", tolerance=1e-3,
        same_definition_difference=same, agrees=True, note=note,
    )


def _payload(records, quick=False, **extra):
    machine = {"cpu": "Test CPU", "virtual": False, "cores": 2, "ram_gib": 8.0, "os": "Linux", "python": "3.11",
               "backend": "torch", "versions": {"keras": "3.15", "torch": "2.13", "captum": "0.9.0", "jax": "x"},
               "date": "2026-01-01T00:00:00+00:00", "load_average": [1.0, 1.0, 1.0]}
    return {"backend": "torch", "quick": quick, "machine": machine, "load_average_end": [1.0] * 3,
            "wall_seconds": 120.0, "results": records, "skipped": [], "failed": [], **extra}


def test_report_renders_the_peers_table(tmp_path):
    rows = [
        _peer_record("ScoreCAM", 2.5, 0.2, target=2.0, same=3e-6, smaller="layer with 80 channels",
                     note="the peer scales masks first"),
        _peer_record("GradCAM", 0.8, 4.5e-6),
    ]
    failed = [{"peer": "somepeer", "api": "Broken", "method": "x", "model": "m", "reason": "ImportError: no"}]
    results = {"torch": _payload([])}
    page = report.page(results, "", {"torch": _payload(rows, failed=failed)})
    section = page.split("Side by side with the peers\n")[1].split("Reproduce\n")[0]
    assert "PyTorch\n~~~~~~~\n" in section and "keras 3.15, torch 2.13, captum 0.9.0." in section
    assert "- 2.50 ✓ (≥ 2)\n" in section and "- 0.80\n" in section
    assert "- 0.2 (peer's definition: 3e-06)\n" in section and "- 4.5e-06\n" in section
    assert "16 images 224², top_bn; smaller: layer with 80 channels" in section
    assert "- somepeer ``ScoreCAM``: the peer scales masks first." in section
    assert "- somepeer ``Broken`` on m: did not run (``ImportError: no``)." in section
    assert report.LOADED not in section
    # Without peer results the page is the one it was before.
    assert "Side by side" not in report.page(results, "")
    # load_peers reads full results only.
    (tmp_path / "peers_torch.json").write_text(json.dumps(_payload(rows)))
    (tmp_path / "peers_tensorflow.json").write_text(json.dumps(_payload(rows, quick=True)))
    assert list(report.load_peers(tmp_path)) == ["torch"]
