"""Bad and unusual input never escapes as a raw exception (issue 20): each case asserts
the exact convviz exception type and a fragment of its message, and, for the command
line, one ``convviz <command>: error: ...`` line, exit status 2 and nothing written.

The corpus grows by rows: a case is a name, a callable that makes the bad call, the
expected exception type and a message fragment.
"""

import pathlib
import struct
import zlib

import numpy as np
import pytest

import convviz
from convviz import cli
from convviz._files import build_atomically, check_out_dir
from convviz._inputs import to_batch
from convviz.errors import ConvvizError, InputError, ModelStructureError, OutputError


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
    x = keras.layers.Lambda(lambda t: t * 2.0)(inputs)
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(x))
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
