"""Transfer learning offline: a frozen ImageNet EfficientNet-Lite0 base vs the small convnet from scratch.

Same data (convviz's offline shapes dataset, generated into Keras' cache if absent),
same image size, batch size, number of epochs and seed for every run:

* ``lite0_features`` - fast feature extraction: the frozen base runs once over the
  train/validation/test images (``models.extract_features``), then
  ``models.efficientnet_lite0_feature_classifier`` trains on the features.
* ``lite0_end_to_end`` - ``models.efficientnet_lite0_feature_extractor``: augmentation,
  frozen base and the same head in one model, every image through the base each epoch.
* ``scratch`` - ``models.small_convnet()`` trained from scratch.
* ``scratch_augmented`` (``--runs all``) - the chapter's second convnet (augmentation
  and dropout).
* ``lite0_random_features`` (``--runs all``) - the ``lite0_features`` recipe on a base
  with random weights: how much of the result is the ImageNet pretraining.

Every run trains with ``convviz.training.fit`` (best epoch on val_loss, reloaded) and is
then evaluated on the test split. ``train_s`` counts everything before testing (for
feature extraction: building the base, extracting the train and validation features
and fitting the head); ``test_s`` the test split's forward passes. Results are
printed and written as JSON (default ``benchmarks/results/transfer/<backend>.json``,
with the machine and its load average before and after).

    KERAS_BACKEND=tensorflow python benchmarks/transfer.py [--epochs 5] [--quick] [--json PATH]
    python benchmarks/transfer.py --data-dir dogs_vs_cats_small   # the chapter's data
"""

from __future__ import annotations

import argparse
import json
import pathlib
import tempfile
import time

import keras  # noqa: I001
import numpy as np
from common import load_average, machine, machine_info

from convviz import data, models, training

RESULTS = pathlib.Path(__file__).parent / "results" / "transfer"
RUNS = ("lite0_features", "lite0_end_to_end", "scratch", "scratch_augmented", "lite0_random_features")
DEFAULT_RUNS = RUNS[:3]
# A small dataset of its own for --quick: the default one is left as it is.
QUICK = {"n_train": 100, "n_val": 25, "n_test": 50, "image_size": (96, 96)}


def feature_dataset(features, labels, batch_size, seed=None):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((features, labels))
    if seed is not None:
        ds = ds.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def run_features(splits, args, folder, weights):
    size = args.image_size
    start = time.perf_counter()
    base = models.efficientnet_lite0_conv_base(weights=weights, input_shape=(size, size, 3))
    train_f, train_y = models.extract_features(splits.train, base)
    val_f, val_y = models.extract_features(splits.validation, base)
    extract_s = time.perf_counter() - start
    head = models.efficientnet_lite0_feature_classifier(train_f.shape[1:])
    result = training.fit(
        head,
        feature_dataset(train_f, train_y, args.batch_size, seed=args.seed),
        feature_dataset(val_f, val_y, args.batch_size),
        epochs=args.epochs,
        checkpoint_path=folder / "head.keras",
        verbose=args.verbose,
    )
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    test_f, test_y = models.extract_features(splits.test, base)
    metrics = result.model.evaluate(feature_dataset(test_f, test_y, args.batch_size), verbose=0, return_dict=True)
    test_s = time.perf_counter() - start
    return result, metrics, {
        "train_s": train_s, "test_s": test_s, "extract_train_val_s": extract_s,
        "trainable_params": count_trainable(head), "feature_shape": list(train_f.shape[1:]),
    }


def run_model(model, splits, args, folder, name):
    start = time.perf_counter()
    result = training.fit(
        model, splits.train, splits.validation, epochs=args.epochs,
        checkpoint_path=folder / f"{name}.keras", verbose=args.verbose,
    )
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    metrics = result.model.evaluate(splits.test, verbose=0, return_dict=True)
    test_s = time.perf_counter() - start
    return result, metrics, {"train_s": train_s, "test_s": test_s, "trainable_params": count_trainable(model)}


