"""The channel dependency graph of a functional Keras model (private engine).

Used by `channel_groups`, `prune_channels`, `dead_neurons`, `shrink` and the channel
selection of `prune_kernels`. The model's graph is walked from its outputs; every
tensor gets a *layout*: for each position of its last (channel) axis, the *space* it
comes from (a space is the output channels of a producer: a convolution, a dense
layer, an input, an unknown layer) and the index in that space. Layers that act
channel by channel (normalisation, activations, pooling, dropout, depthwise
convolutions, padding, channel-preserving reshapes) pass the layout on; `Flatten`
tiles it (its rows are channel-interleaved); `Concatenate` concatenates layouts;
elementwise merges (`Add`, `Subtract`, `Multiply`, `Average`, `Maximum`, `Minimum`)
join the spaces at each position into one *group* (union-find). A group's channel
``j`` is one unit: removing it removes channel ``j`` of every space of the group.

A group is *fixed* (never pruned) when it holds a model input or output, touches a
layer the engine does not understand (custom layers, `Lambda`, a shared layer, a
channel-mixing normalisation such as `LayerNormalization`), or joins spaces whose
channels do not line up; the reasons are kept for the report.

`Graph.solve` finds the channels `shrink` removes. Constant propagation gives every
tensor position a value: a number when it is a spatially uniform constant (exact
zeros included), NaN when it varies. A non-fixed channel is removed when every layer
that reads it out of its group (a convolution or dense layer: an *exit*) either has no
non-zero weight from it into a kept output, or reads a constant it can fold exactly
into its bias (zero always; any constant for a `Dense` or a ``"valid"`` convolution
with a bias). Removals make more removals possible (an exit's output channel removed
frees its inputs), so the rule is applied until nothing changes. The kept network then
computes exactly what the full one computes, up to float rounding.
"""

import dataclasses

import keras
import numpy as np

from tfemergent.utils import _private

_CONVS = ("Conv1D", "Conv2D", "Conv3D")
_TRANSPOSED = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
_MASKED = ("MaskedConv2D", "AddOnConv2D")
_SEPARABLE = ("SeparableConv1D", "SeparableConv2D")
_DEPTHWISE = ("DepthwiseConv1D", "DepthwiseConv2D")
_MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
_POOLING = (
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
)
_SHAPE_ONLY = (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "Identity", "ActivityRegularization",
    "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "Cropping1D", "Cropping2D", "Cropping3D",
)
_PADDING = ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
_ACTIVATIONS = ("Activation", "ReLU", "LeakyReLU", "ELU")
_CHANNEL_MIXING_ACTIVATIONS = ("softmax", "log_softmax")


_BINARY_OPS = ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum")
_UNARY_OPS = ("Relu", "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Tanh", "Abs",
              "Negative", "Square", "Gelu", "Elu", "Selu", "Softplus", "LeakyRelu")


def _op_kind(operation, node_index):
    """An elementwise `keras.ops` call inside a functional graph (``x * 0.5``, ``x + y``)."""
    name = type(operation).__name__
    if name not in _BINARY_OPS + _UNARY_OPS:
        return None
    args, kwargs = _private.call_arguments(operation, node_index)
    for item in keras.tree.flatten((args, kwargs)):
        if not isinstance(item, keras.KerasTensor) and np.ndim(item) != 0:
            return None  # a per-channel constant: cannot follow the channels' removal
    return "op"


