"""The chapter's data pipeline: the dogs-vs-cats subsets, ``tf.data`` loading, augmentation.

The chapter trains on a small subset of Kaggle's dogs-vs-cats images:
:func:`make_subsets` copies it out of Kaggle's ``train/`` folder and
:func:`load_datasets` turns the folders into ``tf.data`` pipelines.
:func:`data_augmentation` and :func:`augment_dataset` are the chapter's random flip,
rotation and zoom. Kaggle data cannot be downloaded everywhere, so
:mod:`convviz.shapes` draws a deterministic stand-in (circles vs. triangles over
photographic textures) in the same folder layout; its functions
(:func:`~convviz.shapes.make_offline_dataset`,
:func:`~convviz.shapes.ensure_offline_dataset`, :func:`~convviz.shapes.load_boxes`,
...) are importable from here too. :func:`chapter_dataset` picks one of the two: the
Kaggle subsets when ``$CONVVIZ_DOGS_VS_CATS`` points at Kaggle's ``train/`` folder,
else the offline data.

>>> from convviz import data
>>> chosen = data.chapter_dataset()  # doctest: +SKIP
>>> print(chosen.description)  # doctest: +SKIP
convviz's offline shapes dataset (circles vs. triangles); CONVVIZ_DOGS_VS_CATS is not set
>>> train, validation, test = data.load_datasets(chosen.base_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import pathlib
import shutil
from typing import NamedTuple

import keras
import numpy as np

from convviz import plot
from convviz._files import build_atomically, refuse_existing
from convviz._validation import check_batch_size, keyword_only, renamed
from convviz.errors import InputError

# The offline dataset lives in convviz.shapes; its names stay importable from here.
from convviz.shapes import _GENERATOR_VERSION as _GENERATOR_VERSION
from convviz.shapes import _MANIFEST as _MANIFEST
from convviz.shapes import (
    SHAPES,
    SPLITS,
    BoundingBox,
    default_dataset_dir,
    ensure_offline_dataset,
    load_boxes,
    make_offline_dataset,
    render_example,
)

__all__ = [
    "CHAPTER_SUBSETS",
    "SHAPES",
    "BoundingBox",
    "ChapterDataset",
    "Datasets",
    "augment_dataset",
    "augmented_examples",
    "chapter_dataset",
    "data_augmentation",
    "default_dataset_dir",
    "ensure_offline_dataset",
    "load_boxes",
    "load_datasets",
    "make_offline_dataset",
    "make_subsets",
    "plot_augmented",
    "render_example",
]

#: The chapter's per-class index ranges into Kaggle's ``train/`` folder.
CHAPTER_SUBSETS = {
    "train": range(0, 1000),
    "validation": range(1000, 1500),
    "test": range(1500, 2500),
}
_KAGGLE_CATEGORIES = ("cat", "dog")
# The environment variable chapter_dataset() reads: Kaggle's train/ folder.
_KAGGLE_ENV = "CONVVIZ_DOGS_VS_CATS"

# --------------------------------------------------------------------------- #
# The chapter's dogs-vs-cats subsets
# --------------------------------------------------------------------------- #


@keyword_only(2, "overwrite")
def make_subsets(original_dir, new_base_dir, *, overwrite: bool = False) -> pathlib.Path:
    """Copy the chapter's dogs-vs-cats subsets out of Kaggle's ``train/`` folder.

    Per class (``cat``, ``dog``): train = ``cat.0.jpg`` ... ``cat.999.jpg``,
    validation = indices 1000-1499, test = indices 1500-2499, copied to
    ``new_base_dir/{train,validation,test}/{cat,dog}/``.

    Parameters
    ----------
    original_dir : str or path
        Kaggle's extracted ``train/`` folder (25,000 files named ``cat.N.jpg`` and
        ``dog.N.jpg``).
    new_base_dir : str or path
        Where the subsets go (the chapter's ``dogs_vs_cats_small``).
    overwrite : bool
        Replace ``new_base_dir`` if it exists. Otherwise an existing directory is an
        error, as with the chapter's ``os.makedirs``.

    Returns
    -------
    pathlib.Path
        ``new_base_dir``.

    Raises
    ------
    InputError
        If ``original_dir`` lacks any of the 5,000 needed files (nothing is written
        then), or ``new_base_dir`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> make_subsets("train", "dogs_vs_cats_small")  # doctest: +SKIP
    PosixPath('dogs_vs_cats_small')
    """
    original_dir = pathlib.Path(original_dir)
    new_base_dir = pathlib.Path(new_base_dir)
    if not original_dir.is_dir():
        raise InputError(
            f"{original_dir} is not a directory. Give the folder extracted from Kaggle's "
            "dogs-vs-cats train.zip (25,000 files named cat.N.jpg / dog.N.jpg)."
        )
    plan = [
        (split, category, f"{category}.{i}.jpg")
        for split, indices in CHAPTER_SUBSETS.items()
        for category in _KAGGLE_CATEGORIES
        for i in indices
    ]
    # Check everything before copying anything: a half-made subset would look complete.
    missing = [name for _, _, name in plan if not (original_dir / name).is_file()]
    if missing:
        raise InputError(
            f"{len(missing)} of the {len(plan)} files the chapter's subsets need are missing "
            f"from {original_dir} (first: {', '.join(missing[:5])}). Expected Kaggle's "
            "dogs-vs-cats train/ folder with cat.0.jpg ... cat.2499.jpg and dog.0.jpg ... "
            "dog.2499.jpg. Without Kaggle access, make_offline_dataset() builds a stand-in "
            "in the same layout."
        )
    refuse_existing(new_base_dir, overwrite, "the subsets")

    def build(tmp: pathlib.Path) -> None:
        for split in CHAPTER_SUBSETS:
            for category in _KAGGLE_CATEGORIES:
                (tmp / split / category).mkdir(parents=True)
        for split, category, name in plan:
            shutil.copyfile(original_dir / name, tmp / split / category / name)

    return build_atomically(new_base_dir, build)


class Datasets(NamedTuple):
    """The three splits, as ``tf.data`` datasets of ``(images, labels)`` batches."""

    train: object
    validation: object
    test: object


@keyword_only(1, "image_size", "batch_size")
def load_datasets(
    base_dir,
    *,
    image_size: tuple[int, int] = (180, 180),
    batch_size: int = 32,
    seed: int | None = None,
) -> Datasets:
    """Load ``train``/``validation``/``test`` with ``image_dataset_from_directory``.

    Works the same on the chapter's subsets (:func:`make_subsets`) and on the offline
    dataset (:func:`make_offline_dataset`). Images are float32 in 0-255, resized to
    ``image_size``; labels are int32 class indices in alphabetical folder order.
    The options are keyword-only; ``image_size`` and ``batch_size`` given by position
    still work, with a :class:`DeprecationWarning`, until the next release.

    Parameters
    ----------
    base_dir : str or path
        Folder holding ``train/``, ``validation/`` and ``test/``, each with one
        sub-folder per class.
    image_size : (height, width)
        The chapter uses 180 x 180.
    batch_size : int
        32 as in the 2nd edition (the 3rd uses 64).
    seed : int, optional
        Seed for the training set's shuffling.

    Returns
    -------
    Datasets
        ``(train, validation, test)``. Only ``train`` is shuffled, so the others'
        ``file_paths`` line up with their batches (e.g. to match :func:`load_boxes`).

    Raises
    ------
    InputError
        If a split folder is missing, or ``batch_size`` is not a positive integer.
    ImportError
        If TensorFlow (needed for ``tf.data`` on every backend) is not installed.

    Examples
    --------
    >>> train, validation, test = load_datasets("dogs_vs_cats_small")  # doctest: +SKIP
    >>> for images, labels in train.take(1):  # doctest: +SKIP
    ...     print(images.shape, labels.shape)
    (32, 180, 180, 3) (32,)
    """
    base_dir = pathlib.Path(base_dir)
    for split in SPLITS:
        if not (base_dir / split).is_dir():
            raise InputError(
                f"{base_dir / split} does not exist. load_datasets expects {base_dir} to hold "
                "train/, validation/ and test/ folders with one sub-folder per class, as "
                "written by make_subsets() or make_offline_dataset()."
            )
    batch_size = check_batch_size(batch_size)
    _require_tensorflow()
    image_size = tuple(int(s) for s in image_size)
    datasets = [
        keras.utils.image_dataset_from_directory(
            base_dir / split,
            image_size=image_size,
            batch_size=batch_size,
            shuffle=(split == "train"),
            seed=seed,
        )
        for split in SPLITS
    ]
    return Datasets(*datasets)


def _require_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as err:  # pragma: no cover - every supported install has it
        raise ImportError(
            "convviz's data pipeline uses tf.data (keras.utils.image_dataset_from_directory), "
            "which needs TensorFlow whatever the Keras backend. Install it with "
            "`pip install tensorflow-cpu` (or `pip install \"convviz[jax]\"` etc.)."
        ) from err
    return tf


