"""The Examples in the docstrings of tfemergent.search run and give what they show."""

import importlib

import pytest
from docstring_examples import assert_docstring_examples

MODULES = [
    "tfemergent.search.evolutionary_search",
    "tfemergent.search.hill_climbing",
    "tfemergent.search.location_space",
    "tfemergent.search.random_search",
    "tfemergent.search.receptive_field_space",
    "tfemergent.search.search_runner",
    "tfemergent.search.search_space",
    "tfemergent.search.search_strategy",
    "tfemergent.search.trial",
]


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    assert_docstring_examples(module)


def test_public_api():
    from tfemergent import search

    assert sorted(search.__all__) == [
        "EvolutionarySearch",
        "HillClimbing",
        "LocationSpace",
        "RandomSearch",
        "RayExecutor",
        "ReceptiveFieldSpace",
        "SearchResult",
        "SearchRunner",
        "SearchSpace",
        "SearchStrategy",
        "Trial",
        "deserialize",
        "register_search_class",
        "serialize",
    ]
    for name in search.__all__:
        assert getattr(search, name).__doc__
    for name in ("EvolutionarySearch", "HillClimbing", "LocationSpace", "RandomSearch",
                 "RayExecutor", "ReceptiveFieldSpace",
                 "SearchResult", "SearchRunner", "SearchSpace", "SearchStrategy", "Trial"):
        assert "Example" in getattr(search, name).__doc__
