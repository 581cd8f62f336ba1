"""The ``convviz`` command line."""

from __future__ import annotations

import argparse
import os
import sys

from convviz._validation import output_argument


def _demo(args) -> int:
    """Offline end to end: data, training, then the galleries of what the convnets learned."""
    import html

    import numpy as np

    import convviz
    from convviz import data, models, training
    from convviz._files import check_out_dir
    from convviz._validation import check_positive_int

    check_positive_int(args.epochs, "--epochs")
    if args.filter_steps is not None:
        check_positive_int(args.filter_steps, "--filter-steps")
    out = check_out_dir(args.out, overwrite=args.overwrite)
    # An existing folder is the user's data, used as it is (any size, or the Kaggle
    # subsets); otherwise convviz generates its offline dataset there.
    if args.data is not None and os.path.isdir(args.data):
        dataset = args.data
    else:
        dataset = data.ensure_offline_dataset(args.data)
    print(f"Offline shapes dataset: {dataset}")
    splits = data.load_datasets(dataset, image_size=(180, 180), batch_size=32)
    out.mkdir(parents=True, exist_ok=True)
    result = training.fit(
        models.small_convnet(), splits.train, splits.validation, epochs=args.epochs,
        checkpoint_path=str(out / "small_convnet.keras"), test_ds=splits.test,
    )
    training.plot_history(result.history, save=str(out / "history.png"))

    names = splits.test.class_names
    # Two test images of each class, so both sides of the sigmoid are explained.
    chosen: dict[int, list] = {c: [] for c in range(len(names))}
    for batch, labels in splits.test:
        for image, label in zip(np.asarray(batch), np.asarray(labels).ravel()):
            if len(chosen[int(label)]) < 2:
                chosen[int(label)].append(image)
        if all(len(v) == 2 for v in chosen.values()):
            break
    small = convviz.gallery(
        result.model, [im for c in chosen for im in chosen[c]], out / "gallery", class_names=names,
        image_names=[f"test {names[c]} {k + 1}" for c in chosen for k in range(len(chosen[c]))],
        sparsity_data=splits.test, filter_steps=args.filter_steps, overwrite=True,
    )
    links = [("gallery/index.html", f"The small convnet trained on the shapes data ({result.test_accuracy:.1%} test accuracy)")]
    try:
        convviz.gallery(
            "efficientnet_lite0", ["skimage:chelsea", "skimage:coffee"], out / "lite0_gallery",
            filter_steps=args.filter_steps, overwrite=True,
        )
        links.append(("lite0_gallery/index.html", "EfficientNet-Lite0 with ImageNet weights on scikit-image photos"))
    except convviz.errors.WeightsUnavailableError as err:
        print(f"Skipping the EfficientNet-Lite0 gallery: {err}")
    items = "".join(f'<li><a href="{href}">{html.escape(text)}</a></li>' for href, text in links)
    (out / "index.html").write_text(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>convviz demo</title></head>"
        f"<body><h1>convviz demo</h1><ul>{items}</ul><h2>Training</h2>"
        "<img src=\"history.png\" alt=\"training curves\" style=\"max-width:100%\"></body></html>\n",
        encoding="utf-8",
    )
    print(
        f"\nTest accuracy {result.test_accuracy:.1%} (best epoch {result.best_epoch}).\n"
        f"Model:     {result.checkpoint_path}\nGalleries: {out / 'index.html'} "
        f"({len(small.figures)} figures for the small convnet)"
    )
    return 0


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _gallery(args) -> int:
    """Every figure for a model and some images, with an index.html."""
    import convviz

    result = convviz.gallery(
        _model(args), args.images, args.out,
        kinds=_names(args.kinds), layers=_names(args.layers), filter_layers=_names(args.filter_layers),
        filters=args.filters, filter_steps=args.filter_steps,
        filter_parametrization=args.filter_parametrization, max_channels=args.max_channels,
        cam_layer=args.cam_layer, class_names=_names(args.class_names), output=output_argument(args.output),
        overwrite=args.overwrite, verbose=not args.quiet,
    )
    print(result.index)
    return 0


def _model(args):
    """MODEL as the API takes it: a file loaded here when --no-safe-mode asks."""
    if args.safe_mode or not os.path.isfile(args.model):
        return args.model
    from convviz.inspector import load_model

    return load_model(args.model, safe_mode=False)


