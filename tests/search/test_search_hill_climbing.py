"""HillClimbing follows Algorithm 2 of Borgohain et al. step by step."""

import json

import pytest
from search_toys import TARGET
from search_toys import GridSpace
from search_toys import distance_fitness
from search_toys import evaluate_noisy

from tfemergent import search


def _run(strategy, fitness_of, limit=1000):
    """Ask/tell until done; ``fitness_of(trial)`` gives the fitness. Returns the trials."""
    trials = []
    while not strategy.done:
        (trial,) = strategy.ask()
        strategy.tell([(trial, {"fitness": fitness_of(trial)})])
        trials.append(trial)
        assert len(trials) < limit
    return trials


def _changed_parts(params, parent_params):
    return [index for index, (a, b) in enumerate(zip(params, parent_params)) if a != b]


def test_hand_traced_steps_accept_reject_and_break():
    # Fitness per trial id, scripted so that every branch of Algorithm 2 happens.
    script = {
        0: [1.0, 1.0, 1.0],  # baseline
        1: [0.5, 9.0, 9.0],  # m=1 part 0: 0.5 < 1 -> rejected (other parts do not count)
        2: [9.0, 1.0, 9.0],  # m=1 part 1: tie 1 == 1 -> rejected
        3: [0.0, 0.0, 2.0],  # m=1 part 2: 2 > 1 -> accepted, meta-step ends
        4: [0.5, -5.0, -5.0],  # m=2 part 0: 0.5 > 0 -> accepted at once (break)
        5: [0.5, 7.0, 7.0],  # m=3 part 0: tie -> rejected
        6: [7.0, -6.0, 7.0],  # m=3 part 1: -6 < -5 -> rejected
        7: [7.0, 7.0, -9.0],  # m=3 part 2: rejected; meta-step 3 changes nothing
        8: [0.6, 0.0, 0.0],  # m=4 part 0: 0.6 > 0.5 -> accepted; num_steps reached
    }
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=4, initial=[5, 5, 5], seed=0)
    trials = _run(strategy, lambda trial: script[trial.trial_id])

    assert [trial.trial_id for trial in trials] == list(range(9))
    assert [trial.info for trial in trials] == [
        {"meta_step": 0, "part": None},
        {"meta_step": 1, "part": 0},
        {"meta_step": 1, "part": 1},
        {"meta_step": 1, "part": 2},
        {"meta_step": 2, "part": 0},
        {"meta_step": 3, "part": 0},
        {"meta_step": 3, "part": 1},
        {"meta_step": 3, "part": 2},
        {"meta_step": 4, "part": 0},
    ]
    # Every candidate is made from the best trial at the time it was asked.
    assert [trial.parent for trial in trials] == [None, 0, 0, 0, 3, 4, 4, 4, 4]
    history = strategy.history
    assert [record["accepted"] for record in history] == [
        True, False, False, True, True, False, False, False, True
    ]
    assert [record["best_trial_id"] for record in history] == [0, 0, 0, 3, 4, 4, 4, 4, 8]
    assert [record["fitness"] for record in history] == [script[i] for i in range(9)]
    assert trials[0].params == [5, 5, 5]
    # A candidate differs from its parent in exactly its part, by one step; rejected
    # changes are not carried over.
    by_id = {trial.trial_id: trial for trial in trials}
    for trial in trials[1:]:
        parent_params = by_id[trial.parent].params
        part = trial.info["part"]
        assert _changed_parts(trial.params, parent_params) == [part]
        assert abs(trial.params[part] - parent_params[part]) == 1
    best_trial, best_result = strategy.best
    assert best_trial.trial_id == 8
    assert best_result == {"fitness": [0.6, 0.0, 0.0]}
    assert strategy.done and strategy.num_asked == 9
    with pytest.raises(RuntimeError, match="done after 9 trials"):
        strategy.ask()


def test_several_candidates_per_step_accept_the_best_improving_one():
    script = {
        0: [1.0, 1.0, 1.0],  # baseline
        1: [0.5, 9.0, 9.0],  # step 1, part 0: 0.5 < 1 -> does not improve
        2: [9.0, 1.0, 9.0],  # step 1, part 1: tie -> does not improve; next batch from part 2
        3: [0.0, 0.0, 2.0],  # step 1, part 2: improves (total 2)
        4: [3.0, 0.0, 0.0],  # step 1, part 0 again: improves (total 3) -> accepted
        5: [4.0, -1.0, -1.0],  # step 2, part 0: improves (total 2)
        6: [0.0, 1.0, 1.0],  # step 2, part 1: improves, total 2 too -> the first one wins
    }
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=2, initial=[5, 5, 5], seed=0,
                                   num_candidates=2)
    batches = []
    while not strategy.done:
        trials = strategy.ask()
        batches.append([trial.trial_id for trial in trials])
        strategy.tell([(trial, {"fitness": script[trial.trial_id]}) for trial in trials])
    assert batches == [[0], [1, 2], [3, 4], [5, 6]]
    history = strategy.history
    assert [(r["meta_step"], r["part"], r["accepted"], r["best_trial_id"]) for r in history] == [
        (0, None, True, 0),
        (1, 0, False, 0), (1, 1, False, 0),
        (1, 2, False, 4), (1, 0, True, 4),
        (2, 0, True, 5), (2, 1, False, 5),
    ]
    assert strategy.best[0].trial_id == 5 and strategy.num_asked == 7
    assert strategy.best[0].parent == 4


