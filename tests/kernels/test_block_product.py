"""Tests of `tfemergent.kernels.block_matmul` (block-stored weights)."""

import numpy as np
import pytest
import tensorflow as tf

from tfemergent.kernels import BlockMask
from tfemergent.kernels import block_matmul
from tfemergent.kernels import masked_matmul

# Unequal blocks (3x2, 5x3 sharing row 3 with the first, 1x1); columns 4 and 7 are
# in no block. DISJOINT_BLOCKS drops the shared row (input gradient by gather).
UNEQUAL_BLOCKS = [([0, 3, 5], [1, 2]), ([1, 2, 3, 4, 8], [0, 5, 6]), ([9], [8])]
DISJOINT_BLOCKS = [([0, 3, 5], [1, 2]), ([1, 2, 4, 8], [0, 5, 6]), ([9], [8])]
INPUT_DIM, OUTPUT_DIM = 11, 9
EMPTY_COLUMNS = [3, 4, 7]  # column 3 too: no block lists it


def shared_row_mask():
    return BlockMask.from_blocks(UNEQUAL_BLOCKS, INPUT_DIM, OUTPUT_DIM)


def disjoint_mask():
    return BlockMask.from_blocks(DISJOINT_BLOCKS, INPUT_DIM, OUTPUT_DIM)


MASKS = [pytest.param(shared_row_mask, id="shared-row"), pytest.param(disjoint_mask, id="disjoint")]


def padding_of(block_mask):
    """Numpy bool [B, R, C]: True at padding entries."""
    rows = block_mask.row_index.numpy() < block_mask.input_dim
    cols = block_mask.col_index.numpy() < block_mask.output_dim
    return ~(rows[:, :, None] & cols[:, None, :])


def numpy_dense(block_kernel, block_mask):
    """The dense kernel of block-stored weights, built entry by entry."""
    dense = np.zeros((block_mask.input_dim, block_mask.output_dim), block_kernel.dtype)
    rows, cols = block_mask.row_index.numpy(), block_mask.col_index.numpy()
    for b, r, c in zip(*np.nonzero(~padding_of(block_mask))):
        dense[rows[b, r], cols[b, c]] = block_kernel[b, r, c]
    return dense


