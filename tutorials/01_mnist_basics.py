"""
The first convnet: MNIST digits
===============================

The chapter opens with a small convnet on 28 x 28 handwritten digits: three
``Conv2D`` layers with ``MaxPooling2D`` between them, then a ``Dense`` softmax over
the ten digits (:func:`convviz.models.mnist_convnet`). This page trains it, looks at
what its layers output for one digit, and then meets the dogs-vs-cats convnet the
other tutorials use (:func:`convviz.models.small_convnet`).

The first cell says which data this page ran on: MNIST when
``keras.datasets.mnist`` can download it, otherwise a stand-in that ships with
scikit-learn.
"""

# %%
# The data
# --------
# ``keras.datasets.mnist.load_data()`` downloads MNIST on first use (11 MB). Without
# network access we use scikit-learn's 1,797 bundled handwritten digits instead: 8 x 8
# pixels with 17 grey levels, enlarged to a 20 x 20 box centred in 28 x 28 pixels,
# which is how MNIST digits are laid out. Fewer and blurrier digits, same task.

import os

import keras
import numpy as np
from PIL import Image

epochs = int(os.environ.get("CONVVIZ_TUTORIAL_EPOCHS", 0))  # 0: the quick docs build


def digits_stand_in():
    """scikit-learn's 8 x 8 digits as 28 x 28 uint8 images, MNIST style."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.zeros((len(digits.images), 28, 28), np.uint8)
    for i, small in enumerate(digits.images):
        box = Image.fromarray(np.uint8(small * 255 / 16)).resize((20, 20), Image.BILINEAR)
        images[i, 4:24, 4:24] = np.asarray(box)
    split = 1500  # the rest (297 digits) is the test set
    return (images[:split], digits.target[:split]), (images[split:], digits.target[split:])


try:
    (train_images, train_labels), (test_images, test_labels) = keras.datasets.mnist.load_data()
    source, why = "MNIST (keras.datasets.mnist)", ""
    if not epochs:  # the quick build trains on part of it
        train_images, train_labels = train_images[:10000], train_labels[:10000]
except Exception as err:  # Keras reports a failed download as a plain Exception
    (train_images, train_labels), (test_images, test_labels) = digits_stand_in()
    source = "scikit-learn's handwritten digits, upscaled to 28 x 28 (a stand-in for MNIST)"
    why = f"MNIST could not be downloaded: {str(err).splitlines()[0]}"

print(f"Data: {source}")
if why:
    print(f"      {why}")
print(f"{len(train_images)} training and {len(test_images)} test images of shape {train_images.shape[1:]}")

# %%
# A few test digits and their labels:

from matplotlib.figure import Figure

fig = Figure(figsize=(8, 1.4), layout="constrained")
for ax, image, label in zip(fig.subplots(1, 8), test_images, test_labels):
    ax.imshow(image, cmap="gray_r")
    ax.set_title(int(label))
    ax.set_axis_off()
fig

# %%
# The model
# ---------
# ``Input(28, 28, 1)`` -> ``Conv2D(32, 3)`` -> ``MaxPooling2D(2)`` -> ``Conv2D(64, 3)``
# -> ``MaxPooling2D(2)`` -> ``Conv2D(128, 3)`` -> ``Flatten`` -> ``Dense(10, softmax)``,
# compiled with rmsprop and sparse categorical crossentropy. Each convolution shrinks
# the map by 2 pixels (3 x 3 kernels, no padding); each pooling halves it.

from convviz import models

model = models.mnist_convnet()
model.summary()

# %%
# Training
# --------
# The chapter trains for 5 epochs with batches of 64 and reaches 99.1 % test accuracy
# on MNIST. The stand-in has 40 times fewer images, so it gets more epochs (each one
# takes a fraction of a second). Pixels are scaled to [0, 1] first.

x_train = train_images.reshape((-1, 28, 28, 1)).astype("float32") / 255
x_test = test_images.reshape((-1, 28, 28, 1)).astype("float32") / 255
epochs = epochs or (5 if source.startswith("MNIST") else 20)
model.fit(x_train, train_labels, epochs=epochs, batch_size=64, verbose=2)
test_loss, test_acc = model.evaluate(x_test, test_labels, verbose=0)
print(f"Test accuracy: {test_acc:.3f} on {source}")

# %%
# What the layers see
# -------------------
# :func:`convviz.activations` runs the model once and returns every convolution and
# pooling layer's output, shallow to deep. :func:`convviz.plot.activations` draws one
# grid of channels per layer, the chapter's way: each channel standardised, then
# ``x * 64 + 128``. Early layers keep the digit's outline; deeper ones are coarser
# and more abstract.

import convviz

acts = convviz.activations(model, x_test[0])
for name, value in acts.items():
    print(f"{name:16} {value.shape}")
convviz.plot.activations(acts, ncols=16, figsize=(9, None))

# %%
# The dogs-vs-cats convnet
# ------------------------
# The rest of the chapter, and the next tutorials, work on 180 x 180 colour images
# with :func:`convviz.models.small_convnet`: a ``Rescaling(1/255)`` layer inside the
# model, five convolutions (32 to 256 filters) with pooling between the first four,
# and a single sigmoid unit for the two classes.

models.small_convnet().summary()
