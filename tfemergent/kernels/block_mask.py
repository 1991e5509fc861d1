"""`BlockMask`: a receptive-field mask stored as blocks of shared input rows."""

import numpy as np
import tensorflow as tf

from tfemergent.kernels import xla as _xla
from tfemergent.utils.validation import is_symbolic as _is_symbolic
from tfemergent.utils.validation import is_variable as _is_variable
from tfemergent.utils.validation import validate_int
from tfemergent.utils.validation import validate_tensor


class BlockMask:
    """A 0/1 mask made of blocks that each connect a set of rows to a set of columns.

    A receptive-field layer usually has many output units that look at exactly the
    same input units (a retinotopic patch, a group of a hierarchy, a task group).
    `BlockMask` stores such a mask ``m`` of shape ``[input_dim, output_dim]`` as
    ``num_blocks`` blocks: block ``b`` connects the input rows ``row_index[b]`` to
    the output columns ``col_index[b]``, i.e. ``m[r, c] = 1`` exactly when some
    block lists both ``r`` and ``c``. Each output column belongs to at most one
    block; rows may be shared between blocks (overlapping receptive fields);
    columns that belong to no block are all zero.

    Blocks may have different sizes. The index tensors are padded to the largest
    block with sentinels: ``input_dim`` in `row_index` and ``output_dim`` in
    `col_index`. Kernels that consume a `BlockMask` (`masked_matmul` with
    ``implementation="gather"``) append a zero row/column so that sentinels read
    zeros, which keeps the result exact for blocks of unequal sizes.

    The indices may be tensors or (non-trainable) integer `tf.Variable`s, so a
    layer can keep its receptive field in variables, change it with an assignment
    and use the mask inside `tf.function(jit_compile=True)` without numpy. Their
    values are checked when they are concrete at construction time; indices
    assigned later must keep the invariants above (valid ranges, sentinel padding,
    unique rows within a block, each column in at most one block).

    Use `BlockMask.from_dense` to analyse a dense 0/1 mask (columns with identical
    patterns are grouped) or `BlockMask.from_blocks` to list the blocks directly.

    Weights can be stored in block form, ``[num_blocks, max_rows, max_cols]``,
    where entry ``[b, r, c]`` is the weight from input ``row_index[b, r]`` to
    output ``col_index[b, c]`` and entries at a sentinel are padding: that is the
    layout `block_matmul` multiplies by, and it never holds an
    ``[input_dim, output_dim]`` tensor. `gather_blocks` converts a dense kernel to
    block form (zeros in the padding) and `scatter_blocks` converts back (zeros
    outside the blocks); both copy values exactly, and
    ``scatter_blocks(gather_blocks(kernel)) == kernel * to_dense()``.

    Args:
        row_index: integer tensor, array or variable of shape
            ``[num_blocks, max_rows]``: the input rows of each block, padded with
            ``input_dim``.
        col_index: integer tensor, array or variable of shape
            ``[num_blocks, max_cols]``: the output columns of each block, padded
            with ``output_dim``.
        input_dim: positive int, number of rows of the dense mask.
        output_dim: positive int, number of columns of the dense mask.
        disjoint_rows: whether no input row belongs to two blocks (receptive
            fields that do not overlap). ``None`` infers it from concrete indices
            (and means ``False`` for symbolic ones). ``True`` lets the gather path
            of `masked_matmul` compute the input gradient with a gather instead of
            a scatter-add; only pass it for indices (e.g. variables) that keep
            this property.

    Attributes:
        row_index: int32 tensor (or the variable passed in) ``[num_blocks, max_rows]``.
        col_index: int32 tensor (or the variable passed in) ``[num_blocks, max_cols]``.
        input_dim: int.
        output_dim: int.
        num_blocks: int, ``row_index.shape[0]``.
        max_rows: int, ``row_index.shape[1]``.
        max_cols: int, ``col_index.shape[1]``.
        disjoint_rows: bool, see above.
        padding_free: bool, True when the indices are fixed (not variables) and
            hold no sentinel; kernels then skip zeroing padded block entries.
        density: fraction of ones in the dense mask (a Python float, or a scalar
            float32 tensor when the indices are symbolic graph tensors).

    Methods:
        to_dense(dtype="float32"): the dense ``[input_dim, output_dim]`` 0/1 tensor.
        gather_blocks(kernel): the blocks ``[num_blocks, max_rows, max_cols]`` of a
            dense ``[input_dim, output_dim]`` kernel (tensor, array or variable),
            with zeros in the padding; same dtype; differentiable.
        scatter_blocks(block_kernel): the dense ``[input_dim, output_dim]`` kernel
            of block-stored weights, zero outside the blocks; padding is ignored;
            same dtype; differentiable.
        from_dense(mask): class method, see above.
        from_blocks(blocks, input_dim, output_dim): class method; ``blocks`` is a
            list of ``(rows, cols)`` pairs of integer sequences.

    Raises:
        ValueError: if the dimensions are not positive integers, the index tensors
            are not integer matrices with matching numbers of blocks, or (when the
            values are concrete) an index is out of range, a column appears in two
            blocks, a row appears twice in one block, or ``disjoint_rows=True``
            but blocks share a row. `gather_blocks` and `scatter_blocks` raise it
            for an argument that is not a numeric tensor of the expected shape.

    Example:

    >>> import numpy as np
    >>> from tfemergent.kernels import BlockMask
    >>> mask = np.array([[1, 0, 1, 0],
    ...                  [1, 0, 1, 1],
    ...                  [0, 0, 0, 1]])
    >>> block_mask = BlockMask.from_dense(mask)
    >>> block_mask.num_blocks, block_mask.input_dim, block_mask.output_dim
    (2, 3, 4)
    >>> block_mask.row_index.numpy()
    array([[0, 1],
           [1, 2]], dtype=int32)
    >>> block_mask.col_index.numpy()
    array([[0, 2],
           [3, 4]], dtype=int32)
    >>> block_mask.density
    0.5
    >>> bool(np.all(block_mask.to_dense().numpy() == mask))
    True
    >>> BlockMask.from_blocks([([0], [1, 2])], 2, 3).to_dense().numpy()
    array([[0., 1., 1.],
           [0., 0., 0.]], dtype=float32)

    Block-stored weights (block 1 has one real column; its second is padding):

    >>> kernel = np.arange(12.0, dtype="float32").reshape(3, 4)
    >>> blocks = block_mask.gather_blocks(kernel)
    >>> blocks.numpy().tolist()
    [[[0.0, 2.0], [4.0, 6.0]], [[7.0, 0.0], [11.0, 0.0]]]
    >>> block_mask.scatter_blocks(blocks).numpy()
    array([[ 0.,  0.,  2.,  0.],
           [ 4.,  0.,  6.,  7.],
           [ 0.,  0.,  0., 11.]], dtype=float32)
    """

    def __init__(self, row_index, col_index, input_dim, output_dim, *, disjoint_rows=None):
        self.input_dim = validate_int("input_dim", input_dim, minimum=1)
        self.output_dim = validate_int("output_dim", output_dim, minimum=1)
        self.row_index = self._index_tensor("row_index", row_index)
        self.col_index = self._index_tensor("col_index", col_index)
        num_blocks = self.row_index.shape[0]
        if self.col_index.shape[0] != num_blocks:
            raise ValueError(
                "Arguments `row_index` and `col_index` must have the same number of "
                f"blocks (first dimension). Received: row_index.shape={self.row_index.shape}, "
                f"col_index.shape={self.col_index.shape}"
            )
        for name, value in (("row_index", self.row_index), ("col_index", self.col_index)):
            if value.shape[0] is None or value.shape[1] is None:
                raise ValueError(
                    f"Argument `{name}` must have a static shape [num_blocks, size]. "
                    f"Received: {name}.shape={value.shape}"
                )
        if disjoint_rows is not None and not isinstance(disjoint_rows, bool):
            raise ValueError(
                "Argument `disjoint_rows` must be None, True or False. "
                f"Received: disjoint_rows={disjoint_rows!r}"
            )
        self.disjoint_rows = self._check_values(disjoint_rows)
        # True only when the indices are fixed (not variables) and hold no
        # sentinel: kernels may then skip zeroing padded block entries.
        concrete = self._concrete_indices()
        self.padding_free = bool(
            concrete is not None
            and not _is_variable(self.row_index)
            and not _is_variable(self.col_index)
            and not (concrete[0] == self.input_dim).any()
            and not (concrete[1] == self.output_dim).any()
        )

    @staticmethod
    def _index_tensor(name, value):
        if _is_variable(value):
            tensor = value
        else:
            if isinstance(value, np.ndarray) and not np.issubdtype(value.dtype, np.integer):
                raise ValueError(
                    f"Argument `{name}` must hold integers. Received: {name}.dtype={value.dtype}"
                )
            if not tf.is_tensor(value):
                value = np.asarray(value)
                if value.size == 0:
                    value = value.astype(np.int32)
                if not np.issubdtype(value.dtype, np.integer):
                    raise ValueError(
                        f"Argument `{name}` must hold integers. "
                        f"Received: {name}.dtype={value.dtype}"
                    )
            tensor = tf.convert_to_tensor(value)
        if not tf.as_dtype(tensor.dtype).is_integer:
            raise ValueError(
                f"Argument `{name}` must be an integer tensor (int32 or int64). "
                f"Received: {name}.dtype={tf.as_dtype(tensor.dtype).name}"
            )
        if len(tensor.shape) != 2:
            raise ValueError(
                f"Argument `{name}` must be a matrix of shape [num_blocks, size]. "
                f"Received: {name}.shape={tensor.shape}"
            )
        if not _is_variable(tensor) and tensor.dtype != tf.int32:
            tensor = tf.cast(tensor, tf.int32)
        return tensor

    def _concrete_indices(self):
        """Numpy copies of the indices, or None when they are symbolic."""
        if _is_symbolic(self.row_index) or _is_symbolic(self.col_index):
            return None
        if not tf.executing_eagerly():
            return None
        return np.asarray(self.row_index), np.asarray(self.col_index)

    def _check_values(self, disjoint_rows):
        """Check concrete index values; return the resolved ``disjoint_rows`` flag."""
        concrete = self._concrete_indices()
        if concrete is None:
            return bool(disjoint_rows)
        rows, cols = concrete
        for name, value, limit in (
            ("row_index", rows, self.input_dim),
            ("col_index", cols, self.output_dim),
        ):
            if value.size and (value.min() < 0 or value.max() > limit):
                raise ValueError(
                    f"Argument `{name}` must hold values in [0, {limit}] ({limit} is the "
                    f"padding sentinel). Received: {name} with values in "
                    f"[{value.min()}, {value.max()}]"
                )
        valid_cols = cols[cols < self.output_dim]
        if np.unique(valid_cols).size != valid_cols.size:
            raise ValueError(
                "Each output column may belong to at most one block, but some column "
                "appears in several blocks (or twice in one block). "
                f"Received: col_index={cols.tolist() if cols.size <= 64 else cols.shape}"
            )
        sorted_rows = np.sort(rows, axis=1)
        repeated = (sorted_rows[:, 1:] == sorted_rows[:, :-1]) & (
            sorted_rows[:, 1:] < self.input_dim
        )
        if repeated.any():
            block = int(np.flatnonzero(repeated.any(axis=1))[0])
            raise ValueError(
                f"A row appears twice in block {block}; rows within a block must be "
                f"unique. Received: row_index[{block}]={rows[block].tolist()}"
            )
        valid_rows = rows[rows < self.input_dim]
        actually_disjoint = bool(np.unique(valid_rows).size == valid_rows.size)
        if disjoint_rows and not actually_disjoint:
            raise ValueError(
                "`disjoint_rows=True` promises that no input row belongs to two blocks, "
                "but some row does. Pass disjoint_rows=None to infer it. "
                f"Received: disjoint_rows={disjoint_rows!r}"
            )
        return actually_disjoint if disjoint_rows is None else disjoint_rows

    @property
    def num_blocks(self):
        return int(self.row_index.shape[0])

    @property
    def max_rows(self):
        return int(self.row_index.shape[1])

    @property
    def max_cols(self):
        return int(self.col_index.shape[1])

    @property
    def density(self):
        concrete = self._concrete_indices()
        if concrete is not None:
            rows, cols = concrete
            active = np.sum(
                np.sum(rows < self.input_dim, axis=1).astype(np.int64)
                * np.sum(cols < self.output_dim, axis=1).astype(np.int64)
            )
            return float(active) / float(self.input_dim * self.output_dim)
        row_counts = tf.reduce_sum(tf.cast(self.row_index < self.input_dim, tf.float32), axis=1)
        col_counts = tf.reduce_sum(tf.cast(self.col_index < self.output_dim, tf.float32), axis=1)
        return tf.reduce_sum(row_counts * col_counts) / float(self.input_dim * self.output_dim)

    def to_dense(self, dtype="float32"):
        """The dense 0/1 mask of shape ``[input_dim, output_dim]`` (works in graphs)."""
        rows = tf.convert_to_tensor(self.row_index)
        cols = tf.convert_to_tensor(self.col_index)
        # Row indicator [num_blocks, input_dim + 1] times column indicator
        # [num_blocks, output_dim + 1]; the extra sentinel row/column is dropped.
        row_onehot = tf.reduce_sum(tf.one_hot(rows, self.input_dim + 1, dtype=dtype), axis=1)
        col_onehot = tf.reduce_sum(tf.one_hot(cols, self.output_dim + 1, dtype=dtype), axis=1)
        dense = tf.matmul(row_onehot, col_onehot, transpose_a=True)
        dense = dense[: self.input_dim, : self.output_dim]
        return tf.minimum(dense, tf.ones([], dtype=dense.dtype))

    def gather_blocks(self, kernel):
        """Dense ``[input_dim, output_dim]`` kernel -> blocks ``[B, R, C]`` (zero padding)."""
        kernel = self._numeric_argument("kernel", kernel, (self.input_dim, self.output_dim))
        addresses, valid = _xla._block_addresses(
            tf.cast(self.row_index, tf.int32),
            tf.cast(self.col_index, tf.int32),
            self.input_dim,
            self.output_dim,
        )
        blocks = tf.gather(tf.reshape(kernel, [-1]), addresses)
        return tf.where(valid, blocks, tf.zeros_like(blocks))

    def scatter_blocks(self, block_kernel):
        """Blocks ``[B, R, C]`` -> dense ``[input_dim, output_dim]`` (zero outside blocks)."""
        block_kernel = self._numeric_argument(
            "block_kernel", block_kernel, (self.num_blocks, self.max_rows, self.max_cols)
        )
        rows = tf.cast(self.row_index, tf.int32)
        cols = tf.cast(self.col_index, tf.int32)
        shape = [self.num_blocks, self.max_rows, self.max_cols]
        valid = tf.logical_and(
            (rows < self.input_dim)[:, :, None], (cols < self.output_dim)[:, None, :]
        )
        # Real entries have distinct (row, column) pairs (each column is in one
        # block, rows are unique within a block), so an update-scatter copies them
        # exactly; padding goes to an extra row that is dropped.
        target_rows = tf.where(valid, tf.broadcast_to(rows[:, :, None], shape), self.input_dim)
        target_cols = tf.broadcast_to(tf.minimum(cols, self.output_dim - 1)[:, None, :], shape)
        indices = tf.reshape(tf.stack([target_rows, target_cols], axis=-1), [-1, 2])
        dense = tf.tensor_scatter_nd_update(
            tf.zeros([self.input_dim + 1, self.output_dim], block_kernel.dtype),
            indices,
            tf.reshape(block_kernel, [-1]),
        )
        return dense[: self.input_dim]

    @staticmethod
    def _numeric_argument(name, value, expected_shape):
        tensor = validate_tensor(name, value)
        dtype = tensor.dtype
        if not (dtype.is_floating or dtype.is_integer or dtype.is_complex or dtype.is_bool):
            raise ValueError(
                f"Argument `{name}` must be a numeric tensor. Received: {name}.dtype={dtype.name}"
            )
        if tuple(tensor.shape) != tuple(expected_shape):
            raise ValueError(
                f"Argument `{name}` must have the static shape {list(expected_shape)} of this "
                f"BlockMask. Received: {name}.shape={tensor.shape}"
            )
        return tensor

    @classmethod
    def from_blocks(cls, blocks, input_dim, output_dim):
        """Build a `BlockMask` from a list of ``(rows, cols)`` integer sequences."""
        input_dim = validate_int("input_dim", input_dim, minimum=1)
        output_dim = validate_int("output_dim", output_dim, minimum=1)
        if isinstance(blocks, (str, bytes)) or not hasattr(blocks, "__iter__"):
            raise ValueError(
                "Argument `blocks` must be a list of (rows, cols) pairs. "
                f"Received: blocks={blocks!r}"
            )
        blocks = list(blocks)
        parsed = []
        for number, block in enumerate(blocks):
            try:
                rows, cols = block
            except (TypeError, ValueError):
                raise ValueError(
                    "Argument `blocks` must be a list of (rows, cols) pairs. "
                    f"Received: blocks[{number}]={block!r}"
                ) from None
            rows = np.asarray(rows).reshape(-1)
            cols = np.asarray(cols).reshape(-1)
            for name, value in (("rows", rows), ("cols", cols)):
                if value.size == 0 or not np.issubdtype(value.dtype, np.integer):
                    raise ValueError(
                        f"Each block needs a non-empty integer sequence of {name}. "
                        f"Received: blocks[{number}]={block!r}"
                    )
            parsed.append((rows, cols))
        num_blocks = len(parsed)
        max_rows = max((rows.size for rows, _ in parsed), default=1)
        max_cols = max((cols.size for _, cols in parsed), default=1)
        row_index = np.full((num_blocks, max_rows), input_dim, dtype=np.int32)
        col_index = np.full((num_blocks, max_cols), output_dim, dtype=np.int32)
        for number, (rows, cols) in enumerate(parsed):
            if rows.min() < 0 or rows.max() >= input_dim:
                raise ValueError(
                    f"Block rows must lie in [0, {input_dim}). "
                    f"Received: blocks[{number}] rows={rows.tolist()}"
                )
            if cols.min() < 0 or cols.max() >= output_dim:
                raise ValueError(
                    f"Block columns must lie in [0, {output_dim}). "
                    f"Received: blocks[{number}] cols={cols.tolist()}"
                )
            row_index[number, : rows.size] = np.sort(rows)
            col_index[number, : cols.size] = np.sort(cols)
        return cls(row_index, col_index, input_dim, output_dim)

    @classmethod
    def from_dense(cls, mask):
        """Group the columns of a concrete dense 0/1 mask by identical pattern."""
        if isinstance(mask, BlockMask):
            return mask
        if _is_symbolic(mask):
            raise ValueError(
                "`BlockMask.from_dense` analyses the mask with numpy, so the mask must "
                "be concrete (a numpy array, an eager tensor or a variable), not a "
                f"symbolic graph tensor. Received: mask={mask!r}"
            )
        array = np.asarray(mask)
        if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
            raise ValueError(
                "Argument `mask` must be a non-empty matrix [input_dim, output_dim]. "
                f"Received: mask.shape={array.shape}"
            )
        if not np.all((array == 0) | (array == 1)):
            raise ValueError(
                "Argument `mask` must contain only 0 and 1. "
                f"Received: mask with values {np.unique(array)[:8].tolist()}"
            )
        input_dim, output_dim = array.shape
        active = array != 0
        # Hash each column pattern by packing its bits; identical columns share a block.
        packed = np.ascontiguousarray(np.packbits(active, axis=0).T)
        keys = packed.view(np.dtype((np.void, packed.shape[1]))).reshape(-1)
        nonzero = np.flatnonzero(active.any(axis=0))
        if nonzero.size == 0:
            return cls(
                np.zeros((0, 1), np.int32), np.zeros((0, 1), np.int32), input_dim, output_dim
            )
        _, first, inverse = np.unique(keys[nonzero], return_index=True, return_inverse=True)
        # Order blocks by their first column so the layout is deterministic.
        order = np.argsort(nonzero[first], kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        block_of_col = rank[inverse.reshape(-1)]
        num_blocks = order.size
        by_block = np.argsort(block_of_col, kind="stable")
        splits = np.cumsum(np.bincount(block_of_col, minlength=num_blocks))[:-1]
        block_cols = np.split(nonzero[by_block], splits)
        block_rows = [np.flatnonzero(active[:, cols[0]]) for cols in block_cols]
        max_rows = max(rows.size for rows in block_rows)
        max_cols = max(cols.size for cols in block_cols)
        row_index = np.full((num_blocks, max_rows), input_dim, dtype=np.int32)
        col_index = np.full((num_blocks, max_cols), output_dim, dtype=np.int32)
        for block in range(num_blocks):
            row_index[block, : block_rows[block].size] = block_rows[block]
            col_index[block, : block_cols[block].size] = block_cols[block]
        return cls(row_index, col_index, input_dim, output_dim)

    def __repr__(self):
        return (
            f"BlockMask(num_blocks={self.num_blocks}, max_rows={self.max_rows}, "
            f"max_cols={self.max_cols}, input_dim={self.input_dim}, "
            f"output_dim={self.output_dim}, disjoint_rows={self.disjoint_rows})"
        )
