"""Spatial networks (Wołczyk et al.): the double-task network and `tfemergent run spatial-split`."""

from tfemergent.models.spatial.spatial_network import PAPER_HIDDEN_UNITS, build_spatial_network

__all__ = ["PAPER_HIDDEN_UNITS", "build_spatial_network"]
