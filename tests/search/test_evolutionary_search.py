"""EvolutionarySearch: the location search of LDS (paper 5, Algorithm 1), step by step,
under SearchRunner (resume after SIGKILL, executors), config and state."""

import collections
import concurrent.futures
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from evolution_toys import TARGET
from evolution_toys import comparable
from evolution_toys import evaluate_location
from evolution_toys import evaluate_matches
from evolution_toys import make_evolutionary_search
from evolution_toys import num_matches
from search_toys import GridSpace
from test_search_resume import kill_after_trials

from tfemergent import search
from tfemergent.search import EvolutionarySearch
from tfemergent.search import LocationSpace

TESTS_SEARCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(os.path.dirname(TESTS_SEARCH_DIR))


def _tell(strategy, trials, fitness_of):
    strategy.tell([(trial, {"fitness": fitness_of(trial)}) for trial in trials])


def _run(strategy, fitness_of):
    """Ask/tell until done; returns the generations (lists of trials)."""
    generations = []
    while not strategy.done:
        trials = strategy.ask()
        _tell(strategy, trials, fitness_of)
        generations.append(trials)
    return generations


def test_a_cycle_keeps_the_best_10_recombines_the_best_4_into_5_and_adds_5_fresh():
    space = LocationSpace()
    strategy = EvolutionarySearch(space, num_cycles=2, seed=0)
    assert (strategy.population_size, strategy.num_survivors) == (20, 10)
    first = strategy.ask()
    assert [trial.trial_id for trial in first] == list(range(20))
    assert [trial.info for trial in first] == [
        {"cycle": 0, "member": k, "origin": "initial", "parents": []} for k in range(20)
    ]
    assert all(trial.parent is None for trial in first)
    assert strategy.population == [] and strategy.best is None

    # Distinct scripted fitness: member k scores (7 k) mod 20.
    _tell(strategy, first, lambda trial: float(trial.trial_id * 7 % 20))
    ranked = sorted(first, key=lambda trial: -(trial.trial_id * 7 % 20))
    assert [trial.trial_id for trial, _ in strategy.population] == [t.trial_id for t in ranked]
    assert [record["rank"] for record in strategy.history] == [
        [t.trial_id for t in ranked].index(k) for k in range(20)
    ]
    assert strategy.best == strategy.population[0] and strategy.best[1]["fitness"] == 19.0
    assert {record["best_trial_id"] for record in strategy.history} == {ranked[0].trial_id}
    assert strategy.num_completed_cycles == 1 and not strategy.done

    second = strategy.ask()
    assert [trial.trial_id for trial in second] == list(range(20, 40))
    assert [trial.info["member"] for trial in second] == list(range(20))
    assert {trial.info["cycle"] for trial in second} == {1}
    origins = [trial.info["origin"] for trial in second]
    assert origins == ["survivor"] * 10 + ["child"] * 5 + ["fresh"] * 5
    # Survivors: the best 10 in rank order, continuing from their trial.
    for trial, kept in zip(second[:10], ranked[:10]):
        assert trial.params == kept.params
        assert trial.info["parents"] == [kept.trial_id] and trial.parent == kept.trial_id
    # Children: the paper's pairs (1, 2), (1, 3), (1, 4), (2, 3), (2, 4) of the best 4;
    # every gene of a child is one of its parents' genes.
    pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]
    for child, (a, b) in zip(second[10:15], pairs):
        assert child.info["parents"] == [ranked[a].trial_id, ranked[b].trial_id]
        assert child.parent == ranked[a].trial_id
        assert all(
            gene in (gene_a, gene_b)
            for gene, gene_a, gene_b in zip(child.params, ranked[a].params, ranked[b].params)
        )
    # Fresh candidates: new samples, no parents.
    for trial in second[15:]:
        assert trial.info["parents"] == [] and trial.parent is None
        assert space.validate(trial.params) == trial.params
    # The 10 worst of the first generation are gone.
    assert not {t.trial_id for t in ranked[10:]} & {p for t in second for p in t.info["parents"]}

    _tell(strategy, second, lambda trial: 0.0)
    # Ties keep the member order: the survivors rank first, the best is the old best.
    assert [trial.trial_id for trial, _ in strategy.population] == list(range(20, 40))
    assert strategy.best[0].trial_id == 20 and strategy.best[0].params == ranked[0].params
    assert strategy.done and strategy.num_asked == strategy.num_trials == 40
    with pytest.raises(RuntimeError, match="done after 40 trials"):
        strategy.ask()


