"""Argument checks and deprecation shims shared by the public API.

The conventions they enforce are written down in ``docs/user_guide/conventions.rst``:
``batch_size`` is a positive int everywhere, ``verbose`` is a bool (or the Keras-style
0/1/2), options are keyword-only, and renamed keywords keep working for one release
with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
import sys
import warnings

from convviz.errors import InputError

__all__ = [
    "check_batch_size", "check_choice", "check_fraction", "check_image_size", "check_positive_int", "check_seed",
    "check_verbose",
    "keyword_only", "output_argument", "physical_memory", "renamed",
]


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _warn_deprecated(message: str) -> None:
    """A DeprecationWarning attributed to the first caller outside convviz.

    A fixed ``stacklevel`` points into convviz as soon as the shims are stacked
    (``@renamed`` over ``@keyword_only``) or a check runs inside a public function,
    and Python only shows DeprecationWarnings attributed to ``__main__`` by default.
    """
    frame, level = sys._getframe(0), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, DeprecationWarning, stacklevel=level)


def check_positive_int(value, name: str) -> int:
    """``value`` as an int when it is a whole number >= 1 (not a bool), else InputError.

    >>> check_positive_int(3, "steps")
    3
    >>> check_positive_int(0, "steps")
    Traceback (most recent call last):
    ...
    convviz.errors.InputError: steps must be a positive integer, got 0.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_positive_number(value, name: str) -> float:
    """``value`` as a float when it is a finite real number > 0 (not a bool), else
    InputError.

    >>> check_positive_number(1e-6, "eps")
    1e-06
    >>> check_positive_number("1e-6", "eps")
    Traceback (most recent call last):
    ...
    convviz.errors.InputError: eps must be a positive number, got '1e-6'.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise InputError(f"{name} must be a positive number, got {value!r}.")
    return float(value)


def check_choice(value, name: str, options) -> str:
    """``value`` when it is one of ``options`` (strings), else InputError naming them.

    >>> check_choice("fft", "parametrization", ("pixel", "fft"))
    'fft'
    >>> check_choice("max", "objective", ("channel", "neuron"))
    Traceback (most recent call last):
    ...
    convviz.errors.InputError: objective must be one of 'channel', 'neuron'; got 'max'.
    """
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{name} must be one of {', '.join(map(repr, options))}; got {value!r}.")
    return value


def check_seed(value, name: str = "seed", *, allow_none: bool = False) -> int | None:
    """``value`` as an int when it is a whole number >= 0 (not a bool), or None where
    ``allow_none`` (a fresh random seed), else InputError.

    >>> check_seed(0)
    0
    >>> check_seed("x", allow_none=True)
    Traceback (most recent call last):
    ...
    convviz.errors.InputError: seed must be an integer >= 0 or None, got 'x'.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InputError(f"{name} must be an integer >= 0{' or None' if allow_none else ''}, got {value!r}.")
    return int(value)


def check_fraction(value, name: str) -> float:
    """``value`` as a float when it is a real number strictly between 0 and 1, else
    InputError.

    >>> check_fraction(0.95, "confidence")
    0.95
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise InputError(f"{name} must be a number between 0 and 1, got {value!r}.")
    return float(value)


def physical_memory() -> int | None:
    """The machine's RAM in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


#: Copies of one image an optimisation keeps at once (the image, its gradient, Adam's two
#: moments): a requested size is refused when these would not fit in the machine's RAM.
_IMAGE_COPIES = 4


