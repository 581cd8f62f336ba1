"""Sparsity statistics against a direct numpy computation on full activations."""

import gc
import json
import tracemalloc

import keras
import numpy as np
import pytest
from helpers import reference_output
from matplotlib.figure import Figure

import convviz
from convviz.errors import InputError, LayerNotFoundError


def _model():
    inputs = keras.Input((20, 20, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(16, 3, activation="relu", name="c2")(x)
    x = keras.layers.Conv2D(16, 3, name="linear")(x)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def _images(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 20, 20, 3)).astype("float32")


def _direct(model, images, name, threshold):
    a = reference_output(model.inputs, model.get_layer(name).output, images).astype(np.float64)
    zero = a <= threshold
    per_image_channel_blank = zero.all(axis=(1, 2))
    return {
        "zero_fraction": zero.mean(),
        "blank_fraction": per_image_channel_blank.mean(),
        "mean_activation": a.mean(),
        "dead_fraction": per_image_channel_blank.all(axis=0).mean(),
        "output_shape": a.shape[1:],
    }


@pytest.mark.parametrize("threshold", [0.0, 0.05])
def test_statistics_equal_direct_numpy_computation(threshold):
    model = _model()
    images = _images(6)
    table = convviz.sparsity(model, images, layers=["c1", "p1", "c2", "linear"], threshold=threshold)
    assert [r.layer for r in table] == ["c1", "p1", "c2", "linear"] and table.images == 6
    for row in table:
        expected = _direct(model, images, row.layer, threshold)
        assert row.output_shape == expected["output_shape"]
        for key in ("zero_fraction", "blank_fraction", "dead_fraction"):
            assert getattr(row, key) == pytest.approx(expected[key], abs=1e-12), (row.layer, key)
        assert row.mean_activation == pytest.approx(expected["mean_activation"], rel=1e-5, abs=1e-7)


def test_default_layers_are_conv_and_pooling_shallow_to_deep():
    table = convviz.sparsity(_model(), _images(2))
    assert [r.layer for r in table] == ["c1", "p1", "c2", "linear"]
    assert table.column("depth").tolist() == [1, 2, 3, 4]


def test_known_dead_filters_are_reported_exactly():
    inputs = keras.Input((12, 12, 3))
    conv = keras.layers.Conv2D(6, 3, activation="relu", name="conv")
    outputs = keras.layers.MaxPooling2D(name="pool")(conv(inputs))
    model = keras.Model(inputs, outputs)
    kernel = np.random.default_rng(1).normal(size=(3, 3, 3, 6)).astype("float32")
    bias = np.full(6, 0.1, "float32")
    kernel[..., [1, 4]] = 0.0
    bias[[1, 4]] = -1.0  # relu(-1) = 0 everywhere: channels 1 and 4 are dead
    conv.kernel.assign(kernel)
    conv.bias.assign(bias)
    table = convviz.sparsity(model, _images(5)[:, :12, :12])
    for row in table:
        assert row.dead_fraction == pytest.approx(2 / 6)
        assert row.blank_fraction >= 2 / 6


def test_one_array_or_batches_of_varying_size_give_identical_results():
    import tensorflow as tf

    model = _model()
    images = _images(23, seed=2)
    whole = convviz.sparsity(model, images)
    sizes = [5, 1, 9, 8]
    starts = np.cumsum([0] + sizes)

    def generator():
        for a, b in zip(starts[:-1], starts[1:]):
            yield images[a:b], np.zeros(b - a)  # with labels

    streamed = convviz.sparsity(model, generator(), verbose=False)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(7)  # without labels
    from_tf = convviz.sparsity(model, dataset, batch_size=4, verbose=False)
    for other in (streamed, from_tf):
        assert other.images == 23
        for a, b in zip(whole, other):
            assert (a.zero_fraction, a.blank_fraction, a.dead_fraction) == (
                b.zero_fraction,
                b.blank_fraction,
                b.dead_fraction,
            )
            assert a.mean_activation == pytest.approx(b.mean_activation, rel=1e-6)


def _peak_bytes(model, n_images, batch=32):
    def stream():
        rng = np.random.default_rng(0)
        for start in range(0, n_images, batch):
            yield rng.normal(size=(min(batch, n_images - start), 20, 20, 3)).astype("float32")

    convviz.sparsity(model, stream(), verbose=False)  # compile outside the measurement
    gc.collect()  # garbage left by earlier work is not this call's memory
    tracemalloc.start()
    try:
        convviz.sparsity(model, stream(), verbose=False)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_streaming_memory_does_not_grow_with_dataset_size():
    model = _model()
    small, large = _peak_bytes(model, 64), _peak_bytes(model, 2000)
    print(f"peak traced memory: 64 images {small / 2**20:.2f} MiB, 2000 images {large / 2**20:.2f} MiB")
    assert large <= 1.2 * small + 2**20


def test_table_exports_and_plot(tmp_path):
    model = _model()
    table = convviz.sparsity(model, _images(3))
    records = table.to_records()
    assert records[0]["layer"] == "c1" and records[0]["output_shape"] == [18, 18, 8]
    csv_text = table.to_csv(tmp_path / "s.csv")
    assert csv_text.splitlines()[0].startswith("depth,layer,output_shape")
    assert (tmp_path / "s.csv").read_text() == csv_text
    payload = json.loads(table.to_json())
    assert payload["images"] == 3 and len(payload["layers"]) == 4
    assert "c1" in str(table) and table["p1"].depth == 2
    untrained = convviz.sparsity(_model(), _images(3))
    fig = convviz.plot.sparsity([table, untrained], labels=["a", "b"], save=tmp_path / "s.png")
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == 4
    assert isinstance(table.plot(), Figure)


def test_errors():
    model = _model()
    with pytest.raises(LayerNotFoundError):
        convviz.sparsity(model, _images(1), layers=["c3"])
    with pytest.raises(InputError, match="threshold"):
        convviz.sparsity(model, _images(1), threshold=float("nan"))
    with pytest.raises(InputError, match="no images"):
        convviz.sparsity(model, iter([]), verbose=False)
    with pytest.raises(InputError):
        convviz.sparsity(model, 42)


def test_progress_goes_to_stderr_over_images_or_stream_batches(capsys):
    model = _model()
    convviz.sparsity(model, _images(5), batch_size=2)  # verbose=True is the default
    out = capsys.readouterr()
    assert out.out == "" and "5/5" in out.err and "image" in out.err
    convviz.sparsity(model, (b for b in np.split(_images(6), 3)), verbose=True)
    out = capsys.readouterr()
    assert out.out == "" and "3" in out.err and "batch" in out.err
    convviz.sparsity(model, _images(2), verbose=False)
    assert capsys.readouterr() == ("", "")


def test_old_data_keyword_still_streams_with_a_warning():
    model = _model()
    images = _images(7, seed=3)
    expected = convviz.sparsity(model, images, verbose=False)
    with pytest.warns(DeprecationWarning, match=r"sparsity\(data=\.\.\.\) is deprecated"):
        streamed = convviz.sparsity(model, data=(b for b in np.array_split(images, 3)), verbose=False)
    assert streamed.images == 7
    assert [r.blank_fraction for r in streamed] == [r.blank_fraction for r in expected]
    with pytest.warns(DeprecationWarning, match="by position"):
        positional = convviz.sparsity(model, images, ["c2"], verbose=False)
    (row,) = positional
    assert row.layer == "c2" and row.depth == 1
    assert (row.zero_fraction, row.blank_fraction) == (expected["c2"].zero_fraction, expected["c2"].blank_fraction)


def test_table_plot_passes_options_through(tmp_path):
    table = convviz.sparsity(_model(), _images(2), verbose=False)
    fig = table.plot(figsize=(5, 2.5), labels=["trained"], save=tmp_path / "t.png")
    assert tuple(fig.get_size_inches()) == (5, 2.5) and (tmp_path / "t.png").exists()
    assert fig.axes[0].lines[0].get_label() == "trained: blank channels"
