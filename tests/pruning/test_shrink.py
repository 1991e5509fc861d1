"""dead_neurons and shrink: hand-built masks with every kind of dead channel; exact outputs.

The network (input 8x8x2) has segments [[4, 4, 4], [4, 3]] and three add-ons:
image -> conv_0_2 (5x5), relu_0_0 -> conv_0_2 (3x3), pool_0 -> conv_1_1 (3x3). The masks
below make (see the comments): a channel without output, channels without input with a
negative bias (removed, zero output) or a positive one (kept as a constant channel, or
folded into the head for the last convolution), removals that cascade forwards and
backwards, and an add-on whose only connection comes from a removed channel.
"""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from docstring_examples import assert_docstring_examples

from tfemergent.models import SegmentCNN
from tfemergent.pruning import dead_neurons, prune_kernels, shrink

shrink_module = importlib.import_module("tfemergent.pruning.shrink")
dead_neurons_module = importlib.import_module("tfemergent.pruning.dead_neurons")

ADD_ONS = [
    {"segment": 0, "source": "input", "target": 2, "kernel_size": 5},
    {"segment": 0, "source": 0, "target": 2, "kernel_size": 3},
    {"segment": 1, "source": "input", "target": 1, "kernel_size": 3},
]
MASKS = {
    "conv_0_0": np.ones((2, 4)),
    # rows: conv_0_0 channels; row 3 empty (with the add-on's row 3: no output).
    # columns 0 and 1 empty: no input (bias -0.5: removed; bias +0.7: constant).
    "conv_0_1": np.array([[0, 0, 1, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]),
    "add_on_0_0_2_k3": np.array([[0, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]),
    "add_on_0_input_2_k5": np.array([[1, 0, 0, 0], [0, 0, 0, 0]]),
    # conv_0_2 channel 1 reads only conv_0_1 channel 0 (removed): no input, bias -0.3.
    # channel 2 reads the constant channel 1 and feeds only conv_1_0 channel 3.
    "conv_0_2": np.array([[0, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [0, 0, 0, 1]]),
    # channel 3 of conv_1_0 is read by nobody (row 3 of conv_1_1 is empty).
    "conv_1_0": np.array([[1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 1, 0]]),
    # channel 2 of the last convolution has no input, bias +0.4: folded into the head.
    "conv_1_1": np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]]),
    # the add-on's only connection comes from conv_0_2 channel 1 (removed): dropped.
    "add_on_1_input_1_k3": np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]]),
}
BIASES = {
    "conv_0_0": [0.1, -0.2, 0.3, 0.05],
    "conv_0_1": [-0.5, 0.7, 0.2, -0.1],
    "conv_0_2": [0.1, -0.3, 0.2, 0.3],
    "conv_1_0": [0.2, -0.1, 0.1, 0.4],
    "conv_1_1": [0.1, -0.2, 0.4],
}
EXPECTED_DEAD = {
    "conv_0_0": {"no_input": [], "no_output": [3], "constant": []},
    "conv_0_1": {"no_input": [0], "no_output": [], "constant": [1]},
    "conv_0_2": {"no_input": [1], "no_output": [2], "constant": []},
    "conv_1_0": {"no_input": [], "no_output": [3], "constant": []},
    "conv_1_1": {"no_input": [2], "no_output": [], "constant": []},
}


def _pruned_model():
    spec = SegmentCNN((8, 8, 2), 3, segments=[[4, 4, 4], [4, 3]], add_ons=ADD_ONS, seed=5)
    model = spec.build()
    for name, mask in MASKS.items():
        model.get_layer(name).set_pruning_mask(mask)
    for name, bias in BIASES.items():
        model.get_layer(name).bias.assign(np.array(bias, "float32"))
    head = model.get_layer("head")
    head.bias.assign(np.array([0.1, 0.0, -0.1], "float32"))
    return model


def _images(num=6, seed=0):
    return np.random.default_rng(seed).standard_normal((num, 8, 8, 2)).astype("float32")


def _trainable_parameters(model):
    return int(sum(np.prod(weight.shape) for weight in model.trainable_weights))


def test_dead_neurons_of_hand_built_masks():
    assert dead_neurons(_pruned_model()) == EXPECTED_DEAD


def test_shrunk_model_removes_dead_channels_and_computes_the_same():
    model = _pruned_model()
    small = shrink(model)
    assert [small.get_layer(n).filters for n in EXPECTED_DEAD] == [3, 3, 2, 3, 2]
    layer_names = [layer.name for layer in small.layers]
    assert "add_on_1_input_1_k3" not in layer_names and "preactivation_1_1" not in layer_names
    assert "add_on_0_0_2_k3" in layer_names and "add_on_0_input_2_k5" in layer_names
    # Kept kernels keep their masks: conv_0_1 rows (conv_0_0 kept 0, 1, 2) x columns (1, 2, 3).
    np.testing.assert_array_equal(
        small.get_layer("conv_0_1").kernel_mask.numpy(), MASKS["conv_0_1"][:3][:, [1, 2, 3]]
    )
    np.testing.assert_array_equal(
        small.get_layer("add_on_0_0_2_k3").connection_mask.numpy(),
        MASKS["add_on_0_0_2_k3"][:3][:, [0, 3]],
    )
    # The head bias gains relu(0.4) * head row of conv_1_1 channel 2.
    head_kernel = model.get_layer("head").kernel.numpy()
    expected_bias = np.array([0.1, 0.0, -0.1]) + 0.4 * head_kernel[2]
    np.testing.assert_allclose(small.get_layer("head").bias.numpy(), expected_bias, atol=1e-6)
    images = _images()
    np.testing.assert_allclose(small(images).numpy(), model(images).numpy(), atol=1e-5)
    # Pre-softmax too (the softmax could hide an offset common to all classes).

    def logits(network, x):
        pooled = keras.Model(network.input, network.get_layer("global_pool").output)(x)
        head = network.get_layer("head")
        return pooled.numpy() @ head.kernel.numpy() + head.bias.numpy()

    np.testing.assert_allclose(logits(small, images), logits(model, images), atol=1e-5)
    assert _trainable_parameters(small) < _trainable_parameters(model)
    # Nothing left to remove; the constant channel is now channel 0 of conv_0_1.
    again = dead_neurons(small)
    assert again["conv_0_1"] == {"no_input": [], "no_output": [], "constant": [0]}
    assert all(not row["no_input"] and not row["no_output"] for row in again.values())


