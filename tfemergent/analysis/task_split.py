"""Greedy split of one network into per-task sub-networks (Wołczyk et al.)."""

import dataclasses

import keras
import numpy as np

from tfemergent.utils.validation import (
    as_array,
    received,
    validate_int,
    validate_model,
    validate_real_array,
)


def greedy_assignment(kernels, output_assignment, num_tasks):
    """Assign every neuron of a chain of dense layers to a task, backwards.

    With the neurons of the last layer assigned by ``output_assignment``, each
    neuron ``n`` of the layer before is given the task it is most strongly
    connected to: ``g(n) = argmax_i sum_{m: g(m) = i} |a_nm|`` (ties go to the
    lower task index), and so on back to the first layer of the chain.

    Args:
        kernels: list of 2-D weight matrices ``(N_in, N_out)`` of consecutive
            layers; ``kernels[k + 1].shape[0] == kernels[k].shape[1]``.
        output_assignment: integer task per neuron of the last layer.
        num_tasks: number of tasks ``M``.

    Returns:
        A list with one int64 array per layer (same order as ``kernels``),
        the task of each of the layer's neurons.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import greedy_assignment
    >>> hidden = np.eye(2)                       # 2 -> 2, identity
    >>> output = np.array([[1.0, 0.2], [0.1, 3.0]])
    >>> [a.tolist() for a in greedy_assignment([hidden, output], [0, 1], 2)]
    [[0, 1], [0, 1]]
    """
    num_tasks = validate_int("num_tasks", num_tasks, minimum=1)
    kernels = [np.asarray(k) for k in kernels]
    for index, kernel in enumerate(kernels):
        if kernel.ndim != 2:
            raise ValueError(
                f"Every kernel must be 2-D (N_in, N_out). Received: kernels[{index}].shape="
                f"{kernel.shape}"
            )
    for index in range(len(kernels) - 1):
        if kernels[index + 1].shape[0] != kernels[index].shape[1]:
            raise ValueError(
                "Consecutive kernels must chain: kernels[k + 1].shape[0] == "
                f"kernels[k].shape[1]. Received: kernels[{index}].shape={kernels[index].shape}, "
                f"kernels[{index + 1}].shape={kernels[index + 1].shape}"
            )
    assignment = np.asarray(output_assignment, dtype=np.int64)
    if assignment.shape != (kernels[-1].shape[1],):
        raise ValueError(
            f"`output_assignment` needs one task per output neuron ({kernels[-1].shape[1]}). "
            f"Received: output_assignment.shape={assignment.shape}"
        )
    if assignment.min() < 0 or assignment.max() >= num_tasks:
        raise ValueError(
            f"Tasks must lie in [0, {num_tasks}). Received: output_assignment with values "
            f"{sorted(set(assignment.tolist()))}"
        )
    assignments = [assignment]
    # kernels[k] connects layer k-1 to layer k; assign layer k-1 from layer k.
    for kernel in kernels[:0:-1]:
        onehot = np.eye(num_tasks)[assignments[0]]  # (N_out, M)
        strength = np.abs(kernel) @ onehot  # (N_in, M)
        assignments.insert(0, np.argmax(strength, axis=1).astype(np.int64))
    return assignments


def _dense_chain(model):
    """The layers of ``model`` that own a 2-D ``kernel``, in model order."""
    return [
        layer
        for layer in model.layers
        if getattr(layer, "kernel", None) is not None and len(layer.kernel.shape) == 2
    ]


def _has_spatial_cost(layer):
    return (
        getattr(layer, "transport_cost", None) is not None
        or getattr(layer, "density_cost", None) is not None
    )


