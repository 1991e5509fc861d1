import json

import keras
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

import tfemergent.models.hierarchy.self_organising_hierarchy as hierarchy_module
from tfemergent.models import SelfOrganisingHierarchy
from docstring_examples import assert_docstring_examples

# 4 x 4 images, 2 x 2 windows, codes of 4 (2 x 2): the map is 4 x 8 with the codes
# of units 0, 1, 2 at (0, 4), (2, 4), (0, 6).
TINY = {"image_shape": (4, 4), "num_hidden": 4, "window_size": 2, "seed": 0}


def _images(num_samples=6, seed=0, shape=(4, 4)):
    return np.random.default_rng(seed).random((num_samples,) + shape).astype("float32")


def _set_random_weights(model, seed=1):
    rng = np.random.default_rng(seed)
    for unit in model.units:
        for weight in unit.trainable_weights:
            weight.assign(rng.normal(scale=0.7, size=weight.shape).astype("float32"))


def _numpy_code(unit, feature_map):
    size = unit.window_size
    field = np.concatenate(
        [
            feature_map[:, r : r + size, c : c + size].reshape(len(feature_map), -1)
            for r, c in unit.current_receptive_field()
        ],
        axis=1,
    )
    return field, np.maximum(field @ unit.encoder_kernel.numpy() + unit.encoder_bias.numpy(), 0.0)


def _numpy_write(model, feature_map, k, code):
    row, col, rows, cols = model.layout.code_box(k)
    feature_map = feature_map.copy()
    feature_map[:, row : row + rows, col : col + cols] = code.reshape(-1, rows, cols)
    return feature_map


def _numpy_relaxed_map(model, images, passes):
    """Algorithm 1, lines 3-9: the map starts as image + zeros, then K x K passes."""
    feature_map = np.zeros((len(images),) + model.feature_map_shape, "float64")
    feature_map[:, :4, :4] = images
    for _ in range(passes):
        for k, unit in enumerate(model.units):
            feature_map = _numpy_write(model, feature_map, k, _numpy_code(unit, feature_map)[1])
    return feature_map


def test_layout_and_topology_of_the_tiny_model():
    model = SelfOrganisingHierarchy(**TINY)
    assert model.feature_map_shape == (4, 8)
    assert model.layout.code_locations == [(0, 4), (2, 4), (0, 6)]
    assert model.receptive_fields == [((0, 0), (0, 2)), ((2, 0), (2, 2)), ((0, 4), (2, 4))]


