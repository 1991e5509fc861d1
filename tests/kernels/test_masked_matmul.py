"""Tests of `tfemergent.kernels.masked_matmul` (dense and gather paths)."""

import numpy as np
import pytest
import tensorflow as tf

from tfemergent.kernels import BlockMask
from tfemergent.kernels import masked_matmul

PATHS = ["dense", "gather"]

# Unequal blocks (3x2, 5x3 sharing row 3 with the first, 1x1), columns 4 and 7 in no block.
UNEQUAL_BLOCKS = [([0, 3, 5], [1, 2]), ([1, 2, 3, 4, 8], [0, 5, 6]), ([9], [8])]
INPUT_DIM, OUTPUT_DIM = 11, 9


# The same without the shared row: the gather path then computes the input gradient
# with a gather instead of a scatter-add.
DISJOINT_BLOCKS = [([0, 3, 5], [1, 2]), ([1, 2, 4, 8], [0, 5, 6]), ([9], [8])]


def unequal_mask():
    return BlockMask.from_blocks(UNEQUAL_BLOCKS, INPUT_DIM, OUTPUT_DIM)


def disjoint_mask():
    return BlockMask.from_blocks(DISJOINT_BLOCKS, INPUT_DIM, OUTPUT_DIM)


MASKS = [pytest.param(unequal_mask, id="shared-row"), pytest.param(disjoint_mask, id="disjoint")]


def random_problem(dtype="float32", batch=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, INPUT_DIM)).astype(dtype)
    kernel = rng.normal(size=(INPUT_DIM, OUTPUT_DIM)).astype(dtype)
    return x, kernel


def test_hand_computed():
    x = np.array([[1.0, 2.0, 3.0]], dtype="float32")
    kernel = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype="float32")
    mask = np.array([[1, 0], [1, 0], [0, 1]])
    # column 0: 1*1 + 2*3 = 7; column 1: 3*6 = 18.
    for implementation in PATHS + ["auto"]:
        for m in (mask, BlockMask.from_dense(mask)):
            result = masked_matmul(x, kernel, m, implementation=implementation)
            np.testing.assert_array_equal(result.numpy(), [[7.0, 18.0]])


