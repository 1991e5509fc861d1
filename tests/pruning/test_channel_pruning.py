"""prune_kernels(granularity="channel"): hand-computed channel rankings, exact shrink.

The network (input 6x6x1) has segments [[2, 3], [2]] and one add-on, relu_0_0 ->
conv_0_1 (3x3). Every kernel is a +-1 checkerboard times a hand-set scale, so its
standard deviation is ``scale * PATTERN_STD`` and a channel's sensitivity (the mean over
its incoming kernels) is the mean of its column of scales times ``PATTERN_STD``:

    conv_0_0 (1 -> 2):  scales [[0.5, 0.1]]                          -> [0.5, 0.1]
    conv_0_1 (2 -> 3):  [[0.3, 0.05, 0.4], [0.1, 0.05, 0.2]]         -> [0.2, 0.05, 0.3]
    conv_1_0 (3 -> 2):  [[0.2, 0.6], [0.9, 0.1], [0.1, 0.2]]         -> [0.4, 0.3]
    add_on_0_0_1_k3 (2 -> 3): 0.7 everywhere (its channels are conv_0_1's)

Model-wide order: (conv_0_1, 1) 0.05, (conv_0_0, 1) 0.1, (conv_0_1, 0) 0.2,
(conv_0_1, 2) 0.3, (conv_1_0, 1) 0.3 (tie: model order), (conv_1_0, 0) 0.4,
(conv_0_0, 0) 0.5. The model has 2 + 6 + 6 + 6 = 20 kernels.
"""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfemergent.analysis.kernel_sensitivity import channel_sensitivity
from tfemergent.callbacks import PruningSchedule
from tfemergent.models import NeuronHierarchyBuilder, SegmentCNN
from tfemergent.pruning import dead_neurons, prune_kernels, shrink

PATTERN = np.array([[1, -1, 1], [-1, 1, -1], [1, -1, 1]], "float32")
PATTERN_STD = math.sqrt(1 - 1 / 81)
ADD_ON = {"segment": 0, "source": 0, "target": 1, "kernel_size": 3}
SCALES = {
    "conv_0_0": [[0.5, 0.1]],
    "conv_0_1": [[0.3, 0.05, 0.4], [0.1, 0.05, 0.2]],
    "conv_1_0": [[0.2, 0.6], [0.9, 0.1], [0.1, 0.2]],
    "add_on_0_0_1_k3": np.full((2, 3), 0.7),
}
BIASES = {
    "conv_0_0": [0.1, 0.2],
    "conv_0_1": [0.05, 0.3, -0.1],
    "conv_1_0": [0.2, 0.4],  # channel 1 left without input: relu(0.4) folded into the head
}


def _model():
    spec = SegmentCNN((6, 6, 1), 2, segments=[[2, 3], [2]], add_ons=[ADD_ON], seed=0)
    model = spec.build()
    for name, scales in SCALES.items():
        scales = np.asarray(scales, "float32")
        model.get_layer(name).kernel.assign(PATTERN[:, :, None, None] * scales[None, None])
    for name, bias in BIASES.items():
        model.get_layer(name).bias.assign(np.array(bias, "float32"))
    return model


def _masks(model):
    return {name: model.get_layer(name).pruning_mask.numpy().astype(int).tolist()
            for name in SCALES}


def _images(seed=0):
    return np.random.default_rng(seed).standard_normal((4, 6, 6, 1)).astype("float32")


def _assert_shrink_is_exact(model):
    small = shrink(model)
    images = _images()
    np.testing.assert_allclose(small(images).numpy(), model(images).numpy(), atol=1e-5)
    return small


def _filters(model):
    return [model.get_layer(name).filters for name in ("conv_0_0", "conv_0_1", "conv_1_0")]


