import json
import os

import numpy as np
import pytest

from tfemergent import cli
from tfemergent.experiments import EXPERIMENTS
from tfemergent.models.hierarchy import experiment as hierarchy
from tfemergent.search import Trial

SMALL = {
    "dataset": "digits",
    "num_train": 300,
    "epochs": 1,
    "runs": 1,
    "probe_max_iter": 100,
    "verbose": 0,
}


def test_registered():
    assert EXPERIMENTS["hierarchy"] is hierarchy


def test_digits_preprocessing():
    x_train, y_train, x_test, y_test = hierarchy.load_images("digits", num_train=50)
    assert x_train.shape == (50, 8, 8) and x_test.shape == (360, 8, 8)
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and x_train.max() > 0.9
    assert y_train.shape == (50,) and set(np.unique(y_test)) == set(range(10))


def test_mnist_and_cifar_preprocessing(data_dir):
    x_train, _, x_test, _ = hierarchy.load_images("mnist", data_dir, num_train=20)
    assert x_train.shape == (20, 20, 20) and x_test.shape == (10000, 20, 20)
    assert x_train.max() <= 1.0 and x_train.max() > 0.99
    gray, _, _, _ = hierarchy.load_images("cifar10", data_dir, num_train=4)
    assert gray.shape == (4, 20, 20) and 0.0 <= gray.min() and gray.max() <= 1.0


def test_table1_on_digits():
    config = hierarchy.HierarchyConfig(**{**SMALL, "runs": 2}, topologies=("pyramidal", "random:1"))
    outcome = hierarchy.run(config)
    results = outcome["results"]
    assert [(r["topology"], r["run"]) for r in results] == [
        ("pyramidal", 0), ("pyramidal", 1), ("random:1", 0), ("random:1", 1)
    ]
    assert all(0.5 < r["accuracy"] <= 1.0 for r in results)  # 10 classes: chance is 0.1
    assert results[0]["receptive_fields"] == [[[0, 0], [0, 4]], [[4, 0], [4, 4]], [[0, 8], [4, 8]]]
    # the random topology is the seeded one, the same in both runs
    assert results[2]["receptive_fields"] == results[3]["receptive_fields"]
    summary = outcome["summary"]
    assert -1.0 <= summary["pearson_r"] <= 1.0
    assert summary["topologies"]["pyramidal"]["accuracy"] == pytest.approx(
        100 * np.mean([r["accuracy"] for r in results[:2]])
    )
    assert "| pyramidal |" in outcome["table"]


def test_hill_climbing_trial_retains_the_parents_weights(tmp_path):
    config = hierarchy.HierarchyConfig(**SMALL)
    data = hierarchy.load_images("digits", num_train=64)
    evaluate = hierarchy.HierarchyTrial(config, data)
    pyramidal = [[[0, 0], [0, 4]], [[4, 0], [4, 4]], [[0, 8], [4, 8]]]
    parent_dir, child_dir = tmp_path / "0", tmp_path / "1"
    parent_dir.mkdir()
    child_dir.mkdir()
    parent = evaluate(Trial(0, pyramidal, seed=3, directory=str(parent_dir)))
    assert len(parent["fitness"]) == 3 and parent["entropy"] == pytest.approx(sum(parent["fitness"]))
    moved = [pyramidal[0], [[4, 0], [3, 4]], pyramidal[2]]
    # the child starts from the parent's weights, moved: check before its training
    parent_model = hierarchy.build_model(config, (8, 8), pyramidal, seed=0)
    parent_model.optimizer.build(parent_model.trainable_variables)
    parent_model.load_weights(os.path.join(parent_dir, hierarchy.WEIGHTS_FILE))
    expected = [u.map_encoder_kernel().numpy() for u in parent_model.units]
    parent_model.set_topology(moved)
    for unit, kernel in zip(parent_model.units, expected):
        np.testing.assert_array_equal(unit.map_encoder_kernel().numpy(), kernel)
    child = evaluate(
        Trial(1, moved, parent=0, seed=4, directory=str(child_dir),
              parent_directory=str(parent_dir))
    )
    again = evaluate(
        Trial(1, moved, parent=0, seed=4, directory=str(child_dir),
              parent_directory=str(parent_dir))
    )
    assert child == {**again, "train_seconds": child["train_seconds"]}


def test_table2_on_digits_resumes_to_the_same_result(tmp_path):
    config = hierarchy.HierarchyConfig(
        **{**SMALL, "runs": 2}, part="table2", meta_steps=1, directory=str(tmp_path / "search")
    )
    outcome = hierarchy.run(config)
    results = outcome["results"]
    assert len(results) == 2
    for r in results:
        assert len(r["trajectory"]) == 2  # meta-steps 0, 1
        assert r["trajectory"][0] == r["initial_accuracy"]
        assert r["trajectory"][-1] == r["final_accuracy"]
        assert (r["final_topology"] != r["initial_topology"]) == (r["num_accepted"] > 0)
        assert 2 <= r["num_trials"] <= 4
    # Running again over the same directories resumes the finished searches.
    again = hierarchy.run(config)
    for first, second in zip(results, again["results"]):
        assert {k: v for k, v in first.items() if k != "seconds"} == {
            k: v for k, v in second.items() if k != "seconds"
        }
    summary = outcome["summary"]
    assert summary["median_final"] >= summary["median_initial"] - 100  # a number
    assert "| ours |" in outcome["table"]


