"""Density cost of the spatial networks paper."""

import keras
import tensorflow as tf

from tfemergent import kernels
from tfemergent.utils.dtypes import cost_dtype
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

METRICS = ("euclidean", "manhattan")


@keras.saving.register_keras_serializable(package="tfemergent")
class DensityCost(keras.regularizers.Regularizer):
    """Repulsion that keeps the neurons of a layer from packing too densely.

    For a layer ``l`` with ``N_l`` neurons at positions ``p(n)``, the density
    cost of Wołczyk et al. is

        V(l) = (1 / N_l**2) * sum_{n1, n2 in l} exp(-||p(n1) - p(n2)||)

    over all ordered pairs, the ``N_l`` self-pairs included (they add the
    constant ``1 / N_l``). The returned value is ``beta / num_layers * V(l)``, so
    that with ``num_layers = |L|`` the costs of all spatial layers add up to the
    paper's average. Gradients stay finite at zero distance (the self-pairs and
    any coincident neurons).

    It is an ordinary one-tensor Keras regularizer: call it on a positions
    matrix of shape ``(N_l, D)``; `SpatialDense` applies it to its ``positions``
    weight when given as ``density_cost`` (cast to the dtype of Keras' losses,
    ``keras.config.floatx()``). It is computed and returned in the positions'
    dtype, at least float32 (float16 positions are cast up).

    Reference: M. Wołczyk, J. Tabor, M. Śmieja, S. Maszke, "Biologically-Inspired
    Spatial Neural Networks" (2019), section 2.

    Args:
        beta: non-negative weight of the cost (paper: 3).
        num_layers: number of layers whose costs are averaged (``|L|``), >= 1.
        metric: ``"euclidean"`` (paper) or ``"manhattan"``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.regularizers import DensityCost
    >>> cost = DensityCost(beta=1.0)
    >>> positions = np.array([[0.0, 0.0], [3.0, 4.0]], "float32")
    >>> round(float(cost(positions)), 6)   # (2 * exp(0) + 2 * exp(-5)) / 4
    0.503369
    """

    def __init__(self, beta=3.0, num_layers=1, metric="euclidean"):
        self.beta = validate_float("beta", beta, minimum=0.0)
        self.num_layers = validate_int("num_layers", num_layers, minimum=1)
        self.metric = validate_choice("metric", metric, METRICS)

    def __call__(self, positions):
        positions = tf.convert_to_tensor(positions)
        if positions.shape.rank != 2:
            raise ValueError(
                "DensityCost expects a positions matrix of shape (num_neurons, "
                f"position_dim). Received: positions.shape={positions.shape}"
            )
        positions = tf.cast(positions, cost_dtype(positions.dtype))
        distances = kernels.pairwise_distances(positions, positions, metric=self.metric)
        return (self.beta / self.num_layers) * tf.reduce_mean(tf.exp(-distances))

    def get_config(self):
        return {"beta": self.beta, "num_layers": self.num_layers, "metric": self.metric}
