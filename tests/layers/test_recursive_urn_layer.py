import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_contract import layer_contract_test

from tfemergent.layers import RecursiveURNLayer
from tfemergent.regularizers import IterationActivityL1

SMALL = {"num_neurons": 8, "num_iterations": 3, "input_dim": 3, "output_dim": 2, "seed": 0}

test_recursive_urn_layer_contract = layer_contract_test(
    RecursiveURNLayer,
    {
        **SMALL,
        "residual": "output",
        "kernel_regularizer": keras.regularizers.L1(1e-3),
        "state_regularizer": IterationActivityL1(1e-3),
    },
    input_shape=(3,),
    expected_output_shape=(2,),
    invalid_kwargs=[
        ({"num_iterations": 0}, "num_iterations"),
        ({"num_iterations": 1.5}, "num_iterations"),
        ({"num_neurons": 4}, "num_neurons"),
        ({"input_dim": 0}, "input_dim"),
        ({"output_dim": 0}, "output_dim"),
        ({"residual": "both"}, "residual"),
        ({"use_bias": "yes"}, "use_bias"),
        ({"seed": -1}, "seed"),
        ({"input_indices": [0, 1]}, "input_indices"),
        ({"input_indices": [0, 1, 8]}, "input_indices"),
        ({"input_indices": [0, 1, -1]}, "input_indices"),
        ({"input_indices": [0, 1, 1]}, "input_indices"),
        ({"input_indices": [0, 1, 2.0]}, "input_indices"),
        ({"input_indices": 3}, "input_indices"),
        ({"output_indices": [6, 6]}, "output_indices"),
        ({"output_indices": [7]}, "output_indices"),
        ({"output_indices": [2, 7]}, "output_indices"),
        ({"state_regularizer": "no_such_cost"}, "state_regularizer"),
        ({"synaptic_length": 5}, "synaptic_length"),
        ({"check_numerics": "yes"}, "check_numerics"),
        ({"num_neurons": 10**6}, "num_neurons"),  # a 3.6 TiB kernel: refused at build
    ],
)


def _relu(v):
    return np.maximum(v, 0.0)


# A 5-neuron URN: input neurons 0, 1; output neuron 4. Keras layout kernel[from, to].
KERNEL5 = np.array(
    [
        [0.0, 0.0, 1.0, -1.0, 0.0],
        [0.0, 0.0, 0.5, 2.0, 0.0],
        [0.0, 1.0, 0.0, 0.0, 1.0],
        [0.5, 0.0, 0.0, 0.0, -1.0],
        [0.0, 0.0, 0.0, 0.0, 0.5],
    ],
    "float32",
)
BIAS5 = np.array([0.0, -0.5, 0.0, 0.5, 0.0], "float32")
X5 = np.array([[1.0, 2.0], [-1.0, 1.0]], "float32")

