"""Models of tfemergent, one sub-package per paper.

``hierarchy/`` (self-organising hierarchy), ``urn/`` (unstructured recursive network),
``spatial/`` (spatial networks), ``reset/`` (Reset networks) and ``nhn/`` (neuron
hierarchical networks) each hold their models, their training procedure and the
experiment runner that ``tfemergent run`` calls. The public names are re-exported here.
"""

from tfemergent.geometry.hierarchy_layout import HierarchyLayout
from tfemergent.models.hierarchy import SelfOrganisingHierarchy
from tfemergent.models.nhn import AddOnSuperNetwork, LocationEvaluator, NeuronHierarchyBuilder, SegmentCNN
from tfemergent.models.reset import ResetNetwork
from tfemergent.models.spatial import PAPER_HIDDEN_UNITS, build_spatial_network
from tfemergent.models.urn import URNExtraction, extract_urn_network

__all__ = [
    "AddOnSuperNetwork",
    "HierarchyLayout",
    "LocationEvaluator",
    "NeuronHierarchyBuilder",
    "PAPER_HIDDEN_UNITS",
    "ResetNetwork",
    "SegmentCNN",
    "SelfOrganisingHierarchy",
    "URNExtraction",
    "build_spatial_network",
    "extract_urn_network",
]
