"""convviz.evaluate: the metrics of convviz.metrics for many methods, summarised."""

import json

import numpy as np
import pytest
from matplotlib.figure import Figure
from method_checks import images, nested_model

import convviz
from convviz import evaluation, metrics
from convviz.errors import InputError
from convviz.evaluation import METRICS, EvaluationTable, read_boxes

FAST = {"metric_options": {"deletion": {"steps": 4}, "mufidelity": {"samples": 12}}, "verbose": False}


@pytest.fixture(scope="module")
def setup():
    import keras

    keras.utils.set_random_seed(0)
    return nested_model(size=16), images(3, size=16, seed=30)


def test_each_value_is_the_metric_of_the_method_s_own_maps(setup):
    model, x = setup
    table = convviz.evaluate(model, x, methods=["gradcam", "occlusion"], boxes=[(0, 0, 8, 8)] * 3,
                             method_options={"occlusion": {"window": 4, "stride": 4}}, seed=3, **FAST)
    assert table.methods == ["gradcam", "occlusion"]
    assert table.metrics == ["deletion", "insertion", "average_drop", "increase_in_confidence", "mufidelity",
                             "pointing_game", "energy"]
    # Independently: each method explained on its own, each metric called on its maps.
    for method, result in (("gradcam", convviz.explain(model, x)),
                           ("occlusion", convviz.attribute(model, x, method="occlusion", window=4, stride=4,
                                                           verbose=False))):
        got = table.values[method]
        curves = metrics.deletion_insertion(model, x, result, steps=4, verbose=False)
        np.testing.assert_allclose(got["deletion"], curves.deletion, atol=1e-6)
        np.testing.assert_allclose(got["insertion"], curves.insertion, atol=1e-6)
        change = metrics.confidence_change(model, x, result)
        np.testing.assert_allclose(got["average_drop"], change.average_drop, atol=1e-6)
        np.testing.assert_array_equal(got["increase_in_confidence"], change.increase)
        np.testing.assert_allclose(got["mufidelity"], metrics.mufidelity(model, x, result, samples=12, seed=3,
                                                                          verbose=False), atol=1e-6)
        pointing = metrics.pointing_game(result, [(0, 0, 8, 8)] * 3, size=(16, 16))
        np.testing.assert_array_equal(got["pointing_game"], pointing.hits.astype(float))
        np.testing.assert_allclose(got["energy"], pointing.energy, atol=1e-9)
        np.testing.assert_array_equal(table.classes[method], result.class_index)
        np.testing.assert_allclose(table.curves[method]["deletion"], curves.deletion_curve.mean(axis=0), atol=1e-6)
    assert table.titles == {"gradcam": "Grad-CAM", "occlusion": "Occlusion"}
    assert table.settings["method_options"] == {"occlusion": {"window": 4, "stride": 4}}
    rows = table.rows
    assert len(rows) == 2 * 3 * 7
    assert rows[0] == ("gradcam", 0, "image 1", "deletion", float(table.values["gradcam"]["deletion"][0]))


def test_randomization_is_the_spearman_with_every_layer_reinitialised(setup):
    model, x = setup
    table = convviz.evaluate(model, x, methods="layercam", metrics=["randomization", "deletion"], seed=2,
                             **FAST)
    assert table.metrics == ["deletion", "randomization"]  # table order, whatever the order asked
    expected = metrics.randomization(model, x, method="layercam", depths=[4], seed=2)
    np.testing.assert_allclose(table.values["layercam"]["randomization"], expected.spearman[-1], atol=1e-9)
    assert METRICS["randomization"].better == "lower" and not METRICS["randomization"].default


