"""Runs over whole datasets (convviz.explain_dataset): equal to the in-memory results image
for image whatever the kind of data, resumable after SIGKILL with nothing duplicated or
missing, refusing mixed settings; sparsity and evaluate over the same data kinds; two
virtual JAX devices; the Ray path."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import convviz
from convviz.errors import InputError
from convviz.methods.core import class_probability

BACKEND = keras.backend.backend()


def _model():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Conv2D(5, 3, activation="relu", name="top")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs, name="tiny")


def _images(n=10, seed=0):
    return np.random.default_rng(seed).random((n, 16, 16, 3)).astype("float32")


def _folder(root, n=10, seed=0):
    """n 16x16 PNG files in two class subfolders (a, b); returns the images as read,
    in the folder's sorted order, and their labels."""
    pixels = (np.random.default_rng(seed).random((n, 16, 16, 3)) * 255).astype("uint8")
    files = []
    for i, image in enumerate(pixels):
        path = root / ("a" if i % 2 else "b") / f"{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(path)
        files.append(path.relative_to(root).as_posix())
    order = np.argsort(files)
    return pixels[order].astype("float32"), np.array([0 if f.startswith("a") else 1 for f in sorted(files)])


def _run(model, data, out, **kwargs):
    kwargs = {"batch_size": 4, "dtype": "float32", "verbose": False, **kwargs}
    return convviz.explain_dataset(model, data, out=out, **kwargs)


# --------------------------------------------------------------------------- #
# Equal to the in-memory results
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_run_equals_in_memory_results_image_for_image(tmp_path, method):
    model, x = _model(), _images()
    run = _run(model, x, tmp_path / "run", method=method)
    reference = convviz.explain(model, x, method=method) if method == "gradcam" else convviz.attribute(
        model, x, method=method)
    assert len(run) == 10 and run.complete and run.manifest["batches"] == 3
    np.testing.assert_allclose(run.maps[:], reference.maps, atol=1e-6)
    assert run.maps.chunks[0] == 4  # one chunk per batch
    table = run.table()
    np.testing.assert_array_equal(run.column("index"), np.arange(10))
    assert run.column("name").tolist() == [str(i) for i in range(10)]
    np.testing.assert_array_equal(run.column("class_index"), reference.class_index)
    np.testing.assert_array_equal(run.column("predicted"), reference.predictions.argmax(-1))
    expected = [class_probability(p, c) for p, c in zip(reference.predictions, reference.class_index)]
    np.testing.assert_allclose(run.column("probability"), expected, rtol=1e-6)
    assert table.num_rows == 10 and run.manifest["settings"]["method"] == method


def test_float16_maps_are_the_maps_to_half_precision(tmp_path):
    model, x = _model(), _images()
    run = _run(model, x, tmp_path / "run", dtype="float16", upsample=True)
    reference = convviz.explain(model, x).upsampled()
    assert run.maps.dtype == np.float16 and run.maps.shape == (10, 16, 16)
    np.testing.assert_allclose(np.asarray(run.maps[:], np.float32), reference, atol=5e-4)


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, labels):
        super().__init__()
        self.x, self.labels = x, labels

    def __len__(self):
        return 3

    def __getitem__(self, i):
        return self.x[4 * i : 4 * i + 4], self.labels[4 * i : 4 * i + 4]


def _kinds(x, labels, folder):
    import tensorflow as tf

    one_hot = np.eye(2)[labels]
    kinds = {
        "folder": str(folder),
        "list of arrays": list(x),
        "tf.data batches": tf.data.Dataset.from_tensor_slices((x, labels)).batch(4),
        "tf.data single images": tf.data.Dataset.from_tensor_slices((x, one_hot)),
        "PyDataset": _Batches(x, labels),
        "generator": ((x[i : i + 3], labels[i : i + 3]) for i in range(0, 10, 3)),
        "dict elements": ({"image": x[i : i + 4], "label": labels[i : i + 4]} for i in range(0, 10, 4)),
    }
    try:
        import grain
    except ImportError:
        return kinds
    records = [{"image": image, "label": label} for image, label in zip(x, labels)]
    kinds["grain MapDataset"] = grain.MapDataset.source(records)
    kinds["grain batched"] = grain.MapDataset.source(records).batch(4)
    return kinds


