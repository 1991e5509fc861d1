"""Accuracy of one classification head of a multi-task output."""

import keras
import tensorflow as tf

from tfemergent.losses.multi_task_cross_entropy import split_task_logits
from tfemergent.utils.validation import validate_int


@keras.saving.register_keras_serializable(package="tfemergent")
class TaskAccuracy(keras.metrics.Metric):
    """Accuracy of head ``task`` of an output packing ``num_tasks`` heads.

    Companion of `tfemergent.losses.MultiTaskCrossEntropy`: the output of
    width ``num_tasks * C`` holds ``num_tasks`` consecutive blocks of ``C``
    scores; ``y_true`` has one label per task, ``ignore_label`` where a sample
    has no label for the task (such samples are not counted).

    Args:
        task: index of the head, ``0 <= task < num_tasks``.
        num_tasks: number of heads, >= 1.
        ignore_label: the label value that marks a missing task label.
        name, dtype: as in `keras.metrics.Metric`; the default name is
            ``"task_<task>_accuracy"``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.metrics import TaskAccuracy
    >>> metric = TaskAccuracy(task=1, num_tasks=2)
    >>> scores = np.array([[0.9, 0.1, 0.2, 0.8], [0.9, 0.1, 0.7, 0.3]], "float32")
    >>> metric.update_state(np.array([[0, 1], [0, 1]]), scores)
    >>> float(metric.result())
    0.5
    """

    def __init__(self, task=0, num_tasks=2, ignore_label=-1, name=None, dtype=None):
        self.num_tasks = validate_int("num_tasks", num_tasks, minimum=1)
        self.task = validate_int("task", task, minimum=0, maximum=self.num_tasks - 1)
        self.ignore_label = validate_int("ignore_label", ignore_label, maximum=-1)
        super().__init__(name=name or f"task_{self.task}_accuracy", dtype=dtype)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = split_task_logits(tf.convert_to_tensor(y_pred), self.num_tasks)[:, self.task]
        labels = tf.reshape(tf.cast(y_true, tf.int64), (-1, self.num_tasks))[:, self.task]
        present = tf.cast(tf.not_equal(labels, self.ignore_label), self.dtype)
        if sample_weight is not None:
            present = present * tf.reshape(tf.cast(sample_weight, self.dtype), (-1,))
        hits = tf.cast(tf.equal(tf.argmax(scores, axis=-1), labels), self.dtype)
        self.correct.assign_add(tf.reduce_sum(hits * present))
        self.count.assign_add(tf.reduce_sum(present))

    def result(self):
        return tf.math.divide_no_nan(self.correct, self.count)

    def get_config(self):
        return {
            **super().get_config(),
            "task": self.task,
            "num_tasks": self.num_tasks,
            "ignore_label": self.ignore_label,
        }