def _evaluate(args) -> int:
    """Every method judged by every metric on some images: CSV tables, figures, a page."""
    import convviz
    from convviz import evaluation
    from convviz._files import check_out_dir
    from convviz.methods import LayerMethod, get_method
    from convviz.sources import open_inputs

    # Everything is checked before anything is computed, and written only at the end.
    target = check_out_dir(args.out, overwrite=args.overwrite)
    methods, metrics = (_names(args.methods) or ["gradcam"]), _names(args.metrics)
    methods = evaluation._check_methods("all" if methods == ["all"] else methods)
    metrics = "all" if metrics == ["all"] else metrics
    evaluation._check_metrics(metrics, boxes=args.boxes is not None)
    method_options = evaluation.parse_options(args.method_option, what="--method-option")
    metric_options = evaluation.parse_options(args.metric_option, what="--metric-option")
    if args.cam_layer is not None:
        for name in methods:
            if issubclass(get_method(name), LayerMethod):
                method_options.setdefault(name, {}).setdefault("layer", args.cam_layer)
    class_index = _class_index(args.class_index)
    model, images, names, _ = open_inputs(args.model, args.images, safe_mode=args.safe_mode)
    boxes = None
    if args.boxes is not None:
        size = convviz.Inspector.of(model).input_shape[:2]
        boxes = evaluation.read_boxes(args.boxes, names=names, sizes=[im.shape[:2] for im in images], size=size)
    table = convviz.evaluate(
        model, images, methods=methods, metrics=metrics, boxes=boxes, class_index=class_index,
        method_options=method_options, metric_options=metric_options, image_names=names, seed=args.seed,
        bootstrap=args.bootstrap, output=output_argument(args.output), verbose=not args.quiet,
    )
    try:
        index = table.report(target, overwrite=args.overwrite)
    except convviz.errors.OutputError:
        raise
    except OSError as err:
        raise convviz.errors.OutputError(f"Cannot write {err.filename or target}: {err.strerror or err}.") from err
    print(index)
    return 0


