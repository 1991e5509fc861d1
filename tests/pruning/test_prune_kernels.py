"""prune_kernels and PruningReport on kernels with hand-set standard deviations."""

import importlib
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from docstring_examples import assert_docstring_examples

from tfemergent.models import SegmentCNN
from tfemergent.pruning import PruningReport, prune_kernels

prune_kernels_module = importlib.import_module("tfemergent.pruning.prune_kernels")
pruning_report_module = importlib.import_module("tfemergent.pruning.pruning_report")

# A checkerboard of +-1: mean 1/9, population std sqrt(1 - 1/81).
PATTERN = np.array([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], "float32")
PATTERN_STD = math.sqrt(1 - 1 / 81)
# Scales of the kernels (in, out): conv_0_0 is 1 x 2, conv_0_1 is 2 x 2.
SCALES = {"conv_0_0": np.array([[0.5, 0.1]]), "conv_0_1": np.array([[0.3, 0.05], [0.9, 0.2]])}


def _model():
    model = SegmentCNN((6, 6, 1), 2, segments=[[2, 2]], seed=0).build()
    for name, scales in SCALES.items():
        kernel = PATTERN[:, :, None, None] * scales[None, None].astype("float32")
        model.get_layer(name).kernel.assign(kernel)
    return model


def test_fraction_over_the_model_by_hand():
    model = _model()
    report = prune_kernels(model, fraction=0.5)  # 3 of 6: scales 0.05, 0.1, 0.2
    np.testing.assert_array_equal(model.get_layer("conv_0_0").kernel_mask.numpy(), [[1, 0]])
    np.testing.assert_array_equal(model.get_layer("conv_0_1").kernel_mask.numpy(), [[1, 0], [1, 0]])
    keys = ("num_kernels", "num_pruned_kernels", "num_parameters", "num_pruned_parameters")
    assert report.layers == {
        "conv_0_0": dict(zip(keys, (2, 1, 18, 9))),
        "conv_0_1": dict(zip(keys, (4, 2, 36, 18))),
    }
    assert report.threshold == pytest.approx(0.3 * PATTERN_STD, rel=1e-6)  # smallest kept
    assert report.scope == "model"
    # trainable: conv_0_0 9*2 + 2, conv_0_1 9*4 + 2, head 2*2 + 2
    assert report.num_model_parameters == 64
    totals = (report.num_kernels, report.num_pruned_kernels, report.num_pruned_parameters)
    assert totals == (6, 3, 27)
    assert report.pruned_kernel_fraction == 0.5
    assert report.pruned_parameter_fraction == pytest.approx(27 / 64)
    # Pruned weights are zero; kept ones untouched.
    kernel = model.get_layer("conv_0_1").kernel.numpy()
    np.testing.assert_array_equal(kernel[:, :, 0, 1], np.zeros((3, 3)))
    np.testing.assert_allclose(kernel[:, :, 1, 0], 0.9 * PATTERN)


def test_fraction_per_layer_and_gradual_pruning():
    model = _model()
    report = prune_kernels(model, fraction=0.5, scope="layer")
    np.testing.assert_array_equal(model.get_layer("conv_0_0").kernel_mask.numpy(), [[1, 0]])
    np.testing.assert_array_equal(model.get_layer("conv_0_1").kernel_mask.numpy(), [[1, 0], [1, 0]])
    assert report.threshold == pytest.approx(
        {"conv_0_0": 0.5 * PATTERN_STD, "conv_0_1": 0.3 * PATTERN_STD}, rel=1e-6
    )
    # A larger model-wide fraction adds the next kernel (0.3); the pruned stay pruned.
    report = prune_kernels(model, fraction=4 / 6)
    np.testing.assert_array_equal(model.get_layer("conv_0_1").kernel_mask.numpy(), [[0, 0], [1, 0]])
    assert report.num_pruned_kernels == 4
    # A smaller fraction restores nothing.
    assert prune_kernels(model, fraction=0.1).num_pruned_kernels == 4


def test_absolute_threshold_and_layer_selection():
    model = _model()
    report = prune_kernels(model, threshold=0.25 * PATTERN_STD, layer_names=["conv_0_1"])
    assert list(report.layers) == ["conv_0_1"]
    np.testing.assert_array_equal(model.get_layer("conv_0_1").kernel_mask.numpy(), [[1, 0], [1, 0]])
    np.testing.assert_array_equal(model.get_layer("conv_0_0").kernel_mask.numpy(), [[1, 1]])
    assert report.threshold == pytest.approx(0.25 * PATTERN_STD)


def test_pruned_model_has_zero_gradients_on_pruned_kernels():
    model = _model()
    prune_kernels(model, fraction=0.5)
    images = tf.constant(np.random.default_rng(0).standard_normal((4, 6, 6, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(images) * tf.constant([[1.0, -1.0]]))
    layer = model.get_layer("conv_0_1")
    gradient = tape.gradient(loss, layer.kernel).numpy()
    pruned = layer.kernel_mask.numpy() == 0
    assert np.all(gradient[:, :, pruned] == 0) and np.any(gradient[:, :, ~pruned] != 0)


def test_report_to_dict_and_text():
    report = prune_kernels(_model(), fraction=0.5)
    as_dict = report.to_dict()
    assert as_dict["num_pruned_kernels"] == 3 and as_dict["pruned_kernel_fraction"] == 0.5
    assert "total | 3/6 (50.0%)" in str(report)
    assert isinstance(report, PruningReport)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of"),
        ({"fraction": 2.0}, "fraction"),
        ({"threshold": -1.0}, "threshold"),
        ({"fraction": 0.5, "scope": "all"}, "scope"),
        ({"fraction": 0.5, "layer_names": ["head"]}, "layer_names"),
    ],
)
def test_prune_kernels_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        prune_kernels(_model(), **kwargs)
    assert message in str(info.value)


def test_model_without_masked_convolutions_is_refused():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="plain")
    expected = "no prunable masked convolutions.*Received: model='plain'"
    with pytest.raises(ValueError, match=expected):
        prune_kernels(model, fraction=0.5)


def test_prune_kernels_docstring_examples():
    assert_docstring_examples(prune_kernels_module)
    assert_docstring_examples(pruning_report_module)


def test_pruning_public_api():
    import tfemergent
    from tfemergent import analysis, callbacks, initializers, layers, models, pruning

    assert sorted(pruning.__all__) == [
        "ChannelPruningReport", "PruningReport", "activation_scales", "channel_groups",
        "dead_neurons", "prune_channels", "prune_kernels", "restore_activation_scales", "shrink",
    ]
    assert initializers.__all__ == ["SmoothKernel"]
    assert tfemergent.pruning is pruning and tfemergent.initializers is initializers
    public = [getattr(pruning, name) for name in pruning.__all__] + [
        initializers.SmoothKernel,
        layers.MaskedConv2D,
        layers.AddOnConv2D,
        models.SegmentCNN,
        callbacks.PruningSchedule,
        analysis.kernel_sensitivity,
        analysis.select_kernels,
        analysis.sensitivity_threshold,
    ]
    for value in public:
        assert value.__doc__ and "Example:" in value.__doc__, value
