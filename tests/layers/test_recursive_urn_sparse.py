"""RecursiveURNLayer with the sparse recurrent product (`use_sparse_kernel`)."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfemergent.layers import RecursiveURNLayer

NUM_NEURONS, INPUT_DIM, OUTPUT_DIM = 24, 5, 2


def sparse_layer_pair(residual="output", zeros=0.9, seed=0):
    """(layer, x, dense kernel): a built layer whose kernel has ``zeros`` of its entries 0."""
    rng = np.random.default_rng(seed)
    layer = RecursiveURNLayer(
        NUM_NEURONS, 3, INPUT_DIM, OUTPUT_DIM, residual=residual, seed=seed
    )
    layer.build((None, INPUT_DIM))
    kernel = rng.normal(size=(NUM_NEURONS, NUM_NEURONS)).astype("float32") * 0.5
    kernel[rng.random(kernel.shape) < zeros] = 0.0
    bias = rng.normal(size=(NUM_NEURONS,)).astype("float32") * 0.1
    layer.set_weights([kernel, bias])
    x = rng.normal(size=(6, INPUT_DIM)).astype("float32")
    return layer, x, kernel


@pytest.mark.parametrize("residual", ["none", "output", "input"])
def test_sparse_mode_gives_the_dense_outputs(residual):
    layer, x, kernel = sparse_layer_pair(residual)
    dense_states = layer.compute_states(x).numpy()
    dense_outputs = layer(x).numpy()
    num_connections = layer.use_sparse_kernel()
    assert layer.is_sparse and num_connections == np.count_nonzero(kernel)
    assert layer.kernel_values.shape == (num_connections,)
    assert layer.kernel_indices.shape == (num_connections, 2)
    assert layer.kernel_indices.dtype == "int64" and not layer.kernel_indices.trainable
    assert [v.name for v in layer.trainable_weights] == ["bias", "kernel_values"]
    np.testing.assert_allclose(layer.compute_states(x).numpy(), dense_states, atol=1e-5)
    np.testing.assert_allclose(layer(x).numpy(), dense_outputs, atol=1e-5)
    np.testing.assert_array_equal(layer.dense_kernel().numpy(), kernel)


def test_threshold_drops_small_weights():
    layer, x, kernel = sparse_layer_pair(zeros=0.5)
    kept = np.abs(kernel) > 0.3
    assert layer.use_sparse_kernel(threshold=0.3) == kept.sum()
    expected = np.where(kept, kernel, 0.0)
    np.testing.assert_array_equal(layer.kernel.numpy(), expected)
    config = layer.get_config()
    assert config.pop("num_sparse_connections") == kept.sum()
    twin = RecursiveURNLayer.from_config(config)  # dense twin
    twin.build((None, INPUT_DIM))
    twin.set_weights([expected, layer.bias.numpy()])
    np.testing.assert_allclose(layer(x).numpy(), twin(x).numpy(), atol=1e-5)
    sparse_twin = RecursiveURNLayer.from_config(layer.get_config())
    sparse_twin.build((None, INPUT_DIM))
    assert sparse_twin.is_sparse
    sparse_twin.set_weights(layer.get_weights())
    np.testing.assert_allclose(layer(x).numpy(), sparse_twin(x).numpy(), atol=1e-6)


def test_trains_only_surviving_synapses_and_switches_back():
    layer, x, kernel = sparse_layer_pair("output")
    model = keras.Sequential([keras.Input((INPUT_DIM,)), layer])
    layer.use_sparse_kernel()
    model.compile(keras.optimizers.Adam(0.05), "mse")
    frozen_kernel = layer.kernel.numpy()
    values_before = layer.kernel_values.numpy()
    history = model.fit(x, np.ones((6, OUTPUT_DIM), "float32"), epochs=3, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.allclose(layer.kernel_values.numpy(), values_before)
    np.testing.assert_array_equal(layer.kernel.numpy(), frozen_kernel)  # frozen while sparse
    trained = layer.dense_kernel().numpy()
    np.testing.assert_array_equal(trained[kernel == 0.0], 0.0)  # pruned synapses stay zero
    sparse_outputs = model.predict(x, verbose=0)

    layer.use_dense_kernel()
    assert not layer.is_sparse and layer.kernel.trainable
    assert "num_sparse_connections" not in layer.get_config()
    assert not hasattr(layer, "kernel_values") and len(layer.weights) == 2
    np.testing.assert_array_equal(layer.kernel.numpy(), trained)
    model.compile(keras.optimizers.Adam(0.05), "mse")
    np.testing.assert_allclose(model.predict(x, verbose=0), sparse_outputs, atol=1e-5)
    model.fit(x, np.ones((6, OUTPUT_DIM), "float32"), verbose=0)
    assert np.count_nonzero(layer.kernel.numpy()[kernel == 0.0]) > 0  # dense training again


def test_kernel_regularizer_moves_to_the_values():
    layer, x, kernel = sparse_layer_pair()
    layer.kernel_regularizer = None  # set before the sparse variables are created
    regularized = RecursiveURNLayer(
        NUM_NEURONS, 3, INPUT_DIM, OUTPUT_DIM, kernel_regularizer=keras.regularizers.L1(0.1)
    )
    regularized.build((None, INPUT_DIM))
    regularized.set_weights(layer.get_weights())
    regularized(x)
    expected = 0.1 * np.abs(kernel).sum()
    assert float(sum(regularized.losses)) == pytest.approx(expected, rel=1e-5)
    regularized.use_sparse_kernel()
    regularized(x)
    assert len(regularized.losses) == 1  # the frozen kernel no longer counts
    assert float(sum(regularized.losses)) == pytest.approx(expected, rel=1e-5)


def test_jit_compile_falls_back_and_matches():
    layer, x, _ = sparse_layer_pair("input")
    expected = layer(x).numpy()
    layer.use_sparse_kernel()
    compiled = tf.function(lambda x: layer(x), jit_compile=True)
    np.testing.assert_allclose(compiled(x).numpy(), expected, atol=1e-5)


def test_sparse_model_saves_and_loads(tmp_path):
    layer, x, _ = sparse_layer_pair()
    model = keras.Sequential([keras.Input((INPUT_DIM,)), layer])
    layer.use_sparse_kernel()
    model.compile(keras.optimizers.Adam(0.05), "mse")
    model.fit(x, np.ones((6, OUTPUT_DIM), "float32"), verbose=0)
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "sparse.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    restored_layer = restored.layers[0]
    assert restored_layer.is_sparse
    np.testing.assert_array_equal(
        restored_layer.kernel_values.numpy(), layer.kernel_values.numpy()
    )
    np.testing.assert_allclose(restored.predict(x, verbose=0), expected, atol=1e-6)
    weights_path = str(tmp_path / "sparse.weights.h5")
    model.save_weights(weights_path)
    for config in (layer.get_config(), {**layer.get_config(), "num_sparse_connections": None}):
        fresh = keras.Sequential(
            [keras.Input((INPUT_DIM,)), RecursiveURNLayer.from_config(config)]
        )
        fresh.load_weights(weights_path)  # a dense-config layer becomes sparse
        assert fresh.layers[0].is_sparse
        np.testing.assert_allclose(fresh.predict(x, verbose=0), expected, atol=1e-6)
    export_path = str(tmp_path / "exported")
    model.export(export_path, verbose=False)
    reloaded = tf.saved_model.load(export_path)
    np.testing.assert_allclose(reloaded.serve(x).numpy(), expected, atol=1e-5)


def test_use_sparse_kernel_errors():
    layer = RecursiveURNLayer(NUM_NEURONS, 2, INPUT_DIM, OUTPUT_DIM)
    with pytest.raises(ValueError, match="Received: layer"):
        layer.use_sparse_kernel()
    layer.build((None, INPUT_DIM))
    for threshold in (-1.0, "big"):
        with pytest.raises(ValueError, match="Received: threshold="):
            layer.use_sparse_kernel(threshold)
    layer.use_dense_kernel()  # no-op on a dense layer
    assert not layer.is_sparse


def test_resparsify_with_a_higher_threshold():
    layer, x, kernel = sparse_layer_pair(zeros=0.5)
    first = layer.use_sparse_kernel()
    second = layer.use_sparse_kernel(threshold=0.3)
    assert second == (np.abs(kernel) > 0.3).sum() < first
    assert layer.kernel_values.shape == (second,) and len(layer.weights) == 5
    np.testing.assert_array_equal(
        layer.dense_kernel().numpy(), np.where(np.abs(kernel) > 0.3, kernel, 0.0)
    )


def test_supports_jit_is_false_only_while_the_cpp_op_is_used():
    """Keras then compiles the step without XLA, so the sparse product runs the op."""
    from tfemergent.kernels import custom_ops

    saved = dict(custom_ops._state)
    try:
        layer, x, _ = sparse_layer_pair()
        model = keras.Sequential([keras.Input((INPUT_DIM,)), layer])
        assert layer.supports_jit
        # Not jit_compile=True here: TF's attribute tracking skips the property setter
        # when the value does not change, so a second compile(jit_compile=True) would
        # keep True without asking the layers (see RecursiveURNLayer.supports_jit).
        model.compile(keras.optimizers.SGD(0.1), loss="mse", jit_compile=False)
        layer.use_sparse_kernel()
        custom_ops.enable_custom_ops()
        expected = not custom_ops.will_use_custom_ops("float32")  # False with the library
        assert layer.supports_jit is expected
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            model.compile(keras.optimizers.SGD(0.1), loss="mse", jit_compile=True)
        assert model.jit_compile is expected
        model.fit(x, np.zeros((x.shape[0], OUTPUT_DIM), "float32"), epochs=1, verbose=0)
        custom_ops.disable_custom_ops()  # pure TF: XLA is fine again
        assert layer.supports_jit
        layer.use_dense_kernel()
        custom_ops.enable_custom_ops()
        assert layer.supports_jit
    finally:
        custom_ops._state.update(saved)
