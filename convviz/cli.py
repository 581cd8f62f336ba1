"""The ``convviz`` command line."""

from __future__ import annotations

import argparse
import os
import sys


def _demo(args) -> int:
    import skimage.data

    import convviz
    from convviz import models

    os.makedirs(args.out, exist_ok=True)
    model = models.small_convnet()
    image = skimage.data.chelsea()
    acts = convviz.activations(model, image)
    path = os.path.join(args.out, "activations_chelsea.png")
    convviz.plot.activations(acts, save=path)
    print(f"Activation grids of {len(acts)} layers of the chapter's small convnet "
          f"(untrained) for skimage.data.chelsea() written to {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convviz",
        description="See what a Keras 3 convnet learned: feature maps, filters, Grad-CAM, sparsity.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="run the end-to-end example on offline data and write its figures",
        description="Build the chapter's small convnet and write an activation-grid PNG "
        "for skimage.data.chelsea().",
    )
    demo.add_argument("--out", default="convviz_demo", help="output folder (default: %(default)s)")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
