"""LocationEvaluator(shared_weights="per_cycle"): every member starts from the cycle-start
state, the next state is the best-fitness merge, evaluation order does not matter (threads,
spawned processes; Ray in tests/search/test_ray_executor.py), pickling, resume, divergence."""

import concurrent.futures
import json
import os
import pickle
import shutil

import numpy as np
import pytest
from test_location_evaluator import SETTINGS
from test_location_evaluator import TRAIN_IMAGES
from test_location_evaluator import TRAIN_LABELS
from test_location_evaluator import VAL_IMAGES
from test_location_evaluator import VAL_LABELS
from test_location_evaluator import _comparable
from test_location_evaluator import _network
from test_location_evaluator import _strategy

from tfemergent import search
from tfemergent.models import LocationEvaluator


def _evaluator(network=None, **overrides):
    return LocationEvaluator(
        network or _network(), (TRAIN_IMAGES, TRAIN_LABELS), (VAL_IMAGES, VAL_LABELS),
        **{**SETTINGS, "shared_weights": "per_cycle", **overrides},
    )


def _members(directory, trial_ids):
    members = {}
    for trial_id in trial_ids:
        trial_directory = os.path.join(directory, "trials", str(trial_id))
        with open(os.path.join(trial_directory, "add_ons.json")) as file:
            record = json.load(file)
        with np.load(os.path.join(trial_directory, "add_ons.npz")) as data:
            members[trial_id] = (record, {key: data[key] for key in data.files})
    return members


@pytest.fixture(scope="module")
def serial_search(tmp_path_factory):
    """The reference: the per-cycle search of 3 cycles of 4 members, one trial after another."""
    directory = tmp_path_factory.mktemp("serial")
    network = _network()
    evaluator = _evaluator(network)
    initial = network.add_on_weights()
    result = search.SearchRunner(_strategy(network), evaluator, directory, verbose=0).run()
    shared = directory / "shared_add_ons"
    listing = sorted(os.listdir(shared))
    with np.load(shared / "before_trial_4.npz") as data:
        cycle_1 = {key: data[key] for key in data.files}
    evaluator.restore(12)  # computes (and saves) the merge of the last cycle
    return {"directory": directory, "result": result, "initial": initial, "listing": listing,
            "cycle_1": cycle_1, "final": network.add_on_weights()}


def test_members_start_from_the_cycle_start_and_the_next_is_the_best_fitness_merge(
    serial_search,
):
    directory, result = serial_search["directory"], serial_search["result"]
    history = {trial.trial_id: (trial, r) for trial, r in result.history}
    shared = directory / "shared_add_ons"
    assert serial_search["listing"] == [
        "before_trial_4.npz", "before_trial_8.npz", "fingerprint.json"
    ]
    # restore(12) saved the last merge (and deleted the states before cycle 2)
    assert {"before_trial_12.npz", "before_trial_8.npz"} <= set(os.listdir(shared))
    with open(shared / "fingerprint.json") as file:
        assert json.load(file)["settings"]["shared_weights"] == "per_cycle"
    state = serial_search["initial"]
    reference = _network()
    schedule = _evaluator(reference)  # for its slices and learning rates
    for cycle, first in enumerate((0, 4, 8)):
        members = _members(directory, range(first, first + 4))
        for trial_id, (record, trained) in members.items():
            trial, trial_result = history[trial_id]
            assert record == {"trial_id": trial_id, "cycle": cycle, "member": trial_id - first,
                              "fitness": trial_result["fitness"]}
            # The same training by hand, from the cycle-start state.
            reference.set_add_on_weights(state)
            reference.set_genome(trial.params)
            assert sorted(trained) == sorted(reference.add_on_weights(reference.active_add_ons))
            indices = schedule.member_indices(cycle, trial_id - first)
            if trained:
                loss = reference.train_add_ons(
                    TRAIN_IMAGES[indices], TRAIN_LABELS[indices], batch_size=8,
                    learning_rate=schedule.learning_rate_of(cycle), momentum=0.9,
                )
                assert trial_result["train_loss"] == pytest.approx(loss, rel=1e-6)
            for key, value in reference.add_on_weights(reference.active_add_ons).items():
                np.testing.assert_allclose(trained[key], value, atol=1e-6)
            assert trial_result["fitness"] == pytest.approx(
                reference.accuracy(VAL_IMAGES, VAL_LABELS)
            )
        # The merge rule, by hand: per add-on the copy of the best member that trained it.
        merged = dict(state)
        for key in state:
            trainers = [(record["fitness"], -record["member"], trained[key])
                        for record, trained in members.values() if key in trained]
            if trainers:
                merged[key] = max(trainers, key=lambda entry: entry[:2])[2]
        if first + 4 == 4:
            saved = serial_search["cycle_1"]
        else:
            with np.load(shared / f"before_trial_{first + 4}.npz") as data:
                saved = {key: data[key] for key in data.files}
        assert sorted(saved) == sorted(merged)
        for key, value in merged.items():
            np.testing.assert_array_equal(saved[key], value)
        state = merged
    for key, value in state.items():  # restore(12): the merge of the last cycle
        np.testing.assert_array_equal(serial_search["final"][key], value)
    trained_keys = {key for record, trained in
                    _members(directory, range(12)).values() for key in trained}
    assert any(not np.array_equal(state[key], serial_search["initial"][key])
               for key in trained_keys)


