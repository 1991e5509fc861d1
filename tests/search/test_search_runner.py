"""SearchRunner: executors, checkpoints, trial directories, errors, resume, progress."""

import concurrent.futures
import json
import multiprocessing
import os

import pytest
from search_toys import GridSpace
from search_toys import comparable
from search_toys import evaluate_in_directory
from search_toys import evaluate_noisy
from search_toys import make_hill_climbing

from tfemergent import search


def _random_search(seed=5):
    return search.RandomSearch(GridSpace(3, 10), num_trials=10, batch_size=4, seed=seed)


def _read_checkpoint(directory):
    with open(os.path.join(directory, "search.json")) as file:
        return json.load(file)


def _never_called(trial):
    raise AssertionError(f"trial {trial.trial_id} was evaluated again")


@pytest.mark.parametrize("make_strategy", [_random_search, make_hill_climbing])
def test_sequential_threads_and_processes_give_the_same_history(tmp_path, make_strategy):
    histories = {}
    bests = {}
    # fork: the workers inherit the imported modules (no TensorFlow import per worker);
    # evaluate_in_directory is pure Python.
    context = multiprocessing.get_context("fork")
    for name in ("sequential", "threads", "processes"):
        if name == "threads":
            executor = concurrent.futures.ThreadPoolExecutor(max_workers=3)
        elif name == "processes":
            executor = concurrent.futures.ProcessPoolExecutor(max_workers=2, mp_context=context)
        else:
            executor = None
        runner = search.SearchRunner(
            make_strategy(), evaluate_in_directory, tmp_path / name, executor=executor, verbose=0
        )
        result = runner.run()
        if executor is not None:
            executor.shutdown()
        histories[name] = comparable(result.history)
        bests[name] = (result.best_trial.trial_id, result.best_trial.params, result.best_result)
        pids = set()
        for trial, _ in result.history:
            with open(os.path.join(trial.directory, "state.json")) as file:
                pids.add(json.load(file)["pid"])
        if name == "processes":
            assert os.getpid() not in pids
        else:
            assert pids == {os.getpid()}
    assert len(histories["sequential"]) >= 10
    assert histories["threads"] == histories["sequential"]
    assert histories["processes"] == histories["sequential"]
    assert bests["threads"] == bests["processes"] == bests["sequential"]


def test_trial_directories_and_parent_directories(tmp_path):
    stale = tmp_path / "trials" / "0"
    stale.mkdir(parents=True)
    (stale / "left_by_a_killed_run.txt").write_text("x")
    result = search.SearchRunner(
        make_hill_climbing(num_steps=4), evaluate_in_directory, tmp_path, verbose=0
    ).run()
    by_id = {trial.trial_id: trial for trial, _ in result.history}
    results = {trial.trial_id: trial_result for trial, trial_result in result.history}
    assert sorted(os.listdir(tmp_path / "trials")) == sorted(str(i) for i in by_id)
    assert os.listdir(stale) == ["state.json"]  # cleared before the evaluation
    for trial, trial_result in result.history:
        assert trial.directory == str(tmp_path / "trials" / str(trial.trial_id))
        if trial.parent is None:
            assert trial.parent_directory is None
            assert trial_result["depth"] == 0
        else:
            assert trial.parent_directory == by_id[trial.parent].directory
            # evaluate_in_directory read the parent's state: depth = parent's + 1.
            assert trial_result["depth"] == results[trial.parent]["depth"] + 1
    assert max(r["depth"] for _, r in result.history) >= 2
    assert result.best_trial.directory == str(tmp_path / "trials" / str(result.best_trial.trial_id))


def test_without_a_directory_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []

    def evaluate(trial):
        seen.append((trial.directory, trial.parent_directory))
        return evaluate_noisy(trial)

    result = search.SearchRunner(make_hill_climbing(num_steps=2), evaluate, verbose=0).run()
    assert set(seen) == {(None, None)}
    assert len(result.history) == len(seen) >= 3
    assert os.listdir(tmp_path) == []


def test_checkpoint_after_every_evaluation(tmp_path):
    snapshots = {}

    def evaluate(trial):
        snapshots[trial.trial_id] = _read_checkpoint(tmp_path)
        return evaluate_noisy(trial)

    strategy = _random_search()
    runner = search.SearchRunner(strategy, evaluate, tmp_path, verbose=0)
    result = runner.run()

    # While trial 5 (second of the second batch) is evaluated, the checkpoint holds
    # the state after asking that batch, the batch, and trial 4's result.
    during = snapshots[5]
    assert [trial["trial_id"] for trial in during["pending"]] == [4, 5, 6, 7]
    assert during["pending"][1]["directory"] == str(tmp_path / "trials" / "5")
    assert [entry["trial_id"] for entry in during["completed"]] == [4]
    assert during["completed"][0]["result"] == evaluate_noisy(result.history[4][0])
    assert [entry["trial"]["trial_id"] for entry in during["history"]] == [0, 1, 2, 3]
    assert during["strategy_state"]["num_asked"] == 8
    assert [t["trial_id"] for t in during["strategy_state"]["pending"]] == [4, 5, 6, 7]
    assert during["done"] is False

    final = _read_checkpoint(tmp_path)
    assert final["strategy"] == json.loads(json.dumps(search.serialize(strategy)))
    assert final["strategy_state"] == strategy.get_state()
    assert final["pending"] == [] and final["completed"] == []
    assert final["done"] is True
    assert final["best_trial_id"] == result.best_trial.trial_id
    assert [(entry["trial"], entry["result"]) for entry in final["history"]] == [
        (trial.to_json(), trial_result) for trial, trial_result in result.history
    ]
    assert not os.path.exists(tmp_path / "search.json.tmp")


