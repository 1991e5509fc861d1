"""validate_spec: defaults merged with a partial spec; errors name the argument."""

import pytest

from tfemergent.utils.validation import validate_spec

DEFAULTS = {"units": [8], "activation": "relu"}


def test_none_and_partial_specs_take_the_defaults():
    assert validate_spec("head", None, DEFAULTS) == DEFAULTS
    merged = validate_spec("head", {"units": [4, 2]}, DEFAULTS)
    assert merged == {"units": [4, 2], "activation": "relu"}
    assert merged is not DEFAULTS and DEFAULTS == {"units": [8], "activation": "relu"}


def test_unknown_keys_and_non_dicts_are_refused():
    with pytest.raises(ValueError, match=r"unknown keys \['size'\].*\(set elsewhere\)"
                       r"\. Received: head=\{'size': 3\}"):
        validate_spec("head", {"size": 3}, DEFAULTS, note="set elsewhere")
    with pytest.raises(ValueError, match=r"`head` must be a dict.*Received: head=\[8\]"):
        validate_spec("head", [8], DEFAULTS)
