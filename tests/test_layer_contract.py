"""Self-tests of the layer-contract helper (tests/layer_contract.py).

The helper must pass correct layers (Keras' own Dense and Embedding, a small registered
custom layer) and FAIL layers that break one part of the contract: a helper that cannot
fail is a defect.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from layer_contract import (
    CHECKS,
    LayerContract,
    assert_callback_config,
    assert_regularizer_contract,
    layer_contract_test,
    logical_cpu_problem,
    run_layer_contract,
)

PACKAGE = "tfemergent_test"


# --------------------------------------------------------------------------- a good layer


@keras.saving.register_keras_serializable(package=PACKAGE)
class ScaledDense(keras.layers.Layer):
    """``scale * tanh(dropout(x) @ kernel + bias)``: a small, correct layer."""

    def __init__(self, units, scale=1.0, dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(
                f"Argument `units` must be an integer >= 1. Received: units={units!r}"
            )
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0:
            raise ValueError(f"Argument `scale` must be a number > 0. Received: scale={scale!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(
                f"Argument `dropout` must be in [0, 1). Received: dropout={dropout!r}"
            )
        self.units = units
        self.scale = float(scale)
        self.dropout = float(dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if input_shape[-1] is None or input_shape[-1] < 2:
            raise ValueError(
                "ScaledDense needs at least 2 input features. "
                f"Received: input_shape={input_shape}"
            )
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")

    def call(self, inputs, training=None):
        if training and self.dropout:
            inputs = keras.random.dropout(inputs, self.dropout, seed=self.seed_generator)
        return self.scale * keras.ops.tanh(keras.ops.matmul(inputs, self.kernel) + self.bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "scale": self.scale,
            "dropout": self.dropout,
            "seed": self.seed,
        }


GOOD_KWARGS = {"units": 3, "scale": 2.0, "dropout": 0.25, "seed": 7}
INVALID_KWARGS = [
    ({"units": 0}, "units"),
    ({"units": 2.5}, "units"),
    ({"scale": -1.0}, "scale"),
    ({"dropout": 1.0}, "dropout"),
]

# One pytest test per check: test_dense_contract[call], [config], ...
test_dense_contract = layer_contract_test(
    keras.layers.Dense,
    {"units": 3, "activation": "tanh"},
    (5,),
    expected_output_shape=(3,),
    registered_package=None,
    # Dense stores lora_* only when set and drops activity_regularizer (Keras 3.15).
    config_exclude=("lora_rank", "lora_alpha", "activity_regularizer"),
    invalid_kwargs=[({"units": 0}, "units")],
)

test_scaled_dense_contract = layer_contract_test(
    ScaledDense,
    GOOD_KWARGS,
    (2, 5),  # rank-3 batches: the regression head flattens any output shape
    expected_output_shape=(2, 3),
    registered_package=PACKAGE,
    invalid_kwargs=INVALID_KWARGS,
)


def test_run_layer_contract_reports_every_check(tmp_path):
    results = run_layer_contract(
        keras.layers.Embedding,
        {"input_dim": 10, "output_dim": 3},
        (4,),
        input_dtype="int32",
        expected_output_shape=(4, 3),
        registered_package=None,
        config_exclude=("embeddings_constraint", "lora_rank", "lora_alpha", "weights",
                        "quantization_config", "sparse", "input_length"),
        checks=("call", "config", "models", "saving"),
        tmp_path=tmp_path,
    )
    assert results == {
        "call": "passed",
        "config": "passed",
        "models": "passed",
        "saving": "passed",
    }


def test_identity_fit_target(tmp_path):
    results = run_layer_contract(
        ScaledDense,
        {"units": 4},
        (6,),
        registered_package=PACKAGE,
        fit_target="identity",
        checks=("models", "saving"),
        tmp_path=tmp_path,
    )
    assert set(results.values()) == {"passed"}


def test_conftest_split_the_cpu_into_two_logical_devices():
    problem = logical_cpu_problem()
    if problem is not None:
        pytest.skip(problem)
    assert len(tf.config.list_logical_devices("CPU")) == 2


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="Received: fit_target="):
        LayerContract(ScaledDense, GOOD_KWARGS, (5,), fit_target="classification")
    with pytest.raises(ValueError, match="Received: batch_size=3"):
        LayerContract(ScaledDense, GOOD_KWARGS, (5,), batch_size=3)
    with pytest.raises(ValueError, match="Received: check="):
        LayerContract(ScaledDense, GOOD_KWARGS, (5,)).run_check("everything")


# --------------------------------------------------------------------------- broken layers
# Each one breaks one clause of the contract; the matching check must fail.


class UnregisteredDense(ScaledDense):
    """Correct, but not registered (subclasses are not registered by their parent)."""


@keras.saving.register_keras_serializable(package=PACKAGE)
class ForgetfulDense(ScaledDense):
    """get_config forgets `scale`."""

    def get_config(self):
        config = super().get_config()
        del config["scale"]
        return config


@keras.saving.register_keras_serializable(package=PACKAGE)
class NumpyConfigDense(ScaledDense):
    """get_config stores a numpy scalar (not JSON-serialisable)."""

    def get_config(self):
        return {**super().get_config(), "scale": np.float32(self.scale)}


@keras.saving.register_keras_serializable(package=PACKAGE)
class HiddenStateDense(ScaledDense):
    """Adds an offset drawn in __init__ that is neither a weight nor in the config."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offset = float(np.random.standard_normal())  # seeded by set_random_seed

    def call(self, inputs, training=None):
        return super().call(inputs, training=training) + self.offset


