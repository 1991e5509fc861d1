"""Pure analysis functions: numbers in, numbers out."""

from tfemergent.analysis.entropy import binned_entropy
from tfemergent.analysis.grid_usage import grid_usage
from tfemergent.analysis.kernel_sensitivity import (
    channel_sensitivity,
    kernel_sensitivities,
    kernel_sensitivity,
    prunable_layers,
    select_connections,
    select_kernels,
    sensitivity_threshold,
)
from tfemergent.analysis.parameter_count import count_parameters, performance_score
from tfemergent.analysis.task_split import (
    TaskSplit,
    evaluate_task_split,
    greedy_assignment,
    greedy_split,
    task_accuracies,
)
from tfemergent.analysis.topography import (
    clustering_index,
    dprime_maps,
    index_history,
    number_similarity,
    preference_map,
    topography_index,
)
from tfemergent.analysis.urn_structure import (
    URN_RESIDUALS,
    URNStructure,
    sorted_weight_matrix,
    urn_forward,
    urn_structure,
    urn_structure_of,
)

__all__ = [
    "TaskSplit",
    "URNStructure",
    "URN_RESIDUALS",
    "binned_entropy",
    "channel_sensitivity",
    "clustering_index",
    "count_parameters",
    "dprime_maps",
    "evaluate_task_split",
    "greedy_assignment",
    "greedy_split",
    "grid_usage",
    "index_history",
    "kernel_sensitivities",
    "kernel_sensitivity",
    "number_similarity",
    "performance_score",
    "preference_map",
    "prunable_layers",
    "select_connections",
    "select_kernels",
    "sensitivity_threshold",
    "sorted_weight_matrix",
    "task_accuracies",
    "topography_index",
    "urn_forward",
    "urn_structure",
    "urn_structure_of",
]
