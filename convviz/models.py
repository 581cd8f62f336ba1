"""The chapter's reference models, with the chapter's layer order and names.

* :func:`mnist_convnet` - the first convnet (MNIST, 99.1 % test accuracy).
* :func:`small_convnet` - dogs vs. cats from scratch, optionally with data
  augmentation and dropout (~70 % / ~83.5 % test accuracy in the book).
* VGG16 feature extraction, fast (:func:`vgg16_features` +
  :func:`vgg16_feature_classifier`) and end to end with augmentation
  (:func:`vgg16_end_to_end`); the base is :func:`vgg16_conv_base`.
* Xception feature extraction with keras-hub (:func:`xception_feature_extractor`).
* Fine-tuning: :func:`unfreeze_top_layers`.

Pretrained weights come from the usual places (the ImageNet weight file in Keras'
cache, keras-hub presets from Kaggle). Without network access those downloads fail
with one :class:`~convviz.errors.WeightsUnavailableError` saying how to provide the
files offline; ``weights=None`` / ``preset=None`` builds the same architecture with
random weights.

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


def vgg16_features(dataset, conv_base=None, *, weights="imagenet", verbose=0):
    """Run the VGG16 base once over a dataset (the chapter's fast feature extraction).

    Each batch goes through ``keras.applications.vgg16.preprocess_input`` and
    ``conv_base.predict``. Augmentation is not possible this way: every image is
    seen once.

    Parameters
    ----------
    dataset : iterable of (images, labels)
        E.g. a split from :func:`convviz.data.load_datasets`; images in 0-255.
    conv_base : keras.Model, optional
        Defaults to :func:`vgg16_conv_base` with ``weights`` and the images' size.
    weights : "imagenet", None or path
        Used only when ``conv_base`` is not given.
    verbose : int
        Passed to ``predict``.

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
    all_features, all_labels = [], []
    for item in dataset:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise InputError(
                "vgg16_features expects a dataset of (images, labels) batches, such as "
                f"convviz.data.load_datasets(...).train; got an item of type {type(item).__name__}."
            )
        images, labels = (np.asarray(keras.ops.convert_to_numpy(t)) for t in item)
        if images.ndim != 4:
            raise InputError(f"Expected batches of images (N, H, W, C), got shape {images.shape}.")
        if conv_base is None:
            conv_base = vgg16_conv_base(weights=weights, input_shape=images.shape[1:])
        preprocessed = keras.applications.vgg16.preprocess_input(images.astype("float32", copy=True))
        all_features.append(conv_base.predict(preprocessed, verbose=verbose))
        all_labels.append(labels)
    if not all_features:
        raise InputError("vgg16_features got an empty dataset.")
    return np.concatenate(all_features), np.concatenate(all_labels)


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

