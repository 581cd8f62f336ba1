"""The Inspector: one model opened up, with its sub-models and compiled steps cached."""

from __future__ import annotations

import numbers
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import NamedTuple

import keras
import numpy as np

from convviz import _layers
from convviz._autodiff import inference_function
from convviz._inputs import to_batch
from convviz._validation import check_batch_size, keyword_only
from convviz.errors import (
    InputError,
    ModelStructureError,
    NonFiniteError,
    closest,
    layer_error_reason,
)

_CACHE_ATTR = "_convviz_inspector"


class LayerInfo(NamedTuple):
    """A layer as convviz sees it: the name to use, where it sits, what it outputs."""

    name: str
    """Key used in results: the layer name, or its ``outer/inner`` path when the name
    is not unique across nested models."""
    path: tuple[str, ...]
    layer: keras.Layer
    output_shape: tuple
    """Symbolic output shape, batch axis first (``None`` for unknown sizes)."""


def load_model(path, *, safe_mode: bool = True) -> keras.Model:
    """Load a ``.keras`` (or legacy ``.h5``) file, with Keras' ``safe_mode`` on by default.

    Safe mode refuses files that hold Python code (a ``Lambda`` layer's function), which
    runs when the file is loaded. ``safe_mode=False`` (the command line's
    ``--no-safe-mode``) is the opt-in for a file you trust: you made it, or you know who did.
    """
    import zipfile

    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(
            f"{path!r} is a folder, not a model file: pass the .keras file saved by "
            "model.save(...)."
        )
    if not os.path.isfile(path):
        raise InputError(f"Model file not found: {path!r}.")
    if path.endswith(".keras") and not zipfile.is_zipfile(path):
        raise InputError(
            f"{path!r} is not a valid .keras file (a .keras file is a zip archive; this one "
            "is not): it is truncated or corrupt, or another format was saved under that "
            "name. Save the model again with model.save(path)."
        )
    try:
        return keras.models.load_model(path, safe_mode=safe_mode)
    except Exception as err:  # Keras raises many types; report the file and the reason
        reason = layer_error_reason(err)
        if "safe_mode" in str(err):
            raise InputError(
                f"Keras refuses to load {path!r} in safe mode: {reason} The file holds "
                "Python code (a Lambda layer), which would run as it loads. If you trust it, "
                "pass the model loaded with keras.models.load_model(path, safe_mode=False), "
                "or give the command line --no-safe-mode."
            ) from err
        raise InputError(f"Cannot load a Keras model from {path!r}: {reason}") from err


class _Cache:
    """Compiled sub-models and steps of one model, namespaced and bounded.

    Each namespace (``"features"``, ``"gradient"``, ``"cam-step"``, ...) keeps its
    ``max_entries`` most recently used entries; the oldest is dropped first, so a loop
    over many layer selections cannot grow memory without end.
    """

    def __init__(self, max_entries: int = 16):
        self.max_entries = max_entries
        self._spaces: dict[str, OrderedDict] = {}

    def get(self, namespace: str, key, build: Callable):
        space = self._spaces.setdefault(namespace, OrderedDict())
        if key in space:
            space.move_to_end(key)
            return space[key]
        value = build()
        space[key] = value
        while len(space) > self.max_entries:
            space.popitem(last=False)
        return value

    def keys(self) -> list[tuple[str, object]]:
        """``(namespace, key)`` pairs, for tests and debugging."""
        return [(ns, k) for ns, space in self._spaces.items() for k in space]

    def __getitem__(self, item):
        namespace, key = item
        return self._spaces[namespace][key]

    def clear(self) -> None:
        self._spaces.clear()


