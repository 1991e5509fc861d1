"""Tests of `tfemergent.kernels.sparse_matmul` and `sparse_kernel_from_dense`."""


import numpy as np
import pytest
import tensorflow as tf

from tfemergent.kernels import sparse_kernel_from_dense
from tfemergent.kernels import sparse_matmul
from tfemergent.kernels import sparse as sparse_module
from docstring_examples import assert_docstring_examples

INPUT_DIM, OUTPUT_DIM = 9, 7


def random_problem(dtype="float32", batch=4, zeros=0.7, seed=0):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(INPUT_DIM, OUTPUT_DIM)).astype(dtype)
    kernel[rng.random(kernel.shape) < zeros] = 0.0
    kernel[:, 3] = 0.0  # an output column without connections
    x = rng.normal(size=(batch, INPUT_DIM)).astype(dtype)
    return x, kernel


def with_values(sparse_kernel, values):
    return tf.sparse.SparseTensor(sparse_kernel.indices, values, sparse_kernel.dense_shape)


def jit_product(x, indices, values):
    """The XLA fallback path (the CSR ops do not compile)."""
    sparse = tf.sparse.SparseTensor(indices, values, [INPUT_DIM, OUTPUT_DIM])
    return sparse_matmul(x, sparse)


JIT_PRODUCT = tf.function(jit_product, jit_compile=True)


def test_hand_computed():
    kernel = np.array([[0.0, 2.0], [1.0, 0.0], [0.0, -3.0]], "float32")
    x = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], "float32")
    np.testing.assert_array_equal(
        sparse_matmul(x, sparse_kernel_from_dense(kernel)).numpy(), [[2.0, -7.0], [1.0, 0.0]]
    )


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_matches_dense_numpy(dtype):
    x, kernel = random_problem(dtype)
    sparse = sparse_kernel_from_dense(kernel)
    assert sparse.values.shape[0] == np.count_nonzero(kernel)
    result = sparse_matmul(x, sparse)
    assert result.dtype == dtype and result.shape == (4, OUTPUT_DIM)
    expected = x.astype("float64") @ kernel.astype("float64")
    tolerance = {"float16": 1e-2, "float32": 1e-5, "float64": 1e-12}[dtype]
    np.testing.assert_allclose(result.numpy(), expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(result.numpy()[:, 3], 0.0)


@pytest.mark.parametrize("path", ["csr", "xla"])
def test_gradients_match_numerical_float64(path):
    x, kernel = random_problem("float64", batch=3)
    sparse = sparse_kernel_from_dense(kernel)
    if path == "csr":
        function = lambda x, values: sparse_matmul(x, with_values(sparse, values))  # noqa: E731
    else:
        function = lambda x, values: JIT_PRODUCT(x, sparse.indices, values)  # noqa: E731
    np.testing.assert_allclose(
        function(x, sparse.values).numpy(), x @ kernel, rtol=1e-12, atol=1e-12
    )
    theoretical, numerical = tf.test.compute_gradient(function, [x, sparse.values])
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-7)


def test_gradients_are_values_shaped_and_exact():
    x, kernel = random_problem("float64")
    sparse = sparse_kernel_from_dense(kernel)
    values = tf.Variable(sparse.values)
    x = tf.constant(x)
    upstream = np.random.default_rng(5).normal(size=(4, OUTPUT_DIM))

    @tf.function
    def grads():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(sparse_matmul(x, with_values(sparse, values)) * upstream)
        return tape.gradient(loss, [x, values])

    grad_x, grad_values = grads()
    assert grad_values.shape == values.shape  # [nnz], never N_in x N_out
    dense_grad = x.numpy().T @ upstream
    rows, cols = sparse.indices.numpy().T
    np.testing.assert_allclose(grad_values.numpy(), dense_grad[rows, cols], rtol=1e-12)
    np.testing.assert_allclose(grad_x.numpy(), upstream @ kernel.T, rtol=1e-12, atol=1e-12)


def test_empty_kernel():
    sparse = sparse_kernel_from_dense(np.zeros((INPUT_DIM, OUTPUT_DIM), "float32"))
    assert sparse.values.shape == (0,)
    x = tf.constant(np.ones((2, INPUT_DIM), "float32"))
    values = tf.Variable(sparse.values)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = sparse_matmul(x, with_values(sparse, values))
    np.testing.assert_array_equal(outputs.numpy(), np.zeros((2, OUTPUT_DIM)))
    grad_x, grad_values = tape.gradient(outputs, [x, values])
    np.testing.assert_array_equal(tf.convert_to_tensor(grad_x).numpy(), 0.0)
    assert grad_values.shape == (0,)


