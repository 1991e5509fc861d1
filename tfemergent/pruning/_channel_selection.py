"""Which whole channels ``prune_kernels(..., granularity="channel")`` prunes (private).

A channel (output channel ``o`` of a `MaskedConv2D`, e.g. ``conv_{s}_{l}`` of a
`SegmentCNN` model) is pruned by masking every kernel that touches it:

* its incoming kernels: column ``o`` of the convolution's mask and of the masks of the
  add-ons that target the convolution;
* its outgoing kernels: row ``o`` of the masks of the masked convolutions that read its
  channel group (the next convolution, pooled at a segment boundary, and the add-ons).

The convolutions, their add-ons and who reads whom come from the generic channel graph
(`tfemergent.pruning._graph`): an add-on shares the channels of the convolution it is
added to (the ``Add`` joins them), and reads the channels of its source.

The channel is then left without input and (except in the last convolution) without
output, so `shrink` removes it exactly: a channel without output changes nothing; a
channel of the last convolution without input outputs the constant ``relu(bias)``, which
`shrink` folds into the head's bias. The head (a Dense layer) is never masked.

Channels are ranked by `tfemergent.analysis.channel_sensitivity` of their convolution's
kernel and mask, computed once at the start. Every convolution keeps at least one channel
with an incoming kernel, so that the pruned network still depends on its input.
"""

import dataclasses
import math

import numpy as np

from tfemergent.analysis.kernel_sensitivity import channel_sensitivity
from tfemergent.layers.add_on_conv2d import AddOnConv2D
from tfemergent.layers.masked_conv2d import MaskedConv2D
from tfemergent.pruning._rebuild import graph_of


@dataclasses.dataclass
class AddOnEdge:
    """An add-on: its layer, kernel mask (source x target channels) and endpoints."""

    layer: object
    mask: np.ndarray
    producer: object  # index of the source convolution, or None for the model input
    target: int


class MaskedNetwork:
    """The masked convolutions of a model, their add-ons and their readers."""

    def __init__(self, model):
        graph = graph_of(model)
        nodes = [node for node in graph.nodes if isinstance(node.layer, MaskedConv2D)]
        add_on_nodes = [node for node in graph.nodes if isinstance(node.layer, AddOnConv2D)]

        def group(tensor):
            spaces = np.unique(graph.layouts[id(tensor)][0])
            if len(spaces) != 1:
                return None
            number = graph.group_number(int(spaces[0]))
            identity = np.array_equal(graph.channels_of(tensor) - graph.offset[number],
                                      np.arange(len(graph.channels_of(tensor))))
            return number if identity else None

        self.conv_names = [node.layer.name for node in nodes]
        self.conv_layers = [node.layer for node in nodes]
        groups = [group(node.outputs[0]) for node in nodes]
        for node, number in zip(nodes, groups):
            if number is None or graph.group_fixed[number]:
                why = "its channels are not one prunable group" if number is None else "; ".join(
                    graph.group_fixed[number])
                raise ValueError(
                    f"the output channels of {node.layer.name!r} cannot be pruned ({why}). "
                    f"Received: model={model.name!r}"
                )
        index_of_group = {number: index for index, number in enumerate(groups)}
        self.masks = [layer.pruning_mask.numpy() > 0.5 for layer in self.conv_layers]
        self.add_ons = []
        for node in add_on_nodes:
            target = index_of_group.get(group(node.outputs[0]))
            source = group(node.inputs[0])
            producer = index_of_group.get(source)
            if target is None or (producer is None and not graph.group_fixed[source]):
                raise ValueError(
                    f"add-on {node.layer.name!r} does not join a masked convolution's "
                    f"channels. Received: model={model.name!r}"
                )
            self.add_ons.append(AddOnEdge(
                layer=node.layer, mask=node.layer.pruning_mask.numpy() > 0.5,
                producer=producer, target=target))
        self.readers = [
            [nodes.index(reader) for reader in nodes
             if group(reader.inputs[0]) == number]
            for number in groups
        ]


