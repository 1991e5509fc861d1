"""NeuronHierarchyBuilder on a tiny digits run: the stage table (order, counts, scores by
the formula, ablation), the final shrunk model, a resumed search, re-initialisation, errors."""

import importlib
from concurrent import futures
import json
import math
import random

import keras
import numpy as np
import pytest
from docstring_examples import assert_docstring_examples

from tfemergent import datasets
from tfemergent.analysis import count_parameters
from tfemergent.layers import AddOnConv2D, MaskedConv2D
from tfemergent.models import NeuronHierarchyBuilder, SegmentCNN

module = importlib.import_module("tfemergent.models.nhn.neuron_hierarchy_builder")

SEGMENTS = [[16, {"filters": 16, "kernel_size": 5}], [16, 16]]
TINY = {
    "training": {"epochs": 3, "batch_size": 32},
    "pruning": {"fraction": 0.7, "scope": "model"},  # the paper's one threshold
    "search": {"none_probability": 0.3, "num_cycles": 2, "population_size": 4,
               "num_parents": 2, "num_children": 1, "num_fresh": 1, "train_batches": 2,
               "batch_size": 32, "direction_epochs": 1},
    "latency_repeats": 2, "seed": 0, "verbose": 0,
}
CONFIGS = ("training", "pruning", "search")


def _merge(arguments, overrides):
    """``arguments`` with ``overrides``; the config dicts are merged key by key."""
    merged = dict(arguments)
    for key, value in overrides.items():
        if key in CONFIGS and isinstance(value, dict):
            value = {**merged.get(key, {}), **value}
        merged[key] = value
    return merged


def _tiny(directory=None):
    if directory is None:
        return TINY
    return _merge(TINY, {"search": {"directory": str(directory)}})


def _digits():
    x_train, y_train = datasets.load_numpy("digits", "train")
    x_test, y_test = datasets.load_numpy("digits", "test")
    x_train, x_test = x_train.astype("float32"), x_test.astype("float32")
    mean, std = x_train.mean(), x_train.std()
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


def _spec():
    return SegmentCNN((8, 8, 1), 10, SEGMENTS, seed=0)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("search")
    data = _digits()
    builder = NeuronHierarchyBuilder(_spec(), **_tiny(directory))
    return builder, data, builder.run(*data), directory


def _accuracy(model, images, labels):
    return float(np.mean(np.argmax(model.predict(images, verbose=0), axis=1) == labels))


def test_stage_table(tiny_run):
    outcome = tiny_run[2]
    stages = outcome["stages"]
    assert [row["stage"] for row in stages] == list(module.STAGES)
    for row in stages:
        assert row["test_error"] == pytest.approx(100.0 * (1.0 - row["test_accuracy"]))
        expected = math.sqrt((row["test_error"] / 2) ** 2 + (row["parameters"] / 1e6 / 25) ** 2)
        assert row["score"] == pytest.approx(expected, rel=1e-12)
        assert row["latency_ms"] > 0 and row["seconds"] >= 0
        assert row["physical_parameters"] <= row["stored_parameters"]
    base, pruned, retrained, _, final, _ = stages
    # 8x8 digits, 1 channel: conv 9*1*16+16, 25*16*16+16, pool, 9*16*16+16 twice, head 16*10+10
    assert base["parameters"] == base["stored_parameters"] == base["physical_parameters"] == (
        160 + 6416 + 2320 + 2320 + 170
    )
    assert outcome["pruning"]["pruned_kernel_fraction"] == pytest.approx(0.7, abs=0.01)
    assert pruned["parameters"] < 0.5 * base["parameters"]
    assert pruned["stored_parameters"] == base["stored_parameters"]  # masked, not removed
    # Retrained on the shrunk network (retraining can leave more channels to remove,
    # e.g. a channel without input whose bias became negative).
    assert retrained["stored_parameters"] == pruned["physical_parameters"]
    assert retrained["physical_parameters"] <= retrained["stored_parameters"]
    assert base["test_accuracy"] > 0.5 and retrained["test_accuracy"] > 0.8
    assert final["test_accuracy"] > 0.9
    assert [row["num_add_ons"] for row in stages] == [0, 0, 0] + [len(outcome["add_ons"])] * 2 + [0]


