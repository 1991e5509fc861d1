"""Layers of tfemergent (one public class per module)."""

from tfemergent.layers.add_on_conv2d import AddOnConv2D
from tfemergent.layers.masked_autoencoder_unit import MaskedAutoencoderUnit
from tfemergent.layers.masked_conv2d import MaskedConv2D
from tfemergent.layers.recursive_urn_layer import RecursiveURNLayer
from tfemergent.layers.reset_grid import ResetGrid
from tfemergent.layers.spatial_dense import SpatialDense

__all__ = [
    "AddOnConv2D",
    "MaskedAutoencoderUnit",
    "MaskedConv2D",
    "RecursiveURNLayer",
    "ResetGrid",
    "SpatialDense",
]
