"""SegmentCNN: the spec, the built model's structure and names, add-ons, smooth init."""

import importlib
import json

import keras
import numpy as np
import pytest
from docstring_examples import assert_docstring_examples

from tfemergent.initializers import SmoothKernel
from tfemergent.layers import AddOnConv2D, MaskedConv2D
from tfemergent.models import SegmentCNN

segment_cnn_module = importlib.import_module("tfemergent.models.nhn.segment_cnn")

SEGMENTS = [[3, {"filters": 4, "kernel_size": 5}, 4], [{"filters": 5, "kernel_size": 5}, 2]]
ADD_ONS = [
    {"segment": 0, "source": "input", "target": 2, "kernel_size": 5},
    {"segment": 0, "source": 0, "target": 2, "kernel_size": 3, "connection_mask": np.eye(3, 4)},
    {"segment": 1, "source": "input", "target": 1, "kernel_size": 3, "connection_density": 0.5},
]


def _spec(**overrides):
    kwargs = {
        "input_shape": (8, 8, 2),
        "num_classes": 3,
        "segments": SEGMENTS,
        "add_ons": ADD_ONS,
        "seed": 7,
    }
    return SegmentCNN(**{**kwargs, **overrides})


def test_structure_and_names():
    spec = _spec()
    model = spec.build()
    assert spec.conv_names == ["conv_0_0", "conv_0_1", "conv_0_2", "conv_1_0", "conv_1_1"]
    assert sorted(layer.name for layer in model.layers) == sorted(spec.layer_names())
    assert [model.get_layer(n).filters for n in spec.conv_names] == [3, 4, 4, 5, 2]
    assert [model.get_layer(n).kernel_size for n in spec.conv_names] == [3, 5, 3, 5, 3]
    assert all(type(model.get_layer(n)) is MaskedConv2D for n in spec.conv_names)
    add_on_names = [SegmentCNN.add_on_name(a) for a in spec.add_ons]
    assert add_on_names == ["add_on_0_0_2_k3", "add_on_0_input_2_k5", "add_on_1_input_1_k3"]
    assert all(type(model.get_layer(n)) is AddOnConv2D for n in add_on_names)
    # Wiring: add-ons read the segment input (image / pooled segment 0) or a ReLU output.

    def source_of(name):
        tensor = model.get_layer(name)._inbound_nodes[0].input_tensors[0]
        return tensor._keras_history.operation.name

    assert source_of("add_on_0_input_2_k5") == "image"
    assert source_of("add_on_0_0_2_k3") == "relu_0_0"
    assert source_of("add_on_1_input_1_k3") == "pool_0"
    assert source_of("conv_1_0") == "pool_0"
    adds = model.get_layer("preactivation_0_2")._inbound_nodes[0].input_tensors
    assert sorted(t._keras_history.operation.name for t in adds) == [
        "add_on_0_0_2_k3", "add_on_0_input_2_k5", "conv_0_2",
    ]
    assert model.get_layer("add_on_0_input_2_k5").connection_mask.shape == (2, 4)
    mask = model.get_layer("add_on_0_0_2_k3").connection_mask.numpy()
    np.testing.assert_array_equal(mask, np.eye(3, 4))
    mask = model.get_layer("add_on_1_input_1_k3").connection_mask.numpy()
    assert int(mask.sum()) == 4  # 0.5 * 4 * 2
    assert model.output_shape == (None, 3)
    assert model.get_layer("head").activation is keras.activations.softmax


def test_the_model_equals_its_definition():
    """conv + add-ons -> ReLU; max pool; average pool; softmax, recomputed with numpy."""
    spec = SegmentCNN((4, 4, 1), 2, segments=[[2, 2], [1]], add_ons=[
        {"segment": 0, "source": "input", "target": 1, "kernel_size": 3}], seed=1)
    model = spec.build()
    images = np.random.default_rng(0).standard_normal((3, 4, 4, 1)).astype("float32")
    for layer in model.layers:
        if isinstance(layer, MaskedConv2D):
            layer.bias.assign(np.linspace(-0.1, 0.1, layer.filters))

    def conv(x, name):
        return keras.ops.convert_to_numpy(model.get_layer(name)(x))

    relu = lambda x: np.maximum(x, 0)  # noqa: E731
    a = relu(conv(images, "conv_0_0"))
    b = relu(conv(a, "conv_0_1") + conv(images, "add_on_0_input_1_k3"))
    pooled = b.reshape(3, 2, 2, 2, 2, 2).max(axis=(2, 4))
    c = relu(conv(pooled, "conv_1_0")).mean(axis=(1, 2))
    head = model.get_layer("head")
    logits = c @ head.kernel.numpy() + head.bias.numpy()
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model(images).numpy(), expected, atol=1e-5)


def test_smooth_init_and_seeds():
    smooth = _spec().build()
    kernel = smooth.get_layer("conv_0_1").kernel.numpy()
    expected = SmoothKernel("he_normal", seed=7 * 1000 + 1)(kernel.shape)
    np.testing.assert_allclose(kernel, expected, atol=1e-6)
    again = _spec().build()
    for a, b in zip(smooth.weights, again.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    plain = _spec(smooth_init=False).build().get_layer("conv_0_1").kernel.numpy()
    expected = keras.initializers.HeNormal(seed=7001)(kernel.shape)
    np.testing.assert_allclose(plain, expected, atol=1e-6)


def test_config_round_trip_and_from_model(tmp_path):
    spec = _spec()
    config = json.loads(json.dumps(spec.get_config()))
    assert SegmentCNN.from_config(config).get_config() == spec.get_config()
    assert config["segments"][0][0] == {"filters": 3, "kernel_size": 3}
    assert config["add_ons"][0]["connection_mask"] == np.eye(3, 4).astype(int).tolist()
    model = spec.build()
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    recovered = SegmentCNN.from_model(loaded)
    assert recovered.segments == spec.segments
    assert recovered.input_shape == spec.input_shape and recovered.num_classes == 3
    def locations(add_ons):
        return [(a["segment"], a["source"], a["target"], a["kernel_size"]) for a in add_ons]

    assert locations(recovered.add_ons) == locations(spec.add_ons)
    images = np.random.default_rng(1).standard_normal((2, 8, 8, 2)).astype("float32")
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-6)


