"""Rebuild a pruned network with physically smaller layers."""

from tfemergent.pruning._rebuild import Rebuild, graph_of


def shrink(model):
    """A new, physically smaller model computing what the pruned (masked) model computes.

    Mask-only pruning (`prune_channels`, `prune_kernels`) keeps every weight and every
    channel, so the model is neither smaller nor faster. ``shrink`` walks the model's
    graph (any built functional or Sequential Keras 3 model; see `channel_groups` for
    how channels are coupled) and removes every channel that carries exact zeros or
    that nothing reads:

    - a channel is removed when every layer that reads it through weights (a
      convolution, dense, separable or transposed convolution) has no non-zero
      weight from it into a kept output, or reads from it a constant it can fold
      exactly into its bias: zero always; any constant for a `Dense` layer (the head
      after global pooling) or a ``"valid"`` convolution with a bias. A constant
      channel read by a ``"same"`` convolution is kept (zero padding makes its
      effect vary near the border);
    - the rule is applied until nothing changes (a removed output frees its inputs);
    - a producer whose kept outputs are all constant and that only feeds an ``Add``
      (an add-on neuron left without connections) is dropped, its constant going
      into the bias of another summand, and an ``Add`` left with one input goes too.

    Channels of fixed groups (model inputs and outputs, layers the engine does not
    understand such as custom layers or `Lambda`) are never removed. The new model
    has the same layer classes, names and configs except the widths (``filters``,
    ``units``), the kept weights copied (masks of `tfemergent.layers.MaskedConv2D`
    and `tfemergent.layers.AddOnConv2D` too: sparse kernels stay masked). A plain
    Keras model gives a plain Keras model, loadable by `keras.saving.load_model`
    without tfemergent. The outputs are the same up to float rounding. The new
    model is not compiled. Works on models loaded from ``.keras`` files.

    Args:
        model: a built functional or Sequential `keras.Model`, typically after
            `tfemergent.pruning.prune_channels` or `tfemergent.pruning.prune_kernels`.

    Returns:
        A new functional `keras.Model` with the same layer names.

    Example:

    >>> import keras
    >>> import numpy as np
    >>> from tfemergent.pruning import prune_channels
    >>> from tfemergent.pruning import shrink
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    >>> x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    >>> pruned, report = prune_channels(model, 0.5)
    >>> small = shrink(pruned)
    >>> small.get_layer("conv").filters
    4
    >>> images = np.random.default_rng(0).random((2, 8, 8, 3), "float32")
    >>> bool(np.allclose(small(images), pruned(images), atol=1e-5))
    True
    """
    graph = graph_of(model)
    alive, values = graph.solve()
    return Rebuild(graph, alive, values).model()
