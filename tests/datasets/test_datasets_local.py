"""tfemergent.datasets on the real local files (shared data + Debian Fashion-MNIST)."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfemergent import datasets
from tfemergent.datasets import local_files

MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
CIFAR_FIRST_TEST_LABELS = [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
GRAY_SPEC = (tf.TensorSpec((28, 28, 1), tf.uint8), tf.TensorSpec((), tf.int64))


def counts(labels):
    return np.bincount(labels, minlength=10).tolist()


def test_mnist_numpy_shapes_dtypes_and_label_counts(shared_data_dir):
    x_test, y_test = datasets.load_numpy("mnist", "test", data_dir=shared_data_dir)
    assert x_test.shape == (10000, 28, 28, 1) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.int64
    assert counts(y_test) == MNIST_TEST_COUNTS
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    x_train, y_train = datasets.load_numpy("mnist", "train", data_dir=shared_data_dir)
    assert x_train.shape == (60000, 28, 28, 1)
    assert counts(y_train) == MNIST_TRAIN_COUNTS
    assert x_train.max() == 255 and x_train.min() == 0


def test_mnist_dataset_element_spec_and_contents(data_env):
    dataset = datasets.load("mnist", "test")  # directory from TFEMERGENT_DATA_DIR
    assert dataset.element_spec == GRAY_SPEC
    assert int(dataset.cardinality()) == 10000
    x, y = datasets.load_numpy("mnist", "test")
    image, label = next(iter(dataset.skip(3)))
    np.testing.assert_array_equal(image.numpy(), x[3])
    assert int(label) == y[3] == 0


def test_fashion_mnist_found_through_debian_fallback(shared_data_dir):
    assert not any(
        os.path.exists(shared_data_dir / name)
        for name in ("fashion-mnist", "fashion_mnist", "t10k-images-idx3-ubyte.gz")
    )
    x, y = datasets.load_numpy("fashion_mnist", "test", data_dir=shared_data_dir)
    assert x.shape == (10000, 28, 28, 1) and x.dtype == np.uint8
    assert counts(y) == [1000] * 10
    assert y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    _, y_train = datasets.load_numpy("fashion_mnist", "train", data_dir=shared_data_dir)
    assert counts(y_train) == [6000] * 10
    dataset = datasets.load("fashion_mnist", "test[:10]", data_dir=shared_data_dir)
    assert dataset.element_spec == GRAY_SPEC


@pytest.mark.parametrize("subdirectory", ["fashion-mnist", "fashion_mnist", ""])
def test_fashion_mnist_found_in_data_dir(tmp_path, monkeypatch, subdirectory):
    system_dir = local_files.FASHION_MNIST_SYSTEM_DIRECTORIES[0]
    target = tmp_path / subdirectory
    target.mkdir(exist_ok=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        os.symlink(os.path.join(system_dir, name), target / name)
    monkeypatch.setattr(local_files, "FASHION_MNIST_SYSTEM_DIRECTORIES", ())
    x, y = datasets.load_numpy("fashion_mnist", "test[:50]", data_dir=tmp_path)
    assert x.shape == (50, 28, 28, 1)
    assert y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]


def test_cifar10_test_labels_and_spec(shared_data_dir):
    x, y = datasets.load_numpy("cifar10", "test", data_dir=shared_data_dir)
    assert x.shape == (10000, 32, 32, 3) and x.dtype == np.uint8
    assert y[:20].tolist() == CIFAR_FIRST_TEST_LABELS
    assert counts(y) == [1000] * 10
    # Published CIFAR-10 test-set channel means, to 4 decimals (README).
    np.testing.assert_allclose(x.mean(axis=(0, 1, 2)) / 255, [0.4942, 0.4851, 0.4504], atol=1e-4)
    dataset = datasets.load("cifar10", "test[:20]", data_dir=shared_data_dir)
    assert dataset.element_spec == (
        tf.TensorSpec((32, 32, 3), tf.uint8),
        tf.TensorSpec((), tf.int64),
    )
    assert [int(label) for _, label in dataset] == CIFAR_FIRST_TEST_LABELS


def test_cifar10_train_subset(shared_data_dir):
    x, y = datasets.load_numpy("cifar10", "train", data_dir=shared_data_dir)
    assert x.shape == (30000, 32, 32, 3)
    assert counts(y) == [3000] * 10
    assert y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]


def test_number_topography_images_and_codes(shared_data_dir):
    dataset = datasets.load("number_topography", "test", data_dir=shared_data_dir)
    assert dataset.element_spec == (
        tf.TensorSpec((32, 32, 1), tf.uint8),
        tf.TensorSpec((), tf.int64),
    )
    images, codes, labels = datasets.load_number_codes("test", data_dir=shared_data_dir)
    assert images.shape == (1000, 32, 32, 1) and images.dtype == np.uint8
    assert codes.shape == (1000, 100) and codes.dtype == np.float32
    assert labels.dtype == np.int64 and counts(labels) == [100] * 10
    with np.load(shared_data_dir / "number_topography.npz") as raw:
        np.testing.assert_array_equal(images[..., 0], raw["x_test"][:, 0])
        np.testing.assert_array_equal(codes, raw["number_codes"][labels].astype(np.float32))
    np.testing.assert_array_equal(codes[labels == 0][0, :10], np.ones(10))
    x, y = datasets.load_numpy("number_topography", "train[:10]", data_dir=shared_data_dir)
    assert x.shape == (10, 32, 32, 1) and y.tolist() == [0] * 10
    # White background, black digits.
    assert x[0, 0, 0, 0] == 255 and x.min() == 0


def test_slicing(shared_data_dir):
    x, y = datasets.load_numpy("mnist", "train", data_dir=shared_data_dir)
    x100, y100 = datasets.load_numpy("mnist", "train[:100]", data_dir=shared_data_dir)
    np.testing.assert_array_equal(x100, x[:100])
    np.testing.assert_array_equal(y100, y[:100])
    dataset = datasets.load("mnist", "train[:100]", data_dir=shared_data_dir)
    assert int(dataset.cardinality()) == 100
    _, y_middle = datasets.load_numpy("mnist", "train[100:250]", data_dir=shared_data_dir)
    np.testing.assert_array_equal(y_middle, y[100:250])
    _, y_tail = datasets.load_numpy("mnist", "train[-7:]", data_dir=shared_data_dir)
    np.testing.assert_array_equal(y_tail, y[-7:])
    _, y_percent = datasets.load_numpy("mnist", "test[:10%]", data_dir=shared_data_dir)
    assert y_percent.shape == (1000,)
    _, y_range = datasets.load_numpy("mnist", "test[25%:30%]", data_dir=shared_data_dir)
    y_test = datasets.load_numpy("mnist", "test", data_dir=shared_data_dir)[1]
    np.testing.assert_array_equal(y_range, y_test[2500:3000])


def test_argument_wins_over_environment(shared_data_dir, tmp_path, monkeypatch, forbid_tfds):
    monkeypatch.setenv("TFEMERGENT_DATA_DIR", str(tmp_path))  # empty directory
    with pytest.raises(datasets.DatasetNotFoundError):
        datasets.load_numpy("mnist", "test")
    _, y = datasets.load_numpy("mnist", "test[:3]", data_dir=shared_data_dir)
    assert y.tolist() == [7, 2, 1]
    assert datasets.resolve_data_dir(shared_data_dir) == str(shared_data_dir)
    assert datasets.resolve_data_dir() == str(tmp_path)
    monkeypatch.setenv("TFEMERGENT_DATA_DIR", "")
    assert datasets.resolve_data_dir() is None
    assert forbid_tfds == []


def test_returned_arrays_do_not_alias_the_cache(shared_data_dir):
    x, y = datasets.load_numpy("mnist", "test[:5]", data_dir=shared_data_dir)
    x[:] = 0
    y[:] = 9
    x_again, y_again = datasets.load_numpy("mnist", "test[:5]", data_dir=shared_data_dir)
    assert x_again.max() == 255 and y_again.tolist() == [7, 2, 1, 0, 4]
    cached_images, cached_labels = local_files.read_split(
        "mnist", "test", str(shared_data_dir), "argument"
    )
    assert not cached_images.flags.writeable and not cached_labels.flags.writeable


def test_cache_notices_a_replaced_file(tmp_path):
    def write(num_examples, label):
        np.savez_compressed(
            tmp_path / "mnist.npz",
            x_train=np.zeros((num_examples, 28, 28), np.uint8),
            y_train=np.full(num_examples, label, np.uint8),
            x_test=np.zeros((num_examples, 28, 28), np.uint8),
            y_test=np.full(num_examples, label, np.uint8),
        )

    write(3, 1)
    assert datasets.load_numpy("mnist", "test", data_dir=tmp_path)[1].tolist() == [1, 1, 1]
    write(4, 2)
    assert datasets.load_numpy("mnist", "test", data_dir=tmp_path)[1].tolist() == [2, 2, 2, 2]


def test_relative_data_dir(shared_data_dir, tmp_path, monkeypatch):
    shutil.copy(shared_data_dir / "number_topography.npz", tmp_path / "number_topography.npz")
    monkeypatch.chdir(tmp_path.parent)
    relative = os.path.join(tmp_path.name)
    monkeypatch.setenv("TFEMERGENT_DATA_DIR", relative)
    assert datasets.resolve_data_dir() == str(tmp_path)
    _, codes, _ = datasets.load_number_codes("train[:2]")
    assert codes.shape == (2, 100)