def test_channel_sensitivity_by_hand():
    model = _model()
    for name, expected in (("conv_0_0", [0.5, 0.1]), ("conv_0_1", [0.2, 0.05, 0.3]),
                           ("conv_1_0", [0.4, 0.3])):
        layer = model.get_layer(name)
        np.testing.assert_allclose(
            channel_sensitivity(layer.kernel.numpy()), np.array(expected) * PATTERN_STD, rtol=1e-6
        )
    # A pruned kernel counts as 0 in the mean.
    np.testing.assert_allclose(
        channel_sensitivity(model.get_layer("conv_0_1").kernel.numpy(), [[0, 1, 1], [1, 1, 1]]),
        np.array([0.05, 0.05, 0.3]) * PATTERN_STD, rtol=1e-6,
    )


def test_model_scope_prunes_whole_channels_in_rank_order():
    model = _model()
    report = prune_kernels(model, fraction=0.5, granularity="channel")
    # round(0.5 * 20) = 10 kernels: (conv_0_1, 1) masks its column in conv_0_1 and in the
    # add-on (2 + 2) and its row in conv_1_0 (2): 6; (conv_0_0, 1) masks its column (1),
    # its rows in conv_0_1 and the add-on (3 + 3, one each already masked): 5. 11 >= 10.
    assert _masks(model) == {
        "conv_0_0": [[1, 0]],
        "conv_0_1": [[1, 0, 1], [0, 0, 0]],
        "conv_1_0": [[1, 1], [0, 0], [1, 1]],
        "add_on_0_0_1_k3": [[1, 0, 1], [0, 0, 0]],
    }
    keys = ("num_kernels", "num_pruned_kernels", "num_parameters", "num_pruned_parameters")
    assert report.layers == {
        "conv_0_0": dict(zip(keys, (2, 1, 18, 9))),
        "conv_0_1": dict(zip(keys, (6, 4, 54, 36))),
        "add_on_0_0_1_k3": dict(zip(keys, (6, 4, 54, 36))),
        "conv_1_0": dict(zip(keys, (6, 2, 54, 18))),
    }
    assert report.num_pruned_kernels == 11 and report.granularity == "channel"
    assert report.scope == "model"
    assert report.threshold == pytest.approx(0.2 * PATTERN_STD, rel=1e-6)  # smallest kept
    assert report.to_dict()["granularity"] == "channel"
    assert "(granularity=channel)" in str(report)
    assert dead_neurons(model) == {
        "conv_0_0": {"no_input": [1], "no_output": [], "constant": []},
        "conv_0_1": {"no_input": [1], "no_output": [], "constant": []},
        "conv_1_0": {"no_input": [], "no_output": [], "constant": []},
    }
    small = _assert_shrink_is_exact(model)
    assert _filters(small) == [1, 2, 2]
    # Every pruned kernel left the model: the shrunk kernels are exactly the kept ones.
    for name in SCALES:
        assert small.get_layer(name).pruning_mask.numpy().all()
        assert int(small.get_layer(name).pruning_mask.numpy().size) == int(
            model.get_layer(name).pruning_mask.numpy().sum()
        )


def test_larger_fraction_and_threshold_give_the_same_channels():
    by_fraction = _model()
    report = prune_kernels(by_fraction, fraction=0.6, granularity="channel")
    # 12 kernels: the next channel (conv_0_1, 0) adds 1 + 1 + 2 = 4 -> 15.
    assert report.num_pruned_kernels == 15
    by_threshold = _model()
    report = prune_kernels(by_threshold, threshold=0.25 * PATTERN_STD, granularity="channel")
    assert report.threshold == pytest.approx(0.25 * PATTERN_STD)
    assert _masks(by_threshold) == _masks(by_fraction)
    assert _masks(by_fraction)["conv_1_0"] == [[0, 0], [0, 0], [1, 1]]
    assert _filters(_assert_shrink_is_exact(by_fraction)) == [1, 1, 2]


def test_every_convolution_keeps_one_channel():
    model = _model()
    report = prune_kernels(model, fraction=1.0, granularity="channel")
    # After (conv_0_1, 0): (conv_0_1, 2) is the last channel of conv_0_1 with an input,
    # refused; (conv_1_0, 1) loses its last kernel (row 2): 16; (conv_1_0, 0) and
    # (conv_0_0, 0) refused.
    assert report.num_pruned_kernels == 16
    assert dead_neurons(model)["conv_1_0"] == {"no_input": [1], "no_output": [], "constant": []}
    small = _assert_shrink_is_exact(model)  # relu(0.4) * head row 1 folded into the head bias
    assert _filters(small) == [1, 1, 1]


