"""Neuron hierarchical networks: the base CNN, the add-on search and `tfemergent run nhn`."""

from tfemergent.models.nhn.add_on_super_network import AddOnSuperNetwork
from tfemergent.models.nhn.location_evaluator import LocationEvaluator
from tfemergent.models.nhn.neuron_hierarchy_builder import NeuronHierarchyBuilder
from tfemergent.models.nhn.pruning_config import PruningConfig
from tfemergent.models.nhn.search_config import SearchConfig
from tfemergent.models.nhn.segment_cnn import SegmentCNN
from tfemergent.models.nhn.training_config import TrainingConfig

__all__ = [
    "AddOnSuperNetwork",
    "LocationEvaluator",
    "NeuronHierarchyBuilder",
    "PruningConfig",
    "SearchConfig",
    "SegmentCNN",
    "TrainingConfig",
]