@dataclasses.dataclass(frozen=True)
class TaskSplit:
    """Result of `greedy_split`: the task of every neuron of the split layers.

    Attributes:
        layer_names: names of the split layers, first to last (the last one is
            the output layer).
        assignments: one int64 array per split layer, the task of each neuron.
        num_tasks: number of tasks.
        cross_task_fraction: per split layer after the first, the fraction of
            the absolute weight mass of its kernel that connects neurons of
            different tasks (0 for a perfectly separated layer).
    """

    layer_names: tuple
    assignments: tuple
    num_tasks: int
    cross_task_fraction: tuple

    def assignment(self, layer_name):
        """Task of each neuron of the split layer called ``layer_name``."""
        try:
            return self.assignments[self.layer_names.index(layer_name)]
        except ValueError:
            raise ValueError(
                f"Layer {layer_name!r} was not split. Expected one of {list(self.layer_names)}. "
                f"Received: layer_name={layer_name!r}"
            ) from None

    def subnetwork(self, model, task):
        """A copy of ``model`` in which only task ``task``'s neurons are active.

        Neurons of the split layers assigned to other tasks are disabled: their
        outgoing weights are set to zero, so they contribute nothing to the
        next layer (the paper's "we disable the neurons that were not assigned
        to it"). Layers before the split stay shared. The original model is not
        changed.

        Args:
            model: the model `greedy_split` was computed on (or one with the
                same architecture).
            task: the task index, ``0 <= task < num_tasks``.

        Returns:
            A new `keras.Model` with the masked weights.
        """
        task = validate_int("task", task, minimum=0, maximum=self.num_tasks - 1)
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        chain = {layer.name: layer for layer in _dense_chain(clone)}
        for name, next_name, assignment in zip(
            self.layer_names[:-1], self.layer_names[1:], self.assignments[:-1]
        ):
            if next_name not in chain:
                raise ValueError(
                    f"The model has no dense layer named {next_name!r}. "
                    f"Received: model with layers {list(chain)}"
                )
            kernel = chain[next_name].kernel
            keep = (assignment == task).astype(kernel.dtype)[:, None]
            kernel.assign(keras.ops.convert_to_numpy(kernel) * keep)
        return clone


