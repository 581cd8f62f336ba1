import html
import json
import os
import pathlib
import re
import shutil
import subprocess

import keras
import numpy as np
import pytest
from helpers import random_images
from PIL import Image

import convviz
from convviz import galleries
from convviz.errors import InputError
from convviz.galleries import _spread, load_images

gallery_module = galleries


def tiny_model(n_classes=3) -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv_a")(x)
    x = keras.layers.MaxPooling2D(name="pool_a")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_b")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax" if n_classes > 1 else "sigmoid")(x)
    return keras.Model(inputs, outputs, name="tiny")


def write_images(folder: pathlib.Path, n=2) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(random_images(n, size=(40, 48), seed=3)):
        path = folder / f"photo{i}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    return paths


FAST = {"filters": 3, "filter_steps": 2, "verbose": False}


def test_gallery_writes_every_figure_and_the_index(tmp_path):
    model = tiny_model()
    images = write_images(tmp_path / "in")
    result = convviz.gallery(model, images, tmp_path / "out", **FAST)

    assert result.path == (tmp_path / "out").absolute()
    layers = ["conv_a", "pool_a", "conv_b"]
    kinds = [f.kind for f in result.figures]
    assert kinds.count("activations") == 2 * len(layers)
    assert kinds.count("filters") == 2  # first and last conv (only two convs)
    assert kinds.count("gradcam") == 2
    assert kinds.count("sparsity") == 1
    for path in result.files():
        assert path.stat().st_size > 0
        with Image.open(path) as im:
            assert im.format == "PNG" and min(im.size) > 10
    assert (result.path / "sparsity.csv").read_text().startswith("depth,layer,")

    manifest = json.loads((result.path / "gallery.json").read_text())
    assert [f["file"] for f in manifest["figures"]] == [f.file for f in result.figures]
    page = result.index.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs == [f.file for f in result.figures]
    for name in ("conv_a", "pool_a", "conv_b", "photo0", "photo1"):
        assert name in page
    # No temporary sibling left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "out"]
    # filter_parametrization="auto": the chapter's pixel ascent for the first conv, the
    # Fourier parametrisation (galleries.DEEP_PARAMETRIZATION) after it.
    captions = {f.title: f.caption for f in result.figures if f.kind == "filters"}
    assert "steps on the pixels" in captions["conv_a"]
    assert "Fourier spectrum" in captions["conv_b"]


def test_gradcam_captions_state_the_models_own_prediction(tmp_path):
    model = tiny_model()
    images = random_images(2, size=(32, 32), seed=5)
    result = convviz.gallery(
        model, list(images), tmp_path / "g", kinds=["gradcam"], class_names=["ant", "bee", "cow"],
        image_names=["first", "second"], verbose=False,
    )
    # Independent: the model's own output on the same pixels.
    probs = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    names = ["ant", "bee", "cow"]
    for fig, p in zip(result.figures, probs):
        top = int(np.argmax(p))
        assert f"{names[top]} (p={p[top]:.3f})" in fig.title
        order = np.argsort(-p)
        listing = ", ".join(f"{names[c]} {p[c]:.3f}" for c in order)
        assert listing in fig.caption
    assert [f.group for f in result.figures] == ["", ""]


def test_sigmoid_caption_names_both_sides(tmp_path):
    model = tiny_model(n_classes=1)
    images = random_images(1, size=(32, 32), seed=7)
    result = convviz.gallery(model, images, tmp_path / "g", kinds="gradcam", class_names=["cat", "dog"], verbose=False)
    p = float(keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))[0, 0])
    expected = "dog" if p > 0.5 else "cat"
    assert f"{expected} (p={max(p, 1 - p):.3f})" in result.figures[0].title
    assert f"dog {p:.3f} / cat {1 - p:.3f}" in result.figures[0].caption


