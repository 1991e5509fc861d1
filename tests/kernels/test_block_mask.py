"""Tests of `tfemergent.kernels.BlockMask`."""

import numpy as np
import pytest
import tensorflow as tf

from tfemergent.kernels import BlockMask

# Columns 0 and 2 share rows {0, 1}; column 3 uses rows {1, 2}; column 1 is empty.
HAND_MASK = np.array(
    [
        [1, 0, 1, 0],
        [1, 0, 1, 1],
        [0, 0, 0, 1],
    ]
)


def test_from_dense_groups_identical_columns():
    mask = BlockMask.from_dense(HAND_MASK)
    assert (mask.input_dim, mask.output_dim) == (3, 4)
    assert (mask.num_blocks, mask.max_rows, mask.max_cols) == (2, 2, 2)
    # Sentinels: input_dim (3) for rows, output_dim (4) for columns.
    np.testing.assert_array_equal(mask.row_index.numpy(), [[0, 1], [1, 2]])
    np.testing.assert_array_equal(mask.col_index.numpy(), [[0, 2], [3, 4]])
    assert mask.row_index.dtype == tf.int32 and mask.col_index.dtype == tf.int32
    assert mask.density == 0.5
    assert mask.disjoint_rows is False  # row 1 is in both blocks
    np.testing.assert_array_equal(mask.to_dense().numpy(), HAND_MASK)


def test_from_dense_unequal_blocks_round_trip():
    rng = np.random.default_rng(3)
    patterns = (rng.random((4, 20)) < 0.3).astype("float32")
    patterns[0] = 0.0  # a pattern with no rows: its columns form no block
    assignment = rng.integers(0, 4, size=30)
    mask = patterns[assignment].T  # [20, 30]
    block_mask = BlockMask.from_dense(mask)
    np.testing.assert_array_equal(block_mask.to_dense().numpy(), mask)
    np.testing.assert_array_equal(block_mask.to_dense("float64").numpy(), mask)
    assert block_mask.density == pytest.approx(mask.mean())
    nonempty = {int(a) for a in assignment if patterns[a].any()}
    assert block_mask.num_blocks == len(nonempty)


def test_from_dense_all_zero():
    mask = BlockMask.from_dense(np.zeros((3, 5)))
    assert mask.num_blocks == 0
    assert mask.density == 0.0
    np.testing.assert_array_equal(mask.to_dense().numpy(), np.zeros((3, 5)))


def test_from_blocks_pads_and_sorts():
    mask = BlockMask.from_blocks([([2, 0], [1]), ([1], [3, 0, 2])], 3, 5)
    np.testing.assert_array_equal(mask.row_index.numpy(), [[0, 2], [1, 3]])
    np.testing.assert_array_equal(mask.col_index.numpy(), [[1, 5, 5], [0, 2, 3]])
    expected = np.zeros((3, 5))
    expected[[0, 2], 1] = 1
    expected[1, [0, 2, 3]] = 1
    np.testing.assert_array_equal(mask.to_dense().numpy(), expected)
    assert mask.density == pytest.approx(5 / 15)
    assert mask.disjoint_rows is True


def test_variables_are_kept_and_read_at_use_time():
    rows = tf.Variable([[0, 1]], dtype=tf.int32, trainable=False)
    cols = tf.Variable([[2, 3]], dtype=tf.int32, trainable=False)
    mask = BlockMask(rows, cols, input_dim=3, output_dim=4)
    assert mask.row_index is rows and mask.col_index is cols
    rows.assign([[1, 2]])
    expected = np.zeros((3, 4))
    expected[1:, 2:] = 1
    np.testing.assert_array_equal(mask.to_dense().numpy(), expected)

    @tf.function(jit_compile=True)
    def dense():
        return mask.to_dense()

    np.testing.assert_array_equal(dense().numpy(), expected)
    assert float(mask.density) == pytest.approx(4 / 12)


def test_graph_tensors_are_accepted():
    @tf.function
    def build(rows, cols):
        mask = BlockMask(rows, cols, 2, 2)
        assert mask.disjoint_rows is False  # unknown values: the safe default
        return mask.to_dense(), mask.density

    dense, density = build(tf.constant([[0, 2]]), tf.constant([[1, 2]]))
    np.testing.assert_array_equal(dense.numpy(), [[0, 1], [0, 0]])
    assert float(density) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: BlockMask([[0]], [[0]], 0, 1), id="input_dim-zero"),
        pytest.param(lambda: BlockMask([[0]], [[0]], 1, 2.5), id="output_dim-float"),
        pytest.param(lambda: BlockMask([[0.5]], [[0]], 1, 1), id="float-rows"),
        pytest.param(lambda: BlockMask([0, 1], [[0]], 2, 1), id="rows-rank-1"),
        pytest.param(lambda: BlockMask([[0], [1]], [[0]], 2, 1), id="block-count"),
        pytest.param(lambda: BlockMask([[3]], [[0]], 2, 1), id="row-out-of-range"),
        pytest.param(lambda: BlockMask([[0]], [[-1]], 2, 1), id="negative-col"),
        pytest.param(lambda: BlockMask([[0], [1]], [[0], [0]], 2, 1), id="column-twice"),
        pytest.param(lambda: BlockMask([[1, 1]], [[0]], 2, 1), id="row-twice-in-block"),
        pytest.param(
            lambda: BlockMask([[0], [0]], [[0], [1]], 1, 2, disjoint_rows=True),
            id="false-disjoint-promise",
        ),
        pytest.param(lambda: BlockMask([[0]], [[0]], 1, 1, disjoint_rows=1), id="disjoint-int"),
        pytest.param(lambda: BlockMask.from_dense(np.ones(3)), id="dense-rank-1"),
        pytest.param(lambda: BlockMask.from_dense(np.full((2, 2), 0.5)), id="dense-not-binary"),
        pytest.param(lambda: BlockMask.from_blocks("ab", 2, 2), id="blocks-string"),
        pytest.param(lambda: BlockMask.from_blocks([([0],)], 2, 2), id="block-not-pair"),
        pytest.param(lambda: BlockMask.from_blocks([([], [0])], 2, 2), id="empty-rows"),
        pytest.param(lambda: BlockMask.from_blocks([([0], [2])], 2, 2), id="col-out-of-range"),
    ],
)
def test_invalid_arguments(build):
    with pytest.raises(ValueError, match="Received:"):
        build()


