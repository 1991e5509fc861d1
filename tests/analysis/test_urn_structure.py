"""URN reference forward pass and structure extraction (Golkar, URN)."""

import importlib
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from docstring_examples import assert_docstring_examples

from tfemergent.analysis import (
    URNStructure,
    sorted_weight_matrix,
    urn_forward,
    urn_structure,
    urn_structure_of,
)

# ---------------------------------------------------------------------------
# A 2 -> 3 -> 1 MLP embedded as the block sub-diagonal of eq. 1 (kernel layout
# [from, to], so the blocks sit above the diagonal) in S = 8 neurons:
# inputs 0, 1; hidden 2, 3, 4; dead 5, 6; output 7; I = 2.
# ---------------------------------------------------------------------------
INPUTS, HIDDEN, DEAD, OUTPUTS = [0, 1], [2, 3, 4], [5, 6], [7]
HIDDEN_KERNEL = np.array([[1.0, -1.0, 0.5], [0.5, 1.0, -2.0]])  # inputs -> hidden
HIDDEN_BIAS = np.array([0.0, 0.5, 0.25])
OUTPUT_KERNEL = np.array([[1.0], [-2.0], [0.5]])  # hidden -> output
OUTPUT_BIAS = -0.25  # keeps the output at 0 at iteration 1 (no hidden activity yet)


def embedded_mlp():
    kernel = np.zeros((8, 8))
    bias = np.zeros(8)
    kernel[np.ix_(INPUTS, HIDDEN)] = HIDDEN_KERNEL
    kernel[np.ix_(HIDDEN, OUTPUTS)] = OUTPUT_KERNEL
    bias[HIDDEN] = HIDDEN_BIAS
    bias[OUTPUTS] = OUTPUT_BIAS
    # Dead neurons: driven by active neurons but held below 0 by their bias.
    kernel[0, 5] = 0.1
    kernel[2, 6] = 0.3
    bias[DEAD] = [-1.0, -5.0]
    x = np.random.default_rng(0).uniform(-1.0, 1.0, size=(64, 2))
    return kernel, bias, x


def mlp_output(x):
    hidden = np.maximum(x @ HIDDEN_KERNEL + HIDDEN_BIAS, 0.0)
    return np.maximum(hidden @ OUTPUT_KERNEL + OUTPUT_BIAS, 0.0)


def test_urn_forward_computes_the_embedded_mlp():
    kernel, bias, x = embedded_mlp()
    states = urn_forward(kernel, bias, x, 2, INPUTS, OUTPUTS)
    assert states.shape == (3, 64, 8) and states.dtype == np.float64
    np.testing.assert_array_equal(states[0][:, INPUTS], x)
    np.testing.assert_allclose(states[-1][:, OUTPUTS], mlp_output(x), rtol=1e-12)
    assert mlp_output(x).max() > 0  # the output does fire


def test_structure_of_the_embedded_mlp():
    kernel, bias, x = embedded_mlp()
    structure = urn_structure(kernel, bias, x, 2, INPUTS, OUTPUTS)
    assert isinstance(structure, URNStructure)
    assert structure.active.tolist() == [True] * 5 + [False, False, True]
    assert structure.first_active_iteration.tolist() == [0, 0, 1, 1, 1, -1, -1, 2]
    assert structure.order.tolist() == [0, 1, 2, 3, 4, 7]
    assert structure.num_active == 6
    assert structure.num_hidden_per_iteration.tolist() == [3, 0]
    assert structure.layer_sizes == (3,)
    assert (structure.forward, structure.backward, structure.lateral) == (1.0, 0.0, 0.0)
    assert structure.verify_max_change == 0.0
    assert structure.feedforward_max_change == 0.0
    assert structure.mean_synaptic_length is None


