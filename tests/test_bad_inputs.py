"""Bad and unusual input never escapes as a raw exception (issue 20).

- ``CASES`` (files, output folders, models) and ``CORPUS`` (every public function:
  images, models, outputs, layers, numbers, classes, methods and their options, files,
  data streams): each row asserts the exact convviz exception type and a fragment of its
  message;
- ``CLI``: every command answers a user error with one ``convviz <command>: error: ...``
  line, exit status 2, and nothing written;
- valid but unusual input works: several outputs (``output=``), a variable input size,
  half precision, ``.keras`` files with code when trusted; a model that overflows is an
  error naming the first layer, never a NaN result; a backend failure names the shapes;
- properties (hypothesis): any array is either a correct batch or a ConvvizError, and
  is never modified; no public function modifies the arrays it is given.

A case is one row: a name, a callable that makes the bad call, the expected exception
type and a message fragment.
"""

import functools
import pathlib
import struct
import zlib

import numpy as np
import pytest

import convviz
from convviz import cli
from convviz._files import build_atomically, check_out_dir
from convviz._inputs import to_batch
from convviz.errors import (
    ConvvizError,
    InputError,
    LayerNotFoundError,
    ModelStructureError,
    OutputError,
)


def _png_claiming(path: pathlib.Path, width: int, height: int) -> pathlib.Path:
    """A PNG whose header claims ``width`` x ``height`` pixels (its data is one row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" + b"\x00" * 3)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def blocker(tmp_path) -> pathlib.Path:
    """A plain file where a folder would have to be."""
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def _folder(path):
    path.mkdir()
    return path


def _text(path):
    path.write_text("hello")
    return path


def _subclassed():
    import keras

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)
            self.pool = keras.layers.GlobalAveragePooling2D()

        def call(self, x):
            return self.pool(self.conv(x))

    model = Subclassed()
    model(np.zeros((1, 16, 16, 3), "float32"))  # built and called: still no graph
    return model


def _unbuilt():
    import keras

    return keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D()])


def _variable():
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(4, 3, activation="relu", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(x), name="variable")


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _lambda_model(tmp):
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3)(keras.layers.Lambda(lambda t: t * 2.0)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp / "lambda.keras")
    return tmp / "lambda.keras"


def _tiny():
    from test_gallery import tiny_model

    return tiny_model()


def _unwritable(tmp):
    raise PermissionError(13, "Permission denied", str(tmp / "index.html"))


# name -> (call(tmp_path, blocker), exception type, message fragment)
CASES = {
    "a folder as an image": (
        lambda tmp, blocker: to_batch(str(_folder(tmp / "photos"))), InputError, "is a folder"),
    "a decompression bomb": (
        lambda tmp, blocker: to_batch(str(_png_claiming(tmp / "bomb.png", 100_000, 100_000))),
        InputError, "decompression bomb"),
    "a missing image file": (
        lambda tmp, blocker: to_batch(str(tmp / "missing.png")), InputError, "not found"),
    "text as an image": (
        lambda tmp, blocker: to_batch(str(_text(tmp / "notes.png"))), InputError, "Cannot read"),
    "an output folder inside a file": (
        lambda tmp, blocker: check_out_dir(blocker / "out", overwrite=False),
        OutputError, "is a file, not a folder"),
    "a deeper output folder inside a file": (
        lambda tmp, blocker: check_out_dir(blocker / "a" / "b", overwrite=False),
        OutputError, "is a file"),
    "writing inside a file": (
        lambda tmp, blocker: build_atomically(blocker / "out", lambda t: None),
        OutputError, "is a file"),
    "writing into a virtual filesystem": (
        lambda tmp, blocker: build_atomically(pathlib.Path("/proc/convviz-test/out"), lambda t: None),
        OutputError, "Cannot write /proc/convviz-test/out"),
    "a filter image larger than the machine's memory": (
        lambda tmp, blocker: convviz.filters(_tiny(), "conv_a", size=(100_000, 100_000)),
        InputError, "needs 447 GiB"),
    "a filter image size of zero": (
        lambda tmp, blocker: convviz.filters(_tiny(), "conv_a", size=(0, 32)), InputError,
        "size must be (height, width)"),
    "a filter image size as text": (
        lambda tmp, blocker: convviz.filters(_tiny(), "conv_a", size="64"), InputError,
        "size must be (height, width)"),
    "a subclassed model": (
        lambda tmp, blocker: convviz.gradcam(_subclassed(), np.zeros((16, 16, 3), "uint8")),
        ModelStructureError, "subclassed keras.Model (Subclassed)"),
    "a Sequential model without an input": (
        lambda tmp, blocker: convviz.activations(_unbuilt(), np.zeros((16, 16, 3), "uint8")),
        ModelStructureError, "model.build((None, height, width, channels))"),
    "an image too small for a variable-size model (Grad-CAM)": (
        lambda tmp, blocker: convviz.gradcam(_variable(), np.zeros((5, 5, 3), "uint8")),
        InputError, "A 5 x 5 image is too small for model 'variable': layer 'c2' receives (1, 1, 4)"),
    "an image too small for a variable-size model (activations)": (
        # 1 x 1: Keras 3.8 lets a 3 x 3 kernel make an empty output from 2 x 2 (and fails
        # one layer later); every Keras refuses a negative size.
        lambda tmp, blocker: convviz.activations(_variable(), np.zeros((1, 1, 3), "uint8")),
        InputError, "layer 'c1' receives (1, 1, 3)"),
    "an image too small for a variable-size model (sparsity)": (
        lambda tmp, blocker: convviz.sparsity(_variable(), np.zeros((2, 5, 6, 3), "uint8")),
        InputError, "too small for model 'variable'"),
    "a corrupt .keras file": (
        lambda tmp, blocker: convviz.gradcam(str(_bytes(tmp / "model.keras", b"garbage")),
                                             np.zeros((32, 32, 3), "uint8")),
        InputError, "is not a valid .keras file"),
    "a folder as a model": (
        lambda tmp, blocker: convviz.gradcam(str(_folder(tmp / "model.keras")),
                                             np.zeros((32, 32, 3), "uint8")),
        InputError, "is a folder, not a model file"),
    "a .keras file with a Lambda layer": (
        lambda tmp, blocker: convviz.activations(str(_lambda_model(tmp)), np.zeros((8, 8, 3), "uint8")),
        InputError, "keras.models.load_model(path, safe_mode=False)"),
    "a build that fails to write": (
        lambda tmp, blocker: build_atomically(tmp / "out", _unwritable),
        OutputError, "Nothing was written"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_case_raises_its_convviz_error(name, tmp_path, blocker):
    call, kind, fragment = CASES[name]
    with pytest.raises(kind) as info:
        call(tmp_path, blocker)
    assert isinstance(info.value, ConvvizError)
    assert fragment in str(info.value), str(info.value)


def test_output_error_is_also_an_oserror():
    """``except OSError`` around a gallery keeps working."""
    assert issubclass(OutputError, OSError) and issubclass(OutputError, ConvvizError)
    assert str(OutputError("Cannot write x: y.")) == "Cannot write x: y."


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    with pytest.raises(OutputError):
        build_atomically(tmp_path / "out", _unwritable)
    assert list(tmp_path.iterdir()) == []


def test_gallery_into_a_file_is_refused_before_any_work(blocker, monkeypatch):
    from test_gallery import tiny_model

    def never(*args, **kwargs):
        raise AssertionError("the model ran before the output folder was checked")

    monkeypatch.setattr(convviz.galleries, "open_inputs", never)
    with pytest.raises(OutputError, match="is a file"):
        convviz.gallery(tiny_model(), [np.zeros((32, 32, 3), "uint8")], blocker / "gallery")


@pytest.mark.parametrize("where", ["inside a file", "a folder as an image", "a decompression bomb"])
def test_cli_prints_one_line_and_writes_nothing(where, tmp_path, blocker, capsys):
    from test_gallery import tiny_model, write_images

    model = tmp_path / "tiny.keras"
    tiny_model().save(model)
    images = write_images(tmp_path / "images", 1)
    out = tmp_path / "gallery"
    if where == "inside a file":
        out = blocker / "gallery"
    elif where == "a folder as an image":
        images = [str(tmp_path / "images")]
    else:
        images = [str(_png_claiming(tmp_path / "bomb.png", 100_000, 100_000))]
    before = sorted(tmp_path.rglob("*"))
    assert cli.main(["gallery", str(model), *images, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convviz gallery: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before


# -- valid but unusual ---------------------------------------------------------------------


def test_sparsity_of_a_model_with_a_variable_input_size_equals_the_fixed_size_model():
    """``Input((None, None, 3))``: the table is the same as for the same layers built at
    the images' size, with the output shapes at that size."""
    import keras

    conv = keras.layers.Conv2D(4, 3, activation="relu", name="c1")
    pool = keras.layers.MaxPooling2D(name="p1")
    head = [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3)]

    def build(shape):
        inputs = keras.Input(shape)
        return keras.Model(inputs, head[1](head[0](pool(conv(inputs)))))

    images = np.random.default_rng(0).integers(0, 255, (3, 20, 24, 3)).astype("uint8")
    variable = convviz.sparsity(build((None, None, 3)), images, batch_size=2, verbose=False)
    fixed = convviz.sparsity(build((20, 24, 3)), images, batch_size=2, verbose=False)
    assert [r.output_shape for r in variable.rows] == [(18, 22, 4), (9, 11, 4)]
    for a, b in zip(variable.rows, fixed.rows):
        assert a == b


