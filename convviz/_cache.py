"""Where convviz keeps downloaded and generated files: Keras' own cache folder.

The one place that knows the cache folders. The VGG16 weights
(:mod:`convviz.models`), the converted EfficientNet-Lite0 weights
(:mod:`convviz.efficientnet`) and the offline shapes dataset (:mod:`convviz.shapes`)
all go under Keras' folder, so a download made by ``keras.applications`` is found by
convviz and the other way round. keras-hub presets go to kagglehub's folder.
"""

from __future__ import annotations

import os

__all__ = ["KERAS_FALLBACK_DIR", "kagglehub_cache_dir", "keras_cache_dir"]

#: Where Keras caches when the home folder (or a given cache folder) is not writable.
KERAS_FALLBACK_DIR = os.path.join("/tmp", ".keras")


def keras_cache_dir(*parts: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """Keras' cache folder, or a path inside it.

    Keras' own rule (``keras.utils.get_file``, ``keras.config``): ``$KERAS_HOME`` if
    set, else ``~/.keras``, or ``/tmp/.keras`` when the home folder is not writable.
    Nothing is created.

    Parameters
    ----------
    *parts : str or path
        Path components joined under the cache folder (``"models"``, a file name).
    root : str or path, optional
        A cache folder chosen by the caller (a function's ``cache_dir=`` argument),
        used instead of Keras' folder; ``~`` is expanded.

    Returns
    -------
    str

    Examples
    --------
    >>> keras_cache_dir("models", "weights.h5", root="/data/cache")
    '/data/cache/models/weights.h5'
    """
    if root:
        base = os.path.expanduser(os.fspath(root))
    elif os.environ.get("KERAS_HOME"):
        base = os.environ["KERAS_HOME"]
    else:
        home = os.path.expanduser("~")
        base = os.path.join(home, ".keras") if os.access(home, os.W_OK) else KERAS_FALLBACK_DIR
    return os.path.join(base, *(os.fspath(p) for p in parts))


def kagglehub_cache_dir() -> str:
    """Where kagglehub (keras-hub's preset downloads) caches: ``$KAGGLEHUB_CACHE``,
    else ``~/.cache/kagglehub``."""
    return os.environ.get("KAGGLEHUB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "kagglehub")
