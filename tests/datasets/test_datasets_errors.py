"""Missing and corrupt local files, argument errors, and no downloads with a local directory."""

import gzip
import io
import os

import numpy as np
import pytest

from tfemergent import datasets
from tfemergent.datasets import local_files


def small_npz(path, **overrides):
    arrays = {
        "x_train": np.zeros((4, 28, 28), np.uint8),
        "y_train": np.arange(4, dtype=np.uint8),
        "x_test": np.zeros((3, 28, 28), np.uint8),
        "y_test": np.arange(3, dtype=np.uint8),
    }
    arrays.update(overrides)
    arrays = {key: value for key, value in arrays.items() if value is not None}
    np.savez_compressed(path, **arrays)


def idx_bytes(array, magic=None):
    array = np.asarray(array, np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_fashion(directory, images_bytes, labels_bytes, prefix="t10k"):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images_bytes))
    (directory / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels_bytes))


@pytest.fixture
def no_system_fashion(monkeypatch, tmp_path):
    missing = str(tmp_path / "no-debian-package")
    monkeypatch.setattr(local_files, "FASHION_MNIST_SYSTEM_DIRECTORIES", (missing,))
    return missing


def test_missing_npz_names_path_and_remedy(tmp_path, forbid_tfds):
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load("mnist", "test", data_dir=tmp_path)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert str(tmp_path / "mnist.npz") in message
    assert "shared/data" in message and "TFEMERGENT_DATA_DIR" in message
    assert f"Received: data_dir={str(tmp_path)!r}" in message
    assert forbid_tfds == []


def test_missing_directory_is_reported(tmp_path, forbid_tfds, monkeypatch):
    missing = tmp_path / "absent"
    monkeypatch.setenv("TFEMERGENT_DATA_DIR", str(missing))
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load_numpy("cifar10", "test")
    message = str(info.value)
    assert str(missing / "cifar10.npz") in message
    assert "does not exist" in message and "environment variable TFEMERGENT_DATA_DIR" in message


def test_missing_fashion_lists_every_path(tmp_path, no_system_fashion, forbid_tfds):
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.load("fashion_mnist", "train", data_dir=tmp_path)
    message = str(info.value)
    for directory in (
        tmp_path / "fashion-mnist",
        tmp_path / "fashion_mnist",
        tmp_path,
        no_system_fashion,
    ):
        for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
            assert os.path.join(str(directory), name) in message
    assert "apt-get install dataset-fashion-mnist" in message


def test_number_topography_without_directory(online_env, forbid_tfds):
    for call in (
        lambda: datasets.load("number_topography", "train"),
        lambda: datasets.load_numpy("number_topography", "train"),
        lambda: datasets.load_number_codes("train"),
    ):
        with pytest.raises(datasets.DatasetNotFoundError) as info:
            call()
        message = str(info.value)
        assert "TFEMERGENT_DATA_DIR" in message and "number_topography.npz" in message
        assert "Reset-Networks" in message and "Received: data_dir=None" in message
    assert forbid_tfds == []


def test_local_directory_never_calls_tfds(shared_data_dir, forbid_tfds, monkeypatch):
    monkeypatch.setenv("TFEMERGENT_DATA_DIR", str(shared_data_dir))
    for name in ("mnist", "fashion_mnist", "cifar10", "number_topography", "digits"):
        dataset = datasets.load(name, "test[:2]", shuffle_files=True)
        assert int(dataset.cardinality()) == 2
    assert forbid_tfds == []


def test_truncated_npz(shared_data_dir, tmp_path):
    data = (shared_data_dir / "number_topography.npz").read_bytes()
    path = tmp_path / "number_topography.npz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(datasets.CorruptDatasetError) as info:
        datasets.load_number_codes("test", data_dir=tmp_path)
    assert isinstance(info.value, ValueError)
    assert str(path) in str(info.value)
    assert f"Received: path={str(path)!r}" in str(info.value)


