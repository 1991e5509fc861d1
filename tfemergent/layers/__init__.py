"""Layers of tfemergent (one public class per module)."""

from tfemergent.layers.spatial_dense import SpatialDense

__all__ = ["SpatialDense"]
