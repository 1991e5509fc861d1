"""Sparse kernels: `sparse_matmul` and `sparse_kernel_from_dense`.

``x`` times a kernel stored as a `tf.sparse.SparseTensor`. (The module is not
called ``sparse_matmul.py`` so that the package attribute
``tfemergent.kernels.sparse_matmul`` stays the function, not the module.)
"""

import numpy as np
import tensorflow as tf

from tfemergent.kernels import custom_ops
from tfemergent.kernels import xla
from tfemergent.utils.validation import concrete_array
from tfemergent.utils.validation import describe_tensor
from tfemergent.utils.validation import validate_dim
from tfemergent.utils.validation import validate_float
from tfemergent.utils.validation import validate_float_matrix
from tfemergent.utils.validation import validate_tensor


def _check_sparse_kernel(sparse_kernel):
    """The static ``(N_in, N_out)`` of a rank-2 SparseTensor kernel, or ``ValueError``."""
    if not isinstance(sparse_kernel, tf.sparse.SparseTensor):
        raise ValueError(
            "Argument `sparse_kernel` must be a tf.sparse.SparseTensor [N_in, N_out] (build "
            "one from a dense kernel with sparse_kernel_from_dense). "
            f"Received: sparse_kernel={describe_tensor(sparse_kernel)}"
        )
    shape = sparse_kernel.shape
    if shape.rank != 2 or not shape.is_fully_defined():
        raise ValueError(
            "Argument `sparse_kernel` must be a matrix [N_in, N_out] with a static dense "
            f"shape. Received: sparse_kernel.shape={shape}"
        )
    if not sparse_kernel.values.dtype.is_floating:
        raise ValueError(
            "Argument `sparse_kernel` must have floating-point values. "
            f"Received: sparse_kernel.dtype={sparse_kernel.values.dtype.name}"
        )
    if sparse_kernel.values.shape.rank != 1 or sparse_kernel.values.shape[0] is None:
        raise ValueError(
            "Argument `sparse_kernel` must have a static number of nonzeros. "
            f"Received: sparse_kernel.values.shape={sparse_kernel.values.shape}"
        )
    indices = concrete_array(sparse_kernel.indices)
    if indices is not None and indices.shape[0] > 0:
        out_of_range = (indices < 0).any() or (indices >= np.asarray(shape.as_list())).any()
        if out_of_range:
            raise ValueError(
                "Argument `sparse_kernel` has indices outside its dense shape "
                f"{shape.as_list()}. Received: sparse_kernel.indices={indices.tolist()[:8]}..."
            )
        flat = indices[:, 0] * shape[1] + indices[:, 1]
        if indices.shape[0] > 1 and not (np.diff(flat) > 0).all():
            raise ValueError(
                "Argument `sparse_kernel` must have unique indices in canonical row-major "
                "order; apply tf.sparse.reorder first (sparse_kernel_from_dense returns them "
                f"ordered). Received: sparse_kernel.indices={indices.tolist()[:8]}..."
            )
    return shape[0], shape[1]


