"""Smoke test of examples/neuron_hierarchy/train.py (tiny CIFAR-10 run, real data)."""

import argparse
import importlib.util
import json
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples" / "neuron_hierarchy"
EXAMPLE = EXAMPLES / "train.py"


def _load_example(path=EXAMPLE):
    spec = importlib.util.spec_from_file_location(f"neuron_hierarchy_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_cifar_run(tmp_path, data_dir):
    example = _load_example()
    assert example.CONFIG.dataset == "cifar10" and example.CONFIG.search.population_size == 20
    outcome = example.main(
        {"data_dir": data_dir, "num_train": 512, "num_test": 200, "training": {"epochs": 1},
         "search": {"num_cycles": 1, "population_size": 4, "num_parents": 2,
                    "num_children": 1, "num_fresh": 1, "train_batches": 2, "eval_size": 50},
         "verbose": 0},
        str(tmp_path),
    )
    stages = outcome["stages"]
    assert [row["stage"] for row in stages][-1] == "ablation" and len(stages) == 6
    assert stages[0]["parameters"] > stages[2]["parameters"]  # pruned
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["segments"] is None  # SegmentCNN's default: 3 segments of 4
    assert len(saved["search"]["history"]) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "final.keras", "results.json", "search", "search_cifar10.png", "stages_cifar10.png",
        "table.txt",
    ]
    assert outcome["model"].input_shape == (None, 32, 32, 3)
    assert (tmp_path / "table.txt").read_text().startswith("Neuron hierarchical network on cifar10")


def test_command_line_options_become_config_overrides():
    example = _load_example()
    args = argparse.Namespace(**{name: None for name, _, _ in example.OPTIONS}, population=7)
    args.epochs, args.prune_fraction, args.cycles, args.seed = 2, 0.5, 3, 4
    overrides = example.overrides_from_args(args)
    assert overrides == {
        "seed": 4, "training": {"epochs": 2}, "pruning": {"fraction": 0.5},
        "search": {"num_cycles": 3, "population_size": 7, "num_parents": 3,
                   "num_children": 2, "num_fresh": 2},
    }
    config = example.CONFIG.replace(**overrides)
    assert (config.training.epochs, config.training.batch_size) == (2, 100)
    assert (config.pruning.fraction, config.pruning.scope, config.pruning.rescale) == (
        0.5, "model", True
    )


def test_invalid_config(tmp_path):
    with pytest.raises(ValueError, match="Received: config of type str"):
        _load_example().main("cifar", str(tmp_path))


def test_activation_decay_script(data_dir, capsys):
    decay = _load_example(EXAMPLES / "activation_decay.py")
    rows = decay.main(num_train=200, num_test=50, epochs=1, data_dir=data_dir)
    assert [(scope, rescale) for scope, rescale, *_ in rows] == [
        ("model", False), ("model", True), ("layer", False), ("layer", True)
    ]
    for _, rescale, accuracy, losses, factors in rows:
        assert 0.0 <= accuracy <= 1.0 and len(losses) == 1
        assert (factors is None) == (not rescale)
        if rescale:
            assert len(factors) == 12 and all(value > 0 for value in factors.values())
    printed = capsys.readouterr().out
    assert "ReLU output std after pruning / before, scope=layer" in printed
    assert printed.count("relu_2_3") == 2