def kind_of(layer, node_index=0):
    """How the engine treats ``layer`` (a string), or None when it does not understand it."""
    name = type(layer).__name__
    if name == "InputLayer":
        return "input"
    if not isinstance(layer, keras.layers.Layer):
        return _op_kind(layer, node_index)
    if name in _MASKED:
        return "conv"
    if getattr(layer, "data_format", "channels_last") not in (None, "channels_last"):
        return None
    if name in _CONVS:
        return "conv" if getattr(layer, "groups", 1) == 1 else None
    if name in _TRANSPOSED:
        return "transposed"
    if name == "Dense":
        return "dense"
    if name in _SEPARABLE:
        return "separable"
    if name in _DEPTHWISE:
        return "depthwise"
    if name == "BatchNormalization":
        axis = layer.axis if isinstance(layer.axis, int) else None
        return "batch_norm" if axis in (-1, len(layer.input.shape) - 1) else None
    if name in _POOLING or name in _SHAPE_ONLY:
        return "pass"
    if name in _PADDING:
        return "padding"
    if name in _ACTIVATIONS:
        return "activation"
    if name == "PReLU":
        return "prelu"
    if name == "Rescaling":
        return "rescaling" if np.ndim(layer.scale) == 0 and np.ndim(layer.offset) == 0 else None
    if name == "Flatten":
        return "flatten"
    if name == "Reshape":
        return "reshape"
    if name in _MERGES:
        return "merge"
    if name == "Concatenate":
        return "concatenate"
    return None


def _pointwise_or_valid(layer):
    """Whether a constant input map gives a constant output map (no zero padding effect)."""
    size = getattr(layer, "kernel_size", None)
    sizes = size if isinstance(size, (tuple, list)) else (size,)
    return getattr(layer, "padding", "same") == "valid" or all(k == 1 for k in sizes)


def _activation_is_elementwise(layer):
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "linear")
    return name not in _CHANNEL_MIXING_ACTIVATIONS


def visit_order(model):
    """Every (layer, node index) reachable backwards from the outputs, inputs first."""
    order, seen = [], set()
    stack = [(tensor, False) for tensor in reversed(model.outputs)]
    while stack:
        tensor, expanded = stack.pop()
        history = _private.keras_history(tensor)
        if history is None:
            raise ValueError(
                "The model's graph cannot be followed (an output tensor has no Keras "
                f"history). Received: model={model.name!r}"
            )
        key = (id(history[0]), history[1])
        if expanded:
            if key not in seen:
                seen.add(key)
                order.append(history)
            continue
        if key in seen:
            continue
        stack.append((tensor, True))
        for inbound in reversed(_private.inbound_tensors(*history)):
            stack.append((inbound, False))
    return order


@dataclasses.dataclass
class Space:
    """The channels created by one layer call."""

    index: int
    size: int
    layer: object
    kind: str


@dataclasses.dataclass
class Node:
    """One layer call of the graph."""

    layer: object
    node_index: int
    kind: str
    inputs: list  # input tensors (KerasTensor), in call order
    outputs: list


