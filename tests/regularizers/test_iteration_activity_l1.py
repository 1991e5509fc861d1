import keras
import numpy as np
import pytest
from layer_contract import assert_regularizer_contract

from tfemergent import regularizers
from tfemergent.regularizers import IterationActivityL1

STATES = np.array(
    [
        [[1.0, -2.0, 0.0], [0.0, 3.0, -1.0]],  # iteration 1: per-sample L1 3 and 4
        [[0.5, 0.0, 0.0], [0.0, -0.5, 2.0]],  # iteration 2: per-sample L1 0.5 and 2.5
    ],
    "float32",
)  # shape (I=2, batch=2, S=3)


def test_hand_computed_value():
    # sum over iterations and neurons per sample: 3.5 and 6.5; mean over batch 5.0
    assert float(IterationActivityL1(0.1)(STATES)) == pytest.approx(0.5, rel=1e-6)
    assert float(IterationActivityL1(0.0)(STATES)) == 0.0


def test_two_dimensional_activity_is_mean_per_sample_l1():
    assert float(IterationActivityL1(2.0)(STATES[0])) == pytest.approx(2.0 * 3.5, rel=1e-6)


def test_contract_and_registry():
    assert_regularizer_contract(IterationActivityL1(1e-3))
    assert isinstance(regularizers.get("iteration_activity_l1"), IterationActivityL1)
    assert regularizers.get("IterationActivityL1").c_n == 2e-5
    assert keras.saving.get_registered_name(IterationActivityL1) == "tfemergent>IterationActivityL1"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"c_n": -1.0}, "c_n"), ({"c_n": "big"}, "c_n"), ({"c_n": float("nan")}, "c_n")],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=f"Received: {match}"):
        IterationActivityL1(**kwargs)


def test_rank_one_input_is_refused():
    with pytest.raises(ValueError, match="Received: states.shape"):
        IterationActivityL1(1.0)(np.ones((3,), "float32"))
