"""Models of tfemergent: one module per paper."""

from tfemergent.models.spatial_network import PAPER_HIDDEN_UNITS, build_spatial_network

__all__ = ["PAPER_HIDDEN_UNITS", "build_spatial_network"]
