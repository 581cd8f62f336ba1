"""The chapter's training workflow: fit with a best-model checkpoint, reload, test.

>>> from convviz import data, models, training
>>> train, validation, test = data.load_datasets(data.ensure_offline_dataset())  # doctest: +SKIP
>>> result = training.fit(models.small_convnet(), train, validation, epochs=10,
...                       checkpoint_path="convnet_from_scratch.keras", test_ds=test)  # doctest: +SKIP
>>> print(f"Test accuracy: {result.test_accuracy:.3f}")  # doctest: +SKIP
>>> training.plot_history(result)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import warnings

import keras

from convviz._validation import check_positive_int, check_verbose, keyword_only
from convviz.errors import InputError

__all__ = ["TrainingResult", "fit", "plot_history"]


@dataclasses.dataclass
class TrainingResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    history : dict
        Metric name -> one value per epoch (``History.history``).
    model : keras.Model
        The best model (lowest monitored value), reloaded from the checkpoint.
    checkpoint_path : pathlib.Path
        The ``.keras`` file holding that model.
    test_accuracy, test_loss : float or None
        On the test split, if one was given.
    test_metrics : dict
        Everything ``evaluate`` returned.
    best_epoch : int or None
        1-based epoch of the saved model.
    """

    history: dict
    model: keras.Model
    checkpoint_path: pathlib.Path
    test_accuracy: float | None = None
    test_loss: float | None = None
    test_metrics: dict = dataclasses.field(default_factory=dict)
    best_epoch: int | None = None

    def plot(self, **kwargs):
        """:func:`plot_history` of this run; keyword arguments (``figsize``, ``save``) are
        passed on. Returns a matplotlib Figure."""
        return plot_history(self, **kwargs)


def _stamp(path: pathlib.Path):
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@keyword_only(3, "epochs", "checkpoint_path")
def fit(
    model: keras.Model,
    train_ds,
    val_ds,
    *,
    epochs: int,
    checkpoint_path,
    test_ds=None,
    monitor: str = "val_loss",
    callbacks=(),
    verbose: bool = True,
    **fit_kwargs,
) -> TrainingResult:
    """Train, keep the best epoch, reload it and evaluate it on the test split.

    The chapter's recipe: ``ModelCheckpoint(checkpoint_path, save_best_only=True,
    monitor="val_loss")`` during ``model.fit``, then
    ``keras.models.load_model(checkpoint_path)`` and ``evaluate(test_dataset)``.
    Keras prints its usual progress.

    The model and the two datasets are positional, everything else keyword-only
    (``epochs`` and ``checkpoint_path`` are required); ``epochs`` and
    ``checkpoint_path`` given by position still work, with a
    :class:`DeprecationWarning`, until the next release.

    Parameters
    ----------
    model : keras.Model
        Compiled.
    train_ds, val_ds
        Training and validation data (e.g. from :func:`convviz.data.load_datasets`).
    epochs : int
        A positive integer.
    checkpoint_path : str or path
        A ``.keras`` file; its folder is created if needed.
    test_ds : optional
        Evaluate the best model on it.
    monitor : str
        What "best" means; the chapter monitors ``"val_loss"``.
    callbacks : sequence
        Extra Keras callbacks.
    verbose : bool
        Keras' progress output for ``fit`` and ``evaluate`` (default True: a progress
        bar). Keras-style 0, 1 and 2 (one line per epoch) are accepted; ``"auto"`` is
        deprecated.
    **fit_kwargs
        Passed to ``model.fit``.

    Returns
    -------
    TrainingResult

    Raises
    ------
    InputError
        If the model is not compiled or the checkpoint path does not end in ``.keras``.

    Examples
    --------
    >>> result = fit(model, train, validation, epochs=30,
    ...              checkpoint_path="fine_tuning.keras", test_ds=test)  # doctest: +SKIP
    >>> result.test_accuracy  # doctest: +SKIP
    0.985
    """
    verbose = check_verbose(verbose)
    checkpoint_path = pathlib.Path(checkpoint_path).expanduser()
    if checkpoint_path.suffix != ".keras":
        raise InputError(
            f"checkpoint_path must end in .keras (Keras 3 saves whole models in that format), "
            f"got {str(checkpoint_path)!r}."
        )
    if not getattr(model, "compiled", False):
        raise InputError(
            "The model is not compiled; call model.compile(...) first (convviz.models' "
            "builders compile by default)."
        )
    epochs = check_positive_int(epochs, "epochs")
    if type(train_ds).__module__.startswith("tensorflow"):
        # A tf.data pipeline shuffles itself (load_datasets does); Keras would warn that
        # its own default shuffle=True is ignored.
        fit_kwargs.setdefault("shuffle", False)
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    before = _stamp(checkpoint_path)
    checkpoint = keras.callbacks.ModelCheckpoint(
        filepath=os.fspath(checkpoint_path), save_best_only=True, monitor=monitor
    )
    history = model.fit(
        train_ds,
        epochs=epochs,
        validation_data=val_ds,
        callbacks=[checkpoint, *callbacks],
        verbose=verbose,
        **fit_kwargs,
    )
    history = {k: [float(v) for v in values] for k, values in history.history.items()}

    best_epoch = None
    if monitor in history and history[monitor]:
        values = history[monitor]
        # ModelCheckpoint's "auto" mode: accuracy-like metrics are maximised.
        maximize = any(s in monitor for s in ("acc", "auc", "precision", "recall"))
        pick = max if maximize else min
        best_epoch = 1 + values.index(pick(values))
    after = _stamp(checkpoint_path)
    if after is None or after == before:
        # Nothing saved this run (e.g. the monitored value was NaN every epoch): a file
        # from an earlier run must not pass for this one's best model.
        warnings.warn(
            f"No checkpoint was written to {checkpoint_path} ({monitor!r} never improved); "
            "returning the model as it is after the last epoch.",
            RuntimeWarning,
            stacklevel=3,  # the caller of fit(), through the keyword_only shim
        )
        best = model
        best_epoch = None
    else:
        best = keras.models.load_model(checkpoint_path)

    result = TrainingResult(history=history, model=best, checkpoint_path=checkpoint_path, best_epoch=best_epoch)
    if test_ds is not None:
        metrics = best.evaluate(test_ds, verbose=verbose, return_dict=True)
        result.test_metrics = {k: float(v) for k, v in metrics.items()}
        result.test_loss = result.test_metrics.get("loss")
        result.test_accuracy = next(
            (result.test_metrics[k] for k in ("accuracy", "acc", "binary_accuracy") if k in result.test_metrics),
            None,
        )
    return result


