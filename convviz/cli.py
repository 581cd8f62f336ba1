"""The ``convviz`` command line."""

from __future__ import annotations

import argparse
import os
import sys


def _demo(args) -> int:
    """Offline end to end: data, training, then what the trained convnet learned."""
    import numpy as np
    import skimage.data

    import convviz
    from convviz import data, models, training

    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    dataset = data.ensure_offline_dataset(args.data)
    print(f"Offline shapes dataset: {dataset}")
    splits = data.load_datasets(dataset, image_size=(180, 180), batch_size=32)
    result = training.fit(
        models.small_convnet(), splits.train, splits.validation, epochs=args.epochs,
        checkpoint_path=os.path.join(out, "small_convnet.keras"), test_ds=splits.test,
    )
    model = result.model
    training.plot_history(result.history, save=os.path.join(out, "history.png"))

    acts = convviz.activations(model, skimage.data.chelsea())
    convviz.plot.activations(acts, save=os.path.join(out, "activations_chelsea.png"))

    images = np.concatenate([batch for batch, _ in splits.test.take(1)])[:8]
    explained = convviz.Inspector(model).gradcam(images)
    names = splits.test.class_names
    titles = [
        f"{names[c]} p={p[0] if c == 1 else 1 - p[0]:.2f}"
        for c, p in zip(explained.class_index, explained.predictions)
    ]
    convviz.plot.gradcam(images, explained.heatmaps, titles=titles, save=os.path.join(out, "gradcam.png"))

    table = convviz.sparsity(model, splits.test)
    table.to_csv(os.path.join(out, "sparsity.csv"))
    table.plot(save=os.path.join(out, "sparsity.png"))
    print(table)
    print(
        f"\nTest accuracy {result.test_accuracy:.1%} (best epoch {result.best_epoch}).\n"
        f"Model:   {result.checkpoint_path}\nCurves:  {os.path.join(out, 'history.png')}\n"
        f"Figures: activations_chelsea.png, gradcam.png, sparsity.png in {out}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convviz",
        description="See what a Keras 3 convnet learned: feature maps, filters, Grad-CAM, sparsity.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="train the chapter's small convnet on offline data and draw what it learned",
        description="Generate convviz's offline shapes dataset (if absent), train the chapter's "
        "small convnet on it (best checkpoint on val_loss), and write its training curves, the "
        "activation grids of skimage.data.chelsea(), Grad-CAM overlays of test images and the "
        "sparsity curve.",
    )
    demo.add_argument("--out", default="convviz_demo", help="output folder (default: %(default)s)")
    demo.add_argument("--epochs", type=int, default=10, help="training epochs (default: %(default)s)")
    demo.add_argument(
        "--data", default=None,
        help="dataset folder (default: $CONVVIZ_DATA or the Keras cache's datasets/convviz_shapes)",
    )
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