def test_relaxation_fills_the_map_as_algorithm_1():
    model = SelfOrganisingHierarchy(**TINY)
    _set_random_weights(model)
    images = _images()
    expected = _numpy_relaxed_map(model, images, passes=3)
    relaxed = model.relax(model.initial_feature_map(images)).numpy()
    np.testing.assert_allclose(relaxed, expected, rtol=1e-5, atol=1e-5)
    # every code block was written (the last unit reads the first two codes)
    assert np.abs(relaxed[:, :, 4:]).sum() > 0
    # the model's output: one more pass in unit order, codes concatenated
    feature_map, codes = expected, []
    for k, unit in enumerate(model.units):
        code = _numpy_code(unit, feature_map)[1]
        feature_map = _numpy_write(model, feature_map, k, code)
        codes.append(code)
    np.testing.assert_allclose(
        model(images).numpy(), np.concatenate(codes, axis=1), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(model.feature_map(images).numpy(), feature_map, rtol=1e-5, atol=1e-5)


def test_relaxation_passes_count():
    model = SelfOrganisingHierarchy(**TINY, relaxation_passes=1)
    _set_random_weights(model)
    images = _images()
    np.testing.assert_allclose(
        model.relax(model.initial_feature_map(images)).numpy(),
        _numpy_relaxed_map(model, images, passes=1),
        rtol=1e-5,
        atol=1e-5,
    )
    none = SelfOrganisingHierarchy(**TINY, relaxation_passes=0)
    np.testing.assert_array_equal(
        none.relax(none.initial_feature_map(images)).numpy(),
        _numpy_relaxed_map(none, images, passes=0),
    )


@pytest.mark.parametrize("jit_compile", [False, True])
def test_one_step_updates_each_unit_with_its_own_loss_only(jit_compile):
    model = SelfOrganisingHierarchy(**TINY, l2=0.01)
    _set_random_weights(model)
    images = _images(8)
    # Expected: on the relaxed map, unit k sees the codes of units < k from this
    # pass (computed with the weights before the update) and descends its own loss.
    feature_map = _numpy_relaxed_map(model, images, passes=3)
    expected = []
    for k, unit in enumerate(model.units):
        with tf.GradientTape() as tape:
            _, loss = unit.autoencode(tf.constant(feature_map, "float32"), training=True)
        gradients = tape.gradient(loss, unit.trainable_weights)
        expected.append(
            [w.numpy() - 0.1 * g.numpy() for w, g in zip(unit.trainable_weights, gradients)]
        )
        feature_map = _numpy_write(model, feature_map, k, _numpy_code(unit, feature_map)[1])
    model.compile(keras.optimizers.SGD(0.1), jit_compile=jit_compile)
    model.fit(images, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for unit, weights in zip(model.units, expected):
        for actual, value in zip(unit.trainable_weights, weights):
            np.testing.assert_allclose(actual.numpy(), value, rtol=1e-4, atol=1e-5)


def test_epoch_entropy_is_the_binned_entropy_of_the_epochs_codes():
    model = SelfOrganisingHierarchy(**TINY)
    _set_random_weights(model)
    images = _images(16)
    codes = model(images).numpy()  # one batch: the codes the training pass sees
    model.compile(keras.optimizers.SGD(0.01))
    history = model.fit(images, batch_size=16, epochs=1, verbose=0)
    total = 0.0
    for k in range(3):
        counts, _ = np.histogram(codes[:, 4 * k : 4 * (k + 1)], bins=100)
        expected = scipy.stats.entropy(counts)
        assert history.history[f"unit_{k}_entropy"][0] == pytest.approx(expected, rel=1e-5)
        total += expected
    assert history.history["entropy"][0] == pytest.approx(total, rel=1e-5)


def test_entropy_of_an_epoch_longer_than_the_buffer_uses_its_last_examples():
    model = SelfOrganisingHierarchy(**TINY, entropy_samples=8, entropy_bins=10)
    _set_random_weights(model)
    images = _images(24)
    model.compile(keras.optimizers.SGD(0.0))  # no change: codes are those of `model`
    history = model.fit(images, batch_size=4, epochs=2, shuffle=False, verbose=0)
    codes = model(images[-8:]).numpy()
    counts, _ = np.histogram(codes[:, :4], bins=10)
    assert history.history["unit_0_entropy"][1] == pytest.approx(
        scipy.stats.entropy(counts), rel=1e-5
    )


def test_weights_outside_the_fields_never_change_in_fit():
    model = SelfOrganisingHierarchy(**TINY, dropout=0.2)
    images = _images(32)
    model.compile(keras.optimizers.Adam(0.05))
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    model.set_topology([((0, 2), (2, 0)), ((0, 0), (2, 2)), ((0, 4), (2, 6))])
    before = [(u.map_encoder_kernel().numpy(), u.map_decoder_kernel().numpy()) for u in model.units]
    model.fit(images, batch_size=8, epochs=2, verbose=0)
    for unit, (encoder, decoder) in zip(model.units, before):
        outside = unit.receptive_field_mask.numpy().ravel() == 0
        np.testing.assert_array_equal(unit.map_encoder_kernel().numpy()[outside], encoder[outside])
        np.testing.assert_array_equal(
            unit.map_decoder_kernel().numpy()[:, outside], decoder[:, outside]
        )
        assert not np.array_equal(unit.map_encoder_kernel().numpy(), encoder)


def test_labels_are_ignored_and_evaluate_reports_unit_losses():
    model = SelfOrganisingHierarchy(**TINY)
    images = _images(16)
    model.compile(keras.optimizers.Adam(0.01))
    keras.utils.set_random_seed(3)
    with_labels = model.fit(images, np.arange(16), batch_size=8, epochs=1, verbose=0)
    assert set(with_labels.history) >= {"loss", "unit_0_loss", "unit_2_entropy"}
    results = model.evaluate(images, batch_size=8, verbose=0, return_dict=True)
    assert set(results) == {"loss", "unit_0_loss", "unit_1_loss", "unit_2_loss"}
    assert results["loss"] == pytest.approx(
        sum(results[f"unit_{k}_loss"] for k in range(3)), rel=1e-5
    )


def test_images_with_a_channel_axis_and_wrong_shapes():
    model = SelfOrganisingHierarchy(**TINY)
    images = _images()
    np.testing.assert_allclose(model(images[..., None]).numpy(), model(images).numpy())
    with pytest.raises(ValueError, match=r"images of shape \(batch, 4, 4\).*Received"):
        model(np.zeros((2, 5, 4), "float32"))


def test_compile_rejects_a_loss():
    model = SelfOrganisingHierarchy(**TINY)
    with pytest.raises(ValueError, match="without `loss`. Received: loss='mse'"):
        model.compile("adam", loss="mse")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"num_units": 0}, "num_units"),
        ({"num_hidden": 0}, "num_hidden"),
        ({"window_size": 0}, "window_size"),
        ({"image_shape": (4,)}, "image_shape"),
        ({"dropout": 1.5}, "dropout"),
        ({"dropout": 1.0}, "dropout"),
        ({"l2": -1.0}, "l2"),
        ({"relaxation_passes": -1}, "relaxation_passes"),
        ({"entropy_bins": 0}, "entropy_bins"),
        ({"entropy_samples": 0}, "entropy_samples"),
        ({"seed": -1}, "seed"),
        ({"topology": "tree"}, "topology"),
        ({"topology": [((0, 0), (0, 2))]}, "topology"),
        ({"topology": [((0, 0), (0, 2)), ((2, 0), (2, 2)), ((0, 6), (2, 4))]}, r"topology\[2\]"),
        ({"topology": [((0, 0), (0, 7)), ((2, 0), (2, 2)), ((0, 4), (2, 4))]}, r"topology\[0\]"),
        ({"image_shape": (6, 6), "topology": "pyramidal"}, "handcrafted"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name) as info:
        SelfOrganisingHierarchy(**{**TINY, **kwargs})
    assert "Received" in str(info.value)


