"""Loader, switch and gradients of the C++ ops (``custom_ops/cc``).

The compiled library ``_tfemergent_ops.so`` lives beside this module (built by
``setup.py`` when a compiler is present; see ``custom_ops/README.md``). It is
loaded lazily, on the first kernel call that would use it. The public kernel
function `sparse_matmul` calls `use_custom_ops` and then the
op wrappers below, or their pure-TF/XLA twin in `tfemergent.kernels.xla`.

One switch decides whether the ops are used: the environment variable
``TFEMERGENT_CUSTOM_OPS`` (``0``/``false``/``off`` disables them; anything else,
or unset, enables them) read at import, then `enable_custom_ops` /
`disable_custom_ops`. Even when enabled the pure-TF path is used

- inside `tf.function(jit_compile=True)` (XLA cannot compile the ops),
- while a SavedModel is being written (`tf.saved_model.save`, `model.export`),
  unless ``enable_custom_ops(in_saved_models=True)``: such a SavedModel needs
  `load_custom_ops` before `tf.saved_model.load`,
- for dtypes other than float32/float64,
- when the library is missing or fails to load: a warning is issued once and
  the pure-TF path is used from then on.
"""

import os
import pathlib
import warnings

import tensorflow as tf

from tfemergent.kernels import xla
from tfemergent.utils import _private

LIBRARY_NAME = "_tfemergent_ops.so"
LIBRARY_PATH = pathlib.Path(__file__).resolve().parent / LIBRARY_NAME
ENVIRONMENT_VARIABLE = "TFEMERGENT_CUSTOM_OPS"
SUPPORTED_DTYPES = (tf.float32, tf.float64)

_state = {
    "enabled": os.environ.get(ENVIRONMENT_VARIABLE, "1").strip().lower()
    not in ("0", "false", "off", "no"),
    "in_saved_models": False,
    "library": None,
    "error": None,
    "warned": False,
}


def load_custom_ops():
    """Load the tfemergent C++ ops into this process and return the op module.

    Call it before `tf.saved_model.load` for a SavedModel that contains the ops
    (written with ``enable_custom_ops(in_saved_models=True)``); without it that
    load fails with TensorFlow's "Op type not registered
    'TfEmergent>SparseMatmul'". The gradients of the ops are registered when
    `tfemergent.kernels` is imported. Loading does not change the switch.

    Returns:
        The module returned by `tf.load_op_library`.

    Raises:
        ImportError: if ``_tfemergent_ops.so`` is missing (tfemergent was
            installed without a C++ compiler) or cannot be loaded (built for
            another TensorFlow). The message names the library path and how to
            rebuild it.

    Example:

    >>> import tfemergent.kernels as kernels
    >>> ops = kernels.load_custom_ops()  # doctest: +SKIP
    >>> model = tf.saved_model.load("model_with_custom_ops")  # doctest: +SKIP
    """
    if _state["library"] is not None:
        return _state["library"]
    if not LIBRARY_PATH.exists():
        raise ImportError(
            f"The tfemergent C++ ops are not built: {LIBRARY_PATH} does not exist. "
            "Install tfemergent with a C++ compiler present (`pip install .` or "
            "`pip install -e .` with g++ and TensorFlow installed), or build it with "
            "`python setup.py build_ext --inplace`."
        )
    try:
        library = tf.load_op_library(str(LIBRARY_PATH))
    except (tf.errors.NotFoundError, OSError) as error:
        raise ImportError(
            f"The tfemergent C++ ops in {LIBRARY_PATH} could not be loaded (built for "
            f"another TensorFlow version?). Rebuild with `python setup.py build_ext "
            f"--inplace` or reinstall tfemergent. Error: {error}"
        ) from error
    _state["library"] = library
    return library


def enable_custom_ops(in_saved_models=False):
    """Use the C++ ops where they apply (the default unless ``TFEMERGENT_CUSTOM_OPS=0``).

    Args:
        in_saved_models: also use them while a SavedModel is written. Such a
            SavedModel then needs `load_custom_ops` before it is loaded; the
            default (``False``) exports the pure-TF implementation.
    """
    if not isinstance(in_saved_models, bool):
        raise ValueError(
            f"Argument `in_saved_models` must be True or False. "
            f"Received: in_saved_models={in_saved_models!r}"
        )
    _state["enabled"] = True
    _state["in_saved_models"] = in_saved_models


def disable_custom_ops():
    """Use the pure-TF/XLA implementations everywhere."""
    _state["enabled"] = False
    _state["in_saved_models"] = False


def custom_ops_enabled():
    """Whether the switch is on (the library may still be missing)."""
    return _state["enabled"]


def _in_save_context():
    return _private.in_save_context()


def _library_or_none():
    """The op module, or None after warning once that it cannot be loaded."""
    if _state["library"] is not None:
        return _state["library"]
    if _state["error"] is None:
        try:
            return load_custom_ops()
        except ImportError as error:
            _state["error"] = error
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(
            f"tfemergent: using the pure-TensorFlow kernels. {_state['error']} "
            f"Set {ENVIRONMENT_VARIABLE}=0 or call tfemergent.kernels.disable_custom_ops() "
            "to silence this warning.",
            RuntimeWarning,
            stacklevel=3,
        )
    return None