# -- the corpus over the public API ----------------------------------------------------------
# Rows "function: what is wrong" -> (call(tmp, blocker), exception type, message fragment).
# Models are built once per module (they are only read); each call is one bad input.


@functools.cache
def _m(kind="tiny"):
    """Small models, built once: ``tiny`` (softmax, 32 x 32), ``two`` (two outputs),
    ``dense`` (no convolution)."""
    import keras

    if kind == "tiny":
        return _tiny()
    if kind == "two":
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, [keras.layers.Dense(3, name="kind")(x), keras.layers.Dense(1, name="age")(x)],
                           name="two_heads")
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="scores")(x), name="no_conv")


_IMG = np.zeros((32, 32, 3), "uint8")
_TWO = np.zeros((2, 32, 32, 3), "uint8")


def _corpus() -> dict:
    from convviz.objectives import Objective

    m, img = _m, _IMG
    rows = {}

    def add(function, what, call, kind, fragment):
        name = f"{function}: {what}"
        assert name not in rows, name
        rows[name] = (call, kind, fragment)

    # Images, through every function that takes them.
    takers = {
        "activations": lambda images: convviz.activations(m(), images),
        "gradcam": lambda images: convviz.gradcam(m(), images),
        "explain": lambda images: convviz.explain(m(), images, method="gradcam_plusplus"),
        "cam": lambda images: convviz.cam(m(), images, method="xgradcam"),
        "attribute": lambda images: convviz.attribute(m(), images, method="saliency"),
        "sparsity": lambda images: convviz.sparsity(m(), images, verbose=False),
        "evaluate": lambda images: convviz.evaluate(m(), images, verbose=False),
    }
    bad_images = {
        "None as the images": (lambda tmp: None, "from NoneType"),
        "an empty list": (lambda tmp: [], "empty list of images"),
        "an empty batch": (lambda tmp: np.zeros((0, 32, 32, 3)), "empty batch"),
        "a complex array": (lambda tmp: np.zeros((32, 32, 3), complex), "real numeric image"),
        "a boolean mask": (lambda tmp: np.zeros((32, 32, 3), bool), "real numeric image"),
        "a rank-5 array": (lambda tmp: np.zeros((1, 2, 32, 32, 3)), "got rank 5"),
        "two channels": (lambda tmp: np.zeros((32, 32, 2)), "1, 3 or 4 channels"),
        "a channels-first batch": (lambda tmp: np.zeros((2, 3, 32, 32)), "np.moveaxis(x, 1, -1)"),
        "NaN pixels": (lambda tmp: np.full((32, 32, 3), np.nan), "NaN or infinite"),
        "a missing file": (lambda tmp: str(tmp / "missing.png"), "not found"),
        "a dict": (lambda tmp: {"image": img}, "Cannot read images from a dict (keys 'image')"),
        "float64 pixels beyond float32's range": (lambda tmp: np.full((32, 32, 3), 1e39),
                                                  "holds values up to 1e+39, beyond float32's range"),
    }
    for function, take in takers.items():
        for what, (make, fragment) in bad_images.items():
            add(function, what, lambda tmp, blocker, take=take, make=make: take(make(tmp)), InputError, fragment)

    # Models, through every function that takes one.
    model_takers = {
        "activations": lambda model: convviz.activations(model, img),
        "gradcam": lambda model: convviz.gradcam(model, img),
        "explain": lambda model: convviz.explain(model, img),
        "attribute": lambda model: convviz.attribute(model, img, method="saliency"),
        "sparsity": lambda model: convviz.sparsity(model, img, verbose=False),
        "filters": lambda model: convviz.filters(model, "conv_a", filters=1, steps=1, verbose=False),
        "visualize": lambda model: convviz.visualize(model, Objective.classes([0]), steps=1, verbose=False),
        "Inspector": lambda model: convviz.Inspector(model),
    }
    for function, take in model_takers.items():
        add(function, "None as the model", lambda tmp, blocker, take=take: take(None), ModelStructureError,
            "Expected a keras.Model, a convviz.Inspector or a .keras path; got NoneType")
        add(function, "a layer as the model", lambda tmp, blocker, take=take: take(keras_layer()),
            ModelStructureError, "got Conv2D")
        add(function, "a missing model file", lambda tmp, blocker, take=take: take(str(tmp / "nope.keras")),
            InputError, "Model file not found")
    add("gallery", "an unknown built-in model", lambda tmp, blocker: convviz.gallery(
        "resnet_9000", [img], tmp / "g", verbose=False), InputError, "Unknown model 'resnet_9000'")
    add("evaluate", "an unknown built-in model", lambda tmp, blocker: convviz.evaluate(
        "efficientnet_lite9", [img], verbose=False), InputError, "did you mean 'efficientnet_lite0'")

    # Several outputs.
    two = np.zeros((16, 16, 3), "uint8")
    for function, call in {
        "gradcam": lambda: convviz.gradcam(m("two"), two),
        "explain": lambda: convviz.explain(m("two"), two, method="scorecam"),
        "attribute": lambda: convviz.attribute(m("two"), two, method="saliency"),
        "evaluate": lambda: convviz.evaluate(m("two"), [two], verbose=False),
        "visualize": lambda: convviz.visualize(m("two"), Objective.classes([0]), steps=1, verbose=False),
    }.items():
        add(function, "two outputs and no output=", lambda tmp, blocker, call=call: call(), ModelStructureError,
            "has 2 outputs ('kind' (None, 3), 'age' (None, 1)); choose the one to explain with output=")
    add("explain", "an unknown output", lambda tmp, blocker: convviz.explain(m("two"), two, output="agee"),
        InputError, "has no output 'agee'; its outputs: 'kind' (None, 3), 'age' (None, 1) (did you mean 'age'?)")
    add("gradcam", "an output index out of range", lambda tmp, blocker: convviz.gradcam(m("two"), two, output=2),
        InputError, "output=2 is out of range")
    add("attribute", "an output as a float", lambda tmp, blocker: convviz.attribute(
        m("two"), two, method="saliency", output=0.5), InputError, "output must be an output name or index")
    add("visualize", "output= with a channel objective", lambda tmp, blocker: convviz.visualize(
        m("two"), Objective.channels("conv", [0]), output="age", steps=1, verbose=False), InputError,
        "output= chooses the scores a class objective draws")

    # Layers.
    for function, call in {
        "activations": lambda layer: convviz.activations(m(), img, layers=layer),
        "gradcam": lambda layer: convviz.gradcam(m(), img, layer=layer),
        "explain": lambda layer: convviz.explain(m(), img, method="layercam", layer=layer),
        "cam": lambda layer: convviz.cam(m(), img, method="scorecam", layer=layer),
        "sparsity": lambda layer: convviz.sparsity(m(), img, layers=layer, verbose=False),
        "filters": lambda layer: convviz.filters(m(), layer, filters=1, steps=1, verbose=False),
    }.items():
        add(function, "an unknown layer", lambda tmp, blocker, call=call: call("conv_c"), LayerNotFoundError,
            "No layer named 'conv_c' in this model. Closest names: 'conv_b', 'conv_a'")
        add(function, "a layer index", lambda tmp, blocker, call=call: call(3), LayerNotFoundError,
            "A layer is named by a string (name or 'outer/inner' path) or given as the layer object; got int")
    add("activations", "an empty layer list", lambda tmp, blocker: convviz.activations(m(), img, layers=[]),
        InputError, "layers=[] asks for no layer")
    add("gradcam", "a layer without a spatial output", lambda tmp, blocker: convviz.gradcam(
        m(), img, layer="global_average_pooling2d"), ModelStructureError, "needs a layer with a spatial output")
    add("filters", "a dense layer", lambda tmp, blocker: convviz.filters(m(), "dense", filters=1, steps=1,
                                                                         verbose=False), ModelStructureError,
        "Layer 'dense' (Dense) outputs (None, 3); filter visualization needs a (batch, height, width, channels)")
    add("activations", "a model without a convolution", lambda tmp, blocker: convviz.activations(
        m("dense"), np.zeros((4, 4, 3))), ModelStructureError, "has no convolution or pooling layer")
    add("gradcam", "a model without a convolution", lambda tmp, blocker: convviz.gradcam(
        m("dense"), np.zeros((4, 4, 3))), ModelStructureError, "This model has no convolution layer")

    # Numbers: batch_size everywhere.
    for function, call in {
        "activations": lambda b: convviz.activations(m(), img, batch_size=b),
        "gradcam": lambda b: convviz.gradcam(m(), img, batch_size=b),
        "explain": lambda b: convviz.explain(m(), img, batch_size=b),
        "attribute": lambda b: convviz.attribute(m(), img, method="smoothgrad", batch_size=b),
        "sparsity": lambda b: convviz.sparsity(m(), img, batch_size=b, verbose=False),
        "evaluate": lambda b: convviz.evaluate(m(), img, batch_size=b, verbose=False),
        "filters": lambda b: convviz.filters(m(), "conv_a", filters=1, steps=1, batch_size=b, verbose=False),
    }.items():
        for value in (0, -2, 1.5, "8", True):
            add(function, f"batch_size={value!r}", lambda tmp, blocker, call=call, value=value: call(value),
                InputError, f"batch_size must be a positive integer, got {value!r}")

    # Classes.
    for function, call in {
        "gradcam": lambda c: convviz.gradcam(m(), _TWO, class_index=c),
        "explain": lambda c: convviz.explain(m(), _TWO, method="scorecam", class_index=c),
        "attribute": lambda c: convviz.attribute(m(), _TWO, method="saliency", class_index=c),
        "evaluate": lambda c: convviz.evaluate(m(), _TWO, class_index=c, verbose=False),
    }.items():
        expected = "class_index must be None, an int, or one int per image (2); got "
        add(function, "a class out of range", lambda tmp, blocker, call=call: call(3), InputError,
            "class_index [3, 3] out of range: expected 0..2")
        add(function, "a negative class", lambda tmp, blocker, call=call: call(-1), InputError,
            "class_index [-1, -1] out of range")
        add(function, "a class per image, too few", lambda tmp, blocker, call=call: call([0]), InputError,
            expected + "[0]")
        add(function, "a class as text", lambda tmp, blocker, call=call: call("cat"), InputError, expected + "'cat'")
        add(function, "a fractional class", lambda tmp, blocker, call=call: call(1.5), InputError, expected + "1.5")

    # Methods and their options.
    add("explain", "an unknown method", lambda tmp, blocker: convviz.explain(m(), img, method="gradcamm"),
        InputError, "did you mean 'gradcam'")
    add("explain", "a gallery kind as a method", lambda tmp, blocker: convviz.explain(m(), img, method="sparsity"),
        InputError, "Unknown explanation method 'sparsity'")
    add("explain", "an option the method does not take", lambda tmp, blocker: convviz.explain(
        m(), img, method="gradcam", eps=1e-3), InputError,
        "Grad-CAM takes no option 'eps'; its options: layer, logits, batch_size, output")
    add("explain", "logits as text", lambda tmp, blocker: convviz.explain(m(), img, logits="yes"), InputError,
        "logits must be True or False")
    add("attribute", "a CAM method", lambda tmp, blocker: convviz.attribute(m(), img, method="gradcam"),
        InputError, "not a pixel attribution method")
    add("attribute", "zero integration steps", lambda tmp, blocker: convviz.attribute(
        m(), img, method="integrated_gradients", steps=0), InputError, 'steps must be a positive integer or "auto", got 0')
    add("attribute", "an unknown integration rule", lambda tmp, blocker: convviz.attribute(
        m(), img, method="integrated_gradients", rule="simpson"), InputError, "rule must be one of gausslegendre")
    add("attribute", "negative SmoothGrad noise", lambda tmp, blocker: convviz.attribute(
        m(), img, method="smoothgrad", noise=-0.1), InputError, "noise must be a number >= 0, got -0.1")
    add("attribute", "an occlusion window larger than the image", lambda tmp, blocker: convviz.attribute(
        m(), img, method="occlusion", window=64), InputError, "window (64, 64) is larger than the image (32, 32)")
    add("attribute", "a zero occlusion stride", lambda tmp, blocker: convviz.attribute(
        m(), img, method="occlusion", stride=0), InputError, "stride must be a positive integer or a (height, width)")
    add("attribute", "an option the method does not take", lambda tmp, blocker: convviz.attribute(
        m(), img, method="saliency", steps=3), InputError, "Saliency takes no option 'steps'; its options: abs,")
    add("cam", "a non-positive Grad-CAM++ eps", lambda tmp, blocker: convviz.cam(
        m(), img, method="gradcam_plusplus", eps=0), InputError, "eps must be a positive number, got 0")
    add("cam", "upsample as text", lambda tmp, blocker: convviz.cam(m(), img, upsample="yes"), InputError,
        "upsample must be True or False, got 'yes'")

    # sparsity's own.
    add("sparsity", "threshold as text", lambda tmp, blocker: convviz.sparsity(m(), img, threshold="0.1"),
        InputError, "threshold must be a finite number, got '0.1'")
    add("sparsity", "a NaN threshold", lambda tmp, blocker: convviz.sparsity(m(), img, threshold=float("nan")),
        InputError, "threshold must be a finite number")
    add("sparsity", "a stream of text", lambda tmp, blocker: convviz.sparsity(
        m(), iter(["a", "b"]), verbose=False), InputError, "Image file not found: 'a'")
    add("sparsity", "an empty stream", lambda tmp, blocker: convviz.sparsity(m(), iter([]), verbose=False),
        InputError, "holds no images")
    add("sparsity", "a stream of empty batches", lambda tmp, blocker: convviz.sparsity(
        m(), iter([np.zeros((0, 32, 32, 3))]), verbose=False), InputError, "empty batch")
    add("sparsity", "verbose as text", lambda tmp, blocker: convviz.sparsity(m(), img, verbose="loud"),
        InputError, "verbose must be True, False, 0, 1 or 2")

    # filters' own.
    fil = functools.partial(convviz.filters, verbose=False)
    add("filters", "no filters", lambda tmp, blocker: fil(m(), "conv_a", filters=[], steps=1), InputError,
        "filters=[] selects no filter of layer 'conv_a' (6 filters)")
    add("filters", "a filter index out of range", lambda tmp, blocker: fil(m(), "conv_a", filters=[6], steps=1),
        InputError, "Filter index 6 is out of range: layer 'conv_a' has 6 filters (indices 0 to 5)")
    add("filters", "a negative filter index", lambda tmp, blocker: fil(m(), "conv_a", filters=[-1], steps=1),
        InputError, "Filter index -1 is out of range")
    add("filters", "zero steps", lambda tmp, blocker: fil(m(), "conv_a", filters=1, steps=0), InputError,
        "steps must be a positive integer, got 0")
    add("filters", "an unknown parametrization", lambda tmp, blocker: fil(
        m(), "conv_a", filters=1, parametrization="wavelet"), InputError,
        "parametrization must be one of 'pixel', 'fft', 'maco'; got 'wavelet'")
    add("filters", "an unknown objective", lambda tmp, blocker: fil(m(), "conv_a", filters=1, objective="max"),
        InputError, "objective must be one of 'channel', 'neuron'; got 'max'")
    add("filters", "a negative learning rate", lambda tmp, blocker: fil(
        m(), "conv_a", filters=1, steps=1, learning_rate=-1.0), InputError, "learning_rate")
    add("filters", "a NaN learning rate", lambda tmp, blocker: fil(
        m(), "conv_a", filters=1, steps=1, learning_rate=float("nan")), InputError, "learning_rate")
    add("filters", "a pixel range upside down", lambda tmp, blocker: fil(
        m(), "conv_a", filters=1, steps=1, pixel_range=(255, 0)), InputError,
        "pixel_range must be (low, high) with low < high")
    add("filters", "a seed as text", lambda tmp, blocker: fil(m(), "conv_a", filters=1, steps=1, seed="x"),
        InputError, "seed must be an integer >= 0 or None, got 'x'")
    add("filters", "an unknown transform set", lambda tmp, blocker: fil(
        m(), "conv_a", filters=1, steps=1, parametrization="fft", transforms="wobble"), InputError,
        "transforms must be one of 'auto', 'standard', 'crops', 'none'; got 'wobble'")
    add("filters", "a negative diversity", lambda tmp, blocker: fil(
        m(), "conv_a", filters=1, steps=1, diversity=-1.0), InputError, "diversity must be a finite non-negative")
    add("filters", "zero images per filter", lambda tmp, blocker: fil(
        m(), "conv_a", filters=1, steps=1, images_per_filter=0), InputError, "images_per_filter")
    add("filters", "a crop larger than the image", lambda tmp, blocker: fil(
        m(), "conv_a", filters=1, steps=1, size=32, crop=20), InputError, "crop=20 removes the whole 32x32 image")
    add("filters", "a size of one pixel", lambda tmp, blocker: fil(
        m(), "conv_b", filters=1, steps=1, size=1, crop=0), InputError, "on a 1x1 image")

    # visualize's own.
    vis = functools.partial(convviz.visualize, verbose=False, steps=1)
    add("visualize", "a layer name as the objective", lambda tmp, blocker: vis(m(), "conv_a"), InputError,
        "objective must be a convviz.objectives.Objective")
    add("visualize", "a class out of range", lambda tmp, blocker: vis(m(), Objective.classes([7])),
        InputError, "Index 7 is out of range: there are 3 classes (indices 0 to 2)")
    add("visualize", "a channel out of range", lambda tmp, blocker: vis(m(), Objective.channels("conv_a", [6])),
        InputError, "Index 6 is out of range: there are 6 channels in layer 'conv_a'")
    add("visualize", "an unknown layer", lambda tmp, blocker: vis(m(), Objective.channels("conv_z", [0])),
        LayerNotFoundError, "No layer named 'conv_z'")
    add("visualize", "directions of the wrong width", lambda tmp, blocker: vis(
        m(), Objective.directions("conv_a", np.ones((2, 5)))), InputError,
        "The directions have 5 components but layer 'conv_a' has 6 channels")
    add("visualize", "a class image at another size", lambda tmp, blocker: vis(
        m(), Objective.classes([0]), size=64), InputError, "Pass size=None")
    add("visualize", "diversity for a class", lambda tmp, blocker: vis(
        m(), Objective.classes([0]), diversity=1.0, images_per_target=2), InputError, "diversity= needs")
    add("Objective", "channel indices as text", lambda tmp, blocker: Objective.channels("conv_a", "all"),
        InputError, "indices must be non-negative integers; got 'all'")
    add("Objective", "directions with NaN", lambda tmp, blocker: Objective.directions(
        "conv_a", np.full(6, np.nan)), InputError, "directions must be a (K, C) array of finite numbers")
    add("Objective", "no classes", lambda tmp, blocker: Objective.classes([]), InputError,
        "classes must be non-negative integers; got []")

    # evaluate's own.
    ev = functools.partial(convviz.evaluate, verbose=False)
    add("evaluate", "an unknown metric", lambda tmp, blocker: ev(m(), img, metrics=["delition"]), InputError,
        "did you mean 'deletion'")
    add("evaluate", "an unknown method", lambda tmp, blocker: ev(m(), img, methods=["gradkam"]), InputError,
        "Unknown explanation method 'gradkam'")
    add("evaluate", "no methods", lambda tmp, blocker: ev(m(), img, methods=[]), InputError,
        "methods is empty; name at least one")
    add("evaluate", "box metrics without boxes", lambda tmp, blocker: ev(m(), img, metrics=["pointing_game"]),
        InputError, "pass boxes=[(x0, y0, x1, y1), ...], one per image")
    add("evaluate", "a box per image, too few", lambda tmp, blocker: ev(
        m(), _TWO, boxes=[(0, 0, 8, 8)]), InputError, "2 image(s) but 1 box(es)")
    add("evaluate", "a box upside down", lambda tmp, blocker: ev(m(), img, boxes=[(8, 8, 0, 0)]), InputError,
        "An empty box: (8, 8, 0, 0)")
    add("evaluate", "a box with three numbers", lambda tmp, blocker: ev(m(), img, boxes=[(0, 0, 8)]),
        InputError, "A box is (x0, y0, x1, y1) or a convviz.shapes.BoundingBox; got (0, 0, 8)")
    add("evaluate", "options for a method not evaluated", lambda tmp, blocker: ev(
        m(), img, method_options={"gradkam": {}}), InputError,
        "method_options for 'gradkam', which is unknown")
    add("evaluate", "an option a method does not take", lambda tmp, blocker: ev(
        m(), img, method_options={"gradcam": {"eps": 1}}), InputError,
        "method_options['gradcam']: Grad-CAM takes no option 'eps'")
    add("evaluate", "an option a metric does not take", lambda tmp, blocker: ev(
        m(), img, metric_options={"deletion": {"stride": 2}}), InputError,
        "metric_options['deletion']: unknown option 'stride' (options: steps, baseline, score)")
    add("evaluate", "zero bootstrap resamples", lambda tmp, blocker: ev(m(), img, bootstrap=0), InputError,
        "bootstrap must be a positive integer")
    add("evaluate", "a seed as text", lambda tmp, blocker: ev(m(), img, seed="x"), InputError,
        "seed must be an integer >= 0, got 'x'")
    add("evaluate", "image names, too many", lambda tmp, blocker: ev(m(), img, image_names=["a", "b"]),
        InputError, "1 image(s) but image_names has 2 name(s)")

    # gallery's own.
    gal = functools.partial(convviz.gallery, verbose=False)
    add("gallery", "an unknown figure kind", lambda tmp, blocker: gal(m(), [img], tmp / "g", kinds=["heatmap"]),
        InputError, "Unknown figure kind(s) ['heatmap']")
    add("gallery", "zero filters", lambda tmp, blocker: gal(m(), [img], tmp / "g", filters=0), InputError,
        "filters must be a positive integer")
    add("gallery", "zero channels per grid", lambda tmp, blocker: gal(m(), [img], tmp / "g", max_channels=0),
        InputError, "max_channels must be a positive integer")
    add("gallery", "an unknown parametrization", lambda tmp, blocker: gal(
        m(), [img], tmp / "g", filter_parametrization="wavelet"), InputError, "filter_parametrization must be")
    add("gallery", "an unknown CAM layer", lambda tmp, blocker: gal(m(), [img], tmp / "g", cam_layer="conv_z"),
        LayerNotFoundError, "No layer named 'conv_z'")
    add("gallery", "image names, too few", lambda tmp, blocker: gal(m(), _TWO, tmp / "g", image_names=["a"]),
        InputError, "2 images but 1 image_names")
    add("gallery", "a non-empty output folder", lambda tmp, blocker: gal(
        m(), [img], _text(_folder(tmp / "g") / "x.txt").parent), InputError, "is not empty; refusing to overwrite it")
    add("gallery", "two outputs and CAM figures", lambda tmp, blocker: gal(
        m("two"), [two], tmp / "g", kinds=["gradcam"]), ModelStructureError, "choose the one to explain")
    add("gallery", "an unknown output", lambda tmp, blocker: gal(
        m("two"), [two], tmp / "g", kinds=["gradcam"], output="height"), InputError, "has no output 'height'")
    add("gallery", "verbose as text", lambda tmp, blocker: gal(m(), [img], tmp / "g", verbose="yes"),
        InputError, "verbose must be")

    # Saved results, data folders and figures.
    add("Explanation.load", "a missing file", lambda tmp, blocker: convviz.Explanation.load(tmp / "maps.npz"),
        InputError, "A saved explanation (.npz) file not found")
    add("Explanation.load", "a text file", lambda tmp, blocker: convviz.Explanation.load(_text(tmp / "m.npz")),
        InputError, "is not a saved explanation (.npz) file")
    add("Explanation.load", "a folder", lambda tmp, blocker: convviz.Explanation.load(_folder(tmp / "m.npz")),
        InputError, "is a folder, not a saved explanation (.npz) file")
    add("EvaluationTable.load", "a missing file", lambda tmp, blocker: convviz.EvaluationTable.load(
        tmp / "evaluation.json"), InputError, "An evaluation table (.json) file not found")
    add("EvaluationTable.load", "a JSON file of something else", lambda tmp, blocker: convviz.EvaluationTable.load(
        _bytes(tmp / "e.json", b'{"values": 3}')), InputError, "is not an evaluation table (.json) file")
    add("data.load_datasets", "a missing folder", lambda tmp, blocker: convviz.data.load_datasets(
        tmp / "nodata", image_size=(32, 32)), InputError, "does not exist. load_datasets expects")
    add("data.make_offline_dataset", "no training images", lambda tmp, blocker: convviz.data.make_offline_dataset(
        tmp / "o", n_train=0), InputError, "n_train must be a positive number of images per class, got 0")
    add("plot.activations", "None", lambda tmp, blocker: convviz.plot.activations(None), InputError,
        "plot.activations draws {layer name: (N, H, W, C) array}")
    add("models.small_convnet", "an input too small", lambda tmp, blocker: convviz.models.small_convnet(
        input_shape=(8, 8, 3)), InputError, "height and width >= 78")

    # The shared checks, where each is used.
    add("attribute", "a SmoothGrad seed as text", lambda tmp, blocker: convviz.attribute(
        m(), img, method="smoothgrad", seed="x"), InputError, "seed must be an integer >= 0, got 'x'")
    add("attribute", "zero SmoothGrad samples", lambda tmp, blocker: convviz.attribute(
        m(), img, method="smoothgrad", samples=0), InputError, "samples must be a positive integer, got 0")
    add("metrics.deletion_insertion", "an unknown score", lambda tmp, blocker: convviz.metrics.deletion_insertion(
        m(), img, np.ones((1, 4, 4)), score="odds"), InputError, "score must be one of 'probability'")
    add("metrics.mufidelity", "a subset of the whole image", lambda tmp, blocker: convviz.metrics.mufidelity(
        m(), img, np.ones((1, 4, 4)), subset_percent=1.0), InputError,
        "subset_percent must be a number between 0 and 1, got 1.0")
    add("EvaluationTable.summary", "a confidence of 95", lambda tmp, blocker: convviz.evaluate(
        m(), img, methods=["saliency"], metrics=["average_drop"], verbose=False).summary(confidence=95),
        InputError, "confidence must be a number between 0 and 1, got 95")
    add("plot.aggregate_channels", "an unknown aggregation", lambda tmp, blocker: convviz.plot.aggregate_channels(
        np.ones((1, 4, 4, 3)), "mean"), InputError, "aggregate must be one of 'sum', 'abs_sum', 'max_abs'; got 'mean'")
    add("shapes.load_boxes", "an unknown split", lambda tmp, blocker: convviz.shapes.load_boxes(
        tmp, "holdout"), InputError, "split must be one of")

    # Inspector.
    add("Inspector", "an unknown layer", lambda tmp, blocker: convviz.Inspector(m()).find_layer("conv"),
        LayerNotFoundError, "No layer named 'conv' in this model. Closest names: 'conv_b', 'conv_a'")
    add("Inspector", "a model with two inputs", lambda tmp, blocker: convviz.Inspector(two_inputs()),
        ModelStructureError, "has 2 inputs")
    add("Inspector", "a model of vectors", lambda tmp, blocker: convviz.Inspector(vector_model()),
        ModelStructureError, "expects an image input of shape (height, width, channels)")
    return rows


