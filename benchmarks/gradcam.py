"""Grad-CAM on a batch vs a plain compiled forward pass and vs the textbook loop.

The textbook loop is the keras.io / chapter recipe: a model up to the last conv layer
and a classifier model after it, then per image an eager gradient (TensorFlow
GradientTape, uncompiled ``jax.grad``, torch autograd) of the top class score with
respect to the conv output. It runs on ``textbook_images`` images and its time is
scaled to the whole batch (it is a per-image loop). Targets: convviz <= 1.2x forward,
>= 4x faster than the textbook.

    KERAS_BACKEND=torch python benchmarks/gradcam.py [--quick]   # = run.py --only gradcam
"""

from __future__ import annotations

import common  # first: it quiets TensorFlow's start-up logs
import keras
import numpy as np

import convviz

TARGET_FORWARD = 1.2
TARGET_TEXTBOOK = 4.0


def split_at(model, layer_name):
    """The textbook's two models: input -> conv output, conv output -> predictions.

    As in the chapter, the layers after ``layer_name`` are re-applied in order, which
    assumes they form a chain (true of the models benchmarked here).
    """
    conv_model = keras.Model(model.inputs[0], model.get_layer(layer_name).output)
    act = keras.Input(conv_model.output.shape[1:])
    x = act
    after = False
    for layer in model.layers:
        if after:
            x = layer(x)
        after = after or layer.name == layer_name
    return conv_model, keras.Model(act, x)


def textbook_gradient(classifier, act, top):
    """d score_top / d act for one image, eagerly, the way each backend's tutorial does."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(act)
            score = classifier(act)[:, top]
        return tape.gradient(score, act)
    if backend == "jax":
        import jax

        return jax.grad(lambda a: classifier(a)[0, top])(act)
    import torch

    act = act.detach().requires_grad_(True)
    score = classifier(act)[0, top]
    (grad,) = torch.autograd.grad(score, act)
    return grad


def textbook_loop(conv_model, classifier, batch):
    ops = keras.ops
    heatmaps = []
    for image in batch:
        act = conv_model(ops.convert_to_tensor(image[None]))
        scores = ops.convert_to_numpy(classifier(act))[0]
        # The chapter's question for a single sigmoid unit: evidence for the positive class.
        top = 0 if len(scores) == 1 else int(np.argmax(scores))
        grads = textbook_gradient(classifier, act, top)
        pooled = ops.mean(grads, axis=(0, 1, 2))
        heat = ops.relu(ops.sum(act[0] * pooled, axis=-1))
        heatmaps.append(ops.convert_to_numpy(heat / ops.maximum(ops.max(heat), 1e-12)))
    return np.stack(heatmaps)


def run(model, label, batch, repeats, textbook_images=None) -> list[dict]:
    layer = convviz.Inspector.of(model).last_conv_layer()
    conv_model, classifier = split_at(model, layer)
    few = batch[: textbook_images or len(batch)]
    samples: dict = {}
    t = common.median_times(
        {
            "forward": lambda: model.predict_on_batch(batch),
            "gradcam": lambda: convviz.gradcam(model, batch, layer=layer),
            "textbook": lambda: textbook_loop(conv_model, classifier, few),
        },
        repeats,
        samples=samples,
    )
    t["textbook"] *= len(batch) / len(few)
    # Same question as the textbook (the probability, not the logit; a single sigmoid
    # unit's positive class), so the heatmaps must agree.
    single = model.output.shape[-1] == 1
    ours = convviz.gradcam(model, few, layer=layer, logits=False, class_index=1 if single else None)
    agree = float(np.abs(ours - textbook_loop(conv_model, classifier, few)).max())
    over_forward = t["gradcam"] / t["forward"]
    speedup = t["textbook"] / t["gradcam"]
    return [
        common.record(
            "gradcam", label, t,
            # textbook/forward: what any method needing one batched forward pass could
            # gain at best over the per-image loop on this machine.
            {"gradcam/forward": over_forward, "textbook/gradcam": speedup,
             "textbook/forward": t["textbook"] / t["forward"]},
            [
                common.target(f"Grad-CAM <= {TARGET_FORWARD}x forward", over_forward, TARGET_FORWARD),
                common.target(f"Grad-CAM >= {TARGET_TEXTBOOK:g}x faster than textbook", speedup,
                       TARGET_TEXTBOOK, ">="),
            ],
            batch=len(batch), textbook_images=len(few), layer=layer, max_abs_diff=agree,
            samples=samples,
        )
    ]


if __name__ == "__main__":
    import sys

    from run import main

    main(["--only", "gradcam", *sys.argv[1:]])
