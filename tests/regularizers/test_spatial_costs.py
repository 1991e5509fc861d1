import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfemergent import regularizers
from tfemergent.regularizers import DensityCost, TransportCost

KERNEL = np.array([[1.0, -3.0]], "float32")  # one input neuron, two outputs
P_IN = np.array([[0.0, 0.0]], "float32")
P_OUT = np.array([[3.0, 4.0], [0.0, 1.0]], "float32")  # distances 5 and 1 (manhattan 7 and 1)


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, (1 * 5 + 3 * 1) / 2),
        ({"weight_norm": "l2"}, (1 * 5 + 9 * 1) / 2),
        ({"metric": "manhattan"}, (1 * 7 + 3 * 1) / 2),
        ({"alpha": 2.0, "num_layers": 4}, 0.5 * (1 * 5 + 3 * 1) / 2),
        ({"alpha": 0.0}, 0.0),
        ({"normalization": "connections"}, (1 * 5 + 3 * 1) / (1 * 2)),
    ],
)
def test_transport_cost_hand_computed(kwargs, expected):
    value = TransportCost(**kwargs)((KERNEL, P_IN, P_OUT))
    assert float(value) == pytest.approx(expected, rel=1e-6)


def test_transport_cost_random_against_numpy():
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(7, 5))
    p_in, p_out = rng.normal(size=(7, 2)), rng.normal(size=(5, 2))
    distances = np.linalg.norm(p_in[:, None] - p_out[None], axis=-1)
    expected = 3.0 / 2 * (np.abs(kernel) * distances).sum() / 5
    value = TransportCost(alpha=3.0, num_layers=2)((kernel, p_in, p_out))
    assert float(value) == pytest.approx(expected, rel=1e-10)
    value = TransportCost(3.0, 2, normalization="connections")((kernel, p_in, p_out))
    assert float(value) == pytest.approx(expected / 7, rel=1e-10)


def test_density_cost_hand_computed():
    positions = np.array([[0.0, 0.0], [3.0, 4.0]], "float64")
    expected = (2 * 1.0 + 2 * np.exp(-5.0)) / 4
    assert float(DensityCost(beta=1.0)(positions)) == pytest.approx(expected, rel=1e-12)
    assert float(DensityCost(beta=3.0, num_layers=3)(positions)) == pytest.approx(expected)
    manhattan = (2 * 1.0 + 2 * np.exp(-7.0)) / 4
    assert float(DensityCost(1.0, metric="manhattan")(positions)) == pytest.approx(manhattan)


def test_density_gradient_matches_numerics():
    rng = np.random.default_rng(1)
    positions = tf.constant(rng.normal(size=(6, 2)))
    theoretical, numerical = tf.test.compute_gradient(lambda p: DensityCost(2.0)(p), [positions])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)


def test_transport_gradient_matches_numerics():
    rng = np.random.default_rng(2)
    kernel = tf.constant(rng.normal(size=(4, 3)))
    p_in = tf.constant(rng.normal(size=(4, 2)))
    p_out = tf.constant(rng.normal(size=(3, 2)))
    theoretical, numerical = tf.test.compute_gradient(
        lambda k, a, b: TransportCost(1.5)((k, a, b)), [kernel, p_in, p_out]
    )
    for t, n in zip(theoretical, numerical):
        np.testing.assert_allclose(t, n, atol=1e-6)


def test_gradients_finite_when_positions_coincide():
    positions = tf.Variable(np.zeros((3, 2), "float32"))
    kernel = tf.Variable(np.ones((3, 3), "float32"))
    with tf.GradientTape() as tape:
        total = DensityCost(3.0)(positions) + TransportCost(1.0)((kernel, positions, positions))
    grads = tape.gradient(total, [positions, kernel])
    assert float(total) == pytest.approx(3.0)  # exp(0) everywhere, all distances 0
    for grad in grads:
        assert np.all(np.isfinite(grad.numpy()))
    np.testing.assert_array_equal(grads[0].numpy(), 0.0)


@pytest.mark.parametrize("cost", [TransportCost(0.5, 3, "l2", "manhattan"), DensityCost(2.0, 2)])
def test_config_round_trip_and_registry(cost):
    config = json.loads(json.dumps(cost.get_config()))
    rebuilt = type(cost).from_config(config)
    assert rebuilt.get_config() == cost.get_config()
    assert keras.saving.get_registered_name(type(cost)).startswith("tfemergent>")
    serialized = json.loads(json.dumps(regularizers.serialize(cost)))
    assert regularizers.get(serialized).get_config() == cost.get_config()
    assert keras.saving.deserialize_keras_object(serialized).get_config() == cost.get_config()


def test_get_by_name():
    assert isinstance(regularizers.get("transport_cost"), TransportCost)
    assert isinstance(regularizers.get("DensityCost"), DensityCost)
    assert isinstance(regularizers.get("l1"), keras.regularizers.L1)
    assert regularizers.get(None) is None
    with pytest.raises(ValueError, match="Received: identifier='nope'"):
        regularizers.get("nope")


@pytest.mark.parametrize(
    "cls, kwargs, name",
    [
        (TransportCost, {"alpha": -1.0}, "alpha"),
        (TransportCost, {"alpha": float("nan")}, "alpha"),
        (TransportCost, {"num_layers": 0}, "num_layers"),
        (TransportCost, {"weight_norm": "l3"}, "weight_norm"),
        (TransportCost, {"metric": "cosine"}, "metric"),
        (TransportCost, {"normalization": "batch"}, "normalization"),
        (DensityCost, {"beta": -0.1}, "beta"),
        (DensityCost, {"num_layers": 1.5}, "num_layers"),
        (DensityCost, {"metric": "chebyshev"}, "metric"),
    ],
)
def test_invalid_arguments(cls, kwargs, name):
    with pytest.raises(ValueError, match="Received:") as info:
        cls(**kwargs)
    assert name in str(info.value)


def test_call_errors():
    with pytest.raises(ValueError, match="Received: x of type"):
        TransportCost()(KERNEL)
    with pytest.raises(ValueError, match="Received: positions.shape"):
        DensityCost()(np.zeros((2, 2, 2), "float32"))