@keras.saving.register_keras_serializable(package=PACKAGE)
class NondeterministicDense(ScaledDense):
    """Initialises its kernel from an unseeded numpy generator."""

    def build(self, input_shape):
        shape = (input_shape[-1], self.units)
        self.kernel = self.add_weight(
            shape=shape,
            initializer=lambda shape, dtype=None: np.random.default_rng().standard_normal(
                shape
            ).astype("float32"),
            name="kernel",
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")


@keras.saving.register_keras_serializable(package=PACKAGE)
class FrozenDense(ScaledDense):
    """No gradient reaches the kernel, although it is trainable."""

    def call(self, inputs, training=None):
        kernel = keras.ops.stop_gradient(self.kernel)
        return self.scale * keras.ops.tanh(keras.ops.matmul(inputs, kernel) + self.bias)


@keras.saving.register_keras_serializable(package=PACKAGE)
class NanDense(ScaledDense):
    def call(self, inputs, training=None):
        return super().call(inputs, training=training) * np.nan


@keras.saving.register_keras_serializable(package=PACKAGE)
class WrongShapeDense(ScaledDense):
    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units + 1,)


@keras.saving.register_keras_serializable(package=PACKAGE)
class NumpyFunctionDense(ScaledDense):
    """Runs Python inside the graph: XLA cannot compile it."""

    def call(self, inputs, training=None):
        outputs = super().call(inputs, training=training)
        doubled = tf.numpy_function(lambda x: x * 2, [outputs], tf.float32, stateful=False)
        return tf.ensure_shape(doubled, outputs.shape)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DeclaredNoJitDense(NumpyFunctionDense):
    """Same, but tells Keras it cannot be compiled with XLA."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.supports_jit = False


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchStatDense(ScaledDense):
    """Stores the last batch mean in a non-trainable variable (``aggregation`` option)."""

    def __init__(self, *args, aggregation="none", **kwargs):
        super().__init__(*args, **kwargs)
        self.aggregation = aggregation

    def build(self, input_shape):
        super().build(input_shape)
        self.batch_mean = self.add_weight(
            shape=(),
            initializer="zeros",
            trainable=False,
            aggregation=self.aggregation,
            name="batch_mean",
        )

    def call(self, inputs, training=None):
        if training:
            self.batch_mean.assign(keras.ops.mean(inputs))
        return super().call(inputs, training=training)

    def get_config(self):
        return {**super().get_config(), "aggregation": self.aggregation}


@keras.saving.register_keras_serializable(package=PACKAGE)
class LaxDense(ScaledDense):
    """Validates nothing, and words its one error badly."""

    def __init__(self, units, scale=1.0, **kwargs):
        keras.layers.Layer.__init__(self, **kwargs)
        if units == 0:
            raise ValueError("units is zero")  # no "Received:"
        self.units, self.scale, self.dropout, self.seed = units, scale, 0.0, None
        self.seed_generator = keras.random.SeedGenerator(None)

    def get_config(self):
        return {**keras.layers.Layer.get_config(self), "units": self.units, "scale": self.scale}


def _contract(layer_cls, **options):
    options.setdefault("registered_package", PACKAGE)
    kwargs = options.pop("init_kwargs", GOOD_KWARGS)
    return LayerContract(layer_cls, kwargs, (5,), **options)


@pytest.mark.parametrize(
    "layer_cls, check, message",
    [
        (UnregisteredDense, "config", "not registered under package 'tfemergent_test'"),
        (ForgetfulDense, "config", "missing __init__ arguments ['scale']"),
        (NumpyConfigDense, "config", "not JSON-serialisable"),
        (HiddenStateDense, "config", "computes different outputs"),
        (HiddenStateDense, "saving", ".keras save/load changes the model outputs"),
        (NondeterministicDense, "determinism", "different weights"),
        (FrozenDense, "models", "did not change"),
        (NanDense, "call", "not finite"),
        (NanDense, "models", "not finite"),
        (WrongShapeDense, "call", "compute_output_shape gives (None, 4)"),
        (NumpyFunctionDense, "jit", "jit_compile=True"),
        (BatchStatDense, "distribution", "replicas of weight"),
    ],
)
@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")
def test_broken_layer_fails_its_check(layer_cls, check, message, tmp_path):
    if check == "distribution" and logical_cpu_problem() is not None:
        pytest.skip(logical_cpu_problem())
    contract = _contract(layer_cls)
    with pytest.raises(AssertionError) as info:
        contract.run_check(check, tmp_path=tmp_path)
    assert message in str(info.value)


def test_wrong_expected_output_shape_fails():
    with pytest.raises(AssertionError, match=r"output shape \(without batch\) is \(3,\)"):
        _contract(ScaledDense, expected_output_shape=(4,)).check_call()


def test_unregistered_layer_passes_when_registration_is_not_required():
    # Unregistered classes need custom_objects to be deserialised.
    _contract(
        UnregisteredDense,
        registered_package=None,
        custom_objects={"UnregisteredDense": UnregisteredDense},
    ).check_config()


def test_correctly_aggregated_state_passes_distribution():
    if logical_cpu_problem() is not None:
        pytest.skip(logical_cpu_problem())
    _contract(BatchStatDense, init_kwargs={**GOOD_KWARGS, "aggregation": "mean"}).check_distribution()


@pytest.mark.filterwarnings("ignore:Model doesn't support `jit_compile=True`:UserWarning")
def test_supports_jit_false_requires_layer_attribute():
    with pytest.raises(AssertionError, match="self.supports_jit = False"):
        _contract(NumpyFunctionDense, supports_jit=False).check_jit()
    with pytest.raises(pytest.skip.Exception, match="does not support XLA"):
        _contract(DeclaredNoJitDense, supports_jit=False).check_jit()


def test_invalid_argument_table_failures_are_all_reported():
    contract = _contract(
        LaxDense,
        init_kwargs={"units": 3},
        invalid_kwargs=[
            ({"units": 0}, "units"),  # ValueError without "Received:"
            ({"scale": "big"}, "scale"),  # TypeError at call, not ValueError
            ({"units": 4}, "units"),  # valid: nothing raised
        ],
    )
    with pytest.raises(AssertionError) as info:
        contract.check_invalid_arguments()
    message = str(info.value)
    assert "3 of 3 rows failed" in message
    assert "must contain 'Received:'" in message
    assert "raised TypeError instead of ValueError" in message
    assert "no ValueError at __init__ or at build/call" in message


def test_invalid_argument_raised_at_build_is_accepted():
    # ScaledDense rejects 1-feature inputs only when it is built.
    contract = LayerContract(
        ScaledDense,
        GOOD_KWARGS,
        (1,),
        registered_package=PACKAGE,
        invalid_kwargs=[({}, "input_shape"), ({"units": -3}, "units")],
    )
    contract.check_invalid_arguments()


def test_run_collects_all_failed_checks(tmp_path):
    with pytest.raises(AssertionError) as info:
        run_layer_contract(
            NanDense,
            GOOD_KWARGS,
            (5,),
            registered_package=PACKAGE,
            checks=("call", "config", "models"),
            tmp_path=tmp_path,
        )
    message = str(info.value)
    assert "fails the layer contract in 2 check(s)" in message
    assert "[call]" in message and "[models]" in message and "[config]" not in message


def test_check_names():
    assert CHECKS == (
        "call",
        "config",
        "models",
        "saving",
        "distribution",
        "jit",
        "determinism",
        "invalid_arguments",
    )


# --------------------------------------------------------------------------- regularizers


@keras.saving.register_keras_serializable(package=PACKAGE)
class AbsSum(keras.regularizers.Regularizer):
    def __init__(self, strength=0.01):
        if strength < 0:
            raise ValueError(f"`strength` must be >= 0. Received: strength={strength}")
        self.strength = float(strength)

    def __call__(self, weights):
        return self.strength * keras.ops.sum(keras.ops.abs(weights))

    def get_config(self):
        return {"strength": self.strength}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ColumnAbsSum(AbsSum):
    """Returns one value per column instead of a scalar."""

    def __call__(self, weights):
        return self.strength * keras.ops.sum(keras.ops.abs(weights), axis=0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class ForgetfulAbsSum(AbsSum):
    def get_config(self):
        return {}


def test_regularizer_contract_passes_good_regularizers():
    assert_regularizer_contract(keras.regularizers.L2(0.01), registered_package=None)
    assert_regularizer_contract(AbsSum(0.5), registered_package=PACKAGE)
    assert_regularizer_contract(AbsSum(0.5), weight_shape=(2, 3, 4), registered_package=PACKAGE)


@pytest.mark.parametrize(
    "regularizer, message",
    [
        (ColumnAbsSum(0.5), "must return a float scalar"),
        (ForgetfulAbsSum(0.5), "missing __init__ arguments ['strength']"),
        (AbsSum(0.5), "not registered under package 'tfemergent'"),
    ],
)
def test_regularizer_contract_fails_broken_regularizers(regularizer, message):
    package = "tfemergent" if type(regularizer) is AbsSum else PACKAGE
    with pytest.raises(AssertionError) as info:
        assert_regularizer_contract(regularizer, registered_package=package)
    assert message in str(info.value)


# --------------------------------------------------------------------------- callbacks


@keras.saving.register_keras_serializable(package=PACKAGE)
class EveryNBatches(keras.callbacks.Callback):
    def __init__(self, every=2, tag="structure"):
        super().__init__()
        self.every = every
        self.tag = tag

    def get_config(self):
        return {"every": self.every, "tag": self.tag}


@keras.saving.register_keras_serializable(package=PACKAGE)
class ForgetfulCallback(EveryNBatches):
    def get_config(self):
        return {"every": self.every}


def test_callback_config():
    assert_callback_config(EveryNBatches(every=5, tag="x"), registered_package=PACKAGE)
    with pytest.raises(AssertionError, match=r"missing __init__ arguments \['tag'\]"):
        assert_callback_config(ForgetfulCallback(), registered_package=PACKAGE)
    with pytest.raises(AssertionError, match="has no get_config"):
        assert_callback_config(keras.callbacks.History(), registered_package=None)


def test_late_cpu_split_is_reported_not_crashed(tmp_path):
    """If TensorFlow ran an op before conftest, the split fails and the checks skip."""
    import os
    import subprocess
    import sys

    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import layer_contract, pytest, tensorflow as tf\n"
        "tf.constant(1.0) + 1.0\n"
        "print('PROBLEM:', layer_contract.configure_logical_cpus())\n"
        "try:\n"
        "    layer_contract.mirrored_strategy()\n"
        "except pytest.skip.Exception as skip:\n"
        "    print('SKIPPED:', skip.msg)\n"
    )
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    result = subprocess.run(
        [sys.executable, "-c", script, tests_dir],
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "PROBLEM: TensorFlow was initialised before tests/conftest.py" in result.stdout
    assert "SKIPPED: MirroredStrategy needs 2 logical CPUs" in result.stdout


# --------------------------------------------------------------------------- tfemergent layers
# Neuron hierarchical networks: the masked convolution and the add-on neurons.

from tfemergent.layers import AddOnConv2D, MaskedConv2D  # noqa: E402

test_masked_conv2d_layer_contract = layer_contract_test(
    MaskedConv2D,
    {"filters": 3, "kernel_size": 3, "activation": "relu", "bias_initializer": "ones"},
    (5, 5, 2),
    expected_output_shape=(5, 5, 3),
    invalid_kwargs=[
        ({"filters": 0}, "filters"),
        ({"filters": 2.5}, "filters"),
        ({"kernel_size": 0}, "kernel_size"),
        ({"kernel_size": (3, 3)}, "kernel_size"),
        ({"activation": "no_such_activation"}, "activation"),
        ({"use_bias": 1}, "use_bias"),
        ({"kernel_initializer": "no_such_initializer"}, "kernel_initializer"),
    ],
)

test_addon_conv2d_layer_contract = layer_contract_test(
    AddOnConv2D,
    {"filters": 3, "kernel_size": 5, "connection_density": 0.5, "use_bias": True, "seed": 4},
    (5, 5, 2),
    expected_output_shape=(5, 5, 3),
    invalid_kwargs=[
        ({"filters": 0}, "filters"),
        ({"kernel_size": 1}, "kernel_size=1"),
        ({"kernel_size": 4}, "kernel_size=4"),
        ({"kernel_size": 3.0}, "kernel_size=3.0"),
        ({"connection_density": 0.0}, "connection_density"),
        ({"connection_density": 1.5}, "connection_density"),
        ({"seed": -1}, "seed"),
        ({"bias_regularizer": "no_such_regularizer"}, "bias_regularizer"),
    ],
)