def test_every_kind_of_data_gives_the_same_run(tmp_path):
    x, labels = _folder(tmp_path / "images")
    model = _model()
    reference = convviz.explain(model, x)
    for kind, data in _kinds(x, labels, tmp_path / "images").items():
        run = _run(model, data, tmp_path / kind.replace(" ", "_"), class_index="labels" if kind != "list of arrays" else None)
        assert len(run) == 10, kind
        np.testing.assert_allclose(run.maps[:], convviz.explain(model, x, class_index=labels).maps
                                   if kind != "list of arrays" else reference.maps, atol=1e-6, err_msg=kind)
        if kind != "list of arrays":
            np.testing.assert_array_equal(run.column("label"), labels, err_msg=kind)
            np.testing.assert_array_equal(run.column("class_index"), labels, err_msg=kind)
    folder_run = convviz.DatasetExplanation.open(tmp_path / "folder")
    assert folder_run.column("name")[0] == "a/01.png" and folder_run.manifest["class_names"] == ["a", "b"]


def test_metrics_are_the_values_evaluate_gives(tmp_path):
    model, x = _model(), _images()
    metrics = ["deletion", "insertion", "average_drop"]
    run = _run(model, x, tmp_path / "run", metrics=metrics, metric_options={"deletion": {"steps": 8}})
    table = convviz.evaluate(model, x, metrics=metrics, metric_options={"deletion": {"steps": 8}}, verbose=False)
    for metric in metrics:
        np.testing.assert_allclose(run.column(metric), table.values["gradcam"][metric], atol=1e-6, err_msg=metric)


def test_plot_and_reading_while_open(tmp_path):
    model, x = _model(), _images()
    run = _run(model, x, tmp_path / "run", metrics=["deletion"])
    figure = run.plot(n=4)
    assert isinstance(figure, Figure) and len(figure.axes) == 3 + 4
    np.testing.assert_allclose(run.mean_map(chunk=3), np.asarray(run.maps[:], np.float64).mean(axis=0), atol=1e-12)
    assert "complete" in repr(run) and run.refresh().manifest["rows"] == 10


# --------------------------------------------------------------------------- #
# Resuming
# --------------------------------------------------------------------------- #

_CHILD = """
import os, signal, sys, time
import keras, numpy as np
import convviz, convviz._store as store
model_path, folder, out, mode, k = sys.argv[1:6]
k = int(k)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if mode == "after_maps":  # batch k: its maps written, killed while its rows are written
    import pyarrow.parquet as pq
    write_table = pq.write_table
    def killing(table, where, *a, **kw):
        if os.path.basename(where) == f".part-{k:06d}.parquet.tmp":
            with open(where, "wb") as f:
                f.write(b"PAR1 half a file")
            die()
        return write_table(table, where, *a, **kw)
    pq.write_table = killing
elif mode == "before_commit":  # batch k: maps and rows written, killed before the manifest says so
    commit = store.RunStore._commit
    def killing(self):
        if self.batches == k + 1 and not self.complete:
            die()
        commit(self)
    store.RunStore._commit = killing
else:  # "slow": the parent sends SIGKILL while the run goes on
    commit = store.RunStore._commit
    def slow(self):
        time.sleep(0.4)
        commit(self)
    store.RunStore._commit = slow
convviz.explain_dataset(keras.models.load_model(model_path), folder, out=out, batch_size=2,
                        metrics=["deletion"], dtype="float32", verbose=False)
"""


