"""ResetNetwork: composition of the levels, dropout, heads, saving, errors."""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf
from docstring_examples import assert_docstring_examples

from tfemergent.layers import ResetGrid
from tfemergent.models import ResetNetwork

reset_network_module = importlib.import_module("tfemergent.models.reset.reset_network")

SMALL = {"conv_filters": [4], "dense_units": [8]}
TINY = dict(grid_size=2, grid_width=8, subnetwork=SMALL, final_network=SMALL, seed=3)


def _images(count, shape=(12, 12, 1), seed=0):
    return np.random.default_rng(seed).random((count,) + shape).astype("float32")


def _final_network_outputs(model, grid):
    """The final network and output layer applied by hand to ``grid`` (B, m, m)."""
    x = grid[..., None]
    for layer in model.final_layers:
        x = layer(x)
    return model.output_layer(x).numpy()


def test_outputs_are_the_final_network_on_the_grid_of_resetgrid():
    model = ResetNetwork(10, **TINY)
    images = _images(5)
    outputs = model(images).numpy()
    grid = model.grid_layers[0](images).numpy()
    np.testing.assert_allclose(outputs, _final_network_outputs(model, grid), atol=1e-6)
    np.testing.assert_allclose(model.grid_activations(images, batch_size=2), grid, atol=1e-6)
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, atol=1e-5)  # softmax head


def test_deeper_network_feeds_each_grid_to_the_next_level():
    model = ResetNetwork(
        4, grid_size=[4, 2], grid_width=[8, 4], subnetwork=[SMALL, {"conv_filters": []}],
        final_network={"conv_filters": [], "dense_units": [6]}, output_activation="linear",
        seed=1,
    )
    images = _images(3)
    outputs = model(images).numpy()
    first = model.grid_layers[0](images).numpy()
    second = model.grid_layers[1](first).numpy()
    assert model.num_levels == 2 and model.grid_width == 4
    np.testing.assert_allclose(model.grid_activations(images, level=0), first, atol=1e-6)
    np.testing.assert_allclose(model.grid_activations(images, level=-1), second, atol=1e-6)
    np.testing.assert_allclose(model.grid_activations(images, level=1), second, atol=1e-6)
    np.testing.assert_allclose(outputs, _final_network_outputs(model, second), atol=1e-6)
    # level 1: 2 x 2 MLP sub-networks on the flattened 8 x 8 grid, dense 32 (default),
    # then 2 x 2 units each
    assert model.grid_layers[1].get_layer("dense_0").kernel.shape == (4, 64, 32)
    assert model.grid_layers[1].get_layer("output").kernel.shape == (4, 32, 4)


def test_grid_dropout_acts_on_the_grid_only_when_training():
    model = ResetNetwork(10, **{**TINY, "grid_dropout": 0.5})
    images = _images(64)
    model(images)
    grid = model.grid_layers[0](images).numpy()
    dropped = model._grids(tf.constant(images), training=True)[-1].numpy()
    kept = dropped != 0
    # inverted dropout: kept units are scaled by 1 / (1 - rate), about half are kept
    np.testing.assert_allclose(dropped[kept], 2.0 * grid[kept], rtol=1e-5)
    assert 0.4 < kept.mean() < 0.6
    np.testing.assert_allclose(model._grids(tf.constant(images))[-1].numpy(), grid, atol=1e-6)


def test_reconstruction_loss_is_added_with_its_weight():
    images = _images(8)
    labels = np.arange(8) % 10
    losses = {}
    for weight in (0.0, 2.5):
        model = ResetNetwork(10, **TINY, grid_dropout=0.0, reconstruction=True,
                             reconstruction_weight=weight)
        model.compile("adam", "sparse_categorical_crossentropy")
        result = model.evaluate(images, labels, batch_size=8, verbose=0, return_dict=True)
        probabilities = model.predict(images, verbose=0)
        cross_entropy = -np.mean(np.log(probabilities[np.arange(8), labels]))
        mse = np.mean((model.reconstruct(images) - images) ** 2)
        np.testing.assert_allclose(result["reconstruction_loss"], mse, rtol=1e-5)
        np.testing.assert_allclose(result["loss"], cross_entropy + weight * mse, rtol=1e-5)
        losses[weight] = result["loss"]
    assert losses[2.5] > losses[0.0]


