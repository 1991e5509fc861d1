"""Smoke test of examples/self_organising_hierarchy/train.py (tiny settings, real MNIST)."""

import importlib.util
import json
import pathlib

import pytest

EXAMPLE = (
    pathlib.Path(__file__).resolve().parents[3]
    / "examples" / "self_organising_hierarchy" / "train.py"
)


def _load_example():
    spec = importlib.util.spec_from_file_location("hierarchy_train", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table1_part_on_mnist(tmp_path, data_dir):
    example = _load_example()
    outcome = example.main(
        "table1", str(tmp_path), runs=1, data_dir=data_dir, num_train=256, epochs=1,
        topologies=("pyramidal",), probe_max_iter=50, verbose=0,
    )
    saved = json.loads((tmp_path / "table1.json").read_text())
    assert saved["config"]["num_hidden"] == 100 and saved["config"]["window_size"] == 10
    result = outcome["results"][0]
    assert result["receptive_fields"] == [[[0, 0], [0, 10]], [[10, 0], [10, 10]], [[0, 20], [10, 20]]]
    assert 0.3 < result["accuracy"] <= 1.0


def test_unknown_part(tmp_path):
    with pytest.raises(ValueError, match="Received: part='table3'"):
        _load_example().main("table3", str(tmp_path))
