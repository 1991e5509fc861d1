"""binned_entropy: np.histogram binning, Shannon entropy in nats, eager / graph / XLA."""

import math

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from tfemergent.analysis import binned_entropy
from tfemergent.analysis.entropy import _histogram_counts


def reference_entropy(values, num_bins=100, value_range=None):
    counts = np.histogram(values, num_bins, range=value_range)[0]
    return scipy.stats.entropy(counts)


def counts_of(values, num_bins, value_range=None, mode="eager"):
    """``_histogram_counts`` of all of ``values`` as one row, run eagerly, in a graph or in XLA."""
    rows = tf.constant(np.reshape(values, (1, -1)))

    def count(rows):
        return _histogram_counts(rows, num_bins, value_range)[0]

    if mode != "eager":
        count = tf.function(count, jit_compile=mode == "xla")
    return count(rows)[0].numpy()


def distribution(name, rng):
    if name == "normal":
        return rng.normal(size=3000).astype(np.float32)
    if name == "relu":  # many exact zeros: the minimum, the first edge
        return np.maximum(rng.normal(-0.5, 1.0, size=(300, 10)), 0.0).astype(np.float32)
    if name == "integers":  # integers, many of them exactly on edges
        return rng.integers(-37, 500, size=3000).astype(np.float32)
    if name == "decimals":  # k / 10: edges such as 0.3 that are not exact in binary
        return (rng.integers(0, 1000, size=3000) / 10.0).astype(np.float32)
    if name == "lognormal64":
        return rng.lognormal(2.0, 1.5, size=3000)
    if name == "cauchy64":
        return rng.standard_cauchy(size=3000) * 1e-4 + 12345.0
    raise ValueError(name)


DISTRIBUTIONS = ["normal", "relu", "integers", "decimals", "lognormal64", "cauchy64"]


