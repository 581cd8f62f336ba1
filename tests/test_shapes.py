"""convviz.shapes: the offline dataset, its boxes, and its cache folder."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from helpers import file_tree
from PIL import Image

from convviz import data, shapes
from convviz.errors import InputError

SMALL = {"n_train": 3, "n_val": 2, "n_test": 2, "image_size": (48, 48)}


def test_offline_dataset_layout_and_boxes_file(tmp_path):
    base = shapes.make_offline_dataset(tmp_path / "shapes", **SMALL)
    for split, indices in {"train": range(0, 3), "validation": range(3, 5), "test": range(5, 7)}.items():
        assert sorted(os.listdir(base / split)) == ["boxes.json", "circle", "triangle"]
        for shape in ("circle", "triangle"):
            assert sorted(os.listdir(base / split / shape)) == sorted(f"{shape}.{i}.jpg" for i in indices)
        boxes = shapes.load_boxes(base, split)
        assert set(boxes) == {f"{s}.{i}.jpg" for s in ("circle", "triangle") for i in indices}
        for name, box in boxes.items():
            assert box.label == name.split(".")[0]
            assert 0 <= box.x0 < box.x1 <= 48 and 0 <= box.y0 < box.y1 <= 48
    with Image.open(base / "train" / "circle" / "circle.0.jpg") as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (48, 48), "RGB")
    manifest = json.loads((base / "convviz_dataset.json").read_text())
    assert manifest["seed"] == 0 and manifest["classes"] == ["circle", "triangle"]


def test_offline_dataset_is_deterministic(tmp_path):
    a = file_tree(shapes.make_offline_dataset(tmp_path / "a", seed=3, **SMALL))
    b = file_tree(shapes.make_offline_dataset(tmp_path / "b", seed=3, **SMALL))
    c = file_tree(shapes.make_offline_dataset(tmp_path / "c", seed=4, **SMALL))
    assert len(a) == 2 * 7 + 3 + 1
    assert a == b
    images = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != c[k] for k in images)
    # An image depends on (seed, class, index) only, not on the split sizes.
    d = shapes.make_offline_dataset(tmp_path / "d", seed=3, n_train=1, n_val=1, n_test=1, image_size=(48, 48))
    assert (d / "train" / "circle" / "circle.0.jpg").read_bytes() == a[os.path.join("train", "circle", "circle.0.jpg")]


def test_options_by_position_warn_and_give_the_same_result(tmp_path):
    image, box = shapes.render_example("circle", 4, image_size=(40, 40), seed=2)
    with pytest.warns(DeprecationWarning, match="image_size, seed to render_example.. by position") as record:
        old_image, old_box = shapes.render_example("circle", 4, (40, 40), 2)
    assert record[0].filename == __file__
    np.testing.assert_array_equal(old_image, image)
    assert old_box == box
    with pytest.raises(TypeError, match="multiple values"):
        shapes.render_example("circle", 4, (40, 40), image_size=(40, 40))

    new = file_tree(shapes.make_offline_dataset(tmp_path / "new", n_train=2, n_val=1, n_test=1, image_size=(32, 32), seed=1))
    with pytest.warns(DeprecationWarning, match="n_train, n_val, n_test, image_size, seed to make_offline_dataset") as record:
        old = file_tree(shapes.make_offline_dataset(tmp_path / "old", 2, 1, 1, (32, 32), 1))
    assert record[0].filename == __file__
    assert old == new
    with pytest.raises(TypeError):  # classes never was positional
        shapes.make_offline_dataset(tmp_path / "x", 2, 1, 1, (32, 32), 1, ("circle", "square"))
    assert not (tmp_path / "x").exists()


def test_offline_boxes_are_tight_around_the_drawn_objects(tmp_path):
    from skimage.measure import label, regionprops

    base = shapes.make_offline_dataset(
        tmp_path / "png", n_train=12, n_val=1, n_test=1, image_size=(96, 96), image_format="png", seed=5
    )
    fill = {"circle": [], "triangle": []}
    for name, box in shapes.load_boxes(base, "train").items():
        image = np.asarray(Image.open(base / "train" / box.label / name))
        # Independent of the generator: the object is the one flat colour that fills
        # much of the box; its largest connected region must span exactly the box.
        inside = image[box.y0 : box.y1, box.x0 : box.x1].reshape(-1, 3)
        colours, counts = np.unique(inside, axis=0, return_counts=True)
        colour = colours[np.argmax(counts)]
        mask = np.all(image == colour, axis=-1)
        region = max(regionprops(label(mask, connectivity=1)), key=lambda r: r.area)
        assert region.bbox == (box.y0, box.x0, box.y1, box.x1), name
        box_area = (box.y1 - box.y0) * (box.x1 - box.x0)
        fill[box.label].append(region.area / box_area)
        assert mask.sum() - region.area <= 0.002 * mask.size  # nothing else has that colour
    # The classes differ in shape: a disc fills pi/4 of its box, a triangle about half.
    assert min(fill["circle"]) > 0.7
    assert max(fill["triangle"]) < 0.62


def test_offline_dataset_refuses_overwrite_and_is_atomic(tmp_path, monkeypatch):
    base = shapes.make_offline_dataset(tmp_path / "shapes", **SMALL)
    before = file_tree(base)
    with pytest.raises(InputError, match="overwrite=True"):
        shapes.make_offline_dataset(base, **SMALL)

    calls = {"n": 0}
    real = shapes.render_example

    def crash_midway(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(shapes, "render_example", crash_midway)
    with pytest.raises(RuntimeError, match="simulated crash"):
        shapes.make_offline_dataset(base, seed=9, overwrite=True, **SMALL)
    with pytest.raises(RuntimeError, match="simulated crash"):
        shapes.make_offline_dataset(tmp_path / "fresh", **SMALL)
    assert file_tree(base) == before  # the old dataset survived the failed rewrite
    assert not (tmp_path / "fresh").exists()
    assert sorted(os.listdir(tmp_path)) == ["shapes"]  # no temp dirs left behind


def test_offline_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="n_train"):
        shapes.make_offline_dataset(tmp_path / "x", n_train=0)
    with pytest.raises(InputError, match="Unknown shape"):
        shapes.make_offline_dataset(tmp_path / "x", classes=("circle", "hexagon"))
    with pytest.raises(InputError, match="at least two"):
        shapes.make_offline_dataset(tmp_path / "x", classes=("circle",))
    with pytest.raises(InputError, match="image_format"):
        shapes.make_offline_dataset(tmp_path / "x", image_format="gif")
    with pytest.raises(InputError, match="split"):
        shapes.load_boxes(tmp_path, "training")
    with pytest.raises(InputError, match="No bounding boxes"):
        shapes.load_boxes(tmp_path, "train")
    assert not (tmp_path / "x").exists()


def test_three_classes_and_squares(tmp_path):
    base = shapes.make_offline_dataset(
        tmp_path / "three", n_train=2, n_val=1, n_test=1, image_size=(32, 32),
        classes=("square", "circle", "triangle"), image_format="png",
    )
    assert sorted(os.listdir(base / "test")) == ["boxes.json", "circle", "square", "triangle"]
    assert {b.label for b in shapes.load_boxes(base, "train").values()} == {"square", "circle", "triangle"}


def test_ensure_offline_dataset_generates_once_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVVIZ_DATA", str(tmp_path / "cache"))
    assert shapes.default_dataset_dir() == tmp_path / "cache"
    base = shapes.ensure_offline_dataset(**SMALL)
    assert base == tmp_path / "cache"
    stamp = (base / "convviz_dataset.json").stat().st_mtime_ns
    assert shapes.ensure_offline_dataset(**SMALL) == base
    assert (base / "convviz_dataset.json").stat().st_mtime_ns == stamp
    # Other arguments: our own cache gets regenerated.
    shapes.ensure_offline_dataset(**{**SMALL, "n_train": 4})
    assert len(os.listdir(base / "train" / "circle")) == 4
    # A folder convviz did not write is never replaced.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with pytest.raises(InputError, match="not written by convviz"):
        shapes.ensure_offline_dataset(foreign, **SMALL)


def test_default_dataset_dir_under_keras_home(monkeypatch, tmp_path):
    monkeypatch.delenv("CONVVIZ_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert shapes.default_dataset_dir() == tmp_path / "datasets" / "convviz_shapes"


def test_default_dataset_dir_is_under_keras_cache_fallback(monkeypatch, tmp_path):
    # Keras' rule: a home folder that cannot be written sends the cache to /tmp/.keras.
    monkeypatch.delenv("CONVVIZ_DATA", raising=False)
    monkeypatch.delenv("KERAS_HOME", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    assert shapes.default_dataset_dir() == home / ".keras" / "datasets" / "convviz_shapes"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: path != str(home) and real_access(path, mode))
    expected = os.path.join("/tmp", ".keras", "datasets", "convviz_shapes")
    assert str(shapes.default_dataset_dir()) == expected


def test_data_reexports_the_offline_dataset():
    for name in shapes.__all__:
        assert getattr(data, name) is getattr(shapes, name), name
        assert name in data.__all__, name
    # Private names other code reads from convviz.data (tests/conftest.py, benchmarks).
    assert data._GENERATOR_VERSION is shapes._GENERATOR_VERSION
    assert data._MANIFEST == shapes._MANIFEST
    assert data.SPLITS == shapes.SPLITS


def test_manifest_keeps_the_generator_name_older_caches_were_made_with(tmp_path):
    # ensure_offline_dataset compares manifests: the move must not invalidate old caches.
    base = shapes.make_offline_dataset(tmp_path / "shapes", **SMALL)
    manifest = json.loads((base / "convviz_dataset.json").read_text())
    assert manifest["generator"] == "convviz.data.make_offline_dataset"
    assert shapes.ensure_offline_dataset(base, **SMALL) == base
