"""Pure-TensorFlow / XLA implementations of the tfemergent kernels.

This module is private: layers and users call the validated public functions in
`tfemergent.kernels`, which dispatch here. Functions in this module assume that
their arguments have already been validated (ranks, dtypes, static sizes).

Every heavy computation is a `tf.function(jit_compile=True)`, so it is compiled
by XLA whether it is called eagerly, from a graph, from inside another jit-compiled
function or in a `tf.distribute` replica context. Configuration that changes the
computation (metric, weight norm, block size) is passed as Python values and is
therefore part of the trace key.
"""

import math

import tensorflow as tf

# Default number of elements in one block of the blocked distance kernels: 2**18
# (1 MiB in float32). A few such blocks live at a time, so the extra memory of the
# forward and backward pass stays small next to an [N_in, N_out] weight matrix.
DEFAULT_BLOCK_ELEMENTS = 2**18


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


@tf.function(jit_compile=True)
def _pairwise_distances_forward(p, q, metric):
    return _distances(_coordinate_differences(p, q), metric)


@tf.function(jit_compile=True)
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


@tf.function(jit_compile=True)
def _distance_weighted_l1_forward(weights, p_in, p_out, weight_norm, metric, block_size):
    block_size, num_blocks = _block_layout(weights.shape[0], block_size)
    dtype = weights.dtype

    def body(i, total):
        _, fresh, weight_block, p_in_block = _block(i, weights, p_in, block_size)
        distances = _distances(_coordinate_differences(p_in_block, p_out), metric)
        row_cost = tf.reduce_sum(_weight_cost(weight_block, weight_norm) * distances, axis=1)
        return i + 1, total + tf.reduce_sum(tf.where(fresh, row_cost, tf.zeros_like(row_cost)))

    _, total = tf.while_loop(
        lambda i, total: i < num_blocks,
        body,
        (tf.constant(0), tf.zeros([], dtype)),
        parallel_iterations=1,
    )
    return total


@tf.function(jit_compile=True)
def _distance_weighted_l1_backward(weights, p_in, p_out, upstream, weight_norm, metric, block_size):
    block_size, num_blocks = _block_layout(weights.shape[0], block_size)
    dimension = p_in.shape[1]

    # d cost / d w = f'(w) * d: one fused elementwise pass that writes the output
    # directly, no [N_in, N_out] temporaries.
    distances = _distances(_coordinate_differences(p_in, p_out), metric)
    grad_weights = upstream * _weight_cost_derivative(weights, weight_norm) * distances

    # Position gradients, one block of rows at a time:
    #   grad_p_in_i  =  sum_j f(w_ij) u_ij,   grad_p_out_j = -sum_i f(w_ij) u_ij
    # with u_ij = (p_in_i - p_out_j) / d_ij (euclidean) or sign(p_in_i - p_out_j)
    # (manhattan), and u_ij = 0 where it is undefined.
    def body(i, grad_p_in, grad_p_out):
        rows, fresh, weight_block, p_in_block = _block(i, weights, p_in, block_size)
        differences = _coordinate_differences(p_in_block, p_out)
        distances = _distances(differences, metric)
        cost = _weight_cost(weight_block, weight_norm)
        cost = tf.where(fresh[:, None], cost, tf.zeros_like(cost))
        directions = _unit_directions(differences, distances, metric)
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


def distance_weighted_l1(weights, p_in, p_out, weight_norm, metric, block_size):
    """Blocked sum_ij f(w_ij) d(p_in_i, p_out_j) with a custom gradient."""

    @tf.custom_gradient
    def _cost_with_gradient(weights, p_in, p_out):
        # stop_gradient: the tape must not differentiate the compiled loop itself
        # (that would keep every block's intermediates alive for a backward pass
        # that the custom gradient below replaces).
        weights, p_in, p_out = (tf.stop_gradient(t) for t in (weights, p_in, p_out))
        total = _distance_weighted_l1_forward(
            weights, p_in, p_out, weight_norm, metric, block_size
        )

        def grad(upstream):
            return _distance_weighted_l1_backward(
                weights, p_in, p_out, upstream, weight_norm, metric, block_size
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


@tf.function(jit_compile=True)
def block_masked_matmul(x, kernel, row_index, col_index):
    """``x @ (kernel * mask)`` for a block mask given by padded row/column indices.

    Block ``b`` multiplies the input rows ``row_index[b]`` by the kernel block
    ``kernel[row_index[b]][:, col_index[b]]`` and writes the output columns
    ``col_index[b]``. Padding sentinels (``N_in`` in `row_index`, ``N_out`` in
    `col_index`) read an appended zero input column, zero kernel entries, and write
    a dropped output column, so unequal blocks stay exact. Gradients reach only the
    gathered (unmasked) kernel entries.
    """
    input_dim, output_dim = kernel.shape
    num_blocks = row_index.shape[0]
    num_cols = col_index.shape[1]
    row_index = tf.cast(row_index, tf.int32)
    col_index = tf.cast(col_index, tf.int32)

    # x[:, row_index] with a zero column for the sentinel: [batch, B, R].
    x_padded = tf.pad(x, [[0, 0], [0, 1]])
    x_blocks = tf.gather(x_padded, row_index, axis=1)

    # Kernel blocks [B, R, C] gathered from the flat kernel. Instead of copying the
    # kernel into a zero-padded [N_in + 1, N_out + 1] matrix, sentinel entries read
    # a clamped (valid) address and are replaced by zero; they receive exactly zero
    # gradient, as does every kernel entry outside the blocks.
    row_valid = row_index < input_dim
    col_valid = col_index < output_dim
    rows = tf.minimum(row_index, input_dim - 1)
    cols = tf.minimum(col_index, output_dim - 1)
    flat_index = rows[:, :, None] * output_dim + cols[:, None, :]
    kernel_blocks = tf.gather(tf.reshape(kernel, [-1]), flat_index)
    valid = tf.logical_and(row_valid[:, :, None], col_valid[:, None, :])
    kernel_blocks = tf.where(valid, kernel_blocks, tf.zeros_like(kernel_blocks))

    outputs = tf.einsum("nbr,brc->nbc", x_blocks, kernel_blocks)

    # Place the block outputs into the N_out columns with one gather through the
    # inverse permutation; columns in no block read the appended zero column.
    batch = tf.shape(x)[0]
    outputs = tf.reshape(outputs, [batch, num_blocks * num_cols])
    outputs = tf.pad(outputs, [[0, 0], [0, 1]])
    flat_cols = tf.reshape(col_index, [-1, 1])
    source = tf.tensor_scatter_nd_update(
        tf.fill([output_dim + 1], num_blocks * num_cols),
        flat_cols,
        tf.range(num_blocks * num_cols),
    )[:output_dim]
    return tf.gather(outputs, source, axis=1)
