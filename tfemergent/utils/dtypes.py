"""The dtypes of costs under Keras dtype policies: `cost_dtype`, `loss_dtype`, `to_loss_dtype`.

The rule every tfemergent layer, model and regularizer follows (as Keras' own layers
and losses do):

* variables are created in the layer's ``variable_dtype`` (``float32`` under
  ``"mixed_float16"``, ``float64`` under ``keras.config.set_floatx("float64")``);
* the forward pass runs in the layer's ``compute_dtype`` (``float16`` under
  ``"mixed_float16"``);
* a cost (a regularizer's value, an ``add_loss`` term) is computed in at least
  float32 (`cost_dtype`: sums of many float16 terms overflow or lose their small
  terms), from the variables' full-precision values, and added to the loss in the
  dtype of Keras' losses, ``keras.config.floatx()`` (`to_loss_dtype`), so that Keras
  can sum it with the compiled loss under any policy, per-layer ``dtype=`` included.
  The regularizers return the cost dtype (a float64 cost stays float64 when called
  on its own); the layers cast when they add the cost.
"""

import keras
import tensorflow as tf

_HALF_PRECISION = ("float16", "bfloat16")


def cost_dtype(dtype):
    """The dtype a cost on tensors of ``dtype`` is computed in: float32 for 16-bit floats.

    Args:
        dtype: a floating dtype (name, `tf.DType` or NumPy dtype).

    Returns:
        The dtype name: ``"float32"`` for ``float16``/``bfloat16``, else ``dtype``'s name.

    Example:

    >>> from tfemergent.utils.dtypes import cost_dtype
    >>> cost_dtype("float16"), cost_dtype("float64")
    ('float32', 'float64')
    """
    name = tf.as_dtype(dtype).name
    return "float32" if name in _HALF_PRECISION else name


def loss_dtype():
    """The dtype of Keras' losses, ``keras.config.floatx()`` (``"float32"`` by default).

    Example:

    >>> from tfemergent.utils.dtypes import loss_dtype
    >>> loss_dtype()
    'float32'
    """
    return keras.config.floatx()


def to_loss_dtype(value):
    """``value`` cast to `loss_dtype` (a tensor).

    Example:

    >>> import numpy as np
    >>> from tfemergent.utils.dtypes import to_loss_dtype
    >>> to_loss_dtype(np.float16(1.5)).dtype.name
    'float32'
    """
    return tf.cast(value, loss_dtype())


def in_loss_dtype(regularizer):
    """A variable regularizer whose value is cast to `loss_dtype`; None stays None.

    Keras sums the regularizers' values with the compiled loss without casting them,
    so a float64 variable (``dtype="float64"`` on one layer of a float32 model) with
    ``keras.regularizers.L1`` breaks the sum. Layers pass their weight regularizers
    through this when they create the variable (their config keeps the original).

    Example:

    >>> import keras, numpy as np
    >>> from tfemergent.utils.dtypes import in_loss_dtype
    >>> cost = in_loss_dtype(keras.regularizers.L1(0.5))
    >>> value = cost(np.array([1.0, -2.0]))  # a float64 weight
    >>> value.dtype.name, float(value)
    ('float32', 1.5)
    """
    if regularizer is None:
        return None

    def regularize(weight):
        return to_loss_dtype(regularizer(weight))

    return regularize
