"""`tfemergent.utils.keras_multi_worker`: the Keras patches for multi-worker ``fit``.

The two-worker runs in tests/distribute exercise the patches for real; here: they are
applied by the import, idempotent, reversible, and inert without a multi-worker strategy.
"""

import os
import subprocess
import sys

import keras
import numpy as np
from keras.src.backend.tensorflow import trainer as trainer_module

from tfemergent.utils import keras_multi_worker


def test_import_patches_and_unpatch_restores():
    assert keras_multi_worker.is_patched()
    patched = trainer_module.reduce_per_replica
    assert keras_multi_worker.patch_keras_multi_worker_fit() is True  # idempotent
    assert trainer_module.reduce_per_replica is patched
    with keras_multi_worker.keras_without_patches():
        assert not keras_multi_worker.is_patched()
        original = trainer_module.reduce_per_replica
        assert original is not patched and original.__module__ == trainer_module.__name__
    assert keras_multi_worker.is_patched()  # patched again on exit
    assert trainer_module.reduce_per_replica is not original


def test_environment_variable_leaves_keras_untouched():
    script = (
        "import tfemergent\n"
        "from tfemergent.utils import keras_multi_worker as k\n"
        "print(k.is_patched())\n"
    )
    for value, expected in (("0", "False"), ("1", "True")):
        environment = dict(os.environ, TFEMERGENT_PATCH_KERAS=value, TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=environment,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip().splitlines()[-1] == expected


def test_fit_without_a_strategy_is_unchanged():
    """The patched functions fall through to Keras's own: same losses, same weights."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = rng.normal(size=(32, 1)).astype("float32")

    def train():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(0.1), "mse")
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        return history.history["loss"], model.get_weights()

    patched_loss, patched_weights = train()
    with keras_multi_worker.keras_without_patches():
        plain_loss, plain_weights = train()
    np.testing.assert_array_equal(patched_loss, plain_loss)
    for a, b in zip(patched_weights, plain_weights):
        np.testing.assert_array_equal(a, b)
