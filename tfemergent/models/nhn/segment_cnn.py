"""The layer-hierarchy CNN of Neuron Hierarchical Networks, as a rebuildable spec."""

import copy
import re

import keras
import numpy as np

from tfemergent.initializers.smooth_kernel import SmoothKernel
from tfemergent.layers.add_on_conv2d import ADD_ON_KERNEL_SIZES, AddOnConv2D
from tfemergent.layers.masked_conv2d import MaskedConv2D
from tfemergent.utils.validation import validate_bool, validate_float, validate_int, validate_seed

# A CPU-sized version of the paper's base network (ENAS macro search: 3 segments of
# 4 convolutions mixing 3x3 and 5x5 kernels, pooling between the segments).
DEFAULT_SEGMENTS = (
    ({"filters": 16, "kernel_size": 3}, {"filters": 16, "kernel_size": 5},
     {"filters": 16, "kernel_size": 3}, {"filters": 16, "kernel_size": 5}),
    ({"filters": 32, "kernel_size": 3}, {"filters": 32, "kernel_size": 5},
     {"filters": 32, "kernel_size": 3}, {"filters": 32, "kernel_size": 5}),
    ({"filters": 64, "kernel_size": 3}, {"filters": 64, "kernel_size": 5},
     {"filters": 64, "kernel_size": 3}, {"filters": 64, "kernel_size": 5}),
)
CONV_KERNEL_SIZES = (3, 5)
SEGMENT_INPUT = "input"
INPUT_NAME = "image"
HEAD_NAME = "head"
GLOBAL_POOL_NAME = "global_pool"
_CONV_PATTERN = re.compile(r"^conv_(\d+)_(\d+)$")
_ADD_ON_PATTERN = re.compile(r"^add_on_(\d+)_(input|\d+)_(\d+)_k(\d+)$")
_ADD_ON_KEYS = (
    "segment", "source", "target", "kernel_size", "connection_density", "connection_mask"
)


def _normalize_layer(segment, index, layer):
    name = f"segments[{segment}][{index}]"
    if isinstance(layer, dict):
        unknown = sorted(set(layer) - {"filters", "kernel_size"})
        if unknown or "filters" not in layer:
            raise ValueError(
                f"Argument `segments`: {name} must be a number of filters or a dict with "
                f"the key 'filters' and optionally 'kernel_size' (3 or 5). Received: "
                f"{name}={layer!r}"
            )
        filters, kernel_size = layer["filters"], layer.get("kernel_size", 3)
    else:
        filters, kernel_size = layer, 3
    filters = validate_int(f"{name}['filters']", filters, minimum=1)
    if not _is_choice(kernel_size, CONV_KERNEL_SIZES):
        raise ValueError(
            f"Argument `segments`: the kernel size of {name} must be one of "
            f"{list(CONV_KERNEL_SIZES)}. Received: {name}['kernel_size']={kernel_size!r}"
        )
    return {"filters": filters, "kernel_size": int(kernel_size)}


def _is_choice(value, choices):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value in choices


def _is_list(value):
    return isinstance(value, (list, tuple)) and not isinstance(value, (str, bytes, dict))


def _normalize_segments(segments):
    if not _is_list(segments) or not segments:
        raise ValueError(
            "Argument `segments` must be a non-empty list of segments, each a non-empty "
            "list of convolution layers (a number of filters or {'filters': f, "
            f"'kernel_size': 3 or 5}}). Received: segments={segments!r}"
        )
    normalized = []
    for segment, layers in enumerate(segments):
        if not _is_list(layers) or not layers:
            raise ValueError(
                f"Argument `segments`: segments[{segment}] must be a non-empty list of "
                f"convolution layers. Received: segments[{segment}]={layers!r}"
            )
        normalized.append(
            [_normalize_layer(segment, index, layer) for index, layer in enumerate(layers)]
        )
    return normalized


def _normalize_source(name, source, segment, target):
    """An add-on's source: ``SEGMENT_INPUT`` or a layer index before ``target``."""
    if source == SEGMENT_INPUT:
        return source
    if isinstance(source, bool) or not isinstance(source, (int, np.integer)) or not (
        0 <= source < target
    ):
        raise ValueError(
            f"Argument `add_ons`: {name}['source'] must be {SEGMENT_INPUT!r} (the "
            f"segment's input) or a layer of segment {segment} before the target "
            f"layer {target}, i.e. an integer in [0, {target - 1}]. "
            f"Received: {name}['source']={source!r}"
        )
    return int(source)


