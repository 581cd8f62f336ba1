"""What feature visualization maximises: channels, neurons, directions, class logits.

An :class:`Objective` is a batch of targets at one place in the model. Every target
is a weighted sum of that place's channels, reduced over space, so a whole batch of
targets is optimised in one compiled step (:func:`convviz.visualize`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convviz.errors import InputError

__all__ = ["Objective"]


@dataclass(frozen=True, eq=False)
class Objective:
    """A batch of feature-visualization targets.

    Build one with a constructor:

    - :meth:`channels` - a channel's mean activation (the chapter's filter loss, a
      2-pixel border excluded);
    - :meth:`neurons` - a channel's centre unit;
    - :meth:`directions` - the mean over positions of the activation's dot product
      with a vector in the layer's channel space (Olah et al. 2017's "direction");
    - :meth:`classes` - a class's score before the final softmax/sigmoid (class model
      visualisation, Simonyan et al. 2014).

    Attributes
    ----------
    kind : str
        ``"channel"``, ``"neuron"``, ``"direction"`` or ``"class"``.
    layer : str or None
        The layer (None for classes: the model's scores).
    targets : numpy.ndarray
        int64 indices (channels, classes) or float32 (K, C) direction vectors.

    Examples
    --------
    >>> Objective.channels("top_conv", [3, 7]).kind
    'channel'
    >>> Objective.classes([281, 282]).targets
    array([281, 282])
    """

    kind: str
    layer: str | None
    targets: np.ndarray

    @classmethod
    def channels(cls, layer, indices) -> Objective:
        """The mean activation of each channel in ``indices`` of ``layer``."""
        return cls("channel", layer, _indices(indices, "indices"))

    @classmethod
    def neurons(cls, layer, indices) -> Objective:
        """The centre unit of each channel in ``indices`` of ``layer``."""
        return cls("neuron", layer, _indices(indices, "indices"))

    @classmethod
    def directions(cls, layer, vectors) -> Objective:
        """Directions in ``layer``'s channel space: ``vectors`` is (K, C) or (C,)."""
        try:
            v = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise InputError(
                f"directions must be a (K, C) array of numbers; got {vectors!r}."
            ) from err
        if v.ndim != 2 or v.shape[1] == 0 or not np.isfinite(v).all() or not v.any(axis=1).all():
            raise InputError(
                f"directions must be a (K, C) array of finite numbers, no row all zero; "
                f"got shape {v.shape}."
            )
        return cls("direction", layer, v)

    @classmethod
    def classes(cls, indices) -> Objective:
        """The score (logit) of each class in ``indices``."""
        return cls("class", None, _indices(indices, "classes"))

    def __len__(self) -> int:
        return len(self.targets)

    def weights(self, channels: int) -> np.ndarray:
        """float32 (K, channels): the weight of each channel in each target."""
        if self.kind == "direction":
            if self.targets.shape[1] != channels:
                raise InputError(
                    f"The directions have {self.targets.shape[1]} components but layer "
                    f"{self.layer!r} has {channels} channels."
                )
            return self.targets
        if self.targets.max() >= channels:
            what = "classes" if self.kind == "class" else f"channels in layer {self.layer!r}"
            raise InputError(
                f"Index {int(self.targets.max())} is out of range: there are {channels} "
                f"{what} (indices 0 to {channels - 1})."
            )
        return np.eye(channels, dtype=np.float32)[self.targets]

    @property
    def spatial(self) -> str:
        """How a target's channel sum is reduced over space."""
        return {"channel": "window", "direction": "window", "neuron": "centre"}.get(
            self.kind, "flat"
        )


def _indices(values, name: str) -> np.ndarray:
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    try:
        out = np.asarray(list(values))
    except TypeError as err:
        raise InputError(f"{name} must be an int or a list of ints; got {values!r}.") from err
    if out.ndim != 1 or len(out) == 0 or out.dtype.kind not in "iu" or (out < 0).any():
        raise InputError(f"{name} must be non-negative integers; got {values!r}.")
    return out.astype(np.int64)
