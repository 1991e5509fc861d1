"""Choose the weakest channels of any functional Keras model and zero them."""

import math

import keras
import numpy as np

from tfemergent.pruning._rebuild import PRODUCERS, Rebuild, graph_of, layer_costs
from tfemergent.pruning.channel_pruning_report import ChannelPruningReport
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

CRITERIA = ("l1", "l2", "std")
SCOPES = ("layer", "model")


def _out_last_kernel(node):
    """The producer's kernel with its output channels on the last axis (numpy)."""
    layer, kind = node.layer, node.kind
    if kind == "separable":
        kernel = layer.pointwise_kernel
    elif hasattr(layer, "masked_kernel"):
        kernel = layer.masked_kernel
    else:
        kernel = layer.kernel
    kernel = np.asarray(keras.ops.convert_to_numpy(kernel), "float64")
    if kind == "transposed":
        kernel = np.moveaxis(kernel, -2, -1)
    return kernel


def _scores(kernel, criterion):
    """One score per output channel (last axis) of ``kernel``."""
    if callable(criterion):
        scores = np.asarray(criterion(kernel), "float64").reshape(-1)
        if scores.shape != (kernel.shape[-1],):
            raise ValueError(
                "A callable `criterion` must return one score per output channel "
                f"({kernel.shape[-1]}) of the kernel it is given (shape {kernel.shape}). "
                f"Received: a result of shape {np.shape(scores)}"
            )
        return scores
    flat = kernel.reshape(-1, kernel.shape[-1])
    if criterion == "l1":
        return np.abs(flat).mean(axis=0)
    if criterion == "l2":
        return np.sqrt((flat ** 2).mean(axis=0))
    if kernel.ndim <= 2:  # std: of each column of a dense kernel
        return flat.std(axis=0)
    spatial = tuple(range(kernel.ndim - 2))
    return kernel.std(axis=spatial).mean(axis=0)


def _criterion_name(criterion):
    if callable(criterion):
        return getattr(criterion, "__name__", type(criterion).__name__)
    return criterion


def zero_masks(graph, pruned):
    """``[(variable, 0/1 array)]``: what to multiply to zero everything touching ``pruned``.

    ``pruned`` is a bool per global channel of ``graph``: producers' output columns and
    biases, normalisation scale, shift and moving mean, depthwise kernels and biases,
    readers' input rows (and the masks of masked convolutions) there.
    """
    result = []
    for node in graph.nodes:
        layer, kind = node.layer, node.kind
        if kind not in PRODUCERS + ("batch_norm", "depthwise"):
            continue
        out_mask = pruned[graph.channels_of(node.outputs[0])]
        in_mask = pruned[graph.channels_of(node.inputs[0])]
        if not out_mask.any() and not in_mask.any():
            continue
        for variable in layer.weights:
            name = variable.name.split("/")[-1]
            value = np.ones(tuple(variable.shape), "float32")
            if kind in ("conv", "dense"):
                if value.ndim >= 2:
                    value[..., in_mask, :] = 0
                    value[..., out_mask] = 0
                else:
                    value[out_mask] = 0
            elif kind == "transposed":
                if value.ndim >= 2:
                    value[..., out_mask, :] = 0
                    value[..., in_mask] = 0
                else:
                    value[out_mask] = 0
            elif kind == "separable":
                multiplier = int(layer.depth_multiplier)
                if name == "depthwise_kernel":
                    value[..., in_mask, :] = 0
                elif name == "pointwise_kernel":
                    value[..., np.repeat(in_mask, multiplier), :] = 0
                    value[..., out_mask] = 0
                else:
                    value[out_mask] = 0
            elif kind == "depthwise":
                if value.ndim >= 2:
                    value[..., in_mask, :] = 0
                else:
                    value[out_mask] = 0
            elif kind == "batch_norm":
                if name in ("gamma", "beta", "moving_mean"):
                    value[out_mask] = 0
            if not value.all():
                result.append((variable, value))
    return result


def apply_zero_masks(masks):
    """Multiply every variable by its mask (after pruning, or after an optimizer step)."""
    for variable, mask in masks:
        variable.assign(variable * keras.ops.convert_to_tensor(mask, variable.dtype))


