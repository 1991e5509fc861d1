"""Pure-TensorFlow / XLA implementations of the tfemergent kernels.

This module is private: layers and users call the validated public functions in
`tfemergent.kernels`, which dispatch here. Functions in this module assume that
their arguments have already been validated (ranks, dtypes, static sizes).

Every heavy computation is wrapped by `xla_function`, so it is compiled by XLA
whether it is called eagerly, from an ordinary graph, in a `tf.distribute` replica
context (a nested `tf.function(jit_compile=True)`), or from inside another
jit-compiled function (then its ops simply join the outer XLA computation).
Configuration that changes the computation (metric, weight norm, block size,
dimensions) is passed as Python values and is therefore part of the trace key.

Gradients are custom (`tf.custom_gradient`) and computed by compiled backward
functions; the tape never differentiates through a compiled function. That keeps
the blocked loops' intermediates out of memory and avoids a slow path of
differentiating nested jit-compiled functions.
"""

import math

import tensorflow as tf

from tfemergent.utils import _private

# Default number of elements in one block of the blocked distance kernels: 2**18
# (1 MiB in float32). A few such blocks live at a time, so the extra memory of the
# forward and backward pass stays small next to an [N_in, N_out] weight matrix.
DEFAULT_BLOCK_ELEMENTS = 2**18

in_xla_context = _private.in_xla_context


def xla_function(python_function):
    """Run ``python_function`` compiled by XLA.

    Eagerly or inside an ordinary graph it calls a `tf.function(jit_compile=True)`
    of it. Inside a function that is already being compiled by XLA it calls the
    Python function directly, so its ops join the outer XLA computation (a nested
    compiled function call costs a function boundary for nothing there).
    Configuration passed as Python values is part of the trace key.
    """
    compiled = tf.function(python_function, jit_compile=True)

    def call(*args):
        if in_xla_context():
            return python_function(*args)
        return compiled(*args)

    call.__name__ = python_function.__name__
    call.__doc__ = python_function.__doc__
    call.python_function = python_function
    call.compiled = compiled
    return call


# ----------------------------------------------------------------------------
# Distances
# ----------------------------------------------------------------------------


def _coordinate_differences(a, b):
    """``[a_ik - b_jk]`` for each coordinate k: a list of D tensors [N, M].

    D is static and small (positions live in 2-D or 3-D), so exact per-coordinate
    differences are cheap and, unlike ``|a|^2 + |b|^2 - 2 a.b``, they do not lose
    precision for nearby points.
    """
    return [a[:, k, None] - b[None, :, k] for k in range(a.shape[1])]


def _distances(differences, metric):
    if metric == "euclidean":
        return tf.sqrt(tf.add_n([diff * diff for diff in differences]))
    return tf.add_n([tf.abs(diff) for diff in differences])


def _unit_directions(differences, distances, metric):
    """d distance / d a_k for each coordinate k; 0 where it is undefined.

    Euclidean: ``(a_k - b_k) / d`` with 0 where ``d == 0``. Manhattan:
    ``sign(a_k - b_k)`` with 0 where the coordinates coincide. Both choices are
    valid subgradients (0 lies in the subdifferential of a norm at 0).
    """
    if metric == "euclidean":
        return [tf.math.divide_no_nan(diff, distances) for diff in differences]
    return [tf.sign(diff) for diff in differences]


def _powered_distances(differences, metric, power):
    """``d ** power`` for each pair; the power is a static Python float.

    ``power == 1`` is the plain distance; the Euclidean ``power == 2`` is the sum of
    squared differences (no square root and square).
    """
    if power == 1.0:
        return _distances(differences, metric)
    if power == 2.0 and metric == "euclidean":
        return tf.add_n([diff * diff for diff in differences])
    return tf.pow(_distances(differences, metric), power)


def _powered_directions(differences, metric, power):
    """``d (d ** power) / d a_k`` for each coordinate k; 0 where ``d == 0``.

    ``power * d ** (power - 1) * u_k`` with the unit directions ``u_k`` of
    `_unit_directions`. At ``d == 0`` the subgradient 0 is used for every power:
    it is the true derivative for ``power > 1``, a valid subgradient for
    ``power == 1``, and for ``power < 1`` (where the derivative diverges) a finite
    stand-in.
    """
    if power == 1.0:
        return _unit_directions(differences, _distances(differences, metric), metric)
    if power == 2.0 and metric == "euclidean":
        return [2.0 * diff for diff in differences]
    distances = _distances(differences, metric)
    positive = distances > 0
    safe = tf.where(positive, distances, tf.ones_like(distances))
    scale = tf.where(positive, power * tf.pow(safe, power - 1.0), tf.zeros_like(distances))
    return [scale * u for u in _unit_directions(differences, distances, metric)]


