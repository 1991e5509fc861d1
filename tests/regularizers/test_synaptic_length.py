"""Tests of `SynapticLength`."""

import doctest
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_contract import assert_regularizer_contract

from tfemergent import regularizers
from tfemergent.geometry import UpliftedLattice
from tfemergent.regularizers import SynapticLength
from tfemergent.regularizers import synaptic_length

LATTICE = UpliftedLattice(width=3, height=3, depth=2, beta=2.0, num_outputs=1)  # S = 18


def double_loop(kernel, coordinates, c_syn, gamma):
    """The paper's sum over synapses j -> i, with W_ij = kernel[j, i]."""
    total = 0.0
    size = kernel.shape[0]
    for i in range(size):
        for j in range(size):
            d = np.sqrt(np.sum((coordinates[i] - coordinates[j]) ** 2))
            total += abs(kernel[j, i]) * d**gamma
    return c_syn * total


def random_kernel(seed, size=LATTICE.num_neurons, dtype="float64"):
    return np.random.default_rng(seed).normal(size=(size, size)).astype(dtype)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_matches_double_loop(gamma, dtype):
    kernel = random_kernel(0, dtype=dtype)
    coordinates = LATTICE.coordinates("float64")
    value = SynapticLength(c_syn=0.3, gamma=gamma)((kernel, coordinates))
    assert value.dtype == dtype and value.shape == ()
    expected = double_loop(kernel.astype("float64"), coordinates, 0.3, gamma)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_counts_every_synapse_once_and_ignores_the_diagonal():
    coordinates = LATTICE.coordinates("float64")
    kernel = np.zeros((18, 18))
    kernel[0, 9] = 1.0  # (0, 0, 0) -> (0, 0, 1): length sqrt(beta)
    kernel[9, 0] = -3.0  # the reverse synapse is a different one
    np.fill_diagonal(kernel[1:, 1:], 100.0)  # self-connections have length 0
    cost = SynapticLength(c_syn=1.0, gamma=2.0)((kernel, coordinates))
    np.testing.assert_allclose(cost.numpy(), (1.0 + 3.0) * 2.0, rtol=1e-12)


@pytest.mark.parametrize("gamma", [1.0, 2.0])
def test_gradient_matches_numerical(gamma):
    # Random kernel entries are away from 0 (the kink of |w|); the diagonal has
    # d = 0, where both the cost and its (sub)gradient are 0.
    size = 8
    kernel = random_kernel(1, size)
    kernel[np.abs(kernel) < 0.05] = 0.5
    coordinates = LATTICE.coordinates("float64")[:size] + np.random.default_rng(2).uniform(
        0, 0.1, size=(size, 3)
    )
    cost = SynapticLength(c_syn=0.7, gamma=gamma)
    theoretical, numerical = tf.test.compute_gradient(
        lambda k, p: cost((k, p)), [kernel, coordinates], delta=1e-6
    )
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6)


def test_gradient_on_the_lattice_is_finite_and_exact():
    # Coincident pairs (the diagonal) contribute 0 to every gradient; d/dW = c * sign * d**gamma.
    kernel = tf.Variable(random_kernel(3, dtype="float32"))
    coordinates = tf.Variable(LATTICE.coordinates())
    with tf.GradientTape() as tape:
        cost = SynapticLength(c_syn=2.0, gamma=0.5)((kernel, coordinates))
    grad_kernel, grad_coordinates = tape.gradient(cost, [kernel, coordinates])
    assert np.all(np.isfinite(grad_kernel.numpy()))
    assert np.all(np.isfinite(grad_coordinates.numpy()))
    p = LATTICE.coordinates("float64")
    d = np.sqrt(np.sum((p[:, None] - p[None]) ** 2, axis=-1))
    np.testing.assert_allclose(
        grad_kernel.numpy(), 2.0 * np.sign(kernel.numpy()) * d**0.5, rtol=1e-5, atol=1e-6
    )


def test_regularizer_contract(monkeypatch):
    # The contract calls the regularizer with a single [S, S] weight (also as a
    # Dense kernel_regularizer); bind the lattice positions for that call only.
    original_call = SynapticLength.__call__
    coordinates = LATTICE.coordinates()

    def call_with_lattice(self, x):
        if not isinstance(x, (tuple, list)):
            x = (x, coordinates)
        return original_call(self, x)

    monkeypatch.setattr(SynapticLength, "__call__", call_with_lattice)
    assert_regularizer_contract(
        SynapticLength(c_syn=0.25, gamma=2.0), weight_shape=(18, 18)
    )


def test_config_round_trip_and_registry():
    cost = SynapticLength(c_syn=1e-3, gamma=1.5)
    config = json.loads(json.dumps(cost.get_config()))
    assert config == {"c_syn": 1e-3, "gamma": 1.5}
    assert SynapticLength.from_config(config).get_config() == config
    assert keras.saving.get_registered_name(SynapticLength) == "tfemergent>SynapticLength"
    serialized = json.loads(json.dumps(regularizers.serialize(cost)))
    assert regularizers.get(serialized).get_config() == config
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config


def test_get_by_name():
    assert isinstance(regularizers.get("synaptic_length"), SynapticLength)
    assert isinstance(regularizers.get("SynapticLength"), SynapticLength)
    assert regularizers.get("synaptic_length").get_config() == {"c_syn": 1.0, "gamma": 1.0}


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"c_syn": -1.0}, "c_syn"),
        ({"c_syn": float("nan")}, "c_syn"),
        ({"c_syn": "1"}, "c_syn"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": -2.0}, "gamma"),
        ({"gamma": float("inf")}, "gamma"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=f"Received: {name}="):
        SynapticLength(**kwargs)


def test_call_errors():
    kernel = np.zeros((18, 18), "float32")
    with pytest.raises(ValueError, match="Received: x of type ndarray"):
        SynapticLength()(kernel)
    with pytest.raises(ValueError, match="Received:"):  # 17 positions for 18 neurons
        SynapticLength()((kernel, LATTICE.coordinates()[:17]))


def test_docstring_example():
    result = doctest.testmod(synaptic_length, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
