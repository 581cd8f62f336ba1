"""convviz's benchmark suite on the current Keras backend, in one process and one run.

For the chapter's small convnet (180 x 180), VGG16 (weights=None, 180 x 180) and
Xception (weights=None, 299 x 299), each compared with a plain compiled forward pass
(``model.predict_on_batch``) on the same images:

- ``activations``: every conv and pooling layer's output (target <= 1.15x forward);
- ``gradcam``: a batch of 16 (<= 1.2x forward), and the textbook eager per-image loop
  (convviz >= 4x faster);
- ``sparsity``: over a stream of batches of 16 images (<= 1.2x forward over the same
  stream; 512 images for the small convnet, 64 for the others), and its peak memory
  for 2,000 images vs 64 (small convnet; <= 1.2x);
- ``cams``: the CAM family on EfficientNet-Lite0 with ImageNet weights (8 photos):
  gradient CAMs vs Grad-CAM (<= 1.1x), Score-CAM vs its forward passes (<= 1.15x),
  Ablation-CAM vs whole-model ablation (>= 10x faster); on PyTorch, side by side with
  pytorch-grad-cam (see ``cams.py``);
- ``attributions``: Integrated Gradients and occlusion on EfficientNet-Lite0 (4
  photos) vs their forward(+backward) passes (<= 1.15x), Integrated Gradients' peak
  memory with 200 vs 50 steps (<= 1.2x); on PyTorch, side by side with captum (<= 1.0x,
  see ``attributions.py``);
- ``metrics``: deletion+insertion of 16 photos' Grad-CAM maps on EfficientNet-Lite0 vs
  its (2 x steps - 1) x 16 forward passes (<= 1.1x), MuFidelity per image; on PyTorch,
  side by side with torchcam's DeletionInsertionMetric (see ``metrics.py``);
- ``streaming``: Grad-CAM of 2,000 images (small convnet, batches of 32) streamed to
  disk by ``convviz.explain_dataset`` vs the forward pass over the same stream
  (<= 1.3x), its peak memory for 2,000 images vs 64 (<= 1.2x), and on JAX two virtual
  devices vs one (see ``streaming.py``);
- ``filters``: 64 filters of Xception's ``block3_sepconv1`` at 200 x 200, timed over
  10 steps, per filter-step vs the compiled forward+backward floor (<= 1.15x) and vs
  the textbook one-filter-at-a-time compiled loop (no slower).

Warm-up calls are excluded, callables compared with each other are timed
interleaved, and medians are reported. Prints a table and writes JSON (with the
machine: CPU, cores, RAM, load average, backend and versions, date). ``--quick``
shrinks everything to a smoke test (CI checks that each benchmark ran and produced
finite numbers; no timing thresholds there).

    KERAS_BACKEND=jax python benchmarks/run.py [--quick] [--json PATH] [--only NAME ...]
    nox -s bench                 # all three backends, JSON in benchmarks/results/
    python benchmarks/report.py  # the docs' Performance page from those JSON files
"""

from __future__ import annotations

import argparse
import gc
import json
import pathlib
import sys
import time

import activations  # imports common first, which quiets TensorFlow's start-up logs
import attributions
import cams
import cases
import feature_vis
import filters
import gradcam
import keras
import metrics
import sparsity
import streaming
from common import finite_numbers, load_average, machine_info

BENCHMARKS = (
    "activations", "gradcam", "sparsity", "streaming", "filters", "feature_vis", "cams", "attributions", "metrics",
)
RESULTS = pathlib.Path(__file__).parent / "results"

FULL = {
    "batch": 16,  # activations, Grad-CAM and the sparsity stream's batches
    "repeats": 5,
    "textbook_images": 8,  # Grad-CAM's per-image loop, timed on 8 images, scaled to 16
    "stream": {"small": 512, "vgg16": 64, "xception": 64},
    "stream_repeats": 3,
    "memory_images": (64, 2000),
    "dataset": {"images": 2000, "batch": 32, "memory": (64, 2000)},
    # Timed over 10 steps: a step costs the same whatever the count (the chapter's 30
    # change the images, not the time per step), and JAX and PyTorch take 0.1-0.2 s per
    # filter-step for this layer on 2 cores.
    "filters": {"n_filters": 64, "textbook_filters": 8, "steps": 10, "size": 200},
    "filter_repeats": 3,
    "models": ("small", "vgg16", "xception"),
}
QUICK = {
    "batch": 2,
    "repeats": 1,
    "textbook_images": 2,
    "stream": {"small": 6, "vgg16": 4, "xception": 4},
    "stream_repeats": 1,
    "memory_images": (2, 8),
    "dataset": {"images": 8, "batch": 4, "memory": (4, 8)},
    "filters": {"n_filters": 3, "textbook_filters": 2, "steps": 2, "size": 71},
    "filter_repeats": 1,
    "models": ("small",),
}


