"""Filter patterns: convviz vs the physical floor and vs the textbook one-filter loop.

The chapter's figure: filters of Xception's ``block3_sepconv1`` (weights=None, so
offline), gradient ascent on 200 x 200 images (the chapter: 30 steps; ``run.py`` times
10, the cost per step being the same). Three timings, measured interleaved in one
process, warm-up (compilation) excluded, medians:

- floor: one compiled forward + backward pass of the truncated extractor over all the
  filters' images, in chunks of the size convviz picks (the least any gradient-ascent
  step can cost at that batch size);
- convviz: ``convviz.filters`` end to end (start images, all steps, final loss,
  display), batched over filters in memory-bounded chunks;
- textbook: the keras.io / chapter loop, one filter at a time, a compiled step per
  iteration (``tf.function``; ``jax.jit``; eager autograd on PyTorch). The filter index
  is passed as a tensor so the textbook step does not retrace per filter.

Reported per filter-step (one image, one step); the floor's one pass stands for one
step of every filter. Targets: convviz <= 1.15x the floor, and no slower than the
textbook. ``rel_diff_vs_textbook`` checks that convviz and the textbook loop produce
the same images (relative L2 difference of the final images).

    KERAS_BACKEND=jax python benchmarks/filters.py [--quick]   # = run.py --only filters
"""

from __future__ import annotations

import common  # first: it quiets TensorFlow's start-up logs
import keras
import numpy as np

from convviz._autodiff import gradient_step
from convviz.filter_patterns import _head, chunk_size, filters, start_images
from convviz.inspector import Inspector

LAYER = "block3_sepconv1"
TARGET_FLOOR = 1.15
PIXEL_RANGE = (-1.0, 1.0)  # Xception's preprocessing: the model itself expects [-1, 1]


def floor_step(extractor, images, indices, chunk):
    """One compiled forward + backward pass over every image, ``chunk`` images at a time
    (convviz's own chunk size, so both pay the same for the batch size), nothing else."""
    ops = keras.ops
    onehot = np.eye(extractor.output.shape[-1], dtype="float32")[indices]

    def objective(act, onehot):
        # The cheapest form of the loss: pick each image's channel, then crop and average.
        own = ops.einsum("bhwc,bc->bhw", act, onehot)
        return ops.sum(ops.mean(own[:, 2:-2, 2:-2], axis=(1, 2)))

    step = gradient_step(extractor, objective)

    def run():
        for i in range(0, len(images), chunk):
            _, grad, _ = step([images[i : i + chunk]], onehot[i : i + chunk])
            keras.ops.convert_to_numpy(grad)  # waits for asynchronous backends

    return run


def convviz_chunk(model, size, n_filters) -> int:
    """The chunk size ``convviz.filters`` picks for this layer, size and filter count."""
    inspector = Inspector.of(model)
    _, elements = _head(inspector, inspector.find_layer(LAYER), *size)
    return chunk_size(elements, n_filters)


