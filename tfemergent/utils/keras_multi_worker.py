"""Makes Keras 3's ``model.fit`` work under a multi-worker `MultiWorkerMirroredStrategy`.

Keras 3.15's TensorFlow trainer cannot run ``fit`` under a multi-worker
``MultiWorkerMirroredStrategy``, whatever the model (keras-team/keras#20585,
tensorflow/tensorflow#72388, ray-project/ray#47464):

1. ``TensorFlowTrainer._maybe_symbolic_build`` reduces the first input batch, a
   structure, with ``strategy.reduce``, which the strategy cannot do across
   workers ("Attempt to convert a value (PerReplica...) with an unsupported
   type"). Only the batch's shapes are used: the patch takes the first local
   replica's batch instead.
2. ``reduce_per_replica(..., "auto")`` reduces each step's scalar logs with
   ``strategy.reduce("MEAN", value, axis=0)`` ("Invalid reduction dimension 0
   for input with 0 dimensions"). The patch reduces them with ``axis=None``:
   the mean over the replicas, as on one worker.

Neither patch changes a loss or a gradient, and both act only under a
multi-worker collective strategy: everywhere else the original Keras functions
run.

When the patches are applied: ``import tfemergent`` leaves Keras untouched.
Every tfemergent layer calls `patch_if_multi_worker` when it is created; under a
``MultiWorkerMirroredStrategy`` scope (where Keras wants the model built) that
applies the patches, so a user script that builds its model in
``strategy.scope()`` needs no change. Elsewhere it does nothing. A model made
only of Keras layers can be patched explicitly with
`patch_keras_multi_worker_fit`; set ``TFEMERGENT_PATCH_KERAS=0`` to keep the
layers from patching (the explicit call still patches).
"""

import contextlib
import os

import tensorflow as tf

from tfemergent.utils import _private

ENVIRONMENT_VARIABLE = "TFEMERGENT_PATCH_KERAS"
_originals = {}


def _is_multi_worker(trainer_module, strategy):
    return strategy is not None and trainer_module._collective_all_reduce_multi_worker(strategy)


def patch_keras_multi_worker_fit():
    """Apply the two patches (idempotent). Returns True if Keras is now patched.

    Returns False, and patches nothing, when this Keras lacks the functions
    patched (a Keras whose trainer was restructured, hopefully fixed).

    Example:

    >>> from tfemergent.utils import keras_multi_worker
    >>> keras_multi_worker.patch_keras_multi_worker_fit()
    True
    >>> keras_multi_worker.is_patched()
    True
    >>> keras_multi_worker.unpatch_keras_multi_worker_fit()
    >>> keras_multi_worker.is_patched()
    False
    """
    if _originals:
        return True
    internals = _private.keras_trainer_internals()
    if internals is None:
        return False
    tree, trainer_module = internals
    try:
        keras_build = trainer_module.TensorFlowTrainer._maybe_symbolic_build
        keras_reduce = trainer_module.reduce_per_replica
        trainer_module._collective_all_reduce_multi_worker  # noqa: B018 (must exist)
    except (ImportError, AttributeError):
        return False

    def maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = self._distribute_strategy
        if iterator is None or not _is_multi_worker(trainer_module, strategy):
            return keras_build(self, iterator=iterator, data_batch=data_batch)

        def first_local(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.experimental_local_results(value)[0]
            return value

        for _, _, batches in iterator:
            data_batch = tree.map_structure(first_local, next(batches))
            break
        with strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and _is_multi_worker(trainer_module, strategy):
            return tree.map_structure(
                lambda value: strategy.reduce("MEAN", value, axis=None), values
            )
        return keras_reduce(values, strategy, reduction)

    _originals.update(
        module=trainer_module, maybe_symbolic_build=keras_build, reduce_per_replica=keras_reduce
    )
    trainer_module.TensorFlowTrainer._maybe_symbolic_build = maybe_symbolic_build
    trainer_module.reduce_per_replica = reduce_per_replica
    return True


def unpatch_keras_multi_worker_fit():
    """Restore Keras's own functions (no-op when not patched)."""
    if not _originals:
        return
    module = _originals["module"]
    module.TensorFlowTrainer._maybe_symbolic_build = _originals["maybe_symbolic_build"]
    module.reduce_per_replica = _originals["reduce_per_replica"]
    _originals.clear()


def is_patched():
    """Whether the patches are in place."""
    return bool(_originals)


@contextlib.contextmanager
def keras_without_patches():
    """A context in which Keras runs unpatched (e.g. to probe whether Keras is fixed)."""
    was_patched = is_patched()
    unpatch_keras_multi_worker_fit()
    try:
        yield
    finally:
        if was_patched:
            patch_keras_multi_worker_fit()


def _disabled_by_environment():
    value = os.environ.get(ENVIRONMENT_VARIABLE, "1").strip().lower()
    return value in ("0", "false", "off", "no")


def patch_if_multi_worker():
    """Apply the patches if a `MultiWorkerMirroredStrategy` is the current strategy.

    Called by every tfemergent layer when it is created; cheap (one lookup of the
    current strategy) and a no-op outside such a scope or when
    ``TFEMERGENT_PATCH_KERAS`` is 0/false/off/no. Returns whether Keras is patched.

    Example:

    >>> from tfemergent.utils import keras_multi_worker
    >>> with keras_multi_worker.keras_without_patches():
    ...     keras_multi_worker.patch_if_multi_worker()  # no strategy in scope
    False
    """
    if _originals:
        return True
    if not tf.distribute.has_strategy() or _disabled_by_environment():
        return False
    if not isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return patch_keras_multi_worker_fit()


def patch_from_environment():
    """Apply the patches unless ``TFEMERGENT_PATCH_KERAS`` is 0/false/off/no.

    Unlike `patch_if_multi_worker`, this patches without a strategy in scope (for a
    script that wants Keras patched before it builds anything).
    """
    if _disabled_by_environment():
        return False
    return patch_keras_multi_worker_fit()
