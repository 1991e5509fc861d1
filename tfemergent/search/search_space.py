"""`SearchSpace`: the candidates a search strategy explores, and the class registry.

Also holds the registry that lets search configs round-trip through JSON
(`register_search_class`, `serialize`, `deserialize`) and the helper that
normalises candidates and results to plain JSON values. Pure numpy and stdlib.
"""

import numbers

import numpy as np

_REGISTRY = {}


def register_search_class(cls):
    """Class decorator: register a search space or strategy for `deserialize`.

    Classes are keyed by their name (``cls.__name__``). Registering the same class
    again is fine, and so is re-defining it (a reloaded module or a re-run notebook
    cell gives a new class object with the same module and qualified name, which
    replaces the old one). A different class under a registered name raises.

    Example:

    >>> from tfemergent import search
    >>> @search.register_search_class
    ... class Constant(search.SearchSpace):
    ...     def sample(self, rng):
    ...         return [0]
    >>> type(search.deserialize(search.serialize(Constant()))).__name__
    'Constant'
    """
    if not isinstance(cls, type):
        raise ValueError(
            "`register_search_class` decorates a class (a SearchSpace or SearchStrategy "
            f"subclass). Received: cls={cls!r}"
        )
    name = cls.__name__
    registered = _REGISTRY.get(name)
    if registered is not None and registered is not cls:
        same_definition = (registered.__module__, registered.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if not same_definition:
            raise ValueError(
                f"A different search class is already registered under the name {name!r} "
                f"({registered.__module__}.{registered.__qualname__}); rename one of them. "
                f"Received: cls={cls.__module__}.{cls.__qualname__}"
            )
    _REGISTRY[name] = cls
    return cls


def serialize(obj):
    """Return ``{"class_name": ..., "config": obj.get_config()}`` (JSON values)."""
    if not hasattr(obj, "get_config"):
        raise ValueError(
            "`serialize` expects a search space or strategy (an object with `get_config`). "
            f"Received: obj={obj!r}"
        )
    return {
        "class_name": type(obj).__name__,
        "config": to_json_value(obj.get_config(), f"{type(obj).__name__}.get_config()"),
    }


def deserialize(config):
    """Re-create a registered search space or strategy from `serialize`'s output."""
    if not isinstance(config, dict) or set(config) != {"class_name", "config"}:
        raise ValueError(
            "`deserialize` expects a dict with exactly the keys 'class_name' and "
            f"'config', as returned by `serialize`. Received: config={config!r}"
        )
    cls = _REGISTRY.get(config["class_name"])
    if cls is None:
        raise ValueError(
            f"Unknown search class {config['class_name']!r}. Registered classes: "
            f"{sorted(_REGISTRY)}. Decorate the class with "
            "`@tfemergent.search.register_search_class` (and import its module) before "
            f"deserializing. Received: class_name={config['class_name']!r}"
        )
    return cls.from_config(config["config"])


def to_json_value(value, name="value"):
    """Return ``value`` as plain JSON values: tuples and arrays become lists,
    numpy scalars become Python numbers; anything else that JSON cannot hold
    raises ``ValueError``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (numbers.Integral, np.integer)):
        return int(value)
    if isinstance(value, (numbers.Real, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray):
        return to_json_value(value.tolist(), name)
    if isinstance(value, (list, tuple)):
        return [to_json_value(item, f"{name}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(
                    f"`{name}` must hold JSON values: dict keys must be strings. "
                    f"Received: key={key!r}"
                )
            result[key] = to_json_value(item, f"{name}[{key!r}]")
        return result
    raise ValueError(
        f"`{name}` must hold JSON values (None, bool, int, float, str, and lists, tuples, "
        f"numpy arrays or str-keyed dicts of them). Received: {name}={value!r}"
    )


class SearchSpace:
    """Base class of the spaces that search strategies explore.

    A candidate is a JSON value (nested lists and str-keyed dicts of ints, floats,
    strings). Many searches change one *part* of a candidate at a time, e.g. the
    receptive field of one of ``K`` units; `num_parts` says how many parts there
    are and `neighbour` changes exactly one. A space without parts has
    ``num_parts == 1``.

    Subclasses implement `sample` (and `neighbour` for local searches such as
    `HillClimbing`), override `validate` to check their own constraints (call
    ``super().validate`` first to get plain JSON values), and `get_config` when the
    constructor takes arguments. Decorate them with
    `@tfemergent.search.register_search_class` so that `deserialize` finds them.
    All randomness must come from the ``rng`` argument (a `numpy.random.Generator`),
    never from global state, so that a search is reproducible and resumable.

    Example:

    >>> import numpy as np
    >>> from tfemergent import search
    >>> class Line(search.SearchSpace):
    ...     '''Integers 0..9; a neighbour is one step left or right.'''
    ...     def sample(self, rng):
    ...         return [int(rng.integers(0, 10))]
    ...     def neighbour(self, candidate, part, rng):
    ...         step = int(rng.choice([-1, 1]))
    ...         return [min(9, max(0, candidate[0] + step))]
    ...     def validate(self, candidate):
    ...         candidate = super().validate(candidate)
    ...         if not (isinstance(candidate, list) and len(candidate) == 1
    ...                 and 0 <= candidate[0] <= 9):
    ...             raise ValueError(f"Expected [x], 0 <= x <= 9. Received: {candidate=}")
    ...         return candidate
    >>> space = Line()
    >>> rng = np.random.default_rng(0)
    >>> space.num_parts
    1
    >>> space.validate((np.int64(3),))
    [3]
    >>> space.neighbour([0], 0, rng) in ([0], [1])
    True
    """

    @property
    def num_parts(self):
        """Number of parts `neighbour` can change (1 when candidates have no parts)."""
        return 1

    def sample(self, rng):
        """Return a random valid candidate drawn with ``rng``."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `sample(rng)` to be searched."
        )

    def neighbour(self, candidate, part, rng):
        """Return a random valid neighbour of ``candidate`` that differs only in ``part``.

        ``candidate`` is a private copy; the method may modify and return it.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `neighbour(candidate, part, rng)` "
            "for local searches such as HillClimbing."
        )

    def validate(self, candidate):
        """Return ``candidate`` as plain JSON values, or raise ``ValueError``."""
        return to_json_value(candidate, "candidate")

    def get_config(self):
        """Return the constructor arguments as a dict of JSON values."""
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
