"""Geometries of networks: where neurons, codes and receptive fields sit in space.

`UpliftedLattice` places a recursive network's neurons on a lattice (synaptic length);
`HierarchyLayout` places the image and the codes of a self-organising hierarchy on its
feature map; `receptive_fields` validates and indexes receptive fields on that map.

`HierarchyLayout` and `receptive_fields` are pure NumPy, so that `tfemergent.search`
(which builds on them) runs in evaluation workers without TensorFlow; `UpliftedLattice`
imports TensorFlow, so it is loaded on first use.
"""

from tfemergent.geometry import receptive_fields
from tfemergent.geometry.hierarchy_layout import HierarchyLayout

__all__ = ["HierarchyLayout", "UpliftedLattice", "receptive_fields"]


def __getattr__(name):
    if name == "UpliftedLattice":
        from tfemergent.geometry.uplifted_lattice import UpliftedLattice

        return UpliftedLattice
    raise AttributeError(f"module 'tfemergent.geometry' has no attribute {name!r}")
