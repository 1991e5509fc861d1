"""Masked products: `masked_matmul` and `block_matmul`.

(The module is not called ``masked_matmul.py`` so that the package attribute
``tfemergent.kernels.masked_matmul`` stays the function, not the module.)
"""

import numpy as np
import tensorflow as tf

from tfemergent.kernels import xla
from tfemergent.kernels.block_mask import BlockMask
from tfemergent.utils.validation import concrete_array
from tfemergent.utils.validation import describe_tensor
from tfemergent.utils.validation import validate_bool
from tfemergent.utils.validation import validate_choice
from tfemergent.utils.validation import validate_dim
from tfemergent.utils.validation import validate_float_matrix
from tfemergent.utils.validation import validate_tensor

IMPLEMENTATIONS = ("auto", "dense", "gather")

# "auto" derives a BlockMask from a concrete dense mask only when the analysis is
# cheap (at most AUTO_MAX_ANALYSED_ELEMENTS entries, one numpy pass), the mask
# is sparse enough and the padded blocks hold at most AUTO_MAX_BLOCK_FRACTION of
# the kernel. Larger masks should be passed as a BlockMask (built once).
AUTO_MAX_ANALYSED_ELEMENTS = 2**20
AUTO_MAX_DENSITY = 0.25
AUTO_MAX_BLOCK_FRACTION = 0.5


