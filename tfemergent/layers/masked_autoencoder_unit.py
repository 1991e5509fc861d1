"""Autoencoder unit that reads a movable receptive field of a 2-D feature map."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.geometry import receptive_fields as fields
from tfemergent.kernels import BlockMask
from tfemergent.kernels import masked_matmul
from tfemergent.utils import keras_multi_worker
from tfemergent.utils.dtypes import cost_dtype, to_loss_dtype
from tfemergent.utils.seeding import seeded_initializer
from tfemergent.utils.validation import (
    validate_float,
    validate_int,
    validate_keras_object,
    validate_seed,
)


@keras.saving.register_keras_serializable(package="tfemergent")
class MaskedAutoencoderUnit(keras.layers.Layer):
    """Under-complete ReLU autoencoder reading two windows of a feature map.

    The unit of Borgohain et al.'s self-organising hierarchy. Its input is a 2-D
    feature map ``F`` of shape ``feature_map_shape = (h, w)`` (in the hierarchy it
    holds the image and the codes of all units) seen through the unit's
    *receptive field*: two ``window_size x window_size`` windows of ``F``, so
    ``2 * N * N`` inputs. It encodes them into a code of ``num_hidden`` values,
    ``code = relu(x_field @ W_enc + b_enc)``, and reconstructs them linearly,
    ``x_hat = dropout(code) @ W_dec + b_dec``; its own loss is the mean squared
    reconstruction error plus ``l2 * (|W_enc|^2 + |W_dec|^2)``. The layer's
    output is the code; called as a layer it adds its loss with ``add_loss``, so
    ``model.fit(x)`` with ``loss=None`` trains it (the hierarchy model instead
    calls `autoencode` and gives each unit only its own loss).

    Weights over the whole map, as in the paper: the unit has one encoder weight
    per map cell and hidden unit (``h*w x num_hidden``, initialised over the whole
    map with ``kernel_initializer``) and likewise for the decoder, of which only
    the cells inside the field are used and trained (``theta := theta *
    delta``). They are held in two parts: the *field* weights (trainable,
    ``2*N*N`` rows, the only ones the forward pass and the optimizer touch, so a
    step costs ``O(batch * 2N^2 * num_hidden)`` whatever the map size) and the
    *retained* weights of every map cell (non-trainable). `set_receptive_field`
    moves the field without rebuilding: it writes the field weights back to the
    cells they belong to and reads the weights of the new cells, so a cell that
    leaves the field and later re-enters it gets back exactly its old weights,
    and weights outside the field never change while training. The current
    field is held in the non-trainable variables ``receptive_field_windows``
    (``[2, 2]`` int32, the top-left (row, col) of each window) and
    ``receptive_field_mask`` (the binary indicator ``delta`` over the map), so it
    is saved with the weights; `map_encoder_kernel` / `map_decoder_kernel` /
    `map_decoder_bias` give the full ``theta`` over the map.

    Slot vs map-level weights: ``encoder_kernel``, ``decoder_kernel`` and
    ``decoder_bias`` are *slot* weights, one row (column, entry) per position in
    the field windows (window 0 row-major, then window 1), not per map cell. To
    compare weights across units, or before and after `set_receptive_field`, use
    the map-level accessors, which index by map cell (``row * w + col``); the
    ``retained_*`` variables alone are stale at the cells inside the field.

    Optimizer state follows the field slots: after a move, the moments of a
    field weight (Adam) are those of the weight that was in the same window slot
    before, not those of the cell. The two windows may not overlap each other
    (a cell would be read twice), and, when ``code_location`` is given, may not
    overlap the unit's own code.

    Reference: S. Borgohain, G. Kowadlo, D. Rawlinson, C. Bergmeir, K. Loo,
    H. Rangarajan, L. Kuhlmann, "Self-organising Neural Network Hierarchy" (2020).

    Args:
        num_hidden: size of the code, >= 1 (the paper: 100).
        receptive_field: the two windows, ``((row0, col0), (row1, col1))``, top-left
            cells; each window must lie inside the map.
        feature_map_shape: ``(h, w)`` of the feature map.
        window_size: ``N``, the side of each window, >= 1 (the paper: 10).
        dropout: dropout rate on the code before decoding, in [0, 1).
        l2: L2 cost on the field's encoder and decoder weights, >= 0.
        code_location: ``(row, col)`` of the top-left cell of the unit's code on
            the map, or None (the code is not on the map). Only used to reject
            fields that read the unit's own code.
        code_shape: ``(rows, cols)`` of the code block, ``rows * cols =
            num_hidden``; default: square when possible (`tfemergent.geometry.receptive_fields.default_code_shape`).
        activation: activation of the code (default ``"relu"``).
        kernel_initializer: initializer of the ``h*w x num_hidden`` encoder and
            ``num_hidden x h*w`` decoder weights over the whole map.
        bias_initializer: initializer of the biases.
        seed: integer seed of every random draw of the unit: the initial encoder and
            decoder weights (each from its own seed derived from ``seed``; an
            initializer with its own integer seed keeps it) and the dropout. None:
            Keras' global seeding.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: the feature map, ``(batch, h, w)``.
        training: whether dropout is applied to the code in the reconstruction.

    Input shape:
        ``(batch_size, h, w)``.

    Output shape:
        ``(batch_size, num_hidden)``: the code.

    Example:

    >>> import numpy as np
    >>> from tfemergent.layers import MaskedAutoencoderUnit
    >>> unit = MaskedAutoencoderUnit(4, ((0, 0), (0, 3)), (6, 6), window_size=3,
    ...                              code_location=(4, 0), code_shape=(2, 2))
    >>> feature_map = np.random.default_rng(0).random((8, 6, 6)).astype("float32")
    >>> unit(feature_map).shape
    TensorShape([8, 4])
    >>> unit.receptive_field_mask.numpy()[:3, :]
    array([[1., 1., 1., 1., 1., 1.],
           [1., 1., 1., 1., 1., 1.],
           [1., 1., 1., 1., 1., 1.]], dtype=float32)
    >>> before = unit.map_encoder_kernel().numpy()
    >>> unit.set_receptive_field(((1, 0), (1, 3)))  # one row down
    >>> np.array_equal(unit.map_encoder_kernel().numpy(), before)  # nothing lost
    True
    >>> unit.set_receptive_field(((3, 1), (0, 0)))
    Traceback (most recent call last):
    ...
    ValueError: Argument `receptive_field`: window 0 overlaps the unit's own code at rows 4..5, columns 0..1; a unit may not read its own code. Received: receptive_field=((3, 1), (0, 0))
    """

    def __init__(
        self,
        num_hidden,
        receptive_field,
        feature_map_shape,
        window_size=10,
        dropout=0.0,
        l2=0.0,
        code_location=None,
        code_shape=None,
        activation="relu",
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        keras_multi_worker.patch_if_multi_worker()
        self.num_hidden = validate_int("num_hidden", num_hidden, minimum=1)
        self.feature_map_shape = fields.validate_feature_map_shape(
            "feature_map_shape", feature_map_shape
        )
        self.window_size = validate_int(
            "window_size", window_size, minimum=1, maximum=min(self.feature_map_shape)
        )
        self.dropout = validate_float("dropout", dropout, minimum=0.0, maximum=1.0)
        if self.dropout >= 1.0:
            raise ValueError(
                f"Argument `dropout` must be in [0, 1). Received: dropout={dropout!r}"
            )
        self.l2 = validate_float("l2", l2, minimum=0.0)
        self.code_location = fields.validate_pair("code_location", code_location, allow_none=True)
        self.code_shape = fields.validate_code_shape(code_shape, self.num_hidden)
        if self.code_location is not None:
            row, col = self.code_location
            rows, cols = self.code_shape
            height, width = self.feature_map_shape
            if not (0 <= row <= height - rows and 0 <= col <= width - cols):
                raise ValueError(
                    f"Argument `code_location`: the {rows}x{cols} code at (row, col)=({row}, "
                    f"{col}) leaves the {height}x{width} feature map. "
                    f"Received: code_location={code_location!r}"
                )
        self.receptive_field = self._check_field("receptive_field", receptive_field)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = validate_keras_object(
            "kernel_initializer", kernel_initializer, keras.initializers.get, "initializer"
        )
        self.bias_initializer = validate_keras_object(
            "bias_initializer", bias_initializer, keras.initializers.get, "initializer"
        )
        self.seed = validate_seed("seed", seed)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    # ------------------------------------------------------------------ geometry

    @property
    def code_box(self):
        """``(row, col, rows, cols)`` of the code on the map, or None."""
        if self.code_location is None:
            return None
        return self.code_location + self.code_shape

    @property
    def num_field_inputs(self):
        """``2 * N * N``: the number of map cells the unit reads."""
        return fields.NUM_WINDOWS * self.window_size**2

    def _check_field(self, name, receptive_field):
        return fields.validate_receptive_field(
            name, receptive_field, self.feature_map_shape, self.window_size, self.code_box
        )

    def _field_indices(self):
        """Flat map indices of the field's cells (a tensor, from the window variable)."""
        offsets = tf.range(self.window_size, dtype="int32")
        windows = self.receptive_field_windows
        rows = windows[:, 0, None, None] + offsets[None, :, None]
        cols = windows[:, 1, None, None] + offsets[None, None, :]
        return tf.reshape(rows * self.feature_map_shape[1] + cols, [-1])

    # ------------------------------------------------------------------ build

    def build(self, input_shape):
        if tuple(input_shape[1:]) != self.feature_map_shape:
            raise ValueError(
                f"{type(self).__name__} expects feature maps of shape (batch, "
                f"{self.feature_map_shape[0]}, {self.feature_map_shape[1]}) = (batch,) + "
                f"feature_map_shape. Received: input_shape={tuple(input_shape)}"
            )
        height, width = self.feature_map_shape
        num_cells = height * width
        # theta over the whole map, as the paper initialises it; the field rows are
        # copied into the trainable field weights below.
        self.retained_encoder_kernel = self.add_weight(
            name="retained_encoder_kernel",
            shape=(num_cells, self.num_hidden),
            initializer=seeded_initializer(self.kernel_initializer, self.seed, 0),
            trainable=False,
        )
        self.retained_decoder_kernel = self.add_weight(
            name="retained_decoder_kernel",
            shape=(self.num_hidden, num_cells),
            initializer=seeded_initializer(self.kernel_initializer, self.seed, 1),
            trainable=False,
        )
        self.retained_decoder_bias = self.add_weight(
            name="retained_decoder_bias",
            shape=(num_cells,),
            initializer=seeded_initializer(self.bias_initializer, self.seed, 2),
            trainable=False,
        )
        self.receptive_field_windows = self.add_weight(
            name="receptive_field_windows",
            shape=(fields.NUM_WINDOWS, 2),
            dtype="int32",
            initializer=keras.initializers.Constant(np.array(self.receptive_field)),
            trainable=False,
        )
        self.receptive_field_mask = self.add_weight(
            name="receptive_field_mask",
            shape=self.feature_map_shape,
            initializer=keras.initializers.Constant(
                fields.field_mask(self.receptive_field, self.feature_map_shape, self.window_size)
            ),
            trainable=False,
        )
        indices = fields.window_indices(
            self.receptive_field, self.feature_map_shape[1], self.window_size
        )
        self.encoder_kernel = self.add_weight(
            name="encoder_kernel",
            shape=(self.num_field_inputs, self.num_hidden),
            initializer=lambda shape, dtype=None: tf.gather(
                self.retained_encoder_kernel, indices
            ),
            autocast=False,  # read at full precision by the L2 cost; the forward casts
        )
        self.encoder_bias = self.add_weight(
            name="encoder_bias",
            shape=(self.num_hidden,),
            initializer=seeded_initializer(self.bias_initializer, self.seed, 3),
        )
        self.decoder_kernel = self.add_weight(
            name="decoder_kernel",
            shape=(self.num_hidden, self.num_field_inputs),
            initializer=lambda shape, dtype=None: tf.gather(
                self.retained_decoder_kernel, indices, axis=1
            ),
            autocast=False,
        )
        self.decoder_bias = self.add_weight(
            name="decoder_bias",
            shape=(self.num_field_inputs,),
            initializer=lambda shape, dtype=None: tf.gather(self.retained_decoder_bias, indices),
        )

    # ------------------------------------------------------------------ forward

    def read_field(self, feature_map):
        """The field's cells of ``feature_map`` ``[batch, h, w]`` -> ``[batch, 2*N*N]``."""
        return tf.transpose(self.read_field_cells(self._cells(feature_map)))

    def encode(self, feature_map):
        """The code ``[batch, num_hidden]`` of a feature map ``[batch, h, w]``."""
        return tf.transpose(self.encode_cells(self._cells(feature_map)))

    def autoencode(self, feature_map, training=None):
        """``(code, loss)``: the code and the unit's own loss (MSE + L2) on a batch.

        The code is in the layer's ``compute_dtype``, the loss in its
        ``variable_dtype`` (at least float32, also under ``"mixed_float16"``).
        """
        code, loss = self.autoencode_cells(self._cells(feature_map), training=training)
        return tf.transpose(code), loss

    def _cells(self, feature_map):
        if not self.built:
            self.build(tuple(feature_map.shape))
        height, width = self.feature_map_shape
        shape = tuple(feature_map.shape)
        if len(shape) != 3 or any(
            size is not None and size != expected
            for size, expected in zip(shape[1:], self.feature_map_shape)
        ):
            raise ValueError(
                f"{type(self).__name__} expects feature maps of shape (batch, {height}, "
                f"{width}) = (batch,) + feature_map_shape. Received: "
                f"feature_map.shape={shape}"
            )
        return tf.transpose(tf.reshape(feature_map, [-1, height * width]))

    def _l2_cost(self):
        dtype = cost_dtype(self.variable_dtype)
        return self.l2 * (
            tf.reduce_sum(tf.square(tf.cast(self.encoder_kernel, dtype)))
            + tf.reduce_sum(tf.square(tf.cast(self.decoder_kernel, dtype)))
        )

    # Cell-major forms: the map as ``[h*w, batch]`` (one row per cell). Reading a
    # field is then a gather of whole rows, and writing a code a row scatter;
    # the hierarchy keeps its map this way (faster than ``[batch, h*w]``: RESULTS.md,
    # "Kernel design measurements").

    def read_field_cells(self, cells):
        """The field's rows of a cell-major map ``[h*w, batch]`` -> ``[2*N*N, batch]``."""
        return tf.gather(cells, self._field_indices())

    def field_block_mask(self):
        """The field as a one-block `BlockMask` over ``[h*w, num_hidden]``.

        Block 0 connects the field's ``2*N*N`` cells (read from the window
        variable, so it follows `set_receptive_field`) to all ``num_hidden``
        codes; the encoder kernel is its block-stored weights.
        """
        height, width = self.feature_map_shape
        return BlockMask(
            self._field_indices()[None, :],
            tf.range(self.num_hidden, dtype="int32")[None, :],
            height * width,
            self.num_hidden,
            disjoint_rows=True,
        )

    def _encoder_product(self, cells):
        """``(x_map @ (theta * delta))^T``, cell-major: `masked_matmul`'s block path."""
        return masked_matmul(
            tf.cast(cells, self.compute_dtype),
            tf.cast(self.encoder_kernel, self.compute_dtype)[None],
            self.field_block_mask(),
            features_first=True,
        )

    def encode_cells(self, cells):
        """The code, cell-major: ``[num_hidden, batch]`` from ``[h*w, batch]``."""
        bias = tf.cast(self.encoder_bias, self.compute_dtype)
        return self.activation(self._encoder_product(cells) + bias[:, None])

    def autoencode_cells(self, cells, training=None):
        """`autoencode` on a cell-major map: ``(code [num_hidden, batch], loss)``."""
        field = tf.cast(self.read_field_cells(cells), self.compute_dtype)
        code = self.encode_cells(cells)
        hidden = code
        if training and self.dropout > 0.0:
            hidden = keras.random.dropout(code, self.dropout, seed=self.seed_generator)
        decoder_kernel = tf.cast(self.decoder_kernel, self.compute_dtype)
        decoder_bias = tf.cast(self.decoder_bias, self.compute_dtype)
        reconstruction = (
            tf.matmul(decoder_kernel, hidden, transpose_a=True) + decoder_bias[:, None]
        )
        # The cost in at least float32 (a float16 mean of squares loses precision).
        dtype = cost_dtype(self.variable_dtype)
        loss = tf.reduce_mean(tf.square(tf.cast(reconstruction, dtype) - tf.cast(field, dtype)))
        if self.l2 > 0.0:
            loss += self._l2_cost()
        return code, loss

    def call(self, inputs, training=None):
        code, loss = self.autoencode(inputs, training=training)
        self.add_loss(to_loss_dtype(loss))
        return code

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_hidden)

    # ------------------------------------------------------------------ the field

    def current_receptive_field(self):
        """The current field ``((row0, col0), (row1, col1))`` as Python ints."""
        if not self.built:
            return self.receptive_field
        windows = np.asarray(keras.ops.convert_to_numpy(self.receptive_field_windows))
        return tuple((int(r), int(c)) for r, c in windows)

    def set_receptive_field(self, receptive_field):
        """Move the field to ``receptive_field`` keeping every weight.

        The field weights are written back to the map cells they belong to and
        the weights of the new cells are read from the retained weights; the
        variables keep their identity (no rebuild, the optimizer keeps tracking
        them). Before the layer is built this only changes the initial field.

        Raises:
            ValueError: if the field is not valid for this unit (see the class).
        """
        receptive_field = self._check_field("receptive_field", receptive_field)
        if not self.built:
            self.receptive_field = receptive_field
            return
        old = self._field_indices()[:, None]
        self.retained_encoder_kernel.assign(
            tf.tensor_scatter_nd_update(self.retained_encoder_kernel, old, self.encoder_kernel)
        )
        self.retained_decoder_kernel.assign(
            tf.transpose(
                tf.tensor_scatter_nd_update(
                    tf.transpose(self.retained_decoder_kernel),
                    old,
                    tf.transpose(self.decoder_kernel),
                )
            )
        )
        self.retained_decoder_bias.assign(
            tf.tensor_scatter_nd_update(self.retained_decoder_bias, old, self.decoder_bias)
        )
        self.receptive_field_windows.assign(np.array(receptive_field, "int32"))
        self.receptive_field_mask.assign(
            fields.field_mask(receptive_field, self.feature_map_shape, self.window_size)
        )
        self.receptive_field = receptive_field
        new = self._field_indices()
        self.encoder_kernel.assign(tf.gather(self.retained_encoder_kernel, new))
        self.decoder_kernel.assign(tf.gather(self.retained_decoder_kernel, new, axis=1))
        self.decoder_bias.assign(tf.gather(self.retained_decoder_bias, new))

    def map_encoder_kernel(self):
        """theta of the encoder over the map, ``[h*w, num_hidden]`` (field weights included)."""
        return tf.tensor_scatter_nd_update(
            self.retained_encoder_kernel, self._field_indices()[:, None], self.encoder_kernel
        )

    def map_decoder_kernel(self):
        """theta of the decoder over the map, ``[num_hidden, h*w]`` (field weights included)."""
        return tf.transpose(
            tf.tensor_scatter_nd_update(
                tf.transpose(self.retained_decoder_kernel),
                self._field_indices()[:, None],
                tf.transpose(self.decoder_kernel),
            )
        )

    def map_decoder_bias(self):
        """The decoder bias over the map, ``[h*w]`` (field entries included)."""
        return tf.tensor_scatter_nd_update(
            self.retained_decoder_bias, self._field_indices()[:, None], self.decoder_bias
        )

    # ------------------------------------------------------------------ config

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_hidden": self.num_hidden,
                "receptive_field": [list(w) for w in self.current_receptive_field()],
                "feature_map_shape": list(self.feature_map_shape),
                "window_size": self.window_size,
                "dropout": self.dropout,
                "l2": self.l2,
                "code_location": None
                if self.code_location is None
                else list(self.code_location),
                "code_shape": list(self.code_shape),
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config
