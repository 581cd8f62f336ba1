"""Activation sparsity across depth, measured over one image or a whole dataset.

The chapter observes that the first layer's filters all respond to an image while,
deeper, more and more filters are blank: the pattern they encode is absent. This
module measures it. Statistics are reduced inside the compiled model (per image and
channel: how many positions are active, and their sum), so only a few numbers per
channel leave the backend and a dataset is streamed batch by batch: its activations
are never held in memory.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import keras
import numpy as np

from convviz import plot
from convviz._batches import is_stream, open_data
from convviz._inputs import refuse_mapping
from convviz._progress import Progress
from convviz._validation import check_batch_size, check_verbose, keyword_only, renamed
from convviz.errors import InputError
from convviz.inspector import Inspector

__all__ = ["COLUMNS", "LayerSparsity", "SparsityTable", "sparsity"]

COLUMNS = (
    "depth",
    "layer",
    "output_shape",
    "channels",
    "zero_fraction",
    "blank_fraction",
    "mean_activation",
    "dead_fraction",
)


@dataclass(frozen=True)
class LayerSparsity:
    """Sparsity statistics of one layer over the data: one row of a :class:`SparsityTable`
    (draw the table with :meth:`SparsityTable.plot`).

    Attributes
    ----------
    depth : int
        Position of the layer among the measured ones, 1 = shallowest.
    layer : str
        Layer name (``outer/inner`` path when not unique).
    output_shape : tuple
        Output shape per image (H, W, C).
    channels : int
        Number of channels (filters).
    zero_fraction : float
        Fraction of all activations that are zero (<= threshold).
    blank_fraction : float
        Fraction of channels that are zero everywhere on an image, averaged over images.
    mean_activation : float
        Mean activation value.
    dead_fraction : float
        Fraction of channels zero everywhere on every image of the data.
    """

    depth: int
    layer: str
    output_shape: tuple
    channels: int
    zero_fraction: float
    blank_fraction: float
    mean_activation: float
    dead_fraction: float


@dataclass
class SparsityTable:
    """Per-layer sparsity, shallow to deep; prints as a table, exports, plots.

    Examples
    --------
    >>> table = convviz.sparsity(model, images)  # doctest: +SKIP
    >>> print(table)  # doctest: +SKIP
    >>> table.to_csv("sparsity.csv"); table.plot()  # doctest: +SKIP
    """

    rows: list[LayerSparsity]
    images: int
    threshold: float

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, key) -> LayerSparsity:
        if isinstance(key, str):
            for row in self.rows:
                if row.layer == key:
                    return row
            raise KeyError(f"No layer {key!r}; measured: {', '.join(r.layer for r in self.rows)}.")
        return self.rows[key]

    def column(self, name: str) -> np.ndarray:
        """One statistic for every layer, shallow to deep."""
        if name not in COLUMNS:
            raise KeyError(f"No column {name!r}; columns: {', '.join(COLUMNS)}.")
        return np.array([getattr(r, name) for r in self.rows])

    def to_records(self) -> list[dict]:
        """A list of dicts, one per layer (JSON-ready: shapes are lists)."""
        return [{**asdict(r), "output_shape": list(r.output_shape)} for r in self.rows]

    def to_csv(self, path=None) -> str:
        """CSV text (shape written as ``HxWxC``); also written to ``path`` if given."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for record in self.to_records():
            record["output_shape"] = "x".join(map(str, record["output_shape"]))
            writer.writerow(record)
        return _write(buffer.getvalue(), path)

    def to_json(self, path=None) -> str:
        """JSON text with the rows, image count and threshold; also written to ``path``."""
        payload = {"images": self.images, "threshold": self.threshold, "layers": self.to_records()}
        return _write(json.dumps(payload, indent=2), path)

    def plot(self, **kwargs):
        """:func:`convviz.plot.sparsity` of this table; keyword arguments are passed on
        (``figsize``, ``save``, ``labels``). Returns a matplotlib Figure."""
        return plot.sparsity(self, **kwargs)

    def __str__(self) -> str:
        head = f"{'depth':>5}  {'layer':<24}{'shape':>15}{'zero':>8}{'blank':>8}{'dead':>8}{'mean':>10}"
        lines = [f"Activation sparsity over {self.images} image(s), zero = value <= {self.threshold:g}", head]
        for r in self.rows:
            shape = "x".join(map(str, r.output_shape))
            lines.append(
                f"{r.depth:>5}  {r.layer[:23]:<24}{shape:>15}{r.zero_fraction:>8.3f}"
                f"{r.blank_fraction:>8.3f}{r.dead_fraction:>8.3f}{r.mean_activation:>10.4g}"
            )
        return "\n".join(lines)

    __repr__ = __str__