class Graph:
    """The channels of a functional Keras model and the layers between them."""

    def __init__(self, model):
        self.model = model
        self.spaces = []
        self.parent = []
        self.fixed = {}  # space index -> list of reasons
        self.layouts = {}  # id(tensor) -> (space ids, indices)
        self.tensors = {}  # id(tensor) -> tensor
        self.nodes = []
        self.readers = {}  # id(tensor) -> list of nodes reading it
        self._walk()
        self._finish_groups()

    # ------------------------------------------------------------------ walk
    def _new_space(self, size, layer, kind):
        space = Space(len(self.spaces), int(size), layer, kind)
        self.spaces.append(space)
        self.parent.append(space.index)
        return space.index

    def _fix_space(self, space, reason):
        self.fixed.setdefault(space, []).append(reason)

    def _fix_layout(self, layout, reason):
        for space in np.unique(layout[0]):
            self._fix_space(int(space), reason)

    def _find(self, space):
        while self.parent[space] != space:
            self.parent[space] = self.parent[self.parent[space]]
            space = self.parent[space]
        return space

    def _union(self, a, b):
        a, b = self._find(a), self._find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def _join(self, layouts, layer):
        """Join position by position the layouts of an elementwise merge; the output layout."""
        sizes = {len(layout[0]) for layout in layouts}
        wide = [layout for layout in layouts if len(layout[0]) > 1]
        for layout in layouts:
            if len(layout[0]) == 1 and len(sizes) > 1:  # broadcast over every channel
                self._fix_layout(layout, f"broadcast over all channels by {layer.name!r}")
        if not wide:
            return layouts[0]
        first = wide[0]
        for other in wide[1:]:
            if len(other[0]) != len(first[0]):
                for layout in wide:
                    self._fix_layout(layout, f"merged with other widths by {layer.name!r}")
                return first
            for a, b in set(zip(first[0].tolist(), other[0].tolist())):
                self._union(a, b)
            aligned = np.array_equal(first[1], other[1]) and all(
                self.spaces[a].size == self.spaces[b].size
                for a, b in set(zip(first[0].tolist(), other[0].tolist()))
            )
            if not aligned:
                for layout in wide:
                    self._fix_layout(layout, f"channels that do not line up merged by {layer.name!r}")
        return first

    def _visit_order(self):
        return visit_order(self.model)

    def _walk(self):
        order = self._visit_order()
        calls = {}
        for layer, _ in order:
            calls[id(layer)] = calls.get(id(layer), 0) + 1
        for layer, node_index in order:
            inputs = _private.inbound_tensors(layer, node_index)
            outputs = _private.output_tensors(layer, node_index)
            kind = kind_of(layer, node_index)
            if isinstance(layer, keras.Model) or calls[id(layer)] > 1:
                kind = None
            node = Node(layer, node_index, kind, inputs, outputs)
            self.nodes.append(node)
            for tensor in inputs:
                self.readers.setdefault(id(tensor), []).append(node)
            for tensor in outputs:
                self.tensors[id(tensor)] = tensor
            layouts = [self.layouts[id(tensor)] for tensor in inputs]
            for tensor, layout in zip(outputs, self._layouts_of(node, layouts)):
                self.layouts[id(tensor)] = layout
        for tensor in self.model.inputs:
            self._fix_layout(self.layouts[id(tensor)], "model input")
        for tensor in self.model.outputs:
            self._fix_layout(self.layouts[id(tensor)], "model output")

    def _produce(self, node, size, kind="producer"):
        space = self._new_space(size, node.layer, kind)
        return (np.full(size, space), np.arange(size))

    def _layouts_of(self, node, layouts):
        layer, kind = node.layer, node.kind
        channels = [int(t.shape[-1]) if t.shape and t.shape[-1] is not None else None
                    for t in node.outputs]
        if kind == "input":
            return [self._produce(node, channels[0], "input")]
        if kind is None:
            why = (
                f"read by {type(layer).__name__} {layer.name!r}, "
                + ("called more than once" if not isinstance(layer, keras.Model) and
                   kind_of(layer) is not None else "which the channel graph does not understand")
            )
            for layout in layouts:
                self._fix_layout(layout, why)
            result = []
            for size in channels:
                layout = self._produce(node, size or 0, "unknown")
                self._fix_layout(layout, f"output of {type(layer).__name__} {layer.name!r}")
                result.append(layout)
            return result
        (layout,) = layouts if len(layouts) == 1 else (None,)
        if kind in ("conv", "dense", "transposed", "separable"):
            out = self._produce(node, channels[0])
            if not _activation_is_elementwise(layer):
                self._fix_layout(out, f"activation of {layer.name!r} mixes channels")
            return [out]
        if kind == "depthwise":
            multiplier = int(layer.depth_multiplier)
            return [(np.repeat(layout[0], multiplier), np.repeat(layout[1], multiplier))]
        if kind == "flatten":
            repeats = channels[0] // max(len(layout[0]), 1)
            return [(np.tile(layout[0], repeats), np.tile(layout[1], repeats))]
        if kind == "reshape":
            if channels[0] != len(layout[0]):
                self._fix_layout(layout, f"reshaped across channels by {layer.name!r}")
                out = self._produce(node, channels[0] or 0, "unknown")
                self._fix_layout(out, f"output of a reshape across channels {layer.name!r}")
                return [out]
            return [layout]
        if kind == "merge" or (kind == "op" and len(layouts) > 1):
            return [self._join(layouts, layer)]
        if kind == "op":
            if channels[0] != len(layout[0]):
                self._fix_layout(layout, f"operation {layer.name!r} changes the width")
                out = self._produce(node, channels[0] or 0, "unknown")
                self._fix_layout(out, f"output of operation {layer.name!r}")
                return [out]
            return [layout]
        if kind == "concatenate":
            rank = len(node.outputs[0].shape)
            if layer.axis in (-1, rank - 1):
                return [(np.concatenate([l[0] for l in layouts]),
                         np.concatenate([l[1] for l in layouts]))]
            return [self._join(layouts, layer)]
        return [layout]  # channel by channel: batch_norm, pass, padding, activation, ...

    def _finish_groups(self):
        self.root = np.array([self._find(s) for s in range(len(self.spaces))], int)
        roots = sorted(set(self.root.tolist()))
        self.group_of_root = {root: number for number, root in enumerate(roots)}
        # The widest member: spaces of different widths joined by a merge whose channels
        # do not line up (a fixed group) must not spill into the next group's numbers.
        size = {root: 0 for root in roots}
        for space in self.spaces:
            root = int(self.root[space.index])
            size[root] = max(size[root], space.size)
        self.group_size = np.array([size[root] for root in roots], int)
        self.offset = np.concatenate([[0], np.cumsum(self.group_size)]).astype(int)
        self.group_fixed = [[] for _ in roots]
        for space, reasons in self.fixed.items():
            number = self.group_of_root[int(self.root[space])]
            for reason in reasons:
                if reason not in self.group_fixed[number]:
                    self.group_fixed[number].append(reason)
        self.group_spaces = [[] for _ in roots]
        for space in range(len(self.spaces)):
            self.group_spaces[self.group_of_root[int(self.root[space])]].append(space)
        self.num_channels = int(self.offset[-1])
        fixed = np.zeros(self.num_channels, bool)
        for number, reasons in enumerate(self.group_fixed):
            if reasons:
                fixed[self.offset[number]:self.offset[number + 1]] = True
        self.channel_fixed = fixed

    # ------------------------------------------------------------------ lookups
    def group_number(self, space):
        return self.group_of_root[int(self.root[space])]

    def channels_of(self, tensor):
        """Global channel number of every position of ``tensor``'s last axis."""
        spaces, indices = self.layouts[id(tensor)]
        if len(spaces) == 0:
            return np.zeros(0, int)
        groups = np.array([self.group_of_root[int(r)] for r in self.root[spaces]], int)
        return self.offset[groups] + indices

    def producer_node(self, space):
        layer = self.spaces[space].layer
        for node in self.nodes:
            if node.layer is layer:
                return node
        return None

    def group_layers(self, number):
        """Names of the layers whose outputs carry the group's channels, in model order."""
        names = []
        for node in self.nodes:
            for tensor in node.outputs:
                spaces = self.layouts[id(tensor)][0]
                if any(self.group_number(int(s)) == number for s in np.unique(spaces)):
                    if node.layer.name not in names:
                        names.append(node.layer.name)
        return names

    # ------------------------------------------------------------------ weights
    def weight_matrices(self, node):
        """``(nonzero, summed)`` (in x out) of an exit node: which input feeds which output."""
        layer, kind = node.layer, node.kind
        if kind == "conv":
            kernel = (layer.masked_kernel if hasattr(layer, "masked_kernel") else layer.kernel)
            kernel = keras.ops.convert_to_numpy(kernel)
            spatial = tuple(range(kernel.ndim - 2))
            return (kernel != 0).any(axis=spatial), kernel.sum(axis=spatial)
        if kind == "dense":
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            return kernel != 0, kernel
        if kind == "transposed":
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            spatial = tuple(range(kernel.ndim - 2))
            nonzero = (kernel != 0).any(axis=spatial).T
            return nonzero, np.full(nonzero.shape, np.nan)
        if kind == "separable":
            depthwise = keras.ops.convert_to_numpy(layer.depthwise_kernel)
            pointwise = keras.ops.convert_to_numpy(layer.pointwise_kernel)
            spatial = tuple(range(depthwise.ndim - 2))
            dw = (depthwise != 0).any(axis=spatial)  # (in, multiplier)
            pw = (pointwise != 0).reshape(dw.shape + (pointwise.shape[-1],))
            nonzero = (dw[:, :, None] & pw).any(axis=1)
            return nonzero, np.full(nonzero.shape, np.nan)
        raise TypeError(kind)

    def foldable(self, node):
        """Whether a constant input of the exit node contributes a constant to its outputs."""
        layer = node.layer
        if node.kind == "dense":
            return layer.use_bias
        if node.kind == "conv":
            return _pointwise_or_valid(layer) and layer.bias is not None
        return False

    # ------------------------------------------------------------------ constants
    def constants(self):
        """Value of every tensor position: a uniform constant, or NaN where it varies."""
        values = {}
        self._values = values
        self._exit_cache = {}
        for node in self.nodes:
            ins = [values[id(t)] for t in node.inputs]
            outs = self._constant_outputs(node, ins)
            for tensor, value in zip(node.outputs, outs):
                values[id(tensor)] = value
        return values

    def _activate(self, layer, value):
        activation = getattr(layer, "activation", None)
        if activation is None:
            return value
        known = ~np.isnan(value)
        out = keras.ops.convert_to_numpy(
            activation(keras.ops.convert_to_tensor(np.where(known, value, 0.0)[None], "float32"))
        )[0].astype("float64")
        out[~known] = np.nan
        return out

    def _constant_outputs(self, node, ins):
        layer, kind = node.layer, node.kind
        width = [int(t.shape[-1]) if t.shape[-1] is not None else 0 for t in node.outputs]
        if kind in ("input", None):
            return [np.full(size, np.nan) for size in width]
        value = ins[0] if ins else None
        if kind in ("conv", "dense", "transposed", "separable"):
            nonzero, summed = self.weight_matrices(node)
            self._exit_cache[id(node)] = (nonzero, summed)
            bias = getattr(layer, "bias", None)
            bias = np.zeros(width[0]) if bias is None else keras.ops.convert_to_numpy(bias)
            zero = value == 0
            foldable = (kind == "dense") or (kind == "conv" and _pointwise_or_valid(layer))
            usable = zero | (~np.isnan(value) & foldable)
            with np.errstate(invalid="ignore"):
                out = bias.astype("float64") + np.where(usable, np.nan_to_num(value), 0.0) @ np.where(
                    nonzero, np.nan_to_num(summed), 0.0)
            out[(nonzero & ~usable[:, None]).any(axis=0)] = np.nan
            return [self._activate(layer, out)]
        if kind == "depthwise":
            multiplier = int(layer.depth_multiplier)
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            spatial = tuple(range(kernel.ndim - 2))
            summed = kernel.sum(axis=spatial).reshape(-1)
            repeated = np.repeat(value, multiplier)
            bias = np.zeros(len(repeated)) if layer.bias is None else keras.ops.convert_to_numpy(layer.bias)
            if layer.padding == "valid":
                out = bias + repeated * summed
            else:
                out = np.where(repeated == 0, bias, np.nan)
            return [self._activate(layer, out)]
        if kind == "batch_norm":
            gamma = keras.ops.convert_to_numpy(layer.gamma) if layer.scale else 1.0
            beta = keras.ops.convert_to_numpy(layer.beta) if layer.center else 0.0
            mean = keras.ops.convert_to_numpy(layer.moving_mean)
            variance = keras.ops.convert_to_numpy(layer.moving_variance)
            out = gamma * (value - mean) / np.sqrt(variance + layer.epsilon) + beta
            out = np.where(np.asarray(gamma) * np.ones_like(value) == 0, beta * np.ones_like(value), out)
            return [out]
        if kind == "pass" or kind == "reshape":
            return [value]
        if kind == "padding":
            return [np.where(value == 0, 0.0, np.nan)]
        if kind == "flatten":
            return [np.tile(value, width[0] // max(len(value), 1))]
        if kind == "activation":
            known = ~np.isnan(value)
            out = keras.ops.convert_to_numpy(
                layer(keras.ops.convert_to_tensor(np.where(known, value, 0.0)[None], "float32"))
            )[0].astype("float64")
            out[~known] = np.nan
            return [out]
        if kind == "prelu":
            return [np.where(value == 0, 0.0, np.where(value > 0, value, np.nan))]
        if kind == "rescaling":
            return [value * float(layer.scale) + float(layer.offset)]
        if kind == "op":
            return [self._op_constant(node, width[0])]
        if kind == "concatenate" and len(node.outputs[0].shape) - 1 != layer.axis and layer.axis != -1:
            return [np.full(width[0], np.nan)]
        if kind == "concatenate":
            return [np.concatenate(ins)]
        if kind == "merge":
            wide = np.broadcast_arrays(*ins)
            name = type(layer).__name__
            with np.errstate(invalid="ignore"):
                if name == "Add":
                    out = np.sum(wide, axis=0)
                elif name == "Subtract":
                    out = wide[0] - wide[1]
                elif name == "Average":
                    out = np.mean(wide, axis=0)
                elif name == "Maximum":
                    out = np.max(wide, axis=0)
                elif name == "Minimum":
                    out = np.min(wide, axis=0)
                else:
                    out = np.prod(wide, axis=0)
                    out[np.any([w == 0 for w in wide], axis=0)] = 0.0
            return [np.asarray(out, "float64")]
        return [np.full(size, np.nan) for size in width]

    def _op_constant(self, node, width):
        """The elementwise operation applied to its inputs' constants (NaN where unknown)."""
        args, kwargs = _private.call_arguments(node.layer, node.node_index)
        nan = np.zeros(width, bool)

        def substitute(item):
            if isinstance(item, keras.KerasTensor):
                value = self._values[id(item)]
                value = np.broadcast_to(value, (width,)) if value.size in (1, width) else value
                nan[np.isnan(value)] = True
                return keras.ops.convert_to_tensor(np.nan_to_num(value)[None], "float32")
            return item

        try:
            out = node.layer(*keras.tree.map_structure(substitute, args),
                             **keras.tree.map_structure(substitute, kwargs))
            out = np.asarray(keras.ops.convert_to_numpy(out), "float64").reshape(-1)
        except Exception:
            return np.full(width, np.nan)
        if out.shape != (width,):
            return np.full(width, np.nan)
        out[nan] = np.nan
        return out

    # ------------------------------------------------------------------ solve
    def exits(self):
        """Every (node, input tensor) where a channel leaves its group through weights."""
        result = []
        for node in self.nodes:
            if node.kind in ("conv", "dense", "transposed", "separable"):
                result.append((node, node.inputs[0]))
        return result

    def solve(self):
        """``(alive, values)``: the channels `shrink` keeps, and every tensor's constants."""
        values = self.constants()
        exits = self.exits()
        prepared = []
        for node, tensor in exits:
            nonzero, _ = self._exit_cache[id(node)]
            value = values[id(tensor)]
            constant_ok = (value == 0) | (~np.isnan(value) & self.foldable(node))
            prepared.append((self.channels_of(tensor), self.channels_of(node.outputs[0]),
                             nonzero, constant_ok))
        alive = np.ones(self.num_channels, bool)
        while True:
            ok = np.ones(self.num_channels, bool)
            for inputs, outputs, nonzero, constant_ok in prepared:
                reads = nonzero[:, alive[outputs]].any(axis=1)
                bad = reads & ~constant_ok
                ok[inputs[bad]] = False
            new_alive = (self.channel_fixed | ~ok) & alive
            if np.array_equal(new_alive, alive):
                break
            alive = new_alive
        return alive, values

    def has_input(self, values):
        """Per global channel: whether some tensor of its group varies there."""
        varies = np.zeros(self.num_channels, bool)
        for key, value in values.items():
            channels = self.channels_of(self.tensors[key])
            varies[channels[np.isnan(value)]] = True
        return varies

    def producers(self, number):
        """The nodes whose output space belongs to group ``number``, in model order."""
        spaces = set(self.group_spaces[number])
        return [node for node in self.nodes
                if node.kind in ("conv", "dense", "transposed", "separable")
                and self.layouts[id(node.outputs[0])][0][0] in spaces]
