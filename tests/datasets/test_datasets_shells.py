"""The synthetic concentric spherical shells of the URN paper."""

import importlib

import numpy as np
import pytest

from tfemergent import datasets
from tfemergent.datasets import concentric_shells
from docstring_examples import assert_docstring_examples


def test_surface_shells_have_exact_radii_and_types():
    x, y = concentric_shells(10, 400, radii=(1.0, 2.0), seed=3)
    assert x.shape == (400, 10) and x.dtype == np.float32
    assert y.shape == (400,) and y.dtype == np.int64
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms[y == 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(norms[y == 1], 2.0, rtol=1e-6)


def test_thick_shells_stay_within_bounds_and_fill_the_volume():
    dim, thickness = 4, 0.5
    x, y = concentric_shells(dim, 4000, radii=(1.0, 2.0), seed=0, thickness=thickness)
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    for label, inner in enumerate((1.0, 2.0)):
        radius = norms[y == label]
        assert radius.min() >= inner - 1e-6
        assert radius.max() <= inner + thickness + 1e-6
        # Uniform in volume: r**dim is uniform between inner**dim and outer**dim.
        u = (radius**dim - inner**dim) / ((inner + thickness) ** dim - inner**dim)
        assert abs(np.mean(u) - 0.5) < 0.03
        assert abs(np.mean(u < 0.25) - 0.25) < 0.03


@pytest.mark.parametrize(
    "num_samples, radii, expected",
    [(100, (1.0, 2.0), [50, 50]), (101, (1.0, 2.0), [51, 50]), (10, (1.0, 2.0, 3.0), [4, 3, 3])],
)
def test_classes_are_balanced(num_samples, radii, expected):
    _, y = concentric_shells(3, num_samples, radii=radii)
    assert np.bincount(y, minlength=len(radii)).tolist() == expected


def test_same_seed_same_arrays_and_samples_are_shuffled():
    x1, y1 = concentric_shells(10, 200, seed=7)
    x2, y2 = concentric_shells(10, 200, seed=7)
    x3, _ = concentric_shells(10, 200, seed=8)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    # Shuffled: the classes are interleaved, not in two blocks.
    assert 0 < y1[:100].sum() < 100


def test_directions_are_uniform():
    x, y = concentric_shells(10, 4000, seed=1)
    directions = x / np.linalg.norm(x, axis=1, keepdims=True)
    for label in (0, 1):
        selected = directions[y == label]
        # Each coordinate of a uniform unit vector has mean 0 and variance 1/dim.
        assert np.all(np.abs(selected.mean(axis=0)) < 0.06)
        np.testing.assert_allclose((selected**2).mean(axis=0), 0.1, atol=0.02)


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"dim": 0}, "Received: dim=0"),
        ({"dim": 2.5}, "Received: dim=2.5"),
        ({"num_samples": 1}, "Received: num_samples=1"),
        ({"num_samples": True}, "Received: num_samples=True"),
        ({"seed": -1}, "Received: seed=-1"),
        ({"thickness": -0.1}, "Received: thickness=-0.1"),
        ({"thickness": float("nan")}, "Received: thickness=nan"),
        ({"radii": (1.0,)}, "Received: radii=(1.0,)"),
        ({"radii": 2.0}, "Received: radii=2.0"),
        ({"radii": (2.0, 1.0)}, "Received: radii=(2.0, 1.0)"),
        ({"radii": (0.0, 1.0)}, "Received: radii=(0.0, 1.0)"),
        ({"radii": ("a", "b")}, "Received: radii=('a', 'b')"),
        ({"radii": (1.0, 2.0), "thickness": 1.0}, "Received: radii=(1.0, 2.0), thickness=1.0"),
    ],
)
def test_invalid_arguments(kwargs, received):
    arguments = {"dim": 3, "num_samples": 10, **kwargs}
    with pytest.raises(ValueError) as info:
        concentric_shells(**arguments)
    assert received in str(info.value)


def test_exported_and_docstring_example_runs():
    assert "concentric_shells" in datasets.__all__
    module = importlib.import_module("tfemergent.datasets.synthetic")
    assert_docstring_examples(module)