def prune_channels(model, fraction, criterion="l1", scope="layer", round_to=1, exclude=()):
    """A copy of ``model`` in which the weakest channels carry exact zeros, and a report.

    Channels are pruned by coupled groups (`channel_groups`: a residual ``Add``
    joins the channels of its inputs, a squeeze-and-excitation ``Multiply`` its
    gate's, depthwise convolutions pass them on, ...). Channel ``j`` of a group is
    pruned in every layer of the group at once: every producing layer (convolution,
    dense, separable or transposed convolution) gets a zero output column and bias
    entry, every following `BatchNormalization` a zero scale, shift and moving mean
    (so the zero passes through the normalisation and the activation), every
    depthwise convolution zero kernels and bias there, and every layer reading the
    channel through weights zero input rows. `tfemergent.layers.MaskedConv2D` and
    `tfemergent.layers.AddOnConv2D` get their mask entries zeroed too. The pruned
    channels then have no reader, so `shrink` removes them exactly; with ReLU-like
    activations (``f(0) = 0``) the zeros also stay zero when the copy trains
    (their gradients are exactly zero), so the copy and its shrunk model train alike.

    Fixed groups (model inputs and outputs, layers the engine does not understand:
    custom layers, `Lambda`, shared layers, nested models; groups touching a layer in
    ``exclude``) are never pruned; the report lists them and why.

    Ranking. The score of a group's channel is the mean, over the group's producing
    layers, of a score of that layer's output channel computed from its kernel:
    ``"l1"`` the mean absolute weight (L1 norm / fan-in), ``"l2"`` the root mean
    square weight, ``"std"`` Neuron Hierarchical Networks' sensitivity (the
    standard deviation of every ``k x k`` kernel, averaged over the input channels;
    for a `Dense` kernel, the standard deviation of its column), or a callable
    ``criterion(kernel) -> scores`` given the kernel (numpy, output channels on the
    last axis) and returning one score per output channel. Lowest scores go first,
    ties by channel index.

    Scope. ``"layer"`` (the default, the safe one): every prunable group loses
    ``floor(fraction * n)`` of its ``n`` channels. ``"model"``: the
    ``floor(fraction * N)`` lowest-scoring of all ``N`` prunable channels, one
    global threshold, which can empty a group: that is refused with a
    ``ValueError`` (use ``"layer"``, a smaller fraction or ``exclude``). Then every
    group keeps a multiple of ``round_to`` channels (rounded up, at least
    ``round_to``, at most ``n``): CPU kernels run faster on widths that are
    multiples of 8 or 16.

    Args:
        model: a built functional or Sequential `keras.Model` (not modified).
        fraction: fraction of the prunable channels to prune, in [0, 1).
        criterion: ``"l1"``, ``"l2"``, ``"std"`` or a callable (see above).
        scope: ``"layer"`` or ``"model"``.
        round_to: int >= 1, kept channels of a group rounded up to a multiple of it.
        exclude: names of layers whose channel groups are left alone.

    Returns:
        ``(pruned_model, report)``: a new model of the same architecture (same
        layer classes, names and widths, weights copied, then the chosen channels
        zeroed; not compiled) and a `tfemergent.pruning.ChannelPruningReport`
        whose "after" counts are those of ``shrink(pruned_model)``.

    Example:

    >>> import keras
    >>> from tfemergent.pruning import prune_channels
    >>> inputs = keras.Input((8, 8, 3))
    >>> x = keras.layers.Conv2D(8, 3, padding="same", name="conv")(inputs)
    >>> x = keras.layers.BatchNormalization(name="bn")(x)
    >>> x = keras.layers.ReLU(name="relu")(x)
    >>> x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(x))
    >>> pruned, report = prune_channels(model, 0.25, round_to=2)
    >>> len(report.pruned["conv"])
    2
    >>> report.layers["conv"]["channels_after"], report.layers["bn"]["channels_after"]
    (6, 6)
    >>> from tfemergent.pruning import shrink
    >>> shrink(pruned).get_layer("conv").filters
    6
    """
    graph = graph_of(model)
    arguments = _validate(model, fraction, criterion, scope, round_to, exclude)
    copy = Rebuild(graph, np.ones(graph.num_channels, bool), None).model()
    report, _ = prune_in_place(copy, *arguments)
    return copy, report


def _validate(model, fraction, criterion, scope, round_to, exclude):
    fraction = validate_float("fraction", fraction, minimum=0.0)
    if fraction >= 1.0:
        raise ValueError(
            "Argument `fraction` must be in [0, 1) (a group always keeps a channel). "
            f"Received: fraction={fraction!r}"
        )
    if not callable(criterion):
        criterion = validate_choice("criterion", criterion, CRITERIA)
    scope = validate_choice("scope", scope, SCOPES)
    round_to = validate_int("round_to", round_to, minimum=1)
    if isinstance(exclude, str):
        exclude = (exclude,)
    if not isinstance(exclude, (list, tuple, set, frozenset)):
        raise ValueError(
            "Argument `exclude` must be a list of layer names. "
            f"Received: exclude={exclude!r}"
        )
    names = {layer.name for layer in model.layers}
    if not all(isinstance(name, str) for name in exclude) or any(
            name not in names for name in exclude):
        raise ValueError(
            "Argument `exclude` must name layers of the model; "
            f"{[n for n in exclude if n not in names]} are not among them. "
            f"Received: exclude={list(exclude)!r}"
        )
    return fraction, criterion, scope, round_to, tuple(exclude)