def textbook_step(extractor):
    """``step(img, filter_index, learning_rate) -> (loss, img)``, as each backend's tutorial."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def step(img, filter_index, learning_rate):
            with tf.GradientTape() as tape:
                tape.watch(img)
                loss = tf.reduce_mean(extractor(img)[:, 2:-2, 2:-2, filter_index])
            grads = tf.math.l2_normalize(tape.gradient(loss, img))
            return loss, img + learning_rate * grads

        return lambda img, f, lr: step(tf.constant(img), tf.constant(f), tf.constant(lr))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def loss_fn(img, filter_index, trainable, non_trainable):
            act, _ = extractor.stateless_call(trainable, non_trainable, img)
            return jnp.mean(act[:, 2:-2, 2:-2, filter_index])

        @jax.jit
        def jit_step(img, filter_index, learning_rate, trainable, non_trainable):
            loss, grads = jax.value_and_grad(loss_fn)(img, filter_index, trainable, non_trainable)
            grads = grads * jax.lax.rsqrt(jnp.maximum(jnp.sum(grads**2), 1e-12))
            return loss, img + learning_rate * grads

        def run(img, f, lr):
            # Fetched per call: Keras may replace the variables' buffers between calls.
            trainable = [v.value for v in extractor.trainable_variables]
            non_trainable = [v.value for v in extractor.non_trainable_variables]
            return jit_step(img, np.int32(f), np.float32(lr), trainable, non_trainable)

        return run
    import torch

    def torch_step(img, filter_index, learning_rate):
        img = torch.as_tensor(img).detach().requires_grad_(True)
        loss = torch.mean(extractor(img)[:, 2:-2, 2:-2, filter_index])
        (grads,) = torch.autograd.grad(loss, img)
        with torch.no_grad():
            grads = grads / torch.clamp(torch.linalg.vector_norm(grads), min=1e-6)
            return loss.detach(), img.detach() + learning_rate * grads

    return torch_step


def textbook_loop(step, indices, steps, size, learning_rate):
    lo, hi = PIXEL_RANGE
    out = []
    for f in indices:
        img = start_images(0, [f], (*size, 3), pixel_range=PIXEL_RANGE)
        for _ in range(steps):
            _, img = step(img, int(f), learning_rate * (hi - lo))
        out.append(keras.ops.convert_to_numpy(img)[0])
    return np.stack(out)


def run(repeats, n_filters=64, textbook_filters=8, steps=30, size=200) -> list[dict]:
    size = (size, size)
    indices = np.arange(n_filters)
    book = indices[:textbook_filters]
    lr = 10.0
    keras.utils.set_random_seed(0)
    model = keras.applications.Xception(weights=None, include_top=False)
    extractor = keras.Model(model.inputs[0], model.get_layer(LAYER).output)
    chunk = convviz_chunk(model, size, n_filters)
    floor = floor_step(extractor, start_images(0, indices, (*size, 3), pixel_range=PIXEL_RANGE), indices, chunk)
    step = textbook_step(extractor)
    kwargs = dict(size=size, pixel_range=PIXEL_RANGE, learning_rate=lr, verbose=False)

    last = {}  # the latest results, compared after the timing (no extra runs)

    def ours(steps=steps):
        last["convviz"] = filters(model, LAYER, filters=indices, steps=steps, **kwargs)

    def theirs():
        last["textbook"] = textbook_loop(step, book, steps, size, lr)

    # Warm-up: compile every chunk shape and each step once (one step is enough).
    floor(), ours(steps=1), textbook_loop(step, book[:1], 1, size, lr)
    samples: dict = {}
    t = common.median_times(
        {"floor": floor, "convviz": ours, "textbook": theirs},
        repeats,
        warmup=0,
        samples=samples,
    )
    per = {
        "floor": t["floor"] / n_filters,
        "convviz": t["convviz"] / (n_filters * steps),
        "textbook": t["textbook"] / (len(book) * steps),
    }
    result, reference = last["convviz"], last["textbook"]
    start = start_images(0, book, (*size, 3), pixel_range=PIXEL_RANGE)
    diff = np.linalg.norm((result.raw[: len(book)] - reference).reshape(len(book), -1), axis=1)
    moved = np.linalg.norm((reference - start).reshape(len(book), -1), axis=1)
    over_floor = per["convviz"] / per["floor"]
    textbook_ratio = per["textbook"] / per["convviz"]
    return [
        common.record(
            "filters", f"Xception {size[0]} {LAYER}",
            {f"{k} per filter-step": v for k, v in per.items()},
            {"convviz/floor": over_floor, "textbook/convviz": textbook_ratio},
            [
                common.target(f"filters <= {TARGET_FLOOR}x floor per filter-step", over_floor, TARGET_FLOOR),
                common.target("filters no slower than textbook", textbook_ratio, 1.0, ">="),
            ],
            filters=n_filters, chunk=chunk, textbook_filters=len(book), steps=steps,
            rel_diff_vs_textbook=float(np.max(diff / np.maximum(moved, 1e-12))),
            totals=t, samples=samples,
        )
    ]


if __name__ == "__main__":
    import sys

    from run import main

    main(["--only", "filters", *sys.argv[1:]])
