"""Fixtures of the tfemergent.datasets tests.

The real data files live in the project's shared data directory. CI names it in
the environment variable TFEMERGENT_DATA_DIR (`../shared/data`, relative to the
repository root); without the variable the tests use `<repo>/../shared/data`.
Fashion-MNIST comes from Debian's package `dataset-fashion-mnist`
(/usr/share/datasets/fashion-mnist/), found through the loader's fallback.
"""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
ENV_VAR = "TFEMERGENT_DATA_DIR"


def _shared_data_dir():
    configured = os.environ.get(ENV_VAR, "")
    if configured:
        candidates = [pathlib.Path(configured), REPO_ROOT / configured]
    else:
        candidates = [REPO_ROOT.parent / "shared" / "data"]
    for candidate in candidates:
        if (candidate / "mnist.npz").is_file():
            return candidate.resolve()
    pytest.fail(
        "The shared data directory with mnist.npz was not found; looked at "
        f"{[str(c) for c in candidates]}. Set {ENV_VAR} to the project's shared/data directory."
    )


@pytest.fixture(scope="session")
def shared_data_dir():
    """The directory holding mnist.npz, cifar10.npz and number_topography.npz."""
    return _shared_data_dir()


@pytest.fixture
def data_env(shared_data_dir, monkeypatch):
    """TFEMERGENT_DATA_DIR set (absolute) to the shared data directory for one test."""
    monkeypatch.setenv(ENV_VAR, str(shared_data_dir))
    return shared_data_dir


@pytest.fixture
def online_env(monkeypatch):
    """No local data directory: the loaders take the tensorflow-datasets path (with the
    network check answering "reachable": tfds.testing.mock_data needs no network)."""
    from tfemergent.datasets import network

    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(network, "tfds_reachable", lambda *args, **kwargs: True)


@pytest.fixture
def forbid_tfds(monkeypatch):
    """Make any call of tensorflow_datasets.load fail the test."""
    import tensorflow_datasets as tfds

    calls = []

    def refuse(*args, **kwargs):
        calls.append((args, kwargs))
        raise AssertionError(f"tensorflow_datasets.load must not be called: {args} {kwargs}")

    monkeypatch.setattr(tfds, "load", refuse)
    return calls