def test_layer_scope_prunes_the_same_share_of_every_convolution():
    model = _model()
    report = prune_kernels(model, fraction=0.6, scope="layer", granularity="channel")
    # A convolution's r-th weakest channel (from 0) comes with the share (r + 1) / filters:
    # (conv_0_1, 1) 1/3, (conv_0_0, 1) 1/2, (conv_1_0, 1) 1/2, (conv_0_1, 0) 2/3, ...
    # round(0.6 * 20) = 12 kernels: 6 + 5 + 2 (conv_1_0's column 1, row 1 already masked).
    assert _masks(model) == {
        "conv_0_0": [[1, 0]],
        "conv_0_1": [[1, 0, 1], [0, 0, 0]],
        "conv_1_0": [[1, 0], [0, 0], [1, 0]],
        "add_on_0_0_1_k3": [[1, 0, 1], [0, 0, 0]],
    }
    assert report.num_pruned_kernels == 13 and report.scope == "layer"
    assert report.threshold == pytest.approx(
        {"conv_0_0": 0.5 * PATTERN_STD, "conv_0_1": 0.2 * PATTERN_STD,
         "conv_1_0": 0.4 * PATTERN_STD}, rel=1e-6,
    )
    assert _filters(_assert_shrink_is_exact(model)) == [1, 2, 1]
    # Model scope at the same fraction takes (conv_0_1, 0) (0.2) instead of (conv_1_0, 1).
    model = _model()
    prune_kernels(model, fraction=0.6, granularity="channel")
    assert _filters(shrink(model)) == [1, 1, 2]


def test_channels_then_kernels_and_selected_layers():
    model = _model()
    prune_kernels(model, fraction=0.5, granularity="channel")
    # Then kernels inside the kept channels: 14 of 20 (the 11 pruned count first), the
    # kept kernels of lowest std: conv_1_0 (2, 0) 0.1, (0, 0) 0.2, (2, 1) 0.2. That
    # leaves conv_1_0 channel 0 without input and conv_0_1 channel 2 without output.
    report = prune_kernels(model, fraction=0.7)
    assert report.num_pruned_kernels == 14 and report.granularity == "kernel"
    assert _masks(model)["conv_1_0"] == [[0, 1], [0, 0], [0, 0]]
    assert _filters(_assert_shrink_is_exact(model)) == [1, 1, 1]
    model = _model()
    report = prune_kernels(model, fraction=0.5, granularity="channel", layer_names=["conv_1_0"])
    # Only conv_1_0's channels: channel 1 (3 kernels); channel 0 is its last one.
    assert report.num_pruned_kernels == 3
    assert _masks(model)["conv_1_0"] == [[1, 0], [1, 0], [1, 0]]


def test_channel_multiple_rounds_the_kept_widths_down():
    model = _model()
    report = prune_kernels(model, fraction=0.0, granularity="channel", channel_multiple=2)
    # conv_0_1 keeps 2 of its 3 channels: its weakest, channel 1 (6 kernels), goes;
    # conv_0_0 and conv_1_0 have 2 channels already.
    assert report.num_pruned_kernels == 6
    assert report.threshold == pytest.approx(0.1 * PATTERN_STD, rel=1e-6)
    assert _filters(_assert_shrink_is_exact(model)) == [2, 2, 2]
    model = _model()
    prune_kernels(model, fraction=0.5, granularity="channel", channel_multiple=2)
    # 0.5 leaves conv_0_0 with 1 channel (<= 2: kept as it is) and conv_0_1 with 2.
    assert _filters(_assert_shrink_is_exact(model)) == [1, 2, 2]
    model = _model()
    prune_kernels(model, fraction=0.0, granularity="channel", channel_multiple=3)
    assert _filters(shrink(model)) == [2, 3, 2]  # 3 channels or fewer: nothing to round


