"""Rebuild a pruned network with physically smaller layers."""

import numpy as np

from tfemergent.pruning._channel_graph import ChannelGraph


def shrink(model):
    """A new, physically smaller model computing what the pruned (masked) model computes.

    Mask-only pruning keeps every weight and every channel, so the model is
    not smaller or faster. ``shrink`` removes the channels that `dead_neurons`
    finds (no input or no output, rules applied until nothing changes) and
    rebuilds the network from its `tfemergent.models.SegmentCNN` spec with the
    remaining widths: every convolution loses the removed output channels and
    the kernels from removed input channels; add-on neurons lose the same, and
    an add-on with no connection left is dropped (its bias, if any, goes into
    its target's bias); the dense head loses the rows of removed channels and
    gains, in its bias, the constant contribution of removed bias-only channels
    of the last convolution. The remaining weights are copied, and so are the
    masks of the remaining sparse kernels (they stay pruned and stay zero
    under training). The outputs are the same as the masked model's up to
    float rounding; the number of parameters, the SavedModel and the inference
    time shrink with the removed channels (kernels pruned inside kept channels
    stay stored as zeros).

    The new model is not compiled; the input shape stays (input channels are
    never removed). Works on models loaded from ``.keras`` files.

    Args:
        model: a model built by `tfemergent.models.SegmentCNN.build` (or loaded
            from one), typically after `tfemergent.pruning.prune_kernels`.

    Returns:
        A new functional `keras.Model` with the same layer names.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    >>> model.get_layer("conv_0_1").set_kernel_mask(np.eye(4)[:, [0, 1, 1, 2]])
    >>> small = shrink(model)  # conv_0_0 channel 3 has no output any more
    >>> small.get_layer("conv_0_0").filters, small.get_layer("conv_0_1").filters
    (3, 4)
    >>> images = np.random.default_rng(0).random((2, 8, 8, 1), "float32")
    >>> bool(np.allclose(small(images), model(images), atol=1e-6))
    True
    """
    graph = ChannelGraph(model)
    state = graph.solve()
    for index, name in enumerate(graph.conv_names):
        if not state.alive[index].any():
            raise ValueError(
                f"Every channel of layer {name!r} would be removed (none has both an input "
                "and an output left): the pruned network no longer depends on its input, "
                f"so it cannot be shrunk. Prune fewer kernels. Received: model={model.name!r}"
            )
    spec = graph.spec
    filters, start = [], 0
    for layers in spec.segments:
        filters.append([int(state.alive[start + i].sum()) for i in range(len(layers))])
        start += len(layers)
    kept_edges = [edge for edge in graph.add_ons if graph.add_on_alive(state, edge).any()]
    dropped_edges = [edge for edge in graph.add_ons if edge not in kept_edges]
    new_spec = spec.with_filters(filters).with_add_ons(
        [{**edge.spec, "connection_mask": None} for edge in kept_edges]
    )
    small = new_spec.build(name=model.name)
    add_on_name, head_name = type(spec).add_on_name, graph.head_name

    def alive_of(producer):
        if producer is None:
            return np.ones(graph.num_input_channels, bool)
        return state.alive[producer]

    for index, (name, layer) in enumerate(zip(graph.conv_names, graph.conv_layers)):
        rows = alive_of(index - 1 if index > 0 else None)
        columns = state.alive[index]
        target = small.get_layer(name)
        kernel = layer.masked_kernel.numpy()
        target.kernel.assign(kernel[:, :, rows][:, :, :, columns])
        target.kernel_mask.assign(layer.kernel_mask.numpy()[rows][:, columns])
        bias = graph.biases[index].copy()
        for edge in dropped_edges:
            if edge.target == index:
                bias = bias + edge.bias
        target.bias.assign(bias[columns].astype(target.bias.dtype))
    for edge in kept_edges:
        rows = alive_of(edge.producer)
        columns = state.alive[edge.target]
        target = small.get_layer(add_on_name(edge.spec))
        target.kernel.assign(edge.layer.masked_kernel.numpy()[:, :, rows][:, :, :, columns])
        target.connection_mask.assign(edge.layer.connection_mask.numpy()[rows][:, columns])
        if target.bias is not None:
            target.bias.assign(edge.bias[columns].astype(target.bias.dtype))
    head = small.get_layer(head_name)
    last = state.alive[-1]
    head.kernel.assign(graph.head_kernel[last])
    if graph.head_bias is not None:
        bias = graph.head_bias.astype("float64") + graph.head_bias_fold(state)
        head.bias.assign(bias.astype(head.bias.dtype))
    return small
