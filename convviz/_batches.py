"""Datasets as a stream of numbered batches, one reader for every kind of data
(:func:`open_data`): a folder of image files, an in-memory batch, a ``tf.data.Dataset``,
a ``keras.utils.PyDataset``, a grain ``MapDataset`` or ``DataLoader``, or any iterable of
batches or of single images. Runs over whole datasets (:mod:`convviz.datasets`) read
batch after batch and resume at a batch number: :meth:`Data.batches` starts there
without reading what comes before when the kind allows (files, indexable datasets,
``tf.data``'s ``skip``).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import pathlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from convviz._inputs import to_batch
from convviz.errors import InputError

__all__ = ["Data", "RawBatch", "image_files", "is_stream", "open_data"]


@dataclass
class RawBatch:
    """One batch as read: ``images`` (a list of arrays or an array batch, not yet
    resized), ``labels`` ((n,) int or None) and ``names`` (one per image, or None)."""

    images: object
    labels: np.ndarray | None = None
    names: list[str] | None = None


@dataclass
class Data:
    """Numbered batches of a dataset.

    ``read(start)`` yields the batches from number ``start`` on; ``n_batches`` and
    ``n_images`` are None when the data cannot say (a generator).
    """

    kind: str
    read: Callable[[int], Iterator[RawBatch]]
    n_batches: int | None = None
    n_images: int | None = None
    class_names: list[str] | None = None
    description: dict = field(default_factory=dict)
    root: str | None = None
    """The folder the images' names are relative to (folders only)."""

    def batches(self, start: int = 0) -> Iterator[RawBatch]:
        """The batches from number ``start`` on (0 is the first)."""
        return self.read(start)


def is_stream(images) -> bool:
    """Whether ``images`` is a dataset to stream (a folder, or an iterable of batches
    such as a ``tf.data.Dataset`` or a generator) rather than images in memory (a path,
    an array or tensor, a PIL image, a list).

    >>> is_stream(np.zeros((2, 8, 8, 3))), is_stream(iter([np.zeros((2, 8, 8, 3))]))
    (False, True)
    """
    if isinstance(images, (str, os.PathLike)):
        return os.path.isdir(images)
    in_memory = isinstance(images, (np.ndarray, list, tuple, dict)) or hasattr(images, "shape")
    return not in_memory and not type(images).__module__.startswith("PIL.") and isinstance(images, Iterable)


