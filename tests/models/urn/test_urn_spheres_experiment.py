import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tensorboard_events import read_events
from tfemergent import cli
from tfemergent.models.urn import experiment as urn_spheres


def test_cli_run_reports_structure(tmp_path, capsys):
    argv = [
        "run", "urn-spheres", "--num-neurons", "40", "--epochs", "3",
        "--results", str(tmp_path / "results.json"), "--export", str(tmp_path / "export"),
        "--plots", str(tmp_path / "plots"), "--logdir", str(tmp_path / "logs"),
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "emergent hidden layers" in out and "Paper:" in out
    assert 'Model: "emergent_network_seed0"' in out and "iteration_1" in out  # the summary
    (result,) = json.loads((tmp_path / "results.json").read_text())["results"]
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert 12 <= result["num_active"] <= 40  # inputs (10) and outputs (2) always count
    assert result["verify_max_change"] < 1e-9  # the extraction keeps every used synapse
    assert sum(result["layer_sizes"]) <= 40 - 12
    assert (tmp_path / "plots" / "weights-seed0.png").exists()
    reloaded = tf.saved_model.load(str(tmp_path / "export" / "seed0"))
    assert reloaded.serve(np.zeros((2, 10), "float32")).shape == (2, 2)
    # The emergent network on its own, loaded by a Python that never imports tfemergent.
    # Measured on held-out samples: exact unless a neuron silent on the training
    # samples at some iteration fires there on a test sample (3 epochs: barely sparse).
    assert 0.0 <= result["extracted_max_difference"] < 0.1
    assert result["extracted_layer_sizes"][-1] == 2  # the outputs at iteration I
    script = (
        "import sys, keras, numpy as np\n"
        f"net = keras.saving.load_model({str(tmp_path / 'export' / 'emergent_network_seed0.keras')!r})\n"
        "print(net(np.zeros((3, 10), 'float32')).shape)\n"
        "assert not any(name.startswith('tfemergent') for name in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip().endswith("(3, 2)")
    served = tf.saved_model.load(str(tmp_path / "export" / "emergent_network_seed0"))
    assert served.serve(np.zeros((2, 10), "float32")).shape == (2, 2)
    # --logdir: Keras' scalars and the emergent structure.
    structure = read_events(str(tmp_path / "logs" / "seed0" / "structure"))
    assert {"urn/active_neurons", "urn/forward_share", "urn/sorted_weights"} <= set(structure)
    assert [step for step, _ in structure["urn/active_neurons"]] == [0, 1, 2]
    assert 12 <= structure["urn/active_neurons"][-1][1] <= 40


def test_urn_learns_the_shells():
    config = urn_spheres.URNSpheresConfig(
        num_neurons=200, epochs=15, num_train=2000, num_test=500, verbose=0
    )
    (result,) = urn_spheres.run(config)["results"]
    assert result["test_accuracy"] > 0.95


@pytest.mark.parametrize(
    "kwargs, name",
    [({"num_neurons": 5}, "num_neurons"), ({"residual": "both"}, "residual"),
     ({"c_w": -1.0}, "c_w"), ({"num_iterations": 0}, "num_iterations")],
)
def test_invalid_config(kwargs, name):
    with pytest.raises(ValueError, match="Received:") as info:
        urn_spheres.URNSpheresConfig(**kwargs)
    assert name in str(info.value)


_MEASURES = ("test_accuracy", "num_active", "layer_sizes", "zero_weight_fraction")


def test_same_seed_same_run_without_a_global_seed():
    """The seed reaches the initializers and the batches: no global seed is needed, and
    none is set (the global NumPy state is untouched)."""
    config = urn_spheres.URNSpheresConfig(
        num_neurons=40, epochs=2, num_train=256, num_test=64, c_w=1e-3, seeds=(0, 0, 1),
        verbose=0,
    )
    numpy_state = np.random.get_state()
    first, again, other = urn_spheres.run(config)["results"]
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state))
    assert [first[m] for m in _MEASURES] == [again[m] for m in _MEASURES]
    assert [first[m] for m in _MEASURES] != [other[m] for m in _MEASURES]
