"""Activations of every conv and pooling layer vs a plain compiled forward pass.

``convviz.activations(model, batch)`` (numpy in, one numpy array per layer out) against
``model.predict_on_batch(batch)`` on the same batch, measured interleaved in one
process after a warm-up (compilation excluded), medians. Target: <= 1.15x forward.

    KERAS_BACKEND=jax python benchmarks/activations.py [--quick]   # = run.py --only activations
"""

from __future__ import annotations

import common  # first: it quiets TensorFlow's start-up logs
import keras
import numpy as np

import convviz

TARGET = 1.15


def run(model: keras.Model, label: str, batch: np.ndarray, repeats: int) -> list[dict]:
    layers = convviz.Inspector.of(model).feature_layers()
    samples: dict = {}
    t = common.median_times(
        {
            "forward": lambda: model.predict_on_batch(batch),
            "activations": lambda: convviz.activations(model, batch),
        },
        repeats,
        samples=samples,
    )
    ratio = t["activations"] / t["forward"]
    out_bytes = sum(a.nbytes for a in convviz.activations(model, batch[:1]).values()) * len(batch)
    return [
        common.record(
            "activations", label, t, {"activations/forward": ratio},
            [common.target(f"activations <= {TARGET}x forward", ratio, TARGET)],
            batch=len(batch), layers=len(layers), output_mib=out_bytes / 2**20, samples=samples,
        )
    ]


if __name__ == "__main__":
    import sys

    from run import main

    main(["--only", "activations", *sys.argv[1:]])
