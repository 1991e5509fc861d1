"""The coupled channel groups of a functional or Sequential Keras model."""

from tfemergent.pruning._rebuild import graph_of


def channel_groups(model):
    """The groups of channels that must be removed together, found by walking the graph.

    A convolution or dense layer creates channels; layers acting channel by channel
    (normalisation, activations, pooling, dropout, depthwise convolutions, padding,
    `Flatten`, channel-preserving `Reshape`) pass them on; `Add`, `Subtract`,
    `Multiply`, `Average`, `Maximum`, `Minimum` join the channels they merge into one
    group; `Concatenate` keeps its inputs' groups side by side. The layers of nested
    functional or Sequential models are followed as if they were flat (a name taken
    by an outer layer gets a suffix ``_1``, as in the models `prune_channels` and
    `shrink` return). Groups holding a model input or output, or touching a layer
    the engine does not understand (custom layers, `Lambda`, shared layers), are
    fixed, with the reasons.

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
    graph = graph_of(model)
    return [
        {
            "layers": graph.group_layers(number),
            "num_channels": int(graph.group_size[number]),
            "fixed": list(graph.group_fixed[number]),
        }
        for number in range(len(graph.group_size))
    ]
