import keras
import numpy as np
import pytest
from layer_contract import assert_callback_config

from tfemergent.callbacks import ProximalL1Step
from tfemergent.layers import RecursiveURNLayer

KERNEL = np.array(
    [
        [0.0, 0.3, -0.3, 0.05],
        [-0.05, 1.0, -1.0, 0.0],
        [0.1, -0.1, 0.0, 2.0],
        [0.0, 0.0, 0.25, -0.25],
    ],
    "float32",
)
BIAS = np.array([0.3, -0.05, 0.0, 1.0], "float32")


def _model(learning_rate=0.5):
    layer = RecursiveURNLayer(4, 2, input_dim=1, output_dim=1, name="urn")
    model = keras.Sequential([keras.Input((1,)), layer])
    model.compile(keras.optimizers.SGD(learning_rate), "mse")
    layer.set_weights([KERNEL, BIAS])
    return model, layer


def _callback(model, **kwargs):
    callback = ProximalL1Step(**kwargs)
    callback.set_model(model)
    return callback


def test_soft_threshold_exact_values():
    model, layer = _model(learning_rate=0.5)
    callback = _callback(model, l1=0.2)  # lambda = 0.2 * 0.5 = 0.1
    assert callback.current_learning_rate() == pytest.approx(0.5)
    callback.apply()
    expected = np.array(
        [
            [0.0, 0.2, -0.2, 0.0],
            [0.0, 0.9, -0.9, 0.0],
            [0.0, 0.0, 0.0, 1.9],
            [0.0, 0.0, 0.15, -0.15],
        ],
        "float32",
    )
    np.testing.assert_allclose(layer.kernel.numpy(), expected, atol=1e-7)
    np.testing.assert_array_equal(layer.kernel.numpy() == 0, expected == 0)  # exact zeros
    np.testing.assert_array_equal(layer.bias.numpy(), BIAS)  # default: kernel only


def test_bias_selected_and_hard_threshold():
    model, layer = _model(learning_rate=1.0)
    _callback(model, l1=0.0, weights=["kernel", "bias"], threshold=0.2).apply()
    np.testing.assert_array_equal(layer.kernel.numpy(), np.where(np.abs(KERNEL) < 0.2, 0, KERNEL))
    np.testing.assert_array_equal(layer.bias.numpy(), np.array([0.3, 0.0, 0.0, 1.0], "float32"))


def test_zeros_stay_zero_during_fit_and_every():
    model, layer = _model(learning_rate=0.01)
    kernel = KERNEL.copy()
    kernel[:, 0] = 0.0
    layer.set_weights([kernel, BIAS])
    callback = ProximalL1Step(l1=100.0, every=2)  # lambda = 100 * 0.01 = 1.0
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, callbacks=[callback])
    # 2 batches, every=2: applied once, after the second SGD step. SGD moves the
    # weights by much less than 0.1, so every |w| < 0.9 is shrunk to exactly zero, the
    # column that was zero included; 2.0 survives as about 1.0.
    after = layer.kernel.numpy()
    assert np.all(after[np.abs(KERNEL) < 0.9] == 0.0)
    assert np.all(after[:, 0] == 0.0)
    assert after[2, 3] == pytest.approx(1.0, abs=0.1)


def test_every_counts_batches():
    model, layer = _model(learning_rate=0.0)  # SGD with lr 0 keeps weights; lambda = 0
    callback = ProximalL1Step(l1=1.0, every=3, threshold=0.2)
    x, y = np.ones((8, 1), "float32"), np.zeros((8, 1), "float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[callback])  # 2 batches
    np.testing.assert_array_equal(layer.kernel.numpy(), KERNEL)
    model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[callback])  # 4 batches
    np.testing.assert_array_equal(layer.kernel.numpy(), np.where(np.abs(KERNEL) < 0.2, 0, KERNEL))


def test_learning_rate_schedule_is_read():
    layer = RecursiveURNLayer(4, 2, input_dim=1, output_dim=1)
    model = keras.Sequential([keras.Input((1,)), layer])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.5, decay_steps=1, decay_rate=0.5)
    model.compile(keras.optimizers.SGD(schedule), "mse")
    callback = _callback(model, l1=1.0)
    assert callback.current_learning_rate() == pytest.approx(0.5)


def test_config():
    assert_callback_config(ProximalL1Step(1e-3, every=2, weights=["kernel", "bias"]))
    assert_callback_config(ProximalL1Step(0.0, threshold=1e-4))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"l1": -1.0}, "l1"),
        ({"l1": 1.0, "every": 0}, "every"),
        ({"l1": 1.0, "weights": "positions"}, "weights"),
        ({"l1": 1.0, "weights": []}, "weights"),
        ({"l1": 1.0, "weights": ["kernel", "kernel"]}, "weights"),
        ({"l1": 1.0, "threshold": -0.1}, "threshold"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"Received: {match}"):
        ProximalL1Step(**kwargs)
