"""grid_usage: evenness, Gini and polarisation of grid activity, hand-computed."""

import importlib

import numpy as np
import pytest
from docstring_examples import assert_docstring_examples

from tfemergent.analysis import grid_usage

grid_usage_module = importlib.import_module("tfemergent.analysis.grid_usage")


def test_perfectly_even_use():
    activations = np.ones((5, 3, 3)) * np.array([1.0, -1.0, 1.0, 1.0, -1.0])[:, None, None]
    usage = grid_usage(activations)
    np.testing.assert_allclose(usage["activity"], np.ones((3, 3)))
    assert usage["evenness"] == pytest.approx(1.0)
    assert usage["gini"] == pytest.approx(0.0)
    np.testing.assert_allclose(usage["firing_rate"], np.full((3, 3), 0.6))
    assert usage["polarised_fraction"] == 0.0


def test_hand_computed_uneven_use():
    # 4 units with mean |a| = 1, 1, 2, 4 (sum 8): shares 1/8, 1/8, 1/4, 1/2
    activations = np.array([[1.0, -1.0, 2.0, 4.0], [1.0, 1.0, -2.0, 4.0]])
    usage = grid_usage(activations)
    np.testing.assert_allclose(usage["activity"], [0.25, 0.25, 0.5, 1.0])
    shares = np.array([1, 1, 2, 4]) / 8
    entropy = -np.sum(shares * np.log(shares))
    assert usage["evenness"] == pytest.approx(np.exp(entropy) / 4)
    # Gini of 1, 1, 2, 4: sum_i sum_j |x_i - x_j| / (2 n^2 mean) = 20 / (2 * 16 * 2)
    assert usage["gini"] == pytest.approx(20 / 64)
    np.testing.assert_allclose(usage["firing_rate"], [1.0, 0.5, 0.5, 1.0])
    assert usage["polarised_fraction"] == pytest.approx(0.5)


def test_threshold_and_rare_margin():
    activations = np.array([[0.2], [0.4], [0.6], [0.8]] * 5)  # 20 inputs, one unit
    assert grid_usage(activations, threshold=0.5)["firing_rate"][0] == pytest.approx(0.5)
    assert grid_usage(activations, threshold=0.7, rare=0.3)["polarised_fraction"] == 1.0
    assert grid_usage(activations, threshold=0.7, rare=0.2)["polarised_fraction"] == 0.0


def test_all_zero_activations_are_even_and_finite():
    usage = grid_usage(np.zeros((4, 2, 2)))
    np.testing.assert_array_equal(usage["activity"], np.zeros((2, 2)))
    assert usage["evenness"] == 1.0 and usage["gini"] == 0.0
    assert usage["polarised_fraction"] == 1.0  # never active


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"activations": np.zeros(3)}, "shape"),
        ({"activations": np.zeros((0, 2))}, "shape"),
        ({"activations": np.array([[np.nan, 1.0]])}, "finite"),
        ({"activations": "grid"}, "numeric"),
        ({"activations": np.array([["a", "b"]])}, "numeric"),
        ({"activations": np.ones((2, 2)), "rare": 0.6}, "rare"),
        ({"activations": np.ones((2, 2)), "threshold": float("inf")}, "threshold"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as error:
        grid_usage(**kwargs)
    assert "Received" in str(error.value)


def test_docstring_example():
    assert_docstring_examples(grid_usage_module)
