"""Transport cost of the spatial networks paper."""

import keras
import tensorflow as tf

from tfemergent import kernels
from tfemergent.utils.dtypes import cost_dtype
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

WEIGHT_NORMS = ("l1", "l2")
METRICS = ("euclidean", "manhattan")
NORMALIZATIONS = ("neurons", "connections")


@keras.saving.register_keras_serializable(package="tfemergent")
class TransportCost(keras.regularizers.Regularizer):
    """Penalty on strong connections between distant neurons.

    For a layer ``l`` with ``N_l`` neurons at positions ``p(n)`` fed by neurons
    ``n1`` of the previous layer, the transport cost of Wołczyk et al. is

        T(l) = (1 / N_l) * sum_{n1 -> n2, n2 in l} |a_{n1 n2}| * ||p(n1) - p(n2)||

    and the returned value is ``alpha / num_layers * T(l)``: with ``num_layers``
    set to the number of layers that carry spatial costs, the costs of all those
    layers add up to the paper's average ``(1/|L|) sum_l alpha T(l)``.

    ``normalization="connections"`` divides by the number of connections
    ``N_{l-1} * N_l`` instead of ``N_l`` (the mean over connections, as the
    authors' public code computes it). It is ``N_{l-1}`` times smaller, and with
    ``alpha=1`` it is the variant under which the paper's network trains: with
    the paper's text (``"neurons"``, the default) the cost of a 128-128 layer at
    initialisation is about 20, five times the cross-entropy, and drives every
    weight of the split layers to zero (see the spatial-split example).

    Two more variants are selected by arguments (both default to the paper):
    ``weight_norm="l2"`` uses ``a**2`` instead of ``|a|``, and
    ``metric="manhattan"`` uses the L1 distance ``sum_k |p_k(n1) - p_k(n2)|``
    instead of the Euclidean one. Gradients stay finite when positions coincide
    (the subgradient 0 is used at zero distance).

    Unlike a plain Keras regularizer it needs three tensors, so it is called with
    a tuple ``(kernel, input_positions, positions)``. `SpatialDense` calls it for
    you and adds the result with ``add_loss``; the math is
    `tfemergent.kernels.distance_weighted_l1`. It is computed and returned in the
    kernel's dtype, at least float32 (a float16 kernel is cast up); `SpatialDense`
    casts it to the dtype of Keras' losses, ``keras.config.floatx()``.

    Reference: M. Wołczyk, J. Tabor, M. Śmieja, S. Maszke, "Biologically-Inspired
    Spatial Neural Networks" (2019), section 2.

    Args:
        alpha: non-negative weight of the cost (paper: 1).
        num_layers: number of layers whose costs are averaged (``|L|``), >= 1.
        weight_norm: ``"l1"`` (paper, ``|a|``) or ``"l2"`` (``a**2``).
        metric: ``"euclidean"`` (paper) or ``"manhattan"``.
        normalization: ``"neurons"`` (paper text, ``1/N_l``) or
            ``"connections"`` (authors' code, ``1/(N_{l-1} N_l)``).

    Example:

    >>> import numpy as np
    >>> from tfemergent.regularizers import TransportCost
    >>> cost = TransportCost(alpha=1.0)
    >>> kernel = np.array([[1.0, -2.0]], "float32")   # 1 input, 2 outputs
    >>> p_in = np.array([[0.0, 0.0]], "float32")
    >>> p_out = np.array([[3.0, 4.0], [0.0, 1.0]], "float32")
    >>> float(cost((kernel, p_in, p_out)))              # (1*5 + 2*1) / 2
    3.5
    """

    def __init__(
        self,
        alpha=1.0,
        num_layers=1,
        weight_norm="l1",
        metric="euclidean",
        normalization="neurons",
    ):
        self.alpha = validate_float("alpha", alpha, minimum=0.0)
        self.num_layers = validate_int("num_layers", num_layers, minimum=1)
        self.weight_norm = validate_choice("weight_norm", weight_norm, WEIGHT_NORMS)
        self.metric = validate_choice("metric", metric, METRICS)
        self.normalization = validate_choice("normalization", normalization, NORMALIZATIONS)

    def __call__(self, x):
        if not isinstance(x, (tuple, list)) or len(x) != 3:
            raise ValueError(
                "TransportCost is called with a tuple (kernel, input_positions, "
                "positions), not a single weight tensor; use it as the "
                "`transport_cost` argument of SpatialDense. "
                f"Received: x of type {type(x).__name__}"
            )
        kernel, input_positions, positions = x
        kernel = tf.convert_to_tensor(kernel)
        dtype = cost_dtype(kernel.dtype)
        kernel = tf.cast(kernel, dtype)
        shape = tf.shape(kernel)
        count = shape[-1] if self.normalization == "neurons" else shape[0] * shape[-1]
        count = tf.cast(count, dtype)
        total = kernels.distance_weighted_l1(
            kernel,
            tf.cast(input_positions, dtype),
            tf.cast(positions, dtype),
            weight_norm=self.weight_norm,
            metric=self.metric,
        )
        return (self.alpha / self.num_layers) * total / count

    def get_config(self):
        return {
            "alpha": self.alpha,
            "num_layers": self.num_layers,
            "weight_norm": self.weight_norm,
            "metric": self.metric,
            "normalization": self.normalization,
        }