def test_the_final_model_and_its_add_ons(tiny_run):
    _, (_, _, x_test, y_test), outcome, _ = tiny_run
    model = outcome["model"]
    final = outcome["stages"][4]
    assert model.name == "nhn"
    assert final["test_accuracy"] == _accuracy(model, x_test, y_test)
    assert count_parameters(model) == {
        "stored": final["stored_parameters"], "effective": final["parameters"]
    }
    assert final["physical_parameters"] == final["stored_parameters"]  # returned shrunk
    assert outcome["add_ons"], "the tiny search should find add-ons (none_probability 0.3)"
    layers = {layer.name: layer for layer in model.layers if isinstance(layer, AddOnConv2D)}
    assert len(layers) == len(outcome["add_ons"])
    add_on_parameters = 0
    for add_on in outcome["add_ons"]:
        layer = layers[SegmentCNN.add_on_name(add_on)]
        possible = add_on["num_possible_connections"]
        assert add_on["num_connections"] == int(layer.connection_mask.numpy().sum())
        # Direction search: round(0.1 * in * out) kept (shrinking can only drop some).
        selectable = add_on["num_selectable_connections"]
        assert add_on["num_selected_connections"] == max(1, math.floor(0.1 * selectable + 0.5))
        assert 1 <= add_on["num_connections"] <= add_on["num_selected_connections"]
        assert possible <= selectable
        assert possible == layer.connection_mask.numpy().size
        add_on_parameters += add_on["kernel_size"] ** 2 * add_on["num_connections"]
    ablation = outcome["stages"][5]
    assert final["parameters"] - ablation["parameters"] == add_on_parameters
    # The ablation: the same network with the add-ons removed and nothing retrained.
    plain = SegmentCNN.from_model(model).with_add_ons([]).build()
    for layer in plain.layers:
        if isinstance(layer, MaskedConv2D) or layer.name == "head":
            layer.set_weights(model.get_layer(layer.name).get_weights())
    assert ablation["test_accuracy"] == _accuracy(plain, x_test, y_test)
    assert outcome["ablation_drop"] == pytest.approx(
        final["test_accuracy"] - ablation["test_accuracy"]
    )
    history = outcome["search"]["history"]
    assert [entry["trial_id"] for entry in history] == list(range(8))
    assert outcome["search"]["best_fitness"] == max(e["fitness"] for e in history[4:])
    assert outcome["genome"] == history[outcome["search"]["best_trial_id"]]["genome"]
    json.dumps({k: v for k, v in outcome.items() if k != "model"})


def test_a_second_run_resumes_the_search_and_gives_the_same_table(tiny_run):
    _, data, outcome, directory = tiny_run
    again = NeuronHierarchyBuilder(_spec(), **_tiny(directory)).run(*data)
    assert again["search"] == outcome["search"]
    assert again["add_ons"] == outcome["add_ons"]
    for first, second in zip(outcome["stages"], again["stages"]):
        for key in ("test_accuracy", "parameters", "stored_parameters", "physical_parameters"):
            assert first[key] == second[key], (first["stage"], key)


def test_reinitialise_keeps_the_structure_and_draws_new_weights():
    builder = NeuronHierarchyBuilder(_spec(), training={"retrain_from_scratch": True}, verbose=0)
    spec = _spec().with_add_ons(
        [{"segment": 1, "source": 0, "target": 1, "kernel_size": 3,
          "connection_mask": np.eye(16)}]
    )
    model = spec.build(name="pruned")
    model.get_layer("conv_0_1").set_kernel_mask(np.eye(16))
    fresh = builder._reinitialise(model, 1)
    assert fresh.name == "pruned"
    np.testing.assert_array_equal(fresh.get_layer("conv_0_1").kernel_mask.numpy(), np.eye(16))
    np.testing.assert_array_equal(
        fresh.get_layer("add_on_1_0_1_k3").connection_mask.numpy(), np.eye(16)
    )
    assert not np.allclose(fresh.get_layer("conv_0_0").kernel.numpy(),
                           model.get_layer("conv_0_0").kernel.numpy())
    assert count_parameters(fresh) == count_parameters(model)


