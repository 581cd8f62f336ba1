"""Downloads with one clear error and nothing left behind.

Pretrained weights come from the usual places (the ImageNet weight file in Keras'
cache, keras-hub presets from Kaggle). A download that fails for lack of network
becomes one :class:`~convviz.errors.WeightsUnavailableError` saying how to provide the
files offline, and whatever the attempt left in the cache folders is removed again.
"""

from __future__ import annotations

import os
import urllib.error

from convviz._cache import kagglehub_cache_dir
from convviz.errors import WeightsUnavailableError

__all__ = ["Leftovers", "from_preset", "import_keras_hub", "is_fetch_failure"]


class Leftovers:
    """Remember what exists under some cache folders; later delete only what is new.

    Downloads that fail half-way can leave partial files and fresh empty folders;
    anything that was already there (other weights, a user's files) is kept.
    """

    def __init__(self, roots):
        self._before = {}
        for root in roots:
            root = os.path.abspath(os.fspath(root))
            anchor = root
            while not os.path.exists(anchor) and os.path.dirname(anchor) != anchor:
                anchor = os.path.dirname(anchor)
            self._before[root] = (anchor, self._listing(root))

    @staticmethod
    def _listing(root) -> set[str] | None:
        if not os.path.isdir(root):
            return None
        found = set()
        for folder, dirs, files in os.walk(root):
            found.update(os.path.join(folder, n) for n in dirs + files)
        return found

    def remove_new(self) -> list[str]:
        removed = []
        for root, (anchor, before) in self._before.items():
            after = self._listing(root)
            if after is None:
                continue
            for path in sorted(after - (before or set()), key=len, reverse=True):
                try:
                    if os.path.isdir(path) and not os.path.islink(path):
                        os.rmdir(path)  # only if empty: never remove someone else's files
                    else:
                        os.remove(path)
                    removed.append(path)
                except OSError:
                    pass
            if before is None:
                # The root and its parents up to what existed were made by the attempt.
                folder = root
                while folder != anchor and os.path.isdir(folder):
                    try:
                        os.rmdir(folder)
                    except OSError:
                        break
                    removed.append(folder)
                    folder = os.path.dirname(folder)
        return removed


def is_fetch_failure(err: BaseException) -> bool:
    """True if ``err`` (or what caused it) is a network or missing-file failure."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, (OSError, urllib.error.URLError, TimeoutError)):
            return True
        text = str(err)
        if "URL fetch failure" in text or "hash does not match" in text:
            return True
        if type(err).__module__.startswith(("requests", "urllib3", "kagglehub", "huggingface_hub")):
            return True
        err = err.__cause__ or err.__context__
    return False


def import_keras_hub():
    """The keras_hub module, or an ImportError naming the ``hub`` extra."""
    try:
        import keras_hub
    except ImportError as err:
        raise ImportError(
            "The Xception models use keras-hub, which is not installed. Install it with: "
            'pip install "convviz[hub]"'
        ) from err
    return keras_hub


def from_preset(loader, preset: str, what: str, **kwargs):
    """``loader.from_preset(preset, **kwargs)`` with offline failures made clear."""
    preset = os.fspath(preset)
    is_handle = "://" in preset  # kaggle://, hf://, modelscope://
    is_path = not is_handle and (os.sep in preset or preset.startswith((".", "~")) or os.path.isdir(preset))
    if is_path and not os.path.isdir(os.path.expanduser(preset)):
        raise WeightsUnavailableError(
            f"Preset directory not found: {preset!r}. A local preset is a folder with "
            "config.json, model.weights.h5 and the preprocessor files (what "
            "keras_hub's from_preset downloads, or save_to_preset writes). preset=None "
            "builds the same architecture with random weights."
        )
    leftovers = Leftovers([] if is_path else [os.path.join(kagglehub_cache_dir(), "models")])
    try:
        return loader.from_preset(os.path.expanduser(preset) if is_path else preset, **kwargs)
    except Exception as err:
        if not is_fetch_failure(err):
            raise
        leftovers.remove_new()
        raise WeightsUnavailableError(
            f"Could not load the keras-hub preset {preset!r} ({what}): {err}\n"
            "To work offline, either\n"
            "  * on a machine with network access run "
            f'keras_hub.models.Backbone.from_preset("{preset}") and copy its download '
            f"cache ({kagglehub_cache_dir()}, or $KAGGLEHUB_CACHE) to the same place "
            "here, or\n"
            "  * copy the preset folder (config.json, model.weights.h5, preprocessor "
            'files; backbone.save_to_preset(dir) writes one) and pass preset="/path/to/preset_dir".\n'
            "preset=None builds the same architecture with random, untrained weights."
        ) from err