def test_dead_source_and_lateral_and_backward_synapses():
    kernel, bias, x = embedded_mlp()
    kernel[5, 2] = 3.0  # from a dead neuron: it stays dead, not counted
    kernel[3, 4] = -0.75  # lateral: hidden -> hidden (both first active at 1)
    kernel[7, 2] = 0.5  # backward: output (2) -> hidden (1)
    structure = urn_structure(kernel, bias, x, 2, INPUTS, OUTPUTS)
    assert structure.first_active_iteration.tolist() == [0, 0, 1, 1, 1, -1, -1, 2]
    assert structure.layer_sizes == (3,)
    forward_mass = np.abs(HIDDEN_KERNEL).sum() + np.abs(OUTPUT_KERNEL).sum()  # 9.5
    total = forward_mass + 0.75 + 0.5
    assert structure.forward == pytest.approx(9.5 / 10.75)
    assert structure.forward == pytest.approx(forward_mass / total)
    assert structure.lateral == pytest.approx(0.75 / 10.75)
    assert structure.backward == pytest.approx(0.5 / 10.75)
    assert structure.verify_max_change == 0.0
    # At I = 2 the lateral and backward synapses do not reach the output yet.
    assert structure.feedforward_max_change == 0.0
    states = urn_forward(kernel, bias, x, 2, INPUTS, OUTPUTS)
    np.testing.assert_allclose(states[-1][:, OUTPUTS], mlp_output(x), rtol=1e-12)


def test_extract_zeroes_everything_outside_the_structure():
    kernel, bias, x = embedded_mlp()
    kernel[5, 2] = 3.0
    structure = urn_structure(kernel, bias, x, 2, INPUTS, OUTPUTS)
    pruned_kernel, pruned_bias = structure.extract(kernel, bias)
    expected = np.zeros((8, 8))
    expected[np.ix_(INPUTS, HIDDEN)] = HIDDEN_KERNEL
    expected[np.ix_(HIDDEN, OUTPUTS)] = OUTPUT_KERNEL
    np.testing.assert_array_equal(pruned_kernel, expected)
    np.testing.assert_array_equal(pruned_bias, np.where(structure.active, bias, 0.0))
    assert pruned_bias[5] == 0.0 and pruned_bias[7] == OUTPUT_BIAS
    assert structure.extract(kernel)[1] is None


def test_a_recurrent_synapse_that_matters():
    # input 0 -> h 1 (self loop 1 -> 1) -> output 2, I = 3: the output at
    # iteration 3 sees h at iteration 2, which only the (lateral) loop feeds.
    kernel = np.zeros((3, 3))
    kernel[0, 1] = kernel[1, 1] = kernel[1, 2] = 1.0
    structure = urn_structure(kernel, None, np.array([[1.0], [3.0]]), 3, [0], [2])
    assert structure.first_active_iteration.tolist() == [0, 1, 2]
    assert structure.forward == pytest.approx(2 / 3)
    assert structure.lateral == pytest.approx(1 / 3)
    assert structure.verify_max_change == 0.0
    assert structure.feedforward_max_change == 3.0


def test_tolerance_drops_a_nearly_silent_neuron():
    kernel, bias, x = embedded_mlp()
    kernel[0, 5], bias[5] = 1e-9, 0.0  # neuron 5 now fires, but barely
    kernel[5, 7] = 1.0
    exact = urn_structure(kernel, bias, x, 2, INPUTS, OUTPUTS)
    assert exact.layer_sizes == (4,) and exact.active[5]
    assert exact.verify_max_change == 0.0
    loose = urn_structure(kernel, bias, x, 2, INPUTS, OUTPUTS, tolerance=1e-6)
    assert loose.layer_sizes == (3,) and not loose.active[5]
    assert 0.0 < loose.verify_max_change <= 1e-9


def test_mean_synaptic_length_and_sorted_weight_matrix():
    # input 0 -> hidden 3, 1 -> output 2; neuron 4 dead (its synapse is ignored).
    kernel = np.zeros((5, 5))
    kernel[0, 3], kernel[0, 1] = 2.0, -1.0
    kernel[3, 2], kernel[1, 2] = 1.0, 0.5
    kernel[4, 2] = 10.0
    coordinates = np.arange(5.0)[:, None] * np.array([[3.0, 4.0]])  # neuron k at 5k
    x = np.array([[1.0], [-1.0]])
    structure = urn_structure(kernel, None, x, 2, [0], [2], coordinates=coordinates)
    assert structure.order.tolist() == [0, 1, 3, 2]
    assert structure.layer_sizes == (2,)
    # lengths 15, 5, 5, 5 with |W| 2, 1, 1, 0.5
    assert structure.mean_synaptic_length == pytest.approx((30 + 5 + 5 + 2.5) / 4.5)
    matrix = sorted_weight_matrix(kernel, structure)
    np.testing.assert_array_equal(
        matrix,
        [[0.0, 1.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0], [0.0] * 4],
    )


