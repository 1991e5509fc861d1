"""Histogram (binned) Shannon entropy in pure TensorFlow (Borgohain et al.)."""

import reprlib

import numpy as np
import tensorflow as tf

from tfemergent.utils.validation import validate_float, validate_int

_FLOAT_DTYPES = (tf.float32, tf.float64)


def binned_entropy(values, num_bins=100, value_range=None, axis=None):
    """Shannon entropy (nats) of the histogram of ``values``, as ``np.histogram`` bins it.

    The values are counted into ``num_bins`` equal-width bins between their
    minimum and maximum (or ``value_range``), and the entropy of the bin
    frequencies ``p_i = count_i / total`` is returned:
    ``H = -sum_i p_i log p_i`` over the non-empty bins. This is the intrinsic
    metric of the self-organising hierarchy: one entropy per autoencoder unit
    from all the values of its hidden code over an epoch, 100 bins spanning the
    min–max of those codes.

    The binning is exactly that of ``np.histogram(values, num_bins, range)``:
    the edges are ``np.linspace(lo, hi, num_bins + 1)`` computed the way numpy
    computes them (in the dtype of ``values``); every bin is half-open
    ``[edge_i, edge_{i+1})`` except the last, which is closed; a bin index is
    estimated from ``(x - lo) / (hi - lo) * num_bins`` and then corrected by
    comparing ``x`` with the edges themselves (as numpy does), so a value equal
    to an edge lands in the same bin as in numpy. If all the values are equal
    the range is widened by ±0.5 (as numpy does), every value falls into one bin
    and the entropy is 0. So for finite float data
    ``binned_entropy(x) == scipy.stats.entropy(np.histogram(x, 100)[0])`` up to
    the rounding of the final sum.

    Pure TensorFlow: it runs eagerly, inside ``tf.function`` and under XLA
    (``jit_compile=True``) with dynamic or static shapes, and is not
    differentiable (the result depends on integer counts only; the gradient is
    ``None``). The counts are identical on all three paths (XLA rewrites that
    would change the last bit of an edge are blocked, see
    ``_edges_from_range``); the entropies may differ in the last ulp because
    the final sum is reduced in a different order. Every value is counted in
    int32 (at most 2**31 - 1 values per histogram); the work is a few
    elementwise passes and one scatter-add, with temporaries the size of
    ``values``.

    Every value counts: a buffer padded with zeros has those zeros in its
    histogram, so slice it to the values you mean first.

    **Axis convention (a reduction, like ``tf.reduce_sum``).** ``axis`` names the
    axes whose values are pooled into one histogram; those axes are removed
    from the result and every index of the remaining axes gets its own
    histogram with its own min–max:

    * ``axis=None`` pools all the values and returns a scalar (the paper: one
      unit's codes ``[num_samples, num_hidden]`` → one entropy);
    * ``axis=0`` on ``[num_samples, num_hidden]`` gives one entropy per hidden
      neuron (``[num_hidden]``); ``axis=-1`` gives one per sample;
    * **batched form**: ``axis=(1, 2)`` (or ``axis=(-2, -1)``) on code buffers
      ``[K, num_samples, num_hidden]`` gives ``[K]``, one entropy per unit, each
      from its own min–max. This is one vectorised op (one scatter for all
      units), the form to use inside a compiled train step.

    Non-finite values: with the min–max range, a slice that contains ``inf`` or
    ``nan`` gets ``nan`` (numpy raises); with ``value_range`` they are outside
    the range and ignored, as numpy ignores them. Where numpy raises "Too many
    bins for data range" (a min–max range only a few ulps wide, or all values
    equal and so large that ±0.5 does not change them) this function still
    counts every value into some bin and returns a finite entropy (0 when all
    values are equal).

    Args:
        values: float32 or float64 tensor (or array-like) of known rank. Any
            other dtype is rejected: cast integers yourself so that the dtype
            of the bin edges is explicit.
        num_bins: number of equal-width bins, an integer >= 1. Defaults to 100
            (the paper's constant bin count).
        value_range: ``None`` (each histogram spans the min–max of its own
            values) or a pair of finite Python numbers ``(lo, hi)``,
            ``lo < hi``, fixed for every slice. Values outside ``[lo, hi]`` are
            ignored (not counted in the total). The pair is taken as float64
            and the edges are rounded to the dtype of ``values``, exactly as
            ``np.histogram(values, num_bins, range=(lo, hi))`` does; a range so
            narrow that the rounded edges are not increasing raises (as numpy
            does).
        axis: ``None``, an integer, or a tuple/list of distinct integers in
            ``[-rank, rank)``: the axes pooled into each histogram (see above).

    Returns:
        A tensor of the dtype of ``values`` whose shape is that of ``values``
        without ``axis`` (a scalar for ``axis=None``): the entropies in nats,
        between 0 and ``log(num_bins)``. A slice with no value to count (empty
        with a dynamic shape, or nothing inside ``value_range``) gives 0.

    Raises:
        ValueError: for a bad ``num_bins``, ``value_range`` or ``axis``, a
            non-float ``values``, values of unknown rank, or a slice that is
            statically empty.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import binned_entropy
    >>> values = np.array([0.0, 0.0, 1.0, 1.0], dtype="float32")
    >>> round(float(binned_entropy(values, num_bins=2)), 6)  # log(2)
    0.693147
    >>> float(binned_entropy(np.full((5, 3), 7.0)))  # all equal: one bin
    0.0

    One entropy per unit for a batch of code buffers ``[K, num_samples,
    num_hidden]`` (here K = 2), each with its own min–max:

    >>> codes = np.stack([np.zeros((4, 2)), np.arange(8.0).reshape(4, 2)])
    >>> entropies = binned_entropy(codes, num_bins=8, axis=(1, 2))
    >>> entropies.shape, np.round(entropies.numpy(), 6).tolist()  # 0 and log(8)
    (TensorShape([2]), [0.0, 2.079442])
    """
    num_bins = validate_int("num_bins", num_bins, minimum=1)
    value_range = _validate_value_range(value_range)
    values = _to_float_tensor(values)
    rank = values.shape.rank
    if rank is None:
        raise ValueError(
            "`values` must have a known rank (the axes to pool are chosen statically). "
            f"Received: values.shape={values.shape}"
        )
    reduced = _normalize_axis(axis, rank)
    kept = [dim for dim in range(rank) if dim not in reduced]

    static_shape = values.shape
    pooled_sizes = [static_shape[dim] for dim in reduced]
    if any(size == 0 for size in pooled_sizes):
        raise ValueError(
            "`values` has no value to histogram along the pooled axes "
            f"{tuple(reduced)}: an entropy of nothing is undefined. "
            f"Received: values.shape={static_shape}"
        )

    dynamic_shape = tf.shape(values)
    kept_shape = tf.gather(dynamic_shape, kept) if kept else tf.zeros([0], tf.int32)
    pooled_size = tf.reduce_prod(tf.gather(dynamic_shape, reduced)) if reduced else 1
    if kept and reduced and kept + reduced != list(range(rank)):
        values = tf.transpose(values, kept + reduced)
    rows = tf.reshape(values, tf.stack([tf.reduce_prod(kept_shape), pooled_size]))

    counts, finite = _histogram_counts(rows, num_bins, value_range)
    entropies = _entropy_from_counts(counts, values.dtype)
    if finite is not None:
        entropies = tf.where(finite, entropies, tf.constant(np.nan, values.dtype))
    entropies = tf.reshape(entropies, kept_shape)
    entropies.set_shape([static_shape[dim] for dim in kept])
    return entropies