def _class_index(text: str | None):
    """``--class-index``: None, one class for all images, or one per image."""
    from convviz.errors import InputError

    if text is None:
        return None
    try:
        classes = [int(c) for c in _names(text)]
    except ValueError as err:
        raise InputError(f"--class-index takes integers, got {text!r}.") from err
    return classes[0] if len(classes) == 1 else classes


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, ``convviz <command>: error:
    ...`` (what ``main`` prints for every convviz error), exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="convviz",
        description="See what a Keras 3 convnet learned: feature maps, filters, Grad-CAM, sparsity.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    demo = sub.add_parser(
        "demo",
        help="train the chapter's small convnet on offline data and draw what it learned",
        description="Generate convviz's offline shapes dataset (if absent), train the chapter's "
        "small convnet on it (best checkpoint on val_loss), and write its training curves and "
        "its gallery (activation grids, filter patterns, Grad-CAM on test images of both classes, "
        "sparsity over the test set) to OUT/gallery; with convviz[lite0] installed, also the "
        "gallery of the ImageNet-pretrained EfficientNet-Lite0 on skimage's chelsea and coffee "
        "photos (OUT/lite0_gallery). OUT/index.html links them.",
    )
    demo.add_argument("--out", default="convviz_demo", help="output folder (default: %(default)s)")
    demo.add_argument("--overwrite", action="store_true", help="reuse a non-empty output folder")
    demo.add_argument(
        "--filter-steps", type=int, default=None, metavar="N",
        help="optimisation steps per filter pattern (default: 30 for the chapter's pixel "
        "ascent, 128 for the Fourier parametrisation of deeper layers)",
    )
    demo.add_argument("--epochs", type=int, default=10, help="training epochs (default: %(default)s)")
    demo.add_argument(
        "--data", default=None,
        help="an existing dataset folder with train/validation/test subfolders (used as it is), or "
        "where to generate the offline dataset (default: $CONVVIZ_DATA or the Keras cache's "
        "datasets/convviz_shapes)",
    )
    demo.set_defaults(func=_demo)

    from convviz.galleries import DEFAULT_KINDS, kinds
    from convviz.methods import get_method, method_names
    from convviz.sources import BUILTIN_MODELS

    builtins = "; ".join(f"{name}: {what}" for name, what in BUILTIN_MODELS.items())
    gallery = sub.add_parser(
        "gallery",
        help="write every figure for a model and images, with an index.html",
        description="Render activation grids per layer and image, filter patterns for a few "
        "layers, a class activation map per image (Grad-CAM; --kinds adds other CAM methods, and "
        "cam_methods a figure comparing them, or all of them when no other is named; a pixel "
        "attribution method such as integrated_gradients adds a figure of its attributions; "
        "faithfulness judges the CAM methods with convviz evaluate's metrics) and "
        "the sparsity curve into OUT as PNG files, "
        "with an index.html that shows them with captions (layer names and shapes, predicted "
        "classes and probabilities). OUT is written atomically: on any error nothing is left "
        "behind.",
        epilog=f"Built-in models: {builtins}. Example: convviz gallery efficientnet_lite0 "
        "skimage:chelsea skimage:coffee --out lite0_gallery",
    )
    gallery.add_argument("model", metavar="MODEL", help="a .keras file or a built-in model name (below)")
    gallery.add_argument(
        "images", metavar="IMAGE", nargs="+",
        help="image files, or skimage:NAME for a photo shipped with scikit-image (skimage:chelsea)",
    )
    gallery.add_argument("--out", required=True, metavar="DIR", help="output folder; must be empty or absent")
    gallery.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    gallery.add_argument(
        "--kinds", default=None, metavar="LIST",
        help=f"comma-separated figure kinds, from {','.join(kinds())} (default: {','.join(DEFAULT_KINDS)})",
    )
    gallery.add_argument(
        "--layers", default=None, metavar="LIST",
        help="comma-separated layers for activation grids and sparsity (default: conv and "
        "pooling layers, at most 8 evenly spaced)",
    )
    gallery.add_argument(
        "--filter-layers", default=None, metavar="LIST",
        help="comma-separated layers to draw filter patterns for (default: first, middle and last conv)",
    )
    gallery.add_argument("--filters", type=int, default=16, metavar="N", help="filters per layer (default: %(default)s)")
    gallery.add_argument(
        "--filter-steps", type=int, default=None, metavar="N",
        help="optimisation steps per filter pattern (default: 30 for pixel, 128 for fft, 64 for maco)",
    )
    gallery.add_argument(
        "--filter-parametrization", default="auto", choices=("auto", "pixel", "fft", "maco"),
        help="how filter patterns are optimised; auto: the chapter's pixel ascent for the first "
        "conv layer, the Fourier parametrisation for deeper ones (default: %(default)s)",
    )
    gallery.add_argument(
        "--max-channels", type=int, default=64, metavar="N",
        help="channels per activation grid (default: %(default)s)",
    )
    gallery.add_argument(
        "--cam-layer", default=None, metavar="LAYER",
        help="the layer the CAM methods explain (default: the last convolution; fewer channels "
        "make scorecam and ablationcam faster)",
    )
    gallery.add_argument(
        "--class-names", default=None, metavar="LIST",
        help="comma-separated class names for captions (two for a sigmoid unit: negative,positive)",
    )
    _model_arguments(gallery)
    gallery.add_argument("--quiet", action="store_true", help="no progress output")
    gallery.set_defaults(func=_gallery)

    headings = {"cam": "CAM methods", "attribution": "Pixel attributions"}
    methods = " ".join(
        f"{headings.get(kind, f'{kind} methods')}: "
        + "; ".join(f"{name}: {get_method(name).title}" for name in method_names(kind)) + "."
        for kind in dict.fromkeys(get_method(name).kind for name in method_names())
    )
    explain = sub.add_parser(
        "explain",
        help="explain a model's classes on images with one method, as a figure",
        description="Run one explanation method (Grad-CAM by default) on the images and write "
        "the maps over the images, titled with the explained class and its probability, to OUT "
        "(PNG, PDF or SVG by extension). A pixel attribution method (saliency, "
        "integrated_gradients...) draws its attributions as --view says. --maps also saves the "
        "maps, classes and predictions as a .npz file (convviz.Explanation.load reads it). Given one "
        "folder of images instead (DATA_DIR), it explains every image in it and OUT is a folder: the maps "
        "(zarr), a row per image (Parquet) and a manifest, written batch by batch; a killed run continues "
        "with --resume (convviz.explain_dataset).",
        epilog=f"{methods} Built-in models: {', '.join(BUILTIN_MODELS)}. Example: "
        "convviz explain efficientnet_lite0 skimage:chelsea --method gradcam_plusplus --out cat.png; over a "
        "folder: convviz explain model.keras val/ --out val_gradcam --metrics deletion,insertion --resume",
    )
    _inputs(explain, out="FILE", out_help="the figure to write (.png, .pdf, .svg)")
    explain.add_argument(
        "--method", default="gradcam", choices=method_names(), metavar="NAME",
        help="the method (default: %(default)s): " + ", ".join(method_names()),
    )
    explain.add_argument(
        "--layer", default=None,
        help="the layer a CAM method explains (default: the last convolution); attribution methods take none",
    )
    explain.add_argument(
        "--view", default=None, choices=("signed", "absolute", "overlay", "all"),
        help="how an attribution method's figure draws them (default: signed): a diverging colormap, "
        "the magnitude, the magnitude over the image, or a row per image with all three",
    )
    _class_index_argument(explain)
    explain.add_argument("--class-names", default=None, metavar="LIST", help="comma-separated class names for titles")
    explain.add_argument("--maps", default=None, metavar="FILE", help="also save the maps as a .npz file")
    _model_arguments(explain)
    folder = explain.add_argument_group("over a folder of images (DATA_DIR)")
    folder.add_argument("--resume", action="store_true", help="continue the unfinished run in OUT (same settings)")
    folder.add_argument("--overwrite", action="store_true", help="replace the run in OUT")
    folder.add_argument("--batch-size", type=int, default=32, metavar="N", help="images per batch (default: %(default)s)")
    folder.add_argument(
        "--metrics", default=None, metavar="LIST",
        help="comma-separated per-image metrics stored in the table: deletion, insertion, average_drop, "
        "increase_in_confidence, mufidelity",
    )
    folder.add_argument("--upsample", action="store_true", help="store CAM maps at the model's input size")
    folder.add_argument("--quiet", action="store_true", help="no progress bar")
    explain.set_defaults(func=_explain)

    from convviz.evaluation import METRICS, metric_names

    metrics = "; ".join(f"{name} ({info.better} is better)" for name, info in METRICS.items())
    evaluate = sub.add_parser(
        "evaluate",
        help="judge how faithful explanation methods are, with CSV tables, figures and an index.html",
        description="Explain the images with each method (Grad-CAM by default; any CAM or pixel attribution "
        "method) and judge the maps with faithfulness metrics, image by image: deletion and insertion, "
        "Average Drop and Increase in Confidence, MuFidelity by default; with --boxes the pointing game and "
        "its energy; randomization on request (three more explanations per method, one of them by a copy "
        "of the model with every weighted layer re-initialised). OUT gets evaluation.csv (one line per method, image and metric), summary.csv "
        "(each metric's mean over the images with a 95%% bootstrap interval), evaluation.json, summary.png, "
        "curves.png and an index.html. Everything is checked before anything is computed, and OUT is "
        "written atomically: on any error nothing is left behind.",
        epilog=f"Metrics: {metrics}. Built-in models: {', '.join(BUILTIN_MODELS)}. Example: convviz evaluate "
        "efficientnet_lite0 skimage:chelsea skimage:coffee --methods gradcam,layercam,saliency --out faithfulness",
    )
    _inputs(evaluate, out="DIR", out_help="output folder; must be empty or absent")
    evaluate.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    evaluate.add_argument(
        "--methods", default=None, metavar="LIST",
        help="comma-separated methods, or all (default: gradcam): " + ", ".join(method_names()),
    )
    evaluate.add_argument(
        "--metrics", default=None, metavar="LIST",
        help=f"comma-separated metrics, or all (default: {','.join(metric_names(default=True))}, and with "
        "--boxes pointing_game,energy): " + ", ".join(METRICS),
    )
    evaluate.add_argument(
        "--boxes", default=None, metavar="FILE.json",
        help="the objects' boxes, [x0, y0, x1, y1] in pixels of each image as read: a list (one per image), "
        "an object keyed by image name, or a convviz shapes dataset's boxes.json",
    )
    evaluate.add_argument(
        "--cam-layer", default=None, metavar="LAYER", help="the layer every CAM method explains (default: the last convolution)",
    )
    evaluate.add_argument(
        "--method-option", action="append", default=[], metavar="NAME.OPTION=VALUE",
        help="an option of one method, e.g. occlusion.stride=16 or scorecam.layer=top_conv (repeatable)",
    )
    evaluate.add_argument(
        "--metric-option", action="append", default=[], metavar="NAME.OPTION=VALUE",
        help="an option of one metric, e.g. deletion.steps=10 or mufidelity.samples=100 (repeatable)",
    )
    _class_index_argument(evaluate)
    evaluate.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default: %(default)s)")
    evaluate.add_argument("--seed", type=int, default=0, metavar="N", help="seeds the metrics and the bootstrap (default: %(default)s)")
    _model_arguments(evaluate)
    evaluate.add_argument("--quiet", action="store_true", help="no progress output")
    evaluate.set_defaults(func=_evaluate)
    return parser


