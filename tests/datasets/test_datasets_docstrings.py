"""The Examples in the docstrings of tfemergent.datasets run and give what they show."""

import importlib

import pytest
from docstring_examples import assert_docstring_examples

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
    assert_docstring_examples(module)
