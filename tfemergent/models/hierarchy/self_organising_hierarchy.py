"""Borgohain et al.'s self-organising hierarchy as a `keras.Model`."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.analysis import binned_entropy
from tfemergent.layers.masked_autoencoder_unit import MaskedAutoencoderUnit
from tfemergent.geometry.hierarchy_layout import HierarchyLayout
from tfemergent.utils.validation import validate_float, validate_int, validate_seed


class _CodeBuffer:
    """The codes of the epoch so far, for the per-epoch entropy.

    A plain object (not trackable), so that neither `.keras` files, checkpoints
    nor SavedModels carry the buffer: it is scratch state of `fit`. Under a
    distribution strategy the variables are synchronised on read: each replica
    fills its own copy (``num_samples / replicas`` rows) with the codes of its
    share of the batch, and `local_codes` concatenates the copies.
    """

    def __init__(self, strategy, num_units, num_samples, num_hidden):
        replicas = strategy.num_replicas_in_sync
        self.strategy = strategy
        self.num_samples = -(-num_samples // replicas)
        with strategy.scope():
            options = {}
            if replicas > 1:
                options = {
                    "synchronization": tf.VariableSynchronization.ON_READ,
                    "aggregation": tf.VariableAggregation.NONE,
                }
            self.codes = tf.Variable(
                tf.zeros([self.num_samples, num_units * num_hidden]),
                trainable=False,
                name="code_buffer",
                **options,
            )
            self.count = tf.Variable(
                tf.constant(0, "int64"), trainable=False, name="code_count", **options
            )

    def _locals(self, variable):
        return self.strategy.experimental_local_results(variable)

    def reset(self):
        for count in self._locals(self.count):
            count.assign(0)

    def write(self, codes):
        codes = tf.cast(codes, self.codes.dtype)  # float16 or float64 codes, float32 buffer
        batch = tf.shape(codes, out_type="int64")[0]
        positions = (self.count + tf.range(batch)) % self.num_samples
        if self.strategy.num_replicas_in_sync > 1:
            # Replica-local variables have no scatter: rewrite the local copy.
            self.codes.assign(
                tf.tensor_scatter_nd_update(self.codes, positions[:, None], codes)
            )
        else:
            self.codes.scatter_nd_update(positions[:, None], codes)
        self.count.assign_add(batch)

    def local_codes(self):
        """The buffered codes of every replica, ``[n, K * num_hidden]``."""
        parts = [
            codes[: min(int(count), self.num_samples)]
            for codes, count in zip(self._locals(self.codes), self._locals(self.count))
        ]
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=0)


class _EpochEntropy(keras.callbacks.Callback):
    """Resets the code buffer at each epoch start; adds the entropies to the logs."""

    def __init__(self, hierarchy):
        super().__init__()
        self.hierarchy = hierarchy

    def on_epoch_begin(self, epoch, logs=None):
        self.hierarchy.reset_code_buffer()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.hierarchy.epoch_entropies())


@keras.saving.register_keras_serializable(package="tfemergent")
class SelfOrganisingHierarchy(keras.Model):
    """K autoencoder units on one feature map that also holds their codes.

    Borgohain et al.'s meta-network. The feature map (`HierarchyLayout`) holds
    the image and, at fixed places, the code of each of the ``num_units``
    `MaskedAutoencoderUnit`s; each unit reads its receptive field, two ``N x N``
    windows of the map, which may cover the image, other units' codes or both,
    so the topology of the hierarchy is the set of receptive fields. The
    meta-learning rule (`tfemergent.search.HillClimbing` over
    `tfemergent.search.ReceptiveFieldSpace`) moves the fields to raise each
    unit's code entropy; `set_topology` moves them keeping all weights.

    ``fit`` runs the paper's Algorithm 1 on every batch, in one compiled step:

    1. the map starts as the image with zero codes;
    2. ``relaxation_passes`` (default K) passes over the K units without
       gradients, each unit encoding the map and writing its code into it (so
       K x K forward passes, in unit order);
    3. one more pass in unit order in which each unit encodes the map (the
       codes of the units before it already updated), computes its own loss
       (MSE reconstruction + L2, dropout on the code) and writes its code; each
       unit is then updated with the gradient of *its own* loss only (the map is
       a constant for the gradient, so no gradient flows between units).

    The labels of the data, if any, are ignored: learning is unsupervised.
    Logged per epoch, besides ``loss`` (the sum of the units' losses) and
    ``unit_<k>_loss``: ``unit_<k>_entropy``, the Shannon entropy (nats) of unit
    k's codes over the epoch estimated with a ``entropy_bins``-bin histogram
    between their min and max (`tfemergent.analysis.binned_entropy`, computed
    in-graph on a buffer that the training step fills), and ``entropy``, their
    sum. When an epoch has more than ``entropy_samples`` examples the entropy is
    that of its last ``entropy_samples`` examples.

    Called on images, the model returns the concatenated codes ``[batch, K *
    num_hidden]`` after the relaxation passes (what the logistic-regression
    probe reads, see `tfemergent.probes.LogisticRegressionProbe`).

    The units: ``model.units`` lists the K `MaskedAutoencoderUnit` layers in
    layout order, unit k named ``unit_<k>`` (``model.get_layer("unit_0")`` is
    ``model.units[0]``; the same k as in ``unit_<k>_loss`` and in
    ``receptive_fields[k]``). A unit's ``encoder_kernel``, ``decoder_kernel`` and
    ``decoder_bias`` are *slot* weights (one per position in its field windows);
    to compare units, or a unit before and after `set_topology`, use its
    map-level weights ``map_encoder_kernel()``, ``map_decoder_kernel()`` and
    ``map_decoder_bias()``, indexed by map cell.

    Reference: S. Borgohain, G. Kowadlo, D. Rawlinson, C. Bergmeir, K. Loo,
    H. Rangarajan, L. Kuhlmann, "Self-organising Neural Network Hierarchy" (2020).

    Args:
        image_shape: ``(ih, iw)`` of the input images (the paper's MNIST: 20 x 20
            after a centre crop). Images ``(batch, ih, iw)`` or ``(batch, ih, iw,
            1)``.
        num_units: K, >= 1 (the paper: 3).
        num_hidden: code size of every unit (the paper: 100).
        window_size: N, the side of the two receptive-field windows (the paper: 10).
        topology: ``"pyramidal"`` (default), ``"flat"``, ``"columnar"``,
            ``"random"`` (with ``topology_seed``) or a list of one field per unit;
            see `HierarchyLayout`.
        topology_seed: seed of the ``"random"`` topology.
        code_shape: ``(rows, cols)`` of a code block on the map (default square).
        dropout: dropout rate on each code in the reconstruction, in [0, 1).
        l2: L2 cost on each unit's field weights, >= 0.
        relaxation_passes: passes over all units before the training pass;
            default ``num_units`` (the paper's K x K forward passes); >= 0.
        entropy_bins: histogram bins of the entropy (the paper: 100).
        entropy_samples: most examples whose codes enter one epoch's entropy.
        seed: seed of the units' initializers and dropout, or None.
        **kwargs: base model arguments (``name``, ``dtype``...). A ``dtype`` policy
            is passed on to every unit: codes and the map in its compute dtype,
            weights in its variable dtype, the units' losses in at least float32.

    Example:

    >>> import keras, numpy as np
    >>> from tfemergent.models import SelfOrganisingHierarchy
    >>> keras.utils.set_random_seed(0)
    >>> images = np.random.default_rng(0).random((64, 8, 8)).astype("float32")
    >>> model = SelfOrganisingHierarchy((8, 8), num_hidden=16, window_size=4,
    ...                                 topology="pyramidal", seed=0)
    >>> model.feature_map_shape
    (8, 16)
    >>> model.compile(keras.optimizers.Adam(1e-3))
    >>> history = model.fit(images, batch_size=16, epochs=2, verbose=0)
    >>> sorted(history.history)
    ['entropy', 'loss', 'unit_0_entropy', 'unit_0_loss', 'unit_1_entropy', 'unit_1_loss', 'unit_2_entropy', 'unit_2_loss']
    >>> model.predict(images, verbose=0).shape
    (64, 48)
    >>> [unit.name for unit in model.units]
    ['unit_0', 'unit_1', 'unit_2']
    >>> model.get_layer("unit_1") is model.units[1]
    True
    >>> tuple(model.units[0].map_decoder_bias().shape)  # one entry per map cell
    (128,)
    >>> model.set_topology("flat")
    >>> model.receptive_fields[2]
    ((2, 0), (2, 4))
    """

    def __init__(
        self,
        image_shape=(20, 20),
        num_units=3,
        num_hidden=100,
        window_size=10,
        topology="pyramidal",
        topology_seed=None,
        code_shape=None,
        dropout=0.0,
        l2=0.0,
        relaxation_passes=None,
        entropy_bins=100,
        entropy_samples=65536,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.layout = HierarchyLayout(image_shape, num_units, num_hidden, window_size, code_shape)
        self.image_shape = self.layout.image_shape
        self.num_units = self.layout.num_units
        self.num_hidden = self.layout.num_hidden
        self.window_size = self.layout.window_size
        self.code_shape = self.layout.code_shape
        self.topology_seed = validate_seed("topology_seed", topology_seed)
        initial = self.layout.topology(topology, seed=self.topology_seed)
        self.dropout = validate_float("dropout", dropout, minimum=0.0, maximum=1.0)
        if self.dropout >= 1.0:
            raise ValueError(
                f"Argument `dropout` must be in [0, 1). Received: dropout={dropout!r}"
            )
        self.l2 = validate_float("l2", l2, minimum=0.0)
        if relaxation_passes is None:
            relaxation_passes = self.num_units
        self.relaxation_passes = validate_int("relaxation_passes", relaxation_passes, minimum=0)
        self.entropy_bins = validate_int("entropy_bins", entropy_bins, minimum=1)
        self.entropy_samples = validate_int("entropy_samples", entropy_samples, minimum=1)
        self.seed = validate_seed("seed", seed)
        self.units = []
        for k, field in enumerate(initial):
            initializer = "glorot_uniform"
            if self.seed is not None:
                initializer = keras.initializers.GlorotUniform(seed=self.seed * 1009 + k)
            self.units.append(
                MaskedAutoencoderUnit(
                    self.num_hidden,
                    field,
                    self.feature_map_shape,
                    window_size=self.window_size,
                    dropout=self.dropout,
                    l2=self.l2,
                    code_location=self.layout.code_locations[k],
                    code_shape=self.code_shape,
                    kernel_initializer=initializer,
                    seed=None if self.seed is None else self.seed * 1009 + k,
                    name=f"unit_{k}",
                    dtype=self.dtype_policy,
                )
            )
        self._code_cells = []  # flat cell indices of each code block, row-major, [H, 1]
        for k in range(self.num_units):
            row, col, rows, cols = self.layout.code_box(k)
            width = self.feature_map_shape[1]
            cells = (np.arange(row, row + rows)[:, None] * width + np.arange(col, col + cols))
            self._code_cells.append(cells.reshape(-1, 1).astype("int32"))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.unit_loss_trackers = [
            keras.metrics.Mean(name=f"unit_{k}_loss") for k in range(self.num_units)
        ]
        self._buffer = None
        self.build((None,) + self.image_shape)

    def build(self, input_shape=None):
        for unit in self.units:
            if not unit.built:
                unit.build((None,) + self.feature_map_shape)

    # ------------------------------------------------------------------ geometry

    @property
    def feature_map_shape(self):
        """``(h, w)`` of the feature map."""
        return self.layout.feature_map_shape

    @property
    def receptive_fields(self):
        """The current topology: one field ``((row0, col0), (row1, col1))`` per unit."""
        return [unit.current_receptive_field() for unit in self.units]

    def set_topology(self, topology, seed=None):
        """Move every unit's field (named topology or list of fields), keeping all weights."""
        fields = self.layout.topology(topology, seed=seed)
        for unit, field in zip(self.units, fields):
            unit.set_receptive_field(field)

    # ------------------------------------------------------------------ the map

    def _images(self, inputs):
        images = tf.convert_to_tensor(inputs)
        if images.shape.rank == 4 and images.shape[-1] == 1:
            images = images[..., 0]
        if images.shape.rank != 3 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"SelfOrganisingHierarchy expects images of shape (batch, {self.image_shape[0]}, "
                f"{self.image_shape[1]}) or (batch, {self.image_shape[0]}, "
                f"{self.image_shape[1]}, 1) (image_shape={self.image_shape}). "
                f"Received: images of shape {tuple(images.shape)}"
            )
        return tf.cast(images, self.compute_dtype)

    # The map is kept cell-major, ``[h*w, batch]``: units read their fields as row
    # gathers and write their codes as row scatters (see `MaskedAutoencoderUnit`).

    def _initial_cells(self, images):
        images = self._images(images)
        (height, width), (rows, cols) = self.feature_map_shape, self.image_shape
        padded = tf.pad(images, [[0, 0], [0, height - rows], [0, width - cols]])
        return tf.transpose(tf.reshape(padded, [-1, height * width]))

    def _write_cells(self, cells, unit, code):
        return tf.tensor_scatter_nd_update(cells, self._code_cells[unit], code)

    def _relax_cells(self, cells):
        for _ in range(self.relaxation_passes):
            for k, unit in enumerate(self.units):
                cells = self._write_cells(cells, k, unit.encode_cells(cells))
        return tf.stop_gradient(cells)

    def _to_map(self, cells):
        return tf.reshape(tf.transpose(cells), (-1,) + self.feature_map_shape)

    def _to_cells(self, feature_map):
        height, width = self.feature_map_shape
        return tf.transpose(tf.reshape(feature_map, [-1, height * width]))

    def initial_feature_map(self, images):
        """The map at the start of a batch: the image, zero codes. ``[batch, h, w]``."""
        return self._to_map(self._initial_cells(images))

    def write_code(self, feature_map, unit, code):
        """``feature_map`` ``[batch, h, w]`` with unit ``unit``'s code block set to ``code``."""
        cells = self._write_cells(self._to_cells(feature_map), unit, tf.transpose(code))
        return self._to_map(cells)

    def relax(self, feature_map):
        """The ``relaxation_passes`` passes of all units over the map (no gradient)."""
        return self._to_map(self._relax_cells(self._to_cells(feature_map)))

    def _codes_cells(self, cells):
        codes = []
        for k, unit in enumerate(self.units):
            code = unit.encode_cells(cells)
            cells = self._write_cells(cells, k, code)
            codes.append(code)
        return cells, tf.concat(codes, axis=0)

    def feature_map(self, images):
        """The map after relaxation and one more pass: what the codes are read from."""
        cells, _ = self._codes_cells(self._relax_cells(self._initial_cells(images)))
        return self._to_map(cells)

    def call(self, inputs, training=None):
        _, codes = self._codes_cells(self._relax_cells(self._initial_cells(inputs)))
        return tf.transpose(codes)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_units * self.num_hidden)

    # ------------------------------------------------------------------ training

    def compile(self, optimizer="adam", loss=None, **kwargs):
        if loss is not None:
            raise ValueError(
                "SelfOrganisingHierarchy trains each unit on its own reconstruction loss; "
                f"compile it without `loss`. Received: loss={loss!r}"
            )
        super().compile(optimizer=optimizer, **kwargs)

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        return [self.loss_tracker, *self.unit_loss_trackers]

    def _unit_losses(self, images, training):
        cells = self._relax_cells(self._initial_cells(images))
        codes, losses = [], []
        for k, unit in enumerate(self.units):
            code, loss = unit.autoencode_cells(cells, training=training)
            code = tf.stop_gradient(code)
            cells = self._write_cells(cells, k, code)
            codes.append(code)
            losses.append(loss)
        return tf.transpose(tf.concat(codes, axis=0)), losses

    def _record(self, losses):
        self.loss_tracker.update_state(tf.add_n(losses))
        for tracker, loss in zip(self.unit_loss_trackers, losses):
            tracker.update_state(loss)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            codes, losses = self._unit_losses(images, training=True)
            total = tf.add_n(losses)
            # The optimizer sums the replicas' gradients: as Keras does for its own
            # losses, each replica's loss counts 1 / replicas, so that a distributed
            # step makes the update of the global batch.
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            if replicas > 1:
                total = total / replicas
            # Under "mixed_float16" the optimizer is a LossScaleOptimizer: scale the
            # loss here, `apply` unscales the gradients (identity otherwise).
            total = self.optimizer.scale_loss(total)
        variables = self.trainable_variables
        gradients = tape.gradient(total, variables)
        self.optimizer.apply(gradients, variables)
        if self._buffer is not None:
            self._buffer.write(codes)
        return self._record(losses)

    def test_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        _, losses = self._unit_losses(images, training=False)
        return self._record(losses)

    def predict_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self(images, training=False)

    # ------------------------------------------------------------------ entropy

    def reset_code_buffer(self):
        """Empty the epoch's code buffer (done by ``fit`` at each epoch start)."""
        if self._buffer is not None:
            self._buffer.reset()

    def _ensure_code_buffer(self):
        if self._buffer is None:
            self._buffer = _CodeBuffer(
                self.distribute_strategy, self.num_units, self.entropy_samples, self.num_hidden
            )
            # A train function traced before the buffer existed does not fill it.
            self.train_function = None

    def epoch_entropies(self):
        """``{"unit_<k>_entropy": H_k, "entropy": sum}`` of the codes buffered this epoch."""
        if self._buffer is None:
            return {}
        codes = self._buffer.local_codes()
        if codes.shape[0] == 0:
            return {}
        values = self._entropies(codes).numpy()
        entropies = {f"unit_{k}_entropy": float(v) for k, v in enumerate(values)}
        entropies["entropy"] = float(np.sum(values))
        return entropies

    @tf.function(reduce_retracing=True)
    def _entropies(self, codes):
        codes = tf.reshape(codes, [-1, self.num_units, self.num_hidden])
        return tf.stack(
            [
                binned_entropy(codes[:, k, :], num_bins=self.entropy_bins)
                for k in range(self.num_units)
            ]
        )

    def fit(self, *args, callbacks=None, **kwargs):
        self._ensure_code_buffer()
        callbacks = [_EpochEntropy(self), *(callbacks or [])]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def export(self, filepath, *args, **kwargs):
        if not getattr(self, "_called", False):
            # Keras exports subclassed models only once called; one image suffices.
            self(tf.zeros((1,) + self.image_shape, self.compute_dtype))
        return super().export(filepath, *args, **kwargs)

    # ------------------------------------------------------------------ config

    def get_config(self):
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "image_shape": list(self.image_shape),
            "num_units": self.num_units,
            "num_hidden": self.num_hidden,
            "window_size": self.window_size,
            "topology": [[list(w) for w in f] for f in self.receptive_fields],
            "topology_seed": self.topology_seed,
            "code_shape": list(self.code_shape),
            "dropout": self.dropout,
            "l2": self.l2,
            "relaxation_passes": self.relaxation_passes,
            "entropy_bins": self.entropy_bins,
            "entropy_samples": self.entropy_samples,
            "seed": self.seed,
        }
        return config
