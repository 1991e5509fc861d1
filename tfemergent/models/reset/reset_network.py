"""Hannagan's Reset network as a `keras.Model`: levels of ResetGrid, a final network."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.layers.reset_grid import (
    ResetGrid,
    apply_keras_conv_stack,
    keras_conv_stack,
    normalize_subnetwork,
)
from tfemergent.utils.dtypes import cost_dtype, to_loss_dtype
from tfemergent.utils.validation import (
    validate_float,
    validate_int,
    validate_seed,
    validate_spec,
)

# The network on the last grid: two conv stages and one hidden dense layer. The
# paper uses a ResNet-20 here; this is a small CPU-sized default (pass
# {"block": "residual", "conv_filters": [16, 32, 64]} for a ResNet-like one).
DEFAULT_FINAL_NETWORK = {
    "block": "plain",
    "conv_filters": [16, 32],
    "kernel_size": 3,
    "padding": "same",
    "pooling": "max",
    "pool_size": 2,
    "dense_units": [64],
    "activation": "relu",
}
# The reconstruction head: dense layers from the flattened grid to the image.
DEFAULT_RECONSTRUCTION = {
    "dense_units": [256], "activation": "relu", "output_activation": "sigmoid"
}


def _per_level(name, value, num_levels):
    """``value`` repeated for every level, or the list given for the levels."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_levels:
            raise ValueError(
                f"Argument `{name}` must be one value for every level or a list of "
                f"{num_levels} values (one per level, as `grid_size`). "
                f"Received: {name}={value!r}"
            )
        return list(value)
    return [value] * num_levels


def normalize_final_network(final_network):
    """The full final-network spec: `DEFAULT_FINAL_NETWORK` updated with ``final_network``."""
    final_network = validate_spec(
        "final_network", final_network, DEFAULT_FINAL_NETWORK,
        note="its outputs are set by `num_outputs` and `output_activation`",
    )
    spec = normalize_subnetwork(final_network)
    spec.pop("output_activation")
    return spec


def normalize_reconstruction(reconstruction):
    """None (no reconstruction head) or the full reconstruction-head spec."""
    if reconstruction is None or reconstruction is False:
        return None
    if reconstruction is True:
        reconstruction = {}
    if not isinstance(reconstruction, dict):
        raise ValueError(
            "Argument `reconstruction` must be False/None (no reconstruction head), True "
            f"(the default head {DEFAULT_RECONSTRUCTION}) or a dict with some of its keys. "
            f"Received: reconstruction={reconstruction!r}"
        )
    spec = validate_spec("reconstruction", reconstruction, DEFAULT_RECONSTRUCTION)
    checked = normalize_subnetwork(
        {
            "dense_units": spec["dense_units"],
            "activation": spec["activation"],
            "output_activation": spec["output_activation"],
        }
    )
    return {key: checked[key] for key in DEFAULT_RECONSTRUCTION}


def _seeded(initializer, seed):
    """A copy of the Keras initializer ``initializer`` with seed ``seed`` (or itself)."""
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    if seed is None or "seed" not in config:
        return initializer
    return type(initializer).from_config({**config, "seed": int(seed)})


class _FunctionCache:
    """Compiled analysis functions, keyed by purpose. A plain object, so that
    neither Keras nor TensorFlow tracks (saves or exports) the functions."""

    def __init__(self):
        self.functions = {}


