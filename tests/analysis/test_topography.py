"""Preference maps, clustering and topography indices of Reset networks (pure numpy)."""

import math

import numpy as np
import pytest
from scipy import ndimage

from tfemergent.analysis import (
    clustering_index,
    dprime_maps,
    index_history,
    number_similarity,
    preference_map,
    topography_index,
)
from tfemergent.analysis import topography as topography_module
from docstring_examples import assert_docstring_examples

# --------------------------------------------------------------------------- #
# d′


def test_dprime_hand_computed():
    # 2 units; unit 0: class 0 -> [1, 3], class 1 -> [0, 2], class 2 -> [4].
    activations = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0], [2.0, 1.0], [4.0, 5.0]])
    labels = np.array([0, 0, 1, 1, 2])
    dprime = dprime_maps(activations, labels, epsilon=1e-12)
    assert dprime.shape == (3, 2)
    # unit 0, class 0: in [1, 3] mean 2 var 1; out [0, 2, 4] mean 2 var 8/3 -> 0.
    assert dprime[0, 0] == pytest.approx(0.0, abs=1e-12)
    # unit 0, class 1: in [0, 2] mean 1 var 1; out [1, 3, 4] mean 8/3,
    # var ((5/3)^2 + (1/3)^2 + (4/3)^2) / 3 = 42/27.
    expected = (1.0 - 8.0 / 3.0) / math.sqrt((1.0 + 42.0 / 27.0) / 2.0)
    assert dprime[1, 0] == pytest.approx(expected, rel=1e-12)
    # unit 0, class 2: a single sample [4] (var 0); out [1, 3, 0, 2] mean 1.5 var 1.25.
    assert dprime[2, 0] == pytest.approx(2.5 / math.sqrt(1.25 / 2.0), rel=1e-12)
    # unit 1, class 2: in [5]; out [0, 0, 1, 1] mean 0.5 var 0.25.
    assert dprime[2, 1] == pytest.approx(4.5 / math.sqrt(0.125), rel=1e-10)  # epsilon 1e-12


def test_dprime_epsilon_guard():
    # Constant responses: exactly 0, never NaN, also for non-representable values.
    activations = np.full((6, 3, 3), 0.1)
    dprime = dprime_maps(activations, [0, 1, 2, 0, 1, 2])
    assert dprime.shape == (3, 3, 3)
    assert np.all(dprime == 0.0)
    # Constant but different inside and outside the class: large and finite.
    activations = np.array([[1.0], [1.0], [0.0], [0.0]])
    dprime = dprime_maps(activations, [0, 0, 1, 1], epsilon=1e-6)
    np.testing.assert_allclose(dprime[:, 0], [1e3, -1e3], rtol=1e-12)


def test_dprime_empty_classes_and_grid_shape():
    activations = np.random.default_rng(0).normal(size=(8, 2, 3))
    dprime = dprime_maps(activations, [0, 0, 0, 0, 2, 2, 2, 2], num_classes=4)
    assert dprime.shape == (4, 2, 3)
    assert np.all(dprime[[1, 3]] == 0.0)  # no samples
    np.testing.assert_allclose(dprime[0], -dprime[2])  # two groups: symmetric
    # All samples in one class: no "out" group, d′ = 0.
    assert np.all(dprime_maps(activations, np.zeros(8, int)) == 0.0)


def test_dprime_matches_direct_computation():
    rng = np.random.default_rng(1)
    activations = rng.normal(size=(40, 4, 4)) + 100.0  # offset: tests the stable sums
    labels = rng.integers(0, 5, size=40)
    dprime = dprime_maps(activations, labels, epsilon=1e-12)
    for c in range(5):
        inside, outside = activations[labels == c], activations[labels != c]
        pooled = (inside.var(axis=0) + outside.var(axis=0)) / 2.0
        expected = (inside.mean(axis=0) - outside.mean(axis=0)) / np.sqrt(pooled)
        np.testing.assert_allclose(dprime[c], expected, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- #
# Preference maps


def test_preference_map_threshold():
    dprime = np.array([[[3.0, 2.0, 0.0, 5.0]], [[1.0, 1.9, 1.99, 5.0]]])
    assert preference_map(dprime).tolist() == [[0, 0, -1, 0]]  # 2.0 >= 2; tie -> lowest
    assert preference_map(dprime, threshold=2.5).tolist() == [[0, -1, -1, 0]]
    assert preference_map(dprime, threshold=1.95).tolist() == [[0, 0, 1, 0]]
    assert preference_map(dprime, threshold=-10.0).tolist() == [[0, 0, 1, 0]]
    assert preference_map(dprime).dtype == np.int64


def test_planted_responses_give_planted_preferences():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 20)
    activations = rng.normal(0.0, 0.1, size=(60, 2, 2))
    activations[labels == 1, 0, 0] += 1.0  # unit (0, 0) answers class 1
    activations[labels == 2, 1, 1] += 1.0  # unit (1, 1) answers class 2
    pmap = preference_map(dprime_maps(activations, labels))
    assert pmap.tolist() == [[1, -1], [-1, 2]]