def sparse_matmul(x, sparse_kernel, transpose_order=None):
    """Multiply ``x`` by a sparse kernel: ``x @ tf.sparse.to_dense(sparse_kernel)``.

    For a weight matrix whose sparsity pattern is fixed (e.g. after pruning), the
    kernel is stored as a `tf.sparse.SparseTensor` ``[N_in, N_out]`` holding only
    the surviving weights; its ``values`` are what is trained. Compute and memory
    are proportional to the number of nonzeros ``nnz`` times the batch size, and
    neither the forward pass nor the gradient forms an ``[N_in, N_out]`` tensor:
    the gradient reaches ``x`` and the kernel's ``values`` (shape ``[nnz]``); the
    indices (the pattern) get none.

    Implementation (the fastest of the formulations compared in
    ``benchmarks/RESULTS.md``, sections "URN training step" and "Kernel design
    measurements"): the forward product and the input gradient are
    TensorFlow CSR sparse-dense products (``SparseMatrixMatMul``, multithreaded)
    with ``K^T`` and ``K``, their CSR matrices built from the COO kernel in one
    O(nnz) pass each per call; the values gradient ``sum_b x[b, i] *
    upstream[b, j]`` at each nonzero ``(i, j)`` is XLA-compiled row gathers and a
    reduction, over chunks of 16 batch columns so that the gathered rows stay in
    cache. Inside `tf.function(jit_compile=True)`, where the CSR ops do not
    compile, for float16/bfloat16 and for a kernel without nonzeros, the product
    falls back to a gather and an unsorted segment sum differentiated by the tape
    (correct, slower). First-order gradients only.

    With the C++ ops built and enabled (see `enable_custom_ops`), float32/float64
    products outside XLA use ``TfEmergent>SparseMatmul`` instead: a
    multithreaded CSR kernel for ``K^T`` (forward), the same op on ``K`` (input
    gradient) and ``TfEmergent>SparseMatmulValuesGrad`` (values gradient); both
    paths give the same numbers up to float rounding.

    Args:
        x: float tensor ``[batch, N_in]``.
        sparse_kernel: `tf.sparse.SparseTensor` ``[N_in, N_out]`` with a static
            dense shape and number of nonzeros, values of the dtype of ``x``, and
            unique indices in canonical row-major order (as `tf.sparse.reorder`
            and `sparse_kernel_from_dense` produce; checked when the indices are
            known eagerly). Its values may be read from a variable.
        transpose_order: optional int tensor ``[nnz]``: the positions of the
            nonzeros in column-major order, ``np.lexsort((rows, cols))`` of the
            indices. Computed (one sort of the indices per call) when omitted;
            pass it when the pattern is fixed, as `RecursiveURNLayer` does.

    Returns:
        A tensor ``[batch, N_out]`` with the dtype of ``x``.

    Raises:
        ValueError: if ``sparse_kernel`` is not a rank-2 SparseTensor with static
            shape, its indices are out of range or not in canonical order (when
            known), ``x`` is not a floating matrix, the dtypes differ, or ``x``
            does not have ``N_in`` features.

    Example:

    >>> import numpy as np
    >>> from tfemergent.kernels import sparse_kernel_from_dense
    >>> from tfemergent.kernels import sparse_matmul
    >>> import tensorflow as tf
    >>> kernel = np.array([[0.0, 2.0, 0.0],
    ...                    [1.0, 0.0, 0.0],
    ...                    [0.0, 0.0, -3.0]], dtype="float32")
    >>> sparse_kernel = sparse_kernel_from_dense(kernel)
    >>> sparse_kernel.indices.numpy().tolist(), sparse_kernel.values.numpy().tolist()
    ([[0, 1], [1, 0], [2, 2]], [2.0, 1.0, -3.0])
    >>> x = np.array([[1.0, 2.0, 3.0]], dtype="float32")
    >>> sparse_matmul(x, sparse_kernel).numpy()
    array([[ 2.,  2., -9.]], dtype=float32)
    >>> x @ kernel
    array([[ 2.,  2., -9.]], dtype=float32)
    >>> values = tf.Variable(sparse_kernel.values)
    >>> with tf.GradientTape() as tape:
    ...     kernel_now = tf.sparse.SparseTensor(sparse_kernel.indices, values, [3, 3])
    ...     loss = tf.reduce_sum(sparse_matmul(x, kernel_now))
    >>> tape.gradient(loss, values).numpy()  # x[i] for each nonzero (i, j)
    array([1., 2., 3.], dtype=float32)
    """
    input_dim, output_dim = _check_sparse_kernel(sparse_kernel)
    x = validate_tensor("x", x)
    if not x.dtype.is_floating:
        raise ValueError(
            "Argument `x` must be a floating-point tensor [batch, N_in]. "
            f"Received: x.dtype={x.dtype.name}"
        )
    if x.shape.rank != 2:
        raise ValueError(
            f"Argument `x` must be a matrix [batch, N_in]. Received: x.shape={x.shape}"
        )
    validate_dim("x", x, -1, input_dim, "the sparse kernel's N_in")
    values = sparse_kernel.values
    if values.dtype != x.dtype:
        raise ValueError(
            f"Argument `sparse_kernel` must have the dtype of `x` ({x.dtype.name}); cast its "
            f"values first. Received: sparse_kernel.dtype={values.dtype.name}"
        )
    if transpose_order is not None:
        transpose_order = validate_tensor("transpose_order", transpose_order)
        if not transpose_order.dtype.is_integer or transpose_order.shape != values.shape:
            raise ValueError(
                "Argument `transpose_order` must be an integer tensor [nnz] = "
                f"{values.shape.as_list()} (np.lexsort((rows, cols)) of the indices). "
                f"Received: transpose_order={describe_tensor(transpose_order)}"
            )
    if values.shape[0] > 0 and custom_ops.use_custom_ops(x.dtype):
        return custom_ops.sparse_matmul(
            x, sparse_kernel.indices, values, input_dim, output_dim, transpose_order
        )
    return xla.sparse_matmul(
        x, sparse_kernel.indices, values, input_dim, output_dim, transpose_order
    )


def sparse_kernel_from_dense(kernel, threshold=0.0):
    """The entries of ``kernel`` with ``|w| > threshold`` as a `tf.sparse.SparseTensor`.

    The indices are int64 in canonical row-major order, as `sparse_matmul`
    requires; the dense shape and dtype are those of ``kernel``. With the default
    ``threshold=0.0`` exactly the nonzero entries are kept.

    Args:
        kernel: float matrix ``[N_in, N_out]`` (tensor, array or variable).
        threshold: float >= 0; entries with ``|w| <= threshold`` are dropped.

    Returns:
        A `tf.sparse.SparseTensor` ``[N_in, N_out]``.

    Raises:
        ValueError: if ``kernel`` is not a floating matrix or ``threshold`` is
            negative or not a finite number.

    Example:

    >>> from tfemergent.kernels import sparse_kernel_from_dense
    >>> sparse = sparse_kernel_from_dense([[0.5, -0.01], [0.0, 2.0]], threshold=0.1)
    >>> sparse.indices.numpy().tolist(), sparse.values.numpy().tolist()
    ([[0, 0], [1, 1]], [0.5, 2.0])
    """
    threshold = validate_float("threshold", threshold, minimum=0.0)
    kernel = validate_float_matrix("kernel", kernel, description="[N_in, N_out]")
    indices = tf.where(tf.abs(kernel) > threshold)  # row-major order
    dense_shape = (
        kernel.shape.as_list()
        if kernel.shape.is_fully_defined()
        else tf.shape(kernel, out_type=tf.int64)
    )
    return tf.sparse.SparseTensor(indices, tf.gather_nd(kernel, indices), dense_shape)