def _write(text: str, path) -> str:
    if path is not None:
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            f.write(text)
    return text


def _stats_model(inspector: Inspector, names: list[str], threshold: float) -> keras.Model:
    """Per image and channel: count of active positions and sum of values, per layer."""
    features = inspector._feature_model(names)
    outputs = []
    for tensor in keras.tree.flatten(features.outputs):
        spatial = tuple(range(1, len(tensor.shape) - 1))
        active = keras.ops.cast(keras.ops.greater(tensor, threshold), "float32")
        outputs.append(keras.ops.sum(active, axis=spatial) if spatial else active)
        outputs.append(keras.ops.sum(tensor, axis=spatial) if spatial else tensor)
    return keras.Model(features.input, outputs, name="convviz_sparsity")


def _stream(inspector: Inspector, images, batch_size: int):
    """(float32 NHWC batches, how many) of a folder or an iterable of batches, read as
    :func:`convviz.explain_dataset` reads them (labels are ignored)."""
    refuse_mapping(images)
    if not isinstance(images, (Iterable, str, os.PathLike)):
        raise InputError(
            f"Cannot read images from {type(images).__name__}: give an image, an array batch, "
            "a list of images, a folder, or an iterable / tf.data.Dataset of batches."
        )
    data = open_data(images, batch_size=batch_size)
    return (inspector.prepare(raw.images) for raw in data.batches()), data.n_batches


