"""One set of conventions across activations, filters, sparsity and their figures.

- no public function shadows a module of the same name;
- the image argument is ``images``, options are keyword-only;
- ``batch_size`` is a positive int everywhere, ``verbose`` a bool (or Keras' 0/1/2);
- renamed keywords and options passed by position keep working for one release, with a
  DeprecationWarning attributed to the caller's line.
"""

from __future__ import annotations

import importlib
import inspect
import pathlib

import keras
import numpy as np
import pytest

import convviz
from convviz import plot, training
from convviz._validation import keyword_only, renamed
from convviz.errors import InputError

PACKAGE_DIR = pathlib.Path(convviz.__file__).resolve().parent


def _tiny_model():
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c2")(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def _images(n=3):
    return np.random.default_rng(0).integers(0, 256, (n, 12, 12, 3)).astype("uint8")


# -- names --------------------------------------------------------------------------------


def test_result_types_are_exported_and_modules_are_reachable():
    filter_patterns = importlib.import_module("convviz.filter_patterns")
    sparsity_stats = importlib.import_module("convviz.sparsity_stats")
    feature_maps = importlib.import_module("convviz.feature_maps")
    assert filter_patterns.FilterPatterns is convviz.FilterPatterns
    assert sparsity_stats.SparsityTable is convviz.SparsityTable
    assert sparsity_stats.LayerSparsity is convviz.LayerSparsity
    assert convviz.filters is filter_patterns.filters
    assert convviz.sparsity is sparsity_stats.sparsity
    assert convviz.activations is feature_maps.activations
    for name in ("FilterPatterns", "SparsityTable", "LayerSparsity"):
        assert name in convviz.__all__
    from convviz.filter_patterns import filter_grid  # numeric helper, still importable there

    assert filter_grid is plot.filter_grid


def test_no_public_function_shadows_a_module():
    modules = {p.stem for p in PACKAGE_DIR.glob("*.py")} | {
        p.parent.name for p in PACKAGE_DIR.glob("*/__init__.py")
    }
    shadowing = [
        name for name in convviz.__all__
        if name in modules and not inspect.ismodule(getattr(convviz, name))
    ]
    assert shadowing == []


@pytest.mark.parametrize(
    "fn, positional",
    [
        (convviz.activations, ["model", "images"]),
        (convviz.sparsity, ["model", "images"]),
        (convviz.filters, ["model", "layer"]),
        (plot.activations, ["acts"]),
        (plot.gradcam, ["images", "heatmaps"]),
        (plot.overlay, ["images", "heatmaps"]),
        (plot.sparsity, ["tables"]),
        (plot.filters, ["patterns"]),
        (plot.activation_grid, ["maps"]),
        (plot.filter_grid, ["images"]),
        (training.plot_history, ["history"]),
    ],
)
def test_signatures_images_first_options_keyword_only(fn, positional):
    params = inspect.signature(fn).parameters.values()
    assert [p.name for p in params if p.kind is not p.KEYWORD_ONLY] == positional
    names = {p.name for p in params}
    assert not names & {"img", "image", "data", "images_per_row", "columns", "width", "panel"}
    if fn.__module__ == "convviz.plot" and fn.__name__ not in ("overlay", "activation_grid", "filter_grid"):
        assert {"figsize", "save"} <= names
    if fn in (plot.activations, plot.gradcam, plot.filters, plot.activation_grid, plot.filter_grid):
        assert "ncols" in names


# -- the whole public API -----------------------------------------------------------------

PUBLIC_MODULES = (
    "convviz", "convviz.plot", "convviz.data", "convviz.shapes", "convviz.imagenet",
    "convviz.efficientnet", "convviz.training", "convviz.models", "convviz.filter_patterns",
    "convviz.sparsity_stats", "convviz.feature_maps", "convviz.methods", "convviz.metrics", "convviz.evaluation",
)

# What may be positional without an entry below: the model, then the images
# (``activations(model, images)``, ``explain(model, images)``), or one leading argument
# (the thing to draw or transform, a builder's first argument, a path, a class's model).
DEFAULT_POSITIONAL = (["model", "images"],)