@pytest.mark.parametrize("acceptance, accepted", [("part", False), ("total", True)])
def test_acceptance_part_compares_the_changed_part_total_the_sum(acceptance, accepted):
    script = {0: [1.0, 1.0, 1.0], 1: [0.0, 5.0, 5.0]}  # part 0 worse, sum better
    strategy = search.HillClimbing(
        GridSpace(3, 10), num_steps=1, initial=[1, 1, 1], seed=0, acceptance=acceptance
    )
    (trial,) = strategy.ask()
    strategy.tell([(trial, {"fitness": script[0]})])
    (trial,) = strategy.ask()
    strategy.tell([(trial, {"fitness": script[1]})])
    assert strategy.history[-1]["accepted"] is accepted
    assert strategy.best[0].trial_id == (1 if accepted else 0)
    if accepted:
        assert strategy.done  # accepted ends the last meta-step
    else:
        assert strategy.ask()[0].info == {"meta_step": 1, "part": 1}


def test_part_fitness_only_improves_and_reaches_the_target():
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=40, seed=3)
    _run(strategy, lambda trial: distance_fitness(trial.params))
    history = strategy.history
    best_fitness = history[0]["fitness"]
    for record in history[1:]:
        part = record["part"]
        if record["accepted"]:
            assert record["fitness"][part] > best_fitness[part]
            best_fitness = record["fitness"]
        else:
            assert record["fitness"][part] <= best_fitness[part]
        assert history[record["best_trial_id"]]["fitness"] == best_fitness
    assert strategy.best[0].params == TARGET
    # Trials per meta-step: 1 if accepted at the first part, at most num_parts.
    assert 1 + 40 <= strategy.num_asked <= 1 + 40 * 3


def test_total_acceptance_with_scalar_fitness_is_monotone():
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=40, seed=4, acceptance="total")
    _run(strategy, lambda trial: sum(distance_fitness(trial.params)))
    totals = [record["fitness"] for record in strategy.history if record["accepted"]]
    assert all(later > earlier for earlier, later in zip(totals, totals[1:]))
    assert strategy.best[0].params == TARGET
    assert strategy.best[1]["fitness"] == 0.0


def test_num_steps_zero_evaluates_the_initial_candidate_only():
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=0, initial=(1, 2, 3))
    trials = _run(strategy, lambda trial: [0.0, 0.0, 0.0])
    assert [trial.params for trial in trials] == [[1, 2, 3]]
    assert strategy.initial == [1, 2, 3]


def test_same_seed_same_search_other_seed_other_search():
    def run(seed):
        return [t.to_json() for t in _run(search.HillClimbing(GridSpace(3, 10), 10, seed=seed),
                                           lambda trial: evaluate_noisy(trial)["fitness"])]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_config_round_trip():
    strategy = search.HillClimbing(
        GridSpace(3, 7), num_steps=5, initial=[1, 2, 3], seed=9, acceptance="total"
    )
    config = json.loads(json.dumps(strategy.get_config()))
    assert config == {
        "space": {"class_name": "GridSpace", "config": {"num_parts": 3, "size": 7}},
        "seed": 9,
        "num_steps": 5,
        "initial": [1, 2, 3],
        "acceptance": "total",
    }  # no "num_candidates" when it is 1 (the configs of older checkpoints)
    clone = search.HillClimbing.from_config(config)
    assert clone.get_config() == strategy.get_config()
    assert isinstance(clone.space, GridSpace) and clone.space.size == 7
    restored = search.deserialize(json.loads(json.dumps(search.serialize(strategy))))
    assert type(restored) is search.HillClimbing
    assert restored.get_config() == strategy.get_config()
    batched = search.HillClimbing(GridSpace(3, 7), num_steps=5, seed=9, num_candidates=4)
    assert batched.get_config()["num_candidates"] == 4
    assert search.HillClimbing.from_config(batched.get_config()).num_candidates == 4