def test_class_index_and_names_and_builtin_inputs(setup, tmp_path):
    model, x = setup
    table = convviz.evaluate(model, x, metrics=["deletion"], class_index=[2, 0, 1], image_names=["a", "b", "a"],
                             **FAST)
    assert table.classes["gradcam"].tolist() == [2, 0, 1]
    assert table.image_names == ["a", "b", "a (2)"]
    expected = metrics.deletion_insertion(model, x, convviz.explain(model, x, class_index=[2, 0, 1]), steps=4,
                                          verbose=False)
    np.testing.assert_allclose(table.values["gradcam"]["deletion"], expected.deletion, atol=1e-6)
    # A saved model and image files, as the gallery takes them; names are the files' stems.
    from PIL import Image

    path = tmp_path / "m.keras"
    model.save(path)
    files = []
    for i, image in enumerate((x * 40 + 128).clip(0, 255).astype("uint8")):
        files.append(tmp_path / f"photo{i}.png")
        Image.fromarray(image).save(files[-1])
    table = convviz.evaluate(str(path), [str(f) for f in files], metrics="insertion", **FAST)
    assert table.image_names == ["photo0", "photo1", "photo2"] and table.model == model.name
    inspector_table = convviz.evaluate(convviz.Inspector(model), x, metrics="insertion", **FAST)
    assert inspector_table.image_names == ["image 1", "image 2", "image 3"]


def test_summary_means_intervals_and_ranks():
    values = {"a": {"deletion": [0.1, 0.2, 0.3, 0.4], "insertion": [0.9, 0.8, 0.7, 0.6]},
              "b": {"deletion": [0.5, 0.5, 0.5, 0.5], "insertion": [0.1, 0.2, 0.3, 0.2]},
              "c": {"deletion": [0.0, 0.2, 0.1, 0.1], "insertion": [0.9, 0.8, 0.7, 0.6]}}
    table = EvaluationTable(["a", "b", "c"], ["deletion", "insertion"], list("wxyz"), values,
                            {m: np.zeros(4, int) for m in values}, seed=1, bootstrap=500)
    summary = table.summary()
    row = summary.row("a", "deletion")
    assert row.mean == pytest.approx(0.25) and row.better == "lower" and row.images == 4
    assert 0.1 <= row.low < row.mean < row.high <= 0.4
    assert summary.row("b", "deletion")[2:5] == pytest.approx((0.5, 0.5, 0.5))  # no spread, no interval
    # Lower deletion is better, higher insertion; ties share the better rank.
    assert summary.ranks("deletion") == {"c": 1, "a": 2, "b": 3}
    assert summary.ranks("insertion") == {"a": 1, "c": 1, "b": 3}
    assert summary.best("insertion") == "a" and summary.mean_ranks() == {"a": 1.5, "b": 3.0, "c": 1.0}
    assert table.summary().rows == summary.rows  # seeded
    narrow = table.summary(confidence=0.5).row("a", "deletion")
    assert row.low < narrow.low and narrow.high < row.high
    with pytest.raises(InputError, match="confidence"):
        table.summary(confidence=95)
    with pytest.raises(KeyError, match="mufidelity"):
        summary.row("a", "mufidelity")
    text = str(summary)
    assert "deletion (lower)" in text and "0.250 [" in text and text.splitlines()[2].startswith("a ")


def test_bootstrap_interval_matches_the_normal_approximation():
    values = np.random.default_rng(0).normal(1.0, 2.0, size=400)
    table = EvaluationTable(["m"], ["insertion"], [str(i) for i in range(400)], {"m": {"insertion": values}},
                            {"m": np.zeros(400, int)}, bootstrap=2000)
    row = table.summary().row("m", "insertion")
    half = 1.96 * values.std() / np.sqrt(len(values))
    assert row.high - row.low == pytest.approx(2 * half, rel=0.1)
    assert (row.low + row.high) / 2 == pytest.approx(values.mean(), abs=0.05)
    table.seed = 1  # other resamples, other bounds
    assert table.summary().row("m", "insertion")[3:5] != row[3:5]


