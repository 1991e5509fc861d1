"""The online path through tensorflow-datasets, run offline with tfds.testing.mock_data.

mock_data works offline in tensorflow-datasets 4.9.10 with the default policy:
the feature specs of mnist, fashion_mnist and cifar10 come from the dataset
code and metadata shipped inside the package, and random examples are
generated from them. It yields `num_examples` elements whatever slice the
split asks for, so slicing is tested on the local path only.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfemergent import datasets

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture
def load_calls(monkeypatch):
    """Record the arguments of every tensorflow_datasets.load call."""
    calls = []
    real_load = tfds.load

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(tfds, "load", spy)
    return calls


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_online_spec_matches_local_spec(name, online_env, shared_data_dir, load_calls):
    local = datasets.load(name, "test[:3]", data_dir=shared_data_dir)
    assert load_calls == []
    with tfds.testing.mock_data(num_examples=4):
        online = datasets.load(name, "train", shuffle_files=True)
        assert online.element_spec == local.element_spec
        elements = list(online)
    assert len(elements) == 4
    assert load_calls == [
        ((name,), {"split": "train", "as_supervised": True, "shuffle_files": True})
    ]
    image, label = elements[0]
    assert image.dtype == tf.uint8 and label.dtype == tf.int64


def test_online_mnist_spec_is_exact(online_env):
    with tfds.testing.mock_data(num_examples=2):
        dataset = datasets.load("mnist", "test")
    assert dataset.element_spec == (
        tf.TensorSpec(shape=(28, 28, 1), dtype=tf.uint8, name=None),
        tf.TensorSpec(shape=(), dtype=tf.int64, name=None),
    )


def test_online_numpy(online_env, load_calls):
    with tfds.testing.mock_data(num_examples=5):
        x, y = datasets.load_numpy("fashion_mnist", "test")
    assert x.shape == (5, 28, 28, 1) and x.dtype == np.uint8
    assert y.shape == (5,) and y.dtype == np.int64
    assert ((0 <= y) & (y < 10)).all()
    assert load_calls[0][1]["as_supervised"] is True


def test_online_double_task(online_env):
    with tfds.testing.mock_data(num_examples=6):
        x, (y_first, y_second) = datasets.double_task("concatenated", "test")
    assert x.shape == (6, 1568) and y_first.shape == y_second.shape == (6,)


def test_digits_ignores_directory_and_tfds(monkeypatch, forbid_tfds, tmp_path):
    monkeypatch.setenv("TFEMERGENT_DATA_DIR", str(tmp_path / "absent"))
    assert datasets.load_numpy("digits", "test")[0].shape == (360, 8, 8, 1)
    monkeypatch.delenv("TFEMERGENT_DATA_DIR")
    dataset = datasets.load("digits", "train")
    assert dataset.element_spec == (
        tf.TensorSpec((8, 8, 1), tf.uint8),
        tf.TensorSpec((), tf.int64),
    )
    assert forbid_tfds == []


def test_tfds_failure_says_how_to_work_offline(online_env, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("no internet")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(ConnectionError) as info:
        datasets.load("mnist", "train")
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "TFEMERGENT_DATA_DIR" in notes and "mnist.npz" in notes
