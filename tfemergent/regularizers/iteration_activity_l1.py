"""L1 activity cost on the states of every iteration of a recursive network."""

import keras
import tensorflow as tf

from tfemergent.utils.dtypes import cost_dtype
from tfemergent.utils.validation import validate_float


@keras.saving.register_keras_serializable(package="tfemergent")
class IterationActivityL1(keras.regularizers.Regularizer):
    """L1 cost of the neural activities after each iteration of a URN.

    The activity term of Golkar's loss (eq. 5) is ``c_N sum_{l=1..I} |N^(l)|``
    per sample. Given the stacked states ``N^(1..I)`` of shape
    ``(I, batch, S)``, this regularizer returns

        c_n * (1 / batch) * sum_{l, b, i} |N_i^(l)[b]|

    i.e. the per-sample cost averaged over the batch, like the cross-entropy.
    More generally the batch is the second-to-last axis: a tensor of shape
    ``(..., batch, S)`` is summed and divided by ``shape[-2]`` (a ``(batch, S)``
    activity matrix gives the mean per-sample L1 norm).

    `RecursiveURNLayer` applies it to its states when given as
    ``state_regularizer``; the weight term ``c_W |W|`` is
    ``keras.regularizers.L1(c_W)`` on the kernel. The sum is computed in at least
    float32 (float16 states of ``"mixed_float16"`` are cast up) and returned in
    that dtype; the layer casts it to the dtype of Keras' losses,
    ``keras.config.floatx()``, when it adds it.

    Reference: S. Golkar, "Emergent Structures and Lifetime Structure Evolution
    in Artificial Neural Networks" (2019), eq. 5.

    Args:
        c_n: non-negative strength ``c_N`` (paper: 2e-5).

    Example:

    >>> import numpy as np
    >>> from tfemergent.regularizers import IterationActivityL1
    >>> states = np.array([[[1.0, -2.0], [0.0, 3.0]],
    ...                    [[0.5, 0.0], [0.0, -0.5]]], "float32")  # (I=2, batch=2, S=2)
    >>> round(float(IterationActivityL1(0.1)(states)), 6)  # 0.1 * (3 + 3 + 0.5 + 0.5) / 2
    0.35
    """

    def __init__(self, c_n=2e-5):
        self.c_n = validate_float("c_n", c_n, minimum=0.0)

    def __call__(self, states):
        states = tf.convert_to_tensor(states)
        if states.shape.rank is None or states.shape.rank < 2:
            raise ValueError(
                "IterationActivityL1 expects states of shape (..., batch, num_neurons). "
                f"Received: states.shape={states.shape}"
            )
        states = tf.cast(states, cost_dtype(states.dtype))
        batch_size = tf.cast(tf.shape(states)[-2], states.dtype)
        total = tf.reduce_sum(tf.abs(states))
        return tf.cast(self.c_n, states.dtype) * total / tf.maximum(
            batch_size, tf.ones_like(batch_size)
        )

    def get_config(self):
        return {"c_n": self.c_n}