def keras_layer():
    import keras

    return keras.layers.Conv2D(2, 3)


def two_inputs():
    import keras

    a, b = keras.Input((8, 8, 3)), keras.Input((8, 8, 3))
    return keras.Model([a, b], keras.layers.Add()([a, b]))


def vector_model():
    import keras

    inputs = keras.Input((10,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


CORPUS = _corpus()


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus(name, tmp_path, blocker):
    call, kind, fragment = CORPUS[name]
    with pytest.raises(ConvvizError) as info:
        call(tmp_path, blocker)
    assert isinstance(info.value, kind), f"{type(info.value).__name__}: {info.value}"
    assert fragment in str(info.value), str(info.value)


# -- the command line: one line, exit 2, nothing written -------------------------------------
# Rows "command: what is wrong" -> (argv(tmp, files), message fragment); ``files`` holds the
# saved tiny model ("model"), two images ("images"), a file ("blocker"), a Lambda model
# ("lambda"), a two-output model ("two") and its image ("two_image").

def _usual(command, out, *extra):
    """``argv(tmp, files)`` for ``COMMAND MODEL IMAGE... --out tmp/OUT EXTRA...`` with the
    tiny model and its two images: what most rows change is only the last words."""
    return lambda tmp, f: [command, f["model"], *f["images"], "--out", str(tmp / out), *extra]


CLI = {
    "gallery: a missing model file": (
        lambda tmp, f: ["gallery", str(tmp / "nope.keras"), *f["images"], "--out", str(tmp / "g")],
        "Model file not found"),
    "gallery: an unknown built-in model": (
        lambda tmp, f: ["gallery", "efficientnet_lite9", *f["images"], "--out", str(tmp / "g")],
        "did you mean 'efficientnet_lite0'"),
    "gallery: a missing image": (
        lambda tmp, f: ["gallery", f["model"], str(tmp / "nope.png"), "--out", str(tmp / "g")],
        "Image file not found"),
    "gallery: an unknown figure kind": (
        _usual("gallery", "g", "--kinds", "heat"),
        "Unknown figure kind(s) ['heat']"),
    "gallery: zero filters": (
        _usual("gallery", "g", "--filters", "0"),
        "filters must be a positive integer"),
    "gallery: filters as text": (
        _usual("gallery", "g", "--filters", "many"),
        "argument --filters: invalid int value: 'many'"),
    "gallery: zero channels per grid": (
        _usual("gallery", "g", "--max-channels", "0"),
        "max_channels must be a positive integer"),
    "gallery: an unknown parametrization": (
        _usual("gallery", "g", "--filter-parametrization", "wavelet"), "invalid choice: 'wavelet'"),
    "gallery: an unknown CAM layer": (
        _usual("gallery", "g", "--cam-layer", "conv_z"),
        "No layer named 'conv_z'"),
    "gallery: an unknown layer": (
        _usual("gallery", "g", "--layers", "conv_a,conv_z"),
        "No layer named 'conv_z'"),
    "gallery: a Lambda model without --no-safe-mode": (
        lambda tmp, f: ["gallery", f["lambda"], *f["images"], "--out", str(tmp / "g")],
        "or give the command line --no-safe-mode"),
    "gallery: two outputs without --output": (
        lambda tmp, f: ["gallery", f["two"], f["two_image"], "--out", str(tmp / "g"), "--kinds", "gradcam"],
        "has 2 outputs"),
    "gallery: an unknown output": (
        lambda tmp, f: ["gallery", f["two"], f["two_image"], "--out", str(tmp / "g"), "--kinds", "gradcam",
                        "--output", "height"], "has no output 'height'"),
    "gallery: no --out": (
        lambda tmp, f: ["gallery", f["model"], *f["images"]], "the following arguments are required: --out"),
    "explain: a figure with an unknown extension": (
        _usual("explain", "cat.heic"),
        "the figure's format comes from its extension"),
    "explain: an unknown method": (
        _usual("explain", "c.png", "--method", "gradkam"),
        "invalid choice: 'gradkam'"),
    "explain: a layer for an attribution method": (
        _usual("explain", "c.png", "--method", "saliency", "--layer", "conv_a"), "--layer: saliency attributes the input pixels"),
    "explain: a view for a CAM method": (
        _usual("explain", "c.png", "--view", "signed"),
        "--view draws pixel attributions"),
    "explain: a class as text": (
        _usual("explain", "c.png", "--class-index", "cat"),
        "--class-index takes integers, got 'cat'"),
    "explain: a class out of range": (
        _usual("explain", "c.png", "--class-index", "7"),
        "out of range: expected 0..2"),
    "explain: an unknown layer": (
        _usual("explain", "c.png", "--layer", "conv_z"),
        "No layer named 'conv_z'"),
    "explain: a figure inside a file": (
        lambda tmp, f: ["explain", f["model"], *f["images"], "--out", str(pathlib.Path(f["blocker"]) / "c.png")],
        "is a file"),
    "explain: maps inside a file": (
        lambda tmp, f: ["explain", f["model"], *f["images"], "--out", str(tmp / "c.png"),
                        "--maps", str(pathlib.Path(f["blocker"]) / "maps.npz")], "is a file"),
    "explain: two outputs without --output": (
        lambda tmp, f: ["explain", f["two"], f["two_image"], "--out", str(tmp / "c.png")], "has 2 outputs"),
    "explain: an output index out of range": (
        lambda tmp, f: ["explain", f["two"], f["two_image"], "--out", str(tmp / "c.png"), "--output", "5"],
        "output=5 is out of range"),
    "explain: a Lambda model without --no-safe-mode": (
        lambda tmp, f: ["explain", f["lambda"], *f["images"], "--out", str(tmp / "c.png")],
        "Keras refuses to load"),
    "evaluate: an unknown metric": (
        _usual("evaluate", "e", "--metrics", "delition"),
        "did you mean 'deletion'"),
    "evaluate: an unknown method": (
        _usual("evaluate", "e", "--methods", "gradkam"),
        "Unknown explanation method 'gradkam'"),
    "evaluate: a missing boxes file": (
        lambda tmp, f: ["evaluate", f["model"], *f["images"], "--out", str(tmp / "e"),
                        "--boxes", str(tmp / "boxes.json")], "boxes.json"),
    "evaluate: boxes that are not JSON": (
        lambda tmp, f: ["evaluate", f["model"], *f["images"], "--out", str(tmp / "e"),
                        "--boxes", str(_text(tmp / "boxes.json"))], "boxes.json"),
    "evaluate: one box for two images": (
        lambda tmp, f: ["evaluate", f["model"], *f["images"], "--out", str(tmp / "e"),
                        "--boxes", str(_bytes(tmp / "boxes.json", b"[[0, 0, 8, 8]]"))], "box"),
    "evaluate: a method option without a value": (
        _usual("evaluate", "e", "--method-option", "occlusion.stride"), "--method-option"),
    "evaluate: an option a method does not take": (
        _usual("evaluate", "e", "--method-option", "gradcam.eps=1"), "Grad-CAM takes no option 'eps'"),
    "evaluate: a metric option for an unknown metric": (
        _usual("evaluate", "e", "--metric-option", "delition.steps=3"), "delition"),
    "evaluate: zero bootstrap resamples": (
        _usual("evaluate", "e", "--bootstrap", "0"),
        "bootstrap must be a positive integer"),
    "evaluate: an unknown CAM layer": (
        _usual("evaluate", "e", "--cam-layer", "conv_z"),
        "No layer named 'conv_z'"),
    "evaluate: an output folder inside a file": (
        lambda tmp, f: ["evaluate", f["model"], *f["images"], "--out", str(pathlib.Path(f["blocker"]) / "e")],
        "is a file"),
    "evaluate: a non-empty output folder": (
        lambda tmp, f: ["evaluate", f["model"], *f["images"], "--out", str(_text(_folder(tmp / "e") / "x").parent)],
        "is not empty"),
    "evaluate: two outputs without --output": (
        lambda tmp, f: ["evaluate", f["two"], f["two_image"], "--out", str(tmp / "e")], "has 2 outputs"),
    "demo: zero epochs": (lambda tmp, f: ["demo", "--out", str(tmp / "d"), "--epochs", "0"],
                          "--epochs must be a positive integer, got 0"),
    "demo: zero filter steps": (lambda tmp, f: ["demo", "--out", str(tmp / "d"), "--filter-steps", "0"],
                                "--filter-steps must be a positive integer, got 0"),
    "demo: an output folder inside a file": (
        lambda tmp, f: ["demo", "--out", str(pathlib.Path(f["blocker"]) / "d")], "is a file"),
    "(no command)": (lambda tmp, f: [], "the following arguments are required: COMMAND"),
    "(an unknown command)": (lambda tmp, f: ["explian"], "invalid choice: 'explian'"),
}


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory) -> dict:
    from test_gallery import write_images

    folder = tmp_path_factory.mktemp("cli_files")
    _m().save(folder / "tiny.keras")
    _m("two").save(folder / "two.keras")
    (folder / "blocker").write_text("not a folder")
    return {"model": str(folder / "tiny.keras"), "images": write_images(folder / "images", 2),
            "blocker": str(folder / "blocker"), "lambda": str(_lambda_model(folder)),
            "two": str(folder / "two.keras"), "two_image": write_images(folder / "two_images", 1)[0]}


@pytest.mark.parametrize("name", list(CLI))
def test_cli_corpus(name, tmp_path, cli_files, capsys):
    argv, fragment = CLI[name][0](tmp_path, cli_files), CLI[name][1]
    before = sorted(tmp_path.rglob("*"))
    try:
        status = cli.main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    prog = "convviz" if name.startswith("(") else f"convviz {argv[0]}"
    assert err.startswith(f"{prog}: error: ") and err.count("\n") == 1, err
    assert fragment in err, err
    assert sorted(tmp_path.rglob("*")) == before


# -- valid but unusual, continued -------------------------------------------------------------


def test_the_chosen_output_of_a_two_output_model_is_explained_as_that_output_alone():
    """``output=`` explains one head exactly as the model with that head alone would."""
    import keras

    model = _m("two")
    alone = keras.Model(model.inputs, model.outputs[1])
    images = np.random.default_rng(1).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    for output in ("age", 1, -1):
        got = convviz.explain(model, images, method="gradcam", output=output)
        want = convviz.explain(alone, images, method="gradcam")
        np.testing.assert_allclose(got.maps, want.maps, atol=1e-6)
        np.testing.assert_allclose(got.predictions, want.predictions, rtol=1e-6)
    assert got.options["output"] == -1
    saliency = convviz.attribute(model, images, method="saliency", output="kind", class_index=2)
    np.testing.assert_allclose(
        saliency.maps, convviz.attribute(keras.Model(model.inputs, model.outputs[0]), images,
                                         method="saliency", class_index=2).maps, atol=1e-6)
    assert convviz.Inspector(model).output_names() == ["kind", "age"]
    assert convviz.Inspector(model).for_output("age") is convviz.Inspector(model).for_output(1)


def test_cli_explains_the_output_it_is_given_and_opens_a_trusted_file(tmp_path, cli_files, capsys):
    assert cli.main(["explain", cli_files["two"], cli_files["two_image"], "--output", "age",
                     "--out", str(tmp_path / "age.png")]) == 0
    assert (tmp_path / "age.png").stat().st_size > 0
    assert cli.main(["explain", cli_files["lambda"], *cli_files["images"], "--no-safe-mode",
                     "--layer", "conv2d", "--out", str(tmp_path / "lambda.png")]) == 0
    assert (tmp_path / "lambda.png").stat().st_size > 0


def test_load_model_opens_a_lambda_file_only_when_asked(tmp_path):
    from convviz.inspector import load_model

    path = _lambda_model(tmp_path)
    with pytest.raises(InputError, match="safe_mode=False"):
        load_model(path)
    model = load_model(path, safe_mode=False)
    out = convviz.activations(model, np.ones((8, 8, 3), "float32"), layers=["conv2d"])
    assert out["conv2d"].shape == (1, 6, 6, 2)


def _overflowing():
    """A model whose first convolution overflows float32 on huge pixels on every backend
    (a kernel of ones sums 27 values near float32's maximum)."""
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(2, 3, kernel_initializer="ones", name="sums")(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(2, kernel_initializer="ones", name="head")(x))


@pytest.mark.parametrize("function", ["gradcam", "attribute", "activations", "sparsity", "evaluate"])
def test_a_model_that_overflows_is_an_error_that_names_the_first_layer(function):
    from convviz.errors import NonFiniteError

    images = np.ones((2, 8, 8, 3), "float32")
    images[1] = 3e38  # finite pixels, which the convolution's sum takes past float32's maximum
    call = {
        "gradcam": lambda m: convviz.gradcam(m, images, layer="sums"),
        "attribute": lambda m: convviz.attribute(m, images, method="saliency"),
        "activations": lambda m: convviz.activations(m, images, layers=["sums"]),
        "sparsity": lambda m: convviz.sparsity(m, images, layers=["sums"], verbose=False),
        "evaluate": lambda m: convviz.evaluate(m, images, methods=["gradcam"], verbose=False),
    }[function]
    with pytest.raises(NonFiniteError) as info:
        call(_overflowing())
    message = str(info.value)
    assert "for image 1 are not finite" in message, message
    assert "The first layer whose output is not finite is 'sums' (inf)" in message, message
    assert "pixel values run from 3e+38 to 3e+38" in message, message
    assert isinstance(info.value, FloatingPointError)


class _Failing:
    """Layers that fail only when the backend runs them (their shapes are fine)."""

    @staticmethod
    def model(error):
        import keras

        class Fails(keras.layers.Layer):
            def call(self, x):
                if not isinstance(x, keras.KerasTensor):
                    raise error
                return x

            def compute_output_shape(self, shape):
                return shape

        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(2, 3, name="conv")(Fails(name="fails")(inputs))
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(2)(x), name="fragile")


