"""Compiled inference and gradients: the only backend-specific code in convviz.

Everything else is written with ``keras.ops``. Here each backend runs the model
(:func:`inference_function`) and differentiates (:func:`gradient_step`,
:func:`ascent_step`, :func:`optimizer_step`) in its own way, compiling where it can:

- TensorFlow: ``tf.GradientTape`` inside a ``tf.function``;
- JAX: ``jax.value_and_grad`` under ``jax.jit``, with the model's weights passed in
  as arguments (``stateless_call``) so they are not baked into the compiled code and
  a model that keeps training still gets correct gradients; on the CPU, depthwise
  convolutions are traced as shifted slices (:func:`_jax_depthwise_as_slices`);
- PyTorch: ``torch.autograd.grad`` in eager mode, with the model's parameters
  set not to require gradients for the duration of the step
  (:func:`_frozen_parameters`), so autograd records only what lies between the
  differentiated input and the objective.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable

import keras
import numpy as np

from convviz import _layers
from convviz.errors import ConvvizError, ModelRunError, layer_error_reason

# XLA's CPU compiler hands convolutions, reductions and other operations to the
# YNNPACK library ("library fusion"). For a plain forward pass of a stack of convolutions
# that is a win: the conv base becomes one fused, tiled kernel that never writes a full
# feature map to memory. For a program that must return every feature map it can be a
# loss: each convolution becomes its own library call with its bias and activation in a
# separate pass over the output (the small convnet's feature maps: 2-3x slower than
# XLA's own code). For models built on depthwise convolutions (Xception) it stays a win.
# So the first call of an inference program compiles both variants below, runs each
# once and keeps the faster (see _jax_inference); reductions stay with YNNPACK in both,
# since its reductions are faster (sparsity's per-channel statistics).
_JAX_VARIANTS = (None, {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"})


# XLA's CPU backend runs a depthwise convolution (``conv_general_dilated`` with
# ``feature_group_count`` = channels, how Keras' DepthwiseConv2D and SeparableConv2D run
# on JAX) as a loop over the channels, each a one-wide contraction, and its input
# gradient the same way (jax-ml/jax#23713, #13800): on EfficientNet-Lite0's layers 8-21x
# slower forward and 9-36x slower backward than the same sum written as shifted slices
# times per-channel weights, which XLA fuses into one elementwise loop
# (benchmarks/depthwise.py). So convviz's compiled JAX programs trace the model with
# depthwise convolutions written that way (:func:`_jax_depthwise_as_slices`); False
# traces them as Keras writes them (benchmarks compare the two).
JAX_DEPTHWISE_SLICES = True


_CONV_ARGUMENTS = {
    "lhs", "rhs", "window_strides", "padding", "lhs_dilation", "rhs_dilation", "dimension_numbers",
    "feature_group_count", "batch_group_count", "precision", "preferred_element_type",
}


def _jax_slices_depthwise(original, *args, **kwargs):
    """``jax.lax.conv_general_dilated`` with a float32, channels-last, 2-D depthwise
    convolution (one input channel per group, one output channel per group) computed as
    the sum over the kernel's positions of a strided slice of the padded input times
    that position's per-channel weights; any other convolution goes to ``original``."""
    import inspect

    import jax

    try:
        bound = inspect.signature(original).bind(*args, **kwargs)
    except TypeError:
        return original(*args, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    if not _CONV_ARGUMENTS <= a.keys():  # a JAX whose signature differs: no slices
        return original(*args, **kwargs)
    lhs, rhs = a["lhs"], a["rhs"]
    groups = a["feature_group_count"]
    plain = (
        lhs.ndim == 4 and groups > 1 and a["batch_group_count"] == 1
        and a["precision"] is None and a["preferred_element_type"] is None
        and str(lhs.dtype) == "float32" and str(rhs.dtype) == "float32"
        and all(d == 1 for d in (a["lhs_dilation"] or (1, 1)))
    )
    if plain:
        numbers = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, a["dimension_numbers"])
        plain = (
            tuple(numbers.lhs_spec) == (0, 3, 1, 2) and tuple(numbers.out_spec) == (0, 3, 1, 2)
            and tuple(numbers.rhs_spec) == (3, 2, 0, 1)
            and rhs.shape[2] == 1 and rhs.shape[3] == groups == lhs.shape[3]
        )
    if not plain:
        return original(*args, **kwargs)
    strides = tuple(a["window_strides"])
    dilation = tuple(a["rhs_dilation"] or (1, 1))
    window = [1 + d * (k - 1) for k, d in zip(rhs.shape[:2], dilation)]
    padding = a["padding"]
    if isinstance(padding, str):
        padding = jax.lax.padtype_to_pads(lhs.shape[1:3], window, strides, padding)
    (top, bottom), (left, right) = padding
    x = jax.lax.pad(lhs, jax.numpy.zeros((), lhs.dtype), [(0, 0, 0), (top, bottom, 0), (left, right, 0), (0, 0, 0)])
    out = [(x.shape[1 + i] - window[i]) // strides[i] + 1 for i in range(2)]
    total = None
    for i in range(rhs.shape[0]):
        for j in range(rhs.shape[1]):
            start = (0, i * dilation[0], j * dilation[1], 0)
            limit = (
                x.shape[0], start[1] + (out[0] - 1) * strides[0] + 1,
                start[2] + (out[1] - 1) * strides[1] + 1, x.shape[3],
            )
            term = jax.lax.slice(x, start, limit, (1, *strides, 1)) * rhs[i, j, 0]
            total = term if total is None else total + term
    return total


@contextlib.contextmanager
def _jax_depthwise_as_slices():
    """JAX: inside the block (a compiled program's trace), depthwise convolutions on the
    CPU are traced as shifted slices (:func:`_jax_slices_depthwise`, the same numbers to
    float32 rounding); elsewhere, or with ``JAX_DEPTHWISE_SLICES`` False, nothing changes.
    ``jax.lax.conv_general_dilated`` is swapped for the block and restored after it, also
    on errors; only the traced program keeps the slices. The swap is seen by the whole
    process: a trace that another thread makes meanwhile also gets the slices, which
    compute the same convolution."""
    import jax

    if not JAX_DEPTHWISE_SLICES or jax.default_backend() != "cpu":
        yield
        return
    original = jax.lax.conv_general_dilated
    jax.lax.conv_general_dilated = functools.partial(_jax_slices_depthwise, original)
    try:
        yield
    finally:
        jax.lax.conv_general_dilated = original


def _jax_forward(model, trainable, non_trainable, inputs):
    """JAX: the model's float32 outputs in inference mode from the weights given as
    arguments (``stateless_call``), as every compiled JAX program of this module runs it
    (each traces under :func:`_jax_depthwise_as_slices`, used as a decorator)."""
    outputs, _ = model.stateless_call(trainable, non_trainable, inputs, training=False)
    return _full_precision(outputs)


def inference_function(model: keras.Model) -> Callable:
    """Build ``run(batch) -> list of numpy arrays``: the model's outputs, compiled.

    The model runs in inference mode (``training=False``), compiled once per input
    shape (``tf.function``; ``jax.jit`` with the weights passed as arguments; PyTorch
    eager under ``torch.no_grad``). Unlike ``model.predict_on_batch``, the outputs are
    not copied: each array is a read-only view of the backend's own output buffer,
    which matters when the outputs are large feature maps.

    Parameters
    ----------
    model : keras.Model
        A model with one input, or several.

    Returns
    -------
    callable
        ``run(batch)`` with ``batch`` a float32 numpy array (a list of them for a
        model with several inputs); returns the model's outputs, flattened to a
        list, as read-only numpy arrays.

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> (out,) = inference_function(m)(np.ones((4, 3), "float32"))
    >>> out.shape, out.flags.writeable
    ((4, 2), False)
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        call = _tensorflow_inference(model)
    elif backend == "jax":
        call = _jax_inference(model)
    elif backend == "torch":
        call = _torch_inference(model)
    else:
        raise NotImplementedError(f"convviz has no inference function for the {backend!r} backend.")

    @_boundary(model)
    def run(batch):
        if isinstance(batch, (list, tuple)):
            batch = [np.asarray(b, dtype=np.float32) for b in batch]
        else:
            batch = np.asarray(batch, dtype=np.float32)
        outputs = [np.asarray(t) for t in call(batch)]
        for a in outputs:
            a.flags.writeable = False  # already so for TensorFlow and JAX; alike everywhere
        return outputs

    return run


def _boundary(model: keras.Model):
    """Decorator for a compiled call of ``model``: an exception the backend raises while
    it runs (TensorFlow's, JAX's or PyTorch's own types) becomes a
    :class:`~convviz.errors.ModelRunError` naming the model, the input shapes, the layer
    when a shape is the cause, and the fix; convviz's own errors pass through."""

    def wrap(call):
        @functools.wraps(call)
        def guarded(*args):
            try:
                return call(*args)
            except ConvvizError:
                raise
            except Exception as err:
                raise _run_error(model, args, err) from err

        return guarded

    return wrap


def _reason(err: Exception) -> str:
    """The backend's own words: the error's last line when ``tf.function`` framed it
    ("in user code: ... File ..."), else its informative first line."""
    text = str(err)
    if "in user code:" in text:  # the message follows the last frame's two lines
        lines = text.splitlines()
        frames = [i for i, line in enumerate(lines) if line.strip().startswith('File "')]
        rest = "\n".join(lines[frames[-1] + 2 :] if frames else lines).strip()
        kind, colon, message = rest.partition(": ")
        return layer_error_reason(Exception(message if colon and kind.isidentifier() else rest))
    return layer_error_reason(err)


def _run_error(model: keras.Model, args, err: Exception) -> ModelRunError:
    shapes = [tuple(a.shape) for a in keras.tree.flatten(args) if hasattr(a, "shape")]
    text = f"{type(err).__name__}: {err}"
    # convviz's own views of the model (up to some layers, with a gradient input...) are
    # named convviz_*: the user knows the model by its own name, which they do not carry.
    name = "" if model.name.startswith("convviz") else f" {model.name!r}"
    where = f"Running the model{name} on the {keras.backend.backend()} backend"
    where += f" with inputs of shape {', '.join(map(str, shapes))}" if shapes else ""
    if isinstance(err, MemoryError) or any(
        word in text for word in ("RESOURCE_EXHAUSTED", "ResourceExhausted", "out of memory", "allocate")
    ):
        return ModelRunError(
            f"{where} ran out of memory ({_reason(err)}) Pass a smaller batch_size= "
            "(fewer images per compiled call), or smaller images."
        )
    layer = None
    if shapes and len(shapes[0]) == 4:  # a shape error: find the layer by tracing at that size
        try:
            _layers.trace(model, keras.Input(shapes[0][1:]))
        except ValueError as shape_error:
            layer = getattr(shape_error, "convviz_layer", None)
        except Exception:  # noqa: BLE001 - only a hint: the backend's own message follows
            layer = None
    at = f" at layer {layer!r}" if layer else ""
    return ModelRunError(f"{where} failed{at}: {_reason(err)}")


def _full_precision(outputs):
    """A mixed-precision model's float16/bfloat16 outputs cast to float32 (exactly), inside
    every compiled call: objectives (written in float32) see one dtype on every backend,
    and results are float32 numpy arrays (numpy does not know bfloat16)."""
    return keras.tree.map_structure(
        lambda t: keras.ops.cast(t, "float32")
        if keras.backend.standardize_dtype(t.dtype) in ("float16", "bfloat16") else t,
        outputs,
    )


def _tensorflow_inference(model):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def call(x):
        return keras.tree.flatten(_full_precision(model(x, training=False)))

    # np.asarray on the results shares their memory (EagerTensor.numpy() would copy).
    return lambda batch: call(keras.tree.map_structure(tf.convert_to_tensor, batch))


def data_devices() -> int:
    """How many devices share each batch: the batch dimension of the
    ``keras.distribution`` that is set, on JAX; else 1.

    Keras 3.15 shards data only on JAX: TensorFlow's distribution is a prototype and
    PyTorch's needs one process per device (``torchrun``). There a distribution that
    is set is reported once (a warning) and convviz runs on one device.
    """
    dist = keras.distribution.distribution()
    if dist is None:
        return 1
    if keras.backend.backend() != "jax":
        _warn_unsharded()
        return 1
    return _batch_shards(dist)


@functools.lru_cache(maxsize=1)
def _warn_unsharded() -> None:
    import warnings

    warnings.warn(
        f"A keras.distribution is set, but on the {keras.backend.backend()} backend Keras 3.15 does not shard "
        "data (only JAX does; TensorFlow's distribution is a prototype, PyTorch's needs one process per "
        "device): convviz runs each batch on one device.", UserWarning, stacklevel=3,
    )


def _batch_shards(dist) -> int:
    mesh = dist.device_mesh
    name = getattr(dist, "batch_dim_name", None) or mesh.axis_names[0]
    return int(mesh.shape[list(mesh.axis_names).index(name)])


def _jax_place(x, dtype=None):
    """A batch array on the device(s): split along its first axis across the batch
    dimension of the ``keras.distribution`` that is set, when the batch divides evenly
    (the data-parallel layout, ``get_data_layout``); else a plain array. The model's
    weights follow their own layouts (replicated under ``DataParallel``)."""
    import jax

    dist = keras.distribution.distribution()
    plain = jax.numpy.asarray(x, dtype=dtype)
    if dist is None or plain.ndim == 0 or len(plain.sharding.device_set) > 1:
        return plain
    shards = _batch_shards(dist)
    if shards < 2 or plain.shape[0] % shards:
        return plain
    return keras.distribution.distribute_tensor(plain, dist.get_data_layout(plain.shape))


@functools.cache
def _jax_variants() -> tuple:
    """The compiler options of ``_JAX_VARIANTS`` this jaxlib knows (they are experimental)."""
    import jax

    known = []
    for options in _JAX_VARIANTS:
        try:
            jax.jit(lambda x: x + 1, compiler_options=options).lower(np.float32(0)).compile()
        except Exception:  # jaxlib raises its own error types for unknown options
            continue
        known.append(options)
    return tuple(known)


def _jax_inference(model):
    import jax

    @_jax_depthwise_as_slices()
    def call(trainable, non_trainable, x):
        return keras.tree.flatten(_jax_forward(model, trainable, non_trainable, x))

    executables: dict = {}  # input shape -> compiled program
    chosen: list = []  # the compiler options picked on the first call

    def compile_for(options, args):
        return jax.jit(call, compiler_options=options).lower(*args).compile()

    def run(batch):
        # Fetched per call: Keras' own predict donates and replaces the weight buffers.
        args = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            keras.tree.map_structure(_jax_place, batch),
        )
        # A program is compiled for its inputs' shapes and shardings.
        shape = tuple((b.shape, b.sharding) for b in keras.tree.flatten(args[2]))
        if shape in executables:
            return executables[shape](*args)
        if chosen:
            executables[shape] = compile_for(chosen[0], args)
            return executables[shape](*args)
        # First call: one run of each variant, the faster is kept for every later shape.
        best = None
        for options in _jax_variants():
            executable = compile_for(options, args)
            start = time.perf_counter()
            outputs = jax.block_until_ready(executable(*args))
            elapsed = time.perf_counter() - start
            if best is None or elapsed < best[0]:
                best = (elapsed, options, executable, outputs)
        _, options, executables[shape], outputs = best
        chosen.append(options)
        return outputs

    return run


def _young_garbage_freed(run: Callable) -> Callable:
    """PyTorch: ``run``, then a collection of the young garbage generations.

    Keras' PyTorch tree utilities (``keras.tree`` on the torch backend: the closures of
    ``torchtree_impl.traverse``) leave a reference cycle around the structure they walk
    on every model call, so a step's input, activation and gradient tensors stay alive
    until Python's cycle collector runs. The young generations are collected often, but
    what survives into the oldest one waits for a full collection (0.3 s with Keras and
    PyTorch loaded, so rare): over a long stream, memory grew with the number of batches
    (a run over 2,000 images held 1.6x the peak of one over 64). Collecting the two
    young generations after each call frees the cycles at once, in about 0.1 ms.
    """
    import gc

    @functools.wraps(run)
    def collected(*args):
        try:
            return run(*args)
        finally:
            gc.collect(1)

    return collected


def _torch_inference(model):
    import torch

    def call(batch):
        with torch.no_grad():
            outputs = model(keras.tree.map_structure(keras.ops.convert_to_tensor, batch), training=False)
        return [t.detach().cpu() for t in keras.tree.flatten(_full_precision(outputs))]

    return _young_garbage_freed(call)


def gradient_step(model: keras.Model, objective: Callable, wrt: int = 0) -> Callable:
    """Build ``step(inputs, *extra) -> (value, grad, outputs)`` for ``model``.

    Parameters
    ----------
    model : keras.Model
        Called in inference mode (``training=False``).
    objective : callable
        ``objective(outputs, *extra) -> scalar`` written with ``keras.ops``.
        ``outputs`` is what the model returns (a tensor or a list of tensors).
    wrt : int
        Index, in the model's input list, of the input to differentiate against.

    Returns
    -------
    callable
        ``step(inputs, *extra)`` where ``inputs`` is a list with one array per model
        input. Returns backend tensors: the objective's value, its gradient with
        respect to ``inputs[wrt]`` (same shape), and the model outputs.

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> step = gradient_step(m, lambda y: keras.ops.sum(y))
    >>> value, grad, _ = step([np.ones((2, 3), "float32")])
    >>> tuple(grad.shape)
    (2, 3)
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _boundary(model)(_tensorflow_step(model, objective, wrt))
    if backend == "jax":
        return _boundary(model)(_jax_step(model, objective, wrt))
    if backend == "torch":
        return _boundary(model)(_torch_step(model, objective, wrt))
    raise NotImplementedError(f"convviz has no gradient step for the {backend!r} backend.")


def _model_inputs(inputs: list):
    # A single-input model is called with the tensor itself, not a one-item list.
    return inputs[0] if len(inputs) == 1 else list(inputs)


def _tensorflow_step(model, objective, wrt):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(inputs, *extra):
        inputs = list(inputs)
        with tf.GradientTape() as tape:
            tape.watch(inputs[wrt])
            outputs = model(_model_inputs(inputs), training=False)
            outputs = _full_precision(outputs)
            value = objective(outputs, *extra)
        return value, tape.gradient(value, inputs[wrt]), outputs

    def run(inputs, *extra):
        inputs = [tf.convert_to_tensor(x, dtype=tf.float32) for x in inputs]
        return step(inputs, *extra)

    return run


def _jax_step(model, objective, wrt):
    import jax

    @_jax_depthwise_as_slices()
    def loss(x, others, trainable, non_trainable, *extra):
        inputs = list(others)
        inputs.insert(wrt, x)
        outputs = _jax_forward(model, trainable, non_trainable, _model_inputs(inputs))
        return objective(outputs, *extra), outputs

    compiled = jax.jit(jax.value_and_grad(loss, has_aux=True))

    def run(inputs, *extra):
        inputs = [_jax_place(x, "float32") for x in inputs]
        x = inputs.pop(wrt)
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        (value, outputs), grad = compiled(x, inputs, trainable, non_trainable, *extra)
        return value, grad, outputs

    return run


@contextlib.contextmanager
def _frozen_parameters(model):
    """PyTorch: parameters stop requiring gradients inside the block, then are restored.

    Only gradients with respect to an input are ever asked for; but while a parameter
    requires a gradient, autograd records every operation that uses it, keeping its
    input alive. For Grad-CAM's gradient into a deep layer that is the whole conv base
    in front of it, recorded for nothing (the torch backward never reaches it).
    """
    params = [v.value for v in model.variables]
    params = [p for p in params if getattr(p, "requires_grad", False)]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _torch_step(model, objective, wrt):
    import torch

    def run(inputs, *extra):
        inputs = [keras.ops.convert_to_tensor(np.asarray(x, dtype="float32")) for x in inputs]
        inputs[wrt] = inputs[wrt].detach().requires_grad_(True)
        extra = [keras.ops.convert_to_tensor(e) if isinstance(e, np.ndarray) else e for e in extra]
        with torch.enable_grad(), _frozen_parameters(model):
            outputs = model(_model_inputs(inputs), training=False)
            outputs = _full_precision(outputs)
            value = objective(outputs, *extra)
            (grad,) = torch.autograd.grad(value, inputs[wrt])
        outputs = keras.tree.map_structure(lambda t: t.detach(), outputs)
        return value.detach(), grad, outputs

    return _young_garbage_freed(run)


def ascent_step(
    model: keras.Model,
    objective: Callable,
    update: Callable,
    transform: Callable | None = None,
) -> Callable:
    """Build ``step(x, *extra) -> (new_x, value, aux)``: one compiled gradient-ascent step.

    The forward pass, the backward pass and the update run as one compiled unit
    (one ``jax.jit`` call, one ``tf.function`` call; PyTorch runs eagerly), so a loop
    of steps dispatches once per step. A single differentiated tensor and no optimiser
    state: :func:`optimizer_step` is the general form.

    Parameters
    ----------
    model : keras.Model
        A single-input model, called in inference mode (``training=False``).
    objective : callable
        ``objective(outputs, x, *extra) -> (scalar, aux)`` written with ``keras.ops``;
        the scalar is maximised, ``aux`` (any structure of tensors) is returned as is.
    update : callable
        ``update(x, grad, *extra) -> new_x`` written with ``keras.ops``.
    transform : callable, optional
        ``transform(x, *extra) -> model input``; the gradient flows back through it
        to ``x``. Default: the identity.

    Returns
    -------
    callable
        ``step(x, *extra)``: ``x`` a float32 numpy array or backend tensor, ``extra``
        numpy arrays or backend tensors. Returns backend tensors ``new_x``, the
        objective's value and ``aux``, all computed at ``x``.

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> step = ascent_step(m, lambda y, x: (keras.ops.sum(y), y), lambda x, g: x + g)
    >>> new_x, value, aux = step(np.ones((2, 3), "float32"))
    >>> tuple(new_x.shape)
    (2, 3)
    """
    if transform is None:

        def transform(x, *extra):
            return x

    step = optimizer_step(
        model,
        lambda outputs, params, *extra: objective(outputs, params[0], *extra),
        lambda params, grads, state, *extra: ((update(params[0], grads[0], *extra),), state),
        lambda params, *extra: transform(params[0], *extra),
    )

    def run(x, *extra):
        (new_x,), _, value, aux = step((x,), (), *extra)
        return new_x, value, aux

    return run


def optimizer_step(
    model: keras.Model, objective: Callable, update: Callable, transform: Callable
) -> Callable:
    """Build ``step(params, state, *extra) -> (new_params, new_state, value, aux)``.

    One compiled optimisation step over several differentiated tensors (``params``)
    with an optimiser state carried from step to step (Adam's moments, a running sum):
    the forward pass, the backward pass and the update are one ``jax.jit`` or
    ``tf.function`` call (PyTorch runs eagerly, the update under ``no_grad``).

    Parameters
    ----------
    model : keras.Model
        A single-input model, called in inference mode (``training=False``).
    objective : callable
        ``objective(outputs, params, *extra) -> (scalar, aux)`` with ``keras.ops``;
        the scalar's gradient with respect to every tensor of ``params`` is taken.
    update : callable
        ``update(params, grads, state, *extra) -> (new_params, new_state)``, tuples.
    transform : callable
        ``transform(params, *extra) -> model input``; gradients flow back through it.

    Returns
    -------
    callable
        ``step(params, state, *extra)``: ``params`` and ``state`` tuples of float32
        arrays or tensors. Returns backend tensors; ``value`` and ``aux`` are computed
        at ``params``.

    Examples
    --------
    >>> import keras, numpy as np
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    >>> def update(params, grads, state):  # plain ascent, and a running gradient sum
    ...     return (params[0] + grads[0],), (state[0] + grads[0],)
    >>> step = optimizer_step(m, lambda y, p: (keras.ops.sum(y), ()), update, lambda p: p[0])
    >>> params, state, value, _ = step((np.ones((2, 3), "float32"),), (np.zeros((2, 3), "float32"),))
    >>> tuple(state[0].shape)
    (2, 3)
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _boundary(model)(_tensorflow_optimizer(model, objective, update, transform))
    if backend == "jax":
        return _boundary(model)(_jax_optimizer(model, objective, update, transform))
    if backend == "torch":
        return _boundary(model)(_torch_optimizer(model, objective, update, transform))
    raise NotImplementedError(f"convviz has no optimisation step for the {backend!r} backend.")


def _tensorflow_optimizer(model, objective, update, transform):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(params, state, *extra):
        with tf.GradientTape() as tape:
            for p in params:
                tape.watch(p)
            outputs = model(transform(params, *extra), training=False)
            outputs = _full_precision(outputs)
            value, aux = objective(outputs, params, *extra)
        grads = tuple(tape.gradient(value, list(params)))
        new_params, new_state = update(params, grads, state, *extra)
        return tuple(new_params), tuple(new_state), value, aux

    def run(params, state, *extra):
        params = tuple(tf.convert_to_tensor(p, dtype=tf.float32) for p in params)
        state = tuple(tf.convert_to_tensor(s, dtype=tf.float32) for s in state)
        return step(params, state, *map(tf.convert_to_tensor, extra))

    return run


def _jax_optimizer(model, objective, update, transform):
    import jax

    @_jax_depthwise_as_slices()
    def loss(params, trainable, non_trainable, *extra):
        outputs = _jax_forward(model, trainable, non_trainable, transform(params, *extra))
        return objective(outputs, params, *extra)

    grad_fn = jax.value_and_grad(loss, has_aux=True)

    @jax.jit
    def step(params, state, trainable, non_trainable, *extra):
        (value, aux), grads = grad_fn(params, trainable, non_trainable, *extra)
        new_params, new_state = update(params, tuple(grads), state, *extra)
        return tuple(new_params), tuple(new_state), value, aux

    def run(params, state, *extra):
        # Weights are arguments, not constants baked into the compiled code.
        trainable = [v.value for v in model.trainable_variables]
        non_trainable = [v.value for v in model.non_trainable_variables]
        params = tuple(jax.numpy.asarray(p, dtype="float32") for p in params)
        state = tuple(jax.numpy.asarray(s, dtype="float32") for s in state)
        return step(params, state, trainable, non_trainable, *extra)

    return run


def _torch_optimizer(model, objective, update, transform):
    import torch

    def tensor(x):
        return keras.ops.convert_to_tensor(x, dtype="float32").detach()

    def run(params, state, *extra):
        params = tuple(tensor(p).requires_grad_(True) for p in params)
        state = tuple(tensor(s) for s in state)
        extra = [keras.ops.convert_to_tensor(e) if isinstance(e, np.ndarray) else e for e in extra]
        with torch.enable_grad(), _frozen_parameters(model):
            outputs = model(transform(params, *extra), training=False)
            outputs = _full_precision(outputs)
            value, aux = objective(outputs, params, *extra)
            grads = torch.autograd.grad(value, params, allow_unused=True)
        grads = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(params, grads))
        with torch.no_grad():
            new_params, new_state = update(tuple(p.detach() for p in params), grads, state, *extra)
        aux = keras.tree.map_structure(lambda t: t.detach(), aux)
        return tuple(new_params), tuple(new_state), value.detach(), aux

    return _young_garbage_freed(run)
