"""Shared argument validators.

Every public class and function of tfemergent validates its arguments with these
helpers so that all errors read the same way: what was wrong, what was expected,
and ``Received: name=value``.
"""

import numbers

import numpy as np


def _received(name, value):
    return f"Received: {name}={value!r}"


def validate_int(name, value, *, minimum=None, maximum=None, allow_none=False):
    """Return ``value`` as an ``int`` or raise ``ValueError``.

    Booleans are rejected (``True`` is not a count).
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise ValueError(
            f"Argument `{name}` must be an integer"
            + (f" >= {minimum}" if minimum is not None else "")
            + f". {_received(name, value)}"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(
            f"Argument `{name}` must be an integer >= {minimum}. {_received(name, value)}"
        )
    if maximum is not None and value > maximum:
        raise ValueError(
            f"Argument `{name}` must be an integer <= {maximum}. {_received(name, value)}"
        )
    return value


def validate_float(
    name, value, *, minimum=None, maximum=None, min_inclusive=True, allow_none=False
):
    """Return ``value`` as a finite ``float`` or raise ``ValueError``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise ValueError(f"Argument `{name}` must be a real number. {_received(name, value)}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"Argument `{name}` must be finite. {_received(name, value)}")
    if minimum is not None:
        too_small = value < minimum if min_inclusive else value <= minimum
        if too_small:
            relation = ">=" if min_inclusive else ">"
            raise ValueError(
                f"Argument `{name}` must be {relation} {minimum}. {_received(name, value)}"
            )
    if maximum is not None and value > maximum:
        raise ValueError(f"Argument `{name}` must be <= {maximum}. {_received(name, value)}")
    return value


def validate_choice(name, value, choices):
    """Return ``value`` if it is one of ``choices`` (strings), else raise ``ValueError``."""
    if value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {sorted(choices)}. {_received(name, value)}"
        )
    return value


def validate_seed(name, value):
    """A seed is ``None`` or a non-negative integer."""
    return validate_int(name, value, minimum=0, allow_none=True)


def validate_bool(name, value):
    """Return ``value`` if it is a ``bool`` (not merely truthy), else raise ``ValueError``."""
    if not isinstance(value, bool):
        raise ValueError(f"Argument `{name}` must be a bool. {_received(name, value)}")
    return value


def validate_spec(name, value, defaults, note=""):
    """``defaults`` updated with the dict ``value`` (None: the defaults), or ``ValueError``.

    Args:
        name: the argument's name, for the messages.
        value: None or a dict whose keys are some of ``defaults``' keys.
        defaults: the full spec with every key.
        note: a sentence added to the unknown-keys message (e.g. which keys are
            set elsewhere).

    Returns:
        A new dict with every key of ``defaults``; the values are not checked.
    """
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError(
            f"Argument `{name}` must be a dict of settings with keys {sorted(defaults)} "
            f"(missing keys take the defaults {defaults}), or None. {_received(name, value)}"
        )
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ValueError(
            f"Argument `{name}` has unknown keys {unknown}; the keys are {sorted(defaults)}"
            f"{' (' + note + ')' if note else ''}. {_received(name, value)}"
        )
    return {**defaults, **value}


def validate_real_array(name, value, *, ndim=None, min_ndim=None, expected=None, finite=True,
                        dtype=np.float64):
    """``value`` as a non-empty real NumPy array of ``dtype`` (finite by default).

    The one array check of the package: rejects empty, boolean, complex and
    non-numeric arrays, a wrong number of dimensions (``ndim`` exactly, or at least
    ``min_ndim``) and, with ``finite=True``, NaN or inf, counting them in the message.
    ``expected`` describes the shape in the message (e.g. ``"[rows, cols]"``).

    >>> validate_real_array("x", [[1, 2]], ndim=2).dtype
    dtype('float64')
    >>> validate_real_array("x", [1.0, float("nan")])
    Traceback (most recent call last):
    ...
    ValueError: `x` must be finite (no NaN or inf). Received: x with 1 non-finite values
    """
    array = np.asarray(value)
    if expected is None:
        if ndim is not None:
            expected = f"with {ndim} dimensions"
        elif min_ndim is not None:
            expected = f"with at least {min_ndim} dimensions"
        else:
            expected = "of any shape"
    if (
        (ndim is not None and array.ndim != ndim)
        or (min_ndim is not None and array.ndim < min_ndim)
        or array.size == 0
        or array.dtype == bool
        or not np.issubdtype(array.dtype, np.number)
        or np.iscomplexobj(array)
    ):
        raise ValueError(
            f"`{name}` must be a non-empty real array {expected}. "
            f"Received: {name}.shape={array.shape}, {name}.dtype={array.dtype}"
        )
    array = array.astype(dtype)
    if finite:
        validate_finite(name, array)
    return array


def validate_finite(name, array):
    """Raise ``ValueError`` if the NumPy ``array`` holds NaN or inf; return it."""
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise ValueError(
            f"`{name}` must be finite (no NaN or inf). "
            f"Received: {name} with {bad} non-finite values"
        )
    return array
