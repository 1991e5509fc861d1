"""Distance kernels between neuron positions: `pairwise_distances`, `distance_weighted_l1`."""

from tfemergent.kernels import xla
from tfemergent.utils.validation import validate_choice
from tfemergent.utils.validation import validate_dim
from tfemergent.utils.validation import validate_float
from tfemergent.utils.validation import validate_float_matrix
from tfemergent.utils.validation import validate_int

METRICS = ("euclidean", "manhattan")
WEIGHT_NORMS = ("l1", "l2")


def pairwise_distances(p, q, metric="euclidean"):
    """Distances between every row of ``p`` and every row of ``q``.

    ``out[i, j] = ||p_i - q_j||`` computed from the exact per-coordinate
    differences ``p_ik - q_jk`` (the coordinate dimension D is small and must be
    static), not from the ``|p|^2 + |q|^2 - 2 p.q`` expansion, which loses precision
    for nearby points. Runs as an XLA-compiled function and works inside
    `tf.function(jit_compile=True)` and distribution strategies.

    Gradient: a custom gradient that is finite everywhere. Where the distance is
    not differentiable it uses the subgradient 0: for ``"euclidean"`` the
    derivative ``(p_i - q_j) / d_ij`` is replaced by 0 where ``d_ij == 0``
    (coincident points, including the diagonal when ``p`` is ``q``); for
    ``"manhattan"`` ``sign(p_ik - q_jk)`` is 0 where the coordinates coincide.
    Second-order gradients are not supported.

    Args:
        p: float tensor, array or variable of shape ``[N, D]``.
        q: float tensor of shape ``[M, D]`` with the dtype of ``p``.
        metric: ``"euclidean"`` (L2 norm) or ``"manhattan"`` (L1 norm).

    Returns:
        A tensor of shape ``[N, M]`` and the dtype of ``p``.

    Raises:
        ValueError: if ``metric`` is unknown, an input is not a floating matrix,
            the dtypes differ, or D is unknown or differs between ``p`` and ``q``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.kernels import pairwise_distances
    >>> p = np.array([[0.0, 0.0], [3.0, 4.0]], dtype="float32")
    >>> pairwise_distances(p, p).numpy()
    array([[0., 5.],
           [5., 0.]], dtype=float32)
    >>> pairwise_distances(p, p[:1], metric="manhattan").numpy()
    array([[0.],
           [7.]], dtype=float32)
    """
    metric = validate_choice("metric", metric, METRICS)
    p = validate_float_matrix("p", p, description="[N, D]")
    q = validate_float_matrix("q", q, description="[M, D]", dtype=p.dtype)
    if p.shape[1] is None:
        raise ValueError(
            f"Argument `p` must have a static number of coordinates D. Received: p.shape={p.shape}"
        )
    validate_dim("q", q, 1, p.shape[1], "the number of coordinates of `p`")
    return xla.pairwise_distances(p, q, metric)


