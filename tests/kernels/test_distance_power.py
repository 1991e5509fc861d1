"""Tests of the `distance_power` argument of `distance_weighted_l1`."""

import numpy as np
import pytest
import tensorflow as tf

from tfemergent.kernels import distance_weighted_l1

METRICS = ["euclidean", "manhattan"]
POWERS = [0.5, 1.0, 2.0]


def numpy_distances(p, q, metric):
    differences = p[:, None, :] - q[None, :, :]
    if metric == "euclidean":
        return np.sqrt(np.sum(differences**2, axis=-1))
    return np.sum(np.abs(differences), axis=-1)


def numpy_cost(weights, p_in, p_out, weight_norm, metric, power):
    f = np.abs(weights) if weight_norm == "l1" else weights**2
    return np.sum(f * numpy_distances(p_in, p_out, metric) ** power)


def general_positions(rng, *counts, dimension=3, gap=0.1):
    """Position sets in which no two points share a coordinate within `gap / 2`."""
    total = sum(counts)
    values = rng.permutation(np.arange(total * dimension) * gap)
    values = values + rng.uniform(0, gap / 4, size=values.shape)
    values = (values - values.mean()).reshape(total, dimension)
    return np.split(values, np.cumsum(counts)[:-1])


def value_and_gradients(weights, p_in, p_out, **kwargs):
    weights, p_in, p_out = (tf.constant(t) for t in (weights, p_in, p_out))
    with tf.GradientTape() as tape:
        tape.watch([weights, p_in, p_out])
        cost = distance_weighted_l1(weights, p_in, p_out, **kwargs)
    return [cost.numpy()] + [g.numpy() for g in tape.gradient(cost, [weights, p_in, p_out])]


def test_hand_computed():
    weights = np.array([[1.0, -2.0]], dtype="float32")
    p_in = np.array([[0.0, 0.0]], dtype="float32")
    p_out = np.array([[3.0, 4.0], [0.0, 1.0]], dtype="float32")
    # Distances 5 and 1: 1 * 5**2 + 2 * 1 = 27; 1 * sqrt(5) + 2 * 1.
    assert float(distance_weighted_l1(weights, p_in, p_out, distance_power=2.0)) == 27.0
    np.testing.assert_allclose(
        float(distance_weighted_l1(weights, p_in, p_out, distance_power=0.5)), np.sqrt(5) + 2
    )
    # The default is the plain distance.
    assert float(distance_weighted_l1(weights, p_in, p_out, distance_power=1)) == 7.0


@pytest.mark.parametrize("power", POWERS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_match_numpy(power, metric, dtype):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(9, 6)).astype(dtype)
    p_in = rng.normal(size=(9, 3)).astype(dtype)
    p_out = rng.normal(size=(6, 3)).astype(dtype)
    expected = numpy_cost(weights, p_in, p_out, "l1", metric, power)
    for block_size in (None, 4):
        result = distance_weighted_l1(
            weights, p_in, p_out, metric=metric, distance_power=power, block_size=block_size
        )
        assert result.dtype == dtype and result.shape == ()
        np.testing.assert_allclose(
            result.numpy(), expected, rtol=1e-5 if dtype == "float32" else 1e-12
        )