def test_residual_variants_hand_computed():
    # S = 4, input 0, output 3, I = 2 (kernel[j, i] is the synapse j -> i).
    kernel = np.zeros((4, 4))
    kernel[0, 1], kernel[0, 2] = 2.0, -1.0
    kernel[1, 3], kernel[2, 3] = 1.0, 3.0
    kernel[3, 0] = 1.0
    bias = np.array([0.0, -0.5, 1.0, 0.25])
    x = np.array([[1.0], [-1.0]])
    expected = {
        # x = 1: N1 = [0, 1.5, 0, .25]; x = -1: N1 = [0, 0, 2, .25]
        "none": [[[1, 0, 0, 0], [-1, 0, 0, 0]],
                 [[0, 1.5, 0, 0.25], [0, 0, 2, 0.25]],
                 [[0.25, 0, 1, 1.75], [0.25, 0, 1, 6.25]]],
        # eq. 6: the output adds its previous value, .25 + 1.75 and .25 + 6.25
        "output": [[[1, 0, 0, 0], [-1, 0, 0, 0]],
                   [[0, 1.5, 0, 0.25], [0, 0, 2, 0.25]],
                   [[0.25, 0, 1, 2.0], [0.25, 0, 1, 6.5]]],
        # eq. 7: the input neuron is x + phi(...) at every iteration
        "input": [[[1, 0, 0, 0], [-1, 0, 0, 0]],
                  [[1, 1.5, 0, 0.25], [-1, 0, 2, 0.25]],
                  [[1.25, 1.5, 0, 1.75], [-0.75, 0, 2, 6.25]]],
    }
    for residual, states in expected.items():
        np.testing.assert_array_equal(
            urn_forward(kernel, bias, x, 2, [0], [3], residual=residual), states,
            err_msg=residual,
        )
        structure = urn_structure(kernel, bias, x, 2, [0], [3], residual=residual)
        assert structure.active.all()
        assert structure.verify_max_change == 0.0


def test_activation_names_and_callables_agree():
    rng = np.random.default_rng(1)
    kernel, bias, x = rng.normal(size=(6, 6)), rng.normal(size=6), rng.normal(size=(5, 2))
    reference = urn_forward(kernel, bias, x, 3, [0, 1], [5])
    for activation in (keras.activations.relu, lambda z: np.maximum(z, 0.0)):
        np.testing.assert_allclose(
            urn_forward(kernel, bias, x, 3, [0, 1], [5], activation=activation), reference,
            rtol=1e-12,
        )
    linear = urn_forward(kernel, bias, x, 1, [0, 1], [5], activation=None)
    np.testing.assert_allclose(linear[1], urn_forward(kernel, bias, x, 1, [0, 1], [5],
                                                      activation="linear")[1])
    np.testing.assert_allclose(linear[1][:, 2], x @ kernel[[0, 1], 2] + bias[2])


def test_random_sparse_networks_extract_exactly(monkeypatch):
    rng = np.random.default_rng(2)
    kernel = rng.normal(size=(40, 40)) * (rng.random((40, 40)) < 0.1)
    bias = rng.normal(size=40) - 0.5
    x = rng.normal(size=(50, 4))
    outputs = [38, 39]
    for residual in ("none", "output", "input"):
        structure = urn_structure(kernel, bias, x, 4, range(4), outputs, residual=residual)
        # 0 up to round-off: the pruned network is summed over the kept neurons only.
        assert structure.num_active < 40
        assert structure.verify_max_change < 1e-12
        assert structure.feedforward_max_change > 1e-3
        assert structure.forward + structure.backward + structure.lateral == pytest.approx(1.0)
        # Chunked evaluation gives the same structure.
        urn_module = importlib.import_module("tfemergent.analysis.urn_structure")
        monkeypatch.setattr(urn_module, "_CHUNK_SIZE", 7)
        chunked = urn_structure(kernel, bias, x, 4, range(4), outputs, residual=residual)
        monkeypatch.undo()
        np.testing.assert_array_equal(chunked.first_active_iteration,
                                      structure.first_active_iteration)
        assert chunked.verify_max_change < 1e-12


