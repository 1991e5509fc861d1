"""Keras callbacks of tfemergent (TensorBoard structure logging, schedules)."""

from tfemergent.callbacks.hierarchy_tensorboard import HierarchyTensorBoard
from tfemergent.callbacks.proximal_l1_step import ProximalL1Step
from tfemergent.callbacks.pruning_schedule import PruningSchedule
from tfemergent.callbacks.reset_tensorboard import ResetTensorBoard
from tfemergent.callbacks.spatial_tensorboard import SpatialTensorBoard
from tfemergent.callbacks.urn_tensorboard import URNTensorBoard

__all__ = [
    "HierarchyTensorBoard",
    "ProximalL1Step",
    "PruningSchedule",
    "ResetTensorBoard",
    "SpatialTensorBoard",
    "URNTensorBoard",
]