@pytest.mark.parametrize(
    "power, metric, weight_norm, block_size",
    [
        (0.5, "euclidean", "l1", 2),
        (1.0, "euclidean", "l1", None),
        (2.0, "euclidean", "l1", 2),
        (1.5, "euclidean", "l2", None),
        (3.0, "euclidean", "l1", None),
        (0.5, "manhattan", "l2", None),
        (2.0, "manhattan", "l1", 2),
    ],
)
def test_gradients_match_numerical_float64(power, metric, weight_norm, block_size):
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(5, 4))
    weights[np.abs(weights) < 0.05] = 0.5  # stay away from the kink of |w|
    p_in, p_out = general_positions(rng, 5, 4)
    theoretical, numerical = tf.test.compute_gradient(
        lambda w, a, b: distance_weighted_l1(
            w,
            a,
            b,
            weight_norm=weight_norm,
            metric=metric,
            block_size=block_size,
            distance_power=power,
        ),
        [weights, p_in, p_out],
        delta=1e-6,
    )
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    "power, metric, block_size",
    [
        (0.25, "euclidean", 1),
        (0.5, "euclidean", None),
        (1.0, "euclidean", 1),
        (2.0, "euclidean", None),
        (3.0, "euclidean", 1),
        (0.5, "manhattan", 1),
        (2.0, "manhattan", None),
    ],
)
def test_gradients_finite_at_coincident_points(power, metric, block_size):
    # Input 0 sits exactly on output 0 (and input 1 on output 1 in all but one
    # coordinate); the coincident pair contributes nothing to the position gradient.
    weights = np.array([[2.0, -1.0], [0.5, 3.0]])
    p_in = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    p_out = np.array([[1.0, 1.0, 0.0], [4.0, 0.0, 0.0]])
    cost, grad_w, grad_in, grad_out = value_and_gradients(
        weights, p_in, p_out, metric=metric, distance_power=power, block_size=block_size
    )
    for grad in (grad_w, grad_in, grad_out):
        assert np.all(np.isfinite(grad))
    d = numpy_distances(p_in, p_out, metric)
    np.testing.assert_allclose(cost, numpy_cost(weights, p_in, p_out, "l1", metric, power))
    np.testing.assert_allclose(grad_w, np.sign(weights) * d**power, rtol=1e-12)
    assert grad_w[0, 0] == 0.0

    # Expected position gradients: power * d**(power - 1) * u over the other pairs.
    def v(i, j):
        diff = p_in[i] - p_out[j]
        u = diff / d[i, j] if metric == "euclidean" else np.sign(diff)
        return power * d[i, j] ** (power - 1) * u

    expected_in = [
        np.abs(weights[0, 1]) * v(0, 1),
        sum(np.abs(weights[1, j]) * v(1, j) for j in (0, 1)),
    ]
    expected_out = [
        -np.abs(weights[1, 0]) * v(1, 0),
        -sum(np.abs(weights[i, 1]) * v(i, 1) for i in (0, 1)),
    ]
    np.testing.assert_allclose(grad_in, expected_in, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(grad_out, expected_out, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("power", [0.5, 2.0])
def test_all_points_coincident(power):
    weights = tf.Variable(np.random.default_rng(2).normal(size=(6, 4)).astype("float32"))
    p_in = tf.Variable(tf.zeros([6, 3]))
    p_out = tf.Variable(tf.zeros([4, 3]))
    with tf.GradientTape() as tape:
        cost = distance_weighted_l1(weights, p_in, p_out, distance_power=power, block_size=4)
    assert float(cost) == 0.0
    for grad in tape.gradient(cost, [weights, p_in, p_out]):
        np.testing.assert_array_equal(grad.numpy(), 0.0)


@pytest.mark.parametrize("power", POWERS)
@pytest.mark.parametrize("block_size", [1, 4])
def test_blocked_equals_unblocked(power, block_size):
    # 11 rows: block sizes 3 and 4 leave an uneven last block. Same points as
    # inputs and outputs, so the diagonal has zero distance.
    rng = np.random.default_rng(3)
    positions = rng.normal(size=(11, 3))
    weights = rng.normal(size=(11, 11))
    blocked = value_and_gradients(
        weights, positions, positions, block_size=block_size, distance_power=power
    )
    unblocked = value_and_gradients(
        weights, positions, positions, block_size=11, distance_power=power
    )
    for a, b in zip(blocked, unblocked):
        assert np.all(np.isfinite(a))
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_under_jit_compile():
    rng = np.random.default_rng(4)
    weights = tf.Variable(rng.normal(size=(10, 6)).astype("float32"))
    p_in = tf.Variable(rng.normal(size=(10, 3)).astype("float32"))
    p_out = tf.Variable(rng.normal(size=(6, 3)).astype("float32"))

    def step():
        with tf.GradientTape() as tape:
            cost = distance_weighted_l1(weights, p_in, p_out, block_size=3, distance_power=1.5)
        return [cost] + tape.gradient(cost, [weights, p_in, p_out])

    for compiled, eager in zip(tf.function(step, jit_compile=True)(), step()):
        np.testing.assert_allclose(compiled.numpy(), eager.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("power", [0.0, -1.0, float("nan"), float("inf"), "2", True, None])
def test_invalid_distance_power(power):
    with pytest.raises(ValueError, match="Received: distance_power="):
        distance_weighted_l1(
            np.ones((2, 3)), np.ones((2, 2)), np.ones((3, 2)), distance_power=power
        )