def test_config_round_trip():
    builder = NeuronHierarchyBuilder(_spec(), **TINY)
    config = builder.get_config()
    assert config["search"]["num_cycles"] == 2 and config["search"]["kernel_sizes"] == [3, 5]
    restored = NeuronHierarchyBuilder.from_config(json.loads(json.dumps(config)))
    assert restored.get_config() == config
    options = {"pruning": {"granularity": "channel", "scope": "model", "channel_multiple": 4,
                           "rescale": True},
               "search": {"shared_weights": "per_cycle"}}
    builder = NeuronHierarchyBuilder(_spec(), executor=futures.ThreadPoolExecutor(2),
                                     **_merge(TINY, options))
    config = builder.get_config()
    for group, values in options.items():
        assert {name: config[group][name] for name in values} == values
    assert "executor" not in config  # a live object, given again to a restored builder
    assert NeuronHierarchyBuilder.from_config(config).get_config() == config


def _small_run(**overrides):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(96, 8, 8, 1)).astype("float32")
    labels = (images[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64")
    spec = SegmentCNN((8, 8, 1), 2, segments=[[4, 4], [8, 8]], seed=0)
    arguments = _merge({
        "training": {"epochs": 1}, "pruning": {"fraction": 0.5},
        "search": {"num_cycles": 2, "population_size": 4, "num_parents": 2,
                   "num_children": 1, "num_fresh": 1, "none_probability": 0.3,
                   "train_batches": 1, "batch_size": 16},
        "latency_repeats": 2, "verbose": 0,
    }, overrides)
    return NeuronHierarchyBuilder(spec, **arguments).run(images, labels, images[:32],
                                                         labels[:32])


def test_layer_scope_and_rescale():
    outcome = _small_run(pruning={"scope": "layer", "rescale": True})
    pruning = outcome["pruning"]
    assert pruning["scope"] == "layer"
    for name, row in pruning["layers"].items():
        # ceil/floor of half of each layer's kernels (4x1=4 ... 8x8=64 kernels)
        assert abs(row["num_pruned_kernels"] - row["num_kernels"] / 2) <= 0.5, name
    factors = pruning["rescale_factors"]
    assert list(factors) == list(pruning["layers"])
    assert all(np.isfinite(value) and value > 0 for value in factors.values())
    assert _small_run()["pruning"]["rescale_factors"] is None


def test_per_cycle_search_in_threads_equals_the_search_one_after_the_other():
    serial = _small_run(search={"shared_weights": "per_cycle"})
    with futures.ThreadPoolExecutor(2) as executor:
        parallel = _small_run(search={"shared_weights": "per_cycle"}, executor=executor)
    fitness = [[trial["fitness"] for trial in run["search"]["history"]]
               for run in (serial, parallel)]
    assert len(fitness[0]) == 8
    np.testing.assert_allclose(fitness[1], fitness[0], rtol=0, atol=1e-6)
    assert parallel["genome"] == serial["genome"]
    assert [row["test_accuracy"] for row in parallel["stages"]] == pytest.approx(
        [row["test_accuracy"] for row in serial["stages"]], abs=1e-6
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"spec": "cnn"}, "Received: spec='cnn'"),
        ({"spec": SegmentCNN((8, 8, 1), 10, SEGMENTS, add_ons=[
            {"segment": 0, "source": "input", "target": 1, "kernel_size": 3}])},
         "must have no add-ons"),
        ({"training": {"epochs": 0}}, "Received: epochs=0"),
        ({"training": {"retrain_epochs": -1}}, "Received: retrain_epochs=-1"),
        ({"pruning": {"fraction": 1.0}}, "Received: fraction=1.0"),
        ({"training": {"min_learning_rate": 1.0}}, "Received: min_learning_rate=1.0"),
        ({"search": {"kernel_sizes": (3, 7)}}, r"Received: kernel_sizes=\(3, 7\)"),
        ({"search": {"num_children": 3}}, "Received: num_children=3"),
        ({"search": {"num_children": 2, "num_fresh": 2, "num_parents": 3}}, "num_fresh=2"),
        ({"search": {"direction_density": 0.0}}, "Received: direction_density=0.0"),
        ({"search": {"validation_fraction": 1.0}}, "Received: validation_fraction=1.0"),
        ({"training": {"retrain_from_scratch": 1}}, "Received: retrain_from_scratch=1"),
        ({"search": {"directory": 5}}, "Received: directory=5"),
        ({"verbose": 3}, "Received: verbose=3"),
        ({"pruning": {"scope": "all"}}, "Received: scope='all'"),
        ({"pruning": {"channel_multiple": 8}}, "Received: channel_multiple=8, "
         "granularity='kernel'"),
        ({"pruning": {"granularity": "channel", "channel_multiple": 0}},
         "Received: channel_multiple=0"),
        ({"search": {"shared_weights": "merged"}}, "Received: shared_weights='merged'"),
        ({"pruning": {"rescale": "yes"}}, "Received: rescale='yes'"),
        ({"search": {"shared_weights": "per_cycle"}, "executor": 4}, "Received: executor=4"),
        ({"executor": futures.ThreadPoolExecutor(1)},
         "needs shared_weights='per_cycle'.*shared_weights='sequential'"),
        ({"pruning": 0.5}, "PruningConfig or a dict of its fields. Received: pruning=0.5"),
        ({"training": {"epoch": 3}}, r"unknown keys \[.epoch.\].*Received: training="),
    ],
)
def test_invalid_arguments(overrides, message):
    arguments = _merge({"spec": _spec(), **TINY}, overrides)
    with pytest.raises(ValueError, match=message):
        NeuronHierarchyBuilder(**arguments)