# Hand computation, sample 0 (x = [1, 2]), relu, N^(l+1) = relu(N^(l) @ K + b):
#   N0 = [1, 2, 0, 0, 0]
#   pre1 = [0, -0.5, 1*1 + 2*0.5, -1 + 4 + 0.5, 0] = [0, -0.5, 2, 3.5, 0]
#   none:   N1 = [0, 0, 2, 3.5, 0]
#   pre2 = [0.5*3.5, 2 - 0.5, 0, 0.5, 2 - 3.5] = [1.75, 1.5, 0, 0.5, -1.5]
#   none:   N2 = [1.75, 1.5, 0, 0.5, 0]
# Sample 1 (x = [-1, 1]):
#   N0 = [-1, 1, 0, 0, 0]; pre1 = [0, -0.5, -0.5, 3.5, 0]; N1 = [0, 0, 0, 3.5, 0]
#   pre2 = [1.75, -0.5, 0, 0.5, -3.5]; N2 = [1.75, 0, 0, 0.5, 0]
EXPECTED_NONE = np.array(
    [
        [[1, 2, 0, 0, 0], [-1, 1, 0, 0, 0]],
        [[0, 0, 2, 3.5, 0], [0, 0, 0, 3.5, 0]],
        [[1.75, 1.5, 0, 0.5, 0], [1.75, 0, 0, 0.5, 0]],
    ],
    "float32",
)
# residual="output" (eq. 6): neuron 4 accumulates, N4^(l+1) = N4^(l) + relu(pre4).
#   sample 0: pre1_4 = 0 -> N1_4 = 0; N1 as above; pre2_4 = 2 - 3.5 + 0.5*0 -> 0; N2_4 = 0.
#   Same numbers as "none" at these weights except where N4 > 0; so use a variant with
#   bias4 = 1:  N1_4 = 0 + relu(0 + 1) = 1;  pre2_4 = 2 - 3.5 + 0.5*1 + 1 = 0 -> N2_4 = 1 + 0 = 1
#   sample 1:   N1_4 = 1;  pre2_4 = 0 - 3.5 + 0.5 + 1 = -2 -> N2_4 = 1 + 0 = 1
BIAS5_OUT = np.array([0.0, -0.5, 0.0, 0.5, 1.0], "float32")
EXPECTED_OUTPUT = np.array(
    [
        [[1, 2, 0, 0, 0], [-1, 1, 0, 0, 0]],
        [[0, 0, 2, 3.5, 1], [0, 0, 0, 3.5, 1]],
        [[1.75, 1.5, 0, 0.5, 1], [1.75, 0, 0, 0.5, 1]],
    ],
    "float32",
)
# Without the residual, the same bias gives N2_4 = relu(pre2_4) = 0 for both samples.
EXPECTED_NONE_BIAS_OUT = EXPECTED_OUTPUT.copy()
EXPECTED_NONE_BIAS_OUT[2, :, 4] = 0.0
# residual="input" (eq. 7): input neurons 0, 1 get x + relu(pre).
#   sample 0: N1 = [1 + 0, 2 + 0, 2, 3.5, 0]
#     pre2 = [0.5*3.5, 2 - 0.5, 1 + 1, -1 + 4 + 0.5, 2 - 3.5] = [1.75, 1.5, 2, 3.5, -1.5]
#     N2 = [1 + 1.75, 2 + 1.5, 2, 3.5, 0] = [2.75, 3.5, 2, 3.5, 0]
#   sample 1: N1 = [-1, 1, 0, 3.5, 0]
#     pre2 = [1.75, -0.5, -1 + 0.5, 1 + 2 + 0.5, -3.5] = [1.75, -0.5, -0.5, 3.5, -3.5]
#     N2 = [-1 + 1.75, 1 + 0, 0, 3.5, 0] = [0.75, 1, 0, 3.5, 0]
EXPECTED_INPUT = np.array(
    [
        [[1, 2, 0, 0, 0], [-1, 1, 0, 0, 0]],
        [[1, 2, 2, 3.5, 0], [-1, 1, 0, 3.5, 0]],
        [[2.75, 3.5, 2, 3.5, 0], [0.75, 1, 0, 3.5, 0]],
    ],
    "float32",
)


@pytest.mark.parametrize(
    "residual, bias, expected",
    [
        ("none", BIAS5, EXPECTED_NONE),
        ("none", BIAS5_OUT, EXPECTED_NONE_BIAS_OUT),
        ("output", BIAS5_OUT, EXPECTED_OUTPUT),
        ("input", BIAS5, EXPECTED_INPUT),
    ],
)
def test_exact_states_hand_computed(residual, bias, expected):
    layer = RecursiveURNLayer(5, 2, input_dim=2, output_dim=1, residual=residual)
    layer.build((None, 2))
    layer.set_weights([KERNEL5, bias])
    states = layer.compute_states(X5).numpy()
    np.testing.assert_allclose(states, expected, atol=1e-6)
    np.testing.assert_allclose(layer(X5).numpy(), expected[-1][:, 4:], atol=1e-6)


