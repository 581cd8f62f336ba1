"""What the model builders share: the binary classifiers' compile settings, argument checks."""

from __future__ import annotations

from convviz.errors import InputError

#: ``model.compile`` arguments of the chapter's binary (dogs vs. cats) classifiers.
BINARY = {"loss": "binary_crossentropy", "metrics": ["accuracy"]}


def check_rate(dropout) -> float:
    """``dropout`` as a float in [0, 1), else InputError."""
    if not 0.0 <= float(dropout) < 1.0:
        raise InputError(f"dropout must be a rate in [0, 1), got {dropout!r}.")
    return float(dropout)