@pytest.mark.parametrize("implementation", PATHS + ["auto"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unequal_blocks_match_numpy(implementation, dtype):
    x, kernel = random_problem(dtype)
    block_mask = unequal_mask()
    dense = block_mask.to_dense(dtype).numpy()
    assert not dense[:, [4, 7]].any()
    expected = x @ (kernel * dense)
    for mask in (block_mask, dense, tf.constant(dense), tf.Variable(dense)):
        result = masked_matmul(x, kernel, mask, implementation=implementation)
        assert result.dtype == dtype
        np.testing.assert_allclose(result.numpy(), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(result.numpy()[:, [4, 7]], 0.0)


@pytest.mark.parametrize("implementation", PATHS)
def test_random_receptive_fields_match_numpy(implementation):
    rng = np.random.default_rng(1)
    input_dim, output_dim = 40, 30
    patterns = (rng.random((5, input_dim)) < 0.2).astype("float32")
    mask = patterns[rng.integers(0, 5, size=output_dim)].T
    x = rng.normal(size=(6, input_dim)).astype("float32")
    kernel = rng.normal(size=(input_dim, output_dim)).astype("float32")
    result = masked_matmul(x, kernel, BlockMask.from_dense(mask), implementation=implementation)
    np.testing.assert_allclose(result.numpy(), x @ (kernel * mask), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", PATHS + ["auto"])
def test_all_zero_mask(implementation):
    x, kernel = random_problem()
    kernel = tf.Variable(kernel)
    mask = BlockMask.from_dense(np.zeros((INPUT_DIM, OUTPUT_DIM)))
    with tf.GradientTape() as tape:
        tape.watch(tf.constant(x))
        outputs = masked_matmul(x, kernel, mask, implementation=implementation)
    np.testing.assert_array_equal(outputs.numpy(), np.zeros((4, OUTPUT_DIM)))
    np.testing.assert_array_equal(tape.gradient(outputs, kernel).numpy(), 0.0)


def test_leading_dimensions_are_kept():
    x, kernel = random_problem(batch=6)
    x = x.reshape(2, 3, INPUT_DIM)
    dense = unequal_mask().to_dense().numpy()
    for implementation in PATHS:
        result = masked_matmul(x, kernel, unequal_mask(), implementation=implementation)
        assert result.shape == (2, 3, OUTPUT_DIM)
        np.testing.assert_allclose(result.numpy(), x @ (kernel * dense), rtol=1e-5, atol=1e-5)


def test_auto_picks_gather_only_for_sparse_concrete_masks(monkeypatch):
    from tfemergent.kernels import custom_ops
    from tfemergent.kernels import xla

    monkeypatch.setitem(custom_ops._state, "enabled", False)  # the XLA gather path

    calls = []
    original = xla.block_masked_matmul
    monkeypatch.setattr(
        xla, "block_masked_matmul", lambda *args: calls.append(1) or original(*args)
    )
    x = np.ones((1, 8), "float32")
    kernel = np.ones((8, 8), "float32")
    sparse = np.zeros((8, 8))
    sparse[:2, :2] = 1  # density 1/16, one 2x2 block
    masked_matmul(x, kernel, sparse)
    assert len(calls) == 1
    masked_matmul(x, kernel, np.ones((8, 8)))  # density 1: dense
    assert len(calls) == 1
    masked_matmul(x, kernel, BlockMask.from_dense(np.ones((8, 8))))  # BlockMask: gather
    assert len(calls) == 2

    @tf.function
    def symbolic(mask):
        return masked_matmul(x, kernel, mask)

    np.testing.assert_array_equal(symbolic(tf.constant(sparse)).numpy()[0], [2, 2] + [0] * 6)
    assert len(calls) == 2  # symbolic dense mask: dense path


@pytest.mark.parametrize("make_mask", MASKS)
@pytest.mark.parametrize("implementation", PATHS)
def test_gradients_match_numerical_float64(implementation, make_mask):
    x, kernel = random_problem("float64", batch=3)
    mask = make_mask()
    assert mask.disjoint_rows == (make_mask is disjoint_mask)
    theoretical, numerical = tf.test.compute_gradient(
        lambda x, kernel: masked_matmul(x, kernel, mask, implementation=implementation),
        [x, kernel],
    )
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("make_mask", MASKS)
@pytest.mark.parametrize("implementation", PATHS)
def test_masked_weights_get_exactly_zero_gradient(implementation, make_mask):
    x, kernel = random_problem()
    block_mask = make_mask()
    dense = block_mask.to_dense().numpy()
    kernel = tf.Variable(kernel)
    mask_variable = tf.Variable(dense)
    upstream = np.random.default_rng(5).normal(size=(4, OUTPUT_DIM)).astype("float32")
    mask = block_mask if implementation == "gather" else mask_variable
    with tf.GradientTape() as tape:
        outputs = masked_matmul(x, kernel, mask, implementation=implementation)
        loss = tf.reduce_sum(outputs * upstream)
    grad_kernel, grad_mask = tape.gradient(loss, [kernel, mask_variable])
    assert grad_mask is None  # the mask gets no gradient
    grad_kernel = grad_kernel.numpy()
    assert np.all(grad_kernel[dense == 0] == 0.0)
    np.testing.assert_allclose(grad_kernel, (x.T @ upstream) * dense, rtol=1e-5, atol=1e-5)


def test_jit_compile_with_variable_block_mask():
    x, kernel = random_problem()
    first = unequal_mask()
    rows = tf.Variable(first.row_index, trainable=False)
    cols = tf.Variable(first.col_index, trainable=False)
    mask = BlockMask(rows, cols, INPUT_DIM, OUTPUT_DIM)
    kernel = tf.Variable(kernel)

    @tf.function(jit_compile=True)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(masked_matmul(x, kernel, mask, implementation="gather") ** 2)
        return (loss,) + tuple(tape.gradient(loss, [x, kernel]))

    def expected(dense):
        outputs = x @ (kernel.numpy() * dense)
        return (
            np.sum(outputs**2),
            2 * outputs @ (kernel.numpy() * dense).T,
            (x.T @ (2 * outputs)) * dense,
        )

    for actual, wanted in zip(step(x), expected(first.to_dense().numpy())):
        np.testing.assert_allclose(actual.numpy(), wanted, rtol=1e-5, atol=1e-4)
    # Move the receptive fields: same shapes, no retracing needed, new numbers.
    second = BlockMask.from_blocks(
        [([1, 2, 4], [0, 3]), ([0, 5, 6, 7, 9], [2, 4, 8]), ([10], [6])], INPUT_DIM, OUTPUT_DIM
    )
    rows.assign(second.row_index)
    cols.assign(second.col_index)
    for actual, wanted in zip(step(x), expected(second.to_dense().numpy())):
        np.testing.assert_allclose(actual.numpy(), wanted, rtol=1e-5, atol=1e-4)


def test_dense_path_under_jit_with_symbolic_mask():
    x, kernel = random_problem()
    dense = unequal_mask().to_dense()

    @tf.function(jit_compile=True)
    def run(x, mask):
        return masked_matmul(x, kernel, mask)

    np.testing.assert_allclose(
        run(x, dense).numpy(), x @ (kernel * dense.numpy()), rtol=1e-5, atol=1e-5
    )


def test_mirrored_strategy_replica_context(mirrored_strategy):
    x, kernel = random_problem(batch=4)
    block_mask = unequal_mask()
    dense = block_mask.to_dense().numpy()
    with mirrored_strategy.scope():
        kernel_variable = tf.Variable(kernel)

    @tf.function
    def step(x):
        def replica_step(x):
            with tf.GradientTape() as tape:
                gathered = masked_matmul(x, kernel_variable, block_mask, implementation="gather")
                densed = masked_matmul(x, kernel_variable, dense, implementation="dense")
                loss = tf.reduce_sum(gathered) + tf.reduce_sum(densed)
            grad = tape.gradient(loss, kernel_variable)
            return tf.distribute.get_replica_context().all_reduce("sum", grad)

        return mirrored_strategy.run(replica_step, args=(x,))

    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)
    batch = next(iter(mirrored_strategy.experimental_distribute_dataset(dataset)))
    grads = mirrored_strategy.experimental_local_results(step(batch))
    expected = 2 * (x.T @ np.ones((4, OUTPUT_DIM), "float32")) * dense
    for grad in grads:
        np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"implementation": "sparse"}, id="implementation"),
        pytest.param({"x": np.ones((2, 3), "int32")}, id="x-int"),
        pytest.param({"x": np.ones(3, "float32")}, id="x-rank-1"),
        pytest.param({"x": np.ones((2, 4), "float32")}, id="x-width"),
        pytest.param({"x": np.ones((2, 3), "float64")}, id="x-dtype-differs"),
        pytest.param({"x": "abc"}, id="x-string"),
        pytest.param({"kernel": np.ones((3, 2, 1), "float32")}, id="kernel-rank-3"),
        pytest.param({"kernel": np.ones((3, 2), "int32")}, id="kernel-int"),
        pytest.param({"mask": np.ones((2, 3))}, id="mask-shape"),
        pytest.param({"mask": None}, id="mask-none"),
        pytest.param({"mask": BlockMask.from_dense(np.ones((3, 3)))}, id="blockmask-shape"),
    ],
)
def test_invalid_arguments(kwargs):
    arguments = {
        "x": np.ones((2, 3), "float32"),
        "kernel": np.ones((3, 2), "float32"),
        "mask": np.ones((3, 2)),
    }
    implementation = kwargs.pop("implementation", "auto")
    arguments.update(kwargs)
    with pytest.raises(ValueError, match="Received:"):
        masked_matmul(**arguments, implementation=implementation)


