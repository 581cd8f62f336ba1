"""Exceptions raised by convviz.

Every error convviz raises on bad input is a :class:`ConvvizError`, so callers can
catch them all at once. Each subclass also derives from the built-in exception a
Python user would expect (``ValueError`` for bad values, ``LookupError`` for names
that do not exist), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import difflib
import re


class ConvvizError(Exception):
    """Base class of every error convviz raises on purpose."""


class InputError(ConvvizError, ValueError):
    """An image, batch or dataset cannot be turned into model input.

    The message says what was received and what convviz expects.
    """


class LayerNotFoundError(ConvvizError, LookupError):
    """A layer name or nested path does not exist in the model.

    The message lists the closest existing names.
    """

    def __str__(self) -> str:  # LookupError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ModelStructureError(ConvvizError, ValueError):
    """The model cannot be explained as asked (no conv layer, not a graph model, ...)."""


class OutputError(ConvvizError, OSError):
    """An output folder or file cannot be written (under a file, read-only, full, ...).

    The message names the location, the reason the operating system gave and the fix.
    """

    def __str__(self) -> str:  # OSError would otherwise format (errno, strerror) args
        return str(self.args[0]) if self.args else ""


class NonFiniteError(ConvvizError, FloatingPointError):
    """A result would hold NaN or infinite values (the model overflowed on the images,
    or a gradient did); convviz refuses to return it.

    The message names the image, the first layer whose output is not finite, and the
    pixel values that led there.
    """


class ModelRunError(ConvvizError, RuntimeError):
    """The backend failed while running the model (an out-of-memory batch, a shape a
    layer cannot take); the message names the model, the shapes and the fix."""


class WeightsUnavailableError(ConvvizError, RuntimeError):
    """Pretrained weights or a preset could not be fetched or found locally."""


def closest(name: str, candidates, n: int = 5) -> list[str]:
    """Return up to ``n`` candidates that look most like ``name`` (best first)."""
    candidates = list(candidates)
    hits = difflib.get_close_matches(name, candidates, n=n, cutoff=0.4)
    if len(hits) < n:  # substring matches catch "conv2" -> "block2_conv1"
        hits += [c for c in candidates if name.lower() in c.lower() and c not in hits]
    return hits[:n]


def layer_error_reason(err: Exception) -> str:
    """The informative line of a Keras layer error (its first, without colour codes and
    Keras' "Exception encountered ..." / "Arguments received ..." framing), ending in a
    full stop.

    >>> layer_error_reason(ValueError("Exception encountered when calling Conv2D.\\n\\n"
    ...                               "Computed output size would be negative."))
    'Computed output size would be negative.'
    """
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(err).splitlines()]
    useful = [
        line
        for line in lines
        if line and not line.startswith(("Exception encountered", "Arguments received", "\u2022"))
    ]
    return (useful[0] if useful else type(err).__name__).rstrip(".") + "."
