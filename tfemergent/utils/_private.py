"""Every access of tfemergent to private TensorFlow and Keras APIs, in one place.

Nothing else in the package reaches into ``tensorflow.python``, ``keras.src`` or an
underscored attribute of a Keras object: it calls the functions here. Each access is
exercised by ``tests/utils/test_private.py``, which fails loudly (naming the access)
when an installed TensorFlow or Keras moves it, instead of letting the package fall
back silently.

The accesses, and why there is no public way:

* `in_xla_context`: whether the function being traced will be compiled by XLA
  (``jit_compile=True``); kernels pick an XLA-friendly formulation then.
  ``tensorflow.python.ops.control_flow_util.GraphOrParentsInXlaContext``.
* `in_save_context`: whether a SavedModel is being written (the C++ ops stay out of
  exported graphs). ``tensorflow.python.saved_model.save_context``.
* `keras_history` / `inbound_tensors`: the layer that produced a symbolic tensor and
  that layer's inputs, to walk a functional graph backwards from a tensor
  (``KerasTensor._keras_history``, ``Operation._inbound_nodes``).
* `nested_layers`: every layer inside a model or a composite layer, recursively
  (``Layer._flatten_layers``; ``Model.layers`` lists only the top level).
* `weight_tracking_unlocked`: adds variables to a built layer
  (``Layer._tracker.unlock``/``lock``), as Keras' own ``Dense.enable_lora`` does.
* `keras_trainer_internals`: the trainer module and ``keras.src.tree`` that
  `tfemergent.utils.keras_multi_worker` patches.
"""

import contextlib

import tensorflow as tf

try:
    from tensorflow.python.ops import control_flow_util as _control_flow_util
except ImportError:  # pragma: no cover - TensorFlow moved it: tests/utils/test_private.py fails
    _control_flow_util = None

try:
    from tensorflow.python.saved_model import save_context as _save_context
except ImportError:  # pragma: no cover - likewise
    _save_context = None


def in_xla_context():
    """True while tracing inside a `tf.function(jit_compile=True)` (or an XLA loop)."""
    if tf.executing_eagerly() or _control_flow_util is None:
        return False
    graph = tf.compat.v1.get_default_graph()
    return bool(_control_flow_util.GraphOrParentsInXlaContext(graph))


def in_save_context():
    """True while `tf.saved_model.save` (or ``model.export``) traces the functions."""
    if _save_context is None:
        return False
    return bool(_save_context.in_save_context())


def keras_history(tensor):
    """``(operation, node_index)`` that produced a symbolic Keras tensor, or None."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return None
    return history.operation, history.node_index


def inbound_tensors(operation, node_index):
    """The input tensors of ``operation`` at its call ``node_index`` (a list)."""
    node = operation._inbound_nodes[node_index]
    return list(node.input_tensors)


def nested_layers(layer, include_self=False):
    """Every layer inside ``layer`` (a model or a composite layer), depth first."""
    return list(layer._flatten_layers(include_self=include_self, recursive=True))


def has_sublayers(layer):
    """Whether ``layer`` holds other layers (a model or a composite layer)."""
    return bool(list(layer._flatten_layers(include_self=False, recursive=False)))


@contextlib.contextmanager
def weight_tracking_unlocked(layer):
    """A context in which ``add_weight`` works on an already built ``layer``."""
    tracker = layer._tracker
    was_locked = tracker.locked
    tracker.unlock()
    try:
        yield
    finally:
        if was_locked:
            tracker.lock()


def keras_trainer_internals():
    """``(keras.src.tree, keras.src.backend.tensorflow.trainer)``, or None if moved."""
    try:
        from keras.src import tree
        from keras.src.backend.tensorflow import trainer as trainer_module
    except ImportError:
        return None
    return tree, trainer_module


def keras_tensor_index(tensor):
    """Which output of its producing call a symbolic Keras tensor is (an int), or None.

    ``KerasTensor._keras_history.tensor_index``: `tfemergent.pruning` walks functional
    graphs whose layers may return several tensors.
    """
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.tensor_index


def call_arguments(operation, node_index):
    """``(args, kwargs)`` of the call ``node_index`` of ``operation`` (symbolic tensors inside).

    ``Node.arguments`` (``SymbolicArguments``): `tfemergent.pruning.shrink` replays every
    call of a functional graph on a rebuilt model with the same positional/keyword layout.
    """
    arguments = operation._inbound_nodes[node_index].arguments
    return tuple(arguments.args), dict(arguments.kwargs)


def output_tensors(operation, node_index):
    """The output tensors of ``operation`` at its call ``node_index`` (a list)."""
    return list(operation._inbound_nodes[node_index].outputs)
