"""Kernel sensitivity (per-kernel standard deviation) and pruning thresholds."""

import math

import numpy as np

from tfemergent.layers.masked_convolution_base import MaskedConvolutionBase
from tfemergent.utils.validation import validate_choice, validate_float
from tfemergent.utils import _private

SCOPES = ("model", "layer")


def kernel_sensitivity(kernel, mask=None):
    """Standard deviation of every k x k kernel of a 2-D convolution kernel.

    Neuron Hierarchical Networks (after the dynamic network pruning it builds on)
    measure the importance of a kernel ``kernel[:, :, i, o]`` (input channel
    ``i`` to output channel ``o``) by the standard deviation of its ``k * k``
    weights: smoothly initialised kernels that stayed flat during training
    carry no texture and are pruned. The population standard deviation
    (``ddof=0``) is used; a masked (pruned) kernel counts as zero.

    Args:
        kernel: array ``(k, k, in, out)``.
        mask: optional 0/1 array ``(in, out)``; kernels with mask 0 get 0.

    Returns:
        float64 array ``(in, out)``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import kernel_sensitivity
    >>> kernel = np.zeros((3, 3, 1, 2))
    >>> kernel[:, :, 0, 0] = [[0, 0, 0], [0, 9, 0], [0, 0, 0]]  # textured
    >>> kernel[:, :, 0, 1] = 5.0                                 # flat
    >>> kernel_sensitivity(kernel)  # std of one 9 and eight 0s is sqrt(8)
    array([[2.82842712, 0.        ]])
    """
    values = np.asarray(kernel, dtype="float64")
    if values.ndim != 4:
        raise ValueError(
            "Argument `kernel` must be a 2-D convolution kernel (k, k, in, out). "
            f"Received: kernel with shape {values.shape}"
        )
    if mask is not None:
        mask = np.asarray(mask, dtype="float64")
        if mask.shape != values.shape[2:]:
            raise ValueError(
                f"Argument `mask` must have the shape (in, out) = {values.shape[2:]} of the "
                f"kernel. Received: mask with shape {mask.shape}"
            )
        values = values * mask[None, None]
    return values.reshape((-1,) + values.shape[2:]).std(axis=0)


def channel_sensitivity(kernel, mask=None):
    """Sensitivity of every output channel of a 2-D convolution: the mean std of its kernels.

    The channel-level version of `kernel_sensitivity`, used by
    ``tfemergent.pruning.prune_kernels(..., granularity="channel")``: output
    channel ``o`` of a convolution gets the mean, over its ``in`` incoming
    kernels ``kernel[:, :, i, o]``, of their standard deviations (population
    standard deviation, a masked kernel counts as 0). A channel whose input
    kernels stayed flat (smooth initialisation, no texture learnt), or lost
    most of them to earlier pruning, ranks low. The mean (not the sum) keeps
    the values of layers with different numbers of inputs on the scale of one
    kernel's standard deviation, comparable with `kernel_sensitivity`
    thresholds.

    Args:
        kernel: array ``(k, k, in, out)``.
        mask: optional 0/1 array ``(in, out)``; kernels with mask 0 count as 0.

    Returns:
        float64 array ``(out,)``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import channel_sensitivity
    >>> kernel = np.zeros((3, 3, 2, 2))
    >>> kernel[1, 1, :, 0] = 9.0   # two textured kernels: std sqrt(8) each
    >>> kernel[1, 1, 0, 1] = 9.0   # one textured kernel, one flat (std 0)
    >>> channel_sensitivity(kernel)
    array([2.82842712, 1.41421356])
    >>> channel_sensitivity(kernel, mask=[[0, 1], [1, 1]])  # first kernel of channel 0 pruned
    array([1.41421356, 1.41421356])
    """
    return kernel_sensitivity(kernel, mask).mean(axis=0)


def prunable_layers(model, layer_names=None):
    """The masked convolutions of ``model`` whose kernels can be pruned by sensitivity.

    Every `tfemergent.layers.MaskedConv2D` and `tfemergent.layers.AddOnConv2D`
    of the model (nested models included) with kernels of at least 2 x 2 taps;
    1 x 1 kernels have no spatial spread (their standard deviation is 0) and
    are left alone, as in the paper. With ``layer_names``, only those layers
    (every name must be such a layer).

    Returns:
        list of layers, in model order.
    """
    layers = [
        layer
        for layer in _private.nested_layers(model)
        if isinstance(layer, MaskedConvolutionBase) and layer.kernel_size >= 2
    ]
    if layer_names is None:
        return layers
    if isinstance(layer_names, str):
        layer_names = [layer_names]
    by_name = {layer.name: layer for layer in layers}
    unknown = [name for name in layer_names if name not in by_name]
    if unknown:
        raise ValueError(
            f"Argument `layer_names` names layers that are not prunable masked convolutions "
            f"(k >= 2) of the model: {unknown}; the prunable layers are {sorted(by_name)}. "
            f"Received: layer_names={list(layer_names)!r}"
        )
    wanted = set(layer_names)
    return [layer for layer in layers if layer.name in wanted]