def plot_history(history, *, figsize=None, save=None):
    """The chapter's two training figures, side by side: accuracy and loss per epoch.

    Training values as dots (``"bo"``), validation values as a line (``"b"``).

    Parameters
    ----------
    history : dict, keras.callbacks.History or TrainingResult
        Metric name -> per-epoch values.
    figsize : (width, height), optional
        The whole figure in inches, as in :mod:`convviz.plot`. Default: 5.5 x 4 inches
        per panel (11 x 4 for the chapter's two); either element may be None to keep
        its default.
    save : str or path, optional
        Also write the figure to this file (format from its extension).

    Returns
    -------
    matplotlib.figure.Figure
        One axis per metric found (accuracy, loss).

    Raises
    ------
    InputError
        If the history has neither accuracy nor loss.

    Examples
    --------
    >>> fig = plot_history({"accuracy": [0.6, 0.8], "val_accuracy": [0.55, 0.7],
    ...                     "loss": [0.7, 0.4], "val_loss": [0.69, 0.6]})
    >>> [ax.get_title() for ax in fig.axes]
    ['Training and validation accuracy', 'Training and validation loss']
    """
    from matplotlib.figure import Figure

    from convviz.plot import _figsize

    width, height = _figsize(figsize)
    values = getattr(history, "history", history)
    if not isinstance(values, dict):
        raise InputError(
            f"plot_history expects a dict, a keras History or a TrainingResult, got {type(history).__name__}."
        )
    panels = []
    for metric, title in (("accuracy", "accuracy"), ("acc", "accuracy"), ("loss", "loss")):
        if metric in values and title not in (t for _, t in panels):
            panels.append((metric, title))
    if not panels:
        raise InputError(f"The history has no accuracy or loss to plot; it has {sorted(values)}.")

    fig = Figure(figsize=(width or 5.5 * len(panels), height or 4.0))
    for i, (metric, title) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        train = values[metric]
        epochs = range(1, len(train) + 1)
        ax.plot(epochs, train, "bo", label=f"Training {title}")
        if f"val_{metric}" in values:
            ax.plot(epochs, values[f"val_{metric}"], "b", label=f"Validation {title}")
        ax.set_title(f"Training and validation {title}")
        ax.set_xlabel("Epochs")
        ax.set_ylabel(title.capitalize())
        ax.legend()
    fig.tight_layout()
    if save is not None:
        save = pathlib.Path(save)
        save.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(save)
    return fig
