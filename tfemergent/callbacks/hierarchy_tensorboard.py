"""TensorBoard logging of a SelfOrganisingHierarchy: entropies, probe, topology."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent import plotting
from tfemergent.callbacks.epoch_summary_callback import EpochSummaryCallback
from tfemergent.callbacks.image_summaries import write_images
from tfemergent.probes.logistic_regression_probe import LogisticRegressionProbe
from tfemergent.utils.validation import describe, validate_images, validate_int, validate_labels

# The probe used when none is given.
DEFAULT_PROBE_CONFIG = {
    "max_iter": 200,
    "regularization": 1.0,
    "standardize": True,
    "max_train_samples": 5000,
    "seed": 0,
    "tolerance": 1e-4,
}
# Batch size of `model.predict` when the probe data are encoded.
_PREDICT_BATCH_SIZE = 256
_RECEPTIVE_FIELDS_TITLE = "mean relaxed map; receptive fields (solid), codes (dashed)"


# What the callback reads from its model: `SelfOrganisingHierarchy`'s interface, checked
# by name so that callbacks stay below models in the package's layering.
_HIERARCHY_INTERFACE = (
    "feature_map", "image_shape", "layout", "num_units", "receptive_fields", "window_size",
)


@keras.saving.register_keras_serializable(package="tfemergent")
class HierarchyTensorBoard(EpochSummaryCallback):
    """Logs the entropies, probe accuracy and topology of a `SelfOrganisingHierarchy`.

    Every ``update_freq`` epochs (and always after the first and the last
    epoch) it writes to ``log_dir`` (one event-file writer, opened on first
    use, closed when training ends), at step ``step_offset + epoch``:

    - scalars ``unit_<k>/entropy`` and ``unit_<k>/loss``: the epoch's
      ``unit_<k>_entropy`` and ``unit_<k>_loss`` of the fit logs (the entropy of
      unit k's codes over the epoch, `tfemergent.analysis.binned_entropy`, as
      the model computes it); ``hierarchy/entropy`` and ``hierarchy/loss``: the
      logs' ``entropy`` and ``loss``, the sums over the units;
    - scalar ``hierarchy/probe_accuracy``, only with ``probe_data``: the training
      and test images are encoded with ``model.predict`` (the K concatenated
      codes after relaxation), ``probe.fit_score`` fits the probe on the
      training codes, and its test accuracy is logged (the paper's extrinsic
      metric). This refits the probe at every logged epoch: keep the probe data
      small or ``update_freq`` large;
    - image ``hierarchy/feature_map``: the relaxed map (`model.feature_map`:
      image and codes) of each of the first ``max_outputs`` sample ``images``,
      code blocks outlined, by `tfemergent.plotting.plot_feature_map`;
    - image ``hierarchy/receptive_fields``: the mean relaxed map of all sample
      images in grey, with each unit's two windows drawn as rectangles and its
      code block outlined (dashed) in the unit's colour, labelled with the unit
      index: the topology of the hierarchy;
    - image ``hierarchy/codes``: the K codes of each of the first
      ``max_outputs`` sample images as a ``K x num_hidden`` heat map
      (`tfemergent.plotting.plot_codes`).

    **Meta-learning.** A meta-learning run (`tfemergent.search.HillClimbing`)
    trains the same model once per meta-step, each time with a new `fit` whose
    epochs count from 0. To write one continuous time line, reuse the callback
    and set ``callback.step_offset`` before each `fit` (e.g. to ``meta_step *
    epochs``); every `fit` adds an event file to ``log_dir``, which TensorBoard
    reads as one run. After a meta-step is accepted, `log_topology(step)` writes
    the new receptive-field picture alone.

    ``images`` and ``probe_data`` are data, not configuration: `get_config`
    holds them as ``None`` (so that its keys are the ``__init__`` arguments) and
    `from_config` takes them as its ``images`` and ``probe_data`` arguments, or
    from ``"images"`` and ``"probe_data"`` entries that the caller puts in the
    config. A callback restored without images raises ``ValueError`` when it
    is attached to a model. The probe is configuration: the config holds its
    `LogisticRegressionProbe.get_config`.

    Reference: S. Borgohain et al., "Self-organising Neural Network Hierarchy"
    (2020): entropy per unit and epoch (Algorithm 2), the probe (Section 3.3).

    Args:
        log_dir: directory of the event files (created if needed).
        images: sample input images of the model for the pictures, a numeric
            array ``(B, ih, iw)`` or ``(B, ih, iw, 1)``, ``B >= 1`` (a few, e.g.
            4-16; all of them enter the mean map of the receptive-field image).
            Their shape is checked against the model's ``image_shape`` when the
            callback is attached to the model. ``None`` only in a callback
            restored from its config without the images (see above).
        probe_data: ``None`` or a tuple ``(train_images, train_labels,
            test_images, test_labels)``: images as for ``images``, labels 1-D
            integer class indices, one per image; the training labels hold at
            least 2 classes.
        probe: the `LogisticRegressionProbe` (or its config dict) fitted on the
            codes; default ``LogisticRegressionProbe(max_iter=200,
            max_train_samples=5000, seed=0)`` (`DEFAULT_PROBE_CONFIG`).
        update_freq: log every this many epochs (>= 1); the first and last
            epochs are always logged.
        step_offset: integer >= 0 added to the epoch to make the step of the
            summaries (see *Meta-learning*); may be changed between `fit` calls.
        max_outputs: the number of sample images shown in the
            ``hierarchy/feature_map`` and ``hierarchy/codes`` images (>= 1).

    Example:

    >>> import keras, numpy as np, tempfile
    >>> from tfemergent.models import SelfOrganisingHierarchy
    >>> from tfemergent.callbacks import HierarchyTensorBoard
    >>> images = np.random.default_rng(0).random((16, 4, 4)).astype("float32")
    >>> labels = np.arange(16) % 2
    >>> model = SelfOrganisingHierarchy((4, 4), num_hidden=4, window_size=2, seed=0)
    >>> model.compile(keras.optimizers.Adam(1e-2))
    >>> log_dir = tempfile.mkdtemp()
    >>> callback = HierarchyTensorBoard(
    ...     log_dir, images[:4], probe_data=(images[:12], labels[:12], images[12:], labels[12:]),
    ...     max_outputs=2)
    >>> _ = model.fit(images, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    >>> model.set_topology([((0, 0), (2, 2)), ((2, 0), (0, 2)), ((0, 4), (2, 4))])
    >>> callback.log_topology(1)  # a meta-step moved the fields of units 0 and 1
    >>> callback.step_offset = 1  # the next meta-step's fit continues the time line
    """

    def __init__(
        self,
        log_dir,
        images,
        probe_data=None,
        probe=None,
        update_freq=1,
        step_offset=0,
        max_outputs=4,
    ):
        super().__init__(log_dir, update_freq)
        if images is not None:
            images = validate_images("images", images, single_channel=True)
        self.images = images
        self.probe_data = _validate_probe_data(probe_data)
        self.probe = _validate_probe(probe)
        self.step_offset = step_offset
        self.max_outputs = validate_int("max_outputs", max_outputs, minimum=1)
        self._logs = {}

    @property
    def step_offset(self):
        """Added to the epoch index to make the step of the summaries."""
        return self._step_offset

    @step_offset.setter
    def step_offset(self, value):
        self._step_offset = validate_int("step_offset", value, minimum=0)

    # ------------------------------------------------------------------ hooks

    def set_model(self, model):
        """Attach the callback to ``model``, checking it and the images against it."""
        if not all(hasattr(model, name) for name in _HIERARCHY_INTERFACE):
            raise ValueError(
                "HierarchyTensorBoard logs a SelfOrganisingHierarchy; use it only in that "
                f"model's `fit`. Received: model={getattr(model, 'name', model)!r} of type "
                f"{type(model).__name__}"
            )
        if self.images is None:
            raise ValueError(
                "HierarchyTensorBoard has no sample images (a callback restored from its "
                "config without data): recreate it with "
                "`HierarchyTensorBoard.from_config(config, images=...)`. Received: images=None"
            )
        _check_image_shape("images", self.images, model)
        if self.probe_data is not None:
            _check_image_shape("probe_data[0] (train_images)", self.probe_data[0], model)
            _check_image_shape("probe_data[2] (test_images)", self.probe_data[2], model)
        super().set_model(model)

    def on_train_begin(self, logs=None):
        self.set_model(self.model)  # fail before the first epoch, not after it
        self._logs = {}
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._logs = dict(logs or {})
        super().on_epoch_end(epoch, logs)

    # ------------------------------------------------------------------ logging

    def log(self, epoch):
        """Write all summaries of epoch ``epoch`` now, at step ``step_offset + epoch``.

        Called by the epoch hooks; the scalars come from the logs of the last
        epoch that ended.
        """
        model = self._attached_model()
        step = self.step_offset + int(epoch)
        maps = _as_numpy(model.feature_map(self.images))
        shown = maps[: self.max_outputs]
        with self.writer.as_default(step=step):
            for k in range(model.num_units):
                self._scalar(f"unit_{k}/entropy", f"unit_{k}_entropy")
                self._scalar(f"unit_{k}/loss", f"unit_{k}_loss")
            self._scalar("hierarchy/entropy", "entropy")
            self._scalar("hierarchy/loss", "loss")
            if self.probe_data is not None:
                tf.summary.scalar("hierarchy/probe_accuracy", self.probe_accuracy())
            boxes = _code_boxes(model)
            write_images(
                "hierarchy/feature_map",
                [
                    plotting.plot_feature_map(
                        feature_map, code_boxes=boxes, image_shape=model.image_shape,
                        title=f"step {step}: relaxed feature map, image {index}",
                    )
                    for index, feature_map in enumerate(shown)
                ],
            )
            self._log_receptive_fields(model, maps, step)
            write_images(
                "hierarchy/codes",
                [
                    plotting.plot_codes(codes, title=f"step {step}: codes of image {index}")
                    for index, codes in enumerate(_codes_from_maps(model, shown))
                ],
            )
        self.writer.flush()

    def log_topology(self, step):
        """Write only the ``hierarchy/receptive_fields`` image, at ``step`` (>= 0).

        For a meta-learning loop, after each accepted meta-step. The callback
        must be attached to the model (by a `fit`, or by ``set_model``). The
        event file is flushed; the writer stays open until the next `fit` ends.
        """
        step = validate_int("step", step, minimum=0)
        model = self._attached_model()
        maps = _as_numpy(model.feature_map(self.images))
        with self.writer.as_default(step=step):
            self._log_receptive_fields(model, maps, step)
        self.writer.flush()

    def probe_accuracy(self):
        """The probe's test accuracy on the codes of ``probe_data`` under the current model."""
        if self.probe_data is None:
            raise ValueError(
                "HierarchyTensorBoard.probe_accuracy needs `probe_data`. Received: "
                "probe_data=None"
            )
        model = self._attached_model()
        train_images, train_labels, test_images, test_labels = self.probe_data
        train_codes = model.predict(train_images, batch_size=_PREDICT_BATCH_SIZE, verbose=0)
        test_codes = model.predict(test_images, batch_size=_PREDICT_BATCH_SIZE, verbose=0)
        report = self.probe.fit_score(train_codes, train_labels, test_codes, test_labels)
        return float(report["test_accuracy"])

    def _attached_model(self):
        model = self.model
        if model is None:
            raise ValueError(
                "HierarchyTensorBoard is not attached to a model: train with it "
                "(`model.fit(..., callbacks=[callback])`) or call `callback.set_model(model)` "
                "first. Received: model=None"
            )
        return model

    def _scalar(self, tag, key):
        if key in self._logs:
            tf.summary.scalar(tag, float(self._logs[key]))

    def _log_receptive_fields(self, model, maps, step):
        figure = plotting.plot_feature_map(
            maps.mean(axis=0), model.receptive_fields, _code_boxes(model), model.image_shape,
            window_size=model.window_size, title=f"step {step}: {_RECEPTIVE_FIELDS_TITLE}",
        )
        write_images("hierarchy/receptive_fields", [figure])

    # ------------------------------------------------------------------ config

    def get_config(self):
        """Every argument; ``images`` and ``probe_data`` (data) as ``None``."""
        return {
            "log_dir": self.log_dir,
            "images": None,
            "probe_data": None,
            "probe": self.probe.get_config(),
            "update_freq": self.update_freq,
            "step_offset": self.step_offset,
            "max_outputs": self.max_outputs,
        }

    @classmethod
    def from_config(cls, config, images=None, probe_data=None):
        """Recreate the callback from `get_config` and the data.

        Args:
            config: a dict from `get_config`, optionally with ``"images"`` and
                ``"probe_data"`` entries that are not ``None``.
            images: the sample images; default the config's entry.
            probe_data: the probe data; default the config's entry.
        """
        config = dict(config)
        if images is not None:
            config["images"] = images
        if probe_data is not None:
            config["probe_data"] = probe_data
        return cls(**config)


# ---------------------------------------------------------------------- validation


def _validate_probe_data(probe_data):
    if probe_data is None:
        return None
    if not isinstance(probe_data, (tuple, list)) or len(probe_data) != 4:
        detail = f"Received: probe_data={describe(probe_data)}"
        if isinstance(probe_data, (tuple, list)):
            detail = f"Received: a {type(probe_data).__name__} of {len(probe_data)} entries"
        elif isinstance(probe_data, np.ndarray):
            detail = f"Received: probe_data.shape={probe_data.shape}"
        raise ValueError(
            "Argument `probe_data` must be None or a tuple (train_images, train_labels, "
            f"test_images, test_labels). {detail}"
        )
    train_images = validate_images(
        "probe_data[0] (train_images)", probe_data[0], single_channel=True
    )
    train_labels = validate_labels(
        "probe_data[1] (train_labels)", probe_data[1], len(train_images)
    )
    test_images = validate_images(
        "probe_data[2] (test_images)", probe_data[2], single_channel=True
    )
    test_labels = validate_labels("probe_data[3] (test_labels)", probe_data[3], len(test_images))
    if train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(
            "The training and test images of `probe_data` must have the same shape. "
            f"Received: train_images.shape={train_images.shape}, "
            f"test_images.shape={test_images.shape}"
        )
    if len(np.unique(train_labels)) < 2:
        raise ValueError(
            "The training labels of `probe_data` must hold at least 2 classes to fit the "
            f"probe. Received: classes {np.unique(train_labels).tolist()}"
        )
    return train_images, train_labels, test_images, test_labels


def _validate_probe(probe):
    if probe is None:
        return LogisticRegressionProbe(**DEFAULT_PROBE_CONFIG)
    if isinstance(probe, dict):
        return LogisticRegressionProbe.from_config(probe)
    if not isinstance(probe, LogisticRegressionProbe):
        raise ValueError(
            "Argument `probe` must be None, a LogisticRegressionProbe or its config dict. "
            f"Received: probe={describe(probe)}"
        )
    return probe


def _check_image_shape(name, images, model):
    if tuple(images.shape[1:]) != tuple(model.image_shape):
        raise ValueError(
            f"Argument `{name}` must hold images of the model's image_shape "
            f"{tuple(model.image_shape)}: (B, {model.image_shape[0]}, {model.image_shape[1]}). "
            f"Received: {name}.shape={images.shape}"
        )


# ---------------------------------------------------------------------- helpers


def _as_numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), dtype=np.float64)


def _code_boxes(model):
    return [model.layout.code_box(k) for k in range(model.num_units)]


def _codes_from_maps(model, maps):
    """The codes ``(B, K, num_hidden)`` read off the code blocks of feature maps ``(B, h, w)``.

    The inverse of `SelfOrganisingHierarchy.write_code` (a code fills its block
    row by row), so on relaxed maps they equal the model's output.
    """
    codes = []
    for k in range(model.num_units):
        row, col, rows, cols = model.layout.code_box(k)
        codes.append(maps[:, row:row + rows, col:col + cols].reshape(len(maps), rows * cols))
    return np.stack(codes, axis=1)
