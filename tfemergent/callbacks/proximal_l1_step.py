"""Proximal (soft-threshold) L1 step on the weights of recursive networks."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.layers.recursive_urn_layer import RecursiveURNLayer
from tfemergent.utils.validation import validate_float, validate_int
from tfemergent.utils import _private

WEIGHT_NAMES = ("kernel", "bias")


@keras.saving.register_keras_serializable(package="tfemergent")
class ProximalL1Step(keras.callbacks.Callback):
    """Soft-thresholds the weights of `RecursiveURNLayer`s so L1 yields exact zeros.

    Gradient descent on an L1 penalty makes weights oscillate around zero
    instead of reaching it. After every ``every`` training batches this
    callback applies the proximal operator of ``l1 * |w|`` to the selected
    weights of every `RecursiveURNLayer` in the model (nested models
    included)::

        w <- sign(w) * max(|w| - lambda, 0),   lambda = l1 * learning_rate

    where ``learning_rate`` is the optimizer's current learning rate (read
    after the batch's update, schedules evaluated at the optimizer's step
    count). ``lambda`` does not grow with ``every``: with ``every > 1`` scale
    ``l1`` yourself if the shrinkage per batch should stay the same. Weights
    that are zero stay zero. It is off unless added to ``model.fit(callbacks=...)``;
    typically ``l1`` equals the ``c_W`` of the kernel's L1 regularizer (or
    replaces it).

    Optionally ``threshold`` adds a hard threshold: after the soft step, every
    weight with ``|w| < threshold`` is set to zero (``l1=0`` gives a pure hard
    threshold).

    Args:
        l1: non-negative L1 strength (per unit learning rate).
        every: apply after every this many batches (>= 1).
        weights: ``"kernel"``, ``"bias"`` or a list of them: which weights of
            each `RecursiveURNLayer` to threshold.
        threshold: non-negative hard threshold, or None (default: no hard
            threshold).

    Example:

    >>> import keras, numpy as np
    >>> from tfemergent.layers import RecursiveURNLayer
    >>> from tfemergent.callbacks import ProximalL1Step
    >>> model = keras.Sequential([keras.Input((3,)), RecursiveURNLayer(
    ...     num_neurons=8, num_iterations=2, input_dim=3, output_dim=2, seed=0)])
    >>> model.compile(keras.optimizers.SGD(0.1), "mse")
    >>> _ = model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0,
    ...               callbacks=[ProximalL1Step(l1=1.0)])
    >>> int(np.sum(model.layers[0].kernel.numpy() == 0)) > 0
    True
    """

    def __init__(self, l1, every=1, weights="kernel", threshold=None):
        super().__init__()
        self.l1 = validate_float("l1", l1, minimum=0.0)
        self.every = validate_int("every", every, minimum=1)
        names = [weights] if isinstance(weights, str) else weights
        if not isinstance(names, (list, tuple)) or not names or any(
            name not in WEIGHT_NAMES for name in names
        ):
            raise ValueError(
                f"Argument `weights` must be one of {list(WEIGHT_NAMES)} or a non-empty "
                f"list of them. Received: weights={weights!r}"
            )
        if len(set(names)) != len(names):
            raise ValueError(f"Argument `weights` repeats a name. Received: weights={weights!r}")
        self.weights = weights if isinstance(weights, str) else list(weights)
        self._weight_names = tuple(names)
        self.threshold = validate_float("threshold", threshold, minimum=0.0, allow_none=True)
        self._num_batches = 0

    def target_variables(self):
        """The variables this callback thresholds (in model layer order)."""
        variables = []
        for layer in _private.nested_layers(self.model):
            if not isinstance(layer, RecursiveURNLayer) or not layer.built:
                continue
            for name in self._weight_names:
                variable = getattr(layer, name, None)
                if variable is not None:
                    variables.append(variable)
        return variables

    def current_learning_rate(self):
        """The optimizer's current learning rate as a float."""
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                "ProximalL1Step needs a compiled model (it reads the optimizer's "
                "learning rate). Received: model.optimizer=None"
            )
        return float(np.asarray(keras.ops.convert_to_numpy(optimizer.learning_rate)))

    def apply(self):
        """Threshold the target variables now (what happens every ``every`` batches)."""
        shrinkage = self.l1 * self.current_learning_rate() if self.l1 > 0 else 0.0
        for variable in self.target_variables():
            value = tf.convert_to_tensor(variable)
            if shrinkage > 0:
                value = tf.sign(value) * tf.maximum(
                    tf.abs(value) - tf.cast(shrinkage, value.dtype), tf.zeros_like(value)
                )
            if self.threshold is not None:
                value = tf.where(
                    tf.abs(value) < tf.cast(self.threshold, value.dtype),
                    tf.zeros_like(value),
                    value,
                )
            variable.assign(value)

    def on_train_begin(self, logs=None):
        self._num_batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self._num_batches += 1
        if self._num_batches % self.every == 0:
            self.apply()

    def get_config(self):
        return {
            "l1": self.l1,
            "every": self.every,
            "weights": self.weights,
            "threshold": self.threshold,
        }