@pytest.mark.parametrize(
    "population_size, num_parents, num_children, num_fresh",
    [(20, 4, 5, 5), (8, 3, 3, 2), (6, 2, 1, 0), (5, 4, 0, 4), (4, 4, 3, 0)],
)
def test_every_cycle_has_the_exact_counts(population_size, num_parents, num_children, num_fresh):
    strategy = EvolutionarySearch(
        LocationSpace(segment_sizes=(3, 3)),
        num_cycles=6,
        population_size=population_size,
        num_parents=num_parents,
        num_children=num_children,
        num_fresh=num_fresh,
        seed=1,
    )
    num_survivors = population_size - num_children - num_fresh
    assert strategy.num_survivors == num_survivors
    generations = _run(strategy, lambda trial: num_matches(trial.params, TARGET[:6] + TARGET[:6]))
    assert len(generations) == 6
    assert [len(trials) for trials in generations] == [population_size] * 6
    assert collections.Counter(t.info["origin"] for t in generations[0]) == {
        "initial": population_size
    }
    pairs = [(a, b) for a in range(num_parents) for b in range(a + 1, num_parents)]
    for previous, trials in zip(generations, generations[1:]):
        ranks = {record["trial_id"]: record["rank"] for record in strategy.history}
        ranked = sorted(previous, key=lambda trial: ranks[trial.trial_id])
        assert [t.info["origin"] for t in trials] == (
            ["survivor"] * num_survivors + ["child"] * num_children + ["fresh"] * num_fresh
        )
        assert [t.info["parents"] for t in trials[:num_survivors]] == [
            [t.trial_id] for t in ranked[:num_survivors]
        ]
        assert [t.info["parents"] for t in trials[num_survivors:][:num_children]] == [
            [ranked[a].trial_id, ranked[b].trial_id] for a, b in pairs[:num_children]
        ]
    assert strategy.num_asked == 6 * population_size


def test_the_search_improves_a_toy_objective():
    strategy = make_evolutionary_search(num_cycles=12, seed=0)
    generations = _run(strategy, lambda trial: num_matches(trial.params))
    records = strategy.history
    generation_best = [
        max(record["fitness"] for record in records[20 * cycle:20 * (cycle + 1)])
        for cycle in range(12)
    ]
    # The best member always survives, so the best of a generation never gets worse.
    assert generation_best == sorted(generation_best)
    assert generation_best[-1] > generation_best[0]
    best_trial, best_result = strategy.best
    assert best_trial in generations[-1]
    assert best_result["fitness"] == generation_best[-1] == num_matches(best_trial.params)
    assert best_result["fitness"] > np.mean([record["fitness"] for record in records[:20]]) + 3


def test_same_seed_same_search_other_seed_other_search():
    def run(seed):
        strategy = make_evolutionary_search(num_cycles=3, seed=seed)
        return [t.to_json() for trials in _run(strategy, evaluate_matches_fitness) for t in trials]

    assert run(5) == run(5)
    assert run(5) != run(6)


def evaluate_matches_fitness(trial):
    return evaluate_matches(trial)["fitness"]


def test_config_round_trip():
    strategy = EvolutionarySearch(
        LocationSpace(segment_sizes=(2, 2), kernel_sizes=(3,)), num_cycles=7, population_size=9,
        num_parents=3, num_children=2, num_fresh=4, seed=8,
    )
    config = json.loads(json.dumps(strategy.get_config()))
    assert config == {
        "space": {
            "class_name": "LocationSpace",
            "config": {"segment_sizes": [2, 2], "kernel_sizes": [3], "none_probability": 0.8,
                       "include_segment_input": True},
        },
        "seed": 8,
        "num_cycles": 7,
        "population_size": 9,
        "num_parents": 3,
        "num_children": 2,
        "num_fresh": 4,
    }
    clone = EvolutionarySearch.from_config(config)
    assert clone.get_config() == strategy.get_config()
    restored = search.deserialize(json.loads(json.dumps(search.serialize(strategy))))
    assert type(restored) is EvolutionarySearch
    assert restored.get_config() == strategy.get_config()
    assert [t.params for t in restored.ask()] == [t.params for t in strategy.ask()]


