"""The coupled channel groups of a functional or Sequential Keras model."""

from tfemergent.pruning._graph import Graph


def channel_groups(model):
    """The groups of channels that must be removed together, found by walking the graph.

    A convolution or dense layer creates channels; layers acting channel by channel
    (normalisation, activations, pooling, dropout, depthwise convolutions, padding,
    `Flatten`, channel-preserving `Reshape`) pass them on; `Add`, `Subtract`,
    `Multiply`, `Average`, `Maximum`, `Minimum` join the channels they merge into one
    group; `Concatenate` keeps its inputs' groups side by side. Groups holding a model
    input or output, or touching a layer the engine does not understand (custom
    layers, `Lambda`, shared layers, nested models), are fixed, with the reasons.

    Args:
        model: a built functional or Sequential `keras.Model`.

    Returns:
        A list, in model order, of dicts ``{"layers": [names], "num_channels": int,
        "fixed": [reasons]}`` (``fixed`` empty: the group can be pruned).

    Example:

    >>> import keras
    >>> from tfemergent.pruning import channel_groups
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    >>> y = keras.layers.Conv2D(4, 3, padding="same", name="branch")(x)
    >>> x = keras.layers.Add(name="add")([x, y])
    >>> x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    >>> [group["layers"] for group in channel_groups(model) if not group["fixed"]]
    [['conv', 'branch', 'add', 'pool']]
    """
    if not getattr(model, "built", False):
        raise ValueError(
            "Argument `model` must be a built Keras model (call it on data or build it "
            f"with an input shape first). Received: model={getattr(model, 'name', model)!r}"
        )
    try:
        outputs = model.outputs
    except (AttributeError, ValueError):
        outputs = None
    if not outputs:
        raise ValueError(
            "Argument `model` must be a functional or Sequential Keras model with a traced "
            "graph (a subclassed model has none). "
            f"Received: model={getattr(model, 'name', model)!r} of type {type(model).__name__}"
        )
    graph = Graph(model)
    return [
        {
            "layers": graph.group_layers(number),
            "num_channels": int(graph.group_size[number]),
            "fixed": list(graph.group_fixed[number]),
        }
        for number in range(len(graph.group_size))
    ]