@xla_function
def _pairwise_distances_forward(p, q, metric):
    return _distances(_coordinate_differences(p, q), metric)


@xla_function
def _pairwise_distances_backward(p, q, distances, upstream, metric):
    directions = _unit_directions(_coordinate_differences(p, q), distances, metric)
    grad_p = tf.stack([tf.reduce_sum(upstream * u, axis=1) for u in directions], axis=1)
    grad_q = -tf.stack([tf.reduce_sum(upstream * u, axis=0) for u in directions], axis=1)
    return grad_p, grad_q


def pairwise_distances(p, q, metric):
    """[N, M] distances with a finite custom gradient (see the public function)."""

    @tf.custom_gradient
    def _distances_with_gradient(p, q):
        # stop_gradient: the tape must not differentiate the compiled function
        # itself (that would record its intermediates); the custom gradient below
        # replaces it.
        p, q = tf.stop_gradient(p), tf.stop_gradient(q)
        distances = _pairwise_distances_forward(p, q, metric)

        def grad(upstream):
            return _pairwise_distances_backward(p, q, distances, upstream, metric)

        return distances, grad

    return _distances_with_gradient(p, q)


# ----------------------------------------------------------------------------
# Distance-weighted L1 (transport cost)
# ----------------------------------------------------------------------------


def _weight_cost(weights, weight_norm):
    if weight_norm == "l1":
        return tf.abs(weights)
    return tf.square(weights)


def _weight_cost_derivative(weights, weight_norm):
    if weight_norm == "l1":
        return tf.sign(weights)  # subgradient 0 at w == 0
    return 2.0 * weights


