"""The C++ ops (`TfEmergent>SparseMatmul`, `TfEmergent>CsrFromCoo`) against the pure-TF path.

Every kernel runs on both paths (the switch `enable_custom_ops` /
`disable_custom_ops`) and the results are compared; gradients of the op path are
checked against float64 numerics; the loader's fallback warns once; a SavedModel
that contains the op loads after `load_custom_ops` and fails clearly before.
"""

import os
import pathlib
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tfemergent.kernels import custom_ops
from tfemergent.kernels import sparse_kernel_from_dense
from tfemergent.kernels import sparse_matmul

BUILT = custom_ops.LIBRARY_PATH.exists()
needs_library = pytest.mark.skipif(not BUILT, reason="the C++ ops are not built")
PATHS = ["custom_op", "pure_tf"]


@pytest.fixture(autouse=True)
def restore_switch():
    saved = dict(custom_ops._state)
    yield
    custom_ops._state.update(saved)


def set_path(path):
    if path == "custom_op":
        custom_ops.enable_custom_ops()
    else:
        custom_ops.disable_custom_ops()


def sparse_problem(dtype, num_inputs=23, num_outputs=17, batch=5, density=0.2, seed=0):
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=(num_inputs, num_outputs)).astype(dtype)
    kernel[rng.random(kernel.shape) > density] = 0.0
    kernel[3] = 0.0  # an empty row and column
    kernel[:, 4] = 0.0
    x = rng.normal(size=(batch, num_inputs)).astype(dtype)
    upstream = rng.normal(size=(batch, num_outputs)).astype(dtype)
    return kernel, x, upstream


def sparse_step(path, kernel, x, upstream):
    set_path(path)
    sparse = sparse_kernel_from_dense(kernel)
    values = tf.Variable(sparse.values)
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = sparse_matmul(x, tf.sparse.SparseTensor(sparse.indices, values, kernel.shape))
        loss = tf.reduce_sum(outputs * upstream)
    return [outputs] + tape.gradient(loss, [x, values])


@needs_library
@pytest.mark.parametrize("batch", [1, 5, 40, 200])  # 200: 7 batch tiles, one pass of 4 + 3
def test_sparse_matmul_paths_agree(batch):
    kernel, x, upstream = sparse_problem("float32", batch=batch)
    op = sparse_step("custom_op", kernel, x, upstream)
    reference = sparse_step("pure_tf", kernel, x, upstream)
    np.testing.assert_allclose(op[0], x @ kernel, rtol=1e-5, atol=1e-5)
    for got, expected in zip(op, reference):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@needs_library
def test_sparse_matmul_uses_the_op_only_when_enabled():
    kernel, x, _ = sparse_problem("float32")
    sparse = sparse_kernel_from_dense(kernel)
    for path, expected in (("custom_op", True), ("pure_tf", False)):
        set_path(path)
        graph = tf.function(lambda x: sparse_matmul(x, sparse)).get_concrete_function(
            tf.TensorSpec(x.shape, tf.float32)
        ).graph
        types = {op.type for op in graph.get_operations()}
        assert ("TfEmergent>SparseMatmul" in types) == expected, types


@needs_library
def test_sparse_matmul_gradient_float64_numerics():
    custom_ops.enable_custom_ops()
    kernel, x, _ = sparse_problem("float64", num_inputs=7, num_outputs=6, batch=3, density=0.5)
    sparse = sparse_kernel_from_dense(kernel)

    def product(x, values):
        return sparse_matmul(x, tf.sparse.SparseTensor(sparse.indices, values, kernel.shape))

    theoretical, numerical = tf.test.compute_gradient(product, [x, sparse.values])
    for a, b in zip(theoretical, numerical):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@needs_library
def test_csr_from_coo_hand_computed():
    # K [3 inputs, 4 outputs] with nonzeros (row-major) (0,1) (0,3) (1,0) (2,1) (2,3).
    library = custom_ops.load_custom_ops()
    indices = tf.constant([[0, 1], [0, 3], [1, 0], [2, 1], [2, 3]], tf.int64)
    row_pointers, columns, positions = library.tf_emergent_csr_from_coo(
        indices=indices, num_rows=4, num_columns=3
    )
    # A = K^T: row 0 <- input 1; row 1 <- inputs 0, 2; row 2 empty; row 3 <- inputs 0, 2.
    assert row_pointers.numpy().tolist() == [0, 1, 3, 3, 5]
    assert columns.numpy().tolist() == [1, 0, 2, 0, 2]
    assert positions.numpy().tolist() == [2, 0, 3, 1, 4]  # = np.lexsort((rows, cols))
    # A = K itself: K's own CSR, positions the identity.
    row_pointers, columns, positions = library.tf_emergent_csr_from_coo(
        indices=indices, num_rows=3, num_columns=4, transpose=False
    )
    assert row_pointers.numpy().tolist() == [0, 2, 3, 5]
    assert columns.numpy().tolist() == [1, 3, 0, 1, 3]
    assert positions.numpy().tolist() == [0, 1, 2, 3, 4]