def test_reconstruction_head_decodes_the_grid_to_the_image_shape():
    model = ResetNetwork(3, **TINY, reconstruction={"dense_units": [], "output_activation": "linear"})
    images = _images(4, shape=(12, 12, 3))
    model(images)
    grid = model.grid_activations(images)
    layer = model.reconstruction_layer  # no hidden layer: one dense map of the grid
    expected = grid.reshape(4, 64) @ layer.kernel.numpy() + layer.bias.numpy()
    np.testing.assert_allclose(model.reconstruct(images), expected.reshape(4, 12, 12, 3),
                               atol=1e-5)


def test_gradient_reaches_every_subnetwork_and_the_final_network():
    model = ResetNetwork(10, **TINY, grid_dropout=0.0)
    images = tf.constant(_images(6))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(images) * tf.range(10, dtype="float32"))
    gradients = tape.gradient(loss, model.trainable_variables)
    for variable, gradient in zip(model.trainable_variables, gradients):
        assert gradient is not None, variable.path
        if "grid_0" in variable.path and "kernel" in variable.path:
            per_network = np.abs(gradient.numpy()).reshape(4, -1).sum(axis=1)
            assert np.all(per_network > 0), variable.path


def test_multilabel_head_learns_number_codes_with_bce():
    # 4 "digits" (a bright square in one quadrant), codes that overlap like number codes
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 256)
    images = rng.random((256, 12, 12)).astype("float32") * 0.2
    for index, label in enumerate(labels):
        row, col = divmod(label, 2)
        images[index, 6 * row:6 * row + 6, 6 * col:6 * col + 6] += 0.8
    codes = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 1]],
                     "float32")
    keras.utils.set_random_seed(0)
    model = ResetNetwork(5, **{**TINY, "grid_dropout": 0.2}, output_activation="sigmoid")
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    history = model.fit(images, codes[labels], batch_size=32, epochs=6, verbose=0)
    outputs = model.predict(images, verbose=0)
    assert np.all((outputs >= 0) & (outputs <= 1))
    nearest = np.argmin(((outputs[:, None] - codes[None]) ** 2).sum(axis=2), axis=1)
    assert np.mean(nearest == labels) > 0.95
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]


def test_same_seed_same_weights_other_seed_other_weights():
    first, second, third = (ResetNetwork(10, **{**TINY, "seed": seed}) for seed in (3, 3, 4))
    for model in (first, second, third):
        model.build((None, 12, 12, 1))
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert any(not np.array_equal(a.numpy(), c.numpy())
               for a, c in zip(first.weights, third.weights) if "kernel" in a.path)