def _numpy_urn(x, kernel, bias, iterations, input_indices, output_indices, residual):
    """Independent reference: explicit per-neuron loop with the paper's W = kernel.T."""
    num_neurons = kernel.shape[0]
    weights = kernel.T  # W[i, j]: from j to i
    state = np.zeros(num_neurons)
    for k, index in enumerate(input_indices):
        state[index] = x[k]
    states = [state.copy()]
    for _ in range(iterations):
        new = np.zeros(num_neurons)
        for i in range(num_neurons):
            value = max(sum(weights[i, j] * state[j] for j in range(num_neurons)) + bias[i], 0)
            if residual == "output" and i in output_indices:
                value += state[i]
            if residual == "input" and i in input_indices:
                value += x[list(input_indices).index(i)]
            new[i] = value
        state = new
        states.append(state.copy())
    return np.array(states), state[list(output_indices)]


@pytest.mark.parametrize("residual", ["none", "output", "input"])
def test_random_weights_and_custom_indices_match_numpy_loop(residual):
    rng = np.random.default_rng(3)
    input_indices, output_indices = [5, 0, 3], [1, 6]
    layer = RecursiveURNLayer(
        7, 3, 3, 2, residual=residual, input_indices=input_indices, output_indices=output_indices
    )
    layer.build((None, 3))
    kernel = rng.normal(size=(7, 7)).astype("float32") * 0.5
    bias = rng.normal(size=(7,)).astype("float32") * 0.1
    layer.set_weights([kernel, bias])
    x = rng.normal(size=(4, 3)).astype("float32")
    states = layer.compute_states(x).numpy()
    outputs = layer(x).numpy()
    for b in range(4):
        ref_states, ref_out = _numpy_urn(
            x[b], kernel, bias, 3, input_indices, output_indices, residual
        )
        np.testing.assert_allclose(states[:, b], ref_states, atol=1e-5)
        np.testing.assert_allclose(outputs[b], ref_out, atol=1e-5)


def test_embedded_mlp_reproduces_mlp():
    """Eq. 1: an MLP 2 -> 3 -> 2 as the block sub-diagonal W in S = 7 neurons.

    Neurons 0-1 are the input, 2-4 the hidden layer, 5-6 the output. In Keras
    layout (kernel[from, to]) W_1 goes to kernel[0:2, 2:5] and W_2 to kernel[2:5, 5:7].
    Two iterations (= number of MLP layers) reproduce the MLP; the input neurons are
    zero after the first step (no weight enters them, zero bias), so nothing else leaks.
    """
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(2, 3)).astype("float32"), rng.normal(size=(3,)).astype("float32")
    w2, b2 = rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=(2,)).astype("float32")
    mlp = keras.Sequential(
        [keras.Input((2,)), keras.layers.Dense(3, "relu"), keras.layers.Dense(2, "relu")]
    )
    mlp.set_weights([w1, b1, w2, b2])

    kernel = np.zeros((7, 7), "float32")
    kernel[0:2, 2:5] = w1
    kernel[2:5, 5:7] = w2
    bias = np.zeros((7,), "float32")
    bias[2:5] = b1
    bias[5:7] = b2
    layer = RecursiveURNLayer(7, 2, input_dim=2, output_dim=2)
    layer.build((None, 2))
    layer.set_weights([kernel, bias])
    x = rng.normal(size=(16, 2)).astype("float32")
    np.testing.assert_allclose(layer(x).numpy(), mlp(x).numpy(), atol=1e-6)
    # The hidden layer appears at iteration 1 in neurons 2-4.
    hidden = keras.ops.relu(x @ w1 + b1)
    np.testing.assert_allclose(layer.compute_states(x).numpy()[1, :, 2:5], hidden, atol=1e-6)


@pytest.mark.parametrize("image_shape", [(2, 3), (2, 3, 2)])
def test_image_input_equals_flattened_input(image_shape):
    input_dim = int(np.prod(image_shape))
    kwargs = {"num_neurons": input_dim + 4, "num_iterations": 2, "input_dim": input_dim}
    image_layer = RecursiveURNLayer(**kwargs, output_dim=2, seed=1)
    flat_layer = RecursiveURNLayer(**kwargs, output_dim=2, seed=1)
    images = np.random.default_rng(1).normal(size=(3,) + image_shape).astype("float32")
    image_out = image_layer(images)
    flat_layer.build((None, input_dim))
    flat_layer.set_weights(image_layer.get_weights())
    np.testing.assert_array_equal(image_out.numpy(), flat_layer(images.reshape(3, -1)).numpy())
    assert image_layer.compute_output_shape((None,) + image_shape) == (None, 2)
    model = keras.Sequential([keras.Input(image_shape), image_layer])
    np.testing.assert_array_equal(model(images).numpy(), image_out.numpy())


