"""convviz.training: checkpoint the best epoch, reload it, test it, plot the curves."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from convviz import data, training
from convviz.errors import InputError

tf = pytest.importorskip("tensorflow")


def _brightness_data(n, seed):
    """Label 1 = bright image, 0 = dark: learnable in a couple of epochs."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    images = rng.uniform(0, 0.5, (n, 8, 8, 1)) + 0.5 * labels[:, None, None, None]
    return tf.data.Dataset.from_tensor_slices((images.astype("float32"), labels)).batch(16), images, labels


def _tiny_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(2, 3, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="out")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.RMSprop(0.05), loss="binary_crossentropy", metrics=["accuracy"])
    return model


class _SpoilAfter(keras.callbacks.Callback):
    """From epoch ``start`` on, make the model confidently wrong on half the data."""

    def __init__(self, start):
        super().__init__()
        self.start = start
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch >= self.start:
            dense = self.model.get_layer("out")
            dense.set_weights([np.zeros((2, 1), "float32"), np.array([20.0], "float32")])


def test_fit_reloads_the_best_epoch_and_tests_it(tmp_path):
    train, _, _ = _brightness_data(96, 0)
    val, _, _ = _brightness_data(48, 1)
    test, test_images, test_labels = _brightness_data(64, 2)
    model = _tiny_model()
    path = tmp_path / "ckpt" / "best.keras"
    result = training.fit(
        model, train, val, epochs=4, checkpoint_path=path, test_ds=test, callbacks=[_SpoilAfter(2)], verbose=0
    )
    assert isinstance(result, training.TrainingResult)
    assert result.checkpoint_path == path and path.is_file()
    assert set(result.history) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert all(len(v) == 4 for v in result.history.values())
    val_loss = result.history["val_loss"]
    assert result.best_epoch == 1 + int(np.argmin(val_loss)) and result.best_epoch <= 2
    assert min(val_loss) < 1.0 < val_loss[-1]  # the last epochs were spoiled
    assert result.model is not model
    # The reloaded model is the best epoch's, not the last one's.
    reloaded_val = result.model.evaluate(val, verbose=0, return_dict=True)
    assert reloaded_val["loss"] == pytest.approx(min(val_loss), rel=1e-4, abs=1e-5)
    # Test accuracy, computed independently from predictions.
    predicted = (result.model.predict(test_images.astype("float32"), verbose=0)[:, 0] > 0.5).astype(int)
    assert result.test_accuracy == pytest.approx(float(np.mean(predicted == test_labels)), abs=1e-6)
    assert result.test_loss == pytest.approx(result.test_metrics["loss"])


def test_fit_without_a_test_split(tmp_path):
    train, _, _ = _brightness_data(32, 0)
    result = training.fit(_tiny_model(), train, train, epochs=1, checkpoint_path=tmp_path / "m.keras", verbose=0)
    assert result.test_accuracy is None and result.test_metrics == {}
    assert result.best_epoch == 1


def test_fit_rejects_bad_arguments(tmp_path):
    train, _, _ = _brightness_data(16, 0)
    with pytest.raises(InputError, match=r"\.keras"):
        training.fit(_tiny_model(), train, train, epochs=1, checkpoint_path=tmp_path / "m.h5")
    raw = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    with pytest.raises(InputError, match="not compiled"):
        training.fit(raw, train, train, epochs=1, checkpoint_path=tmp_path / "m.keras")
    for epochs in (0, -1, 1.5, True, "3"):
        with pytest.raises(InputError, match="epochs"):
            training.fit(_tiny_model(), train, train, epochs=epochs, checkpoint_path=tmp_path / "m.keras")
    with pytest.raises(TypeError, match="checkpoint_path"):  # required, by keyword
        training.fit(_tiny_model(), train, train, epochs=1)
    assert not (tmp_path / "m.keras").exists()


def test_fit_epochs_and_checkpoint_by_position_warn_and_give_the_same_result(tmp_path):
    train, _, _ = _brightness_data(16, 0)
    keras.utils.set_random_seed(0)
    new = training.fit(_tiny_model(), train, train, epochs=2, checkpoint_path=tmp_path / "new.keras", verbose=0)
    keras.utils.set_random_seed(0)
    with pytest.warns(DeprecationWarning, match="epochs, checkpoint_path to fit.. by position") as record:
        old = training.fit(_tiny_model(), train, train, 2, tmp_path / "old.keras", verbose=0)
    assert record[0].filename == __file__
    assert old.checkpoint_path == tmp_path / "old.keras" and old.checkpoint_path.is_file()
    assert old.best_epoch == new.best_epoch
    for key, values in new.history.items():
        np.testing.assert_allclose(old.history[key], values, rtol=1e-5, err_msg=key)
    with pytest.raises(TypeError, match="multiple values"):
        training.fit(_tiny_model(), train, train, 2, epochs=2, checkpoint_path=tmp_path / "x.keras")


