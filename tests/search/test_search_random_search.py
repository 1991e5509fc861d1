"""RandomSearch: independent samples in batches, best by scalar fitness."""

import itertools
import json

import pytest
from search_toys import GridSpace
from search_toys import evaluate_noisy

from tfemergent import search


def _fitness(params):
    # A unique maximum at [2, 0] on the 3 x 3 grid, as a per-part list.
    return [-abs(params[0] - 2), -abs(params[1] - 0) * 0.5]


def test_finds_the_maximum_of_a_small_space_in_batches():
    strategy = search.RandomSearch(GridSpace(2, 3), num_trials=40, batch_size=6, seed=1)
    batches = []
    while not strategy.done:
        trials = strategy.ask()
        batches.append(trials)
        strategy.tell([(trial, {"fitness": _fitness(trial.params)}) for trial in trials])
    assert [len(batch) for batch in batches] == [6] * 6 + [4]
    assert [trial.info for trial in batches[2]] == [{"batch": 2}] * 6
    trials = [trial for batch in batches for trial in batch]
    assert [trial.trial_id for trial in trials] == list(range(40))
    assert all(trial.parent is None for trial in trials)
    # Every point of the grid was sampled and the best is the unique maximum.
    assert {tuple(trial.params) for trial in trials} == set(itertools.product(range(3), repeat=2))
    best_trial, best_result = strategy.best
    assert best_trial.params == [2, 0]
    assert best_result == {"fitness": [0.0, 0.0]}
    # The earliest of the tied maxima wins.
    first = min(trial.trial_id for trial in trials if trial.params == [2, 0])
    assert best_trial.trial_id == first
    records = strategy.history
    assert [record["trial_id"] for record in records] == list(range(40))
    assert records[first]["best_trial_id"] == first
    assert records[-1]["best_trial_id"] == first


def test_best_of_list_fitness_is_the_sum():
    strategy = search.RandomSearch(GridSpace(2, 3), num_trials=2, batch_size=2, seed=0)
    first, second = strategy.ask()
    strategy.tell([(first, {"fitness": [3.0, -2.5]}), (second, {"fitness": [0.0, 1.0]})])
    assert strategy.best[0] is second  # 1.0 > 0.5 although 3.0 is the largest entry


def test_config_and_state_round_trip():
    strategy = search.RandomSearch(GridSpace(3, 10), num_trials=9, batch_size=4, seed=3)
    assert json.loads(json.dumps(strategy.get_config())) == {
        "space": {"class_name": "GridSpace", "config": {"num_parts": 3, "size": 10}},
        "seed": 3,
        "num_trials": 9,
        "batch_size": 4,
    }
    trials = strategy.ask()
    strategy.tell([(trial, evaluate_noisy(trial)) for trial in trials])
    clone = search.deserialize(json.loads(json.dumps(search.serialize(strategy))))
    clone.set_state(json.loads(json.dumps(strategy.get_state())))
    for copy in (strategy, clone):
        while not copy.done:
            trials = copy.ask()
            copy.tell([(trial, evaluate_noisy(trial)) for trial in trials])
    assert clone.history == strategy.history
    assert clone.best == strategy.best
    assert clone.num_asked == strategy.num_asked == 9


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_trials": 0}, "Received: num_trials=0"),
        ({"num_trials": 2.0}, "Received: num_trials=2.0"),
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"batch_size": None}, "Received: batch_size=None"),
        ({"seed": "1"}, "Received: seed='1'"),
    ],
)
def test_invalid_arguments(kwargs, message):
    arguments = {"space": GridSpace(3, 10), "num_trials": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        search.RandomSearch(**arguments)