def test_constant_channel_is_needed_and_folding_it_into_a_bias_would_be_wrong():
    """The kept constant channel changes the output near the border, not by a constant."""
    model = _pruned_model()
    images = _images()
    reference = model(images).numpy()
    model.get_layer("conv_0_1").bias.assign(np.array([-0.5, 0.0, 0.2, -0.1], "float32"))
    assert np.abs(model(images).numpy() - reference).max() > 1e-4


def test_pruned_and_shrunk_models_export_and_reload(tmp_path):
    model = _pruned_model()
    small = shrink(model)
    images = _images(seed=1)
    expected = model(images).numpy()
    for name, candidate in (("pruned", model), ("shrunk", small)):
        path = str(tmp_path / name)
        candidate.export(path, verbose=False)
        reloaded = tf.saved_model.load(path)
        served = reloaded.serve(tf.constant(images)).numpy()
        np.testing.assert_allclose(served, expected, atol=1e-5)

    def size(name):
        return sum(path.stat().st_size for path in (tmp_path / name).rglob("*") if path.is_file())

    assert size("shrunk") < size("pruned")


def test_shrink_a_loaded_model_and_keras_round_trip(tmp_path):
    model = _pruned_model()
    model.save(tmp_path / "pruned.keras")
    loaded = keras.saving.load_model(tmp_path / "pruned.keras")
    small = shrink(loaded)
    small.save(tmp_path / "small.keras")
    reloaded = keras.saving.load_model(tmp_path / "small.keras")
    images = _images(seed=2)
    np.testing.assert_allclose(reloaded(images).numpy(), model(images).numpy(), atol=1e-5)
    np.testing.assert_array_equal(
        reloaded.get_layer("conv_1_1").kernel_mask.numpy(),
        small.get_layer("conv_1_1").kernel_mask.numpy(),
    )


def test_shrink_after_prune_kernels_is_exact_and_keeps_training_pruned():
    keras.utils.set_random_seed(0)
    model = SegmentCNN((8, 8, 2), 3, segments=[[8, 8], [12, 6]], seed=3).build()
    for layer in model.layers:
        if hasattr(layer, "bias") and layer.bias is not None:
            rng = np.random.default_rng(len(layer.name))
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
    report = prune_kernels(model, fraction=0.8)
    dead = dead_neurons(model)
    # Every kind: no input, no output, constant channels, removed channels of the last layer.
    for kind in ("no_input", "no_output", "constant"):
        assert sum(len(row[kind]) for row in dead.values()) > 0, kind
    assert dead["conv_1_1"]["no_input"]
    small = shrink(model)
    images = np.random.default_rng(4).standard_normal((5, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(small(images).numpy(), model(images).numpy(), atol=1e-5)
    assert _trainable_parameters(small) < _trainable_parameters(model)
    assert report.pruned_kernel_fraction == pytest.approx(0.8, abs=0.005)
    # Retraining the shrunk model keeps its pruned kernels at zero.
    small.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    small.fit(images, np.arange(5) % 3, epochs=2, verbose=0)
    for name in SegmentCNN.from_model(small).conv_names:
        layer = small.get_layer(name)
        assert np.all(layer.kernel.numpy()[:, :, layer.kernel_mask.numpy() == 0] == 0)


def test_a_fully_dead_layer_cannot_be_shrunk():
    model = SegmentCNN((8, 8, 1), 2, segments=[[2, 2, 2]], seed=0).build()
    model.get_layer("conv_0_1").set_kernel_mask(np.zeros((2, 2)))
    model.get_layer("conv_0_1").bias.assign([-1.0, 0.0])
    with pytest.raises(ValueError, match="Every channel of layer 'conv_0_0'.*Received: model="):
        shrink(model)
    # Any functional model shrinks now (issue 16); what the engine cannot walk is refused.
    with pytest.raises(ValueError, match="must be a built Keras model.*Received: model="):
        shrink(keras.Sequential([keras.layers.Dense(2)]))

    class Subclassed(keras.Model):
        def call(self, x):
            return x * 2.0

    subclassed = Subclassed()
    subclassed(np.ones((1, 2), "float32"))
    with pytest.raises(ValueError, match="traced graph.*Received: model="):
        shrink(subclassed)


def test_shrink_docstring_examples():
    assert_docstring_examples(shrink_module)
    assert_docstring_examples(dead_neurons_module)
