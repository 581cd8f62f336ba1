"""The 2nd edition's pretrained base: VGG16 feature extraction, fast and end to end.

* :func:`vgg16_conv_base` - VGG16 without its classifier, ImageNet weights from
  Keras' cache (downloaded once).
* Fast feature extraction: :func:`vgg16_features` + :func:`vgg16_feature_classifier`.
* End to end with augmentation: :func:`vgg16_end_to_end`.
"""

from __future__ import annotations

import os

import keras

from convviz._cache import KERAS_FALLBACK_DIR, keras_cache_dir
from convviz._validation import keyword_only
from convviz.errors import InputError, WeightsUnavailableError
from convviz.models._common import BINARY
from convviz.models._fetch import Leftovers, is_fetch_failure
from convviz.models.transfer import _extract

__all__ = ["vgg16_conv_base", "vgg16_end_to_end", "vgg16_feature_classifier", "vgg16_features"]

layers = keras.layers

_VGG16_NOTOP = {
    "fname": "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "origin": (
        "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/"
        "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    ),
    "file_hash": "6d6bbae143d832006294945121d1f1fc",
}


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

    cache_root = keras_cache_dir(root=cache_dir)
    target = os.path.join(cache_root, "models", _VGG16_NOTOP["fname"])
    # get_file writes to /tmp/.keras instead when the cache folder is missing or read-only.
    leftovers = Leftovers([os.path.join(cache_root, "models"), os.path.join(KERAS_FALLBACK_DIR, "models")])
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
        if not is_fetch_failure(err):
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


@keyword_only(1, "input_shape")
def vgg16_conv_base(
    weights="imagenet",
    *,
    input_shape: tuple[int, int, int] | None = (180, 180, 3),
    trainable: bool = False,
    cache_dir=None,
) -> keras.Model:
    """The chapter's convolutional base: VGG16 without its classifier.

    ``keras.applications.vgg16.VGG16(weights=..., include_top=False,
    input_shape=input_shape)``: 14,714,688 parameters, output (5, 5, 512) at
    180 x 180.

    The options after ``weights`` are keyword-only; passing ``input_shape`` by
    position still works, with a :class:`DeprecationWarning`, until the next release.

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


def vgg16_features(dataset, conv_base=None, *, weights="imagenet", verbose: bool = False):
    """Run the VGG16 base once over a dataset (the chapter's fast feature extraction).

    :func:`~convviz.models.extract_features` with
    ``keras.applications.vgg16.preprocess_input``: each batch goes through it, then
    through the base. Augmentation is not possible this way: every image is seen once.

    Parameters
    ----------
    dataset : iterable of (images, labels)
        E.g. a split from :func:`convviz.data.load_datasets`; images in 0-255.
    conv_base : keras.Model, optional
        Defaults to :func:`vgg16_conv_base` with ``weights`` and the images' size.
    weights : "imagenet", None or path
        Used only when ``conv_base`` is not given.
    verbose : bool or {0, 1, 2}
        See :func:`~convviz.models.extract_features`.

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
        model.compile(optimizer="rmsprop", **BINARY)
    return model


@keyword_only(1, "input_shape")
def vgg16_end_to_end(
    weights="imagenet",
    *,
    input_shape: tuple[int, int, int] = (180, 180, 3),
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

    The options after ``weights`` are keyword-only; passing ``input_shape`` by
    position still works, with a :class:`DeprecationWarning`, until the next release.

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
        conv_base = vgg16_conv_base(weights, input_shape=input_shape, cache_dir=cache_dir)
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
        model.compile(optimizer="rmsprop", **BINARY)
    return model

