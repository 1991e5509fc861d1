"""`CorruptDatasetError`: local dataset files exist but cannot be read."""


class CorruptDatasetError(ValueError):
    """A local dataset file exists but its contents are not what was expected.

    Raised for truncated or damaged gzip/zip archives, IDX files with a wrong
    magic number or length, `.npz` archives that lack a key, and arrays with
    the wrong shape, dtype or label range. The message names the file, what was
    wrong and how to obtain a good copy, and ends with `Received: path=...`.
    It subclasses `ValueError`.

    Example:

    >>> import os, tempfile
    >>> from tfemergent.datasets import CorruptDatasetError, load_numpy
    >>> directory = tempfile.mkdtemp()
    >>> with open(os.path.join(directory, "mnist.npz"), "wb") as file:
    ...     _ = file.write(b"PK\\x03\\x04 truncated")
    >>> try:
    ...     load_numpy("mnist", "test", data_dir=directory)
    ... except CorruptDatasetError as error:
    ...     print("Received: path=" in str(error))
    True
    """