def test_activation_grids_show_the_real_feature_maps(tmp_path):
    model = tiny_model()
    image = random_images(1, size=(32, 32), seed=1)
    result = convviz.gallery(model, image, tmp_path / "g", kinds=["activations"], layers=["conv_b"], verbose=False)
    (fig,) = result.figures
    assert "13\u00d713\u00d78" in fig.caption
    # The PNG is the plot module's figure of the same maps (drawn independently here).
    acts = convviz.activations(model, image, layers=["conv_b"])
    expected = tmp_path / "expected.png"
    convviz.plot.activations(acts, ncols=8, figsize=(8.0, None)).savefig(expected, dpi=100, bbox_inches="tight")
    with Image.open(result.path / fig.file) as got, Image.open(expected) as want:
        assert got.size == want.size
        assert np.array_equal(np.asarray(got), np.asarray(want))


def test_deep_models_get_at_most_eight_activation_layers_and_channel_caps(tmp_path):
    inputs = keras.Input((24, 24, 3))
    x = inputs
    for i in range(12):
        x = keras.layers.Conv2D(70, 3, padding="same", activation="relu", name=f"c{i}")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    result = convviz.gallery(model, random_images(1, size=(24, 24)), tmp_path / "g", kinds=["activations"], verbose=False)
    titles = [f.title for f in result.figures]
    assert titles == ["c0", "c2", "c3", "c5", "c6", "c8", "c9", "c11"]
    assert "first 64 of 70 channels" in result.figures[0].caption


def test_spread_keeps_ends_and_order():
    names = [f"l{i}" for i in range(20)]
    picked = _spread(names, 3)
    assert picked == ["l0", "l10", "l19"] or picked == ["l0", "l9", "l19"]
    assert _spread(names[:2], 3) == names[:2]


def test_refuses_a_non_empty_folder_and_leaves_it_alone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        convviz.gallery(tiny_model(), random_images(1, size=(32, 32)), out, **FAST)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    result = convviz.gallery(tiny_model(), random_images(1, size=(32, 32)), out, overwrite=True, kinds="gradcam", verbose=False)
    assert not (out / "keep.txt").exists() and result.index.exists()


def test_an_empty_existing_folder_is_fine(tmp_path):
    (tmp_path / "out").mkdir()
    assert convviz.gallery(tiny_model(), random_images(1, size=(32, 32)), tmp_path / "out", kinds="sparsity", verbose=False).index.exists()