def assert_csr_of_transpose(library, indices, num_inputs, num_outputs):
    """CsrFromCoo's CSR of K^T equals np.lexsort's column-major order of the indices."""
    row_pointers, columns, positions = library.tf_emergent_csr_from_coo(
        indices=indices, num_rows=num_outputs, num_columns=num_inputs
    )
    order = np.lexsort((indices[:, 0], indices[:, 1]))
    np.testing.assert_array_equal(positions.numpy(), order)
    np.testing.assert_array_equal(columns.numpy(), indices[order, 0])
    counts = np.bincount(indices[:, 1], minlength=num_outputs)
    np.testing.assert_array_equal(row_pointers.numpy(), np.concatenate([[0], np.cumsum(counts)]))


@needs_library
def test_csr_from_coo_matches_lexsort_on_a_random_kernel():
    library = custom_ops.load_custom_ops()
    kernel, _, _ = sparse_problem("float32", num_inputs=40, num_outputs=31, density=0.3)
    assert_csr_of_transpose(library, np.argwhere(kernel != 0).astype("int64"), 40, 31)


@needs_library
def test_csr_from_coo_in_parallel_chunks_matches_lexsort():
    # 160k nonzeros: cut into one chunk per thread (at least 65,536 nonzeros each).
    library = custom_ops.load_custom_ops()
    rng = np.random.default_rng(1)
    indices = np.argwhere(rng.random((500, 640)) < 0.5).astype("int64")
    assert len(indices) > 2 * 65536
    assert_csr_of_transpose(library, indices, 500, 640)
    row_pointers, columns, positions = library.tf_emergent_csr_from_coo(
        indices=indices, num_rows=500, num_columns=640, transpose=False
    )
    np.testing.assert_array_equal(columns.numpy(), indices[:, 1])
    np.testing.assert_array_equal(positions.numpy(), np.arange(len(indices)))
    counts = np.bincount(indices[:, 0], minlength=500)
    np.testing.assert_array_equal(row_pointers.numpy(), np.concatenate([[0], np.cumsum(counts)]))
    # The first bad entry is reported, wherever its chunk.
    bad = indices.copy()
    bad[-5] = [499, 700]
    bad[-2] = [499, 800]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"Received: indices\[{len(bad) - 5}\]=\[499, 700\]"):
        library.tf_emergent_csr_from_coo(indices=bad, num_rows=640, num_columns=500)


@needs_library
def test_csr_from_coo_rejects_unordered_and_out_of_range_indices():
    library = custom_ops.load_custom_ops()
    with pytest.raises(tf.errors.InvalidArgumentError, match="canonical row-major order"):
        library.tf_emergent_csr_from_coo(
            indices=tf.constant([[1, 0], [0, 1]], tf.int64), num_rows=2, num_columns=2
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match="canonical row-major order"):
        library.tf_emergent_csr_from_coo(  # a duplicate
            indices=tf.constant([[0, 1], [0, 1]], tf.int64), num_rows=2, num_columns=2
        )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"must lie in \[0, 2\)"):
        library.tf_emergent_csr_from_coo(
            indices=tf.constant([[0, 5]], tf.int64), num_rows=2, num_columns=2
        )