def test_gather_with_symbolic_dense_mask_is_an_error():
    @tf.function
    def run(mask):
        x = np.ones((1, 2), "float32")
        return masked_matmul(x, np.ones((2, 2), "float32"), mask, implementation="gather")

    with pytest.raises(ValueError, match="Received:"):
        run(tf.ones((2, 2)))


def test_features_first_and_block_stored_kernel_hand_computed():
    # Block 0: inputs {0, 2} -> output 1; block 1: input 1 -> outputs {0, 2}.
    block_mask = BlockMask.from_blocks([([0, 2], [1]), ([1], [0, 2])], 3, 3)
    kernel = np.array([[0.0, 1.0, 0.0], [3.0, 0.0, 4.0], [0.0, 2.0, 0.0]], "float32")
    x = np.array([[1.0, 2.0, 3.0], [1.0, 0.0, -1.0]], "float32")
    expected = np.array([[6.0, 7.0, 8.0], [0.0, -1.0, 0.0]], "float32")
    blocks = block_mask.gather_blocks(kernel)
    np.testing.assert_array_equal(masked_matmul(x, blocks, block_mask).numpy(), expected)
    for stored in (kernel, blocks):
        result = masked_matmul(x.T, stored, block_mask, features_first=True)
        np.testing.assert_array_equal(result.numpy(), expected.T)
    # Gradients of the features-first block-stored path: d sum(y * u) / d blocks.
    upstream = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], "float32")  # [N_out, batch]
    blocks = tf.Variable(blocks)
    x_t = tf.constant(x.T)
    with tf.GradientTape() as tape:
        tape.watch(x_t)
        loss = tf.reduce_sum(masked_matmul(x_t, blocks, block_mask, features_first=True) * upstream)
    grad_x, grad_blocks = tape.gradient(loss, [x_t, blocks])
    dense_grad = x.T @ upstream.T * block_mask.to_dense().numpy()  # [N_in, N_out]
    np.testing.assert_allclose(block_mask.scatter_blocks(grad_blocks), dense_grad, atol=1e-6)
    np.testing.assert_allclose(grad_x, (upstream.T @ kernel.T).T, atol=1e-6)
    with pytest.raises(ValueError, match="implementation='dense'"):
        masked_matmul(x, blocks, block_mask, implementation="dense")
    with pytest.raises(ValueError, match="features_first"):
        masked_matmul(x[None], kernel, block_mask, features_first=True)