@pytest.mark.parametrize("name", DISTRIBUTIONS)
def test_equals_scipy_entropy_of_numpy_histogram(name):
    values = distribution(name, np.random.default_rng(DISTRIBUTIONS.index(name)))
    for num_bins in (100, 37, 1):
        np.testing.assert_array_equal(
            counts_of(values, num_bins), np.histogram(values, num_bins)[0]
        )
        entropy = binned_entropy(values, num_bins=num_bins)
        assert entropy.dtype == tf.as_dtype(values.dtype) and entropy.shape == ()
        rtol = 1e-6 if values.dtype == np.float32 else 1e-12
        np.testing.assert_allclose(
            entropy.numpy(), reference_entropy(values, num_bins), rtol=rtol, atol=rtol
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_values_on_the_edges_land_in_numpy_bins(dtype, mode):
    """Values equal to numpy's own edges, and one ulp either side, are binned as numpy bins them."""
    rng = np.random.default_rng(7)
    for num_bins in (100, 75, 13):
        values = (rng.normal(size=500) * 123.4 - 17.0).astype(dtype)
        edges = np.histogram_bin_edges(values, num_bins)
        values = np.concatenate(
            [
                values,
                edges,
                np.nextafter(edges[1:-1], np.inf).astype(dtype),
                np.nextafter(edges[1:-1], -np.inf).astype(dtype),
            ]
        ).astype(dtype)
        np.testing.assert_array_equal(
            counts_of(values, num_bins, mode=mode), np.histogram(values, num_bins)[0]
        )


@pytest.mark.parametrize("num_bins", [1, 2, 10, 100])
def test_uniform_over_the_bins_gives_log_num_bins(num_bins):
    centres = np.arange(num_bins, dtype=np.float32) + 0.5
    values = np.repeat(centres, 3)
    entropy = binned_entropy(values, num_bins=num_bins, value_range=(0, num_bins))
    np.testing.assert_allclose(float(entropy), math.log(num_bins), rtol=1e-6, atol=1e-7)
    # The min-max range of the same values puts them one per bin too.
    np.testing.assert_allclose(
        float(binned_entropy(values, num_bins=num_bins)), math.log(num_bins), rtol=1e-6, atol=1e-7
    )


@pytest.mark.parametrize("value", [0.0, -3.5, 1e30])
def test_constant_values_give_exactly_zero(value):
    values = np.full((40, 5), value, dtype=np.float32)
    entropy = binned_entropy(values)
    assert float(entropy) == 0.0 and not math.copysign(1.0, float(entropy)) < 0
    np.testing.assert_array_equal(binned_entropy(values, axis=0).numpy(), np.zeros(5))
    if value + 0.5 != value:  # numpy cannot widen 1e30 by 0.5 and raises; we still give 0
        np.testing.assert_array_equal(counts_of(values, 100), np.histogram(values, 100)[0])
    assert float(binned_entropy(np.float64(value))) == 0.0  # a scalar: one value


def test_value_range_counts_only_the_values_inside():
    rng = np.random.default_rng(3)
    values = rng.normal(size=4000).astype(np.float32)
    # 0.7 is not exact in float32: numpy compares in float32 and includes float32(0.7).
    values = np.concatenate([values, np.float32([-0.3, 0.7, 2.0])])
    for value_range in [(-0.3, 0.7), (-1, 1), (0.0, 10.0), (-5.0, 5.0)]:
        np.testing.assert_array_equal(
            counts_of(values, 50, value_range), np.histogram(values, 50, range=value_range)[0]
        )
        np.testing.assert_allclose(
            float(binned_entropy(values, num_bins=50, value_range=value_range)),
            reference_entropy(values, 50, value_range),
            rtol=1e-6,
        )
    # Nothing inside the range: nothing to count, entropy 0.
    assert float(binned_entropy(values, value_range=(100.0, 200.0))) == 0.0
    # Non-finite values are outside any range and ignored.
    with_nan = np.concatenate([values, np.float32([np.nan, np.inf, -np.inf])])
    np.testing.assert_allclose(
        float(binned_entropy(with_nan, value_range=(-1.0, 1.0))),
        reference_entropy(values, 100, (-1.0, 1.0)),
        rtol=1e-6,
    )


def test_non_finite_values_without_a_range_give_nan_for_their_slice():
    values = np.zeros((2, 10), np.float32)
    values[0] = np.arange(10)
    values[1, 3] = np.nan
    entropies = binned_entropy(values, axis=1).numpy()
    np.testing.assert_allclose(entropies[0], math.log(10), rtol=1e-6)
    assert np.isnan(entropies[1])
    values[1, 3] = np.inf
    assert np.isnan(binned_entropy(values, axis=1).numpy()[1])


def test_batched_form_gives_one_entropy_per_unit():
    rng = np.random.default_rng(11)
    # [K, num_samples, num_hidden]; each unit has its own scale, so its own min-max.
    scales = np.array([1.0, 10.0, 0.01])[:, None, None]
    codes = np.maximum(rng.normal(size=(3, 200, 8)), 0.0) * scales
    codes[2] = 4.0  # a dead (constant) unit
    codes = codes.astype(np.float32)
    expected = [reference_entropy(unit) for unit in codes]
    for axis in [(1, 2), (-2, -1), [2, 1]]:
        entropies = binned_entropy(codes, axis=axis)
        assert entropies.shape == (3,)
        np.testing.assert_allclose(entropies.numpy(), expected, rtol=1e-6)
    assert expected[2] == 0.0


def test_single_axis_is_a_reduction_over_that_axis():
    rng = np.random.default_rng(12)
    values = rng.normal(size=(60, 4)).astype(np.float64)
    per_neuron = binned_entropy(values, num_bins=10, axis=0)
    assert per_neuron.shape == (4,)
    np.testing.assert_allclose(
        per_neuron.numpy(), [reference_entropy(values[:, j], 10) for j in range(4)], rtol=1e-12
    )
    per_sample = binned_entropy(values, num_bins=3, axis=-1)
    assert per_sample.shape == (60,)
    np.testing.assert_allclose(
        per_sample.numpy(), [reference_entropy(row, 3) for row in values], rtol=1e-12
    )
    # A middle axis of a rank-3 tensor: the other two axes stay, in order.
    cube = rng.normal(size=(2, 30, 3)).astype(np.float32)
    middle = binned_entropy(cube, num_bins=5, axis=1)
    assert middle.shape == (2, 3)
    np.testing.assert_allclose(
        middle.numpy(),
        [[reference_entropy(cube[i, :, j], 5) for j in range(3)] for i in range(2)],
        rtol=1e-6,
    )


def test_xla_and_graph_give_the_same_numbers():
    rng = np.random.default_rng(13)
    codes = np.maximum(rng.normal(size=(3, 500, 20)), 0.0).astype(np.float32)
    codes[1] = np.round(codes[1] * 4)  # values on edges

    def entropies(codes):
        return binned_entropy(codes, axis=(1, 2)), binned_entropy(
            codes, num_bins=20, value_range=(0.0, 2.0), axis=(1, 2)
        )

    eager = [t.numpy() for t in entropies(tf.constant(codes))]
    compiled = tf.function(entropies, jit_compile=True)
    graph = tf.function(entropies, input_signature=[tf.TensorSpec([None, None, None], tf.float32)])
    for run in (compiled, graph):
        for got, want in zip(run(tf.constant(codes)), eager):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(eager[0], [reference_entropy(unit) for unit in codes], rtol=1e-6)
    np.testing.assert_allclose(
        eager[1], [reference_entropy(unit, 20, (0.0, 2.0)) for unit in codes], rtol=1e-6
    )


def test_dynamic_empty_input_gives_zero_and_static_empty_raises():
    pooled = tf.function(binned_entropy, input_signature=[tf.TensorSpec([None], tf.float32)])
    assert float(pooled(tf.zeros([0]))) == 0.0
    with pytest.raises(ValueError, match=r"no value to histogram.*Received: values.shape="):
        binned_entropy(np.zeros((3, 0), np.float32))
    with pytest.raises(ValueError, match=r"Received: values.shape="):
        binned_entropy(np.zeros((3, 0), np.float32), axis=1)
    # Empty along a kept axis is no error: no slices, no entropies.
    assert binned_entropy(np.zeros((0, 4), np.float32), axis=1).shape == (0,)


def test_has_no_gradient():
    values = tf.Variable(np.arange(10.0, dtype=np.float32))
    with tf.GradientTape() as tape:
        entropy = binned_entropy(values)
    assert tape.gradient(entropy, values) is None


VALUES = np.linspace(0.0, 1.0, 10, dtype=np.float32)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_bins": 0}, r"`num_bins`.*Received: num_bins=0"),
        ({"num_bins": -5}, r"Received: num_bins=-5"),
        ({"num_bins": 2.5}, r"integer.*Received: num_bins=2.5"),
        ({"num_bins": True}, r"Received: num_bins=True"),
        ({"num_bins": "100"}, r"Received: num_bins='100'"),
        ({"value_range": (1.0, 1.0)}, r"lo < hi.*Received: value_range=\(1.0, 1.0\)"),
        ({"value_range": (2, 1)}, r"lo < hi.*Received: value_range=\(2, 1\)"),
        ({"value_range": (0.0,)}, r"pair.*Received: value_range=\(0.0,\)"),
        ({"value_range": 1.0}, r"pair.*Received: value_range=1.0"),
        ({"value_range": "ab"}, r"pair.*Received: value_range='ab'"),
        ({"value_range": (0.0, np.inf)}, r"finite.*Received: value_range\[1\]=inf"),
        ({"value_range": (np.nan, 1.0)}, r"finite.*Received: value_range\[0\]=nan"),
        ({"value_range": (1.0, 1.0 + 1e-9)}, r"too narrow.*Received: value_range="),
        ({"axis": 1}, r"`axis`.*Received: axis=1"),
        ({"axis": -2}, r"Received: axis=-2"),
        ({"axis": (0, 0)}, r"repeat.*Received: axis=\(0, 0\)"),
        ({"axis": ()}, r"Received: axis=\(\)"),
        ({"axis": 0.0}, r"integer.*Received: axis=0.0"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        binned_entropy(VALUES, **kwargs)


@pytest.mark.parametrize(
    "values, match",
    [
        (np.arange(10, dtype=np.int32), r"float32 or float64.*Received: values.dtype=int32"),
        (np.arange(10), r"Received: values.dtype=int64"),
        (np.ones(3, dtype=bool), r"Received: values.dtype=bool"),
        (np.ones(3, dtype=np.float16), r"Received: values.dtype=float16"),
        (["a", "b"], r"Received: values.dtype=string"),
        (None, r"Received: values=None"),
        ([[1.0, 2.0], [3.0]], r"Received: values=\[\[1.0, 2.0\], \[3.0\]\]"),
    ],
)
def test_invalid_values(values, match):
    with pytest.raises(ValueError, match=match):
        binned_entropy(values)


def test_unknown_rank_is_rejected():
    spec = tf.TensorSpec(None, tf.float32)
    with pytest.raises(ValueError, match=r"known rank.*Received: values.shape=<unknown>"):
        tf.function(binned_entropy, input_signature=[spec]).get_concrete_function()
