"""`load`, `load_numpy` and `load_number_codes`: image datasets online or from local files."""

import numpy as np
import tensorflow as tf

from tfemergent.datasets import digits as digits_lib
from tfemergent.datasets import local_files
from tfemergent.datasets import network
from tfemergent.datasets import splits as splits_lib
from tfemergent.datasets.dataset_not_found_error import DatasetNotFoundError
from tfemergent.datasets.directories import DATA_DIR_ENV_VAR, resolve_data_dir_with_source
from tfemergent.utils.validation import validate_bool, validate_choice

DATASET_NAMES = (
    "mnist", "fashion_mnist", "cifar10", "number_topography", "digits", "digits_transposed"
)
# Datasets bundled with the installed packages: never read from files or tfds.
EMBEDDED_NAMES = ("digits", "digits_transposed")
# Names that tensorflow-datasets knows under the same name.
TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10")
# (H, W, C) of every dataset's images.
IMAGE_SHAPES = {
    **{name: local_files.image_shape(name) for name in DATASET_NAMES if name not in EMBEDDED_NAMES},
    "digits": digits_lib.DIGITS_IMAGE_SHAPE,
    "digits_transposed": digits_lib.DIGITS_IMAGE_SHAPE,
}


def load(name, split, data_dir=None, *, shuffle_files=False):
    """Load an image classification dataset as a `tf.data.Dataset` of `(image, label)`.

    The elements match what tensorflow-datasets yields with `as_supervised=True`:
    `image` is a `tf.uint8` tensor of shape (H, W, C) and `label` a scalar
    `tf.int64`. Image shapes: (28, 28, 1) for `"mnist"` and `"fashion_mnist"`,
    (32, 32, 3) for `"cifar10"`, (32, 32, 1) for `"number_topography"` (its
    grayscale channel; the 100-d number codes come from `load_number_codes`)
    and (8, 8, 1) for `"digits"`.

    Where the data come from:

    - With a local data directory (the argument `data_dir`, else the
      environment variable `TFEMERGENT_DATA_DIR`), the files are read from it
      and nothing is ever downloaded: `mnist.npz`, `cifar10.npz`,
      `number_topography.npz` (formats in `local_files`), and for Fashion-MNIST
      the IDX files `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` looked for
      in `<data_dir>/fashion-mnist/`, `<data_dir>/fashion_mnist/`, `<data_dir>/`
      and finally `/usr/share/datasets/fashion-mnist/` (Debian's package
      `dataset-fashion-mnist`). Parsed files are cached in-process.
    - Without one, `"mnist"`, `"fashion_mnist"` and `"cifar10"` come from
      `tensorflow_datasets.load(name, split=split, as_supervised=True,
      shuffle_files=shuffle_files)` (imported only then), and
      `"number_topography"` raises `DatasetNotFoundError` (it is not in
      tensorflow-datasets).
    - `"digits"` (scikit-learn's bundled 8x8 digits, see `digits`) is always
      embedded and ignores any data directory. Its split is a stratified 80/20
      split with seed 0: 1,437 training and 360 test images.

    The local `cifar10.npz` of the project holds a 30,000-image training subset
    (JPEG-degraded) and the full lossless test set.

    Args:
        name: one of `"mnist"`, `"fashion_mnist"`, `"cifar10"`,
            `"number_topography"`, `"digits"`.
        split: `"train"` or `"test"`, optionally sliced as in
            tensorflow-datasets: `"train[:1000]"`, `"train[1000:2000]"`,
            `"test[-500:]"`, `"train[:10%]"` (see `splits`). The same grammar is
            accepted online and offline.
        data_dir: `None` or a local data directory; overrides
            `TFEMERGENT_DATA_DIR`.
        shuffle_files: passed to tensorflow-datasets online. Local files and
            digits are one "file" each, so it has no effect there (as for a
            single-shard tensorflow-datasets dataset); shuffle the elements
            with `Dataset.shuffle`.

    Returns:
        A `tf.data.Dataset` with element spec
        `(TensorSpec((H, W, C), tf.uint8), TensorSpec((), tf.int64))`.

    Raises:
        ValueError: for an unknown `name`, a malformed `split`, a slice out of
            range, or a `data_dir` that is not a path.
        DatasetNotFoundError: (a `FileNotFoundError`) when the local files are
            missing; the message lists every path looked at and how to obtain
            the data. Without a local directory, at once when tensorflow-datasets
            would have to download the data and its host is not reachable.
        CorruptDatasetError: (a `ValueError`) when a local file is damaged.
        ImportError: online, when tensorflow-datasets is not installed.

    Example:

    >>> from tfemergent.datasets import load
    >>> dataset = load("digits", "test[:100]")
    >>> dataset.element_spec[0]
    TensorSpec(shape=(8, 8, 1), dtype=tf.uint8, name=None)
    >>> int(dataset.cardinality())
    100
    """
    name, parsed, directory, source = _validated(name, split, data_dir)
    validate_bool("shuffle_files", shuffle_files)
    if name not in EMBEDDED_NAMES and directory is None:
        return _load_tfds(name, parsed.text, shuffle_files)
    images, labels = _local_arrays(name, parsed, directory, source)[:2]
    return tf.data.Dataset.from_tensor_slices((images, labels))