# --------------------------------------------------------------------------- #
# Which data: the chapter's, or the offline stand-in
# --------------------------------------------------------------------------- #


class ChapterDataset(NamedTuple):
    """The data a chapter workflow runs on, as chosen by :func:`chapter_dataset`."""

    #: Folder with ``train/``, ``validation/`` and ``test/``, for :func:`load_datasets`.
    base_dir: pathlib.Path
    #: One line saying which data this is (and why), to print.
    description: str
    #: True for convviz's offline shapes data (it has bounding boxes, see
    #: :func:`~convviz.shapes.load_boxes`), False for the Kaggle subsets.
    offline: bool


def chapter_dataset(kaggle_train=None, *, subsets_dir=None, **offline_kwargs) -> ChapterDataset:
    """The chapter's dogs-vs-cats subsets if Kaggle's images are at hand, else the offline data.

    The tutorials' first step. With Kaggle's extracted ``train/`` folder (from
    ``kaggle_train``, else ``$CONVVIZ_DOGS_VS_CATS``), the chapter's subsets (1,000 /
    500 / 1,000 images per class, :func:`make_subsets`) are copied once into
    ``subsets_dir`` and reused afterwards. Without it, convviz's offline shapes
    dataset (:func:`~convviz.shapes.ensure_offline_dataset`: 500 / 250 / 250 circles
    and triangles per class by default) is generated once and reused. Both have the
    same folder layout, so :func:`load_datasets` reads either.

    Parameters
    ----------
    kaggle_train : str or path, optional
        Kaggle's dogs-vs-cats ``train/`` folder (25,000 files named ``cat.N.jpg`` and
        ``dog.N.jpg``). ``None`` reads ``$CONVVIZ_DOGS_VS_CATS``; ``""`` (or an unset
        or empty variable) picks the offline data.
    subsets_dir : str or path, optional
        Where the Kaggle subsets go; defaults to ``dogs_vs_cats_small`` next to the
        offline dataset (:func:`~convviz.shapes.default_dataset_dir`). An existing
        folder is reused as is.
    **offline_kwargs
        Passed to :func:`~convviz.shapes.ensure_offline_dataset` (``base_dir``, sizes,
        ``classes``, ...) when the offline data is used.

    Returns
    -------
    ChapterDataset
        ``(base_dir, description, offline)``; print ``description`` to say which data
        a run used.

    Raises
    ------
    InputError
        If ``kaggle_train`` lacks the files the subsets need (see
        :func:`make_subsets`), or ``subsets_dir`` exists without the three split
        folders.

    Examples
    --------
    >>> chosen = chapter_dataset()  # doctest: +SKIP
    >>> print(f"Data: {chosen.description}")  # doctest: +SKIP
    Data: convviz's offline shapes dataset (circles vs. triangles); CONVVIZ_DOGS_VS_CATS is not set
    >>> train, validation, test = load_datasets(chosen.base_dir)  # doctest: +SKIP
    """
    if kaggle_train is None:
        kaggle_train = os.environ.get(_KAGGLE_ENV, "")
        why_offline = f"{_KAGGLE_ENV} is not set"
    else:
        kaggle_train = os.fspath(kaggle_train)
        why_offline = "no Kaggle train/ folder given"
    if kaggle_train:
        if subsets_dir is None:
            subsets_dir = default_dataset_dir().parent / "dogs_vs_cats_small"
        subsets_dir = pathlib.Path(subsets_dir).expanduser()
        if not subsets_dir.exists():
            make_subsets(kaggle_train, subsets_dir)
        missing = [split for split in SPLITS if not (subsets_dir / split).is_dir()]
        if missing:
            raise InputError(
                f"{subsets_dir} exists but has no {', '.join(missing)} folder(s), so it is not "
                "the chapter's subsets. Remove it, or pass another subsets_dir."
            )
        description = f"Kaggle dogs-vs-cats, the chapter's subsets of {kaggle_train}"
        return ChapterDataset(subsets_dir, description, offline=False)
    base_dir = ensure_offline_dataset(**offline_kwargs)
    classes = sorted(p.name for p in (base_dir / "train").iterdir() if p.is_dir())
    shown = " vs. ".join(f"{c}s" for c in classes)
    description = f"convviz's offline shapes dataset ({shown}); {why_offline}"
    return ChapterDataset(base_dir, description, offline=True)


