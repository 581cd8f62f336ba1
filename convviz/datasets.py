"""Explanations over whole datasets, streamed to disk: :func:`explain_dataset` writes
each batch's maps (zarr), a row per image (Parquet) and a manifest as it goes, resumes
a killed run at its last completed batch, and shards batches across devices when a
``keras.distribution`` is set (JAX). :class:`DatasetExplanation` reads a run, finished
or still going.

>>> import convviz
>>> run = convviz.explain_dataset(model, "val_images/", out="val_gradcam")  # doctest: +SKIP
>>> run.column("probability").mean(), run.maps[:8].shape  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pathlib
import time
from dataclasses import dataclass

import keras
import numpy as np

from convviz import _autodiff, plot
from convviz._batches import RawBatch, _int_labels, open_data
from convviz._inputs import to_batch
from convviz._progress import Progress
from convviz._store import FORMAT, MANIFEST, MAPS, TABLE, RunStore, fingerprint, require
from convviz._validation import check_batch_size, check_choice, check_seed, check_verbose
from convviz._version import __version__
from convviz.errors import InputError
from convviz.evaluation import METRICS, _check_metrics, _computations, _compute
from convviz.inspector import Inspector
from convviz.methods.core import LayerMethod, chosen_class, create, get_method
from convviz.sources import open_model

__all__ = ["DatasetExplanation", "explain_dataset"]

_DATASET_METRICS = ("deletion", "insertion", "average_drop", "increase_in_confidence", "mufidelity")


class DatasetExplanation:
    """A run of :func:`explain_dataset` on disk, finished or still going.

    Attributes
    ----------
    path : pathlib.Path
        The run's folder.
    manifest : dict
        What was run (``settings``: model fingerprint, method, options...; ``versions``)
        and how far (``batches``, ``rows``, ``complete``), as last committed.

    Examples
    --------
    >>> run = DatasetExplanation.open("val_gradcam")  # doctest: +SKIP
    >>> len(run), run.maps.shape, run.column("class_index")[:4]  # doctest: +SKIP
    """

    def __init__(self, path):
        self.path = pathlib.Path(os.fspath(path))
        self.manifest: dict = {}
        self.refresh()

    @classmethod
    def open(cls, path) -> DatasetExplanation:
        """Read the run in ``path`` (a folder :func:`explain_dataset` writes); the same
        as ``DatasetExplanation(path)``."""
        return cls(path)

    def refresh(self) -> DatasetExplanation:
        """(Re-)read the manifest: a run still going has added batches since."""
        manifest_path = self.path / MANIFEST
        try:
            manifest = json.loads(manifest_path.read_text())
        except FileNotFoundError:
            raise InputError(f"{self.path} holds no dataset run (no {MANIFEST}; written by "
                             "convviz.explain_dataset).") from None
        except (OSError, ValueError) as err:
            raise InputError(f"Cannot read {manifest_path}: {err}.") from err
        if manifest.get("format") != FORMAT:
            raise InputError(f"{manifest_path} is not a convviz dataset run.")
        self.manifest = manifest
        return self

    def __len__(self) -> int:
        return int(self.manifest["rows"])

    def __repr__(self) -> str:
        s = self.manifest["settings"]
        state = "complete" if self.complete else f"{self.manifest['batches']} batch(es) so far"
        return f"DatasetExplanation({str(self.path)!r}, method={s['method']!r}, images={len(self)}, {state})"

    @property
    def complete(self) -> bool:
        """Whether the run went through all its data."""
        return bool(self.manifest.get("complete"))

    @property
    def method(self) -> str:
        return self.manifest["settings"]["method"]

    @property
    def maps(self):
        """The maps as a read-only ``zarr.Array`` (N, h, w) or (N, H, W, C), float16 by
        default, cut to the committed rows: slice it (``run.maps[:64]``) to get numpy."""
        zarr = require()[0]
        if not len(self):
            return np.zeros((0, *(self.manifest.get("map_shape") or (0, 0))), np.float32)
        array = zarr.open_array(str(self.path / MAPS), mode="r")
        return array if array.shape[0] == len(self) else array[: len(self)]

    def table(self):
        """The per-image rows of the committed batches, as a ``pyarrow.Table`` (one row
        per image, in dataset order; ``.to_pandas()`` for a DataFrame)."""
        _, pyarrow, parquet = require()
        parts = [self.path / TABLE / f"part-{k:06d}.parquet" for k in range(self.manifest["batches"])]
        if not parts:
            return pyarrow.table({})
        return pyarrow.concat_tables([parquet.read_table(p) for p in parts])

    def column(self, name: str) -> np.ndarray:
        """One column of :meth:`table` as a numpy array (``"probability"``, a metric...)."""
        table = self.table()
        if name not in table.column_names:
            raise InputError(f"No column {name!r}; the columns are {', '.join(table.column_names)}.")
        return table.column(name).to_numpy(zero_copy_only=False)

    def mean_map(self, *, chunk: int = 256) -> np.ndarray:
        """The average map over every image (float64), read ``chunk`` images at a time:
        where the method looks on average (a centre bias shows here)."""
        maps, total = self.maps, None
        for start in range(0, len(self), chunk):
            part = np.asarray(maps[start : start + chunk], np.float64).sum(axis=0)
            total = part if total is None else total + part
        if total is None:
            raise InputError("The run holds no images yet.")
        return total / len(self)

    def plot(self, *, n: int = 8, figsize=None, save=None):
        """The run at a glance: the mean map, the distribution of the explained class's
        probability (and of each metric), and the first ``n`` maps, over their images
        when the run read a folder that is still there. Returns a figure."""
        import matplotlib.pyplot as plt

        table = self.table()
        metrics = [m for m in _DATASET_METRICS if m in table.column_names]
        top = 2 + len(metrics)
        n = min(n, len(self))
        cols = max(top, n)
        fig = plt.figure(figsize=figsize or (2.2 * cols, 4.6))
        mean = self.mean_map()
        ax = fig.add_subplot(2, cols, 1)
        ax.imshow(plot.aggregate_channels(mean[None], "abs_sum")[0] if mean.ndim == 3 else mean, cmap="jet")
        ax.set_title(f"mean map ({len(self)} images)", fontsize=8)
        ax.axis("off")
        for i, name in enumerate(["probability", *metrics]):
            ax = fig.add_subplot(2, cols, 2 + i)
            ax.hist(table.column(name).to_numpy(zero_copy_only=False), bins=20, color="#4c72b0")
            ax.set_title(METRICS[name].title if name in METRICS else "explained class probability", fontsize=8)
            ax.tick_params(labelsize=6)
        maps = np.asarray(self.maps[:n], np.float32)
        names = table.column("name").to_pylist()[:n]
        root = self.manifest.get("root")
        for i in range(n):
            ax = fig.add_subplot(2, cols, cols + 1 + i)
            image = plot.aggregate_channels(maps[i : i + 1], "abs_sum")[0] if maps.ndim == 4 else maps[i]
            photo = pathlib.Path(root) / str(names[i]) if root else None
            if photo is not None and photo.is_file():
                # The map over the image as the model saw it (resized to the input).
                size = self.manifest.get("input_size")
                shown = to_batch(photo, size=tuple(size) if size and None not in size else None)[0]
                ax.imshow(np.clip(shown / 255.0 if shown.max() > 1 else shown, 0, 1))
                height, width = shown.shape[:2]
                ax.imshow(image, cmap="jet", alpha=0.45, extent=(0, width, height, 0), interpolation="bilinear")
            else:
                ax.imshow(image, cmap="jet")
            ax.set_title(str(names[i])[-24:], fontsize=7)
            ax.axis("off")
        fig.suptitle(f"{self.method} over {self.manifest['settings']['data'].get('kind', 'data')}", fontsize=9)
        fig.tight_layout()
        if save is not None:
            fig.savefig(save)
        return fig


def _versions() -> dict:
    zarr, pyarrow, _ = require()
    backend = keras.backend.backend()  # "tensorflow", "jax", "torch": also the module's name
    return {"convviz": __version__, "keras": keras.__version__, "backend": backend,
            backend: getattr(importlib.import_module(backend), "__version__", "?"),
            "numpy": np.__version__, "zarr": zarr.__version__, "pyarrow": pyarrow.__version__}


def _class_spec(class_index):
    if class_index is None or (isinstance(class_index, str) and class_index == "labels"):
        return class_index
    if isinstance(class_index, (int, np.integer)) and not isinstance(class_index, bool) and class_index >= 0:
        return int(class_index)
    raise InputError(
        f"class_index must be None (each image's top class), a class number for every image, or "
        f"'labels' (the dataset's labels); got {class_index!r}."
    )


def _predicted(predictions: np.ndarray) -> np.ndarray:
    return chosen_class(predictions, 0.5 if predictions.shape[-1] == 1 else 0.0)


def _probability(predictions: np.ndarray, classes: np.ndarray) -> np.ndarray:
    if predictions.shape[-1] == 1:
        p = predictions[:, 0].astype(np.float64)
        return np.where(classes == 1, p, 1.0 - p)
    return predictions[np.arange(len(predictions)), classes].astype(np.float64)


def _padded(images: np.ndarray, multiple: int) -> np.ndarray:
    """The batch padded (repeating its last image) to a multiple of the devices."""
    short = -len(images) % multiple
    return images if not short else np.concatenate([images, np.repeat(images[-1:], short, axis=0)])


def explain_dataset(model, images, *, out, method="gradcam", class_index=None, layer=None, metrics=(),
                    upsample: bool = False, dtype: str = "float16", batch_size: int = 32, resume: bool = False,
                    overwrite: bool = False, metric_options: dict | None = None, seed: int = 0,
                    output=None, safe_mode: bool = True, verbose: bool = True, **options) -> DatasetExplanation:
    """Explain every image of a dataset, streaming the results to ``out`` as it goes.

    Memory stays at one batch whatever the dataset's length: each batch is read,
    explained (and judged by ``metrics``), written and dropped.

    Parameters
    ----------
    model : keras.Model, Inspector, path or built-in name
        As :func:`convviz.explain` (a built-in name brings its preprocessing).
    images : folder, array, tf.data.Dataset, keras.utils.PyDataset, grain dataset or iterable
        The dataset: a folder of image files (read in sorted order; subfolders are classes, as
        ``keras.utils.image_dataset_from_directory`` infers them); an array batch; a
        dataset or iterable whose elements are image batches, ``(images, labels)``,
        dicts with ``"image"``/``"label"``, or single images (grouped ``batch_size`` at
        a time). Images are resized to the model's input.
    out : path
        The run's folder: ``manifest.json``, ``maps.zarr`` and ``table/*.parquet``
        (see :mod:`convviz._store`). Readable while the run goes on
        (:meth:`DatasetExplanation.open`).
    method : str
        Any method of :func:`convviz.explain` or :func:`convviz.attribute`.
    class_index : None, int or "labels"
        Each image's top class (default), one class for all, or the dataset's labels.
    layer : str, optional
        The layer a CAM method explains.
    metrics : sequence of str
        Faithfulness metrics computed per image and stored as table columns:
        ``"deletion"``, ``"insertion"``, ``"average_drop"``,
        ``"increase_in_confidence"``, ``"mufidelity"`` (see :func:`convviz.evaluate`).
    upsample : bool
        Store CAM maps at the model's input size instead of the layer's.
    dtype : "float16" or "float32"
        The stored maps' type (float16 halves the disk; maps in [0, 1] lose < 5e-4).
    batch_size : int
        Images per batch for folders, arrays and streams of single images (a
        dataset's own batches are kept); each batch is one zarr chunk and one
        Parquet file.
    resume : bool
        Continue an unfinished run in ``out`` (same settings) at its last completed
        batch; open a finished one. Without it, a folder holding a run is refused. The
        data is recognised by its kind and size (file count, array shape), not its
        content: resume with the same data.
    overwrite : bool
        Replace the run in ``out``.
    metric_options : dict, optional
        ``{metric: {option: value}}`` as :func:`convviz.evaluate` takes.
    seed : int
        Seeds MuFidelity (batch ``k`` uses ``seed + k``, so a resumed run gives the
        same values).
    output : str or int, optional
        For a model with several outputs, the one explained.
    safe_mode : bool
        ``False`` loads a ``.keras`` file that holds Python code (see
        :func:`convviz.inspector.load_model`).
    verbose : bool
        A progress bar with images/s and the time left.
    **options
        The method's own options (``logits``, ``eps``...); ``method_batch_size`` is the
        method's ``batch_size`` (inputs per compiled call).

    Returns
    -------
    DatasetExplanation

    Raises
    ------
    InputError
        Unreadable data, an unknown method, metric or option, ``out`` holding a run
        with other settings (or an unfinished one without ``resume``).

    Examples
    --------
    >>> import keras, numpy as np, tempfile, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    >>> out = tempfile.mkdtemp()
    >>> run = convviz.explain_dataset(model, np.random.rand(10, 16, 16, 3), out=out, batch_size=4,
    ...                               verbose=False)
    >>> len(run), run.maps.shape, run.manifest["batches"]
    (10, (10, 14, 14), 3)
    >>> sorted(run.table().column_names)
    ['class_index', 'index', 'name', 'predicted', 'predicted_probability', 'probability']
    """
    require()
    verbose = check_verbose(verbose)
    batch_size = check_batch_size(batch_size)
    dtype = check_choice(dtype, "dtype", ("float16", "float32"))
    for flag, value in (("resume", resume), ("overwrite", overwrite)):
        if not isinstance(value, (bool, np.bool_)):
            raise InputError(f"{flag} must be True or False, got {value!r}.")
    preprocess = None
    if not isinstance(model, (keras.Model, Inspector)):
        model, preprocess, _ = open_model(model, safe_mode=safe_mode)
    work = job(model, method=method, class_index=class_index, layer=layer, metrics=metrics, upsample=upsample,
               metric_options=metric_options, seed=seed, output=output, **options)
    source = open_data(images, batch_size=batch_size, preprocess=preprocess)
    if work.class_spec == "labels" and source.kind == "array":
        raise InputError("class_index='labels': this data has no labels; give (images, labels) batches or a "
                         "folder with one subfolder per class.")
    store = RunStore(out, work.settings(dtype=dtype, data=source.description), versions=_versions(),
                     resume=resume, overwrite=overwrite,
                     extra={"n_images": source.n_images, "n_batches": source.n_batches,
                            "class_names": source.class_names, "devices": work.devices,
                            "root": source.root, "input_size": list(work.inspector.input_shape[:2])})
    if not store.complete:
        progress = _RunProgress(store, source.n_images, verbose)
        k = store.batches
        for raw in source.batches(store.batches):
            columns, maps = _explain_batch(raw, k, store.rows, work)
            if len(maps):
                store.write(maps, columns)
                progress.step(len(maps))
            k += 1
        if store.rows == 0:
            raise InputError("The data holds no images.")
        store.finish()
        progress.close()
    return DatasetExplanation.open(store.out)


@dataclass
class _Job:
    """What explains each batch, every argument checked: the method (with its
    Inspector), the classes, the metrics, and the devices a batch is split across."""

    explainer: object
    class_spec: object
    upsample: bool
    metrics: list
    computations: dict
    seed: int
    devices: int

    @property
    def inspector(self) -> Inspector:
        return self.explainer.inspector

    def settings(self, *, dtype: str, data: dict) -> dict:
        """What determines the results (a run with other settings is never resumed)."""
        options = dict(self.explainer.options())
        if getattr(self.explainer, "layer", None) is not None:
            options["layer"] = self.explainer.layer
        model = self.inspector.model
        return {
            "model": {"name": model.name, "fingerprint": fingerprint(model)},
            "method": self.explainer.method_name, "options": options, "class_index": self.class_spec,
            "upsample": self.upsample, "dtype": dtype, "metrics": self.metrics,
            "metric_options": self.computations, "seed": self.seed, "data": data,
        }


def job(model, *, method="gradcam", class_index=None, layer=None, metrics=(), upsample=False,
        metric_options=None, seed=0, output=None, **options) -> _Job:
    """The :class:`_Job` for a built model and the arguments of :func:`explain_dataset`."""
    seed = check_seed(seed)
    if not isinstance(upsample, (bool, np.bool_)):
        raise InputError(f"upsample must be True or False, got {upsample!r}.")
    class_spec = _class_spec(class_index)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in metrics if m not in _DATASET_METRICS]
    if unknown:
        raise InputError(
            f"Unknown or unsupported dataset metric(s) {', '.join(map(repr, unknown))}: explain_dataset computes "
            f"{', '.join(_DATASET_METRICS)} image by image (the box metrics and randomization: convviz.evaluate)."
        )
    metrics = _check_metrics(metrics, boxes=False) if metrics else []
    computations = _computations(metrics, metric_options) if metrics else {}
    cls = get_method(method)
    if "method_batch_size" in options:
        options["batch_size"] = options.pop("method_batch_size")
    if layer is not None:
        if not issubclass(cls, LayerMethod):
            raise InputError(f"layer: {cls.name} attributes the input pixels and takes no layer.")
        options["layer"] = layer
    explainer = create(cls, model, output=output, **options)
    return _Job(explainer, class_spec, bool(upsample), metrics, computations, seed, _autodiff.data_devices())


class _RunProgress:
    """The progress bar of a run: images done (a resumed run starts at its rows), the
    images per second of this session, the time left."""

    def __init__(self, store: RunStore, total: int | None, verbose: int):
        self.store, self.done, self.start = store, 0, time.perf_counter()
        self.bar = Progress(total, verbose, "image", stateful=("images/s",))
        if store.rows:
            self.bar.update(store.rows)

    def step(self, n: int) -> None:
        self.done += n
        rate = self.done / max(time.perf_counter() - self.start, 1e-9)
        self.bar.update(self.store.rows, values=[("images/s", rate)])

    def close(self) -> None:
        self.bar.update(self.store.rows, finalize=True)


def _explain_batch(raw: RawBatch, k: int, first_row: int, work: _Job):
    """(columns, maps) of batch number ``k``, whose first image is row ``first_row``."""
    images = work.inspector.prepare(raw.images)
    n = len(images)
    if not n:
        return {}, np.zeros((0,), np.float32)
    labels = _int_labels(raw.labels, n, "The data") if raw.labels is not None else None
    classes = work.class_spec
    if classes == "labels":
        if labels is None:
            raise InputError(f"class_index='labels': batch {k} has no labels.")
        classes = labels
    batch = _padded(images, work.devices)
    if isinstance(classes, np.ndarray) and len(batch) > n:
        classes = np.concatenate([classes, np.repeat(classes[-1:], len(batch) - n)])
    result = work.explainer.explain(batch, class_index=classes)
    if len(batch) > n:
        result = _trimmed(result, n)
    maps = result.upsampled() if work.upsample and result.maps.ndim == 3 else result.maps
    chosen = np.asarray(result.class_index, np.int64)
    predicted = _predicted(result.predictions).astype(np.int64)
    columns = {
        "index": np.arange(first_row, first_row + n, dtype=np.int64),
        "name": list(raw.names) if raw.names is not None else [str(i) for i in range(first_row, first_row + n)],
    }
    if labels is not None:
        columns["label"] = labels
    columns.update({
        "predicted": predicted,
        "predicted_probability": _probability(result.predictions, predicted),
        "class_index": chosen,
        "probability": _probability(result.predictions, chosen),
    })
    for computation, options in work.computations.items():
        got = _compute(computation, work.inspector, images, result, work.explainer.method_name, options=options,
                       boxes=None, seed=work.seed + k, scoring={"batch_size": work.explainer.batch_size},
                       verbose=0, method_options={})
        columns.update({m: np.asarray(v, np.float64) for m, v in got.items() if m in work.metrics})
    return columns, np.asarray(maps, np.float32)


def _trimmed(result, n: int):
    """The result of the first ``n`` images (the rest padded the batch for the devices)."""
    fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    for name in ("maps", "class_index", "predictions", "images"):
        if fields.get(name) is not None:
            fields[name] = fields[name][:n]
    if isinstance(fields.get("details"), dict):
        fields["details"] = {key: np.asarray(v)[:n] if np.ndim(v) and len(v) == len(result.maps) else v
                             for key, v in fields["details"].items()}
    return type(result)(**fields)
