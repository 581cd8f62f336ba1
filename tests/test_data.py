"""convviz.data: the chapter's subsets, the pipeline, augmentation, the offline dataset."""

from __future__ import annotations

import io
import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from convviz import data
from convviz.errors import InputError

tf = pytest.importorskip("tensorflow")


def _tree(root) -> dict[str, bytes]:
    root = str(root)
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


# --------------------------------------------------------------------------- #
# make_subsets
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def kaggle_train(tmp_path_factory):
    """A Kaggle-style train/ folder: cat.N.jpg and dog.N.jpg, N = 0..2599, tiny JPEGs."""
    root = tmp_path_factory.mktemp("kaggle") / "train"
    root.mkdir()
    for category in ("cat", "dog"):
        for i in range(2600):  # a few more than the subsets use
            buf = io.BytesIO()
            # Tiny but distinct content, so a copy can be traced to its source.
            pixels = np.full((8, 8, 3), (i % 256, i // 256, 0 if category == "cat" else 255), np.uint8)
            Image.fromarray(pixels).save(buf, format="JPEG")
            (root / f"{category}.{i}.jpg").write_bytes(buf.getvalue())
    return root


def test_make_subsets_copies_the_chapters_exact_file_lists(kaggle_train, tmp_path):
    out = data.make_subsets(kaggle_train, tmp_path / "dogs_vs_cats_small")
    assert out == tmp_path / "dogs_vs_cats_small"
    assert sorted(os.listdir(out)) == ["test", "train", "validation"]
    for split, (start, stop) in {"train": (0, 1000), "validation": (1000, 1500), "test": (1500, 2500)}.items():
        assert sorted(os.listdir(out / split)) == ["cat", "dog"]
        for category in ("cat", "dog"):
            expected = {f"{category}.{i}.jpg" for i in range(start, stop)}
            assert set(os.listdir(out / split / category)) == expected
            probe = f"{category}.{start + 7}.jpg"
            assert (out / split / category / probe).read_bytes() == (kaggle_train / probe).read_bytes()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temp dirs left


def test_make_subsets_refuses_to_overwrite_unless_asked(kaggle_train, tmp_path):
    target = tmp_path / "small"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    with pytest.raises(InputError, match="overwrite=True"):
        data.make_subsets(kaggle_train, target)
    assert (target / "mine.txt").read_text() == "keep"
    data.make_subsets(kaggle_train, target, overwrite=True)
    assert sorted(os.listdir(target)) == ["test", "train", "validation"]


def test_make_subsets_missing_source_files_write_nothing(tmp_path):
    src = tmp_path / "train"
    src.mkdir()
    for i in range(10):
        (src / f"cat.{i}.jpg").write_bytes(b"x")
    with pytest.raises(InputError, match=r"missing.*cat\.10\.jpg"):
        data.make_subsets(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="not a directory"):
        data.make_subsets(tmp_path / "nope", tmp_path / "out")


# --------------------------------------------------------------------------- #
# The offline dataset
# --------------------------------------------------------------------------- #

SMALL = {"n_train": 3, "n_val": 2, "n_test": 2, "image_size": (48, 48)}


def test_offline_dataset_layout_and_boxes_file(tmp_path):
    base = data.make_offline_dataset(tmp_path / "shapes", **SMALL)
    for split, indices in {"train": range(0, 3), "validation": range(3, 5), "test": range(5, 7)}.items():
        assert sorted(os.listdir(base / split)) == ["boxes.json", "circle", "triangle"]
        for shape in ("circle", "triangle"):
            assert sorted(os.listdir(base / split / shape)) == sorted(f"{shape}.{i}.jpg" for i in indices)
        boxes = data.load_boxes(base, split)
        assert set(boxes) == {f"{s}.{i}.jpg" for s in ("circle", "triangle") for i in indices}
        for name, box in boxes.items():
            assert box.label == name.split(".")[0]
            assert 0 <= box.x0 < box.x1 <= 48 and 0 <= box.y0 < box.y1 <= 48
    with Image.open(base / "train" / "circle" / "circle.0.jpg") as im:
        assert (im.format, im.size, im.mode) == ("JPEG", (48, 48), "RGB")
    manifest = json.loads((base / "convviz_dataset.json").read_text())
    assert manifest["seed"] == 0 and manifest["classes"] == ["circle", "triangle"]


def test_offline_dataset_is_deterministic(tmp_path):
    a = _tree(data.make_offline_dataset(tmp_path / "a", seed=3, **SMALL))
    b = _tree(data.make_offline_dataset(tmp_path / "b", seed=3, **SMALL))
    c = _tree(data.make_offline_dataset(tmp_path / "c", seed=4, **SMALL))
    assert len(a) == 2 * 7 + 3 + 1
    assert a == b
    images = [k for k in a if k.endswith(".jpg")]
    assert all(a[k] != c[k] for k in images)
    # An image depends on (seed, class, index) only, not on the split sizes.
    d = data.make_offline_dataset(tmp_path / "d", seed=3, n_train=1, n_val=1, n_test=1, image_size=(48, 48))
    assert (d / "train" / "circle" / "circle.0.jpg").read_bytes() == a[os.path.join("train", "circle", "circle.0.jpg")]


def test_offline_boxes_are_tight_around_the_drawn_objects(tmp_path):
    from skimage.measure import label, regionprops

    base = data.make_offline_dataset(
        tmp_path / "png", n_train=12, n_val=1, n_test=1, image_size=(96, 96), image_format="png", seed=5
    )
    fill = {"circle": [], "triangle": []}
    for name, box in data.load_boxes(base, "train").items():
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
    base = data.make_offline_dataset(tmp_path / "shapes", **SMALL)
    before = _tree(base)
    with pytest.raises(InputError, match="overwrite=True"):
        data.make_offline_dataset(base, **SMALL)

    calls = {"n": 0}
    real = data.render_example

    def crash_midway(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 5:
            raise RuntimeError("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(data, "render_example", crash_midway)
    with pytest.raises(RuntimeError, match="simulated crash"):
        data.make_offline_dataset(base, seed=9, overwrite=True, **SMALL)
    with pytest.raises(RuntimeError, match="simulated crash"):
        data.make_offline_dataset(tmp_path / "fresh", **SMALL)
    assert _tree(base) == before  # the old dataset survived the failed rewrite
    assert not (tmp_path / "fresh").exists()
    assert sorted(os.listdir(tmp_path)) == ["shapes"]  # no temp dirs left behind


def test_offline_dataset_rejects_bad_arguments(tmp_path):
    with pytest.raises(InputError, match="n_train"):
        data.make_offline_dataset(tmp_path / "x", n_train=0)
    with pytest.raises(InputError, match="Unknown shape"):
        data.make_offline_dataset(tmp_path / "x", classes=("circle", "hexagon"))
    with pytest.raises(InputError, match="at least two"):
        data.make_offline_dataset(tmp_path / "x", classes=("circle",))
    with pytest.raises(InputError, match="image_format"):
        data.make_offline_dataset(tmp_path / "x", image_format="gif")
    with pytest.raises(InputError, match="split"):
        data.load_boxes(tmp_path, "training")
    with pytest.raises(InputError, match="No bounding boxes"):
        data.load_boxes(tmp_path, "train")
    assert not (tmp_path / "x").exists()


def test_three_classes_and_squares(tmp_path):
    base = data.make_offline_dataset(
        tmp_path / "three", n_train=2, n_val=1, n_test=1, image_size=(32, 32),
        classes=("square", "circle", "triangle"), image_format="png",
    )
    assert sorted(os.listdir(base / "test")) == ["boxes.json", "circle", "square", "triangle"]
    assert {b.label for b in data.load_boxes(base, "train").values()} == {"square", "circle", "triangle"}


def test_ensure_offline_dataset_generates_once_and_reuses(tmp_path, monkeypatch):
    monkeypatch.setenv("CONVVIZ_DATA", str(tmp_path / "cache"))
    assert data.default_dataset_dir() == tmp_path / "cache"
    base = data.ensure_offline_dataset(**SMALL)
    assert base == tmp_path / "cache"
    stamp = (base / "convviz_dataset.json").stat().st_mtime_ns
    assert data.ensure_offline_dataset(**SMALL) == base
    assert (base / "convviz_dataset.json").stat().st_mtime_ns == stamp
    # Other arguments: our own cache gets regenerated.
    data.ensure_offline_dataset(**{**SMALL, "n_train": 4})
    assert len(os.listdir(base / "train" / "circle")) == 4
    # A folder convviz did not write is never replaced.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    with pytest.raises(InputError, match="not written by convviz"):
        data.ensure_offline_dataset(foreign, **SMALL)


def test_default_dataset_dir_under_keras_home(monkeypatch, tmp_path):
    monkeypatch.delenv("CONVVIZ_DATA", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert data.default_dataset_dir() == tmp_path / "datasets" / "convviz_shapes"


# --------------------------------------------------------------------------- #
# load_datasets
# --------------------------------------------------------------------------- #


def test_load_datasets_reads_the_offline_layout(tmp_path):
    base = data.make_offline_dataset(tmp_path / "shapes", n_train=5, n_val=3, n_test=4, image_size=(40, 40))
    splits = data.load_datasets(base, image_size=(32, 32), batch_size=4, seed=1)
    assert isinstance(splits, data.Datasets)
    train, validation, test = splits
    assert train.class_names == ["circle", "triangle"]
    images, labels = next(iter(train))
    assert tuple(images.shape) == (4, 32, 32, 3) and images.dtype == tf.float32
    assert float(tf.reduce_max(images)) > 1.0  # 0-255, the models rescale
    assert sum(int(b[0].shape[0]) for b in validation) == 6
    # Unshuffled test split: labels line up with file paths (and so with load_boxes).
    boxes = data.load_boxes(base, "test")
    test_labels = np.concatenate([b[1].numpy() for b in test])
    expected = [test.class_names.index(boxes[os.path.basename(p)].label) for p in test.file_paths]
    assert test_labels.tolist() == expected


def test_load_datasets_missing_split(tmp_path):
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(InputError, match="validation"):
        data.load_datasets(tmp_path)


# --------------------------------------------------------------------------- #
# Augmentation
# --------------------------------------------------------------------------- #


def test_data_augmentation_is_the_chapters_stage():
    aug = data.data_augmentation()
    assert isinstance(aug, keras.Sequential) and aug.name == "data_augmentation"
    flip, rotation, zoom = aug.layers
    assert isinstance(flip, keras.layers.RandomFlip) and flip.get_config()["mode"] == "horizontal"
    assert isinstance(rotation, keras.layers.RandomRotation)
    assert rotation.get_config()["factor"] in (0.1, (-0.1, 0.1), [-0.1, 0.1])
    assert isinstance(zoom, keras.layers.RandomZoom)
    assert zoom.get_config()["height_factor"] in (0.2, (-0.2, 0.2), [-0.2, 0.2])
    assert zoom.get_config()["width_factor"] is None  # None: zoom keeps the aspect ratio


def test_augmentation_in_dataset_map_and_inside_a_model():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, 24, 24, 3)).astype("float32")
    labels = np.arange(8)
    ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    # The same object serves tf.data (any backend) and a model; also plain layers.
    for augmentation in (None, data.data_augmentation(seed=1), [keras.layers.RandomFlip("horizontal", seed=3)]):
        out = list(data.augment_dataset(ds, augmentation))
        got = np.concatenate([b[0].numpy() for b in out])
        assert got.shape == images.shape
        assert np.concatenate([b[1].numpy() for b in out]).tolist() == labels.tolist()
        assert not np.allclose(got, images)  # something was transformed

    inputs = keras.Input((24, 24, 3))
    model = keras.Model(inputs, data.data_augmentation(seed=1)(inputs))
    np.testing.assert_allclose(model.predict(images, verbose=0), images, atol=1e-4)  # inactive
    trained = keras.ops.convert_to_numpy(model(images, training=True))
    assert not np.allclose(trained, images)


def test_augmented_examples_and_figure(tmp_path):
    image = np.asarray(Image.open(_one_png(tmp_path)))
    a = data.augmented_examples(image, n=9, seed=2)
    b = data.augmented_examples(image, n=9, seed=2)
    assert a.shape == (9, *image.shape) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert len({x.tobytes() for x in a}) == 9
    floats = data.augmented_examples(image / 255.0, n=2, seed=2)
    assert floats.dtype == np.float32 and floats.max() <= 1.0 + 1e-6

    fig = data.plot_augmented(image, seed=2, save=tmp_path / "aug.png")
    assert len(fig.axes) == 9 and (tmp_path / "aug.png").stat().st_size > 0
    with pytest.raises(InputError, match="positive"):
        data.augmented_examples(image, n=0)


def _one_png(tmp_path):
    img, _ = data.render_example("triangle", 1, image_size=(40, 40))
    path = tmp_path / "one.png"
    Image.fromarray(img).save(path)
    return path
