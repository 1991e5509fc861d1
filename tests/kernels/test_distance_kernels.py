"""Tests of `pairwise_distances` and `distance_weighted_l1`."""

import numpy as np
import pytest
import tensorflow as tf

from tfemergent.kernels import distance_weighted_l1
from tfemergent.kernels import pairwise_distances

METRICS = ["euclidean", "manhattan"]
NORMS = ["l1", "l2"]


def numpy_distances(p, q, metric):
    differences = p[:, None, :] - q[None, :, :]
    if metric == "euclidean":
        return np.sqrt(np.sum(differences**2, axis=-1))
    return np.sum(np.abs(differences), axis=-1)


def numpy_cost(weights, p_in, p_out, weight_norm, metric):
    f = np.abs(weights) if weight_norm == "l1" else weights**2
    return np.sum(f * numpy_distances(p_in, p_out, metric))


def general_positions(rng, *counts, dimension=2, gap=0.1):
    """Random position sets in general position: no two points (of any set) share a
    coordinate value within `gap / 2`, so no kink of |.| or of the norm is nearby."""
    total = sum(counts)
    values = rng.permutation(np.arange(total * dimension) * gap)
    values = values + rng.uniform(0, gap / 4, size=values.shape)
    values = (values - values.mean()).reshape(total, dimension)
    return np.split(values, np.cumsum(counts)[:-1])


# ----------------------------------------------------------------------------
# pairwise_distances
# ----------------------------------------------------------------------------


def test_pairwise_hand_computed():
    p = np.array([[0.0, 0.0], [3.0, 4.0]], dtype="float32")
    q = np.array([[0.0, 1.0]], dtype="float32")
    np.testing.assert_array_equal(pairwise_distances(p, p).numpy(), [[0, 5], [5, 0]])
    np.testing.assert_allclose(pairwise_distances(p, q).numpy(), [[1], [np.sqrt(18)]])
    np.testing.assert_array_equal(pairwise_distances(p, q, "manhattan").numpy(), [[1], [6]])


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_pairwise_random_matches_numpy(metric, dtype):
    rng = np.random.default_rng(0)
    p = rng.normal(size=(7, 3)).astype(dtype)
    q = rng.normal(size=(5, 3)).astype(dtype)
    result = pairwise_distances(tf.Variable(p), q, metric=metric)
    assert result.dtype == dtype
    np.testing.assert_allclose(result.numpy(), numpy_distances(p, q, metric), rtol=1e-6)


def test_pairwise_is_exact_for_nearby_points():
    # |p|^2 + |q|^2 - 2 p.q would cancel catastrophically here.
    p = np.array([[1000.0, 1000.0]], dtype="float32")
    q = np.array([[1000.0, 1000.0 + 2.0**-12]], dtype="float32")
    np.testing.assert_array_equal(pairwise_distances(p, q).numpy(), [[2.0**-12]])


