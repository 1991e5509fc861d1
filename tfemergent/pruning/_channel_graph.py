"""Which channels of a pruned `SegmentCNN` model carry information (private).

Used by `dead_neurons` and `shrink`. A channel (output channel of a convolution) is
removed when the model's outputs provably do not depend on it, so that removing it
changes no output:

* no output: no remaining kernel (main convolution, add-on) reads it into a channel
  that is kept, and it is not the last convolution (whose channels feed the dense
  head; there, a head row of exact zeros counts as no output);
* no input: no remaining kernel (main convolution or add-on) brings it a kept
  channel, so its pre-activation is the constant ``c = bias (+ add-on biases)`` and
  its output the constant ``relu(c)``. If ``relu(c) = 0`` it is removed. If
  ``relu(c) > 0`` and it is a channel of the last convolution, it is removed and
  ``relu(c) * head_kernel[channel]`` is added to the head's bias (global average
  pooling of a constant map is that constant). Otherwise it is kept: a later
  convolution reads it, and zero padding makes the effect of a constant map vary
  near the image border, so no bias can replace it exactly.

Removals can make more channels removable (a channel whose only inputs are removed has
no input, one whose only readers are removed has no output), so the rules are applied
until nothing changes. A channel removed for no input outputs exactly zero (or is read
by the head only); every kept channel that a removed channel fed through a kept kernel
has been removed first: so the kept sub-network computes exactly what the masked one
computes.
"""

import dataclasses

import numpy as np



@dataclasses.dataclass
class AddOnEdge:
    """An add-on: kernel mask (source channels x target channels), bias, endpoints."""

    spec: dict
    layer: object
    mask: np.ndarray
    bias: np.ndarray
    producer: object  # index of the source convolution, or None for the image
    target: int


@dataclasses.dataclass
class ChannelState:
    """The solution: kept channels per convolution and why the others go."""

    alive: list
    has_input: list
    constant: list
    reasons: list  # per convolution: array of "", "no_input", "no_output"


class ChannelGraph:
    """The channels of a `SegmentCNN` model and the kernels between them."""

    def __init__(self, model):
        self.model = model
        # Interim (issue 16 replaces this SegmentCNN-only graph by a generic one).
        from tfemergent.models.nhn import segment_cnn

        self.spec = segment_cnn.SegmentCNN.from_model(model)
        self.conv_names = self.spec.conv_names
        self.conv_layers = [model.get_layer(name) for name in self.conv_names]
        self.masks = [layer.pruning_mask.numpy() > 0.5 for layer in self.conv_layers]
        self.biases = [
            layer.bias.numpy().astype("float64")
            if layer.bias is not None
            else np.zeros(layer.filters)
            for layer in self.conv_layers
        ]
        index_of, first_of_segment = {}, []
        for segment, layers in enumerate(self.spec.segments):
            first_of_segment.append(len(index_of))
            for layer in range(len(layers)):
                index_of[(segment, layer)] = len(index_of)
        self.add_ons = []
        for add_on in self.spec.add_ons:
            layer = model.get_layer(segment_cnn.SegmentCNN.add_on_name(add_on))
            segment = add_on["segment"]
            if add_on["source"] == segment_cnn.SEGMENT_INPUT:
                first = first_of_segment[segment]
                producer = first - 1 if first > 0 else None
            else:
                producer = index_of[(segment, add_on["source"])]
            self.add_ons.append(
                AddOnEdge(
                    spec=add_on,
                    layer=layer,
                    mask=layer.pruning_mask.numpy() > 0.5,
                    bias=(
                        layer.bias.numpy().astype("float64")
                        if layer.bias is not None
                        else np.zeros(layer.filters)
                    ),
                    producer=producer,
                    target=index_of[(segment, add_on["target"])],
                )
            )
        self.head_name = segment_cnn.HEAD_NAME
        head = model.get_layer(segment_cnn.HEAD_NAME)
        self.head_kernel = head.kernel.numpy()
        self.head_bias = head.bias.numpy() if head.bias is not None else None
        self.num_input_channels = self.spec.input_shape[-1]

    def _alive_of(self, alive, producer):
        if producer is None:
            return np.ones(self.num_input_channels, bool)
        return alive[producer]

    def _status(self, alive, index):
        """``(has_input, has_output, relu(constant pre-activation))`` of a convolution."""
        last = len(self.conv_layers) - 1
        producer = index - 1 if index > 0 else None
        has_input = (self.masks[index] & self._alive_of(alive, producer)[:, None]).any(axis=0)
        constant = self.biases[index].copy()
        if index == last:
            has_output = (self.head_kernel != 0).any(axis=1)
        else:
            has_output = (self.masks[index + 1] & alive[index + 1][None, :]).any(axis=1)
        for edge in self.add_ons:
            if edge.target == index:
                has_input = has_input | (
                    edge.mask & self._alive_of(alive, edge.producer)[:, None]
                ).any(axis=0)
                constant = constant + edge.bias
            if edge.producer == index:
                has_output = has_output | (edge.mask & alive[edge.target][None, :]).any(axis=1)
        return has_input, has_output, np.maximum(constant, 0.0)

    def solve(self):
        """Apply the removal rules until nothing changes."""
        last = len(self.conv_layers) - 1
        alive = [np.ones(layer.filters, bool) for layer in self.conv_layers]
        reasons = [np.full(layer.filters, "", dtype=object) for layer in self.conv_layers]
        changed = True
        while changed:
            changed = False
            for index in range(len(self.conv_layers)):
                has_input, has_output, constant = self._status(alive, index)
                no_input_removable = ~has_input & ((constant <= 0) | (index == last))
                remove = alive[index] & (~has_output | no_input_removable)
                if remove.any():
                    reasons[index][remove & ~has_input] = "no_input"
                    reasons[index][remove & has_input] = "no_output"
                    alive[index] = alive[index] & ~remove
                    changed = True
        statuses = [self._status(alive, index) for index in range(len(self.conv_layers))]
        return ChannelState(
            alive=alive,
            has_input=[status[0] for status in statuses],
            constant=[status[2] for status in statuses],
            reasons=reasons,
        )

    def add_on_alive(self, state, edge):
        """The add-on's mask restricted to kept source and target channels."""
        return (
            edge.mask
            & self._alive_of(state.alive, edge.producer)[:, None]
            & state.alive[edge.target][None, :]
        )

    def head_bias_fold(self, state):
        """What the removed constant channels of the last convolution add to the head's bias."""
        last = len(self.conv_layers) - 1
        folded = ~state.alive[last] & ~state.has_input[last]
        return (state.constant[last][folded, None] * self.head_kernel[folded]).sum(axis=0)
