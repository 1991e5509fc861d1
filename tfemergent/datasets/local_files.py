"""Readers for the local copies of MNIST, Fashion-MNIST, CIFAR-10 and number topography.

File formats (see `../shared/data/README.md` in the project):

- `mnist.npz`: `x_{train,test}` (N, 28, 28) uint8, `y_{train,test}` (N,) uint8;
  the layout of `keras.datasets.mnist.load_data()`, so Keras' own downloaded
  `~/.keras/datasets/mnist.npz` works too.
- `cifar10.npz`: `x_{train,test}` (N, 32, 32, 3) uint8, `y_{train,test}` (N,) or (N, 1).
- `number_topography.npz`: `x_{train,test}` (N, 3, 32, 32) uint8 channels-first with
  three identical channels, `y_{train,test}` (N,), `codes_{train,test}` (N, 100).
- Fashion-MNIST: the original IDX files `{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`,
  as installed by Debian's package `dataset-fashion-mnist`.

Parsed splits are cached in-process (keyed by the file's real path, size and
modification time, and the split), and the cached arrays are read-only so that
no caller can change what the next caller gets.
"""

import functools
import gzip
import os
import struct
import zipfile
import zlib

import numpy as np

from tfemergent.datasets.corrupt_dataset_error import CorruptDatasetError
from tfemergent.datasets.dataset_not_found_error import DatasetNotFoundError
from tfemergent.datasets.directories import DATA_DIR_ENV_VAR, describe_source

NPZ_FILE_NAMES = {
    "mnist": "mnist.npz",
    "cifar10": "cifar10.npz",
    "number_topography": "number_topography.npz",
}
FASHION_MNIST_SUBDIRECTORIES = ("fashion-mnist", "fashion_mnist", "")
# Where Debian's package `dataset-fashion-mnist` installs the files. Looked at
# last, after the data directory, so that a machine with the package installed
# finds Fashion-MNIST whatever data directory is configured.
FASHION_MNIST_SYSTEM_DIRECTORIES = ("/usr/share/datasets/fashion-mnist",)
_IDX_PREFIXES = {"train": "train", "test": "t10k"}
_IMAGE_SHAPES = {
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "cifar10": (32, 32, 3),
    "number_topography": (32, 32, 1),
}
_NUM_CLASSES = 10
_NUM_CODE_DIMENSIONS = 100
_SHARED_DATA = (
    "the project's shared data directory `../shared/data/` (its README.md describes "
    "the files and `verify.py` checks them)"
)
_TFDS_HINT = (
    f"or unset {DATA_DIR_ENV_VAR} and pass data_dir=None to let tensorflow-datasets "
    "download the dataset"
)
# How to put a dataset's files into a local data directory.
LOCAL_COPY = {
    "mnist": (
        f"copy `mnist.npz` from {_SHARED_DATA} into the data directory (the file "
        "that keras.datasets.mnist.load_data() downloads to ~/.keras/datasets/mnist.npz "
        "has the same format)"
    ),
    "cifar10": f"copy `cifar10.npz` from {_SHARED_DATA} into the data directory",
    "number_topography": (
        f"copy `number_topography.npz` from {_SHARED_DATA} into the data directory; it "
        "is converted from `Topography for numbers/dataset_number_topography.zip` in the "
        "GitHub repository THANNAGA/Reset-Networks"
    ),
    "fashion_mnist": (
        "install Debian's package (`apt-get install dataset-fashion-mnist`, which puts the "
        "files in /usr/share/datasets/fashion-mnist/), or copy the four IDX files "
        "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
        "t10k-labels-idx1-ubyte.gz) from https://github.com/zalandoresearch/fashion-mnist "
        "into <data_dir>/fashion-mnist/"
    ),
}
# The same, plus tensorflow-datasets where it has the dataset.
HOW_TO_OBTAIN = {
    name: text if name == "number_topography" else f"{text}, {_TFDS_HINT}"
    for name, text in LOCAL_COPY.items()
}


def image_shape(name):
    """The (H, W, C) image shape of dataset `name`."""
    return _IMAGE_SHAPES[name]