def kernel_sensitivities(model, layer_names=None):
    """`kernel_sensitivity` of every prunable layer of a model (see `prunable_layers`).

    Returns:
        dict ``layer name -> float64 array (in, out)``; pruned kernels are 0.
    """
    layers = prunable_layers(model, layer_names)
    if not layers:
        raise ValueError(
            "The model has no prunable masked convolutions (MaskedConv2D / AddOnConv2D "
            f"with kernel_size >= 2). Received: model={model.name!r}"
        )
    return {
        layer.name: kernel_sensitivity(layer.kernel.numpy(), layer.pruning_mask.numpy())
        for layer in layers
    }


def _check_inputs(sensitivities, masks):
    if not isinstance(sensitivities, dict) or not sensitivities:
        raise ValueError(
            "Argument `sensitivities` must be a non-empty dict layer name -> array (in, out) "
            f"(see kernel_sensitivities). Received: sensitivities={sensitivities!r}"
        )
    values = {name: np.asarray(value, dtype="float64") for name, value in sensitivities.items()}
    if masks is None:
        live = {name: np.ones(value.shape, bool) for name, value in values.items()}
    else:
        if not isinstance(masks, dict) or set(masks) != set(values):
            raise ValueError(
                "Argument `masks` must be a dict with the same layer names as "
                f"`sensitivities` ({sorted(values)}). Received: masks with keys "
                f"{sorted(masks) if isinstance(masks, dict) else masks!r}"
            )
        live = {}
        for name, value in values.items():
            mask = np.asarray(masks[name])
            if mask.shape != value.shape:
                raise ValueError(
                    f"Argument `masks`: the mask of {name!r} must have the shape "
                    f"{value.shape} of its sensitivities. Received: shape={mask.shape}"
                )
            live[name] = mask.astype(bool)
    return values, live


def _keep_by_fraction(values, live, fraction):
    """Keep flags and threshold: prune ``round(fraction * N)`` kernels, pruned ones first."""
    flat = np.concatenate([value.ravel() for value in values])
    flat_live = np.concatenate([value.ravel() for value in live])
    num_prune = int(math.floor(fraction * flat.size + 0.5))
    num_prune = max(num_prune, int(np.sum(~flat_live)))  # never un-prune
    # Already pruned first, then by increasing sensitivity; ties in model order.
    order = np.lexsort((np.arange(flat.size), np.where(flat_live, flat, -np.inf), flat_live))
    keep = np.ones(flat.size, bool)
    keep[order[:num_prune]] = False
    threshold = float(flat[keep].min()) if keep.any() else math.inf
    pieces, start = [], 0
    for value in values:
        pieces.append(keep[start : start + value.size].reshape(value.shape))
        start += value.size
    return pieces, threshold


