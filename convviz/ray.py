"""Explanations over a dataset on a Ray cluster (``pip install 'convviz[ray]'``).

:func:`explain` maps the step of :func:`convviz.explain_dataset` over a
``ray.data.Dataset`` with a pool of actors, each of which loads the model once; the
driver writes what they return, in the dataset's order, into the same on-disk layout
(zarr maps, Parquet rows, manifest), so :class:`convviz.DatasetExplanation` reads it
and ``resume=True`` continues it.

On a cluster::

    ray start --head                      # on the head node
    ray start --address HEAD:6379         # on each worker node (same Python packages)

    import ray, convviz.ray
    ray.init(address="auto")
    ds = ray.data.read_images("s3://bucket/val/", include_paths=True, mode="RGB")
    run = convviz.ray.explain(ds, "s3-mounted/model.keras", method="gradcam",
                              out="/shared/val_gradcam", workers=8)

``out`` is written by the driver only; the workers need the model file (a path every
node can read) and the same Keras backend, which is passed on to them.
"""

from __future__ import annotations

import os
import zlib

import keras
import numpy as np

from convviz._batches import RawBatch
from convviz._store import RunStore
from convviz._validation import (
    check_batch_size,
    check_positive_int,
    check_positive_number,
    check_verbose,
)
from convviz.datasets import DatasetExplanation, _explain_batch, _RunProgress, _versions, job
from convviz.errors import InputError

__all__ = ["explain"]


def _require_ray():
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise InputError("convviz.ray needs Ray Data: pip install 'convviz[ray]' (ray[data]).") from err
    return ray


class _Worker:
    """A Ray actor: loads the model once, then explains batches of rows."""

    def __init__(self, model_path: str, arguments: dict):
        from convviz.inspector import load_model

        self.job = job(load_model(model_path, safe_mode=arguments.pop("safe_mode")), **arguments)

    def __call__(self, batch: dict) -> dict:
        images = batch["image"]
        images = list(images) if images.dtype == object else images
        names = [str(p) for p in batch["path"]] if "path" in batch else None
        labels = np.asarray(batch["label"]) if "label" in batch else None
        # MuFidelity's grids are seeded per batch from its first image's name (the
        # workers do not know the batch's place in the dataset).
        k = zlib.crc32(names[0].encode()) if names else 0
        columns, maps = _explain_batch(RawBatch(images, labels, names), k, 0, self.job)
        columns["maps"] = list(maps)
        return {key: np.asarray(value) for key, value in columns.items()}


