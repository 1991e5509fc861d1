"""The layer contract of DESIGN.md, as one shared test helper.

Every public tfemergent layer is tested with this module. It checks, each check on its
own so that a failure names the broken part of the contract:

* ``call``: the layer builds on a batch, returns finite values of the expected shape, and
  ``compute_output_shape`` / symbolic (``keras.Input``) shapes agree with the real output.
* ``config``: ``get_config`` is JSON-serialisable, names every ``__init__`` argument,
  round-trips through JSON and ``from_config`` to an equal config and a layer that computes
  the same outputs with the same weights; the class is registered under the package
  ("tfemergent>..."); ``keras.saving.serialize_keras_object`` round trip.
* ``models``: works in ``keras.Sequential``, the functional API and a subclassed model under
  ``model.fit``: finite loss and every trainable weight of the layer changes.
* ``saving``: ``.keras`` save/load and ``model.export`` SavedModel reload reproduce the
  model's outputs (atol 1e-5) on inputs that were not used for training.
* ``distribution``: trains under ``tf.distribute.MirroredStrategy`` on two logical CPUs
  (``tests/conftest.py`` splits the CPU); finite loss, every layer weight is mirrored and
  identical on both replicas after training.
* ``jit``: ``compile(jit_compile=True)`` fit + predict works and matches non-XLA predictions
  of the same weights. With ``supports_jit=False`` the layer must make Keras refuse XLA
  (``layer.supports_jit = False``), then the check is skipped.
* ``determinism``: ``keras.utils.set_random_seed`` + build + fit twice in one process gives
  bit-identical weights.
* ``invalid_arguments``: every ``(kwargs_override, expected_substring)`` raises
  ``ValueError`` mentioning "Received:" and the substring, at ``__init__`` or at build.

Three ways to use it::

    from layer_contract import layer_contract_test, run_layer_contract

    # 1. One pytest test per check (preferred: the failing check is in the test id).
    test_spatial_dense_contract = layer_contract_test(
        SpatialDense,
        {"units": 4},
        input_shape=(6,),                 # one sample, without the batch dimension
        expected_output_shape=(4,),
        invalid_kwargs=[({"units": 0}, "units")],
    )
    # -> test_spatial_dense_contract[call], [config], [models], [saving], ...

    # 2. Everything in one call (all checks run; one AssertionError lists the failures).
    def test_contract(tmp_path):
        run_layer_contract(SpatialDense, {"units": 4}, (6,), tmp_path=tmp_path)

    # 3. Single checks.
    LayerContract(SpatialDense, {"units": 4}, (6,)).check_config()

``assert_regularizer_contract`` and ``assert_callback_config`` cover regularizers and
callbacks; ``mirrored_strategy()`` (also a conftest fixture) is the one way tests should
create a ``MirroredStrategy``.
"""

import contextlib
import dataclasses
import inspect
import json
import os
import pathlib
import tempfile
import typing

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

CHECKS = (
    "call",
    "config",
    "models",
    "saving",
    "distribution",
    "jit",
    "determinism",
    "invalid_arguments",
)
MODEL_KINDS = ("sequential", "functional", "subclassed")
FIT_TARGETS = ("regression", "identity")

NUM_LOGICAL_CPUS = 2
# Why the CPU could not be split (None when the split worked); set by
# `configure_logical_cpus`, read by the distribution check.
_logical_cpu_problem = "configure_logical_cpus() was not called (tests/conftest.py does it)"


def configure_logical_cpus(num_devices=NUM_LOGICAL_CPUS):
    """Split the first physical CPU into `num_devices` logical devices.

    Must run before TensorFlow initialises its runtime (before the first op). Called by
    ``tests/conftest.py`` at import time. Returns ``None`` on success or a string that
    explains why the split is not available (then the distribution check skips with it).
    """
    global _logical_cpu_problem
    cpus = tf.config.list_physical_devices("CPU")
    if not cpus:
        _logical_cpu_problem = "TensorFlow lists no physical CPU."
        return _logical_cpu_problem
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices
        )
    except RuntimeError as error:
        # The runtime was already initialised (some code ran a TF op first). The split may
        # still be in place from an earlier call; otherwise it cannot be changed any more.
        if len(tf.config.list_logical_devices("CPU")) >= num_devices:
            _logical_cpu_problem = None
        else:
            _logical_cpu_problem = (
                f"TensorFlow was initialised before tests/conftest.py could split the CPU "
                f"into {num_devices} logical devices ({error}); run pytest so that "
                "conftest.py is imported before any TensorFlow op."
            )
        return _logical_cpu_problem
    _logical_cpu_problem = None
    return None


