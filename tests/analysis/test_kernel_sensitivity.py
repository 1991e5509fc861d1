"""Kernel sensitivity (per-kernel std) and the selection of kernels to prune, by hand."""

import importlib
import math

import keras
import numpy as np
import pytest
from docstring_examples import assert_docstring_examples

from tfemergent.analysis import (
    kernel_sensitivities,
    kernel_sensitivity,
    prunable_layers,
    select_kernels,
    sensitivity_threshold,
)
from tfemergent.layers import AddOnConv2D, MaskedConv2D

kernel_sensitivity_module = importlib.import_module("tfemergent.analysis.kernel_sensitivity")


def test_kernel_sensitivity_by_hand():
    kernel = np.zeros((3, 3, 2, 2))
    kernel[:, :, 0, 0] = np.arange(9).reshape(3, 3)  # 0..8: population variance 60/9
    kernel[:, :, 0, 1] = 7.0  # flat
    kernel[0, 0, 1, 0] = 3.0  # one 3 and eight 0s: mean 1/3, variance 8/9
    kernel[:, :, 1, 1] = [[1, -1, 1], [-1, 1, -1], [1, -1, 1]]  # mean 1/9
    expected = np.array(
        [[math.sqrt(60 / 9), 0.0], [math.sqrt(8 / 9), math.sqrt(1 - 1 / 81)]]
    )
    np.testing.assert_allclose(kernel_sensitivity(kernel), expected)
    masked = kernel_sensitivity(kernel, mask=[[1, 1], [0, 1]])
    np.testing.assert_allclose(masked, expected * [[1, 1], [0, 1]])


def test_kernel_sensitivity_refuses_bad_shapes():
    expected = r"\(k, k, in, out\). Received: kernel with shape \(3, 3\)"
    with pytest.raises(ValueError, match=expected):
        kernel_sensitivity(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"Received: mask with shape \(2, 2\)"):
        kernel_sensitivity(np.zeros((3, 3, 1, 2)), mask=np.ones((2, 2)))


SENSITIVITIES = {
    "a": np.array([[0.4, 0.1], [0.3, 0.8]]),
    "b": np.array([[0.2, 0.6, 0.05]]),
}


def test_fraction_over_the_model():
    # 7 kernels, fraction 3/7 -> prune 3: 0.05 (b), 0.1 (a), 0.2 (b)
    keep = select_kernels(SENSITIVITIES, fraction=3 / 7)
    np.testing.assert_array_equal(keep["a"], [[True, False], [True, True]])
    np.testing.assert_array_equal(keep["b"], [[False, True, False]])
    assert sensitivity_threshold(SENSITIVITIES, 3 / 7) == pytest.approx(0.3)
    # round(0.5 * 7) = 4 (half rounds up): also 0.3
    keep = select_kernels(SENSITIVITIES, fraction=0.5)
    assert sum(int(value.sum()) for value in keep.values()) == 3
    assert not keep["a"][1, 0]


def test_fraction_per_layer():
    keep = select_kernels(SENSITIVITIES, fraction=0.5, scope="layer")
    # a: prune 2 of 4 (0.1, 0.3); b: prune round(1.5) = 2 of 3 (0.05, 0.2)
    np.testing.assert_array_equal(keep["a"], [[True, False], [False, True]])
    np.testing.assert_array_equal(keep["b"], [[False, True, False]])
    assert sensitivity_threshold(SENSITIVITIES, 0.5, scope="layer") == {"a": 0.4, "b": 0.6}


def test_already_pruned_kernels_count_and_are_never_restored():
    masks = {"a": np.array([[0, 1], [1, 1]]), "b": np.array([[1, 0, 1]])}  # 0.4 and 0.6 pruned
    keep = select_kernels(SENSITIVITIES, masks, fraction=3 / 7)
    # 2 pruned already, one more: the lowest live one, 0.05
    np.testing.assert_array_equal(keep["a"], [[False, True], [True, True]])
    np.testing.assert_array_equal(keep["b"], [[True, False, False]])
    # A smaller fraction than what is pruned already restores nothing.
    keep = select_kernels(SENSITIVITIES, masks, fraction=0.0)
    np.testing.assert_array_equal(keep["a"], masks["a"].astype(bool))
    np.testing.assert_array_equal(keep["b"], masks["b"].astype(bool))


