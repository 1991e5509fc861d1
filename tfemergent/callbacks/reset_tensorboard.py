"""TensorBoard logging of the self-organisation of a Reset network's grid."""

import numbers
import os

import keras
import numpy as np
import tensorflow as tf

from tfemergent import analysis, plotting
from tfemergent.callbacks.epoch_summary_callback import EpochSummaryCallback
from tfemergent.callbacks.image_summaries import write_images
from tfemergent.utils.validation import (
    as_array,
    describe,
    received,
    validate_bool,
    validate_connectivity,
    validate_finite,
    validate_float,
    validate_int,
    validate_labels,
    validate_seed,
)

# The measures of every logged epoch, in `ResetTensorBoard.history` and as
# scalars `reset/<measure>` (the topography ones only with a similarity).
MEASURES = (
    "clustering_index",
    "clustering",
    "topography_index",
    "topography",
    "preferring_units",
    "preferred_classes",
    "mean_best_dprime",
)
# The measures also put into the epoch's logs (so Keras' History records them).
LOGGED_MEASURES = ("clustering_index", "topography_index")
SIMILARITIES = ("number",)


@keras.saving.register_keras_serializable(package="tfemergent")
class ResetTensorBoard(EpochSummaryCallback):
    """Logs the preference map, clustering and topography of a Reset network's grid.

    Works with any model that has a method ``grid_activations(images,
    level=-1, batch_size=256)`` returning the grid ``(N, h, w)`` of one level
    for each image (e.g. `tfemergent.models.ResetNetwork`). Every
    ``update_freq`` epochs (and always after the first and the last epoch) it
    measures the grid on the sample ``images`` with `tfemergent.analysis`, as
    the paper does on its test images: the grid of level ``level`` for every
    image, its `dprime_maps` (per unit and class, the d′ of the unit's
    single-trial responses to the class against all other classes), the
    `preference_map` (the class of the highest d′ when it reaches
    ``threshold``, else none), the `clustering_index` and, with a
    ``similarity``, the `topography_index` (both against ``num_shuffles``
    shuffled maps drawn from ``seed``: with a fixed seed every epoch gets the
    same shuffles). It writes to ``log_dir`` (one event-file writer, opened on
    first use, closed when training ends), at step ``epoch``:

    - scalars ``reset/clustering_index`` and ``reset/clustering`` (the map's
      mean component size before the shuffled control is subtracted);
      ``reset/topography_index`` and ``reset/topography``, only with a
      ``similarity``;
    - scalars ``reset/preferring_units`` (the fraction of grid units with a
      preference), ``reset/preferred_classes`` (the number of classes that at
      least one unit prefers) and ``reset/mean_best_dprime`` (the mean over
      units of their highest d′);
    - image ``reset/preference_map``: the map, each unit in the colour of its
      class, units without preference dark, the sub-network blocks outlined
      when the model exposes the level's ``grid_size`` (as
      ``model.grid_layers[level].grid_size``, e.g. a
      `tfemergent.layers.ResetGrid`), classes named in the colour bar
      (`tfemergent.plotting.plot_preference_map`; with
      ``similarity="number"`` the classes are coloured in order, violet to
      red, so that a number topography shows as a colour gradient);
    - image ``reset/dprime_maps``: the ``C`` d′ maps, one panel per class, in
      a diverging colour map with symmetric limits
      (`tfemergent.plotting.plot_dprime_maps`).

    The epoch's ``logs`` get ``clustering_index`` (and ``topography_index``
    with a similarity) on the epochs logged when they end, so Keras'
    ``History`` records them (on those epochs only, as it does validation
    metrics with ``validation_freq``; the last epoch of a `fit` is one of
    them unless training stops early). ``callback.history`` holds one dict
    per logged epoch of the last `fit`: ``"epoch"`` and every measure above
    (``"topography_index"`` and ``"topography"`` are ``None`` without a
    similarity); with ``keep_maps=True``, ``callback.preference_maps`` holds
    each logged epoch's preference map (int64 ``(h, w)``), so that a script
    can plot the indices and maps without reading event files.

    The model, the data and ``level`` are checked when training begins, and
    so is the shape of the grid when the model is already built (a model that
    `fit` builds has its grid checked when the first epoch is logged).

    Cost per logged epoch: the grid of every image (``model.grid_activations``),
    then a few tens of milliseconds for the indices of a 32 x 32 grid with 10
    classes and 20 shuffles, and about half a second for the two pictures.

    ``images`` and ``labels`` are data, not configuration: `get_config` holds
    them as ``None`` (so that its keys are the ``__init__`` arguments) and
    `from_config` takes them as its ``images`` and ``labels`` arguments, or
    from ``"images"`` and ``"labels"`` entries that the caller puts in the
    config. A callback without them raises ``ValueError`` when it is attached
    to a model.

    Reference: T. Hannagan, "Reset networks" (2021): preference maps,
    clustering and topography indices (Results, Supplementary S1).

    Args:
        log_dir: directory of the event files (created if needed), or None to
            measure only (``history``, ``preference_maps`` and the epoch logs)
            and write nothing.
        images: the images the grid is measured on (the paper uses the test
            set), a numeric array ``(N, h, w)`` or ``(N, h, w, c)``, ``N >= 1``,
            passed to ``model.grid_activations`` as float32. ``None`` only in a
            callback restored from its config without data (see above).
        labels: 1-D integer class labels, one per image, in ``[0,
            num_classes)``, at least 2 classes (d′ compares a class with the
            others). ``None`` exactly when ``images`` is.
        update_freq: log every this many epochs (>= 1); the first and last
            epochs are always logged.
        level: the grid level measured, an index into the model's levels
            (``-1``: the last); checked against ``model.num_levels`` when the
            model has that attribute.
        threshold: the d′ a unit needs to have a preference (the paper's 2).
        num_shuffles: shuffled maps of the controls (>= 1; the paper's 20).
        connectivity: 4 or 8, the neighbourhood of the connected components of
            the clustering (as `tfemergent.analysis.clustering_index`).
        similarity: ``None`` (no topography), ``"number"``
            (`tfemergent.analysis.number_similarity` of the classes, for
            classes that are numbers ``0 ... C-1``) or a ``(C, C)`` matrix of
            finite reals, ``similarity[a, b]`` that of a unit preferring ``a``
            with a neighbour preferring ``b``.
        seed: integer >= 0 (or ``None``: new shuffles at every logged epoch),
            the seed of the shuffled maps.
        class_names: optional ``C`` names of the classes, for the pictures;
            default the class indices.
        num_classes: ``C`` (>= 2); default ``len(class_names)``, else the size
            of a similarity matrix, else ``max(labels) + 1``. A class absent
            from ``labels`` gets d′ 0 everywhere.
        batch_size: the batch size of ``model.grid_activations`` (>= 1).
        keep_maps: whether to keep each logged epoch's preference map in
            ``callback.preference_maps``.

    Example:

    >>> import numpy as np, tempfile
    >>> from tfemergent.models import ResetNetwork
    >>> from tfemergent.callbacks import ResetTensorBoard
    >>> rng = np.random.default_rng(0)
    >>> images = rng.random((30, 6, 6)).astype("float32")
    >>> labels = np.arange(30) % 3
    >>> model = ResetNetwork(3, grid_size=2, grid_width=4,
    ...                      subnetwork={"conv_filters": [], "dense_units": [8]},
    ...                      final_network={"conv_filters": [], "dense_units": [8]})
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> callback = ResetTensorBoard(tempfile.mkdtemp(), images, labels,
    ...                             similarity="number", class_names=["one", "two", "three"])
    >>> history = model.fit(images, labels, epochs=2, verbose=0, callbacks=[callback])
    >>> [record["epoch"] for record in callback.history]
    [0, 1]
    >>> len(history.history["clustering_index"])
    2
    """

    def __init__(
        self,
        log_dir,
        images,
        labels,
        update_freq=1,
        level=-1,
        threshold=2.0,
        num_shuffles=20,
        connectivity=4,
        similarity=None,
        seed=0,
        class_names=None,
        num_classes=None,
        batch_size=256,
        keep_maps=False,
    ):
        # log_dir=None: measure only (history, logs), no event files.
        super().__init__(os.curdir if log_dir is None else log_dir, update_freq)
        if log_dir is None:
            self.log_dir = None
        self.level = validate_int("level", level)
        self.threshold = validate_float("threshold", threshold)
        self.num_shuffles = validate_int("num_shuffles", num_shuffles, minimum=1)
        self.connectivity = validate_connectivity("connectivity", connectivity)
        self.seed = validate_seed("seed", seed)
        self.batch_size = validate_int("batch_size", batch_size, minimum=1)
        self.keep_maps = validate_bool("keep_maps", keep_maps)
        self.class_names = _validate_class_names(class_names)
        self.similarity = _validate_similarity(similarity)
        if (images is None) != (labels is None):
            raise ValueError(
                "Arguments `images` and `labels` go together: give both, or neither (only "
                "in a callback restored from its config, which gets them in `from_config`). "
                f"Received: images={'None' if images is None else 'an array'}, "
                f"labels={'None' if labels is None else 'an array'}"
            )
        self.images = None if images is None else _validate_images(images)
        self.labels = None if labels is None else _validate_labels(labels, len(self.images))
        self.num_classes = self._resolve_num_classes(num_classes)
        self.history = []
        self.preference_maps = []

    def _resolve_num_classes(self, num_classes):
        """``C`` from ``num_classes``, class names, similarity or labels; all consistent."""
        num_classes = validate_int("num_classes", num_classes, minimum=2, allow_none=True)
        origin = "num_classes"
        sources = []
        if self.class_names is not None:
            sources.append(("class_names", "len(class_names)", len(self.class_names)))
        if isinstance(self.similarity, np.ndarray):
            sources.append(("similarity", "similarity.shape[0]", self.similarity.shape[0]))
        if num_classes is None and sources:
            _, origin, num_classes = sources[0]
        if num_classes is None and self.labels is not None:
            origin, num_classes = "max(labels) + 1", int(self.labels.max()) + 1
        for argument, expression, size in sources:
            if size != num_classes:
                raise ValueError(
                    f"The number of classes is {num_classes} ({origin}), so `{argument}` "
                    f"must be for {num_classes} classes. Received: {expression}={size}"
                )
        if num_classes is not None and num_classes < 2:
            raise ValueError(
                "ResetTensorBoard needs at least 2 classes (d′ compares a class with the "
                f"others). Received: {origin}={num_classes}"
            )
        if self.labels is not None and self.labels.max() >= num_classes:
            raise ValueError(
                f"Argument `labels` must be class indices < num_classes={num_classes} "
                f"({origin}). Received: labels with maximum {int(self.labels.max())}"
            )
        return num_classes

    # ------------------------------------------------------------------ hooks

    def set_model(self, model):
        """Attach the callback to ``model``, checking that it has a grid and the data."""
        if not callable(getattr(model, "grid_activations", None)):
            raise ValueError(
                "ResetTensorBoard measures the grid of a Reset network: the model needs a "
                "method `grid_activations(images, level=-1, batch_size=256)` returning "
                "(N, h, w), as tfemergent.models.ResetNetwork has. Received: "
                f"model={getattr(model, 'name', model)!r} of type {type(model).__name__}"
            )
        if self.images is None:
            raise ValueError(
                "ResetTensorBoard has no images and labels (a callback restored from its "
                "config without data): recreate it with "
                "`ResetTensorBoard.from_config(config, images=..., labels=...)`. "
                "Received: images=None"
            )
        num_levels = getattr(model, "num_levels", None)
        if isinstance(num_levels, numbers.Integral) and not (
            -num_levels <= self.level < num_levels
        ):
            raise ValueError(
                f"Argument `level` must index one of the model's {num_levels} grid levels: "
                f"an integer in [{-num_levels}, {num_levels}). Received: level={self.level}"
            )
        super().set_model(model)

    def on_train_begin(self, logs=None):
        model = self._attached_model()
        self.set_model(model)  # fail before the first epoch, not after it
        if getattr(model, "built", False):
            self._grid(model, self.images[:1])  # the grid of one image: its shape
        self.history = []
        self.preference_maps = []
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        logged = len(self.history)
        super().on_epoch_end(epoch, logs)
        last = epoch + 1 == (self.params or {}).get("epochs")
        if last and self._last_logged_epoch != epoch:
            self.log(epoch)  # now rather than at train end, so that History gets it
            self._last_logged_epoch = epoch
        if logs is not None and len(self.history) > logged:
            record = self.history[-1]
            logs.update({key: record[key] for key in LOGGED_MEASURES if record[key] is not None})

    # ------------------------------------------------------------------ logging

    def log(self, epoch):
        """Measure the grid now and write all summaries at step ``epoch``.

        Called by the epoch hooks. Appends the measures to ``history`` (and the
        map to ``preference_maps`` with ``keep_maps``) and returns them.
        """
        model = self._attached_model()
        epoch = int(epoch)
        activations = self._grid(model, self.images)
        dprime = analysis.dprime_maps(activations, self.labels, num_classes=self.num_classes)
        record = {"epoch": epoch, **self.measure(dprime)}
        pmap = record.pop("preference_map")
        if self.log_dir is not None:
            self._write(model, epoch, record, pmap, dprime)
        self.history.append(record)
        if self.keep_maps:
            self.preference_maps.append(pmap)
        return dict(record)

    def _write(self, model, epoch, record, pmap, dprime):
        """The scalars and pictures of one logged epoch, at step ``epoch``."""
        with self.writer.as_default(step=epoch):
            for key in MEASURES:
                if record[key] is not None:
                    tf.summary.scalar(f"reset/{key}", record[key])
            write_images(
                "reset/preference_map",
                plotting.plot_preference_map(
                    pmap, self.num_classes, self.class_names, _block_width(model, self.level,
                                                                             pmap.shape),
                    title=(
                        f"epoch {epoch}: {int(np.sum(pmap >= 0))} of {pmap.size} units prefer "
                        f"a class (d′ ≥ {self.threshold:g})"
                    ),
                    ordered=isinstance(self.similarity, str),
                ),
            )
            write_images(
                "reset/dprime_maps",
                plotting.plot_dprime_maps(
                    dprime, self.class_names, title=f"epoch {epoch}: d′ of each class"
                ),
            )
        self.writer.flush()

    def measure(self, dprime):
        """The preference map and every measure of ``MEASURES`` for d′ maps ``(C, h, w)``.

        Pure (no model, no writing): `log` calls it on the grid's `dprime_maps`.

        Returns:
            A dict with ``"preference_map"`` (int64 ``(h, w)``) and the
            measures (floats; ``"preferred_classes"`` an int; the topography
            ones ``None`` without a similarity).
        """
        pmap = analysis.preference_map(dprime, self.threshold)
        clustering = analysis.clustering_index(
            pmap, self.num_shuffles, self.connectivity, self.seed, return_details=True
        )
        topography = {"index": None, "topography": None}
        similarity = self._similarity_matrix()
        if similarity is not None:
            topography = analysis.topography_index(
                pmap, similarity, self.num_shuffles, self.seed, return_details=True
            )
        return {
            "preference_map": pmap,
            "clustering_index": clustering["index"],
            "clustering": clustering["clustering"],
            "topography_index": topography["index"],
            "topography": topography["topography"],
            "preferring_units": float(np.mean(pmap >= 0)),
            "preferred_classes": int(len(np.unique(pmap[pmap >= 0]))),
            "mean_best_dprime": float(np.mean(np.max(dprime, axis=0))),
        }

    def _similarity_matrix(self):
        if isinstance(self.similarity, str):
            return analysis.number_similarity(self.num_classes)
        return self.similarity

    def _attached_model(self):
        model = self.model
        if model is None:
            raise ValueError(
                "ResetTensorBoard is not attached to a model: train with it "
                "(`model.fit(..., callbacks=[callback])`) or call `callback.set_model(model)` "
                "first. Received: model=None"
            )
        return model

    def _grid(self, model, images):
        """``model.grid_activations`` of ``images`` as float64 ``(N, h, w)``, checked."""
        grid = model.grid_activations(images, level=self.level, batch_size=self.batch_size)
        grid = np.asarray(keras.ops.convert_to_numpy(grid), dtype=np.float64)
        if grid.ndim != 3 or len(grid) != len(images) or 0 in grid.shape:
            raise ValueError(
                "The model's `grid_activations(images, level, batch_size)` must return one "
                f"grid (h, w) per image: shape ({len(images)}, h, w). Received: "
                f"grid_activations(...).shape={grid.shape} for level={self.level}"
            )
        return grid

    # ------------------------------------------------------------------ config

    def get_config(self):
        """Every argument; ``images`` and ``labels`` (data) as ``None``."""
        similarity = self.similarity
        if isinstance(similarity, np.ndarray):
            similarity = similarity.tolist()
        return {
            "log_dir": self.log_dir,
            "images": None,
            "labels": None,
            "update_freq": self.update_freq,
            "level": self.level,
            "threshold": self.threshold,
            "num_shuffles": self.num_shuffles,
            "connectivity": self.connectivity,
            "similarity": similarity,
            "seed": self.seed,
            "class_names": None if self.class_names is None else list(self.class_names),
            "num_classes": self.num_classes,
            "batch_size": self.batch_size,
            "keep_maps": self.keep_maps,
        }

    @classmethod
    def from_config(cls, config, images=None, labels=None):
        """Recreate the callback from `get_config` and the data.

        Args:
            config: a dict from `get_config`, optionally with ``"images"`` and
                ``"labels"`` entries that are not ``None``.
            images: the images; default the config's entry.
            labels: their labels; default the config's entry.
        """
        config = dict(config)
        if images is not None:
            config["images"] = images
        if labels is not None:
            config["labels"] = labels
        return cls(**config)