def load_numpy(name, split, data_dir=None):
    """Load an image classification dataset as numpy arrays `(x, y)`.

    Same datasets, splits and data sources as `load` (see there), without
    building a `tf.data` pipeline: local files and digits are returned from the
    in-process cache directly. Online, the tensorflow-datasets split is read
    into memory.

    Args:
        name: one of `"mnist"`, `"fashion_mnist"`, `"cifar10"`,
            `"number_topography"`, `"digits"`.
        split: `"train"` or `"test"`, optionally sliced (`"train[:1000]"`,
            `"train[:10%]"`, ...).
        data_dir: `None` or a local data directory; overrides
            `TFEMERGENT_DATA_DIR`.

    Returns:
        `(x, y)`: `x` uint8 of shape (N, H, W, C) with values 0..255 and `y`
        int64 of shape (N,) with values 0..9. Both are fresh writable copies,
        so changing them does not affect later calls.

    Raises:
        ValueError: for an unknown `name`, a malformed `split` or a slice out
            of range.
        DatasetNotFoundError: when the local files are missing, or (without a
            local directory) when tensorflow-datasets' host is not reachable.
        CorruptDatasetError: when a local file is damaged.
        ImportError: online, when tensorflow-datasets is not installed.

    Example:

    >>> from tfemergent.datasets import load_numpy
    >>> x, y = load_numpy("digits", "train")
    >>> x.shape, x.dtype, y.shape, y.dtype
    ((1437, 8, 8, 1), dtype('uint8'), (1437,), dtype('int64'))
    """
    name, parsed, directory, source = _validated(name, split, data_dir)
    if name not in EMBEDDED_NAMES and directory is None:
        return _load_tfds_numpy(name, parsed.text)
    images, labels = _local_arrays(name, parsed, directory, source)[:2]
    return images.copy(), labels.copy()


def load_number_codes(split, data_dir=None):
    """Load the Reset-networks number-topography set with its 100-d number codes.

    Each image shows one digit 0..9 as black text on a white 32x32 background;
    the target of the Reset-networks number task is the digit's 100-dimensional
    "number code" (Hannagan et al.). The file is channels-first with three
    identical channels; channel 0 is returned, channels-last. The file is
    sorted by digit, so shuffle before training. A local directory is required
    (argument `data_dir` or `TFEMERGENT_DATA_DIR`) holding
    `number_topography.npz` (5,000 training and 1,000 test images).

    Args:
        split: `"train"` or `"test"`, optionally sliced (`"train[:1000]"`, ...).
        data_dir: `None` or a local data directory; overrides
            `TFEMERGENT_DATA_DIR`.

    Returns:
        `(images, codes, labels)`: uint8 (N, 32, 32, 1), float32 (N, 100) and
        int64 (N,) writable copies.

    Raises:
        ValueError: for a malformed `split` or a slice out of range.
        DatasetNotFoundError: when no local directory is configured or it lacks
            `number_topography.npz`.
        CorruptDatasetError: when the file is damaged.

    Example:

    With `TFEMERGENT_DATA_DIR` pointing at the project's shared data:

    >>> from tfemergent.datasets import load_number_codes
    >>> images, codes, labels = load_number_codes("test")
    >>> images.shape, codes.shape, labels.shape
    ((1000, 32, 32, 1), (1000, 100), (1000,))
    >>> print(codes[labels == 0][0, :12])
    [1. 1. 1. 1. 1. 1. 1. 1. 1. 1. 0. 0.]
    """
    _, parsed, directory, source = _validated("number_topography", split, data_dir)
    images, labels, codes = _local_arrays("number_topography", parsed, directory, source)
    return images.copy(), codes.copy(), labels.copy()


