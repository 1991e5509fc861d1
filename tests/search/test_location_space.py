"""LocationSpace: the location genome of the add-on neurons (paper 5, LDS)."""

import json

import numpy as np
import pytest

from tfemergent import search
from tfemergent.search import LocationSpace


def test_layers_genes_and_sources_follow_the_segments():
    space = LocationSpace(segment_sizes=(2, 3), kernel_sizes=(5, 3))
    assert space.layers == ((0, 0), (0, 1), (1, 0), (1, 1), (1, 2))
    assert space.num_layers == 5
    assert space.num_genes == space.num_parts == 10
    # Gene k * num_layers + j: the add-on of kernel_sizes[k] into layer j.
    genome = space.encode([(4, 2, 3)])
    assert [gene for gene, value in enumerate(genome) if value != -1] == [1 * 5 + 4]
    assert genome[9] == 2
    # Sources of the layer at position i: 0 (segment input) .. i.
    sources = {}
    for target_layer, source, kernel_size in space.possible_add_ons():
        sources.setdefault((target_layer, kernel_size), []).append(source)
    assert sources == {
        (layer, kernel): list(range(position + 1))
        for layer, (_, position) in enumerate(space.layers)
        for kernel in (5, 3)
    }
    assert space.num_candidates == (2 * 3 * 2 * 3 * 4) ** 2

    without_input = LocationSpace(segment_sizes=(2, 3), kernel_sizes=(5, 3),
                                  include_segment_input=False)
    assert sorted(without_input.possible_add_ons()) == sorted(
        add_on for add_on in space.possible_add_ons() if add_on[1] >= 1
    )
    assert without_input.num_candidates == (1 * 2 * 1 * 2 * 3) ** 2


def test_the_papers_space():
    space = LocationSpace()  # 3 segments of 4 layers, 3x3 and 5x5 add-ons, p(-1) = 0.8
    assert space.num_genes == 24
    assert space.get_config() == {
        "segment_sizes": [4, 4, 4],
        "kernel_sizes": [3, 5],
        "none_probability": 0.8,
        "include_segment_input": True,
    }
    # "(4!)^3 * (4!)^3 ~= 1.9e8" holds without the segment inputs as sources.
    assert LocationSpace(include_segment_input=False).num_candidates == 24**6
    assert space.num_candidates == 120**6
    assert len(space.possible_add_ons()) == 2 * 3 * (1 + 2 + 3 + 4)


@pytest.mark.parametrize("include_segment_input", [True, False])
def test_encode_decode_round_trips(include_segment_input):
    space = LocationSpace(
        segment_sizes=(4, 2, 3), none_probability=0.3, include_segment_input=include_segment_input
    )
    rng = np.random.default_rng(0)
    assert space.decode([-1] * space.num_genes) == []
    assert space.encode([]) == [-1] * space.num_genes
    for _ in range(300):
        genome = space.sample(rng)
        add_ons = space.decode(genome)
        assert space.encode(add_ons) == genome
        assert add_ons == sorted(add_ons, key=lambda a: (a[0], space.kernel_sizes.index(a[2])))
        assert len(add_ons) == sum(value != -1 for value in genome)
        shuffled = [add_ons[i] for i in rng.permutation(len(add_ons))]
        assert space.encode(shuffled) == genome  # the order does not matter
        assert space.decode(space.encode(np.array(shuffled).reshape(-1, 3))) == add_ons
    # Every possible add-on alone round-trips.
    for add_on in space.possible_add_ons():
        assert space.decode(space.encode([add_on])) == [add_on]


def test_sampled_genes_are_valid_seeded_and_minus_one_with_the_given_probability():
    space = LocationSpace()
    rng = np.random.default_rng(1)
    samples = np.array([space.sample(rng) for _ in range(10_000)])
    assert samples.shape == (10_000, 24)
    for genome in samples[:200].tolist():
        assert space.validate(genome) == genome
    assert space.sample(np.random.default_rng(5)) == space.sample(np.random.default_rng(5))
    for gene in range(24):
        position = space.layers[gene % 12][1]
        values = samples[:, gene]
        assert set(values.tolist()) == {-1, *range(position + 1)}
        # p(-1) = 0.8: the standard error of the fraction is 0.004.
        assert abs(np.mean(values == -1) - 0.8) < 0.02, gene
        # The rest is uniform over the position + 1 sources.
        for source in range(position + 1):
            assert abs(np.mean(values == source) - 0.2 / (position + 1)) < 0.015, (gene, source)


