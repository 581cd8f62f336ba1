"""The verbs: :func:`explain` for any method by name, :func:`cam` for just the maps,
:func:`attribute` for pixel attributions, and :func:`gradcam`, the chapter's method
as it has always been called."""

from __future__ import annotations

import numpy as np

from convviz._validation import keyword_only, renamed
from convviz.errors import InputError
from convviz.methods.attribution import Attributions
from convviz.methods.core import Explanation, create, get_method, method_names
from convviz.methods.gradcam import GradCAM

__all__ = ["attribute", "cam", "explain", "gradcam"]


def explain(model, images, *, method="gradcam", class_index=None, layer=None, logits: bool = True,
            batch_size: int | None = None, **options) -> Explanation:
    """Explain a model's classes on images with any registered method.

    Parameters
    ----------
    model : keras.Model, convviz.Inspector or path
        Any built Sequential or Functional convnet, or a ``.keras`` file; the layer
        may sit inside a nested conv base (a frozen ``keras.applications`` model, a
        keras-hub backbone), with augmentation or ``Rescaling`` layers in front. It
        runs in inference mode (augmentation and dropout off, BatchNorm frozen).
    images : path, PIL image, array or tensor, or a list of those
        One image or a batch (see :func:`convviz.activations`).
    method : str or Method subclass
        A name from ``convviz.methods.method_names()``: ``"gradcam"``,
        ``"gradcam_plusplus"``, ...
    class_index : int or sequence of int, optional
        The class to explain, for all images or one per image. ``None``: each image's
        top predicted class. For a single sigmoid unit: ``1`` the positive class (the
        unit's output), ``0`` the negative one (evidence *against* the unit).
    layer : str, optional
        A layer with a spatial output, by name or ``outer/inner`` path. Default: the
        last convolution, followed through BatchNorm/activation layers of the same
        shape (Xception: ``block14_sepconv2_act``, the chapter's choice).
    logits : bool
        Explain the class score before a final softmax/sigmoid (the CAM papers'
        choice, immune to saturated probabilities); ``False`` uses the model output
        itself, as the chapter's code does.
    batch_size : int, optional
        Images per compiled call; default the method's own (16 for gradient CAMs, whose
        activations are kept for the backward pass; 32 otherwise).
    output : str or int, optional
        For a model with several outputs (a classifier with a second head), the one
        whose classes are explained: a name from
        ``convviz.Inspector(model).output_names()`` or an index. Required then.
    **options
        The method's own options (e.g. ``eps`` for ``gradcam_plusplus``).

    Returns
    -------
    Explanation
        ``maps`` (N, h, w) in [0, 1], ``class_index``, ``predictions``, ``layer``,
        ``method``; ``.upsampled()``, ``.plot()``, ``.save()``.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    >>> result = convviz.explain(model, np.random.rand(2, 32, 32, 3), method="gradcam_plusplus")
    >>> result.maps.shape, result.method, len(result.class_index)
    ((2, 30, 30), 'gradcam_plusplus', 2)
    """
    cls = get_method(method)
    if layer is not None:
        options["layer"] = layer
    explainer = create(cls, model, logits=logits, batch_size=batch_size, **options)
    return explainer.explain(images, class_index=class_index)


def cam(model, images, *, method="gradcam", class_index=None, layer=None, upsample: bool = False,
        **options) -> np.ndarray:
    """Just the maps of :func:`explain`: (N, h, w) float32 in [0, 1], or at the
    model's input size with ``upsample=True``. Other arguments as :func:`explain`.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    >>> convviz.cam(model, np.random.rand(2, 32, 32, 3), upsample=True).shape
    (2, 32, 32)
    """
    if not isinstance(upsample, (bool, np.bool_)):
        raise InputError(f"upsample must be True or False, got {upsample!r}.")
    result = explain(model, images, method=method, class_index=class_index, layer=layer, **options)
    return result.upsampled() if upsample else result.maps


@renamed(img="images")
@keyword_only(2, "class_index", "layer")
def gradcam(model, images, *, class_index=None, layer=None, upsample: bool = False, logits: bool = True,
            batch_size: int = 16, output=None) -> np.ndarray:
    """Grad-CAM heatmaps: where the evidence for a class is, one map per image.

    The same as ``convviz.cam(model, images, method="gradcam", ...)``; use
    :func:`convviz.explain` for the classes and predictions too. Arguments as
    :func:`explain`; ``upsample=True`` returns maps resized (bilinear) to the
    model's input size.

    Returns
    -------
    numpy.ndarray
        (N, h, w) float32 heatmaps in [0, 1]; all zeros where no evidence is positive.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    >>> convviz.gradcam(model, np.random.rand(2, 32, 32, 3)).shape
    (2, 30, 30)
    """
    return cam(model, images, method=GradCAM, class_index=class_index, layer=layer, upsample=upsample,
               logits=logits, batch_size=batch_size, output=output)


def attribute(model, images, *, method="integrated_gradients", class_index=None, logits: bool = True,
              batch_size: int | None = None, **options) -> Attributions:
    """Pixel attributions: which input pixels moved each image's class score.

    Parameters
    ----------
    model, images, class_index, logits, output
        As :func:`explain` (the score is the class logit before a final
        softmax/sigmoid by default; ``logits=False`` attributes the probability).
    method : str or Attribution subclass
        A name from ``convviz.methods.method_names("attribution")``: ``"saliency"``,
        ``"gradient_x_input"``, ``"smoothgrad"``, ``"integrated_gradients"``,
        ``"occlusion"``.
    batch_size : int, optional
        Inputs per compiled call (images, interpolation steps, noise samples or
        occluded copies; default 32).
    **options
        The method's own: ``steps``, ``rule``, ``baseline`` (integrated gradients),
        ``samples``, ``noise``, ``squared``, ``seed`` (SmoothGrad), ``window``,
        ``stride``, ``baseline`` (occlusion), ``abs`` (saliency), ``verbose``.

    Returns
    -------
    Attributions
        ``maps`` (N, H, W, C) float32 signed attributions at the model's input size,
        ``class_index``, ``predictions``, ``details`` (per-image numbers such as the
        completeness gap); ``.aggregate()``, ``.plot()``, ``.save()``.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)])
    >>> result = convviz.attribute(model, np.random.rand(2, 16, 16, 3), method="saliency")
    >>> result.maps.shape, result.aggregate("abs_sum").shape
    ((2, 16, 16, 3), (2, 16, 16))
    """
    cls = get_method(method)
    if cls.kind != "attribution":
        raise InputError(
            f"{cls.__name__} is not a pixel attribution method; choose from "
            f"{', '.join(method_names('attribution'))} (or use convviz.explain for {cls.kind} methods)."
        )
    return create(cls, model, logits=logits, batch_size=batch_size, **options).explain(images, class_index=class_index)