class ChannelSelection:
    """The masks of a `SegmentCNN` model while whole channels are pruned from them."""

    def __init__(self, model, layer_names=None):
        try:
            self.graph = MaskedNetwork(model)
        except ValueError as error:
            raise ValueError(
                "granularity='channel' prunes the output channels of the masked "
                "convolutions of a model such as those built by "
                f"tfemergent.models.SegmentCNN: {error}"
            ) from None
        graph = self.graph
        names = graph.conv_names
        if layer_names is None:
            wanted = list(names)
        else:
            if isinstance(layer_names, str):
                layer_names = [layer_names]
            unknown = [name for name in layer_names if name not in names]
            if unknown:
                raise ValueError(
                    "With granularity='channel', argument `layer_names` must name "
                    f"convolutions of the SegmentCNN model, whose output channels are "
                    f"pruned ({names}); {unknown} are not. "
                    f"Received: layer_names={list(layer_names)!r}"
                )
            wanted = [name for name in names if name in set(layer_names)]
        self.candidates = [names.index(name) for name in wanted]
        self.masks = {name: mask.copy() for name, mask in zip(names, graph.masks)}
        for edge in graph.add_ons:
            self.masks[edge.layer.name] = edge.mask.copy()
        self.sensitivities = {
            index: channel_sensitivity(graph.conv_layers[index].kernel.numpy(), graph.masks[index])
            for index in self.candidates
        }

    # ------------------------------------------------------------------ kernels
    def _incoming(self, index):
        """Names of the masks whose columns are the inputs of convolution ``index``."""
        names = [self.graph.conv_names[index]]
        return names + [e.layer.name for e in self.graph.add_ons if e.target == index]

    def _outgoing(self, index):
        """Names of the masks whose rows read convolution ``index``'s output."""
        names = [self.graph.conv_names[reader] for reader in self.graph.readers[index]]
        return names + [e.layer.name for e in self.graph.add_ons if e.producer == index]

    def has_input(self, index):
        """Bool per channel of convolution ``index``: some incoming kernel is kept."""
        return np.any([self.masks[name].any(axis=0) for name in self._incoming(index)], axis=0)

    def prune(self, index, channel):
        """Mask every kernel into and out of the channel; the number of kernels masked.

        Refused (returns None) when the channel is the last one of its convolution
        with an incoming kernel.
        """
        has_input = self.has_input(index)
        if has_input[channel] and has_input.sum() == 1:
            return None
        count = 0
        for name in self._incoming(index):
            count += int(self.masks[name][:, channel].sum())
            self.masks[name][:, channel] = False
        for name in self._outgoing(index):
            count += int(self.masks[name][channel].sum())
            self.masks[name][channel] = False
        return count

    def num_pruned_kernels(self, names=None):
        names = list(self.masks) if names is None else names
        return sum(int((~self.masks[name]).sum()) for name in names)

    # ------------------------------------------------------------------ selection
    def _order(self, indices):
        """(convolution, channel) pairs by increasing sensitivity, ties in model order."""
        pairs = [(index, channel) for index in indices
                 for channel in range(len(self.sensitivities[index]))]
        values = [self.sensitivities[index][channel] for index, channel in pairs]
        return [pairs[i] for i in np.lexsort((np.arange(len(pairs)), values))]

    def _smallest_kept(self, indices):
        """The smallest sensitivity of a channel that still has an input kernel."""
        kept = [self.sensitivities[i][self.has_input(i)] for i in indices]
        kept = np.concatenate(kept) if kept else np.zeros(0)
        return float(kept.min()) if kept.size else math.inf

    def by_threshold(self, threshold):
        for index, channel in self._order(self.candidates):
            if self.sensitivities[index][channel] < threshold:
                self.prune(index, channel)
        return threshold

    def round_widths(self, multiple):
        """Prune more of the weakest channels so that every convolution keeps a multiple.

        A candidate convolution with ``n`` channels that have an input keeps
        ``multiple * (n // multiple)`` of them, or ``n`` when ``n <= multiple``.
        """
        for index in self.candidates:
            count = int(self.has_input(index).sum())
            if count <= multiple:
                continue
            keep = multiple * (count // multiple)
            for _, channel in self._order([index]):
                if count <= keep:
                    break
                if self.has_input(index)[channel] and self.prune(index, channel) is not None:
                    count -= 1

    def _uniform_order(self):
        """Channels in the order that keeps the pruned share of every convolution equal.

        A convolution's ``r``-th channel of lowest sensitivity (from 0) gets the share
        ``(r + 1) / filters`` of the convolution pruned once it goes; channels are
        taken by increasing share, ties in model order.
        """
        keys, pairs = [], []
        for position, index in enumerate(self.candidates):
            filters = len(self.sensitivities[index])
            for rank, pair in enumerate(self._order([index])):
                keys.append(((rank + 1) / filters, position))
                pairs.append(pair)
        order = sorted(range(len(pairs)), key=lambda i: keys[i])
        return [pairs[i] for i in order]

    def by_fraction(self, fraction, scope):
        """Prune channels until ``round(fraction * N)`` kernels are masked; the threshold.

        ``scope="model"``: channels by increasing sensitivity over the model;
        ``scope="layer"``: the same share of every convolution (see `_uniform_order`).
        """
        total = sum(mask.size for mask in self.masks.values())
        target = int(math.floor(fraction * total + 0.5))
        pruned = self.num_pruned_kernels()
        order = self._order(self.candidates) if scope == "model" else self._uniform_order()
        for index, channel in order:
            if pruned >= target:
                break
            pruned += self.prune(index, channel) or 0
        return self.thresholds(scope)

    def thresholds(self, scope):
        """The smallest sensitivity kept: over the model, or per convolution (a dict)."""
        if scope == "model":
            return self._smallest_kept(self.candidates)
        return {self.graph.conv_names[i]: self._smallest_kept([i]) for i in self.candidates}