def _to_float_tensor(values):
    try:
        tensor = tf.convert_to_tensor(values)
    except (TypeError, ValueError) as error:
        raise ValueError(
            "`values` must be a float32 or float64 tensor or array "
            f"({type(error).__name__}: {error}). Received: values={reprlib.repr(values)}"
        ) from None
    if tensor.dtype not in _FLOAT_DTYPES:
        raise ValueError(
            "`values` must be float32 or float64; cast other dtypes first (e.g. "
            "`tf.cast(values, 'float32')`). "
            f"Received: values.dtype={tensor.dtype.name}"
        )
    return tensor


def _validate_value_range(value_range):
    if value_range is None:
        return None
    if not isinstance(value_range, (tuple, list, np.ndarray)) or len(value_range) != 2:
        raise ValueError(
            "`value_range` must be None or a pair (lo, hi) with lo < hi. "
            f"Received: value_range={value_range!r}"
        )
    lo = validate_float("value_range[0]", value_range[0])
    hi = validate_float("value_range[1]", value_range[1])
    if not lo < hi:
        raise ValueError(
            "`value_range` must be a pair (lo, hi) with lo < hi. "
            f"Received: value_range={value_range!r}"
        )
    return lo, hi


def _normalize_axis(axis, rank):
    if axis is None:
        return list(range(rank))
    axes = list(axis) if isinstance(axis, (tuple, list)) else [axis]
    if not axes:
        raise ValueError(
            "`axis` must be None, an integer or a non-empty tuple of integers. "
            f"Received: axis={axis!r}"
        )
    if rank == 0:
        raise ValueError(
            f"`values` is a scalar, so `axis` must be None. Received: axis={axis!r}"
        )
    normalized = []
    for entry in axes:
        entry = validate_int("axis", entry, minimum=-rank, maximum=rank - 1)
        normalized.append(entry % rank)
    if len(set(normalized)) != len(normalized):
        raise ValueError(
            f"`axis` must not repeat an axis (rank {rank}). Received: axis={axis!r}"
        )
    return sorted(normalized)


