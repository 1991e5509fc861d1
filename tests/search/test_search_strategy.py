"""The ask/tell contract of SearchStrategy: trial seeds, misuse, result checks."""

import numpy as np
import pytest
from search_toys import GridSpace

from tfemergent import search


def _strategy(**kwargs):
    return search.RandomSearch(GridSpace(3, 10), **{"num_trials": 6, "batch_size": 2, **kwargs})


def test_trial_seed_is_derived_from_the_strategy_seed_and_trial_id():
    trials = _strategy(seed=42).ask()
    again = _strategy(seed=42).ask()
    other = _strategy(seed=43).ask()
    for trial in trials:
        state = np.random.SeedSequence([42, trial.trial_id]).generate_state(1, dtype=np.uint32)
        assert trial.seed == int(state[0]) >> 1
        assert 0 <= trial.seed < 2**31
    assert [t.seed for t in trials] == [t.seed for t in again]
    assert trials[0].seed != trials[1].seed
    assert [t.seed for t in trials] != [t.seed for t in other]


def test_seed_none_draws_a_seed_kept_in_the_state():
    first, second = _strategy(), _strategy()
    assert first.seed is None
    assert first.get_state()["seed"] != second.get_state()["seed"]
    second.set_state(first.get_state())
    assert second.ask() == first.ask()


def test_ask_and_tell_misuse():
    strategy = _strategy(seed=0)
    with pytest.raises(RuntimeError, match="without pending trials; call ask"):
        strategy.tell([])
    first, second = strategy.ask()
    with pytest.raises(RuntimeError, match=r"trials \[0, 1\] are still pending"):
        strategy.ask()
    with pytest.raises(ValueError, match=r"exactly the pending trials.*\[0, 1\]\. "
                                         r"Received: trial_ids=\[1, 0\]"):
        strategy.tell([(second, {"fitness": 1.0}), (first, {"fitness": 1.0})])
    with pytest.raises(ValueError, match=r"Received: trial_ids=\[0\]"):
        strategy.tell([(first, {"fitness": 1.0})])
    stranger = search.Trial(trial_id=7, params=first.params)
    with pytest.raises(ValueError, match=r"Received: trial_ids=\[0, 7\]"):
        strategy.tell([(first, {"fitness": 1.0}), (stranger, {"fitness": 1.0})])
    with pytest.raises(ValueError, match="list of \\(trial, result\\) pairs"):
        strategy.tell({"fitness": 1.0})
    changed = search.Trial(trial_id=1, params=[9, 9, 9])
    with pytest.raises(ValueError, match=r"Trial 1 was asked with params=.*Received: params=\[9"):
        strategy.tell([(first, {"fitness": 1.0}), (changed, {"fitness": 1.0})])
    assert strategy.pending_trials == [first, second]  # nothing was told


@pytest.mark.parametrize(
    "result, message",
    [
        ({"loss": 1.0}, r"trial 0 must be a dict with a 'fitness'.*Received: result=\{'loss'"),
        (1.0, "Received: result=1.0"),
        ({"fitness": 1.0, "failed": "yes"}, "must be a bool.*Received: failed='yes'"),
        ({"fitness": float("nan"), "failure": 3}, "must be a str.*Received: failure=3"),
        ({"fitness": "high", "failed": True}, "Received: fitness='high'"),
        ({"fitness": "high"}, "Received: fitness='high'"),
        ({"fitness": True}, "Received: fitness=True"),
        ({"fitness": None}, "Received: fitness=None"),
        ({"fitness": [1.0, 2.0]}, r"num_parts=3.*Received: fitness=\[1.0, 2.0\]"),
        ({"fitness": [1.0, float("nan")]}, r"num_parts=3.*Received: fitness=\[1.0, nan\]"),
        ({"fitness": 1.0, "model": object()}, "must hold JSON values"),
    ],
)
def test_invalid_results_are_refused_and_the_trials_stay_pending(result, message):
    strategy = _strategy(seed=0, batch_size=1)
    (trial,) = strategy.ask()
    with pytest.raises(ValueError, match=message):
        strategy.tell([(trial, result)])
    assert strategy.pending_trials == [trial]


def test_results_are_normalised_to_json_values():
    strategy = _strategy(seed=0, batch_size=1)
    (trial,) = strategy.ask()
    strategy.tell([(trial, {"fitness": np.float32(2.0), "codes": np.arange(3), "pair": (1, 2)})])
    result = strategy.best[1]
    assert result == {"fitness": 2.0, "codes": [0, 1, 2], "pair": [1, 2]}
    assert type(result["fitness"]) is float and type(result["codes"][0]) is int


def test_set_state_refuses_other_dicts():
    with pytest.raises(ValueError, match="keys .* are missing"):
        _strategy().set_state({"seed": 1})
    with pytest.raises(ValueError, match="'meta_step' and 'part'"):
        search.HillClimbing(GridSpace(3, 10), 2).set_state(_strategy().get_state())


def test_base_class_needs_the_hooks():
    class Incomplete(search.SearchStrategy):
        pass

    with pytest.raises(NotImplementedError, match="done"):
        Incomplete(GridSpace(3, 10)).ask()
