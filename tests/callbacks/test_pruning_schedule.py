"""PruningSchedule: the polynomial fractions by hand, pruning during fit, config."""

import importlib

import keras
import numpy as np
import pytest
from docstring_examples import assert_docstring_examples
from layer_contract import assert_callback_config

from tfemergent.callbacks import PruningSchedule
from tfemergent.models import SegmentCNN

pruning_schedule_module = importlib.import_module("tfemergent.callbacks.pruning_schedule")


def test_polynomial_fractions_by_hand():
    schedule = PruningSchedule(
        0.8, begin_epoch=2, end_epoch=6, initial_fraction=0.2, power=3.0, frequency=2
    )
    # p = (e - 2) / 4; f = 0.8 + (0.2 - 0.8) * (1 - p)^3
    assert schedule.fraction_at(1) is None
    assert schedule.fraction_at(2) == pytest.approx(0.2)
    assert schedule.fraction_at(3) is None  # frequency 2
    assert schedule.fraction_at(4) == pytest.approx(0.8 - 0.6 * 0.125)
    assert schedule.fraction_at(6) == pytest.approx(0.8)
    assert schedule.fraction_at(7) is None
    # The end epoch is always a pruning step, whatever the frequency.
    assert PruningSchedule(0.5, 0, 3, frequency=2).fraction_at(3) == pytest.approx(0.5)
    assert PruningSchedule(0.5, 4, 4).fraction_at(4) == pytest.approx(0.5)  # one shot


def test_gradual_pruning_during_fit_keeps_pruned_kernels_zero():
    keras.utils.set_random_seed(1)
    model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4], [4]], seed=1).build()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    schedule = PruningSchedule(0.6, begin_epoch=1, end_epoch=3, power=1.0)
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 8, 8, 1)), rng.integers(0, 2, 8)
    model.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[schedule])
    # 4 + 16 + 16 = 36 kernels; fractions 0, 0.3, 0.6 -> 0, round(10.8) = 11, round(21.6) = 22
    assert [(epoch, round(fraction, 6)) for epoch, fraction, _ in schedule.reports] == [
        (1, 0.0), (2, 0.3), (3, 0.6)
    ]
    assert [report.num_pruned_kernels for _, _, report in schedule.reports] == [0, 11, 22]
    total_pruned = 0
    for name in ("conv_0_0", "conv_0_1", "conv_1_0"):
        layer = model.get_layer(name)
        pruned = layer.kernel_mask.numpy() == 0
        total_pruned += int(pruned.sum())
        # Two more epochs of Adam after the last step: pruned weights are still exactly zero.
        assert np.all(layer.kernel.numpy()[:, :, pruned] == 0)
    assert total_pruned == 22


def test_layer_scope_and_selected_layers():
    model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=2).build()
    model.compile("sgd", "sparse_categorical_crossentropy")
    schedule = PruningSchedule(0.5, scope="layer", layer_names=["conv_0_1"])
    model.fit(np.zeros((2, 8, 8, 1)), np.zeros(2), epochs=1, verbose=0, callbacks=[schedule])
    assert model.get_layer("conv_0_1").kernel_mask.numpy().sum() == 8
    assert model.get_layer("conv_0_0").kernel_mask.numpy().sum() == 4


def test_pruning_schedule_config():
    schedule = PruningSchedule(0.85, begin_epoch=1, end_epoch=4, layer_names=["conv_0_0"])
    assert_callback_config(schedule)
    assert PruningSchedule.from_config(PruningSchedule(0.3).get_config()).final_fraction == 0.3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"final_fraction": 1.2}, "final_fraction"),
        ({"final_fraction": 0.5, "begin_epoch": -1}, "begin_epoch"),
        ({"final_fraction": 0.5, "begin_epoch": 3, "end_epoch": 2}, "end_epoch"),
        ({"final_fraction": 0.5, "initial_fraction": 0.6}, "initial_fraction"),
        ({"final_fraction": 0.5, "power": 0.0}, "power"),
        ({"final_fraction": 0.5, "frequency": 0}, "frequency"),
        ({"final_fraction": 0.5, "scope": "global"}, "scope"),
        ({"final_fraction": 0.5, "layer_names": "conv_0_0"}, "layer_names"),
    ],
)
def test_pruning_schedule_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        PruningSchedule(**kwargs)
    assert message in str(info.value)


def test_pruning_schedule_docstring_examples():
    assert_docstring_examples(pruning_schedule_module)