# The justified exceptions, by defining module and name: exactly these positional
# parameters, no others.
ALLOWED_POSITIONAL = {
    # Two arrays drawn together: the pictures, then their maps.
    "convviz.plot.overlay": ["images", "heatmaps"],
    "convviz.plot.gradcam": ["images", "heatmaps"],
    "convviz.plot.cam_methods": ["images", "maps"],
    "convviz.plot.attributions": ["images", "maps"],
    # How the channels combine is the operation itself: aggregate_channels(maps, "abs_sum").
    "convviz.plot.aggregate_channels": ["maps", "how"],
    # A metric judges maps of a model on images: all three are what is measured.
    "convviz.metrics.deletion_insertion": ["model", "images", "maps"],
    "convviz.metrics.confidence_change": ["model", "images", "maps"],
    "convviz.metrics.mufidelity": ["model", "images", "maps"],
    # The pointing game needs no model: the maps and the objects' boxes.
    "convviz.metrics.pointing_game": ["maps", "boxes"],
    # Two sequences correlated.
    "convviz.metrics.spearman": ["a", "b"],
    # A lazy batch is its length and how to build its rows: LazyBatch(n * k, build).
    "convviz.methods.cam.LazyBatch": ["length", "build"],
    # The layer is what is visualised, not an option: filters(model, "block1_conv1").
    "convviz.filter_patterns.filters": ["model", "layer"],
    # What is visualised, as filters' layer: visualize(model, Objective.classes([1])).
    "convviz.feature_visualization.visualize": ["model", "objective"],
    # A gallery is written to a folder: where is as required as what.
    "convviz.galleries.gallery": ["model", "images", "out_dir"],
    # The model and the data it trains on (train, validation), as model.fit's x.
    "convviz.training.fit": ["model", "train_ds", "val_ds"],
    # Copy from one folder to another: both required.
    "convviz.data.make_subsets": ["original_dir", "new_base_dir"],
    # Which dataset and which of its splits: both required.
    "convviz.shapes.load_boxes": ["base_dir", "split"],
    # Which picture: the class and its number (circle.7.jpg).
    "convviz.shapes.render_example": ["shape", "index"],
    # The data, then the conv base that turns it into features (the conventions page).
    "convviz.models.transfer.extract_features": ["dataset", "conv_base"],
    "convviz.models.vgg16.vgg16_features": ["dataset", "conv_base"],
    # How many layers to unfreeze is the operation itself: unfreeze_top_layers(model, 4).
    "convviz.models.transfer.unfreeze_top_layers": ["model", "n_layers"],
    # The chapter's filter-visualisation building blocks, with its argument order.
    "convviz.filter_patterns.start_images": ["seed", "indices", "shape"],
    "convviz.filter_patterns.chunk_size": ["elements_per_image", "n_filters"],
}

# An image argument is called ``images``; these spellings are gone, as are the plot
# options that ``ncols`` and ``figsize`` replaced.
FORBIDDEN_NAMES = {
    "img", "imgs", "image", "data", "x", "inputs", "input", "picture", "pictures", "photo",
    "photos", "images_per_row", "columns", "width", "height", "panel",
}


def _is_record(obj) -> bool:
    """Result records (dataclasses, named tuples, dicts): their fields are their
    constructor, which is not an API of options."""
    import dataclasses

    return inspect.isclass(obj) and (
        dataclasses.is_dataclass(obj) or (issubclass(obj, tuple) and hasattr(obj, "_fields"))
        or issubclass(obj, dict)
    )


