import fcntl
import os

import pytest

# Quiet TensorFlow's C++ start-up chatter in test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_addoption(parser):
    parser.addoption(
        "--run-heavy", action="store_true",
        help="also run the tests marked heavy (minutes each on a 2-core CPU; not in CI)",
    )


def pytest_collection_modifyitems(config, items):
    """Heavy tests skip unless ``--run-heavy``."""
    if config.getoption("--run-heavy"):
        return
    heavy = pytest.mark.skip(reason="heavy: minutes on a 2-core CPU; run with --run-heavy")
    for item in items:
        if "heavy" in item.keywords:
            item.add_marker(heavy)


def pytest_report_header(config):
    import keras

    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _clear_keras_session():
    """Keep layer-name counters and seeds independent between tests.

    Without Keras' full garbage collection (``free_memory=False``): with a backend and
    a session's fixtures in memory a full collection takes a fraction of a second, paid
    before each of 1,100+ tests (test_conventions.py on PyTorch, two workers: 52 s
    with it, 19 s without). Python's own collector still runs; the memory tests
    collect where they measure."""
    import keras

    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield


SHAPES = {"size": 180, "n_train": 300, "n_val": 40, "n_test": 60, "epochs": 14, "version": 1}


@pytest.fixture(scope="session")
def trained_shapes(request):
    """The chapter's small convnet trained on convviz's offline shapes dataset.

    Trained once with ``convviz.training.fit`` (best checkpoint on val_loss, reloaded,
    evaluated on the test split) and kept in pytest's cache folder as a .keras file,
    which every Keras backend loads: in CI the first backend session trains (a few
    minutes on TensorFlow) and the others reuse it.
    Returns (model, dataset_dir, size, test_accuracy).
    """
    import json

    import keras

    from convviz import data

    key = "-".join(f"{k}{v}" for k, v in {**SHAPES, "generator": data._GENERATOR_VERSION}.items())
    folder = request.config.cache.mkdir(f"convviz-shapes-{key}")
    dataset_dir = folder / "dataset"
    model_path = folder / "small_convnet.keras"
    record = folder / "training.json"
    size = SHAPES["size"]
    # pytest-xdist workers share the cache folder: the first to get here builds the data
    # and trains, holding the lock; any other waits, then finds the finished files.
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _build_trained_shapes(folder, dataset_dir, model_path, record, size)
    accuracy = json.loads(record.read_text())["test_accuracy"]
    return keras.models.load_model(model_path), dataset_dir, size, accuracy


def _build_trained_shapes(folder, dataset_dir, model_path, record, size):
    import json

    import keras

    from convviz import data, models, training

    if not dataset_dir.exists():
        data.make_offline_dataset(
            dataset_dir, n_train=SHAPES["n_train"], n_val=SHAPES["n_val"], n_test=SHAPES["n_test"],
            image_size=(size, size), image_format="png",
        )
    if not model_path.exists():
        keras.utils.set_random_seed(0)
        splits = data.load_datasets(dataset_dir, image_size=(size, size), batch_size=32)
        result = training.fit(
            models.small_convnet(input_shape=(size, size, 3)), splits.train, splits.validation,
            epochs=SHAPES["epochs"], checkpoint_path=folder / "checkpoint.keras", test_ds=splits.test,
            verbose=2,
        )
        record.write_text(json.dumps({
            "test_accuracy": result.test_accuracy, "best_epoch": result.best_epoch,
            "backend": keras.backend.backend(), "history": result.history,
        }))
        # Renamed last, atomically: a killed run never leaves a model without its record.
        (folder / "checkpoint.keras").replace(model_path)
