"""convviz: see what a Keras 3 convnet learned.

Feature maps (:func:`activations`), filter patterns, Grad-CAM heatmaps and
activation sparsity, on the TensorFlow, JAX and PyTorch backends.

>>> import convviz, keras
>>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3)])
>>> acts = convviz.activations(model, "path/to/cat.jpg")  # doctest: +SKIP
"""

from convviz import data, errors, models, plot, training
from convviz.activations import activations
from convviz.filters import filters
from convviz.gallery import gallery
from convviz.gradcam import gradcam
from convviz.inspector import Inspector, LayerInfo
from convviz.sparsity import sparsity

__version__ = "0.1.0"

__all__ = [
    "Inspector", "LayerInfo", "activations", "data", "errors", "filters", "gallery", "gradcam", "models", "plot", "sparsity",
    "training",
]