@renamed(data="images")
@keyword_only(2, "layers")
def sparsity(
    model,
    images,
    *,
    layers=None,
    threshold: float = 0.0,
    batch_size: int = 32,
    verbose: bool = True,
) -> SparsityTable:
    """Sparsity statistics of a model's layers over one image or a whole dataset.

    Parameters
    ----------
    model : keras.Model, convviz.Inspector or path
        Any built Sequential or Functional convnet (nested conv bases included).
    images : image, array batch, list of images, folder, or iterable of batches
        One image or an (N, H, W, C) batch in any form :func:`convviz.activations`
        accepts; or a dataset, streamed: a folder of image files, a
        ``tf.data.Dataset``, a ``keras.utils.PyDataset``, a grain dataset or any
        iterable (a generator) whose elements are image batches, single images,
        ``(images, labels)`` tuples or dicts with ``"image"`` (labels are ignored), as
        :func:`convviz.explain_dataset` reads them. Formerly ``data``.
    layers : str or list of str, optional
        Default: every convolution and pooling layer, shallow to deep. Keyword-only
        (passing it by position still works, with a DeprecationWarning, until the
        next release).
    threshold : float
        An activation counts as zero when ``value <= threshold``. The default 0 makes
        ReLU outputs exactly-zero; for layers without ReLU (a linear conv before
        BatchNorm, say) negative values count as zero too, as a ReLU after them would
        zero them. Raise it to treat tiny positive values as zero.
    batch_size : int
        Images per forward pass (default 32; an iterable's batches larger than this
        are split); a positive integer.
    verbose : bool
        A progress bar on standard error (default True): over images for an
        in-memory batch, over the iterable's batches for a stream. Keras-style 0, 1
        and 2 are accepted; ``"auto"`` is deprecated.

    Returns
    -------
    SparsityTable
        One :class:`LayerSparsity` row per layer: zero fraction, blank-channel
        fraction (averaged over images), mean activation, dead-channel fraction.

    Raises
    ------
    convviz.errors.InputError
        Unreadable images, no images at all, a non-finite ``threshold``, a
        ``batch_size`` that is not a positive integer, or an invalid ``verbose``.
    convviz.errors.LayerNotFoundError
        An unknown layer name.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)),
    ...     keras.layers.Conv2D(8, 3, activation="relu", name="conv")])
    >>> table = convviz.sparsity(model, np.random.rand(4, 16, 16, 3), verbose=False)
    >>> table["conv"].channels
    8
    """
    try:
        ok = threshold is not None and not isinstance(threshold, bool) and math.isfinite(threshold)
    except TypeError:
        ok = False
    if not ok:
        raise InputError(f"threshold must be a finite number, got {threshold!r}.")
    threshold = float(threshold)
    batch_size = check_batch_size(batch_size)
    verbose = check_verbose(verbose)
    inspector = Inspector.of(model)
    names = inspector.select_layers(layers)
    run = inspector._inference(
        "sparsity", (tuple(names), threshold), lambda: _stats_model(inspector, names, threshold)
    )
    feature_model = inspector._feature_model(names)
    shapes = [tuple(t.shape[1:]) for t in keras.tree.flatten(feature_model.outputs)]
    channels = [s[-1] for s in shapes]
    sized = {}  # input (h, w, c) -> the layers' output shapes, for models of variable size
    active = [np.zeros(c, np.float64) for c in channels]  # sum over images of active counts
    blank = [0.0] * len(names)  # blank channels, summed over images
    total = [0.0] * len(names)  # sum of activation values
    ever_active = [np.zeros(c, bool) for c in channels]
    elements = [0] * len(names)  # activation values seen
    n_images = done = 0
    streamed = is_stream(images)
    if streamed:  # progress over the iterable's batches
        sources, steps = _stream(inspector, images, batch_size)
        progress = Progress(steps, verbose, "batch")
    else:  # progress over the images of one in-memory batch
        sources = [inspector.prepare(images)]
        progress = Progress(len(sources[0]), verbose, "image")
    for source in sources:
        for i in range(0, len(source), batch_size):
            batch = source[i : i + batch_size]
            outputs = [np.asarray(o, np.float64) for o in run(batch)]
            if batch.shape[1:] not in sized:
                sized[batch.shape[1:]] = _output_shapes(feature_model, batch.shape[1:], shapes)
            shapes = sized[batch.shape[1:]]
            for k in range(len(names)):
                counts, sums = outputs[2 * k], outputs[2 * k + 1]
                if not np.isfinite(sums).all():  # (N, C) sums: an inf or NaN anywhere shows
                    inspector.check_finite(batch, {f"The activation sums of layer {names[k]!r}": sums})
                active[k] += counts.sum(axis=0)
                blank[k] += float((counts == 0).sum())
                total[k] += float(sums.sum())
                ever_active[k] |= (counts > 0).any(axis=0)
                elements[k] += len(batch) * channels[k] * int(np.prod(shapes[k][:-1], dtype=np.int64))
            n_images += len(batch)
            if not streamed:
                progress.update(n_images)
        if streamed:
            done += 1
            progress.update(done)
    progress.update(done if streamed else n_images, finalize=True)
    if n_images == 0:
        raise InputError("The data holds no images.")
    rows = []
    for k, name in enumerate(names):
        rows.append(
            LayerSparsity(
                depth=k + 1,
                layer=name,
                output_shape=shapes[k],
                channels=channels[k],
                zero_fraction=1.0 - float(active[k].sum()) / elements[k],
                blank_fraction=blank[k] / (n_images * channels[k]),
                mean_activation=total[k] / elements[k],
                dead_fraction=float((~ever_active[k]).mean()),
            )
        )
    return SparsityTable(rows, n_images, threshold)


def _output_shapes(feature_model, input_shape, static):
    """The layers' output shapes (without the batch) for images of ``input_shape``: the
    static ones when they are fully known, else Keras' shape inference at that size
    (a model with a variable input size)."""
    if all(None not in s for s in static):
        return static
    spec = feature_model.compute_output_spec(keras.KerasTensor((1, *input_shape)))
    return [tuple(t.shape[1:]) for t in keras.tree.flatten(spec)]