def random_problem(block_mask, dtype="float32", batch=4, seed=0, padding_value=np.nan):
    """x [batch, N_in] and a block kernel whose padding holds ``padding_value``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, block_mask.input_dim)).astype(dtype)
    shape = (block_mask.num_blocks, block_mask.max_rows, block_mask.max_cols)
    block_kernel = rng.normal(size=shape).astype(dtype)
    block_kernel[padding_of(block_mask)] = padding_value
    return x, block_kernel


def test_hand_computed():
    # Block 0: inputs {0, 2} -> output 1; block 1: input 1 -> outputs {0, 2}.
    block_mask = BlockMask.from_blocks([([0, 2], [1]), ([1], [0, 2])], 3, 3)
    block_kernel = np.array(
        [[[1.0, -5.0], [2.0, -5.0]], [[3.0, 4.0], [-5.0, -5.0]]], dtype="float32"
    )
    x = np.array([[1.0, 2.0, 3.0], [0.0, 1.0, 0.0]], dtype="float32")
    # Output 0: 3 * x1; output 1: 1 * x0 + 2 * x2; output 2: 4 * x1.
    expected = [[6.0, 7.0, 8.0], [3.0, 0.0, 4.0]]
    np.testing.assert_array_equal(block_matmul(x, block_kernel, block_mask).numpy(), expected)


@pytest.mark.parametrize("make_mask", MASKS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_unequal_blocks_match_numpy(make_mask, dtype):
    block_mask = make_mask()
    x, block_kernel = random_problem(block_mask, dtype)  # NaN padding must be ignored
    expected = x @ numpy_dense(block_kernel, block_mask)
    for kernel in (block_kernel, tf.constant(block_kernel), tf.Variable(block_kernel)):
        result = block_matmul(x, kernel, block_mask)
        assert result.dtype == dtype and result.shape == (4, OUTPUT_DIM)
        np.testing.assert_allclose(
            result.numpy(), expected, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6
        )
        np.testing.assert_array_equal(result.numpy()[:, EMPTY_COLUMNS], 0.0)


def test_receptive_fields_from_dense_match_numpy():
    rng = np.random.default_rng(1)
    patterns = (rng.random((5, 40)) < 0.2).astype("float32")
    mask = patterns[rng.integers(0, 5, size=30)].T  # [40, 30]
    block_mask = BlockMask.from_dense(mask)
    x, block_kernel = random_problem(block_mask, "float64", batch=6)
    np.testing.assert_allclose(
        block_matmul(x, block_kernel, block_mask).numpy(),
        x @ numpy_dense(block_kernel, block_mask),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("make_mask", MASKS)
def test_gradients_match_numerical_float64(make_mask):
    block_mask = make_mask()
    assert block_mask.disjoint_rows == (make_mask is disjoint_mask)
    x, block_kernel = random_problem(block_mask, "float64", batch=3, padding_value=0.0)
    theoretical, numerical = tf.test.compute_gradient(
        lambda x, block_kernel: block_matmul(x, block_kernel, block_mask), [x, block_kernel]
    )
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("make_mask", MASKS)
def test_padding_gets_exactly_zero_gradient(make_mask):
    block_mask = make_mask()
    x, block_kernel = random_problem(block_mask, "float64", padding_value=np.inf)
    block_kernel = tf.Variable(block_kernel)
    x = tf.constant(x)
    upstream = np.random.default_rng(5).normal(size=(4, OUTPUT_DIM))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(block_matmul(x, block_kernel, block_mask) * upstream)
    grad_x, grad_kernel = tape.gradient(loss, [x, block_kernel])
    assert grad_kernel.shape == block_kernel.shape  # block-shaped, never N_in x N_out
    padding = padding_of(block_mask)
    assert padding.any()
    np.testing.assert_array_equal(grad_kernel.numpy()[padding], 0.0)
    # Real entries: d loss / d w[b, r, c] = sum_m x[m, row] * upstream[m, col].
    dense_grad = x.numpy().T @ upstream
    expected = block_mask.gather_blocks(dense_grad).numpy()
    np.testing.assert_allclose(grad_kernel.numpy(), expected, rtol=1e-12, atol=1e-12)
    dense = numpy_dense(np.where(padding, 0.0, block_kernel.numpy()), block_mask)
    np.testing.assert_allclose(grad_x.numpy(), upstream @ dense.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("make_mask", MASKS)
def test_equals_masked_matmul_with_gathered_blocks(make_mask):
    block_mask = make_mask()
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(5, INPUT_DIM)))
    kernel = tf.Variable(rng.normal(size=(INPUT_DIM, OUTPUT_DIM)))
    block_kernel = tf.Variable(block_mask.gather_blocks(kernel))
    upstream = rng.normal(size=(5, OUTPUT_DIM))

    def value_and_grads(matmul, weights):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = matmul()
            loss = tf.reduce_sum(outputs * upstream)
        return [outputs] + tape.gradient(loss, [x, weights])

    gathered = value_and_grads(lambda: masked_matmul(x, kernel, block_mask), kernel)
    blocked = value_and_grads(lambda: block_matmul(x, block_kernel, block_mask), block_kernel)
    for a, b in zip(gathered[:2], blocked[:2]):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        block_mask.gather_blocks(gathered[2]).numpy(), blocked[2].numpy(), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        block_mask.scatter_blocks(blocked[2]).numpy(), gathered[2].numpy(), rtol=1e-12, atol=1e-12
    )


def test_jit_compile_with_variable_block_mask():
    first = shared_row_mask()
    rows = tf.Variable(first.row_index, trainable=False)
    cols = tf.Variable(first.col_index, trainable=False)
    block_mask = BlockMask(rows, cols, INPUT_DIM, OUTPUT_DIM)
    x, block_kernel = random_problem(first, padding_value=0.0)
    block_kernel = tf.Variable(block_kernel)
    traces = []

    @tf.function(jit_compile=True)
    def step(x):
        traces.append(1)
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(block_matmul(x, block_kernel, block_mask) ** 2)
        return (loss,) + tuple(tape.gradient(loss, [x, block_kernel]))

    def expected(current):
        dense = numpy_dense(block_kernel.numpy(), current)
        outputs = x @ dense
        grad_dense = x.T @ (2 * outputs)
        return np.sum(outputs**2), 2 * outputs @ dense.T, current.gather_blocks(grad_dense)

    for actual, wanted in zip(step(x), expected(first)):
        np.testing.assert_allclose(actual.numpy(), wanted, rtol=1e-5, atol=1e-4)
    # Move the receptive fields (same block shape): no retracing, new numbers.
    second = BlockMask.from_blocks(
        [([1, 2, 4], [0, 3]), ([0, 5, 6, 7, 9], [2, 4, 8]), ([10], [6])], INPUT_DIM, OUTPUT_DIM
    )
    rows.assign(second.row_index)
    cols.assign(second.col_index)
    for actual, wanted in zip(step(x), expected(second)):
        np.testing.assert_allclose(actual.numpy(), wanted, rtol=1e-5, atol=1e-4)
    assert len(traces) == 1


def test_leading_dimensions_and_unknown_batch():
    block_mask = shared_row_mask()
    x, block_kernel = random_problem(block_mask, batch=6)
    dense = numpy_dense(block_kernel, block_mask)
    result = block_matmul(x.reshape(2, 3, INPUT_DIM), block_kernel, block_mask)
    assert result.shape == (2, 3, OUTPUT_DIM)
    np.testing.assert_allclose(result.numpy(), (x @ dense).reshape(2, 3, -1), rtol=1e-5, atol=1e-5)

    @tf.function(input_signature=[tf.TensorSpec([None, INPUT_DIM], tf.float32)])
    def run(x):
        return block_matmul(x, block_kernel, block_mask)

    np.testing.assert_allclose(run(x).numpy(), x @ dense, rtol=1e-5, atol=1e-5)


def test_all_zero_mask():
    block_mask = BlockMask.from_dense(np.zeros((INPUT_DIM, OUTPUT_DIM)))
    assert block_mask.num_blocks == 0
    x = tf.constant(np.ones((2, INPUT_DIM), "float32"))
    block_kernel = tf.Variable(tf.zeros([0, 1, 1]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        outputs = block_matmul(x, block_kernel, block_mask)
    np.testing.assert_array_equal(outputs.numpy(), np.zeros((2, OUTPUT_DIM)))
    grad_x, grad_kernel = tape.gradient(outputs, [x, block_kernel])
    np.testing.assert_array_equal(grad_x.numpy(), 0.0)
    assert grad_kernel.shape == (0, 1, 1)


def test_mirrored_strategy_replica_context(mirrored_strategy):
    block_mask = disjoint_mask()
    x, block_kernel = random_problem(block_mask, padding_value=0.0)
    with mirrored_strategy.scope():
        kernel_variable = tf.Variable(block_kernel)

    @tf.function
    def step(x):
        def replica_step(x):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(block_matmul(x, kernel_variable, block_mask))
            grad = tape.gradient(loss, kernel_variable)
            return tf.distribute.get_replica_context().all_reduce("sum", grad)

        return mirrored_strategy.run(replica_step, args=(x,))

    dataset = tf.data.Dataset.from_tensor_slices(x).batch(4)
    batch = next(iter(mirrored_strategy.experimental_distribute_dataset(dataset)))
    expected = block_mask.gather_blocks(x.T @ np.ones((4, OUTPUT_DIM), "float32")).numpy()
    for grad in mirrored_strategy.experimental_local_results(step(batch)):
        np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-5, atol=1e-5)


def _blocks(dtype="float32"):
    block_mask = shared_row_mask()
    return np.zeros((block_mask.num_blocks, block_mask.max_rows, block_mask.max_cols), dtype)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"block_mask": np.ones((INPUT_DIM, OUTPUT_DIM))}, id="dense-mask"),
        pytest.param({"block_mask": None}, id="mask-none"),
        pytest.param({"x": "abc"}, id="x-string"),
        pytest.param({"x": np.ones((2, INPUT_DIM), "int32")}, id="x-int"),
        pytest.param({"x": np.ones(INPUT_DIM, "float32")}, id="x-rank-1"),
        pytest.param({"x": np.ones((2, INPUT_DIM + 1), "float32")}, id="x-width"),
        pytest.param({"block_kernel": None}, id="kernel-none"),
        pytest.param({"block_kernel": _blocks("int32")}, id="kernel-int"),
        pytest.param({"block_kernel": _blocks("float64")}, id="kernel-dtype-differs"),
        pytest.param({"block_kernel": _blocks()[:, :, 0]}, id="kernel-rank-2"),
        pytest.param({"block_kernel": _blocks()[:, :-1]}, id="kernel-rows"),
        pytest.param({"block_kernel": np.zeros((INPUT_DIM, OUTPUT_DIM), "float32")}, id="dense"),
    ],
)
def test_invalid_arguments(kwargs):
    arguments = {
        "x": np.ones((2, INPUT_DIM), "float32"),
        "block_kernel": _blocks(),
        "block_mask": shared_row_mask(),
    }
    arguments.update(kwargs)
    with pytest.raises(ValueError, match="Received: [a-z_.]+="):
        block_matmul(**arguments)


def test_padding_free_mask_skips_zeroing_and_stays_exact():
    # Equal blocks: no sentinel, so the kernel may skip zeroing padded entries.
    blocks = [([0, 3], [1, 2]), ([1, 2], [0, 5]), ([9, 10], [8, 6])]
    block_mask = BlockMask.from_blocks(blocks, INPUT_DIM, OUTPUT_DIM)
    assert block_mask.padding_free
    assert not shared_row_mask().padding_free
    variable_mask = BlockMask(
        tf.Variable(block_mask.row_index), tf.Variable(block_mask.col_index), INPUT_DIM, OUTPUT_DIM
    )
    assert not variable_mask.padding_free  # may be reassigned with padding later
    x, block_kernel = random_problem(block_mask, "float64", batch=3)
    expected = x @ numpy_dense(block_kernel, block_mask)
    for mask in (block_mask, variable_mask):
        np.testing.assert_allclose(
            block_matmul(x, block_kernel, mask).numpy(), expected, rtol=1e-12, atol=1e-12
        )
    theoretical, numerical = tf.test.compute_gradient(
        lambda x, block_kernel: block_matmul(x, block_kernel, block_mask), [x, block_kernel]
    )
    for analytic, numeric in zip(theoretical, numerical):
        np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-7)
