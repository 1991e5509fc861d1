"""Gradual pruning during ``fit``: a polynomial schedule of the pruned fraction."""

import os

import keras
import tensorflow as tf

from tfemergent.analysis.kernel_sensitivity import SCOPES
from tfemergent.pruning.prune_channels import (
    CRITERIA,
    apply_zero_masks,
    prune_in_place,
    zero_masks,
    zeroed_channels,
)
from tfemergent.pruning.prune_kernels import GRANULARITIES as KERNEL_GRANULARITIES
from tfemergent.pruning.prune_kernels import prune_kernels
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

GRANULARITIES = KERNEL_GRANULARITIES + ("group",)


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

    ``granularity="group"`` works on any built functional or Sequential model
    (no masked layers needed): every step runs `tfemergent.pruning.prune_channels`'s
    choice in place (coupled channel groups, ``criterion``, ``scope``, kept widths
    rounded to ``channel_multiple``), zeroing the chosen channels' weights, and
    re-applies those zeros after every training batch so the optimizer cannot
    revive them. The pruned state is the exact zeros in the weights: a ``.keras``
    checkpoint saved mid-schedule and reloaded resumes (``fit(...,
    initial_epoch=e)`` with a new callback finds the zeroed channels at train
    begin, and a later step's fraction counts them, as zero channels rank first).
    ``shrink`` the model after training. Here ``scope`` defaults to ``"layer"``
    (``"model"`` can empty a group and is then refused).

    With ``log_dir``, every step writes to TensorBoard (step = epoch):
    ``pruning/fraction``; for ``"group"`` ``pruning/parameter_ratio``,
    ``pruning/mac_ratio`` and ``<layer>/channels`` (after `shrink`); otherwise
    ``pruning/pruned_kernel_fraction`` and ``<layer>/pruned_kernel_fraction``; and
    the report's table as the text ``pruning/report``.

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
        scope: ``"model"`` or ``"layer"`` (default: ``"model"``, or ``"layer"``
            for ``granularity="group"``).
        layer_names: names of the layers to prune, or None for every prunable
            masked convolution (not for ``"group"``).
        granularity: ``"kernel"`` (the paper's), ``"channel"`` or ``"group"``.
        channel_multiple: int >= 1, for ``granularity="channel"`` or
            ``"group"``: every convolution (group) keeps a multiple of this many
            channels (see `tfemergent.pruning.prune_kernels`).
        criterion: for ``"group"``: ``"l1"``, ``"l2"`` or ``"std"`` (see
            `tfemergent.pruning.prune_channels`).
        log_dir: optional TensorBoard directory (opened on the first step).

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

    Any Keras model, by channel groups:

    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
    ...                           keras.layers.Dense(1, name="out")])
    >>> model.compile("sgd", "mse")
    >>> schedule = PruningSchedule(0.5, 0, 1, power=1.0, granularity="group")
    >>> _ = model.fit(np.ones((4, 4)), np.zeros(4), epochs=2, verbose=0, callbacks=[schedule])
    >>> [report.layers["hidden"]["channels_after"] for _, _, report in schedule.reports]
    [8, 4]
    """

    def __init__(
        self,
        final_fraction,
        begin_epoch=0,
        end_epoch=0,
        initial_fraction=0.0,
        power=3.0,
        frequency=1,
        scope=None,
        layer_names=None,
        granularity="kernel",
        channel_multiple=1,
        criterion="l1",
        log_dir=None,
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
        self.granularity = validate_choice("granularity", granularity, GRANULARITIES)
        if scope is None:
            scope = "layer" if self.granularity == "group" else "model"
        self.scope = validate_choice("scope", scope, SCOPES)
        self.criterion = validate_choice("criterion", criterion, CRITERIA)
        if log_dir is not None and (not isinstance(log_dir, (str, os.PathLike))
                                    or not str(log_dir)):
            raise ValueError(
                "Argument `log_dir` must be a non-empty path or None. "
                f"Received: log_dir={log_dir!r}"
            )
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        if layer_names is not None:
            if isinstance(layer_names, str) or not all(isinstance(n, str) for n in layer_names):
                raise ValueError(
                    "Argument `layer_names` must be a list of layer names or None. "
                    f"Received: layer_names={layer_names!r}"
                )
            layer_names = list(layer_names)
        self.layer_names = layer_names
        if layer_names is not None and self.granularity == "group":
            raise ValueError(
                "Argument `layer_names` selects masked convolutions; granularity='group' "
                "prunes every prunable channel group. Received: "
                f"layer_names={layer_names!r}, granularity='group'"
            )
        self.channel_multiple = validate_int("channel_multiple", channel_multiple, minimum=1)
        if self.channel_multiple > 1 and self.granularity == "kernel":
            raise ValueError(
                "Argument `channel_multiple` applies to granularity='channel' or 'group'. "
                f"Received: channel_multiple={channel_multiple!r}, granularity={granularity!r}"
            )
        self.reports = []
        self._masks = []
        self._writer = None

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
        self._masks = []
        if self.granularity == "group":
            graph, pruned = zeroed_channels(self.model)
            self._masks = zero_masks(graph, pruned)

    def on_epoch_begin(self, epoch, logs=None):
        fraction = self.fraction_at(epoch)
        if fraction is None:
            return
        if self.granularity == "group":
            report, self._masks = prune_in_place(
                self.model, fraction, self.criterion, self.scope, self.channel_multiple, ())
        else:
            report = prune_kernels(
                self.model,
                fraction=fraction,
                scope=self.scope,
                layer_names=self.layer_names,
                granularity=self.granularity,
                channel_multiple=self.channel_multiple,
            )
        self.reports.append((epoch, fraction, report))
        if self.log_dir is not None:
            self._log(epoch, fraction, report)

    def on_train_batch_end(self, batch, logs=None):
        if self._masks:
            apply_zero_masks(self._masks)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _log(self, epoch, fraction, report):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default(step=epoch):
            tf.summary.scalar("pruning/fraction", fraction)
            if self.granularity == "group":
                tf.summary.scalar("pruning/parameter_ratio", report.parameter_ratio)
                tf.summary.scalar("pruning/mac_ratio", report.mac_ratio)
                for name, row in report.layers.items():
                    tf.summary.scalar(f"{name}/channels", row["channels_after"])
            else:
                tf.summary.scalar("pruning/pruned_kernel_fraction", report.pruned_kernel_fraction)
                for name, row in report.layers.items():
                    share = row["num_pruned_kernels"] / max(row["num_kernels"], 1)
                    tf.summary.scalar(f"{name}/pruned_kernel_fraction", share)
            tf.summary.text("pruning/report", str(report))
        self._writer.flush()

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
            "criterion": self.criterion,
            "log_dir": self.log_dir,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