def test_add_on_locations_and_genome():
    spec = SegmentCNN((8, 8, 1), 2, segments=[[2, 2, 2, 2]], add_ons=[])
    locations = spec.add_on_locations()
    # per target l: sources "input" and 0..l-1 -> 1 + 2 + 3 + 4 = 10, times two sizes
    assert len(locations) == 20
    assert {"segment": 0, "source": 2, "target": 3, "kernel_size": 5} in locations
    genome = [locations[0], {"segment": 0, "source": 1, "target": 3, "kernel_size": 3}]
    built = spec.with_add_ons(genome).build()
    assert "add_on_0_1_3_k3" in [layer.name for layer in built.layers]
    wider = spec.with_filters([[1, 2, 3, 4]])
    assert [layer["filters"] for layer in wider.segments[0]] == [1, 2, 3, 4]


def test_from_model_refuses_other_models():
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2, name="head")]
    )
    with pytest.raises(ValueError, match="not a model built by SegmentCNN.build.*Received: model="):
        SegmentCNN.from_model(model)
    spec_model = _spec(add_ons=[]).build()
    extra = keras.Model(spec_model.input, keras.layers.Dense(2, name="extra")(spec_model.output))
    with pytest.raises(ValueError, match="differ from the layers"):
        SegmentCNN.from_model(extra)


def _add_on(**overrides):
    return {"segment": 0, "source": "input", "target": 1, "kernel_size": 3, **overrides}


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"input_shape": (8, 8)}, "input_shape"),
        ({"input_shape": (2, 2, 1), "segments": [[1], [1], [1]]}, "at least 4 x 4"),
        ({"num_classes": 1}, "num_classes"),
        ({"segments": []}, "segments"),
        ({"segments": [[]]}, "segments[0]"),
        ({"segments": [[{"filters": 2, "kernel_size": 7}]], "add_ons": []}, "kernel_size"),
        ({"segments": [[{"width": 2}]], "add_ons": []}, "segments[0][0]"),
        ({"segments": [[0]], "add_ons": []}, "filters"),
        ({"smoothing_sigma": 0.0}, "smoothing_sigma"),
        ({"smooth_init": "yes"}, "smooth_init"),
        ({"seed": -1}, "seed"),
        ({"add_ons": [_add_on(segment=2, target=0)]}, "segment"),
        ({"add_ons": [_add_on(source=1)]}, "['source']"),
        ({"add_ons": [_add_on(kernel_size=1)]}, "['kernel_size']"),
        ({"add_ons": [_add_on(kernel_size=3.0)]}, "['kernel_size']"),
        ({"add_ons": [{"segment": 0, "source": "input", "target": 1}]}, "misses keys"),
        ({"add_ons": [_add_on(to=2)]}, "unknown keys"),
        ({"add_ons": [_add_on(source=0, connection_mask=[[1, 0]])]}, "(3, 4)"),
        ({"add_ons": [_add_on(), _add_on(source=0)]}, "at most one add-on"),
        ({"add_ons": "none"}, "add_ons"),
    ],
)
def test_segment_cnn_invalid_arguments(overrides, message):
    with pytest.raises(ValueError, match="Received") as info:
        _spec(**overrides)
    assert message in str(info.value)


def test_segment_cnn_trains():
    keras.utils.set_random_seed(0)
    model = _spec().build()
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 8, 8, 2)), rng.integers(0, 3, 8)
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_segment_cnn_docstring_examples():
    assert_docstring_examples(segment_cnn_module)


def test_add_ons_from_a_location_genome():
    from tfemergent.search import LocationSpace

    spec = SegmentCNN((8, 8, 1), 2, segments=[[2, 2], [3, 3, 3]], seed=0)
    space = LocationSpace(segment_sizes=spec.segment_sizes, kernel_sizes=(3, 5))
    # 3x3 genes of layers 0..4, then 5x5 genes: 3x3 into layer 1 from the segment
    # input; 5x5 into layer 4 (segment 1, position 2) from its layer 1 (source 2).
    genome = [-1, 0, -1, -1, -1] + [-1, -1, -1, -1, 2]
    add_ons = spec.add_ons_from_locations(space.decode(genome), connection_density=0.5)
    assert add_ons == [
        {"segment": 0, "source": "input", "target": 1, "kernel_size": 3, "connection_density": 0.5},
        {"segment": 1, "source": 1, "target": 2, "kernel_size": 5, "connection_density": 0.5},
    ]
    model = spec.with_add_ons(add_ons).build()
    names = [layer.name for layer in model.layers if layer.name.startswith("add_on")]
    assert sorted(names) == ["add_on_0_input_1_k3", "add_on_1_1_2_k5"]
    # Every location of the space is a valid add-on of the spec.
    every = spec.add_ons_from_locations(space.possible_add_ons())
    assert len(every) == len(spec.add_on_locations()) == len(space.possible_add_ons())
    with pytest.raises(ValueError, match=r"locations\[0\]\[1\].*Received"):
        spec.add_ons_from_locations([(1, 2, 3)])
