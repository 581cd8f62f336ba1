"""Gradient x input (Shrikumar et al. 2016): each pixel times its gradient."""

from __future__ import annotations

from convviz.methods.attribution import Attribution

__all__ = ["GradientXInput"]


class GradientXInput(Attribution):
    """Gradient x input: ``x * d score / d x``, element by element.

    For a model linear in its input it is each pixel's exact share of the score; it
    is integrated gradients with a zero baseline and one step.

    Examples
    --------
    >>> import keras, numpy as np, convviz
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> convviz.attribute(model, np.random.rand(2, 16, 16, 3), method="gradient_x_input").maps.shape
    (2, 16, 16, 3)
    """

    name = "gradient_x_input"
    title = "Gradient \u00d7 input"
    reference = (
        "Shrikumar et al., Not Just a Black Box: Learning Important Features Through "
        "Propagating Activation Differences, arXiv:1605.01713, 2016"
    )
    order = 21

    def compute(self, images, classes, scores):
        return images * self.input_gradients(images, classes)
