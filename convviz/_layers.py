"""Layers across nested models: tracing, classification, the last-conv rule, lookup by name.

Nested sub-models (a frozen ``keras.applications`` base inside a Sequential, a keras-hub
``Backbone``) are the classic source of "Graph disconnected" errors: a layer inside
them only has an output in the sub-model's own graph. convviz avoids that by re-running
the whole model symbolically on a fresh input and stepping *into* every nested
Sequential or Functional model, so each layer, however deep, gets an output tensor in
one flat graph. The layers themselves are reused (same weights), never copied.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras

from convviz.errors import LayerNotFoundError, ModelStructureError, closest

CONV_TYPES = (
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)
POOL_TYPES = (
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
)


def is_conv(layer) -> bool:
    return isinstance(layer, CONV_TYPES)


def is_pool(layer) -> bool:
    return isinstance(layer, POOL_TYPES)


def is_functional(model) -> bool:
    # keras.Model(inputs, outputs) and Functional subclasses (keras-hub backbones)
    # all derive from Keras' Functional class, which is not exported publicly.
    return any(cls.__name__ == "Functional" for cls in type(model).__mro__)


def is_graph_model(layer) -> bool:
    """True for models convviz can step into: Sequential and Functional."""
    return isinstance(layer, keras.Sequential) or is_functional(layer)


@dataclass
class Tap:
    """One layer call in the flat graph: where it sits and what it produced."""

    path: tuple[str, ...]
    layer: keras.Layer
    output: object  # KerasTensor, or a structure of them for multi-output layers
    key: str = ""  # the name users see; filled in by trace()

    @property
    def tensor(self):
        """The layer's single output tensor, or None for multi-output layers."""
        return self.output if isinstance(self.output, keras.KerasTensor) else None

    @property
    def shape(self) -> tuple:
        return tuple(self.tensor.shape) if self.tensor is not None else ()


@dataclass
class Trace:
    """A model re-run on a fresh symbolic input, with every layer's output exposed."""

    inputs: object
    outputs: object
    taps: list[Tap] = field(default_factory=list)

    def keys(self) -> list[str]:
        return [t.key for t in self.taps]


def trace(model, inputs, *, replace=None, after=None) -> Trace:
    """Re-run ``model`` on symbolic ``inputs``, stepping into nested graph models.

    Parameters
    ----------
    model : keras.Model
        A Sequential or Functional model (nested ones anywhere inside are fine).
    inputs : keras.KerasTensor or structure
        Fresh ``keras.Input`` tensor(s) matching the model's inputs.
    replace : dict, optional
        ``{path: fn}``: call ``fn(layer, *args)`` instead of the layer at ``path``;
        its result is recorded and flows on.
    after : dict, optional
        ``{path: fn}``: downstream layers see ``fn(output)`` instead of the output of
        the layer at ``path`` (the recorded tap keeps the original output).

    Returns
    -------
    Trace
        Taps in call order, which is a topological order: shallow to deep, the
        layers inside a nested model before the nested model's own tap.
    """
    if not is_graph_model(model):
        raise ModelStructureError(
            f"convviz needs a Sequential or Functional model to reach its layers; got a "
            f"subclassed model ({type(model).__name__}) whose call() cannot be split at a "
            "layer. Rebuild it with the functional API (keras.Model(inputs, outputs))."
        )
    taps: list[Tap] = []

    def call_layer(layer, prefix, args, kwargs):
        path = prefix + (layer.name,)
        # The flat model is always called with training=False, which Keras forwards
        # to every layer; a training flag frozen into a node must not override it.
        kwargs = {k: v for k, v in kwargs.items() if k != "training"}
        if replace and path in replace:
            out = replace[path](layer, *args)
        elif is_graph_model(layer):
            nested = args[0] if len(args) == 1 else list(args)
            out = run(layer, nested, path)
        else:
            try:
                out = layer(*args, **kwargs)
            except ValueError as err:
                # Shape errors say what went wrong but not where: name the layer (the
                # innermost one, where it happened) and what it received.
                if not hasattr(err, "convviz_layer"):
                    err.convviz_layer = "/".join(path)
                    err.convviz_input_shapes = [
                        tuple(t.shape) for t in keras.tree.flatten(args) if hasattr(t, "shape")
                    ]
                raise
        taps.append(Tap(path, layer, out))
        if after and path in after:
            out = after[path](out)
        return out

    def run(m, x, prefix):
        if isinstance(m, keras.Sequential):
            for layer in m.layers:
                x = call_layer(layer, prefix, (x,), {})
            return x
        produced: dict[int, list] = {}

        def call_function(op, *args, **kwargs):
            out = call_layer(op, prefix, args, kwargs)
            produced.setdefault(id(op), []).append(out)
            return out

        x = keras.tree.pack_sequence_as(m.input, keras.tree.flatten(x))
        try:
            keras.models.clone_model(
                m, input_tensors=x, clone_function=lambda layer: layer, call_function=call_function
            )
        except ValueError:
            # clone_model walks the graph (all we need: call_function has seen every
            # layer), then builds a throwaway model from `x`. That last step can fail
            # where the walk did not: an edit feeding an outside tensor into the graph
            # (gradient_model's delta), or a layer name repeated once nested models
            # are inlined. Only a walk that did not reach the outputs is an error.
            if not all(id(t._keras_history[0]) in produced for t in keras.tree.flatten(m.output)):
                raise
        return keras.tree.map_structure(lambda t: _produced_output(m, t, produced), m.output)

    outputs = run(model, inputs, ())
    _assign_keys(taps)
    return Trace(inputs, outputs, taps)