def read_split(name, split, directory, source):
    """Read one whole split of a local dataset.

    Args:
        name: `"mnist"`, `"fashion_mnist"`, `"cifar10"` or `"number_topography"`.
        split: `"train"` or `"test"`.
        directory: absolute data directory.
        source: `"argument"` or `"environment"` (for messages).

    Returns:
        A tuple of read-only arrays: `(images, labels)`, plus `codes` for
        `"number_topography"`. Images are uint8 NHWC, labels int64, codes float32.
    """
    if name == "fashion_mnist":
        return _read_fashion_mnist(split, directory, source)
    path = os.path.join(directory, NPZ_FILE_NAMES[name])
    if not os.path.isfile(path):
        raise _not_found(name, split, [path], directory, source)
    stat = os.stat(path)
    return _read_npz_cached(name, split, os.path.realpath(path), stat.st_mtime_ns, stat.st_size)


def clear_cache():
    """Forget every parsed split (the next read decodes the files again)."""
    _read_npz_cached.cache_clear()
    _read_idx_cached.cache_clear()


def _not_found(name, split, paths, directory, source):
    looked_at = "\n".join(f"  {path}" for path in paths)
    directory_note = "" if os.path.isdir(directory) else " (this directory does not exist)"
    return DatasetNotFoundError(
        f"Could not find the local files of dataset {name!r} (split {split!r}) for the "
        f"data directory {describe_source(directory, source)}{directory_note}. "
        f"Looked at:\n{looked_at}\nTo obtain them, {HOW_TO_OBTAIN[name]}. "
        f"Received: data_dir={directory!r}"
    )


def _corrupt(name, path, problem):
    return CorruptDatasetError(
        f"The local file {path} of dataset {name!r} is corrupt: {problem}. Replace it "
        f"with a good copy: {HOW_TO_OBTAIN[name]}. Received: path={path!r}"
    )


def _read_fashion_mnist(split, directory, source):
    prefix = _IDX_PREFIXES[split]
    candidates = [os.path.join(directory, sub) for sub in FASHION_MNIST_SUBDIRECTORIES]
    candidates += list(FASHION_MNIST_SYSTEM_DIRECTORIES)
    looked_at = []
    for candidate in candidates:
        images = os.path.normpath(os.path.join(candidate, f"{prefix}-images-idx3-ubyte.gz"))
        labels = os.path.normpath(os.path.join(candidate, f"{prefix}-labels-idx1-ubyte.gz"))
        looked_at += [images, labels]
        if os.path.isfile(images) and os.path.isfile(labels):
            images_stat, labels_stat = os.stat(images), os.stat(labels)
            return _read_idx_cached(
                os.path.realpath(images),
                images_stat.st_mtime_ns,
                images_stat.st_size,
                os.path.realpath(labels),
                labels_stat.st_mtime_ns,
                labels_stat.st_size,
            )
    raise _not_found("fashion_mnist", split, looked_at, directory, source)


@functools.lru_cache(maxsize=8)
def _read_idx_cached(
    images_path, _images_mtime, _images_size, labels_path, _labels_mtime, _labels_size
):
    images = _read_idx(images_path, num_dimensions=3)
    labels = _read_idx(labels_path, num_dimensions=1)
    if images.shape[1:] != (28, 28):
        raise _corrupt(
            "fashion_mnist", images_path, f"expected 28x28 images, found shape {images.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise _corrupt(
            "fashion_mnist",
            labels_path,
            f"it holds {labels.shape[0]} labels but {images_path} holds {images.shape[0]} images",
        )
    labels = _checked_labels("fashion_mnist", labels_path, labels)
    return _read_only(images[..., np.newaxis]), _read_only(labels)


