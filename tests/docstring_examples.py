"""Helpers for the tests that run docstring Examples.

`assert_docstring_examples(module)` runs one module's Examples (kept for the per-module
tests); `package_modules()` and `run_module_examples(module)` are what
``tests/test_docstrings.py`` uses to run the Examples of every module of the package,
each docstring in a fresh namespace, as if pasted into a new interpreter.
"""

import doctest
import importlib
import importlib.util
import pkgutil

OPTION_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def assert_docstring_examples(module):
    """Run ``module``'s Examples as `run_module_examples` does (each docstring in a fresh
    ``__main__`` namespace, ELLIPSIS, NORMALIZE_WHITESPACE); at least one, none failing.

    The same execution as ``tests/test_docstrings.py``'s walker, so that a class an
    Example defines and registers (e.g. with `tfemergent.search.register_search_class`)
    is the same definition when both run in one process.
    """
    import pytest

    result = run_module_examples(module)
    if result.missing_dependencies:
        pytest.skip("; ".join(result.missing_dependencies))
    assert result.attempted > 0, f"{module.__name__} has no docstring Examples"
    assert result.failed == 0, (
        f"{result.failed} docstring Example(s) of {module.__name__} failed:\n{result.report}"
    )


def package_modules(package_name="tfemergent"):
    """Names of every Python-source module of ``package_name``, found by walking it.

    Compiled extension modules (the custom-op ``.so``) are not Python modules with
    docstrings and are left out.
    """
    package = importlib.import_module(package_name)
    names = [package_name]
    for info in pkgutil.walk_packages(package.__path__, package_name + "."):
        spec = importlib.util.find_spec(info.name)
        if spec is not None and (spec.origin or "").endswith(".py"):
            names.append(info.name)
    return sorted(names)


class _RecordingRunner(doctest.DocTestRunner):
    """A DocTestRunner that keeps the ImportErrors raised by the examples."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.import_errors = []

    def report_unexpected_exception(self, out, test, example, exc_info):
        if issubclass(exc_info[0], ImportError) or exc_info[0].__name__ == "DatasetNotFoundError":
            self.import_errors.append((test.name, exc_info[1]))
        super().report_unexpected_exception(out, test, example, exc_info)


class ExampleRun:
    """What `run_module_examples` found: counts, the failure report, missing extras."""

    def __init__(self, attempted, failed, report, missing_dependencies):
        self.attempted = attempted
        self.failed = failed
        self.report = report
        self.missing_dependencies = missing_dependencies


def missing_optional_dependency(error):
    """The install hint of ``error`` if it is an optional dependency that is missing.

    tfemergent raises ``ImportError`` with the install line (``pip install
    tfemergent[ray]``) for a missing optional dependency; a module that is not
    installed at all raises ``ModuleNotFoundError``. Any other ImportError (a
    broken import inside tfemergent) is a failure, not a reason to skip. A
    ``DatasetNotFoundError`` (no offline data directory) is missing data.
    """
    if type(error).__name__ == "DatasetNotFoundError":
        return "offline data not found: " + " ".join(str(error).split())[:300]
    if isinstance(error, ModuleNotFoundError) and error.name:
        top = error.name.split(".")[0]
        if top != "tfemergent" and importlib.util.find_spec(top) is None:
            return f"{error.name} is not installed"
    text = str(error)
    if "pip install" in text:
        return " ".join(text.split())
    return None


def run_module_examples(module):
    """Run every docstring Example of ``module``, each docstring in a fresh namespace.

    Unlike `doctest.testmod`, the examples do not see the module's globals, so an
    example that uses a name it does not import fails here as it would when pasted
    into a new interpreter.
    """
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = _RecordingRunner(optionflags=OPTION_FLAGS, verbose=False)
    report = []
    for test in finder.find(module, module.__name__, globs={}):
        if not test.examples:
            continue
        test.globs = {"__name__": "__main__"}
        runner.run(test, out=report.append)
    missing = []
    for name, error in runner.import_errors:
        reason = missing_optional_dependency(error)
        if reason is not None:
            missing.append(f"{name}: {reason}")
    results = runner.summarize(verbose=False)
    return ExampleRun(results.attempted, results.failed, "".join(report), missing)
