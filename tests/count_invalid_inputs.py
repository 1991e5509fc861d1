"""Count the distinct invalid inputs that the test suite feeds to the public API.

Usage (from the repository root)::

    python tests/count_invalid_inputs.py [pytest paths...]

Counted, from pytest's collection (nothing is run):

- every parametrised case of a test whose name says it tests invalid input
  (``invalid``, ``bad_input``, ``refuse``, ``reject`` in the function name): one
  row of an invalid-input table each;
- every row of a layer contract's ``invalid_kwargs`` table (the contract runs
  them all in its one ``invalid_arguments`` check).

The self-tests of the contract helper (``tests/test_layer_contract.py``, toy layers)
are not tfemergent's API and are left out. Prints one line per test file and the
total.
"""

import collections
import os
import re
import sys

import pytest

TABLE_TEST = re.compile(r"invalid|bad_input|refuse|reject")
EXCLUDED_FILES = ("tests/test_layer_contract.py",)


class InvalidInputCounter:
    """A pytest plugin that counts invalid-input rows at collection time."""

    def __init__(self):
        self.per_file = collections.Counter()

    def pytest_collection_modifyitems(self, session, config, items):
        for item in items:
            path = os.path.relpath(str(item.path), str(config.rootpath))
            if path in EXCLUDED_FILES:
                continue
            callspec = getattr(item, "callspec", None)
            contract = getattr(getattr(item, "function", None), "contract", None)
            if contract is not None:
                if callspec is not None and callspec.params.get("check") == "invalid_arguments":
                    self.per_file[path] += len(contract.invalid_kwargs)
                continue
            name = getattr(item, "originalname", item.name)
            if callspec is not None and TABLE_TEST.search(name):
                self.per_file[path] += 1


def count(paths=("tests",)):
    """``{test file: rows}`` for the given pytest paths."""
    counter = InvalidInputCounter()
    code = pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", *paths],
                       plugins=[counter])
    if code not in (0, 5):
        print(f"(pytest collection exited with {code}; counts may be incomplete)")
    return dict(counter.per_file)


def main(argv):
    per_file = count(argv or ("tests",))
    print()
    for path, rows in sorted(per_file.items()):
        print(f"{rows:5d}  {path}")
    print(f"{sum(per_file.values()):5d}  distinct invalid inputs in {len(per_file)} files")


if __name__ == "__main__":
    main(sys.argv[1:])