@pytest.mark.parametrize("error, fragment", [
    (RuntimeError("kernel launch failed"), "failed: kernel launch failed."),
    (MemoryError("cannot allocate 17 GiB"), "ran out of memory (cannot allocate 17 GiB.) Pass a smaller batch_size="),
])
def test_a_backend_failure_while_running_names_the_model_and_the_shapes(error, fragment):
    from convviz.errors import ModelRunError

    model = _Failing.model(error)
    for call in (lambda: convviz.activations(model, np.zeros((3, 8, 8, 3))),
                 lambda: convviz.gradcam(model, np.zeros((3, 8, 8, 3)), layer="conv")):
        with pytest.raises(ModelRunError) as info:
            call()
        message = str(info.value)
        assert message.startswith("Running the model on the "), message
        assert "(3, 8, 8, 3)" in message and fragment in message, message


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_tensors_are_read_exactly(dtype):
    import keras

    x = np.random.default_rng(2).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    tensor = keras.ops.convert_to_tensor(x, dtype=dtype)
    want = keras.ops.convert_to_numpy(keras.ops.cast(tensor, "float32"))
    batch = to_batch(tensor)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, want)
    assert np.abs(batch - x).max() <= 255 * 2.0**-8  # bfloat16 keeps 8 bits of mantissa


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_a_mixed_precision_model_gives_float32_results_close_to_its_float32_twin(policy):
    import keras

    def build():
        inputs = keras.Input((16, 16, 3))
        x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", dtype="float32")(x))

    full = build()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        mixed = build()
    finally:
        keras.config.set_dtype_policy(previous)
    mixed.set_weights(full.get_weights())
    images = np.random.default_rng(3).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    acts = convviz.activations(mixed, images, layers=["conv"])["conv"]
    assert acts.dtype == np.float32
    np.testing.assert_allclose(acts, convviz.activations(full, images, layers=["conv"])["conv"], atol=0.05)
    maps = convviz.gradcam(mixed, images, class_index=0)
    assert maps.dtype == np.float32 and np.isfinite(maps).all()
    patterns = convviz.filters(mixed, "conv", filters=[0], steps=2, size=16, crop=0, verbose=False)
    assert np.isfinite(patterns.raw).all()


