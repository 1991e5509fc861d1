"""`block_matmul`: ``x`` times weights stored as the blocks of a `BlockMask`.

(The module is not called ``block_matmul.py`` so that the package attribute
``tfemergent.kernels.block_matmul`` stays the function, not the module.)
"""

import tensorflow as tf

from tfemergent.kernels import _checks
from tfemergent.kernels import xla
from tfemergent.kernels.block_mask import BlockMask


def block_matmul(x, block_kernel, block_mask):
    """Multiply ``x`` by block-stored weights: ``x @ block_mask.scatter_blocks(block_kernel)``.

    A receptive-field layer whose output units fall into groups that see the
    same input units (see `BlockMask`) only has weights inside the blocks. This
    kernel stores them as ``block_kernel[b, r, c]``, the weight from input
    ``block_mask.row_index[b, r]`` to output ``block_mask.col_index[b, c]``, and
    never forms the dense ``[N_in, N_out]`` kernel: neither in the forward pass
    nor in the gradient, which has the block shape ``[num_blocks, max_rows,
    max_cols]``. Compute, memory and gradient size are therefore proportional to
    the blocks, not to ``N_in * N_out`` (whereas `masked_matmul` with a dense
    kernel variable must at least produce a dense ``[N_in, N_out]`` gradient).

    Entries of ``block_kernel`` at padding positions (a sentinel in
    ``row_index`` or ``col_index``, for blocks smaller than the largest one) are
    ignored, whatever their values, and get exactly zero gradient. Output columns
    that belong to no block are 0. Use `BlockMask.gather_blocks` to convert a
    dense kernel to this layout (e.g. to initialise it) and
    `BlockMask.scatter_blocks` to export or inspect the dense kernel.

    Runs XLA-compiled (also inside `tf.function(jit_compile=True)` and
    `tf.distribute` replica contexts); the block products are batched matmuls in
    a block-major ``[num_blocks, batch, size]`` layout. Gradients reach ``x`` and
    ``block_kernel`` through a custom first-order gradient (second-order
    gradients are not supported); the mask's indices get none. When
    ``block_mask.disjoint_rows`` is true the input gradient is a gather, otherwise
    (overlapping receptive fields) a scatter-add.

    Args:
        x: float tensor ``[batch, N_in]`` (any number of leading dimensions is
            accepted and kept: ``[..., N_in]``), ``N_in = block_mask.input_dim``.
        block_kernel: float tensor or variable ``[num_blocks, max_rows,
            max_cols]`` (the static shape of ``block_mask``) with the dtype of
            ``x``.
        block_mask: a `BlockMask`; its indices may be tensors or variables.

    Returns:
        A tensor ``[batch, N_out]`` (``[..., N_out]``), ``N_out =
        block_mask.output_dim``, with the dtype of ``x``.

    Raises:
        ValueError: if ``block_mask`` is not a `BlockMask`, ``x`` or
            ``block_kernel`` is not a floating tensor, their dtypes differ, ``x``
            has rank < 2 or the wrong number of features, or ``block_kernel`` does
            not have the block shape of ``block_mask``.

    Example:

    >>> import numpy as np
    >>> # Block 0: inputs {0, 2} -> output 1; block 1: input 1 -> outputs {0, 2}.
    >>> block_mask = BlockMask.from_blocks([([0, 2], [1]), ([1], [0, 2])], 3, 3)
    >>> block_mask.row_index.numpy().tolist(), block_mask.col_index.numpy().tolist()
    ([[0, 2], [1, 3]], [[1, 3], [0, 2]])
    >>> block_kernel = np.array([[[1.0, -5.0], [2.0, -5.0]],   # column 3 is padding
    ...                          [[3.0, 4.0], [-5.0, -5.0]]],  # row 3 is padding
    ...                         dtype="float32")
    >>> x = np.array([[1.0, 2.0, 3.0]], dtype="float32")
    >>> block_matmul(x, block_kernel, block_mask).numpy()
    array([[6., 7., 8.]], dtype=float32)
    >>> dense = block_mask.scatter_blocks(block_kernel)
    >>> dense.numpy()
    array([[0., 1., 0.],
           [3., 0., 4.],
           [0., 2., 0.]], dtype=float32)
    >>> x @ dense.numpy()
    array([[6., 7., 8.]], dtype=float32)
    """
    if not isinstance(block_mask, BlockMask):
        raise ValueError(
            "Argument `block_mask` must be a BlockMask (build one with "
            "BlockMask.from_blocks or BlockMask.from_dense). "
            f"Received: block_mask={_checks.describe(block_mask)}"
        )
    x = _checks.as_tensor("x", x)
    if not x.dtype.is_floating:
        raise ValueError(
            "Argument `x` must be a floating-point tensor [batch, N_in]. "
            f"Received: x.dtype={x.dtype.name}"
        )
    if x.shape.rank is None or x.shape.rank < 2:
        raise ValueError(
            f"Argument `x` must have rank >= 2, [batch, N_in]. Received: x.shape={x.shape}"
        )
    input_dim, output_dim = block_mask.input_dim, block_mask.output_dim
    _checks.check_dim("x", x, -1, input_dim, "the block mask's input_dim")
    block_kernel = _checks.as_tensor("block_kernel", block_kernel)
    if not block_kernel.dtype.is_floating:
        raise ValueError(
            "Argument `block_kernel` must be a floating-point tensor "
            f"[num_blocks, max_rows, max_cols]. Received: block_kernel.dtype="
            f"{block_kernel.dtype.name}"
        )
    if block_kernel.dtype != x.dtype:
        raise ValueError(
            f"Argument `block_kernel` must have the dtype of `x` ({x.dtype.name}); cast it "
            f"first. Received: block_kernel.dtype={block_kernel.dtype.name}"
        )
    expected_shape = (block_mask.num_blocks, block_mask.max_rows, block_mask.max_cols)
    if tuple(block_kernel.shape) != expected_shape:
        raise ValueError(
            "Argument `block_kernel` must have the static shape [num_blocks, max_rows, "
            f"max_cols] = {list(expected_shape)} of `block_mask`. "
            f"Received: block_kernel.shape={block_kernel.shape}"
        )

    leading_shape = None
    if x.shape.rank > 2 or x.shape[-1] is None:
        leading_shape = tf.shape(x)[:-1]
        x = tf.reshape(x, [-1, input_dim])
    outputs = xla.block_matmul(
        x,
        block_kernel,
        tf.convert_to_tensor(block_mask.row_index),
        tf.convert_to_tensor(block_mask.col_index),
        output_dim,
        block_mask.disjoint_rows,
        mask_padding=not block_mask._padding_free,
    )
    if leading_shape is not None:
        outputs = tf.reshape(outputs, tf.concat([leading_shape, [output_dim]], axis=0))
    return outputs