def test_csv_json_and_report(setup, tmp_path):
    model, x = setup
    table = convviz.evaluate(model, x, methods=["gradcam", "saliency"], **FAST)
    lines = table.to_csv(tmp_path / "rows.csv").splitlines()
    assert lines[0] == "method,image,name,metric,value" and len(lines) == 1 + 2 * 3 * 5
    assert lines[1].startswith("gradcam,0,image 1,deletion,")
    summary_lines = table.summary().to_csv().splitlines()
    assert summary_lines[0] == "method,metric,mean,low,high,better,images" and len(summary_lines) == 1 + 2 * 5
    table.to_json(tmp_path / "t.json")
    loaded = EvaluationTable.load(tmp_path / "t.json")
    assert loaded.summary().rows == table.summary().rows and loaded.curves == table.curves

    out = tmp_path / "report"
    index = table.report(out)
    assert index == out.absolute() / "index.html"
    assert sorted(p.name for p in out.iterdir()) == [
        "curves.png", "evaluation.csv", "evaluation.json", "index.html", "report.json", "summary.csv", "summary.png",
    ]
    page = index.read_text()
    assert "<table>" in page and "Grad-CAM" in page and "Saliency" in page and 'href="summary.csv"' in page
    figures = json.loads((out / "report.json").read_text())["figures"]
    assert [f["file"] for f in figures] == ["summary.png", "curves.png"]
    assert "Deletion (lower is better)" in figures[0]["caption"]
    (out / "extra.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        table.report(out)
    assert (out / "extra.txt").exists()
    table.report(out, overwrite=True)
    assert not (out / "extra.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report", "rows.csv", "t.json"]


def test_plots(setup):
    model, x = setup
    table = convviz.evaluate(model, x, methods=["gradcam", "eigencam"], **FAST)
    fig = table.plot()
    assert isinstance(fig, Figure)
    shown = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in shown] == [METRICS[m].title for m in table.metrics]
    assert shown[0].get_xlabel() == "\u2190 lower is better" and shown[1].get_xlabel() == "higher is better \u2192"
    ticks = {t.get_text(): y for t, y in zip(shown[0].get_yticklabels(), shown[0].get_yticks())}
    assert ticks == {"Grad-CAM": 1, "Eigen-CAM": 0}  # the first method at the top
    assert len(table.plot(ncols=2, figsize=(6, 5)).axes) == 6
    curves = table.plot(view="curves")
    assert [ax.get_title() for ax in curves.axes] == ["Deletion (lower is better)", "Insertion (higher is better)"]
    assert len(curves.axes[0].lines) == 2
    with pytest.raises(InputError, match="view"):
        table.plot(view="bars")
    no_curves = convviz.evaluate(model, x, metrics="average_drop", verbose=False)
    with pytest.raises(InputError, match="curves"):
        no_curves.plot(view="curves")


def test_progress_lines_on_standard_error(setup, capsys):
    model, x = setup
    convviz.evaluate(model, x, methods=["gradcam", "hirescam"], metrics=["deletion", "average_drop"],
                     metric_options={"deletion": {"steps": 4}})
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line for line in captured.err.splitlines() if line.startswith("[")]
    assert lines[0].startswith("[1/6] gradcam (Grad-CAM) at c2: explaining 3 image(s)")
    assert lines[-1].startswith("[6/6] hirescam: Average Drop and Increase in Confidence")
    assert "Evaluated 2 method(s) on 3 image(s)" in captured.err
    convviz.evaluate(model, x, metrics=["deletion"], **FAST)
    assert capsys.readouterr().err == ""


def test_errors_name_the_problem_before_any_map_is_computed(setup, monkeypatch):
    model, x = setup
    calls = []
    monkeypatch.setattr(metrics, "deletion_insertion", lambda *a, **k: calls.append(a))
    cases = [
        ({"methods": ["gradcam", "gradcm"]}, "did you mean 'gradcam'"),
        ({"methods": []}, "methods is empty"),
        ({"metrics": ["insertoin"]}, "Unknown metric 'insertoin'.*did you mean 'insertion'"),
        ({"metrics": ["deletion", "energy"]}, "energy need the objects' boxes"),
        ({"metrics": "pointing_game"}, "pointing_game need"),
        ({"boxes": [(0, 0, 4, 4)] * 2}, "3 image\\(s\\) but 2 box"),
        ({"boxes": [(0, 0, 4, 4)] * 2 + [(4, 4, 4, 8)]}, "empty box"),
        ({"method_options": {"layercm": {"layer": "c1"}}}, "unknown.*did you mean 'layercam'"),
        ({"method_options": {"gradcam": {"stride": 4}}}, "method_options\\['gradcam'\\].*stride"),
        ({"method_options": {"gradcam": {"layer": "nope"}}}, "nope"),
        ({"metric_options": {"deletion": {"samples": 4}}}, "unknown option 'samples' \\(options: steps"),
        ({"metric_options": {"deletion": {"steps": 4}, "insertion": {"steps": 5}}}, "disagree on 'steps'"),
        ({"metric_options": {"energie": {"tolerance": 4}}}, "unknown.*did you mean 'energy'"),
        ({"metric_options": {"mufidelity": 4}}, "must be a dict"),
        ({"seed": -1}, "seed"),
        ({"bootstrap": 0}, "bootstrap"),
        ({"batch_size": 0}, "batch_size"),
        ({"image_names": ["a"]}, "image_names"),
        ({"verbose": "yes"}, "verbose"),
    ]
    for kwargs, message in cases:
        with pytest.raises(convviz.errors.ConvvizError, match=message):
            convviz.evaluate(model, x, **{"verbose": False, **kwargs})
    assert calls == []
    # Options two metrics of one call agree on are fine; those of metrics and methods
    # not evaluated are left out.
    monkeypatch.undo()
    table = convviz.evaluate(model, x, metrics=["deletion", "insertion"], verbose=False,
                             metric_options={"deletion": {"steps": 4}, "insertion": {"steps": 4},
                                             "energy": {"tolerance": 3}},
                             method_options={"scorecam": {"layer": "nope"}})
    assert table.settings == {"metric_options": {"deletion_insertion": {"steps": 4}}, "method_options": {}}


