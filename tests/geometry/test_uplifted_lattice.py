"""Tests of `UpliftedLattice`."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfemergent.geometry import UpliftedLattice
from tfemergent.geometry import uplifted_lattice
from docstring_examples import assert_docstring_examples


def test_sizes_and_indices():
    lattice = UpliftedLattice(width=5, height=3, depth=4, beta=2.0, num_outputs=3)
    assert lattice.num_neurons == 60
    assert lattice.input_shape == (3, 5)
    np.testing.assert_array_equal(lattice.input_indices, np.arange(15))
    # Top plane starts at 45; centre (2, 1): neuron (2, 1) at distance 0, then
    # (1, 1), (3, 1), (2, 0), (2, 2) at distance 1 -> ties by index: (2, 0), (1, 1).
    np.testing.assert_array_equal(lattice.output_indices, [45 + 2, 45 + 6, 45 + 7])


def test_coordinates_follow_the_index_layout_and_metric():
    lattice = UpliftedLattice(width=4, height=3, depth=2, beta=9.0)
    coordinates = lattice.coordinates()
    assert coordinates.shape == (24, 3) and coordinates.dtype == np.float32
    for index in range(24):
        z, rest = divmod(index, 12)
        y, x = divmod(rest, 4)
        np.testing.assert_array_equal(coordinates[index], [x, y, 3.0 * z])
        np.testing.assert_array_equal(lattice.lattice_coordinates()[index], [x, y, z])
    # ds^2 = dx^2 + dy^2 + beta dz^2 between neuron 0 (0, 0, 0) and 23 (3, 2, 1).
    assert lattice.coordinates("float64").dtype == np.float64
    positions = lattice.coordinates("float64")
    distance = np.linalg.norm(positions[23] - positions[0])
    np.testing.assert_allclose(distance, np.sqrt(9 + 4 + 9.0 * 1))


def test_paper_lattice():
    lattice = UpliftedLattice(width=60, height=60, depth=6, beta=1.0, num_outputs=10)
    assert lattice.num_neurons == 21600
    outputs = lattice.output_indices
    assert len(outputs) == 10 and np.all(np.diff(outputs) > 0)
    x, y, z = lattice.lattice_coordinates()[outputs].T
    assert np.all(z == 5)
    # The four central neurons (29|30, 29|30) are outputs; all within distance sqrt(2.5).
    assert {(29, 29), (29, 30), (30, 29), (30, 30)} <= set(zip(x.tolist(), y.tolist()))
    assert np.all((x - 29.5) ** 2 + (y - 29.5) ** 2 <= 2.5)


def test_output_indices_are_the_closest_to_the_centre():
    lattice = UpliftedLattice(width=7, height=6, depth=3, num_outputs=9)
    plane = np.arange(42)
    y, x = np.divmod(plane, 7)
    squared = (x - 3.0) ** 2 + (y - 2.5) ** 2
    expected = sorted(sorted(plane, key=lambda n: (squared[n], n))[:9])
    np.testing.assert_array_equal(lattice.output_indices, np.asarray(expected) + 2 * 42)


def test_embed_resizes_grays_and_flattens():
    lattice = UpliftedLattice(width=6, height=4, depth=2, num_outputs=1)
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(2, 8, 12, 3)).astype("float32")
    embedded = lattice.embed(images)
    assert embedded.shape == (2, 24) and embedded.dtype == tf.float32
    gray = images.mean(axis=-1, keepdims=True)
    expected = tf.image.resize(gray, (4, 6), method="bilinear").numpy().reshape(2, 24)
    np.testing.assert_allclose(embedded.numpy(), expected, rtol=1e-6)
    # Rank-3 input is already gray; a constant image stays constant.
    np.testing.assert_allclose(lattice.embed(gray[..., 0]).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(lattice.embed(np.full((1, 3, 5), 7.0)).numpy(), 7.0)
    # Row-major: a horizontal gradient in x gives increasing values along each row.
    ramp = np.tile(np.arange(12.0), (1, 8, 1))
    rows = lattice.embed(ramp).numpy().reshape(4, 6)
    assert np.all(np.diff(rows, axis=1) > 0) and np.allclose(np.diff(rows, axis=0), 0)


def test_embed_dtypes():
    lattice = UpliftedLattice(width=3, height=3, depth=2, num_outputs=1)
    assert lattice.embed(np.zeros((2, 5, 5), "float64")).dtype == tf.float64
    assert lattice.embed(np.zeros((2, 5, 5, 1), "uint8")).dtype == tf.float32


def test_embed_size_32_to_60_as_in_the_paper():
    lattice = UpliftedLattice(width=60, height=60, depth=6)
    embedded = lattice.embed(np.zeros((3, 32, 32, 3), "uint8"))
    assert embedded.shape == (3, 3600)


def test_config_round_trip_and_registration():
    lattice = UpliftedLattice(width=5, height=4, depth=3, beta=0.5, num_outputs=2)
    config = json.loads(json.dumps(lattice.get_config()))
    assert config == {"width": 5, "height": 4, "depth": 3, "beta": 0.5, "num_outputs": 2}
    rebuilt = UpliftedLattice.from_config(config)
    assert rebuilt.get_config() == config
    np.testing.assert_array_equal(rebuilt.coordinates(), lattice.coordinates())
    assert keras.saving.get_registered_name(UpliftedLattice) == "tfemergent>UpliftedLattice"
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(lattice)))
    assert keras.saving.deserialize_keras_object(serialized).get_config() == config
    assert repr(lattice).startswith("UpliftedLattice(width=5, height=4")


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"width": 0}, "width"),
        ({"width": 2.0}, "width"),
        ({"height": -1}, "height"),
        ({"depth": 0}, "depth"),
        ({"depth": True}, "depth"),
        ({"beta": 0.0}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"beta": float("nan")}, "beta"),
        ({"num_outputs": 0}, "num_outputs"),
        ({"num_outputs": 13}, "num_outputs"),  # more than the 3 x 4 top plane
    ],
)
def test_invalid_arguments(kwargs, name):
    arguments = {"width": 3, "height": 4, "depth": 2, "num_outputs": 1, **kwargs}
    with pytest.raises(ValueError, match=f"Received: {name}="):
        UpliftedLattice(**arguments)


def test_invalid_call_arguments():
    lattice = UpliftedLattice(width=3, height=3, depth=2, num_outputs=1)
    with pytest.raises(ValueError, match="Received: dtype='int32'"):
        lattice.coordinates("int32")
    with pytest.raises(ValueError, match="Received: images.shape="):
        lattice.embed(np.zeros((5, 5)))


def test_docstring_example():
    assert_docstring_examples(uplifted_lattice)
