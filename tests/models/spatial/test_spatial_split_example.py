"""Smoke test of examples/spatial_split/train.py on the real MNIST + Fashion-MNIST files."""

import dataclasses
import importlib.util
import json
import pathlib

EXAMPLE = pathlib.Path(__file__).resolve().parents[3] / "examples" / "spatial_split" / "train.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("spatial_split_train", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_main_on_mnist_and_fashion(tmp_path, data_dir):
    example = _load_example()
    assert example.CONFIG.dataset == "mnist+fashion" and example.CONFIG.seeds == (0, 1, 2)
    config = dataclasses.replace(
        example.CONFIG, seeds=(0,), epochs=3, num_train=8192, data_dir=data_dir,
        modes=("concatenated",), plots=str(tmp_path / "plots"), verbose=0,
    )
    outcome = example.main(config, output_dir=str(tmp_path))
    assert {r["network"] for r in outcome["results"]} == {"regular", "spatial"}
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["config"]["dataset"] == "mnist+fashion"
    assert "| concatenated | spatial |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "plots" / "concatenated-spatial-seed0.png").exists()
    # 784-d mixed input; two heads well above chance after one short epoch
    # 96 steps of a sigmoid network: well above chance (0.1), nothing more
    assert all(r["full"] > 0.3 for r in outcome["results"]), outcome["table"]
