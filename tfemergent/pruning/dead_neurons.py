"""Channels of a pruned network left with no input or no output."""

import numpy as np

from tfemergent.pruning._rebuild import PRODUCERS, graph_of


def dead_neurons(model):
    """The channels of a pruned model that `shrink` removes, and why.

    After kernel pruning some neurons (output channels of a convolution) are
    left without input or without output; Neuron Hierarchical Networks remove
    them. Counted as kernels: the main convolutions' masks, the add-on
    neurons' connection masks (an add-on brings input to its target layer and
    takes output from its source) and the dense head (every channel of the
    last convolution has an output unless its head row is exactly zero).

    - ``"no_input"``: removed channels without any remaining input kernel
      from a kept channel. Such a channel outputs the constant
      ``relu(bias)``; it is removed when that is 0, or when it belongs to the
      last convolution (``shrink`` then adds the constant times its head row to
      the head's bias).
    - ``"no_output"``: removed channels that no remaining kernel reads into a
      kept channel.
    - ``"constant"``: kept channels without input whose constant output
      ``relu(bias) > 0`` is read by a later convolution. They are not removed:
      with zero padding the effect of a constant map on the next convolution
      varies near the border, so no bias can replace it exactly.

    The rules are applied until nothing changes (a removal can leave other
    channels without input or output). A channel without input and without
    output is listed under ``"no_input"``.

    Any built functional or Sequential model works (the same engine as `shrink`
    and `channel_groups`): there, "no input" means the channel's value is a
    constant (no non-zero weight from a varying input) and the readers are every
    convolution or dense layer reading the channel's group. One row per prunable
    (not fixed) channel group, named after the group's first producing layer (for
    a `SegmentCNN`, its convolution ``conv_{s}_{l}``, whose add-ons share its
    channels).

    Args:
        model: a built functional or Sequential `keras.Model`, e.g. one built by
            `tfemergent.models.SegmentCNN` with pruned masks.

    Returns:
        dict layer name -> ``{"no_input": [...], "no_output": [...],
        "constant": [...]}`` (sorted channel indices).

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> from tfemergent.pruning import dead_neurons
    >>> model = SegmentCNN((8, 8, 1), 2, segments=[[2, 3]], seed=0).build()
    >>> model.get_layer("conv_0_1").set_kernel_mask([[1, 1, 0], [0, 0, 0]])
    >>> dead_neurons(model)["conv_0_0"]  # channel 1 of conv_0_0 is read by nobody
    {'no_input': [], 'no_output': [1], 'constant': []}
    >>> dead_neurons(model)["conv_0_1"]  # channel 2 gets nothing; its bias is 0
    {'no_input': [2], 'no_output': [], 'constant': []}
    """
    graph = graph_of(model)
    alive, values = graph.solve()
    varies = graph.has_input(values)
    report = {}
    seen = set()
    for node in graph.nodes:
        if node.kind not in PRODUCERS:
            continue
        number = graph.group_number(int(graph.layouts[id(node.outputs[0])][0][0]))
        if number in seen or graph.group_fixed[number]:
            continue
        seen.add(number)
        channels = graph.channels_of(node.outputs[0])
        kept, moving = alive[channels], varies[channels]
        report[node.layer.name] = {
            "no_input": np.flatnonzero(~kept & ~moving).tolist(),
            "no_output": np.flatnonzero(~kept & moving).tolist(),
            "constant": np.flatnonzero(kept & ~moving).tolist(),
        }
    return report
