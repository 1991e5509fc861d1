"""Restore the activation scale of a pruned network without normalisation layers."""

import numpy as np

from tfemergent.analysis.kernel_sensitivity import prunable_layers
from tfemergent.utils.validation import validate_int


def _conv_layers(model, layer_names):
    layers = prunable_layers(model, layer_names)
    top_level = {id(layer) for layer in model.layers}
    nested = [layer.name for layer in layers if id(layer) not in top_level]
    if nested or not hasattr(model, "inputs") or not model.inputs:
        raise ValueError(
            "Argument `model` must be a functional keras.Model whose masked convolutions are "
            "its own top-level layers (as tfemergent.models.SegmentCNN builds). Received: "
            f"model {getattr(model, 'name', model)!r} with nested convolutions {nested}"
        )
    return layers


def _output_std(model, layer, images, batch_size):
    import keras

    probe = keras.Model(model.inputs, layer.output)
    outputs = probe.predict(images, batch_size=batch_size, verbose=0)
    return float(np.std(outputs))


def activation_scales(model, images, layer_names=None, batch_size=256):
    """Standard deviation of each masked convolution's output on ``images``.

    The reference for `restore_activation_scales`: measure the trained network
    before pruning, prune, then restore. The output of a convolution is its
    pre-activation (kernel and bias, before the ReLU or any add-on sum).

    Args:
        model: a functional keras.Model with masked convolutions
            (`tfemergent.layers.MaskedConv2D`, e.g. a `SegmentCNN`) as top-level
            layers.
        images: array of model inputs.
        layer_names: None (every prunable convolution, as `prune_kernels`) or
            a list of names.
        batch_size: int >= 1.

    Returns:
        dict ``{layer name: float}`` in model order.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> from tfemergent.pruning import activation_scales
    >>> model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    >>> images = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32")
    >>> scales = activation_scales(model, images)
    >>> list(scales), all(value > 0 for value in scales.values())
    (['conv_0_0', 'conv_0_1'], True)
    """
    batch_size = validate_int("batch_size", batch_size, minimum=1)
    images = np.asarray(images)
    return {
        layer.name: _output_std(model, layer, images, batch_size)
        for layer in _conv_layers(model, layer_names)
    }


def restore_activation_scales(model, images, target_scales, batch_size=256):
    """Rescale each convolution so that its output has its standard deviation before pruning.

    Pruning 85% of the kernels of a network without batch normalisation
    shrinks every pre-activation, and the shrinkage compounds with depth: in
    the 12-layer `SegmentCNN` on CIFAR-10 the ReLU outputs of the last segment
    fell to 1-2% of their scale before pruning, and retraining stayed at
    chance. Networks with batch normalisation (the paper's ENAS base) restore
    the scale by themselves. Here, in model order, each convolution's kernel
    and bias are multiplied by ``target / current``, ``current`` being the
    standard deviation of its output on ``images`` with the layers before it
    already rescaled; as the ReLU is positively homogeneous, this scales the
    output by exactly that factor. Pruned kernels stay zero; a layer whose
    output is constant (std 0) is left as it is (factor 1).

    Args:
        model: the pruned functional keras.Model (same layers as the one
            measured).
        images: array of model inputs (the same kind as for the targets).
        target_scales: dict ``{layer name: std}`` from `activation_scales`.
        batch_size: int >= 1.

    Returns:
        dict ``{layer name: factor applied}``.

    Raises:
        ValueError: if a target names no masked convolution of ``model`` or is
            not a positive finite number.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> from tfemergent.pruning import activation_scales
    >>> from tfemergent.pruning import restore_activation_scales
    >>> model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    >>> images = np.random.default_rng(0).normal(size=(16, 8, 8, 1)).astype("float32")
    >>> targets = activation_scales(model, images)
    >>> layer = model.get_layer("conv_0_1")
    >>> layer.kernel.assign(layer.kernel * 0.1)
    <...>
    >>> factors = restore_activation_scales(model, images, targets)
    >>> round(factors["conv_0_0"], 6), round(factors["conv_0_1"], 3)
    (1.0, 10.0)
    """
    batch_size = validate_int("batch_size", batch_size, minimum=1)
    if not isinstance(target_scales, dict) or not target_scales:
        raise ValueError(
            "Argument `target_scales` must be a non-empty dict {layer name: std} (from "
            f"activation_scales). Received: target_scales={target_scales!r}"
        )
    for name, value in target_scales.items():
        if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise ValueError(
                "Argument `target_scales` must map layer names to positive finite numbers. "
                f"Received: {name!r}: {value!r}"
            )
    layers = _conv_layers(model, list(target_scales))
    images = np.asarray(images)
    factors = {}
    for layer in layers:
        current = _output_std(model, layer, images, batch_size)
        factor = target_scales[layer.name] / current if current > 0 else 1.0
        layer.kernel.assign(layer.kernel * factor)
        if layer.bias is not None:
            layer.bias.assign(layer.bias * factor)
        factors[layer.name] = float(factor)
    return factors
