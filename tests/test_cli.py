import json

import keras
import pytest

from convviz import cli


def test_help_lists_the_demo(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    assert "demo" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the demo's parts (training, galleries, Lite0) are tested on every backend; the "
           "end-to-end command once, on TensorFlow (CI time: 2 minutes on JAX)",
)
def test_demo_writes_model_curves_and_figures(tmp_path, monkeypatch):
    from convviz import data

    small = data.make_offline_dataset(tmp_path / "data", n_train=16, n_val=8, n_test=8)
    out = tmp_path / "out"
    assert cli.main(["demo", "--out", str(out), "--epochs", "1", "--data", str(small), "--filter-steps", "2"]) == 0
    written = {p.name for p in out.iterdir()}
    assert {"small_convnet.keras", "history.png", "index.html", "gallery", "lite0_gallery"} <= written
    page = (out / "gallery" / "index.html").read_text()
    assert "test circle" in page and "test triangle" in page
    assert len(list((out / "gallery" / "gradcam").glob("*.png"))) == 4
    assert "tiger cat" in (out / "lite0_gallery" / "index.html").read_text()
    # A second run refuses the non-empty folder unless told to overwrite.
    assert cli.main(["demo", "--out", str(out), "--epochs", "1", "--data", str(small)]) == 2


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["gallery", "--help"])
    out = capsys.readouterr().out
    for word in ("MODEL", "IMAGE", "--out", "--overwrite", "--kinds", "efficientnet_lite0", "skimage:chelsea",
                 "cam_methods", "--cam-layer", "integrated_gradients", "occlusion"):
        assert word in out


@pytest.fixture
def saved_model(tmp_path):
    from test_gallery import tiny_model

    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    return str(path)


@pytest.fixture
def two_images(tmp_path):
    from test_gallery import write_images

    return write_images(tmp_path / "images", 2)


FAST = ["--filters", "2", "--filter-steps", "2", "--quiet"]


