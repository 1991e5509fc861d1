"""Double classification tasks of the spatial-networks paper (Wołczyk et al.).

One network classifies examples of two datasets at once (the paper: MNIST and
Fashion-MNIST) with two 10-way heads. The three ways of presenting the inputs
are in `DOUBLE_TASK_MODES`; see `double_task`.
"""

import numpy as np
import tensorflow as tf

from tfemergent.datasets.loaders import DATASET_NAMES, IMAGE_SHAPES, read_arrays
from tfemergent.datasets.splits import parse_split
from tfemergent.utils.validation import validate_choice, validate_int, validate_seed

DOUBLE_TASK_MODES = ("concatenated", "mixed", "sequential")
ABSENT_LABEL = -1


def double_task(
    mode,
    split,
    first="mnist",
    second="fashion_mnist",
    data_dir=None,
    seed=0,
    num_samples=None,
):
    """Build a double classification task as numpy arrays.

    Images of both datasets are loaded with `load_numpy` (same `split` and
    `data_dir` for both), scaled to [0, 1] and flattened (D = H·W·C values).
    With `a_i` the i-th image of `first` and `b_j` the j-th image of `second`:

    - `"concatenated"`: `x_i = concat(a_i, b_perm[i])`, dimension D_first +
      D_second (1568 for MNIST + Fashion-MNIST); labels `(y_first[i],
      y_second[perm[i]])`. `N = min(len(first), len(second))`.
    - `"mixed"`: `x_i = a_i + b_perm[i]` element-wise (values in [0, 2]; the
      paper's "linear combination ... element-wise addition"), dimension D;
      same labels and N as concatenated.
    - `"sequential"`: `x` is a single image of either dataset, dimension D; the
      label of the task it belongs to is its class and the other task's label
      is `-1`. An equal mixture: N/2 images of each dataset (by default all of
      both when they have the same size, N = 2·min(len(first), len(second))),
      chosen and shuffled with `seed`. The task of sample i is
      `0 if y_first[i] >= 0 else 1`. Train with a loss that ignores -1, e.g.
      `keras.losses.SparseCategoricalCrossentropy(ignore_class=-1)` on each
      head: it averages over the labelled samples only.

    Pairing (concatenated and mixed): `rng = np.random.default_rng(seed)` and
    `perm = rng.permutation(len(second))`, so sample i is `first[i]` with
    `second[perm[i]]`; the order of `first` is kept. When `first == second`
    (for example `first="digits", second="digits"`, where task B is "digits
    paired with a different digits image"), `perm` is
    instead a seeded single cycle (`order = rng.permutation(n)`, `perm[order[k]]
    = order[k + 1]`, wrapping around) so that no image is paired with itself.
    With the same dataset twice, only the concatenated mode tells the tasks
    apart by position: a mixed input is symmetric in its two images and a
    sequential input looks alike for both tasks. The embedded default of the
    experiments therefore pairs `"digits"` with `"digits_transposed"`.

    Sequential selection: `rng = np.random.default_rng(seed)`, `k1 = ceil(N/2)`
    images `first[rng.permutation(len(first))[:k1]]`, then `k2 = floor(N/2)`
    images `second[rng.permutation(len(second))[:k2]]`, stacked in that order and
    reordered by `rng.permutation(N)`.

    Args:
        mode: one of `DOUBLE_TASK_MODES`: `"concatenated"`, `"mixed"`,
            `"sequential"`.
        split: `"train"` or `"test"`, optionally sliced (`"train[:1000]"`), for
            both datasets.
        first: name of the first task's dataset (see `load`).
        second: name of the second task's dataset. For `"mixed"` and
            `"sequential"` its images must have the same shape as `first`'s.
        data_dir: `None` or a local data directory (see `load`).
        seed: `None` or a non-negative integer seeding the pairing/mixture.
        num_samples: `None` for all available samples, or how many to return
            (at most N as defined above).

    Returns:
        `(x, (y_first, y_second))`: `x` float32 of shape (num_samples, dim),
        `y_first` and `y_second` int64 of shape (num_samples,) with values
        0..9, or -1 where the sample does not belong to that task
        (sequential mode only).

    Raises:
        ValueError: for an unknown `mode`, `first` or `second`, a malformed
            `split`, a bad `seed` or `num_samples`, images of different shapes
            in mixed or sequential mode, or `first == second` with fewer than
            two images.
        DatasetNotFoundError: when local files are missing (see `load`).

    Example:

    >>> from tfemergent.datasets import double_task
    >>> x, (y_first, y_second) = double_task(
    ...     "concatenated", "test", first="digits", second="digits", num_samples=5)
    >>> x.shape, x.dtype, y_first.shape
    ((5, 128), dtype('float32'), (5,))
    >>> x, (y_first, y_second) = double_task(
    ...     "sequential", "test", first="digits", second="digits", num_samples=4)
    >>> x.shape, int((y_first == -1).sum()), int((y_second == -1).sum())
    ((4, 64), 2, 2)
    """
    validate_choice("mode", mode, DOUBLE_TASK_MODES)
    validate_choice("first", first, DATASET_NAMES)
    validate_choice("second", second, DATASET_NAMES)
    parse_split(split)
    seed = validate_seed("seed", seed)
    num_samples = validate_int("num_samples", num_samples, minimum=1, allow_none=True)
    first_shape, second_shape = IMAGE_SHAPES[first], IMAGE_SHAPES[second]
    if mode != "concatenated" and first_shape != second_shape:
        raise ValueError(
            f"Mode {mode!r} needs images of the same shape in both datasets, but {first!r} "
            f"has images of shape {first_shape} and {second!r} of shape {second_shape}. Use "
            f"mode='concatenated' or two datasets with the same image shape. "
            f"Received: first={first!r}, second={second!r}"
        )
    x_first, y_first = read_arrays(first, split, data_dir)
    if second == first:
        x_second, y_second = x_first, y_first
    else:
        x_second, y_second = read_arrays(second, split, data_dir)
    rng = np.random.default_rng(seed)
    if mode == "sequential":
        return _sequential(x_first, y_first, x_second, y_second, rng, num_samples)
    return _paired(mode, x_first, y_first, x_second, y_second, rng, num_samples, first == second)