def image_files(folder) -> list[pathlib.Path]:
    """The image files under ``folder`` (any depth; hidden files and folders skipped),
    sorted by their path relative to it, so every run sees the same order.

    >>> image_files("no/such/folder")
    Traceback (most recent call last):
    ...
    convviz.errors.InputError: No folder 'no/such/folder'.
    """
    from PIL import Image

    root = pathlib.Path(os.fspath(folder))
    if not root.is_dir():
        raise InputError(f"No folder {os.fspath(folder)!r}.")
    known = {ext.lower() for ext in Image.registered_extensions()}
    files = [
        p for p in root.rglob("*")
        if p.suffix.lower() in known and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    if not files:
        raise InputError(f"Folder {os.fspath(folder)!r} holds no image files ({', '.join(sorted(known)[:8])}, ...).")
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _folder(folder, batch_size: int, preprocess) -> Data:
    root = pathlib.Path(os.fspath(folder))
    files = image_files(root)
    names = [p.relative_to(root).as_posix() for p in files]
    # Labels as keras.utils.image_dataset_from_directory infers them: one subfolder per
    # class, in alphabetical order; none when some image lies outside a subfolder.
    tops = [n.split("/")[0] if "/" in n else None for n in names]
    class_names = sorted(set(tops)) if None not in tops else None
    labels = np.array([class_names.index(t) for t in tops]) if class_names else None
    data = _files(files, names, labels, class_names, batch_size, preprocess,
                  {"kind": "folder", "files": len(files), "batch_size": batch_size})
    data.root = str(root.absolute())
    return data


def _files(files: list, names: list[str], labels, class_names, batch_size: int, preprocess,
           description: dict) -> Data:
    """Image files read ``batch_size`` at a time, the next batch decoded on a worker
    thread while the current one runs."""
    n_batches = -(-len(files) // batch_size)

    def load(k):
        part = slice(k * batch_size, (k + 1) * batch_size)
        images = [np.asarray(to_batch(p)[0]) for p in files[part]]
        if preprocess is not None:
            images = [preprocess(im) for im in images]
        return RawBatch(images, None if labels is None else labels[part], names[part])

    def read(start):
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="convviz-read") as pool:
            pending = pool.submit(load, start) if start < n_batches else None
            for k in range(start, n_batches):
                batch = pending.result()
                pending = pool.submit(load, k + 1) if k + 1 < n_batches else None
                yield batch

    return Data(description["kind"], read, n_batches, len(files), class_names, description)


def _array(images, batch_size: int) -> Data:
    n = len(images)

    def read(start):
        for k in range(start, -(-n // batch_size)):
            yield RawBatch(images[k * batch_size : (k + 1) * batch_size])

    return Data("array", read, -(-n // batch_size), n, None,
                {"kind": "array", "shape": [int(s) for s in np.shape(images)], "batch_size": batch_size})


def _element(element, what: str) -> RawBatch:
    """An element of a dataset: images, ``(images, labels, ...)`` or a dict with an
    ``image``/``images`` entry (and ``label``/``labels``)."""
    if isinstance(element, dict):
        image_key = next((k for k in ("images", "image", "x") if k in element), None)
        if image_key is None:
            raise InputError(
                f"{what} yields dicts with keys {', '.join(map(repr, element))}; convviz reads the images "
                "from an 'image' or 'images' key (and labels from 'label' or 'labels')."
            )
        label_key = next((k for k in ("labels", "label", "y") if k in element), None)
        return RawBatch(element[image_key], None if label_key is None else element[label_key])
    if isinstance(element, (tuple, list)) and len(element) in (2, 3) and not _is_image_like(element):
        return RawBatch(element[0], element[1])
    return RawBatch(element)


def _is_image_like(element) -> bool:
    """A list of images (several arrays of one rank >= 2), not an (images, labels) pair."""
    ranks = [np.ndim(e) if hasattr(e, "shape") else -1 for e in element]
    return len(set(ranks)) == 1 and ranks[0] >= 2 and len(element) != 2


def _int_labels(labels, n: int, what: str) -> np.ndarray | None:
    """(n,) int labels from integer or one-hot labels, or None."""
    if labels is None:
        return None
    array = np.asarray(labels.numpy() if hasattr(labels, "numpy") else labels)
    if array.ndim == 2 and array.shape[-1] > 1:
        array = array.argmax(axis=-1)
    array = array.reshape(-1) if array.ndim == 2 else array
    if array.shape != (n,) or (array.dtype.kind == "f" and not np.all(array == np.round(array))):
        raise InputError(
            f"{what}: labels of shape {np.shape(labels)} for {n} image(s); expected one integer class per "
            "image, or one-hot rows."
        )
    return array.astype(np.int64)


def _grouped(elements: Iterator, batch_size: int, what: str) -> Iterator[RawBatch]:
    """Batches from a stream of elements: elements that are batches pass through;
    single images (rank 3, or rank 2 grayscale) are grouped ``batch_size`` at a time."""
    pending: list[RawBatch] = []
    for element in elements:
        raw = _element(element, what)
        rank = np.ndim(raw.images) if hasattr(raw.images, "shape") else None
        if rank is not None and rank in (2, 3):
            pending.append(raw)
            if len(pending) == batch_size:
                yield _stack(pending)
                pending = []
            continue
        if pending:
            yield _stack(pending)
            pending = []
        yield raw
    if pending:
        yield _stack(pending)


def _stack(singles: list[RawBatch]) -> RawBatch:
    labels = None
    if all(s.labels is not None for s in singles):
        labels = np.stack([np.asarray(s.labels.numpy() if hasattr(s.labels, "numpy") else s.labels)
                           for s in singles])
    return RawBatch([s.images for s in singles], labels)


def _kind(data) -> str:
    module = type(data).__module__
    if module.startswith("tensorflow") and hasattr(data, "element_spec"):
        return "tf.data"
    if module.startswith("grain"):
        return "grain"
    if any(c.__name__ == "PyDataset" for c in type(data).__mro__):
        return "PyDataset"
    if hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        return "sequence"
    return "iterable"


def _tf_cardinality(data) -> int | None:
    n = int(data.cardinality())
    return n if n >= 0 else None


def _singles(data, kind: str) -> bool:
    """Whether a dataset's elements are single images (then they are grouped)."""
    if kind == "tf.data":
        spec = data.element_spec
        spec = spec[0] if isinstance(spec, tuple) else spec
        spec = spec.get("image", spec.get("images")) if isinstance(spec, dict) else spec
        return spec is not None and spec.shape.rank in (2, 3)
    return False


def open_data(data, *, batch_size: int = 32, preprocess=None) -> Data:
    """Any dataset convviz reads, as numbered batches (see :class:`Data`).

    Parameters
    ----------
    data : folder, array, tf.data.Dataset, PyDataset, grain dataset or iterable
        A folder of image files (read in sorted order, ``batch_size`` at a time; the
        subfolders name the classes, as ``keras.utils.image_dataset_from_directory``
        infers them); an (N, H, W, C) array or a list of images; or a dataset whose
        elements are batches, single images, ``(images, labels)`` or dicts with
        ``"image"`` (and ``"label"``). Labels are integer classes or one-hot rows.
    batch_size : int
        Images per batch for folders, arrays and streams of single images.
    preprocess : callable, optional
        Applied to each image read from a folder (a built-in model's evaluation crop).

    Examples
    --------
    >>> data = open_data(np.zeros((5, 8, 8, 3)), batch_size=2)
    >>> data.n_batches, [len(b.images) for b in data.batches(1)]
    (3, [2, 1])
    """
    if isinstance(data, (str, os.PathLike)):
        if os.path.isdir(data):
            return _folder(data, batch_size, preprocess)
        raise InputError(f"No folder {os.fspath(data)!r}: give a folder of images, an array or a dataset.")
    if data is None or isinstance(data, (int, float, bytes)):
        raise InputError(
            f"Cannot read a dataset from {type(data).__name__}: give a folder of images, an array batch, a "
            "tf.data.Dataset, a keras.utils.PyDataset, a grain dataset or an iterable of batches."
        )
    if isinstance(data, dict):
        raise InputError(
            f"Cannot read a dataset from a dict (keys {', '.join(map(repr, data))}): give the images, "
            "or a dataset whose elements are dicts."
        )
    if isinstance(data, (list, tuple)) and not data:
        raise InputError("The data holds no images.")
    if isinstance(data, (list, tuple)) and all(isinstance(d, (str, os.PathLike)) for d in data):
        names = [os.fspath(d) for d in data]
        return _files(list(data), names, None, None, batch_size, preprocess,
                      {"kind": "files", "files": names, "batch_size": batch_size})
    if isinstance(data, np.ndarray) or hasattr(data, "shape") and len(np.shape(data)) == 4:
        return _array(data, batch_size)
    if isinstance(data, (list, tuple)) and all(hasattr(d, "shape") and len(np.shape(d)) in (2, 3) for d in data):
        return _array(data, batch_size)
    kind = _kind(data)
    what = {"tf.data": "The tf.data.Dataset", "PyDataset": "The PyDataset", "grain": "The grain dataset"}.get(
        kind, f"The {type(data).__name__}")
    if kind == "tf.data":
        singles = _singles(data, kind)
        step = batch_size if singles else 1
        n = _tf_cardinality(data)

        def read(start):
            return _grouped(iter(data.skip(start * step).as_numpy_iterator()), batch_size, what)

        return Data(kind, read, None if n is None else -(-n // step), n if singles else None, None,
                    {"kind": kind, "elements": n})
    if kind in ("PyDataset", "sequence", "grain") and hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        n = len(data)
        first = _element(data[0], what) if n else None
        singles = first is not None and hasattr(first.images, "shape") and np.ndim(first.images) in (2, 3)
        step = batch_size if singles else 1

        def read(start):
            return _grouped((data[i] for i in range(start * step, n)), batch_size, what)

        return Data(kind, read, -(-n // step), n if singles else None, None, {"kind": kind, "elements": n})
    if not isinstance(data, Iterable):
        raise InputError(
            f"Cannot read a dataset from {type(data).__name__}: give a folder of images, an array batch, a "
            "tf.data.Dataset, a keras.utils.PyDataset, a grain dataset or an iterable of batches."
        )

    def read(start):
        # A plain iterable can only be read from its start: the first batches are
        # read and dropped. An iterator (a generator) is read once.
        return itertools.islice(_grouped(iter(data), batch_size, what), start, None)

    n = len(data) if hasattr(data, "__len__") else None
    return Data(kind, read, n, None, None, {"kind": kind})