def test_max_trials_stops_and_a_new_runner_continues(tmp_path):
    uninterrupted = search.SearchRunner(
        make_hill_climbing(), evaluate_in_directory, tmp_path / "a", verbose=0
    ).run()

    partial = search.SearchRunner(
        make_hill_climbing(), evaluate_in_directory, tmp_path / "b", verbose=0
    ).run(max_trials=4)
    assert [trial.trial_id for trial, _ in partial.history] == [0, 1, 2, 3]
    resumed = search.SearchRunner(
        make_hill_climbing(), evaluate_in_directory, tmp_path / "b", verbose=0
    ).run()
    assert comparable(resumed.history) == comparable(uninterrupted.history)
    assert resumed.best_trial.params == uninterrupted.best_trial.params

    # A finished search is returned without evaluating anything.
    again = search.SearchRunner(make_hill_climbing(), _never_called, tmp_path / "b", verbose=0)
    assert comparable(again.run().history) == comparable(uninterrupted.history)
    assert again.run().best_trial == resumed.best_trial


@pytest.mark.parametrize("use_executor", [False, True])
def test_an_evaluation_error_propagates_and_the_search_resumes(tmp_path, use_executor):
    class Boom(Exception):
        pass

    def failing(trial):
        if trial.trial_id == 5:
            raise Boom("out of memory")
        return evaluate_noisy(trial)

    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1) if use_executor else None
    runner = search.SearchRunner(_random_search(), failing, tmp_path, executor=executor, verbose=0)
    with pytest.raises(Boom, match="out of memory") as error:
        runner.run()
    if executor is not None:
        executor.shutdown()
    note = " ".join(error.value.__notes__)
    assert "trial 5 ({'batch': 1})" in note and "resume" in note

    checkpoint = _read_checkpoint(tmp_path)
    assert [entry["trial"]["trial_id"] for entry in checkpoint["history"]] == [0, 1, 2, 3]
    assert [trial["trial_id"] for trial in checkpoint["pending"]] == [4, 5, 6, 7]
    completed = {entry["trial_id"] for entry in checkpoint["completed"]}
    assert 4 in completed and 5 not in completed

    evaluated = []

    def counting(trial):
        evaluated.append(trial.trial_id)
        return evaluate_noisy(trial)

    resumed = search.SearchRunner(_random_search(), counting, tmp_path, verbose=0).run()
    assert evaluated == sorted({5, 6, 7} - completed) + [8, 9]
    uninterrupted = search.SearchRunner(_random_search(), evaluate_noisy, verbose=0).run()
    assert comparable(resumed.history) == comparable(uninterrupted.history)


def test_a_failed_tell_is_retried_without_evaluating_again(tmp_path):
    strategy = _random_search()
    evaluated = []

    def evaluate(trial):
        evaluated.append(trial.trial_id)
        return evaluate_noisy(trial)

    tell = strategy.tell
    failures = [RuntimeError("tell failed")]

    def flaky_tell(results):
        if failures:
            raise failures.pop()
        tell(results)

    strategy.tell = flaky_tell
    runner = search.SearchRunner(strategy, evaluate, tmp_path, verbose=0)
    with pytest.raises(RuntimeError, match="tell failed"):
        runner.run()
    assert evaluated == [0, 1, 2, 3]
    result = runner.run()
    assert evaluated == list(range(10))
    uninterrupted = search.SearchRunner(_random_search(), evaluate_noisy, verbose=0).run()
    assert comparable(result.history) == comparable(uninterrupted.history)


def test_an_invalid_result_is_not_checkpointed(tmp_path):
    def evaluate(trial):
        return {"fitness": "high" if trial.trial_id == 2 else 1.0}

    runner = search.SearchRunner(_random_search(), evaluate, tmp_path, verbose=0)
    with pytest.raises(ValueError, match="'fitness' of trial 2 must be.*Received: fitness='high'"):
        runner.run()
    assert [entry["trial_id"] for entry in _read_checkpoint(tmp_path)["completed"]] == [0, 1]