def _normalize_connection_mask(name, mask, shape):
    """An add-on's connection mask as a 0/1 nested list of ``shape``, or None."""
    if mask is None:
        return None
    try:
        values = np.asarray(mask, dtype="float64")
    except (TypeError, ValueError):
        values = None
    if values is None or values.shape != shape or not np.all((values == 0) | (values == 1)):
        raise ValueError(
            f"Argument `add_ons`: {name}['connection_mask'] must be a 0/1 array of "
            f"shape (source channels, target filters) = {shape}, or None. "
            f"Received: {name}['connection_mask']={mask!r}"
        )
    return values.astype(int).tolist()


def _model_layers(model):
    """The convolutions ``{(segment, layer): MaskedConv2D}`` and add-on dicts of a model."""
    convs = {}
    add_ons = []
    for layer in model.layers:
        match = _CONV_PATTERN.match(layer.name)
        if match and isinstance(layer, MaskedConv2D):
            convs[(int(match.group(1)), int(match.group(2)))] = layer
        match = _ADD_ON_PATTERN.match(layer.name)
        if match and isinstance(layer, AddOnConv2D):
            source = match.group(2)
            add_ons.append(
                {
                    "segment": int(match.group(1)),
                    "source": source if source == SEGMENT_INPUT else int(source),
                    "target": int(match.group(3)),
                    "kernel_size": layer.kernel_size,
                }
            )
    return convs, add_ons


def _segments_of(convs):
    """``(segments, problem)``: the segment specs of the convolutions, or what is wrong."""
    num_segments = 1 + max(segment for segment, _ in convs)
    segments = []
    for segment in range(num_segments):
        num_layers = 1 + max((l for s, l in convs if s == segment), default=-1)
        if num_layers == 0 or any((segment, l) not in convs for l in range(num_layers)):
            return None, (
                f"the convolutions of segment {segment} are not "
                f"conv_{segment}_0, conv_{segment}_1, ..."
            )
        segments.append(
            [
                {
                    "filters": convs[(segment, l)].filters,
                    "kernel_size": convs[(segment, l)].kernel_size,
                }
                for l in range(num_layers)
            ]
        )
    return segments, None