def test_absolute_threshold_and_ties():
    keep = select_kernels(SENSITIVITIES, threshold=0.3)  # keep >= 0.3
    np.testing.assert_array_equal(keep["a"], [[True, False], [True, True]])
    np.testing.assert_array_equal(keep["b"], [[False, True, False]])
    ties = {"x": np.array([[0.5, 0.5, 0.5, 0.5]])}
    # Fraction with ties: exactly 2 pruned, in row-major order.
    keep = select_kernels(ties, fraction=0.5)["x"]
    np.testing.assert_array_equal(keep, [[False, False, True, True]])
    assert select_kernels(ties, fraction=1.0)["x"].sum() == 0
    assert sensitivity_threshold(ties, 1.0) == math.inf


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of `fraction`"),
        ({"fraction": 0.5, "threshold": 0.1}, "exactly one of `fraction`"),
        ({"fraction": 1.5}, "fraction"),
        ({"threshold": -0.1}, "threshold"),
        ({"fraction": 0.5, "scope": "network"}, "scope"),
        ({"fraction": 0.5, "masks": {"a": np.ones((2, 2))}}, "same layer names"),
        ({"fraction": 0.5, "masks": {"a": np.ones((2, 2)), "b": np.ones((3, 1))}}, "shape"),
    ],
)
def test_select_kernels_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        select_kernels(SENSITIVITIES, **kwargs)
    assert message in str(info.value)


def test_select_kernels_needs_sensitivities():
    with pytest.raises(ValueError, match="non-empty dict.*Received"):
        select_kernels({}, fraction=0.5)


def test_model_sensitivities_skip_one_by_one_kernels():
    inputs = keras.Input((6, 6, 2))
    x = MaskedConv2D(3, 3, name="three")(inputs)
    y = MaskedConv2D(3, 1, name="one")(x)
    z = AddOnConv2D(3, 5, name="five")(inputs)
    model = keras.Model(inputs, keras.layers.Add()([y, z]))
    assert [layer.name for layer in prunable_layers(model)] == ["three", "five"]
    model.get_layer("three").kernel.assign(np.ones((3, 3, 2, 3)))
    model.get_layer("three").kernel.assign(
        model.get_layer("three").kernel.numpy() * np.arange(9.0).reshape(3, 3, 1, 1)
    )
    model.get_layer("three").set_kernel_mask([[1, 0, 1], [1, 1, 1]])
    sensitivities = kernel_sensitivities(model)
    assert sorted(sensitivities) == ["five", "three"]
    np.testing.assert_allclose(
        sensitivities["three"], math.sqrt(60 / 9) * np.array([[1, 0, 1], [1, 1, 1]])
    )
    assert sensitivities["five"].shape == (2, 3)
    assert list(kernel_sensitivities(model, layer_names=["five"])) == ["five"]
    with pytest.raises(ValueError, match=r"not prunable.*\['one'\].*Received: layer_names"):
        prunable_layers(model, ["one"])


def test_kernel_sensitivity_docstring_examples():
    assert_docstring_examples(kernel_sensitivity_module)


def test_select_connections_keeps_the_largest_by_hand():
    from tfemergent.analysis import select_connections

    sensitivity = np.array([[0.5, 0.1, 0.9, 0.3], [0.2, 0.9, 0.0, 0.4], [0.6, 0.7, 0.8, 0.05]])
    # 12 connections: round(0.1 * 12) = 1 -> the first 0.9 in row-major order
    expected = np.zeros((3, 4), bool)
    expected[0, 2] = True
    np.testing.assert_array_equal(select_connections(sensitivity, 0.1), expected)
    # round(0.25 * 12) = 3: 0.9, 0.9, 0.8
    expected[1, 1] = expected[2, 2] = True
    np.testing.assert_array_equal(select_connections(sensitivity, 0.25), expected)
    assert select_connections(np.zeros((1, 3)), 0.01).tolist() == [[True, False, False]]
    assert select_connections(sensitivity, 1.0).all()
    # half rounds up: 0.125 * 12 = 1.5 -> 2
    assert int(select_connections(sensitivity, 0.125).sum()) == 2
    with pytest.raises(ValueError, match="Received: density=0.0"):
        select_connections(sensitivity, 0.0)
    with pytest.raises(ValueError, match=r"Received: sensitivity with shape \(3,\)"):
        select_connections(np.ones(3), 0.5)
