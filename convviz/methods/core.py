"""What every explanation method shares: the base class, the registry, the result type.

A method is one class in one file of :mod:`convviz.methods`. Its class attributes say
what it is (``name``, the snake_case string users pass as ``method=``; ``title``;
``kind``; ``reference``) and subclassing :class:`Method` registers it, so
:func:`convviz.explain`, the gallery, the CLI and the Sphinx directive find it by
name. :mod:`convviz.methods.cam` holds the bases for class activation maps.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import ClassVar

import keras
import numpy as np

from convviz import plot
from convviz._files import read_saved
from convviz._inputs import _resize
from convviz._progress import Progress
from convviz._validation import check_batch_size
from convviz.errors import InputError, ModelStructureError, closest
from convviz.inspector import Inspector

__all__ = [
    "RESERVED", "Explanation", "LayerMethod", "Method", "chosen_class", "class_name", "class_objective",
    "class_probability", "class_weights", "create", "get_method", "method_names", "option_names", "probabilities",
    "register", "upsample",
]

_REGISTRY: dict[str, type[Method]] = {}


RESERVED = frozenset({"activations", "cam_methods", "faithfulness", "filters", "sparsity"})
"""Names a method may not take: they are the gallery's other figure kinds."""


def register(cls: type[Method]) -> type[Method]:
    """Add a :class:`Method` subclass to the registry under ``cls.name``.

    Subclasses that set ``name`` register themselves (``class M(CAM, register=False)``
    opts out). Two classes may not share a name, and :data:`RESERVED` names are refused.

    >>> register(get_method("gradcam")).name
    'gradcam'
    """
    name = cls.__dict__.get("name")
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise TypeError(f"{cls.__name__}.name must be a snake_case string, got {name!r}.")
    if name in RESERVED:
        raise TypeError(f"{name!r} is a gallery figure kind, not available as a method name.")
    known = _REGISTRY.get(name)
    if known is not None and (known.__module__, known.__qualname__) != (cls.__module__, cls.__qualname__):
        raise TypeError(f"Method name {name!r} is taken by {known.__module__}.{known.__qualname__}.")
    _REGISTRY[name] = cls
    return cls


_register = register


def method_names(kind: str | None = None) -> list[str]:
    """Registered method names (of one ``kind``, e.g. ``"cam"``), ordered by each
    class's :attr:`~Method.order`, then by name: the order of galleries and figures.

    >>> method_names("cam")[:2]
    ['gradcam', 'gradcam_plusplus']
    """
    chosen = [(c.order, n) for n, c in _REGISTRY.items() if kind is None or c.kind == kind]
    return [n for _, n in sorted(chosen)]


def get_method(name) -> type[Method]:
    """The method class registered as ``name`` (a Method subclass is returned as it is).

    Raises :class:`~convviz.errors.InputError` naming the closest known methods.

    >>> get_method("gradcam_plusplus").title
    'Grad-CAM++'
    """
    if isinstance(name, type) and issubclass(name, Method):
        if name.__dict__.get("_abstract", False):
            raise InputError(f"{name.__name__} is a base class, not a method; subclass it.")
        return name
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name]
    hint = closest(str(name), _REGISTRY)
    raise InputError(
        f"Unknown explanation method {name!r}; known: {', '.join(_REGISTRY)}"
        + (f" (did you mean {hint[0]!r}?)" if hint else "") + "."
    )