def double_task_dataset(
    mode,
    split,
    first="mnist",
    second="fashion_mnist",
    data_dir=None,
    seed=0,
    num_samples=None,
):
    """`double_task` as a `tf.data.Dataset` of `(x, (y_first, y_second))`.

    Same arguments, data and errors as `double_task`; the elements are
    `x` float32 of shape (dim,) and two scalar int64 labels, ready for a model
    with two outputs (the first output gets `y_first`).

    Args:
        mode: one of `DOUBLE_TASK_MODES`.
        split: `"train"` or `"test"`, optionally sliced.
        first: name of the first task's dataset.
        second: name of the second task's dataset.
        data_dir: `None` or a local data directory.
        seed: `None` or a non-negative integer.
        num_samples: `None` or how many samples to return.

    Returns:
        A `tf.data.Dataset` (not shuffled, not batched).

    Raises:
        ValueError: as `double_task`.
        DatasetNotFoundError: when local files are missing.

    Example:

    >>> from tfemergent.datasets import double_task_dataset
    >>> dataset = double_task_dataset("mixed", "test", first="digits", second="digits")
    >>> dataset.element_spec[0]
    TensorSpec(shape=(64,), dtype=tf.float32, name=None)
    """
    x, labels = double_task(
        mode,
        split,
        first=first,
        second=second,
        data_dir=data_dir,
        seed=seed,
        num_samples=num_samples,
    )
    return tf.data.Dataset.from_tensor_slices((x, labels))


def _too_many(num_samples, available, mode):
    return ValueError(
        f"Argument `num_samples` must be at most {available}, the number of samples the "
        f"{mode!r} mode can build from these splits. Received: num_samples={num_samples}"
    )


def _paired(mode, x_first, y_first, x_second, y_second, rng, num_samples, same_source):
    num_second = y_second.shape[0]
    if same_source:
        if num_second < 2:
            raise ValueError(
                "Pairing a dataset with itself needs at least two images in the split so "
                "that no image is paired with itself. Received: "
                f"num_examples={num_second}"
            )
        order = rng.permutation(num_second)
        permutation = np.empty(num_second, dtype=np.int64)
        permutation[order] = np.roll(order, -1)
    else:
        permutation = rng.permutation(num_second)
    available = min(y_first.shape[0], num_second)
    if num_samples is not None and num_samples > available:
        raise _too_many(num_samples, available, mode)
    count = available if num_samples is None else num_samples
    partner = permutation[:count]
    first_flat = x_first[:count].reshape(count, -1)
    second_flat = x_second[partner].reshape(count, -1)
    if mode == "concatenated":
        x = np.concatenate([first_flat, second_flat], axis=1).astype(np.float32)
        np.divide(x, np.float32(255), out=x)
    else:
        x = first_flat.astype(np.float32)
        np.divide(x, np.float32(255), out=x)
        x += second_flat.astype(np.float32) / np.float32(255)
    return x, (y_first[:count].astype(np.int64), y_second[partner].astype(np.int64))


def _sequential(x_first, y_first, x_second, y_second, rng, num_samples):
    available = 2 * min(y_first.shape[0], y_second.shape[0])
    if num_samples is not None and num_samples > available:
        raise _too_many(num_samples, available, "sequential")
    total = available if num_samples is None else num_samples
    count_first, count_second = (total + 1) // 2, total // 2
    index_first = rng.permutation(y_first.shape[0])[:count_first]
    index_second = rng.permutation(y_second.shape[0])[:count_second]
    images = np.concatenate(
        [
            x_first[index_first].reshape(count_first, -1),
            x_second[index_second].reshape(count_second, -1),
        ]
    )
    absent_first = np.full(count_second, ABSENT_LABEL, dtype=np.int64)
    absent_second = np.full(count_first, ABSENT_LABEL, dtype=np.int64)
    labels_first = np.concatenate([y_first[index_first].astype(np.int64), absent_first])
    labels_second = np.concatenate([absent_second, y_second[index_second].astype(np.int64)])
    order = rng.permutation(total)
    x = images[order].astype(np.float32)
    np.divide(x, np.float32(255), out=x)
    return x, (labels_first[order], labels_second[order])