class Inspector:
    """Open a Keras model so any layer's output, and gradients into it, are reachable.

    The Inspector re-runs the model once on a symbolic input, stepping into nested
    Sequential/Functional sub-models, so layers inside a frozen conv base are as easy
    to reach as top-level ones. It caches the multi-output feature models and the
    compiled steps it builds, so repeated calls cost one forward (and backward) pass
    each. There is one Inspector per model: ``Inspector(model)`` returns the same
    object every time (it is kept on the model, outside Keras' tracking), and every
    convviz function that takes a model uses it.

    Parameters
    ----------
    model : keras.Model, Inspector or path
        A built Sequential or Functional model, or the path of a ``.keras`` file
        (loaded with ``safe_mode`` on). It must take one image input (H, W, C).

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([
    ...     keras.Input((32, 32, 3)),
    ...     keras.layers.Conv2D(8, 3, activation="relu", name="conv"),
    ...     keras.layers.MaxPooling2D(name="pool"),
    ... ])
    >>> inspector = convviz.Inspector(model)
    >>> inspector is convviz.Inspector(model)
    True
    >>> inspector.layer_names()
    ['conv', 'pool']
    >>> acts = inspector.activations(np.zeros((32, 32, 3), "uint8"))
    >>> acts["conv"].shape
    (1, 30, 30, 8)
    """

    model: keras.Model
    input_shape: tuple
    """The model's image input shape (height, width, channels); sizes may be None."""

    def __new__(cls, model):
        if isinstance(model, Inspector):
            return model
        if isinstance(model, (str, os.PathLike)):
            model = load_model(model)
        elif not isinstance(model, keras.Model):
            raise ModelStructureError(
                f"Expected a keras.Model, a convviz.Inspector or a .keras path; got {type(model).__name__}."
            )
        existing = model.__dict__.get(_CACHE_ATTR)
        if isinstance(existing, cls):
            return existing
        self = super().__new__(cls)
        self.model = model
        self.input_shape = _image_input_shape(model)
        self._trace = None
        self._cache = _Cache()
        # A plain attribute, bypassing Keras' attribute tracking: the Inspector must not
        # become part of the model's weights or saved file.
        object.__setattr__(model, _CACHE_ATTR, self)
        return self

    def __init__(self, model):
        """Everything is set up in ``__new__`` (which may return the model's existing Inspector)."""

    @classmethod
    def of(cls, model) -> Inspector:
        """The model's Inspector; the same object as ``Inspector(model)``."""
        return cls(model)

    def __repr__(self) -> str:
        return f"Inspector({self.model.name!r}, input_shape={self.input_shape})"

    def clear(self) -> None:
        """Forget cached sub-models and steps (after changing the model's structure)."""
        self._trace = None
        self._cache.clear()

    # -- layers ---------------------------------------------------------------------

    def _new_input(self):
        return keras.Input(shape=self.input_shape, name="convviz_input")

    @property
    def _flat(self) -> _layers.Trace:
        if self._trace is None:
            self._trace = _layers.trace(self.model, self._new_input())
        return self._trace

    def layers(self) -> list[LayerInfo]:
        """Every layer, shallow to deep, including those inside nested models."""
        return [_info(t) for t in self._flat.taps]

    def layer_names(self) -> list[str]:
        """The names accepted by ``layers=`` / ``layer=`` arguments, shallow to deep."""
        return self._flat.keys()

    def find_layer(self, name) -> LayerInfo:
        """Resolve a name, an ``outer/inner`` path or a layer object to its LayerInfo.

        Raises :class:`~convviz.errors.LayerNotFoundError` listing the closest names.
        """
        return _info(_layers.resolve(self._flat.taps, name))

    def feature_layers(self) -> list[str]:
        """The conv and pooling layers (the chapter's choice), shallow to deep."""
        names = [
            t.key
            for t in self._flat.taps
            if (_layers.is_conv(t.layer) or _layers.is_pool(t.layer)) and t.tensor is not None
        ]
        if not names:
            raise ModelStructureError(
                "This model has no convolution or pooling layer; pass layers=[...] "
                f"explicitly. Its layers: {', '.join(self.layer_names())}."
            )
        return names

    def last_conv_layer(self) -> str:
        """The layer CAM methods explain by default: the last convolution, followed
        through BatchNorm/activation layers of the same shape (Xception:
        ``block14_sepconv2_act``, the chapter's choice)."""
        return _layers.last_conv_tap(self._flat.taps).key

    def select_layers(self, layers=None) -> list[str]:
        """Names for a ``layers=`` argument: None (conv and pooling layers), a name,
        a path, a layer object, or a list of those; unknown names raise."""
        return [t.key for t in self._resolve_many(layers)]

    def _resolve_many(self, layers) -> list[_layers.Tap]:
        if layers is None:
            layers = self.feature_layers()
        elif isinstance(layers, (str, keras.Layer)) or not isinstance(layers, Iterable):
            layers = [layers]  # one layer (an int etc. is then refused by name)
        taps = [_layers.resolve(self._flat.taps, name) for name in layers]
        if not taps:
            raise InputError("layers=[] asks for no layer; pass None for the default layers.")
        for t in taps:
            if t.tensor is None:
                raise ModelStructureError(f"Layer {t.key!r} has several outputs; pick a single-output layer.")
        return taps

    # -- outputs --------------------------------------------------------------------

    def _outputs(self) -> list[tuple[str, object]]:
        """``(name, symbolic tensor)`` of each model output, in order: a dict output's
        keys, else the names of the layers that produce them."""
        out = self._flat.outputs
        if isinstance(out, dict):
            return list(out.items())
        return [(t._keras_history[0].name, t) for t in keras.tree.flatten(out)]

    def output_names(self) -> list[str]:
        """The model's outputs, in order: the names ``output=`` takes (an index works too).

        >>> import keras, convviz
        >>> inputs = keras.Input((8, 8, 3))
        >>> x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
        >>> model = keras.Model(inputs, [keras.layers.Dense(3, name="kind")(x),
        ...                              keras.layers.Dense(1, name="age")(x)])
        >>> convviz.Inspector(model).output_names()
        ['kind', 'age']
        """
        return [name for name, _ in self._outputs()]

    def for_output(self, output=None) -> Inspector:
        """The Inspector of the model restricted to one of its outputs (shared layers,
        nothing copied), for the methods that explain a class score.

        ``output`` is a name from :meth:`output_names` or an index; ``None`` is the
        model's only output, and an error naming the outputs when it has several.
        A one-output model returns this Inspector itself.

        >>> import keras, convviz
        >>> inputs = keras.Input((8, 8, 3))
        >>> x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs))
        >>> model = keras.Model(inputs, [keras.layers.Dense(3, name="kind")(x),
        ...                              keras.layers.Dense(1, name="age")(x)])
        >>> convviz.Inspector(model).for_output("age").model.output.shape
        (None, 1)
        """
        items = self._outputs()
        names = [name for name, _ in items]
        listing = ", ".join(f"{name!r} {tuple(t.shape)}" for name, t in items)
        if output is None:
            if len(items) == 1:
                return self
            raise ModelStructureError(
                f"Model {self.model.name!r} has {len(items)} outputs ({listing}); choose the "
                f"one to explain with output= (a name or an index), e.g. output={names[0]!r}, "
                f"or pass convviz.Inspector(model).for_output({names[0]!r}) as the model."
            )
        if isinstance(output, str):
            if output not in names:
                hint = closest(output, names)
                raise InputError(
                    f"Model {self.model.name!r} has no output {output!r}; its outputs: {listing}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "") + "."
                )
            index = names.index(output)
        elif isinstance(output, numbers.Integral) and not isinstance(output, bool):
            if not -len(items) <= output < len(items):
                raise InputError(
                    f"output={output} is out of range: model {self.model.name!r} has "
                    f"{len(items)} output(s) ({listing})."
                )
            index = int(output) % len(items)
        else:
            raise InputError(
                f"output must be an output name or index ({listing}); got {output!r}."
            )
        if len(items) == 1:
            return self

        def build():
            flat = self._flat
            sub = _layers.flat_model(flat.inputs, items[index][1], flat.taps, f"{self.model.name}.{names[index]}")
            return Inspector(sub)

        return self._cached("output", index, build)

    # -- inputs ---------------------------------------------------------------------

    def prepare(self, images) -> np.ndarray:
        """Normalise images to a float32 NHWC batch the model accepts.

        Accepts one image or a batch in any form :func:`convviz.activations` takes;
        images are resized (bilinear) to the model's input size when it is fixed.
        """
        h, w, c = self.input_shape
        batch = to_batch(images, size=(h, w), channels=c)
        if h is None or w is None:  # a variable input size: the images keep their own
            self._cached("fits", batch.shape[1:3], lambda: self._check_fits(*batch.shape[1:3]))
        return batch

    def _check_fits(self, h: int, w: int) -> bool:
        """Refuse an image size too small for some layer of a variable-size model, naming
        the layer (by tracing the model at that size, before anything runs)."""
        image = keras.Input((h, w, self.input_shape[-1]), name="convviz_size_check")
        try:
            _layers.trace(self.model, image)
        except ValueError as err:
            layer = getattr(err, "convviz_layer", None)
            if layer is None:
                raise
            shapes = getattr(err, "convviz_input_shapes", [])
            got = f" receives {shapes[0][1:]}" if shapes else ""
            raise InputError(
                f"A {h} x {w} image is too small for model {self.model.name!r}: layer "
                f"{layer!r}{got} and cannot produce an output: {layer_error_reason(err)} Pass "
                "larger images, or resize them to the size the model was trained on."
            ) from err
        return True

    # -- activations ------------------------------------------------------------------

    @keyword_only(2, "layers")  # self and images
    def activations(self, images, *, layers=None, batch_size: int = 32) -> dict[str, np.ndarray]:
        """Layer outputs for ``images``; see :func:`convviz.activations`."""
        batch_size = check_batch_size(batch_size)
        batch = self.prepare(images)
        names = self.select_layers(layers)
        run = self._inference("features", tuple(names), lambda: self._feature_model(names))
        chunks = [run(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)]
        if len(chunks) == 1:
            arrays = chunks[0]
        else:
            arrays = [np.concatenate(parts, axis=0) for parts in zip(*chunks)]
            for a in arrays:
                a.flags.writeable = False  # as for one chunk: the same for every batch size
        self.check_finite(batch, {f"The activations of layer {n!r}": a for n, a in zip(names, arrays)})
        return dict(zip(names, arrays))

    # -- never a NaN result ---------------------------------------------------------------

    def check_finite(self, batch: np.ndarray, results: dict) -> None:
        """Raise :class:`~convviz.errors.NonFiniteError` when one of ``results``
        (``{what: (N, ...) array}``, row ``i`` computed from ``batch[i]``) holds NaN or
        infinite values, naming the image and the first layer that overflowed on it.

        >>> import keras, numpy as np, convviz
        >>> model = keras.Sequential([keras.Input((4, 4, 1)),
        ...                           keras.layers.Conv2D(1, 3, kernel_initializer="ones", name="conv")])
        >>> big = np.full((1, 4, 4, 1), 3e38, np.float32)  # nine of these sum past float32's max
        >>> convviz.Inspector(model).check_finite(big, {"The scores": np.array([[np.inf]])})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        convviz.errors.NonFiniteError: The scores for image 0 are not finite (inf). The first layer whose output is not finite is 'conv' (inf). ...
        """
        for what, values in results.items():
            values = np.asarray(values)
            if values.dtype.kind != "f" or _all_finite(values):
                continue
            rows = values.reshape(len(values), -1)
            i = int(np.argmax(~np.isfinite(rows).all(axis=1)))
            image = batch[i : i + 1]
            kind = "NaN" if np.isnan(rows[i]).any() else "inf"
            found = self._first_non_finite_layer(image)
            if found is None:
                where = "Every layer's output is finite; computing them from those outputs overflowed float32."
            elif found is False:  # an image the whole model cannot take
                where = "(The whole model cannot take an image of this size, so no layer is named.)"
            else:
                where = f"The first layer whose output is not finite is {found[0]!r} ({found[1]})."
            raise NonFiniteError(
                f"{what} for image {i} are not finite ({kind}). {where} The image's pixel values "
                f"run from {float(image.min()):.3g} to {float(image.max()):.3g}: give images in the "
                "range the model was trained on (uint8 0-255 for a model that rescales inside, "
                "else its preprocessing's range)."
            )

    def _first_non_finite_layer(self, image: np.ndarray):
        """``(layer, "NaN"/"inf")`` for the shallowest layer whose output on ``image``
        is not finite, None when every output is finite, False for an image the model
        cannot take (a feature visualisation at another size). Run on the failure path only."""
        if any(want not in (None, got) for want, got in zip(self.input_shape, image.shape[1:])):
            return False
        flat = self._flat
        taps = [t for t in flat.taps if t.tensor is not None and not _layers.is_graph_model(t.layer)]
        for start in range(0, len(taps), 64):  # a few layers per program: bounded memory
            chunk = taps[start : start + 64]
            model = _layers.flat_model(flat.inputs, [t.tensor for t in chunk], flat.taps, "convviz_finite")
            for tap, value in zip(chunk, inference_function(model)(image)):
                if not _all_finite(value):
                    return tap.key, "NaN" if np.isnan(value).any() else "inf"
        return None

    # -- cached sub-models and steps (plumbing for convviz's own modules) ---------------

    def _cached(self, namespace: str, key, build: Callable):
        """``build()`` once per ``(namespace, key)``; see :class:`_Cache`."""
        return self._cache.get(namespace, key, build)

    def _feature_model(self, layers=None) -> keras.Model:
        """A model from the input to the outputs of ``layers`` (a list, shallow to deep).

        Built once per layer selection and cached; layers are shared, not copied.
        """
        taps = self._resolve_many(layers)
        return self._cached(
            "features",
            tuple(t.key for t in taps),
            lambda: _layers.flat_model(
                self._flat.inputs, [t.tensor for t in taps], self._flat.taps, "convviz_features"
            ),
        )

    def _inference(self, namespace: str, key, build_model: Callable) -> Callable:
        """``run(batch) -> list of numpy arrays`` for the model ``build_model()`` returns,
        compiled once and cached (see :func:`convviz._autodiff.inference_function`)."""
        return self._cached(f"inference:{namespace}", key, lambda: inference_function(build_model()))

    def _gradient_model(self, layer, *, logits: bool = False) -> keras.Model:
        """A model ``(image, delta) -> [activation, scores]`` for gradients into ``layer``.

        ``delta`` (same shape as the activation) is added to the layer's output before
        the rest of the model sees it. With ``delta = 0`` the outputs are the model's
        own, and the gradient with respect to ``delta`` is the gradient with respect
        to the activation: one forward and one backward pass, whatever the topology.

        With ``logits=True`` and a model ending in softmax or sigmoid (a Dense layer's
        activation, or an Activation/Softmax layer), ``scores`` are the values before
        that function, computed with the model's own weights; otherwise ``scores`` is
        the model output. ``self._output_activation(logits)`` says which case applies.
        """
        (tap,) = self._resolve_many([layer])

        def build():
            image = self._new_input()
            delta = keras.Input(shape=tap.shape[1:], name="convviz_delta")
            flat = _layers.trace(
                self.model,
                image,
                replace=self._head_replacement(logits) or None,
                after={tap.path: lambda out: keras.layers.Add()([out, delta])},
            )
            activation = next(t.tensor for t in flat.taps if t.path == tap.path)
            return _layers.flat_model(
                [image, delta], [activation, flat.outputs], flat.taps, "convviz_gradient"
            )

        return self._cached("gradient", (tap.key, logits), build)

    def _head_replacement(self, logits: bool) -> dict:
        """``trace``'s ``replace`` entry giving the scores before a final softmax/sigmoid."""
        head = _layers.logits_replacement(self._flat) if logits else None
        return {head[0]: head[1]} if head else {}

    def _activation_and_score_model(self, layer, *, logits: bool = False) -> keras.Model:
        """A model ``image -> [activation of layer, scores]`` (scores as in
        :meth:`_gradient_model`): one forward pass gives both."""
        (tap,) = self._resolve_many([layer])

        def build():
            image = self._new_input()
            flat = _layers.trace(self.model, image, replace=self._head_replacement(logits) or None)
            activation = next(t.tensor for t in flat.taps if t.path == tap.path)
            return _layers.flat_model(image, [activation, flat.outputs], flat.taps, "convviz_activation_scores")

        return self._cached("activation-scores", (tap.key, logits), build)

    def _tail_model(self, layer, *, logits: bool = False) -> tuple[keras.Model, bool]:
        """The model after ``layer``: ``(model, needs_image)``.

        ``model`` maps an output of ``layer`` to the scores (as in
        :meth:`_gradient_model`), running only the layers after it. A model with a
        connection around the layer (a skip from before it to after it) needs the
        image too: ``model`` then takes ``[image, layer_output]`` and ``needs_image``
        is True; the layers before ``layer`` run only as far as the skip needs them.
        """
        (tap,) = self._resolve_many([layer])

        def build():
            image = self._new_input()
            replaced = keras.Input(shape=tap.shape[1:], name="convviz_layer_output")
            replace = {**self._head_replacement(logits), tap.path: lambda layer_, *args: replaced}
            flat = _layers.trace(self.model, image, replace=replace)
            # Built on both inputs, a Functional model keeps only the operations its
            # outputs need: if a layer called before this one is among them, a skip goes
            # around it and the tail reads the image too. (Keras before 3.9 builds a
            # model on `replaced` alone even then, so this is checked, not caught.)
            position = next(i for i, t in enumerate(flat.taps) if t.path == tap.path)
            before = {id(t.layer) for t in flat.taps[:position]}
            both = _layers.flat_model([image, replaced], flat.outputs, flat.taps, "convviz_tail")
            if any(id(op) in before for op in both.operations):
                return both, True
            return _layers.flat_model(replaced, flat.outputs, flat.taps, "convviz_tail"), False

        return self._cached("tail", (tap.key, logits), build)

    def _score_model(self, *, logits: bool = True) -> keras.Model:
        """The model with its scores before a final softmax/sigmoid (``logits=True``
        and such a head), else the model itself; one output of shape (N, classes)."""
        if not logits or self._output_activation(True) is None:
            return self.model

        def build():
            image = self._new_input()
            flat = _layers.trace(self.model, image, replace=self._head_replacement(True))
            return _layers.flat_model(image, flat.outputs, flat.taps, "convviz_scores")

        return self._cached("scores", logits, build)

    def _output_activation(self, logits: bool = True) -> str | None:
        """``"softmax"``/``"sigmoid"`` when :meth:`_gradient_model` with these ``logits``
        returns scores before that function, else ``None``."""
        if not logits:
            return None

        def build():  # cached: logits_replacement builds a wrapper layer each time
            head = _layers.logits_replacement(self._flat)
            return head[2] if head else None

        return self._cached("output-activation", None, build)


