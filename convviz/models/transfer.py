"""Transfer learning on any conv base: fast feature extraction, and fine-tuning.

* :func:`extract_features` - run a conv base once over a dataset; a small classifier
  then trains on the stored features.
* :func:`unfreeze_top_layers` - prepare a feature-extraction model for fine-tuning.
"""

from __future__ import annotations

import keras
import numpy as np

from convviz._progress import Progress
from convviz._validation import check_verbose, keyword_only
from convviz.errors import InputError

__all__ = ["extract_features", "unfreeze_top_layers"]

layers = keras.layers


# --------------------------------------------------------------------------- #
# Fast feature extraction
# --------------------------------------------------------------------------- #


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
    """Features and labels of every batch: the loop behind :func:`extract_features` and
    :func:`~convviz.models.vgg16_features`.

    ``get_base(image_shape)`` lets a caller build its base from the first batch's size.
    """
    verbose = check_verbose(verbose)
    all_features, all_labels, conv_base = [], [], None
    try:
        total = len(dataset)
    except TypeError:  # a generator, or a tf.data pipeline of unknown length
        total = None
    progress = Progress(total, verbose, "batch")
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
        progress.add(1)
    if not all_features:
        raise InputError(f"{who} got an empty dataset.")
    return np.concatenate(all_features), np.concatenate(all_labels)


@keyword_only(2, "preprocess", "verbose")
def extract_features(dataset, conv_base, *, preprocess=None, verbose: bool = False):
    """Run a conv base once over a dataset: the chapter's fast feature extraction.

    Every batch of images goes through ``preprocess`` (if given) and the base (in
    inference mode, ``conv_base.predict_on_batch``); the features are then the
    training data of a small classifier
    (:func:`~convviz.models.vgg16_feature_classifier`,
    :func:`~convviz.models.efficientnet_lite0_feature_classifier`). Each image is
    seen once, so data augmentation is not possible this way; it is what makes it
    fast.

    ``preprocess`` and ``verbose`` are keyword-only; passing them by position still
    works, with a :class:`DeprecationWarning`, until the next release.

    Parameters
    ----------
    dataset : iterable of (images, labels)
        E.g. a split from :func:`convviz.data.load_datasets` (images in 0-255), or a
        list of ``(images, labels)`` numpy batches.
    conv_base : keras.Model
        Any base, e.g. :func:`~convviz.models.efficientnet_lite0_conv_base`
        (normalises 0-255 pixels itself) or :func:`~convviz.models.vgg16_conv_base`
        (needs ``preprocess``).
    preprocess : callable, optional
        Applied to each float32 batch (a copy) before the base, e.g.
        ``keras.applications.vgg16.preprocess_input``.
    verbose : bool or {0, 1, 2}
        ``True`` or ``1``: a progress bar over the batches, on standard error; ``2``:
        one line per batch instead; ``False`` or ``0``: silent.

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
    >>> from convviz import models
    >>> base = models.efficientnet_lite0_conv_base(weights=None, input_shape=(64, 64, 3))
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
    >>> from convviz import models
    >>> model = models.vgg16_end_to_end(weights=None)
    >>> model = unfreeze_top_layers(model, 4)
    >>> [layer.name for layer in model.get_layer("vgg16").layers if layer.trainable]
    ['block5_conv1', 'block5_conv2', 'block5_conv3', 'block5_pool']

    EfficientNet-Lite0's top 5 layers hold one BatchNormalization, which stays frozen:

    >>> model = models.efficientnet_lite0_feature_extractor(weights=None, augmentation=False)
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