def test_config_round_trip_keeps_the_current_topology():
    model = SelfOrganisingHierarchy(**TINY, topology="random", topology_seed=4, dropout=0.1)
    model.set_topology("flat")
    config = json.loads(json.dumps(model.get_config()))
    clone = SelfOrganisingHierarchy.from_config(config)
    assert clone.receptive_fields == model.receptive_fields
    assert clone.get_config() == config


def test_save_load_and_export_after_moving_and_training(tmp_path):
    keras.utils.set_random_seed(0)
    model = SelfOrganisingHierarchy(**TINY, dropout=0.1)
    images = _images(16)
    model.compile(keras.optimizers.Adam(0.01))
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    model.set_topology([((0, 2), (2, 0)), ((0, 0), (2, 2)), ((0, 4), (2, 6))])
    model.fit(images, batch_size=8, epochs=1, verbose=0)
    expected = model(images).numpy()
    path = tmp_path / "hierarchy.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.receptive_fields == model.receptive_fields
    np.testing.assert_allclose(loaded(images).numpy(), expected, atol=1e-6)
    # training continues from the loaded optimizer state
    loaded.fit(images, batch_size=8, epochs=1, verbose=0)
    export_dir = str(tmp_path / "export")
    model.export(export_dir, verbose=False)
    reloaded = tf.saved_model.load(export_dir)
    np.testing.assert_allclose(reloaded.serve(images).numpy(), expected, atol=1e-5)
    assert not any("code_buffer" in v.name for v in reloaded.variables)


def test_training_is_deterministic_under_a_seed():
    def run():
        keras.utils.set_random_seed(7)
        model = SelfOrganisingHierarchy(**TINY, dropout=0.3)
        model.compile(keras.optimizers.Adam(0.01))
        history = model.fit(_images(32), batch_size=8, epochs=2, verbose=0)
        return model(_images(4, seed=9)).numpy(), history.history

    (first, first_history), (second, second_history) = run(), run()
    np.testing.assert_array_equal(first, second)
    assert first_history == second_history


def test_fit_under_mirrored_strategy(mirrored_strategy):
    images = _images(32)
    with mirrored_strategy.scope():
        model = SelfOrganisingHierarchy(**TINY)
        model.compile(keras.optimizers.Adam(0.01))
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(images, batch_size=8, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert np.isfinite(history.history["entropy"]).all() and history.history["entropy"][-1] > 0
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_weights))


def test_docstring_example():
    assert_docstring_examples(hierarchy_module)