def mirrored_strategy():
    """A new ``MirroredStrategy`` over the two logical CPUs (skips the test if absent).

    Gradients are reduced with ``ReductionToOneDevice`` instead of the default
    ``CollectiveAllReduce``: with collectives, a second ``MirroredStrategy`` on the same
    devices in one process reuses collective instance keys and fails with "Shape mismatch
    in the collective instance 100" as soon as its gradients have another total size
    (tensorflow/tensorflow#62790), and one aborted collective poisons every later one in the
    process. Layer-side behaviour (mirrored variables, replica context, aggregation, batch
    split) is the same. Tests elsewhere should use this function too rather than a bare
    ``tf.distribute.MirroredStrategy()``.
    """
    problem = logical_cpu_problem()
    if problem is not None:
        pytest.skip(f"MirroredStrategy needs {NUM_LOGICAL_CPUS} logical CPUs: {problem}")
    devices = [device.name for device in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(
        devices[:NUM_LOGICAL_CPUS], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )


def logical_cpu_problem():
    """``None`` when at least two logical CPUs exist, else the reason why not."""
    if len(tf.config.list_logical_devices("CPU")) >= NUM_LOGICAL_CPUS:
        return None
    return _logical_cpu_problem or (
        f"fewer than {NUM_LOGICAL_CPUS} logical CPU devices: "
        f"{tf.config.list_logical_devices('CPU')}"
    )


# --------------------------------------------------------------------------- utilities


@contextlib.contextmanager
def _stage(description):
    """Turn any unexpected exception into an AssertionError that names the stage."""
    try:
        yield
    except AssertionError:
        raise
    except Exception as error:  # noqa: BLE001 - re-raised as a contract failure
        raise AssertionError(
            f"{description} raised {type(error).__name__}: {error}"
        ) from error


def _jsonify(obj, what):
    """``json.loads(json.dumps(obj))``, failing with a readable message."""
    try:
        text = json.dumps(obj)
    except (TypeError, ValueError) as error:
        raise AssertionError(
            f"{what} is not JSON-serialisable ({error}). Store plain Python values "
            f"(int/float/str/bool/list/dict/None) or serialise Keras objects with "
            f"`keras.saving.serialize_keras_object`. Received: {obj!r}"
        ) from error
    return json.loads(text)


def _config_diff(expected, actual):
    keys = sorted(set(expected) | set(actual))
    lines = []
    for key in keys:
        if expected.get(key, "<missing>") != actual.get(key, "<missing>"):
            lines.append(
                f"  {key}: {expected.get(key, '<missing>')!r} != "
                f"{actual.get(key, '<missing>')!r}"
            )
    return "\n".join(lines)


def _as_numpy(values):
    return keras.ops.convert_to_numpy(values)


def _assert_close(actual, expected, atol, what):
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{what}: shape {actual.shape} != expected {expected.shape}")
    if not np.allclose(actual, expected, atol=atol, rtol=0.0, equal_nan=True):
        diff = np.nanmax(np.abs(actual.astype("float64") - expected.astype("float64")))
        raise AssertionError(f"{what}: max abs difference {diff:.3g} > atol {atol}")


def _weight_values(weights):
    return [np.array(_as_numpy(weight)) for weight in weights]


def _assert_weights_changed(layer, before, what):
    after = _weight_values(layer.trainable_weights)
    unchanged = [
        weight.path
        for weight, old, new in zip(layer.trainable_weights, before, after)
        if np.array_equal(old, new)
    ]
    if unchanged:
        raise AssertionError(
            f"{what}: these trainable weights of the layer did not change during "
            f"model.fit: {unchanged}. Either no gradient reaches them (check the call "
            "path) or they should be created with trainable=False."
        )


def _assert_finite_loss(history, what):
    losses = history.history.get("loss", [])
    if not losses or not np.all(np.isfinite(losses)):
        raise AssertionError(f"{what}: training loss is not finite. Received: loss={losses}")


class _SubclassedModel(keras.Model):
    """``head(layer(inputs))`` as a subclassed model (not saved, so not registered)."""

    def __init__(self, layer, head_layers, **kwargs):
        super().__init__(**kwargs)
        self.contract_layer = layer
        self.head_layers = list(head_layers)

    def call(self, inputs):
        outputs = self.contract_layer(inputs)
        for head_layer in self.head_layers:
            outputs = head_layer(outputs)
        return outputs


# --------------------------------------------------------------------------- contract


@dataclasses.dataclass
class LayerContract:
    """The layer contract for one layer configuration.

    Args:
        layer_cls: the layer class.
        init_kwargs: keyword arguments for ``layer_cls(**init_kwargs)``.
        input_shape: shape of ONE sample, without the batch dimension (as in
            ``keras.Input(shape=...)``).
        input_dtype: dtype of the input; integer dtypes draw from ``input_range``.
        expected_output_shape: per-sample output shape (no batch dimension); ``None`` to
            skip the comparison. Entries may be ``None`` (any size).
        invalid_kwargs: table of ``(kwargs_override, expected_substring)``.
        custom_objects: passed to ``from_config``/``load_model`` (normally not needed:
            registered classes are found by name).
        supports_jit: ``False`` for layers that run a C++ op; they must set
            ``self.supports_jit = False`` so Keras refuses ``jit_compile=True``.
        supports_distribution: ``False`` skips the MirroredStrategy check (say why in the
            test).
        fit_target: "regression" (Flatten -> Dense(1) head, mse; any output shape works)
            or "identity" (mse directly on the layer output against random targets).
        registered_package: expected package of ``keras.saving.get_registered_name``;
            ``None`` for built-in Keras layers.
        batch_size, num_batches: size of the random training set.
        seed: seed of the data and of ``keras.utils.set_random_seed``.
        input_range: ``(low, high)`` of integer inputs; ignored for float inputs.
        config_exclude: ``__init__`` arguments allowed to be absent from ``get_config``.
        atol: tolerance of output comparisons.
    """

    layer_cls: type
    init_kwargs: dict
    input_shape: tuple
    input_dtype: str = "float32"
    expected_output_shape: typing.Optional[tuple] = None
    invalid_kwargs: typing.Sequence = ()
    custom_objects: typing.Optional[dict] = None
    supports_jit: bool = True
    supports_distribution: bool = True
    fit_target: str = "regression"
    registered_package: typing.Optional[str] = "tfemergent"
    batch_size: int = 4
    num_batches: int = 2
    seed: int = 1337
    input_range: tuple = (0, 10)
    config_exclude: typing.Sequence = ()
    atol: float = 1e-5

    def __post_init__(self):
        self.init_kwargs = dict(self.init_kwargs)
        self.input_shape = tuple(self.input_shape)
        if self.expected_output_shape is not None:
            self.expected_output_shape = tuple(self.expected_output_shape)
        if self.fit_target not in FIT_TARGETS:
            raise ValueError(
                f"`fit_target` must be one of {FIT_TARGETS}. Received: "
                f"fit_target={self.fit_target!r}"
            )
        if self.batch_size % NUM_LOGICAL_CPUS:
            raise ValueError(
                f"`batch_size` must be divisible by {NUM_LOGICAL_CPUS} (one slice per "
                f"replica). Received: batch_size={self.batch_size}"
            )

    # ------------------------------------------------------------------ building blocks

    @property
    def name(self):
        return self.layer_cls.__name__

    def make_layer(self, **overrides):
        return self.layer_cls(**{**self.init_kwargs, **overrides})

    def make_inputs(self, seed_offset=0, num_samples=None):
        """Seeded random inputs, ``num_batches * batch_size`` samples by default."""
        rng = np.random.default_rng(self.seed + seed_offset)
        num_samples = num_samples or self.batch_size * self.num_batches
        shape = (num_samples,) + self.input_shape
        dtype = np.dtype(self.input_dtype)
        if np.issubdtype(dtype, np.integer):
            return rng.integers(*self.input_range, size=shape).astype(dtype)
        if dtype == np.bool_:
            return rng.random(shape) < 0.5
        return rng.standard_normal(shape).astype(dtype)

    def _head_layers(self):
        if self.fit_target == "regression":
            return [keras.layers.Flatten(), keras.layers.Dense(1, name="contract_head")]
        return []

    def _build_model(self, kind, layer=None):
        """A model around a (new) layer; returns ``(model, layer)``; the model is built."""
        layer = layer if layer is not None else self.make_layer()
        inputs = keras.Input(shape=self.input_shape, dtype=self.input_dtype)
        if kind == "sequential":
            model = keras.Sequential([inputs, layer, *self._head_layers()])
        elif kind == "functional":
            outputs = layer(inputs)
            for head_layer in self._head_layers():
                outputs = head_layer(outputs)
            model = keras.Model(inputs, outputs)
        elif kind == "subclassed":
            # Explicit name: the automatic one ("_subclassed_model") starts with "_",
            # which TensorFlow rejects as a root name scope inside fit().
            model = _SubclassedModel(layer, self._head_layers(), name="subclassed_model")
            model(self.make_inputs(num_samples=self.batch_size))
        else:
            raise ValueError(f"Unknown model kind. Received: kind={kind!r}")
        return model, layer

    def _targets(self, model, inputs):
        rng = np.random.default_rng(self.seed + 7)
        shape = tuple(_as_numpy(model(inputs[: self.batch_size])).shape[1:])
        return rng.standard_normal((len(inputs),) + shape).astype("float32")

    def _compile(self, model, jit_compile=False):
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=1e-2),
            loss="mse",
            jit_compile=jit_compile,
        )

    def _fit(self, model, inputs, targets):
        return model.fit(
            inputs,
            targets,
            batch_size=self.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
        )

    def _train(self, kind="functional", jit_compile=False):
        """Seeded build + compile + fit.

        Returns ``(model, layer, history, trainable_weight_values_before_fit)``.
        """
        keras.utils.set_random_seed(self.seed)
        with _stage(f"building the {kind} model around {self.name}"):
            model, layer = self._build_model(kind)
        inputs = self.make_inputs()
        with _stage(f"calling the {kind} model around {self.name}"):
            targets = self._targets(model, inputs)
        before = _weight_values(layer.trainable_weights)
        with _stage(f"{kind} model.fit(jit_compile={jit_compile}) with {self.name}"):
            self._compile(model, jit_compile=jit_compile)
            history = self._fit(model, inputs, targets)
        return model, layer, history, before

    # ------------------------------------------------------------------ the checks

    def check_call(self):
        """Eager call, output shape/dtype, compute_output_shape and symbolic shape agree."""
        inputs = self.make_inputs(num_samples=self.batch_size)
        layer = self.make_layer()
        with _stage(f"calling {self.name} on a batch of shape {inputs.shape}"):
            outputs = _as_numpy(layer(inputs))
        if not layer.built:
            raise AssertionError(f"{self.name} is not `built` after its first call.")
        if outputs.shape[0] != self.batch_size:
            raise AssertionError(
                f"{self.name} output must keep the batch dimension {self.batch_size}. "
                f"Received: output shape {outputs.shape}"
            )
        if np.issubdtype(outputs.dtype, np.floating) and not np.all(np.isfinite(outputs)):
            raise AssertionError(f"{self.name} output is not finite on random inputs.")
        actual = tuple(outputs.shape[1:])
        if self.expected_output_shape is not None:
            expected = self.expected_output_shape
            if len(actual) != len(expected) or any(
                e is not None and e != a for e, a in zip(expected, actual)
            ):
                raise AssertionError(
                    f"{self.name} output shape (without batch) is {actual}, expected "
                    f"{expected}."
                )
        batch_input_shape = (None,) + self.input_shape
        with _stage(f"{self.name}.compute_output_shape({batch_input_shape})"):
            computed = tuple(layer.compute_output_shape(batch_input_shape))
        with _stage(f"calling {self.name} on keras.Input(shape={self.input_shape})"):
            symbolic = tuple(
                self.make_layer()(
                    keras.Input(shape=self.input_shape, dtype=self.input_dtype)
                ).shape
            )
        for what, shape in (("compute_output_shape", computed), ("symbolic call", symbolic)):
            if len(shape) != len(actual) + 1 or any(
                s is not None and s != a for s, a in zip(shape[1:], actual)
            ):
                raise AssertionError(
                    f"{self.name} {what} gives {shape} but the real output shape is "
                    f"{outputs.shape} (batch dimension aside)."
                )

    def check_config(self):
        """JSON config round trip, registration and serialize_keras_object round trip."""
        layer = self.make_layer()
        config_before_build = _jsonify(layer.get_config(), f"{self.name}.get_config()")
        inputs = self.make_inputs(num_samples=self.batch_size)
        with _stage(f"calling {self.name}"):
            outputs = _as_numpy(layer(inputs, training=False))
        config = _jsonify(layer.get_config(), f"{self.name}.get_config() after build")
        if config != config_before_build:
            raise AssertionError(
                f"{self.name}.get_config() changed when the layer was built:\n"
                + _config_diff(config_before_build, config)
            )

        # Every __init__ argument is stored under its own name.
        signature = inspect.signature(self.layer_cls.__init__)
        arguments = [
            name
            for name, parameter in signature.parameters.items()
            if name != "self"
            and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        ]
        missing = [
            name
            for name in arguments
            if name not in config and name not in self.config_exclude
        ]
        missing += [
            name
            for name in self.init_kwargs
            if name not in config and name not in missing and name not in self.config_exclude
        ]
        if missing:
            raise AssertionError(
                f"{self.name}.get_config() is missing __init__ arguments {missing}; "
                f"get_config must return {{**super().get_config(), <every argument>}}. "
                f"Received config keys: {sorted(config)}"
            )

        # from_config(json) gives an equal config and a layer computing the same thing.
        with _stage(f"{self.name}.from_config(json config)"):
            restored = self.layer_cls.from_config(json.loads(json.dumps(config)))
        restored_config = _jsonify(restored.get_config(), "restored get_config()")
        if restored_config != config:
            raise AssertionError(
                f"{self.name}.from_config(get_config()) does not reproduce the config:\n"
                + _config_diff(config, restored_config)
            )
        with _stage(f"building the restored {self.name} and copying the weights"):
            restored(inputs, training=False)
            restored.set_weights(layer.get_weights())
        with _stage(f"calling the restored {self.name}"):
            restored_outputs = _as_numpy(restored(inputs, training=False))
        _assert_close(
            restored_outputs,
            outputs,
            self.atol,
            f"{self.name} rebuilt from its config, with the same weights, computes "
            "different outputs (an argument is not stored in the config?)",
        )

        # Registration.
        registered_name = keras.saving.get_registered_name(self.layer_cls)
        if self.registered_package is not None:
            prefix = f"{self.registered_package}>"
            if not registered_name.startswith(prefix):
                raise AssertionError(
                    f"{self.name} is not registered under package "
                    f"{self.registered_package!r}: keras.saving.get_registered_name gives "
                    f"{registered_name!r}. Decorate the class with "
                    "@keras.saving.register_keras_serializable("
                    f"package={self.registered_package!r})."
                )
            if keras.saving.get_registered_object(registered_name) is not self.layer_cls:
                raise AssertionError(
                    f"keras.saving.get_registered_object({registered_name!r}) is not "
                    f"{self.name} (registered twice under one name?)."
                )

        # serialize_keras_object / deserialize_keras_object.
        with _stage(f"keras.saving.serialize_keras_object({self.name})"):
            serialized = _jsonify(
                keras.saving.serialize_keras_object(layer), "serialize_keras_object(layer)"
            )
        with _stage(f"keras.saving.deserialize_keras_object(<{self.name}>)"):
            deserialized = keras.saving.deserialize_keras_object(
                serialized, custom_objects=self.custom_objects
            )
        if type(deserialized) is not self.layer_cls:
            raise AssertionError(
                f"deserialize_keras_object returned {type(deserialized).__name__}, "
                f"expected {self.name}."
            )
        deserialized_config = _jsonify(deserialized.get_config(), "deserialized config")
        if deserialized_config != config:
            raise AssertionError(
                "deserialize_keras_object(serialize_keras_object(layer)) changes the "
                "config:\n" + _config_diff(config, deserialized_config)
            )

    def check_models(self):
        """Sequential, functional and subclassed models train; weights change."""
        for kind in MODEL_KINDS:
            model, layer, history, before = self._train(kind)
            what = f"{self.name} in a {kind} model"
            _assert_finite_loss(history, what)
            _assert_weights_changed(layer, before, what)
            with _stage(f"{what}: model.predict"):
                predictions = model.predict(self.make_inputs(seed_offset=1), verbose=0)
            if not np.all(np.isfinite(predictions)):
                raise AssertionError(f"{what}: predictions after training are not finite.")

    def check_saving(self, tmp_path=None):
        """.keras save/load and model.export SavedModel reproduce the outputs."""
        if tmp_path is None:
            with tempfile.TemporaryDirectory() as directory:
                return self.check_saving(pathlib.Path(directory))
        tmp_path = pathlib.Path(tmp_path)
        model, layer, history, _ = self._train("functional")
        _assert_finite_loss(history, f"{self.name} in a functional model")
        new_inputs = self.make_inputs(seed_offset=1)  # not the training data
        expected = model.predict(new_inputs, verbose=0)

        keras_path = tmp_path / "m.keras"
        with _stage(f"model.save({keras_path.name}) with {self.name}"):
            model.save(keras_path)
        with _stage(f"keras.saving.load_model({keras_path.name}) with {self.name}"):
            loaded = keras.saving.load_model(keras_path, custom_objects=self.custom_objects)
        with _stage(f"finding layer {layer.name!r} in the loaded model"):
            loaded_layer = loaded.get_layer(layer.name)
        if type(loaded_layer) is not self.layer_cls:
            raise AssertionError(
                f"load_model restored layer {layer.name!r} as "
                f"{type(loaded_layer).__name__}, expected {self.name}."
            )
        with _stage("predict with the loaded .keras model"):
            loaded_outputs = loaded.predict(new_inputs, verbose=0)
        _assert_close(
            loaded_outputs,
            expected,
            self.atol,
            f"{self.name}: .keras save/load changes the model outputs (state that is "
            "neither a weight nor in the config?)",
        )

        export_path = tmp_path / "sm"
        with _stage(f"model.export(...) with {self.name}"):
            model.export(str(export_path), verbose=False)
        with _stage(f"tf.saved_model.load(...).serve(x) with {self.name}"):
            reloaded = tf.saved_model.load(str(export_path))
            served = _as_numpy(reloaded.serve(tf.constant(new_inputs)))
        _assert_close(
            served,
            expected,
            self.atol,
            f"{self.name}: the exported SavedModel computes different outputs",
        )

    def check_distribution(self):
        """MirroredStrategy on two logical CPUs: finite loss, replicas stay identical."""
        if not self.supports_distribution:
            pytest.skip(f"{self.name}: supports_distribution=False")
        strategy = mirrored_strategy()
        what = f"{self.name} under MirroredStrategy"
        inputs = self.make_inputs()
        with strategy.scope():
            keras.utils.set_random_seed(self.seed)
            with _stage(f"{what}: building the model"):
                model, layer = self._build_model("functional")
            with _stage(f"{what}: calling the model"):
                targets = self._targets(model, inputs)
            before = _weight_values(layer.trainable_weights)
            with _stage(f"{what}: model.fit"):
                self._compile(model)
                history = self._fit(model, inputs, targets)
        _assert_finite_loss(history, what)
        _assert_weights_changed(layer, before, what)
        for weight in layer.weights:
            replicas = strategy.experimental_local_results(weight.value)
            if len(replicas) != strategy.num_replicas_in_sync:
                raise AssertionError(
                    f"{what}: weight {weight.path} is not mirrored ({len(replicas)} "
                    f"copies for {strategy.num_replicas_in_sync} replicas); create "
                    "variables with add_weight in build()."
                )
            values = [np.array(_as_numpy(replica)) for replica in replicas]
            if not all(np.array_equal(values[0], value) for value in values[1:]):
                raise AssertionError(
                    f"{what}: the replicas of weight {weight.path} differ after training "
                    f"({[value.ravel()[:4].tolist() for value in values]}...). A variable "
                    "assigned in call() from replica-local data needs "
                    "aggregation='mean' (or 'only_first_replica') in add_weight."
                )

    def check_jit(self):
        """jit_compile=True fit + predict equals the non-XLA predict of the same weights."""
        if not self.supports_jit:
            model, _ = self._build_model("functional")
            self._compile(model, jit_compile=True)
            if model.jit_compile:
                raise AssertionError(
                    f"The test declares supports_jit=False, but Keras accepted "
                    f"jit_compile=True for a model containing {self.name}. Set "
                    "`self.supports_jit = False` in the layer so that Keras refuses XLA."
                )
            pytest.skip(f"{self.name} does not support XLA; Keras refuses jit_compile=True.")
        try:
            model, layer, history, before = self._train("functional", jit_compile=True)
        except AssertionError as error:
            raise AssertionError(
                f"{error}\nHint: layers that run a C++ op or Python code "
                "(tf.numpy_function/py_function) cannot be compiled by XLA; they set "
                "`self.supports_jit = False` and their tests pass supports_jit=False."
            ) from error.__cause__
        what = f"{self.name} with jit_compile=True"
        if model.jit_compile is not True:
            raise AssertionError(
                f"Keras silently disabled XLA for {self.name} (layer.supports_jit is "
                f"{layer.supports_jit!r}). If that is intended, pass supports_jit=False."
            )
        _assert_finite_loss(history, what)
        _assert_weights_changed(layer, before, what)
        new_inputs = self.make_inputs(seed_offset=1)
        with _stage(f"{what}: model.predict"):
            jit_outputs = model.predict(new_inputs, verbose=0)
        self._compile(model, jit_compile=False)
        with _stage(f"{self.name}: model.predict without XLA"):
            outputs = model.predict(new_inputs, verbose=0)
        _assert_close(jit_outputs, outputs, self.atol, f"{what}: XLA vs non-XLA predictions")

    def check_determinism(self):
        """Two seeded runs in one process give bit-identical weights."""
        runs = []
        for _ in range(2):
            model, _, history, _ = self._train("functional")
            _assert_finite_loss(history, f"{self.name} (determinism run)")
            runs.append(
                [(weight.path, np.array(_as_numpy(weight))) for weight in model.weights]
            )
        different = [
            path for (path, first), (_, second) in zip(*runs) if not np.array_equal(first, second)
        ]
        if different:
            raise AssertionError(
                f"{self.name}: two runs after keras.utils.set_random_seed({self.seed}) give "
                f"different weights: {different}. Draw randomness from keras.random with "
                "a keras.random.SeedGenerator / seeded initializers, never from unseeded "
                "numpy or Python RNGs."
            )

    def check_invalid_arguments(self):
        """Every row of `invalid_kwargs` raises a ValueError with "Received:"."""
        failures = []
        for override, substring in self.invalid_kwargs:
            try:
                layer = self.make_layer(**override)
                layer(self.make_inputs(num_samples=self.batch_size))
            except ValueError as error:
                message = str(error)
                if "Received:" not in message or substring not in message:
                    failures.append(
                        f"{override}: the ValueError must contain 'Received:' and "
                        f"{substring!r}. Received message: {message!r}"
                    )
            except Exception as error:  # noqa: BLE001
                failures.append(
                    f"{override}: raised {type(error).__name__} instead of ValueError: "
                    f"{error}"
                )
            else:
                failures.append(f"{override}: no ValueError at __init__ or at build/call.")
        if failures:
            raise AssertionError(
                f"{self.name} invalid-argument table ({len(failures)} of "
                f"{len(self.invalid_kwargs)} rows failed):\n  " + "\n  ".join(failures)
            )

    # ------------------------------------------------------------------ running

    def run_check(self, check, tmp_path=None):
        if check not in CHECKS:
            raise ValueError(f"`check` must be one of {CHECKS}. Received: check={check!r}")
        method = getattr(self, f"check_{check}")
        if check == "saving":
            return method(tmp_path)
        return method()

    def run(self, checks=CHECKS, tmp_path=None):
        """Run `checks`; return ``{check: "passed" | "skipped: <reason>"}``.

        All checks run; if any fails, one AssertionError lists every failed check.
        """
        results, failures = {}, []
        for check in checks:
            try:
                self.run_check(check, tmp_path=tmp_path)
            except pytest.skip.Exception as skip:
                results[check] = f"skipped: {skip.msg}"
            except Exception as error:  # noqa: BLE001 - reported below
                results[check] = "failed"
                failures.append(f"[{check}] {type(error).__name__}: {error}")
            else:
                results[check] = "passed"
        if failures:
            raise AssertionError(
                f"{self.name} fails the layer contract in {len(failures)} check(s):\n"
                + "\n".join(failures)
            )
        return results