# --------------------------------------------------------------------------- #
# Data augmentation
# --------------------------------------------------------------------------- #


@keyword_only(0, "seed", "name")
def data_augmentation(*, seed: int | None = None, name: str = "data_augmentation"):
    """The chapter's augmentation stage: random flip, rotation and zoom.

    ``keras.Sequential([RandomFlip("horizontal"), RandomRotation(0.1),
    RandomZoom(0.2)])``, as in the chapter. Put it at the front of a model, or give
    it to :func:`augment_dataset` to augment in the ``tf.data`` pipeline instead
    (that runs its layers one by one, which works on every backend; calling the
    Sequential itself inside ``dataset.map`` fails on JAX and PyTorch). Like all
    Keras random layers it only transforms when called with ``training=True``
    (``fit``); ``predict``/``evaluate`` pass images through unchanged.

    The options are keyword-only (by position they still work, with a
    :class:`DeprecationWarning`, until the next release).

    Parameters
    ----------
    seed : int, optional
        Seed of each random layer, for reproducible augmentation.
    name : str
        Model name; the chapter calls it ``data_augmentation``.

    Returns
    -------
    keras.Sequential

    Examples
    --------
    >>> import keras
    >>> inputs = keras.Input((180, 180, 3))
    >>> x = data_augmentation()(inputs)
    """
    layers = keras.layers
    return keras.Sequential(
        [
            layers.RandomFlip("horizontal", seed=seed),
            layers.RandomRotation(0.1, seed=None if seed is None else seed + 1),
            layers.RandomZoom(0.2, seed=None if seed is None else seed + 2),
        ],
        name=name,
    )