def run_all(quick=False, only=BENCHMARKS, models=None, repeats=None, log=print) -> list[dict]:
    """Run the benchmarks; return their records (see ``common.record``)."""
    cfg = dict(QUICK if quick else FULL)
    if repeats is not None:
        cfg.update(repeats=repeats, stream_repeats=repeats, filter_repeats=repeats)
    records: list[dict] = []

    def done(new):
        for r in new:
            log(f"  {r['benchmark']:<16}{r['model']:<24}"
                + "  ".join(f"{k} {v:.2f}" for k, v in r["ratios"].items()))
        records.extend(new)

    for key in models or cfg["models"]:
        if not set(only) & {"activations", "gradcam", "sparsity", "streaming"}:
            break
        model, label = cases.build(key, quick)
        log(f"{label}: {model.count_params():,} parameters")
        batch = cases.images(model, cfg["batch"])
        if "activations" in only:
            done(activations.run(model, label, batch, cfg["repeats"]))
        if "gradcam" in only:
            done(gradcam.run(model, label, batch, cfg["repeats"], cfg["textbook_images"]))
        if "sparsity" in only:
            n = cfg["stream"][key]
            done(sparsity.run_time(model, label, n, cfg["batch"], cfg["stream_repeats"]))
            if key == "small":
                done(sparsity.run_memory(model, label, *cfg["memory_images"], cfg["batch"]))
        if "streaming" in only and key == "small":
            d = cfg["dataset"]
            done(streaming.run_time(model, label, d["images"], d["batch"], cfg["stream_repeats"]))
            done(streaming.run_memory(model, label, *d["memory"], d["batch"]))
            done(streaming.run_devices(d["images"], d["batch"], cfg["stream_repeats"], quick))
        del model, batch
        keras.utils.clear_session()
        gc.collect()
    if "filters" in only:
        done(filters.run(cfg["filter_repeats"], **cfg["filters"]))
        keras.utils.clear_session()
        gc.collect()
    if "feature_vis" in only:
        done(feature_vis.run(quick, cfg["repeats"]))
        keras.utils.clear_session()
        gc.collect()
    if "cams" in only:
        done(cams.run(quick, cfg["repeats"]))
        keras.utils.clear_session()
        gc.collect()
    if "attributions" in only:
        done(attributions.run(quick, cfg["repeats"]))
        keras.utils.clear_session()
        gc.collect()
    if "metrics" in only:
        done(metrics.run(quick, cfg["repeats"]))
        keras.utils.clear_session()
        gc.collect()
    return records


def _fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(records: list[dict]) -> str:
    """The results as a plain-text table: one row per target, the median times below."""
    head = f"{'benchmark':<16}{'model':<30}{'target':<48}{'value':>7}  met"
    lines = [head, "-" * len(head)]
    for r in records:
        for i, t in enumerate(r["targets"]):
            first = i == 0
            lines.append(
                f"{r['benchmark'] if first else '':<16}{r['model'] if first else '':<30}"
                f"{t['name']:<48}{t['value']:>7.2f}  {'yes' if t['met'] else 'NO'}"
            )
        if r["times"]:
            lines.append(f"{'':<16}{'':<30}" + ", ".join(
                f"{k} {_fmt_time(v)}" for k, v in r["times"].items()))
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke test)")
    parser.add_argument(
        "--json", type=pathlib.Path, default=None,
        help="where to write the results (default: benchmarks/results/<backend>.json; "
        "--quick writes none unless given)",
    )
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, default=BENCHMARKS)
    parser.add_argument("--models", nargs="+", choices=tuple(cases.CASES), default=None)
    parser.add_argument("--repeats", type=int, default=None, help="override every repeat count")
    args = parser.parse_args(argv)

    backend = keras.backend.backend()
    info = machine_info()
    print(f"convviz benchmarks, {backend}, {'quick' if args.quick else 'full'}: {info['cpu']}, "
          f"{info['cores']} cores, {info['ram_gib']} GiB, load {info['load_average']}")
    start = time.perf_counter()
    records = run_all(args.quick, args.only, args.models, args.repeats)
    payload = {
        "backend": backend,
        "quick": args.quick,
        "machine": info,
        "load_average_end": load_average(),
        "wall_seconds": time.perf_counter() - start,
        "results": records,
    }
    print()
    print(table(records))
    print(f"\nload average at the end: {payload['load_average_end']}; "
          f"{payload['wall_seconds']:.0f} s in all")
    if not finite_numbers(records):
        sys.exit("Some benchmark produced a non-finite number.")
    path = args.json or (None if args.quick else RESULTS / f"{backend}.json")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1) + "\n")
        print(f"written: {path}")
    return payload


if __name__ == "__main__":
    main()
