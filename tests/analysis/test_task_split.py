import keras
import numpy as np
import pytest

from tfemergent.analysis import (
    evaluate_task_split,
    greedy_assignment,
    greedy_split,
    task_accuracies,
)
from tfemergent.layers import SpatialDense
from tfemergent.regularizers import DensityCost, TransportCost


def test_greedy_assignment_hand_computed():
    # layer A (3 neurons) -> layer B (2 neurons) -> output (4 neurons, tasks 0,0,1,1)
    out_kernel = np.array([[1.0, 1.0, 0.5, 0.0], [0.0, -0.1, 2.0, -2.0]])
    # B0: task0 mass 2.0 vs task1 0.5 -> 0 ; B1: 0.1 vs 4.0 -> 1
    b_kernel = np.array([[0.3, -0.2], [0.0, 5.0], [-1.0, 1.0]])
    # A0: to B0 0.3 (task0) vs 0.2 -> 0 ; A1: 0 vs 5 -> 1 ; A2: tie 1 vs 1 -> 0 (lower index)
    result = greedy_assignment([b_kernel, out_kernel], [0, 0, 1, 1], 2)
    assert [r.tolist() for r in result] == [[0, 1], [0, 0, 1, 1]]
    a_kernel = np.ones((2, 3))
    result = greedy_assignment([a_kernel, b_kernel, out_kernel], [0, 0, 1, 1], 2)
    assert result[0].tolist() == [0, 1, 0]


def test_greedy_assignment_errors():
    with pytest.raises(ValueError, match="Received: kernels"):
        greedy_assignment([np.ones((2, 3)), np.ones((2, 2))], [0, 1], 2)
    with pytest.raises(ValueError, match="Received: output_assignment"):
        greedy_assignment([np.ones((2, 2))], [0, 2], 2)
    with pytest.raises(ValueError, match="Received: output_assignment.shape"):
        greedy_assignment([np.ones((2, 2))], [0, 1, 1], 2)


def _block_network():
    """Shared first layer; a block-diagonal split part; task heads of 2 classes."""
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(4, activation="sigmoid", name="shared"),
            keras.layers.Dense(4, activation="sigmoid", name="split_1"),
            keras.layers.Dense(4, name="output"),
        ]
    )
    rng = np.random.default_rng(0)
    block = np.zeros((4, 4))
    block[:2, :2] = rng.normal(size=(2, 2))
    block[2:, 2:] = rng.normal(size=(2, 2))
    model.get_layer("shared").set_weights([rng.normal(size=(4, 4)), np.zeros(4)])
    model.get_layer("split_1").set_weights([rng.normal(size=(4, 4)), np.zeros(4)])
    model.get_layer("output").set_weights([block, np.zeros(4)])
    return model


def test_split_of_block_diagonal_network_is_exact():
    model = _block_network()
    split = greedy_split(model, 2, layers=["split_1", "output"])
    assert split.assignment("split_1").tolist() == [0, 0, 1, 1]
    assert split.cross_task_fraction == (0.0,)
    x = np.random.default_rng(1).normal(size=(50, 4)).astype("float32")
    full = model.predict(x, verbose=0)
    for task in range(2):
        sub = split.subnetwork(model, task)
        sub_out = sub.predict(x, verbose=0)
        # the block structure means the other task's neurons never reach this head
        np.testing.assert_allclose(sub_out[:, 2 * task: 2 * task + 2],
                                   full[:, 2 * task: 2 * task + 2], atol=1e-6)
    labels = np.stack([full[:, :2].argmax(1), full[:, 2:].argmax(1)], axis=1)
    scores = evaluate_task_split(model, split, x, labels)
    assert scores["full"].tolist() == [1.0, 1.0]
    assert scores["split"].tolist() == [1.0, 1.0]
    assert scores["drop"] == 0.0


def test_subnetwork_zeroes_outgoing_weights_and_leaves_model_alone():
    model = _block_network()
    before = [w.copy() for w in model.get_weights()]
    split = greedy_split(model, 2, num_layers=3)  # shared -> split_1 -> output
    sub = split.subnetwork(model, 1)
    off = split.assignment("shared") != 1
    np.testing.assert_array_equal(sub.get_layer("split_1").kernel.numpy()[off], 0.0)
    off = split.assignment("split_1") != 1
    np.testing.assert_array_equal(sub.get_layer("output").kernel.numpy()[off], 0.0)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_cross_task_fraction_value():
    model = _block_network()
    kernel = model.get_layer("output").kernel.numpy()
    # one weak cross-task connection from neuron 0 (task 0) to output 3 (task 1)
    kernel[0, 3] = 0.01
    model.get_layer("output").kernel.assign(kernel)
    split = greedy_split(model, 2, layers=["split_1", "output"])
    assert split.assignment("split_1").tolist() == [0, 0, 1, 1]
    assert split.cross_task_fraction[0] == pytest.approx(0.01 / np.abs(kernel).sum())


def test_default_layers_follow_spatial_costs():
    model = keras.Sequential(
        [
            keras.Input((3,)),
            SpatialDense(4, name="a", seed=0),
            SpatialDense(4, name="b", seed=1, transport_cost=TransportCost(), density_cost=DensityCost()),
            SpatialDense(2, name="c", seed=2, activation=None, transport_cost=TransportCost()),
        ]
    )
    split = greedy_split(model, 2)
    assert split.layer_names == ("b", "c")
    regular = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="num_layers"):
        greedy_split(regular, 2)
    with pytest.raises(ValueError, match="Received: layers"):
        greedy_split(model, 2, layers=["nope"])
    with pytest.raises(ValueError, match="Received: num_tasks"):
        greedy_split(model, 3)
    with pytest.raises(ValueError, match="Received: task"):
        split.subnetwork(model, 2)


def test_task_accuracies_ignore_missing_labels():
    scores = np.array([[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    labels = np.array([[0, -1], [0, 0], [-1, 1]])
    np.testing.assert_allclose(task_accuracies(scores, labels, 2), [0.5, 0.5])
