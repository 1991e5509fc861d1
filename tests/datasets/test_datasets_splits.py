"""Split strings: the accepted tfds slice forms and the rejected ones (on the embedded digits)."""

import numpy as np
import pytest

from tfemergent import datasets
from tfemergent.datasets.splits import parse_split, split_slice


@pytest.mark.parametrize(
    "split, expected",
    [
        ("train", slice(None, None)),
        ("test[:100]", slice(None, 100)),
        ("test[ 10 : 20 ]", slice(10, 20)),
        ("test[-5:]", slice(-5, None)),
        ("test[:10%]", slice(None, 36)),
        ("test[33%:]", slice(119, None)),  # round(33 * 360 / 100) = round(118.8)
        ("test[-10%:]", slice(-36, None)),
        ("test[12.5%:25%]", slice(45, 90)),
    ],
)
def test_accepted_forms(split, expected):
    assert split_slice(parse_split(split), 360) == expected
    _, labels = datasets.load_numpy("digits", split)
    _, all_labels = datasets.load_numpy("digits", parse_split(split).base)
    np.testing.assert_array_equal(labels, all_labels[expected])


@pytest.mark.parametrize(
    "split",
    [
        "validation",
        "train+test",
        "train[::2]",
        "train[:]",
        "train[1.5:]",
        "train[:10%5]",
        "train[10%:20]",
        "train[:101%]",
        "train[5]",
        "Train",
        "",
        5,
        None,
    ],
)
def test_rejected_forms(split):
    with pytest.raises(ValueError) as info:
        datasets.load_numpy("digits", split)
    assert f"Received: split={split!r}" in str(info.value)


def test_out_of_range_slice():
    with pytest.raises(ValueError) as info:
        datasets.load("digits", "test[:361]")
    assert "holds 360 examples" in str(info.value)
    assert "Received: split='test[:361]'" in str(info.value)
    assert datasets.load_numpy("digits", "test[:360]")[0].shape[0] == 360
    assert datasets.load_numpy("digits", "test[300:200]")[0].shape[0] == 0
