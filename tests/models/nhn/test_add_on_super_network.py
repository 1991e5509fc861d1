"""AddOnSuperNetwork: equals the SegmentCNN with the active add-ons; frozen base; gates;
exact SGD steps; the direction search by standard deviation; config; errors."""

import importlib
import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from docstring_examples import assert_docstring_examples

from tfemergent.layers import AddOnConv2D, MaskedConv2D
from tfemergent.models import AddOnSuperNetwork, SegmentCNN
from tfemergent.search import LocationSpace

module = importlib.import_module("tfemergent.models.nhn.add_on_super_network")

SEGMENTS = [[3, {"filters": 4, "kernel_size": 5}, 4], [{"filters": 5, "kernel_size": 5}, 6]]
IMAGES = np.random.default_rng(0).normal(size=(4, 8, 8, 2)).astype("float32")
LABELS = np.array([0, 2, 1, 2])


def _base(seed=3, masks=True):
    model = SegmentCNN((8, 8, 2), 3, SEGMENTS, seed=seed).build()
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, MaskedConv2D):
            if masks:  # a pruned base: masks must be copied and kept
                mask = rng.random(layer.kernel_mask.shape) < 0.6
                mask[0] = True
                layer.set_kernel_mask(mask)
            layer.bias.assign(rng.normal(scale=0.1, size=layer.bias.shape))
    return model


def _network(**kwargs):
    return AddOnSuperNetwork.from_model(_base(), seed=5, **kwargs)


def _randomise_add_ons(network, seed=9):
    rng = np.random.default_rng(seed)
    network.set_add_on_weights(
        {key: rng.normal(scale=0.3, size=value.shape) for key, value in
         network.add_on_weights().items()}
    )


def test_possible_add_ons_and_location_space():
    network = _network()
    # per segment and kernel size: 1 + 2 + 3 sources (3 layers), 1 + 2 (2 layers)
    assert len(network.possible_add_ons) == 2 * (6 + 3)
    assert network.add_on_gates.shape == (18,)
    space = network.location_space()
    assert isinstance(space, LocationSpace)
    assert space.segment_sizes == (3, 2) and space.kernel_sizes == (3, 5)
    spec = network.spec
    from_space = spec.add_ons_from_locations(space.possible_add_ons())
    keys = ("segment", "source", "target", "kernel_size")
    assert [{k: a[k] for k in keys} for a in from_space] == network.possible_add_ons
    without_input = _network(include_segment_input=False, kernel_sizes=(5,))
    assert len(without_input.possible_add_ons) == 3 + 1
    assert all(a["source"] != "input" for a in without_input.possible_add_ons)


