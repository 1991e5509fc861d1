"""``tfemergent run nhn``: data, a short digits run through the CLI, the table, errors."""

import argparse
import json
import math
import os

import numpy as np
import pytest

from tensorboard_events import read_events
from tfemergent import cli
from tfemergent.experiments import EXPERIMENTS
from tfemergent.models.nhn import experiment as nhn
from tfemergent.models.nhn.neuron_hierarchy_builder import STAGES


def test_registered():
    assert EXPERIMENTS["nhn"] is nhn


def test_digits_data_are_standardised_per_channel():
    config = nhn.NhnConfig(num_train=300, num_test=100, verbose=0)
    x_train, y_train, x_test, _ = nhn.load_data(config)
    assert x_train.shape == (300, 8, 8, 1) and x_test.shape == (100, 8, 8, 1)
    assert abs(float(x_train.mean())) < 1e-5 and abs(float(x_train.std()) - 1.0) < 1e-5
    assert y_train.dtype == np.int64 and len(np.unique(y_train)) == 10


def test_cifar_data_are_standardised_per_channel(data_dir):
    config = nhn.NhnConfig(dataset="cifar10", data_dir=data_dir, num_train=200, num_test=50,
                           verbose=0)
    x_train, _, x_test, _ = nhn.load_data(config)
    assert x_train.shape == (200, 32, 32, 3) and x_test.shape == (50, 32, 32, 3)
    np.testing.assert_allclose(x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(x_train.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    spec = config.spec()
    assert spec.input_shape == (32, 32, 3) and spec.segment_sizes == (4, 4, 4)


def test_cli_on_digits(tmp_path, capsys):
    results = tmp_path / "out.json"
    status = cli.main(
        ["run", "nhn", "--epochs", "2", "--cycles", "2", "--population", "4",
         "--search-batches", "2", "--results", str(results), "--plots", str(tmp_path / "plots"),
         "--logdir", str(tmp_path / "logs"), "--export", str(tmp_path / "export")]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "[search] cycle 2/2: best validation accuracy" in printed
    assert "Neuron hierarchical network on digits" in printed and "paper (CIFAR-10)" in printed
    saved = json.loads(results.read_text())
    stages = saved["results"]["stages"]
    assert [row["stage"] for row in stages] == [
        "base", "pruned", "retrained", "searched", "final", "ablation"
    ]
    for row in stages:
        assert row["score"] == pytest.approx(
            math.sqrt((row["test_error"] / 2) ** 2 + (row["parameters"] / 25e6) ** 2)
        )
        assert f"{row['test_error']:9.2f}%" in printed
    assert saved["results"]["config"]["search"]["population_size"] == 4
    assert saved["results"]["config"]["search"]["num_parents"] == 2
    assert saved["results"]["config"]["pruning"]["scope"] == "layer"  # the default
    assert len(saved["results"]["search"]["history"]) == 8
    assert saved["summary"]["ablation_drop"] == pytest.approx(
        stages[4]["test_accuracy"] - stages[5]["test_accuracy"]
    )
    assert sorted(os.listdir(tmp_path / "plots")) == ["search_digits.png", "stages_digits.png"]
    assert sorted(os.listdir(tmp_path / "logs")) == ["base", "final", "nhn", "retrained"]
    events = read_events(str(tmp_path / "logs" / "nhn"))
    assert [value for _, value in events["nhn/test_error"]] == pytest.approx(
        [row["test_error"] for row in stages], rel=1e-6)
    assert [step for step, _ in events["nhn/physical_parameters"]] == list(range(6))
    fitness = [value for _, value in events["search/fitness"]]
    assert fitness == pytest.approx([t["fitness"] for t in saved["results"]["search"]["history"]])
    assert [value for _, value in events["search/best_fitness"]] == pytest.approx(
        np.maximum.accumulate(fitness).tolist())
    (image,) = events["search/fitness_plot"]
    assert image[1][2] == 3  # an RGB image
    assert events["add_ons/locations"][0][1].startswith("| segment |") or (
        events["add_ons/locations"][0][1] == "no add-on neuron was kept")
    assert events["nhn/stages"][0][1].count("\n") == 7  # header, rule, 6 stages
    assert any(tag.startswith("pruning/") and tag != "pruning/report" for tag in events)
    assert os.path.exists(tmp_path / "export" / "saved_model.pb")


def test_summarise_formats_the_stage_table():
    rows = [
        {"stage": name, "test_error": 10.0 - i, "parameters": 1000 - 100 * i,
         "physical_parameters": 2000, "score": 1.5, "latency_ms": 0.5, "num_add_ons": i % 2,
         "seconds": 1.0}
        for i, name in enumerate(STAGES)
    ]
    outcome = {
        "stages": rows, "pruning": {"pruned_kernel_fraction": 0.85}, "ablation_drop": 0.01,
        "add_ons": [{"segment": 0, "source": "input", "target": 1, "kernel_size": 3,
                     "num_connections": 2, "num_possible_connections": 16}],
        "genome": [-1, 0],
    }
    summary, table = nhn.summarise(outcome, nhn.NhnConfig(verbose=0))
    assert summary["pruned_parameter_fraction"] == pytest.approx(1 - 800 / 1000)
    assert "input->0.1 k3 (2/16)" in table and "ablation -1.00 pt" in table
    assert "     final      6.00%        600" in table


def test_config_from_args_defaults():
    parser = argparse.ArgumentParser()
    nhn.add_arguments(parser)
    args = parser.parse_args([])
    args.data_dir = args.logdir = args.export = args.plots = None
    args.quiet = True
    config = nhn.config_from_args(args)
    assert (config.training.epochs, config.search.num_cycles,
            config.search.population_size) == (8, 5, 10)
    assert (config.search.num_parents, config.search.num_children,
            config.search.num_fresh) == (3, 3, 2)
    args = parser.parse_args(["--dataset", "cifar10"])
    args.data_dir = args.logdir = args.export = args.plots = None
    args.quiet = True
    config = nhn.config_from_args(args)
    assert (config.search.population_size, config.search.num_parents,
            config.search.num_children, config.search.num_fresh) == (20, 4, 5, 5)
    assert (config.search.train_batches, config.search.batch_size,
            config.search.eval_size) == (25, 100, 500)
    assert nhn.evolution_settings(7) == (3, 2, 2)
    # Issue 16: the per-layer scope is the default (a model-wide threshold can empty a layer).
    assert (config.pruning.granularity, config.pruning.scope, config.pruning.channel_multiple,
            config.search.shared_weights) == ("kernel", "layer", 1, "sequential")
    args = parser.parse_args(["--prune-granularity", "channel", "--prune-scope", "model",
                              "--prune-channel-multiple", "8", "--shared-weights", "per_cycle"])
    args.data_dir = args.logdir = args.export = args.plots = None
    args.quiet = True
    builder = nhn.config_from_args(args).builder()
    assert (builder.pruning.granularity, builder.pruning.scope,
            builder.pruning.channel_multiple, builder.search.shared_weights) == (
        "channel", "model", 8, "per_cycle"
    )


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"dataset": "svhn"}, "dataset"),
        ({"training": {"epochs": 0}}, "epochs"),
        ({"num_train": 5}, "num_train"),
        ({"pruning": {"fraction": 1.0}}, "fraction"),
        ({"search": {"population_size": 4}}, "num_children"),  # 3 children + 2 fresh >= 4
        ({"segments": [[]]}, "segments"),
        ({"search": {"direction_density": 2.0}}, "direction_density"),
        ({"verbose": 3}, "verbose"),
        ({"training": {"epoch": 3}}, "training"),
        ({"pruning": "layer"}, "pruning"),
    ],
)
def test_invalid_config(kwargs, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*Received"):
        nhn.NhnConfig(**kwargs)


def test_config_holds_the_builder_configs():
    config = nhn.NhnConfig(training={"epochs": 2}, search={"num_cycles": 1}, verbose=0)
    assert (config.training.epochs, config.training.batch_size) == (2, 32)
    assert (config.search.num_cycles, config.search.train_batches) == (1, 4)
    builder = config.builder()
    assert builder.training is config.training and builder.search is config.search
    assert builder.get_config()["pruning"] == {
        "fraction": 0.85, "granularity": "kernel", "scope": "layer", "channel_multiple": 1,
        "rescale": False,
    }
    copy = config.replace(pruning={"fraction": 0.5}, training={"final_epochs": 0})
    assert (copy.pruning.fraction, copy.training.epochs, copy.training.final_epochs) == (
        0.5, 2, 0
    )
    assert config.pruning.fraction == 0.85


def test_run_refuses_other_configs():
    with pytest.raises(ValueError, match="NhnConfig. Received: config of type dict"):
        nhn.run({})