def prune_in_place(model, fraction, criterion="l1", scope="layer", round_to=1, exclude=()):
    """`prune_channels` on ``model`` itself: ``(report, masks)`` (`zero_masks` of the
    pruned channels, to re-apply after training steps). Arguments already validated.
    Channels already zero score 0 and go first, so a growing fraction counts them."""
    graph = graph_of(model)
    excluded = set(exclude)
    scores = {}  # group number -> array of channel scores
    reasons = [list(r) for r in graph.group_fixed]
    for number in range(len(graph.group_size)):
        if reasons[number]:
            continue
        touched = excluded.intersection(graph.group_layers(number))
        if touched:
            reasons[number].append(f"excluded ({', '.join(sorted(touched))})")
            continue
        offset = graph.offset[number]
        total = np.zeros(graph.group_size[number])
        count = np.zeros(graph.group_size[number])
        for node in graph.producers(number):
            channels = graph.channels_of(node.outputs[0]) - offset
            total[channels] += _scores(_out_last_kernel(node), criterion)
            count[channels] += 1
        if count.any():
            scores[number] = total / np.maximum(count, 1)
        else:
            reasons[number].append("no producing layer")
    pruned = np.zeros(graph.num_channels, bool)
    remove = {}
    if scope == "layer":
        for number, values in scores.items():
            remove[number] = int(math.floor(fraction * len(values)))
        order = {number: np.argsort(values, kind="stable") for number, values in scores.items()}
    else:
        pairs = [(value, number, index) for number, values in scores.items()
                 for index, value in enumerate(values)]
        pairs.sort()
        budget = int(math.floor(fraction * len(pairs)))
        chosen = {}
        for _, number, index in pairs[:budget]:
            chosen.setdefault(number, []).append(index)
        for number, indices in chosen.items():
            if len(indices) == len(scores[number]):
                layers = graph.group_layers(number)
                raise ValueError(
                    f"scope='model' would prune every channel of the group of {layers[0]!r} "
                    f"({len(indices)} channels: {layers}): its channels all score below the "
                    "global threshold. Use scope='layer', a smaller fraction, or exclude one "
                    f"of those layers. Received: fraction={fraction}, scope='model'"
                )
        remove = {number: len(chosen.get(number, [])) for number in scores}
        order = {number: np.array(chosen.get(number, []) + [
            i for i in np.argsort(scores[number], kind="stable")
            if i not in set(chosen.get(number, []))], int) for number in scores}
    report_pruned = {}
    for number, values in scores.items():
        size = len(values)
        kept = size - remove[number]
        kept = min(size, max(round_to, round_to * math.ceil(kept / round_to)))
        indices = np.sort(order[number][: size - kept])
        pruned[graph.offset[number] + indices] = True
        if len(indices):
            report_pruned[graph.producers(number)[0].layer.name] = indices.tolist()
    masks = zero_masks(graph, pruned)
    apply_zero_masks(masks)
    graph = graph_of(model)
    alive, values = graph.solve()
    rows = layer_costs(Rebuild(graph, alive, values))
    fixed_groups = [
        {"layers": graph.group_layers(number), "num_channels": int(graph.group_size[number]),
         "reasons": reasons[number]}
        for number in range(len(graph.group_size)) if reasons[number]
    ]
    report = ChannelPruningReport(
        layers=rows, fixed_groups=fixed_groups, pruned=report_pruned, fraction=fraction,
        criterion=_criterion_name(criterion), scope=scope, round_to=round_to,
    )
    return report, masks


def zeroed_channels(model):
    """``(graph, pruned)``: the prunable channels whose producers write exact zeros.

    A channel of a prunable group counts as pruned when every producing layer of the
    group has an all-zero output column (kernel and bias) there: the state that
    `prune_channels` leaves in the weights, so a model saved mid-schedule (``.keras``)
    gives its pruned channels back.
    """
    graph = graph_of(model)
    pruned = np.zeros(graph.num_channels, bool)
    for number in range(len(graph.group_size)):
        producers = graph.producers(number)
        if graph.group_fixed[number] or not producers:
            continue
        zero = np.ones(graph.group_size[number], bool)
        for node in producers:
            kernel = _out_last_kernel(node)
            column_zero = ~(kernel.reshape(-1, kernel.shape[-1]) != 0).any(axis=0)
            bias = getattr(node.layer, "bias", None)
            if bias is not None:
                column_zero &= np.asarray(keras.ops.convert_to_numpy(bias)) == 0
            channels = graph.channels_of(node.outputs[0]) - graph.offset[number]
            zero[channels] &= column_zero
        pruned[graph.offset[number]:graph.offset[number + 1]] = zero
    return graph, pruned
