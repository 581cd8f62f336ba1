"""Bases for class activation maps (CAMs): maps at a conv layer's resolution.

- :class:`CAM`: gradient methods. The base owns the compiled step: one forward and
  one backward pass per batch, into any layer (nested conv bases included) by adding
  a zero ``delta`` to the layer's output and differentiating with respect to it, with
  a class per image chosen inside the step, in inference mode, on the class score
  before a final softmax/sigmoid. A subclass only says how activations ``A`` and
  gradients ``G`` combine: per-channel weights (:meth:`CAM.channel_weights`), or the
  whole map (:meth:`CAM.combine`).
- :class:`GradientFreeCAM`: methods that score masked inputs or ablated channels
  instead of differentiating. The base gives the layer's activations, the class
  scores and :meth:`GradientFreeCAM.class_scores` for many inputs at once (compiled,
  in chunks of ``batch_size``); a subclass implements :meth:`GradientFreeCAM.compute`.

Both end the same way: ``relu``, then each map divided by its maximum (all-zero where
no evidence is positive, never NaN).
"""

from __future__ import annotations

import keras
import numpy as np

from convviz._autodiff import gradient_step
from convviz._validation import check_verbose
from convviz.errors import InputError
from convviz.methods.core import Explanation, LayerMethod, class_objective, class_weights

__all__ = ["CAM", "GradientFreeCAM", "LazyBatch", "normalize_maps"]


def normalize_maps(cam: np.ndarray) -> np.ndarray:
    """``relu(cam)`` divided by each map's maximum, as float32; maps with no positive
    value are all zero.

    >>> normalize_maps(np.array([[[-1.0, 2.0], [1.0, 4.0]]])).tolist()
    [[[0.0, 0.5], [0.25, 1.0]]]
    """
    cam = np.maximum(cam, 0.0)
    peak = cam.max(axis=(1, 2), keepdims=True)
    with np.errstate(invalid="ignore"):  # inf / inf: a NaN map, refused by check_finite after
        return np.divide(cam, peak, out=np.zeros_like(cam), where=peak > 0).astype(np.float32)


