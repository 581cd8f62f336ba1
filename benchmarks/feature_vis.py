"""Feature visualization's Fourier and MaCo parametrisations vs their physical floor.

EfficientNet-Lite0 (ImageNet weights), 16 filters of ``block5c_expand_conv`` and
``top_conv`` at 224 x 224 (JAX and PyTorch: 8 filters, 10 steps, see FULL_SLOW). Timings,
interleaved in one process, warm-up (compilation) excluded, medians:

- floor: one compiled forward + backward pass of the model up to the layer over the
  batch a step really feeds it: the 16 images (``fft``, under one standard transform)
  or 16 x ``crops`` crops (``maco``), in the chunks ``convviz.filters`` uses;
- convviz: ``convviz.filters(..., parametrization=p)`` end to end (start variables,
  every step with the spectrum -> image map, the random transforms, the optimiser
  update, then the final forward pass and the display), run with ``steps`` steps and
  with one: a step's cost is the difference divided by ``steps - 1`` (what a run pays
  once is reported apart, and as the end-to-end ratio at this step count);

- parametrisation: the forward and backward pass of the spectrum -> image map and the
  transforms alone on the same batch (what convviz adds to the floor by design).

Reported per filter-step. Target: convviz <= 1.2x the floor.

    KERAS_BACKEND=tensorflow python benchmarks/feature_vis.py [--quick]
"""

from __future__ import annotations

import common  # first: it quiets TensorFlow's start-up logs
import keras
import numpy as np

from convviz import efficientnet, transforms
from convviz._autodiff import gradient_step
from convviz.filter_patterns import _head, chunk_size, filters
from convviz.inspector import Inspector

TARGET = 1.2
CROPS = 4
FULL = {"layers": ("block5c_expand_conv", "top_conv"), "n_filters": 16, "steps": 20, "size": 224}
# PyTorch runs Lite0's backward pass several times slower than TensorFlow on 2 CPU cores
# (and JAX did, 2-15x, before convviz traced depthwise convolutions as slices): 8 filters,
# 10 steps keep them to a few minutes.
FULL_SLOW = {**FULL, "n_filters": 8, "steps": 10}
MIN_STEPS_TO_DIFFERENCE = 8
QUICK = {"layers": ("block3b_expand_conv",), "n_filters": 2, "steps": 2, "size": 64}


def floor_pass(head, images, indices, chunk, copies):
    """Forward + backward over every (filter, copy) image, ``chunk`` filters at a time."""
    ops = keras.ops
    onehot = np.repeat(np.eye(head.output.shape[-1], dtype="float32")[indices], copies, axis=0)

    def objective(act, onehot):
        own = ops.einsum("bhwc,bc->bhw", act, onehot)
        return ops.sum(ops.mean(own[:, 2:-2, 2:-2], axis=(1, 2)))

    step = gradient_step(head, objective)
    size = chunk * copies

    def run():
        for i in range(0, len(images), size):
            _, grad, _ = step([images[i : i + size]], onehot[i : i + size])
            keras.ops.convert_to_numpy(grad)

    return run


def parametrisation_pass(p, n, chunk, copies, size):
    """Forward + backward of the variable -> transformed batch map alone, per chunk."""
    from convviz import parametrizations
    from convviz._autodiff import ascent_step

    h, w = size
    var = parametrizations.initial_parameters(p, 0, [(i,) for i in range(n)], (h, w, 3))
    maps = (
        transforms.crop_transforms(0, 1, copies, size)[0]
        if p == "maco"
        else transforms.standard_transforms(0, 1, size)[0]
    )
    identity = keras.Sequential([keras.Input((h, w, 3)), keras.layers.Identity()])

    def transform(x):
        image = parametrizations.parameters_to_images(p, x, pixel_range=(0, 255), size=size)
        return transforms.apply(image, maps, fill_value=127.5)

    step = ascent_step(identity, lambda y, x: (keras.ops.sum(y), ()), lambda x, g: g, transform)

    def run():
        for i in range(0, n, chunk):
            keras.ops.convert_to_numpy(step(var[i : i + chunk])[0])

    return run


def run(quick: bool, repeats: int) -> list[dict]:
    slow = keras.backend.backend() in ("jax", "torch")
    cfg = QUICK if quick else FULL_SLOW if slow else FULL
    n, steps, size = cfg["n_filters"], cfg["steps"], (cfg["size"], cfg["size"])
    model = efficientnet.efficientnet_lite0()
    inspector = Inspector.of(model)
    indices = np.arange(n)
    rng = np.random.default_rng(0)
    records = []
    for layer in cfg["layers"]:
        head, elements = _head(inspector, inspector.find_layer(layer), *size)
        for p, copies in (("fft", 1), ("maco", CROPS)):
            chunk = chunk_size(elements * copies, n)
            images = rng.uniform(0, 255, size=(n * copies, *size, 3)).astype("float32")
            matrix = transforms.standard_transforms(0, 1, size)[0]
            images = keras.ops.convert_to_numpy(transforms.apply(images, matrix, fill_value=127.5))
            floor = floor_pass(head, images, indices, chunk, copies)
            param = parametrisation_pass(p, n, chunk, copies, size)

            def ours(steps=steps, p=p, layer=layer):
                filters(model, layer, filters=indices, parametrization=p, steps=steps, size=size,
                        crops=CROPS, verbose=False)

            def one_step(p=p, layer=layer):
                ours(steps=1, p=p, layer=layer)

            floor(), one_step(), param()  # compile every chunk shape
            samples: dict = {}
            t = common.median_times(
                {"floor": floor, "convviz": ours, "convviz 1 step": one_step,
                 "parametrisation": param},
                repeats, warmup=0, samples=samples,
            )
            # A step's cost is the difference between a run of `steps` steps and a run of
            # one: what a run costs once (start variables, the final forward pass, the
            # display) drops out, and is reported on its own.
            # (--quick's 2 steps are too few for a difference: there a step is the run's
            # time over its steps, what a run pays once included.)
            if steps >= MIN_STEPS_TO_DIFFERENCE:
                per_step = (t["convviz"] - t["convviz 1 step"]) / (n * (steps - 1))
            else:
                per_step = t["convviz"] / (n * steps)
            per = {
                "floor per filter-step": t["floor"] / n,
                "convviz per filter-step": per_step,
                "parametrisation per filter-step": t["parametrisation"] / n,
            }
            if steps >= MIN_STEPS_TO_DIFFERENCE:
                per["convviz once per run, per filter"] = t["convviz 1 step"] / n - per_step
            ratio = per_step / per["floor per filter-step"]
            end_to_end = t["convviz"] / (n * steps) / per["floor per filter-step"]
            records.append(common.record(
                f"feature vis {p}", f"Lite0 {size[0]} {layer}", per,
                {"convviz/floor": ratio, f"end to end ({steps} steps)/floor": end_to_end},
                [common.target(f"{p} <= {TARGET}x floor per filter-step", ratio, TARGET)],
                filters=n, steps=steps, chunk=chunk, images_per_step=n * copies,
                totals=t, samples=samples,
            ))
    return records


if __name__ == "__main__":
    import sys

    from run import main

    main(["--only", "feature_vis", *sys.argv[1:]])