@pytest.mark.parametrize("none_probability", [0.0, 1.0])
def test_extreme_none_probabilities(none_probability):
    space = LocationSpace(segment_sizes=(3,), none_probability=none_probability,
                          include_segment_input=False)
    rng = np.random.default_rng(0)
    for _ in range(50):
        genome = space.sample(rng)
        # The first layer of a segment has no source without the segment input.
        assert genome[0] == genome[3] == -1
        if none_probability == 1.0:
            assert genome == [-1] * 6
        else:
            assert all(value >= 1 for gene, value in enumerate(genome) if gene % 3 != 0)


def test_recombination_only_mixes_the_parents_genes():
    space = LocationSpace()
    first = [gene % 12 % 4 for gene in range(24)]  # the last source of every layer
    second = [-1] * 24
    rng = np.random.default_rng(2)
    from_first = np.zeros(24)
    children = [space.recombine(first, second, rng) for _ in range(2_000)]
    for child in children:
        assert space.validate(child) == child
        assert all(value in (a, b) for value, a, b in zip(child, first, second))
        from_first += [value == a and a != b for value, a, b in zip(child, first, second)]
    # Uniform crossover: each gene comes from the first parent half of the time (genes
    # where the parents agree, the first layer of each segment, are always 0 here).
    differing = [gene for gene in range(24) if first[gene] != second[gene]]
    assert np.all(np.abs(from_first[differing] / 2_000 - 0.5) < 0.05)
    assert space.recombine(first, first, rng) == first
    assert space.recombine(first, second, np.random.default_rng(7)) == space.recombine(
        first, second, np.random.default_rng(7)
    )
    with pytest.raises(ValueError, match=r"Received: candidate\[3\]=9"):
        space.recombine(first[:3] + [9] + first[4:], second, rng)


def test_neighbour_changes_one_gene_to_another_valid_value():
    space = LocationSpace(segment_sizes=(2, 2), kernel_sizes=(3,))
    rng = np.random.default_rng(3)
    genome = [-1, 1, 0, -1]
    seen = set()
    for _ in range(200):
        moved = space.neighbour(list(genome), 1, rng)
        assert [gene for gene in range(4) if moved[gene] != genome[gene]] == [1]
        seen.add(moved[1])
    assert seen == {-1, 0}  # the other values of gene 1 (layer at position 1)

    without_input = LocationSpace(segment_sizes=(2,), kernel_sizes=(3,),
                                  include_segment_input=False)
    assert without_input.neighbour([-1, 1], 1, rng) == [-1, -1]
    with pytest.raises(ValueError, match="single value, -1.*Received: part=0"):
        without_input.neighbour([-1, 1], 0, rng)

    # Local searches work on the genes: hill climbing towards a target genome.
    target = [0, 1, -1, 0]
    strategy = search.HillClimbing(space, num_steps=30, initial=[-1] * 4, seed=0,
                                   acceptance="total")
    while not strategy.done:
        (trial,) = strategy.ask()
        matches = sum(a == b for a, b in zip(trial.params, target))
        strategy.tell([(trial, {"fitness": matches})])
    assert strategy.best[0].params == target


@pytest.mark.parametrize(
    "candidate, message",
    [
        ([-1] * 23, r"list of num_genes=24 ints.*Received: candidate=\[-1"),
        ("genome", "Received: candidate='genome'"),
        ([-1] * 23 + [4], r"candidate\[23\] \(an add-on of kernel size 5 into layer 11 = "
                          r"segment 2, position 3\) must be -1 \(none\) or a source in \[0, 3\]. "
                          r"Received: candidate\[23\]=4"),
        ([-2] + [-1] * 23, r"Received: candidate\[0\]=-2"),
        ([True] + [-1] * 23, r"Received: candidate\[0\]=True"),
        ([-1.0] + [-1] * 23, r"Received: candidate\[0\]=-1.0"),
        ([[0]] + [-1] * 23, r"Received: candidate\[0\]=\[0\]"),
    ],
)
def test_invalid_candidates(candidate, message):
    with pytest.raises(ValueError, match=message):
        LocationSpace().validate(candidate)


def test_validate_returns_plain_ints():
    genome = LocationSpace().validate(np.array([0] + [-1] * 23))
    assert genome == [0] + [-1] * 23 and type(genome[0]) is int
    with pytest.raises(ValueError, match=r"layer 4 = segment 1, position 0\) must be -1 \(this "
                                         r"layer has no source\). Received: candidate\[4\]=0"):
        LocationSpace(include_segment_input=False).validate([-1] * 4 + [0] + [-1] * 19)