@keyword_only(1, "augmentation")
def augment_dataset(dataset, *, augmentation=None, num_parallel_calls: int | None = None):
    """Augment a ``tf.data`` dataset of ``(images, labels)`` batches on the fly.

    The 3rd edition's way: augmentation runs in the input pipeline (on the CPU,
    overlapping training) instead of inside the model. The options are keyword-only;
    ``augmentation`` given by position still works, with a :class:`DeprecationWarning`,
    until the next release.

    Parameters
    ----------
    dataset : tf.data.Dataset
        Yields ``(images, labels)``.
    augmentation : keras.Sequential, list of layers or callable, optional
        Defaults to :func:`data_augmentation`. A Sequential or a list is applied
        layer by layer (a Sequential cannot run inside ``tf.data`` on the JAX and
        PyTorch backends; its preprocessing layers can).
    num_parallel_calls : int, optional
        Defaults to ``tf.data.AUTOTUNE``.

    Returns
    -------
    tf.data.Dataset
        Mapped and prefetched.

    Examples
    --------
    >>> train, validation, test = load_datasets(ensure_offline_dataset())  # doctest: +SKIP
    >>> augmented_train = augment_dataset(train)  # doctest: +SKIP
    """
    tf = _require_tensorflow()
    augmentation = data_augmentation() if augmentation is None else augmentation
    if isinstance(augmentation, keras.Sequential):
        steps = list(augmentation.layers)
    elif isinstance(augmentation, (list, tuple)):
        steps = list(augmentation)
    else:
        steps = [augmentation]

    def augment(images, targets):
        for step in steps:
            images = step(images, training=True) if isinstance(step, keras.layers.Layer) else step(images)
        return images, targets

    calls = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
    return dataset.map(augment, num_parallel_calls=calls).prefetch(tf.data.AUTOTUNE)