def flat_model(inputs, outputs, taps: list[Tap], name: str) -> keras.Model:
    """``keras.Model(inputs, outputs)`` over a flat graph, even with repeated layer names.

    Nested models may reuse a name that a layer outside them also has, which Keras
    rejects in one flat graph. Such layers carry their unique key as name while the
    model is built (Keras checks names only then) and get their own name back after.
    """
    if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
        # Called with one tensor later: built on one, not on a list (Keras before 3.9
        # warns that the structure differs otherwise).
        inputs = inputs[0]
    counts: dict[str, int] = {}
    for t in taps:
        counts[t.layer.name] = counts.get(t.layer.name, 0) + 1
    renamed = [(t.layer, t.layer.name) for t in taps if counts[t.layer.name] > 1]
    try:
        for t in taps:
            if counts[t.layer.name] > 1:
                t.layer.name = "/".join(t.path)
        return keras.Model(inputs, outputs, name=name)
    finally:
        for layer, original in renamed:
            layer.name = original


def _produced_output(model, tensor, produced):
    """The flat-graph tensor standing for ``tensor``, an output of nested ``model``."""
    # _keras_history is the (operation, node_index, tensor_index) triple Keras stores
    # on every symbolic tensor; it is the only link from an output to its producer.
    op, _, tensor_index = tensor._keras_history
    calls = produced.get(id(op), [])
    if len(calls) != 1:
        raise ModelStructureError(
            f"Cannot follow the output of nested model {model.name!r}: its output layer "
            f"{op.name!r} is called {len(calls)} times inside it."
        )
    return keras.tree.flatten(calls[0])[tensor_index]


def _assign_keys(taps: list[Tap]) -> None:
    """A layer's key is its name when unique in the whole flat model, else its path."""
    counts: dict[str, int] = {}
    for t in taps:
        counts[t.path[-1]] = counts.get(t.path[-1], 0) + 1
    for t in taps:
        t.key = t.path[-1] if counts[t.path[-1]] == 1 else "/".join(t.path)


