"""Rebuild a functional Keras model with some channels removed (private engine).

Used by `shrink` (the channels `Graph.solve` finds removable) and by `prune_channels`
(every channel kept: an exact, independent copy). Every layer call of the graph is
replayed, in order, on a new layer of the same class with the same name and the same
config except its width (``filters`` / ``units`` / a channel-preserving ``Reshape``'s
last dimension); weights are copied with the removed input and output channels sliced
away. Constants that removed channels contributed to a kept output are folded into
the consumer's bias (`Graph.solve` only removes them where that is exact). A producer
whose kept outputs are all constant and that only feeds an ``Add`` is dropped, its
constant going into the bias of another summand (an add-on left without connections).
"""

import keras
import numpy as np

from tfemergent.pruning._graph import Graph, visit_order
from tfemergent.utils import _private

PRODUCERS = ("conv", "dense", "transposed", "separable")


def graph_of(model):
    """The `Graph` of ``model``, or a ``ValueError`` for a model the engine cannot walk."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            f"Argument `model` must be a keras.Model. Received: model={model!r} of type "
            f"{type(model).__name__}"
        )
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
    return Graph(flatten_nested(model))


def _is_functional(layer):
    if not isinstance(layer, keras.Model):
        return False
    try:
        return bool(layer.outputs) and bool(layer.inputs)
    except (AttributeError, ValueError):
        return False


def _fresh(layer, names):
    """A new layer of ``layer``'s class and config (renamed if ``names`` has it), or ``layer``."""
    if not isinstance(layer, keras.layers.Layer):  # a stateless keras.ops operation
        return layer
    config = layer.get_config()
    name = config.get("name", layer.name)
    if name in names:
        number = 1
        while f"{name}_{number}" in names:
            number += 1
        config["name"] = name = f"{name}_{number}"
    names.add(name)
    return _recreate(layer, config)


def _recreate(layer, config):
    """A new layer from ``config``; a Python-lambda `Lambda` gets its function object
    directly (deserialising it is refused in safe mode); a layer that cannot be
    re-created at all is reused as it is (shared with the original model)."""
    if type(layer) is keras.layers.Lambda:
        output_shape, mask = config.get("output_shape"), config.get("mask")
        if (output_shape is None or isinstance(output_shape, (list, tuple))) and mask is None:
            return keras.layers.Lambda(
                layer.function, output_shape=output_shape, arguments=layer.arguments,
                name=config["name"])
    try:
        return type(layer).from_config(config)
    except Exception:
        return layer


def flatten_nested(model):
    """``model`` itself, or, when it holds functional sub-models, an equivalent flat copy.

    The layers of a nested functional or Sequential model are replayed in the outer
    graph (new layers, same configs and weights; a name already taken gets a suffix),
    so that their channels can be pruned like the outer ones.
    """
    if not any(_is_functional(layer) for layer in model.layers):
        return model
    new_tensors, names, copies = {}, set(), []

    def replace(item):
        if isinstance(item, keras.KerasTensor):
            return new_tensors[id(item)]
        return item

    def replay(network):
        for layer, node_index in visit_order(network):
            outputs = _private.output_tensors(layer, node_index)
            if type(layer).__name__ == "InputLayer":
                continue
            args, kwargs = _private.call_arguments(layer, node_index)
            if _is_functional(layer):
                inner_inputs = keras.tree.flatten(keras.tree.map_structure(replace, args))
                for tensor, value in zip(layer.inputs, inner_inputs):
                    new_tensors[id(tensor)] = value
                replay(layer)
                for old, inner in zip(outputs, layer.outputs):
                    new_tensors[id(old)] = new_tensors[id(inner)]
                continue
            new = _fresh(layer, names)
            result = new(*keras.tree.map_structure(replace, args),
                         **keras.tree.map_structure(replace, kwargs))
            if new is not layer:
                copies.append((layer, new))
            for old, value in zip(outputs, keras.tree.flatten(result)):
                new_tensors[id(old)] = value

    inputs = []
    for tensor in model.inputs:
        layer = _private.keras_history(tensor)[0]
        names.add(layer.name)
        new_tensors[id(tensor)] = keras.Input(
            shape=tuple(tensor.shape[1:]), batch_size=tensor.shape[0], dtype=tensor.dtype,
            name=layer.name)
        inputs.append(new_tensors[id(tensor)])
    replay(model)
    outputs = [new_tensors[id(t)] for t in model.outputs]
    flat = keras.Model(inputs[0] if len(inputs) == 1 else inputs,
                       outputs[0] if len(outputs) == 1 else outputs, name=model.name)
    for layer, new in copies:
        new.set_weights(layer.get_weights())
    return flat