@pytest.mark.parametrize(
    "genome",
    [
        [-1] * 10,
        [-1, 1, 2, 0, -1] + [0, -1, 0, -1, 1],
        [0, 0, 1, 0, 0] + [0, 1, 2, 0, 1],
    ],
)
def test_the_active_add_ons_compute_the_segment_cnn_with_those_add_ons(genome):
    network = _network()
    _randomise_add_ons(network)
    network.set_genome(genome)
    layer = network.add_on_layer({"segment": 1, "source": "input", "target": 1,
                                  "kernel_size": 5})
    layer.set_connection_mask(np.random.default_rng(1).random((4, 6)) < 0.5)
    space = network.location_space()
    add_ons = network.spec.add_ons_from_locations(space.decode(genome))
    # The SegmentCNN with these add-ons, built independently; weights copied by name.
    spec = network.spec.with_add_ons(add_ons)
    model = spec.build()
    for target in model.layers:
        if isinstance(target, (MaskedConv2D, AddOnConv2D, keras.layers.Dense)):
            target.set_weights(network.get_layer(target.name).get_weights())
    expected = model(IMAGES).numpy()
    np.testing.assert_allclose(network(IMAGES).numpy(), expected, atol=1e-5)
    compiled = tf.function(lambda x: network(x))
    np.testing.assert_allclose(compiled(IMAGES).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(network.to_model()(IMAGES).numpy(), expected, atol=1e-5)
    assert len(network.active_add_ons) == sum(gene != -1 for gene in genome)
    if not network.active_add_ons:
        np.testing.assert_allclose(expected, _base()(IMAGES).numpy(), atol=1e-6)


def test_base_weights_are_copied_frozen_and_unchanged_by_training():
    base = _base()
    network = AddOnSuperNetwork.from_model(base, seed=5)
    names = network.spec.conv_names + ["head"]
    for name in names:
        for copied, original in zip(network.get_layer(name).weights, base.get_layer(name).weights):
            np.testing.assert_array_equal(copied.numpy(), original.numpy())
    trainable = {id(w) for w in network.trainable_weights}
    assert len(trainable) == len(network.possible_add_ons)  # the add-on kernels only
    before = {name: [w.numpy() for w in network.get_layer(name).weights] for name in names}
    network.set_genome([-1, 1, 2, 0, -1] + [0, -1, 0, -1, 1])
    network.train_add_ons(IMAGES, LABELS, batch_size=2, learning_rate=0.1)
    for name in names:
        for value, weight in zip(before[name], network.get_layer(name).weights):
            np.testing.assert_array_equal(weight.numpy(), value)


def test_inactive_add_ons_get_zero_gradient_and_stay_unchanged():
    network = _network()
    _randomise_add_ons(network)
    genome = [-1, 1, -1, 0, -1] + [-1, -1, 0, -1, -1]
    network.set_genome(genome)
    active = {network.add_on_layer(a).kernel.path for a in network.active_add_ons}
    assert len(active) == 3

    @tf.function
    def gradients(images, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, network(images))
            )
        return tape.gradient(loss, network.trainable_weights)

    grads = gradients(IMAGES, LABELS)
    for weight, grad in zip(network.trainable_weights, grads):
        norm = float(tf.reduce_sum(tf.abs(grad)))
        if weight.path in active:
            assert norm > 0.0, weight.path
        else:
            assert norm == 0.0, weight.path
    before = network.add_on_weights()
    network.train_add_ons(IMAGES, LABELS, batch_size=2, learning_rate=0.1)
    after = network.add_on_weights()
    for key in before:
        changed = not np.array_equal(before[key], after[key])
        assert changed == (network.get_layer(key.split(".")[0]).kernel.path in active), key


def test_train_add_ons_is_sgd_with_momentum_by_hand():
    network = _network()
    _randomise_add_ons(network)
    network.set_genome([-1, 1, -1, -1, -1] + [-1] * 5)  # one add-on: layer 0 -> 1
    layer = network.add_on_layer({"segment": 0, "source": 0, "target": 1, "kernel_size": 3})
    variables = network.trainable_weights

    @tf.function
    def loss_and_gradients(images, labels):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, network(images))
            )
        return loss, tape.gradient(loss, variables)

    def gradient(images, labels):
        loss, grads = loss_and_gradients(images, labels)
        return float(loss), {w.path: g.numpy() for w, g in zip(variables, grads)}

    w0 = layer.kernel.numpy()
    loss1, g1 = gradient(IMAGES[:2], LABELS[:2])
    # Two batches by hand: v1 = -lr g1, w1 = w0 + v1; v2 = m v1 - lr g2(w1), w2 = w1 + v2.
    mean_loss = network.train_add_ons(IMAGES, LABELS, batch_size=2, learning_rate=0.1,
                                      momentum=0.5)
    w2 = layer.kernel.numpy()
    layer.kernel.assign(w0 - 0.1 * g1[layer.kernel.path])
    loss2, g2 = gradient(IMAGES[2:], LABELS[2:])
    v1 = -0.1 * g1[layer.kernel.path]
    expected = w0 + v1 + (0.5 * v1 - 0.1 * g2[layer.kernel.path])
    np.testing.assert_allclose(w2, expected, atol=1e-6)
    assert mean_loss == pytest.approx((loss1 + loss2) / 2, rel=1e-5)


