"""Progress on standard error: Keras' progress bar, kept off standard output."""

from __future__ import annotations

import contextlib
import sys

import keras


class Progress:
    """A :class:`keras.utils.Progbar` that writes to standard error, or does nothing
    when ``verbose`` is 0 (see :func:`convviz._validation.check_verbose`).

    ``target`` is the total (None when unknown); ``unit_name`` names what is counted;
    values named in ``stateful`` are shown as given, not averaged (a rate).
    """

    def __init__(self, target, verbose: int, unit_name: str, *, stateful=()):
        self._bar = None
        if verbose:
            with contextlib.redirect_stdout(sys.stderr):
                self._bar = keras.utils.Progbar(target, verbose=verbose, unit_name=unit_name,
                                                stateful_metrics=list(stateful) or None)

    def add(self, n: int) -> None:
        """Advance by ``n``."""
        if self._bar is not None:
            with contextlib.redirect_stdout(sys.stderr):
                self._bar.add(n)

    def update(self, current: int, *, values=None, finalize: bool = False) -> None:
        """Set the count to ``current`` (``finalize`` ends the bar); ``values``:
        ``[(name, value)]`` shown beside it (as they are for the ``stateful`` names)."""
        if self._bar is not None:
            with contextlib.redirect_stdout(sys.stderr):
                self._bar.update(current, values=values, finalize=finalize)