def _numpy(variable):
    return np.array(keras.ops.convert_to_numpy(variable))


def _weight_name(variable):
    return getattr(variable, "name", "").split("/")[-1].split(":")[0]


class Rebuild:
    """The kept channels of every tensor and the new model built from them."""

    def __init__(self, graph, alive, values):
        """``values=None``: an exact copy (``alive`` all true, nothing folded or dropped)."""
        self.graph = graph
        self.alive = alive
        self.values = values
        self.dropped = set()  # id(node) of dropped constant summands
        self.extra_bias = {}  # id(layer) -> array added to the (full-width) bias
        if values is not None:
            self._find_dropped_summands()

    # ------------------------------------------------------------------ keeps
    def keep(self, tensor):
        return self.alive[self.graph.channels_of(tensor)]

    def _readers(self, tensor):
        return self.graph.readers.get(id(tensor), [])

    def _is_output(self, tensor):
        return any(tensor is output for output in self.graph.model.outputs)

    def _find_dropped_summands(self):
        graph = self.graph
        producer_of = {}
        for node in graph.nodes:
            for tensor in node.outputs:
                producer_of[id(tensor)] = node
        for node in graph.nodes:
            if type(node.layer).__name__ != "Add" or node.kind != "merge":
                continue
            candidates = []
            for tensor in node.inputs:
                source = producer_of.get(id(tensor))
                single = (len(self._readers(tensor)) == 1 and not self._is_output(tensor)
                          and source is not None and source.kind in ("conv", "dense"))
                candidates.append((tensor, source if single else None))
            holders = [
                (tensor, source) for tensor, source in candidates
                if source is not None and getattr(source.layer, "bias", None) is not None
                and getattr(getattr(source.layer, "activation", None), "__name__", "linear")
                == "linear"
            ]
            for tensor, source in candidates:
                remaining = sum(1 for t in node.inputs
                                if id(producer_of.get(id(t))) not in self.dropped)
                if source is None or remaining <= 1:
                    continue
                keep = self.keep(tensor)
                value = self.values[id(tensor)][keep]
                if np.isnan(value).any():
                    continue
                if np.all(value == 0):
                    self.dropped.add(id(source))
                    continue
                holder = next((h for h in holders if h[1] is not source
                               and id(h[1]) not in self.dropped
                               and not np.isnan(self.values[id(h[0])][self.keep(h[0])]).all()
                               and np.array_equal(graph.channels_of(h[0]),
                                                  graph.channels_of(tensor))), None)
                if holder is None:
                    continue
                full = np.where(self.keep(tensor), np.nan_to_num(self.values[id(tensor)]), 0.0)
                key = id(holder[1].layer)
                self.extra_bias[key] = self.extra_bias.get(key, 0.0) + full
                self.dropped.add(id(source))

    # ------------------------------------------------------------------ checks
    def check(self):
        """A ``ValueError`` when a layer would keep no channel."""
        for node in self.graph.nodes:
            if id(node) in self.dropped or node.kind not in PRODUCERS:
                continue
            if not self.keep(node.outputs[0]).any():
                raise ValueError(
                    f"Every channel of layer {node.layer.name!r} would be removed (none has "
                    "both an input and an output left): the pruned network no longer "
                    "depends on its input there, so it cannot be shrunk. Prune fewer "
                    f"channels or kernels. Received: model={self.graph.model.name!r}"
                )
            if not self.keep(node.inputs[0]).any():
                raise ValueError(
                    f"Every input channel of layer {node.layer.name!r} would be removed, "
                    "so it cannot be rebuilt. Prune fewer channels or kernels. "
                    f"Received: model={self.graph.model.name!r}"
                )

    # ------------------------------------------------------------------ layers
    def _config(self, node):
        layer, kind = node.layer, node.kind
        config = layer.get_config()
        if kind in PRODUCERS:
            width = int(self.keep(node.outputs[0]).sum())
            config["units" if kind == "dense" else "filters"] = width
        elif kind == "reshape":
            shape = list(config["target_shape"])
            if shape and shape[-1] not in (None, -1):
                shape[-1] = int(self.keep(node.outputs[0]).sum())
                config["target_shape"] = tuple(shape)
        return config

    def _new_layer(self, node):
        layer = node.layer
        if not isinstance(layer, keras.layers.Layer):  # a stateless keras.ops operation
            return layer
        if node.kind is None:
            if isinstance(layer, keras.Model):
                clone = keras.models.clone_model(layer)
                clone.set_weights(layer.get_weights())
                return clone
            return _recreate(layer, layer.get_config())
        return type(layer).from_config(self._config(node))

    def _folded_bias(self, node, bias):
        """``bias`` (full width) plus what the removed constant input channels add."""
        bias = bias.astype("float64")
        layer = node.layer
        if id(layer) in self.extra_bias:
            bias = bias + self.extra_bias[id(layer)]
        if node.kind not in ("conv", "dense") or self.values is None:
            return bias
        tensor = node.inputs[0]
        removed = ~self.keep(tensor)
        value = np.nan_to_num(self.values[id(tensor)])
        rows = removed & (value != 0)
        if rows.any():
            _, summed = self.graph.weight_matrices(node)
            bias = bias + value[rows] @ summed[rows].astype("float64")
        return bias

    def sliced(self, node):
        """The layer's weights with the removed channels sliced away: name -> array."""
        layer, kind = node.layer, node.kind
        result = {}
        if kind is None or kind == "input":
            return {_weight_name(v): _numpy(v) for v in getattr(layer, "weights", [])}
        keep_in = self.keep(node.inputs[0]) if node.inputs else None
        keep_out = self.keep(node.outputs[0])
        for variable in layer.weights:
            name = _weight_name(variable)
            value = _numpy(variable)
            if kind in ("conv", "dense"):
                if name == "bias":
                    value = self._folded_bias(node, value)[keep_out]
                elif value.ndim >= 2:
                    value = value[..., keep_in, :][..., keep_out]
                else:
                    value = value[keep_out]
            elif kind == "transposed":
                if value.ndim >= 2:
                    value = value[..., keep_out, :][..., keep_in]
                else:
                    value = value[keep_out]
            elif kind == "separable":
                multiplier = int(layer.depth_multiplier)
                if name == "depthwise_kernel":
                    value = value[..., keep_in, :]
                elif name == "pointwise_kernel":
                    value = value[..., np.repeat(keep_in, multiplier), :][..., keep_out]
                else:
                    value = value[keep_out]
            elif kind == "depthwise":
                if value.ndim >= 2:
                    value = value[..., keep_in, :]
                else:
                    value = value[keep_out]
            elif kind == "batch_norm":
                value = value[keep_out]
            elif kind == "prelu":
                if value.shape and value.shape[-1] == len(keep_out) and len(keep_out) > 1:
                    value = value[..., keep_out]
            result[name] = value
        return result

    def _weights(self, node, new_layer):
        """The old layer's weights, sliced, in the new layer's weight order."""
        sliced = self.sliced(node)
        return [sliced[_weight_name(v)].astype(v.dtype) for v in new_layer.weights]

    # ------------------------------------------------------------------ model
    def model(self):
        self.check()
        graph = self.graph
        new_tensors = {}  # id(old tensor) -> new tensor
        new_layers = {}  # id(old layer) -> new layer
        weighted = []
        for node in graph.nodes:
            layer = node.layer
            if node.kind == "input":
                (tensor,) = node.outputs
                new_tensors[id(tensor)] = keras.Input(
                    shape=tuple(tensor.shape[1:]), batch_size=tensor.shape[0],
                    dtype=tensor.dtype, name=layer.name)
                continue
            if id(node) in self.dropped:
                continue
            args, kwargs = _private.call_arguments(layer, node.node_index)
            if node.kind == "merge" and type(layer).__name__ == "Add":
                inputs = [t for t in node.inputs if id(t) in new_tensors]
                if len(inputs) == 1:
                    new_tensors[id(node.outputs[0])] = new_tensors[id(inputs[0])]
                    continue
                args = ([t for t in args[0] if id(t) in new_tensors],) + tuple(args[1:])

            def replace(item):
                if isinstance(item, keras.KerasTensor):
                    return new_tensors[id(item)]
                return item

            args = keras.tree.map_structure(replace, args)
            kwargs = keras.tree.map_structure(replace, kwargs)
            if id(layer) not in new_layers:
                new_layers[id(layer)] = self._new_layer(node)
                weighted.append(node)
            outputs = new_layers[id(layer)](*args, **kwargs)
            for old, new in zip(node.outputs, keras.tree.flatten(outputs)):
                new_tensors[id(old)] = new
        model = graph.model
        inputs = [new_tensors[id(t)] for t in model.inputs]
        outputs = [new_tensors[id(t)] for t in model.outputs]
        inputs = inputs[0] if len(inputs) == 1 else inputs
        outputs = outputs[0] if len(outputs) == 1 else outputs
        result = keras.Model(inputs, outputs, name=model.name)
        for node in weighted:
            new_layer = new_layers[id(node.layer)]
            if new_layer is node.layer or isinstance(new_layer, keras.Model):
                continue  # reused as it is (operations, layers that cannot be re-created)
            if node.kind is None:
                new_layer.set_weights(node.layer.get_weights())
                continue
            values = self._weights(node, new_layer)
            for variable, value in zip(new_layer.weights, values):
                variable.assign(value)
        return result