def test_from_dense_rejects_symbolic_mask():
    @tf.function
    def build(mask):
        return BlockMask.from_dense(mask)

    with pytest.raises(ValueError, match="Received:"):
        build(tf.ones((2, 2)))


# ----------------------------------------------------------------------------
# gather_blocks / scatter_blocks
# ----------------------------------------------------------------------------


def test_gather_blocks_hand_computed():
    mask = BlockMask.from_dense(HAND_MASK)  # blocks rows {0, 1} x cols {0, 2}, {1, 2} x {3}
    kernel = np.arange(12.0).reshape(3, 4)
    blocks = mask.gather_blocks(kernel)
    assert blocks.dtype == tf.float64 and blocks.shape == (2, 2, 2)
    np.testing.assert_array_equal(blocks.numpy(), [[[0, 2], [4, 6]], [[7, 0], [11, 0]]])
    expected = kernel * HAND_MASK
    np.testing.assert_array_equal(mask.scatter_blocks(blocks).numpy(), expected)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32"])
def test_gather_scatter_round_trip_is_exact(dtype):
    # Unequal blocks sharing row 3; columns 3, 4 and 7 in no block.
    blocks = [([0, 3, 5], [1, 2]), ([1, 2, 3, 4, 8], [0, 5, 6]), ([9], [8])]
    mask = BlockMask.from_blocks(blocks, 11, 9)
    rng = np.random.default_rng(0)
    kernel = (rng.normal(size=(11, 9)) * 100).astype(dtype)
    dense = mask.to_dense().numpy().astype(bool)
    gathered = mask.gather_blocks(tf.Variable(kernel))
    padding = ~(
        (mask.row_index.numpy() < 11)[:, :, None] & (mask.col_index.numpy() < 9)[:, None, :]
    )
    np.testing.assert_array_equal(gathered.numpy()[padding], 0)
    scattered = mask.scatter_blocks(gathered)
    assert scattered.dtype == dtype
    np.testing.assert_array_equal(scattered.numpy(), np.where(dense, kernel, 0))
    # Padding values are ignored on the way back; the inverse direction is exact too.
    if dtype != "int32":
        noisy = np.where(padding, np.nan, gathered.numpy())
        np.testing.assert_array_equal(mask.scatter_blocks(noisy).numpy(), scattered.numpy())
    np.testing.assert_array_equal(mask.gather_blocks(scattered).numpy(), gathered.numpy())


def test_gather_scatter_in_jit_with_variable_indices_and_gradients():
    mask = BlockMask.from_dense(HAND_MASK)
    rows = tf.Variable(mask.row_index, trainable=False)
    cols = tf.Variable(mask.col_index, trainable=False)
    variable_mask = BlockMask(rows, cols, 3, 4)
    kernel = tf.Variable(np.arange(12.0, dtype="float32").reshape(3, 4))

    @tf.function(jit_compile=True)
    def round_trip():
        with tf.GradientTape() as tape:
            blocks = variable_mask.gather_blocks(kernel)
            loss = tf.reduce_sum(variable_mask.scatter_blocks(blocks * 2.0))
        return variable_mask.scatter_blocks(blocks), tape.gradient(loss, kernel)

    dense, grad = round_trip()
    np.testing.assert_array_equal(dense.numpy(), kernel.numpy() * HAND_MASK)
    np.testing.assert_array_equal(grad.numpy(), 2.0 * HAND_MASK)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda m: m.gather_blocks(np.ones((3, 5))), id="gather-shape"),
        pytest.param(lambda m: m.gather_blocks(np.ones(12)), id="gather-rank"),
        pytest.param(lambda m: m.gather_blocks(np.array([["a"] * 4] * 3)), id="gather-string"),
        pytest.param(lambda m: m.gather_blocks(None), id="gather-none"),
        pytest.param(lambda m: m.scatter_blocks(np.ones((2, 2, 3))), id="scatter-shape"),
        pytest.param(lambda m: m.scatter_blocks(np.ones((3, 4))), id="scatter-dense"),
    ],
)
def test_gather_scatter_invalid_arguments(call):
    with pytest.raises(ValueError, match="Received: [a-z_.]+="):
        call(BlockMask.from_dense(HAND_MASK))
