"""Pure analysis functions: numbers in, numbers out."""

from tfemergent.analysis.task_split import (
    TaskSplit,
    evaluate_task_split,
    greedy_assignment,
    greedy_split,
    task_accuracies,
)

__all__ = [
    "TaskSplit",
    "evaluate_task_split",
    "greedy_assignment",
    "greedy_split",
    "task_accuracies",
]
