"""The chapter's convnets trained from scratch: MNIST digits, and dogs vs. cats.

* :func:`mnist_convnet` - the first convnet (MNIST, 99.1 % test accuracy).
* :func:`small_convnet` - dogs vs. cats from scratch, optionally with data
  augmentation and dropout (~70 % / ~83.5 % test accuracy in the book).
"""

from __future__ import annotations

import keras

from convviz._validation import keyword_only
from convviz.errors import InputError
from convviz.models._common import BINARY, check_rate

__all__ = ["mnist_convnet", "small_convnet"]

layers = keras.layers


@keyword_only(0, "compile")
def mnist_convnet(*, compile: bool = True) -> keras.Model:
    """The chapter's first convnet, for 28 x 28 MNIST digits.

    Input(28, 28, 1) -> Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu)
    -> MaxPooling2D(2) -> Conv2D(128, 3, relu) -> Flatten -> Dense(10, softmax).
    104,202 parameters.

    Parameters
    ----------
    compile : bool
        Compile with rmsprop, sparse categorical crossentropy and accuracy.
        Keyword-only; ``mnist_convnet(False)`` still works, with a
        :class:`DeprecationWarning`, until the next release.

    Returns
    -------
    keras.Model

    Examples
    --------
    >>> mnist_convnet().output_shape
    (None, 10)
    >>> mnist_convnet(compile=False).compiled
    False
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


@keyword_only(1, "augmentation", "dropout")
def small_convnet(
    input_shape: tuple[int, int, int] = (180, 180, 3),
    *,
    augmentation: bool = False,
    dropout: float | None = None,
    compile: bool = True,
    name: str = "small_convnet",
) -> keras.Model:
    """The chapter's dogs-vs-cats convnet trained from scratch.

    Input -> [data_augmentation] -> Rescaling(1/255) -> Conv2D 32/64/128/256/256
    (3 x 3, relu) with MaxPooling2D(2) after the first four -> Flatten ->
    [Dropout(0.5)] -> Dense(1, sigmoid). 991,041 parameters at 180 x 180.

    The options after ``input_shape`` are keyword-only; passing ``augmentation`` or
    ``dropout`` by position still works, with a :class:`DeprecationWarning`, until
    the next release.

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
    rate = (0.5 if augmentation else 0.0) if dropout is None else check_rate(dropout)

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
        model.compile(optimizer="rmsprop", **BINARY)
    return model
