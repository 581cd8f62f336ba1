"""Grad-CAM on a batch of 16 vs a plain compiled forward pass and vs the textbook loop.

The textbook loop is the keras.io / chapter recipe: a model up to the last conv layer
and a classifier model after it, then per image an eager gradient (TensorFlow
GradientTape, uncompiled jax.grad, torch autograd) of the top class score with respect
to the conv output. Targets: convviz <= 1.2x forward, >= 4x faster than the textbook.

    KERAS_BACKEND=torch python benchmarks/gradcam.py [--repeats 3] [--quick]
"""

from __future__ import annotations

import argparse

import keras  # noqa: I001
import numpy as np
from common import machine, median_times

import convviz
from convviz import models


def split_at(model, layer_name):
    """The textbook's two models: input -> conv output, conv output -> predictions."""
    conv_model = keras.Model(model.inputs, model.get_layer(layer_name).output)
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
    heatmaps = []
    for image in batch:
        x = keras.ops.convert_to_tensor(image[None])
        act = conv_model(x)
        top = int(keras.ops.argmax(classifier(act)[0]))
        grads = textbook_gradient(classifier, act, top)
        pooled = keras.ops.mean(grads, axis=(0, 1, 2))
        heat = keras.ops.relu(keras.ops.sum(act[0] * pooled, axis=-1))
        heatmaps.append(keras.ops.convert_to_numpy(heat / keras.ops.maximum(keras.ops.max(heat), 1e-12)))
    return np.stack(heatmaps)


def bench(name, model, layer, size, n, repeats):
    batch = np.random.default_rng(0).integers(0, 256, (n, *size, 3)).astype("float32")
    conv_model, classifier = split_at(model, layer)
    t = median_times(
        {
            "forward": lambda: model.predict_on_batch(batch),
            "convviz": lambda: convviz.gradcam(model, batch, layer=layer),
            "textbook": lambda: textbook_loop(conv_model, classifier, batch),
        },
        repeats,
    )
    # Same question as the textbook: the probability (not the logit) of the argmax
    # unit, which for a single sigmoid unit is always its positive class.
    single = model.output.shape[-1] == 1
    ours = convviz.gradcam(model, batch, layer=layer, logits=False, class_index=1 if single else None)
    theirs = textbook_loop(conv_model, classifier, batch)
    agree = float(np.abs(ours - theirs).max())
    print(
        f"{name:<28}{t['forward']:>9.3f}{t['convviz']:>9.3f}{t['textbook']:>10.3f}"
        f"{t['convviz'] / t['forward']:>10.2f}{t['textbook'] / t['convviz']:>11.1f}{agree:>10.1e}"
    )
    return t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small inputs, batch 2 (smoke test)")
    args = parser.parse_args(argv)
    n = 2 if args.quick else 16
    xsize = (71, 71) if args.quick else (299, 299)
    ssize = (96, 96) if args.quick else (180, 180)
    print(f"{machine()}; batch {n}, {args.repeats} repeats")
    print(f"{'model':<28}{'forward':>9}{'convviz':>9}{'textbook':>10}{'/forward':>10}{'textbook/':>11}{'max|diff|':>10}")
    small = models.small_convnet(input_shape=(*ssize, 3), compile=False)
    bench(f"small convnet {ssize[0]}", small, small.layers[-3].name, ssize, n, args.repeats)
    xception = keras.applications.Xception(weights=None, input_shape=(*xsize, 3))
    bench(f"Xception(weights=None) {xsize[0]}", xception, "block14_sepconv2_act", xsize, n, args.repeats)


if __name__ == "__main__":
    main()
