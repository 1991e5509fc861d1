"""One helper for the tests that run a module's docstring Examples."""

import doctest


def assert_docstring_examples(module):
    """Run ``module``'s doctests (ELLIPSIS, NORMALIZE_WHITESPACE); at least one, none failing."""
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0, f"{module.__name__} has no docstring Examples"
    assert result.failed == 0, f"{result.failed} docstring Example(s) of {module.__name__} failed"