def _seeded_run(seed):
    """A tiny run of a spec without a seed (its weights follow the builder's seed)."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 8, 8, 1)).astype("float32")
    labels = (images[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64")
    spec = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]])
    builder = NeuronHierarchyBuilder(
        spec, training={"epochs": 1, "batch_size": 16}, pruning={"fraction": 0.5},
        search={"num_cycles": 1, "population_size": 3, "num_parents": 2, "num_children": 1,
                "num_fresh": 1, "none_probability": 0.3, "train_batches": 1, "batch_size": 16},
        seed=seed, latency_repeats=1, verbose=0,
    )
    outcome = builder.run(images, labels, images[:16], labels[:16])
    return outcome, [weight.copy() for weight in outcome["model"].get_weights()]


def test_runs_are_deterministic_per_seed_whatever_the_global_seeds():
    random.seed(5)
    first, first_weights = _seeded_run(0)
    # The results depend on the seed given only: other global seeds change nothing.
    keras.utils.set_random_seed(123)
    again, again_weights = _seeded_run(0)
    other, other_weights = _seeded_run(1)
    assert [w.shape for w in again_weights] == [w.shape for w in first_weights]
    for one, two in zip(first_weights, again_weights):
        np.testing.assert_array_equal(one, two)
    assert again["search"] == first["search"]
    assert [row["test_accuracy"] for row in again["stages"]] == [
        row["test_accuracy"] for row in first["stages"]
    ]
    assert [w.shape for w in other_weights] != [w.shape for w in first_weights] or any(
        not np.array_equal(one, two) for one, two in zip(first_weights, other_weights)
    )


def test_invalid_data():
    builder = NeuronHierarchyBuilder(_spec(), **TINY)
    images = np.zeros((10, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match=r"`x_train`.*Received: images with shape \(10, 8, 8\)"):
        builder.run(images[..., 0], np.zeros(10, int), images, np.zeros(10, int))
    with pytest.raises(ValueError, match=r"labels of `x_test`.*Received: labels with shape \(3,\)"):
        builder.run(images, np.zeros(10, int), images, np.zeros(3, int))
    with pytest.raises(ValueError, match="too few images"):
        builder.run(images[:1], np.zeros(1, int), images, np.zeros(10, int))


def test_neuron_hierarchy_builder_docstring_examples():
    assert_docstring_examples(module)
