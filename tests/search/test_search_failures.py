"""Failed trials: a non-finite fitness (a diverged candidate) is recorded, logged, never
best, and never stops the search; serial and with a thread pool (Ray: test_ray_executor)."""

import concurrent.futures
import json
import logging
import math

import pytest
from evolution_toys import evaluate_location_diverging
from evolution_toys import make_evolutionary_search
from search_toys import GridSpace
from search_toys import comparable
from search_toys import evaluate_diverging
from search_toys import make_hill_climbing

from tfemergent import search
from tfemergent.search.search_strategy import fitness_score


def _strategy(**kwargs):
    return search.RandomSearch(GridSpace(3, 10), **{"num_trials": 4, "batch_size": 2, **kwargs})


@pytest.mark.parametrize(
    "result, failure",
    [
        ({"fitness": float("nan")}, "non-finite fitness nan"),
        ({"fitness": float("inf")}, "non-finite fitness inf"),
        ({"fitness": -float("inf")}, "non-finite fitness -inf"),
        ({"fitness": [1.0, float("nan"), 2.0]}, "non-finite fitness [1.0, nan, 2.0]"),
        ({"fitness": 0.5, "failed": True}, "the evaluation reported failed=True"),
        ({"fitness": None, "failed": True, "failure": "out of memory"}, "out of memory"),
        ({"fitness": float("nan"), "failure": "loss diverged at step 3"},
         "loss diverged at step 3"),
    ],
)
def test_non_finite_fitness_or_failed_marks_a_failed_trial(result, failure):
    strategy = _strategy(seed=0)
    trial, _ = strategy.ask()
    checked = strategy.validate_result(trial, {**result, "loss": float("nan"), "steps": 3})
    assert checked == {"fitness": None, "failed": True, "failure": failure, "loss": None,
                       "steps": 3}
    assert strategy.validate_result(trial, checked) == checked  # idempotent
    assert fitness_score(checked) == -math.inf
    # Other non-finite entries of a good result are stored as None (JSON has no NaN).
    good = strategy.validate_result(trial, {"fitness": 1, "loss": [1.0, float("inf")]})
    assert good == {"fitness": 1.0, "loss": [1.0, None]}
    assert fitness_score(good) == 1.0


def test_random_search_never_picks_a_failed_trial():
    strategy = _strategy(seed=0)
    first, second = strategy.ask()
    strategy.tell([(first, {"fitness": float("nan")}), (second, {"fitness": float("inf")})])
    assert strategy.best is None
    assert [(r["trial_id"], r["fitness"], r["failed"], r["best_trial_id"])
            for r in strategy.history] == [(0, None, True, None), (1, None, True, None)]
    third, fourth = strategy.ask()
    strategy.tell([(third, {"fitness": -5.0}), (fourth, {"fitness": float("nan")})])
    assert strategy.best[0].trial_id == 2 and strategy.best[1] == {"fitness": -5.0}
    assert [r["best_trial_id"] for r in strategy.history] == [None, None, 2, 2]
    assert "failed" not in strategy.history[2]


def test_hill_climbing_never_accepts_a_failed_candidate():
    nan = float("nan")
    script = {
        0: [1.0, 1.0, 1.0],
        1: [nan, nan, nan],  # m=1 part 0: failed -> rejected, try part 1
        2: [0.0, 2.0, 0.0],  # m=1 part 1: accepted
        3: [nan, 9.0, 9.0],  # m=2 part 0: failed (one entry NaN) -> rejected
    }
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=2, initial=[5, 5, 5], seed=0)
    while strategy.num_asked < len(script):
        (trial,) = strategy.ask()
        strategy.tell([(trial, {"fitness": script[trial.trial_id]})])
    assert [(r["accepted"], r.get("failed", False), r["best_trial_id"])
            for r in strategy.history] == [
        (True, False, 0), (False, True, 0), (True, False, 2), (False, True, 2)
    ]
    assert strategy.best[0].trial_id == 2
    assert strategy.ask()[0].info == {"meta_step": 2, "part": 1}