def option_names(cls: type[Method]) -> list[str]:
    """The keyword options a method's constructor takes (its own and those of the bases
    it passes ``**kwargs`` on to).

    >>> option_names(get_method("gradcam_plusplus"))
    ['eps', 'layer', 'logits', 'batch_size', 'output']
    """
    import inspect

    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = list(inspect.signature(init).parameters.values())[2:]  # self, model
        names += [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


def create(cls: type[Method], model, *, what: str = "", **options) -> Method:
    """``cls(model, **options)``, with an option the method does not take reported as
    an :class:`~convviz.errors.InputError` that lists the ones it does (``what`` names
    where the options came from, e.g. ``method_options['gradcam']``)."""
    accepted = option_names(cls)
    unknown = [name for name in options if name not in accepted]
    if unknown:
        hint = closest(unknown[0], accepted)
        raise InputError(
            (f"{what}: " if what else "") + f"{cls.title or cls.__name__} takes no option {unknown[0]!r}"
            + (f" (did you mean {hint[0]!r}?)" if hint else "")
            + f"; its options: {', '.join(accepted)}."
        )
    return cls(model, **options)


@dataclass(eq=False)
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

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _RESULT_TYPES[cls.__name__] = cls  # Explanation.load returns the type saved

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
        meta = {"layer": self.layer, "method": self.method, "input_size": [int(v) for v in self.input_size],
                "options": self.options, "result": type(self).__name__}
        extra = {f"extra/{k}": np.asarray(v) for k, v in self._extra_arrays().items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, maps=self.maps, class_index=self.class_index, predictions=self.predictions,
                            meta=np.array(json.dumps(meta, default=_jsonable)), **extra)
        return path

    @classmethod
    def load(cls, path) -> Explanation:
        """Read an Explanation written by :meth:`save` (without its images), as the
        type that was saved (an :class:`~convviz.methods.Attributions` stays one)."""
        def read(path):
            with np.load(path, allow_pickle=False) as f:
                meta = json.loads(str(f["meta"]))
                extra = {k.split("/", 1)[1]: f[k] for k in f.files if k.startswith("extra/")}
                result_type = _RESULT_TYPES.get(meta.get("result"), Explanation)
                return result_type(f["maps"], f["class_index"], f["predictions"], meta["layer"], meta["method"],
                                   tuple(meta["input_size"]), options=meta["options"],
                                   **result_type._fields_from_arrays(extra))

        return read_saved(path, read, what="a saved explanation (.npz)", writer="Explanation.save()")

    def _extra_arrays(self) -> dict:
        """Arrays a subclass saves besides the maps (``{name: array}``)."""
        return {}

    @classmethod
    def _fields_from_arrays(cls, arrays: dict) -> dict:
        """The subclass's own fields from what :meth:`_extra_arrays` saved."""
        return {}


_RESULT_TYPES: dict[str, type] = {"Explanation": Explanation}


def _jsonable(value):
    """Arrays and numpy scalars among an Explanation's options, as JSON."""
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    raise TypeError(f"Cannot save an option of type {type(value).__name__}.")


def upsample(maps: np.ndarray, size) -> np.ndarray:
    """Resize (N, h, w) maps to (N, height, width) with bilinear interpolation, in [0, 1]."""
    maps = np.asarray(maps, dtype=np.float32)
    return np.clip(_resize(maps[..., None], tuple(size))[..., 0], 0.0, 1.0)


def class_name(cls: int, class_names=None) -> str:
    """``class_names[cls]``, or ``"class {cls}"`` when there is no such name.

    >>> class_name(1, ["cat", "dog"]), class_name(5)
    ('dog', 'class 5')
    """
    if class_names is not None and 0 <= cls < len(class_names):
        return str(class_names[cls])
    return f"class {cls}"


def class_probability(pred: np.ndarray, cls: int) -> float:
    """The probability of class ``cls`` in one image's predictions; for a single
    sigmoid unit, class 1 is the unit's output and class 0 its complement.

    >>> class_probability(np.array([0.75]), 0), class_probability(np.array([0.2, 0.7, 0.1]), 1)
    (0.25, 0.7)
    """
    if pred.shape[-1] == 1:
        p = float(pred[0])
        return p if cls == 1 else 1.0 - p
    return float(pred[cls])


def _label(pred: np.ndarray, cls: int, class_names) -> str:
    return f"{class_name(cls, class_names)} ({class_probability(pred, cls):.3f})"


class Method:
    """Base of every explanation method: a model and one verb, :meth:`explain`.

    A subclass sets the class attributes (``name`` registers it) and implements
    :meth:`explain`. Creating an instance opens the model once (its
    :class:`~convviz.Inspector`, shared with every other convviz call on that model);
    compiled steps are cached there, so an instance is cheap to make and reuse.
    :meth:`scores` and :meth:`class_scores` run the model on any number of inputs,
    compiled, in chunks, for methods and metrics that score perturbed images.

    Parameters
    ----------
    model : keras.Model, Inspector or path
        Any model convviz can open.
    logits : bool
        Explain the class score before a final softmax/sigmoid (default), or the
        model's output itself (``False``).
    batch_size : int, optional
        Inputs per compiled call; default :attr:`default_batch_size`.
    output : str or int, optional
        For a model with several outputs, the one whose class scores are explained
        (a name from :meth:`convviz.Inspector.output_names`, or an index).

    Examples
    --------
    >>> import keras, numpy as np
    >>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> class Constant(Method, register=False):
    ...     name = "constant"
    ...     def explain(self, images, *, class_index=None):
    ...         batch = self.inspector.prepare(images)
    ...         scores = self.scores(batch)
    ...         return self._result(np.ones((len(batch), 1, 1), np.float32), scores, class_index, batch)
    >>> Constant(model).explain(np.zeros((2, 8, 8, 3))).maps.shape
    (2, 1, 1)
    """

    name: ClassVar[str] = ""
    """The snake_case name users pass as ``method=``; setting it registers the class."""
    title: ClassVar[str] = ""
    """How figures and pages name the method ("Grad-CAM")."""
    kind: ClassVar[str] = ""
    """``"cam"`` for class activation maps at a layer's resolution."""
    reference: ClassVar[str] = ""
    """The paper the method comes from."""
    default_batch_size: ClassVar[int] = 32
    """Inputs per compiled call unless ``batch_size`` says otherwise."""
    result_type: ClassVar[type] = Explanation
    """What :meth:`explain` returns: :class:`Explanation` or a subclass."""
    order: ClassVar[int] = 100
    """Where the method comes in :func:`method_names`, galleries and figures (lower
    first; ties by name). The built-in CAMs: gradient methods 0-9, gradient-free 10-19."""
    verbose: int = 0
    """A progress bar on standard error while many inputs are scored (methods that
    take ``verbose=`` set it)."""
    _abstract: ClassVar[bool] = True

    def __init_subclass__(cls, *, register: bool = True, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_abstract" not in cls.__dict__:
            cls._abstract = False
        if register and cls.__dict__.get("name"):
            _register(cls)  # the module's register(); the keyword shadows its name here

    def __init__(self, model, *, logits: bool = True, batch_size: int | None = None, output=None):
        if self._abstract:
            raise TypeError(f"{type(self).__name__} is a base class; subclass it (see convviz.methods).")
        self.inspector = Inspector(model).for_output(output)
        self.output = output if output is None or isinstance(output, str) else int(output)
        if not isinstance(logits, (bool, np.bool_)):
            raise InputError(f"logits must be True or False, got {logits!r}.")
        self.logits = bool(logits)
        self.batch_size = check_batch_size(self.default_batch_size if batch_size is None else batch_size)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inspector.model.name!r})"

    @property
    def method_name(self) -> str:
        """``name``, or the class name for an unregistered method."""
        return self.name or type(self).__name__

    def options(self) -> dict:
        """The options that, with the model and images, determine the result."""
        return {"logits": self.logits} if self.output is None else {"logits": self.logits, "output": self.output}

    def explain(self, images, *, class_index=None) -> Explanation:
        """Explain ``images`` (one or a batch); ``class_index`` None explains each
        image's top class, an int or one int per image the given classes."""
        raise NotImplementedError(f"{type(self).__name__} must define explain.")

    def __call__(self, images, *, class_index=None) -> Explanation:
        """The same as :meth:`explain`."""
        return self.explain(images, class_index=class_index)

    # -- scoring many inputs ------------------------------------------------------------

    def scores(self, images) -> np.ndarray:
        """(M, C) float64 class scores (logits when ``logits=True`` and the head
        allows) of ``images``, compiled, ``batch_size`` at a time.

        ``images`` is an (M, H, W, C) array at the model's input size, or any object
        with ``len()`` whose slices are such arrays: one that builds masked images
        chunk by chunk keeps memory to one chunk.
        """
        inspector = self.inspector
        run = inspector._inference("scores", self.logits, lambda: inspector._score_model(logits=self.logits))
        return self._chunked(run, [images], output=0)

    def _chunked(self, run, inputs: list, *, output: int, reduce=None) -> np.ndarray | None:
        """``run``'s output number ``output`` over ``inputs`` (equal-length arrays or
        sliceable objects, one per model input), ``batch_size`` rows per call, as float64.

        With ``reduce``, each chunk's output goes to ``reduce(start, rows)`` instead
        (``start`` its first row) and nothing is kept: for outputs too large to hold
        for every input (the input gradients of thousands of interpolated images).
        """
        step, total = self.batch_size, len(inputs[0])
        # A bar for long work only (gradient-free methods scoring many inputs).
        progress = Progress(total if total > step else None, self.verbose if total > step else 0, "input")
        if not total:
            raise InputError("No images to score.")
        parts, start = [], 0
        for chunk in _chunks(inputs, step):
            rows = len(chunk[0])
            if rows < step < total:
                # The last chunk padded to the others' size: one compiled shape, no
                # retracing (TensorFlow) or recompiling (JAX) for the remainder.
                chunk = [np.concatenate([c, np.repeat(c[-1:], step - rows, axis=0)]) for c in chunk]
            result = run(chunk[0] if len(chunk) == 1 else chunk)[output][:rows]
            if reduce is None:
                parts.append(result)
            else:
                reduce(start, np.asarray(result))
            start += rows
            progress.add(rows)
        return None if reduce is not None else np.concatenate(parts).astype(np.float64)

    def class_scores(self, images, classes) -> np.ndarray:
        """(M,) the score of ``classes[m]`` (an int, or one per input) for each input
        of ``images`` (as in :meth:`scores`).

        For a single sigmoid unit class 1 is the unit's score and class 0 its
        opposite (``-logit``, or ``1 - p`` for a raw probability output).
        """
        return self._pick(self.scores(images), classes)

    def _pick(self, scores: np.ndarray, classes) -> np.ndarray:
        classes = np.broadcast_to(np.asarray(classes, np.int64), (len(scores),))
        if scores.shape[-1] == 1:
            flip = 1.0 if self._threshold(1) else 0.0  # 1 - p for probabilities, -z for logits
            return np.where(classes == 1, scores[:, 0], flip - scores[:, 0])
        return scores[np.arange(len(scores)), classes]

    # -- helpers for subclasses -------------------------------------------------------

    def _score_shape(self, outputs=None) -> tuple:
        """The (N, C) shape of the class scores: of ``outputs`` (symbolic tensors), by
        default the score model's; any other shape raises ModelStructureError."""
        if outputs is None:
            outputs = self.inspector._score_model(logits=self.logits).outputs
        outputs = keras.tree.flatten(outputs)
        shape = outputs[0].shape if len(outputs) == 1 else None
        if shape is None or len(shape) != 2:
            raise ModelStructureError(
                f"{self.title or self.method_name} needs one output of class scores (N, C); the model "
                f"outputs {[tuple(o.shape) for o in outputs]}."
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

    def _result(self, maps, scores, class_index, batch, layer=None, **fields) -> Explanation:
        """The result (:attr:`result_type`) from the maps and the (N, C) scores;
        ``fields`` are the result type's own (an Attributions' ``details``)."""
        self.inspector.check_finite(batch, {"The model's class scores": scores,
                                            f"The {self.title or self.method_name} maps": maps})
        return self.result_type(
            maps, self._classes(scores, class_index),
            probabilities(scores, self.inspector._output_activation(self.logits)),
            layer, self.method_name, tuple(batch.shape[1:3]), images=batch, options=self.options(), **fields,
        )


def _chunks(inputs: list, step: int):
    """``[x[i : i + step] for x in inputs]`` as float32 arrays, for i = 0, step, ...

    Lazily built inputs (anything but arrays) are built one chunk ahead on a worker
    thread, while the backend runs the current chunk (numpy and the backends release
    the GIL), so building the perturbed inputs costs little time of its own.
    """
    total = len(inputs[0])

    def take(i):
        return [np.asarray(x[i : i + step], np.float32) for x in inputs]

    if all(isinstance(x, np.ndarray) for x in inputs):
        for i in range(0, total, step):
            yield take(i)
        return
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="convviz-chunks") as pool:
        pending = pool.submit(take, 0)
        for i in range(0, total, step):
            chunk = pending.result()
            if i + step < total:
                pending = pool.submit(take, i + step)
            yield chunk


class LayerMethod(Method):
    """Base of the methods that explain at a layer (the CAMs): adds ``layer``.

    Parameters
    ----------
    model, logits, batch_size, output
        As :class:`Method`.
    layer : str, optional
        A layer with a spatial output (name or ``outer/inner`` path, inside a nested
        conv base too); default :meth:`convviz.Inspector.last_conv_layer`.
    """

    _abstract = True

    def __init__(self, model, *, layer=None, logits: bool = True, batch_size: int | None = None, output=None):
        super().__init__(model, logits=logits, batch_size=batch_size, output=output)
        inspector = self.inspector
        info = inspector.find_layer(inspector.last_conv_layer() if layer is None else layer)
        if len(info.output_shape) != 4:
            raise ModelStructureError(
                f"{self.title or self.method_name} needs a layer with a spatial output (N, H, W, C); "
                f"{info.name!r} outputs {info.output_shape}."
            )
        self.layer = info.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inspector.model.name!r}, layer={self.layer!r})"

    def _result(self, maps, scores, class_index, batch, layer=None) -> Explanation:
        return super()._result(maps, scores, class_index, batch, layer=self.layer if layer is None else layer)


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