def test_any_order_and_threads_give_the_same_search(serial_search, tmp_path):
    reference = _comparable(serial_search["result"].history)
    # Threads: one network per evaluator, so the calls take turns, in any order.
    network = _network()
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as executor:
        threaded = search.SearchRunner(
            _strategy(network), _evaluator(network), tmp_path / "threads", executor=executor,
            verbose=0,
        ).run()
    assert _comparable(threaded.history) == reference
    # A fresh evaluator (a copy of the checkpoints, trials without directories)
    # evaluates the members of the last cycle backwards.
    shutil.copytree(serial_search["directory"] / "shared_add_ons", tmp_path / "copy")
    evaluator = _evaluator(directory=tmp_path / "copy")
    last_cycle = [search.Trial(trial.trial_id, trial.params, info=trial.info)
                  for trial, _ in serial_search["result"].history[8:]]
    again = {trial.trial_id: evaluator(trial) for trial in reversed(last_cycle)}
    assert again == {trial.trial_id: r for trial, r in serial_search["result"].history[8:]}
    assert sorted(os.listdir(tmp_path / "copy" / "trials")) == ["10", "11", "8", "9"]


def test_pickled_evaluator_rebuilds_the_network_and_evaluates_alike():
    network = _network()
    evaluator = _evaluator(network)
    trial = search.Trial(0, [0, 1, 0, -1, -1, 0], info={"cycle": 0, "member": 0})
    clone = pickle.loads(pickle.dumps(evaluator))
    assert clone.network is not network and clone.requires_sequential is False
    assert clone.get_config() == evaluator.get_config()
    for mine, theirs in zip(network.get_weights(), clone.network.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert clone(trial) == evaluator(trial)
    assert clone.fingerprint() == evaluator.fingerprint()


def test_resume_after_a_kill_gives_the_same_result(serial_search, tmp_path):
    class Killed(Exception):
        pass

    calls = []
    network = _network()
    evaluator = _evaluator(network)

    def dies(trial):
        if len(calls) == 6:
            raise Killed()
        calls.append(trial.trial_id)
        return evaluator(trial)

    with pytest.raises(Killed):
        search.SearchRunner(_strategy(network), dies, tmp_path, verbose=0).run()
    # A new process: only the files remain; cycle 1 is resumed at member 2.
    network = _network()
    evaluator = _evaluator(network)
    resumed_calls = []

    def counted(trial):
        resumed_calls.append(trial.trial_id)
        return evaluator(trial)

    resumed = search.SearchRunner(_strategy(network), counted, tmp_path, verbose=0).run()
    assert resumed_calls == list(range(6, 12))
    assert _comparable(resumed.history) == _comparable(serial_search["result"].history)
    evaluator.restore(12)
    for key, value in serial_search["final"].items():
        np.testing.assert_array_equal(network.add_on_weights()[key], value)


def test_a_diverged_member_fails_and_is_left_out_of_the_merge(tmp_path):
    images = TRAIN_IMAGES.copy()
    images[5, 0, 0, 0] = np.nan
    network = _network()
    evaluator = LocationEvaluator(
        network, (images, TRAIN_LABELS), (VAL_IMAGES, VAL_LABELS),
        **{**SETTINGS, "shared_weights": "per_cycle"},
    )
    result = search.SearchRunner(_strategy(network), evaluator, tmp_path, verbose=0).run()
    failed = [(trial.trial_id, r) for trial, r in result.history if r.get("failed")]
    assert [trial_id for trial_id, _ in failed] == [2, 7, 10]
    for trial_id, trial_result in failed:
        # the member whose slice holds image 5
        cycle, member = divmod(trial_id, 4)
        assert 5 in evaluator.member_indices(cycle, member)
        assert trial_result["fitness"] is None and trial_result["train_loss"] is None
        assert trial_result["failure"] == "the training of the add-ons diverged (train_loss=nan)"
        record, trained = _members(tmp_path, [trial_id])[trial_id]
        assert record["fitness"] is None
        for key, value in trained.items():  # the weights it started from, not NaN
            assert np.all(np.isfinite(value))
    assert result.best_trial.trial_id not in {trial_id for trial_id, _ in failed}
    evaluator.restore(12)
    assert all(np.all(np.isfinite(value)) for value in network.add_on_weights().values())


def test_restore_and_missing_members_are_refused(serial_search):
    evaluator = _evaluator(directory=serial_search["directory"] / "shared_add_ons")
    with pytest.raises(ValueError, match="first trial of a cycle.*Received: trial_id=5"):
        evaluator.restore(5)
    evaluator.restore(4)  # recomputed from the member files of cycle 0
    for key, value in serial_search["cycle_1"].items():
        np.testing.assert_array_equal(evaluator.network.add_on_weights()[key], value)
    # Without the previous cycle's results (memory only, nothing evaluated): refused.
    trial = serial_search["result"].history[5][0]
    trial = search.Trial(trial.trial_id, trial.params, info=trial.info)
    with pytest.raises(RuntimeError, match="result of trial 3 of the previous cycle is missing"):
        _evaluator()(trial)
