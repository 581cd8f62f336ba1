"""What every explanation method shares: the base class, the registry, the result type.

A method is one class in one file of :mod:`convviz.methods`. Its class attributes say
what it is (``name``, the snake_case string users pass as ``method=``; ``title``;
``kind``; ``reference``) and subclassing :class:`Method` registers it, so
:func:`convviz.explain`, the gallery, the CLI and the Sphinx directive find it by
name. :mod:`convviz.methods.cam` holds the bases for class activation maps.
"""

from __future__ import annotations

import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import ClassVar

import keras
import numpy as np

from convviz._inputs import _resize
from convviz._validation import check_batch_size
from convviz.errors import InputError, ModelStructureError, closest
from convviz.inspector import Inspector

__all__ = ["Explanation", "Method", "get_method", "method_names", "register"]

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Add a :class:`Method` subclass to the registry under ``cls.name``.

    Subclasses that define ``name`` register themselves; this is for classes made
    elsewhere. Two classes may not share a name.
    """
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise TypeError(f"{cls.__name__}.name must be a snake_case string, got {name!r}.")
    known = _REGISTRY.get(name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise TypeError(f"Method name {name!r} is taken by {known.__module__}.{known.__qualname__}.")
    _REGISTRY[name] = cls
    return cls


def method_names(kind: str | None = None) -> list[str]:
    """Registered method names (of one ``kind``, e.g. ``"cam"``), in registration order.

    >>> "gradcam" in method_names("cam")
    True
    """
    return [n for n, c in _REGISTRY.items() if kind is None or c.kind == kind]


def get_method(name) -> type[Method]:
    """The method class registered as ``name`` (a class is returned as it is).

    Raises :class:`~convviz.errors.InputError` naming the closest known methods.
    """
    if isinstance(name, type) and issubclass(name, Method):
        return name
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    hint = closest(str(name), _REGISTRY)
    raise InputError(
        f"Unknown explanation method {name!r}; known: {', '.join(_REGISTRY)}"
        + (f" (did you mean {hint[0]!r}?)" if hint else "") + "."
    )


@dataclass
class Explanation:
    """Maps that explain a model's classes on images, with what they explain.

    Every spatial explanation method returns one (:func:`convviz.explain`).

    Attributes
    ----------
    maps : numpy.ndarray
        (N, h, w) float32 in [0, 1] at the explained layer's resolution (CAM methods).
    class_index : numpy.ndarray
        (N,) int, the class each map explains. For a single sigmoid unit: 1 is the
        positive class (the unit's output), 0 the negative one.
    predictions : numpy.ndarray
        (N, C) the model's outputs (probabilities for softmax/sigmoid heads).
    layer : str or None
        The explained layer.
    method : str
        The registered name of the method (``"gradcam"``, ...).
    input_size : (int, int)
        Height and width of the images as the model saw them.
    images : numpy.ndarray or None
        The (N, H, W, C) batch as the model saw it, for :meth:`plot`; not saved.
    options : dict
        The method's options (``logits``, ...), as saved with the maps.
    """

    maps: np.ndarray
    class_index: np.ndarray
    predictions: np.ndarray
    layer: str | None
    method: str
    input_size: tuple[int, int]
    images: np.ndarray | None = field(default=None, repr=False)
    options: dict = field(default_factory=dict)

    @property
    def heatmaps(self) -> np.ndarray:
        """The maps (the name Grad-CAM results have always used)."""
        return self.maps

    def __len__(self) -> int:
        return len(self.maps)

    def __repr__(self) -> str:
        return (
            f"Explanation(method={self.method!r}, layer={self.layer!r}, maps={self.maps.shape}, "
            f"class_index={self.class_index.tolist()})"
        )

    def upsampled(self, size=None) -> np.ndarray:
        """Maps resized (bilinear) to ``size=(height, width)``, by default the model's
        input size; still in [0, 1]."""
        return upsample(self.maps, self.input_size if size is None else size)

    def plot(self, *, class_names=None, ncols: int = 4, figsize=None, alpha: float = 0.4,
             cmap: str = "jet", save=None):
        """Each map over its image (the chapter's jet overlay), titled with the class
        and its probability. Returns a :class:`matplotlib.figure.Figure`.

        ``class_names`` turns class indices into names (two names, negative then
        positive, for a single sigmoid unit).
        """
        from convviz import plot

        if self.images is None:
            raise InputError(
                "This Explanation holds no images (it was loaded from a file); use "
                "convviz.plot.gradcam(images, explanation.maps) with the images."
            )
        titles = [_label(p, int(c), class_names) for p, c in zip(self.predictions, self.class_index)]
        return plot.gradcam(self.images, self.maps, titles=titles, alpha=alpha, cmap=cmap, ncols=ncols,
                            figsize=figsize, save=save)

    def save(self, path) -> pathlib.Path:
        """Write the maps, classes, predictions and metadata to a ``.npz`` file
        (:meth:`load` reads it back). Returns the path written."""
        path = pathlib.Path(os.fspath(path))
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        meta = {"layer": self.layer, "method": self.method, "input_size": list(self.input_size),
                "options": self.options}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, maps=self.maps, class_index=self.class_index,
                            predictions=self.predictions, meta=np.array(json.dumps(meta)))
        return path

    @classmethod
    def load(cls, path) -> Explanation:
        """Read an Explanation written by :meth:`save` (without its images)."""
        with np.load(os.fspath(path), allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            return cls(f["maps"], f["class_index"], f["predictions"], meta["layer"], meta["method"],
                       tuple(meta["input_size"]), options=meta["options"])


def upsample(maps: np.ndarray, size) -> np.ndarray:
    """Resize (N, h, w) maps to (N, height, width) with bilinear interpolation, in [0, 1]."""
    maps = np.asarray(maps, dtype=np.float32)
    return np.clip(_resize(maps[..., None], tuple(size))[..., 0], 0.0, 1.0)


def _label(pred: np.ndarray, cls: int, class_names) -> str:
    name = str(class_names[cls]) if class_names is not None and 0 <= cls < len(class_names) else f"class {cls}"
    p = float(pred[0]) if pred.shape[-1] == 1 else float(pred[cls])
    if pred.shape[-1] == 1 and cls == 0:
        p = 1.0 - p
    return f"{name} ({p:.3f})"


class Method:
    """Base of every explanation method: a model, a layer, and one verb.

    Subclasses set the class attributes and implement :meth:`explain`. Creating an
    instance opens the model once (its :class:`~convviz.Inspector`, shared with every
    other convviz call on that model); compiled steps are cached there, so an
    instance is cheap to make and reuse.

    Parameters
    ----------
    model : keras.Model, Inspector or path
        Any model convviz can open; the layer may sit inside a nested conv base.
    layer : str, optional
        The layer to explain (name or ``outer/inner`` path); default
        :meth:`convviz.Inspector.last_conv_layer`.
    logits : bool
        Explain the class score before a final softmax/sigmoid (default), or the
        model's output itself (``False``).
    batch_size : int
        Images per compiled call.
    """

    name: ClassVar[str]
    """The snake_case name users pass as ``method=``."""
    title: ClassVar[str] = ""
    """How figures and pages name the method ("Grad-CAM")."""
    kind: ClassVar[str] = ""
    """``"cam"`` for class activation maps at a layer's resolution."""
    reference: ClassVar[str] = ""
    """The paper the method comes from."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            register(cls)

    def __init__(self, model, *, layer=None, logits: bool = True, batch_size: int = 32):
        self.inspector = Inspector(model)
        self.logits = bool(logits)
        self.batch_size = check_batch_size(batch_size)
        self.layer = self._check_layer(layer)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inspector.model.name!r}, layer={self.layer!r})"

    def options(self) -> dict:
        """The options that, with the model and images, determine the result."""
        return {"logits": self.logits}

    def explain(self, images, *, class_index=None) -> Explanation:
        """Explain ``images`` (one or a batch); ``class_index`` None explains each
        image's top class, an int or one int per image the given classes."""
        raise NotImplementedError

    def __call__(self, images, *, class_index=None) -> Explanation:
        """The same as :meth:`explain`."""
        return self.explain(images, class_index=class_index)

    # -- helpers for subclasses -------------------------------------------------------

    def _check_layer(self, layer) -> str:
        inspector = self.inspector
        info = inspector.find_layer(inspector.last_conv_layer() if layer is None else layer)
        if len(info.output_shape) != 4:
            raise ModelStructureError(
                f"{self.title or self.name} needs a layer with a spatial output (N, H, W, C); "
                f"{info.name!r} outputs {info.output_shape}."
            )
        return info.name

    def _score_shape(self) -> tuple:
        shape = keras.tree.flatten(self.inspector._gradient_model(self.layer, logits=self.logits).outputs)[1].shape
        if len(shape) != 2:
            raise ModelStructureError(
                f"{self.title or self.name} needs class scores of shape (N, C); the model outputs {shape}."
            )
        return tuple(shape)

    def _threshold(self, n_classes: int) -> float:
        """Where a single unit's score flips class: 0 for logits, 0.5 for a raw output."""
        activation = self.inspector._output_activation(self.logits)
        return 0.5 if n_classes == 1 and activation is None else 0.0

    def _classes(self, scores: np.ndarray, class_index) -> np.ndarray:
        """(N,) the explained classes: ``class_index``, or each image's top class."""
        if class_index is not None:
            return np.broadcast_to(np.asarray(class_index), (len(scores),)).astype(np.int64)
        return chosen_class(scores, self._threshold(scores.shape[-1]))

    def _result(self, maps, scores, class_index, batch) -> Explanation:
        """The Explanation from normalised (N, h, w) maps and the (N, C) scores."""
        return Explanation(
            maps, self._classes(scores, class_index),
            probabilities(scores, self.inspector._output_activation(self.logits)),
            self.layer, self.name, tuple(batch.shape[1:3]), images=batch, options=self.options(),
        )


def class_weights(class_index, n: int, n_classes: int):
    """(weights (N, C), use_top (N,)) from the user's ``class_index``.

    ``weights`` holds +1 at the wanted class (for a single sigmoid unit: +1 for the
    positive class, -1 for the negative one); rows with ``use_top`` set take the
    predicted class instead, chosen inside the compiled step.
    """
    weights = np.zeros((n, n_classes), np.float32)
    if class_index is None:
        return weights, np.ones(n, np.float32)
    idx = np.asarray(class_index)
    if idx.ndim == 0:
        idx = np.full(n, idx)
    if idx.shape != (n,) or not np.issubdtype(idx.dtype, np.integer):
        raise InputError(
            f"class_index must be None, an int, or one int per image ({n}); got {class_index!r}."
        )
    valid = 2 if n_classes == 1 else n_classes
    if idx.min() < 0 or idx.max() >= valid:
        what = "0 (negative) or 1 (positive) for a single sigmoid unit" if n_classes == 1 else f"0..{n_classes - 1}"
        raise InputError(f"class_index {idx.tolist()} out of range: expected {what}.")
    if n_classes == 1:
        weights[:, 0] = np.where(idx == 1, 1.0, -1.0)
    else:
        weights[np.arange(n), idx] = 1.0
    return weights, np.zeros(n, np.float32)


def class_objective(threshold: float):
    """``objective(outputs, weights, use_top)``: the sum over the batch of each image's
    class score, the class picked per image (see :func:`class_weights`); ``outputs[1]``
    are the scores. One forward pass serves both the choice and the gradient.
    """

    def objective(outputs, weights, use_top):
        scores = outputs[1]
        if scores.shape[-1] == 1:
            top = keras.ops.where(scores >= threshold, 1.0, -1.0)
        else:
            top = keras.ops.one_hot(keras.ops.argmax(scores, axis=-1), scores.shape[-1])
        chosen = keras.ops.where(keras.ops.expand_dims(use_top, -1) > 0, top, weights)
        return keras.ops.sum(scores * keras.ops.stop_gradient(chosen))

    return objective


def probabilities(scores: np.ndarray, activation: str | None) -> np.ndarray:
    """The model's outputs from its scores: softmax/sigmoid applied when ``activation``
    says the scores are logits, else the scores as they are."""
    scores = scores.astype(np.float64)
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-scores))).astype(np.float32)
    if activation == "softmax":
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    return scores.astype(np.float32)


def chosen_class(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Each image's top class: the argmax, or for one unit ``score >= threshold``."""
    if scores.shape[-1] == 1:
        return (scores[:, 0] >= threshold).astype(np.int64)
    return scores.argmax(axis=-1)