def _edges_from_range(lo, hi, num_bins):
    """Per-row ``np.linspace(lo, hi, num_bins + 1)`` in the dtype of ``lo``, bit for bit.

    numpy computes ``step = (hi - lo) / num_bins`` (``arange / num_bins * delta``
    when the step underflows to 0), ``edges = arange * step + lo`` and sets the last
    edge to ``hi``. Two XLA rewrites would change the last bits and move values
    that sit exactly on an edge into the neighbouring bin, so they are blocked:

    * division by the constant ``num_bins`` becomes a multiplication by its
      reciprocal: the divisor is made a run-time value (``where(is_finite(delta),
      num_bins, delta)``; ``lo`` and ``hi`` are finite here, so it is
      ``num_bins``);
    * ``arange * step + lo`` is contracted into a fused multiply-add (one
      rounding instead of two): the products go through a ``sort`` (they are
      already sorted, as ``step >= 0``), which XLA does not fuse with its
      consumers.
    """
    dtype = lo.dtype
    delta = hi - lo
    divisor = tf.where(tf.math.is_finite(delta), tf.cast(num_bins, dtype), delta)
    step = delta / divisor
    positions = tf.range(num_bins + 1, dtype=dtype)[tf.newaxis, :]
    scaled = tf.where(
        (step == 0)[:, tf.newaxis],
        positions / divisor[:, tf.newaxis] * delta[:, tf.newaxis],
        positions * step[:, tf.newaxis],
    )
    scaled = tf.sort(scaled, axis=1)
    edges = scaled + lo[:, tf.newaxis]
    return tf.concat([edges[:, :num_bins], hi[:, tf.newaxis]], axis=1)


def _histogram_counts(rows, num_bins, value_range):
    """``np.histogram`` counts of each row of ``rows`` ``[B, M]`` -> int32 ``[B, num_bins]``.

    Also returns a ``[B]`` bool "range is finite" mask (``None`` when
    ``value_range`` is given).
    """
    dtype = rows.dtype
    num_rows = tf.shape(rows)[0]
    if value_range is None:
        lo = tf.reduce_min(rows, axis=1)
        hi = tf.reduce_max(rows, axis=1)
        finite = tf.reduce_all(tf.math.is_finite(rows), axis=1)
        # numpy widens an empty range by 0.5 on both sides.
        equal = tf.equal(lo, hi)
        lo = tf.where(equal, lo - 0.5, lo)
        hi = tf.where(equal, hi + 0.5, hi)
        # Rows that are empty or non-finite: any finite, valid edges will do.
        valid = finite & tf.math.is_finite(lo) & tf.math.is_finite(hi)
        lo = tf.where(valid, lo, tf.zeros_like(lo))
        hi = tf.where(valid, hi, tf.ones_like(hi))
        edges = _edges_from_range(lo, hi, num_bins)
    else:
        finite = None
        np_edges = np.linspace(value_range[0], value_range[1], num_bins + 1).astype(
            dtype.as_numpy_dtype
        )
        if np.any(np_edges[:-1] >= np_edges[1:]):
            raise ValueError(
                f"`value_range` is too narrow for {num_bins} bins in {dtype.name}: the bin "
                "edges are not increasing once rounded (np.histogram raises too). Use a "
                "wider range or fewer bins. "
                f"Received: value_range={value_range!r}, num_bins={num_bins}"
            )
        edges = tf.broadcast_to(tf.constant(np_edges, dtype), tf.stack([num_rows, num_bins + 1]))

    first = edges[:, :1]
    last = edges[:, num_bins:]
    in_range = (rows >= first) & (rows <= last)  # also drops nan
    safe = tf.where(in_range, rows, first)
    # Estimate, then correct against the edges, as np.histogram does.
    # (divide_no_nan: all-equal values too large for the ±0.5 widening to change them.)
    estimate = tf.math.divide_no_nan(safe - first, last - first) * tf.cast(num_bins, dtype)
    index = tf.clip_by_value(tf.cast(estimate, tf.int32), 0, num_bins - 1)
    left = tf.gather(edges, index, batch_dims=1)
    index = tf.where(safe < left, index - 1, index)
    right = tf.gather(edges, index + 1, batch_dims=1)
    index = tf.where((safe >= right) & (index != num_bins - 1), index + 1, index)
    # Values outside the range go to an extra bin that is dropped.
    index = tf.where(in_range, index, num_bins)

    row_offsets = tf.range(num_rows)[:, tf.newaxis] * (num_bins + 1)
    counts = tf.math.unsorted_segment_sum(
        tf.ones_like(index), index + row_offsets, num_rows * (num_bins + 1)
    )
    counts = tf.reshape(counts, tf.stack([num_rows, num_bins + 1]))[:, :num_bins]
    return counts, finite


def _entropy_from_counts(counts, dtype):
    counts = tf.cast(counts, dtype)
    total = tf.reduce_sum(counts, axis=1, keepdims=True)
    probabilities = counts / tf.maximum(total, tf.ones_like(total))
    nonempty = counts > 0
    logs = tf.math.log(tf.where(nonempty, probabilities, tf.ones_like(probabilities)))
    terms = tf.where(nonempty, probabilities * logs, tf.zeros_like(logs))
    # Every term is <= 0; abs turns the -0.0 of a single full bin into 0.0.
    return tf.abs(tf.reduce_sum(terms, axis=1))