def run_layer_contract(
    layer_cls, init_kwargs, input_shape, *, checks=CHECKS, tmp_path=None, **options
):
    """Run the whole layer contract; see `LayerContract` for `options`.

    Returns ``{check: "passed" | "skipped: <reason>"}``; raises one AssertionError that
    lists every failed check.
    """
    contract = LayerContract(layer_cls, init_kwargs, input_shape, **options)
    return contract.run(checks=checks, tmp_path=tmp_path)


def layer_contract_test(layer_cls, init_kwargs, input_shape, *, checks=CHECKS, **options):
    """A pytest test function parametrised over the contract checks.

    Assign it to a module-level name starting with ``test_``::

        test_my_layer_contract = layer_contract_test(MyLayer, {"units": 2}, (3,))
    """
    contract = LayerContract(layer_cls, init_kwargs, input_shape, **options)

    @pytest.mark.parametrize("check", list(checks))
    def test_layer_contract(check, tmp_path):
        contract.run_check(check, tmp_path=tmp_path)

    test_layer_contract.contract = contract
    return test_layer_contract


# --------------------------------------------------------------------------- regularizers


def _assert_config_names_init_arguments(cls, config):
    """Every named ``__init__`` argument of ``cls`` must be a key of ``config``."""
    signature = inspect.signature(cls.__init__)
    missing = [
        argument
        for argument, parameter in signature.parameters.items()
        if argument != "self"
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
        and argument not in config
    ]
    if missing:
        raise AssertionError(
            f"{cls.__name__}.get_config() is missing __init__ arguments {missing}. "
            f"Received config: {config}"
        )


