"""`extract_urn_network`: the emergent network of a URN as a plain Keras model."""

import subprocess
import sys
import textwrap
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfemergent.layers import RecursiveURNLayer
from tfemergent.models import extract_urn_network
from tfemergent.models.urn.emergent_network import URNExtraction


def _mlp_urn(residual="none", use_bias=True):
    """A URN whose kernel embeds the MLP 2 -> 3 -> 2 -> 1 of the paper's eq. 1.

    Neurons: inputs 0-1, hidden layer 1 = 2-4, hidden layer 2 = 5-6, neuron 7 unused,
    output 8. ``kernel[j, i]`` is the synapse j -> i (block super-diagonal).
    """
    rng = np.random.default_rng(0)
    layer = RecursiveURNLayer(num_neurons=9, num_iterations=3, input_dim=2, output_dim=1,
                              residual=residual, use_bias=use_bias, seed=0)
    layer.build((None, 2))
    kernel = np.zeros((9, 9), "float32")
    blocks = {
        "w1": (slice(0, 2), slice(2, 5)),
        "w2": (slice(2, 5), slice(5, 7)),
        "w3": (slice(5, 7), slice(8, 9)),
    }
    weights = {}
    for key, (rows, cols) in blocks.items():
        block = rng.uniform(0.5, 1.5, size=(rows.stop - rows.start, cols.stop - cols.start))
        kernel[rows, cols] = weights[key] = block.astype("float32")
    layer.kernel.assign(kernel)
    biases = np.zeros(9, "float32")
    if use_bias:
        biases[2:5] = [0.1, 0.2, 0.3]
        biases[5:7] = [0.05, -0.05]
        biases[8] = 0.25
        layer.bias.assign(biases)
    return layer, weights, biases


def _positive_samples(num=16, dim=2, seed=1):
    return np.random.default_rng(seed).uniform(0.1, 1.0, size=(num, dim)).astype("float32")


def test_an_embedded_mlp_is_extracted_with_its_sizes_and_weights():
    layer, weights, biases = _mlp_urn()
    x = _positive_samples()
    net = extract_urn_network(layer, x)
    assert [l.name for l in net.layers] == ["x", "iteration_1", "iteration_2", "iteration_3"]
    assert net.urn_extraction.layer_sizes == (3, 2, 1)
    assert net.urn_extraction.neurons == ((0, 1), (2, 3, 4), (5, 6), (8,))
    assert net.urn_extraction.feedforward
    assert net.urn_extraction.num_active == 8  # neuron 7 never fires
    np.testing.assert_array_equal(net.get_layer("iteration_1").kernel.numpy(), weights["w1"])
    np.testing.assert_array_equal(net.get_layer("iteration_2").kernel.numpy(), weights["w2"])
    np.testing.assert_array_equal(net.get_layer("iteration_3").kernel.numpy(), weights["w3"])
    np.testing.assert_array_equal(net.get_layer("iteration_1").bias.numpy(), biases[2:5])
    np.testing.assert_array_equal(net.get_layer("iteration_3").bias.numpy(), biases[8:9])
    # By hand: relu(relu(relu(x W1 + b1) W2 + b2) W3 + b3), all pre-activations positive.
    h1 = np.maximum(x @ weights["w1"] + biases[2:5], 0)
    h2 = np.maximum(h1 @ weights["w2"] + biases[5:7], 0)
    expected = np.maximum(h2 @ weights["w3"] + biases[8:9], 0)
    np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-6)
    assert net.urn_extraction.max_difference <= 1e-6 * float(np.max(np.abs(expected)))


def _random_urn(residual, seed=0, num_neurons=24, density=0.3):
    rng = np.random.default_rng(seed)
    layer = RecursiveURNLayer(num_neurons=num_neurons, num_iterations=4, input_dim=5,
                              output_dim=3, residual=residual, seed=seed)
    layer.build((None, 5))
    kernel = rng.normal(scale=0.6, size=(num_neurons, num_neurons))
    kernel *= rng.random((num_neurons, num_neurons)) < density  # backward and lateral too
    layer.kernel.assign(kernel.astype("float32"))
    layer.bias.assign(rng.normal(scale=0.1, size=num_neurons).astype("float32"))
    return layer


