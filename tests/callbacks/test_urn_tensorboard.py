import glob
import warnings
import json

import keras
import numpy as np
import pytest
from matplotlib.colors import to_rgb
from tensorboard_events import read_events

from tfemergent import analysis, plotting
from tfemergent.callbacks import ProximalL1Step, URNTensorBoard
from tfemergent.callbacks.urn_tensorboard import _mean_activity
from tfemergent.geometry import UpliftedLattice
from tfemergent.layers import RecursiveURNLayer
from tfemergent.regularizers import SynapticLength

SCALARS = ("active_neurons", "weight_sparsity", "weight_sparsity_1e-3", "forward_share")




def _data(input_dim, num_samples=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(num_samples, input_dim)).astype("float32")
    return x, rng.normal(size=(num_samples, 2)).astype("float32")


def _fit(layer, x, y, callbacks, epochs=3):
    model = keras.Sequential([keras.Input(x.shape[1:]), layer])
    model.compile(keras.optimizers.Adam(0.01), "mse")
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=callbacks)
    return model


def _last(events, tag):
    return events[tag][-1][1]


def test_logs_structure_of_a_plain_urn(tmp_path):
    x, y = _data(3)
    layer = RecursiveURNLayer(20, 3, input_dim=3, output_dim=2, seed=0, name="urn")
    callback = URNTensorBoard(tmp_path, probe_data=x[:24], update_freq=2)
    assert callback._writer is None  # opened lazily
    # the proximal step zeroes small weights, so the sparsity is not trivially 0
    _fit(layer, x, y, [ProximalL1Step(l1=1.0), callback])
    events = read_events(str(tmp_path))

    # epochs 0 (first), 1 ((1 + 1) % 2 == 0) and 2 (last, at train end)
    for measure in SCALARS + ("sorted_weights", "activity"):
        assert [step for step, _ in events[f"urn/{measure}"]] == [0, 1, 2], measure
    assert not any(tag.endswith(("synaptic_length", "connectomics")) for tag in events)

    structure = analysis.urn_structure_of(layer, x[:24])
    kernel = layer.kernel.numpy()
    assert _last(events, "urn/active_neurons") == structure.num_active
    assert _last(events, "urn/forward_share") == pytest.approx(structure.forward, rel=1e-6)
    assert _last(events, "urn/weight_sparsity") == pytest.approx(np.mean(kernel == 0), rel=1e-6)
    assert _last(events, "urn/weight_sparsity") > 0
    assert _last(events, "urn/weight_sparsity_1e-3") == pytest.approx(
        np.mean(np.abs(kernel) < 1e-3), rel=1e-6
    )
    assert events["urn/sorted_weights"][-1][1] == (320, 320, 3)  # 4 x 4 in at 80 dpi
    assert events["urn/activity"][-1][1] == (200, 480, 3)  # 6 x 2.5 in

    # the activity image shows mean |N^(l)| as the layer itself computes it
    states = layer.compute_states(x[:24]).numpy()
    np.testing.assert_allclose(
        _mean_activity(layer, x[:24].astype("float64")), np.abs(states).mean(axis=1),
        rtol=1e-4, atol=1e-5,
    )


def test_logs_synaptic_length_and_connectomics_on_a_lattice(tmp_path):
    lattice = UpliftedLattice(width=3, height=2, depth=3, beta=2.0, num_outputs=2)
    x, y = _data(6, seed=1)
    layer = RecursiveURNLayer(
        lattice.num_neurons, 3, input_dim=6, output_dim=2, lattice=lattice,
        synaptic_length=SynapticLength(c_syn=1e-3), seed=1, name="cortex",
    )
    callback = URNTensorBoard(tmp_path, probe_data=x, layer_name="cortex", tolerance=1e-6)
    _fit(layer, x, y, [callback], epochs=2)
    events = read_events(str(tmp_path))

    assert [step for step, _ in events["cortex/synaptic_length"]] == [0, 1]
    assert _last(events, "cortex/synaptic_length") == pytest.approx(
        float(layer.compute_synaptic_length()), rel=1e-6
    )
    structure = analysis.urn_structure_of(
        layer, x, tolerance=1e-6, coordinates=lattice.coordinates("float64")
    )
    assert structure.mean_synaptic_length > 0
    assert _last(events, "cortex/mean_synaptic_length") == pytest.approx(
        structure.mean_synaptic_length, rel=1e-6
    )
    assert _last(events, "cortex/active_neurons") == structure.num_active
    assert [step for step, _ in events["cortex/connectomics"]] == [0, 1]
    assert events["cortex/connectomics"][-1][1] == (320, 480, 3)  # 6 x 4 in


def test_image_probe_data_on_a_lattice(tmp_path):
    lattice = UpliftedLattice(width=3, height=2, depth=2, num_outputs=2)
    images = np.random.default_rng(2).uniform(size=(8, 4, 6)).astype("float32")
    layer = RecursiveURNLayer(12, 2, input_dim=6, output_dim=2, lattice=lattice, seed=0,
                              name="urn")
    _fit(layer, images, np.zeros((8, 2), "float32"),
         [URNTensorBoard(tmp_path, probe_data=images)], epochs=1)
    events = read_events(str(tmp_path))
    structure = analysis.urn_structure_of(layer, lattice.embed(images).numpy())
    assert _last(events, "urn/active_neurons") == structure.num_active