@pytest.mark.parametrize("seed", [7, None])
@pytest.mark.parametrize("num_told", [0, 1, 2])
def test_set_state_continues_identically(seed, num_told):
    original = make_evolutionary_search(num_cycles=4, seed=seed)
    for _ in range(num_told):
        trials = original.ask()
        original.tell([(trial, evaluate_location(trial)) for trial in trials])
    pending = original.ask()  # snapshot with a pending generation
    state = json.loads(json.dumps(original.get_state()))
    assert state["num_completed_cycles"] == num_told
    assert len(state["population"]) == (20 if num_told else 0)

    clone = EvolutionarySearch.from_config(json.loads(json.dumps(original.get_config())))
    clone.set_state(state)
    assert clone.get_state() == state
    assert clone.pending_trials == pending
    assert clone.population == original.population and clone.best == original.best
    asked = {}
    for strategy in (original, clone):
        strategy.tell([(trial, evaluate_location(trial)) for trial in pending])
        asked[id(strategy)] = [
            t.to_json() for trials in _run(strategy, evaluate_matches_fitness) for t in trials
        ]
    assert asked[id(original)] == asked[id(clone)]
    assert len(asked[id(original)]) == 20 * (3 - num_told)
    assert clone.history == original.history
    assert clone.best == original.best and clone.population == original.population


def test_set_state_refuses_other_states():
    random_state = search.RandomSearch(LocationSpace(), num_trials=3).get_state()
    with pytest.raises(ValueError, match="'num_completed_cycles' and 'population'.*Received"):
        make_evolutionary_search().set_state(random_state)


def test_runner_resumes_an_interrupted_generation_to_the_same_result(tmp_path):
    class Killed(Exception):
        pass

    def interrupted(trial):
        if trial.trial_id == 27:  # in the middle of the second generation
            raise Killed()
        return evaluate_location(trial)

    with pytest.raises(Killed):
        search.SearchRunner(make_evolutionary_search(), interrupted, tmp_path, verbose=0).run()
    evaluated = []

    def counting(trial):
        evaluated.append(trial.trial_id)
        return evaluate_location(trial)

    resumed = search.SearchRunner(make_evolutionary_search(), counting, tmp_path, verbose=0).run()
    assert evaluated == list(range(27, 80))  # trials 0-26 were not evaluated again
    uninterrupted = search.SearchRunner(
        make_evolutionary_search(), evaluate_location, tmp_path / "uninterrupted", verbose=0
    ).run()
    assert comparable(resumed.history) == comparable(uninterrupted.history)
    assert resumed.best_trial.trial_id == uninterrupted.best_trial.trial_id
    assert resumed.best_trial.params == uninterrupted.best_trial.params
    assert resumed.best_result == uninterrupted.best_result
    # A survivor continues from its own earlier trial's directory; a child from its
    # better parent's.
    for trial, result in resumed.history:
        if trial.parent is None:
            assert "parent_in_state" not in result
        else:
            assert result["parent_in_state"] == trial.parent == trial.info["parents"][0]
            assert trial.parent_directory == str(tmp_path / "trials" / str(trial.parent))


# Registers an empty `tfemergent` package so that `import tfemergent.search` does
# not run tfemergent/__init__.py (Keras, TensorFlow); runs this checkout's code.
_SEARCH_SCRIPT = textwrap.dedent(
    f"""
    import functools, importlib.util, sys, types
    sys.path[:0] = [{REPO_DIR!r}, {TESTS_SEARCH_DIR!r}]
    _spec = importlib.util.find_spec("tfemergent")
    _package = types.ModuleType("tfemergent")
    _package.__path__ = list(_spec.submodule_search_locations)
    sys.modules["tfemergent"] = _package
    import evolution_toys
    from tfemergent import search

    evaluate = functools.partial(evolution_toys.evaluate_location, sleep=0.01)
    runner = search.SearchRunner(evolution_toys.make_evolutionary_search(), evaluate, sys.argv[1])
    result = runner.run()
    print("BEST", result.best_trial.trial_id, "HEAVY", "tensorflow" in sys.modules)
    """
)


