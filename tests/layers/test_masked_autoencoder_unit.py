
import keras
import numpy as np
import pytest
from layer_contract import layer_contract_test

import tfemergent.layers.masked_autoencoder_unit as unit_module
from tfemergent.layers import MaskedAutoencoderUnit
from docstring_examples import assert_docstring_examples

# A 6 x 6 map, 3 x 3 windows (top band), the 2 x 2 code at rows 4-5, columns 0-1.
SMALL = {
    "num_hidden": 4,
    "receptive_field": ((0, 0), (0, 3)),
    "feature_map_shape": (6, 6),
    "window_size": 3,
    "code_location": (4, 0),
    "code_shape": (2, 2),
    "dropout": 0.25,
    "l2": 1e-3,
    "seed": 0,
}

test_masked_autoencoder_unit_contract = layer_contract_test(
    MaskedAutoencoderUnit,
    SMALL,
    input_shape=(6, 6),
    expected_output_shape=(4,),
    invalid_kwargs=[
        ({"num_hidden": 0}, "num_hidden"),
        ({"num_hidden": 4.0}, "num_hidden"),
        ({"window_size": 0}, "window_size"),
        ({"window_size": 7}, "window_size"),
        ({"feature_map_shape": (6,)}, "feature_map_shape"),
        ({"feature_map_shape": (6, 0)}, "feature_map_shape"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"l2": -1.0}, "l2"),
        ({"seed": -1}, "seed"),
        ({"code_shape": (3, 2)}, "code_shape"),
        ({"code_location": (5, 0)}, "code_location"),
        ({"code_location": (4,)}, "code_location"),
        ({"receptive_field": ((0, 0),)}, "receptive_field"),
        ({"receptive_field": ((0, 0), (0, 4))}, "receptive_field"),  # leaves the map
        ({"receptive_field": ((-1, 0), (0, 3))}, "receptive_field"),
        ({"receptive_field": ((0, 0), (1, 2))}, "receptive_field"),  # windows overlap
        ({"receptive_field": ((3, 0), (0, 3))}, "receptive_field"),  # reads its own code
        ({"receptive_field": ((0, 0.0), (0, 3))}, "receptive_field"),
        ({"kernel_initializer": "no_such_initializer"}, "kernel_initializer"),
        ({"bias_initializer": 3}, "bias_initializer"),
    ],
)


def _feature_map(num_samples=5, seed=0, shape=(6, 6)):
    return np.random.default_rng(seed).random((num_samples,) + shape).astype("float32")


def _field_values(feature_map, field, size):
    return np.concatenate(
        [feature_map[:, r : r + size, c : c + size].reshape(len(feature_map), -1) for r, c in field],
        axis=1,
    )


def test_exact_code_and_loss():
    unit = MaskedAutoencoderUnit(**{**SMALL, "dropout": 0.0, "l2": 0.01})
    feature_map = _feature_map()
    unit(feature_map)
    rng = np.random.default_rng(1)
    weights = {
        "encoder_kernel": rng.normal(size=(18, 4)),
        "encoder_bias": rng.normal(size=(4,)),
        "decoder_kernel": rng.normal(size=(4, 18)),
        "decoder_bias": rng.normal(size=(18,)),
    }
    for name, value in weights.items():
        getattr(unit, name).assign(value.astype("float32"))
    # the two windows: rows 0-2, columns 0-2 then rows 0-2, columns 3-5, row-major
    field = np.concatenate(
        [feature_map[:, 0:3, 0:3].reshape(5, 9), feature_map[:, 0:3, 3:6].reshape(5, 9)], axis=1
    )
    code = np.maximum(field @ weights["encoder_kernel"] + weights["encoder_bias"], 0.0)
    reconstruction = code @ weights["decoder_kernel"] + weights["decoder_bias"]
    loss = np.mean((reconstruction - field) ** 2) + 0.01 * (
        np.sum(weights["encoder_kernel"] ** 2) + np.sum(weights["decoder_kernel"] ** 2)
    )
    np.testing.assert_allclose(unit(feature_map).numpy(), code, rtol=1e-5, atol=1e-6)
    actual_code, actual_loss = unit.autoencode(feature_map, training=True)
    np.testing.assert_allclose(actual_code.numpy(), code, rtol=1e-5, atol=1e-6)
    assert float(actual_loss) == pytest.approx(loss, rel=1e-5)
    assert float(unit.losses[-1]) == pytest.approx(loss, rel=1e-5)


def test_dropout_only_in_training_and_only_on_the_reconstruction():
    unit = MaskedAutoencoderUnit(**{**SMALL, "dropout": 0.5, "l2": 0.0})
    feature_map = _feature_map(64)
    code_eval, loss_eval = unit.autoencode(feature_map, training=False)
    code_train, loss_train = unit.autoencode(feature_map, training=True)
    np.testing.assert_array_equal(code_eval.numpy(), code_train.numpy())
    assert float(loss_train) != pytest.approx(float(loss_eval), rel=1e-4)