def explain(ds, model_path, *, out, method="gradcam", class_index=None, layer=None, metrics=(),
            upsample: bool = False, dtype: str = "float16", batch_size: int = 32, workers: int = 2,
            cpus_per_worker: float = 1.0,
            resume: bool = False, overwrite: bool = False, metric_options: dict | None = None, seed: int = 0,
            output=None, safe_mode: bool = True, verbose: bool = True, **options) -> DatasetExplanation:
    """Explain every image of a ``ray.data.Dataset`` on a Ray cluster, streaming the
    results to ``out`` (the layout of :func:`convviz.explain_dataset`).

    Parameters
    ----------
    ds : ray.data.Dataset
        Rows with an ``"image"`` column (``ray.data.read_images``; images are resized
        to the model's input), optionally ``"path"`` (``include_paths=True``: the
        rows' names) and ``"label"`` (for ``class_index="labels"``).
    model_path : path
        A ``.keras`` file every worker can read.
    workers : int
        Actors in the pool (each holds the model once).
    cpus_per_worker : float
        CPUs Ray reserves for each actor. The pool must leave at least one of the
        cluster's CPUs to the tasks that read the images (else the run would wait
        forever; it is refused): on a 2-CPU machine, two workers of 0.5 CPU.
    out, method, class_index, layer, metrics, upsample, dtype, batch_size, resume, overwrite, metric_options, seed, output, safe_mode, verbose, **options
        As :func:`convviz.explain_dataset`; ``batch_size`` rows per actor call, one
        zarr chunk and one Parquet file each.

    Returns
    -------
    DatasetExplanation

    Examples
    --------
    >>> import ray, convviz.ray  # doctest: +SKIP
    >>> ray.init(num_cpus=2)  # doctest: +SKIP
    >>> ds = ray.data.read_images("val/", include_paths=True, mode="RGB")  # doctest: +SKIP
    >>> run = convviz.ray.explain(ds, "model.keras", out="val_gradcam", workers=2)  # doctest: +SKIP
    """
    ray = _require_ray()
    if not isinstance(ds, ray.data.Dataset):
        raise InputError(f"convviz.ray.explain reads a ray.data.Dataset, got {type(ds).__name__}.")
    workers = check_positive_int(workers, "workers")
    cpus_per_worker = check_positive_number(cpus_per_worker, "cpus_per_worker")
    if not ray.is_initialized():
        raise InputError("Start Ray first: ray.init() (this machine) or ray.init(address='auto') (a cluster).")
    cpus = float(ray.cluster_resources().get("CPU", 0))
    if workers * cpus_per_worker > cpus - 1:
        raise InputError(
            f"workers x cpus_per_worker = {workers} x {cpus_per_worker:g} leaves less than one of the cluster's "
            f"{cpus:g} CPUs to read the images, and the run would wait for ever: use fewer workers or a "
            f"smaller cpus_per_worker (e.g. {max((cpus - 1) / workers, 0.1):.2g})."
        )
    batch_size = check_batch_size(batch_size)
    verbose = check_verbose(verbose)
    model_path = os.path.abspath(os.fspath(model_path))
    if not os.path.exists(model_path):
        raise InputError(f"No model file {model_path!r}; convviz.ray.explain loads a .keras file on each worker.")
    from convviz.inspector import load_model

    arguments = dict(method=method, class_index=class_index, layer=layer, metrics=metrics, upsample=upsample,
                     metric_options=metric_options, seed=seed, output=output, **options)
    # The driver checks every argument (and computes the settings) before the cluster starts.
    local = job(load_model(model_path, safe_mode=safe_mode), **arguments)
    columns = set(ds.columns() or [])
    if "image" not in columns:
        raise InputError(f"The dataset has no 'image' column (its columns: {', '.join(sorted(columns))}).")
    if local.class_spec == "labels" and "label" not in columns:
        raise InputError("class_index='labels' needs a 'label' column in the dataset.")
    n = ds.count()
    settings = local.settings(dtype=dtype, data={"kind": "ray.data", "rows": n, "batch_size": batch_size})
    store = RunStore(out, settings, versions=_versions(), resume=resume, overwrite=overwrite,
                     extra={"n_images": n, "n_batches": -(-n // batch_size), "class_names": None,
                            "devices": 1, "workers": workers})
    if not store.complete:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # rows come back in the dataset's order
        rest = ds.split_at_indices([store.rows])[1] if store.rows else ds
        mapped = rest.map_batches(
            _Worker, batch_size=batch_size, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=cpus_per_worker,
            fn_constructor_kwargs={"model_path": model_path, "arguments": {**arguments, "safe_mode": safe_mode}},
            runtime_env={"env_vars": {"KERAS_BACKEND": keras.backend.backend()}},
        )
        progress = _RunProgress(store, n, verbose)
        for batch in mapped.iter_batches(batch_size=batch_size, batch_format="numpy"):
            maps = np.stack(list(batch.pop("maps")))
            rows = len(maps)
            # The workers number rows from 0 in each batch; the driver knows where it is.
            index = np.arange(store.rows, store.rows + rows, dtype=np.int64)
            names = [str(v) for v in batch["name"]] if "path" in columns else [str(i) for i in index]
            store.write(maps, {**batch, "index": index, "name": names})
            progress.step(rows)
        store.finish()
        progress.close()
    return DatasetExplanation.open(store.out)
