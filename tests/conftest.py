"""Session set-up shared by every test.

* Silences TensorFlow's C++ logs (before TensorFlow is imported).
* Splits the physical CPU into two logical devices before any TensorFlow op runs, so that
  the layer contract can train under ``tf.distribute.MirroredStrategy``. If TensorFlow was
  already initialised (e.g. a plugin ran an op first) the split is impossible; the
  distribution checks then skip and say why (see ``layer_contract.logical_cpu_problem``).
* Puts ``tests/`` on ``sys.path`` so that test modules in any sub-folder can
  ``from layer_contract import ...``.
* ``data_dir`` fixture: the offline dataset folder; ``mirrored_strategy`` fixture.
"""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

TESTS_DIR = pathlib.Path(__file__).resolve().parent
REPO_DIR = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import layer_contract  # noqa: E402  (runs no TensorFlow op at import)

LOGICAL_CPU_PROBLEM = layer_contract.configure_logical_cpus()
# Python-side TensorFlow logs (e.g. retracing warnings of the many small test models).
tf.get_logger().setLevel("ERROR")


def pytest_report_header(config):
    if LOGICAL_CPU_PROBLEM is None:
        return f"tfemergent: {layer_contract.NUM_LOGICAL_CPUS} logical CPU devices for MirroredStrategy"
    return f"tfemergent: distribution checks will skip: {LOGICAL_CPU_PROBLEM}"


@pytest.fixture(scope="session")
def data_dir():
    """Folder with the offline datasets (``TFEMERGENT_DATA_DIR`` or ``../shared/data``)."""
    from_env = os.environ.get("TFEMERGENT_DATA_DIR")
    if from_env:
        path = pathlib.Path(from_env)
        if not path.is_absolute() and not path.is_dir():
            path = REPO_DIR / path  # CI gives it relative to the repository root
        if path.is_dir():
            return str(path.resolve())
        pytest.skip(f"TFEMERGENT_DATA_DIR={from_env!r} is not a directory.")
    shared = REPO_DIR.parent / "shared" / "data"
    if shared.is_dir():
        return str(shared.resolve())
    pytest.skip(
        "No offline data: set TFEMERGENT_DATA_DIR or put the files in "
        f"{shared} (see ../shared/data/README.md)."
    )


@pytest.fixture
def mirrored_strategy():
    """A ``MirroredStrategy`` over two logical CPUs (see ``layer_contract.mirrored_strategy``).

    Use this instead of a bare ``tf.distribute.MirroredStrategy()``: several default
    strategies in one test process collide on collective keys.
    """
    return layer_contract.mirrored_strategy()
