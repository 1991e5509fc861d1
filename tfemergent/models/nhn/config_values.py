"""`validate_config`: a config object of the NHN pipeline from None, a dict or itself."""

import dataclasses


def validate_config(name, value, cls, defaults=None):
    """``value`` as an instance of the dataclass ``cls``.

    None gives ``cls(**defaults)``; a dict gives ``cls(**{**defaults, **value})``
    (unknown keys are refused); an instance of ``cls`` is returned as it is.

    >>> import dataclasses
    >>> from tfemergent.models.nhn.config_values import validate_config
    >>> @dataclasses.dataclass
    ... class Point:
    ...     x: int = 0
    ...     y: int = 0
    >>> validate_config("point", {"y": 2}, Point, defaults={"x": 1})
    Point(x=1, y=2)
    >>> validate_config("point", {"z": 2}, Point)
    Traceback (most recent call last):
    ...
    ValueError: Argument `point` has unknown keys ['z']; the keys are the fields of Point: ['x', 'y']. Received: point={'z': 2}
    """
    defaults = dict(defaults or {})
    if value is None:
        return cls(**defaults)
    if isinstance(value, dict):
        fields = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise ValueError(
                f"Argument `{name}` has unknown keys {unknown}; the keys are the fields of "
                f"{cls.__name__}: {fields}. Received: {name}={value!r}"
            )
        return cls(**{**defaults, **value})
    if not isinstance(value, cls):
        raise ValueError(
            f"Argument `{name}` must be None, a {cls.__name__} or a dict of its fields. "
            f"Received: {name}={value!r}"
        )
    return value