def test_accuracy_counts_the_argmax():
    network = _network()
    predicted = np.argmax(network(IMAGES).numpy(), axis=1)
    labels = predicted.copy()
    labels[1] = (labels[1] + 1) % 3
    assert network.accuracy(IMAGES, labels, batch_size=3) == 0.75


def test_direction_search_keeps_the_connections_of_highest_std():
    network = _network(kernel_sizes=(3,))
    add_on = {"segment": 1, "source": 0, "target": 1, "kernel_size": 3}
    network.set_add_ons([add_on])
    layer = network.add_on_layer(add_on)  # (in, out) = (5, 6): 30 connections -> keep 3
    kernel = np.zeros((3, 3, 5, 6), "float32")
    stds = np.arange(30, dtype="float32").reshape(5, 6) / 10.0
    pattern = np.array([1.0, -1.0] * 4 + [0.0]).reshape(3, 3)  # mean 0, std sqrt(8/9)
    kernel[:] = pattern[:, :, None, None] * stds[None, None]
    kernel[:, :, 0, 0] += 100.0  # a large but flat shift adds no std
    layer.kernel.assign(kernel)
    masks = network.select_directions(density=0.1)
    assert list(masks) == ["add_on_1_0_1_k3"]
    expected = np.zeros((5, 6), "int64")
    expected[4, 3:] = 1  # the 3 largest stds: 2.7, 2.8, 2.9
    np.testing.assert_array_equal(masks["add_on_1_0_1_k3"], expected)
    np.testing.assert_array_equal(layer.connection_mask.numpy(), expected)
    assert float(np.abs(layer.kernel.numpy()[:, :, expected == 0]).sum()) == 0.0
    # round(0.1 * in * out), at least one, per add-on.
    other = {"segment": 0, "source": "input", "target": 0, "kernel_size": 3}  # (2, 3)
    network.set_add_ons([add_on, other])
    masks = network.select_directions(density=0.1)
    assert int(masks["add_on_0_input_0_k3"].sum()) == 1  # round(0.6) = 1
    assert int(masks["add_on_1_0_1_k3"].sum()) == 3  # already sparse: keeps its 3
    # A masked connection is never connected again: density 0.5 keeps the 3 left.
    masks = network.select_directions(density=0.5)
    assert int(masks["add_on_1_0_1_k3"].sum()) == 3
    assert int(layer.connection_mask.numpy().sum()) == 3


def test_add_on_initializers():
    zeros = _network()
    assert all(not value.any() for value in zeros.add_on_weights().values())
    zeros.set_genome([0, 1, 2, 0, 1] + [0, 1, 2, 0, 1])  # every gene on: still the base
    np.testing.assert_allclose(zeros(IMAGES), _base()(IMAGES), atol=1e-6)
    smooth = _network(add_on_initializer="smooth")
    again = _network(add_on_initializer="smooth")
    he = _network(add_on_initializer="he_normal")
    for key, value in smooth.add_on_weights().items():
        np.testing.assert_array_equal(again.add_on_weights()[key], value)  # seeded
        # the smoothing lowers the spread (about 0.35 of He normal's for interior taps)
        assert 0.0 < value.std() < he.add_on_weights()[key].std()


def test_set_add_ons_with_a_connection_mask_and_to_model():
    network = _network(kernel_sizes=(5,))
    mask = np.eye(2, 3)
    network.set_add_ons(
        [{"segment": 0, "source": "input", "target": 0, "kernel_size": 5,
          "connection_mask": mask}]
    )
    model = network.to_model(name="with_add_on")
    layer = model.get_layer("add_on_0_input_0_k5")
    np.testing.assert_array_equal(layer.connection_mask.numpy(), mask)
    assert model.name == "with_add_on" and all(w.trainable for w in model.trainable_weights)
    assert SegmentCNN.from_model(model).add_ons[0]["kernel_size"] == 5


