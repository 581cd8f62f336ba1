"""convviz.data: the chapter's subsets, the tutorials' data choice, the pipeline, augmentation.

The offline shapes dataset itself is tested in test_shapes.py.
"""

from __future__ import annotations

import io
import os

import keras
import numpy as np
import pytest
from PIL import Image

from convviz import data
from convviz.errors import InputError

tf = pytest.importorskip("tensorflow")


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
# chapter_dataset: the tutorials' "which data" choice
# --------------------------------------------------------------------------- #

SMALL = {"n_train": 3, "n_val": 2, "n_test": 2, "image_size": (48, 48)}


def test_chapter_dataset_uses_the_kaggle_folder_from_the_environment(kaggle_train, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVVIZ_DOGS_VS_CATS", str(kaggle_train))
    monkeypatch.setenv("CONVVIZ_DATA", str(tmp_path / "cache" / "convviz_shapes"))
    chosen = data.chapter_dataset(**SMALL)
    assert isinstance(chosen, data.ChapterDataset) and not chosen.offline
    assert chosen.base_dir == tmp_path / "cache" / "dogs_vs_cats_small"  # next to the offline data
    assert str(kaggle_train) in chosen.description and "Kaggle" in chosen.description
    assert "\n" not in chosen.description
    for split, indices in data.CHAPTER_SUBSETS.items():
        for category in ("cat", "dog"):
            files = os.listdir(chosen.base_dir / split / category)
            assert sorted(files) == sorted(f"{category}.{i}.jpg" for i in indices)
    assert not (tmp_path / "cache" / "convviz_shapes").exists()  # no offline data made

    # Copied once: a second call reuses the folder without copying.
    def no_copy(*args, **kwargs):
        raise AssertionError("the subsets were copied again")

    monkeypatch.setattr(data, "make_subsets", no_copy)
    again = data.chapter_dataset()
    assert again == chosen


def test_chapter_dataset_explicit_folders_and_errors(kaggle_train, tmp_path, monkeypatch):
    monkeypatch.delenv("CONVVIZ_DOGS_VS_CATS", raising=False)
    chosen = data.chapter_dataset(kaggle_train, subsets_dir=tmp_path / "small")
    assert chosen.base_dir == tmp_path / "small" and not chosen.offline
    assert sorted(os.listdir(chosen.base_dir)) == ["test", "train", "validation"]
    # A folder that is not the chapter's subsets is neither used nor touched.
    foreign = tmp_path / "foreign"
    (foreign / "train").mkdir(parents=True)
    with pytest.raises(InputError, match="validation, test"):
        data.chapter_dataset(kaggle_train, subsets_dir=foreign)
    assert os.listdir(foreign) == ["train"]
    # A Kaggle folder without the needed files: make_subsets' error, nothing written.
    with pytest.raises(InputError, match="not a directory"):
        data.chapter_dataset(tmp_path / "no_such_train", subsets_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_chapter_dataset_falls_back_to_the_offline_shapes(tmp_path, monkeypatch):
    monkeypatch.delenv("CONVVIZ_DOGS_VS_CATS", raising=False)
    monkeypatch.setenv("CONVVIZ_DATA", str(tmp_path / "shapes"))
    chosen = data.chapter_dataset(**SMALL)
    assert chosen.offline and chosen.base_dir == data.default_dataset_dir() == tmp_path / "shapes"
    assert "offline shapes" in chosen.description and "circles vs. triangles" in chosen.description
    assert "CONVVIZ_DOGS_VS_CATS is not set" in chosen.description
    assert set(data.load_boxes(chosen.base_dir, "test")) == {
        f"{shape}.{i}.jpg" for shape in ("circle", "triangle") for i in (5, 6)
    }
    # An empty variable counts as unset; the generated data is reused.
    monkeypatch.setenv("CONVVIZ_DOGS_VS_CATS", "")
    stamp = (chosen.base_dir / "convviz_dataset.json").stat().st_mtime_ns
    assert data.chapter_dataset(**SMALL) == chosen
    assert (chosen.base_dir / "convviz_dataset.json").stat().st_mtime_ns == stamp
    # kaggle_train="" forces the offline data; keyword arguments reach the generator.
    other = data.chapter_dataset("", base_dir=tmp_path / "three", classes=("square", "circle"), **SMALL)
    assert other.offline and other.base_dir == tmp_path / "three"
    assert "circles vs. squares" in other.description and "CONVVIZ_DOGS_VS_CATS" not in other.description


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


@pytest.mark.parametrize("batch_size", [0, -4, 2.5, True, "32"])
def test_load_datasets_checks_batch_size(tmp_path, batch_size):
    for split in ("train", "validation", "test"):
        (tmp_path / split / "cat").mkdir(parents=True)
    with pytest.raises(InputError, match="batch_size must be a positive integer"):
        data.load_datasets(tmp_path, batch_size=batch_size)


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
        out = list(data.augment_dataset(ds, augmentation=augmentation))
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
    # The figure is plot.augmented on the examples; old spellings warn and still work.
    drawn = data.plot_augmented(image, n=4, seed=2, ncols=2, figsize=(6.0, 6.0))
    assert len(drawn.axes) == 4 and tuple(drawn.get_size_inches()) == (6.0, 6.0)
    with pytest.warns(DeprecationWarning, match="image="):
        old = data.augmented_examples(image=image, n=2, seed=2)
    np.testing.assert_array_equal(old, a[:2])
    with pytest.warns(DeprecationWarning, match="by position"):
        assert len(data.plot_augmented(image, 2).axes) == 2


def test_options_by_position_warn_and_give_the_same_result(tmp_path):
    base = data.make_offline_dataset(tmp_path / "shapes", n_train=3, n_val=2, n_test=2, image_size=(24, 24))
    new = data.load_datasets(base, image_size=(16, 16), batch_size=2, seed=1)
    with pytest.warns(DeprecationWarning, match="image_size, batch_size to load_datasets.. by position") as record:
        old = data.load_datasets(base, (16, 16), 2, seed=1)
    assert record[0].filename == __file__
    for a, b in zip(old, new):
        assert a.file_paths == b.file_paths and a.element_spec == b.element_spec
    np.testing.assert_array_equal(next(iter(old.test))[0].numpy(), next(iter(new.test))[0].numpy())

    with pytest.warns(DeprecationWarning, match="seed, name to data_augmentation.. by position") as record:
        old_aug = data.data_augmentation(3, "aug")
    assert record[0].filename == __file__
    new_aug = data.data_augmentation(seed=3, name="aug")
    assert old_aug.name == new_aug.name == "aug"
    assert [layer.get_config()["seed"] for layer in old_aug.layers] == [3, 4, 5]
    assert [layer.get_config()["seed"] for layer in new_aug.layers] == [3, 4, 5]

    images = np.random.default_rng(0).uniform(0, 255, (4, 24, 24, 3)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(4))).batch(2)
    flip = keras.layers.RandomFlip("horizontal", seed=3)
    with pytest.warns(DeprecationWarning, match="augmentation to augment_dataset.. by position") as record:
        old_ds = data.augment_dataset(ds, [lambda x: x + 1.0])
    assert record[0].filename == __file__
    new_ds = data.augment_dataset(ds, augmentation=[lambda x: x + 1.0])
    np.testing.assert_array_equal(
        np.concatenate([b[0].numpy() for b in old_ds]), np.concatenate([b[0].numpy() for b in new_ds])
    )
    np.testing.assert_array_equal(np.concatenate([b[0].numpy() for b in new_ds]), images + 1.0)
    with pytest.raises(TypeError):  # num_parallel_calls never was positional
        data.augment_dataset(ds, [flip], 2)


def _one_png(tmp_path):
    img, _ = data.render_example("triangle", 1, image_size=(40, 40))
    path = tmp_path / "one.png"
    Image.fromarray(img).save(path)
    return path