class CAM(LayerMethod):
    """Base of the gradient CAM methods; subclasses override :meth:`channel_weights`
    (a weighted sum of the activation channels) or :meth:`combine` (any map).

    ``batch_size`` defaults to 16 images per forward+backward step (the activations
    are kept for the backward pass).

    Examples
    --------
    A Grad-CAM variant that weights each channel by its largest gradient (a file in
    ``convviz/methods/`` with ``name = "max_gradcam"`` would register it):

    >>> import keras
    >>> class MaxGradCAM(CAM, register=False):
    ...     title = "Max-Grad-CAM"
    ...     def channel_weights(self, activations, gradients):
    ...         return gradients.max(axis=(1, 2)).astype(np.float64)
    >>> model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3),
    ...     keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    >>> result = MaxGradCAM(model).explain(np.random.rand(2, 16, 16, 3))
    >>> result.maps.shape, result.method
    ((2, 14, 14), 'MaxGradCAM')
    """

    kind = "cam"
    default_batch_size = 16
    _abstract = True

    def channel_weights(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """(N, C) weights of the activation channels, from ``activations`` and
        ``gradients`` (both (N, h, w, C) numpy arrays)."""
        raise NotImplementedError(f"{type(self).__name__} must define channel_weights or combine.")

    def combine(self, activations: np.ndarray, gradients: np.ndarray) -> np.ndarray:
        """(N, h, w) maps before relu and normalisation: by default
        ``sum_k channel_weights[n, k] * A[n, :, :, k]``, in float64."""
        weights = self.channel_weights(activations, gradients)
        return np.einsum("nhwc,nc->nhw", activations.astype(np.float64), weights)

    def explain(self, images, *, class_index=None) -> Explanation:
        inspector = self.inspector
        batch = inspector.prepare(images)
        model = inspector._gradient_model(self.layer, logits=self.logits)
        n_classes = self._score_shape(keras.tree.flatten(model.outputs)[1])[-1]
        threshold = self._threshold(n_classes)
        # Shared by every gradient CAM: the step depends only on the layer and logits.
        step = inspector._cached(
            "cam-step", (self.layer, self.logits),
            lambda: gradient_step(model, class_objective(threshold), wrt=1),
        )
        weights, use_top = class_weights(class_index, len(batch), n_classes)
        delta_shape = tuple(inspector.find_layer(self.layer).output_shape[1:])
        maps, scores = [], []
        for i in range(0, len(batch), self.batch_size):
            chunk = batch[i : i + self.batch_size]
            if None in delta_shape:  # a model without a fixed input size: ask the layer
                delta_shape = tuple(inspector.activations(chunk[:1], layers=[self.layer])[self.layer].shape[1:])
            delta = np.zeros((len(chunk), *delta_shape), np.float32)
            rows = slice(i, i + self.batch_size)
            _, grads, (acts, out) = step([chunk, delta], weights[rows], use_top[rows])
            acts, grads, out = (keras.ops.convert_to_numpy(t) for t in (acts, grads, out))
            maps.append(normalize_maps(self.combine(acts, grads)))
            scores.append(out)
        return self._result(np.concatenate(maps), np.concatenate(scores), class_index, batch)


class LazyBatch:
    """A batch of ``length`` rows built a slice at a time by ``build(start, stop)``.

    :meth:`~convviz.methods.Method.scores`, :meth:`~convviz.methods.Method.class_scores`
    and :meth:`GradientFreeCAM.layer_scores` take it where they take an array, and ask
    for one chunk of ``batch_size`` rows at a time: thousands of masked images or
    ablated activations never sit in memory together.

    >>> rows = LazyBatch(5, lambda start, stop: np.arange(start, stop))
    >>> len(rows), rows[3:10].tolist()
    (5, [3, 4])
    """

    def __init__(self, length: int, build):
        self.length, self.build = int(length), build

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, step = rows.indices(self.length)
        if step != 1:
            raise IndexError("LazyBatch takes contiguous slices only.")
        return self.build(start, stop)

    @classmethod
    def repeat(cls, array: np.ndarray, repeats: int) -> LazyBatch:
        """Row ``m`` is ``array[m // repeats]`` (as ``np.repeat(array, repeats, 0)``)."""
        return cls(len(array) * repeats, lambda start, stop: array[np.arange(start, stop) // repeats])


class GradientFreeCAM(LayerMethod):
    """Base of the CAM methods that score perturbed inputs instead of differentiating.

    A subclass implements :meth:`compute`. It scores masked inputs with
    :meth:`~convviz.methods.Method.class_scores` and changed activations of the layer
    with :meth:`layer_scores` (only the layers after it run); both go through the
    compiled model in chunks of ``batch_size``, never one Python call per input, and
    take a :class:`LazyBatch` that builds the inputs chunk by chunk.

    Parameters
    ----------
    model, layer, logits, batch_size
        As :class:`~convviz.methods.LayerMethod`.
    verbose : bool
        A progress bar on standard error while the perturbed inputs are scored.
    """

    kind = "cam"
    _abstract = True

    def __init__(self, model, *, verbose: bool = True, **kwargs):
        super().__init__(model, **kwargs)
        self.verbose = check_verbose(verbose)

    def compute(self, images: np.ndarray, activations: np.ndarray, classes: np.ndarray) -> np.ndarray:
        """(N, h, w) maps before relu and normalisation.

        ``images`` is the (N, H, W, C) batch the model sees, ``activations`` the
        layer's (N, h, w, K) output on it (a copy the method may change) and
        ``classes`` the (N,) class to explain.
        """
        raise NotImplementedError(f"{type(self).__name__} must define compute.")

    def layer_scores(self, activations, classes, *, images=None) -> np.ndarray:
        """(M,) class scores when the layer outputs ``activations[m]`` instead of its
        own output (e.g. with channel ``k`` set to 0 to ablate it).

        ``activations`` is an (M, h, w, K) array or a :class:`LazyBatch`; only the
        layers after the layer run on it. ``classes`` is an int or one per row, as in
        :meth:`~convviz.methods.Method.class_scores`. ``images`` (M rows, array or
        :class:`LazyBatch`: the image behind each row) is read only when the model
        has a connection around the layer (a skip from before it to after it);
        a method should pass it, lazily, to work on such models too.
        """
        inspector = self.inspector
        model, needs_image = inspector._tail_model(self.layer, logits=self.logits)
        run = inspector._inference("tail", (self.layer, self.logits), lambda: model)
        inputs = [activations]
        if needs_image:
            if images is None:
                raise InputError(
                    f"The model has a connection around {self.layer!r}: layer_scores needs the images too."
                )
            if len(images) != len(activations):
                raise InputError(f"{len(images)} images but {len(activations)} activations.")
            inputs = [images, activations]
        return self._pick(self._chunked(run, inputs, output=0), classes)

    def explain(self, images, *, class_index=None) -> Explanation:
        inspector = self.inspector
        batch = inspector.prepare(images)
        model = inspector._activation_and_score_model(self.layer, logits=self.logits)
        n_classes = self._score_shape(keras.tree.flatten(model.outputs)[1])[-1]
        class_weights(class_index, len(batch), n_classes)  # validates class_index
        run = inspector._inference("activation-scores", (self.layer, self.logits), lambda: model)
        parts = [run(np.asarray(batch[i : i + self.batch_size], np.float32))
                 for i in range(0, len(batch), self.batch_size)]
        acts = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts]).astype(np.float64)
        classes = self._classes(scores, class_index)
        maps = normalize_maps(np.asarray(self.compute(batch, acts, classes), np.float64))
        return self._result(maps, scores, class_index, batch)
