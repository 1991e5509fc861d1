"""Pruning that really shrinks the model: any Keras 3 model, and Neuron Hierarchical Networks.

One engine walks the graph of any built functional or Sequential model and finds the
coupled channel groups (`channel_groups`). `prune_channels` zeroes the weakest channels
of a copy (criteria l1 / l2 / std or a callable, per layer or one global threshold) and
returns a `ChannelPruningReport`; `shrink` rebuilds any pruned model with physically
smaller layers (a plain Keras model stays a plain Keras model).
For NHN's masked convolutions the measure lives in `tfemergent.analysis`
(`kernel_sensitivity`, `select_kernels`): `prune_kernels` sets masks (kernel by kernel,
the paper's way, or whole channels so that `shrink` removes them), `dead_neurons` finds
the channels left without input or output, `shrink` rebuilds the smaller network,
`activation_scales` / `restore_activation_scales` give a pruned network without
normalisation layers its activation scale back.
`tfemergent.callbacks.PruningSchedule` prunes gradually during ``fit``.
"""

from tfemergent.pruning.activation_scale import activation_scales, restore_activation_scales
from tfemergent.pruning.channel_groups import channel_groups
from tfemergent.pruning.channel_pruning_report import ChannelPruningReport
from tfemergent.pruning.dead_neurons import dead_neurons
from tfemergent.pruning.prune_channels import prune_channels
from tfemergent.pruning.prune_kernels import prune_kernels
from tfemergent.pruning.pruning_report import PruningReport
from tfemergent.pruning.shrink import shrink

__all__ = [
    "ChannelPruningReport",
    "PruningReport",
    "activation_scales",
    "channel_groups",
    "dead_neurons",
    "prune_channels",
    "prune_kernels",
    "restore_activation_scales",
    "shrink",
]
