"""RayExecutor: SearchRunner on a local Ray instance gives the serial result, through
killed workers, a killed driver and diverged candidates; LDS genomes in parallel.

One local Ray instance (``ray.init(num_cpus=2)``) serves the module. Its workers
import the toy modules of this folder (``PYTHONPATH``) and, with `tfemergent`,
TensorFlow, once per worker process (some seconds each).
"""

import functools
import importlib
import json
import logging
import os
import sys
import textwrap

import numpy as np
import pytest
from docstring_examples import assert_docstring_examples
from evolution_toys import evaluate_location
from evolution_toys import evaluate_location_diverging
from evolution_toys import make_evolutionary_search
from search_toys import GridSpace
from search_toys import assigned_ray_resources
from search_toys import comparable
from search_toys import evaluate_diverging
from search_toys import evaluate_dying_once
from search_toys import evaluate_in_directory
from search_toys import make_hill_climbing
from search_toys import raise_value_error
from test_search_resume import _WITHOUT_PACKAGE_INIT
from test_search_resume import _start
from test_search_resume import completed_trial_ids
from test_search_resume import kill_after_trials

from tfemergent import search

try:
    import ray
except ImportError:  # the tests that need Ray skip
    ray = None

TESTS_SEARCH_DIR = os.path.dirname(os.path.abspath(__file__))
module = importlib.import_module("tfemergent.search.ray_executor")


def _hill_climbing(num_candidates):
    return search.HillClimbing(GridSpace(3, 10), num_steps=6, seed=11,
                               num_candidates=num_candidates)


def _state_pids(history):
    pids = {}
    for trial, _ in history:
        with open(os.path.join(trial.directory, "state.json")) as file:
            pids[trial.trial_id] = json.load(file)["pid"]
    return pids


