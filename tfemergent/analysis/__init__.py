"""Pure analysis functions: numbers in, numbers out."""

from tfemergent.analysis.entropy import binned_entropy
from tfemergent.analysis.task_split import (
    TaskSplit,
    evaluate_task_split,
    greedy_assignment,
    greedy_split,
    task_accuracies,
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
    "evaluate_task_split",
    "greedy_assignment",
    "greedy_split",
    "sorted_weight_matrix",
    "task_accuracies",
    "urn_forward",
    "urn_structure",
    "urn_structure_of",
]
