"""Intermediate feature maps: what each layer outputs for an image."""

from __future__ import annotations

from convviz import plot
from convviz._validation import check_batch_size, keyword_only, renamed
from convviz.inspector import Inspector

__all__ = ["Activations", "activations"]


class Activations(dict):
    """What :func:`activations` returns: layer name -> feature maps, shallow to deep.

    A plain :class:`dict` in every way (same keys in the same order, the same read-only
    numpy arrays, equal to the dict it holds, ``isinstance(acts, dict)``), plus
    :meth:`plot`, so that every convviz result can draw itself.

    Examples
    --------
    >>> import numpy as np
    >>> acts = Activations({"conv": np.zeros((1, 8, 8, 4))})
    >>> list(acts), isinstance(acts, dict)
    (['conv'], True)
    >>> len(acts.plot().axes)
    1
    """

    __slots__ = ()

    def plot(self, **kwargs):
        """:func:`convviz.plot.activations` of these maps: one grid of channels per layer.

        Keyword arguments (``layers``, ``image_index``, ``ncols``, ``cmap``,
        ``figsize``, ``save``) are passed on. Returns a matplotlib Figure.
        """
        return plot.activations(self, **kwargs)


@renamed(img="images")
@keyword_only(2, "layers")
def activations(model, images, *, layers=None, batch_size: int = 32) -> Activations:
    """Outputs of a model's layers for one image or a batch, shallow to deep.

    The model runs in inference mode: augmentation and dropout layers are inactive
    and BatchNormalization uses its moving statistics.

    Parameters
    ----------
    model : keras.Model, convviz.Inspector or path
        A built Sequential or Functional model (nested conv bases are fine), or a
        ``.keras`` file.
    images : path, PIL image, array or tensor, or a list of those
        One image (H, W) / (H, W, C) or a batch (N, H, W, C); uint8 or float,
        grayscale or RGB. Images are resized (bilinear) to the model's input size
        when the model has a fixed one. Pixel values are passed as they are: the
        chapter's models take 0-255 pixels and rescale inside. Formerly ``img``.
    layers : str or list of str, optional
        Layer names or ``outer/inner`` paths. Default: every convolution and pooling
        layer, as in the chapter. Keyword-only (passing it by position still works,
        with a DeprecationWarning, until the next release).
    batch_size : int
        Images per forward pass (default 32), to bound memory on large batches; a
        positive integer.

    Returns
    -------
    Activations
        A dict, ordered shallow to deep: layer name -> array with a leading batch axis,
        e.g. ``(1, 178, 178, 32)`` for one image through a 3x3 convolution. The
        arrays are read-only: they share memory with the backend's output buffers
        rather than copying feature maps that can take gigabytes (``.copy()`` one to
        modify it in place). ``.plot()`` draws them (:func:`convviz.plot.activations`).

    Raises
    ------
    convviz.errors.InputError
        Unreadable or malformed images, or a ``batch_size`` that is not a positive integer.
    convviz.errors.LayerNotFoundError
        An unknown layer name (the message lists the closest names).
    convviz.errors.ModelStructureError
        No conv or pooling layer and no ``layers`` given, or a model convviz cannot open.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((28, 28, 1)),
    ...                           keras.layers.Conv2D(4, 3, name="conv")])
    >>> convviz.activations(model, np.zeros((28, 28), "uint8"))["conv"].shape
    (1, 26, 26, 4)
    """
    batch_size = check_batch_size(batch_size)
    return Activations(Inspector.of(model).activations(images, layers=layers, batch_size=batch_size))
