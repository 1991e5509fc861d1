"""`DatasetNotFoundError`: local dataset files are missing."""


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset could not be found where tfemergent looked.

    Raised by `tfemergent.datasets.load`, `load_numpy`, `load_number_codes` and
    `double_task` when a local data directory was given (argument `data_dir` or
    the environment variable `TFEMERGENT_DATA_DIR`) but does not hold the files
    of the requested dataset, and for `"number_topography"` when no local
    directory was given at all (it is not part of tensorflow-datasets). Without a
    local directory, it is also raised at once when tensorflow-datasets would have
    to download the dataset and its download host is not reachable (see
    `tfemergent.datasets.network`), instead of retrying for minutes.

    The message names every path that was looked at and says how to obtain the
    files. It subclasses `FileNotFoundError`, so `except FileNotFoundError`
    and `except OSError` catch it too.

    Example:

    >>> from tfemergent.datasets import DatasetNotFoundError, load_numpy
    >>> try:
    ...     load_numpy("mnist", "test", data_dir="/nonexistent")
    ... except DatasetNotFoundError as error:
    ...     print("/nonexistent/mnist.npz" in str(error))
    True
    """
