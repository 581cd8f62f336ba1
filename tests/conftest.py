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