def test_field_weights_are_the_map_weights_at_the_field():
    unit = MaskedAutoencoderUnit(**SMALL)
    unit(_feature_map())
    indices = np.concatenate(
        [np.ravel(np.arange(r, r + 3)[:, None] * 6 + np.arange(c, c + 3)[None, :]) for r, c in SMALL["receptive_field"]]
    )
    np.testing.assert_array_equal(
        unit.encoder_kernel.numpy(), unit.retained_encoder_kernel.numpy()[indices]
    )
    np.testing.assert_array_equal(
        unit.decoder_kernel.numpy(), unit.retained_decoder_kernel.numpy()[:, indices]
    )
    # The trainable weights are the field's only: the step never touches the map.
    assert [tuple(w.shape) for w in unit.trainable_weights] == [(18, 4), (4,), (4, 18), (18,)]
    mask = np.zeros((6, 6), "float32")
    mask[0:3, :] = 1.0
    np.testing.assert_array_equal(unit.receptive_field_mask.numpy(), mask)


def _train(unit, feature_map, epochs=3):
    model = keras.Sequential([keras.Input(feature_map.shape[1:]), unit])
    model.compile(keras.optimizers.Adam(0.05), loss=None)
    model.fit(feature_map, epochs=epochs, batch_size=8, verbose=0)


def test_weights_outside_the_field_never_change_in_training():
    keras.utils.set_random_seed(0)
    unit = MaskedAutoencoderUnit(**SMALL)
    feature_map = _feature_map(32)
    unit(feature_map)
    unit.set_receptive_field(((1, 0), (0, 3)))  # give the optimizer moments first ...
    _train(unit, feature_map, epochs=2)
    unit.set_receptive_field(((0, 0), (0, 3)))  # ... then move, so stale moments exist
    encoder, decoder = unit.map_encoder_kernel().numpy(), unit.map_decoder_kernel().numpy()
    bias = unit.retained_decoder_bias.numpy()
    _train(unit, feature_map, epochs=2)
    outside = unit.receptive_field_mask.numpy().ravel() == 0
    np.testing.assert_array_equal(unit.map_encoder_kernel().numpy()[outside], encoder[outside])
    np.testing.assert_array_equal(unit.map_decoder_kernel().numpy()[:, outside], decoder[:, outside])
    np.testing.assert_array_equal(unit.retained_decoder_bias.numpy()[outside], bias[outside])
    assert np.abs(unit.map_encoder_kernel().numpy()[~outside] - encoder[~outside]).min() > 0


def test_moving_the_field_keeps_every_weight():
    keras.utils.set_random_seed(0)
    unit = MaskedAutoencoderUnit(**SMALL)
    feature_map = _feature_map(32)
    _train(unit, feature_map)
    trained_encoder = unit.map_encoder_kernel().numpy()
    trained_decoder = unit.map_decoder_kernel().numpy()
    trained_field = [w.numpy() for w in unit.trainable_weights]
    unit.set_receptive_field(((1, 0), (3, 3)))
    np.testing.assert_array_equal(unit.map_encoder_kernel().numpy(), trained_encoder)
    np.testing.assert_array_equal(unit.map_decoder_kernel().numpy(), trained_decoder)
    assert unit.current_receptive_field() == ((1, 0), (3, 3))
    # the new field reads the new cells, with their weights
    expected_mask = np.zeros((6, 6), "float32")
    expected_mask[1:4, 0:3] = 1.0
    expected_mask[3:6, 3:6] = 1.0
    np.testing.assert_array_equal(unit.receptive_field_mask.numpy(), expected_mask)
    np.testing.assert_allclose(
        unit(feature_map).numpy(),
        np.maximum(
            _field_values(feature_map, ((1, 0), (3, 3)), 3) @ unit.encoder_kernel.numpy()
            + unit.encoder_bias.numpy(),
            0.0,
        ),
        rtol=1e-5,
        atol=1e-6,
    )
    # moving back restores the trained field weights exactly
    unit.set_receptive_field(SMALL["receptive_field"])
    for before, after in zip(trained_field, unit.trainable_weights):
        np.testing.assert_array_equal(after.numpy(), before)


def test_moved_field_survives_saving(tmp_path):
    keras.utils.set_random_seed(0)
    unit = MaskedAutoencoderUnit(**SMALL)
    feature_map = _feature_map(32)
    model = keras.Sequential([keras.Input((6, 6)), unit])
    unit.set_receptive_field(((1, 3), (1, 0)))
    model.compile(keras.optimizers.Adam(0.05), loss=None)
    model.fit(feature_map, epochs=2, batch_size=8, verbose=0)
    path = tmp_path / "unit.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    loaded_unit = loaded.layers[0]
    assert loaded_unit.current_receptive_field() == ((1, 3), (1, 0))
    assert loaded_unit.get_config()["receptive_field"] == [[1, 3], [1, 0]]
    np.testing.assert_array_equal(loaded(feature_map).numpy(), model(feature_map).numpy())
    np.testing.assert_array_equal(
        loaded_unit.map_encoder_kernel().numpy(), unit.map_encoder_kernel().numpy()
    )


