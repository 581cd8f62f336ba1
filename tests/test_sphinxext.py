import re

import pytest
from PIL import Image

sphinx_build = pytest.importorskip("sphinx.cmd.build", reason="the docs extra (sphinx) is not installed")

from helpers import random_images  # noqa: E402
from test_gallery import tiny_model  # noqa: E402

from convviz import galleries  # noqa: E402

gallery_module = galleries

PAGE = """Gallery
=======

.. convviz-gallery::
   :model: models/tiny.keras
   :images: photo.png skimage:coffee
   :kinds: gradcam activations
   :layers: conv_b
   :class-names: ant, bee, cow
"""


def make_project(root):
    (root / "models").mkdir(parents=True)
    tiny_model().save(root / "models" / "tiny.keras")
    Image.fromarray(random_images(1, size=(32, 32))[0]).save(root / "photo.png")
    (root / "conf.py").write_text('extensions = ["convviz.sphinxext"]\nproject = "t"\n')
    (root / "index.rst").write_text(PAGE)


def build(src, out) -> int:
    return sphinx_build.build_main(["-W", "-q", "-b", "html", str(src), str(out)])


@pytest.mark.slow
def test_directive_renders_captioned_figures_and_caches_them(tmp_path, monkeypatch):
    src, out = tmp_path / "src", tmp_path / "out"
    make_project(src)
    calls = []
    real = gallery_module.gallery
    monkeypatch.setattr(gallery_module, "gallery", lambda *a, **k: calls.append(a) or real(*a, **k))

    assert build(src, out) == 0
    page = (out / "index.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(images) == 4  # two Grad-CAM overlays, one activation grid per image
    for src_attr in images:
        assert (out / src_attr).is_file()
        assert f'href="{src_attr}"' in page  # each picture links to itself, at full size
    assert "(p=" in page and "conv_b" in page and "coffee" in page
    assert any(w in page for w in ("ant (p=", "bee (p=", "cow (p="))
    assert len(calls) == 1

    # A fresh build with unchanged inputs reuses the cached figures.
    assert build(src, tmp_path / "out2") == 0
    assert len(calls) == 1
    # Changing the page's options renders again.
    (src / "index.rst").write_text(PAGE.replace(":layers: conv_b", ":layers: conv_a"))
    assert build(src, tmp_path / "out3") == 0
    assert len(calls) == 2


@pytest.mark.slow
def test_directive_takes_the_cam_methods_kind_and_a_cam_layer(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_project(src)
    (src / "index.rst").write_text(
        PAGE.replace(":kinds: gradcam activations", ":kinds: cam_methods gradcam hirescam")
        .replace(":layers: conv_b", ":cam-layer: conv_a")
    )
    assert build(src, out) == 0
    page = (out / "index.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(images) == 2 + 2 + 1  # Grad-CAM and HiResCAM per image, then the comparison
    assert images[-1].endswith("/cam_methods.png") and (out / images[-1]).is_file()
    assert "CAM methods at conv_a" in page and "Grad-CAM, HiResCAM at layer conv_a" in page


@pytest.mark.slow
def test_directive_takes_attribution_kinds(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    make_project(src)
    (src / "index.rst").write_text(
        PAGE.replace(":kinds: gradcam activations", ":kinds: integrated_gradients occlusion").replace("   :layers: conv_b\n", "")
    )
    assert build(src, out) == 0
    page = (out / "index.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert [src_attr.rsplit("/", 1)[-1] for src_attr in images] == ["integrated_gradients.png", "occlusion.png"]
    assert all((out / src_attr).is_file() for src_attr in images)
    assert "Integrated Gradients: photo, coffee" in page and "completeness gap" in page


@pytest.mark.slow
def test_a_broken_directive_fails_the_build_with_a_message(tmp_path, capsys):
    src = tmp_path / "src"
    make_project(src)
    (src / "index.rst").write_text(PAGE.replace("models/tiny.keras", "models/missing.keras"))
    assert build(src, tmp_path / "out") != 0
    err = capsys.readouterr().err
    assert "convviz-gallery failed" in err and "missing.keras" in err


EVALUATION = """Faithfulness
============

.. convviz-evaluation::
   :model: models/tiny.keras
   :images: photo.png skimage:coffee
   :methods: gradcam saliency
   :metric-options: deletion.steps=4 mufidelity.samples=10
   :bootstrap: 200
"""


@pytest.mark.slow
def test_evaluation_directive_renders_the_ranking_and_caches_it(tmp_path, monkeypatch):
    import convviz
    from convviz import evaluation

    src = tmp_path / "src"
    make_project(src)
    (src / "index.rst").write_text(EVALUATION)
    calls = []
    real = evaluation.evaluate
    monkeypatch.setattr(convviz, "evaluate", lambda *a, **k: calls.append(k) or real(*a, **k))

    assert build(src, tmp_path / "out") == 0
    page = (tmp_path / "out" / "index.html").read_text()
    assert len(calls) == 1 and calls[0]["bootstrap"] == 200 and calls[0]["methods"] == ["gradcam", "saliency"]
    # The table: a row per method, a column per metric (with its direction) and the mean rank.
    table = re.search(r"<table.*?</table>", page, re.S).group(0)
    headers = re.findall(r"<th[^>]*><p>(.*?)</p>", table)
    assert headers == ["method", "Deletion \u2193", "Insertion \u2191", "Average Drop \u2193",
                       "Increase in Confidence \u2191", "MuFidelity \u2191", "mean rank"]
    cached = next((src / "_convviz_cache").glob("evaluation-*"))
    summary = evaluation.EvaluationTable.load(cached / "evaluation.json").summary()
    for method, title in (("gradcam", "Grad-CAM"), ("saliency", "Saliency")):
        row = re.search(rf"<tr[^>]*><td><p>{title}</p></td>(.*?)</tr>", table, re.S).group(1)
        for metric in summary.metrics:
            value = f"{summary.row(method, metric).mean:.3f} ({summary.ranks(metric)[method]})"
            assert value in row
    assert table.count("<strong>") >= len(summary.metrics)  # the first by each metric
    assert "2 image(s)" in page and "deletion and insertion with steps=4; MuFidelity with samples=10" in page
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert [s.rsplit("/", 1)[-1] for s in images] == ["summary.png", "curves.png"]
    assert all((tmp_path / "out" / s).is_file() for s in images)

    # Unchanged: the cached report; changed options: computed again.
    assert build(src, tmp_path / "out2") == 0 and len(calls) == 1
    (src / "index.rst").write_text(EVALUATION.replace(":bootstrap: 200", ":bootstrap: 100\n   :figures: summary"))
    assert build(src, tmp_path / "out3") == 0 and len(calls) == 2
    page = (tmp_path / "out3" / "index.html").read_text()
    assert [s.rsplit("/", 1)[-1] for s in re.findall(r'<img[^>]+src="([^"]+)"', page)] == ["summary.png"]


@pytest.mark.slow
def test_evaluation_directive_on_the_chapter_s_data_with_boxes(tmp_path, monkeypatch):
    from convviz import data

    dataset = data.make_offline_dataset(tmp_path / "shapes", n_train=1, n_val=1, n_test=3, image_size=(48, 48))
    monkeypatch.setattr(data, "chapter_dataset", lambda: data.ChapterDataset(dataset, "test data", True))
    src = tmp_path / "src"
    make_project(src)
    (src / "index.rst").write_text(
        EVALUATION.replace("   :images: photo.png skimage:coffee\n", "   :dataset: test 4\n")
        .replace(":methods: gradcam saliency", ":methods: gradcam\n   :metrics: all\n   :cam-layer: conv_a\n"
                 "   :randomization-curves: gradcam")
    )
    assert build(src, tmp_path / "out") == 0
    page = (tmp_path / "out" / "index.html").read_text()
    table = re.search(r"<table.*?</table>", page, re.S).group(0)
    for header in ("Pointing game \u2191", "Energy in the box \u2191", "Randomization \u2193"):
        assert header in table
    assert "4 image(s)" in page and "layer=conv_a for Grad-CAM" in page
    assert [s.rsplit("/", 1)[-1] for s in re.findall(r'<img[^>]+src="([^"]+)"', page)] == [
        "summary.png", "curves.png", "randomization.png"]
    assert "Model randomization: Grad-CAM" in page


@pytest.mark.slow
def test_a_broken_evaluation_directive_fails_the_build(tmp_path, capsys):
    src = tmp_path / "src"
    make_project(src)
    for broken, message in ((EVALUATION.replace("gradcam saliency", "gradcm"), "did you mean 'gradcam'"),
                            (EVALUATION.replace("   :images: photo.png skimage:coffee\n", ""), ":images: or :dataset:")):
        (src / "index.rst").write_text(broken)
        assert build(src, tmp_path / "out") != 0
        err = capsys.readouterr().err
        assert "convviz-evaluation failed" in err and message in err
