
import pytest

import tfemergent.geometry.hierarchy_layout as layout_module
from tfemergent.geometry import receptive_fields as fields
from tfemergent.models import HierarchyLayout
from docstring_examples import assert_docstring_examples

PAPER = {"image_shape": (20, 20), "num_units": 3, "num_hidden": 100, "window_size": 10}


def test_paper_layout():
    layout = HierarchyLayout(**PAPER)
    assert layout.feature_map_shape == (20, 40)
    assert layout.code_locations == [(0, 20), (10, 20), (0, 30)]
    assert layout.code_box(2) == (0, 30, 10, 10)


@pytest.mark.parametrize(
    "kwargs, shape, locations",
    [
        ({"image_shape": (30, 30), "num_units": 4}, (30, 50), [(0, 30), (10, 30), (20, 30), (0, 40)]),
        ({"image_shape": (8, 8), "num_units": 2, "num_hidden": 100}, (10, 28), [(0, 8), (0, 18)]),
        ({"image_shape": (20, 20), "num_units": 1, "num_hidden": 50}, (20, 30), [(0, 20)]),
    ],
)
def test_other_layouts(kwargs, shape, locations):
    layout = HierarchyLayout(**{**PAPER, **kwargs})
    assert layout.feature_map_shape == shape
    assert layout.code_locations == locations
    # codes never overlap each other or the image
    boxes = [layout.code_box(k) for k in range(layout.num_units)]
    boxes.append((0, 0) + layout.image_shape)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not fields.boxes_overlap(boxes[i], boxes[j])


def test_handcrafted_topologies():
    layout = HierarchyLayout(**PAPER)
    assert layout.topology("pyramidal") == [
        ((0, 0), (0, 10)),
        ((10, 0), (10, 10)),
        ((0, 20), (10, 20)),
    ]
    assert layout.topology("flat") == [((0, 0), (0, 10)), ((10, 0), (10, 10)), ((5, 0), (5, 10))]
    assert layout.topology("columnar") == [
        ((0, 0), (10, 0)),
        ((0, 20), (0, 10)),
        ((10, 20), (10, 10)),
    ]


def test_handcrafted_topologies_need_the_paper_setting():
    layout = HierarchyLayout(**{**PAPER, "image_shape": (30, 30)})
    with pytest.raises(ValueError, match=r"3 units reading a 2N x 2N image.*Received"):
        layout.topology("pyramidal")


def test_random_topologies_are_valid_seeded_and_cover_the_map():
    layout = HierarchyLayout(**PAPER)
    topologies = [layout.topology("random", seed=s) for s in range(200)]
    assert layout.topology("random", seed=3) == topologies[3]
    corners = set()
    for topology in topologies:
        assert layout.validate_topology(topology) == topology
        corners.update(window for field in topology for window in field)
    # uniform over valid corners: rows 0..10 and columns 0..30 all occur
    assert {r for r, _ in corners} == set(range(11))
    assert {c for _, c in corners} == set(range(31))


def test_neighbours_are_one_step_away_and_valid():
    layout = HierarchyLayout(**PAPER)
    topology = layout.topology("pyramidal")
    neighbours = layout.neighbours(topology, 2)
    # unit 2 reads code 0 at (0, 20) and code 1 at (10, 20); its own code is at
    # (0, 30). Window 0: up leaves the map, down overlaps window 1, right reads
    # its own code, left is fine. Window 1: up overlaps window 0, down leaves
    # the map, left and right are fine (its own code is in rows 0-9).
    assert sorted(neighbours) == [
        ((0, 19), (10, 20)),
        ((0, 20), (10, 19)),
        ((0, 20), (10, 21)),
    ]
    topology = layout.topology("flat")
    for field in layout.neighbours(layout.topology("flat"), 0):
        moved = [
            abs(a[0] - b[0]) + abs(a[1] - b[1]) for a, b in zip(field, topology[0])
        ]
        assert sorted(moved) == [0, 1]


def test_invalid_topologies():
    layout = HierarchyLayout(**PAPER)
    with pytest.raises(ValueError, match=r"one of .*Received: topology='star'"):
        layout.topology("star")
    with pytest.raises(ValueError, match=r"num_units=3 receptive fields.*Received"):
        layout.topology([((0, 0), (0, 10))])
    with pytest.raises(ValueError, match=r"topology\[1\].*own code.*Received"):
        layout.topology([((0, 0), (0, 10)), ((10, 20), (0, 0)), ((0, 20), (10, 20))])
    with pytest.raises(ValueError, match=r"topology\[0\].*leaves the 20x40.*Received"):
        layout.topology([((0, 0), (0, 31)), ((10, 0), (10, 10)), ((0, 20), (10, 20))])
    with pytest.raises(ValueError, match=r"topology\[0\].*overlap.*Received"):
        layout.topology([((0, 0), (5, 5)), ((10, 0), (10, 10)), ((0, 20), (10, 20))])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"image_shape": (0, 20)}, "image_shape"),
        ({"num_units": 0}, "num_units"),
        ({"num_hidden": -1}, "num_hidden"),
        ({"window_size": 0}, "window_size"),
        ({"window_size": 21}, "window_size"),
        ({"code_shape": (3, 3)}, "code_shape"),
    ],
)
def test_invalid_arguments(kwargs, name):
    with pytest.raises(ValueError, match=rf"`{name}`.*Received"):
        HierarchyLayout(**{**PAPER, **kwargs})


def test_config_round_trip():
    layout = HierarchyLayout(**{**PAPER, "num_units": 4, "code_shape": (5, 20)})
    clone = HierarchyLayout.from_config(layout.get_config())
    assert clone.get_config() == layout.get_config()
    assert clone.code_locations == layout.code_locations


def test_docstring_example():
    assert_docstring_examples(layout_module)
