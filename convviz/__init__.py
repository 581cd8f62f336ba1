"""convviz: see what a Keras 3 convnet learned.

Feature maps (:func:`activations`), filter patterns (:func:`filters`) and feature
visualization of neurons, directions and classes (:func:`visualize`), where the
evidence for a class is (:func:`explain`, :func:`cam`, :func:`gradcam`), which pixels
moved it (:func:`attribute`; the methods are in :mod:`convviz.methods`), which of those
explanations to trust (:func:`evaluate`) and activation sparsity (:func:`sparsity`), on the
TensorFlow, JAX and PyTorch backends.

>>> import convviz, keras
>>> model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3)])
>>> acts = convviz.activations(model, "path/to/cat.jpg")  # doctest: +SKIP
"""

from convviz import data, errors, methods, metrics, models, objectives, plot, training
from convviz._version import __version__ as __version__
from convviz.datasets import DatasetExplanation, explain_dataset
from convviz.evaluation import EvaluationTable, evaluate
from convviz.feature_maps import Activations, activations
from convviz.feature_visualization import visualize
from convviz.filter_patterns import FilterPatterns, filters
from convviz.galleries import Gallery, gallery
from convviz.inspector import Inspector, LayerInfo
from convviz.methods import Explanation
from convviz.methods.api import attribute, cam, explain, gradcam
from convviz.sparsity_stats import LayerSparsity, SparsityTable, sparsity

__all__ = [
    "Activations", "DatasetExplanation", "EvaluationTable", "FilterPatterns", "LayerSparsity", "SparsityTable",
    "Explanation", "Gallery", "Inspector", "LayerInfo", "activations", "attribute", "cam", "data", "errors", "evaluate", "explain", "explain_dataset",
    "filters", "gallery", "gradcam", "methods", "metrics", "models", "objectives", "plot", "sparsity", "training",
    "visualize",
]
