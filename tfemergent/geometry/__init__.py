"""Geometries that place the neurons of a network in space (one public class per module)."""

from tfemergent.geometry.uplifted_lattice import UpliftedLattice

__all__ = ["UpliftedLattice"]
