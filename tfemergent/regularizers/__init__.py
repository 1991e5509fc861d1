"""Regularizer classes of tfemergent and their registry.

``get`` accepts an instance, a config dict, a class name (``"TransportCost"``)
or its snake-case alias (``"transport_cost"``), like `keras.regularizers.get`,
and falls back to Keras's own regularizers (``"l1"``, ``"l2"``...).
"""

import inspect

import re

import keras

from tfemergent.regularizers.density_cost import DensityCost
from tfemergent.regularizers.iteration_activity_l1 import IterationActivityL1
from tfemergent.regularizers.synaptic_length import SynapticLength
from tfemergent.regularizers.transport_cost import TransportCost

ALL_OBJECTS = (TransportCost, DensityCost, IterationActivityL1, SynapticLength)
ALL_OBJECTS_DICT = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update(
    {re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower(): cls for cls in ALL_OBJECTS}
)


def serialize(regularizer):
    """Return the Keras serialisation dict of a regularizer."""
    return keras.saving.serialize_keras_object(regularizer)


def deserialize(config, custom_objects=None):
    """Rebuild a regularizer (tfemergent's or Keras's) from its config dict."""
    return keras.saving.deserialize_keras_object(
        config,
        module_objects={**ALL_OBJECTS_DICT},
        custom_objects=custom_objects,
    )


def get(identifier, *, argument_name="identifier"):
    """Return a regularizer object from an identifier.

    Args:
        identifier: ``None``, a regularizer instance, a config dict, or a name
            such as ``"transport_cost"``, ``"DensityCost"`` or Keras's ``"l1"``.
        argument_name: the name the error messages give ``identifier``; layers
            pass their own argument's name (``"transport_cost"``) so the user
            reads the argument they wrote.

    Returns:
        The regularizer, or ``None`` for ``None``.

    Raises:
        ValueError: when the identifier names no known regularizer, or a config
            dict does not describe a regularizer.

    Example:

    >>> from tfemergent.regularizers import get
    >>> get("transport_cost").alpha
    1.0
    >>> get({"class_name": "Nope", "config": {}})
    Traceback (most recent call last):
    ...
    ValueError: Could not deserialize a regularizer from the config: ...
    """
    name = argument_name
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        try:
            regularizer = deserialize(identifier)
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            raise ValueError(
                f"Could not deserialize a regularizer from the config: {error}. Expected "
                "a regularizer config {'class_name': ..., 'config': {...}} with one of "
                f"{[cls.__name__ for cls in ALL_OBJECTS]} or a Keras regularizer. Received: "
                f"{name}={identifier!r}"
            ) from None
        if isinstance(regularizer, str) or not callable(regularizer):
            try:  # a Keras regularizer's config ({"class_name": "L1", ...})
                regularizer = keras.regularizers.deserialize(identifier)
            except (TypeError, ValueError, KeyError, AttributeError):
                regularizer = None
        if isinstance(regularizer, str) or not callable(regularizer):
            raise ValueError(
                "Could not deserialize a regularizer from the config: its class_name "
                f"names no known regularizer (expected one of {[cls.__name__ for cls in ALL_OBJECTS]} or "
                f"a Keras regularizer). Received: {name}={identifier!r}"
            )
        return regularizer
    if isinstance(identifier, str):
        cls = ALL_OBJECTS_DICT.get(identifier)
        if cls is not None:
            return cls()
        try:
            return keras.regularizers.get(identifier)
        except ValueError:
            raise ValueError(
                "Unknown regularizer name. Expected one of "
                f"{sorted(ALL_OBJECTS_DICT)} or a Keras regularizer name. "
                f"Received: {name}={identifier!r}"
            ) from None
    if inspect.isclass(identifier):
        if not issubclass(identifier, keras.regularizers.Regularizer):
            raise ValueError(
                "A regularizer class must subclass keras.regularizers.Regularizer. "
                f"Received: {name}={identifier!r}"
            )
        return identifier()
    if callable(identifier):
        return identifier
    raise ValueError(
        "Could not interpret the regularizer identifier; expected None, a "
        f"regularizer, a dict or a string. Received: {name}={identifier!r}"
    )


__all__ = [
    "TransportCost",
    "DensityCost",
    "IterationActivityL1",
    "SynapticLength",
    "get",
    "serialize",
    "deserialize",
]