def test_all_methods_and_metrics_by_name():
    assert evaluation._check_methods("all") == convviz.methods.method_names()
    assert evaluation._check_methods([convviz.methods.GradCAM, "gradcam", "saliency"]) == ["gradcam", "saliency"]
    assert evaluation._check_metrics("all", boxes=False) == [m for m in METRICS if not METRICS[m].needs_boxes]
    assert evaluation._check_metrics("all", boxes=True) == list(METRICS)
    assert evaluation.metric_names(default=True, boxes=True) == [
        "deletion", "insertion", "average_drop", "increase_in_confidence", "mufidelity", "pointing_game", "energy"]


def test_options_and_boxes_from_text(tmp_path):
    assert evaluation.parse_options(["occlusion.stride=16", "occlusion.baseline=blur", "x.y=[1, 2]",
                                     "scorecam.layer=top_conv"]) == {
        "occlusion": {"stride": 16, "baseline": "blur"}, "x": {"y": [1, 2]}, "scorecam": {"layer": "top_conv"}}
    for bad in ("occlusion", "occlusion.stride", ".stride=3", "occlusion.=3"):
        with pytest.raises(InputError, match="NAME.OPTION=VALUE"):
            evaluation.parse_options([bad])
    sizes, size = [(100, 200), (50, 50)], (50, 100)
    # A list in order, scaled from each image's own size to the model's (outward).
    assert read_boxes([[10, 10, 21, 31], [0, 0, 50, 50]], names=["a", "b"], sizes=sizes, size=size) == [
        (5, 5, 11, 16), (0, 0, 100, 50)]
    # By name: file names or stems; convviz's shapes boxes.json.
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps({"boxes": {"b.png": {"label": "circle", "box": [0, 0, 10, 10]},
                                          "a.jpg": {"label": "square", "box": [2, 4, 6, 8]}}}))
    assert read_boxes(path, names=["a", "b"], sizes=[(50, 50)] * 2, size=(50, 50)) == [(2, 4, 6, 8), (0, 0, 10, 10)]
    shapes = convviz.shapes.BoundingBox("circle", 1, 2, 3, 4)
    assert read_boxes({"a.jpg": shapes}, names=["a"], sizes=[(8, 8)], size=(16, 16)) == [(2, 4, 6, 8)]
    for spec, message in (({"c": [0, 0, 1, 1]}, "no box for a, b"), ([[0, 0, 1, 1]], "1 box\\(es\\) for 2"),
                          ([[0, 0, 1], [0, 0, 1, 1]], "x0, y0, x1, y1"), (3, "no list of")):
        with pytest.raises(InputError, match=message):
            read_boxes(spec, names=["a", "b"], sizes=sizes, size=size)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(InputError, match="not JSON"):
        read_boxes(tmp_path / "bad.json", names=["a"], sizes=sizes, size=size)
    with pytest.raises(InputError, match="Cannot read"):
        read_boxes(tmp_path / "missing.json", names=["a"], sizes=sizes, size=size)
