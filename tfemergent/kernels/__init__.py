"""Public kernel functions of tfemergent.

Each kernel is one validated, documented function; it dispatches to the
pure-TF/XLA implementation in `tfemergent.kernels.xla`. Layers call only these
public functions.
"""

from tfemergent.kernels.block_mask import BlockMask
from tfemergent.kernels.block_product import block_matmul
from tfemergent.kernels.distances import distance_weighted_l1
from tfemergent.kernels.distances import pairwise_distances
from tfemergent.kernels.matmul import masked_matmul
from tfemergent.kernels.sparse_product import sparse_kernel_from_dense
from tfemergent.kernels.sparse_product import sparse_matmul

__all__ = [
    "BlockMask",
    "block_matmul",
    "distance_weighted_l1",
    "masked_matmul",
    "pairwise_distances",
    "sparse_kernel_from_dense",
    "sparse_matmul",
]