def use_custom_ops(dtype):
    """Whether a kernel of this ``dtype``, traced or run here and now, uses the C++ op."""
    if not _state["enabled"] or tf.as_dtype(dtype) not in SUPPORTED_DTYPES:
        return False
    if xla.in_xla_context():
        return False
    if not _state["in_saved_models"] and _in_save_context():
        return False
    return _library_or_none() is not None


def will_use_custom_ops(dtype="float32"):
    """Whether eager/graph (non-XLA) calls would use the C++ ops; for `supports_jit`."""
    return _state["enabled"] and tf.as_dtype(dtype) in SUPPORTED_DTYPES and (
        _library_or_none() is not None
    )


# ----------------------------------------------------------------------------
# Op wrappers (arguments validated by the public functions)
# ----------------------------------------------------------------------------


def sparse_matmul(x, indices, values, input_dim, output_dim, transpose_order=None):
    """``x @ K`` for the COO kernel K (row-major indices) with ``TfEmergent>SparseMatmul``.

    The forward op multiplies by the CSR matrix ``A = K^T`` (rows = outputs),
    built per call by ``TfEmergent>CsrFromCoo`` (a counting sort of the
    row-major indices by column, O(nnz), sequential reads, in one chunk per
    thread; cheaper than gathering the indices in ``transpose_order``, which is
    therefore not used); its values are read through
    ``value_positions`` (the kernel-order position of each nonzero of A), so
    the values gradient comes back in the kernel's own order. The input
    gradient ``dy @ K^T`` runs the same op in its row-parallel "gather" form on
    K's own CSR (the row-major indices as they are, built by one sequential
    pass), not the adjoint "scatter" form on ``A`` (slower: every nonzero then
    read-modify-writes an output row; see ``benchmarks/RESULTS.md``, "Kernel design
    measurements"). The values gradient also runs on K's own CSR (positions the
    identity): dK[i, j] = x[:, i] . dy[:, j], written in kernel order. The raw
    op's registered gradient (for graphs that hold the op without this wrapper,
    e.g. a reloaded SavedModel) uses the adjoint form.
    """
    library = load_custom_ops()
    indices = tf.cast(indices, tf.int64)
    del transpose_order  # the CSR op sorts by column itself (a counting sort, O(nnz))
    # K^T's CSR, with the kernel-order position of each of its nonzeros.
    row_pointers, column_indices, order = library.tf_emergent_csr_from_coo(
        indices=indices, num_rows=output_dim, num_columns=input_dim, transpose=True
    )

    @tf.custom_gradient
    def product(x, values):
        outputs = library.tf_emergent_sparse_matmul(
            x=x,
            values=values,
            row_pointers=row_pointers,
            column_indices=column_indices,
            value_positions=order,
            num_columns=input_dim,
            adjoint_a=False,
        )

        def gradient(upstream):
            kernel_row_pointers, kernel_columns, identity = library.tf_emergent_csr_from_coo(
                indices=indices, num_rows=input_dim, num_columns=output_dim, transpose=False
            )
            grad_x = library.tf_emergent_sparse_matmul(
                x=upstream,
                values=values,
                row_pointers=kernel_row_pointers,
                column_indices=kernel_columns,
                value_positions=identity,
                num_columns=output_dim,
                adjoint_a=False,
            )
            # dK[i, j] = x[:, i] . dy[:, j] over K's own CSR (rows i): the gradient
            # comes out in kernel order, with sequential writes.
            grad_values = library.tf_emergent_sparse_matmul_values_grad(
                a=upstream,
                b=x,
                row_pointers=kernel_row_pointers,
                column_indices=kernel_columns,
                value_positions=identity,
            )
            return grad_x, grad_values

        return outputs, gradient

    return product(x, values)


# ----------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------


# The CSR structure is integer bookkeeping: no gradient.
tf.no_gradient("TfEmergent>CsrFromCoo")


@tf.RegisterGradient("TfEmergent>SparseMatmul")
def _sparse_matmul_gradient(op, upstream):
    """y = x @ A^T: dx = dy @ A, dA = dy^T x; adjoint y = x @ A: dx = dy @ A^T, dA = x^T dy."""
    library = load_custom_ops()
    x, values, row_pointers, column_indices, value_positions = op.inputs
    adjoint_a = op.get_attr("adjoint_a")
    csr = dict(
        row_pointers=row_pointers,
        column_indices=column_indices,
        value_positions=value_positions,
    )
    grad_x = library.tf_emergent_sparse_matmul(
        x=upstream,
        values=values,
        num_columns=op.get_attr("num_columns"),
        adjoint_a=not adjoint_a,
        **csr,
    )
    column_side, row_side = (upstream, x) if adjoint_a else (x, upstream)
    grad_values = library.tf_emergent_sparse_matmul_values_grad(
        a=column_side, b=row_side, **csr
    )
    return [grad_x, grad_values, None, None, None]


@tf.RegisterGradient("TfEmergent>SparseMatmulValuesGrad")
def _sparse_matmul_values_grad_gradient(op, upstream):
    raise LookupError(
        "Second-order gradients of TfEmergent>SparseMatmul are not supported; use the "
        "pure-TF path (tfemergent.kernels.disable_custom_ops()) for them."
    )
