import keras
import numpy as np
import pytest
from helpers import vgg16_base, vgg16_in_functional, vgg16_in_sequential, xception_classifier

import convviz
from convviz.errors import LayerNotFoundError, ModelStructureError


def _vgg_names():
    return [layer.name for layer in vgg16_base().layers[1:]]


@pytest.mark.parametrize("wrap", [vgg16_in_sequential, vgg16_in_functional])
def test_listing_walks_into_nested_base_in_order(wrap):
    base = vgg16_base()
    inspector = convviz.Inspector(wrap(base))
    names = inspector.layer_names()
    inner = [layer.name for layer in base.layers[1:]]
    start = names.index("block1_conv1")
    assert names[start : start + len(inner)] == inner
    assert names[start + len(inner)] == base.name  # the nested model's own output follows
    info = inspector.find_layer("block5_conv3")
    assert info.path == (base.name, "block5_conv3")
    assert info.output_shape == (None, 4, 4, 512)
    assert inspector.last_conv_layer() == "block5_conv3"
    feature = inspector.feature_layers()
    assert feature[0] == "block1_conv1" and feature[-1] == "block5_pool" and len(feature) == 18


def test_lookup_by_path_suffix_and_layer_object():
    base = vgg16_base()
    inspector = convviz.Inspector(vgg16_in_functional(base))
    by_path = inspector.find_layer(f"{base.name}/block2_conv1")
    assert by_path.layer is base.get_layer("block2_conv1")
    assert inspector.find_layer(base.get_layer("block2_conv1")).name == "block2_conv1"


def test_unknown_name_lists_closest_names():
    inspector = convviz.Inspector(vgg16_in_sequential(vgg16_base()))
    with pytest.raises(LayerNotFoundError, match="block5_conv3") as err:
        inspector.find_layer("block5_conv4")
    assert "Closest names" in str(err.value)
    assert isinstance(err.value, LookupError)


def test_duplicate_names_get_paths_and_plain_name_is_ambiguous():
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3, name="conv")], name="inner")
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    outputs = inner(x)
    model = keras.Model(inputs, outputs, name="outer")
    inspector = convviz.Inspector(model)
    assert inspector.layer_names() == ["conv", "inner/conv", "inner"]
    with pytest.raises(LayerNotFoundError, match="ambiguous"):
        convviz.Inspector(keras.Sequential([keras.Input((8, 8, 3)), model])).find_layer("conv")
    assert inspector.find_layer("inner/conv").output_shape == (None, 6, 6, 2)
    acts = inspector.activations(np.ones((8, 8, 3)), layers=["conv", "inner/conv"])
    assert [a.shape for a in acts.values()] == [(1, 8, 8, 3), (1, 6, 6, 2)]
    assert inner.layers[0].name == "conv"  # names restored after building the flat model


def test_keras_hub_xception_backbone_last_conv_is_the_chapters_layer():
    model = xception_classifier()
    backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    inspector = convviz.Inspector(model)
    assert inspector.last_conv_layer() == "block14_sepconv2_act"
    assert inspector.find_layer("block3_sepconv1").path[-2:] == (backbone.name, "block3_sepconv1")


def test_model_without_conv_layer():
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(2)])
    inspector = convviz.Inspector(model)
    with pytest.raises(ModelStructureError, match="no convolution layer"):
        inspector.last_conv_layer()
    with pytest.raises(ModelStructureError, match="no convolution or pooling"):
        inspector.feature_layers()


def test_subclassed_and_unbuilt_models_are_refused_clearly():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 3)

        def call(self, x):
            return self.conv(x)

    net = Net()
    net(keras.ops.zeros((1, 8, 8, 3)))
    with pytest.raises(ModelStructureError):
        convviz.Inspector(net).layer_names()
    with pytest.raises(ModelStructureError, match="no defined input"):
        convviz.Inspector(keras.Sequential([keras.layers.Conv2D(2, 3)]))