def _public_callables():
    """(exported name, qualified name, object) once per object, over PUBLIC_MODULES."""
    seen, out = set(), []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not callable(obj) or inspect.ismodule(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            target = inspect.unwrap(obj)
            out.append((f"{module_name}.{name}", f"{target.__module__}.{target.__qualname__}", obj))
    return out


PUBLIC = _public_callables()


def _parameters(obj):
    return list(inspect.signature(obj if inspect.isclass(obj) else inspect.unwrap(obj)).parameters.values())


def test_the_walk_sees_the_whole_api():
    checked = {id(obj) for _, _, obj in PUBLIC}
    found = {
        f"{module_name}.{name}"
        for module_name in PUBLIC_MODULES
        for name in importlib.import_module(module_name).__all__
        if id(getattr(importlib.import_module(module_name), name)) in checked
    }
    for must in (
        "convviz.activations", "convviz.explain", "convviz.cam", "convviz.gradcam", "convviz.filters",
        "convviz.sparsity", "convviz.gallery", "convviz.Inspector", "convviz.plot.activations",
        "convviz.data.load_datasets", "convviz.shapes.make_offline_dataset",
        "convviz.imagenet.decode_predictions", "convviz.efficientnet.eval_transform",
        "convviz.training.fit", "convviz.models.small_convnet", "convviz.methods.GradCAM", "convviz.evaluate",
        "convviz.evaluation.read_boxes",
    ):
        assert must in found
    assert len(PUBLIC) > 60
    # Every exception still names a public function, so the list cannot go stale.
    assert set(ALLOWED_POSITIONAL) <= {qualified for _, qualified, _ in PUBLIC}


@pytest.mark.parametrize(
    "exported, qualified, obj",
    [item for item in PUBLIC if not _is_record(item[2])],
    ids=[item[0] for item in PUBLIC if not _is_record(item[2])],
)
def test_public_signature_follows_the_conventions(exported, qualified, obj):
    params = _parameters(obj)
    names = [p.name for p in params]
    bad = sorted(set(names) & FORBIDDEN_NAMES)
    assert not bad, f"{exported}: the image argument is called images, not {bad}"
    positional = [p.name for p in params if p.kind is not p.KEYWORD_ONLY and p.kind is not p.VAR_KEYWORD]
    if qualified in ALLOWED_POSITIONAL:
        assert positional == ALLOWED_POSITIONAL[qualified], exported
    else:
        assert len(positional) <= 1 or positional in DEFAULT_POSITIONAL, (
            f"{exported}{inspect.signature(inspect.unwrap(obj))}: options after "
            f"{positional[:1]} must be keyword-only (or justify it in ALLOWED_POSITIONAL)"
        )
    assert all(p.kind is not p.VAR_POSITIONAL for p in params), exported
    defaults = {p.name: p.default for p in params}
    if "verbose" in defaults:
        assert isinstance(defaults["verbose"], bool), f"{exported}: verbose defaults to a bool"
    if "batch_size" in defaults:  # 32 mostly, 16 for gradient CAMs, None for "automatic"
        size = defaults["batch_size"]
        assert size is None or (type(size) is int and size >= 1), f"{exported}: batch_size={size!r}"
    if "images" in names:
        assert "images" in positional[:2], f"{exported}: images is positional, right after the model"
    is_figure = obj.__name__.startswith("plot") or inspect.signature(inspect.unwrap(obj)).return_annotation in (
        "Figure", "matplotlib.figure.Figure"
    )
    if is_figure and not inspect.isclass(obj):
        assert {"figsize", "save"} <= set(names), f"{exported}: figures take figsize= and save="


def test_the_walk_catches_a_violation():
    def bad(model, images, layer=None, *, batch_size=32):
        return model, images, layer, batch_size

    def misnamed(model, img, *, batch_size=32):
        return model, img, batch_size

    def old_verbose(model, images, *, verbose=0):
        return model, images, verbose

    bad.__qualname__ = misnamed.__qualname__ = old_verbose.__qualname__ = "fake"
    for fn in (bad, misnamed, old_verbose):
        with pytest.raises(AssertionError):
            test_public_signature_follows_the_conventions(f"fake.{fn.__name__}", "fake.fake", fn)
    ok = keyword_only(2, "layer")(lambda model, images, *, layer=None: None)
    test_public_signature_follows_the_conventions("fake.ok", "fake.ok", ok)


def test_result_types_plot_themselves():
    from convviz import evaluation, feature_maps, filter_patterns, methods, sparsity_stats

    for cls in (
        feature_maps.Activations, filter_patterns.FilterPatterns, sparsity_stats.SparsityTable,
        methods.Explanation, training.TrainingResult, evaluation.EvaluationTable, evaluation.EvaluationSummary,
    ):
        assert callable(getattr(cls, "plot", None)), cls.__name__
    assert "Activations" in feature_maps.__all__


# -- batch_size and verbose ---------------------------------------------------------------


def _call(kind, model, **kwargs):
    if kind == "activations":
        return convviz.activations(model, _images(), **kwargs)
    if kind == "sparsity":
        return convviz.sparsity(model, _images(), verbose=False, **kwargs)
    return convviz.filters(model, "c1", filters=[0], steps=1, size=16, crop=2, verbose=False, **kwargs)


@pytest.mark.parametrize("kind", ["activations", "sparsity", "filters"])
@pytest.mark.parametrize("bad", [0, -4, 2.5, 8.0, True, "8"])
def test_bad_batch_size_raises_input_error(kind, bad):
    with pytest.raises(InputError, match="batch_size"):
        _call(kind, _tiny_model(), batch_size=bad)


@pytest.mark.parametrize("kind", ["activations", "sparsity", "filters"])
def test_batch_size_accepts_positive_ints_and_does_not_change_results(kind):
    model = _tiny_model()
    one, many = _call(kind, model, batch_size=np.int64(1)), _call(kind, model, batch_size=64)
    if kind == "activations":
        np.testing.assert_allclose(one["c2"], many["c2"], rtol=1e-4, atol=1e-3)  # 0-255 inputs
    elif kind == "sparsity":
        assert [r.blank_fraction for r in one] == [r.blank_fraction for r in many]
    else:
        np.testing.assert_allclose(one.raw, many.raw, rtol=1e-3, atol=0.05)


def test_filters_batch_size_none_means_automatic():
    patterns = _call("filters", _tiny_model(), batch_size=None)
    assert len(patterns) == 1


@pytest.mark.parametrize("kind", ["sparsity", "filters"])
@pytest.mark.parametrize("bad", [3, -1, "yes", None, 0.5])
def test_bad_verbose_raises_input_error(kind, bad):
    model = _tiny_model()
    with pytest.raises(InputError, match="verbose"):
        if kind == "sparsity":
            convviz.sparsity(model, _images(), verbose=bad)
        else:
            convviz.filters(model, "c1", filters=[0], steps=1, size=16, crop=2, verbose=bad)


def test_verbose_auto_is_deprecated_and_means_true(capsys):
    with pytest.warns(DeprecationWarning, match='verbose="auto"') as record:
        convviz.sparsity(_tiny_model(), _images(), verbose="auto")
    assert record[0].filename == __file__
    assert "image" in capsys.readouterr().err


# -- deprecation shims --------------------------------------------------------------------


def test_renamed_image_arguments_warn_and_give_the_same_result():
    model = _tiny_model()
    images = _images()
    expected = convviz.activations(model, images)
    with pytest.warns(DeprecationWarning, match=r"activations\(img=\.\.\.\) is deprecated") as record:
        got = convviz.activations(model, img=images)
    assert record[0].filename == __file__  # the caller's line, through both decorators
    np.testing.assert_array_equal(got["c2"], expected["c2"])
    table = convviz.sparsity(model, images, verbose=False)
    with pytest.warns(DeprecationWarning, match=r"sparsity\(data=\.\.\.\)"):
        old = convviz.sparsity(model, data=images, verbose=False)
    assert old.to_records() == table.to_records()
    with pytest.raises(InputError, match="both img= and images="):
        convviz.activations(model, img=images, images=images)


def test_selection_arguments_by_position_warn_and_still_work():
    model = _tiny_model()
    images = _images()
    with pytest.warns(DeprecationWarning, match="layers to activations.. by position") as record:
        acts = convviz.activations(model, images, ["c2"])
    assert record[0].filename == __file__
    assert list(acts) == ["c2"]
    with pytest.warns(DeprecationWarning, match="layers to sparsity.. by position"):
        table = convviz.sparsity(model, images, ["c1"], verbose=False)
    assert [r.layer for r in table] == ["c1"]
    kwargs = dict(steps=1, size=16, crop=2, verbose=False)
    with pytest.warns(DeprecationWarning, match="filters to filters.. by position"):
        old = convviz.filters(model, "c1", [1, 2], **kwargs)
    new = convviz.filters(model, "c1", filters=[1, 2], **kwargs)
    np.testing.assert_array_equal(old.raw, new.raw)
    # Only what used to be positional: batch_size never was.
    with pytest.raises(TypeError):
        convviz.activations(model, images, ["c2"], 8)
    with pytest.raises(TypeError, match="multiple values"):
        convviz.activations(model, images, ["c2"], layers=["c1"])


def test_shims_on_a_plain_function():
    @renamed(old="new")
    @keyword_only(1, "new")
    def f(a, *, new=0, other=1):
        return a, new, other

    assert f(1, new=2) == (1, 2, 1)
    with pytest.warns(DeprecationWarning) as record:
        assert f(1, old=5) == (1, 5, 1)
        assert f(1, 6) == (1, 6, 1)
    assert len(record) == 2 and all(r.filename == __file__ for r in record)
    with pytest.raises(TypeError):
        f(1, 6, 7)  # ``other`` was never positional
    with pytest.raises(TypeError, match="no keyword-only parameter"):
        keyword_only(1, "missing")(f)


def test_result_types_have_plot():
    from matplotlib.figure import Figure

    model = _tiny_model()
    patterns = convviz.filters(model, "c1", filters=[0, 1], steps=1, size=16, crop=2, verbose=False)
    table = convviz.sparsity(model, _images(), verbose=False)
    result = training.TrainingResult(history={"loss": [1.0, 0.5]}, model=model, checkpoint_path=None)
    for obj in (patterns, table, result):
        fig = obj.plot(figsize=(5, 3))
        assert isinstance(fig, Figure) and tuple(fig.get_size_inches()) == (5, 3)