# --------------------------------------------------------------------------- #
# Clustering

# Two 2 x 2 blocks and isolated units; (2, 2) touches block 0 by a corner only.
BLOCKS = np.array(
    [
        [0, 0, -1, 1, 1],
        [0, 0, -1, 1, 1],
        [-1, -1, 0, -1, -1],
        [1, -1, -1, -1, 0],
    ]
)


def _reference_clustering(pmap, connectivity):
    """Direct loop: mean over the classes present of their mean component size."""
    structure = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    means = []
    for c in range(pmap.max() + 1):
        labels, num = ndimage.label(pmap == c, structure=structure)
        if num:
            means.append(np.bincount(labels.ravel())[1:].mean())
    return float(np.mean(means)) if means else 0.0


def test_clustering_hand_counted_4_and_8_connectivity():
    d4 = clustering_index(BLOCKS, connectivity=4, seed=0, return_details=True)
    # 4-connectivity: class 0 -> sizes 4, 1, 1 (mean 2); class 1 -> 4, 1 (mean 2.5).
    assert d4["num_components"].tolist() == [3, 2]
    assert d4["num_units"].tolist() == [6, 5]
    assert d4["class_clustering"].tolist() == [2.0, 2.5]
    assert d4["clustering"] == 2.25  # mean of per-class means, not 11 / 5 = 2.2
    # 8-connectivity: (2, 2) joins block 0 -> class 0 sizes 5, 1 (mean 3).
    d8 = clustering_index(BLOCKS, connectivity=8, seed=0, return_details=True)
    assert d8["num_components"].tolist() == [2, 2]
    assert d8["class_clustering"].tolist() == [3.0, 2.5]
    assert d8["clustering"] == 2.75
    assert d4["index"] == d4["clustering"] - d4["control"]
    assert d4["index"] > 0


def test_checkerboard():
    checkerboard = np.indices((4, 4)).sum(axis=0) % 2
    d4 = clustering_index(checkerboard, connectivity=4, seed=0, return_details=True)
    assert d4["clustering"] == 1.0  # every component is a single unit
    assert d4["index"] < 0  # more dispersed than chance: the index is signed
    d8 = clustering_index(checkerboard, connectivity=8, seed=0, return_details=True)
    assert d8["clustering"] == 8.0  # each colour is one diagonal-connected component


def test_clustering_edge_cases():
    # No unit has a preference: nothing is measured, NaN (not 0, "as clustered as chance").
    empty = clustering_index(np.full((3, 3), -1), seed=0, return_details=True)
    assert np.isnan(empty["clustering"]) and np.isnan(empty["control"])
    assert np.isnan(empty["index"]) and empty["num_units"].tolist() == []
    assert np.isnan(clustering_index(np.full((3, 3), -1), seed=0))
    # One class everywhere: every permutation is the same map.
    details = clustering_index(np.full((3, 4), 2), seed=0, return_details=True)
    assert details["clustering"] == 12.0
    assert details["index"] == 0.0
    assert details["class_clustering"].tolist() == [0.0, 0.0, 12.0]  # absent classes: 0
    # Whole-number floats are accepted as maps.
    assert clustering_index(BLOCKS.astype(float), seed=3) == clustering_index(BLOCKS, seed=3)


