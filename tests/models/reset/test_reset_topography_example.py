"""Smoke test of examples/reset_topography/train.py (tiny settings, real number set)."""

import importlib.util
import json
import pathlib

import pytest

EXAMPLE = (
    pathlib.Path(__file__).resolve().parents[3] / "examples" / "reset_topography" / "train.py"
)


def _load_example():
    spec = importlib.util.spec_from_file_location("reset_train", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numbers_part(tmp_path, data_dir):
    example = _load_example()
    outcome = example.main(
        "numbers", str(tmp_path), data_dir=data_dir, grid_sizes=(2,), num_train=256,
        num_eval=200, epochs=1, num_shuffles=5, verbose=0,
    )
    saved = json.loads((tmp_path / "numbers.json").read_text())
    assert saved["config"]["grid_width"] == 32 and saved["config"]["grid_dropout"] == 0.5
    result = outcome["results"][0]
    assert result["grid_size"] == 2 and len(result["topography_index"]) == 1
    assert (tmp_path / "numbers" / "indices_number_topography.png").exists()


def test_unknown_part(tmp_path):
    with pytest.raises(ValueError, match="Received: part='svhn'"):
        _load_example().main("svhn", str(tmp_path))