# ---------------------------------------------------------------------- validation


def _validate_images(images):
    """``images`` as finite float32 ``(N, h, w)`` or ``(N, h, w, c)``, ``N >= 1``."""
    array = as_array(images)
    valid = (
        array is not None
        and array.dtype != bool
        and (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating))
        and array.ndim in (3, 4)
        and 0 not in array.shape
    )
    if not valid:
        raise ValueError(
            "Argument `images` must be a numeric array of at least one image, (N, h, w) or "
            f"(N, h, w, c). {received('images', images, array)}"
        )
    return validate_finite("images", array.astype(np.float32))


def _validate_labels(labels, num_images):
    array = validate_labels("labels", labels, num_images)
    if array.min() < 0:
        raise ValueError(
            f"Argument `labels` must be class indices >= 0. Received: labels with minimum "
            f"{int(array.min())}"
        )
    if len(np.unique(array)) < 2:
        raise ValueError(
            "Argument `labels` must hold at least 2 classes (d′ compares the responses to "
            f"a class with those to the others). Received: classes {np.unique(array).tolist()}"
        )
    return array


def _validate_class_names(class_names):
    if class_names is None:
        return None
    if (
        isinstance(class_names, (str, bytes))
        or not isinstance(class_names, (list, tuple))
        or not all(isinstance(name, str) for name in class_names)
    ):
        raise ValueError(
            "Argument `class_names` must be None or a list of strings, one per class. "
            f"Received: class_names={describe(class_names)}"
        )
    return list(class_names)


