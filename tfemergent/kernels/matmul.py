"""`masked_matmul`: ``x @ (kernel * mask)`` with a dense or a block path."""

import numpy as np
import tensorflow as tf

from tfemergent.kernels import _checks
from tfemergent.kernels import custom_ops
from tfemergent.kernels import xla
from tfemergent.kernels.block_mask import BlockMask
from tfemergent.utils.validation import validate_choice

IMPLEMENTATIONS = ("auto", "dense", "gather")

# "auto" derives a BlockMask from a concrete dense mask only when the analysis is
# cheap (at most AUTO_MAX_ANALYSED_ELEMENTS entries, about 4 ms of numpy), the mask
# is sparse enough and the padded blocks hold at most AUTO_MAX_BLOCK_FRACTION of
# the kernel. Larger masks should be passed as a BlockMask (built once).
AUTO_MAX_ANALYSED_ELEMENTS = 2**20
AUTO_MAX_DENSITY = 0.25
AUTO_MAX_BLOCK_FRACTION = 0.5


def masked_matmul(x, kernel, mask, *, implementation="auto"):
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
      `tf.function`). For large layers build a `BlockMask` once and pass it.

    The C++ op ``TfEmergent>MaskedMatmul`` (see `enable_custom_ops`) is not used
    here by default: in the benchmark so far (benchmarks/RESULTS.md, "C++ custom
    ops") it did not beat the XLA gather path at densities 1/4, 1/16 or 1/64.
    Setting ``tfemergent.kernels.matmul.CUSTOM_OP_MIN_DENSITY`` to a density
    makes the block path of float32/float64 calls outside XLA use it for masks
    at least that dense (same results up to float rounding).

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

    Returns:
        A tensor ``[batch, N_out]`` (``[..., N_out]``) with the dtype of ``x``.

    Raises:
        ValueError: if ``implementation`` is unknown, ``x`` or ``kernel`` is not a
            floating tensor of the right rank, their dtypes or sizes disagree, the
            mask's shape differs from the kernel's, or ``"gather"`` is requested
            for a dense mask that is symbolic.

    Example:

    >>> import numpy as np
    >>> x = np.array([[1.0, 2.0, 3.0]], dtype="float32")
    >>> kernel = np.arange(1.0, 7.0, dtype="float32").reshape(3, 2)
    >>> mask = np.array([[1, 0], [1, 0], [0, 1]])
    >>> masked_matmul(x, kernel, mask, implementation="dense").numpy()
    array([[ 7., 18.]], dtype=float32)
    >>> masked_matmul(x, kernel, BlockMask.from_dense(mask)).numpy()
    array([[ 7., 18.]], dtype=float32)
    """
    implementation = validate_choice("implementation", implementation, IMPLEMENTATIONS)
    x = _checks.as_tensor("x", x)
    if not x.dtype.is_floating:
        raise ValueError(
            f"Argument `x` must be a floating-point tensor [batch, N_in]. "
            f"Received: x.dtype={x.dtype.name}"
        )
    if x.shape.rank is None or x.shape.rank < 2:
        raise ValueError(
            f"Argument `x` must have rank >= 2, [batch, N_in]. Received: x.shape={x.shape}"
        )
    kernel = _checks.float_matrix(
        "kernel", kernel, description="[N_in, N_out]", dtype=x.dtype, static=True
    )
    input_dim, output_dim = kernel.shape
    _checks.check_dim("x", x, -1, input_dim, "the kernel's number of rows")

    block_mask, dense_mask = _resolve_mask(mask, kernel, implementation)

    leading_shape = None
    if x.shape.rank > 2:
        leading_shape = tf.shape(x)[:-1]
        x = tf.reshape(x, [-1, input_dim])

    if block_mask is None:
        outputs = xla.dense_masked_matmul(x, kernel, dense_mask)
    elif _use_masked_op(block_mask, x.dtype):
        outputs = custom_ops.masked_matmul(
            x, kernel, block_mask.row_index, block_mask.col_index
        )
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


# The smallest mask density at which masked_matmul uses the C++ op. Infinite (never):
# in the recorded benchmark (benchmarks/RESULTS.md, "C++ custom ops") the op ran at
# 0.90x, 0.96x and 0.90x the speed of the XLA gather path at densities 1/4, 1/16, 1/64.
CUSTOM_OP_MIN_DENSITY = float("inf")


def _use_masked_op(block_mask, dtype):
    density = block_mask.density
    if not isinstance(density, float) or density < CUSTOM_OP_MIN_DENSITY:
        return False
    return custom_ops.use_custom_ops(dtype)


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
            f"shape. Received: mask={_checks.describe(mask)}"
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
    array = _checks.concrete_array(mask)
    if array is None:
        if implementation == "gather":
            raise ValueError(
                "implementation='gather' with a dense mask needs its values to build a "
                "BlockMask, but the mask is symbolic (inside a tf.function). Pass a "
                "BlockMask instead, or use implementation='dense'. "
                f"Received: mask={_checks.describe(mask)}"
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