def test_keras_file_round_trip_after_training(tmp_path):
    # grid_dropout=0: Keras does not save a Dropout layer's seed-generator state,
    # so a restored model draws other dropout masks than the original would.
    model = ResetNetwork(10, **TINY, reconstruction=True, grid_dropout=0.0)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    images, labels = _images(16), np.arange(16) % 10
    model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "reset.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    assert isinstance(restored, ResetNetwork)
    assert restored.get_config() == model.get_config()
    np.testing.assert_allclose(restored.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-6)
    np.testing.assert_allclose(restored.grid_activations(images),
                               model.grid_activations(images), atol=1e-6)
    for a, b in zip(restored.optimizer.variables, model.optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    # training continues from the same state
    keras.utils.set_random_seed(1)
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0, shuffle=False)
    keras.utils.set_random_seed(1)
    restored.fit(images, labels, batch_size=16, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(restored.predict(images, verbose=0),
                               model.predict(images, verbose=0), atol=1e-5)


def test_config_round_trip_with_per_level_lists():
    model = ResetNetwork(
        7, grid_size=[4, 2], grid_width=[16, 8], subnetwork=[SMALL, None],
        final_network={"block": "residual", "conv_filters": [4]}, output_activation="sigmoid",
        grid_dropout=0.3, reconstruction={"dense_units": [16]}, reconstruction_weight=0.5,
        seed=9, name="deep",
    )
    config = model.get_config()
    clone = ResetNetwork.from_config(config)
    assert clone.get_config() == config
    assert config["grid_size"] == [4, 2] and config["grid_width"] == [16, 8]
    assert config["subnetwork"][1]["conv_filters"] == [8, 16]  # the default, spelled out
    assert config["reconstruction"] == {"dense_units": [16], "activation": "relu",
                                        "output_activation": "sigmoid"}
    images = _images(2)
    np.testing.assert_allclose(clone(images).numpy(), model(images).numpy(), atol=1e-6)


def test_saved_model_export_serves_the_same_outputs(tmp_path):
    model = ResetNetwork(10, **TINY)
    model.build((None, 12, 12, 1))
    images = _images(4)
    model.export(str(tmp_path / "saved"), verbose=False)
    restored = tf.saved_model.load(str(tmp_path / "saved"))  # keep it alive while serving
    served = restored.serve(images).numpy()
    np.testing.assert_allclose(served, model.predict(images, verbose=0), atol=1e-6)


def test_fit_under_mirrored_strategy(mirrored_strategy):
    images, labels = _images(32), np.arange(32) % 10
    with mirrored_strategy.scope():
        model = ResetNetwork(10, **TINY, reconstruction=True)
        model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    history = model.fit(images, labels, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert history.history["reconstruction_loss"][-1] > 0


def test_accepts_images_without_channel_axis():
    model = ResetNetwork(10, **TINY)
    images = _images(3)
    np.testing.assert_allclose(model(images[..., 0]).numpy(), model(images).numpy(), atol=1e-6)
    assert model.image_shape == (12, 12, 1)
    assert model.grid_activations(images[..., 0]).shape == (3, 8, 8)
    assert model.grid_activations(images[:0]).shape == (0, 8, 8)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_outputs": 0}, "num_outputs"),
        ({"grid_size": []}, "grid_size"),
        ({"grid_size": 3, "grid_width": 8}, "grid_width"),
        ({"grid_size": [2, 2], "grid_width": [8]}, "one per level"),
        ({"subnetwork": [SMALL, SMALL]}, "subnetwork"),
        ({"grid_dropout": 1.0}, "grid_dropout"),
        ({"reconstruction": {"units": 3}}, "unknown keys"),
        ({"reconstruction": "yes"}, "reconstruction"),
        ({"reconstruction_weight": -1.0}, "reconstruction_weight"),
        ({"final_network": {"output_activation": "softmax"}}, "unknown keys"),
        ({"final_network": [4]}, "final_network"),
        ({"output_activation": "nonsense"}, "output_activation"),
        ({"output_activation": 3}, "output_activation"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_arguments_raise_value_error(kwargs, match):
    arguments = {"num_outputs": 10, **TINY, **kwargs}
    with pytest.raises(ValueError, match=match) as error:
        ResetNetwork(**arguments)
    assert "Received" in str(error.value)


def test_final_network_too_deep_for_the_grid_is_reported():
    model = ResetNetwork(10, grid_size=2, grid_width=4, subnetwork=SMALL,
                         final_network={"conv_filters": [4, 4, 4]})
    with pytest.raises(ValueError, match="final_network.*empty"):
        model.build((None, 12, 12, 1))


def test_analysis_methods_check_their_arguments():
    model = ResetNetwork(10, **TINY)
    with pytest.raises(ValueError, match="not built"):
        model.grid_activations(_images(2))
    model(_images(1))
    with pytest.raises(ValueError, match="level"):
        model.grid_activations(_images(2), level=1)
    with pytest.raises(ValueError, match="images.shape"):
        model.grid_activations(_images(2, shape=(10, 10, 1)))
    with pytest.raises(ValueError, match="batch_size"):
        model.grid_activations(_images(2), batch_size=0)
    with pytest.raises(ValueError, match="no reconstruction head"):
        model.reconstruct(_images(2))


def test_grid_layers_are_resetgrids_named_by_level():
    model = ResetNetwork(10, grid_size=[2, 1], grid_width=[8, 4], subnetwork=SMALL,
                         final_network=SMALL)
    assert [type(layer) for layer in model.grid_layers] == [ResetGrid, ResetGrid]
    assert [layer.name for layer in model.grid_layers] == ["grid_0", "grid_1"]


def test_docstring_example():
    assert_docstring_examples(reset_network_module)
