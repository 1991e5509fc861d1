"""`PruningConfig`: the pruning stage of `NeuronHierarchyBuilder`."""

import dataclasses

from tfemergent.pruning.prune_kernels import GRANULARITIES, SCOPES
from tfemergent.utils.validation import validate_bool, validate_choice, validate_float, validate_int


@dataclasses.dataclass
class PruningConfig:
    """Which kernels the pruning stage removes (`tfemergent.pruning.prune_kernels`).

    The kernels (3 x 3 / 5 x 5) of lowest standard deviation are pruned.

    Args:
        fraction: fraction of kernels pruned, in [0, 1) (the paper: ~0.85).
        granularity: ``"kernel"`` (the paper's) or ``"channel"`` (whole output
            channels ranked by the mean standard deviation of their kernels,
            which the shrink after pruning removes: a smaller, faster network).
        scope: ``"layer"`` (default: every convolution loses the same
            fraction) or ``"model"`` (the paper's: one threshold for the whole
            network, which can leave a wide deep layer of a network without
            batch normalisation, whose He-scaled kernels have the smallest
            standard deviations, with one channel).
        channel_multiple: int >= 1, with ``granularity="channel"``: every kept
            width is rounded down to a multiple of it.
        rescale: bool. True: after pruning, every convolution is rescaled so
            that its output has the standard deviation it had before pruning
            (`tfemergent.pruning.restore_activation_scales`, measured on the
            first 1000 training images); for networks without batch
            normalisation, whose activations otherwise shrink layer after layer.

    Example:

    >>> from tfemergent.models.nhn import PruningConfig
    >>> PruningConfig(fraction=0.5, granularity="channel", channel_multiple=4).scope
    'layer'
    >>> PruningConfig(fraction=1.0)
    Traceback (most recent call last):
    ...
    ValueError: Argument `fraction` must be <= 0.999. Received: fraction=1.0
    """

    fraction: float = 0.85
    granularity: str = "kernel"
    scope: str = "layer"
    channel_multiple: int = 1
    rescale: bool = False

    def __post_init__(self):
        self.fraction = validate_float("fraction", self.fraction, minimum=0.0, maximum=0.999)
        self.granularity = validate_choice("granularity", self.granularity, GRANULARITIES)
        self.scope = validate_choice("scope", self.scope, SCOPES)
        self.channel_multiple = validate_int("channel_multiple", self.channel_multiple, minimum=1)
        if self.channel_multiple > 1 and self.granularity != "channel":
            raise ValueError(
                "Argument `channel_multiple` rounds the kept channels of "
                "granularity='channel'; use granularity='channel' or channel_multiple=1. "
                f"Received: channel_multiple={self.channel_multiple!r}, "
                f"granularity={self.granularity!r}"
            )
        self.rescale = validate_bool("rescale", self.rescale)

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        return cls(**config)