def test_resume_after_kill_9_gives_the_uninterrupted_result(tmp_path):
    script_path = tmp_path / "run_search.py"
    script_path.write_text(_SEARCH_SCRIPT)
    killed_directory = tmp_path / "killed"
    checkpoint_path = killed_directory / "search.json"

    def start():
        return subprocess.Popen(
            [sys.executable, str(script_path), str(killed_directory)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    # Killed in the second generation.
    at_kill = kill_after_trials(start(), checkpoint_path, 25, poll=0.002)
    num_done = len(at_kill["history"]) + len(at_kill["completed"])
    assert 25 <= num_done < 80

    process = start()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stdout.startswith(f"Resuming the search in {killed_directory}: ")

    uninterrupted = search.SearchRunner(
        make_evolutionary_search(), evaluate_location, tmp_path / "uninterrupted", verbose=0
    ).run()

    def not_again(trial):
        raise AssertionError(f"trial {trial.trial_id} was evaluated again")

    resumed = search.SearchRunner(
        make_evolutionary_search(), not_again, killed_directory, verbose=0
    ).run()
    assert f"BEST {uninterrupted.best_trial.trial_id} HEAVY False" in stdout
    assert comparable(resumed.history) == comparable(uninterrupted.history)
    assert resumed.best_trial.params == uninterrupted.best_trial.params
    assert resumed.best_result == uninterrupted.best_result
    # The trials completed before the kill ran in the first process, all others in the second.
    pids = []
    for trial, _ in resumed.history:
        with open(os.path.join(trial.directory, "state.json")) as file:
            pids.append(json.load(file)["pid"])
    assert len(set(pids[:num_done])) == 1 and len(set(pids[num_done:])) == 1
    assert pids[0] != pids[-1]


def test_threads_and_processes_give_the_sequential_result(tmp_path):
    results = {}
    # fork: the workers inherit the imported modules; evaluate_location is pure Python.
    context = multiprocessing.get_context("fork")
    for name in ("sequential", "threads", "processes"):
        executor = {
            "sequential": None,
            "threads": concurrent.futures.ThreadPoolExecutor(max_workers=4),
            "processes": concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context),
        }[name]
        result = search.SearchRunner(
            make_evolutionary_search(num_cycles=3), evaluate_location, tmp_path / name,
            executor=executor, verbose=0,
        ).run()
        if executor is not None:
            executor.shutdown()
        results[name] = result
        pids = set()
        for trial, _ in result.history:
            with open(os.path.join(trial.directory, "state.json")) as file:
                pids.add(json.load(file)["pid"])
        assert (os.getpid() in pids) is (name != "processes")
    sequential = results["sequential"]
    assert len(sequential.history) == 60
    for name in ("threads", "processes"):
        assert comparable(results[name].history) == comparable(sequential.history)
        assert results[name].best_trial.trial_id == sequential.best_trial.trial_id
        assert results[name].best_result == sequential.best_result


def test_progress_lines(tmp_path, capsys):
    search.SearchRunner(make_evolutionary_search(num_cycles=2), evaluate_matches, tmp_path).run()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 40
    assert lines[0].startswith("Trial 0 (cycle=0, member=0, origin=initial, parents=[]): fitness=")
    assert lines[20].startswith("Trial 20 (cycle=1, member=0, origin=survivor, parents=[")
    # The generation is ranked when its last trial is told.
    assert ", rank=" in lines[39] and "; best: trial " in lines[39]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_cycles": 0}, "Received: num_cycles=0"),
        ({"num_cycles": 2.0}, "Received: num_cycles=2.0"),
        ({"population_size": 1}, "Received: population_size=1"),
        ({"num_parents": 1}, "Received: num_parents=1"),
        ({"num_parents": 21}, "must be an integer <= 20. Received: num_parents=21"),
        ({"num_children": -1}, "Received: num_children=-1"),
        ({"num_children": 7}, "at most the 6 pairs of the num_parents=4 best members.*"
                              "Received: num_children=7"),
        ({"num_fresh": None}, "Received: num_fresh=None"),
        ({"num_fresh": 15}, "must be < population_size=20 so that at least the best member "
                            "survives each cycle. Received: num_children=5, num_fresh=15"),
        ({"population_size": 10, "num_fresh": 5}, "Received: num_children=5, num_fresh=5"),
        ({"seed": -1}, "Received: seed=-1"),
        ({"space": GridSpace(3, 10)}, r"space.recombine\(first, second, rng\).*"
                                      r"Received: space=<search_toys.GridSpace"),
        ({"space": [3]}, r"Received: space=\[3\]"),
    ],
)
def test_invalid_arguments(kwargs, message):
    arguments = {"space": LocationSpace(), "num_cycles": 3, **kwargs}
    with pytest.raises(ValueError, match=message):
        EvolutionarySearch(**arguments)