def _validate_similarity(similarity):
    """``None``, ``"number"`` or a finite float64 square matrix."""
    if similarity is None or (isinstance(similarity, str) and similarity in SIMILARITIES):
        return similarity
    array = None if isinstance(similarity, str) else as_array(similarity)
    if (
        array is None
        or array.ndim != 2
        or array.shape[0] != array.shape[1]
        or array.shape[0] < 2
        or array.dtype == bool
        or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating))
        or not np.all(np.isfinite(array))
    ):
        raise ValueError(
            "Argument `similarity` must be None, 'number' or a finite real (C, C) matrix "
            f"with C >= 2. {received('similarity', similarity, array)}"
        )
    return array.astype(np.float64)


# ---------------------------------------------------------------------- helpers


def _block_width(model, level, grid_shape):
    """The side of the sub-network blocks of ``level``, or ``None`` when the model hides it.

    Read from ``model.grid_layers[level].grid_size`` (the ``n`` of an ``m x m``
    `ResetGrid`); ``None`` unless it divides a square grid.
    """
    try:
        grid_size = model.grid_layers[level].grid_size
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    rows, cols = grid_shape
    if (
        isinstance(grid_size, bool)
        or not isinstance(grid_size, numbers.Integral)
        or grid_size < 1
        or rows != cols
        or rows % grid_size
    ):
        return None
    return rows // int(grid_size)