def count_trainable(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def one_run(name, splits, args, folder):
    # The same seed before every run: weights, dropout and shuffling start alike.
    keras.utils.set_random_seed(args.seed)
    shape = (args.image_size, args.image_size, 3)
    if name == "lite0_features":
        return run_features(splits, args, folder, "imagenet")
    if name == "lite0_random_features":
        return run_features(splits, args, folder, None)
    if name == "lite0_end_to_end":
        model = models.efficientnet_lite0_feature_extractor(shape[:2], augmentation=True)
    elif name == "scratch":
        model = models.small_convnet(shape)
    else:
        model = models.small_convnet(shape, augmentation=True)
    return run_model(model, splits, args, folder, name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="the same for every run")
    parser.add_argument("--image-size", type=int, default=180)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--runs", default=",".join(DEFAULT_RUNS),
        help=f"comma-separated, from {', '.join(RUNS)}; or 'all'",
    )
    parser.add_argument("--data-dir", help="another dataset in the same layout (e.g. the Kaggle subsets)")
    parser.add_argument(
        "--json", help="output file (default benchmarks/results/transfer/<backend>.json; none with --quick)"
    )
    parser.add_argument("--verbose", type=int, default=0, help="Keras' fit verbosity")
    parser.add_argument(
        "--quick", action="store_true",
        help="smoke test: 100 training images per class at 96 px, 2 epochs, the three default runs",
    )
    args = parser.parse_args(argv)
    runs = RUNS if args.runs == "all" else tuple(r.strip() for r in args.runs.split(",") if r.strip())
    unknown = sorted(set(runs) - set(RUNS))
    if unknown:
        parser.error(f"unknown runs {unknown}; choose from {RUNS}")

    if args.data_dir:
        data_dir = pathlib.Path(args.data_dir)
    elif args.quick:
        args.epochs, args.image_size = 2, QUICK["image_size"][0]
        data_dir = data.ensure_offline_dataset(data.default_dataset_dir().with_name("convviz_shapes_quick"), **QUICK)
    else:
        data_dir = data.ensure_offline_dataset()
    manifest = data_dir / data._MANIFEST
    dataset = json.loads(manifest.read_text()) if manifest.is_file() else {"path": str(data_dir)}

    backend = keras.backend.backend()
    info = machine_info()
    print(
        f"{machine()}; {data_dir}; {args.image_size} px, batch {args.batch_size}, "
        f"{args.epochs} epochs, seed {args.seed}"
    )
    splits = data.load_datasets(
        data_dir, image_size=(args.image_size, args.image_size), batch_size=args.batch_size, seed=args.seed
    )
    results = {}
    print(f"{'run':<24}{'test acc':>9}{'best ep':>8}{'train s':>9}{'test s':>8}{'trainable':>11}")
    with tempfile.TemporaryDirectory(prefix="convviz_transfer_") as tmp:
        for name in runs:
            result, metrics, extra = one_run(name, splits, args, pathlib.Path(tmp))
            results[name] = {
                "test_accuracy": float(metrics["accuracy"]),
                "test_loss": float(metrics["loss"]),
                "best_epoch": result.best_epoch,
                **extra,
                "val_accuracy": result.history.get("val_accuracy"),
                "accuracy": result.history.get("accuracy"),
            }
            r = results[name]
            print(
                f"{name:<24}{r['test_accuracy']:>9.4f}{str(r['best_epoch']):>8}{r['train_s']:>9.1f}"
                f"{r['test_s']:>8.1f}{r['trainable_params']:>11,}"
            )

    pretrained = [results[n]["test_accuracy"] for n in ("lite0_features", "lite0_end_to_end") if n in results]
    record = {
        "benchmark": "transfer",
        "backend": backend,
        "machine": {**info, "load_average_after": load_average()},
        "dataset": dataset,
        "data_dir": str(data_dir),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "seed": args.seed,
        "runs": results,
    }
    if pretrained and "scratch" in results:
        record["pretrained_beats_scratch"] = max(pretrained) > results["scratch"]["test_accuracy"]
        print(f"pretrained base beats scratch: {record['pretrained_beats_scratch']}")
    out = args.json or (None if args.quick else RESULTS / f"{backend}.json")
    if out is not None:
        out = pathlib.Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
