"""Metrics of tfemergent."""

from tfemergent.metrics.task_accuracy import TaskAccuracy

__all__ = ["TaskAccuracy"]
