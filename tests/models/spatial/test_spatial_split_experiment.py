import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfemergent import cli
from tfemergent.models.spatial import experiment as spatial_split


def test_cli_list(capsys):
    assert cli.main(["list"]) == 0
    assert "spatial-split" in capsys.readouterr().out


def test_cli_run_writes_logs_export_plots_and_results(tmp_path, capsys):
    argv = [
        "run", "spatial-split", "--epochs", "2", "--modes", "concatenated",
        "--networks", "spatial", "--num-train", "512",
        "--logdir", str(tmp_path / "logs"), "--export", str(tmp_path / "export"),
        "--plots", str(tmp_path / "plots"), "--results", str(tmp_path / "results.json"),
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "| concatenated | spatial |" in out
    results = json.loads((tmp_path / "results.json").read_text())
    (run,) = results["results"]
    assert run["mode"] == "concatenated" and run["network"] == "spatial"
    assert 0.0 <= run["split"] <= 1.0 and run["drop"] == pytest.approx(run["full"] - run["split"])
    assert glob.glob(str(tmp_path / "logs" / "concatenated-spatial-seed0" / "events.*"))
    assert os.path.exists(tmp_path / "plots" / "concatenated-spatial-seed0.png")
    reloaded = tf.saved_model.load(str(tmp_path / "export" / "concatenated-spatial-seed0"))
    assert reloaded.serve(np.zeros((3, 128), "float32")).shape == (3, 20)


def test_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["run", "spatial-split", "--modes", "diagonal"])
    assert info.value.code == 2
    assert "Received: --modes='diagonal'" in capsys.readouterr().err  # names the flag


def test_console_script_is_installed():
    result = subprocess.run(
        [sys.executable, "-c", "from importlib.metadata import entry_points; "
         "print([e.value for e in entry_points(group='console_scripts', name='tfemergent')])"],
        capture_output=True, text=True, check=True,
    )
    assert "tfemergent.cli:main" in result.stdout


@pytest.mark.slow
def test_spatial_network_splits_better_than_regular_on_embedded_digits():
    """Paper-level behaviour on the embedded data (concatenated digits + transposed digits):
    after training, the spatial network splits with a small drop and much less cross-task
    weight than the regular network."""
    config = spatial_split.SpatialSplitConfig(
        modes=("concatenated",), epochs=250, verbose=0
    )
    outcome = spatial_split.run(config)
    by_network = {r["network"]: r for r in outcome["results"]}
    spatial, regular = by_network["spatial"], by_network["regular"]
    assert spatial["full"] > 0.85 and regular["full"] > 0.85
    assert spatial["drop"] < 0.03
    assert spatial["drop"] < regular["drop"]
    assert max(spatial["cross_task_fraction"]) < 0.6 * min(regular["cross_task_fraction"])


def test_same_seed_same_run_without_a_global_seed():
    from tfemergent.models.spatial import experiment as spatial_split

    config = spatial_split.SpatialSplitConfig(
        modes=("concatenated",), networks=("spatial",), seeds=(0,), epochs=2, num_train=256,
        hidden_units=(8, 8, 8, 8), verbose=0,
    )
    data = (spatial_split._load(config, "concatenated", "train", 0),
            spatial_split._load(config, "concatenated", "test", 0))
    runs = [spatial_split.run_one(config, "concatenated", "spatial", seed, data)
            for seed in (0, 0, 1)]
    measures = ("full_per_task", "split_per_task", "cross_task_fraction")
    assert [runs[0][m] for m in measures] == [runs[1][m] for m in measures]
    assert [runs[0][m] for m in measures] != [runs[2][m] for m in measures]
