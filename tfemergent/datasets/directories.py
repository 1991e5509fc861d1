"""Where tfemergent looks for local dataset files."""

import os

DATA_DIR_ENV_VAR = "TFEMERGENT_DATA_DIR"


def resolve_data_dir(data_dir=None):
    """Return the local data directory to use, or `None` for tensorflow-datasets.

    The argument wins; otherwise the environment variable `TFEMERGENT_DATA_DIR`
    is used (an empty value counts as unset); otherwise `None`, which makes
    `tfemergent.datasets.load` use tensorflow-datasets online. A relative path
    is resolved against the current working directory and `~` is expanded.
    The directory is not required to exist: a missing directory is reported,
    with the files that were looked for, when a dataset is loaded.

    Args:
        data_dir: `None`, a `str` or an `os.PathLike` naming a directory.

    Returns:
        The absolute directory path as a `str`, or `None`.

    Raises:
        ValueError: if `data_dir` is neither `None`, a non-empty `str` nor a
            path-like object.

    Example:

    >>> import os
    >>> from tfemergent.datasets import resolve_data_dir
    >>> resolve_data_dir("/data/images")
    '/data/images'
    >>> old = os.environ.pop("TFEMERGENT_DATA_DIR", None)
    >>> print(resolve_data_dir())
    None
    >>> if old is not None:
    ...     os.environ["TFEMERGENT_DATA_DIR"] = old
    """
    return resolve_data_dir_with_source(data_dir)[0]


def resolve_data_dir_with_source(data_dir=None):
    """Like `resolve_data_dir`, also saying where the directory came from.

    Returns:
        `(directory, source)` where `source` is `"argument"`, `"environment"`
        or `None` (no local directory).
    """
    if data_dir is not None:
        if isinstance(data_dir, bool) or not isinstance(data_dir, (str, os.PathLike)):
            raise ValueError(
                "Argument `data_dir` must be None or a path to a directory (str or "
                f"os.PathLike). Received: data_dir={data_dir!r}"
            )
        path = os.fspath(data_dir)
        if isinstance(path, bytes) or not path:
            raise ValueError(
                "Argument `data_dir` must be None or a non-empty directory path. "
                f"Received: data_dir={data_dir!r}"
            )
        return os.path.abspath(os.path.expanduser(path)), "argument"
    from_env = os.environ.get(DATA_DIR_ENV_VAR, "")
    if from_env:
        return os.path.abspath(os.path.expanduser(from_env)), "environment"
    return None, None


def describe_source(directory, source):
    """A phrase for error messages: which directory and where it came from."""
    if source == "environment":
        return f"{directory} (from the environment variable {DATA_DIR_ENV_VAR})"
    return directory