def select_kernels(sensitivities, masks=None, *, fraction=None, threshold=None, scope="model"):
    """Which kernels to keep, from a target fraction or an absolute threshold.

    - ``threshold``: keep the kernels whose sensitivity is ``>= threshold``
      (and that are not pruned already).
    - ``fraction``: prune exactly ``round(fraction * N)`` of the ``N`` kernels
      in scope: the kernels pruned already (``masks`` 0) first, then those of
      lowest sensitivity (ties in layer order, then row-major ``(in, out)``).
      If more than that many are pruned already, none is added (a pruned
      kernel is never restored).

    ``scope="model"`` (default) ranks all kernels of all layers together, so one
    standard-deviation threshold applies to the whole network, as the paper's
    "standard deviation thresholds" over all 3 x 3 and 5 x 5 kernels; layers
    whose kernels have a smaller spread (e.g. more inputs under He
    initialisation) then lose more. ``scope="layer"`` prunes the fraction in
    every layer separately. ``threshold`` is absolute and ignores ``scope``.

    Args:
        sensitivities: dict layer name -> array ``(in, out)`` (see
            `kernel_sensitivities`).
        masks: optional dict layer name -> 0/1 array ``(in, out)``, the current
            masks.
        fraction: fraction of kernels pruned after the selection, in [0, 1].
        threshold: sensitivity threshold, >= 0.
        scope: ``"model"`` or ``"layer"`` (for ``fraction``).

    Returns:
        dict layer name -> bool array ``(in, out)``, True = keep.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import select_kernels
    >>> sensitivities = {"a": np.array([[0.1, 0.5]]), "b": np.array([[0.2], [0.9]])}
    >>> keep = select_kernels(sensitivities, fraction=0.5)  # prune 2 of 4
    >>> keep["a"], keep["b"]
    (array([[False,  True]]), array([[False], [ True]]))
    >>> select_kernels(sensitivities, threshold=0.3)["a"]
    array([[False,  True]])
    """
    values, live = _check_inputs(sensitivities, masks)
    scope = validate_choice("scope", scope, SCOPES)
    if (fraction is None) == (threshold is None):
        raise ValueError(
            "Give exactly one of `fraction` (of kernels to prune) and `threshold` (of "
            f"sensitivity). Received: fraction={fraction!r}, threshold={threshold!r}"
        )
    names = list(values)
    if threshold is not None:
        threshold = validate_float("threshold", threshold, minimum=0.0)
        return {name: live[name] & (values[name] >= threshold) for name in names}
    fraction = validate_float("fraction", fraction, minimum=0.0, maximum=1.0)
    if scope == "model":
        pieces, _ = _keep_by_fraction(
            [values[n] for n in names], [live[n] for n in names], fraction
        )
        return dict(zip(names, pieces))
    return {
        name: _keep_by_fraction([values[name]], [live[name]], fraction)[0][0] for name in names
    }


def sensitivity_threshold(sensitivities, fraction, masks=None, scope="model"):
    """The sensitivity threshold that prunes ``fraction`` of the kernels.

    The smallest sensitivity among the kernels that `select_kernels` keeps
    with this ``fraction`` (``inf`` when it keeps none): keeping the live
    kernels with sensitivity ``>= threshold`` gives the same selection unless
    several kernels share the threshold value.

    Returns:
        float for ``scope="model"``; dict layer name -> float for
        ``scope="layer"``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import sensitivity_threshold
    >>> sensitivity_threshold({"a": np.array([[0.1, 0.5], [0.3, 0.2]])}, 0.5)
    0.3
    """
    values, live = _check_inputs(sensitivities, masks)
    scope = validate_choice("scope", scope, SCOPES)
    fraction = validate_float("fraction", fraction, minimum=0.0, maximum=1.0)
    names = list(values)
    if scope == "model":
        return _keep_by_fraction([values[n] for n in names], [live[n] for n in names], fraction)[1]
    return {name: _keep_by_fraction([values[name]], [live[name]], fraction)[1] for name in names}


def select_connections(sensitivity, density):
    """The connections of an add-on to keep: the most sensitive fraction ``density``.

    The direction search of Neuron Hierarchical Networks keeps a sparse set of
    (input channel, output channel) connections of each add-on, chosen by
    standard-deviation thresholds after a short training of the dense add-on:
    the ``max(1, round(density * in * out))`` connections (half rounds up, as
    the initial draw of `tfemergent.layers.AddOnConv2D`) of highest
    ``sensitivity`` are kept, ties broken in row-major ``(in, out)`` order.

    Args:
        sensitivity: array ``(in, out)``, e.g. `kernel_sensitivity` of the
            add-on's kernel.
        density: fraction of connections kept, in (0, 1] (the paper: 0.1).

    Returns:
        bool array ``(in, out)``, True = keep.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import select_connections
    >>> select_connections(np.array([[0.3, 0.9, 0.1], [0.5, 0.5, 0.2]]), density=0.5)
    array([[False,  True, False],
           [ True,  True, False]])
    """
    values = np.asarray(sensitivity, dtype="float64")
    if values.ndim != 2 or values.size == 0:
        raise ValueError(
            "Argument `sensitivity` must be a non-empty array (in, out), one value per "
            f"connection. Received: sensitivity with shape {values.shape}"
        )
    density = validate_float("density", density, minimum=0.0, maximum=1.0, min_inclusive=False)
    count = max(1, int(math.floor(density * values.size + 0.5)))
    flat = values.ravel()
    # Decreasing sensitivity; among equal values the lower row-major index first.
    order = np.lexsort((np.arange(flat.size), -flat))
    keep = np.zeros(flat.size, bool)
    keep[order[:count]] = True
    return keep.reshape(values.shape)