def _child(tmp_path, mode, k=2):
    model_path = tmp_path / "tiny.keras"
    if not model_path.exists():
        _model().save(model_path)
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "TF_CPP_MIN_LOG_LEVEL": "3"}
    args = [sys.executable, "-c", textwrap.dedent(_CHILD), str(model_path), str(tmp_path / "images"),
            str(tmp_path / mode), mode, str(k)]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _assert_resumes_to(out, complete, model_path):
    model = keras.models.load_model(model_path)
    with pytest.raises(InputError, match="unfinished run"):
        convviz.explain_dataset(model, out.parent / "images", out=out, batch_size=2, metrics=["deletion"],
                                dtype="float32", verbose=False)
    resumed = convviz.explain_dataset(model, out.parent / "images", out=out, batch_size=2, metrics=["deletion"],
                                      dtype="float32", verbose=False, resume=True)
    assert resumed.complete and len(resumed) == len(complete) == 10
    got, expected = resumed.table(), complete.table()
    assert got.column_names == expected.column_names
    for name in got.column_names:  # no duplicate, no missing row
        a, b = got.column(name).to_numpy(zero_copy_only=False), expected.column(name).to_numpy(zero_copy_only=False)
        if a.dtype.kind == "f":  # another process may round differently (JAX picks its compiled variant)
            np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_allclose(resumed.maps[:], complete.maps[:], atol=1e-6)
    assert not list(out.rglob("*.tmp")) and len(list((out / "table").iterdir())) == 5


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    _folder(tmp_path / "images")
    children = {mode: _child(tmp_path, mode) for mode in ("after_maps", "before_commit")}
    complete = convviz.explain_dataset(keras.models.load_model(tmp_path / "tiny.keras"), tmp_path / "images",
                                       out=tmp_path / "complete", batch_size=2, metrics=["deletion"],
                                       dtype="float32", verbose=False)
    for mode, child in children.items():
        assert child.wait(timeout=300) == -signal.SIGKILL, child.stderr.read().decode()[-2000:]
        manifest = json.loads((tmp_path / mode / "manifest.json").read_text())
        assert (manifest["batches"], manifest["rows"], manifest["complete"]) == (2, 4, False), mode
        left = (tmp_path / mode / "table" / ".part-000002.parquet.tmp").exists() or (
            tmp_path / mode / "table" / "part-000002.parquet").exists()
        assert left, mode  # the killed batch left something behind, which resuming must drop
        _assert_resumes_to(tmp_path / mode, complete, tmp_path / "tiny.keras")


@pytest.mark.slow
def test_a_run_sent_sigkill_from_outside_resumes(tmp_path):
    _folder(tmp_path / "images")
    child = _child(tmp_path, "slow")
    manifest_path = tmp_path / "slow" / "manifest.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if json.loads(manifest_path.read_text())["batches"] >= 2:
                break
        except (OSError, ValueError, KeyError):
            pass
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    assert 2 <= json.loads(manifest_path.read_text())["batches"] < 5
    complete = convviz.explain_dataset(keras.models.load_model(tmp_path / "tiny.keras"), tmp_path / "images",
                                       out=tmp_path / "complete", batch_size=2, metrics=["deletion"],
                                       dtype="float32", verbose=False)
    _assert_resumes_to(tmp_path / "slow", complete, tmp_path / "tiny.keras")


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    model, x = _model(), _images()
    out = tmp_path / "run"
    first = _run(model, x, out)
    with pytest.raises(InputError, match=r"other settings \(method: 'gradcam' -> 'layercam'"):
        _run(model, x, out, method="layercam", resume=True)
    with pytest.raises(InputError, match="dtype: 'float32' -> 'float16'"):
        _run(model, x, out, dtype="float16", resume=True)
    other = _model()
    other.get_layer("head").kernel.assign(np.zeros((5, 3), "float32"))
    with pytest.raises(InputError, match="model.fingerprint"):
        _run(other, x, out, resume=True)
    with pytest.raises(InputError, match="holds a finished run"):
        _run(model, x, out)
    updated = first.manifest["updated"]
    again = _run(model, x, out, resume=True)  # a finished run opens without work
    assert again.manifest["updated"] == updated and len(again) == 10
    replaced = _run(model, x[:6], out, overwrite=True, method="layercam")
    assert len(replaced) == 6 and replaced.method == "layercam"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty and holds no convviz run"):
        _run(model, x, tmp_path / "other")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"metrics": ["pointing_game"]}, "unsupported dataset metric"),
    ({"metrics": ["delition"]}, "unsupported dataset metric"),
    ({"class_index": "predicted"}, "class_index must be None"),
    ({"class_index": "labels"}, "this data has no labels"),
    ({"dtype": "int8"}, "dtype"),
    ({"batch_size": 0}, "batch_size"),
    ({"resume": "yes"}, "resume must be True or False"),
    ({"method": "saliency", "layer": "conv"}, "takes no layer"),
    ({"eps": 1.0}, "takes no option 'eps'"),
])
def test_bad_arguments_are_refused_before_any_work(tmp_path, kwargs, match):
    with pytest.raises(InputError, match=match):
        _run(_model(), _images(), tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()


def test_bad_data_is_refused(tmp_path):
    model = _model()
    for data, match in [(tmp_path / "missing", "No folder"), (None, "Cannot read a dataset"),
                        ({"image": _images()}, "from a dict"), ([], "no images"), (iter([]), "no images")]:
        with pytest.raises(InputError, match=match):
            _run(model, data, tmp_path / "run", overwrite=True)
    with pytest.raises(InputError, match="no dataset run"):
        convviz.DatasetExplanation.open(tmp_path)


def test_command_line_folder_run_and_resume(tmp_path, capsys):
    from convviz.cli import main

    _folder(tmp_path / "images")
    _model().save(tmp_path / "tiny.keras")
    argv = ["explain", str(tmp_path / "tiny.keras"), str(tmp_path / "images"), "--out", str(tmp_path / "run"),
            "--batch-size", "3", "--metrics", "deletion", "--class-index", "labels", "--quiet"]
    assert main(argv) == 0
    run = convviz.DatasetExplanation.open(tmp_path / "run")
    assert len(run) == 10 and run.manifest["batches"] == 4 and "deletion" in run.table().column_names
    np.testing.assert_array_equal(run.column("class_index"), run.column("label"))
    assert main(argv) == 2 and "pass resume=True (--resume)" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert main([*argv[:5], "--out", str(tmp_path / "run"), "--method", "layercam", "--resume", "--quiet"]) == 2
    assert "other settings" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "tiny.keras"), str(tmp_path / "images" / "a" / "01.png"), "--out",
                 str(tmp_path / "x.png"), "--resume"]) == 2
    assert "--resume is for a run over a folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- #
