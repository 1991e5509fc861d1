"""SearchSpace defaults, JSON normalisation, and the class registry."""

import numpy as np
import pytest
from search_toys import GridSpace

from tfemergent import search
from tfemergent.search import search_space


def test_toy_space_moves_one_part_by_one_step():
    space = GridSpace(3, 4)
    rng = np.random.default_rng(0)
    candidate = space.sample(rng)
    assert space.validate(candidate) == candidate
    for _ in range(100):
        part = int(rng.integers(0, 3))
        neighbour = space.neighbour(list(candidate), part, rng)
        space.validate(neighbour)
        assert [i for i in range(3) if neighbour[i] != candidate[i]] == [part]
        assert abs(neighbour[part] - candidate[part]) == 1
        candidate = neighbour


def test_base_validate_returns_plain_json_values():
    space = search.SearchSpace()
    assert space.num_parts == 1
    value = {"a": (np.int64(1), np.float32(0.5)), "b": np.array([[1, 2]]), "c": [np.bool_(True)]}
    normalised = space.validate(value)
    assert normalised == {"a": [1, 0.5], "b": [[1, 2]], "c": [True]}
    assert type(normalised["a"][0]) is int and type(normalised["c"][0]) is bool
    with pytest.raises(ValueError, match="dict keys must be strings. Received: key=1"):
        space.validate({1: 2})
    with pytest.raises(ValueError, match="must hold JSON values.*Received: candidate"):
        space.validate([object()])
    with pytest.raises(NotImplementedError, match="sample"):
        space.sample(np.random.default_rng(0))
    with pytest.raises(NotImplementedError, match="neighbour"):
        space.neighbour([0], 0, np.random.default_rng(0))


def test_registry_round_trip_and_name_clashes():
    config = search.serialize(GridSpace(2, 5))
    assert config == {"class_name": "GridSpace", "config": {"num_parts": 2, "size": 5}}
    restored = search.deserialize(config)
    assert type(restored) is GridSpace and restored.get_config() == config["config"]
    # Registering the same class again is fine.
    assert search.register_search_class(GridSpace) is GridSpace

    # A re-definition (same module and qualified name, e.g. a re-run notebook cell)
    # replaces the old class.
    def define():
        @search.register_search_class
        class RedefinedSpace(search.SearchSpace):
            pass

        return RedefinedSpace

    first, second = define(), define()
    assert first is not second
    assert type(search.deserialize({"class_name": "RedefinedSpace", "config": {}})) is second

    # A different class under a registered name is refused.
    impostor = type("GridSpace", (search.SearchSpace,), {})
    with pytest.raises(ValueError, match="already registered under the name 'GridSpace'"):
        search.register_search_class(impostor)
    assert search_space._REGISTRY["GridSpace"] is GridSpace


def test_registry_errors():
    with pytest.raises(ValueError, match="Unknown search class 'Nope'.*register_search_class"):
        search.deserialize({"class_name": "Nope", "config": {}})
    with pytest.raises(ValueError, match="exactly the keys"):
        search.deserialize({"class_name": "GridSpace"})
    with pytest.raises(ValueError, match="decorates a class"):
        search.register_search_class(lambda: None)
    with pytest.raises(ValueError, match="Received: obj=3"):
        search.serialize(3)
