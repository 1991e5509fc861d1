"""`tfemergent.utils.keras_multi_worker`: the Keras patches for multi-worker ``fit``.

The two-worker runs in tests/distribute exercise the patches for real; here: the import
leaves Keras alone, `patch_if_multi_worker` patches only under a
``MultiWorkerMirroredStrategy``, the patches are idempotent, reversible, and inert
without a multi-worker strategy.
"""

import os
import subprocess
import sys

import keras
import numpy as np
from keras.src.backend.tensorflow import trainer as trainer_module

from tfemergent.utils import keras_multi_worker


def test_patch_is_idempotent_and_unpatch_restores():
    original = trainer_module.reduce_per_replica
    with keras_multi_worker.keras_without_patches():
        assert not keras_multi_worker.is_patched()
        original = trainer_module.reduce_per_replica
        assert original.__module__ == trainer_module.__name__
        assert keras_multi_worker.patch_keras_multi_worker_fit() is True
        patched = trainer_module.reduce_per_replica
        assert patched is not original
        assert keras_multi_worker.patch_keras_multi_worker_fit() is True  # idempotent
        assert trainer_module.reduce_per_replica is patched
        keras_multi_worker.unpatch_keras_multi_worker_fit()
        assert not keras_multi_worker.is_patched()
        assert trainer_module.reduce_per_replica is original


def test_no_strategy_does_not_patch():
    with keras_multi_worker.keras_without_patches():
        assert keras_multi_worker.patch_if_multi_worker() is False
        assert not keras_multi_worker.is_patched()


_STRATEGY_SCRIPT = """
import os
import tensorflow as tf
import tfemergent
from tfemergent.utils import keras_multi_worker as k
print("import", k.is_patched())
with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
    print("one_device", k.patch_if_multi_worker())
strategy = tf.distribute.MultiWorkerMirroredStrategy()
print("outside", k.patch_if_multi_worker())
with strategy.scope():
    print("inside", k.patch_if_multi_worker())
print("after", k.is_patched())
"""


def _run(script, **environment):
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", **environment)
    environment.pop("TF_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return dict(line.split() for line in result.stdout.strip().splitlines())


def test_patched_only_under_a_multi_worker_strategy_scope():
    """A (single-worker) MWMS in scope patches Keras; no strategy, or another one, does not."""
    lines = _run(_STRATEGY_SCRIPT)
    assert lines == {
        "import": "False",
        "one_device": "False",
        "outside": "False",
        "inside": "True",
        "after": "True",
    }


def test_environment_variable_keeps_the_layers_from_patching():
    lines = _run(_STRATEGY_SCRIPT, TFEMERGENT_PATCH_KERAS="0")
    assert lines["inside"] == "False" and lines["after"] == "False"


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

    with keras_multi_worker.keras_without_patches():
        plain_loss, plain_weights = train()
        keras_multi_worker.patch_keras_multi_worker_fit()
        assert keras_multi_worker.is_patched()
        patched_loss, patched_weights = train()
        keras_multi_worker.unpatch_keras_multi_worker_fit()
    np.testing.assert_array_equal(patched_loss, plain_loss)
    for a, b in zip(patched_weights, plain_weights):
        np.testing.assert_array_equal(a, b)
