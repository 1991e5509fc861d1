"""Gradual kernel pruning during ``fit``: a polynomial schedule of the pruned fraction."""

import keras

from tfemergent.analysis.kernel_sensitivity import SCOPES
from tfemergent.pruning.prune_kernels import GRANULARITIES, prune_kernels
from tfemergent.utils.validation import validate_choice, validate_float, validate_int


@keras.saving.register_keras_serializable(package="tfemergent")
class PruningSchedule(keras.callbacks.Callback):
    """Prunes the kernels of a model's masked convolutions gradually while it trains.

    At the start of every epoch ``e`` from ``begin_epoch`` to ``end_epoch``
    (every ``frequency`` epochs, and always at ``end_epoch``) the callback runs
    `tfemergent.pruning.prune_kernels` with the target fraction of the
    polynomial schedule (as in Zhu & Gupta's gradual pruning and
    tensorflow-model-optimization's ``PolynomialDecay``)::

        p = (e - begin_epoch) / (end_epoch - begin_epoch)    (p = 1 if equal)
        fraction(e) = final_fraction + (initial_fraction - final_fraction) * (1 - p) ** power

    so pruning is fast at first and slows down as the fraction approaches
    ``final_fraction``; the model trains with each new mask until the next
    step (train beyond ``end_epoch`` to recover). Pruned kernels are never
    restored: the fraction counts every kernel pruned so far. The kernels are
    ranked by standard deviation over the whole model (``scope="model"``) or in
    every layer (``scope="layer"``). With ``granularity="channel"`` whole
    output channels of a `tfemergent.models.SegmentCNN` model are pruned
    instead (ranked by the mean standard deviation of their kernels), so that
    `tfemergent.pruning.shrink` removes them; see
    `tfemergent.pruning.prune_kernels`.

    ``reports`` holds ``(epoch, fraction, PruningReport)`` for every step.
    Neuron Hierarchical Networks prune about 85% of the 3 x 3 and 5 x 5 kernels
    once after training; ``begin_epoch == end_epoch`` does that at the start of
    one epoch.

    Args:
        final_fraction: fraction of kernels pruned at ``end_epoch``, in [0, 1].
        begin_epoch: first pruning epoch (0-based), >= 0.
        end_epoch: last pruning epoch, >= ``begin_epoch``.
        initial_fraction: fraction at ``begin_epoch``, in [0, ``final_fraction``].
        power: exponent of the schedule, > 0 (1 = linear).
        frequency: prune every this many epochs, >= 1.
        scope: ``"model"`` or ``"layer"``.
        layer_names: names of the layers to prune, or None for every prunable
            masked convolution.
        granularity: ``"kernel"`` (the paper's) or ``"channel"``.
        channel_multiple: int >= 1, for ``granularity="channel"``: every
            convolution keeps a multiple of this many channels (see
            `tfemergent.pruning.prune_kernels`).

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> from tfemergent.callbacks import PruningSchedule
    >>> model = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> schedule = PruningSchedule(0.5, begin_epoch=0, end_epoch=2, power=1.0)
    >>> _ = model.fit(np.ones((4, 8, 8, 1)), np.zeros(4), epochs=3, verbose=0,
    ...               callbacks=[schedule])
    >>> [(epoch, fraction) for epoch, fraction, _ in schedule.reports]
    [(0, 0.0), (1, 0.25), (2, 0.5)]
    >>> schedule.reports[-1][2].num_pruned_kernels  # of 20 kernels
    10
    """

    def __init__(
        self,
        final_fraction,
        begin_epoch=0,
        end_epoch=0,
        initial_fraction=0.0,
        power=3.0,
        frequency=1,
        scope="model",
        layer_names=None,
        granularity="kernel",
        channel_multiple=1,
    ):
        super().__init__()
        self.final_fraction = validate_float(
            "final_fraction", final_fraction, minimum=0.0, maximum=1.0
        )
        self.begin_epoch = validate_int("begin_epoch", begin_epoch, minimum=0)
        self.end_epoch = validate_int("end_epoch", end_epoch, minimum=self.begin_epoch)
        self.initial_fraction = validate_float(
            "initial_fraction", initial_fraction, minimum=0.0, maximum=self.final_fraction
        )
        self.power = validate_float("power", power, minimum=0.0, min_inclusive=False)
        self.frequency = validate_int("frequency", frequency, minimum=1)
        self.scope = validate_choice("scope", scope, SCOPES)
        if layer_names is not None:
            if isinstance(layer_names, str) or not all(isinstance(n, str) for n in layer_names):
                raise ValueError(
                    "Argument `layer_names` must be a list of layer names or None. "
                    f"Received: layer_names={layer_names!r}"
                )
            layer_names = list(layer_names)
        self.layer_names = layer_names
        self.granularity = validate_choice("granularity", granularity, GRANULARITIES)
        self.channel_multiple = validate_int("channel_multiple", channel_multiple, minimum=1)
        if self.channel_multiple > 1 and self.granularity != "channel":
            raise ValueError(
                "Argument `channel_multiple` applies to granularity='channel'. Received: "
                f"channel_multiple={channel_multiple!r}, granularity={granularity!r}"
            )
        self.reports = []

    def fraction_at(self, epoch):
        """The scheduled fraction at ``epoch`` (None where the schedule does not prune)."""
        if epoch < self.begin_epoch or epoch > self.end_epoch:
            return None
        if epoch != self.end_epoch and (epoch - self.begin_epoch) % self.frequency:
            return None
        if self.end_epoch == self.begin_epoch:
            progress = 1.0
        else:
            progress = (epoch - self.begin_epoch) / (self.end_epoch - self.begin_epoch)
        return self.final_fraction + (self.initial_fraction - self.final_fraction) * (
            1.0 - progress
        ) ** self.power

    def on_train_begin(self, logs=None):
        self.reports = []

    def on_epoch_begin(self, epoch, logs=None):
        fraction = self.fraction_at(epoch)
        if fraction is None:
            return
        report = prune_kernels(
            self.model,
            fraction=fraction,
            scope=self.scope,
            layer_names=self.layer_names,
            granularity=self.granularity,
            channel_multiple=self.channel_multiple,
        )
        self.reports.append((epoch, fraction, report))

    def get_config(self):
        return {
            "final_fraction": self.final_fraction,
            "begin_epoch": self.begin_epoch,
            "end_epoch": self.end_epoch,
            "initial_fraction": self.initial_fraction,
            "power": self.power,
            "frequency": self.frequency,
            "scope": self.scope,
            "layer_names": self.layer_names,
            "granularity": self.granularity,
            "channel_multiple": self.channel_multiple,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