class SegmentCNN:
    """The base network of Neuron Hierarchical Networks: a spec that builds a Keras model.

    The paper's layer-hierarchy network (found by ENAS macro search) is divided
    by pooling into segments in which all feature maps have the same size; its
    3 x 3 and 5 x 5 kernels are smoothed at initialisation, pruned after
    training, and new "add-on" neurons are added between layers of a segment.
    This class is a small, configurable version of it for the CPU, held as a
    JSON-serialisable spec so that the network can be rebuilt with other
    widths (`tfemergent.pruning.shrink` does) or other add-ons (a location
    search does).

    The model, built by `build`, is a functional `keras.Model` with these
    layer names (``s`` = segment, ``l`` = layer in the segment, from 0):

    - ``"image"``: the input ``input_shape``;
    - ``"conv_{s}_{l}"``: `tfemergent.layers.MaskedConv2D` (linear, bias,
      same padding), ``kernel_size`` 3 or 5;
    - ``"add_on_{s}_{source}_{l}_k{k}"``: an `tfemergent.layers.AddOnConv2D`
      of size ``k`` reading the output of layer ``source`` of segment ``s``
      (after its ReLU) or, with ``source="input"``, the segment's input (the
      image, or the previous segment's pooled output); its output is added to
      the pre-activation of layer ``l``;
    - ``"preactivation_{s}_{l}"``: `keras.layers.Add` of ``conv_{s}_{l}`` and
      its add-ons (only where there are add-ons);
    - ``"relu_{s}_{l}"``: `keras.layers.ReLU`;
    - ``"pool_{s}"``: 2 x 2 max pooling after every segment but the last;
    - ``"global_pool"``: global average pooling; ``"head"``: dense softmax over
      ``num_classes``.

    Add-ons are dicts ``{"segment": s, "target": l, "source": i or "input",
    "kernel_size": 3 or 5}`` with ``0 <= i < l``, and optionally
    ``"connection_density"`` (initial fraction of connections, see
    `AddOnConv2D`) or ``"connection_mask"`` (0/1 nested list ``(channels of the
    source, filters of the target)``, set after building). At most one add-on
    per target layer and kernel size: this is the paper's genome, one gene per
    (existing layer, kernel size) that is either "none" or the source layer.
    `add_on_locations` lists every valid add-on, `add_ons_from_locations` turns
    the output of `tfemergent.search.LocationSpace.decode` into add-on dicts
    (``LocationSpace(segment_sizes=spec.segment_sizes)``), and `with_add_ons`
    returns the spec with those add-ons. Layer names depend only on the
    structure, so weights shared between candidates can be copied by name.

    With ``smooth_init`` every convolution and add-on kernel is initialised by
    `tfemergent.initializers.SmoothKernel` (He normal, then a 3 x 3 Gaussian of
    ``smoothing_sigma``); otherwise by He normal.

    Reference: "Neuron Hierarchical Networks" (anonymous, ICLR 2019
    submission), sections 2.1-2.3 and Figure 2.

    Args:
        input_shape: ``(height, width, channels)`` of the images.
        num_classes: number of classes of the softmax head, >= 2.
        segments: list of segments, each a list of convolution layers, each a
            number of filters (3 x 3 kernel) or ``{"filters": f, "kernel_size":
            3 or 5}``; default `DEFAULT_SEGMENTS` (3 segments of 4 layers, 16,
            32 and 64 filters, kernel sizes 3, 5, 3, 5).
        add_ons: list of add-on dicts (see above).
        smooth_init: smooth initialisation of the kernels.
        smoothing_sigma: sigma of the smoothing Gaussian, > 0.
        seed: integer seed of the initializers (each layer gets its own seed
            derived from it), or None (Keras's global seed).

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> spec = SegmentCNN((8, 8, 1), num_classes=3, segments=[[4, {"filters": 4,
    ...     "kernel_size": 5}], [6]], add_ons=[{"segment": 0, "source": "input",
    ...     "target": 1, "kernel_size": 3}], seed=0)
    >>> model = spec.build()
    >>> [layer.name for layer in model.layers if "conv" in layer.name or "add_on" in layer.name]
    ['conv_0_0', 'conv_0_1', 'add_on_0_input_1_k3', 'conv_1_0']
    >>> model(np.zeros((2, 8, 8, 1), "float32")).shape
    TensorShape([2, 3])
    >>> SegmentCNN.from_config(spec.get_config()).get_config() == spec.get_config()
    True
    >>> SegmentCNN.from_model(model).segments == spec.segments
    True
    """

    def __init__(
        self,
        input_shape,
        num_classes,
        segments=None,
        add_ons=(),
        smooth_init=True,
        smoothing_sigma=1.0,
        seed=None,
    ):
        if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__") or len(
            input_shape
        ) != 3:
            raise ValueError(
                "Argument `input_shape` must be (height, width, channels). "
                f"Received: input_shape={input_shape!r}"
            )
        self.input_shape = tuple(
            validate_int("input_shape", size, minimum=1) for size in input_shape
        )
        self.num_classes = validate_int("num_classes", num_classes, minimum=2)
        self.segments = _normalize_segments(DEFAULT_SEGMENTS if segments is None else segments)
        height, width = self.input_shape[:2]
        for _ in range(len(self.segments) - 1):
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ValueError(
                f"Argument `input_shape`: {len(self.segments)} segments pool the images "
                f"{len(self.segments) - 1} times by 2, which needs images of at least "
                f"{2 ** (len(self.segments) - 1)} x {2 ** (len(self.segments) - 1)}. "
                f"Received: input_shape={input_shape!r}"
            )
        self.smooth_init = validate_bool("smooth_init", smooth_init)
        self.smoothing_sigma = validate_float(
            "smoothing_sigma", smoothing_sigma, minimum=0.0, min_inclusive=False
        )
        self.seed = validate_seed("seed", seed)
        self.add_ons = self._normalize_add_ons(add_ons)

    # ------------------------------------------------------------------ add-ons
    def input_channels(self, segment, source):
        """Channels of an add-on's source: a layer of the segment or its input."""
        if source != SEGMENT_INPUT:
            return self.segments[segment][source]["filters"]
        if segment == 0:
            return self.input_shape[-1]
        return self.segments[segment - 1][-1]["filters"]

    def _normalize_add_on(self, index, add_on):
        name = f"add_ons[{index}]"
        if not isinstance(add_on, dict):
            raise ValueError(
                f"Argument `add_ons`: {name} must be a dict with the keys 'segment', "
                f"'source', 'target', 'kernel_size'. Received: {name}={add_on!r}"
            )
        unknown = sorted(set(add_on) - set(_ADD_ON_KEYS))
        missing = sorted({"segment", "source", "target", "kernel_size"} - set(add_on))
        if unknown or missing:
            raise ValueError(
                f"Argument `add_ons`: {name} has unknown keys {unknown} or misses keys "
                f"{missing}; the keys are {list(_ADD_ON_KEYS)}. Received: {name}={add_on!r}"
            )
        segment = validate_int(
            f"{name}['segment']", add_on["segment"], minimum=0, maximum=len(self.segments) - 1
        )
        num_layers = len(self.segments[segment])
        target = validate_int(
            f"{name}['target']", add_on["target"], minimum=0, maximum=num_layers - 1
        )
        source = _normalize_source(name, add_on["source"], segment, target)
        kernel_size = add_on["kernel_size"]
        if not _is_choice(kernel_size, ADD_ON_KERNEL_SIZES):
            raise ValueError(
                f"Argument `add_ons`: {name}['kernel_size'] must be one of "
                f"{list(ADD_ON_KERNEL_SIZES)}. Received: {name}['kernel_size']={kernel_size!r}"
            )
        density = validate_float(
            f"{name}['connection_density']",
            add_on.get("connection_density", 1.0),
            minimum=0.0,
            maximum=1.0,
            min_inclusive=False,
        )
        shape = (self.input_channels(segment, source), self.segments[segment][target]["filters"])
        mask = _normalize_connection_mask(name, add_on.get("connection_mask"), shape)
        return {
            "segment": segment,
            "source": source,
            "target": target,
            "kernel_size": int(kernel_size),
            "connection_density": density,
            "connection_mask": mask,
        }

    def _normalize_add_ons(self, add_ons):
        if add_ons is None:
            add_ons = ()
        if isinstance(add_ons, (str, bytes, dict)) or not isinstance(add_ons, (list, tuple)):
            raise ValueError(
                f"Argument `add_ons` must be a list of add-on dicts. Received: add_ons={add_ons!r}"
            )
        normalized = [self._normalize_add_on(index, add_on) for index, add_on in enumerate(add_ons)]
        seen = {}
        for index, add_on in enumerate(normalized):
            key = (add_on["segment"], add_on["target"], add_on["kernel_size"])
            if key in seen:
                raise ValueError(
                    "Argument `add_ons`: at most one add-on per target layer and kernel size "
                    f"(the genome has one gene per layer and size); add_ons[{seen[key]}] and "
                    f"add_ons[{index}] both target layer {key[1]} of segment {key[0]} with "
                    f"kernel size {key[2]}. Received: add_ons={add_ons!r}"
                )
            seen[key] = index
        return sorted(normalized, key=lambda a: (a["segment"], a["target"], a["kernel_size"]))

    def add_on_locations(self, kernel_sizes=ADD_ON_KERNEL_SIZES):
        """Every valid add-on without connection settings, in (segment, target, size, source) order.

        The search space of the paper's location search: for each existing layer
        and kernel size, a source is the segment's input or an earlier layer of
        the segment.
        """
        locations = []
        for segment, layers in enumerate(self.segments):
            for target in range(len(layers)):
                for kernel_size in kernel_sizes:
                    for source in [SEGMENT_INPUT] + list(range(target)):
                        locations.append(
                            {
                                "segment": segment,
                                "source": source,
                                "target": target,
                                "kernel_size": int(kernel_size),
                            }
                        )
        return locations

    @property
    def segment_sizes(self):
        """Number of convolutions per segment (``LocationSpace(segment_sizes=...)``)."""
        return tuple(len(layers) for layers in self.segments)

    def add_ons_from_locations(self, locations, connection_density=1.0):
        """Add-on dicts from ``(target_layer, source, kernel_size)`` triples.

        The convention of `tfemergent.search.LocationSpace.decode`:
        ``target_layer`` is the index of a convolution in network order (over all
        segments), ``source`` is 0 for the segment's input and ``s >= 1`` for the
        output of layer ``s - 1`` of the target's segment. Use with `with_add_ons`:
        ``spec.with_add_ons(spec.add_ons_from_locations(space.decode(genome)))``.

        Args:
            locations: list of ``(target_layer, source, kernel_size)``.
            connection_density: initial ``connection_density`` of every add-on.

        Returns:
            list of add-on dicts.
        """
        positions = [
            (segment, layer)
            for segment, layers in enumerate(self.segments)
            for layer in range(len(layers))
        ]
        add_ons = []
        for index, location in enumerate(locations):
            name = f"locations[{index}]"
            if not _is_list(location) or len(location) != 3:
                raise ValueError(
                    f"Argument `locations`: {name} must be (target_layer, source, kernel_size)."
                    f" Received: {name}={location!r}"
                )
            target_layer, source, kernel_size = location
            target_layer = validate_int(
                f"{name}[0]", target_layer, minimum=0, maximum=len(positions) - 1
            )
            segment, target = positions[target_layer]
            source = validate_int(f"{name}[1]", source, minimum=0, maximum=target)
            add_ons.append(
                {
                    "segment": segment,
                    "source": SEGMENT_INPUT if source == 0 else source - 1,
                    "target": target,
                    "kernel_size": kernel_size,
                    "connection_density": connection_density,
                }
            )
        return add_ons

    def with_add_ons(self, add_ons):
        """A copy of this spec with ``add_ons`` instead of its add-ons."""
        return type(self).from_config({**self.get_config(), "add_ons": list(add_ons)})

    def with_filters(self, filters):
        """A copy of this spec with ``filters[s][l]`` filters in layer ``l`` of segment ``s``.

        Connection masks of add-ons are dropped (their shapes change); the add-ons
        keep their other settings.
        """
        if len(filters) != len(self.segments) or any(
            len(row) != len(layers) for row, layers in zip(filters, self.segments)
        ):
            raise ValueError(
                "Argument `filters` must have one list per segment and one number per layer "
                f"({[len(layers) for layers in self.segments]}). Received: filters={filters!r}"
            )
        segments = [
            [{**layer, "filters": int(width)} for layer, width in zip(layers, row)]
            for layers, row in zip(self.segments, filters)
        ]
        add_ons = [{**add_on, "connection_mask": None} for add_on in self.add_ons]
        return type(self).from_config(
            {**self.get_config(), "segments": segments, "add_ons": add_ons}
        )

    # ------------------------------------------------------------------ names
    @staticmethod
    def conv_name(segment, layer):
        """Name of the convolution ``layer`` of ``segment``."""
        return f"conv_{segment}_{layer}"

    @staticmethod
    def add_on_name(add_on):
        """Name of the `AddOnConv2D` of an add-on dict."""
        return (
            f"add_on_{add_on['segment']}_{add_on['source']}_{add_on['target']}"
            f"_k{add_on['kernel_size']}"
        )

    @property
    def conv_names(self):
        """Names of the convolutions in network order."""
        return [
            self.conv_name(segment, layer)
            for segment, layers in enumerate(self.segments)
            for layer in range(len(layers))
        ]

    def layer_names(self):
        """Names of every layer of the built model (creation order)."""
        names = [INPUT_NAME]
        for segment, layers in enumerate(self.segments):
            for layer in range(len(layers)):
                names.append(self.conv_name(segment, layer))
                targeting = [
                    a for a in self.add_ons if (a["segment"], a["target"]) == (segment, layer)
                ]
                names.extend(self.add_on_name(add_on) for add_on in targeting)
                if targeting:
                    names.append(f"preactivation_{segment}_{layer}")
                names.append(f"relu_{segment}_{layer}")
            if segment < len(self.segments) - 1:
                names.append(f"pool_{segment}")
        return names + [GLOBAL_POOL_NAME, HEAD_NAME]

    # ------------------------------------------------------------------ building
    def _kernel_initializer(self, index):
        seed = None if self.seed is None else self.seed * 1000 + index
        if self.smooth_init:
            return SmoothKernel("he_normal", sigma=self.smoothing_sigma, seed=seed)
        return keras.initializers.HeNormal(seed=seed)

    def build(self, name="segment_cnn", dtype=None):
        """The functional `keras.Model` (not compiled).

        Args:
            name: name of the model.
            dtype: dtype policy of every layer (e.g. ``"mixed_float16"``), or None
                for the global policy.
        """
        inputs = keras.Input(self.input_shape, name=INPUT_NAME)
        x = inputs
        add_on_layers = []
        index = 0
        for segment, layers in enumerate(self.segments):
            segment_input = x
            outputs = []
            for layer, settings in enumerate(layers):
                conv = MaskedConv2D(
                    settings["filters"],
                    settings["kernel_size"],
                    kernel_initializer=self._kernel_initializer(index),
                    name=self.conv_name(segment, layer),
                    dtype=dtype,
                )
                index += 1
                summands = [conv(x)]
                for add_on in self.add_ons:
                    if (add_on["segment"], add_on["target"]) != (segment, layer):
                        continue
                    if add_on["source"] == SEGMENT_INPUT:
                        source = segment_input
                    else:
                        source = outputs[add_on["source"]]
                    number = len(add_on_layers)
                    add_on_layer = AddOnConv2D(
                        settings["filters"],
                        add_on["kernel_size"],
                        connection_density=add_on["connection_density"],
                        kernel_initializer=self._kernel_initializer(500 + number),
                        seed=None if self.seed is None else self.seed * 1000 + 900 + number,
                        name=self.add_on_name(add_on),
                        dtype=dtype,
                    )
                    summands.append(add_on_layer(source))
                    add_on_layers.append((add_on_layer, add_on))
                if len(summands) > 1:
                    pre = keras.layers.Add(
                        name=f"preactivation_{segment}_{layer}", dtype=dtype
                    )(summands)
                else:
                    pre = summands[0]
                x = keras.layers.ReLU(name=f"relu_{segment}_{layer}", dtype=dtype)(pre)
                outputs.append(x)
            if segment < len(self.segments) - 1:
                x = keras.layers.MaxPooling2D(2, name=f"pool_{segment}", dtype=dtype)(x)
        x = keras.layers.GlobalAveragePooling2D(name=GLOBAL_POOL_NAME, dtype=dtype)(x)
        head_seed = None if self.seed is None else self.seed * 1000 + 999
        outputs = keras.layers.Dense(
            self.num_classes,
            activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(seed=head_seed),
            name=HEAD_NAME,
            dtype=dtype,
        )(x)
        model = keras.Model(inputs, outputs, name=name)
        for add_on_layer, add_on in add_on_layers:
            if add_on["connection_mask"] is not None:
                add_on_layer.set_connection_mask(add_on["connection_mask"])
        return model

    @classmethod
    def from_model(cls, model):
        """The spec of a model built by `build` (widths, kernel sizes, add-ons, head).

        Weights are not part of the spec: the returned spec has no connection
        masks, ``smooth_init=False`` and no seed. Works on a model loaded from
        ``.keras`` too (the layer names carry the structure).
        """
        if not isinstance(model, keras.Model):
            raise ValueError(
                "Argument `model` must be a keras.Model built by SegmentCNN.build(). "
                f"Received: model={model!r}"
            )
        layers = {layer.name: layer for layer in model.layers}
        convs, add_ons = _model_layers(model)
        head = layers.get(HEAD_NAME)
        if not convs or not isinstance(head, keras.layers.Dense):
            segments, problem = None, (
                "it has no 'conv_{s}_{l}' MaskedConv2D layers or no Dense 'head'"
            )
        else:
            segments, problem = _segments_of(convs)
        if problem is None:
            try:
                spec = cls(
                    tuple(model.inputs[0].shape[1:]),
                    head.units,
                    segments,
                    add_ons=add_ons,
                    smooth_init=False,
                )
            except ValueError as error:
                problem = str(error)
        if problem is None and sorted(spec.layer_names()) != sorted(layers):
            problem = (
                f"its layers {sorted(layers)} differ from the layers "
                f"{sorted(spec.layer_names())} SegmentCNN.build() makes"
            )
        if problem is not None:
            raise ValueError(
                f"Model {model.name!r} is not a model built by SegmentCNN.build(): {problem}. "
                f"Received: model={model.name!r}"
            )
        return spec

    # ------------------------------------------------------------------ config
    def get_config(self):
        return {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "segments": copy.deepcopy(self.segments),
            "add_ons": copy.deepcopy(self.add_ons),
            "smooth_init": self.smooth_init,
            "smoothing_sigma": self.smoothing_sigma,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"SegmentCNN({self.get_config()!r})"