@renamed(image="images")
@keyword_only(1, "n", "seed", "augmentation")
def augmented_examples(images, *, n: int = 9, seed: int = 0, augmentation=None) -> np.ndarray:
    """``n`` randomly augmented versions of one image (the chapter's 3x3 figure).

    Parameters
    ----------
    images : path, PIL image or array
        One image (H, W, C) or a batch whose first image is used.
    n : int
        How many versions.
    seed : int
        Same seed, same versions.
    augmentation : callable, optional
        Defaults to :func:`data_augmentation` seeded with ``seed``.

    Returns
    -------
    numpy.ndarray
        (n, H, W, C); uint8 if the image was uint8 or 0-255 valued, else float32.

    Examples
    --------
    >>> import numpy as np
    >>> augmented_examples(np.zeros((32, 32, 3), "uint8"), n=4).shape
    (4, 32, 32, 3)
    """
    from convviz._inputs import to_batch

    if int(n) < 1:
        raise InputError(f"n must be a positive number of examples, got {n!r}.")
    raw_dtype = getattr(images, "dtype", None)
    batch = to_batch(images)[:1]
    augmentation = augmentation or data_augmentation(seed=seed)
    out = np.stack(
        [
            keras.ops.convert_to_numpy(augmentation(keras.ops.convert_to_tensor(batch), training=True))[0]
            for _ in range(int(n))
        ]
    )
    as_uint8 = raw_dtype == np.uint8 or (raw_dtype is None and float(batch.max()) > 1.0)
    if as_uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out.astype(np.float32)


@renamed(image="images")
@keyword_only(1, "n", "seed")
def plot_augmented(images, *, n: int = 9, seed: int = 0, ncols: int = 3, augmentation=None, figsize=None,
                   save=None):
    """The chapter's figure: a grid of randomly augmented versions of one image.

    Parameters
    ----------
    images : path, PIL image or array
        One image, or a batch whose first image is used (see :func:`augmented_examples`).
    n, seed, augmentation
        See :func:`augmented_examples`.
    ncols : int
        Columns of the grid (3 x 3 for the default nine).
    figsize : (width, height), optional
        The whole figure in inches; default 3.3 inches per panel.
    save : str or path, optional
        Also write the figure to this file.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_augmented(np.zeros((32, 32, 3), "uint8"))
    >>> len(fig.axes)
    9
    """
    examples = augmented_examples(images, n=n, seed=seed, augmentation=augmentation)
    return plot.augmented(examples, ncols=ncols, figsize=figsize, save=save)