def greedy_split(model, num_tasks=2, *, layers=None, num_layers=None, output_assignment=None):
    """Split the last dense layers of a model into per-task groups of neurons.

    Implements the backward greedy assignment of Wołczyk et al.: the output
    neurons are assigned by head (the default gives the first ``units /
    num_tasks`` outputs to task 0, the next to task 1...), and every neuron of
    an earlier split layer goes to the task it sends the most absolute weight
    to, ``g(n) = argmax_i sum_{n -> m, g(m) = i} |a_nm|``.

    Args:
        model: a built Keras model whose split layers own a 2-D ``kernel``
            (`SpatialDense` or `keras.layers.Dense`).
        num_tasks: number of tasks ``M`` (paper: 2).
        layers: names (or layer objects) of the layers to split, first to last;
            the last must be the output layer.
        num_layers: alternatively, split the last ``num_layers`` dense layers.
        output_assignment: task of each output neuron; default contiguous
            equal blocks.
        When neither ``layers`` nor ``num_layers`` is given, the split starts
        at the first layer that carries a spatial cost (the paper's set L).

    Returns:
        A `TaskSplit`.

    Raises:
        ValueError: when the layers cannot be determined or do not chain.

    Example:

    >>> import keras, numpy as np
    >>> from tfemergent.analysis import greedy_split
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6),
    ...                           keras.layers.Dense(4)])
    >>> split = greedy_split(model, num_tasks=2, num_layers=2)
    >>> split.assignments[-1].tolist()
    [0, 0, 1, 1]
    """
    model = validate_model("model", model)
    num_tasks = validate_int("num_tasks", num_tasks, minimum=1)
    chain = _dense_chain(model)
    if not chain:
        raise ValueError(
            "The model has no built layer with a 2-D kernel to split. "
            f"Received: model={model.name!r}"
        )
    if layers is not None and num_layers is not None:
        raise ValueError(
            "Pass either `layers` or `num_layers`, not both. "
            f"Received: layers={layers!r}, num_layers={num_layers!r}"
        )
    if layers is not None:
        names = [layer if isinstance(layer, str) else layer.name for layer in layers]
        by_name = {layer.name: layer for layer in chain}
        missing = [name for name in names if name not in by_name]
        if missing or not names:
            raise ValueError(
                f"`layers` must name dense layers of the model ({list(by_name)}). "
                f"Received: layers={names}"
            )
        selected = [by_name[name] for name in names]
    elif num_layers is not None:
        num_layers = validate_int("num_layers", num_layers, minimum=1, maximum=len(chain))
        selected = chain[-num_layers:]
    else:
        spatial = [i for i, layer in enumerate(chain) if _has_spatial_cost(layer)]
        if not spatial:
            raise ValueError(
                "No layer of the model carries a spatial cost, so the layers to split "
                "cannot be inferred; pass `layers=` or `num_layers=`. "
                f"Received: layers=None, num_layers=None for model {model.name!r}"
            )
        selected = chain[spatial[0]:]
    num_outputs = selected[-1].kernel.shape[1]
    if output_assignment is None:
        if num_outputs % num_tasks:
            raise ValueError(
                f"The output layer's {num_outputs} units do not divide into {num_tasks} "
                f"equal heads; pass `output_assignment`. Received: num_tasks={num_tasks}"
            )
        output_assignment = np.repeat(np.arange(num_tasks), num_outputs // num_tasks)
    kernels = [keras.ops.convert_to_numpy(layer.kernel) for layer in selected]
    assignments = greedy_assignment(kernels, output_assignment, num_tasks)
    cross = []
    for kernel, source, target in zip(kernels[1:], assignments[:-1], assignments[1:]):
        mass = np.abs(kernel)
        total = mass.sum()
        different = source[:, None] != target[None, :]
        cross.append(float(mass[different].sum() / total) if total > 0 else 0.0)
    return TaskSplit(
        layer_names=tuple(layer.name for layer in selected),
        assignments=tuple(assignments),
        num_tasks=num_tasks,
        cross_task_fraction=tuple(cross),
    )


def task_accuracies(scores, labels, num_tasks, ignore_label=-1):
    """Accuracy of each head of packed multi-task scores.

    Args:
        scores: array ``(N, num_tasks * C)`` of logits or probabilities.
        labels: int array ``(N, num_tasks)``; ``ignore_label`` marks absent labels.
        num_tasks: number of heads.
        ignore_label: value of absent labels.

    Returns:
        A numpy array of ``num_tasks`` accuracies (NaN for a task with no label).

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import task_accuracies
    >>> task_accuracies(np.array([[1., 0., 0., 1.]]), np.array([[0, 0]]), 2).tolist()
    [1.0, 0.0]
    """
    num_tasks = validate_int("num_tasks", num_tasks, minimum=1)
    ignore_label = validate_int("ignore_label", ignore_label)
    scores = validate_real_array(
        "scores", scores, ndim=2, expected="(N, num_tasks * C) with 2 dimensions"
    )
    if scores.shape[1] % num_tasks:
        raise ValueError(
            f"Argument `scores` must have num_tasks * C columns (num_tasks={num_tasks}). "
            f"Received: scores.shape={scores.shape}"
        )
    num_classes = scores.shape[1] // num_tasks
    label_array = as_array(labels)
    expected = (len(scores), num_tasks)
    if (
        label_array is None
        or label_array.dtype == bool
        or not np.issubdtype(label_array.dtype, np.integer)
        or (label_array.shape != expected
            and not (num_tasks == 1 and label_array.shape == (len(scores),)))
    ):
        raise ValueError(
            f"Argument `labels` must be integer labels of shape (N, num_tasks) = {expected}, "
            f"one per sample and task. {received('labels', labels, label_array)}"
        )
    labels = label_array.reshape(expected)
    bad = (labels != ignore_label) & ((labels < 0) | (labels >= num_classes))
    if bad.any():
        raise ValueError(
            f"Argument `labels` must be in [0, {num_classes}) (C = {num_classes} classes "
            f"per task) or ignore_label={ignore_label}. Received: labels with "
            f"{int(bad.sum())} values out of range, e.g. {int(labels[bad][0])}"
        )
    heads = scores.reshape(len(scores), num_tasks, -1).argmax(axis=-1)
    result = []
    for task in range(num_tasks):
        present = labels[:, task] != ignore_label
        hits = heads[present, task] == labels[present, task]
        result.append(float(hits.mean()) if present.any() else float("nan"))
    return np.array(result)


def _predict(model, x, batch_size):
    """Outputs of ``model`` on ``x`` in batches, eagerly (no tf.function per model)."""
    outputs = [
        keras.ops.convert_to_numpy(model(x[start:start + batch_size], training=False))
        for start in range(0, len(x), batch_size)
    ]
    return np.concatenate(outputs, axis=0)


def evaluate_task_split(model, split, x, y, *, batch_size=1024):
    """Accuracy of the full network and of each task's sub-network.

    Args:
        model: the trained model.
        split: a `TaskSplit` from `greedy_split`.
        x: inputs.
        y: int labels ``(N, num_tasks)``, ``-1`` where a sample has no label
            for a task.
        batch_size: prediction batch size.

    Returns:
        A dict with ``full`` and ``split`` (per-task accuracy arrays) and their
        means ``full_mean``, ``split_mean`` and ``drop = full_mean - split_mean``
        (the quantities of Table 1 of Wołczyk et al.).
    """
    num_tasks = split.num_tasks
    full = task_accuracies(_predict(model, x, batch_size), y, num_tasks)
    per_task = []
    for task in range(num_tasks):
        sub = split.subnetwork(model, task)
        scores = _predict(sub, x, batch_size)
        per_task.append(task_accuracies(scores, y, num_tasks)[task])
    split_acc = np.array(per_task)
    return {
        "full": full,
        "split": split_acc,
        "full_mean": float(np.nanmean(full)),
        "split_mean": float(np.nanmean(split_acc)),
        "drop": float(np.nanmean(full) - np.nanmean(split_acc)),
    }
