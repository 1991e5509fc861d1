"""MaskedConv2D: exact outputs, the kernel mask verb, zero gradients, saving of the mask.

The layer contract runs in tests/test_layer_contract.py (test_masked_conv2d_layer_contract).
"""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from docstring_examples import assert_docstring_examples

from tfemergent.layers import MaskedConv2D

masked_conv2d_module = importlib.import_module("tfemergent.layers.masked_conv2d")

# A 3x3 image with one channel and a 2-channel one: x[y, x, c].
IMAGE = np.arange(18, dtype="float32").reshape(1, 3, 3, 2)


def _reference_conv(images, kernel, bias):
    """Same-padded stride-1 cross-correlation, written out (float64)."""
    images = np.asarray(images, "float64")
    num, height, width, _ = images.shape
    size = kernel.shape[0]
    half = size // 2
    padded = np.pad(images, ((0, 0), (half, half), (half, half), (0, 0)))
    out = np.zeros((num, height, width, kernel.shape[-1]))
    for y in range(height):
        for x in range(width):
            patch = padded[:, y : y + size, x : x + size, :]
            out[:, y, x, :] = np.einsum("nabi,abio->no", patch, kernel)
    return out + bias


def _layer(kernel, bias, mask=None, **kwargs):
    layer = MaskedConv2D(kernel.shape[-1], kernel.shape[0], **kwargs)
    layer.build((None, 3, 3, kernel.shape[2]))
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
    if mask is not None:
        layer.set_kernel_mask(mask)
    return layer


def test_hand_computed_outputs_with_and_without_mask():
    kernel = np.zeros((3, 3, 2, 2), "float32")
    kernel[1, 1, 0, 0] = 1.0  # identity of channel 0
    kernel[:, :, 1, 0] = 1.0  # box sum of channel 1
    kernel[0, 0, 0, 1] = 2.0  # 2 * top-left neighbour of channel 0
    kernel[2, 2, 1, 1] = -1.0  # - bottom-right neighbour of channel 1
    bias = np.array([0.5, -1.0], "float32")
    layer = _layer(kernel, bias)
    outputs = layer(IMAGE).numpy()
    # Channel 0 of the image: 0 2 4 / 6 8 10 / 12 14 16; channel 1: 1 3 5 / 7 9 11 / 13 15 17.
    # Centre, output 0: 8 + (1+3+5+7+9+11+13+15+17) + 0.5 = 8 + 81 + 0.5
    assert outputs[0, 1, 1, 0] == pytest.approx(89.5)
    # Centre, output 1: 2 * 0 - 17 - 1 = -18
    assert outputs[0, 1, 1, 1] == pytest.approx(-18.0)
    # Top-left corner, output 0: 0 + (1 + 3 + 7 + 9) + 0.5 (zero padding)
    assert outputs[0, 0, 0, 0] == pytest.approx(20.5)
    # Bottom-right corner, output 1: 2 * 8 (centre pixel of channel 0) - 0 (padding) - 1
    assert outputs[0, 2, 2, 1] == pytest.approx(15.0)
    np.testing.assert_allclose(outputs, _reference_conv(IMAGE, kernel, bias), atol=1e-5)

    layer.set_kernel_mask([[1, 0], [0, 1]])  # drop 1 -> 0 and 0 -> 1
    outputs = layer(IMAGE).numpy()
    assert outputs[0, 1, 1, 0] == pytest.approx(8.5)
    assert outputs[0, 1, 1, 1] == pytest.approx(-18.0)  # only 1 -> 1 was used there
    assert outputs[0, 2, 2, 1] == pytest.approx(-1.0)  # the 0 -> 1 kernel is gone
    expected_kernel = kernel * np.array([[1, 0], [0, 1]], "float32")[None, None]
    np.testing.assert_allclose(outputs, _reference_conv(IMAGE, expected_kernel, bias), atol=1e-5)
    # The stored weights of the pruned kernels are zero, the others untouched.
    np.testing.assert_array_equal(layer.kernel.numpy(), expected_kernel)
    np.testing.assert_array_equal(layer.kernel_mask.numpy(), [[1, 0], [0, 1]])


