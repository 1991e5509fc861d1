"""The Examples in the docstrings of tfemergent.kernels run and give what they show."""

import importlib

import pytest
from docstring_examples import assert_docstring_examples

MODULES = [
    "tfemergent.kernels.block_mask",
    "tfemergent.kernels.distances",
    "tfemergent.kernels.masked",
    "tfemergent.kernels.sparse",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    assert_docstring_examples(module)


def test_public_api():
    from tfemergent import kernels

    assert sorted(kernels.__all__) == [
        "BlockMask",
        "block_matmul",
        "custom_ops_enabled",
        "disable_custom_ops",
        "distance_weighted_l1",
        "enable_custom_ops",
        "load_custom_ops",
        "masked_matmul",
        "pairwise_distances",
        "sparse_kernel_from_dense",
        "sparse_matmul",
    ]
    for name in kernels.__all__:
        assert getattr(kernels, name).__doc__
