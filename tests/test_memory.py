"""Memory stays flat when a public function is called again and again (issue 20): after a
warm-up (the compiled programs and caches a first call builds), 100 more calls grow the
process's resident memory by less than 20 MB.

The growth is the median resident size over the last 20 of the 100 calls minus that over
the first 20: the allocator's own ups and downs (about 10 MB either way from one
gallery to the next) cancel, a leak does not. Galleries warm up longer: matplotlib's
bounded caches take about 75 MB over the first 60 galleries, then stay level."""

import gc

import numpy as np
import psutil
import pytest

import convviz
from convviz.objectives import Objective

CALLS = 100
WARM_UP = 10
LIMIT_MB = 20


def _tiny():
    from test_gallery import tiny_model

    return tiny_model()


def _calls(model, images, folder):
    return {
        "activations": lambda i: convviz.activations(model, images),
        "gradcam": lambda i: convviz.gradcam(model, images),
        "explain": lambda i: convviz.explain(model, images, method="scorecam", layer="conv_a", verbose=False),
        "cam": lambda i: convviz.cam(model, images, method="layercam", upsample=True),
        "attribute": lambda i: convviz.attribute(model, images, method="integrated_gradients", steps=8,
                                                 verbose=False),
        "sparsity": lambda i: convviz.sparsity(model, images, verbose=False),
        "evaluate": lambda i: convviz.evaluate(model, images, methods=["gradcam"], metrics=["deletion"],
                                               metric_options={"deletion": {"steps": 4}}, bootstrap=10,
                                               verbose=False),
        "filters": lambda i: convviz.filters(model, "conv_b", filters=[0, 1], steps=2, size=32, crop=0,
                                             verbose=False),
        "visualize": lambda i: convviz.visualize(model, Objective.classes([1]), steps=2, verbose=False),
        "gallery": lambda i: convviz.gallery(model, images, folder / f"g{i}", kinds=["activations", "gradcam"],
                                             layers=["conv_b"], max_channels=4, verbose=False),
    }


@pytest.mark.slow
@pytest.mark.parametrize("function", list(_calls(None, None, None)))
def test_memory_stays_flat_over_repeated_calls(function, tmp_path):
    import keras

    if function == "gallery" and keras.backend.backend() != "tensorflow":
        pytest.skip("a gallery's own memory is its figures', the same on every backend (a minute "
                    "for 100 galleries); the model calls it makes are the other rows'")
    model = _tiny()
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    call = _calls(model, images, tmp_path)[function]
    process = psutil.Process()
    warm_up = 60 if function == "gallery" else WARM_UP
    for i in range(warm_up):
        call(i)
    sizes = []
    for i in range(CALLS):
        if i in (0, CALLS - 20):
            gc.collect()  # at each window's start: a collection per call would take longer than the calls
        call(warm_up + i)
        sizes.append(process.memory_info().rss)
    grown = (np.median(sizes[-20:]) - np.median(sizes[:20])) / 2**20
    print(f"{function}: {grown:+.1f} MB over {CALLS} calls")
    assert grown < LIMIT_MB, f"{function}: resident memory grew {grown:.1f} MB over {CALLS} calls"
