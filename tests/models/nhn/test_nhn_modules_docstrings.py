"""The docstring Examples of the NHN configs, checks, weight store and sharing policies."""

import importlib

import pytest
from docstring_examples import assert_docstring_examples

MODULES = (
    "config_values", "data_checks", "per_cycle_sharing", "pruning_config", "search_config",
    "sequential_sharing", "training_config", "trial_weight_store",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    assert_docstring_examples(importlib.import_module(f"tfemergent.models.nhn.{name}"))
