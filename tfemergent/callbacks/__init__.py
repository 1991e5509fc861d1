"""Keras callbacks of tfemergent (TensorBoard structure logging, schedules)."""

from tfemergent.callbacks.spatial_tensorboard import SpatialTensorBoard

__all__ = ["SpatialTensorBoard"]
