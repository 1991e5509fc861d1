"""Prune the 3 x 3 / 5 x 5 kernels of a model by their standard deviation."""

import numpy as np

from tfemergent.analysis.kernel_sensitivity import (
    SCOPES,
    kernel_sensitivity,
    prunable_layers,
    select_kernels,
    sensitivity_threshold,
)
from tfemergent.pruning._channel_selection import ChannelSelection
from tfemergent.pruning.pruning_report import PruningReport
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

GRANULARITIES = ("kernel", "channel")


def prune_kernels(
    model,
    fraction=None,
    threshold=None,
    scope="model",
    layer_names=None,
    granularity="kernel",
    channel_multiple=1,
):
    """Mask the kernels of lowest standard deviation in a model's masked convolutions.

    The pruning step of Neuron Hierarchical Networks: the sensitivity of each
    k x k kernel (input channel -> output channel) of every
    `tfemergent.layers.MaskedConv2D` and `tfemergent.layers.AddOnConv2D` with
    ``k >= 2`` is its standard deviation
    (`tfemergent.analysis.kernel_sensitivity`); kernels below a threshold get
    mask 0 (their stored weights are zeroed and stay zero under training).
    Either ``fraction`` sets how many kernels are pruned in total after the call
    (counting those pruned before; kernels are never restored), over the
    whole model (``scope="model"``, one threshold for all layers) or in every
    layer (``scope="layer"``); or ``threshold`` prunes every kernel with a
    standard deviation below it. See `tfemergent.analysis.select_kernels`.

    The paper prunes about 85% of the 3 x 3 and 5 x 5 kernels after training,
    then retrains. `tfemergent.pruning.shrink` then builds the physically
    smaller network; `tfemergent.callbacks.PruningSchedule` prunes gradually
    during ``fit``.

    Granularity. ``granularity="kernel"`` (default) is the paper's pruning:
    kernels are masked one by one, so most channels keep some kernels and
    `shrink` removes few of them; the kernels pruned inside kept channels stay
    stored as zeros and the dense convolutions of the shrunk model are barely
    cheaper. ``granularity="channel"`` masks whole output channels of the
    convolutions of a `tfemergent.models.SegmentCNN` model instead: every
    kernel into the channel (its convolution's and its add-ons') and out of it
    (the next convolution's and the add-ons that read it), so that `shrink`
    removes the channel and every pruned kernel leaves the shrunk model.
    Channels are ranked by `tfemergent.analysis.channel_sensitivity` (the mean
    standard deviation of their incoming kernels, computed once at the start
    of the call); every convolution keeps at least one channel with an input
    kernel, and ``layer_names`` names the convolutions whose channels may be
    pruned.

    - With ``fraction``, whole channels are pruned until at least
      ``round(fraction * N)`` of the ``N`` kernels of the model's masked
      convolutions are masked (kernels pruned before count). ``scope="model"``
      takes the channels of lowest sensitivity over the whole model (one
      threshold); this concentrates on layers whose kernels have a small
      spread, typically the wide late layers, which hold many parameters but
      little of the compute. ``scope="layer"`` makes every convolution lose
      the same share of its channels, its least sensitive ones (the ``r``-th
      weakest channel of a convolution with ``F`` filters goes at the share
      ``(r + 1) / F``; shares in increasing order, ties in network order),
      which shrinks the compute of every layer alike.
    - With ``threshold``, every channel whose sensitivity is below it.
    - With ``channel_multiple=m > 1``, every convolution then loses its next
      weakest channels until it keeps a multiple of ``m`` channels with an
      input (or keeps what it has if that is ``m`` or fewer): CPU convolutions
      (oneDNN) work on blocks of 8 or 16 channels, so widths that are
      multiples of them run faster per multiply-add (``benchmarks/RESULTS.md``,
      section "shrink"). The pruned fraction then exceeds ``fraction``.

    The two granularities compose: pruning channels first, then kernels
    inside the kept channels (a second call with ``granularity="kernel"`` and
    a larger ``fraction``) prunes the paper's way what the channel step left.

    Args:
        model: a Keras model with masked convolutions (built); for
            ``granularity="channel"`` a model built by
            `tfemergent.models.SegmentCNN` (or loaded from one).
        fraction: fraction of the kernels pruned after the call, in [0, 1].
        threshold: absolute standard-deviation threshold, >= 0 (of kernels,
            or of channels' mean kernel standard deviation).
        scope: ``"model"`` or ``"layer"`` (for ``fraction``).
        layer_names: optional names of the layers to prune (default: every
            prunable layer; for ``granularity="channel"``, every convolution).
        granularity: ``"kernel"`` or ``"channel"`` (see above).
        channel_multiple: int >= 1, for ``granularity="channel"``: the kept
            channels of every convolution are rounded down to a multiple of it
            (see above; 1: no rounding).

    Returns:
        A `tfemergent.pruning.PruningReport` (with ``granularity="channel"``,
        of every prunable layer of the model).

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> from tfemergent.pruning import prune_kernels
    >>> model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    >>> report = prune_kernels(model, fraction=0.5)
    >>> report.num_pruned_kernels, report.num_kernels  # (1*4 + 4*4) kernels
    (10, 20)
    >>> int(model.get_layer("conv_0_1").kernel_mask.numpy().sum() +
    ...     model.get_layer("conv_0_0").kernel_mask.numpy().sum())
    10

    Whole channels, so that `shrink` removes them:

    >>> from tfemergent.pruning import shrink
    >>> model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    >>> report = prune_kernels(model, fraction=0.5, granularity="channel")
    >>> report.num_pruned_kernels  # >= 10: three channels of conv_0_1, 4 input kernels each
    12
    >>> model.get_layer("conv_0_1").kernel_mask.numpy()[0]
    array([0., 1., 0., 0.], dtype=float32)
    >>> small = shrink(model)
    >>> small.get_layer("conv_0_0").filters, small.get_layer("conv_0_1").filters
    (4, 1)
    """
    layers = prunable_layers(model, None if granularity == "channel" else layer_names)
    if not layers:
        raise ValueError(
            "The model has no prunable masked convolutions (MaskedConv2D / AddOnConv2D "
            f"with kernel_size >= 2). Received: model={model.name!r}"
        )
    granularity = validate_choice("granularity", granularity, GRANULARITIES)
    channel_multiple = validate_int("channel_multiple", channel_multiple, minimum=1)
    if channel_multiple > 1 and granularity != "channel":
        raise ValueError(
            "Argument `channel_multiple` rounds the kept channels of granularity='channel'; "
            "kernel pruning keeps every channel that has a kernel. Use "
            f"granularity='channel' or channel_multiple=1. Received: "
            f"channel_multiple={channel_multiple}, granularity={granularity!r}"
        )
    if granularity == "kernel":
        masks = {layer.name: layer.pruning_mask.numpy() > 0.5 for layer in layers}
        sensitivities = {
            layer.name: kernel_sensitivity(layer.kernel.numpy(), masks[layer.name])
            for layer in layers
        }
        keep = select_kernels(
            sensitivities, masks, fraction=fraction, threshold=threshold, scope=scope
        )
        if threshold is None:
            threshold = sensitivity_threshold(sensitivities, fraction, masks, scope=scope)
    else:
        if (fraction is None) == (threshold is None):
            raise ValueError(
                "Give exactly one of `fraction` (of kernels to prune) and `threshold` (of "
                f"sensitivity). Received: fraction={fraction!r}, threshold={threshold!r}"
            )
        scope = validate_choice("scope", scope, SCOPES)
        selection = ChannelSelection(model, layer_names)
        if threshold is not None:
            threshold = selection.by_threshold(
                validate_float("threshold", threshold, minimum=0.0)
            )
        else:
            fraction = validate_float("fraction", fraction, minimum=0.0, maximum=1.0)
            threshold = selection.by_fraction(fraction, scope)
        if channel_multiple > 1:
            selection.round_widths(channel_multiple)
            if fraction is not None:
                threshold = selection.thresholds(scope)
        by_name = {layer.name: layer for layer in layers}
        for name, mask in selection.masks.items():
            if name not in by_name:  # a 1 x 1 masked convolution: masked, not reported
                model.get_layer(name).set_pruning_mask(mask)
        keep = {layer.name: selection.masks[layer.name] for layer in layers}
    rows = {}
    for layer in layers:
        layer.set_pruning_mask(keep[layer.name])
        taps = layer.kernel_size * layer.kernel_size
        num_kernels = int(keep[layer.name].size)
        num_pruned = int(np.sum(~keep[layer.name]))
        rows[layer.name] = {
            "num_kernels": num_kernels,
            "num_pruned_kernels": num_pruned,
            "num_parameters": taps * num_kernels,
            "num_pruned_parameters": taps * num_pruned,
        }
    num_model_parameters = int(sum(np.prod(weight.shape) for weight in model.trainable_weights))
    return PruningReport(
        layers=rows,
        threshold=float(threshold) if not isinstance(threshold, dict) else threshold,
        scope=scope,
        num_model_parameters=num_model_parameters,
        granularity=granularity,
    )