def test_hill_climbing_climbs_from_a_failed_baseline_without_calling_it_best():
    strategy = search.HillClimbing(GridSpace(3, 10), num_steps=1, initial=[5, 5, 5], seed=0,
                                   num_candidates=2, acceptance="total")
    (baseline,) = strategy.ask()
    strategy.tell([(baseline, {"fitness": float("nan")})])
    assert strategy.best is None and not strategy.done
    assert strategy.history[0]["accepted"] is False
    first, second = strategy.ask()
    assert first.parent == second.parent == 0
    strategy.tell([(first, {"fitness": -3.0}), (second, {"fitness": -1.0})])
    assert strategy.done and strategy.best[0].trial_id == 2
    assert [r["accepted"] for r in strategy.history] == [False, False, True]


def test_evolutionary_search_ranks_failed_members_last():
    strategy = search.EvolutionarySearch(search.LocationSpace(segment_sizes=(2,)), num_cycles=2,
                                         population_size=4, num_parents=2, num_children=1,
                                         num_fresh=1, seed=0)
    trials = strategy.ask()
    fitness = [float("nan"), 1.0, float("nan"), 3.0]
    strategy.tell([(t, {"fitness": f}) for t, f in zip(trials, fitness)])
    assert [r["rank"] for r in strategy.history] == [2, 1, 3, 0]
    assert strategy.best[0].trial_id == 3
    survivors = strategy.ask()[:2]
    assert [t.info["parents"] for t in survivors] == [[3], [1]]
    strategy.tell([(t, {"fitness": float("nan")}) for t in strategy.pending_trials])
    assert strategy.best is None  # every member of the latest generation failed
    assert strategy.done


@pytest.mark.parametrize("executor_kind", ["serial", "threads"])
def test_a_diverged_candidate_is_recorded_logged_never_best_and_the_search_goes_on(
    tmp_path, caplog, capsys, executor_kind
):
    executor = None
    if executor_kind == "threads":
        executor = concurrent.futures.ThreadPoolExecutor(max_workers=3)
    caplog.set_level(logging.WARNING, logger="tfemergent.search")
    strategy = make_hill_climbing(num_steps=12)
    result = search.SearchRunner(
        strategy, evaluate_diverging, tmp_path, executor=executor, verbose=1
    ).run()
    if executor is not None:
        executor.shutdown()
    failed = [trial.trial_id for trial, r in result.history if r.get("failed")]
    assert len(failed) >= 1
    for trial, trial_result in result.history:
        if trial.trial_id in failed:
            assert trial.params[0] == 3
            assert trial_result["fitness"] is None and trial_result["loss"] is None
            assert trial_result["failure"] == "non-finite fitness [nan, nan, nan]"
    assert result.best_trial.trial_id not in failed
    assert all(record["best_trial_id"] not in failed for record in strategy.history)
    # The climb stops at 2: every step to 3 diverges.
    assert result.best_trial.params == [2, 2, 7]
    # Logged: a warning per failed trial, and "failed" in the progress line.
    warnings = [r.getMessage() for r in caplog.records if r.name == "tfemergent.search"]
    assert warnings == [
        f"Trial {trial_id} failed (non-finite fitness [nan, nan, nan]); it is recorded in the "
        "history and never selected as best." for trial_id in failed
    ]
    lines = capsys.readouterr().out.splitlines()
    assert sum("failed (non-finite fitness [nan, nan, nan])" in line for line in lines) == len(
        failed
    )
    # Checkpointed (valid JSON, no NaN), so a resumed search evaluates nothing again.
    with open(tmp_path / "search.json") as file:
        checkpoint = json.loads(file.read(), parse_constant=lambda name: pytest.fail(name))
    assert [e["trial"]["trial_id"] for e in checkpoint["history"] if e["result"].get("failed")] \
        == failed

    def not_again(trial):
        raise AssertionError(f"trial {trial.trial_id} was evaluated again")

    resumed = search.SearchRunner(make_hill_climbing(num_steps=12), not_again, tmp_path,
                                  verbose=0).run()
    assert comparable(resumed.history) == comparable(result.history)


def test_a_diverged_member_of_an_evolutionary_search(tmp_path):
    result = search.SearchRunner(
        make_evolutionary_search(num_cycles=3), evaluate_location_diverging, tmp_path, verbose=0
    ).run()
    failed = [trial for trial, r in result.history if r.get("failed")]
    assert len(failed) >= 2 and all(trial.params[0] == 0 for trial in failed)
    assert result.best_trial.params[0] != 0
    assert result.best_result["fitness"] == max(
        r["fitness"] for t, r in result.history[-20:] if not r.get("failed")
    )