@pytest.mark.parametrize("residual", ["none", "output", "input"])
def test_backward_and_lateral_synapses_are_unrolled_exactly(residual):
    layer = _random_urn(residual)
    x = np.random.default_rng(3).normal(size=(64, 5)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # dense random kernels: all may fire
        net = extract_urn_network(layer, x)
    np.testing.assert_allclose(net(x).numpy(), layer(x).numpy(), atol=1e-5)
    assert net.urn_extraction.max_difference <= 1e-5
    assert not net.urn_extraction.feedforward  # the random kernel has loops
    names = {l.name for l in net.layers}
    if residual == "output":
        assert {"carry_2", "state_2"} <= names
    if residual == "input":
        assert {"reinject_1", "state_1"} <= names
    for l in net.layers:  # only Keras' own layers
        assert type(l).__module__.startswith("keras."), type(l)


def test_residual_output_carries_the_output_state():
    layer, weights, biases = _mlp_urn(residual="output")
    x = _positive_samples()
    net = extract_urn_network(layer, x)
    # The output neuron accumulates: N_8^(3) = N_8^(2) + relu(...); N_8^(2) = relu(b_8) > 0.
    np.testing.assert_allclose(net(x).numpy(), layer(x).numpy(), atol=1e-6)
    assert "carry_3" in {l.name for l in net.layers}


def test_held_out_data_is_verified_and_reported():
    layer = _random_urn("none", seed=4, density=0.15)
    x = np.random.default_rng(5).normal(size=(8, 5)).astype("float32")
    held_out = np.random.default_rng(6).normal(size=(200, 5)).astype("float32")
    net = extract_urn_network(layer, x, validation_x=held_out)
    report = net.urn_extraction
    assert isinstance(report, URNExtraction) and report.verified_on == "validation_x"
    direct = float(np.max(np.abs(net(held_out).numpy() - layer(held_out).numpy())))
    assert report.max_difference == pytest.approx(direct, abs=1e-7)
    # On x itself the extraction is exact.
    assert float(np.max(np.abs(net(x).numpy() - layer(x).numpy()))) <= 1e-5


def test_tolerance_drops_nearly_silent_neurons():
    layer, _, _ = _mlp_urn()
    x = _positive_samples()
    exact = extract_urn_network(layer, x)
    pruned = extract_urn_network(layer, x, tolerance=1e9)
    assert sum(pruned.urn_extraction.layer_sizes) < sum(exact.urn_extraction.layer_sizes)
    assert pruned.urn_extraction.layer_sizes[-1] == 1  # the outputs always stay


def test_the_model_loads_with_plain_keras_exports_and_fine_tunes(tmp_path):
    layer, _, _ = _mlp_urn()
    x = _positive_samples(64)
    net = extract_urn_network(layer, x)
    path = tmp_path / "net.keras"
    net.save(path)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        net = keras.saving.load_model({str(path)!r})
        np.save({str(tmp_path / "y.npy")!r}, net(np.load({str(tmp_path / "x.npy")!r})).numpy())
        print("tfemergent" in sys.modules)
    """)
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().splitlines()[-1] == "False"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), net(x).numpy(), atol=1e-6)

    export_dir = tmp_path / "saved"
    net.export(str(export_dir), verbose=False)
    reloaded = tf.saved_model.load(str(export_dir))
    np.testing.assert_allclose(reloaded.serve(tf.constant(x)).numpy(), net(x).numpy(), atol=1e-5)

    net.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = net.get_layer("iteration_1").kernel.numpy().copy()
    history = net.fit(x, np.zeros((64, 1), "float32"), epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert not np.array_equal(before, net.get_layer("iteration_1").kernel.numpy())


def test_sparse_mode_layer_is_extracted_from_its_sparse_weights():
    layer, weights, _ = _mlp_urn()
    x = _positive_samples()
    expected = layer(x).numpy()
    layer.use_sparse_kernel()
    net = extract_urn_network(layer, x)
    assert net.urn_extraction.layer_sizes == (3, 2, 1)
    np.testing.assert_allclose(net(x).numpy(), expected, rtol=1e-6)


def test_image_inputs_are_flattened():
    layer = RecursiveURNLayer(num_neurons=12, num_iterations=2, input_dim=4, output_dim=2,
                              seed=0)
    images = np.random.default_rng(0).normal(size=(10, 2, 2)).astype("float32")
    layer(images)
    with pytest.warns(UserWarning):
        net = extract_urn_network(layer, images)
    assert net.layers[1].name == "flatten"
    np.testing.assert_allclose(net(images).numpy(), layer(images).numpy(), atol=1e-5)


def test_an_untrained_layer_warns_and_still_returns_the_unrolled_network():
    layer = RecursiveURNLayer(num_neurons=10, num_iterations=2, input_dim=3, output_dim=2,
                              activation="tanh", seed=0)
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    layer(x)
    with pytest.warns(UserWarning, match="Every one of the 10 neurons"):
        net = extract_urn_network(layer, x)
    np.testing.assert_allclose(net(x).numpy(), layer(x).numpy(), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"tolerance": -1.0}, "tolerance"),
        ({"tolerance": "a"}, "tolerance"),
        ({"x": np.zeros((4, 3), "float32")}, "x.shape=(4, 3)"),
        ({"x": np.zeros((4,), "float32")}, "x.shape=(4,)"),
        ({"x": np.full((4, 2), np.nan, "float32")}, "non-finite"),
        ({"validation_x": np.zeros((4, 7), "float32")}, "validation_x.shape=(4, 7)"),
    ],
)
def test_bad_arguments_raise_value_errors(kwargs, fragment):
    layer, _, _ = _mlp_urn()
    arguments = {"x": _positive_samples(), **kwargs}
    with pytest.raises(ValueError, match="Received") as error:
        extract_urn_network(layer, **arguments)
    assert fragment in str(error.value)


def test_an_unbuilt_layer_or_another_layer_is_refused():
    with pytest.raises(ValueError, match="must be built.*Received"):
        extract_urn_network(RecursiveURNLayer(8, 2, 2, 1), np.zeros((2, 2), "float32"))
    with pytest.raises(ValueError, match="RecursiveURNLayer.*Received: layer="):
        extract_urn_network(keras.layers.Dense(2), np.zeros((2, 2), "float32"))


def test_docstring_example():
    import importlib

    from docstring_examples import assert_docstring_examples

    assert_docstring_examples(importlib.import_module("tfemergent.models.urn.emergent_network"))