def test_config_round_trip_and_keras_file(tmp_path):
    network = _network(kernel_sizes=(3,), include_segment_input=False)
    network.set_genome([-1, 1, 2, -1, 1])
    config = network.get_config()
    assert config["kernel_sizes"] == [3] and config["include_segment_input"] is False
    restored = AddOnSuperNetwork.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    restored.set_weights(network.get_weights())
    np.testing.assert_allclose(restored(IMAGES), network(IMAGES), atol=1e-6)
    assert restored.active_add_ons == network.active_add_ons
    path = str(tmp_path / "super.keras")
    network.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, AddOnSuperNetwork)
    np.testing.assert_allclose(loaded(IMAGES), network(IMAGES), atol=1e-6)
    registered = keras.saving.get_registered_name(AddOnSuperNetwork)
    assert registered == "tfemergent>AddOnSuperNetwork"


def test_from_model_and_load_base_weights_refuse_other_models():
    with_add_on = SegmentCNN(
        (8, 8, 2), 3, SEGMENTS,
        add_ons=[{"segment": 0, "source": "input", "target": 1, "kernel_size": 3}],
    ).build()
    with pytest.raises(ValueError, match="must have no add-ons.*Received"):
        AddOnSuperNetwork.from_model(with_add_on)
    network = _network()
    other = SegmentCNN((8, 8, 2), 3, [[3, 4], [5]]).build()
    with pytest.raises(ValueError, match="base structure.*Received: input"):
        network.load_base_weights(other)
    with pytest.raises(ValueError, match="Argument `model`.*Received"):
        network.load_base_weights(keras.Sequential([keras.layers.Dense(2)]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kernel_sizes": (7,)}, "Received: kernel_sizes=(7,)"),
        ({"kernel_sizes": (3, 3)}, "Received: kernel_sizes=(3, 3)"),
        ({"kernel_sizes": ()}, "Received: kernel_sizes=()"),
        ({"include_segment_input": "yes"}, "Received: include_segment_input='yes'"),
        ({"num_classes": 1}, "Received: num_classes=1"),
        ({"segments": []}, "Received: segments=[]"),
        ({"add_on_initializer": "ones"}, "Received: add_on_initializer='ones'"),
    ],
)
def test_invalid_constructor_arguments(kwargs, message):
    arguments = {"image_shape": (8, 8, 2), "num_classes": 3, "segments": SEGMENTS, **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        AddOnSuperNetwork(**arguments)


def test_invalid_verb_arguments():
    network = _network(include_segment_input=False)
    with pytest.raises(ValueError, match="not a possible add-on.*Received: add_ons"):
        network.set_add_ons([{"segment": 0, "source": "input", "target": 1, "kernel_size": 3}])
    with pytest.raises(ValueError, match="at most one add-on per target.*Received"):
        network.set_add_ons([{"segment": 0, "source": 0, "target": 2, "kernel_size": 3},
                             {"segment": 0, "source": 1, "target": 2, "kernel_size": 3}])
    with pytest.raises(ValueError, match=r"candidate\[1\].*Received: candidate\[1\]=0"):
        network.set_genome([-1, 0, -1, -1, -1] * 2)
    with pytest.raises(ValueError, match="not an add-on weight.*Received: key='conv_0_0.kernel'"):
        network.set_add_on_weights({"conv_0_0.kernel": np.zeros((3, 3, 2, 3))})
    with pytest.raises(ValueError, match=r"shape \(3, 3, 3, 4\). Received: shape=\(1,\)"):
        network.set_add_on_weights({"add_on_0_0_1_k3.kernel": np.zeros(1)})
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        network.train_add_ons(IMAGES, LABELS, batch_size=0)
    with pytest.raises(ValueError, match="Received: learning_rate=0"):
        network.train_add_ons(IMAGES, LABELS, learning_rate=0)
    with pytest.raises(ValueError, match=r"Received: labels with shape \(3,\)"):
        network.train_add_ons(IMAGES, LABELS[:3])
    with pytest.raises(ValueError, match=r"Received: images with shape \(4, 8, 8\)"):
        network.accuracy(IMAGES[..., 0], LABELS)
    with pytest.raises(ValueError, match="Received: density=0"):
        network.select_directions(density=0)


def test_add_on_super_network_docstring_examples():
    assert_docstring_examples(module)
