"""Parameter counts of (pruned) models and the score of Neuron Hierarchical Networks."""

import math

import numpy as np

from tfemergent.layers.masked_convolution_base import MaskedConvolutionBase
from tfemergent.utils.validation import validate_float, validate_model
from tfemergent.utils import _private


def _leaf_layers(model):
    return [layer for layer in _private.nested_layers(model) if not _private.has_sublayers(layer)]


def count_parameters(model):
    """Stored and effective (unpruned) parameters of a model with masked convolutions.

    - ``"stored"``: every weight of the model's layers except the 0/1 masks of
      `tfemergent.layers.MaskedConv2D` / `tfemergent.layers.AddOnConv2D`
      (masks are structure, not parameters): what the model stores, pruned
      kernels included as zeros;
    - ``"effective"``: the same, but a masked convolution counts only the
      ``k * k`` weights of its kernels with mask 1 (plus its bias). This is the
      number of parameters of a pruned network in the sense of the paper ("more
      than 70% of the parameters are pruned").

    After `tfemergent.pruning.shrink` the two numbers get closer: shrinking
    removes whole channels, but kernels pruned inside kept channels stay
    stored (as zeros).

    Args:
        model: a built Keras model (or layer).

    Returns:
        dict ``{"stored": int, "effective": int}``.

    Example:

    >>> from tfemergent.models import SegmentCNN
    >>> from tfemergent.analysis import count_parameters
    >>> model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    >>> count_parameters(model)  # (9*1*4 + 4) + (9*4*4 + 4) + (4*2 + 2)
    {'stored': 198, 'effective': 198}
    >>> model.get_layer("conv_0_1").set_kernel_mask([[1, 0, 0, 0]] * 4)
    >>> count_parameters(model)["effective"]  # 12 of the 16 kernels of conv_0_1 pruned
    90
    """
    model = validate_model("model", model)
    stored = effective = 0
    for layer in _leaf_layers(model):
        if isinstance(layer, MaskedConvolutionBase):
            taps = layer.kernel_size * layer.kernel_size
            bias = 0 if layer.bias is None else int(np.prod(layer.bias.shape))
            stored += int(np.prod(layer.kernel.shape)) + bias
            effective += taps * int(np.sum(layer.pruning_mask.numpy() > 0.5)) + bias
            continue
        size = sum(int(np.prod(weight.shape)) for weight in layer.weights)
        stored += size
        effective += size
    return {"stored": stored, "effective": effective}


def performance_score(test_error, num_parameters):
    """The score of Neuron Hierarchical Networks: ``sqrt((e / 2)^2 + (n / 25)^2)``.

    ``e`` is the test error in percent and ``n`` the number of parameters in
    millions; lower is better (Table 1 of the paper: ENAS macro 2.28, NHN 1.88).

    Args:
        test_error: test error in percent (3.72 for 3.72 %, not 0.0372), in
            [0, 100].
        num_parameters: number of parameters, a whole number >= 1 (7.0e6 for
            7 million, not 7.0); taken literally, so a small count is a small
            model.

    Returns:
        float.

    Example:

    >>> from tfemergent.analysis import performance_score
    >>> round(performance_score(3.72, 7.0e6), 2)  # NHN in Table 1
    1.88
    """
    test_error = validate_float("test_error", test_error, minimum=0.0, maximum=100.0)
    num_parameters = validate_float("num_parameters", num_parameters, minimum=1.0)
    if num_parameters != math.floor(num_parameters):
        raise ValueError(
            "Argument `num_parameters` must be a whole number of parameters (not "
            f"millions), >= 1. Received: num_parameters={num_parameters!r}"
        )
    return math.sqrt((test_error / 2.0) ** 2 + (num_parameters / 1e6 / 25.0) ** 2)
