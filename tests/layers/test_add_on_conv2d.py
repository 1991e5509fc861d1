"""AddOnConv2D: exact outputs, the connection mask and its initial density.

The layer contract runs in tests/test_layer_contract.py (test_addon_conv2d_layer_contract).
"""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from docstring_examples import assert_docstring_examples

from tfemergent.layers import AddOnConv2D

add_on_conv2d_module = importlib.import_module("tfemergent.layers.add_on_conv2d")


def test_hand_computed_output_of_a_sparse_five_by_five_add_on():
    layer = AddOnConv2D(2, kernel_size=5, kernel_initializer="ones")
    images = np.ones((1, 5, 5, 3), "float32")
    layer(images)
    assert layer.bias is None  # no bias by default: the target layer has one
    layer.set_connection_mask([[1, 0], [1, 0], [0, 1]])
    outputs = layer(images).numpy()[0]
    # Centre: all 25 taps inside; channel 0 reads 2 inputs, channel 1 one input.
    np.testing.assert_allclose(outputs[2, 2], [50.0, 25.0])
    # Corner: 3 x 3 of the 5 x 5 taps inside.
    np.testing.assert_allclose(outputs[0, 0], [18.0, 9.0])
    # Edge centre (0, 2): 3 rows x 5 columns inside.
    np.testing.assert_allclose(outputs[0, 2], [30.0, 15.0])


def test_bias_when_asked():
    layer = AddOnConv2D(2, 3, use_bias=True, kernel_initializer="zeros", bias_initializer="ones")
    outputs = layer(np.ones((1, 3, 3, 1), "float32")).numpy()
    np.testing.assert_array_equal(outputs, np.ones((1, 3, 3, 2)))


@pytest.mark.parametrize(
    "density, shape, expected",
    [(1.0, (2, 5), 10), (0.1, (4, 5), 2), (0.25, (2, 4), 2), (0.01, (2, 4), 1), (0.5, (3, 3), 5)],
)
def test_initial_connection_count(density, shape, expected):
    layer = AddOnConv2D(shape[1], 3, connection_density=density, seed=1)
    layer.build((None, 4, 4, shape[0]))
    mask = layer.connection_mask.numpy()
    assert mask.shape == shape
    assert set(np.unique(mask)) <= {0.0, 1.0}
    assert int(mask.sum()) == expected  # round(density * in * out), at least 1


def test_initial_connections_are_seeded():
    def mask(seed):
        layer = AddOnConv2D(8, 3, connection_density=0.3, seed=seed)
        layer.build((None, 4, 4, 6))
        return layer.connection_mask.numpy()

    np.testing.assert_array_equal(mask(5), mask(5))
    assert not np.array_equal(mask(5), mask(6))


def test_seed_seeds_the_kernel_and_bias_too():
    def weights(seed):
        layer = AddOnConv2D(4, 3, connection_density=0.5, use_bias=True,
                            bias_initializer="random_normal", seed=seed)
        layer.build((None, 4, 4, 3))
        return [weight.numpy() for weight in layer.weights]

    first, again, other = weights(1), weights(1), weights(2)
    assert len(first) == 3  # kernel, bias, connection mask
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_masked_connections_have_zero_gradient_and_stay_zero():
    keras.utils.set_random_seed(0)
    layer = AddOnConv2D(3, 3, connection_density=0.5, seed=2, name="add_on")
    model = keras.Sequential(
        [keras.Input((4, 4, 2)), layer, keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    mask = layer.connection_mask.numpy()
    images = tf.constant(np.random.default_rng(0).standard_normal((8, 4, 4, 2)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(images) ** 2)
    gradient = tape.gradient(loss, layer.kernel).numpy()
    assert np.all(gradient[:, :, mask == 0] == 0.0)
    assert np.all(np.abs(gradient[:, :, mask == 1]).sum(axis=(0, 1)) > 0)
    assert np.all(layer.kernel.numpy()[:, :, mask == 0] == 0.0)  # zero from the start


def test_set_connection_mask_zeroes_removed_weights():
    layer = AddOnConv2D(2, 3, kernel_initializer="ones")
    layer.build((None, 4, 4, 2))
    layer.set_connection_mask(np.array([[True, False], [False, False]]))
    np.testing.assert_array_equal(layer.kernel.numpy().sum(axis=(0, 1)), [[9.0, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(layer.connection_mask.numpy(), [[1, 0], [0, 0]])
    assert layer.pruning_mask is layer.connection_mask
    with pytest.raises(ValueError, match=r"connection_mask.*Received: shape=\(2, 3\)"):
        layer.set_connection_mask(np.ones((2, 3)))


def test_config_keeps_density_and_seed():
    layer = AddOnConv2D(4, 5, connection_density=0.2, seed=9, name="a")
    config = layer.get_config()
    assert (config["kernel_size"], config["connection_density"], config["seed"]) == (5, 0.2, 9)
    assert "activation" not in config  # the target layer applies the activation
    restored = AddOnConv2D.from_config(config)
    restored.build((None, 4, 4, 3))
    layer.build((None, 4, 4, 3))
    np.testing.assert_array_equal(restored.connection_mask.numpy(), layer.connection_mask.numpy())


def test_add_on_conv2d_docstring_examples():
    assert_docstring_examples(add_on_conv2d_module)