def masked_matmul(x, kernel, mask, *, implementation="auto", features_first=False):
    """Multiply ``x`` by a masked kernel: ``x @ (kernel * mask)``.

    Gradients reach ``x`` and the unmasked entries of ``kernel``; masked kernel
    entries get exactly zero gradient and ``mask`` gets none.

    ``mask`` is either a dense 0/1 tensor, array or variable of the kernel's shape
    or a `BlockMask` (groups of output columns that share the same input rows,
    e.g. receptive fields). Implementations:

    - ``"dense"``: ``tf.matmul(x, kernel * mask)``; cost independent of the
      density. A `BlockMask` is expanded with `BlockMask.to_dense`.
    - ``"gather"``: gathers, per block, the input columns ``x[:, rows]`` and the
      kernel block ``kernel[rows][:, cols]``, multiplies them with one batched
      matmul and places the results into the output columns (columns in no block
      are 0). Cost proportional to the blocks' size; exact for blocks of unequal
      sizes. XLA-compiled. A dense mask must then be concrete (eager) and is
      analysed with `BlockMask.from_dense`.
    - ``"auto"``: ``"gather"`` for a `BlockMask`, or for a concrete dense mask in
      eager mode that is cheap to analyse (at most 2**20 entries), has density at
      most 1/4 and whose blocks (padded to the largest) cover at most half of the
      kernel; ``"dense"`` otherwise (e.g. for a symbolic mask inside a
      `tf.function`, or any mask of more than 2**20 entries).

    Only a `BlockMask` is sure to take the fast path: a dense mask of a large
    layer runs at the cost of ``x @ (kernel * mask)``. Build the `BlockMask` once,
    outside the training step, with ``BlockMask.from_dense(mask)`` (groups the
    columns of a concrete 0/1 mask by identical pattern) or
    ``BlockMask.from_blocks([(rows, cols), ...], N_in, N_out)``, and pass it on
    every call.

    Block-stored weights: with a `BlockMask`, ``kernel`` may also be the block
    form ``[num_blocks, max_rows, max_cols]`` of the weights (see `block_matmul`,
    which this then calls); only the weights inside the blocks then exist, and
    the kernel gradient has the block shape. A receptive-field layer stores its
    field weights this way (`tfemergent.layers.MaskedAutoencoderUnit`).

    Both paths work inside `tf.function(jit_compile=True)` (``"gather"`` needs a
    `BlockMask` there) and in `tf.distribute` replica contexts. The gather path has
    a custom first-order gradient (second-order gradients are not supported).

    Args:
        x: float tensor ``[batch, N_in]`` (any number of leading dimensions is
            accepted and kept: ``[..., N_in]``).
        kernel: float tensor or variable ``[N_in, N_out]`` with the dtype of ``x``.
        mask: a `BlockMask` with ``input_dim == N_in`` and ``output_dim == N_out``,
            or a dense 0/1 tensor, array or variable ``[N_in, N_out]`` (any
            numeric or bool dtype).
        implementation: ``"auto"``, ``"dense"`` or ``"gather"``.
        features_first: if True, ``x`` is ``[N_in, batch]`` (one row per input
            feature, rank 2) and the result ``[N_out, batch]``: for callers that
            keep their activations feature-major; no transpose is then needed
            inside `tf.function(jit_compile=True)`.

    Returns:
        A tensor ``[batch, N_out]`` (``[..., N_out]``; ``[N_out, batch]`` with
        ``features_first``) with the dtype of ``x``.

    Raises:
        ValueError: if ``implementation`` is unknown, ``x`` or ``kernel`` is not a
            floating tensor of the right rank, their dtypes or sizes disagree, the
            mask's shape differs from the kernel's, or ``"gather"`` is requested
            for a dense mask that is symbolic.

    Example:

    >>> import numpy as np
    >>> from tfemergent.kernels import masked_matmul
    >>> from tfemergent.kernels import BlockMask
    >>> x = np.array([[1.0, 2.0, 3.0]], dtype="float32")
    >>> kernel = np.arange(1.0, 7.0, dtype="float32").reshape(3, 2)
    >>> mask = np.array([[1, 0], [1, 0], [0, 1]])
    >>> masked_matmul(x, kernel, mask, implementation="dense").numpy()
    array([[ 7., 18.]], dtype=float32)
    >>> block_mask = BlockMask.from_dense(mask)
    >>> masked_matmul(x, kernel, block_mask).numpy()
    array([[ 7., 18.]], dtype=float32)
    >>> masked_matmul(x.T, kernel, block_mask, features_first=True).numpy()
    array([[ 7.],
           [18.]], dtype=float32)
    >>> masked_matmul(x, block_mask.gather_blocks(kernel), block_mask).numpy()
    array([[ 7., 18.]], dtype=float32)
    """
    implementation = validate_choice("implementation", implementation, IMPLEMENTATIONS)
    x = validate_tensor("x", x)
    if not x.dtype.is_floating:
        raise ValueError(
            f"Argument `x` must be a floating-point tensor [batch, N_in]. "
            f"Received: x.dtype={x.dtype.name}"
        )
    features_first = validate_bool("features_first", features_first)
    if features_first and x.shape.rank != 2:
        raise ValueError(
            "Argument `x` must have rank 2, [N_in, batch], with features_first=True. "
            f"Received: x.shape={x.shape}"
        )
    if x.shape.rank is None or x.shape.rank < 2:
        raise ValueError(
            f"Argument `x` must have rank >= 2, [batch, N_in]. Received: x.shape={x.shape}"
        )
    if isinstance(mask, BlockMask) and getattr(kernel, "shape", None) is not None:
        if len(kernel.shape) == 3:
            if implementation == "dense":
                raise ValueError(
                    "Block-stored weights [num_blocks, max_rows, max_cols] take the block "
                    "path; implementation='dense' needs a dense kernel [N_in, N_out] (use "
                    f"mask.scatter_blocks(kernel)). Received: implementation={implementation!r}"
                )
            return block_matmul(x, kernel, mask, features_first=features_first)
    if features_first:
        return tf.transpose(masked_matmul(tf.transpose(x), kernel, mask,
                                          implementation=implementation))
    kernel = validate_float_matrix(
        "kernel", kernel, description="[N_in, N_out]", dtype=x.dtype, static=True
    )
    input_dim, output_dim = kernel.shape
    validate_dim("x", x, -1, input_dim, "the kernel's number of rows")

    block_mask, dense_mask = _resolve_mask(mask, kernel, implementation)

    leading_shape = None
    if x.shape.rank > 2:
        leading_shape = tf.shape(x)[:-1]
        x = tf.reshape(x, [-1, input_dim])

    if block_mask is None:
        outputs = xla.dense_masked_matmul(x, kernel, dense_mask)
    else:
        outputs = xla.block_masked_matmul(
            x,
            kernel,
            tf.convert_to_tensor(block_mask.row_index),
            tf.convert_to_tensor(block_mask.col_index),
            block_mask.disjoint_rows,
        )
    if leading_shape is not None:
        outputs = tf.reshape(outputs, tf.concat([leading_shape, [output_dim]], axis=0))
    return outputs