def test_image_input_of_wrong_size_is_refused():
    layer = RecursiveURNLayer(10, 2, input_dim=6, output_dim=2)
    with pytest.raises(ValueError, match="Received: input_shape"):
        layer.build((None, 2, 2))


def test_compute_states_shape_and_initial_state():
    layer = RecursiveURNLayer(**{**SMALL, "input_indices": [4, 1, 2]})
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "float32")
    states = layer.compute_states(x)
    assert states.shape == (4, 2, 8)
    expected0 = np.zeros((2, 8), "float32")
    expected0[:, [4, 1, 2]] = x
    np.testing.assert_array_equal(states[0].numpy(), expected0)
    np.testing.assert_array_equal(layer(x).numpy(), states[-1].numpy()[:, [6, 7]])
    assert layer.output_indices == [6, 7]


def test_state_regularizer_adds_iteration_activity_loss():
    layer = RecursiveURNLayer(**SMALL, state_regularizer=IterationActivityL1(0.1))
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    layer(x)
    states = layer.compute_states(x).numpy()
    expected = 0.1 * np.abs(states[1:]).sum() / 4
    assert len(layer.losses) == 1
    assert float(layer.losses[0]) == pytest.approx(expected, rel=1e-5)


def test_kernel_l1_and_state_cost_enter_the_training_loss():
    layer = RecursiveURNLayer(
        **SMALL,
        kernel_regularizer=keras.regularizers.L1(0.01),
        state_regularizer="iteration_activity_l1",
    )
    model = keras.Sequential([keras.Input((3,)), layer])
    model(np.zeros((1, 3), "float32"))
    assert len(model.losses) == 2
    assert isinstance(layer.state_regularizer, IterationActivityL1)


def test_config_keeps_indices_and_seeded_initializer():
    layer = RecursiveURNLayer(**SMALL, input_indices=(0, 1, 2), output_indices=np.array([3, 5]))
    config = layer.get_config()
    assert config["input_indices"] == [0, 1, 2] and config["output_indices"] == [3, 5]
    assert config["kernel_initializer"]["config"]["seed"] == 0
    restored = RecursiveURNLayer.from_config(config)
    assert restored.get_config() == config


def test_mixed_precision_runs():
    layer = RecursiveURNLayer(**SMALL, dtype="mixed_float16")
    out = layer(np.ones((2, 3), "float32"))
    assert out.dtype == tf.float16


def test_lattice_embeds_images_and_adds_the_synaptic_length():
    import json

    import keras as _keras

    from tfemergent.geometry import UpliftedLattice
    from tfemergent.regularizers import SynapticLength

    lattice = UpliftedLattice(4, 4, 3, beta=2.0, num_outputs=2)
    layer = RecursiveURNLayer(
        lattice.num_neurons, 2, input_dim=16, output_dim=2, lattice=lattice,
        synaptic_length=SynapticLength(0.5, gamma=2.0), seed=0,
    )
    assert layer.input_indices == lattice.input_indices.tolist()
    assert layer.output_indices == lattice.output_indices.tolist()
    images = np.random.default_rng(0).random((3, 8, 8, 3)).astype("float32")
    outputs = layer(images)
    # images of another size are resized onto the 4x4 input plane: a twin layer fed
    # the embedded (flat) images gives the same outputs
    twin = RecursiveURNLayer.from_config(layer.get_config())
    twin.build((None, 16))
    twin.set_weights(layer.get_weights())
    flat = lattice.embed(images).numpy()
    np.testing.assert_allclose(twin(flat).numpy(), outputs.numpy(), atol=1e-6)
    kernel = layer.kernel.numpy()
    coordinates = lattice.coordinates("float64")
    squared = ((coordinates[:, None, :] - coordinates[None, :, :]) ** 2).sum(-1)
    expected = 0.5 * (np.abs(kernel) * squared).sum()
    assert float(layer.compute_synaptic_length()) == pytest.approx(expected, rel=1e-4)
    assert float(sum(layer.losses)) == pytest.approx(expected, rel=1e-4)
    rebuilt = RecursiveURNLayer.from_config(json.loads(json.dumps(layer.get_config())))
    assert rebuilt.lattice.get_config() == lattice.get_config()
    assert rebuilt.synaptic_length.get_config() == layer.synaptic_length.get_config()
    model = _keras.Sequential([_keras.Input((8, 8, 3)), layer])
    model.compile("adam", "mse")
    model.fit(images, np.zeros((3, 2)), verbose=0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"synaptic_length": "synaptic_length"}, "lattice"),
        ({"lattice": "cube"}, "lattice"),
    ],
)
def test_lattice_argument_errors(kwargs, name):
    with pytest.raises(ValueError, match="Received:") as info:
        RecursiveURNLayer(16, 2, input_dim=4, output_dim=2, **kwargs)
    assert name in str(info.value)


