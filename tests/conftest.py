import os

import pytest

# Quiet TensorFlow's C++ start-up chatter in test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_report_header(config):
    import keras

    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Keep layer-name counters and seeds independent between tests."""
    import keras

    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    yield


SHAPES = {"size": 180, "n_train": 300, "n_val": 40, "n_test": 60, "epochs": 14, "version": 1}


@pytest.fixture(scope="session")
def trained_shapes(request):
    """The chapter's small convnet trained on convviz's offline shapes dataset.

    Trained once and kept in pytest's cache folder as a .keras file, which every
    Keras backend loads: in CI the first backend session trains (about a minute on
    TensorFlow) and the others reuse it. Returns (model, dataset_dir, size).
    """
    import json

    import keras

    from convviz import data, models

    key = "-".join(f"{k}{v}" for k, v in SHAPES.items())
    folder = request.config.cache.mkdir(f"convviz-shapes-{key}")
    dataset_dir = folder / "dataset"
    model_path = folder / "small_convnet.keras"
    size = SHAPES["size"]
    if not dataset_dir.exists():
        data.make_offline_dataset(
            dataset_dir, n_train=SHAPES["n_train"], n_val=SHAPES["n_val"], n_test=SHAPES["n_test"],
            image_size=(size, size), image_format="png",
        )
    if not model_path.exists():
        keras.utils.set_random_seed(0)
        splits = data.load_datasets(dataset_dir, image_size=(size, size), batch_size=32)
        model = models.small_convnet(input_shape=(size, size, 3))
        model.fit(splits.train, validation_data=splits.validation, epochs=SHAPES["epochs"], verbose=2)
        _, accuracy = model.evaluate(splits.test, verbose=0)
        partial = folder / "partial.keras"
        model.save(partial)
        partial.replace(model_path)  # atomic: a killed run never leaves a half-written model
        (folder / "accuracy.json").write_text(json.dumps({"test_accuracy": accuracy}))
    return keras.models.load_model(model_path), dataset_dir, size