def test_cli(tmp_path, capsys):
    results = tmp_path / "out.json"
    status = cli.main(
        ["run", "hierarchy", "--topologies", "flat", "--runs", "1", "--epochs", "1",
         "--num-train", "200", "--results", str(results), "--logdir", str(tmp_path / "logs")]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "flat run 0: accuracy" in printed and "Pearson" in printed
    saved = json.loads(results.read_text())
    assert saved["results"][0]["topology"] == "flat"
    events = os.listdir(tmp_path / "logs" / "flat-run0")
    assert any(name.startswith("events.out.tfevents") for name in events)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"dataset": "svhn"}, "dataset"),
        ({"part": "table3"}, "part"),
        ({"topologies": ("random",)}, "topologies"),
        ({"topologies": ("star",)}, "topologies"),
        ({"runs": 0}, "runs"),
        ({"seeds": ()}, "seeds"),
        ({"seeds": 1}, "seeds"),
        ({"seeds": (0, -1)}, "seeds"),
        ({"epochs": 0}, "epochs"),
        ({"meta_steps": -1}, "meta_steps"),
        ({"dropout": 1.0}, "dropout"),
        ({"num_units": 0}, "num_units"),
        ({"num_units": 4}, "topologies"),  # the handcrafted ones are for 3 units
        ({"acceptance": "total"}, "acceptance"),
    ],
)
def test_invalid_config(kwargs, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*Received"):
        hierarchy.HierarchyConfig(**kwargs)


def test_a_run_is_deterministic_per_seed_without_a_global_seed():
    config = hierarchy.HierarchyConfig(**SMALL)
    data = hierarchy.load_images("digits", num_train=300)
    first = hierarchy.run_topology(config, data, "random:1", 0)
    again = hierarchy.run_topology(config, data, "random:1", 0)
    other = hierarchy.run_topology(config, data, "random:1", 1)
    measures = ("accuracy", "max_entropy", "unit_entropies")
    assert [first[m] for m in measures] == [again[m] for m in measures]
    assert first["unit_entropies"] != other["unit_entropies"]


def test_seeds_are_the_runs():
    assert hierarchy.HierarchyConfig().seeds == tuple(range(hierarchy.HierarchyConfig().runs))
    config = hierarchy.HierarchyConfig(seeds=[4, 2], runs=7)
    assert (config.seeds, config.runs) == ((4, 2), 2)
    assert hierarchy.HierarchyConfig(runs=3).seeds == (0, 1, 2)


def test_controlled_trial_trains_the_unmoved_parent_the_same_way(tmp_path):
    """The control of a candidate is the parent's topology retrained from the same
    weights on the same batches: it equals a candidate that does not move."""
    config = hierarchy.HierarchyConfig(**SMALL, acceptance="controlled")
    data = hierarchy.load_images("digits", num_train=64)
    evaluate = hierarchy.HierarchyTrial(config, data)
    pyramidal = [[[0, 0], [0, 4]], [[4, 0], [4, 4]], [[0, 8], [4, 8]]]
    for name in ("0", "1", "2"):
        (tmp_path / name).mkdir()
    parent = evaluate(Trial(0, pyramidal, seed=3, directory=str(tmp_path / "0")))
    assert "control_fitness" not in parent  # the baseline has no control
    assert json.loads((tmp_path / "0" / hierarchy.TOPOLOGY_FILE).read_text()) == pyramidal
    moved = [pyramidal[0], [[4, 0], [3, 4]], pyramidal[2]]
    child = evaluate(Trial(1, moved, parent=0, seed=4, directory=str(tmp_path / "1"),
                           parent_directory=str(tmp_path / "0")))
    unmoved = evaluate(Trial(2, pyramidal, parent=0, seed=4, directory=str(tmp_path / "2"),
                             parent_directory=str(tmp_path / "0")))
    assert child["control_fitness"] == pytest.approx(unmoved["fitness"], abs=1e-6)
    assert unmoved["control_fitness"] == pytest.approx(unmoved["fitness"], abs=1e-6)
    assert child["fitness"] != pytest.approx(child["control_fitness"], abs=1e-6)


def test_four_units_and_the_controlled_rule_through_table2(tmp_path):
    config = hierarchy.HierarchyConfig(
        **SMALL, part="table2", meta_steps=1, num_units=4, acceptance="controlled",
        directory=str(tmp_path / "search"),
    )
    (result,) = hierarchy.run(config)["results"]
    assert len(result["initial_topology"]) == 4 and result["acceptance"] == "controlled"
    assert 2 <= result["num_trials"] <= 5
    for move in result["moves"]:
        assert set(move) >= {"entropy", "best_entropy", "control_entropy", "accepted"}
        assert move["accepted"] == (move["entropy"] > move["control_entropy"])
    assert result["num_accepted"] == sum(move["accepted"] for move in result["moves"])


def test_dataset_none_needs_the_data_passed_in():
    config = hierarchy.HierarchyConfig(**{**SMALL, "dataset": None})
    with pytest.raises(ValueError, match="Received: config.dataset=None"):
        hierarchy.run(config)
    data = hierarchy.load_images("digits", num_train=64)
    result = hierarchy.run_topology(config, data, "random:1", run=0)
    assert len(result["unit_entropies"]) == 3
