"""count_parameters (stored and effective) and the NHN performance score, by hand."""

import importlib
import math

import keras
import numpy as np
import pytest
from docstring_examples import assert_docstring_examples

from tfemergent.analysis import count_parameters, performance_score
from tfemergent.layers import AddOnConv2D, MaskedConv2D
from tfemergent.models import SegmentCNN
from tfemergent.pruning import shrink

parameter_count_module = importlib.import_module("tfemergent.analysis.parameter_count")


def test_counts_by_hand():
    inputs = keras.Input((6, 6, 2))
    x = MaskedConv2D(3, 3, name="three")(inputs)  # 9*2*3 + 3 = 57
    y = AddOnConv2D(3, 5, name="five")(inputs)  # 25*2*3 = 150, no bias
    z = keras.layers.Add()([x, y])
    outputs = keras.layers.Dense(4)(keras.layers.Flatten()(z))  # 108*4 + 4 = 436
    model = keras.Model(inputs, outputs)
    assert count_parameters(model) == {"stored": 57 + 150 + 436, "effective": 57 + 150 + 436}
    assert count_parameters(model)["stored"] == model.count_params() - 6 - 6  # minus 2 masks
    model.get_layer("three").set_kernel_mask([[1, 0, 0], [0, 1, 0]])  # 2 of 6 kernels
    model.get_layer("five").set_connection_mask([[0, 0, 1], [0, 0, 0]])  # 1 of 6
    assert count_parameters(model) == {
        "stored": 643, "effective": (9 * 2 + 3) + 25 * 1 + 436
    }


def test_shrinking_brings_stored_down_to_effective_channels():
    model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    model.get_layer("conv_0_1").set_kernel_mask(np.eye(4)[:, [0, 1, 1, 2]])
    counts = count_parameters(model)
    assert counts == {"stored": 198, "effective": 40 + (9 * 4 + 4) + 10}
    small = count_parameters(shrink(model))
    # conv_0_0 loses channel 3: 9*1*3+3; conv_0_1 keeps 4 outputs of 3 inputs: 9*3*4+4
    assert small == {"stored": 30 + 112 + 10, "effective": 30 + (9 * 4 + 4) + 10}


def test_performance_score_by_hand():
    assert performance_score(0.0, 1) == pytest.approx(1e-6 / 25)
    assert performance_score(4.0, 25e6) == pytest.approx(math.sqrt(4 + 1))
    # Table 1 of the paper: ENAS macro 2.28, DenseNet 2.16, NHN 1.88.
    assert round(performance_score(4.23, 21.3e6), 2) == 2.28
    assert round(performance_score(3.74, 27.2e6), 2) == 2.16
    with pytest.raises(ValueError, match="Received: test_error=101"):
        performance_score(101, 1)
    with pytest.raises(ValueError, match="Received: num_parameters=-1"):
        performance_score(1.0, -1)
    # No model has 0 or a fraction of a parameter (a count in millions is the usual slip).
    with pytest.raises(ValueError, match="Received: num_parameters=0"):
        performance_score(0.1, 0)
    with pytest.raises(ValueError, match=r"whole number.*Received: num_parameters=7.5"):
        performance_score(3.72, 7.5)


def test_parameter_count_docstring_examples():
    assert_docstring_examples(parameter_count_module)
