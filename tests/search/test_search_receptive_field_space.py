import json

import numpy as np
import pytest

from tfemergent import search
from tfemergent.models import HierarchyLayout
from tfemergent.search import HillClimbing, ReceptiveFieldSpace

PYRAMIDAL = [[[0, 0], [0, 10]], [[10, 0], [10, 10]], [[0, 20], [10, 20]]]


def test_samples_are_valid_seeded_topologies():
    space = ReceptiveFieldSpace()
    layout = HierarchyLayout((20, 20))
    first = space.sample(np.random.default_rng(5))
    assert first == space.sample(np.random.default_rng(5))
    assert json.loads(json.dumps(first)) == first
    assert [tuple(map(tuple, f)) for f in first] == layout.validate_topology(first)


def test_neighbours_move_one_window_of_one_unit_by_one_cell():
    space = ReceptiveFieldSpace()
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        moved = space.neighbour(PYRAMIDAL, 0, rng)
        assert moved[1:] == PYRAMIDAL[1:]
        steps = [abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in zip(moved[0], PYRAMIDAL[0])]
        assert sorted(steps) == [0, 1]
        seen.add(json.dumps(moved[0]))
    # Unit 0 reads (0, 0) and (0, 10); its code is at (0, 20). Window 0: up and left
    # leave the map, right overlaps window 1. Window 1: up leaves the map, left
    # overlaps window 0, right reads column 20 (its own code). Only "down" is left.
    assert seen == {json.dumps([[1, 0], [0, 10]]), json.dumps([[0, 0], [1, 10]])}


def test_validate_and_config_round_trip():
    space = ReceptiveFieldSpace((20, 20), num_units=3)
    assert space.validate([tuple(map(tuple, f)) for f in PYRAMIDAL]) == PYRAMIDAL
    with pytest.raises(ValueError, match=r"candidate\[2\].*own code.*Received"):
        space.validate([PYRAMIDAL[0], PYRAMIDAL[1], [[0, 30], [10, 20]]])
    clone = search.deserialize(search.serialize(space))
    assert isinstance(clone, ReceptiveFieldSpace)
    assert clone.get_config() == space.get_config()


def test_hill_climbing_over_receptive_fields():
    space = ReceptiveFieldSpace()
    strategy = HillClimbing(space, num_steps=2, initial=PYRAMIDAL, seed=0)
    (trial,) = strategy.ask()
    assert trial.params == PYRAMIDAL
    strategy.tell([(trial, {"fitness": [1.0, 1.0, 1.0]})])
    (trial,) = strategy.ask()
    assert trial.info == {"meta_step": 1, "part": 0} and trial.params[1:] == PYRAMIDAL[1:]