def _assert_registered(cls, registered_package):
    """``cls`` is registered under ``registered_package`` (skipped for None)."""
    if registered_package is None:
        return
    registered_name = keras.saving.get_registered_name(cls)
    if not registered_name.startswith(f"{registered_package}>"):
        raise AssertionError(
            f"{cls.__name__} is not registered under package {registered_package!r}: "
            f"keras.saving.get_registered_name gives {registered_name!r}."
        )


def assert_regularizer_contract(
    regularizer,
    *,
    weight_shape=(4, 3),
    weight=None,
    registered_package="tfemergent",
    check_in_layer=True,
):
    """Contract of a `keras.regularizers.Regularizer` object.

    JSON config round trip (``from_config``), registration, ``keras.regularizers.get``
    round trip of ``keras.regularizers.serialize``, a finite float scalar on a weight
    (``weight`` or a seeded random one of ``weight_shape``), equal values of the original
    and restored regularizer, and (``check_in_layer``, 2-D weights only) use as
    ``kernel_regularizer`` of a Dense layer whose config round trip keeps it.
    """
    cls = type(regularizer)
    name = cls.__name__
    if not isinstance(regularizer, keras.regularizers.Regularizer):
        raise AssertionError(f"{name} must subclass keras.regularizers.Regularizer.")
    config = _jsonify(regularizer.get_config(), f"{name}.get_config()")
    with _stage(f"{name}.from_config(json config)"):
        restored = cls.from_config(json.loads(json.dumps(config)))
    restored_config = _jsonify(restored.get_config(), f"restored {name}.get_config()")
    if restored_config != config:
        raise AssertionError(
            f"{name}.from_config(get_config()) does not reproduce the config:\n"
            + _config_diff(config, restored_config)
        )
    _assert_config_names_init_arguments(cls, config)

    _assert_registered(cls, registered_package)

    with _stage(f"keras.regularizers.get(keras.regularizers.serialize({name}))"):
        serialized = _jsonify(keras.regularizers.serialize(regularizer), "serialized")
        fetched = keras.regularizers.get(serialized)
    if type(fetched) is not cls or _jsonify(fetched.get_config(), "config") != config:
        raise AssertionError(
            f"keras.regularizers.get(serialize(regularizer)) gives {fetched!r}, not an "
            f"equal {name}."
        )

    if weight is None:
        weight = np.random.default_rng(0).standard_normal(weight_shape).astype("float32")
    values = []
    for instance in (regularizer, restored, fetched):
        with _stage(f"{name}(weight of shape {np.shape(weight)})"):
            values.append(_as_numpy(instance(tf.constant(weight))))
    value = values[0]
    if value.shape != () or not np.issubdtype(value.dtype, np.floating):
        raise AssertionError(
            f"{name} must return a float scalar. Received: shape={value.shape}, "
            f"dtype={value.dtype}"
        )
    if not np.isfinite(value):
        raise AssertionError(f"{name} returned a non-finite value: {value}")
    for other in values[1:]:
        if not np.array_equal(value, other):
            raise AssertionError(
                f"The restored {name} computes {other}, the original {value}."
            )

    if check_in_layer and np.ndim(weight) == 2:
        inputs = np.ones((2, np.shape(weight)[0]), "float32")
        with _stage(f"Dense(kernel_regularizer={name})"):
            dense = keras.layers.Dense(np.shape(weight)[1], kernel_regularizer=regularizer)
            dense(inputs)
            dense_restored = keras.layers.Dense.from_config(
                json.loads(json.dumps(dense.get_config()))
            )
            dense_restored(inputs)
        if type(dense_restored.kernel_regularizer) is not cls:
            raise AssertionError(
                f"A Dense layer rebuilt from its config has kernel_regularizer "
                f"{dense_restored.kernel_regularizer!r}, expected {name}."
            )
        if len(dense.losses) != 1 or np.shape(_as_numpy(dense.losses[0])) != ():
            raise AssertionError(
                f"Dense(kernel_regularizer={name}).losses must be one scalar. "
                f"Received: {dense.losses}"
            )


# --------------------------------------------------------------------------- callbacks


def assert_callback_config(callback, *, registered_package="tfemergent"):
    """A callback's ``get_config`` is JSON-able and ``from_config``/``cls(**config)``
    recreates an equal config; the class is registered."""
    cls = type(callback)
    name = cls.__name__
    if not hasattr(callback, "get_config"):
        raise AssertionError(
            f"{name} has no get_config(); keras.callbacks.Callback does not provide one, "
            "the callback must define it."
        )
    config = _jsonify(callback.get_config(), f"{name}.get_config()")
    factory = getattr(cls, "from_config", None) or (lambda cfg: cls(**cfg))
    with _stage(f"recreating {name} from its JSON config"):
        restored = factory(json.loads(json.dumps(config)))
    restored_config = _jsonify(restored.get_config(), f"restored {name}.get_config()")
    if restored_config != config:
        raise AssertionError(
            f"{name} recreated from its config has a different config:\n"
            + _config_diff(config, restored_config)
        )
    _assert_config_names_init_arguments(cls, config)
    _assert_registered(cls, registered_package)
