"""How good are the filter patterns? pixel vs fft vs MaCo on EfficientNet-Lite0.

For 16 filters of three layers at increasing depth and the three parametrisations, with
the same number of steps for each, this measures (``convviz.feature_visualization``):

- robust activation: the filter's mean activation on its pattern averaged over 32
  random shifts (+-8 px), rescalings (0.9-1.1) and rotations (+-10 degrees), and its
  ratio to the pixel parametrisation's;
- selectivity: how many patterns excite their own filter more than the other 15
  patterns do on average;
- the slope of the radially averaged log amplitude spectrum (natural photos: -1 to -2);

and, for 10 ImageNet classes, the fraction of 10 random crops/rescales of each class
visualisation that Lite0 classifies as its class. It writes
``benchmarks/results/feature_measures_<backend>.json`` and, with ``--figures DIR``, one
PNG per layer (rows: pixel, fft, maco) and one of the class visualisations.

    KERAS_BACKEND=tensorflow python benchmarks/feature_measures.py [--steps 256]
        [--filters 16] [--figures docs/_static/feature_vis] [--quick]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import common  # first: it quiets TensorFlow's start-up logs
import keras
import numpy as np

import convviz
from convviz import efficientnet
from convviz.feature_visualization import class_consistency, robust_activation, selectivity
from convviz.objectives import Objective
from convviz.parametrizations import spectral_slope

LAYERS = ("block3b_expand_conv", "block5c_expand_conv", "top_conv")
PARAMETRIZATIONS = ("pixel", "fft", "maco")
# Ten easy-to-name ImageNet classes: goldfish, great white shark, tree frog, flamingo,
# tabby cat, monarch, daisy, lemon, volcano, coffee mug.
CLASSES = (1, 2, 31, 130, 281, 323, 985, 951, 980, 504)
RESULTS = pathlib.Path(__file__).parent / "results"


def measure_layer(model, layer, n_filters, steps, log, size=224):
    rows, patterns = [], {}
    for p in PARAMETRIZATIONS:
        start = time.perf_counter()
        result = convviz.filters(
            model, layer, filters=range(n_filters), parametrization=p, steps=steps,
            size=size, verbose=False,
        )
        seconds = time.perf_counter() - start
        patterns[p] = result
        robust = robust_activation(model, layer, result)
        select = selectivity(model, layer, result)
        slopes = spectral_slope(result.raw)
        rows.append({
            "layer": layer,
            "parametrization": p,
            "steps": steps,
            "filters": n_filters,
            "size": size,
            "seconds": seconds,
            "mean_activation": float(np.mean(result.losses)),
            "robust_activation": float(np.mean(robust)),
            "selective": int((select > 0).sum()),
            "spectral_slope": float(np.median(slopes)),
            "pixel_min": float(result.raw.min()),
            "pixel_max": float(result.raw.max()),
        })
        log(f"  {layer:<22}{p:<7}{seconds:7.1f} s  robust {np.mean(robust):8.3f}  "
            f"selective {(select > 0).sum()}/{n_filters}  slope {np.median(slopes):6.2f}")
    pixel = rows[0]["robust_activation"]
    for r in rows:
        r["robust_vs_pixel"] = r["robust_activation"] / pixel if pixel > 0 else float("nan")
    return rows, patterns


def measure_classes(model, steps, parametrization, log):
    start = time.perf_counter()
    result = convviz.visualize(
        model, Objective.classes(CLASSES), parametrization=parametrization, steps=steps,
        verbose=False,
    )
    hits = class_consistency(model, result)
    seconds = time.perf_counter() - start
    log(f"  classes {parametrization:<7}{seconds:7.1f} s  classified as their class on "
        f"{np.round(hits * 10).astype(int).tolist()} of 10 crops")
    return {
        "parametrization": parametrization,
        "steps": steps,
        "classes": list(CLASSES),
        "consistency": hits.tolist(),
        "at_least_8_of_10": int((hits >= 0.8).sum()),
        "seconds": seconds,
    }, result


def figure(patterns: dict, title: str, path: pathlib.Path, n_show: int = 8):
    n_show = min(n_show, *(len(r.images) for r in patterns.values()))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(patterns), n_show, figsize=(1.6 * n_show, 1.75 * len(patterns)))
    axes = np.atleast_2d(axes)
    for row, (name, result) in enumerate(patterns.items()):
        for col in range(n_show):
            ax = axes[row, col]
            ax.imshow(result.images[col])
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(name)
            if row == 0:
                ax.set_title(f"{result.filter_indices[col]}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def render_rst(path: pathlib.Path) -> str:
    """The filters page's measured section, from the JSON results of every backend."""
    full = json.loads((RESULTS / "feature_measures_tensorflow.json").read_text())
    lines = [
        ".. This file is written by benchmarks/feature_measures.py --rst; do not edit.",
        "",
    ]
    steps = full["layers"][0]["steps"]
    n = full["layers"][0]["filters"]
    for layer in dict.fromkeys(r["layer"] for r in full["layers"]):
        rows = [r for r in full["layers"] if r["layer"] == layer]
        lines += [
            f".. figure:: /_static/feature_vis/{layer}_tensorflow.png",
            f"   :alt: Filter patterns of {layer}: pixel, fft and maco",
            "",
            f"   ``{layer}``, filters 0-7 of the {n} measured, {steps} steps each (TensorFlow).",
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "",
            "   * - parametrisation",
            "     - robust activation (x pixel)",
            f"     - selective (of {n})",
            "     - spectral slope",
        ]
        for r in rows:
            lines += [
                f"   * - ``{r['parametrization']}``",
                f"     - {r['robust_activation']:.2f} ({r['robust_vs_pixel']:.2f}x)",
                f"     - {r['selective']}",
                f"     - {r['spectral_slope']:.2f}",
            ]
        lines.append("")
    for c in full["classes"]:
        hits = [round(h * 10) for h in c["consistency"]]
        lines += [
            f".. figure:: /_static/feature_vis/classes_{c['parametrization']}_tensorflow.png",
            f"   :alt: Class visualisations ({c['parametrization']})",
            "",
            f"   Class visualisations ({c['parametrization']}, {c['steps']} steps) of ImageNet "
            f"classes {', '.join(map(str, c['classes']))}: classified as their class on "
            f"{', '.join(map(str, hits))} of 10 random crops/rescales "
            f"({c['at_least_8_of_10']} of {len(hits)} classes on at least 8).",
            "",
        ]
    small = sorted(RESULTS.glob("feature_measures_*_small.json"))
    if small:
        runs = [json.loads(p.read_text()) for p in small]
        first = runs[0]["layers"][0]
        lines += [
            f"The same measures on every backend, smaller ({first['filters']} filters, "
            f"{first['steps']} steps, {first['size']} x {first['size']}; selectivity out of "
            f"{first['filters']}):",
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "",
            "   * - layer",
            "     - parametrisation",
            *[f"     - {run['backend']}" for run in runs],
        ]
        cells = [{(q["layer"], q["parametrization"]): q for q in run["layers"]} for run in runs]
        order = max(runs, key=lambda run: len(run["layers"]))["layers"]
        for r in order:
            key = (r["layer"], r["parametrization"])
            lines += [f"   * - ``{key[0]}``", f"     - ``{key[1]}``"]
            for cell in cells:
                q = cell.get(key)
                lines.append(
                    "     - not measured" if q is None else
                    f"     - {q['robust_vs_pixel']:.2f}x, {q['selective']} selective, "
                    f"slope {q['spectral_slope']:.2f}"
                )
        lines.append("")
        lines += [f"{run['backend']}: {run['note']}." for run in runs if run.get("note")]
        lines.append("")
    text = "\n".join(lines)
    path.write_text(text)
    return text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--layers", nargs="*", default=list(LAYERS))
    parser.add_argument("--size", type=int, default=224, help="pattern size (the classes: 224)")
    parser.add_argument("--json", type=pathlib.Path, help="default: results/feature_measures_<backend>.json")
    parser.add_argument("--figures", type=pathlib.Path)
    parser.add_argument("--no-classes", action="store_true")
    parser.add_argument("--save", type=pathlib.Path, help="folder for the raw patterns (.npz)")
    parser.add_argument("--quick", action="store_true", help="4 filters, 8 steps, one layer")
    parser.add_argument("--rst", type=pathlib.Path,
                        help="only write the docs' section from the saved results to this file")
    args = parser.parse_args()
    if args.rst:
        render_rst(args.rst)
        return
    if args.quick:
        args.steps, args.filters, args.layers = 8, 4, ["block3b_expand_conv"]
    backend = keras.backend.backend()
    model = efficientnet.efficientnet_lite0()
    out = {"backend": backend, "machine": common.machine_info(), "layers": [], "classes": []}
    for layer in args.layers:
        rows, patterns = measure_layer(model, layer, args.filters, args.steps, print, args.size)
        out["layers"].extend(rows)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(args.save / f"{layer}_{backend}.npz",
                                **{p: r.raw for p, r in patterns.items()})
        if args.figures:
            figure(patterns, f"Lite0 {layer}: {args.steps} steps each",
                   args.figures / f"{layer}_{backend}.png")
    if not args.no_classes:
        for p in ("fft", "maco"):
            row, result = measure_classes(model, args.steps, p, print)
            out["classes"].append(row)
            if args.figures:
                figure({p: result}, f"Lite0 class visualisations ({p})",
                       args.figures / f"classes_{p}_{backend}.png", n_show=len(CLASSES))
    path = args.json or RESULTS / f"feature_measures_{backend}.json"
    if not args.quick:
        path.write_text(json.dumps(out, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
