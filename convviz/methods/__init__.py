"""Explanation methods: one class per file, found by name.

Every module in this package that defines a :class:`~convviz.methods.core.Method`
subclass with a ``name`` adds that method to the registry when the package is
imported, so adding a method is one new file: :func:`convviz.explain`, the gallery,
the ``convviz`` command and the Sphinx directive pick it up by its name.

>>> import convviz
>>> convviz.methods.method_names("cam")[:3]
['gradcam', 'gradcam_plusplus', 'xgradcam']
>>> convviz.methods.GradCAM.title
'Grad-CAM'
"""

from __future__ import annotations

import importlib
import pkgutil

from convviz.methods.attribution import Attribution, Attributions
from convviz.methods.cam import CAM, GradientFreeCAM, LazyBatch, normalize_maps
from convviz.methods.core import (
    Explanation,
    LayerMethod,
    Method,
    get_method,
    method_names,
    register,
)

_BASES = {"core", "cam", "attribution", "api"}


def _load_methods() -> dict[str, type]:
    """Import every method module (sorted, so registration order is stable); returns
    the registered classes by class name."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_") and info.name not in _BASES:
            importlib.import_module(f"{__name__}.{info.name}")
    return {get_method(n).__name__: get_method(n) for n in method_names()}


_CLASSES = _load_methods()
globals().update(_CLASSES)

__all__ = [
    "CAM", "Attribution", "Attributions", "Explanation", "GradientFreeCAM", "LazyBatch", "LayerMethod", "Method", "get_method", "method_names", "normalize_maps",
    "register", *sorted(_CLASSES),
]
