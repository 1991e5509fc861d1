import json
import os

import numpy as np
import pytest

from tfemergent import cli
from tfemergent.analysis import clustering_index, dprime_maps, preference_map
from tfemergent.experiments import EXPERIMENTS
from tfemergent.models.reset import experiment as reset

SMALL = {"dataset": "digits", "grid_sizes": (1, 2), "num_train": 800, "epochs": 4, "batch_size": 32,
         "num_eval": 200, "verbose": 0}


def test_registered():
    assert EXPERIMENTS["reset"] is reset


def test_digits_data_are_standardised_and_shuffled():
    config = reset.ResetConfig(dataset="digits", num_train=300, num_eval=100)
    x_train, t_train, x_eval, t_eval, y_eval, codes = reset.load_data(config)
    assert x_train.shape == (300, 8, 8, 1) and x_eval.shape == (100, 8, 8, 1)
    assert abs(x_train.mean()) < 1e-4 and abs(x_train.std() - 1.0) < 1e-4
    assert codes is None and np.array_equal(t_eval, y_eval)
    assert len(np.unique(t_train)) == 10  # shuffled before the subset


def test_number_task_data(data_dir):
    config = reset.ResetConfig(dataset="number_topography", data_dir=data_dir, num_train=200,
                               grid_width=32)
    x_train, t_train, x_eval, t_eval, y_eval, codes = reset.load_data(config)
    assert x_train.shape == (200, 32, 32, 1) and t_train.shape == (200, 100)
    assert codes.shape == (10, 100)
    np.testing.assert_allclose(t_eval, codes[y_eval])  # each target is its digit's code
    assert len(np.unique(y_eval)) == 10 and x_eval.shape[0] == 1000


def test_number_task_accuracy_decodes_the_nearest_code():
    class Fixed:
        def __init__(self, outputs):
            self.outputs = outputs

        def predict(self, images, batch_size, verbose):
            return self.outputs

    codes = np.eye(3, 4, dtype="float32")
    labels = np.array([0, 1, 2, 2])
    outputs = np.array([[0.9, 0.1, 0, 0], [0.2, 0.6, 0.1, 0], [0, 0.4, 0.3, 0],
                        [0, 0, 0.7, 0.2]], "float32")
    config = reset.ResetConfig(dataset="number_topography")
    data = (None, None, np.zeros((4, 2, 2, 1)), None, labels, codes)
    assert reset.accuracy(config, Fixed(outputs), data) == 0.75  # image 2 decodes to 1


def test_short_run_on_digits():
    config = reset.ResetConfig(**SMALL, reconstruction=True)
    outcome = reset.run(config)
    results = outcome["results"]
    assert [(r["grid_size"], r["reconstruction"]) for r in results] == [
        (1, False), (1, True), (2, False), (2, True)
    ]
    for result in results:
        assert 0.25 < result["accuracy"] <= 1.0  # 10 classes: chance is 0.1
        assert result["index_epochs"] == [1, 2, 3, 4]
        assert len(result["clustering_index"]) == 4
        assert np.asarray(result["preference_map"]).shape == (16, 16)
        assert 0.0 < result["evenness"] <= 1.0
    assert "reconstruction_loss" in results[1] and "reconstruction_loss" not in results[0]
    rows = outcome["summary"]["rows"]
    assert [(row["grid_size"], row["reconstruction"]) for row in rows] == [
        (1, False), (1, True), (2, False), (2, True)
    ]
    assert rows[2]["final_clustering_index"] == results[2]["final_clustering_index"]
    assert "Reset(2, 16) + rec." in outcome["table"]


def test_final_index_is_the_analysis_of_the_final_grid(monkeypatch):
    captured = {}
    original = reset.grid_usage

    def spy(grids):
        captured["grids"] = grids
        return original(grids)

    monkeypatch.setattr(reset, "grid_usage", spy)
    config = reset.ResetConfig(**{**SMALL, "grid_sizes": (2,)})
    data = reset.load_data(config)
    result = reset.run_network(config, data, 2, False, run=0)
    pmap = preference_map(dprime_maps(captured["grids"], data[4], num_classes=10))
    np.testing.assert_array_equal(result["preference_map"], pmap)
    assert result["final_clustering_index"] == clustering_index(pmap, 20, 4, 0)


def test_cli(tmp_path, capsys):
    results = tmp_path / "out.json"
    status = cli.main(
        ["run", "reset", "--grid-sizes", "2", "--epochs", "1", "--num-train", "200",
         "--results", str(results), "--logdir", str(tmp_path / "logs"),
         "--plots", str(tmp_path / "plots")]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "Reset(2, 16) run 0: accuracy" in printed and "paper:" in printed
    saved = json.loads(results.read_text())
    assert saved["results"][0]["grid_size"] == 2
    events = os.listdir(tmp_path / "logs" / "reset2-run0")
    assert any(name.startswith("events.out.tfevents") for name in events)
    assert sorted(os.listdir(tmp_path / "plots")) == ["indices_digits.png", "preferences_digits.png"]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"dataset": "svhn"}, "dataset"),
        ({"grid_sizes": ()}, "grid_sizes"),
        ({"grid_sizes": 2}, "grid_sizes"),
        ({"grid_sizes": (3,), "grid_width": 16}, "grid_width"),
        ({"grid_dropout": 1.0}, "grid_dropout"),
        ({"reconstruction": "yes"}, "reconstruction"),
        ({"epochs": 0}, "epochs"),
        ({"num_eval": 5}, "num_eval"),
        ({"runs": 0}, "runs"),
        ({"seeds": ()}, "seeds"),
        ({"seeds": 1}, "seeds"),
        ({"seeds": (0, -1)}, "seeds"),
    ],
)
def test_invalid_config(kwargs, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*Received"):
        reset.ResetConfig(**kwargs)


def test_seeds_are_the_runs():
    assert reset.ResetConfig().seeds == tuple(range(reset.ResetConfig().runs))
    config = reset.ResetConfig(seeds=[4, 2], runs=7)
    assert (config.seeds, config.runs) == ((4, 2), 2)
    assert reset.ResetConfig(runs=3).seeds == (0, 1, 2)


def test_preference_maps_image_explains_itself(tmp_path, monkeypatch):
    """The figure has a class legend with "none" in the no-preference colour, and the
    title names the epochs and the seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_hex

    from tfemergent import plotting
    from tfemergent.models.reset import experiment as reset_experiment

    config = reset_experiment.ResetConfig(grid_sizes=(2,), epochs=3, seeds=(4,), verbose=0)
    pmap = np.full((config.grid_width, config.grid_width), -1)
    pmap[0, :3] = [0, 1, 2]
    results = [{"run": 4, "grid_size": 2, "reconstruction": False, "preference_map": pmap}]
    saved = {}
    monkeypatch.setattr(plt, "close", lambda figure: saved.setdefault("figure", figure))
    reset_experiment.plot_preference_maps(results, config, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 0
    figure = saved["figure"]
    (legend,) = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels == ["none"] + [str(c) for c in range(10)]
    patches = legend.get_patches()
    assert to_hex(patches[0].get_facecolor()) == to_hex(plotting.NO_PREFERENCE_COLOUR)
    assert "after 3 epochs" in figure._suptitle.get_text() and "seed 4" in figure._suptitle.get_text()
