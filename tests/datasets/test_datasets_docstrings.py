"""The Examples in the docstrings of tfemergent.datasets run and give what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "tfemergent.datasets.corrupt_dataset_error",
    "tfemergent.datasets.dataset_not_found_error",
    "tfemergent.datasets.directories",
    "tfemergent.datasets.double_tasks",
    "tfemergent.datasets.loaders",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name, data_env):
    module = importlib.import_module(module_name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0
    assert result.failed == 0
