"""Layers of tfemergent (one public class per module)."""

from tfemergent.layers.masked_autoencoder_unit import MaskedAutoencoderUnit
from tfemergent.layers.recursive_urn_layer import RecursiveURNLayer
from tfemergent.layers.reset_grid import ResetGrid
from tfemergent.layers.spatial_dense import SpatialDense

__all__ = ["MaskedAutoencoderUnit", "RecursiveURNLayer", "ResetGrid", "SpatialDense"]