def test_gallery_for_a_saved_model_and_two_images(tmp_path, saved_model, two_images, capsys):
    out = tmp_path / "out"
    assert cli.main(["gallery", saved_model, *two_images, "--out", str(out), *FAST]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    page = (out / "index.html").read_text()
    for name in ("photo0", "photo1", "conv_a", "conv_b"):
        assert name in page
    assert len(list((out / "gradcam").glob("*.png"))) == 2
    assert (out / "sparsity.png").exists() and len(list((out / "filters").glob("*.png"))) == 2


def test_gallery_filter_parametrization(tmp_path, saved_model, two_images, capsys):
    out = tmp_path / "out"
    argv = ["gallery", saved_model, two_images[0], "--out", str(out), "--kinds", "filters"]
    assert cli.main([*argv, *FAST, "--filter-parametrization", "maco"]) == 0
    manifest = json.loads((out / "gallery.json").read_text())
    captions = [f["caption"] for f in manifest["figures"]]
    assert len(captions) == 2 and all("phase of a natural-image spectrum" in c for c in captions)
    with pytest.raises(SystemExit):
        cli.main([*argv, "--filter-parametrization", "wavelet"])


def _fails_cleanly(argv, capsys, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("convviz gallery: error:") and message in err


def test_bad_model_path(tmp_path, two_images, capsys):
    out = tmp_path / "out"
    _fails_cleanly(["gallery", str(tmp_path / "nope.keras"), *two_images, "--out", str(out)], capsys, "nope.keras")
    assert not out.exists()


def test_unreadable_image(tmp_path, saved_model, two_images, capsys):
    out = tmp_path / "out"
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    _fails_cleanly(["gallery", saved_model, two_images[0], str(broken), "--out", str(out)], capsys, "broken.jpg")
    assert not out.exists()


def test_existing_non_empty_out_dir(tmp_path, saved_model, two_images, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _fails_cleanly(["gallery", saved_model, *two_images, "--out", str(out), *FAST], capsys, "--overwrite")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert cli.main(["gallery", saved_model, *two_images, "--out", str(out), "--overwrite", "--kinds", "gradcam", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gallery.json", "gradcam", "index.html"]


def test_unknown_kind_and_bad_number(tmp_path, saved_model, two_images, capsys):
    _fails_cleanly(["gallery", saved_model, *two_images, "--out", str(tmp_path / "o"), "--kinds", "heat"], capsys, "heat")
    _fails_cleanly(["gallery", saved_model, *two_images, "--out", str(tmp_path / "o"), "--filters", "0"], capsys, "filters")
    assert not (tmp_path / "o").exists()


def test_gallery_compares_cam_methods_at_a_chosen_layer(tmp_path, saved_model, two_images, capsys):
    out = tmp_path / "out"
    argv = ["gallery", saved_model, *two_images, "--out", str(out), "--kinds", "cam_methods,layercam,gradcam",
            "--cam-layer", "conv_a", "--quiet"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["cam_methods.png", "gallery.json", "gradcam", "index.html", "layercam"]
    page = (out / "index.html").read_text()
    assert "<h2>CAM methods compared</h2>" in page and "Grad-CAM, Layer-CAM at layer conv_a" in page
    _fails_cleanly(["gallery", saved_model, *two_images, "--out", str(tmp_path / "o"), "--kinds", "cam_methods",
                    "--cam-layer", "nope"], capsys, "nope")
    assert not (tmp_path / "o").exists()


def _explain_and_load(tmp_path, saved_model, two_images, capsys, *options):
    """Run ``convviz explain`` with ``--maps``; (the saved result, the images as loaded)."""
    import convviz

    fig = tmp_path / "figs" / "explained.png"
    maps = tmp_path / "maps.npz"
    argv = ["explain", saved_model, *two_images, "--out", str(fig), *options, "--maps", str(maps)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.split() == [str(maps), str(fig)]
    assert fig.stat().st_size > 0
    return convviz.Explanation.load(maps), convviz.galleries.load_images(two_images)[0]


def test_explain_writes_the_figure_and_the_maps(tmp_path, saved_model, two_images, capsys):
    import numpy as np

    import convviz

    saved, images = _explain_and_load(
        tmp_path, saved_model, two_images, capsys, "--method", "gradcam_plusplus", "--class-index", "1",
        "--class-names", "a,b,c",
    )
    expected = convviz.explain(saved_model, images, method="gradcam_plusplus", class_index=1)
    np.testing.assert_allclose(saved.maps, expected.maps, atol=1e-6)
    assert saved.method == "gradcam_plusplus" and saved.class_index.tolist() == [1, 1]


def test_explain_help_lists_the_registered_methods(capsys):
    import convviz

    with pytest.raises(SystemExit):
        cli.main(["explain", "--help"])
    out = capsys.readouterr().out
    for name in convviz.methods.method_names():
        assert name in out


def test_explain_errors_are_one_line(tmp_path, saved_model, two_images, capsys):
    assert cli.main(["explain", saved_model, *two_images, "--out", str(tmp_path / "f.png"), "--class-index", "x"]) == 2
    assert capsys.readouterr().err.startswith("convviz explain: error: --class-index takes integers")
    assert cli.main(["explain", saved_model, *two_images, "--out", str(tmp_path / "f.png"), "--layer", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["explain", saved_model, *two_images, "--out", str(blocker / "f.png")]) == 2
    assert capsys.readouterr().err.startswith("convviz explain: error: Cannot write")
    assert cli.main(["explain", saved_model, *two_images, "--out", str(tmp_path / "f.xyz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convviz explain: error: --out") and "png" in err
    assert not (tmp_path / "f.xyz").exists()


# -- pixel attributions ----------------------------------------------------------------------


def test_gallery_draws_attribution_kinds(tmp_path, saved_model, two_images, capsys):
    out = tmp_path / "out"
    argv = ["gallery", saved_model, *two_images, "--out", str(out), "--kinds", "occlusion,saliency", "--quiet"]
    assert cli.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["gallery.json", "index.html", "occlusion.png", "saliency.png"]
    page = (out / "index.html").read_text()
    assert page.index("<h2>Saliency</h2>") < page.index("<h2>Occlusion</h2>")


def test_explain_runs_attribution_methods_with_a_view(tmp_path, saved_model, two_images, capsys):
    import numpy as np

    import convviz

    saved, images = _explain_and_load(
        tmp_path, saved_model, two_images, capsys, "--method", "integrated_gradients", "--view", "all",
        "--class-index", "2",
    )
    expected = convviz.attribute(saved_model, images, class_index=2, verbose=False)
    assert type(saved) is type(expected) and saved.method == "integrated_gradients"
    assert saved.maps.shape == (2, 32, 32, 3) and saved.class_index.tolist() == [2, 2]
    np.testing.assert_allclose(saved.maps, expected.maps, atol=1e-6)
    np.testing.assert_allclose(saved.details["completeness_gap"], expected.details["completeness_gap"], atol=1e-5)
    # Without --view, the signed view: one panel and its colour bar per image.
    assert cli.main(["explain", saved_model, two_images[0], "--out", str(tmp_path / "s.png"), "--method", "saliency"]) == 0
    assert (tmp_path / "s.png").stat().st_size > 0


def test_explain_refuses_options_of_the_other_kind(tmp_path, saved_model, two_images, capsys):
    out = tmp_path / "f.png"
    assert cli.main(["explain", saved_model, *two_images, "--out", str(out), "--method", "saliency", "--layer", "conv_a"]) == 2
    assert capsys.readouterr().err.startswith("convviz explain: error: --layer: saliency attributes the input pixels")
    assert cli.main(["explain", saved_model, *two_images, "--out", str(out), "--view", "all"]) == 2
    assert capsys.readouterr().err.startswith("convviz explain: error: --view draws pixel attributions; gradcam")
    assert not out.exists()


# -- evaluate --------------------------------------------------------------------------------

QUICK = ["--metric-option", "deletion.steps=4", "--metric-option", "mufidelity.samples=10", "--quiet"]


def test_evaluate_writes_tables_figures_and_a_page(tmp_path, saved_model, two_images, capsys):
    import json

    import numpy as np

    import convviz

    out = tmp_path / "out"
    boxes = tmp_path / "boxes.json"
    # In the files' own 40x48 pixels, keyed by file name; the model sees 32x32.
    boxes.write_text(json.dumps({"photo0.png": [0, 0, 24, 20], "photo1.png": [24, 20, 48, 40]}))
    argv = ["evaluate", saved_model, *two_images, "--out", str(out), "--methods", "gradcam,saliency",
            "--boxes", str(boxes), "--cam-layer", "conv_a", "--method-option", "saliency.abs=false", *QUICK]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out.absolute() / "index.html")
    assert sorted(p.name for p in out.iterdir()) == [
        "curves.png", "evaluation.csv", "evaluation.json", "index.html", "report.json", "summary.csv", "summary.png"]
    table = convviz.EvaluationTable.load(out / "evaluation.json")
    assert table.methods == ["gradcam", "saliency"] and table.image_names == ["photo0", "photo1"]
    assert table.metrics[-2:] == ["pointing_game", "energy"]
    assert table.settings["method_options"] == {"gradcam": {"layer": "conv_a"}, "saliency": {"abs": False}}
    # The same numbers from Python, with the boxes scaled to the model's input by hand.
    images = convviz.galleries.load_images(two_images)[0]
    expected = convviz.evaluate(
        saved_model, images, methods=["gradcam", "saliency"], boxes=[(0, 0, 16, 16), (16, 16, 32, 32)],
        method_options={"gradcam": {"layer": "conv_a"}, "saliency": {"abs": False}},
        metric_options={"deletion": {"steps": 4}, "mufidelity": {"samples": 10}}, verbose=False,
    )
    for method in table.methods:
        for metric in table.metrics:
            np.testing.assert_allclose(table.values[method][metric], expected.values[method][metric], atol=1e-6)
    # The same summary, number for number up to float32 rounding: on JAX each Inspector
    # picks its convolution kernels by timing its first call (with or without YNNPACK),
    # and under load the two runs here may pick differently.
    written = [row.split(",") for row in (out / "summary.csv").read_text().splitlines()]
    wanted = [row.split(",") for row in expected.summary().to_csv().splitlines()]
    assert [len(row) for row in written] == [len(row) for row in wanted]
    for got, want in zip(sum(written, []), sum(wanted, [])):
        try:
            np.testing.assert_allclose(float(got), float(want), rtol=1e-6, atol=1e-9)
        except ValueError:  # a name or a direction, not a number
            assert got == want
    assert "Saliency" in (out / "index.html").read_text()


def test_evaluate_all_methods_and_metrics_by_name(tmp_path, saved_model, two_images, capsys):
    out = tmp_path / "out"
    argv = ["evaluate", saved_model, *two_images, "--out", str(out), "--methods", "all", "--metrics", "all",
            "--method-option", "occlusion.window=8", "--method-option", "scorecam.batch_size=64",
            "--method-option", "integrated_gradients.steps=4", "--method-option", "smoothgrad.samples=4", *QUICK]
    assert cli.main(argv) == 0
    import convviz

    table = convviz.EvaluationTable.load(out / "evaluation.json")
    assert table.methods == convviz.methods.method_names()
    assert table.metrics == ["deletion", "insertion", "average_drop", "increase_in_confidence", "mufidelity",
                             "randomization"]


def _evaluate_fails(argv, capsys, message):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("convviz evaluate: error:") and message in err, err
    assert len(err.strip().splitlines()) == 1


def test_evaluate_errors_are_one_line_and_write_nothing(tmp_path, saved_model, two_images, capsys):
    out = tmp_path / "out"
    base = ["evaluate", saved_model, *two_images, "--out", str(out), "--quiet"]
    (tmp_path / "bad.json").write_text("[[0, 0, 4, 4]]")
    cases = [
        (["--methods", "gradcm"], "did you mean 'gradcam'"),
        (["--metrics", "delet"], "did you mean 'deletion'"),
        (["--metrics", "energy"], "energy need the objects' boxes"),
        (["--boxes", str(tmp_path / "bad.json")], "1 box(es) for 2 image(s)"),
        (["--boxes", str(tmp_path / "missing.json")], "Cannot read the boxes file"),
        (["--method-option", "occlusion"], "NAME.OPTION=VALUE"),
        (["--method-option", "gradcam.stride=3"], "stride"),
        (["--metric-option", "deletion.samples=3"], "unknown option 'samples'"),
        (["--cam-layer", "nope"], "nope"),
        (["--class-index", "x"], "--class-index takes integers"),
        (["--class-index", "7"], "out of range"),
        (["--bootstrap", "0"], "bootstrap"),
    ]
    for extra, message in cases:
        _evaluate_fails(base + extra, capsys, message)
    _evaluate_fails(["evaluate", str(tmp_path / "nope.keras"), *two_images, "--out", str(out)], capsys, "nope.keras")
    assert not out.exists()
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    _evaluate_fails(base, capsys, "--overwrite")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert cli.main([*base, "--overwrite", "--metrics", "average_drop"]) == 0
    assert "notes.txt" not in {p.name for p in out.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "images", "out", "tiny.keras"]


def test_evaluate_help_lists_methods_and_metrics(capsys):
    import convviz

    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    out = capsys.readouterr().out
    for word in ("--methods", "--metrics", "--boxes", "--overwrite", "--method-option", "--metric-option",
                 "efficientnet_lite0", *convviz.methods.method_names(), *convviz.evaluation.METRICS):
        assert word in out, word
