"""Kernel pruning that really shrinks the model (Neuron Hierarchical Networks).

The measure lives in `tfemergent.analysis` (`kernel_sensitivity`, `select_kernels`);
this package holds the verbs: `prune_kernels` sets masks (kernel by kernel, the
paper's way, or whole channels so that `shrink` removes them), `dead_neurons` finds the
channels left without input or output, `shrink` rebuilds the smaller network,
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