def test_shuffle_control_is_seeded_and_averages_the_shuffles_run():
    details = clustering_index(BLOCKS, num_shuffles=7, seed=5, return_details=True)
    again = clustering_index(BLOCKS, num_shuffles=7, seed=5, return_details=True)
    np.testing.assert_array_equal(details["shuffled_clustering"], again["shuffled_clustering"])
    assert details["shuffled_clustering"].shape == (7,)
    assert details["control"] == pytest.approx(np.mean(details["shuffled_clustering"]))
    other = clustering_index(BLOCKS, num_shuffles=7, seed=6, return_details=True)
    assert not np.array_equal(details["shuffled_clustering"], other["shuffled_clustering"])
    # The documented permutations: the whole map (no-preference units included).
    keys = np.random.default_rng(5).random((7, BLOCKS.size))
    expected = [
        _reference_clustering(BLOCKS.ravel()[np.argsort(row)].reshape(BLOCKS.shape), 4)
        for row in keys
    ]
    np.testing.assert_allclose(details["shuffled_clustering"], expected, rtol=0, atol=1e-12)
    # The first shuffles do not depend on num_shuffles.
    longer = clustering_index(BLOCKS, num_shuffles=12, seed=5, return_details=True)
    np.testing.assert_array_equal(longer["shuffled_clustering"][:7], details["shuffled_clustering"])


def test_clustering_matches_reference_on_random_maps():
    rng = np.random.default_rng(3)
    for connectivity in (4, 8):
        for _ in range(5):
            pmap = rng.integers(-1, 4, size=(9, 7))
            details = clustering_index(
                pmap, num_shuffles=1, connectivity=connectivity, seed=0, return_details=True
            )
            assert details["clustering"] == pytest.approx(
                _reference_clustering(pmap, connectivity), abs=1e-12
            )


def test_clustering_legacy_halves_the_control():
    fair = clustering_index(BLOCKS, num_shuffles=20, seed=1, return_details=True)
    legacy = clustering_index(BLOCKS, num_shuffles=20, seed=1, return_details=True, legacy=True)
    # The notebooks: 10 shuffles summed, divided by 20.
    np.testing.assert_array_equal(legacy["shuffled_clustering"], fair["shuffled_clustering"][:10])
    assert legacy["control"] == pytest.approx(np.sum(fair["shuffled_clustering"][:10]) / 20.0)
    assert legacy["clustering"] == fair["clustering"]
    assert legacy["index"] == pytest.approx(legacy["clustering"] - legacy["control"])
    assert legacy["index"] > fair["index"]


# --------------------------------------------------------------------------- #
# Topography

TINY = np.array([[0, 1, -1], [2, 0, 1]])


def test_number_similarity():
    np.testing.assert_allclose(
        number_similarity(4), 1.0 - np.abs(np.subtract.outer(range(4), range(4))) / 3.0
    )
    assert number_similarity(1).tolist() == [[1.0]]
    assert number_similarity(10)[0, 9] == 0.0


def test_topography_tiny_map_by_hand():
    similarity = number_similarity(3)  # 1 - |i - j| / 2
    # (0,0)=0: neighbours 1, 2, 0 -> (0.5 + 0 + 1) / 3
    # (0,1)=1: neighbours 0, 2, 0, 1 (the -1 is ignored) -> (0.5 + 0.5 + 0.5 + 1) / 4
    # (1,0)=2: neighbours 0, 1, 0 -> (0 + 0.5 + 0) / 3
    # (1,1)=0: neighbours 0, 1, 2, 1 -> (1 + 0.5 + 0 + 0.5) / 4
    # (1,2)=1: neighbours 1, 0 -> (1 + 0.5) / 2
    expected = (1.5 / 3 + 2.5 / 4 + 0.5 / 3 + 2.0 / 4 + 1.5 / 2) / 5
    details = topography_index(TINY, similarity, seed=0, return_details=True)
    assert details["topography"] == pytest.approx(expected, abs=1e-15)
    assert details["num_units"] == 5
    assert details["index"] == pytest.approx(details["topography"] - details["control"])
    assert details["control"] == pytest.approx(np.mean(details["shuffled_topography"]))


def test_topography_legacy_corner_window_by_hand():
    similarity = number_similarity(3)
    # Neighbours: the 3 x 3 block above-left of the unit.
    # (0,0): none in the map -> not counted
    # (0,1)=1: left 0 -> 0.5
    # (1,0)=2: up 0 -> 0
    # (1,1)=0: 0, 1, 2 -> (1 + 0.5 + 0) / 3
    # (1,2)=1: row 0: 0, 1, (-1); row 1: 2, 0 -> (0.5 + 1 + 0.5 + 0.5) / 4
    expected = (0.5 + 0.0 + 1.5 / 3 + 2.5 / 4) / 4
    fair = topography_index(TINY, similarity, seed=2, return_details=True)
    legacy = topography_index(TINY, similarity, seed=2, return_details=True, legacy=True)
    assert legacy["topography"] == pytest.approx(expected, abs=1e-15)
    assert legacy["num_units"] == 4
    # Same permutations; 10 of 20 summed and divided by 20.
    keys = np.random.default_rng(2).random((20, TINY.size))[:10]
    shuffled = [
        topography_index(TINY.ravel()[np.argsort(row)].reshape(TINY.shape), similarity,
                         num_shuffles=1, seed=0, return_details=True, legacy=True)["topography"]
        for row in keys
    ]
    np.testing.assert_allclose(legacy["shuffled_topography"], shuffled, rtol=0, atol=1e-15)
    assert legacy["control"] == pytest.approx(np.sum(shuffled) / 20.0)
    assert fair["topography"] != legacy["topography"]