def test_plot_connectomics_colours_by_direction():
    # neurons at (x, y, z) = (0, 0, 0), (1, 0, 1), (2, 0, 1)
    coordinates = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [2.0, 0.0, 1.0]])
    kernel = np.zeros((3, 3))
    kernel[0, 1] = 1.0  # 0 -> 1, up in z: forward
    kernel[1, 2] = -0.5  # 1 -> 2, same z: lateral
    kernel[2, 0] = 0.25  # 2 -> 0, down in z: backward
    kernel[1, 1] = 3.0  # self-synapse: not drawn (and not the maximum of the alphas)
    figure = plotting.plot_connectomics(coordinates, kernel)
    lines = {c.get_label(): c for c in figure.axes[0].collections if c.get_label() != "neurons"}
    assert sorted(lines) == ["backward", "forward", "lateral"]
    expected = {"forward": ("red", 1.0, [[0, 0], [1, 1]]),
                "lateral": ("black", 0.5, [[1, 1], [2, 1]]),
                "backward": ("green", 0.25, [[2, 1], [0, 0]])}
    for kind, (colour, alpha, segment) in expected.items():
        np.testing.assert_allclose(lines[kind].get_colors(), [[*to_rgb(colour), alpha]])
        np.testing.assert_allclose(lines[kind].get_segments()[0], segment)  # (x, z)

    figure = plotting.plot_connectomics(coordinates, kernel, np.array([True, True, False]))
    labels = [c.get_label() for c in figure.axes[0].collections if c.get_label() != "neurons"]
    assert labels == ["forward"]  # neuron 2 is inactive
    figure = plotting.plot_connectomics(coordinates, kernel, max_synapses=2)
    labels = {c.get_label() for c in figure.axes[0].collections}
    assert labels == {"forward", "lateral", "neurons"}  # the weakest synapse is left out
    with pytest.raises(ValueError, match="Received: kernel.shape"):
        plotting.plot_connectomics(coordinates, kernel[:2])
    with pytest.raises(ValueError, match="Received: axes"):
        plotting.plot_connectomics(coordinates, kernel, axes=(0, 3))
    plotting._pyplot().close("all")


def test_config(tmp_path):
    x = np.ones((4, 3), "float32")
    callback = URNTensorBoard(str(tmp_path), x, update_freq=3, layer_name="urn",
                              tolerance=0.1, max_synapses=50)
    config = json.loads(json.dumps(callback.get_config()))
    assert config == {"log_dir": str(tmp_path), "update_freq": 3, "layer_name": "urn",
                      "tolerance": 0.1, "max_synapses": 50}
    assert URNTensorBoard.from_config(config, probe_data=x).get_config() == config
    restored = URNTensorBoard.from_config({**config, "probe_data": x})
    np.testing.assert_array_equal(restored.probe_data, x)
    with pytest.raises(ValueError, match="Received: probe_data=None"):
        URNTensorBoard.from_config(config)
    assert keras.saving.get_registered_name(URNTensorBoard) == "tfemergent>URNTensorBoard"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"update_freq": 0}, "Received: update_freq=0"),
        ({"probe_data": np.ones(3)}, "Received: probe_data="),
        ({"probe_data": None}, "Received: probe_data=None"),
        ({"probe_data": np.ones((0, 3))}, "Received: probe_data="),
        ({"tolerance": -1.0}, "Received: tolerance=-1.0"),
        ({"layer_name": ""}, "Received: layer_name=''"),
        ({"max_synapses": 0}, "Received: max_synapses=0"),
        ({"log_dir": ""}, "Received: log_dir=''"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, match):
    arguments = {"log_dir": str(tmp_path), "probe_data": np.ones((2, 3)), **kwargs}
    with pytest.raises(ValueError, match=match):
        URNTensorBoard(**arguments)


def test_checked_when_training_begins(tmp_path):
    x, y = _data(3, num_samples=4)
    model = keras.Sequential(
        [keras.Input((3,)), RecursiveURNLayer(8, 2, input_dim=3, output_dim=2, name="urn")]
    )
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="Received: layer_name='nope'"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[URNTensorBoard(tmp_path, x, layer_name="nope")])
    with pytest.raises(ValueError, match=r"Received: probe_data.shape=\(4, 5\)"):
        model.fit(x, y, epochs=1, verbose=0,
                  callbacks=[URNTensorBoard(tmp_path, np.ones((4, 5)))])
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    dense.compile("sgd", "mse")
    with pytest.raises(ValueError, match="has none"):
        dense.fit(x, y, epochs=1, verbose=0, callbacks=[URNTensorBoard(tmp_path, x)])
    assert not glob.glob(f"{tmp_path}/**/events.out.tfevents.*", recursive=True)


def test_non_finite_structure_numbers_are_logged_and_warned_once(tmp_path):
    x, _ = _data(3)
    layer = RecursiveURNLayer(8, 3, input_dim=3, output_dim=2, activation=None, name="urn",
                              kernel_initializer=keras.initializers.Constant(1e20))
    model = keras.Sequential([keras.Input((3,)), layer])
    callback = URNTensorBoard(tmp_path, probe_data=x[:8])
    callback.set_model(model)
    with pytest.warns(UserWarning, match=r"layer 'urn' has \d+ non-finite .*check_numerics"):
        callback.log(0)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*non-finite")  # once per layer, not per epoch
        callback.log(1)
    events = read_events(str(tmp_path))
    assert [step for step, _ in events["urn/non_finite_values"]] == [0, 1]
    assert _last(events, "urn/non_finite_values") > 0


def test_finite_structure_numbers_log_zero_non_finite_values(tmp_path):
    x, _ = _data(3)
    layer = RecursiveURNLayer(8, 3, input_dim=3, output_dim=2, seed=0, name="urn")
    model = keras.Sequential([keras.Input((3,)), layer])
    callback = URNTensorBoard(tmp_path, probe_data=x[:8])
    callback.set_model(model)
    callback.log(0)
    assert _last(read_events(str(tmp_path)), "urn/non_finite_values") == 0
