"""Tensor-argument validators shared by the kernel functions (private).

They complement the scalar validators of `tfemergent.utils.validation`: every
error says what was wrong and ends with ``Received: name=value``.
"""

import keras
import numpy as np
import tensorflow as tf


def is_variable(value):
    """True for `tf.Variable` and Keras 3 variables (read at use time)."""
    return isinstance(value, (tf.Variable, keras.Variable))


def is_symbolic(value):
    """True for graph tensors whose values are unknown while tracing."""
    if is_variable(value):
        return not tf.executing_eagerly()
    return tf.is_tensor(value) and not hasattr(value, "numpy")


def describe(value):
    """A short description of an argument for error messages."""
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    if shape is not None and dtype is not None:
        dtype = getattr(dtype, "name", dtype)
        return f"<{type(value).__name__} shape={tuple(shape)} dtype={dtype}>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_tensor(name, value):
    """Convert ``value`` to a tensor (variables are read) or raise ``ValueError``."""
    if isinstance(value, (str, bytes)) or value is None:
        raise ValueError(
            f"Argument `{name}` must be a tensor, array or variable. "
            f"Received: {name}={describe(value)}"
        )
    try:
        return tf.convert_to_tensor(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Argument `{name}` must be a tensor, array or variable. "
            f"Received: {name}={describe(value)}"
        ) from None


def float_matrix(name, value, *, description, dtype=None, static=False):
    """A rank-2 floating tensor (of ``dtype`` if given); ``static`` requires known dims."""
    tensor = as_tensor(name, value)
    if not tensor.dtype.is_floating:
        raise ValueError(
            f"Argument `{name}` must be a floating-point tensor {description}. "
            f"Received: {name}.dtype={tensor.dtype.name}"
        )
    if dtype is not None and tensor.dtype != dtype:
        raise ValueError(
            f"Argument `{name}` must have the same dtype as the other inputs "
            f"({dtype.name}); cast it first. Received: {name}.dtype={tensor.dtype.name}"
        )
    if tensor.shape.rank != 2:
        raise ValueError(
            f"Argument `{name}` must be a matrix {description}. "
            f"Received: {name}.shape={tensor.shape}"
        )
    if static and (tensor.shape[0] is None or tensor.shape[1] is None):
        raise ValueError(
            f"Argument `{name}` must have a static shape {description}. "
            f"Received: {name}.shape={tensor.shape}"
        )
    for size in tensor.shape:
        if size is not None and size < 1:
            raise ValueError(
                f"Argument `{name}` must not be empty {description}. "
                f"Received: {name}.shape={tensor.shape}"
            )
    return tensor


def check_dim(name, tensor, axis, expected, what):
    """Raise if dimension ``axis`` of ``tensor`` is known and differs from ``expected``."""
    actual = tensor.shape[axis]
    if actual is not None and expected is not None and actual != expected:
        raise ValueError(
            f"Argument `{name}` must have {what} ({expected}) in dimension {axis}. "
            f"Received: {name}.shape={tensor.shape}"
        )


def concrete_array(value):
    """A numpy copy of ``value`` if its value is known now, else ``None``."""
    if is_symbolic(value) or not tf.executing_eagerly():
        return None
    return np.asarray(value)