@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_gradient_matches_numerical(metric):
    rng = np.random.default_rng(1)
    p, q = general_positions(rng, 4, 3)
    theoretical, numerical = tf.test.compute_gradient(
        lambda p, q: pairwise_distances(p, q, metric=metric), [p, q], delta=1e-5
    )
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("metric", METRICS)
def test_pairwise_gradient_at_coincident_points(metric):
    # p is q: every diagonal distance is zero; points 0 and 2 also coincide.
    p = tf.Variable([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    with tf.GradientTape() as tape:
        distances = pairwise_distances(p, p, metric=metric)
    grad = tape.gradient(distances, p).numpy()
    assert np.all(np.isfinite(grad))
    # Documented subgradient: 0 for the zero-distance pairs; each other pair (i, j)
    # contributes 2 * u_ij (as p_i and as q_i), u = (p_i - p_j)/d or sign(p_i - p_j).
    if metric == "euclidean":
        towards = np.array([-0.6, -0.8])
    else:
        towards = np.array([-1.0, -1.0])
    expected = np.array([2 * towards, -4 * towards, 2 * towards])
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


# ----------------------------------------------------------------------------
# distance_weighted_l1
# ----------------------------------------------------------------------------


def test_cost_hand_computed():
    weights = np.array([[1.0, -2.0]], dtype="float32")
    p_in = np.array([[0.0, 0.0]], dtype="float32")
    p_out = np.array([[3.0, 4.0], [0.0, 1.0]], dtype="float32")
    # |1| * 5 + |-2| * 1 = 7; squares: 1 * 5 + 4 * 1 = 9; manhattan: 1 * 7 + 2 * 1 = 9.
    assert float(distance_weighted_l1(weights, p_in, p_out)) == 7.0
    assert float(distance_weighted_l1(weights, p_in, p_out, weight_norm="l2")) == 9.0
    assert float(distance_weighted_l1(weights, p_in, p_out, metric="manhattan")) == 9.0


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("weight_norm", NORMS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cost_random_matches_numpy(metric, weight_norm, dtype):
    rng = np.random.default_rng(2)
    weights = rng.normal(size=(9, 6)).astype(dtype)
    p_in = rng.normal(size=(9, 2)).astype(dtype)
    p_out = rng.normal(size=(6, 2)).astype(dtype)
    result = distance_weighted_l1(
        tf.Variable(weights), p_in, p_out, weight_norm=weight_norm, metric=metric
    )
    assert result.dtype == dtype and result.shape == ()
    expected = numpy_cost(weights, p_in, p_out, weight_norm, metric)
    np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("block_size", [1, 2, 4, 10, 11, 50])
def test_blocks_give_the_unblocked_value_and_gradients(block_size):
    # 11 rows: block sizes 2 and 4 leave an uneven last block.
    rng = np.random.default_rng(3)
    weights = tf.constant(rng.normal(size=(11, 7)))
    p_in = tf.constant(rng.normal(size=(11, 3)))
    p_out = tf.constant(rng.normal(size=(7, 3)))

    def value_and_grads(block_size):
        with tf.GradientTape() as tape:
            tape.watch([weights, p_in, p_out])
            cost = distance_weighted_l1(weights, p_in, p_out, block_size=block_size)
        return [cost] + tape.gradient(cost, [weights, p_in, p_out])

    for blocked, unblocked in zip(value_and_grads(block_size), value_and_grads(11)):
        np.testing.assert_allclose(blocked.numpy(), unblocked.numpy(), rtol=1e-12, atol=1e-12)
    expected = numpy_cost(weights.numpy(), p_in.numpy(), p_out.numpy(), "l1", "euclidean")
    np.testing.assert_allclose(value_and_grads(block_size)[0].numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("weight_norm", NORMS)
def test_cost_gradient_matches_numerical_float64(metric, weight_norm):
    rng = np.random.default_rng(4)
    weights = rng.normal(size=(5, 4))
    weights[np.abs(weights) < 0.05] = 0.5  # stay away from the kink of |w|
    p_in, p_out = general_positions(rng, 5, 4)
    theoretical, numerical = tf.test.compute_gradient(
        lambda w, a, b: distance_weighted_l1(
            w, a, b, weight_norm=weight_norm, metric=metric, block_size=2
        ),
        [weights, p_in, p_out],
        delta=1e-5,
    )
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("metric", METRICS)
def test_cost_gradient_at_zero_distance_and_zero_weight(metric):
    # Input 0 sits exactly on output 0; weight (1, 1) is exactly zero.
    weights = tf.Variable([[2.0, -1.0], [0.5, 0.0]])
    p_in = tf.Variable([[1.0, 1.0], [0.0, 0.0]])
    p_out = tf.Variable([[1.0, 1.0], [4.0, 5.0]])
    with tf.GradientTape() as tape:
        cost = distance_weighted_l1(weights, p_in, p_out, metric=metric, block_size=1)
    grad_w, grad_in, grad_out = tape.gradient(cost, [weights, p_in, p_out])
    for grad in (grad_w, grad_in, grad_out):
        assert np.all(np.isfinite(grad.numpy()))
    d = numpy_distances(p_in.numpy(), p_out.numpy(), metric)
    # d/dw = sign(w) * d with sign(0) = 0: the zero-distance and zero-weight entries get 0.
    np.testing.assert_allclose(grad_w.numpy(), np.sign(weights.numpy()) * d, rtol=1e-6)
    assert grad_w.numpy()[0, 0] == 0.0 and grad_w.numpy()[1, 1] == 0.0
    # Positions: the coincident pair contributes the subgradient 0; the others
    # contribute |w_ij| * u_ij with u = (p_in_i - p_out_j) / d or sign(...).
    if metric == "euclidean":
        u01 = np.array([-3.0, -4.0]) / 5.0  # input 0 -> output 1
        u10 = np.array([-1.0, -1.0]) / np.sqrt(2.0)  # input 1 -> output 0
    else:
        u01 = np.array([-1.0, -1.0])
        u10 = np.array([-1.0, -1.0])
    np.testing.assert_allclose(grad_in.numpy(), [1.0 * u01, 0.5 * u10], rtol=1e-6)
    np.testing.assert_allclose(grad_out.numpy(), [-0.5 * u10, -1.0 * u01], rtol=1e-6)


def test_cost_coincident_layers_gradients_are_finite():
    # Every input on top of every output (e.g. freshly initialised at the origin).
    weights = tf.Variable(np.random.default_rng(5).normal(size=(6, 4)).astype("float32"))
    p_in = tf.Variable(tf.zeros([6, 2]))
    p_out = tf.Variable(tf.zeros([4, 2]))
    with tf.GradientTape() as tape:
        cost = distance_weighted_l1(weights, p_in, p_out, weight_norm="l2")
    assert float(cost) == 0.0
    for grad in tape.gradient(cost, [weights, p_in, p_out]):
        np.testing.assert_array_equal(grad.numpy(), 0.0)


def test_cost_under_jit_compile_with_blocks():
    rng = np.random.default_rng(6)
    weights = tf.Variable(rng.normal(size=(10, 6)).astype("float32"))
    p_in = tf.Variable(rng.normal(size=(10, 2)).astype("float32"))
    p_out = tf.Variable(rng.normal(size=(6, 2)).astype("float32"))

    def step():
        with tf.GradientTape() as tape:
            cost = distance_weighted_l1(weights, p_in, p_out, block_size=3) + tf.reduce_sum(
                pairwise_distances(p_in, p_in)
            )
        return [cost] + tape.gradient(cost, [weights, p_in, p_out])

    for compiled, eager in zip(tf.function(step, jit_compile=True)(), step()):
        np.testing.assert_allclose(compiled.numpy(), eager.numpy(), rtol=1e-5, atol=1e-5)


def test_cost_mirrored_strategy_replica_context(mirrored_strategy):
    rng = np.random.default_rng(7)
    weights = rng.normal(size=(5, 3)).astype("float32")
    p_in = rng.normal(size=(5, 2)).astype("float32")
    p_out = rng.normal(size=(3, 2)).astype("float32")
    with mirrored_strategy.scope():
        variables = [tf.Variable(weights), tf.Variable(p_in), tf.Variable(p_out)]

    @tf.function
    def step():
        def replica_step():
            with tf.GradientTape() as tape:
                cost = distance_weighted_l1(*variables, block_size=2)
            grads = tape.gradient(cost, variables)
            return cost, tf.distribute.get_replica_context().all_reduce("sum", grads[1])

        return mirrored_strategy.run(replica_step)

    costs, grads = step()
    expected = numpy_cost(weights, p_in, p_out, "l1", "euclidean")
    for cost in mirrored_strategy.experimental_local_results(costs):
        np.testing.assert_allclose(cost.numpy(), expected, rtol=1e-5)
    for grad in mirrored_strategy.experimental_local_results(grads):
        assert np.all(np.isfinite(grad.numpy()))


def _cost(weights_shape=(2, 3), p_in_shape=(2, 2), p_out_shape=(3, 2), dtype="float64",
          **kwargs):
    weights = np.ones(weights_shape, dtype)
    return distance_weighted_l1(weights, np.ones(p_in_shape), np.ones(p_out_shape), **kwargs)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            lambda: pairwise_distances(np.ones((2, 2)), np.ones((2, 2)), "cosine"),
            id="pairwise-metric",
        ),
        pytest.param(
            lambda: pairwise_distances(np.ones((2, 2)), np.ones((2, 3))), id="pairwise-dimension"
        ),
        pytest.param(lambda: pairwise_distances(np.ones(2), np.ones((2, 2))), id="pairwise-rank"),
        pytest.param(
            lambda: pairwise_distances(np.ones((2, 2)), np.ones((2, 2), "float32")),
            id="pairwise-dtype",
        ),
        pytest.param(
            lambda: pairwise_distances(np.ones((2, 2), "int32"), np.ones((2, 2), "int32")),
            id="pairwise-int",
        ),
        pytest.param(lambda: _cost(weight_norm="l3"), id="cost-weight-norm"),
        pytest.param(lambda: _cost(metric="chebyshev"), id="cost-metric"),
        pytest.param(lambda: _cost(block_size=0), id="cost-block-size-0"),
        pytest.param(lambda: _cost(block_size=2.0), id="cost-block-size-float"),
        pytest.param(lambda: _cost(p_in_shape=(3, 2)), id="cost-p_in-rows"),
        pytest.param(lambda: _cost(p_out_shape=(2, 2)), id="cost-p_out-rows"),
        pytest.param(lambda: _cost(p_out_shape=(3, 3)), id="cost-dimension"),
        pytest.param(lambda: _cost(weights_shape=(3,)), id="cost-weights-rank"),
        pytest.param(lambda: _cost(dtype="float32"), id="cost-dtype"),
        pytest.param(lambda: _cost(weights_shape=(0, 3), p_in_shape=(0, 2)), id="cost-empty"),
    ],
)
def test_invalid_arguments(call):
    with pytest.raises(ValueError, match="Received:"):
        call()


def test_cost_needs_static_shapes():
    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32)])
    def run(weights):
        return distance_weighted_l1(weights, tf.zeros([2, 2]), tf.zeros([3, 2]))

    with pytest.raises(ValueError, match="Received:"):
        run.get_concrete_function()
