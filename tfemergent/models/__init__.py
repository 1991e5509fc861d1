"""Models of tfemergent: one module per paper."""

from tfemergent.models.add_on_super_network import AddOnSuperNetwork
from tfemergent.models.hierarchy_layout import HierarchyLayout
from tfemergent.models.location_evaluator import LocationEvaluator
from tfemergent.models.neuron_hierarchy_builder import NeuronHierarchyBuilder
from tfemergent.models.reset_network import ResetNetwork
from tfemergent.models.segment_cnn import SegmentCNN
from tfemergent.models.self_organising_hierarchy import SelfOrganisingHierarchy
from tfemergent.models.spatial_network import PAPER_HIDDEN_UNITS, build_spatial_network

__all__ = [
    "AddOnSuperNetwork",
    "HierarchyLayout",
    "LocationEvaluator",
    "NeuronHierarchyBuilder",
    "PAPER_HIDDEN_UNITS",
    "ResetNetwork",
    "SegmentCNN",
    "SelfOrganisingHierarchy",
    "build_spatial_network",
]
