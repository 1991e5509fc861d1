"""Every docstring Example of the package runs as pasted into a fresh interpreter.

The modules are found by walking the package (no hand-kept list), and each docstring
runs in an empty namespace: an Example must import everything it uses. An Example that
needs an optional dependency that is not installed (Ray, ...) is skipped with the
install line as the reason; any other failure fails the module's test.
"""

import importlib
import os
import pathlib
import sys

import pytest
from docstring_examples import missing_optional_dependency, package_modules, run_module_examples

MODULES = package_modules()


def test_the_walk_finds_the_modules_of_every_subpackage():
    assert len(MODULES) > 100
    for name in ("tfemergent.layers.spatial_dense", "tfemergent.search.ray_executor",
                 "tfemergent.models.nhn.segment_cnn", "tfemergent.utils.validation"):
        assert name in MODULES
    assert not any(name.endswith("_tfemergent_ops") for name in MODULES)


REPO_DIR = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def offline_data(monkeypatch):
    """TFEMERGENT_DATA_DIR (absolute) for the dataset Examples, when the data is here.

    Without it the Examples that load data raise DatasetNotFoundError and skip.
    """
    value = os.environ.get("TFEMERGENT_DATA_DIR")
    candidates = [pathlib.Path(value), REPO_DIR / value] if value else []
    candidates.append(REPO_DIR.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            monkeypatch.setenv("TFEMERGENT_DATA_DIR", str(path.resolve()))
            return
    monkeypatch.delenv("TFEMERGENT_DATA_DIR", raising=False)


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run_in_a_fresh_namespace(module_name, offline_data):
    module = importlib.import_module(module_name)
    run = run_module_examples(module)
    if run.failed and run.missing_dependencies:
        pytest.skip("needs an optional dependency: " + "; ".join(run.missing_dependencies))
    assert run.failed == 0, f"{run.failed} Example(s) of {module_name} failed:\n{run.report}"


def test_an_example_that_forgets_an_import_fails(tmp_path, monkeypatch):
    """The runner does not lend the module's globals to its Examples."""
    (tmp_path / "forgetful_module.py").write_text(
        'import math\n\n'
        'def half_pi():\n'
        '    """Half of pi.\n\n'
        '    >>> round(math.pi / 2, 3)\n'
        '    1.571\n'
        '    """\n'
        '    return math.pi / 2\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("forgetful_module")
    run = run_module_examples(module)
    assert (run.attempted, run.failed) == (1, 1)
    assert "NameError: name 'math' is not defined" in run.report
    assert run.missing_dependencies == []
    sys.modules.pop("forgetful_module")


def test_missing_optional_dependencies_are_told_apart_from_broken_imports():
    not_installed = ModuleNotFoundError("No module named 'no_such_extra'", name="no_such_extra")
    assert missing_optional_dependency(not_installed) == "no_such_extra is not installed"
    hint = ImportError("RayExecutor needs Ray; install it with:\n\n    pip install tfemergent[ray]\n")
    assert missing_optional_dependency(hint) == (
        "RayExecutor needs Ray; install it with: pip install tfemergent[ray]"
    )
    broken = ModuleNotFoundError("No module named 'tfemergent.nope'", name="tfemergent.nope")
    assert missing_optional_dependency(broken) is None
    assert missing_optional_dependency(ImportError("cannot import name 'x'")) is None


def test_missing_offline_data_is_a_skip_reason():
    from tfemergent.datasets import DatasetNotFoundError

    error = DatasetNotFoundError("No local copy of 'mnist'.\n  Set TFEMERGENT_DATA_DIR.")
    assert missing_optional_dependency(error) == (
        "offline data not found: No local copy of 'mnist'. Set TFEMERGENT_DATA_DIR."
    )
    assert missing_optional_dependency(FileNotFoundError("x.npz")) is None
