"""scikit-learn's bundled 8x8 digits as an embedded dataset that needs no files.

`sklearn.datasets.load_digits` ships 1,797 images of 8x8 pixels with values
0..16. tfemergent turns them into uint8 images of shape (8, 8, 1) scaled to
0..255 by `round(v * 255 / 16)` (so 16 becomes 255 and 8 becomes 128), and
int64 labels 0..9.

The split is fixed: `sklearn.model_selection.train_test_split` with
`test_size=0.2`, `stratify=labels`, `random_state=0`, which gives 1,437 training
and 360 test images in the shuffled order that function returns, with every
class within one image of 20% in the test split.

`"digits_transposed"` is the same images with rows and columns swapped (same
split, same labels): a second embedded task that looks different from the
first, which the double-task experiments pair with `"digits"` (a mixed or
sequential input made of two copies of the same dataset would not tell the
network which task an image belongs to).
"""

import functools

import numpy as np

DIGITS_IMAGE_SHAPE = (8, 8, 1)
DIGITS_TEST_FRACTION = 0.2
DIGITS_SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def _digits_splits():
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError(
            "The embedded 'digits' dataset needs scikit-learn. Install it with "
            "`pip install scikit-learn`."
        ) from error
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    labels = bunch.target.astype(np.int64)
    train_index, test_index = train_test_split(
        np.arange(labels.shape[0]),
        test_size=DIGITS_TEST_FRACTION,
        stratify=labels,
        random_state=DIGITS_SPLIT_SEED,
    )
    splits = {}
    for split, index in (("train", train_index), ("test", test_index)):
        split_images = np.ascontiguousarray(images[index])
        split_labels = np.ascontiguousarray(labels[index])
        split_images.setflags(write=False)
        split_labels.setflags(write=False)
        splits[split] = (split_images, split_labels)
    return splits


@functools.lru_cache(maxsize=2)
def _transposed_splits(split):
    images, labels = _digits_splits()[split]
    transposed = np.ascontiguousarray(images.transpose(0, 2, 1, 3))
    transposed.setflags(write=False)
    return transposed, labels


def read_digits_split(split, transposed=False):
    """Read-only `(images uint8 (N, 8, 8, 1), labels int64 (N,))` of `"train"` or `"test"`.

    With `transposed=True`, every image is transposed (the `"digits_transposed"` dataset).
    """
    if transposed:
        return _transposed_splits(split)
    return _digits_splits()[split]
