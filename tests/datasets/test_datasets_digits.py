"""The embedded scikit-learn digits dataset."""

import numpy as np
import tensorflow as tf
from sklearn.datasets import load_digits

from tfemergent import datasets


def test_shapes_dtypes_and_scaling():
    x_train, y_train = datasets.load_numpy("digits", "train")
    x_test, y_test = datasets.load_numpy("digits", "test")
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    raw = load_digits().images
    # Only round(v * 255 / 16) for v in 0..16 can appear.
    allowed = {int(round(v * 255 / 16)) for v in range(17)}
    assert set(np.unique(np.concatenate([x_train.ravel(), x_test.ravel()]))) <= allowed
    assert {0, 16, 128, 255} <= allowed and x_train.max() == 255
    # The multiset of pixels is preserved by the split.
    expected = np.bincount(np.rint(raw * 255 / 16).astype(int).ravel(), minlength=256)
    found = np.bincount(np.concatenate([x_train.ravel(), x_test.ravel()]), minlength=256)
    np.testing.assert_array_equal(found, expected)


def test_stratified_split_counts():
    all_counts = np.bincount(load_digits().target, minlength=10)
    train_counts = np.bincount(datasets.load_numpy("digits", "train")[1], minlength=10)
    test_counts = np.bincount(datasets.load_numpy("digits", "test")[1], minlength=10)
    np.testing.assert_array_equal(train_counts + test_counts, all_counts)
    assert test_counts.sum() == 360
    assert np.all(np.abs(test_counts - 0.2 * all_counts) <= 1)


def test_split_matches_documented_recipe():
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    _, test_index = train_test_split(
        np.arange(1797), test_size=0.2, stratify=bunch.target, random_state=0
    )
    x_test, y_test = datasets.load_numpy("digits", "test")
    np.testing.assert_array_equal(y_test, bunch.target[test_index])
    expected_image = np.rint(bunch.images[test_index[3]] * 255 / 16)
    np.testing.assert_array_equal(x_test[3, :, :, 0], expected_image)


def test_deterministic_and_dataset_matches_numpy():
    first = datasets.load_numpy("digits", "train")
    second = datasets.load_numpy("digits", "train")
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    images, labels = next(iter(datasets.load("digits", "train").batch(2000)))
    np.testing.assert_array_equal(images.numpy(), first[0])
    np.testing.assert_array_equal(labels.numpy(), first[1])
    assert labels.dtype == tf.int64


def test_digits_transposed_is_the_transpose_with_the_same_labels():
    from tfemergent.datasets import load_numpy

    x, y = load_numpy("digits", "test")
    xt, yt = load_numpy("digits_transposed", "test")
    np.testing.assert_array_equal(xt, x.transpose(0, 2, 1, 3))
    np.testing.assert_array_equal(yt, y)
    assert not np.array_equal(xt, x)
