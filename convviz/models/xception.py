"""The 3rd edition's pretrained base: Xception from keras-hub.

* :func:`xception_backbone` - the conv base (``xception_41_imagenet`` preset).
* :func:`xception_image_converter` - its preprocessing layer.
* :func:`xception_feature_extractor` - feature extraction on the frozen backbone.

keras-hub is an extra: ``pip install "convviz[hub]"``. ``preset=None`` builds the same
architecture with random weights and no download.
"""

from __future__ import annotations

import keras

from convviz._validation import keyword_only
from convviz.models._common import BINARY
from convviz.models._fetch import from_preset, import_keras_hub

__all__ = [
    "XCEPTION_PRESET", "xception_backbone", "xception_feature_extractor", "xception_image_converter",
]

layers = keras.layers

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
    keras_hub = import_keras_hub()
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
    return from_preset(keras_hub.models.Backbone, preset, "Xception backbone", trainable=trainable)


@keyword_only(1, "image_size")
def xception_image_converter(preset: str | None = XCEPTION_PRESET, *, image_size=(180, 180)):
    """The Xception preset's image converter: resize, then scale pixels to [-1, 1].

    ``keras_hub.layers.ImageConverter.from_preset(preset, image_size=image_size)``.
    ``preset=None`` builds the same converter offline:
    ``XceptionImageConverter(image_size, scale=1/127.5, offset=-1)``, the values the
    preset was converted with (matching ``keras.applications.xception.preprocess_input``).
    ``image_size`` is keyword-only; passing it by position still works, with a
    :class:`DeprecationWarning`, until the next release.

    Examples
    --------
    >>> converter = xception_image_converter(preset=None)  # doctest: +SKIP
    """
    keras_hub = import_keras_hub()
    image_size = tuple(int(s) for s in image_size)
    if preset is None:
        return keras_hub.layers.XceptionImageConverter(
            image_size=image_size, scale=1.0 / 127.5, offset=-1.0
        )
    return from_preset(
        keras_hub.layers.ImageConverter, preset, "Xception image converter", image_size=image_size
    )


@keyword_only(1, "image_size")
def xception_feature_extractor(
    preset: str | None = XCEPTION_PRESET,
    *,
    image_size: tuple[int, int] = (180, 180),
    compile: bool = True,
) -> keras.Model:
    """The 3rd edition's feature extraction model on a frozen Xception backbone.

    Input(180, 180, 3) -> ImageConverter -> Xception backbone (frozen) ->
    GlobalAveragePooling2D -> Dense(256) -> Dropout(0.25) -> Dense(1, sigmoid);
    Adam, binary crossentropy. ``image_size`` is keyword-only; passing it by position
    still works, with a :class:`DeprecationWarning`, until the next release.

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
    converter = xception_image_converter(preset, image_size=image_size)
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
        model.compile(optimizer="adam", **BINARY)
    return model