@keras.saving.register_keras_serializable(package="tfemergent")
class ResetNetwork(keras.Model):
    """A Reset network: levels of n x n independent sub-networks, then a final network.

    Hannagan's ``Reset(n, m)`` of depth 2 (the paper's Figure 2): ``n * n``
    independent sub-networks read the image, their outputs are tiled into an
    ``m x m`` grid (`tfemergent.layers.ResetGrid`), dropout is applied to the
    grid, and a final network reads the grid as a one-channel image and gives
    the outputs. Deeper networks (``grid_size=[n1, n2, ...]``) stack more grid
    levels: level ``l + 1``'s sub-networks all read level ``l``'s grid. Only the
    last level produces outputs (the paper's requirement 3): the grids
    organise themselves because of the task.

    The output head is a dense layer of ``num_outputs`` units with
    ``output_activation``: ``"softmax"`` for classification (compile with
    ``"sparse_categorical_crossentropy"``), ``"sigmoid"`` for multi-label soft
    targets such as the paper's 100-d number codes (compile with
    ``"binary_crossentropy"``), ``"linear"`` for regression.

    With ``reconstruction``, a second network reads the (dropped-out) last grid
    and reconstructs the input image (flatten, dense layers, a dense layer of
    ``height * width * channels`` units with the head's ``"output_activation"``,
    ``"sigmoid"`` by default for images in [0, 1]). Its mean squared error
    times ``reconstruction_weight`` is added to the training loss with
    ``add_loss`` and reported as the metric ``reconstruction_loss``. The paper
    (Discussion) reports that this regulariser spreads activity more evenly
    over the grid.

    Final-network spec (``final_network``, a flat dict; missing keys take
    `DEFAULT_FINAL_NETWORK`): the keys of `ResetGrid`'s sub-network spec except
    ``"output_activation"``: ``"block"`` (``"plain"`` or ``"residual"``),
    ``"conv_filters"``, ``"kernel_size"``, ``"padding"``, ``"pooling"``,
    ``"pool_size"``, ``"dense_units"``, ``"activation"``. The paper's final
    network is a ResNet-20; the default is a small CPU-sized CNN.

    `grid_activations` returns the grid of any level (no dropout) for the
    analysis of `tfemergent.analysis.dprime_maps` and the indices;
    `tfemergent.callbacks.ResetTensorBoard` logs them during training.

    Sublayers: ``model.grid_layers`` lists the `ResetGrid` layer of each grid
    level, named ``grid_0``, ``grid_1``... (so ``model.get_layer("grid_0")`` is
    ``model.grid_layers[0]``; its ``num_subnetworks``, ``grid_width`` and weights
    are those of that level); ``model.grid_dropouts`` holds their dropouts
    (``grid_dropout_<level>``) and ``model.final_layers`` the layers of the final
    network (``final_...``).

    Reference: T. Hannagan, "Reset networks" (2021).

    Args:
        num_outputs: number of output units (classes, code dimensions).
        grid_size: ``n``, sub-networks per side of the grid; a list of such
            values for several grid levels (depth ``len(grid_size) + 1``).
        grid_width: ``m``, grid units per side (default 32), a multiple of the
            level's ``grid_size``; one value or one per level.
        subnetwork: sub-network spec of `ResetGrid` (dict or None), one for all
            levels or a list with one per level.
        final_network: spec of the network on the last grid (see above), or None.
        output_activation: activation of the output layer: ``"softmax"``
            (default), ``"sigmoid"``, ``"linear"`` or another Keras activation name.
        grid_dropout: dropout rate on every grid during training, in [0, 1)
            (the paper: 0.5).
        reconstruction: False (default), True (the default head
            `DEFAULT_RECONSTRUCTION`), or a dict with some of its keys
            (``"dense_units"``, ``"activation"``, ``"output_activation"``).
        reconstruction_weight: weight of the reconstruction MSE in the loss, >= 0.
        seed: integer seed of all weight initialisations and the dropout, or None.
        **kwargs: `keras.Model` arguments (``name``, ``dtype``...). A ``dtype``
            policy is passed on to every sublayer; the reconstruction MSE is
            computed in at least float32 and added in Keras' loss dtype.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import ResetNetwork
    >>> model = ResetNetwork(10, grid_size=2, grid_width=8,
    ...                      subnetwork={"conv_filters": [4], "dense_units": [8]},
    ...                      final_network={"conv_filters": [4], "dense_units": [8]},
    ...                      reconstruction=True, seed=0)
    >>> model.compile("adam", "sparse_categorical_crossentropy")
    >>> images = np.random.default_rng(0).random((16, 12, 12, 1)).astype("float32")
    >>> labels = np.arange(16) % 10
    >>> history = model.fit(images, labels, epochs=1, batch_size=8, verbose=0)
    >>> sorted(history.history)
    ['loss', 'reconstruction_loss']
    >>> model.predict(images, verbose=0).shape
    (16, 10)
    >>> model.grid_activations(images).shape  # the 8 x 8 grid of each image
    (16, 8, 8)
    >>> [layer.name for layer in model.grid_layers]
    ['grid_0']
    >>> model.get_layer("grid_0") is model.grid_layers[0]
    True
    """

    def __init__(
        self,
        num_outputs,
        grid_size=4,
        grid_width=32,
        subnetwork=None,
        final_network=None,
        output_activation="softmax",
        grid_dropout=0.5,
        reconstruction=False,
        reconstruction_weight=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_outputs = validate_int("num_outputs", num_outputs, minimum=1)
        if isinstance(grid_size, (list, tuple)):
            if not grid_size:
                raise ValueError(
                    "Argument `grid_size` must be an integer >= 1 or a non-empty list "
                    f"of them (one per grid level). Received: grid_size={grid_size!r}"
                )
            sizes = [validate_int("grid_size", size, minimum=1) for size in grid_size]
        else:
            sizes = [validate_int("grid_size", grid_size, minimum=1)]
        num_levels = len(sizes)
        widths = [
            validate_int("grid_width", width, minimum=1)
            for width in _per_level("grid_width", grid_width, num_levels)
        ]
        specs = [
            normalize_subnetwork(spec)
            for spec in _per_level("subnetwork", subnetwork, num_levels)
        ]
        self.grid_sizes = sizes
        self.grid_widths = widths
        self.subnetworks = specs
        self._grid_size_arg = list(sizes) if isinstance(grid_size, (list, tuple)) else sizes[0]
        self._grid_width_arg = list(widths) if isinstance(grid_width, (list, tuple)) else widths[0]
        self._subnetwork_arg = (
            [dict(spec) for spec in specs] if isinstance(subnetwork, (list, tuple))
            else dict(specs[0])
        )
        self.final_network = normalize_final_network(final_network)
        if not isinstance(output_activation, str):
            raise ValueError(
                "Argument `output_activation` must be the name of a Keras activation "
                f"('softmax', 'sigmoid', 'linear'...). Received: "
                f"output_activation={output_activation!r}"
            )
        try:
            keras.activations.get(output_activation)
        except ValueError:
            raise ValueError(
                "Argument `output_activation` is not a Keras activation. "
                f"Received: output_activation={output_activation!r}"
            ) from None
        self.output_activation = output_activation
        self.grid_dropout = validate_float("grid_dropout", grid_dropout, minimum=0.0)
        if self.grid_dropout >= 1.0:
            raise ValueError(
                "Argument `grid_dropout` must be in [0, 1) (1 would drop the whole grid). "
                f"Received: grid_dropout={grid_dropout!r}"
            )
        self.reconstruction = normalize_reconstruction(reconstruction)
        self.reconstruction_weight = validate_float(
            "reconstruction_weight", reconstruction_weight, minimum=0.0
        )
        self.seed = validate_seed("seed", seed)

        def level_seed(index):
            return None if self.seed is None else self.seed * 1009 + index

        # ResetGrid validates grid_width % grid_size.
        # Every sublayer follows the model's dtype policy (``dtype=...`` or global).
        dtype = self.dtype_policy
        self.grid_layers = [
            ResetGrid(size, spec, width, seed=level_seed(level), name=f"grid_{level}",
                      dtype=dtype)
            for level, (size, width, spec) in enumerate(zip(sizes, widths, specs))
        ]
        self.grid_dropouts = [
            keras.layers.Dropout(self.grid_dropout, seed=level_seed(100 + level),
                                 name=f"grid_dropout_{level}", dtype=dtype)
            for level in range(num_levels)
        ]
        self.final_layers, self._final_plan = self._make_convnet(
            self.final_network, "final", level_seed(200)
        )
        self.output_layer = keras.layers.Dense(
            self.num_outputs,
            activation=self.output_activation,
            kernel_initializer=_seeded("glorot_uniform", level_seed(299)),
            name="outputs",
            dtype=dtype,
        )
        self._decoder_layers = []
        if self.reconstruction is not None:
            activation = self.reconstruction["activation"]
            for index, units in enumerate(self.reconstruction["dense_units"]):
                self._decoder_layers.append(
                    keras.layers.Dense(
                        units,
                        activation=activation,
                        kernel_initializer=_seeded("glorot_uniform", level_seed(300 + index)),
                        name=f"reconstruction_dense_{index}",
                        dtype=dtype,
                    )
                )
            self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self._image_shape = None
        self._grid_functions = _FunctionCache()

    # ------------------------------------------------------------------ structure

    @property
    def num_levels(self):
        """Number of grid levels (the depth of the network minus one)."""
        return len(self.grid_layers)

    @property
    def grid_width(self):
        """``m`` of the last grid level."""
        return self.grid_widths[-1]

    @property
    def image_shape(self):
        """``(height, width, channels)`` of the inputs, once built (else None)."""
        return self._image_shape

    def _make_convnet(self, spec, prefix, seed):
        """The final network's layers (conv stages, pooling, dense), in call order:
        `keras_conv_stack` of ``spec`` on the one-channel grid, names prefixed
        ``prefix + "_"``, kernel ``i`` seeded ``seed * 31 + i``."""

        def initializer(index):
            return _seeded("glorot_uniform", None if seed is None else seed * 31 + index)

        return keras_conv_stack(
            spec, 1, prefix=f"{prefix}_", kernel_initializer=initializer,
            dtype=self.dtype_policy,
        )

    # ------------------------------------------------------------------ build

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) not in (3, 4) or any(size is None for size in input_shape[1:]):
            raise ValueError(
                "ResetNetwork needs images of known size, (batch, height, width) or "
                f"(batch, height, width, channels). Received: input_shape={input_shape}"
            )
        self._image_shape = tuple(int(size) for size in input_shape[1:])
        if len(self._image_shape) == 2:
            self._image_shape += (1,)
        shape = (None,) + self._image_shape
        for layer in self.grid_layers:
            if not layer.built:
                layer.build(shape)
            shape = (None, layer.grid_width, layer.grid_width)
        width = self.grid_width
        spatial = (width, width)
        # Check that the final network fits on the grid before Keras does.
        spec = self.final_network
        for stage in range(len(spec["conv_filters"])):
            if spec["padding"] == "valid":
                spatial = tuple(size - spec["kernel_size"] + 1 for size in spatial)
            if spec["pooling"] != "none":
                spatial = tuple(size // spec["pool_size"] for size in spatial)
            if min(spatial) < 1:
                raise ValueError(
                    f"Argument `final_network`: its feature maps are empty after stage "
                    f"{stage} ({spatial}) on the {width} x {width} grid: use fewer "
                    "conv_filters, 'padding': 'same', a smaller pool_size or a larger "
                    f"grid_width. Received: final_network={spec}"
                )
        x = keras.KerasTensor((None, width, width, 1))
        self._final_outputs(x, training=False)
        if self.reconstruction is not None:
            x = keras.KerasTensor((None, width * width))
            for layer in self._decoder_layers:
                x = layer(x)
            self.reconstruction_layer = keras.layers.Dense(
                int(np.prod(self._image_shape)),
                activation=self.reconstruction["output_activation"],
                kernel_initializer=_seeded(
                    "glorot_uniform", None if self.seed is None else self.seed * 1009 + 399
                ),
                name="reconstruction_output",
                dtype=self.dtype_policy,
            )
            self.reconstruction_layer.build(x.shape)
        self.built = True

    # ------------------------------------------------------------------ call

    def _final_outputs(self, grid, training):
        x = apply_keras_conv_stack(
            self.final_layers, self._final_plan, grid, self.final_network["activation"]
        )
        return self.output_layer(x)

    def _grids(self, images, training=False, level=None):
        """The (dropped-out when training) grid of each level up to ``level``."""
        x = images
        grids = []
        last = self.num_levels - 1 if level is None else level
        for index in range(last + 1):
            x = self.grid_layers[index](x)
            x = self.grid_dropouts[index](x, training=training)
            grids.append(x)
        return grids

    def call(self, inputs, training=False):
        x = tf.cast(inputs, self.compute_dtype)
        if len(x.shape) == 3:
            x = x[..., None]
        grid = self._grids(x, training=training)[-1]
        outputs = self._final_outputs(grid[..., None], training)
        if self.reconstruction is not None:
            self._add_reconstruction_loss(x, grid)
        return outputs

    def _decode(self, grid):
        batch = tf.shape(grid)[0]
        x = tf.reshape(grid, [batch, self.grid_width * self.grid_width])
        for layer in self._decoder_layers:
            x = layer(x)
        x = self.reconstruction_layer(x)
        return tf.reshape(x, tf.concat([[batch], self._image_shape], axis=0))

    def _add_reconstruction_loss(self, images, grid):
        reconstructed = self._decode(grid)
        # The MSE in at least float32 (float16 under "mixed_float16" loses precision),
        # added in the dtype of Keras' losses.
        dtype = cost_dtype(self.variable_dtype)
        error = tf.reduce_mean(
            tf.square(tf.cast(reconstructed, dtype) - tf.cast(images, dtype))
        )
        self.reconstruction_tracker.update_state(error)
        self.add_loss(to_loss_dtype(self.reconstruction_weight * error))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_outputs)

    # ------------------------------------------------------------------ analysis

    def _check_built(self, what):
        if not self.built:
            raise ValueError(
                f"ResetNetwork {self.name!r} is not built yet; fit it or call it on a batch "
                f"of images before {what}."
            )

    def _batched(self, key, function, images, batch_size):
        images = np.asarray(images)
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or tuple(images.shape[1:]) != self._image_shape:
            raise ValueError(
                f"Argument `images` must be an array (N, *{self._image_shape}) (or without "
                f"the channel axis when it is 1) for this ResetNetwork. "
                f"Received: images.shape={images.shape}"
            )
        batch_size = validate_int("batch_size", batch_size, minimum=1)
        cache = self._grid_functions.functions
        if key not in cache:
            cache[key] = tf.function(function, reduce_retracing=True)
        compiled = cache[key]
        outputs = [
            compiled(tf.convert_to_tensor(images[start:start + batch_size], self.compute_dtype))
            for start in range(0, len(images), batch_size)
        ]
        return np.concatenate([np.asarray(output, np.float32) for output in outputs])

    def grid_activations(self, images, level=-1, batch_size=256):
        """The grid of level ``level`` for each image, without dropout.

        Args:
            images: numeric array ``(N, height, width[, channels])`` of the model's
                input size.
            level: grid level, ``0 <= level < num_levels`` or negative from the
                end (default -1: the grid the final network reads).
            batch_size: images per forward pass.

        Returns:
            float32 array ``(N, m, m)``, ``m`` the level's ``grid_width``.
        """
        self._check_built("reading its grids")
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not (
            -self.num_levels <= level < self.num_levels
        ):
            raise ValueError(
                f"Argument `level` must be an integer in [{-self.num_levels}, "
                f"{self.num_levels}) (this network has {self.num_levels} grid level(s)). "
                f"Received: level={level!r}"
            )
        level = int(level) % self.num_levels
        if len(images) == 0:
            width = self.grid_widths[level]
            return np.zeros((0, width, width), np.float32)
        return self._batched(
            ("grid", level),
            lambda x: self._grids(x, training=False, level=level)[-1],
            images,
            batch_size,
        )

    def reconstruct(self, images, batch_size=256):
        """The reconstruction head's output for each image (no dropout).

        Returns:
            float32 array ``(N, height, width, channels)``.
        """
        if self.reconstruction is None:
            raise ValueError(
                f"ResetNetwork {self.name!r} has no reconstruction head; create it with "
                "reconstruction=True. Received: reconstruction=None"
            )
        self._check_built("reconstructing images")
        if len(images) == 0:
            return np.zeros((0,) + self._image_shape, np.float32)
        return self._batched(
            "reconstruct",
            lambda x: self._decode(self._grids(x, training=False)[-1]),
            images,
            batch_size,
        )

    # ------------------------------------------------------------------ saving

    def export(self, filepath, *args, **kwargs):
        self._check_built("export")
        if not getattr(self, "_called", False):
            # Keras exports subclassed models only once called; one image suffices.
            self(tf.zeros((1,) + self._image_shape, self.compute_dtype))
        return super().export(filepath, *args, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "num_outputs": self.num_outputs,
            "grid_size": self._grid_size_arg,
            "grid_width": self._grid_width_arg,
            "subnetwork": self._subnetwork_arg,
            "final_network": dict(self.final_network),
            "output_activation": self.output_activation,
            "grid_dropout": self.grid_dropout,
            "reconstruction": (
                None if self.reconstruction is None else dict(self.reconstruction)
            ),
            "reconstruction_weight": self.reconstruction_weight,
            "seed": self.seed,
        }