def read_arrays(name, split, data_dir=None):
    """Like `load_numpy`, but local arrays are read-only views of the cache (no copy).

    For internal use by functions that only read the arrays (`double_task`).
    """
    name, parsed, directory, source = _validated(name, split, data_dir)
    if name not in EMBEDDED_NAMES and directory is None:
        return _load_tfds_numpy(name, parsed.text)
    return _local_arrays(name, parsed, directory, source)[:2]


def _validated(name, split, data_dir):
    validate_choice("name", name, DATASET_NAMES)
    parsed = splits_lib.parse_split(split)
    directory, source = resolve_data_dir_with_source(data_dir)
    if name == "number_topography" and directory is None:
        raise _number_topography_needs_directory(data_dir)
    return name, parsed, directory, source


def _number_topography_needs_directory(data_dir):
    return DatasetNotFoundError(
        "The dataset 'number_topography' is not part of tensorflow-datasets and needs a "
        f"local data directory: pass data_dir=... or set {DATA_DIR_ENV_VAR} to a directory "
        "holding `number_topography.npz`. To obtain it, "
        f"{local_files.HOW_TO_OBTAIN['number_topography']}. "
        f"Received: data_dir={data_dir!r} and {DATA_DIR_ENV_VAR} unset"
    )


def _local_arrays(name, parsed, directory, source):
    """Read-only arrays of the selected slice (views of the cache)."""
    if name in EMBEDDED_NAMES:
        arrays = digits_lib.read_digits_split(parsed.base, transposed=name == "digits_transposed")
    else:
        arrays = local_files.read_split(name, parsed.base, directory, source)
    selection = splits_lib.split_slice(parsed, arrays[0].shape[0])
    return tuple(array[selection] for array in arrays)


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as error:
        raise ImportError(
            "Loading datasets online needs tensorflow-datasets. Install it with "
            "`pip install tensorflow-datasets==4.9.10`, or point `data_dir=` or the "
            f"environment variable {DATA_DIR_ENV_VAR} at a directory with local files."
        ) from error
    return tfds


def _offline_error(name):
    return DatasetNotFoundError(
        f"No local data directory is set and tensorflow-datasets cannot download {name!r}: "
        f"{network.TFDS_HOST} is not reachable (no network?) and no copy was prepared in "
        f"{network.tfds_data_dir()}. Set {DATA_DIR_ENV_VAR} (or pass data_dir=...) to a "
        f"directory with the local files: {local_files.LOCAL_COPY[name]}. "
        f"Received: data_dir=None and {DATA_DIR_ENV_VAR} unset"
    )


def _load_tfds(name, split, shuffle_files):
    tfds = _import_tfds()
    if not network.prepared_by_tfds(name) and not network.tfds_reachable():
        raise _offline_error(name)  # at once, not after minutes of download retries
    try:
        return tfds.load(name, split=split, as_supervised=True, shuffle_files=shuffle_files)
    except Exception as error:
        error.add_note(
            f"tfemergent: tensorflow-datasets could not load {name!r}. Without internet, "
            f"pass data_dir=... or set {DATA_DIR_ENV_VAR} to a directory with local files: "
            f"{local_files.HOW_TO_OBTAIN[name]}."
        )
        raise


def _load_tfds_numpy(name, split):
    dataset = _load_tfds(name, split, shuffle_files=False)
    image_spec = dataset.element_spec[0]
    images = [np.zeros((0, *image_spec.shape), np.uint8)]
    labels = [np.zeros((0,), np.int64)]
    for image_batch, label_batch in dataset.batch(8192).as_numpy_iterator():
        images.append(image_batch.astype(np.uint8, copy=False))
        labels.append(label_batch.astype(np.int64, copy=False))
    return np.concatenate(images), np.concatenate(labels)