def test_lattice_size_must_match():
    from tfemergent.geometry import UpliftedLattice

    with pytest.raises(ValueError, match="Received: lattice"):
        RecursiveURNLayer(20, 2, input_dim=16, output_dim=2,
                          lattice=UpliftedLattice(4, 4, 3, num_outputs=2))
    with pytest.raises(ValueError, match="Received: input_dim=9"):
        RecursiveURNLayer(48, 2, input_dim=9, output_dim=2,
                          lattice=UpliftedLattice(4, 4, 3, num_outputs=2))


def test_a_kernel_larger_than_the_machine_memory_is_refused_before_allocation(monkeypatch):
    from tfemergent.layers import recursive_urn_layer as module

    monkeypatch.setattr(module, "_physical_memory_bytes", lambda: 2**30)  # a 1 GiB machine
    layer = RecursiveURNLayer(20000, 2, 3, 2)  # 20000^2 float32 = 1.49 GiB
    with pytest.raises(ValueError, match=r"1.5 GiB \(float32\), more than this machine's 1.0 "
                                         r"GiB.*S <= 16384.*Received: num_neurons=20000"):
        layer.build((None, 3))
    assert not layer.built and not layer.weights
    small = RecursiveURNLayer(16, 2, 3, 2)
    small.build((None, 3))  # 1 KiB: fine
    assert small.kernel.shape == (16, 16)


def test_string_inputs_are_refused_and_integers_cast():
    layer = RecursiveURNLayer(**SMALL)
    with pytest.raises(ValueError, match=r"numeric inputs.*Received: inputs.dtype=string"):
        layer(tf.constant([["a", "b", "c"]]))
    outputs = layer(np.ones((2, 3), "int32"))
    assert outputs.dtype == "float32"
    np.testing.assert_allclose(outputs.numpy(), layer(np.ones((2, 3), "float32")).numpy())


def test_check_numerics_names_the_iteration_that_overflows():
    huge = {"kernel_initializer": keras.initializers.Constant(1e20), "activation": None}
    silent = RecursiveURNLayer(8, 3, 2, 2, **huge)
    assert np.isinf(silent(np.ones((1, 2), "float32")).numpy()).all()  # off by default
    checked = RecursiveURNLayer(8, 3, 2, 2, check_numerics=True, **huge)
    with pytest.raises(tf.errors.InvalidArgumentError, match="after iteration 2 of 3 is not finite"):
        checked(np.ones((1, 2), "float32"))
    assert checked.get_config()["check_numerics"] is True
    fine = RecursiveURNLayer(8, 3, 2, 2, check_numerics=True, seed=0)
    assert np.isfinite(fine(np.ones((1, 2), "float32")).numpy()).all()


def test_seed_seeds_the_bias_too():
    def weights(seed):
        layer = RecursiveURNLayer(8, 2, 2, 2, bias_initializer="random_normal", seed=seed)
        layer.build((None, 2))
        return [weight.numpy() for weight in layer.weights]

    first, again, other = weights(1), weights(1), weights(2)
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
