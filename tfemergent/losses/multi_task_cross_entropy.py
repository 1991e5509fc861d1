"""Cross-entropy for several classification heads packed in one output."""

import keras
import tensorflow as tf

from tfemergent.utils.validation import validate_bool, validate_int


def split_task_logits(y_pred, num_tasks):
    """Reshape ``(batch, num_tasks * C)`` outputs to ``(batch, num_tasks, C)``.

    Args:
        y_pred: tensor or array ``(batch, num_tasks * C)``.
        num_tasks: number of heads, an integer >= 1 that divides the width.

    >>> import numpy as np
    >>> from tfemergent.losses.multi_task_cross_entropy import split_task_logits
    >>> tuple(split_task_logits(np.zeros((3, 4), "float32"), 2).shape)
    (3, 2, 2)
    """
    num_tasks = validate_int("num_tasks", num_tasks, minimum=1)
    if isinstance(y_pred, (str, bytes)) or y_pred is None:
        raise ValueError(
            "Argument `y_pred` must be a tensor or array (batch, num_tasks * C). "
            f"Received: y_pred={y_pred!r}"
        )
    y_pred = tf.convert_to_tensor(y_pred)
    if y_pred.shape.rank != 2:
        raise ValueError(
            "Argument `y_pred` must have 2 dimensions (batch, num_tasks * C). "
            f"Received: y_pred.shape={y_pred.shape}"
        )
    width = y_pred.shape[-1]
    if width is None or width == 0 or width % num_tasks:
        raise ValueError(
            f"The output width must be a multiple of num_tasks={num_tasks}. "
            f"Received: y_pred.shape={y_pred.shape}"
        )
    return tf.reshape(y_pred, (-1, num_tasks, width // num_tasks))


@keras.saving.register_keras_serializable(package="tfemergent")
class MultiTaskCrossEntropy(keras.losses.Loss):
    """Sum of softmax cross-entropies of ``num_tasks`` heads in one output.

    The model's output of width ``num_tasks * C`` is read as ``num_tasks``
    consecutive blocks of ``C`` logits (or probabilities), one classification
    head each, as in the double-task experiment of Wołczyk et al. (a 20-unit
    output split into two 10-way softmaxes). ``y_true`` has one integer label
    per task; a label equal to ``ignore_label`` means that the sample has no
    label for that task (the sequential double task) and adds nothing.

    Args:
        num_tasks: number of heads, >= 1.
        from_logits: whether ``y_pred`` holds logits (default) or
            probabilities.
        ignore_label: the label value that marks a missing task label.
        reduction, name, dtype: as in `keras.losses.Loss`.

    Example:

    >>> import numpy as np
    >>> from tfemergent.losses import MultiTaskCrossEntropy
    >>> loss = MultiTaskCrossEntropy(num_tasks=2)
    >>> logits = np.zeros((1, 4), "float32")          # two 2-way heads
    >>> round(float(loss(np.array([[0, 1]]), logits)), 4)   # 2 * log(2)
    1.3863
    >>> round(float(loss(np.array([[0, -1]]), logits)), 4)  # one head only
    0.6931
    """

    def __init__(
        self,
        num_tasks=2,
        from_logits=True,
        ignore_label=-1,
        reduction="sum_over_batch_size",
        name="multi_task_cross_entropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.num_tasks = validate_int("num_tasks", num_tasks, minimum=1)
        self.from_logits = validate_bool("from_logits", from_logits)
        self.ignore_label = validate_int("ignore_label", ignore_label, maximum=-1)

    def call(self, y_true, y_pred):
        logits = split_task_logits(y_pred, self.num_tasks)
        labels = tf.reshape(tf.cast(y_true, tf.int32), (-1, self.num_tasks))
        present = tf.not_equal(labels, self.ignore_label)
        safe_labels = tf.where(present, labels, tf.zeros_like(labels))
        if self.from_logits:
            per_task = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=safe_labels, logits=logits
            )
        else:
            probabilities = tf.clip_by_value(logits, 1e-7, 1.0)
            picked = tf.gather(probabilities, safe_labels, axis=-1, batch_dims=2)
            per_task = -tf.math.log(picked)
        return tf.reduce_sum(tf.where(present, per_task, tf.zeros_like(per_task)), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_tasks": self.num_tasks,
                "from_logits": self.from_logits,
                "ignore_label": self.ignore_label,
            }
        )
        return config