def test_missing_ray_raises_an_import_error_with_the_install_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"\n\n    pip install tfemergent\[ray\]\n"):
        search.RayExecutor()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_cpus": -1}, "Received: num_cpus=-1"),
        ({"num_cpus": "one"}, "Received: num_cpus='one'"),
        ({"num_gpus": -0.5}, "Received: num_gpus=-0.5"),
        ({"memory": 0}, "Received: memory=0"),
        ({"memory": 1.5}, "Received: memory=1.5"),
        ({"max_retries": -2}, "Received: max_retries=-2"),
        ({"address": 3}, "Received: address=3"),
        ({"address": ""}, "Received: address=''"),
        ({"init_kwargs": ["num_cpus"]}, r"Received: init_kwargs=\['num_cpus'\]"),
        ({"init_kwargs": {"address": "auto"}}, "pass it as `address`"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        search.RayExecutor(**kwargs)
    assert ray is None or not ray.is_initialized()  # checked before Ray starts


class _FakeRay:
    """Stands in for the `ray` module: records init/shutdown."""

    def __init__(self, initialized):
        self.initialized = initialized
        self.calls = []

    def is_initialized(self):
        return self.initialized

    def init(self, address=None, **kwargs):
        self.calls.append(("init", address, kwargs))
        self.initialized = True

    def shutdown(self):
        self.calls.append(("shutdown",))
        self.initialized = False

    def remote(self, function):
        return function


@pytest.mark.parametrize("initialized", [False, True])
def test_ray_is_started_only_if_needed_and_stopped_only_if_started_here(
    monkeypatch, initialized
):
    fake = _FakeRay(initialized)
    monkeypatch.setitem(sys.modules, "ray", fake)
    with search.RayExecutor(address="auto", init_kwargs={"num_cpus": 4}) as executor:
        assert executor.started_ray is not initialized
    if initialized:
        assert fake.calls == [] and fake.initialized
    else:
        assert fake.calls == [("init", "auto", {"num_cpus": 4}), ("shutdown",)]
    fake = _FakeRay(False)
    monkeypatch.setitem(sys.modules, "ray", fake)
    search.RayExecutor().shutdown()  # address None: Ray reads RAY_ADDRESS itself
    assert fake.calls == [("init", None, {}), ("shutdown",)]


@pytest.fixture(scope="module")
def ray_address():
    """A local Ray instance with 2 CPUs; its workers find the toy modules of this folder."""
    pytest.importorskip(
        "ray", reason="the Ray tests need ray, an optional extra: pip install -e '.[ray]'"
    )
    if ray.is_initialized():
        pytest.fail("Ray was initialised before the module's Ray instance")
    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([TESTS_SEARCH_DIR] + [old_path] * bool(old_path))
    try:
        ray.init(num_cpus=2, object_store_memory=100 * 1024**2, log_to_driver=False)
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if old_path is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old_path


def test_submit_map_resources_errors_and_shutdown(ray_address, tmp_path):
    with search.RayExecutor(num_cpus=0.5, max_retries=2) as executor:
        assert executor.started_ray is False  # Ray was running already
        assert executor.submit(pow, 2, 5).result() == 32
        assert list(executor.map(pow, [1, 2, 3], [2, 2, 2])) == [1, 4, 9]
        assert executor.submit(assigned_ray_resources).result() == {"CPU": 0.5}
        # An exception of the evaluation reaches the future, and is not retried.
        marker = tmp_path / "calls"
        with pytest.raises(ValueError, match="the evaluation is broken"):
            executor.submit(raise_value_error, str(marker)).result()
        assert marker.read_text() == "x"
        with pytest.raises(ValueError, match="Received: fn=3"):
            executor.submit(3)
    assert ray.is_initialized()  # not started by the executor: not shut down
    with pytest.raises(RuntimeError, match="after shutdown"):
        executor.submit(pow, 2, 5)
    assert repr(executor) == (
        "RayExecutor(num_cpus=0.5, num_gpus=0, memory=None, max_retries=2, address=None)"
    )


def test_ray_executor_docstring_examples(ray_address):
    assert_docstring_examples(module)
    assert ray.is_initialized()  # the example did not start Ray, so it did not stop it


@pytest.mark.parametrize("num_candidates", [1, 4])
def test_hill_climbing_on_ray_gives_the_serial_result(ray_address, tmp_path, num_candidates):
    serial = search.SearchRunner(
        _hill_climbing(num_candidates), evaluate_in_directory, tmp_path / "serial", verbose=0
    ).run()
    with search.RayExecutor() as executor:
        on_ray = search.SearchRunner(
            _hill_climbing(num_candidates), evaluate_in_directory, tmp_path / "ray",
            executor=executor, verbose=0,
        ).run()
    assert comparable(on_ray.history) == comparable(serial.history)
    assert on_ray.best_trial.params == serial.best_trial.params
    assert on_ray.best_result == serial.best_result
    assert len(serial.history) >= 1 + 6 * num_candidates
    assert os.getpid() not in set(_state_pids(on_ray.history).values())


def test_evolutionary_search_on_ray_gives_the_serial_result(ray_address, tmp_path):
    serial = search.SearchRunner(
        make_evolutionary_search(num_cycles=3), evaluate_location, tmp_path / "serial",
        verbose=0,
    ).run()
    with search.RayExecutor() as executor:
        on_ray = search.SearchRunner(
            make_evolutionary_search(num_cycles=3), evaluate_location, tmp_path / "ray",
            executor=executor, verbose=0,
        ).run()
    assert comparable(on_ray.history) == comparable(serial.history)
    assert on_ray.best_trial.params == serial.best_trial.params


def test_a_worker_killed_mid_evaluation_is_retried(ray_address, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    evaluate = functools.partial(evaluate_dying_once, marker_directory=str(markers))
    with search.RayExecutor(max_retries=1) as executor:
        on_ray = search.SearchRunner(
            _hill_climbing(3), evaluate, tmp_path / "ray", executor=executor, verbose=0
        ).run()
    # Trials 1 and 3 (of the first batch of three) killed their worker once.
    assert sorted(os.listdir(markers)) == ["died_1", "died_3"]
    pids = _state_pids(on_ray.history)
    for trial_id in (1, 3):
        dead_pid = int((markers / f"died_{trial_id}").read_text())
        assert pids[trial_id] != dead_pid  # evaluated again by another worker
    uninterrupted = search.SearchRunner(
        _hill_climbing(3), evaluate_in_directory, tmp_path / "serial", verbose=0
    ).run()
    assert comparable(on_ray.history) == comparable(uninterrupted.history)
    assert on_ray.best_trial.params == uninterrupted.best_trial.params


_RAY_SEARCH_SCRIPT = _WITHOUT_PACKAGE_INIT + textwrap.dedent(
    f"""
    import functools
    sys.path.insert(0, {TESTS_SEARCH_DIR!r})
    import search_toys
    from tfemergent import search

    strategy = search.HillClimbing(search_toys.GridSpace(3, 10), num_steps=6, seed=11,
                                   num_candidates=3)
    evaluate = functools.partial(search_toys.evaluate_in_directory, sleep=0.2)
    with search.RayExecutor(address=RAY_ADDRESS) as executor:
        result = search.SearchRunner(strategy, evaluate, sys.argv[1], executor=executor).run()
    print("BEST", result.best_trial.trial_id)
    """
)


def test_a_driver_killed_mid_search_resumes_to_the_same_result(ray_address, tmp_path):
    script_path = tmp_path / "run_search.py"
    # The driver connects to the module's Ray instance.
    script_path.write_text(_RAY_SEARCH_SCRIPT.replace("RAY_ADDRESS", repr(ray_address)))
    directory = tmp_path / "killed"
    checkpoint_path = directory / "search.json"
    at_kill = kill_after_trials(
        _start(script_path, directory), checkpoint_path, 4, timeout=120, poll=0.01
    )
    completed = completed_trial_ids(at_kill)

    # Resumed in this process, on Ray again.
    with search.RayExecutor() as executor:
        resumed = search.SearchRunner(
            _hill_climbing(3), evaluate_in_directory, directory, executor=executor, verbose=0
        ).run()
    uninterrupted = search.SearchRunner(
        _hill_climbing(3), evaluate_in_directory, tmp_path / "serial", verbose=0
    ).run()
    assert comparable(resumed.history) == comparable(uninterrupted.history)
    assert resumed.best_trial.params == uninterrupted.best_trial.params
    assert len(resumed.history) > len(completed)
    # The trials completed before the kill were not evaluated again.
    pids = _state_pids(resumed.history)
    first_pids = {pids[trial_id] for trial_id in completed}
    later_pids = {pids[trial_id] for trial_id in pids if trial_id not in completed}
    assert not first_pids & later_pids


def test_diverged_candidates_on_ray_are_failed_trials_as_serially(ray_address, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="tfemergent.search")
    results = {}
    for name in ("serial", "ray"):
        for kind, make_strategy, evaluate in (
            ("hill", lambda: make_hill_climbing(num_steps=12), evaluate_diverging),
            ("evolution", lambda: make_evolutionary_search(num_cycles=3),
             evaluate_location_diverging),
        ):
            caplog.clear()
            executor = search.RayExecutor() if name == "ray" else None
            result = search.SearchRunner(
                make_strategy(), evaluate, tmp_path / name / kind, executor=executor, verbose=0
            ).run()
            if executor is not None:
                executor.shutdown()
            failed = [t.trial_id for t, r in result.history if r.get("failed")]
            assert len(failed) >= 2 and result.best_trial.trial_id not in failed
            warned = [int(r.getMessage().split()[1]) for r in caplog.records
                      if r.name == "tfemergent.search" and "failed" in r.getMessage()]
            assert sorted(warned) == failed
            results[name, kind] = (comparable(result.history), result.best_trial.trial_id)
    assert results["ray", "hill"] == results["serial", "hill"]
    assert results["ray", "evolution"] == results["serial", "evolution"]


def test_location_search_with_per_cycle_weights_on_ray_gives_the_serial_result(
    ray_address, tmp_path
):
    from location_search_toys import TRAIN_IMAGES
    from location_search_toys import make_evaluator
    from location_search_toys import make_network
    from location_search_toys import make_strategy

    # A NaN in one training image: the members whose slice holds it diverge.
    train_images = TRAIN_IMAGES.copy()
    train_images[5, 0, 0, 0] = np.nan
    results = {}
    for name in ("serial", "ray"):
        network = make_network()
        evaluator = make_evaluator(network, train_images=train_images)
        executor = search.RayExecutor() if name == "ray" else None
        result = search.SearchRunner(
            make_strategy(network), evaluator, tmp_path / name, executor=executor, verbose=0
        ).run()
        if executor is not None:
            executor.shutdown()
        # The merged state after the last cycle, read back from the files.
        restoring = make_evaluator(make_network(), train_images=train_images,
                                   directory=tmp_path / name / "shared_add_ons")
        restoring.restore(12)
        results[name] = (result, restoring.network.add_on_weights())
    serial, on_ray = results["serial"][0], results["ray"][0]
    assert [(t.trial_id, t.params, r) for t, r in on_ray.history] == [
        (t.trial_id, t.params, r) for t, r in serial.history
    ]
    failed = [t.trial_id for t, r in serial.history if r.get("failed")]
    assert failed and serial.best_trial.trial_id not in failed
    assert on_ray.best_trial.params == serial.best_trial.params
    for key, value in results["serial"][1].items():
        np.testing.assert_array_equal(results["ray"][1][key], value)