def _spatial(tensor):
    return int(np.prod([d if d is not None else 1 for d in tensor.shape[1:-1]] or [1]))


def _macs(node, num_in, num_out):
    """Multiply-adds of one call of a weighted layer with ``num_in`` -> ``num_out`` channels."""
    layer, kind = node.layer, node.kind
    if kind in ("conv", "transposed", "separable", "depthwise"):
        size = getattr(layer, "kernel_size", 1)
        taps = int(np.prod(size if isinstance(size, (tuple, list)) else [size] * 2))
    if kind == "conv":
        return _spatial(node.outputs[0]) * taps * num_in * num_out
    if kind == "dense":
        return _spatial(node.outputs[0]) * num_in * num_out
    if kind == "transposed":
        return _spatial(node.inputs[0]) * taps * num_in * num_out
    if kind == "depthwise":
        return _spatial(node.outputs[0]) * taps * num_out
    if kind == "separable":
        multiplier = int(layer.depth_multiplier)
        spatial = _spatial(node.outputs[0])
        return spatial * taps * num_in * multiplier + spatial * num_in * multiplier * num_out
    return 0


def layer_costs(rebuild):
    """Per layer with weights or a channel axis: channels, parameters and MACs before/after.

    ``rebuild`` is a `Rebuild` of the model with the channels `shrink` would keep.
    """
    rows = {}
    for node in rebuild.graph.nodes:
        if node.kind == "input" or not node.outputs:
            continue
        layer = node.layer
        weights = getattr(layer, "weights", [])
        if node.kind is None and not weights:
            continue
        if node.kind is not None and node.kind not in PRODUCERS + (
                "depthwise", "batch_norm", "prelu") and not weights:
            continue
        dropped = id(node) in rebuild.dropped
        out = node.outputs[0]
        width = len(rebuild.graph.channels_of(out))
        kept_out = 0 if dropped else int(rebuild.keep(out).sum())
        kept_in = width_in = 0
        if node.inputs:
            width_in = len(rebuild.graph.channels_of(node.inputs[0]))
            kept_in = 0 if dropped else int(rebuild.keep(node.inputs[0]).sum())
        before = int(sum(np.prod(v.shape) for v in weights))
        after = 0 if dropped else int(sum(v.size for v in rebuild.sliced(node).values()))
        row = rows.setdefault(layer.name, {
            "type": type(layer).__name__,
            "channels_before": width, "channels_after": kept_out,
            "parameters_before": before, "parameters_after": after,
            "macs_before": 0, "macs_after": 0,
        })
        row["macs_before"] += _macs(node, width_in, width)
        row["macs_after"] += 0 if dropped else _macs(node, kept_in, kept_out)
    return rows