def check_image_size(value, name: str = "size", *, channels: int = 3) -> tuple[int, int]:
    """``value`` (an int or (height, width) of positive ints) as (h, w), else InputError;
    also refused when the float32 copies an optimisation keeps of one such image
    would not fit in the machine's memory (before anything is allocated).

    >>> check_image_size(64)
    (64, 64)
    >>> check_image_size((100000, 100000))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    convviz.errors.InputError: size=(100000, 100000) needs 447 GiB ... the machine has ... GiB...
    """
    size = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        h, w = size
        ok = all(isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                 for s in (h, w))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{name} must be (height, width) in pixels; got {value!r}.")
    h, w = int(h), int(w)
    need = _IMAGE_COPIES * 4 * h * w * channels
    memory = physical_memory()
    if memory is not None and need > memory:
        raise InputError(
            f"{name}=({h}, {w}) needs {need / 2**30:.0f} GiB for one image's float32 copies "
            f"alone ({_IMAGE_COPIES} of {h} x {w} x {channels}), and the machine has "
            f"{memory / 2**30:.1f} GiB. Pass a smaller {name}= (the model's input size, or "
            "a few hundred pixels)."
        )
    return h, w


def output_argument(text: str | None):
    """An ``output=`` given as text (the command line's ``--output``, a directive's
    ``:output:``): an index when it is an integer, else a name.

    >>> output_argument("1"), output_argument("age"), output_argument(None)
    (1, 'age', None)
    """
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        return text.strip()


def check_batch_size(value, *, allow_none: bool = False) -> int | None:
    """The one ``batch_size`` check: a positive int (or None where None means "auto")."""
    if value is None and allow_none:
        return None
    return check_positive_int(value, "batch_size")


def check_verbose(value) -> int:
    """Normalise ``verbose``: False/0 silent, True/1 a progress bar, 2 one line per step.

    ``"auto"`` (the Keras default some functions used to take) means 1 and is deprecated.
    """
    if isinstance(value, str) and value == "auto":
        _warn_deprecated('verbose="auto" is deprecated; pass True or False.')
        return 1
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral) and value in (0, 1, 2):
        return int(value)
    raise InputError(f"verbose must be True, False, 0, 1 or 2; got {value!r}.")


def renamed(**old_to_new: str):
    """Decorator: accept old keyword names for one release, with a DeprecationWarning.

    ``@renamed(img="images")`` lets ``f(img=x)`` call ``f(images=x)``; passing both
    raises :class:`~convviz.errors.InputError`.
    """

    def wrap(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise InputError(f"{fn.__name__}() got both {old}= and {new}=; use {new}= only.")
                    _warn_deprecated(f"{fn.__name__}({old}=...) is deprecated; use {new}=... instead.")
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner

    return wrap


def keyword_only(n_positional: int, *formerly_positional: str):
    """Decorator for options that became keyword-only: extra positional arguments are
    still mapped to their names for one release, with a DeprecationWarning.

    ``n_positional`` is how many leading parameters stay positional. The wrapped
    function's own signature should already mark the rest keyword-only (``*``).
    ``formerly_positional`` names, in order, the keyword-only parameters that used to
    be positional (default: every keyword-only parameter, in signature order), so
    options that never were positional still raise TypeError when given by position.
    """

    def wrap(fn):
        params = list(inspect.signature(fn).parameters.values())
        keyword = [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
        unknown = [n for n in formerly_positional if n not in keyword]
        if unknown:
            raise TypeError(f"{fn.__name__}() has no keyword-only parameter {unknown[0]!r}")
        names = list(formerly_positional) or keyword

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            if len(args) > n_positional:
                extra = args[n_positional:]
                if len(extra) > len(names):
                    raise TypeError(f"{fn.__name__}() takes {n_positional} positional arguments")
                moved = names[: len(extra)]
                clash = [n for n in moved if n in kwargs]
                if clash:
                    raise TypeError(f"{fn.__name__}() got multiple values for {clash[0]!r}")
                _warn_deprecated(
                    f"Passing {', '.join(moved)} to {fn.__name__}() by position is deprecated; "
                    f"pass {', '.join(f'{n}=' for n in moved)} by keyword."
                )
                kwargs.update(zip(moved, extra))
                args = args[:n_positional]
            return fn(*args, **kwargs)

        return inner

    return wrap
