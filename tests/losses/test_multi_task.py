import json

import keras
import numpy as np
import pytest

from tfemergent.losses import MultiTaskCrossEntropy
from tfemergent.metrics import TaskAccuracy


def _log_softmax(v):
    v = v - v.max(-1, keepdims=True)
    return v - np.log(np.exp(v).sum(-1, keepdims=True))


def test_cross_entropy_matches_numpy_and_ignores_missing_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 6)).astype("float32")  # two heads of 3 classes
    labels = np.array([[0, 2], [1, -1], [-1, 0], [2, 1], [0, 0]])
    heads = _log_softmax(logits.reshape(5, 2, 3))
    per_sample = []
    for i in range(5):
        per_sample.append(sum(-heads[i, t, labels[i, t]] for t in range(2) if labels[i, t] >= 0))
    loss = MultiTaskCrossEntropy(num_tasks=2)
    assert float(loss(labels, logits)) == pytest.approx(np.mean(per_sample), rel=1e-5)
    probabilities = np.exp(heads).reshape(5, 6)
    loss_p = MultiTaskCrossEntropy(num_tasks=2, from_logits=False)
    assert float(loss_p(labels, probabilities)) == pytest.approx(np.mean(per_sample), rel=1e-4)


def test_task_accuracy_counts_only_present_labels():
    metric = TaskAccuracy(task=0, num_tasks=2)
    scores = np.array([[2.0, 1.0, 0.0, 5.0], [0.0, 1.0, 0.0, 5.0], [0.0, 1.0, 0.0, 5.0]])
    metric.update_state(np.array([[0, 1], [0, 1], [-1, 1]]), scores)
    assert float(metric.result()) == pytest.approx(0.5)
    metric.reset_state()
    assert float(metric.result()) == 0.0


@pytest.mark.parametrize("obj", [MultiTaskCrossEntropy(3, ignore_label=-2), TaskAccuracy(1, 3)])
def test_config_round_trip(obj):
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(obj)))
    rebuilt = keras.saving.deserialize_keras_object(config)
    assert rebuilt.get_config() == obj.get_config()


@pytest.mark.parametrize(
    "factory, name",
    [
        (lambda: MultiTaskCrossEntropy(num_tasks=0), "num_tasks"),
        (lambda: MultiTaskCrossEntropy(from_logits="yes"), "from_logits"),
        (lambda: MultiTaskCrossEntropy(ignore_label=0), "ignore_label"),
        (lambda: TaskAccuracy(task=2, num_tasks=2), "task"),
    ],
)
def test_invalid_arguments(factory, name):
    with pytest.raises(ValueError, match="Received:") as info:
        factory()
    assert name in str(info.value)


def test_output_width_must_divide():
    with pytest.raises(ValueError, match="Received: y_pred.shape"):
        MultiTaskCrossEntropy(num_tasks=4)(np.zeros((1, 4)), np.zeros((1, 6), "float32"))
