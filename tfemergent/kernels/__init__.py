"""Public kernel functions of tfemergent.

Each kernel is one validated, documented function; it dispatches to the
pure-TF/XLA implementation in `tfemergent.kernels.xla` or, where they apply and
are built, to the C++ ops loaded by `tfemergent.kernels.custom_ops`. Layers call
only these public functions.
"""

from tfemergent.kernels.block_mask import BlockMask
from tfemergent.kernels.custom_ops import custom_ops_enabled
from tfemergent.kernels.custom_ops import disable_custom_ops
from tfemergent.kernels.custom_ops import enable_custom_ops
from tfemergent.kernels.custom_ops import load_custom_ops
from tfemergent.kernels.distances import distance_weighted_l1
from tfemergent.kernels.distances import pairwise_distances
from tfemergent.kernels.masked import block_matmul
from tfemergent.kernels.masked import masked_matmul
from tfemergent.kernels.sparse import sparse_kernel_from_dense
from tfemergent.kernels.sparse import sparse_matmul

__all__ = [
    "BlockMask",
    "block_matmul",
    "custom_ops_enabled",
    "disable_custom_ops",
    "enable_custom_ops",
    "load_custom_ops",
    "distance_weighted_l1",
    "masked_matmul",
    "pairwise_distances",
    "sparse_kernel_from_dense",
    "sparse_matmul",
]