def test_a_failure_half_way_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(gallery_module, "_sparsity_figures", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        convviz.gallery(tiny_model(), random_images(1, size=(32, 32)), tmp_path / "out", **FAST)
    assert list(tmp_path.iterdir()) == []


def test_bad_inputs_fail_before_anything_is_written(tmp_path):
    out = tmp_path / "out"
    bad = tmp_path / "not_an_image.png"
    bad.write_text("hello")
    with pytest.raises(InputError, match="not_an_image"):
        convviz.gallery(tiny_model(), [str(bad)], out, verbose=False)
    with pytest.raises(InputError, match="Unknown figure kind"):
        convviz.gallery(tiny_model(), random_images(1, size=(32, 32)), out, kinds=["heatmap"], verbose=False)
    with pytest.raises(InputError, match="did you mean 'efficientnet_lite0'"):
        convviz.gallery("efficientnet_lite", random_images(1), out, verbose=False)
    with pytest.raises(InputError, match="Model file not found"):
        convviz.gallery(str(tmp_path / "missing.keras"), random_images(1), out, verbose=False)
    with pytest.raises(InputError, match="filters must be a positive integer"):
        convviz.gallery(tiny_model(), random_images(1, size=(32, 32)), out, filters=0, verbose=False)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_an_image.png"]


def test_load_images_reads_scikit_image_photos_and_files(tmp_path):
    import skimage.data

    paths = write_images(tmp_path, 1)
    images, names = load_images(["skimage:coffee", paths[0], paths[0]])
    assert np.array_equal(images[0], skimage.data.coffee())
    assert np.array_equal(images[1], np.asarray(Image.open(paths[0])))
    assert names == ["coffee", "photo0", "photo0 (2)"]
    batch = random_images(3, size=(8, 8))
    images, names = load_images(batch)
    assert len(images) == 3 and np.array_equal(images[2], batch[2]) and names[2] == "image 3"
    with pytest.raises(InputError, match="chelsea"):
        load_images(["skimage:chelse"])


def test_names_are_escaped_in_the_page(tmp_path):
    result = convviz.gallery(
        tiny_model(), random_images(1, size=(32, 32)), tmp_path / "g", kinds="gradcam",
        image_names=["<b>x</b>"], verbose=False,
    )
    page = result.index.read_text()
    assert "<b>x</b>:" not in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_progress_goes_to_stderr(tmp_path, capsys):
    convviz.gallery(tiny_model(), random_images(1, size=(32, 32)), tmp_path / "g", kinds=["gradcam", "sparsity"])
    err = capsys.readouterr().err
    assert "[1/2] gradcam" in err and "[2/2] sparsity" in err and "index.html" in err


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


HARNESS = """<!DOCTYPE html><html><body>
<iframe id="g" src="{src}" width="1200" height="900"></iframe>
<script>
window.addEventListener("load", function () {{
  var doc = document.getElementById("g").contentDocument;
  var out = [];
  for (var i = 0; i < doc.images.length; i++) {{
    var im = doc.images[i];
    out.push([im.getAttribute("src"), im.complete, im.naturalWidth]);
  }}
  var pre = document.createElement("pre");
  pre.id = "result";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}});
</script></body></html>"""


@pytest.mark.slow
def test_every_image_loads_in_headless_chromium(tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CONVVIZ_REQUIRE_BROWSER"):
            pytest.fail("CONVVIZ_REQUIRE_BROWSER is set but no chromium is installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    result = convviz.gallery(tiny_model(), random_images(2, size=(32, 32)), tmp_path / "g", **FAST)
    assert len(result.files("gradcam")) == 2
    harness = tmp_path / "harness.html"
    harness.write_text(HARNESS.format(src="g/index.html"))
    run = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--allow-file-access-from-files", "--virtual-time-budget=10000",
         "--dump-dom", harness.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    found = re.search(r'<pre id="result">(.*?)</pre>', run.stdout, re.S)
    assert found, f"chromium gave no result; stderr: {run.stderr[-2000:]}"
    loaded = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [src for src, _, _ in loaded] == [f.file for f in result.figures]
    broken = [src for src, complete, width in loaded if not (complete and width > 0)]
    assert broken == []


def test_any_registered_cam_method_is_a_gallery_kind(tmp_path):
    model = tiny_model()
    images = random_images(2, size=(32, 32))
    assert convviz.galleries.kinds() == (
        "activations", "filters", *convviz.methods.method_names("cam"), "cam_methods",
        *convviz.methods.method_names("attribution"), "faithfulness", "sparsity",
    )
    result = convviz.gallery(model, images, tmp_path / "g", kinds=["gradcam_plusplus", "gradcam"], verbose=False)
    assert [f.kind for f in result.figures] == ["gradcam"] * 2 + ["gradcam_plusplus"] * 2
    page = result.index.read_text()
    assert "<h2>Grad-CAM++</h2>" in page and "<h2>Grad-CAM</h2>" in page
    explained = convviz.explain(model, images, method="gradcam_plusplus")
    for i, fig in enumerate(f for f in result.figures if f.kind == "gradcam_plusplus"):
        assert fig.caption.startswith(f"Grad-CAM++ of class {explained.class_index[i]} ")
        assert (result.path / fig.file).stat().st_size > 0
    # The gallery itself plots: its figures as panels under their titles.
    fig = result.plot("gradcam_plusplus", ncols=2)
    assert [ax.get_title() for ax in fig.axes] == [f.title for f in result.figures if f.kind == "gradcam_plusplus"]
    assert len(result.plot().axes) == 4
    with pytest.raises(InputError, match="no figure of kind 'filters'"):
        result.plot("filters")


@pytest.fixture
def explain_calls(monkeypatch):
    """The method names whose explain ran, in order (every CAM base's explain counted)."""
    from convviz.methods import CAM, GradientFreeCAM

    calls = []
    for base in (CAM, GradientFreeCAM):
        def counted(self, images, *, class_index=None, real=base.explain):
            calls.append(self.name)
            return real(self, images, class_index=class_index)

        monkeypatch.setattr(base, "explain", counted)
    return calls


@pytest.fixture
def comparison_figures(monkeypatch):
    """The figures the gallery's plot.cam_methods call returned."""
    figures = []
    real = convviz.plot.cam_methods
    monkeypatch.setattr(convviz.plot, "cam_methods", lambda *a, **k: figures.append(real(*a, **k)) or figures[-1])
    return figures


def test_cam_methods_compares_the_selected_methods_reusing_their_explanations(
    tmp_path, explain_calls, comparison_figures, capsys
):
    model = tiny_model()
    images = random_images(2, size=(32, 32), seed=5)
    result = convviz.gallery(
        model, list(images), tmp_path / "g", kinds=["cam_methods", "scorecam", "gradcam"],
        class_names=["ant", "bee", "cow"], image_names=["first", "second"], verbose=False,
    )
    # Each method ran once, for its own section and the comparison.
    assert explain_calls == ["gradcam", "scorecam"]
    assert [f.kind for f in result.figures] == ["gradcam"] * 2 + ["scorecam"] * 2 + ["cam_methods"]
    (fig,) = comparison_figures
    assert len(fig.axes) == 2 * 2  # images x methods
    assert [ax.get_title() for ax in fig.axes[:2]] == ["Grad-CAM", "Score-CAM"]
    (figure,) = [f for f in result.figures if f.kind == "cam_methods"]
    assert figure.file == "cam_methods.png" and (result.path / figure.file).stat().st_size > 0
    # The caption names the layer and each image's explained class (the model's own top class).
    probs = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    assert figure.title == "CAM methods at conv_b" and "Grad-CAM, Score-CAM at layer conv_b (13\u00d713" in figure.caption
    for name, p, ax in zip(["first", "second"], probs, fig.axes[::2]):
        top = int(np.argmax(p))
        label = f"{['ant', 'bee', 'cow'][top]} (p={p[top]:.3f})"
        assert f"{name}: {label}" in figure.caption
        assert ax.get_ylabel() == f"{name}\n{label}"
    # The page shows it in its own section, after the per-method ones.
    page = result.index.read_text()
    section = re.search(r'<section id="cam_methods"><h2>CAM methods compared</h2>(.*?)</section>', page, re.S)
    assert section and 'src="cam_methods.png"' in section.group(1)
    assert page.index('id="scorecam"') < page.index('id="cam_methods"')
    assert 'href="#cam_methods"' in page
    assert capsys.readouterr().err == ""  # quiet: no progress bar from Score-CAM either


def test_cam_methods_alone_compares_every_registered_method_and_names_each_in_progress(
    tmp_path, explain_calls, comparison_figures, capsys
):
    methods = convviz.methods.method_names("cam")
    result = convviz.gallery(tiny_model(), random_images(1, size=(32, 32)), tmp_path / "g", kinds="cam_methods")
    assert explain_calls == methods
    assert [f.kind for f in result.figures] == ["cam_methods"]
    (fig,) = comparison_figures
    titles = [convviz.methods.get_method(m).title for m in methods]
    assert [ax.get_title() for ax in fig.axes] == titles
    lines = capsys.readouterr().err.splitlines()
    steps = [line for line in lines if line.startswith("[")]
    assert len(steps) == len(methods) + 1
    for k, (method, title) in enumerate(zip(methods, titles)):
        assert steps[k].startswith(f"[{k + 1}/{len(methods) + 1}] cam_methods: {method} ({title}) at conv_b")
    assert steps[-1].startswith(f"[{len(methods) + 1}/{len(methods) + 1}] cam_methods: {len(methods)} methods")
    assert re.search(r"<h2>CAM methods compared</h2>", result.index.read_text())


def test_cam_layer_sets_the_layer_of_every_cam_kind(tmp_path, explain_calls):
    model = tiny_model()
    images = random_images(2, size=(32, 32))
    result = convviz.gallery(
        model, images, tmp_path / "g", kinds=["layercam", "cam_methods"], cam_layer="conv_a", verbose=False
    )
    assert explain_calls == ["layercam"]
    layercam, comparison = result.figures[0], result.figures[-1]
    assert "at layer conv_a (30\u00d730 map" in layercam.caption
    assert comparison.title == "CAM methods at conv_a" and "Layer-CAM at layer conv_a" in comparison.caption
    with pytest.raises(convviz.errors.LayerNotFoundError, match="conv_c"):
        convviz.gallery(model, images, tmp_path / "bad", kinds="cam_methods", cam_layer="conv_c", verbose=False)
    assert not (tmp_path / "bad").exists()


# -- pixel attributions ----------------------------------------------------------------------


def test_any_registered_attribution_method_is_a_gallery_kind(tmp_path, capsys):
    model = tiny_model()
    images = random_images(2, size=(32, 32), seed=5)
    methods = convviz.methods.method_names("attribution")
    assert set(methods) >= {"saliency", "gradient_x_input", "smoothgrad", "integrated_gradients", "occlusion"}
    # cam_layer is for the CAMs: attribution methods, which take no layer, ignore it.
    result = convviz.gallery(
        model, list(images), tmp_path / "g", kinds=["sparsity", *methods[::-1], "gradcam"], cam_layer="conv_a",
        class_names=["ant", "bee", "cow"], image_names=["first", "second"], verbose=False,
    )
    assert capsys.readouterr().err == ""  # quiet: no progress bar from the interpolation steps either
    # Page order: the CAMs, then one figure per attribution method in registry order, then sparsity.
    assert [f.kind for f in result.figures] == ["gradcam"] * 2 + methods + ["sparsity"]
    probs = keras.ops.convert_to_numpy(model(images.astype("float32"), training=False))
    labels = [f"{['ant', 'bee', 'cow'][int(np.argmax(p))]} (p={p.max():.3f})" for p in probs]
    page = result.index.read_text()
    for figure in result.figures[2:-1]:
        title = convviz.methods.get_method(figure.kind).title
        assert figure.file == f"{figure.kind}.png" and (result.path / figure.file).stat().st_size > 0
        assert figure.title == f"{title}: first, second"
        assert figure.caption.startswith(f"{title}") and "32\u00d732 input pixels" in figure.caption
        for name, label in zip(["first", "second"], labels):
            assert f"{name}: {label}" in figure.caption
        assert f"<h2>{html.escape(title)}</h2>" in page
    assert page.index('id="gradcam"') < page.index('id="saliency"') < page.index('id="sparsity"')
    # Integrated gradients' caption reports each image's completeness gap.
    ig = next(f for f in result.figures if f.kind == "integrated_gradients")
    expected = convviz.attribute(model, images, method="integrated_gradients", verbose=False)
    assert "(steps=50, rule=gausslegendre, baseline=0.0" in ig.caption
    for i in range(2):
        gap, change = expected.details["completeness_gap"][i], expected.details["score_difference"][i]
        assert f"completeness gap {gap:+.3g} on a score change of {change:.3g}" in ig.caption
    assert "with 50 steps" in ig.caption and "completeness" not in result.figures[2].caption


def test_attribution_figure_is_the_all_view_of_the_methods_result(tmp_path):
    model = tiny_model()
    images = random_images(2, size=(32, 32), seed=5)
    result = convviz.gallery(
        model, list(images), tmp_path / "g", kinds="smoothgrad", image_names=["a", "b"], verbose=False
    )
    (figure,) = result.figures
    # Drawn independently: the method's own result, plotted with the view the gallery uses.
    explained = convviz.attribute(model, images, method="smoothgrad", verbose=False)
    rows = [f"{name}\nclass {c} (p={p[c]:.3f})" for name, c, p in zip("ab", explained.class_index, explained.predictions)]
    expected = tmp_path / "expected.png"
    fig = convviz.plot.attributions(images, explained.maps, view="all", titles=rows, figsize=(12.0, None))
    fig.savefig(expected, dpi=fig.dpi, bbox_inches="tight")
    with Image.open(result.path / figure.file) as got, Image.open(expected) as want:
        assert got.size == want.size
        assert np.array_equal(np.asarray(got), np.asarray(want))
    assert len(result.plot("smoothgrad").axes) == 1


def test_attribution_methods_show_their_progress(tmp_path, capsys):
    convviz.gallery(
        tiny_model(), random_images(2, size=(32, 32)), tmp_path / "g", kinds=["integrated_gradients", "saliency"]
    )
    err = capsys.readouterr().err
    assert "[1/2] saliency (Saliency), 2 image(s)" in err
    assert "[2/2] integrated_gradients (Integrated Gradients), 2 image(s)" in err
    assert "100/100" in err  # integrated gradients' own bar: 2 images x 50 steps


# -- faithfulness ----------------------------------------------------------------------------


def test_faithfulness_judges_the_selected_cams_with_the_maps_the_gallery_has(tmp_path, explain_calls, capsys):
    model = tiny_model()
    images = random_images(3, size=(32, 32), seed=5)
    result = convviz.gallery(
        model, list(images), tmp_path / "g", kinds=["sparsity", "faithfulness", "layercam", "gradcam"],
        cam_layer="conv_a", image_names=["a", "b", "c"],
    )
    # Each CAM explained once, for its section and the evaluation.
    assert explain_calls == ["gradcam", "layercam"]
    assert [f.kind for f in result.figures] == ["gradcam"] * 3 + ["layercam"] * 3 + ["faithfulness", "sparsity"]
    figure = result.figures[-2]
    assert figure.file == "faithfulness.png" and (result.path / figure.file).stat().st_size > 0
    assert figure.title == "Faithfulness of Grad-CAM, Layer-CAM"
    # The caption's numbers are convviz.evaluate's on the same maps (computed here on their own).
    table = convviz.evaluate(model, images, methods=["gradcam", "layercam"], method_options={
        "gradcam": {"layer": "conv_a"}, "layercam": {"layer": "conv_a"}}, verbose=False)
    summary = table.summary()
    assert "at layer conv_a" in figure.caption and "3 image(s)" in figure.caption
    for method, title in (("gradcam", "Grad-CAM"), ("layercam", "Layer-CAM")):
        for metric in table.metrics:
            row = summary.row(method, metric)
            assert f"{title} {row.mean:.3f} [{row.low:.3f}, {row.high:.3f}]" in figure.caption
    assert "Deletion (lower is better)" in figure.caption and "MuFidelity (higher is better)" in figure.caption
    rows = (result.path / "faithfulness.csv").read_text().splitlines()
    assert rows[0] == "method,image,name,metric,value" and len(rows) == 1 + 2 * 3 * 5 and rows[1].startswith("gradcam,0,a,")
    assert (result.path / "faithfulness_summary.csv").read_text() == summary.to_csv()
    page = result.index.read_text()
    assert page.index('id="layercam"') < page.index('id="faithfulness"') < page.index('id="sparsity"')
    assert "<h2>Faithfulness</h2>" in page
    steps = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[")]
    # Two maps, three metric computations for each method, the sparsity curve.
    assert [line.split("  (")[0] for line in steps] == [
        "[1/9] gradcam (Grad-CAM) at conv_a, 3 image(s)", "[2/9] layercam (Layer-CAM) at conv_a, 3 image(s)",
        "[3/9] gradcam: deletion and insertion", "[4/9] gradcam: Average Drop and Increase in Confidence",
        "[5/9] gradcam: MuFidelity", "[6/9] layercam: deletion and insertion",
        "[7/9] layercam: Average Drop and Increase in Confidence", "[8/9] layercam: MuFidelity", "[9/9] sparsity",
    ]


def test_faithfulness_alone_judges_gradcam(tmp_path, explain_calls):
    result = convviz.gallery(tiny_model(), random_images(2, size=(32, 32)), tmp_path / "g", kinds="faithfulness",
                             verbose=False)
    assert explain_calls == ["gradcam"]
    assert [f.kind for f in result.figures] == ["faithfulness"]
    assert result.figures[0].title == "Faithfulness of Grad-CAM" and "at layer conv_b" in result.figures[0].caption
    assert sorted(p.name for p in result.path.iterdir()) == [
        "faithfulness.csv", "faithfulness.png", "faithfulness_summary.csv", "gallery.json", "index.html"]


def test_no_method_may_take_a_figure_kind_s_name():
    from convviz.methods.core import RESERVED

    assert {"activations", "filters", "cam_methods", "faithfulness", "sparsity"} <= RESERVED
    with pytest.raises(TypeError, match="gallery figure kind"):
        class Faithfulness(convviz.methods.GradCAM):
            name = "faithfulness"