@needs_library
def test_raw_op_registered_gradient_matches_the_wrapper():
    """The adjoint-form gradient (raw op, e.g. in a reloaded SavedModel) equals the wrapper's."""
    custom_ops.enable_custom_ops()
    library = custom_ops.load_custom_ops()
    kernel, x, upstream = sparse_problem("float64", batch=6)
    sparse = sparse_kernel_from_dense(kernel)
    row_pointers, columns, order = library.tf_emergent_csr_from_coo(
        indices=tf.cast(sparse.indices, tf.int64), num_rows=kernel.shape[1],
        num_columns=kernel.shape[0],
    )
    values = tf.constant(sparse.values)
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch([x, values])
        outputs = library.tf_emergent_sparse_matmul(
            x=x, values=values, row_pointers=row_pointers, column_indices=columns,
            value_positions=order, num_columns=kernel.shape[0],
        )
        loss = tf.reduce_sum(outputs * upstream)
    raw = [outputs] + tape.gradient(loss, [x, values])
    wrapped = sparse_step("custom_op", kernel, x.numpy(), upstream)
    np.testing.assert_allclose(raw[0], x.numpy() @ kernel, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(raw[1], upstream @ kernel.T, rtol=1e-12, atol=1e-12)
    for got, expected in zip(raw, wrapped):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@needs_library
def test_sparse_matmul_op_rejects_a_bad_csr():
    library = custom_ops.load_custom_ops()
    with pytest.raises(tf.errors.InvalidArgumentError, match="column_indices must lie"):
        library.tf_emergent_sparse_matmul(
            x=tf.ones([2, 3]),
            values=tf.ones([1]),
            row_pointers=[0, 1],
            column_indices=[5],
            value_positions=[0],
            num_columns=3,
        )


@needs_library
def test_xla_path_is_pure_tf():
    custom_ops.enable_custom_ops()
    kernel, x, _ = sparse_problem("float32")
    sparse = sparse_kernel_from_dense(kernel)
    compiled = tf.function(lambda x: sparse_matmul(x, sparse), jit_compile=True)
    np.testing.assert_allclose(compiled(x), x @ kernel, rtol=1e-5, atol=1e-5)
    graph = compiled.get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph
    assert not any(op.type.startswith("TfEmergent>") for op in graph.get_operations())


def test_fallback_warns_once(monkeypatch, tmp_path):
    monkeypatch.setattr(custom_ops, "LIBRARY_PATH", tmp_path / "missing.so")
    monkeypatch.setitem(custom_ops._state, "library", None)
    monkeypatch.setitem(custom_ops._state, "error", None)
    monkeypatch.setitem(custom_ops._state, "warned", False)
    custom_ops.enable_custom_ops()
    kernel, x, _ = sparse_problem("float32")
    sparse = sparse_kernel_from_dense(kernel)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = sparse_matmul(x, sparse)
        second = sparse_matmul(x, sparse)
    messages = [str(w.message) for w in caught if "pure-TensorFlow kernels" in str(w.message)]
    assert len(messages) == 1, messages
    assert "missing.so" in messages[0]
    np.testing.assert_allclose(first, x @ kernel, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(second, first)
    with pytest.raises(ImportError, match="not built"):
        custom_ops.load_custom_ops()


def test_switch_and_invalid_argument():
    custom_ops.disable_custom_ops()
    assert not custom_ops.custom_ops_enabled()
    assert not custom_ops.use_custom_ops(tf.float32)
    custom_ops.enable_custom_ops()
    assert custom_ops.custom_ops_enabled()
    assert not custom_ops.use_custom_ops(tf.float16)
    with pytest.raises(ValueError, match="in_saved_models"):
        custom_ops.enable_custom_ops(in_saved_models="yes")


def _saved_model(directory, in_saved_models):
    custom_ops.enable_custom_ops(in_saved_models=in_saved_models)
    kernel, x, _ = sparse_problem("float32")
    sparse = sparse_kernel_from_dense(kernel)
    module = tf.Module()
    module.values = tf.Variable(sparse.values)
    module.call = tf.function(
        lambda x: sparse_matmul(
            x, tf.sparse.SparseTensor(sparse.indices, module.values, kernel.shape)
        ),
        input_signature=[tf.TensorSpec([None, kernel.shape[0]], tf.float32)],
    )
    tf.saved_model.save(module, str(directory))
    return kernel, x


def _op_types(directory):
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((pathlib.Path(directory) / "saved_model.pb").read_bytes())
    graph = proto.meta_graphs[0].graph_def
    return {node.op for function in graph.library.function for node in function.node_def}


@needs_library
def test_saved_model_is_pure_tf_by_default(tmp_path):
    _saved_model(tmp_path / "model", in_saved_models=False)
    assert not any(op.startswith("TfEmergent>") for op in _op_types(tmp_path / "model"))


@needs_library
def test_saved_model_with_the_op_needs_load_custom_ops(tmp_path):
    kernel, x = _saved_model(tmp_path / "model", in_saved_models=True)
    assert "TfEmergent>SparseMatmul" in _op_types(tmp_path / "model")
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import tensorflow as tf
        x = np.load({str(tmp_path / "x.npy")!r})
        try:
            tf.saved_model.load({str(tmp_path / "model")!r})
        except Exception as error:
            print("BEFORE:", type(error).__name__, str(error).splitlines()[0])
        from tfemergent.kernels import load_custom_ops
        load_custom_ops()
        model = tf.saved_model.load({str(tmp_path / "model")!r})
        np.save({str(tmp_path / "y.npy")!r}, model.call(x).numpy())
        """
    )
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    before = [line for line in result.stdout.splitlines() if line.startswith("BEFORE:")]
    # The first tfemergent op of the graph is named (the CSR structure op, then the product).
    assert before and re.search(r"TfEmergent>(CsrFromCoo|SparseMatmul)", before[0]), result.stdout
    assert "not registered" in before[0].lower() or "NotFound" in before[0], before[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), x @ kernel, rtol=1e-5, atol=1e-5)
