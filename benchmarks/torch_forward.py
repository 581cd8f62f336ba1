"""What Keras costs on the PyTorch backend (issue 19): EfficientNet-Lite0's forward pass
with the same ImageNet weights, 16 images at 224 x 224, timed side by side in one
process (interleaved, medians) as

- ``native``: the PyTorch Lite0 of ``efficientnet_lite_pytorch`` under
  ``torch.inference_mode``, as its users run it (NCHW, default memory format);
- ``native channels_last``: the same module and input in ``torch.channels_last``
  memory format;
- ``keras``: convviz's Keras Lite0 through ``convviz._autodiff.inference_function``
  (``torch.no_grad``; what activations, sparsity and the CAMs' forward passes run);
- ``keras inference_mode``: the same call under ``torch.inference_mode``;
- ``keras channels_first``: the same Keras model cloned with ``data_format=
  "channels_first"`` on every layer (``axis=1`` for batch normalisation) and the same
  weights, fed NCHW input: Keras then hands PyTorch its own layout, without the
  transposes around each convolution.

Then a ``torch.profiler`` table of one ``keras`` call, grouped by operator: where the
Keras forward pass spends the time that the native module does not.

    KERAS_BACKEND=torch python benchmarks/torch_forward.py [--batch 16] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cams  # noqa: E402
import common  # noqa: E402

from convviz import _autodiff, efficientnet  # noqa: E402


def channels_first(model: keras.Model) -> keras.Model:
    """A copy of a channels-last convnet (convolutions, pooling, batch normalisation,
    elementwise layers) that takes and computes NCHW, with the same weights (Keras
    kernels have the same shape in both layouts)."""

    def clone(layer):
        config = layer.get_config()
        if "data_format" in config:
            config["data_format"] = "channels_first"
        if isinstance(layer, keras.layers.BatchNormalization):
            config["axis"] = 1
        return layer.__class__.from_config(config)

    height, width, channels = model.input_shape[1:]
    copy = keras.models.clone_model(model, input_tensors=keras.Input((channels, height, width)),
                                    clone_function=clone)
    for ours, theirs in zip(copy.layers, model.layers):
        ours.set_weights(theirs.get_weights())
    return copy


def _profile(call, title: str, top: int) -> None:
    """Print one call's self CPU time by operator, largest first."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"\n{title}, self CPU time by operator (top {top}):")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        print(f"  {e.key:<40} {e.self_cpu_time_total / 1e3:8.1f} ms  {e.self_cpu_time_total / total:6.1%}"
              f"  {e.count:5d} calls")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if keras.backend.backend() != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch")
    import torch

    rng = np.random.default_rng(0)
    nhwc = rng.uniform(-1, 1, size=(args.batch, 224, 224, 3)).astype("float32")
    nchw = np.ascontiguousarray(nhwc.transpose(0, 3, 1, 2))
    net = cams._torch_lite0()
    x = torch.from_numpy(nchw)
    x_last = x.contiguous(memory_format=torch.channels_last)
    net_last = cams._torch_lite0().to(memory_format=torch.channels_last)
    # The Keras Lite0 without its rescaling: it takes what the PyTorch module takes.
    model = efficientnet.efficientnet_lite0(include_preprocessing=False, classifier_activation=None)
    first = channels_first(model)
    run, run_first = _autodiff.inference_function(model), _autodiff.inference_function(first)

    def native():
        with torch.inference_mode():
            return net(x)

    def native_last():
        with torch.inference_mode():
            return net_last(x_last)

    def keras_inference_mode():
        with torch.inference_mode():
            return run(nhwc)

    expected = native().numpy()
    for name, got in {"keras": run(nhwc)[0], "keras channels_first": run_first(nchw)[0]}.items():
        print(f"{name}: largest logit difference from the native module "
              f"{float(np.max(np.abs(np.asarray(got) - expected))):.2e}")
    calls = {
        "native": native, "native channels_last": native_last, "keras": lambda: run(nhwc),
        "keras inference_mode": keras_inference_mode, "keras channels_first": lambda: run_first(nchw),
    }
    times = common.median_times(calls, args.repeats, warmup=1)
    base = times["native"]
    print(f"\nLite0 forward, {args.batch} images at 224 x 224, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats}:")
    for name, t in times.items():
        print(f"  {name:<22} {t * 1e3:8.1f} ms  {t / base:5.2f}x native")

    _profile(lambda: run(nhwc), "keras forward", 12)
    _profile(native, "native forward", 8)
    return times


if __name__ == "__main__":
    main()