@pytest.mark.parametrize("seed", [7, None])
@pytest.mark.parametrize("num_told", [0, 1, 5])
def test_set_state_continues_identically(seed, num_told):
    original = search.HillClimbing(GridSpace(3, 10), num_steps=12, seed=seed)
    for _ in range(num_told):
        (trial,) = original.ask()
        original.tell([(trial, evaluate_noisy(trial))])
    (pending,) = original.ask()  # snapshot with a pending trial
    state = json.loads(json.dumps(original.get_state()))
    assert state["pending"] == [pending.to_json()]
    assert set(state["rng"]) >= {"bit_generator", "state"}

    clone = search.HillClimbing.from_config(json.loads(json.dumps(original.get_config())))
    clone.set_state(state)
    assert clone.get_state() == state
    assert clone.pending_trials == [pending]
    for strategy in (original, clone):
        strategy.tell([(pending, evaluate_noisy(pending))])
    asked = {id(original): [], id(clone): []}
    for strategy in (original, clone):
        while not strategy.done:
            (trial,) = strategy.ask()
            strategy.tell([(trial, evaluate_noisy(trial))])
            asked[id(strategy)].append(trial.to_json())
    assert asked[id(original)] == asked[id(clone)]
    assert len(asked[id(original)]) > 0
    assert clone.history == original.history
    assert clone.best == original.best


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_steps": -1}, "Received: num_steps=-1"),
        ({"num_steps": 2.0}, "Received: num_steps=2.0"),
        ({"num_steps": True}, "Received: num_steps=True"),
        ({"acceptance": "sum"}, "Received: acceptance='sum'"),
        ({"num_candidates": 0}, "Received: num_candidates=0"),
        ({"seed": -1}, "Received: seed=-1"),
        ({"seed": 1.5}, "Received: seed=1.5"),
        ({"initial": [99, 0, 0]}, r"Received: initial=\[99, 0, 0\]"),
        ({"initial": [1, 2]}, r"Received: initial=\[1, 2\]"),
        ({"space": "grid"}, "Received: space='grid'"),
    ],
)
def test_invalid_arguments(kwargs, message):
    arguments = {"space": GridSpace(3, 10), "num_steps": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        search.HillClimbing(**arguments)


def test_part_acceptance_needs_a_fitness_per_part():
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=2, seed=0)
    (trial,) = strategy.ask()
    with pytest.raises(ValueError, match="acceptance='total'.*Received: fitness=1.5"):
        strategy.tell([(trial, {"fitness": 1.5})])
    with pytest.raises(ValueError, match=r"num_parts=3.*Received: fitness=\[1.0, 2.0\]"):
        strategy.tell([(trial, {"fitness": [1.0, 2.0]})])
    # Nothing was told: the trial is still pending and can be told correctly.
    strategy.tell([(trial, {"fitness": [1, 2, 3]})])
    assert strategy.best[1] == {"fitness": [1.0, 2.0, 3.0]}


def test_controlled_acceptance_compares_each_candidate_with_its_paired_control():
    # Retraining raises every entropy: under the paper's rule (the best's fitness) every
    # candidate below would be accepted; with their controls only the move that beats its
    # own unmoved twin (same extra training) is.
    script = {
        0: {"fitness": [1.0, 1.0, 1.0]},  # baseline: no control
        1: {"fitness": [1.5, 1.6, 1.6], "control_fitness": [1.6, 1.6, 1.6]},  # m=1 part 0: -0.1
        2: {"fitness": [1.7, 1.8, 1.7], "control_fitness": [1.7, 1.7, 1.7]},  # m=1 part 1: +0.1
        3: {"fitness": [1.9, 1.9, 1.9], "control_fitness": [1.9, 1.9, 1.9]},  # m=2 part 0: tie
        4: {"fitness": [2.0, 2.0, 2.0], "control_fitness": [2.0, 2.1, 2.0]},  # m=2 part 1: -0.1
        5: {"fitness": [2.2, 2.2, 2.2], "control_fitness": [2.2, 2.2, 2.3]},  # m=2 part 2: -0.1
    }
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=2, initial=[5, 5, 5], seed=0,
                                   acceptance="controlled")
    while not strategy.done:
        (trial,) = strategy.ask()
        strategy.tell([(trial, dict(script[trial.trial_id]))])
    assert [(r["trial_id"], r["part"], r["accepted"]) for r in strategy.history] == [
        (0, None, True), (1, 0, False), (2, 1, True), (3, 0, False), (4, 1, False),
        (5, 2, False),
    ]
    assert strategy.best[0].trial_id == 2
    with pytest.raises(ValueError, match="Received: acceptance='control'"):
        search.HillClimbing(GridSpace(3, 10), num_steps=1, acceptance="control")


def test_controlled_acceptance_picks_the_largest_margin_and_needs_controls():
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=1, initial=[5, 5, 5], seed=0,
                                   acceptance="controlled", num_candidates=3)
    (trial,) = strategy.ask()
    strategy.tell([(trial, {"fitness": [1.0, 1.0, 1.0]})])  # the baseline has no control
    trials = strategy.ask()
    with pytest.raises(ValueError, match="control_fitness.*Received: control_fitness=None"):
        strategy.tell([(t, {"fitness": [2.0, 2.0, 2.0]}) for t in trials])
    results = [
        {"fitness": [9.0, 0.0, 0.0], "control_fitness": [8.5, 0.0, 0.0]},  # part 0: +0.5
        {"fitness": [0.0, 3.0, 0.0], "control_fitness": [0.0, 1.0, 0.0]},  # part 1: +2.0
        {"fitness": [0.0, 0.0, 5.0], "control_fitness": [0.0, 0.0, 6.0]},  # part 2: -1.0
    ]
    strategy.tell(list(zip(trials, results)))
    assert [r["accepted"] for r in strategy.history[1:]] == [False, True, False]
    assert strategy.best[0].trial_id == trials[1].trial_id