def default_block_size(num_rows, num_cols):
    """Rows per block so that a block holds at most DEFAULT_BLOCK_ELEMENTS."""
    return max(1, min(num_rows, DEFAULT_BLOCK_ELEMENTS // max(num_cols, 1)))


def _block_layout(num_rows, block_size):
    block_size = max(1, min(block_size, num_rows))
    return block_size, math.ceil(num_rows / block_size)


def _block(i, weights, p_in, block_size):
    """Rows ``[start, start + block_size)`` of the weights and input positions.

    The last block is shifted back so that it stays inside the matrix (XLA needs a
    static block size); ``fresh`` marks the rows that no earlier block covered.
    """
    num_rows = weights.shape[0]
    start = tf.minimum(i * block_size, num_rows - block_size)
    weight_block = tf.slice(weights, [start, 0], [block_size, weights.shape[1]])
    p_in_block = tf.slice(p_in, [start, 0], [block_size, p_in.shape[1]])
    rows = start + tf.range(block_size)
    fresh = rows >= i * block_size
    return rows, fresh, weight_block, p_in_block


@xla_function
def _distance_weighted_l1_forward(
    weights, p_in, p_out, weight_norm, metric, block_size, distance_power
):
    block_size, num_blocks = _block_layout(weights.shape[0], block_size)
    dtype = weights.dtype
    if num_blocks == 1:  # the whole matrix is one block: no loop
        distances = _powered_distances(
            _coordinate_differences(p_in, p_out), metric, distance_power
        )
        return tf.reduce_sum(_weight_cost(weights, weight_norm) * distances)

    def body(i, total):
        _, fresh, weight_block, p_in_block = _block(i, weights, p_in, block_size)
        distances = _powered_distances(
            _coordinate_differences(p_in_block, p_out), metric, distance_power
        )
        row_cost = tf.reduce_sum(_weight_cost(weight_block, weight_norm) * distances, axis=1)
        return i + 1, total + tf.reduce_sum(tf.where(fresh, row_cost, tf.zeros_like(row_cost)))

    _, total = tf.while_loop(
        lambda i, total: i < num_blocks,
        body,
        (tf.constant(0), tf.zeros([], dtype)),
        parallel_iterations=1,
    )
    return total


@xla_function
def _distance_weighted_l1_backward(
    weights, p_in, p_out, upstream, weight_norm, metric, block_size, distance_power
):
    block_size, num_blocks = _block_layout(weights.shape[0], block_size)
    dimension = p_in.shape[1]

    # d cost / d w = f'(w) * d**power: an elementwise expression of w and broadcast
    # coordinates, which XLA fuses into one pass that writes the output directly
    # (no [N_in, N_out] temporaries; see benchmarks/bench_distance_cost.py).
    distances = _powered_distances(_coordinate_differences(p_in, p_out), metric, distance_power)
    grad_weights = upstream * _weight_cost_derivative(weights, weight_norm) * distances
    if num_blocks == 1:  # the whole matrix is one block: no loop
        cost = _weight_cost(weights, weight_norm)
        directions = _powered_directions(
            _coordinate_differences(p_in, p_out), metric, distance_power
        )
        grad_p_in = tf.stack([tf.reduce_sum(cost * u, axis=1) for u in directions], axis=1)
        grad_p_out = -tf.stack([tf.reduce_sum(cost * u, axis=0) for u in directions], axis=1)
        return grad_weights, upstream * grad_p_in, upstream * grad_p_out

    # Position gradients, one block of rows at a time:
    #   grad_p_in_i  =  sum_j f(w_ij) v_ij,   grad_p_out_j = -sum_i f(w_ij) v_ij
    # with v_ij = d (d_ij**power) / d p_in_i = power * d_ij**(power - 1) * u_ij,
    # u_ij = (p_in_i - p_out_j) / d_ij (euclidean) or sign(p_in_i - p_out_j)
    # (manhattan), and v_ij = 0 where d_ij = 0 or u_ij is undefined.
    def body(i, grad_p_in, grad_p_out):
        rows, fresh, weight_block, p_in_block = _block(i, weights, p_in, block_size)
        differences = _coordinate_differences(p_in_block, p_out)
        cost = _weight_cost(weight_block, weight_norm)
        cost = tf.where(fresh[:, None], cost, tf.zeros_like(cost))
        directions = _powered_directions(differences, metric, distance_power)
        block_p_in = tf.stack([tf.reduce_sum(cost * u, axis=1) for u in directions], axis=1)
        block_p_out = tf.stack([tf.reduce_sum(cost * u, axis=0) for u in directions], axis=1)
        grad_p_in = tf.tensor_scatter_nd_add(grad_p_in, rows[:, None], block_p_in)
        return i + 1, grad_p_in, grad_p_out - block_p_out

    _, grad_p_in, grad_p_out = tf.while_loop(
        lambda i, *_: i < num_blocks,
        body,
        (
            tf.constant(0),
            tf.zeros([weights.shape[0], dimension], weights.dtype),
            tf.zeros([weights.shape[1], dimension], weights.dtype),
        ),
        parallel_iterations=1,
    )
    return grad_weights, upstream * grad_p_in, upstream * grad_p_out


def distance_weighted_l1(weights, p_in, p_out, weight_norm, metric, block_size, distance_power=1.0):
    """Blocked sum_ij f(w_ij) d(p_in_i, p_out_j)**distance_power with a custom gradient."""
    distance_power = float(distance_power)

    @tf.custom_gradient
    def _cost_with_gradient(weights, p_in, p_out):
        # stop_gradient: the tape must not differentiate the compiled loop itself
        # (that would keep every block's intermediates alive for a backward pass
        # that the custom gradient below replaces).
        weights, p_in, p_out = (tf.stop_gradient(t) for t in (weights, p_in, p_out))
        total = _distance_weighted_l1_forward(
            weights, p_in, p_out, weight_norm, metric, block_size, distance_power
        )

        def grad(upstream):
            return _distance_weighted_l1_backward(
                weights, p_in, p_out, upstream, weight_norm, metric, block_size, distance_power
            )

        return total, grad

    return _cost_with_gradient(weights, p_in, p_out)


# ----------------------------------------------------------------------------
# Masked matmul
# ----------------------------------------------------------------------------


def dense_masked_matmul(x, kernel, mask):
    """``x @ (kernel * mask)``; the mask is a constant (no gradient)."""
    mask = tf.stop_gradient(tf.cast(mask, kernel.dtype))
    return tf.matmul(x, kernel * mask)


def _block_addresses(row_index, col_index, input_dim, output_dim):
    """Flat kernel addresses [B, R, C] of the blocks and which of them are real.

    Sentinel entries get a clamped (valid) address; callers zero them with
    ``valid``. This replaces copying the kernel into a zero-padded
    ``[N_in + 1, N_out + 1]`` matrix (a full pass over the kernel) in the forward
    pass and slicing that padding off the gradient in the backward pass.
    """
    valid = tf.logical_and(
        (row_index < input_dim)[:, :, None], (col_index < output_dim)[:, None, :]
    )
    rows = tf.minimum(row_index, input_dim - 1)
    cols = tf.minimum(col_index, output_dim - 1)
    if input_dim * output_dim >= 2**31:  # flat addresses overflow int32
        rows, cols = tf.cast(rows, tf.int64), tf.cast(cols, tf.int64)
    return rows[:, :, None] * output_dim + cols[:, None, :], valid


def _inverse_positions(index, size):
    """For each of ``size`` slots, the flat position in ``index`` that holds it.

    Slots that ``index`` does not hold get ``index.size`` (one past the end: the
    caller appends a zero there); sentinel entries (value ``size``) are dropped.
    Requires each slot at most once in ``index``.
    """
    count = index.shape[0] * index.shape[1]
    return tf.tensor_scatter_nd_update(
        tf.fill([size + 1], count), tf.reshape(index, [-1, 1]), tf.range(count)
    )[:size]


@xla_function
def _block_masked_matmul_forward(x, kernel, row_index, col_index):
    """Forward pass; also returns the gathered blocks for the backward pass.

    Works block-major with the batch last (``[B, R, batch]``): the gathers then
    copy contiguous rows and the block products are plain batched matmuls.
    """
    input_dim, output_dim = kernel.shape
    num_blocks, num_cols = col_index.shape

    # x.T[row_index] with a zero row for the sentinel: [B, R, batch].
    x_blocks = tf.gather(tf.pad(tf.transpose(x), [[0, 1], [0, 0]]), row_index)
    # kernel[row_index][:, col_index] per block, zero at sentinels: [B, R, C].
    addresses, valid = _block_addresses(row_index, col_index, input_dim, output_dim)
    kernel_blocks = tf.gather(tf.reshape(kernel, [-1]), addresses)
    kernel_blocks = tf.where(valid, kernel_blocks, tf.zeros_like(kernel_blocks))

    outputs = tf.matmul(kernel_blocks, x_blocks, transpose_a=True)  # [B, C, batch]

    # Place the block outputs into the N_out columns with one gather through the
    # inverse permutation; columns in no block read an appended zero row and the
    # sentinel column (index N_out) is dropped.
    outputs = tf.reshape(outputs, [num_blocks * num_cols, -1])
    outputs = tf.pad(outputs, [[0, 1], [0, 0]])
    outputs = tf.gather(outputs, _inverse_positions(col_index, output_dim))
    return tf.transpose(outputs), x_blocks, kernel_blocks


@xla_function
def _block_masked_matmul_backward(
    upstream, x_blocks, kernel_blocks, row_index, col_index, input_dim, output_dim, disjoint_rows
):
    """Gradients w.r.t. x [batch, N_in] and kernel [N_in, N_out] (dense, zero off-mask)."""
    # Each column is in at most one block, so the gradient of the placement is a
    # gather (sentinel columns read an appended zero row): [B, C, batch].
    upstream_blocks = tf.gather(tf.pad(tf.transpose(upstream), [[0, 1], [0, 0]]), col_index)

    grad_kernel_blocks = tf.matmul(x_blocks, upstream_blocks, transpose_b=True)  # [B, R, C]
    addresses, valid = _block_addresses(row_index, col_index, input_dim, output_dim)
    grad_kernel_blocks = tf.where(valid, grad_kernel_blocks, tf.zeros_like(grad_kernel_blocks))
    # Real entries have distinct addresses; sentinels add exact zeros.
    grad_kernel = tf.scatter_nd(
        tf.reshape(addresses, [-1, 1]),
        tf.reshape(grad_kernel_blocks, [-1]),
        [input_dim * output_dim],
    )
    grad_kernel = tf.reshape(grad_kernel, [input_dim, output_dim])

    grad_x_blocks = tf.matmul(kernel_blocks, upstream_blocks)  # [B, R, batch]
    grad_x_blocks = tf.reshape(grad_x_blocks, [-1, tf.shape(upstream)[0]])
    if disjoint_rows:
        # Each row in at most one block: a gather through the inverse permutation.
        grad_x_blocks = tf.pad(grad_x_blocks, [[0, 1], [0, 0]])
        grad_x = tf.gather(grad_x_blocks, _inverse_positions(row_index, input_dim))
    else:
        # Rows may be shared by several blocks: sum their contributions.
        grad_x = tf.math.unsorted_segment_sum(
            grad_x_blocks, tf.reshape(row_index, [-1]), input_dim + 1
        )[:input_dim]
    return tf.transpose(grad_x), grad_kernel


def block_masked_matmul(x, kernel, row_index, col_index, disjoint_rows=False):
    """``x @ (kernel * mask)`` for a block mask given by padded row/column indices.

    Block ``b`` multiplies the input columns ``x[:, row_index[b]]`` by the kernel
    block ``kernel[row_index[b]][:, col_index[b]]`` (one batched matmul over the
    blocks) and writes the output columns ``col_index[b]``. Padding sentinels
    (``N_in`` in `row_index`, ``N_out`` in `col_index`) read zeros and write a
    dropped column, so blocks of unequal sizes stay exact. The custom gradient
    reaches only the gathered (unmasked) kernel entries; every other kernel entry
    gets exactly zero. Requires each column in at most one block and unique rows
    within a block (the `BlockMask` invariants); ``disjoint_rows=True`` promises
    that each row is in at most one block too (the input gradient is then a gather
    instead of a scatter-add).
    """
    input_dim, output_dim = kernel.shape
    row_index = tf.cast(row_index, tf.int32)
    col_index = tf.cast(col_index, tf.int32)

    @tf.custom_gradient
    def _matmul_with_gradient(x, kernel):
        # stop_gradient: the tape must not differentiate the compiled function
        # itself; the custom gradient below replaces it.
        x, kernel = tf.stop_gradient(x), tf.stop_gradient(kernel)
        outputs, x_blocks, kernel_blocks = _block_masked_matmul_forward(
            x, kernel, row_index, col_index
        )

        def grad(upstream):
            return _block_masked_matmul_backward(
                upstream,
                x_blocks,
                kernel_blocks,
                row_index,
                col_index,
                input_dim,
                output_dim,
                disjoint_rows,
            )

        return outputs, grad

    return _matmul_with_gradient(x, kernel)


# ----------------------------------------------------------------------------
# Block-stored matmul
# ----------------------------------------------------------------------------
#
# Layout: block-major with the batch in the middle, ``[B, batch, K]``. XLA's CPU
# dot wants the batch dimension of a batched matmul outermost, and this layout
# makes two of the three products plain (non-transposed) batched matmuls and
# lets every gather below read and write whole rows of ``[batch, N]`` matrices.
# Measured alternatives (benchmarks/RESULTS.md): a feature-major layout
# ``[B, K, batch]`` needs a separate transpose of x, upstream, outputs and input
# gradient (XLA's CPU transposes cost about two copies each); gathers along the
# feature axis with `tf.gather(..., axis=1)` or `tf.gather_nd` lower to slower
# element-wise gathers; `tf.einsum("nbr,brc->nbc")` adds transposes around the
# dot; letting the tape differentiate the gathers gives scatter-adds.


def _take_columns(t, index):
    """``out[b, m, k] = t[m, index[b, k]]``, 0 for the sentinel ``t.shape[1]``: [B, batch, K].

    A gather with the batch as gather batch dimension reads each row of ``t``
    once with two-dimensional indices (no flat-index arithmetic); the transpose
    to block-major order is one cheap copy.
    """
    num_blocks, size = index.shape
    batch = tf.shape(t)[0]
    padded = tf.pad(t, [[0, 0], [0, 1]])
    positions = tf.broadcast_to(
        tf.reshape(index, [1, num_blocks * size]), [batch, num_blocks * size]
    )
    taken = tf.gather(padded, positions, batch_dims=1)
    return tf.transpose(tf.reshape(taken, [batch, num_blocks, size]), [1, 0, 2])


def _place_columns(blocks, inverse):
    """``out[m, j] = blocks[b, m, k]`` where ``inverse[j] = b * K + k`` (``B * K``: 0).

    The inverse of `_take_columns` for indices that hold each column at most once;
    XLA fuses the transpose into the gather, so this is one pass.
    """
    num_blocks, _, size = blocks.shape
    batch = tf.shape(blocks)[1]
    flat = tf.reshape(tf.transpose(blocks, [1, 0, 2]), [batch, num_blocks * size])
    flat = tf.pad(flat, [[0, 0], [0, 1]])
    positions = tf.broadcast_to(inverse[None, :], [batch, inverse.shape[0]])
    return tf.gather(flat, positions, batch_dims=1)


def _sum_columns(blocks, index, size):
    """``out[m, i] = sum of blocks[b, m, k] over index[b, k] == i``: [batch, size].

    For indices that may hold a column several times (overlapping receptive
    fields). Sentinels become segment -1, which the scatter drops; keeping the
    result ``[size, batch]`` (no sentinel row to slice off) keeps the final
    transpose on XLA's fast path.
    """
    num_blocks, _, block_size = blocks.shape
    batch = tf.shape(blocks)[1]
    segments = tf.reshape(tf.where(index < size, index, -tf.ones_like(index)), [-1])
    data = tf.reshape(tf.transpose(blocks, [0, 2, 1]), [num_blocks * block_size, batch])
    return tf.transpose(tf.math.unsorted_segment_sum(data, segments, size))


def _block_valid(row_index, col_index, input_dim, output_dim):
    """[B, R, C] bool: which block entries are real (not padding)."""
    return tf.logical_and(
        (row_index < input_dim)[:, :, None], (col_index < output_dim)[:, None, :]
    )


@xla_function
def _block_matmul_forward(x, block_kernel, row_index, col_index, output_dim, mask_padding):
    """Outputs [batch, N_out] and the gathered inputs [B, batch, R] for the backward pass."""
    if mask_padding:
        valid = _block_valid(row_index, col_index, x.shape[1], output_dim)
        block_kernel = tf.where(valid, block_kernel, tf.zeros_like(block_kernel))
    x_blocks = _take_columns(x, row_index)  # [B, batch, R]
    outputs = tf.matmul(x_blocks, block_kernel)  # [B, batch, C]
    return _place_columns(outputs, _inverse_positions(col_index, output_dim)), x_blocks


@xla_function
def _block_matmul_backward(
    upstream, x_blocks, block_kernel, row_index, col_index, input_dim, disjoint_rows, mask_padding
):
    """Gradients w.r.t. x [batch, N_in] and the block kernel [B, R, C]."""
    if mask_padding:
        valid = _block_valid(row_index, col_index, input_dim, upstream.shape[1])
        block_kernel = tf.where(valid, block_kernel, tf.zeros_like(block_kernel))
    # Each column is in at most one block: the gradient of the placement is a take.
    upstream_blocks = _take_columns(upstream, col_index)  # [B, batch, C]
    grad_kernel = tf.matmul(x_blocks, upstream_blocks, transpose_a=True)  # [B, R, C]
    if mask_padding:
        grad_kernel = tf.where(valid, grad_kernel, tf.zeros_like(grad_kernel))
    grad_x_blocks = tf.matmul(upstream_blocks, block_kernel, transpose_b=True)  # [B, batch, R]
    if disjoint_rows:
        grad_x = _place_columns(grad_x_blocks, _inverse_positions(row_index, input_dim))
    else:
        grad_x = _sum_columns(grad_x_blocks, row_index, input_dim)
    return grad_x, grad_kernel


# Features-first variant, ``x [N_in, batch]`` -> ``[N_out, batch]``, for callers
# that keep their activations one row per feature (the hierarchy's cell-major
# map): the gathers then copy whole rows and no transpose is needed.


@xla_function
def _block_matmul_features_first_forward(
    x, block_kernel, row_index, col_index, output_dim, mask_padding
):
    """Outputs [N_out, batch] and the gathered inputs [B, R, batch] for the backward pass."""
    if mask_padding:
        valid = _block_valid(row_index, col_index, x.shape[0], output_dim)
        block_kernel = tf.where(valid, block_kernel, tf.zeros_like(block_kernel))
    x_blocks = tf.gather(tf.pad(x, [[0, 1], [0, 0]]), row_index)  # [B, R, batch]
    outputs = tf.matmul(block_kernel, x_blocks, transpose_a=True)  # [B, C, batch]
    num_blocks, num_cols = col_index.shape
    outputs = tf.pad(tf.reshape(outputs, [num_blocks * num_cols, -1]), [[0, 1], [0, 0]])
    return tf.gather(outputs, _inverse_positions(col_index, output_dim)), x_blocks


@xla_function
def _block_matmul_features_first_backward(
    upstream, x_blocks, block_kernel, row_index, col_index, input_dim, disjoint_rows, mask_padding
):
    """Gradients w.r.t. x [N_in, batch] and the block kernel [B, R, C]."""
    if mask_padding:
        valid = _block_valid(row_index, col_index, input_dim, upstream.shape[0])
        block_kernel = tf.where(valid, block_kernel, tf.zeros_like(block_kernel))
    upstream_blocks = tf.gather(tf.pad(upstream, [[0, 1], [0, 0]]), col_index)  # [B, C, batch]
    grad_kernel = tf.matmul(x_blocks, upstream_blocks, transpose_b=True)  # [B, R, C]
    if mask_padding:
        grad_kernel = tf.where(valid, grad_kernel, tf.zeros_like(grad_kernel))
    grad_x_blocks = tf.matmul(block_kernel, upstream_blocks)  # [B, R, batch]
    grad_x_blocks = tf.reshape(grad_x_blocks, [-1, tf.shape(upstream)[1]])
    if disjoint_rows:
        grad_x_blocks = tf.pad(grad_x_blocks, [[0, 1], [0, 0]])
        grad_x = tf.gather(grad_x_blocks, _inverse_positions(row_index, input_dim))
    else:
        grad_x = tf.math.unsorted_segment_sum(
            grad_x_blocks, tf.reshape(row_index, [-1]), input_dim + 1
        )[:input_dim]
    return grad_x, grad_kernel


def block_matmul(
    x, block_kernel, row_index, col_index, output_dim, disjoint_rows=False, mask_padding=True,
    features_first=False,
):
    """``x @ scatter(block_kernel)`` for block-stored weights (see the public function).

    ``x`` is ``[batch, N_in]``; ``block_kernel[b, r, c]`` is the weight from input
    ``row_index[b, r]`` to output ``col_index[b, c]``; sentinel entries (``N_in``
    in `row_index`, ``output_dim`` in `col_index`) are ignored and get zero
    gradient. The custom gradient returns the block-shaped kernel gradient, so no
    ``[N_in, N_out]`` tensor is formed. Requires the `BlockMask` invariants;
    ``disjoint_rows=True`` promises each row in at most one block (the input
    gradient is then a gather instead of a scatter-add). ``mask_padding=False``
    promises that the indices hold no sentinel and skips zeroing padded kernel
    entries (two passes over the block kernel). Padded entries would otherwise
    only meet exact zeros (sentinels read zero inputs and write dropped
    outputs); the zeroing keeps non-finite padding values out of the results.
    ``features_first=True`` takes ``x`` as ``[N_in, batch]`` and returns
    ``[N_out, batch]`` (the input gradient has the shape of ``x``).
    """
    input_dim = x.shape[0] if features_first else x.shape[1]
    row_index = tf.cast(row_index, tf.int32)
    col_index = tf.cast(col_index, tf.int32)
    if features_first:
        forward, backward = (
            _block_matmul_features_first_forward,
            _block_matmul_features_first_backward,
        )
    else:
        forward, backward = _block_matmul_forward, _block_matmul_backward

    @tf.custom_gradient
    def _matmul_with_gradient(x, block_kernel):
        # stop_gradient: the tape must not differentiate the compiled function
        # itself; the custom gradient below replaces it.
        x, block_kernel = tf.stop_gradient(x), tf.stop_gradient(block_kernel)
        outputs, x_blocks = forward(
            x, block_kernel, row_index, col_index, output_dim, mask_padding
        )

        def grad(upstream):
            return backward(
                upstream,
                x_blocks,
                block_kernel,
                row_index,
                col_index,
                input_dim,
                disjoint_rows,
                mask_padding,
            )

        return outputs, grad

    return _matmul_with_gradient(x, block_kernel)


# ----------------------------------------------------------------------------
# Sparse matmul
# ----------------------------------------------------------------------------
#
# ``x [batch, N_in] @ K`` for a kernel K [N_in, N_out] stored as COO indices
# (canonical row-major order) and values. The forward and input-gradient
# products are TensorFlow's multithreaded CSR product (`SparseMatrixMatMul`, the
# CSR matrix built from the COO kernel in one O(nnz) pass), rather than
# `tf.sparse.sparse_dense_matmul` (a single-threaded axpy per nonzero) or an XLA
# gather + unsorted segment sum (a serial scatter-add). The values gradient (a
# sampled dense-dense product) has no TensorFlow op; it is XLA row gathers and a
# batch reduction fused into one loop (the [nnz, batch] products are never
# materialised, as TensorFlow's gather would), over chunks of
# SAMPLED_PRODUCT_WIDTH batch columns so that the gathered rows stay in the L2
# cache. The comparisons behind these choices are in benchmarks/RESULTS.md,
# "Kernel design measurements".

CSR_DTYPES = (tf.float32, tf.float64)


# Batch columns per pass of the sampled product: the gathered [N, 16] row matrices
# (320 KiB at N = 5000) stay in the L2 cache, where gathering whole [N, batch]
# rows at random misses it (16 beat 8, 32 and the full batch: see RESULTS.md).
SAMPLED_PRODUCT_WIDTH = 16


@xla_function
def _sampled_products(a_rows, b_rows, rows, cols):
    """``sum_m a_rows[rows[k], m] * b_rows[cols[k], m]`` for each nonzero k: [nnz].

    One fusion: the gathered rows are not materialised.
    """
    return tf.reduce_sum(tf.gather(a_rows, rows) * tf.gather(b_rows, cols), axis=1)


def _column_chunks(t, width):
    """``[batch, N]`` -> ``[num_chunks, N, width]`` (batch zero-padded to a multiple)."""
    batch = tf.shape(t)[0]
    num_chunks = (batch + width - 1) // width
    t = tf.pad(t, [[0, num_chunks * width - batch], [0, 0]])
    return tf.transpose(tf.reshape(t, [num_chunks, width, t.shape[1]]), [0, 2, 1]), num_chunks


def _sampled_dense_products(x, upstream, rows, cols):
    """``sum_b x[b, rows[k]] * upstream[b, cols[k]]`` for each nonzero k: [nnz].

    The gradient of ``x @ K`` w.r.t. the values of a sparse K, without the dense
    ``x.T @ upstream``: `_sampled_products` over chunks of
    `SAMPLED_PRODUCT_WIDTH` batch columns (a Python loop for a static batch, a
    `tf.while_loop` otherwise), each one compiled call.
    """
    width = SAMPLED_PRODUCT_WIDTH
    x_chunks, num_chunks = _column_chunks(x, width)
    upstream_chunks, _ = _column_chunks(upstream, width)
    if x.shape[0] is not None:
        return tf.add_n(
            [
                _sampled_products(x_chunks[k], upstream_chunks[k], rows, cols)
                for k in range(-(-x.shape[0] // width))
            ]
        )

    def body(k, total):
        return k + 1, total + _sampled_products(x_chunks[k], upstream_chunks[k], rows, cols)

    total = tf.zeros(tf.shape(rows), x.dtype)
    return tf.while_loop(lambda k, _: k < num_chunks, body, [0, total])[1]


def _gather_sparse_matmul(x, rows, cols, values, output_dim):
    """``x @ K`` as a gather of input columns and a segment sum (XLA-compilable)."""
    products = tf.gather(tf.transpose(x), rows) * values[:, None]  # [nnz, batch]
    return tf.transpose(tf.math.unsorted_segment_sum(products, cols, output_dim))


def sparse_transpose_order(indices, input_dim):
    """Positions of the nonzeros of a row-major COO kernel in column-major order: [nnz]."""
    indices = tf.cast(indices, tf.int64)
    return tf.argsort(indices[:, 1] * input_dim + indices[:, 0], stable=True)


def sparse_matmul(x, indices, values, input_dim, output_dim, transpose_order=None):
    """``x @ K`` for ``K = SparseTensor(indices, values, [input_dim, output_dim])``.

    ``indices`` must be in canonical row-major order (the CSR conversion relies
    on it); ``transpose_order`` is `sparse_transpose_order` of them (computed
    here, one sort per call, when not given). Outside XLA: the forward product
    is a CSR product with ``K^T`` (its CSR built from the values gathered in
    column-major order), the input gradient a CSR product with ``K``, and the
    values gradient `_sampled_dense_products` evaluated in column-major order
    (each upstream row then serves a run of consecutive nonzeros, which reads
    memory in order, unlike row-major order) and scattered back to row-major order: no
    ``[N_in, N_out]`` tensor is formed.
    Inside a jit-compiled function (where the CSR ops do not compile), for dtypes
    the CSR ops lack (float16, bfloat16) and for a kernel without nonzeros, the
    product is a gather and a segment sum that the tape differentiates. The
    indices get no gradient.
    """
    indices = tf.cast(indices, tf.int64)
    if values.shape[0] == 0 or in_xla_context() or x.dtype not in CSR_DTYPES:
        rows = tf.cast(indices[:, 0], tf.int32)
        cols = tf.cast(indices[:, 1], tf.int32)
        return _gather_sparse_matmul(x, rows, cols, values, output_dim)
    if transpose_order is None:
        transpose_order = sparse_transpose_order(indices, input_dim)
    transpose_order = tf.cast(transpose_order, tf.int32)
    # K^T in canonical (row-major) order: [to, from] pairs sorted by `to`.
    transposed_indices = tf.reverse(tf.gather(indices, transpose_order), axis=[1])
    transposed_rows = tf.cast(transposed_indices[:, 0], tf.int32)  # outputs, sorted
    transposed_cols = tf.cast(transposed_indices[:, 1], tf.int32)  # inputs

    @tf.custom_gradient
    def _matmul_with_gradient(x, values):
        x, values = tf.stop_gradient(x), tf.stop_gradient(values)
        transposed_csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(
            indices=transposed_indices,
            values=tf.gather(values, transpose_order),
            dense_shape=tf.constant([output_dim, input_dim], tf.int64),
        )
        # (K^T x^T)^T = x K, without transposing x or the output separately.
        outputs = tf.raw_ops.SparseMatrixMatMul(
            a=transposed_csr, b=x, transpose_b=True, transpose_output=True
        )
        outputs = tf.ensure_shape(outputs, [x.shape[0], output_dim])

        def grad(upstream):
            csr = tf.raw_ops.SparseTensorToCSRSparseMatrix(
                indices=indices,
                values=values,
                dense_shape=tf.constant([input_dim, output_dim], tf.int64),
            )
            grad_x = tf.raw_ops.SparseMatrixMatMul(
                a=csr, b=upstream, transpose_b=True, transpose_output=True
            )
            grad_x = tf.ensure_shape(grad_x, [x.shape[0], input_dim])
            grad_transposed = _sampled_dense_products(
                x, upstream, transposed_cols, transposed_rows
            )
            grad_values = tf.scatter_nd(
                transpose_order[:, None], grad_transposed, tf.shape(values)
            )
            return grad_x, grad_values

        return outputs, grad

    return _matmul_with_gradient(x, values)