def distance_weighted_l1(
    weights,
    p_in,
    p_out,
    *,
    weight_norm="l1",
    metric="euclidean",
    block_size=None,
    distance_power=1.0,
):
    """Connection cost ``sum_ij f(w_ij) * d(p_in_i, p_out_j) ** distance_power``.

    With ``weight_norm="l1"`` this is the transport cost of a spatial network
    (Wołczyk et al., "Biologically-Inspired Spatial Neural Networks"):
    ``sum_ij |w_ij| * ||p_in_i - p_out_j||``; with ``"l2"`` the weight term is
    ``w_ij ** 2``. With ``distance_power=gamma`` the distance is raised to the
    power ``gamma`` (the synaptic-length cost ``sum |W_ij| d_ij ** gamma`` of
    Golkar, "Emergent Structures and Lifetime Structure Evolution", eq. 9).
    Normalisation (e.g. by the number of neurons) is left to the caller.

    The kernel never materialises an ``[N_in, N_out, D]`` tensor: the forward and
    backward passes loop over blocks of ``block_size`` rows of ``weights`` inside
    an XLA-compiled function, so besides the ``[N_in, N_out]`` weight gradient only
    one block of distances is alive at a time. For a 4096 x 4096 float32 weight the
    extra peak memory of forward + backward stays below twice the weight's size.

    Gradient: a custom gradient with ``d/dw = f'(w) * d**k`` (``k`` the distance
    power; ``f'(w) = sign(w)``, subgradient 0 at ``w == 0``, for ``"l1"``; ``2 w``
    for ``"l2"``) and, with ``u_ij = dd_ij/dp_in_i`` and
    ``v_ij = k * d_ij**(k - 1) * u_ij``, ``d/dp_in_i = sum_j f(w_ij) v_ij`` and
    ``d/dp_out_j = -sum_i f(w_ij) v_ij``. ``u_ij = (p_in_i - p_out_j) / d_ij`` for
    ``"euclidean"`` and ``sign(p_in_i - p_out_j)`` for ``"manhattan"``; it is 0
    where the distance (or coordinate difference) is 0, and ``v_ij`` is 0 where
    ``d_ij == 0`` for every power, so gradients stay finite for coincident
    positions. That is the true derivative for ``k > 1`` and a subgradient for
    ``k == 1``. For ``k < 1`` the true derivative diverges as ``d -> 0`` (the cost
    has a cusp there): 0 is still a subgradient (``d == 0`` is the minimum of
    ``d**k``), but near (not at) coincidence the position gradient grows like
    ``d**(k - 1)``. Second-order gradients are not supported.

    Args:
        weights: float tensor or variable ``[N_in, N_out]`` (static shape).
        p_in: positions of the input neurons, ``[N_in, D]``, same dtype.
        p_out: positions of the output neurons, ``[N_out, D]``, same dtype.
        weight_norm: ``"l1"`` (``|w|``) or ``"l2"`` (``w ** 2``).
        metric: ``"euclidean"`` or ``"manhattan"``.
        block_size: rows of ``weights`` per block, a positive int, or ``None`` to
            choose it so that a block holds at most 2**18 elements. Values larger
            than ``N_in`` mean a single block. The result does not depend on it
            (up to float rounding).
        distance_power: exponent ``k > 0`` of the distance (default 1). The
            Euclidean ``k == 2`` is computed as the sum of squared coordinate
            differences (no square root).

    Returns:
        A scalar tensor of the dtype of ``weights``.

    Raises:
        ValueError: if ``weight_norm``, ``metric``, ``block_size`` or
            ``distance_power`` is invalid, an input is not a floating matrix with a
            static shape, the dtypes differ, or the shapes do not agree.

    Example:

    >>> import numpy as np
    >>> from tfemergent.kernels import distance_weighted_l1
    >>> weights = np.array([[1.0, -2.0]], dtype="float32")
    >>> p_in = np.array([[0.0, 0.0]], dtype="float32")
    >>> p_out = np.array([[3.0, 4.0], [0.0, 1.0]], dtype="float32")
    >>> float(distance_weighted_l1(weights, p_in, p_out))
    7.0
    >>> float(distance_weighted_l1(weights, p_in, p_out, weight_norm="l2"))
    9.0
    >>> float(distance_weighted_l1(weights, p_in, p_out, distance_power=2.0))
    27.0
    """
    weight_norm = validate_choice("weight_norm", weight_norm, WEIGHT_NORMS)
    metric = validate_choice("metric", metric, METRICS)
    block_size = validate_int("block_size", block_size, minimum=1, allow_none=True)
    distance_power = validate_float(
        "distance_power", distance_power, minimum=0.0, min_inclusive=False
    )
    weights = validate_float_matrix("weights", weights, description="[N_in, N_out]", static=True)
    p_in = validate_float_matrix(
        "p_in", p_in, description="[N_in, D]", dtype=weights.dtype, static=True
    )
    p_out = validate_float_matrix(
        "p_out", p_out, description="[N_out, D]", dtype=weights.dtype, static=True
    )
    validate_dim("p_in", p_in, 0, weights.shape[0], "one row per row of `weights`")
    validate_dim("p_out", p_out, 0, weights.shape[1], "one row per column of `weights`")
    validate_dim("p_out", p_out, 1, p_in.shape[1], "the number of coordinates of `p_in`")
    if block_size is None:
        block_size = xla.default_block_size(weights.shape[0], weights.shape[1])
    block_size = min(block_size, weights.shape[0])
    return xla.distance_weighted_l1(
        weights, p_in, p_out, weight_norm, metric, block_size, distance_power
    )