def test_removed_channel_counts_and_exact_shrink_on_a_random_network():
    keras.utils.set_random_seed(0)
    spec = SegmentCNN((8, 8, 3), 4, segments=[[8, 8], [12, 12]], seed=3,
                      add_ons=[{"segment": 1, "source": "input", "target": 1, "kernel_size": 5}])
    model = spec.build()
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if getattr(layer, "bias", None) is not None:
            layer.bias.assign(rng.normal(0, 0.1, layer.bias.shape))
    before = {name: model.get_layer(name).kernel_mask.numpy().copy() for name in spec.conv_names}
    report = prune_kernels(model, fraction=0.6, granularity="channel")
    assert report.pruned_kernel_fraction >= 0.6
    small = shrink(model)
    images = rng.standard_normal((5, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(small(images).numpy(), model(images).numpy(), atol=1e-5)
    dead = dead_neurons(model)
    for index, name in enumerate(spec.conv_names):
        # A pruned channel has no input kernel left: exactly those channels are removed.
        pruned = ~model.get_layer(name).kernel_mask.numpy().any(axis=0)
        assert before[name].all()
        removed = sorted(dead[name]["no_input"] + dead[name]["no_output"])
        assert removed == np.flatnonzero(pruned).tolist(), name
        assert small.get_layer(name).filters == model.get_layer(name).filters - pruned.sum()
        assert not dead[name]["constant"]
    # Nothing masked is left in the shrunk model: it stores only kept kernels.
    for layer in small.layers:
        if hasattr(layer, "pruning_mask"):
            assert layer.pruning_mask.numpy().all(), layer.name
    assert [small.get_layer(n).filters for n in spec.conv_names] == [
        int(model.get_layer(n).kernel_mask.numpy().any(axis=0).sum()) for n in spec.conv_names
    ]


def test_channel_pruned_model_exports_and_reloads(tmp_path):
    model = _model()
    prune_kernels(model, fraction=0.6, granularity="channel")
    small = shrink(model)
    images = _images(seed=3)
    expected = model(images).numpy()
    path = str(tmp_path / "small")
    small.export(path, verbose=False)
    loaded = tf.saved_model.load(path)  # keep a reference: its variables live in it
    served = loaded.serve(tf.constant(images)).numpy()
    np.testing.assert_allclose(served, expected, atol=1e-5)
    small.save(tmp_path / "small.keras")
    reloaded = keras.saving.load_model(tmp_path / "small.keras")
    np.testing.assert_allclose(reloaded(images).numpy(), expected, atol=1e-5)


def test_pruning_schedule_prunes_channels_during_fit():
    model = _model()
    # Learning rate 0: the weights stay the hand-set ones, so the ranking is known.
    model.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
    schedule = PruningSchedule(0.5, begin_epoch=0, end_epoch=2, power=1.0, granularity="channel")
    model.fit(_images(), np.array([0, 1, 0, 1]), epochs=3, verbose=0, callbacks=[schedule])
    # Epoch 1: 0.25 -> 5 kernels: (conv_0_1, 1) masks 6. Epoch 2: 0.5 -> 10: (conv_0_1, 1)
    # now ranks first with sensitivity 0 and adds nothing; (conv_0_0, 1) adds 5: 11.
    assert [(epoch, fraction) for epoch, fraction, _ in schedule.reports] == [
        (0, 0.0), (1, 0.25), (2, 0.5)
    ]
    assert [report.num_pruned_kernels for _, _, report in schedule.reports] == [0, 6, 11]
    assert schedule.reports[-1][2].granularity == "channel"
    # The threshold: the smallest sensitivity of a kept channel, the pruned channel's 0 not
    # counted. Epoch 1: (conv_0_0, 1) 0.1. Epoch 2 ranks on the current masks: conv_1_0's
    # row 1 is masked, so (conv_1_0, 0) has (0.2 + 0 + 0.1) / 3 = 0.1.
    assert schedule.reports[1][2].threshold == pytest.approx(0.1 * PATTERN_STD, rel=1e-6)
    assert schedule.reports[2][2].threshold == pytest.approx(0.1 * PATTERN_STD, rel=1e-6)
    assert _masks(model)["conv_0_1"] == [[1, 0, 1], [0, 0, 0]]
    config = schedule.get_config()
    assert config["granularity"] == "channel" and config["channel_multiple"] == 1
    assert PruningSchedule.from_config(json.loads(json.dumps(config))).granularity == "channel"
    rounded = PruningSchedule(0.5, granularity="channel", channel_multiple=8)
    assert PruningSchedule.from_config(rounded.get_config()).channel_multiple == 8
    with pytest.raises(ValueError, match="Received: channel_multiple=8, granularity='kernel'"):
        PruningSchedule(0.5, channel_multiple=8)


def test_neuron_hierarchy_builder_prune_granularity():
    spec = SegmentCNN((8, 8, 1), 2, segments=[[4, 4], [4]], seed=0)
    builder = NeuronHierarchyBuilder(spec, pruning={"granularity": "channel"}, verbose=0)
    config = builder.get_config()
    assert config["pruning"]["granularity"] == "channel"
    restored = NeuronHierarchyBuilder.from_config(json.loads(json.dumps(config)))
    assert restored.pruning.granularity == "channel"
    assert NeuronHierarchyBuilder(spec, verbose=0).pruning.granularity == "kernel"
    with pytest.raises(ValueError, match="Received: granularity='filter'"):
        NeuronHierarchyBuilder(spec, pruning={"granularity": "filter"})


def test_neuron_hierarchy_builder_runs_with_channel_pruning():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(96, 8, 8, 1)).astype("float32")
    labels = (images[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64")
    spec = SegmentCNN((8, 8, 1), 2, segments=[[4, 4], [4]], seed=0)
    builder = NeuronHierarchyBuilder(
        spec, training={"epochs": 1}, pruning={"fraction": 0.5, "granularity": "channel"},
        search={"num_cycles": 1, "population_size": 3, "num_parents": 2, "num_children": 1,
                "num_fresh": 1, "train_batches": 1, "batch_size": 16},
        latency_repeats=2, verbose=0,
    )
    outcome = builder.run(images, labels, images[:32], labels[:32])
    base, pruned, retrained = outcome["stages"][:3]
    assert outcome["pruning"]["granularity"] == "channel"
    assert outcome["pruning"]["pruned_kernel_fraction"] >= 0.5
    # Every masked kernel leaves the shrunk network (which also drops the removed
    # channels' biases): it stores at most the pruned network's effective parameters.
    assert pruned["physical_parameters"] <= pruned["parameters"] < base["parameters"]
    assert retrained["stored_parameters"] == pruned["physical_parameters"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fraction": 0.5, "granularity": "filter"}, "granularity"),
        ({"granularity": "channel"}, "exactly one of"),
        ({"fraction": 1.5, "granularity": "channel"}, "fraction"),
        ({"threshold": -1.0, "granularity": "channel"}, "threshold"),
        ({"fraction": 0.5, "scope": "all", "granularity": "channel"}, "scope"),
        ({"fraction": 0.5, "granularity": "channel", "layer_names": ["add_on_0_0_1_k3"]},
         "layer_names"),
        ({"fraction": 0.5, "granularity": "channel", "channel_multiple": 0}, "channel_multiple"),
        ({"fraction": 0.5, "channel_multiple": 8}, "channel_multiple"),
    ],
)
def test_channel_granularity_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match="Received") as info:
        prune_kernels(_model(), **kwargs)
    assert message in str(info.value)


def test_channel_granularity_needs_a_segment_cnn():
    inputs = keras.Input((6, 6, 1))
    from tfemergent.layers import MaskedConv2D

    model = keras.Model(inputs, MaskedConv2D(2, 3, name="conv")(inputs), name="plain")
    prune_kernels(model, fraction=0.5)  # kernels: any model
    with pytest.raises(ValueError, match="granularity='channel'.*SegmentCNN.*Received: model="):
        prune_kernels(model, fraction=0.5, granularity="channel")
