"""A search killed with SIGKILL resumes to the same result as an uninterrupted one.

The searches run in subprocesses that import `tfemergent.search` without the
`tfemergent` package's ``__init__`` (which imports Keras): `tfemergent.search`
must not need TensorFlow, and the subprocesses start in a fraction of a second.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

from search_toys import comparable
from search_toys import evaluate_in_directory
from search_toys import make_hill_climbing

from tfemergent import search

TESTS_SEARCH_DIR = os.path.dirname(os.path.abspath(__file__))

# Registers an empty `tfemergent` package so that `import tfemergent.search` does
# not run tfemergent/__init__.py (Keras, TensorFlow).
_WITHOUT_PACKAGE_INIT = """
import importlib.util, sys, types
_spec = importlib.util.find_spec("tfemergent")
_package = types.ModuleType("tfemergent")
_package.__path__ = list(_spec.submodule_search_locations)
sys.modules["tfemergent"] = _package
"""

_SEARCH_SCRIPT = _WITHOUT_PACKAGE_INIT + textwrap.dedent(
    f"""
    import functools
    sys.path.insert(0, {TESTS_SEARCH_DIR!r})
    import search_toys
    from tfemergent import search

    evaluate = functools.partial(search_toys.evaluate_in_directory, sleep=0.05)
    runner = search.SearchRunner(search_toys.make_hill_climbing(), evaluate, sys.argv[1])
    result = runner.run()
    print("BEST", result.best_trial.trial_id)
    """
)


def _start(script_path, directory):
    return subprocess.Popen(
        [sys.executable, str(script_path), str(directory)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _num_completed(checkpoint_path):
    try:
        with open(checkpoint_path) as file:
            checkpoint = json.load(file)
    except FileNotFoundError:
        return 0
    return len(checkpoint["history"]) + len(checkpoint["completed"])


def kill_after_trials(process, checkpoint_path, num_trials, timeout=60, poll=0.005):
    """Wait until ``num_trials`` are checkpointed, ``kill -9`` the search, return the checkpoint."""
    deadline = time.monotonic() + timeout
    while _num_completed(checkpoint_path) < num_trials:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, (
            f"the search did not complete {num_trials} trials in {timeout} s"
        )
        time.sleep(poll)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    with open(checkpoint_path) as file:
        checkpoint = json.load(file)
    assert checkpoint["done"] is False
    return checkpoint


def completed_trial_ids(checkpoint):
    """The trial_ids whose results a checkpoint holds (history and the pending batch)."""
    return {entry["trial"]["trial_id"] for entry in checkpoint["history"]} | {
        entry["trial_id"] for entry in checkpoint["completed"]
    }


def test_search_modules_do_not_import_tensorflow():
    script = _WITHOUT_PACKAGE_INIT + textwrap.dedent(
        """
        import tfemergent.search
        heavy = sorted(name for name in ("tensorflow", "keras", "jax", "torch")
                       if name in sys.modules)
        print("HEAVY", heavy)
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "HEAVY []"


def test_resume_after_kill_9_gives_the_uninterrupted_result(tmp_path):
    script_path = tmp_path / "run_search.py"
    script_path.write_text(_SEARCH_SCRIPT)
    killed_directory = tmp_path / "killed"
    checkpoint_path = killed_directory / "search.json"

    at_kill = kill_after_trials(_start(script_path, killed_directory), checkpoint_path, 3)
    completed_before_kill = completed_trial_ids(at_kill)
    assert len(completed_before_kill) >= 3

    process = _start(script_path, killed_directory)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert stdout.startswith("Resuming the search in ")
    assert f"{len(completed_before_kill)} trials done" in stdout.splitlines()[0]

    # The same search without interruption, in this process.
    uninterrupted = search.SearchRunner(
        make_hill_climbing(), evaluate_in_directory, tmp_path / "uninterrupted", verbose=0
    ).run()

    def not_again(trial):
        raise AssertionError(f"trial {trial.trial_id} was evaluated again")

    resumed = search.SearchRunner(
        make_hill_climbing(), not_again, killed_directory, verbose=0
    ).run()
    assert f"BEST {uninterrupted.best_trial.trial_id}" in stdout
    assert resumed.best_trial.params == uninterrupted.best_trial.params
    assert resumed.best_result["fitness"] == uninterrupted.best_result["fitness"]
    assert comparable(resumed.history) == comparable(uninterrupted.history)
    assert len(resumed.history) > len(completed_before_kill)

    # Trials completed before the kill were not evaluated again; every other trial
    # (including the one interrupted) was evaluated by the resumed process.
    pids = {}
    for trial, _ in resumed.history:
        with open(os.path.join(trial.directory, "state.json")) as file:
            pids[trial.trial_id] = json.load(file)["pid"]
    first_pids = {pids[trial_id] for trial_id in completed_before_kill}
    later_pids = {pids[trial_id] for trial_id in pids if trial_id not in completed_before_kill}
    assert len(first_pids) == 1 and len(later_pids) == 1 and first_pids != later_pids