def _inputs(parser, *, out: str, out_help: str) -> None:
    """MODEL, IMAGE... and --out, as ``explain`` and ``evaluate`` take them."""
    parser.add_argument("model", metavar="MODEL", help="a .keras file or a built-in model name")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files, or skimage:NAME")
    parser.add_argument("--out", required=True, metavar=out, help=out_help)


def _model_arguments(parser) -> None:
    """--output and --no-safe-mode, for the commands that take a MODEL."""
    parser.add_argument(
        "--output", default=None, metavar="NAME",
        help="for a model with several outputs, the one explained: its name or index",
    )
    parser.add_argument(
        "--no-safe-mode", dest="safe_mode", action="store_false",
        help="load a .keras file that holds Python code (a Lambda layer), which runs as it "
        "loads; only for files you trust",
    )


def _class_index_argument(parser) -> None:
    parser.add_argument(
        "--class-index", default=None, metavar="LIST",
        help="comma-separated class per image, or one for all (default: each image's top class)",
    )


def _explain(args) -> int:
    """One method on some images: a figure, and optionally the maps."""
    import pathlib

    from matplotlib.figure import Figure

    import convviz
    from convviz._files import check_writable
    from convviz.errors import InputError, OutputError
    from convviz.methods import LayerMethod, get_method
    from convviz.sources import open_inputs

    if len(args.images) == 1 and pathlib.Path(args.images[0]).is_dir():
        return _explain_folder(args)
    for flag in ("resume", "overwrite", "upsample", "quiet"):
        if getattr(args, flag):
            raise InputError(f"--{flag} is for a run over a folder of images (one DATA_DIR), not image files.")
    if args.metrics is not None:
        raise InputError("--metrics is for a run over a folder of images; for a few images use convviz evaluate.")
    out = pathlib.Path(args.out)
    formats = Figure().canvas.get_supported_filetypes()
    if out.suffix.lstrip(".").lower() not in formats:
        raise InputError(f"--out {out}: the figure's format comes from its extension, one of {', '.join(sorted(formats))}.")
    for target in (out, args.maps):  # refused before any work
        if target is not None:
            check_writable(pathlib.Path(target))
    method = get_method(args.method)
    if args.layer is not None and not issubclass(method, LayerMethod):
        raise InputError(f"--layer: {args.method} attributes the input pixels and takes no layer.")
    if args.view is not None and method.kind != "attribution":
        raise InputError(f"--view draws pixel attributions; {args.method} draws its maps over the images.")
    model, images, _, builtin_names = open_inputs(args.model, args.images, safe_mode=args.safe_mode)
    class_index, output = _class_index(args.class_index), output_argument(args.output)
    if method.kind == "attribution":
        result = convviz.attribute(model, images, method=method, class_index=class_index, output=output)
        views = {"view": args.view or "signed"}
    else:
        result = convviz.explain(model, images, method=method, layer=args.layer, class_index=class_index,
                                 output=output)
        views = {}
    try:
        result.plot(class_names=_names(args.class_names) or builtin_names, save=out, **views)
        if args.maps is not None:
            print(result.save(args.maps))
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(f"Cannot write {err.filename or out}: {err.strerror or err}.") from err
    print(out)
    return 0


def _explain_folder(args) -> int:
    """``convviz explain MODEL DATA_DIR --out DIR``: every image of the folder, streamed."""
    import convviz
    from convviz.errors import InputError

    if args.maps is not None or args.view is not None:
        raise InputError("--maps and --view are for image files; a run over a folder writes its maps to OUT.")
    class_index = "labels" if args.class_index == "labels" else _class_index(args.class_index)
    if isinstance(class_index, list):
        raise InputError("--class-index over a folder: one class for every image, or 'labels' (the subfolders).")
    run = convviz.explain_dataset(
        args.model, args.images[0], out=args.out, method=args.method, layer=args.layer, class_index=class_index,
        metrics=_names(args.metrics) or (), upsample=args.upsample, batch_size=args.batch_size,
        resume=args.resume, overwrite=args.overwrite, output=output_argument(args.output),
        safe_mode=args.safe_mode, verbose=not args.quiet,
    )
    print(run.path)
    return 0


def main(argv=None) -> int:
    """Run the command line; returns the exit status (2 for a usage or input error)."""
    from convviz.errors import ConvvizError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConvvizError as err:
        print(f"convviz {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