# -- properties of the input normalisation ----------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_DTYPES = st.sampled_from(["uint8", "uint16", "int8", "int32", "float16", "float32", "float64", "bool",
                           "complex64"])


@st.composite
def _arrays(draw):
    dtype = np.dtype(draw(_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=6))
    if dtype.kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=8 * dtype.itemsize)
    elif dtype.kind == "c":
        elements = st.complex_numbers(max_magnitude=1e3, width=8 * dtype.itemsize)
    else:
        elements = None  # the dtype's whole range
    return draw(hnp.arrays(dtype, shape, elements=elements))


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(array=_arrays(), channels=st.sampled_from([None, 1, 3]),
       size=st.sampled_from([None, (4, 5), (None, 3)]))
def test_to_batch_gives_a_correct_batch_or_a_convviz_error(array, channels, size):
    """Any shape, dtype and values: either a finite float32 (N, H, W, C) batch holding
    the image's own values, or a ConvvizError; the array given is never modified."""
    before = array.copy()
    try:
        batch = to_batch(array, channels=channels, size=size)
    except ConvvizError:
        np.testing.assert_array_equal(array, before)
        return
    np.testing.assert_array_equal(array, before)
    assert batch.dtype == np.float32 and batch.ndim == 4 and np.isfinite(batch).all()
    assert batch.shape[0] >= 1 and min(batch.shape[1:3]) >= 1
    own = 1 if array.ndim == 2 else (3 if array.shape[-1] == 4 else array.shape[-1])  # RGBA loses alpha
    assert batch.shape[-1] == (channels or own)
    if size is not None:
        assert batch.shape[1:3] == tuple(s or o for s, o in zip(size, batch.shape[1:3]))
    elif channels is None and array.ndim in (3, 4) and array.shape[-1] in (1, 3):
        # No resize, no channel change: the values themselves, as float32.
        np.testing.assert_array_equal(batch, np.asarray(array, np.float32).reshape(batch.shape))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(images=st.lists(_arrays(), min_size=1, max_size=3))
