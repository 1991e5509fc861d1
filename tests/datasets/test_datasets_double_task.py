"""Double classification tasks (spatial networks paper) with hand-checked values."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfemergent import datasets


def flat(images):
    return images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255)


@pytest.fixture
def sources(shared_data_dir):
    mnist = datasets.load_numpy("mnist", "test[:20]", data_dir=shared_data_dir)
    fashion = datasets.load_numpy("fashion_mnist", "test[:20]", data_dir=shared_data_dir)
    return mnist, fashion


def test_concatenated_pairs_with_seeded_permutation(shared_data_dir, sources):
    (x_a, y_a), (x_b, y_b) = sources
    x, (y_first, y_second) = datasets.double_task(
        "concatenated", "test[:20]", data_dir=shared_data_dir, seed=3, num_samples=5
    )
    assert x.shape == (5, 1568) and x.dtype == np.float32
    assert y_first.dtype == y_second.dtype == np.int64
    permutation = np.random.default_rng(3).permutation(20)
    for i in range(5):
        expected = np.concatenate([flat(x_a)[i], flat(x_b)[permutation[i]]])
        np.testing.assert_array_equal(x[i], expected)
    np.testing.assert_array_equal(y_first, y_a[:5])
    np.testing.assert_array_equal(y_second, y_b[permutation[:5]])
    # Hand check of one pixel: MNIST test image 0 has value 84 at row 7, column 6.
    assert x_a[0, 7, 6, 0] == 84 and x[0, 7 * 28 + 6] == np.float32(84) / np.float32(255)


def test_mixed_is_elementwise_sum(shared_data_dir, sources):
    (x_a, y_a), (x_b, y_b) = sources
    x, (y_first, y_second) = datasets.double_task(
        "mixed", "test[:20]", data_dir=shared_data_dir, seed=0
    )
    assert x.shape == (20, 784)
    permutation = np.random.default_rng(0).permutation(20)
    np.testing.assert_array_equal(x, flat(x_a) + flat(x_b)[permutation])
    np.testing.assert_array_equal(y_first, y_a)
    np.testing.assert_array_equal(y_second, y_b[permutation])
    assert 1.0 < x.max() <= 2.0 and x.min() == 0.0


def test_sequential_labels_and_images(shared_data_dir, sources):
    (x_a, y_a), (x_b, y_b) = sources
    x, (y_first, y_second) = datasets.double_task(
        "sequential", "test[:20]", data_dir=shared_data_dir, seed=1
    )
    assert x.shape == (40, 784)
    assert np.all((y_first == -1) != (y_second == -1))  # exactly one task per sample
    assert (y_first >= 0).sum() == (y_second >= 0).sum() == 20  # all of both sets
    flat_a, flat_b = flat(x_a), flat(x_b)
    for row, label_first, label_second in zip(x, y_first, y_second):
        source, labels, label = (
            (flat_a, y_a, label_first) if label_first >= 0 else (flat_b, y_b, label_second)
        )
        matches = np.flatnonzero(np.all(source == row, axis=1))
        assert matches.size >= 1 and label in labels[matches]
    # Seeded: reproducible, and shuffled differently by another seed.
    again = datasets.double_task("sequential", "test[:20]", data_dir=shared_data_dir, seed=1)
    np.testing.assert_array_equal(again[0], x)
    other = datasets.double_task("sequential", "test[:20]", data_dir=shared_data_dir, seed=2)
    assert not np.array_equal(other[1][0], y_first)


def test_sequential_num_samples_splits_evenly(shared_data_dir):
    x, (y_first, y_second) = datasets.double_task(
        "sequential", "test[:20]", data_dir=shared_data_dir, num_samples=7
    )
    assert x.shape == (7, 784)
    assert (y_first >= 0).sum() == 4 and (y_second >= 0).sum() == 3


def test_paper_dimensions(shared_data_dir):
    for mode, dim in (("concatenated", 1568), ("mixed", 784), ("sequential", 784)):
        x, _ = datasets.double_task(mode, "test", data_dir=shared_data_dir, num_samples=8)
        assert x.shape == (8, dim)
        assert 0.0 <= x.min() and x.max() <= 2.0


def test_digits_paired_with_itself_never_pairs_an_image_with_itself():
    x, (y_first, y_second) = datasets.double_task(
        "concatenated", "test", first="digits", second="digits", seed=0
    )
    assert x.shape == (360, 128)
    images, labels = datasets.load_numpy("digits", "test")
    rng = np.random.default_rng(0)
    order = rng.permutation(360)
    permutation = np.empty(360, np.int64)
    permutation[order] = np.roll(order, -1)
    assert not np.any(permutation == np.arange(360))
    np.testing.assert_array_equal(x, np.concatenate([flat(images), flat(images)[permutation]], 1))
    np.testing.assert_array_equal(y_first, labels)
    np.testing.assert_array_equal(y_second, labels[permutation])


def test_concatenated_allows_different_image_shapes():
    x, _ = datasets.double_task(
        "concatenated", "test", first="digits", second="digits", num_samples=3
    )
    assert x.shape == (3, 128)


def test_dataset_helper_and_masked_loss():
    dataset = datasets.double_task_dataset(
        "sequential", "test", first="digits", second="digits", num_samples=10
    )
    assert dataset.element_spec == (
        tf.TensorSpec((64,), tf.float32),
        (tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64)),
    )
    _, (y_first, _) = next(iter(dataset.batch(10)))
    # The documented loss ignores the -1 labels: the mean runs over labelled samples.
    predictions = np.full((10, 10), 0.1, np.float32)
    predictions[y_first.numpy() == -1] = np.eye(10, dtype=np.float32)[9] * 0.99 + 0.001
    loss = keras.losses.SparseCategoricalCrossentropy(ignore_class=-1)
    np.testing.assert_allclose(float(loss(y_first, predictions)), -np.log(0.1), rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, received",
    [
        ({"mode": "stacked"}, "Received: mode='stacked'"),
        ({"mode": "mixed", "first": "mnist", "second": "cifar10"}, "Received: first='mnist'"),
        ({"mode": "sequential", "first": "digits", "second": "mnist"}, "second='mnist'"),
        ({"mode": "mixed", "first": "svhn"}, "Received: first='svhn'"),
        ({"mode": "mixed", "second": "digits ", "first": "digits"}, "Received: second="),
        ({"mode": "mixed", "seed": -1}, "Received: seed=-1"),
        ({"mode": "mixed", "num_samples": 0}, "Received: num_samples=0"),
        ({"mode": "mixed", "num_samples": 2.5}, "Received: num_samples=2.5"),
        ({"mode": "mixed", "split": "dev"}, "Received: split='dev'"),
        (
            {"mode": "concatenated", "first": "digits", "second": "digits", "num_samples": 361},
            "Received: num_samples=361",
        ),
        (
            {"mode": "sequential", "first": "digits", "second": "digits", "num_samples": 721},
            "Received: num_samples=721",
        ),
        (
            {"mode": "mixed", "first": "digits", "second": "digits", "split": "test[:1]"},
            "Received: num_examples=1",
        ),
    ],
)
def test_invalid_arguments(kwargs, received, forbid_tfds):
    arguments = {"split": "test", **kwargs}
    with pytest.raises(ValueError) as info:
        datasets.double_task(**arguments)
    assert received in str(info.value)