def resolve(taps: list[Tap], name) -> Tap:
    """Find a layer by key, name, nested path ``"outer/inner"`` or the layer object.

    Raises
    ------
    LayerNotFoundError
        Listing the closest existing names when nothing matches, or the candidate
        paths when a plain name is ambiguous.
    """
    if isinstance(name, keras.Layer):
        for t in taps:
            if t.layer is name:
                return t
        raise LayerNotFoundError(f"Layer object {name.name!r} is not part of this model.")
    if not isinstance(name, str):
        raise LayerNotFoundError(
            f"A layer is named by a string (name or 'outer/inner' path) or given as the "
            f"layer object; got {type(name).__name__}."
        )
    for t in taps:
        if t.key == name or "/".join(t.path) == name:
            return t
    by_name = [t for t in taps if t.path[-1] == name]
    if len(by_name) == 1:
        return by_name[0]
    if len(by_name) > 1:
        options = ", ".join(repr("/".join(t.path)) for t in by_name)
        raise LayerNotFoundError(f"Layer name {name!r} is ambiguous; use one of the paths {options}.")
    # A path may skip the outermost model name or the layer may be addressed by suffix.
    suffix = [t for t in taps if "/".join(t.path).endswith("/" + name)]
    if len(suffix) == 1:
        return suffix[0]
    hints = closest(name, [t.key for t in taps])
    hint = f" Closest names: {', '.join(map(repr, hints))}." if hints else ""
    raise LayerNotFoundError(
        f"No layer named {name!r} in this model.{hint} "
        "List all names with convviz.Inspector(model).layer_names()."
    )


def last_conv_tap(taps: list[Tap]) -> Tap:
    """The layer Grad-CAM explains by default.

    Rule: take the last convolution layer (by public class), then follow the layers
    after it in order while they keep its output shape and are not pooling layers
    (BatchNormalization, Activation, ReLU, ...), and take the last of those. This
    gives Xception's ``block14_sepconv2_act`` (the chapter's choice), VGG16's
    ``block5_conv3`` and EfficientNet's ``top_activation``.
    """
    conv_positions = [i for i, t in enumerate(taps) if is_conv(t.layer)]
    if not conv_positions:
        raise ModelStructureError(
            "This model has no convolution layer (Conv1D/2D/3D, SeparableConv, "
            "DepthwiseConv, ConvTranspose), so there is no feature map to explain. "
            "Pass layer=<name> to pick a layer with a spatial output."
        )
    i = conv_positions[-1]
    chosen = taps[i]
    for t in taps[i + 1 :]:
        if is_graph_model(t.layer):
            continue  # a nested model's own tap repeats its last layer's output
        if t.tensor is None or t.shape != chosen.shape or is_pool(t.layer) or is_conv(t.layer):
            break
        chosen = t
    return chosen


class _DenseLogits(keras.layers.Layer):
    """A Dense layer's pre-activation output, computed with that layer's own weights."""

    def __init__(self, dense, **kwargs):
        super().__init__(name=f"{dense.name}_logits", **kwargs)
        self.dense = dense

    def call(self, x):
        y = keras.ops.matmul(x, self.dense.kernel)
        return y + self.dense.bias if self.dense.use_bias else y

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.dense.units)


def _activation_name(layer) -> str | None:
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    if isinstance(layer, (keras.layers.Dense, keras.layers.Activation)):
        name = getattr(layer.activation, "__name__", None)
        return name if name in ("softmax", "sigmoid") else None
    return None


def output_tap(trace_: Trace) -> Tap:
    """The innermost layer call that produces the model's (single) output."""
    for t in reversed(trace_.taps):
        if t.output is trace_.outputs and not is_graph_model(t.layer):
            return t
    outputs = keras.tree.flatten(trace_.outputs)
    if len(outputs) > 1:
        raise ModelStructureError(
            f"The model has {len(outputs)} outputs; choose the one to explain with output= "
            "(a name from convviz.Inspector(model).output_names(), or an index)."
        )
    raise ModelStructureError("Cannot find the layer producing the model output.")


def logits_replacement(trace_: Trace):
    """How to get class scores before the final softmax/sigmoid, if the model has one.

    Returns ``(path, fn, activation)`` for :func:`trace`'s ``replace`` argument, or
    ``None`` when the output is not a Dense/Activation/Softmax layer applying softmax or
    sigmoid (the output is then used as it is).
    """
    tap = output_tap(trace_)
    activation = _activation_name(tap.layer)
    if activation is None:
        return None
    if isinstance(tap.layer, keras.layers.Dense):
        wrapper = _DenseLogits(tap.layer)
        return tap.path, lambda layer, x: wrapper(x), activation
    return tap.path, lambda layer, x: x, activation