@pytest.mark.parametrize(
    "overrides, problem",
    [
        ({"y_test": None}, "lacks the array(s) ['y_test']"),
        ({"y_test": np.arange(2, dtype=np.uint8)}, "expected (2, 28, 28, 1)"),
        ({"x_test": np.zeros((3, 32, 32), np.uint8)}, "expected (3, 28, 28, 1)"),
        ({"y_test": np.array([0, 1, 10], np.uint8)}, "integers 0..9"),
        ({"x_test": np.full((3, 28, 28), 300, np.int32)}, "expected uint8 pixels"),
    ],
)
def test_malformed_npz(tmp_path, overrides, problem):
    small_npz(tmp_path / "mnist.npz", **overrides)
    with pytest.raises(datasets.CorruptDatasetError) as info:
        datasets.load_numpy("mnist", "test", data_dir=tmp_path)
    assert problem in str(info.value)
    assert "Received: path=" in str(info.value)


def test_not_an_npz(tmp_path):
    (tmp_path / "cifar10.npz").write_bytes(b"this is not a zip archive")
    with pytest.raises(datasets.CorruptDatasetError, match="cifar10.npz"):
        datasets.load("cifar10", "test", data_dir=tmp_path)
    buffer = io.BytesIO()
    np.save(buffer, np.zeros(3))
    (tmp_path / "mnist.npz").write_bytes(buffer.getvalue())
    with pytest.raises(datasets.CorruptDatasetError, match="single .npy array"):
        datasets.load("mnist", "test", data_dir=tmp_path)


def test_truncated_gzip(tmp_path, no_system_fashion):
    directory = tmp_path / "fashion-mnist"
    write_fashion(directory, idx_bytes(np.zeros((3, 28, 28))), idx_bytes(np.arange(3)))
    images = directory / "t10k-images-idx3-ubyte.gz"
    data = images.read_bytes()
    images.write_bytes(data[: len(data) - 10])
    with pytest.raises(datasets.CorruptDatasetError) as info:
        datasets.load_numpy("fashion_mnist", "test", data_dir=tmp_path)
    assert str(images) in str(info.value) and "gzip" in str(info.value)
    assert "apt-get install dataset-fashion-mnist" in str(info.value)


@pytest.mark.parametrize(
    "images, labels, problem",
    [
        (idx_bytes(np.zeros((3, 28, 28)), magic=0x0801), idx_bytes(np.arange(3)), "magic"),
        (idx_bytes(np.zeros((3, 28, 28)))[:-1], idx_bytes(np.arange(3)), "announces shape"),
        (idx_bytes(np.zeros((3, 28, 28))), idx_bytes(np.arange(2)), "holds 2 labels"),
        (idx_bytes(np.zeros((3, 20, 20))), idx_bytes(np.arange(3)), "28x28"),
        (idx_bytes(np.zeros((3, 28, 28))), idx_bytes([1, 2, 11]), "0..9"),
        (b"\x00\x00", idx_bytes(np.arange(3)), "less than the IDX header"),
    ],
)
def test_malformed_idx(tmp_path, no_system_fashion, images, labels, problem):
    write_fashion(tmp_path, images, labels)
    with pytest.raises(datasets.CorruptDatasetError) as info:
        datasets.load_numpy("fashion_mnist", "test", data_dir=tmp_path)
    assert problem in str(info.value)


def test_small_valid_idx_is_read(tmp_path, no_system_fashion):
    images = np.arange(2 * 28 * 28, dtype=np.int64).reshape(2, 28, 28) % 256
    write_fashion(tmp_path / "fashion_mnist", idx_bytes(images), idx_bytes([4, 7]), "train")
    x, y = datasets.load_numpy("fashion_mnist", "train", data_dir=tmp_path)
    np.testing.assert_array_equal(x[..., 0], images)
    assert y.tolist() == [4, 7]


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"name": "imagenet", "split": "train"}, "Received: name='imagenet'"),
        ({"name": "mnist", "split": "validation"}, "Received: split='validation'"),
        ({"name": "mnist", "split": "train", "data_dir": 5}, "Received: data_dir=5"),
        ({"name": "mnist", "split": "train", "data_dir": ""}, "Received: data_dir=''"),
        (
            {"name": "digits", "split": "train", "shuffle_files": "yes"},
            "Received: shuffle_files='yes'",
        ),
    ],
)
def test_invalid_arguments(kwargs, received, forbid_tfds):
    with pytest.raises(ValueError) as info:
        datasets.load(**kwargs)
    assert received in str(info.value)
