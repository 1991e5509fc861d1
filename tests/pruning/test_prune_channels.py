"""prune_channels + shrink on small hand-made graphs: exact zeros, exact shrink, reports."""

import importlib
import json
import zipfile

import keras
import numpy as np
import pytest
from docstring_examples import assert_docstring_examples

from tfemergent.pruning import ChannelPruningReport, channel_groups, prune_channels, shrink

prune_module = importlib.import_module("tfemergent.pruning.prune_channels")
report_module = importlib.import_module("tfemergent.pruning.channel_pruning_report")

L = keras.layers


def _randomise(model, seed=0):
    """Random weights everywhere (BN statistics too), so nothing is accidentally zero."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        name = variable.name.split("/")[-1]
        if name == "moving_variance":
            value = rng.uniform(0.5, 2.0, shape)
        elif name in ("gamma",):
            value = rng.uniform(0.5, 1.5, shape)
        elif "mask" in name:
            continue
        else:
            value = rng.normal(0.0, 0.3, shape)
        variable.assign(value.astype(variable.dtype))
    return model


def residual():
    x = keras.Input((8, 8, 3), name="image")
    a = L.Conv2D(8, 3, padding="same", name="stem")(x)
    a = L.BatchNormalization(name="stem_bn")(a)
    a = L.ReLU(name="stem_relu")(a)
    b = L.Conv2D(6, 3, padding="same", activation="relu", name="inner")(a)
    b = L.Conv2D(8, 3, padding="same", name="outer")(b)
    b = L.BatchNormalization(name="outer_bn")(b)
    y = L.Add(name="add")([a, b])
    y = L.ReLU(name="add_relu")(y)
    y = L.GlobalAveragePooling2D(name="pool")(y)
    return keras.Model(x, L.Dense(3, name="head")(y), name="residual")


def concatenation():
    x = keras.Input((8, 8, 2), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="left")(x)
    b = L.Conv2D(6, 1, activation="relu", name="right")(x)
    y = L.Concatenate(name="cat")([a, b])
    y = L.Conv2D(4, 3, activation="relu", name="mix")(y)  # valid padding
    y = L.MaxPooling2D(2, name="pool")(y)
    y = L.Flatten(name="flat")(y)
    y = L.Dropout(0.0, name="drop")(y)
    return keras.Model(x, L.Dense(2, name="head")(y), name="concatenation")


def depthwise():
    x = keras.Input((9, 9, 3), name="image")
    y = L.Conv2D(8, 3, padding="same", name="expand")(x)
    y = L.BatchNormalization(name="expand_bn")(y)
    y = L.Activation("relu6", name="expand_relu")(y)
    y = L.ZeroPadding2D(1, name="pad")(y)
    y = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(y)
    y = L.BatchNormalization(name="dw_bn")(y)
    y = L.ReLU(name="dw_relu")(y)
    y = L.SeparableConv2D(6, 3, padding="same", activation="relu", name="sep")(y)
    y = L.GlobalMaxPooling2D(name="pool")(y)
    return keras.Model(x, L.Dense(2, name="head")(y), name="depthwise")


def squeeze_excitation():
    x = keras.Input((6, 6, 3), name="image")
    y = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(x)
    s = L.GlobalAveragePooling2D(name="squeeze")(y)
    s = L.Dense(4, activation="relu", name="reduce")(s)
    s = L.Dense(8, activation="sigmoid", name="expand")(s)
    s = L.Reshape((1, 1, 8), name="reshape")(s)
    y = L.Multiply(name="excite")([y, s])
    y = L.Conv2D(5, 3, padding="same", activation="relu", name="after")(y)
    y = L.AveragePooling2D(2, name="pool")(y)
    y = L.Flatten(name="flat")(y)
    return keras.Model(x, L.Dense(2, name="head")(y), name="squeeze_excitation")


def dense_after_flatten():
    model = keras.Sequential([
        keras.Input((5, 5, 2)),
        L.Conv2D(6, 3, activation="relu", name="conv"),
        L.Flatten(name="flat"),
        L.Dense(8, activation="relu", name="hidden"),
        L.Dense(3, name="head"),
    ], name="dense_after_flatten")
    return model


def operations():
    """Elementwise `keras.ops` calls in the graph (hard swish: x * relu6(x + 3) / 6)."""
    x = keras.Input((6, 6, 3), name="image")
    a = L.Conv2D(8, 3, padding="same", name="conv")(x)
    gate = L.ReLU(6.0, name="relu6")(a + 3.0) * (1.0 / 6.0)
    a = a * gate
    b = L.Conv2D(8, 3, padding="same", name="branch")(a)
    a = keras.ops.relu(a + b)
    a = L.GlobalAveragePooling2D(name="pool")(a)
    return keras.Model(x, L.Dense(2, name="head")(a), name="operations")


BUILDERS = {
    "operations": (operations, {"conv": 4, "branch": 4, "head": 2}),
    "residual": (residual, {"stem": 4, "inner": 3, "outer": 4, "head": 3}),
    "concatenation": (concatenation, {"left": 2, "right": 3, "mix": 2, "head": 2}),
    "depthwise": (depthwise, {"expand": 4, "dw": 8, "sep": 3, "head": 2}),
    "squeeze_excitation": (squeeze_excitation, {"conv": 4, "reduce": 2, "expand": 4,
                                                "after": 3, "head": 2}),
    "dense_after_flatten": (dense_after_flatten, {"conv": 3, "hidden": 4, "head": 3}),
}


def _inputs(model, num=4, seed=1):
    shape = (num,) + tuple(model.inputs[0].shape[1:])
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _assert_same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.abs(a).max()), 1e-3)
    np.testing.assert_allclose(a, b, atol=1e-5 * scale, rtol=0)


def _width(layer):
    return getattr(layer, "filters", None) or getattr(layer, "units", None) or (
        layer.kernel.shape[-2] * layer.depth_multiplier)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_shrink_of_pruned_equals_pruned_in_inference_and_after_a_training_step(name):
    build, widths = BUILDERS[name]
    model = _randomise(build())
    pruned, report = prune_channels(model, 0.5)
    small = shrink(pruned)
    assert {layer: _width(small.get_layer(layer)) for layer in widths} == widths
    for layer, width in widths.items():
        assert report.layers[layer]["channels_after"] == width
    assert small.count_params() == report.total("parameters")[1] + sum(
        layer.count_params() for layer in small.layers if layer.name not in report.layers)
    x = _inputs(model)
    _assert_same(small(x), pruned(x))
    assert np.abs(np.asarray(pruned(x)) - np.asarray(model(x))).max() > 1e-3  # really pruned
    # One training step of both (SGD, the same batch): still the same function.
    y = np.random.default_rng(2).standard_normal(
        (len(x),) + tuple(model.outputs[0].shape[1:])).astype("float32")
    for candidate in (pruned, small):
        candidate.compile(keras.optimizers.SGD(0.1), "mse")
        candidate.train_on_batch(x, y)
    _assert_same(small(x), pruned(x))
    _assert_same(small(x, training=True), pruned(x, training=True))


def test_residual_groups_pruned_channels_and_zeros_by_hand():
    model = _randomise(residual())
    stem = model.get_layer("stem")
    outer = model.get_layer("outer")
    kernel = stem.kernel.numpy()
    # L1 scores of the residual group: mean over its producers (stem, outer) of the
    # mean |w| of each output column. Make channels 1, 3, 4, 6 the weakest.
    column_scale = np.array([1.0, 0.01, 1.0, 0.02, 0.03, 1.0, 0.04, 1.0], "float32")
    stem.kernel.assign(kernel / np.abs(kernel).mean(axis=(0, 1, 2)) * column_scale)
    outer_kernel = outer.kernel.numpy()
    outer.kernel.assign(outer_kernel / np.abs(outer_kernel).mean(axis=(0, 1, 2)) * column_scale)
    groups = [g["layers"] for g in channel_groups(model) if not g["fixed"]]
    assert ["stem", "stem_bn", "stem_relu", "outer", "outer_bn", "add", "add_relu",
            "pool"] in groups
    pruned, report = prune_channels(model, 0.5, criterion="l1")
    assert report.pruned["stem"] == [1, 3, 4, 6]
    for layer in ("stem", "outer"):
        assert not pruned.get_layer(layer).kernel.numpy()[..., [1, 3, 4, 6]].any()
        assert not pruned.get_layer(layer).bias.numpy()[[1, 3, 4, 6]].any()
    assert pruned.get_layer("stem").kernel.numpy()[..., [0, 2, 5, 7]].all()
    inner_kept = [i for i in range(6) if i not in report.pruned["inner"]]
    assert pruned.get_layer("outer").kernel.numpy()[:, :, inner_kept][..., [0, 2, 5, 7]].all()
    for layer in ("stem_bn", "outer_bn"):
        bn = pruned.get_layer(layer)
        assert not bn.gamma.numpy()[[1, 3, 4, 6]].any() and not bn.beta.numpy()[[1, 3, 4, 6]].any()
    # Readers of the group: inner's and head's input rows are zero.
    assert not pruned.get_layer("inner").kernel.numpy()[:, :, [1, 3, 4, 6]].any()
    assert not pruned.get_layer("head").kernel.numpy()[[1, 3, 4, 6]].any()
    # The original is untouched.
    assert model.get_layer("stem").kernel.numpy()[..., 1].any()
    # Hand-computed counts: stem 3*3*3*8 + 8 -> 3*3*3*4 + 4; 8x8 outputs.
    row = report.layers["stem"]
    assert (row["parameters_before"], row["parameters_after"]) == (224, 112)
    assert (row["macs_before"], row["macs_after"]) == (64 * 27 * 8, 64 * 27 * 4)
    inner = report.layers["inner"]  # 8 -> 4 inputs, 6 -> 3 outputs
    assert (inner["macs_before"], inner["macs_after"]) == (64 * 9 * 8 * 6, 64 * 9 * 4 * 3)
    assert report.layers["stem_bn"]["parameters_after"] == 16
    fixed = {tuple(g["layers"]): g["reasons"] for g in report.fixed_groups}
    assert fixed == {("image",): ["model input"], ("head",): ["model output"]}


def test_criteria_rank_by_hand():
    x = keras.Input((4,))
    model = keras.Model(x, L.Dense(2, name="out")(L.Dense(4, name="hidden")(x)))
    # Columns [1,-1,1,-1], [2,2,2,2], [0,0,0,5], [3,3,3,3]:
    # l1 (mean |w|) [1, 2, 1.25, 3]; l2 (rms) [1, 2, 2.5, 3]; std [1, 0, 2.165, 0].
    kernel = np.array([[1, 2, 0, 3], [-1, 2, 0, 3], [1, 2, 0, 3], [-1, 2, 5, 3]], "float32")
    model.get_layer("hidden").kernel.assign(kernel)
    assert prune_channels(model, 0.5, criterion="l1")[1].pruned == {"hidden": [0, 2]}
    assert prune_channels(model, 0.5, criterion="l2")[1].pruned == {"hidden": [0, 1]}
    assert prune_channels(model, 0.5, criterion="std")[1].pruned == {"hidden": [1, 3]}
    assert prune_channels(model, 0.25, criterion="std")[1].pruned == {"hidden": [1]}
    assert prune_channels(model, 0.5, criterion=lambda k: -k[0])[1].pruned == {"hidden": [1, 3]}
    assert prune_channels(model, 0.5, criterion="std")[1].criterion == "std"


def test_scope_model_round_to_and_refusal():
    x = keras.Input((4,))
    h1 = L.Dense(4, name="a")(x)
    h2 = L.Dense(4, name="b")(h1)
    model = keras.Model(x, L.Dense(1, name="out")(h2))
    model.get_layer("a").kernel.assign(np.full((4, 4), 0.01, "float32") * [1, 2, 3, 4])
    model.get_layer("b").kernel.assign(np.ones((4, 4), "float32") * [1, 2, 3, 4])
    # Global threshold: the 3 lowest of 8 channels are all in "a".
    _, report = prune_channels(model, 0.375, scope="model")
    assert report.pruned == {"a": [0, 1, 2]}
    _, report = prune_channels(model, 0.375, scope="model", round_to=2)
    assert report.pruned == {"a": [0, 1]}
    _, report = prune_channels(model, 0.375, scope="layer", round_to=2)
    assert report.pruned == {}  # floor(1.5) = 1 removed -> 3 kept -> rounded up to 4
    with pytest.raises(ValueError,
                       match="every channel of the group of 'a'.*Received: fraction=0.5"):
        prune_channels(model, 0.5, scope="model")
    _, report = prune_channels(model, 0.5, scope="model", exclude=["a"])
    assert report.pruned == {"b": [0, 1]}
    assert any(g["reasons"] == ["excluded (a)"] for g in report.fixed_groups)


def test_lambda_and_custom_layer_keep_their_channels_and_are_reported():
    class Twice(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2.0

    x = keras.Input((6, 6, 2), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="a")(x)
    b = L.Lambda(lambda t: t + 1.0, name="plus_one")(a)
    c = L.Conv2D(4, 3, padding="same", activation="relu", name="c")(b)
    d = Twice(name="twice")(c)
    e = L.Conv2D(4, 3, padding="same", activation="relu", name="e")(d)
    y = L.GlobalAveragePooling2D(name="pool")(e)
    model = _randomise(keras.Model(x, L.Dense(2, name="head")(y)))
    pruned, report = prune_channels(model, 0.5)
    assert report.pruned == {"e": [i for i in report.pruned["e"]]} and len(report.pruned) == 1
    reasons = {tuple(g["layers"]): " ".join(g["reasons"]) for g in report.fixed_groups}
    assert "plus_one" in reasons[("a",)] and "Lambda" in reasons[("a",)]
    assert "twice" in reasons[("c",)]
    assert "plus_one" in str(report) and "twice" in str(report)
    small = shrink(pruned)
    assert [small.get_layer(n).filters for n in "ace"] == [4, 4, 2]
    x_data = _inputs(model)
    _assert_same(small(x_data), pruned(x_data))


def test_shrunk_plain_model_saves_without_tfemergent_classes(tmp_path):
    model = _randomise(squeeze_excitation())
    pruned, _ = prune_channels(model, 0.5)
    small = shrink(pruned)
    path = tmp_path / "small.keras"
    small.save(path)
    with zipfile.ZipFile(path) as archive:
        config = archive.read("config.json").decode()
    assert "tfemergent" not in config
    assert json.loads(config)["class_name"] == "Functional"
    loaded = keras.saving.load_model(path)
    x = _inputs(model)
    _assert_same(loaded(x), pruned(x))
    assert loaded.get_layer("conv").filters == 4


def test_fraction_zero_is_an_exact_copy():
    model = _randomise(concatenation())
    copy, report = prune_channels(model, 0.0)
    assert copy is not model and report.pruned == {}
    x = _inputs(model)
    np.testing.assert_array_equal(np.asarray(copy(x)), np.asarray(model(x)))
    assert [type(layer) for layer in copy.layers] == [type(layer) for layer in model.layers]
    assert report.parameter_ratio == 1.0 and report.mac_ratio == 1.0


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = L.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"fraction": 1.0}, "Received: fraction=1.0"),
        ({"fraction": -0.1}, "Received: fraction=-0.1"),
        ({"fraction": "half"}, "Received: fraction='half'"),
        ({"fraction": 0.5, "criterion": "l3"}, "Received: criterion='l3'"),
        ({"fraction": 0.5, "scope": "global"}, "Received: scope='global'"),
        ({"fraction": 0.5, "round_to": 0}, "Received: round_to=0"),
        ({"fraction": 0.5, "exclude": ["nope"]}, r"Received: exclude=\['nope'\]"),
        ({"fraction": 0.5, "exclude": 3}, "Received: exclude=3"),
        ({"fraction": 0.5, "criterion": lambda k: k[0, :2]}, "one score per output channel"),
    ],
)
def test_invalid_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        prune_channels(dense_after_flatten(), **arguments)


def test_invalid_models():
    with pytest.raises(ValueError, match="built.*Received: model="):
        prune_channels(keras.Sequential([L.Dense(2)]), 0.5)
    subclassed = Subclassed()
    subclassed(np.ones((1, 3), "float32"))
    with pytest.raises(ValueError, match="traced graph.*Received: model="):
        prune_channels(subclassed, 0.5)
    with pytest.raises(ValueError, match="keras.Model.*Received: model="):
        prune_channels("model", 0.5)


def test_report_table_and_dict():
    _, report = prune_channels(_randomise(residual()), 0.5)
    assert isinstance(report, ChannelPruningReport)
    table = str(report).splitlines()
    assert table[0].split() == ["layer", "type", "channels", "parameters", "MACs"]
    assert table[1].split()[:5] == ["stem", "Conv2D", "8", "->", "4"]
    assert any(line.startswith("fixed: image") for line in table)
    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["layers"]["inner"]["channels_after"] == 3
    assert as_dict["mac_ratio"] == pytest.approx(report.mac_ratio)
    with pytest.raises(ValueError, match="Received: column='flops'"):
        report.total("flops")


def test_docstring_examples():
    assert_docstring_examples(prune_module)
    assert_docstring_examples(report_module)


def test_nested_functional_and_sequential_models_are_flattened():
    inner_input = keras.Input((8, 8, 4))
    y = L.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inner_input)
    y = L.BatchNormalization(name="bn")(y)
    block = keras.Model(inner_input, L.Conv2D(4, 1, name="proj")(y), name="block")
    sequential = keras.Sequential([
        keras.Input((8, 8, 4)),
        L.Conv2D(5, 3, padding="same", activation="relu", name="conv"),
        L.Conv2D(4, 1, name="proj2"),
    ], name="seq")
    x = keras.Input((8, 8, 3), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="stem")(x)
    c = sequential(L.Add(name="add")([a, block(a)]))
    model = _randomise(keras.Model(x, L.Dense(2, name="head")(L.GlobalAveragePooling2D(
        name="pool")(c))))
    groups = {tuple(g["layers"]) for g in channel_groups(model) if not g["fixed"]}
    # stem, the block's projection and the Add are one group; the inner "conv" of the
    # Sequential model is renamed "conv_1" (the block's "conv" came first).
    assert ("stem", "proj", "add") in groups and ("conv_1",) in groups
    copy, _ = prune_channels(model, 0.0)
    assert [layer.name for layer in copy.layers] == [
        "image", "stem", "conv", "bn", "proj", "add", "conv_1", "proj2", "pool", "head"]
    x_data = _inputs(model)
    np.testing.assert_array_equal(np.asarray(copy(x_data)), np.asarray(model(x_data)))
    pruned, report = prune_channels(model, 0.5)
    small = shrink(pruned)
    assert [small.get_layer(n).filters for n in ("stem", "conv", "conv_1", "proj2")] == [2, 3, 3, 2]
    _assert_same(small(x_data), pruned(x_data))
    assert report.layers["bn"]["channels_after"] == 3


def test_a_python_lambda_is_recreated_not_shared():
    x = keras.Input((4,), name="x")
    h = L.Dense(4, activation="relu", name="hidden")(x)
    h = L.Lambda(lambda t: t * 3.0, name="triple")(h)
    model = _randomise(keras.Model(x, L.Dense(1, name="out")(L.Dense(6, name="wide")(h))))
    pruned, _ = prune_channels(model, 0.5)
    small = shrink(pruned)
    assert small.get_layer("triple") is not model.get_layer("triple")
    assert small.get_layer("triple") is not pruned.get_layer("triple")
    assert small.get_layer("hidden").units == 4 and small.get_layer("wide").units == 3
    data = np.random.default_rng(0).standard_normal((3, 4)).astype("float32")
    _assert_same(small(data), pruned(data))


def test_segment_cnn_with_add_ons_prunes_and_shrinks_exactly():
    from tfemergent.models import SegmentCNN

    add_ons = [{"segment": 0, "source": "input", "target": 1, "kernel_size": 5},
               {"segment": 1, "source": "input", "target": 1, "kernel_size": 3}]
    model = SegmentCNN((8, 8, 2), 3, segments=[[6, 6], [8, 4]], add_ons=add_ons,
                       seed=1).build()
    pruned, report = prune_channels(model, 0.5, criterion="std")
    # An add-on shares its target's channels: pruned with them, masks zeroed too.
    assert report.layers["add_on_0_input_1_k5"]["channels_after"] == 3
    conv = pruned.get_layer("conv_0_1")
    dropped = report.pruned["conv_0_1"]
    assert not conv.kernel_mask.numpy()[:, dropped].any()
    assert not pruned.get_layer("add_on_0_input_1_k5").connection_mask.numpy()[:, dropped].any()
    small = shrink(pruned)
    assert [small.get_layer(n).filters for n in ("conv_0_0", "conv_0_1", "conv_1_0",
                                                 "conv_1_1")] == [3, 3, 4, 2]
    assert SegmentCNN.from_model(small).conv_names == ["conv_0_0", "conv_0_1", "conv_1_0",
                                                       "conv_1_1"]
    x = np.random.default_rng(0).standard_normal((3, 8, 8, 2)).astype("float32")
    _assert_same(small(x), pruned(x))


def test_misaligned_merge_is_fixed_and_does_not_touch_other_groups():
    """NASNet's pattern: Add(concat(conv of 4, conv of 4), conv of 8) -- not aligned.

    The group's first space is 4 wide; numbering it 4 wide made the 8-wide member spill
    into the next group's channel numbers (and prune them there)."""
    x = keras.Input((6, 6, 2), name="image")
    wide = L.Conv2D(8, 1, name="wide")(x)
    half_a = L.Conv2D(4, 1, name="half_a")(x)
    half_b = L.Conv2D(4, 1, name="half_b")(x)
    y = L.Add(name="add")([L.Concatenate(name="cat")([half_a, half_b]), wide])
    other = L.Conv2D(6, 3, padding="same", activation="relu", name="other")(y)
    y = L.GlobalAveragePooling2D(name="pool")(other)
    model = _randomise(keras.Model(x, L.Dense(2, name="head")(y)))
    groups = channel_groups(model)
    merged = next(g for g in groups if "wide" in g["layers"])
    assert merged["num_channels"] == 8 and "do not line up" in merged["fixed"][0]
    pruned, report = prune_channels(model, 0.5)
    assert report.pruned == {"other": report.pruned["other"]} and len(report.pruned["other"]) == 3
    small = shrink(pruned)
    assert [small.get_layer(n).filters for n in ("wide", "half_a", "half_b", "other")] == [
        8, 4, 4, 3]
    _assert_same(small(_inputs(model)), pruned(_inputs(model)))
