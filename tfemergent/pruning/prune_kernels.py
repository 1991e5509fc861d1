"""Prune the 3 x 3 / 5 x 5 kernels of a model by their standard deviation."""

import numpy as np

from tfemergent.analysis.kernel_sensitivity import (
    kernel_sensitivity,
    prunable_layers,
    select_kernels,
    sensitivity_threshold,
)
from tfemergent.pruning.pruning_report import PruningReport


def prune_kernels(model, fraction=None, threshold=None, scope="model", layer_names=None):
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

    Args:
        model: a Keras model with masked convolutions (built).
        fraction: fraction of the kernels pruned after the call, in [0, 1].
        threshold: absolute standard-deviation threshold, >= 0.
        scope: ``"model"`` or ``"layer"`` (for ``fraction``).
        layer_names: optional names of the layers to prune (default: every
            prunable layer).

    Returns:
        A `tfemergent.pruning.PruningReport`.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    >>> report = prune_kernels(model, fraction=0.5)
    >>> report.num_pruned_kernels, report.num_kernels  # (1*4 + 4*4) kernels
    (10, 20)
    >>> int(model.get_layer("conv_0_1").kernel_mask.numpy().sum() +
    ...     model.get_layer("conv_0_0").kernel_mask.numpy().sum())
    10
    """
    layers = prunable_layers(model, layer_names)
    if not layers:
        raise ValueError(
            "The model has no prunable masked convolutions (MaskedConv2D / AddOnConv2D "
            f"with kernel_size >= 2). Received: model={model.name!r}"
        )
    masks = {layer.name: layer.pruning_mask.numpy() > 0.5 for layer in layers}
    sensitivities = {
        layer.name: kernel_sensitivity(layer.kernel.numpy(), masks[layer.name]) for layer in layers
    }
    keep = select_kernels(
        sensitivities, masks, fraction=fraction, threshold=threshold, scope=scope
    )
    if threshold is None:
        threshold = sensitivity_threshold(sensitivities, fraction, masks, scope=scope)
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
    )
