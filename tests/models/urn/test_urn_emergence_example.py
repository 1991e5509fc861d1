"""Smoke test of examples/urn_emergence/train.py (tiny settings, real CIFAR-10 file)."""

import dataclasses
import importlib.util
import json
import pathlib

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[3] / "examples" / "urn_emergence" / "train.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("urn_emergence_train", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shells_part(tmp_path):
    example = _load_example()
    from tfemergent.models.urn import experiment as urn_spheres

    config = urn_spheres.URNSpheresConfig(num_neurons=30, epochs=2, seeds=(0,), verbose=0)
    outcome = example.main("shells-residual", str(tmp_path), shells_config=config)
    saved = json.loads((tmp_path / "shells-residual.json").read_text())
    assert saved["config"]["residual"] == "output"
    assert outcome["results"][0]["verify_max_change"] < 1e-9
    assert (tmp_path / "shells-residual-plots" / "weights-seed0.png").exists()


def test_cifar_part(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("TFEMERGENT_DATA_DIR", data_dir)
    example = _load_example()
    config = dataclasses.replace(
        example.CifarConfig(), width=4, height=4, depth=2, epochs=1, num_train=512
    )
    outcome = example.main("cifar", str(tmp_path), cifar_config=config)
    runs = {r["run"]: r for r in outcome["results"]}
    assert set(runs) == {"with_synaptic_length", "without_synaptic_length"}
    for run in runs.values():
        assert 0.0 <= run["test_accuracy"] <= 1.0
        shares = run["forward_share"] + run["backward_share"] + run["lateral_share"]
        assert shares == pytest.approx(1.0, abs=1e-6) or shares == 0.0
        assert run["mean_synaptic_length"] >= 0.0
    assert (tmp_path / "connectomics_with_synaptic_length.png").exists()


def test_unknown_part(tmp_path):
    with pytest.raises(ValueError, match="Received: part='dogs'"):
        _load_example().main("dogs", str(tmp_path))
