"""activation_scales / restore_activation_scales: exact factors, restored scales after
pruning, the untouched pruned kernels, the constant-output case, errors."""

import importlib

import keras
import numpy as np
import pytest
from docstring_examples import assert_docstring_examples

from tfemergent.models import SegmentCNN
from tfemergent.pruning import activation_scales, prune_kernels, restore_activation_scales

module = importlib.import_module("tfemergent.pruning.activation_scale")


def _model_and_images(segments=((4, 4), (8, 8)), seed=0):
    model = SegmentCNN((8, 8, 1), 3, segments=[list(s) for s in segments], seed=seed).build()
    images = np.random.default_rng(seed).normal(size=(64, 8, 8, 1)).astype("float32")
    return model, images


def _std(model, name, images):
    probe = keras.Model(model.inputs, model.get_layer(name).output)
    return float(np.std(probe.predict(images, verbose=0)))


def test_scales_are_the_standard_deviations_of_the_convolution_outputs():
    model, images = _model_and_images()
    scales = activation_scales(model, images, batch_size=16)
    assert list(scales) == ["conv_0_0", "conv_0_1", "conv_1_0", "conv_1_1"]
    for name, value in scales.items():
        assert value == pytest.approx(_std(model, name, images), rel=1e-6)
    assert list(activation_scales(model, images, layer_names=["conv_1_0"])) == ["conv_1_0"]


def test_a_scaled_down_layer_gets_exactly_the_inverse_factor():
    model, images = _model_and_images()
    targets = activation_scales(model, images)
    layer = model.get_layer("conv_0_1")
    layer.kernel.assign(layer.kernel * 0.25)
    layer.bias.assign(layer.bias * 0.25)
    before = layer.kernel.numpy()
    factors = restore_activation_scales(model, images, targets)
    # ReLU is positively homogeneous: the later layers are back to their own scale.
    assert factors["conv_0_0"] == pytest.approx(1.0, rel=1e-6)
    assert factors["conv_0_1"] == pytest.approx(4.0, rel=1e-5)
    assert factors["conv_1_0"] == pytest.approx(1.0, rel=1e-5)
    assert factors["conv_1_1"] == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(layer.kernel.numpy(), before * factors["conv_0_1"], rtol=1e-6)
    for name, value in targets.items():
        assert _std(model, name, images) == pytest.approx(value, rel=1e-5)


def test_pruned_network_gets_its_scales_back_and_pruned_kernels_stay_zero():
    model, images = _model_and_images()
    targets = activation_scales(model, images)
    prune_kernels(model, fraction=0.75, scope="layer")
    shrunk = {name: _std(model, name, images) / value for name, value in targets.items()}
    assert shrunk["conv_1_1"] < 0.5  # pruning 75% per layer shrinks the deep outputs
    zeros = {name: model.get_layer(name).masked_kernel.numpy() == 0 for name in targets}
    factors = restore_activation_scales(model, images, targets)
    # Not every factor is > 1: a layer after a rescaled one may overshoot (its kept
    # kernels are its largest); the deepest one needs the most.
    assert list(factors) == list(targets) and factors["conv_1_1"] > 2
    for name, value in targets.items():
        assert _std(model, name, images) == pytest.approx(value, rel=1e-4)
        masked = model.get_layer(name).masked_kernel.numpy()
        np.testing.assert_array_equal(masked[zeros[name]], 0.0)


def test_a_constant_output_is_left_alone():
    model, images = _model_and_images(segments=((4,),))
    layer = model.get_layer("conv_0_0")
    targets = activation_scales(model, images)
    layer.kernel.assign(np.zeros(layer.kernel.shape, "float32"))
    assert restore_activation_scales(model, images, targets) == {"conv_0_0": 1.0}
    np.testing.assert_array_equal(layer.kernel.numpy(), 0.0)


@pytest.mark.parametrize(
    "targets, message",
    [
        ({}, "Received: target_scales={}"),
        ({"conv_0_0": 0.0}, "Received: 'conv_0_0': 0.0"),
        ({"conv_0_0": float("nan")}, "Received: 'conv_0_0': nan"),
        ({"dense": 1.0}, "layer_names"),
    ],
)
def test_invalid_targets(targets, message):
    model, images = _model_and_images()
    with pytest.raises(ValueError, match=message):
        restore_activation_scales(model, images, targets)


def test_nested_convolutions_are_refused():
    model, images = _model_and_images()
    outer = keras.Sequential([keras.Input((8, 8, 1)), model])
    with pytest.raises(ValueError, match="top-level layers.*Received: model"):
        activation_scales(outer, images)


def test_activation_scale_docstring_examples():
    assert_docstring_examples(module)