# sparsity and evaluate over the same data
# --------------------------------------------------------------------------- #


def test_sparsity_over_a_folder_equals_the_array(tmp_path):
    x, _ = _folder(tmp_path / "images")
    model = _model()
    streamed = convviz.sparsity(model, tmp_path / "images", batch_size=3, verbose=False)
    in_memory = convviz.sparsity(model, x, verbose=False)
    for a, b in zip(streamed, in_memory):
        assert (a.layer, a.channels) == (b.layer, b.channels)
        np.testing.assert_allclose([a.zero_fraction, a.blank_fraction, a.mean_activation, a.dead_fraction],
                                   [b.zero_fraction, b.blank_fraction, b.mean_activation, b.dead_fraction],
                                   rtol=1e-6)


def test_evaluate_over_a_stream_equals_in_memory(tmp_path):
    import tensorflow as tf

    model, x = _model(), _images()
    kwargs = {"methods": ["gradcam", "saliency"], "metrics": ["deletion", "insertion", "average_drop"],
              "verbose": False}
    in_memory = convviz.evaluate(model, x, **kwargs)
    streamed = convviz.evaluate(model, tf.data.Dataset.from_tensor_slices(x).batch(4), **kwargs)
    assert streamed.image_names == in_memory.image_names
    for method in in_memory.methods:
        np.testing.assert_array_equal(streamed.classes[method], in_memory.classes[method])
        for metric in in_memory.metrics:
            np.testing.assert_allclose(streamed.values[method][metric], in_memory.values[method][metric],
                                       atol=1e-6, err_msg=f"{method} {metric}")
        np.testing.assert_allclose(streamed.curves[method]["deletion"], in_memory.curves[method]["deletion"],
                                   atol=1e-6)
    with pytest.raises(InputError, match="more images than the 3 box"):
        convviz.evaluate(model, iter([x]), boxes=[(0, 0, 4, 4)] * 3, **kwargs)
    with pytest.raises(InputError, match="10 image\\(s\\) but 12 box"):
        convviz.evaluate(model, iter([x]), boxes=[(0, 0, 4, 4)] * 12, **kwargs)


# --------------------------------------------------------------------------- #
# Devices
# --------------------------------------------------------------------------- #