def test_legacy_window_is_the_notebook_filter():
    # The notebooks: d = convolve(data, filter) with filter = -1/8, filter[0, 0] = 1.
    # At each output cell, the +1 lands on one unit and -1/8 on its "neighbours".
    notebook_filter = np.full((3, 3), -1.0 / 8.0)
    notebook_filter[0, 0] = 1.0
    size = 7
    for i in range(1, size - 1):
        for j in range(1, size - 1):
            weights = np.zeros((size, size))
            for a in range(size):
                for b in range(size):
                    delta = np.zeros((size, size))
                    delta[a, b] = 1.0
                    weights[a, b] = ndimage.convolve(delta, notebook_filter, mode="constant")[i, j]
            (unit,) = np.argwhere(weights == 1.0)
            neighbours = {tuple(p - unit) for p in np.argwhere(weights == -1.0 / 8.0)}
            assert neighbours == set(topography_module._LEGACY_NEIGHBOUR_OFFSETS)


def test_topography_gradient_is_high_and_random_is_near_zero():
    similarity = number_similarity(10)
    gradient = np.tile(np.arange(32) * 10 // 32, (32, 1))
    smooth = topography_index(gradient, similarity, seed=0, return_details=True)
    assert smooth["topography"] > 0.95
    assert smooth["index"] > 0.3
    rng = np.random.default_rng(4)
    indices = [
        topography_index(rng.integers(-1, 10, size=(32, 32)), similarity, seed=k)
        for k in range(5)
    ]
    assert abs(np.mean(indices)) < 0.01
    assert max(abs(x) for x in indices) < 0.03


def test_topography_edge_cases():
    similarity = np.eye(2)
    assert np.isnan(topography_index(np.full((2, 2), -1), similarity, seed=0))  # nothing to measure
    # Isolated preferred units (no preferred neighbour) do not count.
    lonely = np.array([[0, -1, 1], [-1, -1, -1], [1, -1, 0]])
    details = topography_index(lonely, similarity, seed=0, return_details=True)
    assert details["num_units"] == 0 and details["topography"] == 0.0
    # Identity similarity = share of same-preference neighbours.
    stripes = np.array([[0, 0], [1, 1]])
    assert topography_index(stripes, similarity, seed=0, return_details=True)[
        "topography"
    ] == pytest.approx(1.0 / 3.0)
    # A similarity larger than the classes on the map is fine.
    topography_index(stripes, number_similarity(5), seed=0)


# --------------------------------------------------------------------------- #
# index_history


def test_index_history_matches_per_epoch_functions():
    rng = np.random.default_rng(5)
    history_dprime = rng.normal(0.0, 2.0, size=(3, 4, 6, 5))
    similarity = number_similarity(4)
    for legacy in (False, True):
        history = index_history(
            history_dprime, similarity, num_shuffles=6, connectivity=8, seed=9, legacy=legacy
        )
        for epoch, dprime in enumerate(history_dprime):
            pmap = preference_map(dprime)
            np.testing.assert_array_equal(history["preference_maps"][epoch], pmap)
            clustering = clustering_index(
                pmap, 6, connectivity=8, seed=9, return_details=True, legacy=legacy
            )
            topography = topography_index(
                pmap, similarity, 6, seed=9, return_details=True, legacy=legacy
            )
            assert history["clustering"][epoch] == pytest.approx(clustering["clustering"])
            assert history["clustering_control"][epoch] == pytest.approx(clustering["control"])
            assert history["clustering_index"][epoch] == pytest.approx(clustering["index"])
            assert history["topography"][epoch] == pytest.approx(topography["topography"])
            assert history["topography_control"][epoch] == pytest.approx(topography["control"])
            assert history["topography_index"][epoch] == pytest.approx(topography["index"])
    without = index_history(history_dprime, seed=0)
    assert sorted(without) == [
        "clustering", "clustering_control", "clustering_index", "preference_maps"
    ]


# --------------------------------------------------------------------------- #
# Invalid arguments

INVALID = [
    (dprime_maps, (np.ones(4), [0, 1, 0, 1]), {}, "activations"),
    (dprime_maps, (np.ones((0, 3)), []), {}, "activations"),
    (dprime_maps, (np.full((2, 2), np.nan), [0, 1]), {}, "activations"),
    (dprime_maps, (np.ones((3, 2)), [0, 1]), {}, "labels.shape"),
    (dprime_maps, (np.ones((2, 2)), [0.5, 1.0]), {}, "labels"),
    (dprime_maps, (np.ones((2, 2)), [-1, 1]), {}, "labels"),
    (dprime_maps, (np.ones((2, 2)), [0, 3]), {"num_classes": 3}, "labels"),
    (dprime_maps, (np.ones((2, 2)), [0, 1]), {"num_classes": 0}, "num_classes"),
    (dprime_maps, (np.ones((2, 2)), [0, 1]), {"epsilon": 0.0}, "epsilon"),
    (preference_map, (np.ones(3),), {}, "dprime"),
    (preference_map, (np.array([[np.inf]]),), {}, "dprime"),
    (preference_map, (np.ones((2, 2, 2)),), {"threshold": "2"}, "threshold"),
    (preference_map, (np.ones((4, 4)),), {}, r"dprime.shape=\(4, 4\)"),  # no class axis
    (preference_map, (np.ones((2, 3, 4, 4)),), {}, "dprime.shape"),
    (clustering_index, (np.zeros(4, int),), {}, "preference_map.shape"),
    (clustering_index, (np.full((2, 2), -2),), {}, "preference_map"),
    (clustering_index, (np.full((2, 2), 0.5),), {}, "preference_map"),
    (clustering_index, (np.zeros((2, 2), bool),), {}, "preference_map"),
    (clustering_index, (np.zeros((2, 2), int),), {"num_shuffles": 0}, "num_shuffles"),
    (clustering_index, (np.zeros((2, 2), int),), {"connectivity": 6}, "connectivity"),
    (clustering_index, (np.zeros((2, 2), int),), {"connectivity": True}, "connectivity"),
    (clustering_index, (np.zeros((2, 2), int),), {"seed": -1}, "seed"),
    (clustering_index, (np.zeros((2, 2), int),), {"legacy": 1}, "legacy"),
    (clustering_index, (np.zeros((2, 2), int),), {"return_details": "yes"}, "return_details"),
    (topography_index, (np.array([[0, 3]]), np.eye(3)), {}, "similarity.shape"),
    (topography_index, (np.array([[0, 1]]), np.ones((2, 3))), {}, "similarity.shape"),
    (topography_index, (np.array([[0, 1]]), np.full((2, 2), np.nan)), {}, "similarity"),
    (topography_index, (np.array([[0, 1]]), np.eye(2)), {"num_shuffles": 1.5}, "num_shuffles"),
    (number_similarity, (0,), {}, "num_classes"),
    (index_history, (np.zeros((2, 2, 2)),), {}, "dprime_history.shape"),
    (index_history, (np.zeros((1, 2, 2, 2)), np.eye(3)), {}, "similarity.shape"),
    (index_history, (np.zeros((1, 2, 2, 2)),), {"connectivity": 2}, "connectivity"),
]


@pytest.mark.parametrize("function, args, kwargs, received", INVALID)
def test_invalid_arguments(function, args, kwargs, received):
    with pytest.raises(ValueError, match=f"Received: {received}"):
        function(*args, **kwargs)


# --------------------------------------------------------------------------- #
# Docstrings


def test_docstring_examples():
    assert_docstring_examples(topography_module)


def test_index_history_is_nan_for_epochs_without_any_preference():
    dprime = np.zeros((2, 2, 3, 3))
    dprime[1, 0, :2, :2] = 3.0  # epoch 1: a 2 x 2 block prefers class 0
    history = index_history(dprime, similarity=number_similarity(2), seed=0)
    for key in ("clustering", "clustering_control", "clustering_index",
                "topography", "topography_control", "topography_index"):
        assert np.isnan(history[key][0]) and np.isfinite(history[key][1]), key
    assert history["clustering"][1] == 4.0  # one component of 4 units
