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


def _plain_model():
    x = keras.Input((6, 6, 2))
    a = keras.layers.Conv2D(8, 3, padding="same", name="conv")(x)
    a = keras.layers.BatchNormalization(name="bn")(a)
    a = keras.layers.ReLU(name="relu")(a)
    b = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="branch")(a)
    a = keras.layers.Add(name="add")([a, b])
    a = keras.layers.GlobalAveragePooling2D(name="pool")(a)
    model = keras.Model(x, keras.layers.Dense(2, name="head")(a))
    model.compile(keras.optimizers.Adam(1e-2), "mse", run_eagerly=True)  # no tracing: fast
    return model


def _data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((8, 6, 6, 2)).astype("float32"), rng.standard_normal(
        (8, 2)).astype("float32")


def test_group_schedule_on_a_plain_model_resumes_from_a_keras_checkpoint(tmp_path):
    from tfemergent.pruning import shrink

    x, y = _data()
    keras.utils.set_random_seed(0)
    full = _plain_model()
    initial = full.get_weights()
    def schedule():
        return PruningSchedule(0.5, 0, 1, initial_fraction=0.25, power=1.0, granularity="group")

    steps = schedule()
    full.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0, callbacks=[steps])
    # fractions 0.25, 0.5 of the 8-channel groups: floor(2) = 2 then 4 channels.
    assert [r.layers["conv"]["channels_after"] for _, _, r in steps.reports] == [6, 4]
    assert [r.layers["branch"]["channels_after"] for _, _, r in steps.reports] == [6, 4]
    kept = np.flatnonzero(full.get_layer("conv").kernel.numpy().reshape(-1, 8).any(axis=0))
    assert len(kept) == 4
    # Adam ran after the last step: the pruned channels are still exactly zero.
    dropped = [c for c in range(8) if c not in kept]
    for name in ("conv", "branch"):
        assert not full.get_layer(name).kernel.numpy()[..., dropped].any()
    assert not full.get_layer("bn").gamma.numpy()[dropped].any()

    # The same run, stopped after epoch 0 (one step done), saved, reloaded, resumed.
    keras.utils.set_random_seed(0)
    first = _plain_model()
    first.set_weights(initial)
    first.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0, callbacks=[schedule()])
    first.save(tmp_path / "mid.keras")
    resumed = keras.saving.load_model(tmp_path / "mid.keras")
    second = schedule()
    resumed.fit(x, y, epochs=3, initial_epoch=1, batch_size=8, shuffle=False, verbose=0,
                callbacks=[second])
    assert [(epoch, fraction) for epoch, fraction, _ in second.reports] == [(1, 0.5)]
    assert len(second._masks) > 0  # the zeros found at train begin, then the new step's
    np.testing.assert_allclose(resumed(x), full(x), atol=1e-5)
    small = shrink(resumed)
    assert small.get_layer("conv").filters == 4
    np.testing.assert_allclose(small(x), resumed(x), atol=1e-5)


def _events(log_dir):
    import glob

    import tensorflow as tf

    scalars, texts = {}, {}
    for path in glob.glob(f"{log_dir}/**/events.out.tfevents.*", recursive=True):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if value.metadata.plugin_data.plugin_name == "text":
                    texts.setdefault(value.tag, []).append((event.step, array.item().decode()))
                else:
                    scalars.setdefault(value.tag, []).append((event.step, float(array)))
    return scalars, texts


def test_group_schedule_logs_the_report_to_tensorboard(tmp_path):
    x, y = _data()
    model = _plain_model()
    schedule = PruningSchedule(0.5, 0, 2, power=1.0, granularity="group", log_dir=tmp_path)
    model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[schedule])
    scalars, texts = _events(tmp_path)
    assert scalars["pruning/fraction"] == [(0, 0.0), (1, 0.25), (2, 0.5)]
    assert scalars["conv/channels"] == [(0, 8.0), (1, 6.0), (2, 4.0)]
    ratios = [value for _, value in scalars["pruning/parameter_ratio"]]
    assert ratios[0] == 1.0 and ratios[0] > ratios[1] > ratios[2]
    assert ratios[2] == pytest.approx(schedule.reports[-1][2].parameter_ratio, rel=1e-6)
    step, table = texts["pruning/report"][-1]
    assert step == 2 and table.splitlines()[0].split()[:2] == ["layer", "type"]
    assert "conv" in table and "8 -> 4" in table


def test_kernel_schedule_logs_to_tensorboard(tmp_path):
    model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    model.compile("sgd", "sparse_categorical_crossentropy")
    schedule = PruningSchedule(0.5, 0, 1, power=1.0, log_dir=tmp_path)
    model.fit(np.ones((4, 8, 8, 1)), np.zeros(4), epochs=2, verbose=0, callbacks=[schedule])
    scalars, _ = _events(tmp_path)
    assert scalars["pruning/pruned_kernel_fraction"] == [(0, 0.0), (1, 0.5)]
    assert [step for step, _ in scalars["conv_0_1/pruned_kernel_fraction"]] == [0, 1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"granularity": "group", "layer_names": ["conv"]}, "Received: layer_names=['conv']"),
        ({"granularity": "group", "criterion": "l0"}, "Received: criterion='l0'"),
        ({"granularity": "filter"}, "Received: granularity='filter'"),
        ({"log_dir": ""}, "Received: log_dir=''"),
    ],
)
def test_group_schedule_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError) as info:
        PruningSchedule(0.5, **kwargs)
    assert message in str(info.value)


def test_group_schedule_scope_default_and_config():
    assert PruningSchedule(0.5, granularity="group").scope == "layer"
    assert PruningSchedule(0.5).scope == "model"
    schedule = PruningSchedule(0.5, granularity="group", criterion="std", channel_multiple=4)
    assert_callback_config(schedule)
    assert PruningSchedule.from_config(schedule.get_config()).criterion == "std"