def test_set_receptive_field_before_build_changes_the_initial_field():
    unit = MaskedAutoencoderUnit(**SMALL)
    unit.set_receptive_field(((1, 0), (1, 3)))
    unit(_feature_map())
    assert unit.current_receptive_field() == ((1, 0), (1, 3))


def test_set_receptive_field_rejects_invalid_fields_and_keeps_the_old_one():
    unit = MaskedAutoencoderUnit(**SMALL)
    unit(_feature_map())
    with pytest.raises(ValueError, match=r"own code.*Received: receptive_field="):
        unit.set_receptive_field(((3, 1), (0, 0)))
    with pytest.raises(ValueError, match=r"leaves the 6x6 feature map.*Received:"):
        unit.set_receptive_field(((0, 4), (0, 0)))
    assert unit.current_receptive_field() == ((0, 0), (0, 3))


def test_wrong_feature_map_shape_is_rejected():
    unit = MaskedAutoencoderUnit(**SMALL)
    with pytest.raises(ValueError, match=r"feature maps of shape \(batch, 6, 6\).*Received"):
        unit(np.zeros((2, 6, 7), "float32"))


def test_docstring_example():
    assert_docstring_examples(unit_module)


def test_cell_major_forms_equal_the_batch_major_ones():
    unit = MaskedAutoencoderUnit(**{**SMALL, "dropout": 0.0})
    feature_map = _feature_map(7)
    unit.set_receptive_field(((1, 3), (1, 0)))
    cells = np.reshape(feature_map, (7, 36)).T
    code, loss = unit.autoencode(feature_map)
    code_cells, loss_cells = unit.autoencode_cells(cells)
    np.testing.assert_allclose(code_cells.numpy().T, code.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(unit.encode_cells(cells).numpy().T, code.numpy(), rtol=1e-6, atol=1e-6)
    assert float(loss_cells) == pytest.approx(float(loss), rel=1e-6)
    np.testing.assert_array_equal(
        unit.read_field_cells(cells).numpy().T, _field_values(feature_map, ((1, 3), (1, 0)), 3)
    )


def test_read_field_builds_and_reads_both_windows_row_major():
    unit = MaskedAutoencoderUnit(**SMALL)
    feature_map = _feature_map(3)
    np.testing.assert_array_equal(
        unit.read_field(feature_map).numpy(), _field_values(feature_map, SMALL["receptive_field"], 3)
    )
    assert unit.built


def test_a_built_unit_rejects_a_map_of_the_wrong_shape_naming_it():
    unit = MaskedAutoencoderUnit(**SMALL)
    unit(_feature_map())
    for call in (unit, unit.encode, unit.autoencode):
        with pytest.raises(ValueError, match=r"\(batch, 6, 6\).*Received: feature_map.shape=\(2, 6, 7\)"):
            call(np.zeros((2, 6, 7), "float32"))


def test_seed_seeds_every_weight():
    def weights(seed):
        unit = MaskedAutoencoderUnit(**{**SMALL, "seed": seed}, bias_initializer="glorot_uniform")
        unit.build((None, 6, 6))
        return {weight.name: weight.numpy() for weight in unit.weights}

    first, again, other = weights(1), weights(1), weights(2)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    random_names = ["retained_encoder_kernel", "retained_decoder_kernel", "retained_decoder_bias",
                    "encoder_kernel", "encoder_bias", "decoder_kernel", "decoder_bias"]
    for name in random_names:
        assert not np.array_equal(first[name], other[name]), name
    # The encoder and decoder kernels are separate draws, not one draw transposed.
    assert not np.array_equal(first["retained_encoder_kernel"], first["retained_decoder_kernel"].T)


def test_map_decoder_bias_is_the_retained_bias_with_the_field_entries():
    unit = MaskedAutoencoderUnit(**SMALL)
    unit(_feature_map())
    unit.decoder_bias.assign(np.arange(18, dtype="float32") + 100.0)
    bias = unit.map_decoder_bias().numpy().reshape(6, 6)
    # window 0 at (0, 0) and window 1 at (0, 3), 3 x 3 each, row-major slots
    np.testing.assert_array_equal(bias[:3, :3].ravel(), np.arange(9) + 100.0)
    np.testing.assert_array_equal(bias[:3, 3:].ravel(), np.arange(9, 18) + 100.0)
    np.testing.assert_array_equal(bias[3:], unit.retained_decoder_bias.numpy().reshape(6, 6)[3:])