@pytest.mark.parametrize(
    "add_ons, message",
    [
        ({(0, 0, 3)}, r"`encode` expects a list of \(target_layer, source, kernel_size\) "
                      r"triples.*Received: add_ons=\{"),
        ([(0, 0)], r"Received: add_on=\(0, 0\)"),
        ([(0, 0, 7)], r"kernel_size in \[3, 5\].*Received: add_on=\(0, 0, 7\)"),
        ([(12, 0, 3)], r"target_layer in \[0, 11\].*Received: add_on=\(12, 0, 3\)"),
        ([(-1, 0, 3)], r"Received: add_on=\(-1, 0, 3\)"),
        ([(0, 0.0, 3)], r"Received: add_on=\(0, 0.0, 3\)"),
        ([(0, True, 3)], r"Received: add_on=\(0, True, 3\)"),
        ([(5, 2, 3)], r"source of an add-on of kernel size 3 into layer 5 = segment 1, "
                      r"position 1 must be in \[0, 1\].*Received: add_on=\(5, 2, 3\)"),
        ([(5, -1, 3)], r"Received: add_on=\(5, -1, 3\)"),
        ([(5, 1, 3), (5, 0, 3)], r"Layer 5 takes at most one add-on of kernel size 3.*"
                                 r"Received: add_ons=\[\(5, 1, 3\), \(5, 0, 3\)\]"),
    ],
)
def test_invalid_add_ons(add_ons, message):
    with pytest.raises(ValueError, match=message):
        LocationSpace().encode(add_ons)


def test_decode_validates_the_genome():
    with pytest.raises(ValueError, match=r"Received: candidate\[1\]=2"):
        LocationSpace().decode([-1, 2] + [-1] * 22)


def test_config_round_trip():
    space = LocationSpace(segment_sizes=(2, 5), kernel_sizes=(5,), none_probability=0.5,
                          include_segment_input=False)
    config = json.loads(json.dumps(search.serialize(space)))
    assert config == {
        "class_name": "LocationSpace",
        "config": {
            "segment_sizes": [2, 5],
            "kernel_sizes": [5],
            "none_probability": 0.5,
            "include_segment_input": False,
        },
    }
    clone = search.deserialize(config)
    assert type(clone) is LocationSpace and clone.get_config() == space.get_config()
    assert clone.layers == space.layers
    rng_a, rng_b = np.random.default_rng(4), np.random.default_rng(4)
    assert [clone.sample(rng_a) for _ in range(5)] == [space.sample(rng_b) for _ in range(5)]
    assert LocationSpace(np.array([1, 2]), [np.int64(3)], 1).get_config() == {
        "segment_sizes": [1, 2], "kernel_sizes": [3], "none_probability": 1.0,
        "include_segment_input": True,
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"segment_sizes": []}, r"non-empty list of integers >= 1. Received: segment_sizes=\[\]"),
        ({"segment_sizes": 4}, "Received: segment_sizes=4"),
        ({"segment_sizes": (4, 0)}, r"Received: segment_sizes=\(4, 0\)"),
        ({"segment_sizes": (4, 2.0)}, r"Received: segment_sizes=\(4, 2.0\)"),
        ({"segment_sizes": (4, True)}, r"Received: segment_sizes=\(4, True\)"),
        ({"kernel_sizes": (3, 3)}, r"all different. Received: kernel_sizes=\(3, 3\)"),
        ({"kernel_sizes": (0,)}, r"Received: kernel_sizes=\(0,\)"),
        # Only the add-on sizes of AddOnConv2D (and so of AddOnSuperNetwork).
        ({"kernel_sizes": (4,)}, r"\[3, 5\].*Received: kernel_sizes=\(4,\)"),
        ({"kernel_sizes": (3, 7)}, r"\[3, 5\].*Received: kernel_sizes=\(3, 7\)"),
        ({"kernel_sizes": (1,)}, r"\[3, 5\].*Received: kernel_sizes=\(1,\)"),
        ({"kernel_sizes": "35"}, "Received: kernel_sizes='35'"),
        ({"none_probability": 1.5}, "Received: none_probability=1.5"),
        ({"none_probability": -0.1}, "Received: none_probability=-0.1"),
        ({"none_probability": None}, "Received: none_probability=None"),
        ({"include_segment_input": 1}, "Received: include_segment_input=1"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LocationSpace(**kwargs)


def test_the_kernel_sizes_are_those_of_the_add_on_layer():
    from tfemergent.layers.add_on_conv2d import ADD_ON_KERNEL_SIZES
    from tfemergent.search.location_space import ADD_ON_KERNEL_SIZES as SEARCHED_SIZES

    assert SEARCHED_SIZES == ADD_ON_KERNEL_SIZES == (3, 5)