def _all_finite(values: np.ndarray) -> bool:
    """Whether a float array holds no NaN or inf: a float32 sum first (one fast pass; any
    NaN or inf makes it non-finite), and an element-wise check only when it is not finite,
    since finite values near float32's limit can overflow the sum too."""
    values = np.asarray(values)
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(values.sum()):
            return True
    return bool(np.isfinite(values).all())


def _info(tap: _layers.Tap) -> LayerInfo:
    return LayerInfo(tap.key, tap.path, tap.layer, tap.shape)


def _image_input_shape(model) -> tuple:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs and isinstance(model, keras.Sequential):
        raise ModelStructureError(
            f"Sequential model {model.name!r} has no defined input yet. Start it with "
            "keras.Input(shape=(height, width, channels)), or call "
            "model.build((None, height, width, channels)) first."
        )
    if not inputs:
        raise ModelStructureError(
            f"Model {model.name!r} is a subclassed keras.Model ({type(model).__name__}): its "
            "call() is Python code, not a graph of layers convviz can open up. Build the same "
            "layers with the functional API (inputs = keras.Input((height, width, channels)); "
            "outputs = ...; keras.Model(inputs, outputs)) or keras.Sequential, and copy the "
            "weights over with set_weights()."
        )
    if len(inputs) != 1:
        raise ModelStructureError(
            f"convviz explains models with one image input; {model.name!r} has {len(inputs)} inputs."
        )
    shape = tuple(inputs[0].shape[1:])
    if len(shape) != 3 or shape[-1] is None:
        raise ModelStructureError(
            f"convviz expects an image input of shape (height, width, channels); model "
            f"{model.name!r} takes {shape}."
        )
    return shape


