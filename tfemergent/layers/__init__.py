"""Layers of tfemergent (one public class per module)."""

from tfemergent.layers.recursive_urn_layer import RecursiveURNLayer
from tfemergent.layers.spatial_dense import SpatialDense

__all__ = ["RecursiveURNLayer", "SpatialDense"]
