"""Offline without a data directory: a clear `DatasetNotFoundError` at once, not minutes of retries."""

import os
import socket
import time

import numpy as np
import pytest

from tfemergent import datasets
from tfemergent.datasets import network

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No data directory, an empty tfds directory, and no network."""
    monkeypatch.delenv("TFEMERGENT_DATA_DIR", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    checks = []
    monkeypatch.setattr(network, "tfds_reachable", lambda *a, **k: checks.append(1) or False)
    return checks


@pytest.mark.parametrize("loader", [datasets.load, datasets.load_numpy])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10"])
def test_offline_raises_at_once_and_points_at_the_data_dir(loader, name, offline, forbid_tfds,
                                                           tmp_path):
    start = time.perf_counter()
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        loader(name, "test")
    assert time.perf_counter() - start < 1.0
    message = str(info.value)
    assert f"tensorflow-datasets cannot download {name!r}" in message
    assert "storage.googleapis.com is not reachable" in message
    assert f"no copy was prepared in {tmp_path / 'tfds'}" in message
    assert "Set TFEMERGENT_DATA_DIR" in message
    assert "Received: data_dir=None and TFEMERGENT_DATA_DIR unset" in message
    assert "tensorflow-datasets download the dataset" not in message  # no advice to go online
    assert (offline, forbid_tfds) == ([1], [])  # checked once, tfds never called


def test_double_task_offline_too(offline, forbid_tfds):
    with pytest.raises(datasets.DatasetNotFoundError, match="cannot download 'mnist'"):
        datasets.double_task("concatenated", "test", first="mnist", second="fashion_mnist")
    assert forbid_tfds == []


def test_a_copy_prepared_by_tfds_needs_no_network(offline, monkeypatch, tmp_path):
    info = tmp_path / "tfds" / "mnist" / "3.0.1" / "dataset_info.json"
    info.parent.mkdir(parents=True)
    info.write_text("{}")
    calls = []

    def fake_load(name, **kwargs):
        calls.append(name)
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices(
            (np.zeros((2, 28, 28, 1), np.uint8), np.array([3, 4], np.int64))
        )

    monkeypatch.setattr(tfds, "load", fake_load)
    x, y = datasets.load_numpy("mnist", "test")
    assert (calls, offline, x.shape, y.tolist()) == (["mnist"], [], (2, 28, 28, 1), [3, 4])
    assert network.prepared_by_tfds("mnist") and not network.prepared_by_tfds("cifar10")
    configured = tmp_path / "tfds" / "cifar10" / "plain_text" / "3.0.2" / "dataset_info.json"
    configured.parent.mkdir(parents=True)
    configured.write_text("{}")
    assert network.prepared_by_tfds("cifar10")  # datasets with a config: name/config/version


def test_tfds_reachable_on_local_sockets():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert network.tfds_reachable("127.0.0.1", server.getsockname()[1], timeout=2.0)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: the connection is refused
        assert not network.tfds_reachable("127.0.0.1", port, timeout=2.0)


def test_tfds_reachable_gives_up_after_the_timeout(monkeypatch):
    def hang(*args, **kwargs):  # e.g. a name resolution that never answers
        time.sleep(3.0)
        raise OSError("too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.perf_counter()
    assert network.tfds_reachable("example.invalid", 443, timeout=0.3) is False
    assert time.perf_counter() - start < 1.0


def test_tfds_data_dir(monkeypatch):
    monkeypatch.delenv("TFDS_DATA_DIR", raising=False)
    assert network.tfds_data_dir() == os.path.expanduser("~/tensorflow_datasets")
    monkeypatch.setenv("TFDS_DATA_DIR", "/data/tfds")
    assert network.tfds_data_dir() == "/data/tfds"
