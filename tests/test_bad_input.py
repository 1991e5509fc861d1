"""The bad inputs of issue 19 across the public API: each raises ``ValueError`` that
names the argument the user wrote and says what it received (no silent acceptance,
no NumPy/TensorFlow error from deep inside, no inner argument name)."""

import keras
import numpy as np
import pytest

from tfemergent import analysis, losses, regularizers, search
from tfemergent.layers import RecursiveURNLayer, SpatialDense
from tfemergent.models import build_spatial_network

PMAP = np.array([[0, 1, 2, 3]] * 4)
SCORES = np.zeros((4, 4))  # two heads of two classes
NOPE = {"class_name": "Nope", "config": {}}

INVALID_INPUTS = [
    # regularizers.get: an unknown config used to come back as the string 'Nope'
    (regularizers.get, (NOPE,), {}, "identifier="),
    (regularizers.get, ({"class_name": "TransportCost", "config": {"alpha": "x"}},), {},
     "identifier="),
    (regularizers.get, ("no_such_cost",), {}, "identifier='no_such_cost'"),
    (regularizers.get, (5,), {}, "identifier=5"),
    (regularizers.get, (int,), {}, "identifier=<class 'int'>"),
    (regularizers.get, (NOPE,), {"argument_name": "density_cost"}, "density_cost="),
    # layers and models name their own argument, not get's `identifier`
    (SpatialDense, (3,), {"transport_cost": 5}, "transport_cost=5"),
    (SpatialDense, (3,), {"transport_cost": NOPE}, "transport_cost="),
    (SpatialDense, (3,), {"density_cost": "nope"}, "density_cost='nope'"),
    (RecursiveURNLayer, (8, 2, 2, 2), {"state_regularizer": 5}, "state_regularizer=5"),
    (RecursiveURNLayer, (8, 2, 2, 2), {"synaptic_length": NOPE}, "synaptic_length="),
    (build_spatial_network, (10,), {"transport_normalization": "synapses"},
     "transport_normalization='synapses'"),
    # analysis
    (analysis.topography_index, (PMAP, np.ones((3, 3))), {}, "similarity.shape=(3, 3)"),
    (analysis.preference_map, (np.ones((4, 4)),), {}, "dprime.shape=(4, 4)"),
    (analysis.preference_map, (np.ones(4),), {}, "dprime.shape=(4,)"),
    (analysis.performance_score, (0.1, 0), {}, "num_parameters=0"),
    (analysis.performance_score, (3.72, 7.5), {}, "num_parameters=7.5"),
    (analysis.performance_score, (101.0, 1e6), {}, "test_error=101"),
    (analysis.performance_score, ("2", 1e6), {}, "test_error='2'"),
    (analysis.performance_score, (2.0, float("inf")), {}, "num_parameters=inf"),
    (analysis.task_accuracies, (SCORES, np.full((4, 2), 99), 2), {}, "e.g. 99"),
    (analysis.task_accuracies, (SCORES, np.full((4, 2), -2), 2), {}, "e.g. -2"),
    (analysis.task_accuracies, (SCORES, np.zeros((3, 2), int), 2), {}, "labels.shape=(3, 2)"),
    (analysis.task_accuracies, (SCORES, np.zeros(8, int), 2), {}, "labels.shape=(8,)"),
    (analysis.task_accuracies, (SCORES, np.zeros((4, 2)), 2), {}, "labels.dtype=float64"),
    (analysis.task_accuracies, (SCORES, np.zeros((4, 3), int), 3), {}, "scores.shape=(4, 4)"),
    (analysis.task_accuracies, (np.zeros(4), np.zeros((4, 2), int), 2), {}, "scores.shape=(4,)"),
    (analysis.task_accuracies, (SCORES, np.zeros((4, 2), int), 0), {}, "num_tasks=0"),
    (analysis.task_accuracies, (SCORES, np.zeros((4, 2), int), 2), {"ignore_label": 0.5},
     "ignore_label=0.5"),
    (analysis.task_accuracies, ("scores", np.zeros((4, 2), int), 2), {}, "scores."),
    (analysis.greedy_split, ("x",), {}, "model='x'"),
    (analysis.greedy_split, (None,), {}, "model=None"),
    (analysis.count_parameters, ("x",), {}, "model='x'"),
    (analysis.count_parameters, (np.ones(3),), {}, "model="),
    # losses
    (losses.split_task_logits, (np.zeros((2, 4), "float32"), 0), {}, "num_tasks=0"),
    (losses.split_task_logits, (np.zeros((2, 4), "float32"), 3), {}, "y_pred.shape=(2, 4)"),
    (losses.split_task_logits, (np.zeros((2, 4), "float32"), 2.0), {}, "num_tasks=2.0"),
    (losses.split_task_logits, (np.zeros(4, "float32"), 2), {}, "y_pred.shape=(4,)"),
    (losses.split_task_logits, ("logits", 2), {}, "y_pred='logits'"),
    # search
    (search.LocationSpace, (), {"kernel_sizes": (4,)}, "kernel_sizes=(4,)"),
    (search.LocationSpace, (), {"kernel_sizes": (3, 7)}, "kernel_sizes=(3, 7)"),
]


def _id(row):
    function, _, kwargs, received = row
    return f"{getattr(function, '__name__', function)}-{received}"


@pytest.mark.parametrize("function, args, kwargs, received", INVALID_INPUTS,
                         ids=[_id(row) for row in INVALID_INPUTS])
def test_invalid_inputs_raise_value_error_naming_the_argument(function, args, kwargs, received):
    with pytest.raises(ValueError) as info:
        function(*args, **kwargs)
    message = str(info.value)
    assert f"Received: {received}" in message or ("Received:" in message and received in message), (
        message
    )


def test_the_split_task_logits_export():
    assert losses.split_task_logits is not None
    assert tuple(losses.split_task_logits(np.zeros((3, 6), "float32"), 3).shape) == (3, 3, 2)


def test_a_valid_regularizer_config_still_round_trips():
    cost = regularizers.get(regularizers.serialize(regularizers.TransportCost(2.0)))
    assert isinstance(cost, regularizers.TransportCost) and cost.alpha == 2.0
    assert isinstance(regularizers.get({"class_name": "L1", "config": {"l1": 0.5}}),
                      keras.regularizers.L1)
