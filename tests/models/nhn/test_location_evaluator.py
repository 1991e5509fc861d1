"""LocationEvaluator: slices and schedule, shared weights continued from trial to trial,
determinism, SearchRunner resume after a kill (same result), sequential only, errors."""

import concurrent.futures
import dataclasses
import importlib
import os

import numpy as np
import pytest
from docstring_examples import assert_docstring_examples

from tfemergent import search
from tfemergent.models import AddOnSuperNetwork, LocationEvaluator, SegmentCNN

module = importlib.import_module("tfemergent.models.nhn.location_evaluator")

RNG = np.random.default_rng(0)
TRAIN_IMAGES = RNG.normal(size=(96, 8, 8, 1)).astype("float32")
TRAIN_LABELS = (TRAIN_IMAGES[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64") + 2 * (
    TRAIN_IMAGES[:, :, :4].mean(axis=(1, 2, 3)) > 0
)
VAL_IMAGES = RNG.normal(size=(40, 8, 8, 1)).astype("float32")
VAL_LABELS = (VAL_IMAGES[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64") + 2 * (
    VAL_IMAGES[:, :, :4].mean(axis=(1, 2, 3)) > 0
)
SETTINGS = {"train_batches": 2, "batch_size": 8, "learning_rate": 0.1, "num_cycles": 3, "seed": 4}


def _network(base_seed=1, **kwargs):
    base = SegmentCNN((8, 8, 1), 4, segments=[[4, 6], [6]], seed=base_seed).build()
    return AddOnSuperNetwork.from_model(base, seed=0, **kwargs)


def _evaluator(network=None, **overrides):
    return LocationEvaluator(
        network or _network(), (TRAIN_IMAGES, TRAIN_LABELS), (VAL_IMAGES, VAL_LABELS),
        **{**SETTINGS, **overrides},
    )


def _strategy(network):
    # Mostly add-ons (none_probability 0.3) so that most trials train something.
    return search.EvolutionarySearch(
        network.location_space(none_probability=0.3), num_cycles=3, population_size=4,
        num_parents=2, num_children=1, num_fresh=1, seed=7,
    )


def _comparable(history):
    return [(t.trial_id, t.params, t.info, r) for t, r in history]


def test_slices_and_learning_rate_schedule():
    evaluator = _evaluator()
    # 96 images, 16 per member: members 0..5 of a cycle get disjoint slices.
    slices = [evaluator.member_indices(1, member) for member in range(6)]
    assert all(len(indices) == 16 for indices in slices)
    assert sorted(np.concatenate(slices).tolist()) == list(range(96))
    np.testing.assert_array_equal(slices[0], evaluator.member_indices(1, 0))
    assert not np.array_equal(slices[0], evaluator.member_indices(2, 0))  # reshuffled per cycle
    np.testing.assert_array_equal(evaluator.member_indices(1, 6), slices[0])  # wraps around
    np.testing.assert_array_equal(evaluator.validation_indices(0, 3), np.arange(40))
    sliced = _evaluator(eval_size=10)
    parts = [sliced.validation_indices(2, member) for member in range(4)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(40))
    # cosine from 0.1 (cycle 0) to 0.001 (cycle 2)
    assert evaluator.learning_rate_of(0) == pytest.approx(0.1)
    assert evaluator.learning_rate_of(1) == pytest.approx(0.001 + 0.5 * 0.099)
    assert evaluator.learning_rate_of(2) == pytest.approx(0.001)
    assert _evaluator(num_cycles=None).learning_rate_of(2) == pytest.approx(0.1)


def test_a_trial_trains_its_add_ons_on_its_slice_from_the_previous_state():
    network = _network()
    evaluator = _evaluator(network)
    genome = [0, 1, 0, -1, -1, 0]
    first = search.Trial(0, genome, info={"cycle": 0, "member": 0})
    second = search.Trial(1, [-1, 0, -1, 0, 1, -1], info={"cycle": 0, "member": 1})
    initial = network.add_on_weights()
    result = evaluator(first)
    assert result["num_add_ons"] == 4 and result["learning_rate"] == pytest.approx(0.1)
    assert 0.0 <= result["fitness"] <= 1.0 and result["fitness"] == network.accuracy(
        VAL_IMAGES, VAL_LABELS
    )
    # The same training by hand from the initial state.
    reference = _network()
    reference.set_genome(genome)
    indices = evaluator.member_indices(0, 0)
    loss = reference.train_add_ons(TRAIN_IMAGES[indices], TRAIN_LABELS[indices], batch_size=8,
                                   learning_rate=0.1, momentum=0.9)
    assert result["train_loss"] == pytest.approx(loss, rel=1e-6)
    for key, value in reference.add_on_weights().items():
        np.testing.assert_allclose(network.add_on_weights()[key], value, atol=1e-7)
    after_first = network.add_on_weights()
    assert any(not np.array_equal(initial[k], after_first[k]) for k in initial)
    # Trial 1 continues from trial 0's weights: evaluated again later, it repeats itself.
    result_second = evaluator(second)
    after_second = network.add_on_weights()
    assert evaluator(second) == result_second
    assert evaluator(first) == result
    for key, value in after_first.items():
        np.testing.assert_array_equal(network.add_on_weights()[key], value)
    assert evaluator(second) == result_second
    for key, value in after_second.items():
        np.testing.assert_array_equal(network.add_on_weights()[key], value)
    # An empty genome trains nothing and scores the frozen base.
    empty = evaluator(search.Trial(2, [-1] * 6, info={"cycle": 0, "member": 2}))
    assert empty["num_add_ons"] == 0 and empty["train_loss"] is None


def test_two_evaluators_give_the_same_search(tmp_path):
    histories = []
    for name in ("a", "b"):
        network = _network()
        runner = search.SearchRunner(_strategy(network), _evaluator(network), tmp_path / name,
                                     verbose=0)
        result = runner.run()
        histories.append((_comparable(result.history), result.best_trial.params))
    assert histories[0] == histories[1]
    fitnesses = [r["fitness"] for _, _, _, r in histories[0][0]]
    assert len(fitnesses) == 12 and len(set(fitnesses)) > 1


class _Killed(Exception):
    pass


def test_resume_after_a_kill_in_the_middle_of_a_cycle_gives_the_same_result(tmp_path):
    network = _network()
    evaluator = _evaluator(network)
    uninterrupted = search.SearchRunner(
        _strategy(network), evaluator, tmp_path / "uninterrupted", verbose=0
    ).run()
    final_weights = network.add_on_weights()
    shared = tmp_path / "uninterrupted" / "shared_add_ons"
    # One cycle on disk: the last snapshot (before trial 8) and the overlays of trials 8-11.
    assert sorted(os.listdir(shared)) == [
        "after_trial_10.npz", "after_trial_11.npz", "after_trial_8.npz", "after_trial_9.npz",
        "before_trial_8.npz", "fingerprint.json",
    ]

    for kill_after in (6, 4):  # in the middle of cycle 1, and at its start
        directory = tmp_path / f"killed{kill_after}"
        network = _network()
        evaluator = _evaluator(network)
        calls = []

        def dies(trial, evaluator=evaluator, calls=calls, kill_after=kill_after):
            if len(calls) == kill_after:
                raise _Killed()
            calls.append(trial.trial_id)
            return evaluator(trial)

        with pytest.raises(_Killed):
            search.SearchRunner(_strategy(network), dies, directory, verbose=0).run()
        assert calls == list(range(kill_after))
        # A new process: a new super-network and evaluator; only the files remain.
        network = _network()
        evaluator = _evaluator(network)
        resumed_calls = []

        def counted(trial, evaluator=evaluator, resumed_calls=resumed_calls):
            resumed_calls.append(trial.trial_id)
            return evaluator(trial)

        counted.requires_sequential = True
        resumed = search.SearchRunner(_strategy(network), counted, directory, verbose=0).run()
        assert resumed_calls == list(range(kill_after, 12))
        assert _comparable(resumed.history) == _comparable(uninterrupted.history)
        assert resumed.best_trial.params == uninterrupted.best_trial.params
        for key, value in final_weights.items():
            np.testing.assert_array_equal(network.add_on_weights()[key], value)

    # A finished search resumed: nothing runs; restore() brings the final weights back.
    network = _network()
    evaluator = _evaluator(network)
    again = search.SearchRunner(_strategy(network), evaluator, tmp_path / "uninterrupted",
                                verbose=0).run()
    assert _comparable(again.history) == _comparable(uninterrupted.history)
    assert any(not np.array_equal(network.add_on_weights()[k], v)
               for k, v in final_weights.items())
    restoring = _evaluator(network, directory=shared)
    restoring.restore(12)
    for key, value in final_weights.items():
        np.testing.assert_array_equal(network.add_on_weights()[key], value)


def test_another_super_network_or_data_refuses_the_directory(tmp_path):
    network = _network()
    search.SearchRunner(_strategy(network), _evaluator(network), tmp_path, verbose=0).run(
        max_trials=4
    )
    for other in (_network(base_seed=2), _network(add_on_initializer="smooth")):
        # another frozen base; other initial add-on weights
        with pytest.raises(ValueError, match="belong to another search.*Received: fingerprint="):
            search.SearchRunner(_strategy(other), _evaluator(other), tmp_path, verbose=0).run()
    network = _network()
    with pytest.raises(ValueError, match="belong to another search"):
        search.SearchRunner(
            _strategy(network), _evaluator(network, learning_rate=0.2), tmp_path, verbose=0
        ).run()


def test_sequential_only():
    network = _network()
    evaluator = _evaluator(network)
    assert evaluator.requires_sequential is True
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as executor, pytest.raises(
        ValueError, match="`executor` must be None.*requires_sequential"
    ):
        search.SearchRunner(_strategy(network), evaluator, executor=executor)
    evaluator._lock.acquire()  # another thread is evaluating
    try:
        with pytest.raises(RuntimeError, match="one trial at a time"):
            evaluator(search.Trial(0, [-1] * 6, info={"cycle": 0, "member": 0}))
    finally:
        evaluator._lock.release()


def test_a_diverged_trial_fails_and_leaves_the_shared_weights_as_they_were():
    images = TRAIN_IMAGES.copy()
    images[50, 0, 0, 0] = np.nan  # in member 0's slice of cycle 0
    network = _network()
    evaluator = LocationEvaluator(network, (images, TRAIN_LABELS), (VAL_IMAGES, VAL_LABELS),
                                  **SETTINGS)
    assert 50 in evaluator.member_indices(0, 0)
    before = network.add_on_weights()
    result = evaluator(search.Trial(0, [0, 1, 0, -1, -1, 0], info={"cycle": 0, "member": 0}))
    assert np.isnan(result["fitness"]) and np.isnan(result["train_loss"])
    assert result["num_add_ons"] == 4
    assert result["failure"] == "the training of the add-ons diverged (train_loss=nan)"
    for key, value in network.add_on_weights().items():
        np.testing.assert_array_equal(value, before[key])
    # The next trial continues from the unchanged weights and trains normally.
    result = evaluator(search.Trial(1, [-1, 0, -1, 0, 1, -1], info={"cycle": 0, "member": 1}))
    assert 0.0 <= result["fitness"] <= 1.0 and np.isfinite(result["train_loss"])


def test_out_of_order_trials_without_checkpoints_are_refused():
    evaluator = _evaluator()
    trial = search.Trial(5, [-1] * 6, info={"cycle": 1, "member": 1})
    with pytest.raises(RuntimeError, match="weights after trial 0 are missing in memory"):
        evaluator(trial)
    with pytest.raises(ValueError, match=r"'cycle' and 'member'.*Received: trial_id=0"):
        evaluator(search.Trial(0, [-1] * 6))
    with pytest.raises(ValueError, match="Received: trial_id=1, info="):
        evaluator(dataclasses.replace(trial, trial_id=1, info={"cycle": 0, "member": 2}))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"network": "net"}, "Received: network='net'"),
        ({"train_data": (TRAIN_IMAGES,)}, "`train_data` must be a pair"),
        ({"train_data": (TRAIN_IMAGES[..., 0], TRAIN_LABELS)}, r"shape \(96, 8, 8\)"),
        ({"validation_data": (VAL_IMAGES, VAL_LABELS[:3])}, r"labels with shape \(3,\)"),
        ({"validation_data": (VAL_IMAGES, VAL_LABELS * 0.5)}, "dtype float64"),
        ({"train_batches": 0}, "Received: train_batches=0"),
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"eval_size": 0}, "Received: eval_size=0"),
        ({"min_learning_rate": 0.5}, "Received: min_learning_rate=0.5"),
        ({"num_cycles": 0}, "Received: num_cycles=0"),
        ({"momentum": 1.0}, "Received: momentum=1.0"),
        ({"directory": 3}, "Received: directory=3"),
        ({"seed": -1}, "Received: seed=-1"),
        ({"shared_weights": "parallel"}, "Received: shared_weights='parallel'"),
    ],
)
def test_invalid_arguments(overrides, message):
    arguments = {
        "network": _network(), "train_data": (TRAIN_IMAGES, TRAIN_LABELS),
        "validation_data": (VAL_IMAGES, VAL_LABELS), **SETTINGS, **overrides,
    }
    with pytest.raises(ValueError, match=message):
        LocationEvaluator(**arguments)


def test_location_evaluator_docstring_examples():
    assert_docstring_examples(module)
