"""Synaptic-length cost of the unstructured recursive network."""

import keras
import tensorflow as tf

from tfemergent import kernels
from tfemergent.utils.dtypes import cost_dtype
from tfemergent.utils.validation import validate_float


@keras.saving.register_keras_serializable(package="tfemergent")
class SynapticLength(keras.regularizers.Regularizer):
    """Penalty on the length of every synapse of a recurrent weight matrix.

    Golkar's synaptic-length regulator (eq. 9) for an unstructured recursive
    network (URN) whose ``S`` neurons have positions ``p`` in a metric space
    (e.g. `tfemergent.geometry.UpliftedLattice`):

        c_syn * sum_{synapses j -> i} |W_ij| * d_ij ** gamma

    with ``d_ij = ||p_i - p_j||``. The URN's weight is given in Keras layout
    ``kernel[from, to]`` (``outputs = inputs @ kernel``), so ``kernel[j, i]`` is the
    synapse ``j -> i``, the paper's ``W_ij``. Nothing is normalised.

    Reading of the paper's ``sum_{i<j}``: ``W`` is not symmetric (``W_ij`` and
    ``W_ji`` are two different synapses, ``j -> i`` and ``i -> j``), so the sum is
    taken over all ordered pairs: every synapse is counted once, and the diagonal
    (self-connections, ``d = 0``) contributes nothing. The literal upper triangle
    is not offered: with the input plane at the lowest indices it would only
    charge synapses from later to earlier neurons (backward and half of the
    lateral ones) and leave every forward synapse free, which cannot produce the
    short, locally connected forward weights the paper reports (its Fig. 6).

    Unlike a plain Keras regularizer it needs the positions, so it is called with
    a tuple ``(kernel, coordinates)``; the layer that owns the positions adds the
    result with ``add_loss``. The math is
    `tfemergent.kernels.distance_weighted_l1` with ``distance_power=gamma``, which
    never forms the ``S x S`` distance matrix (it runs over blocks of rows) and
    has gradients that stay finite on the diagonal for every ``gamma``.

    Reference: S. Golkar, "Emergent Structures and Lifetime Structure Evolution
    in Artificial Neural Networks" (2018), section 3, eq. 9.

    Args:
        c_syn: non-negative strength of the cost (the paper's ``c_syn``; it gives
            no value). Default 1.
        gamma: positive distance power (the paper's ``gamma``). Default 1.

    Call arguments:
        x: tuple ``(kernel, coordinates)``: the ``[S, S]`` weight in Keras layout
            and the ``[S, D]`` neuron positions.

    Returns:
        A scalar of the kernel's dtype, at least float32 (a float16 kernel is cast
        up, see `tfemergent.utils.dtypes.cost_dtype`).

    Example:

    >>> import numpy as np
    >>> from tfemergent.geometry import UpliftedLattice
    >>> from tfemergent.regularizers import SynapticLength
    >>> lattice = UpliftedLattice(width=2, height=1, depth=2, num_outputs=1)
    >>> kernel = np.zeros((4, 4), "float32")
    >>> kernel[0, 3] = -2.0  # synapse 0 -> 3: from (0, 0, 0) to (1, 0, 1)
    >>> kernel[1, 1] = 5.0  # a self-connection has length 0
    >>> cost = SynapticLength(c_syn=0.5, gamma=2.0)
    >>> float(cost((kernel, lattice.coordinates())))  # 0.5 * 2 * sqrt(2)**2
    2.0
    """

    def __init__(self, c_syn=1.0, gamma=1.0):
        self.c_syn = validate_float("c_syn", c_syn, minimum=0.0)
        self.gamma = validate_float("gamma", gamma, minimum=0.0, min_inclusive=False)

    def __call__(self, x):
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError(
                "SynapticLength is called with a tuple (kernel, coordinates) of the "
                "[S, S] recurrent weight and the [S, D] neuron positions, not a single "
                "weight tensor; add it with `add_loss` in the layer that holds the "
                f"positions. Received: x of type {type(x).__name__}"
            )
        kernel, coordinates = x
        kernel = tf.convert_to_tensor(kernel)
        kernel = tf.cast(kernel, cost_dtype(kernel.dtype))
        coordinates = tf.cast(coordinates, kernel.dtype)
        total = kernels.distance_weighted_l1(
            kernel, coordinates, coordinates, distance_power=self.gamma
        )
        return self.c_syn * total

    def get_config(self):
        return {"c_syn": self.c_syn, "gamma": self.gamma}