def test_structure_is_immutable():
    kernel, bias, x = embedded_mlp()
    structure = urn_structure(kernel, bias, x, 2, INPUTS, OUTPUTS)
    with pytest.raises(Exception):
        structure.forward = 0.5
    with pytest.raises(ValueError):
        structure.active[0] = False


def test_urn_structure_of_reads_a_layer():
    kernel, bias, x = embedded_mlp()
    layer = types.SimpleNamespace(
        kernel=keras.Variable(kernel.astype("float32")),
        bias=tf.constant(bias, tf.float32),
        num_iterations=2,
        residual="none",
        activation=keras.activations.get("relu"),
        input_indices=range(2),
        output_indices=(7,),
    )
    structure = urn_structure_of(layer, tf.constant(x, tf.float32))
    assert structure.layer_sizes == (3,)
    assert structure.order.tolist() == [0, 1, 2, 3, 4, 7]
    assert structure.verify_max_change == 0.0
    layer.bias = None
    assert urn_structure_of(layer, x, coordinates=np.zeros((8, 3))).mean_synaptic_length == 0.0
    with pytest.raises(ValueError, match="Received: layer="):
        urn_structure_of(types.SimpleNamespace(kernel=kernel), x)


def _call(function, **overrides):
    kernel, bias, x = embedded_mlp()
    arguments = dict(kernel=kernel, bias=bias, x=x, num_iterations=2, input_indices=INPUTS,
                     output_indices=OUTPUTS)
    arguments.update(overrides)
    return function(**arguments)


@pytest.mark.parametrize("function", [urn_forward, urn_structure])
@pytest.mark.parametrize(
    "overrides, received",
    [
        ({"kernel": np.zeros((8, 7))}, "Received: kernel.shape=(8, 7)"),
        ({"bias": np.zeros(7)}, "Received: bias.shape=(7,)"),
        ({"x": np.zeros((4, 3))}, "Received: x.shape=(4, 3)"),
        ({"num_iterations": 0}, "Received: num_iterations=0"),
        ({"num_iterations": 1.5}, "Received: num_iterations=1.5"),
        ({"input_indices": [0, 0]}, "Received: input_indices=[0, 0]"),
        ({"input_indices": [0, 8]}, "Received: input_indices=[0, 8]"),
        ({"input_indices": [0.0, 1.0]}, "Received: input_indices=[0.0, 1.0]"),
        ({"output_indices": []}, "Received: output_indices=[]"),
        ({"output_indices": [-1]}, "Received: output_indices=[-1]"),
        ({"residual": "both"}, "Received: residual='both'"),
        ({"activation": "swish"}, "Received: activation='swish'"),
        ({"activation": 3}, "Received: activation=3"),
    ],
)
def test_invalid_arguments(function, overrides, received):
    with pytest.raises(ValueError) as info:
        _call(function, **overrides)
    assert received in str(info.value)


@pytest.mark.parametrize(
    "overrides, received",
    [
        ({"tolerance": -1.0}, "Received: tolerance=-1.0"),
        ({"coordinates": np.zeros((7, 2))}, "Received: coordinates.shape=(7, 2)"),
        ({"x": np.zeros((0, 2))}, "Received: x.shape=(0, 2)"),
    ],
)
def test_invalid_structure_arguments(overrides, received):
    with pytest.raises(ValueError) as info:
        _call(urn_structure, **overrides)
    assert received in str(info.value)


def test_sorted_weight_matrix_errors():
    kernel, bias, x = embedded_mlp()
    structure = urn_structure(kernel, bias, x, 2, INPUTS, OUTPUTS)
    with pytest.raises(ValueError, match="Received: structure="):
        sorted_weight_matrix(kernel, "structure")
    with pytest.raises(ValueError, match=r"Received: kernel.shape=\(4, 4\)"):
        sorted_weight_matrix(np.zeros((4, 4)), structure)


def test_docstring_examples():
    module = importlib.import_module("tfemergent.analysis.urn_structure")
    assert_docstring_examples(module)
