"""Losses of tfemergent."""

from tfemergent.losses.multi_task_cross_entropy import MultiTaskCrossEntropy, split_task_logits

__all__ = ["MultiTaskCrossEntropy", "split_task_logits"]