def test_activation_and_five_by_five_kernel():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((5, 5, 2, 3)).astype("float32")
    bias = rng.standard_normal(3).astype("float32")
    mask = np.array([[1, 0, 1], [0, 0, 1]])
    layer = _layer(kernel, bias, mask, activation="relu")
    expected = np.maximum(_reference_conv(IMAGE, kernel * mask[None, None], bias), 0)
    np.testing.assert_allclose(layer(IMAGE).numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(layer.masked_kernel.numpy(), kernel * mask[None, None])
    assert layer.pruning_mask is layer.kernel_mask


def test_gradients_of_pruned_kernels_are_zero():
    rng = np.random.default_rng(1)
    layer = MaskedConv2D(3, 3, kernel_regularizer="l2")
    layer.build((None, 4, 4, 2))
    mask = np.array([[1, 0, 1], [0, 1, 0]])
    layer.set_kernel_mask(mask)
    images = tf.constant(rng.standard_normal((2, 4, 4, 2)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(images) ** 2) + tf.add_n(layer.losses)
    gradient = tape.gradient(loss, layer.kernel).numpy()
    assert np.all(gradient[:, :, mask == 0] == 0.0)
    assert np.all(np.abs(gradient[:, :, mask == 1]).sum(axis=0).sum(axis=0) > 0)


def test_pruned_kernels_stay_zero_under_training_with_momentum():
    keras.utils.set_random_seed(0)
    layer = MaskedConv2D(3, 3, activation="relu", name="conv")
    model = keras.Sequential(
        [keras.Input((4, 4, 2)), layer, keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    model.compile(keras.optimizers.Adam(0.05), "mse")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((16, 4, 4, 2)), rng.standard_normal((16, 1))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)  # Adam moments are now non-zero
    mask = np.array([[0, 1, 1], [1, 0, 1]])
    layer.set_kernel_mask(mask)
    before = layer.kernel.numpy()
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    after = layer.kernel.numpy()
    assert np.all(after[:, :, mask == 0] == 0.0)
    assert not np.allclose(after[:, :, mask == 1], before[:, :, mask == 1])
    np.testing.assert_array_equal(layer.kernel_mask.numpy(), mask)


def test_user_kernel_constraint_is_applied_before_the_mask():
    layer = MaskedConv2D(2, 3, kernel_constraint=keras.constraints.NonNeg())
    layer.build((None, 4, 4, 1))
    layer.set_kernel_mask([[1, 0]])
    constrained = layer.kernel.constraint(tf.fill((3, 3, 1, 2), -1.0) * tf.constant([-1.0, 1.0]))
    # column 0: +1 kept by NonNeg; column 1: -1 -> 0 by NonNeg, and masked anyway
    np.testing.assert_array_equal(constrained.numpy()[:, :, 0, 0], np.ones((3, 3)))
    np.testing.assert_array_equal(constrained.numpy()[:, :, 0, 1], np.zeros((3, 3)))


def test_mask_is_saved_and_restored(tmp_path):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5, 5, 2)), MaskedConv2D(3, 3, name="conv")])
    model.get_layer("conv").set_kernel_mask([[1, 0, 1], [0, 1, 1]])
    images = np.random.default_rng(4).standard_normal((2, 5, 5, 2)).astype("float32")
    expected = model.predict(images, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(
        loaded.get_layer("conv").kernel_mask.numpy(), [[1, 0, 1], [0, 1, 1]]
    )
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    assert not loaded.get_layer("conv").kernel_mask.trainable


@pytest.mark.parametrize(
    "mask, message",
    [
        ([[1, 0, 1]], "shape=(1, 3)"),
        ([[1, 0.5, 1], [0, 1, 1]], "only 0 and 1"),
        ("ones", "kernel_mask"),
    ],
)
def test_invalid_masks_are_refused(mask, message):
    layer = MaskedConv2D(3, 3)
    layer.build((None, 4, 4, 2))
    with pytest.raises(ValueError, match="Received") as info:
        layer.set_kernel_mask(mask)
    assert message in str(info.value)


def test_mask_of_an_unbuilt_layer_is_refused():
    with pytest.raises(ValueError, match="must be built.*Received: layer.built=False"):
        MaskedConv2D(3).set_kernel_mask([[1, 1, 1]])


def test_inputs_must_be_images():
    with pytest.raises(ValueError, match="Received: input_shape"):
        MaskedConv2D(3).build((None, 4, 2))


def test_masked_conv2d_docstring_examples():
    assert_docstring_examples(masked_conv2d_module)


def test_seed_seeds_the_kernel_and_bias():
    def weights(seed):
        layer = MaskedConv2D(4, 3, bias_initializer="random_normal", seed=seed)
        layer.build((None, 6, 6, 3))
        return [layer.kernel.numpy(), layer.bias.numpy()]

    first, again, other = weights(1), weights(1), weights(2)
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    layer = MaskedConv2D(4, 3, seed=7)
    assert MaskedConv2D.from_config(layer.get_config()).seed == 7
    with pytest.raises(ValueError, match="Received: seed=-1"):
        MaskedConv2D(4, 3, seed=-1)