def test_to_batch_of_a_list_gives_a_batch_or_a_convviz_error(images):
    before = [a.copy() for a in images]
    try:
        batch = to_batch(images, size=(4, 4), channels=3)
    except ConvvizError:
        pass
    else:
        assert batch.shape[1:] == (4, 4, 3) and batch.dtype == np.float32 and np.isfinite(batch).all()
    for a, b in zip(images, before):
        np.testing.assert_array_equal(a, b)


# -- the caller's arrays are never modified ---------------------------------------------------


@pytest.mark.parametrize("function", [
    "activations", "gradcam", "explain", "cam", "attribute", "sparsity", "evaluate", "gallery", "Inspector.prepare",
])
def test_no_function_modifies_the_arrays_it_is_given(function, tmp_path):
    images = np.random.default_rng(4).integers(0, 256, (2, 32, 32, 3)).astype("float32")
    before = images.copy()
    m = _m()
    {
        "activations": lambda: convviz.activations(m, images),
        "gradcam": lambda: convviz.gradcam(m, images),
        "explain": lambda: convviz.explain(m, images, method="scorecam", layer="conv_b", verbose=False),
        "cam": lambda: convviz.cam(m, images, method="gradcam_plusplus", upsample=True),
        "attribute": lambda: convviz.attribute(m, images, method="integrated_gradients", steps=4, verbose=False),
        "sparsity": lambda: convviz.sparsity(m, images, verbose=False),
        "evaluate": lambda: convviz.evaluate(m, images, methods=["gradcam"], metrics=["deletion"],
                                             metric_options={"deletion": {"steps": 4}}, verbose=False),
        "gallery": lambda: convviz.gallery(m, images, tmp_path / "g", kinds=["activations", "gradcam"],
                                           verbose=False),
        "Inspector.prepare": lambda: convviz.Inspector(m).prepare(images),
    }[function]()
    np.testing.assert_array_equal(images, before)
