"""Every private TensorFlow/Keras access of `tfemergent.utils._private`, on a real case.

One test per access. Each fails with the name of the private API when the installed
TensorFlow or Keras moves or changes it, instead of letting tfemergent fall back silently.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tfemergent.utils import _private


def test_in_xla_context_control_flow_util():
    assert _private._control_flow_util is not None, (
        "tensorflow.python.ops.control_flow_util is gone: in_xla_context always False"
    )
    assert hasattr(_private._control_flow_util, "GraphOrParentsInXlaContext"), (
        "tensorflow.python.ops.control_flow_util.GraphOrParentsInXlaContext is gone"
    )
    seen = {}

    def probe(name):
        def function(x):
            seen[name] = _private.in_xla_context()
            return x + 1.0

        return function

    tf.function(probe("xla"), jit_compile=True)(tf.constant(1.0))
    tf.function(probe("graph"), jit_compile=False)(tf.constant(1.0))
    probe("eager")(tf.constant(1.0))
    assert seen == {"xla": True, "graph": False, "eager": False}, (
        f"GraphOrParentsInXlaContext no longer tells jit_compile apart: {seen}"
    )


def test_in_save_context_save_context(tmp_path):
    assert _private._save_context is not None, (
        "tensorflow.python.saved_model.save_context is gone: in_save_context always False"
    )
    seen = []

    class Probe(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([], tf.float32)])
        def __call__(self, x):
            seen.append(_private.in_save_context())
            return x + 1.0

    module = Probe()
    module(tf.constant(1.0))  # traced outside a save
    assert seen == [False] and _private.in_save_context() is False
    tf.saved_model.save(module, os.fspath(tmp_path / "probe"))
    assert True in seen[1:], (
        f"save_context.in_save_context() is not True while tf.saved_model.save traces: {seen}"
    )
    assert _private.in_save_context() is False


def _functional_model():
    inputs = keras.Input((3,), name="x")
    hidden = keras.layers.Dense(4, name="hidden")(inputs)
    outputs = keras.layers.Dense(2, name="out")(hidden)
    return keras.Model(inputs, outputs), inputs, hidden, outputs


def test_keras_history_on_a_functional_model():
    model, inputs, hidden, outputs = _functional_model()
    history = _private.keras_history(outputs)
    assert history is not None, "KerasTensor._keras_history is gone"
    operation, node_index = history
    assert operation is model.get_layer("out") and node_index == 0, (
        f"KerasTensor._keras_history no longer names (operation, node_index): {history}"
    )
    assert _private.keras_history(tf.constant(1.0)) is None


def test_inbound_tensors_on_a_functional_model():
    model, inputs, hidden, outputs = _functional_model()
    operation, node_index = _private.keras_history(outputs)
    try:
        tensors = _private.inbound_tensors(operation, node_index)
    except AttributeError as error:
        raise AssertionError(f"Operation._inbound_nodes / Node.input_tensors moved: {error}")
    assert tensors == [hidden], f"Operation._inbound_nodes[0].input_tensors: {tensors}"
    layer, index = _private.keras_history(tensors[0])
    assert layer is model.get_layer("hidden")
    assert _private.inbound_tensors(layer, index) == [inputs]


def test_nested_layers_and_has_sublayers_on_a_nested_model():
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, name="a"), keras.layers.Dense(4, name="b")],
        name="inner",
    )
    inputs = keras.Input((3,))
    outer = keras.Model(inputs, keras.layers.Dense(1, name="c")(inner(inputs)), name="outer")
    try:
        names = [layer.name for layer in _private.nested_layers(outer)]
    except AttributeError as error:
        raise AssertionError(f"Layer._flatten_layers moved: {error}")
    assert sorted(name for name in names if not name.startswith("input_layer")) == [
        "a", "b", "c", "inner"
    ], f"Layer._flatten_layers(recursive=True) no longer reaches the nested layers: {names}"
    assert "outer" not in names
    assert _private.nested_layers(outer, include_self=True)[0] is outer
    assert _private.has_sublayers(outer) and _private.has_sublayers(inner)
    assert not _private.has_sublayers(inner.get_layer("a"))


def test_weight_tracking_unlocked_adds_a_weight_to_a_built_layer():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    assert hasattr(layer, "_tracker") and hasattr(layer._tracker, "unlock"), (
        "Layer._tracker.unlock/lock are gone"
    )
    try:
        layer.add_weight(shape=(1,), name="refused")
    except ValueError:
        pass
    else:  # pragma: no cover - Keras stopped locking built layers: the helper is moot
        raise AssertionError("Keras no longer locks a built layer's tracker")
    with _private.weight_tracking_unlocked(layer):
        extra = layer.add_weight(shape=(2,), initializer="ones", name="extra")
    assert any(weight is extra for weight in layer.weights)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(extra), [1.0, 1.0])
    assert layer._tracker.locked, "weight_tracking_unlocked did not lock the tracker again"


def test_keras_trainer_internals_hold_the_patched_functions():
    internals = _private.keras_trainer_internals()
    assert internals is not None, "keras.src.tree or keras.src.backend.tensorflow.trainer moved"
    tree, trainer_module = internals
    assert tree.map_structure(lambda v: v + 1, {"a": 1, "b": (2, 3)}) == {"a": 2, "b": (3, 4)}
    for name in ("reduce_per_replica", "_collective_all_reduce_multi_worker"):
        assert callable(getattr(trainer_module, name, None)), f"trainer.{name} is gone"
    assert callable(getattr(trainer_module.TensorFlowTrainer, "_maybe_symbolic_build", None)), (
        "trainer.TensorFlowTrainer._maybe_symbolic_build is gone"
    )
    assert keras.Model.fit is trainer_module.TensorFlowTrainer.fit


def test_keras_tensor_index_of_a_two_output_layer():
    inputs = keras.Input((4,))
    first, second = keras.layers.Lambda(lambda x: (x[:, :1], x[:, 1:]))(inputs)
    assert _private.keras_tensor_index(first) == 0, "KerasTensor._keras_history.tensor_index"
    assert _private.keras_tensor_index(second) == 1, "KerasTensor._keras_history.tensor_index"
    assert _private.keras_tensor_index(np.zeros(2)) is None


def test_call_arguments_keep_the_positional_and_keyword_layout():
    inputs = keras.Input((3, 4))
    mask = keras.Input((3,), dtype="bool")
    layer = keras.layers.LSTM(2, name="lstm")
    outputs = layer(inputs, mask=mask, training=False)
    operation, node_index = _private.keras_history(outputs)
    try:
        args, kwargs = _private.call_arguments(operation, node_index)
    except AttributeError as error:
        raise AssertionError(f"Node.arguments (SymbolicArguments) moved: {error}")
    assert operation is layer
    assert len(args) == 1 and args[0] is inputs, f"Node.arguments.args: {args}"
    assert kwargs["mask"] is mask and kwargs["training"] is False, kwargs


def test_output_tensors_of_a_call():
    inputs = keras.Input((4,))
    layer = keras.layers.Lambda(lambda x: (x[:, :1], x[:, 1:]))
    first, second = layer(inputs)
    try:
        outputs = _private.output_tensors(layer, 0)
    except AttributeError as error:
        raise AssertionError(f"Operation._inbound_nodes / Node.outputs moved: {error}")
    assert outputs == [first, second], f"Node.outputs: {outputs}"