_DEVICES = """
import sys, tempfile
import keras, numpy as np
import convviz
from convviz import _autodiff
keras.utils.set_random_seed(1)
model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(6, 3, activation="relu"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
x = np.random.default_rng(0).random((10, 16, 16, 3)).astype("float32")
kw = dict(batch_size=4, dtype="float32", verbose=False, metrics=["deletion"])
one = convviz.explain_dataset(model, x, out=tempfile.mkdtemp(), **kw)
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=keras.distribution.list_devices("cpu")))
shards = []
place = _autodiff._jax_place
def counting(x, dtype=None):
    placed = place(x, dtype)
    shards.append(len(placed.sharding.device_set))
    return placed
_autodiff._jax_place = counting
two = convviz.explain_dataset(model, x, out=tempfile.mkdtemp(), **kw)
assert two.manifest["devices"] == 2 and one.manifest["devices"] == 1, (one.manifest["devices"], two.manifest["devices"])
assert max(shards) == 2, shards
np.testing.assert_allclose(two.maps[:], one.maps[:], atol=1e-6)
for column in ("class_index", "predicted", "probability", "deletion"):
    np.testing.assert_allclose(two.column(column), one.column(column), atol=1e-6)
print("equal", len(shards), max(shards))
"""


@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution shards data on JAX only (Keras 3.15)")
def test_two_virtual_jax_devices_give_the_one_device_results():
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", _DEVICES], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "equal" in done.stdout, done.stderr[-3000:]


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow's DataParallel constructs; PyTorch's needs torchrun")
def test_a_distribution_on_tensorflow_runs_on_one_device_and_says_so(tmp_path):
    from convviz import _autodiff

    model, x = _model(), _images()
    one = _run(model, x, tmp_path / "one")
    _autodiff._warn_unsharded.cache_clear()
    try:
        mesh = keras.distribution.DataParallel(devices=keras.distribution.list_devices("cpu"))
    except AttributeError:  # Keras 3.8's TensorFlow distribution_lib has no num_processes
        pytest.skip(f"Keras {keras.__version__} cannot build a DataParallel on TensorFlow")
    keras.distribution.set_distribution(mesh)
    try:
        with pytest.warns(UserWarning, match="does not shard data"):
            two = _run(model, x, tmp_path / "two")
    finally:
        keras.distribution.set_distribution(None)
    np.testing.assert_array_equal(two.maps[:], one.maps[:])


# --------------------------------------------------------------------------- #
# Ray
# --------------------------------------------------------------------------- #


@pytest.mark.slow
@pytest.mark.skipif(BACKEND != "tensorflow", reason="the Ray path runs in one backend's session")
def test_ray_path_equals_the_local_path(tmp_path):
    ray = pytest.importorskip("ray")
    import convviz.ray

    _folder(tmp_path / "images")
    _model().save(tmp_path / "tiny.keras")
    model = keras.models.load_model(tmp_path / "tiny.keras")
    local = convviz.explain_dataset(model, tmp_path / "images", out=tmp_path / "local", batch_size=3,
                                    metrics=["deletion"], dtype="float32", verbose=False)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ds = ray.data.read_images(str(tmp_path / "images"), include_paths=True, mode="RGB")
        with pytest.raises(InputError, match="leaves less than one of the cluster's 2 CPUs"):
            convviz.ray.explain(ds, tmp_path / "tiny.keras", out=tmp_path / "ray", workers=2)
        remote = convviz.ray.explain(ds, tmp_path / "tiny.keras", out=tmp_path / "ray", batch_size=3, workers=2,
                                     cpus_per_worker=0.5, metrics=["deletion"], dtype="float32", verbose=False)
    finally:
        ray.shutdown()
    assert remote.complete and len(remote) == 10 and remote.manifest["batches"] == 4
    names = [os.path.relpath(p, tmp_path / "images") for p in remote.column("name")]
    order = np.argsort(names)
    assert [names[i] for i in order] == local.column("name").tolist()
    np.testing.assert_allclose(remote.maps[:][order], local.maps[:], atol=1e-6)
    for column in ("class_index", "predicted", "probability", "deletion"):
        np.testing.assert_allclose(remote.column(column)[order], local.column(column), atol=1e-6, err_msg=column)