def test_threshold_and_graph_mode():
    kernel = np.array([[0.5, -0.05], [0.0, -2.0]], "float32")
    sparse = sparse_kernel_from_dense(kernel, threshold=0.1)
    assert sparse.indices.numpy().tolist() == [[0, 0], [1, 1]]
    assert sparse.shape == (2, 2) and sparse.indices.dtype == tf.int64
    assert sparse_kernel_from_dense(kernel).values.shape == (3,)

    @tf.function
    def run(x):
        return sparse_matmul(x, sparse)

    x = np.array([[1.0, 2.0]], "float32")
    np.testing.assert_allclose(run(x).numpy(), [[0.5, -4.0]])


def _sparse(dtype="float32", indices=((0, 1), (2, 0)), shape=(INPUT_DIM, OUTPUT_DIM)):
    return tf.sparse.SparseTensor(indices, tf.constant([1.0, 2.0], dtype), shape)


# Built lazily (no TensorFlow op at collection time).
@pytest.mark.parametrize(
    "make_kwargs",
    [
        pytest.param(
            lambda: {"sparse_kernel": np.ones((INPUT_DIM, OUTPUT_DIM), "float32")}, id="dense"
        ),
        pytest.param(lambda: {"sparse_kernel": None}, id="kernel-none"),
        pytest.param(lambda: {"sparse_kernel": _sparse("float64")}, id="kernel-dtype-differs"),
        pytest.param(
            lambda: {"sparse_kernel": _sparse(indices=((0, 1, 0), (2, 0, 0)), shape=(9, 7, 1))},
            id="rank-3",
        ),
        pytest.param(lambda: {"sparse_kernel": _sparse(indices=((2, 0), (0, 1)))}, id="unordered"),
        pytest.param(lambda: {"sparse_kernel": _sparse(indices=((0, 0), (9, 1)))}, id="range"),
        pytest.param(lambda: {"x": "abc"}, id="x-string"),
        pytest.param(lambda: {"x": np.ones((2, INPUT_DIM), "int32")}, id="x-int"),
        pytest.param(lambda: {"x": np.ones(INPUT_DIM, "float32")}, id="x-rank-1"),
        pytest.param(lambda: {"x": np.ones((2, INPUT_DIM + 1), "float32")}, id="x-width"),
    ],
)
def test_invalid_arguments(make_kwargs):
    arguments = {"x": np.ones((2, INPUT_DIM), "float32"), "sparse_kernel": _sparse()}
    arguments.update(make_kwargs())
    with pytest.raises(ValueError, match="Received: [a-z_.]+="):
        sparse_matmul(**arguments)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"threshold": -0.1}, id="threshold-negative"),
        pytest.param({"threshold": "big"}, id="threshold-string"),
        pytest.param({"kernel": np.ones(3, "float32")}, id="kernel-rank-1"),
        pytest.param({"kernel": np.ones((2, 2), "int32")}, id="kernel-int"),
    ],
)
def test_invalid_from_dense_arguments(kwargs):
    arguments = {"kernel": np.ones((2, 2), "float32"), "threshold": 0.0}
    arguments.update(kwargs)
    with pytest.raises(ValueError, match="Received: [a-z_.]+="):
        sparse_kernel_from_dense(**arguments)


def test_docstring_examples():
    assert_docstring_examples(sparse_module)


@pytest.mark.parametrize("batch", [3, 40])  # one partial chunk; several chunks + padding
def test_precomputed_transpose_order_and_unknown_batch(batch):
    x, kernel = random_problem("float64", batch=batch, zeros=0.5)
    sparse = sparse_kernel_from_dense(kernel)
    rows, cols = sparse.indices.numpy().T
    order = np.lexsort((rows, cols))
    values = tf.Variable(sparse.values)
    upstream = np.random.default_rng(1).normal(size=(batch, OUTPUT_DIM))

    @tf.function(input_signature=[tf.TensorSpec([None, INPUT_DIM], tf.float64)])
    def run(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = sparse_matmul(x, with_values(sparse, values), transpose_order=order)
            loss = tf.reduce_sum(outputs * upstream)
        return [outputs] + tape.gradient(loss, [x, values])

    outputs, grad_x, grad_values = run(x)
    np.testing.assert_allclose(outputs.numpy(), x @ kernel, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad_x.numpy(), upstream @ kernel.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        grad_values.numpy(), (x.T @ upstream)[rows, cols], rtol=1e-12, atol=1e-12
    )


def test_invalid_transpose_order():
    x, kernel = random_problem()
    sparse = sparse_kernel_from_dense(kernel)
    with pytest.raises(ValueError, match="Received: transpose_order="):
        sparse_matmul(x, sparse, transpose_order=np.zeros(3, "int64"))
    with pytest.raises(ValueError, match="Received: transpose_order="):
        sparse_matmul(x, sparse, transpose_order=np.zeros(sparse.values.shape, "float32"))