def test_resuming_with_another_config_is_refused(tmp_path):
    search.SearchRunner(_random_search(seed=1), evaluate_noisy, tmp_path, verbose=0).run(
        max_trials=4
    )
    with pytest.raises(ValueError) as error:
        search.SearchRunner(_random_search(seed=2), evaluate_noisy, tmp_path, verbose=0)
    message = str(error.value)
    assert "belongs to a different search (config.seed: 1 in the checkpoint, 2 given)" in message
    assert "another `directory`" in message and "Received: strategy=" in message
    with pytest.raises(ValueError, match="config.space.config.size: 10 in the checkpoint, 9"):
        search.SearchRunner(
            search.RandomSearch(GridSpace(3, 9), num_trials=10, batch_size=4, seed=1),
            evaluate_noisy,
            tmp_path,
            verbose=0,
        )
    (tmp_path / "search.json").write_text("{not json")
    with pytest.raises(ValueError, match="Cannot read the search checkpoint"):
        search.SearchRunner(_random_search(seed=1), evaluate_noisy, tmp_path, verbose=0)


def test_progress_lines(tmp_path, capsys):
    result = search.SearchRunner(
        make_hill_climbing(num_steps=3), evaluate_in_directory, tmp_path
    ).run()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(result.history)
    for line, (trial, trial_result) in zip(lines, result.history):
        assert line.startswith(f"Trial {trial.trial_id} (meta_step={trial.info['meta_step']}, ")
        assert "accepted=" in line and "; best: trial " in line and line.endswith("s")
    assert lines[0].startswith("Trial 0 (meta_step=0, part=None, accepted=True): fitness=[")

    search.SearchRunner(make_hill_climbing(num_steps=3), _never_called, tmp_path).run()
    assert capsys.readouterr().out == (
        f"Resuming the search in {tmp_path}: {len(lines)} trials done, "
        "0 of 0 pending trials completed.\n"
    )
    search.SearchRunner(make_hill_climbing(num_steps=3), _never_called, tmp_path, verbose=0).run()
    assert capsys.readouterr().out == ""


def test_progress_bar(capsys):
    """verbose=2: a tqdm bar on stderr, nothing on stdout; failed trials are counted."""

    def evaluate(trial):
        return {"fitness": float("nan") if trial.trial_id == 2 else float(trial.trial_id)}

    strategy = _random_search()
    search.SearchRunner(strategy, evaluate, verbose=2).run()
    captured = capsys.readouterr()
    assert captured.out == ""
    total = strategy.num_trials
    final = captured.err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"{total}/{total}" in final, final
    assert f"best={total - 1}" in final and "failed=1" in final, final
    # A bounded run counts to max_trials.
    search.SearchRunner(_random_search(), evaluate, verbose=2).run(max_trials=4)
    final = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert "4/4" in final, final


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strategy": None}, "Received: strategy=None"),
        ({"evaluate": 3}, "Received: evaluate=3"),
        ({"directory": 5}, "Received: directory=5"),
        ({"executor": "threads"}, "Received: executor='threads'"),
        ({"verbose": 3}, "Received: verbose=3"),
        ({"verbose": True}, "Received: verbose=True"),
    ],
)
def test_invalid_arguments(kwargs, message):
    arguments = {"strategy": _random_search(), "evaluate": evaluate_noisy, **kwargs}
    with pytest.raises(ValueError, match=message):
        search.SearchRunner(**arguments)


def test_a_directory_that_is_a_file_is_refused(tmp_path):
    existing_file = tmp_path / "results.txt"
    existing_file.write_text("not a directory")
    arguments = {"strategy": _random_search(), "evaluate": evaluate_noisy}
    with pytest.raises(ValueError, match=r"existing file. Received: directory=.*results.txt"):
        search.SearchRunner(directory=existing_file, **arguments)
    with pytest.raises(ValueError, match=r"is a file. Received: directory=.*results.txt.*run"):
        search.SearchRunner(directory=existing_file / "deeper" / "run", **arguments)
    assert existing_file.read_text() == "not a directory"
    # A directory that does not exist yet is fine (created when the search runs).
    runner = search.SearchRunner(directory=tmp_path / "new" / "run", verbose=0, **arguments)
    assert runner.directory == str(tmp_path / "new" / "run")


def test_invalid_max_trials():
    runner = search.SearchRunner(_random_search(), evaluate_noisy, verbose=0)
    with pytest.raises(ValueError, match="Received: max_trials=0"):
        runner.run(max_trials=0)


class _SequentialEvaluator:
    """An evaluator whose trials share state: it refuses executors."""

    requires_sequential = True

    def __call__(self, trial):
        return evaluate_noisy(trial)


def test_an_evaluator_that_requires_sequential_runs_refuses_executors(tmp_path):
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor:
        with pytest.raises(ValueError, match=r"`executor` must be None.*Received: executor="):
            search.SearchRunner(_random_search(), _SequentialEvaluator(), executor=executor)
    sequential = search.SearchRunner(
        _random_search(), _SequentialEvaluator(), tmp_path / "a", verbose=0
    ).run()
    plain = search.SearchRunner(_random_search(), evaluate_noisy, tmp_path / "b", verbose=0).run()
    assert comparable(sequential.history) == comparable(plain.history)