def test_fit_warns_at_the_callers_line_when_nothing_was_saved(tmp_path, monkeypatch):
    train, _, _ = _brightness_data(16, 0)
    model = _tiny_model()
    monkeypatch.setattr(training, "_stamp", lambda path: ("unchanged",))  # as if nothing was saved
    with pytest.warns(RuntimeWarning, match="No checkpoint was written") as record:
        result = training.fit(model, train, train, epochs=1, checkpoint_path=tmp_path / "m.keras", verbose=0)
    ours = [r for r in record if issubclass(r.category, RuntimeWarning)]
    assert ours[0].filename == __file__  # the caller's line, through the keyword_only shim
    assert result.best_epoch is None and result.model is model


def test_plot_history_draws_the_chapters_two_figures(tmp_path):
    history = {
        "accuracy": [0.5, 0.6, 0.7],
        "val_accuracy": [0.5, 0.55, 0.6],
        "loss": [0.7, 0.6, 0.5],
        "val_loss": [0.69, 0.65, 0.66],
    }
    fig = training.plot_history(history, save=tmp_path / "figs" / "history.png")
    assert (tmp_path / "figs" / "history.png").stat().st_size > 0
    acc_ax, loss_ax = fig.axes
    assert acc_ax.get_title() == "Training and validation accuracy"
    assert loss_ax.get_title() == "Training and validation loss"
    for ax, key in ((acc_ax, "accuracy"), (loss_ax, "loss")):
        train_line, val_line = ax.get_lines()
        assert list(train_line.get_xdata()) == [1, 2, 3]
        assert list(train_line.get_ydata()) == history[key] and train_line.get_marker() == "o"
        assert list(val_line.get_ydata()) == history[f"val_{key}"] and val_line.get_linestyle() == "-"

    class FakeHistory:  # keras.callbacks.History and TrainingResult both carry .history
        pass

    fake = FakeHistory()
    fake.history = {"loss": [1.0, 0.5]}
    assert len(training.plot_history(fake).axes) == 1
    with pytest.raises(InputError, match="no accuracy or loss"):
        training.plot_history({"mae": [1.0]})
    with pytest.raises(InputError, match="dict"):
        training.plot_history([0.1, 0.2])


@pytest.mark.slow
def test_small_convnet_learns_the_offline_dataset(trained_shapes):
    """The chapter's convnet, trained by training.fit on the offline data at 180 x 180
    (once per CI run, see conftest), well above chance; re-evaluated on this backend."""
    model, dataset_dir, size, accuracy = trained_shapes
    assert accuracy > 0.85
    test = data.load_datasets(dataset_dir, image_size=(size, size), batch_size=32).test
    _, here = model.evaluate(test, verbose=0)
    assert here == pytest.approx(accuracy, abs=0.02)


def test_plot_history_figsize_convention_and_result_plot(tmp_path):
    both = {"accuracy": [0.5, 0.7], "val_accuracy": [0.5, 0.6], "loss": [0.7, 0.5], "val_loss": [0.7, 0.6]}
    assert tuple(training.plot_history(both).get_size_inches()) == (11.0, 4.0)  # the chapter's figure
    assert tuple(training.plot_history({"loss": [1.0]}).get_size_inches()) == (5.5, 4.0)  # one panel
    assert tuple(training.plot_history(both, figsize=(6, 3)).get_size_inches()) == (6, 3)
    assert tuple(training.plot_history(both, figsize=(None, 3)).get_size_inches()) == (11, 3)
    with pytest.raises(InputError, match="figsize"):
        training.plot_history(both, figsize=(0, 3))
    result = training.TrainingResult(history=both, model=None, checkpoint_path=tmp_path / "m.keras")
    fig = result.plot(figsize=(8, 3), save=tmp_path / "h.png")
    assert [ax.get_title() for ax in fig.axes] == [ax.get_title() for ax in training.plot_history(both).axes]
    assert tuple(fig.get_size_inches()) == (8, 3) and (tmp_path / "h.png").exists()


def test_fit_verbose_is_checked_and_auto_is_deprecated(tmp_path, capsys):
    train, _, _ = _brightness_data(16, 0)
    with pytest.raises(InputError, match="verbose"):
        training.fit(_tiny_model(), train, train, epochs=1, checkpoint_path=tmp_path / "m.keras", verbose="loud")
    assert not (tmp_path / "m.keras").exists()
    with pytest.warns(DeprecationWarning, match='verbose="auto"') as record:
        training.fit(_tiny_model(), train, train, epochs=1, checkpoint_path=tmp_path / "m.keras", verbose="auto")
    assert record[0].filename == __file__
    assert "1/1" in capsys.readouterr().out  # "auto" is Keras' progress bar, as True is