def _resolve_mask(mask, kernel, implementation):
    """Validate ``mask`` and pick the path.

    Returns ``(block_mask, None)`` for the gather path and ``(None, dense_mask)``
    for the dense path.
    """
    input_dim, output_dim = kernel.shape
    if isinstance(mask, BlockMask):
        if mask.input_dim != input_dim or mask.output_dim != output_dim:
            raise ValueError(
                "Argument `mask` must describe a mask of the kernel's shape "
                f"[{input_dim}, {output_dim}]. Received: mask={mask!r}"
            )
        if implementation == "dense":
            return None, mask.to_dense(kernel.dtype)
        return mask, None

    if isinstance(mask, (str, bytes)) or mask is None:
        raise ValueError(
            "Argument `mask` must be a BlockMask or a dense 0/1 tensor of the kernel's "
            f"shape. Received: mask={describe_tensor(mask)}"
        )
    shape = tuple(getattr(mask, "shape", np.shape(mask)))
    if len(shape) != 2 or any(
        size is not None and size != expected
        for size, expected in zip(shape, (input_dim, output_dim))
    ):
        raise ValueError(
            f"Argument `mask` must have the kernel's shape [{input_dim}, {output_dim}]. "
            f"Received: mask.shape={shape}"
        )
    if implementation == "dense":
        return None, mask
    if implementation == "auto" and input_dim * output_dim > AUTO_MAX_ANALYSED_ELEMENTS:
        return None, mask
    array = concrete_array(mask)
    if array is None:
        if implementation == "gather":
            raise ValueError(
                "implementation='gather' with a dense mask needs its values to build a "
                "BlockMask, but the mask is symbolic (inside a tf.function). Pass a "
                "BlockMask instead, or use implementation='dense'. "
                f"Received: mask={describe_tensor(mask)}"
            )
        return None, mask
    if implementation == "auto":
        if np.count_nonzero(array) > AUTO_MAX_DENSITY * array.size:
            return None, mask
        block_mask = BlockMask.from_dense(array)
        padded = block_mask.num_blocks * block_mask.max_rows * block_mask.max_cols
        if padded > AUTO_MAX_BLOCK_FRACTION * array.size:
            return None, mask
        return block_mask, None
    return BlockMask.from_dense(array), None


def block_matmul(x, block_kernel, block_mask, *, features_first=False):
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
        features_first: if True, ``x`` is ``[N_in, batch]`` (rank 2) and the
            result ``[N_out, batch]`` (see `masked_matmul`).

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
    >>> from tfemergent.kernels import BlockMask
    >>> from tfemergent.kernels import block_matmul
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
            f"Received: block_mask={describe_tensor(block_mask)}"
        )
    x = validate_tensor("x", x)
    if not x.dtype.is_floating:
        raise ValueError(
            "Argument `x` must be a floating-point tensor [batch, N_in]. "
            f"Received: x.dtype={x.dtype.name}"
        )
    if x.shape.rank is None or x.shape.rank < 2:
        raise ValueError(
            f"Argument `x` must have rank >= 2, [batch, N_in]. Received: x.shape={x.shape}"
        )
    features_first = validate_bool("features_first", features_first)
    if features_first and x.shape.rank != 2:
        raise ValueError(
            "Argument `x` must have rank 2, [N_in, batch], with features_first=True. "
            f"Received: x.shape={x.shape}"
        )
    input_dim, output_dim = block_mask.input_dim, block_mask.output_dim
    validate_dim("x", x, 0 if features_first else -1, input_dim, "the block mask's input_dim")
    block_kernel = validate_tensor("block_kernel", block_kernel)
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
    if not features_first and (x.shape.rank > 2 or x.shape[-1] is None):
        leading_shape = tf.shape(x)[:-1]
        x = tf.reshape(x, [-1, input_dim])
    outputs = xla.block_matmul(
        x,
        block_kernel,
        tf.convert_to_tensor(block_mask.row_index),
        tf.convert_to_tensor(block_mask.col_index),
        output_dim,
        block_mask.disjoint_rows,
        mask_padding=not block_mask.padding_free,
        features_first=features_first,
    )
    if leading_shape is not None:
        outputs = tf.reshape(outputs, tf.concat([leading_shape, [output_dim]], axis=0))
    return outputs