def _read_idx(path, num_dimensions):
    """Decode a gzip-compressed IDX file of unsigned bytes with `num_dimensions` axes."""
    try:
        with gzip.open(path, "rb") as file:
            data = file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise _corrupt(
            "fashion_mnist", path, f"it is not a complete gzip file ({error})"
        ) from error
    header_size = 4 + 4 * num_dimensions
    expected_magic = 0x00000800 | num_dimensions
    if len(data) < header_size:
        raise _corrupt(
            "fashion_mnist", path, f"it holds {len(data)} bytes, less than the IDX header"
        )
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise _corrupt(
            "fashion_mnist",
            path,
            f"its IDX magic number is 0x{magic:08x}, expected 0x{expected_magic:08x} "
            f"(unsigned bytes, {num_dimensions} dimension(s))",
        )
    dims = struct.unpack(f">{num_dimensions}I", data[4:header_size])
    expected_size = header_size + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected_size:
        raise _corrupt(
            "fashion_mnist",
            path,
            f"its header announces shape {dims} ({expected_size} bytes in all) but the file "
            f"holds {len(data)} bytes",
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(dims)


_NPZ_KEYS = {
    "mnist": ("x", "y"),
    "cifar10": ("x", "y"),
    "number_topography": ("x", "y", "codes"),
}


@functools.lru_cache(maxsize=8)
def _read_npz_cached(name, split, path, _mtime, _size):
    keys = [f"{key}_{split}" for key in _NPZ_KEYS[name]]
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise _corrupt(name, path, "it is a single .npy array, not an .npz archive")
        with archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise _corrupt(
                    name,
                    path,
                    f"it lacks the array(s) {missing}; it holds {sorted(archive.files)}",
                )
            arrays = [archive[key] for key in keys]
    except CorruptDatasetError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        raise _corrupt(name, path, f"numpy cannot read it as an .npz archive ({error})") from error
    return _checked_npz(name, path, keys, arrays)


def _checked_npz(name, path, keys, arrays):
    images, labels = arrays[0], arrays[1]
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise _corrupt(name, path, f"`{keys[1]}` has shape {labels.shape}, expected (N,)")
    num_examples = labels.shape[0]
    if name == "number_topography":
        expected = (num_examples, 3, 32, 32)
        if images.shape != expected:
            raise _corrupt(
                name, path, f"`{keys[0]}` has shape {images.shape}, expected {expected} (NCHW)"
            )
        images = images[:, 0, :, :, np.newaxis]
    else:
        height, width, channels = _IMAGE_SHAPES[name]
        if images.shape == (num_examples, height, width) and channels == 1:
            images = images[..., np.newaxis]
        if images.shape != (num_examples, height, width, channels):
            raise _corrupt(
                name,
                path,
                f"`{keys[0]}` has shape {images.shape}, expected "
                f"{(num_examples, height, width, channels)} to match `{keys[1]}`",
            )
    images = _checked_pixels(name, path, keys[0], images)
    labels = _checked_labels(name, path, labels)
    result = [_read_only(images), _read_only(labels)]
    if name == "number_topography":
        codes = arrays[2]
        expected = (num_examples, _NUM_CODE_DIMENSIONS)
        if codes.shape != expected or not np.issubdtype(codes.dtype, np.floating):
            raise _corrupt(
                name,
                path,
                f"`{keys[2]}` has shape {codes.shape} and dtype {codes.dtype}, expected "
                f"{expected} floating point",
            )
        result.append(_read_only(codes.astype(np.float32)))
    return tuple(result)


def _checked_pixels(name, path, key, images):
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.integer) or (
        images.size and (images.min() < 0 or images.max() > 255)
    ):
        raise _corrupt(name, path, f"`{key}` has dtype {images.dtype}, expected uint8 pixels")
    return images.astype(np.uint8)


def _checked_labels(name, path, labels):
    if not np.issubdtype(labels.dtype, np.integer) and not np.issubdtype(labels.dtype, np.floating):
        raise _corrupt(name, path, f"the labels have dtype {labels.dtype}, expected integers")
    as_int = labels.astype(np.int64)
    if labels.size and (
        np.any(as_int != labels) or as_int.min() < 0 or as_int.max() >= _NUM_CLASSES
    ):
        raise _corrupt(name, path, f"the labels must be integers 0..{_NUM_CLASSES - 1}")
    return as_int


def _read_only(array):
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array
