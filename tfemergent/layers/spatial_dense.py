"""Dense layer whose neurons have learnable positions in space."""

import weakref

import keras
import tensorflow as tf

from tfemergent import regularizers as tfe_regularizers
from tfemergent.utils import keras_multi_worker
from tfemergent.utils.dtypes import cost_dtype, in_loss_dtype, to_loss_dtype
from tfemergent.utils.validation import (
    validate_bool,
    validate_int,
    validate_keras_object,
    validate_numeric_inputs,
    validate_seed,
)
from tfemergent.utils import _private
from tfemergent.utils.seeding import seeded_initializer

# Layers that keep the neurons of their input (same units, element-wise): a
# SpatialDense after one of these still reads the neurons of the SpatialDense
# before it, so the link is followed through them.
_NEURON_PRESERVING_LAYERS = (
    keras.layers.Dropout,
    keras.layers.GaussianDropout,
    keras.layers.GaussianNoise,
    keras.layers.AlphaDropout,
    keras.layers.Activation,
    keras.layers.ActivityRegularization,
    keras.layers.Identity,
)


def _spatial_source_of(tensor):
    """The SpatialDense whose neurons produce ``tensor``, or None."""
    while True:
        history = _private.keras_history(tensor)
        if history is None:
            return None
        operation, node_index = history
        if isinstance(operation, SpatialDense):
            return operation
        if not isinstance(operation, _NEURON_PRESERVING_LAYERS):
            return None
        inputs = _private.inbound_tensors(operation, node_index)
        if len(inputs) != 1:
            return None
        tensor = inputs[0]


@keras.saving.register_keras_serializable(package="tfemergent")
class SpatialDense(keras.layers.Layer):
    """Densely connected layer whose neurons have learnable positions.

    Each of the ``units`` neurons has a position ``p(n)`` in ``position_dim``
    dimensions (default 2), held in the weight ``positions`` and
    initialised from N(0, 1) (seeded). The positions do not change the forward
    pass, ``activation(inputs @ kernel + bias)``; they enter the loss through two
    costs that make the network organise itself in space:

    - ``transport_cost`` (`tfemergent.regularizers.TransportCost`): strong
      connections between distant neurons are expensive. It needs the positions
      of the layer's inputs, i.e. of the neurons of the previous
      `SpatialDense`. In the functional API and in `keras.Sequential` the
      previous `SpatialDense` is found automatically when the layer is called
      (through dropout, noise and activation layers too); in a subclassed model
      call ``set_source_layer(previous)`` once. Raw inputs have no positions, so
      a layer that reads them cannot carry a transport cost.
    - ``density_cost`` (`tfemergent.regularizers.DensityCost`): neurons repel
      each other; applied as the regularizer of ``positions``.

    The positions are trainable only when a cost reads them: this layer's
    density or transport cost, or the transport cost of a `SpatialDense` that
    reads this layer's neurons (it marks them trainable when it is linked). Without any
    cost they would get no gradient, so they are kept as a non-trainable weight
    (still saved with the model) and training does not warn about them.

    ``seed`` seeds every random draw of the layer: with ``seed=s`` the kernel,
    bias and positions are the same each time the layer is built (each weight
    has its own seed derived from ``s``; an initializer that has its own integer
    seed keeps it). With ``seed=None`` the draws follow Keras' global seeding.

    Masking: like `keras.layers.Dense`, the layer supports and passes on a mask
    (``supports_masking = True``).

    The paper uses sigmoid activations (ReLU's rescaling invariance would let the
    network shrink weights without changing its spatial structure), so that is
    the default. The costs are averaged over the selected layers by giving each
    cost ``num_layers = |L|``.

    Dtype policies: the forward pass runs in the layer's ``compute_dtype``
    (float16 under ``"mixed_float16"``), the variables are in its
    ``variable_dtype``; the costs read the kernel and the positions at full
    precision, are computed in at least float32 and are added to the loss in the
    dtype of Keras' losses (``keras.config.floatx()``).

    Reference: M. Wołczyk, J. Tabor, M. Śmieja, S. Maszke, "Biologically-Inspired
    Spatial Neural Networks" (2019).

    Args:
        units: number of neurons, >= 1.
        activation: activation function (default ``"sigmoid"``).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer: as in `keras.layers.Dense`.
        position_initializer: initializer of ``positions``; default
            ``RandomNormal(0, 1, seed=seed)``.
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as in `keras.layers.Dense`.
        transport_cost: a `TransportCost`, its config or name, or None.
        density_cost: a `DensityCost`, its config or name, or None.
        position_dim: dimension of the neuron positions (default 2, as in the
            paper), >= 1.
        seed: integer seed of every random draw of the layer (the kernel, bias
            and position initializers that have no seed of their own), or None.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: tensor of shape ``(..., input_dim)``.

    Input shape:
        ``(batch_size, ..., input_dim)``.

    Output shape:
        ``(batch_size, ..., units)``.

    Example:

    >>> import keras, numpy as np
    >>> from tfemergent.layers import SpatialDense
    >>> from tfemergent.regularizers import DensityCost, TransportCost
    >>> model = keras.Sequential([
    ...     keras.Input((8,)),
    ...     SpatialDense(16, seed=1),
    ...     SpatialDense(4, activation=None, seed=2,
    ...                  transport_cost=TransportCost(1.0),
    ...                  density_cost=DensityCost(3.0)),
    ... ])
    >>> model.layers[1].source_layer is model.layers[0]
    True
    >>> model.compile("adam", "mse")
    >>> history = model.fit(np.ones((4, 8)), np.zeros((4, 4)), verbose=0)
    >>> tuple(model.layers[1].positions.shape)
    (4, 2)
    """

    def __init__(
        self,
        units,
        activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        position_initializer=None,
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        transport_cost=None,
        density_cost=None,
        position_dim=2,
        seed=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        keras_multi_worker.patch_if_multi_worker()
        self.units = validate_int("units", units, minimum=1)
        self.activation = validate_keras_object(
            "activation", activation, keras.activations.get, "activation"
        )
        self.use_bias = validate_bool("use_bias", use_bias)
        self.seed = validate_seed("seed", seed)
        self.position_dim = validate_int("position_dim", position_dim, minimum=1)
        self.kernel_initializer = validate_keras_object(
            "kernel_initializer", kernel_initializer, keras.initializers.get, "initializer"
        )
        self.bias_initializer = validate_keras_object(
            "bias_initializer", bias_initializer, keras.initializers.get, "initializer"
        )
        if position_initializer is None:
            position_initializer = keras.initializers.RandomNormal(0.0, 1.0, seed=self.seed)
        self.position_initializer = validate_keras_object(
            "position_initializer", position_initializer, keras.initializers.get, "initializer"
        )
        self.kernel_regularizer = validate_keras_object(
            "kernel_regularizer", kernel_regularizer, keras.regularizers.get, "regularizer"
        )
        self.bias_regularizer = validate_keras_object(
            "bias_regularizer", bias_regularizer, keras.regularizers.get, "regularizer"
        )
        self.kernel_constraint = validate_keras_object(
            "kernel_constraint", kernel_constraint, keras.constraints.get, "constraint"
        )
        self.bias_constraint = validate_keras_object(
            "bias_constraint", bias_constraint, keras.constraints.get, "constraint"
        )
        self.transport_cost = tfe_regularizers.get(transport_cost, argument_name="transport_cost")
        self.density_cost = tfe_regularizers.get(density_cost, argument_name="density_cost")
        if self.transport_cost is not None and not isinstance(
            self.transport_cost, tfe_regularizers.TransportCost
        ):
            raise ValueError(
                "Argument `transport_cost` must be a tfemergent.regularizers."
                "TransportCost (or its config or name). "
                f"Received: transport_cost={transport_cost!r}"
            )
        # The layer whose neurons feed this one; a plain reference that Keras
        # does not track (its weights belong to that layer, not to this one).
        object.__setattr__(self, "_source_layer", None)
        # The SpatialDense layers whose transport cost reads this layer's positions
        # (they make the positions trainable); plain references, untracked.
        object.__setattr__(self, "_position_readers", weakref.WeakSet())
        self.supports_masking = True
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    # ----------------------------------------------------------------- linking
    @property
    def source_layer(self):
        """The `SpatialDense` whose neurons are this layer's inputs, or None."""
        return self._source_layer

    @property
    def input_positions(self):
        """Positions of the input neurons (the source layer's), or None."""
        source = self._source_layer
        return None if source is None else source.positions

    def set_source_layer(self, layer):
        """Declare that this layer's inputs are the neurons of ``layer``.

        Needed only in subclassed models; the functional API and Sequential
        find the source layer by themselves.

        Args:
            layer: a `SpatialDense` with as many units as this layer has
                inputs, or None to remove the link.
        """
        if layer is not None:
            if not isinstance(layer, SpatialDense):
                raise ValueError(
                    "The source layer must be a SpatialDense. "
                    f"Received: layer of type {type(layer).__name__}"
                )
            if layer is self:
                raise ValueError(f"A layer cannot feed itself. Received: layer={layer.name!r}")
            if layer.position_dim != self.position_dim:
                raise ValueError(
                    "The source layer's positions must have the same dimension as "
                    f"this layer's (position_dim={self.position_dim}). Received: "
                    f"layer.position_dim={layer.position_dim}"
                )
            if self.built and self.kernel.shape[0] != layer.units:
                raise ValueError(
                    f"Layer {self.name!r} has {self.kernel.shape[0]} inputs but the "
                    f"source layer {layer.name!r} has {layer.units} units. "
                    f"Received: layer.units={layer.units}"
                )
        old = self._source_layer
        if old is not None and old is not layer:
            old._position_readers.discard(self)
        object.__setattr__(self, "_source_layer", layer)
        if layer is not None and self.transport_cost is not None:
            layer._add_position_reader(self)

    def _add_position_reader(self, layer):
        """``layer``'s transport cost reads these positions: they are trainable."""
        self._position_readers.add(layer)
        if self.built:
            self.positions.trainable = True

    @property
    def positions_trainable(self):
        """Whether a cost reads the positions (so they are trained)."""
        return (
            self.density_cost is not None
            or self.transport_cost is not None
            or len(self._position_readers) > 0
        )

    def __call__(self, inputs, *args, **kwargs):
        if isinstance(inputs, keras.KerasTensor):
            source = _spatial_source_of(inputs)
            if source is not None:
                self.set_source_layer(source)
        if self.transport_cost is not None and self._source_layer is None:
            raise ValueError(
                f"Layer {self.name!r} has a transport cost, which needs the "
                "positions of its inputs, but its inputs do not come from a "
                "SpatialDense. Put a SpatialDense before it (functional or "
                "Sequential model) or call `set_source_layer(previous_layer)` in a "
                "subclassed model, or drop the transport cost. "
                f"Received: transport_cost={self.transport_cost!r}"
            )
        return super().__call__(inputs, *args, **kwargs)

    # ------------------------------------------------------------------ layer
    def build(self, input_shape):
        input_dim = input_shape[-1]
        if input_dim is None:
            raise ValueError(
                "The last dimension of the inputs to SpatialDense must be known. "
                f"Received: input_shape={input_shape}"
            )
        source = self._source_layer
        if source is not None and source.units != input_dim:
            raise ValueError(
                f"Layer {self.name!r} has {input_dim} inputs but its source layer "
                f"{source.name!r} has {source.units} units. "
                f"Received: input_shape={input_shape}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_dim, self.units),
            initializer=seeded_initializer(self.kernel_initializer, self.seed, 0),
            regularizer=in_loss_dtype(self.kernel_regularizer),
            constraint=self.kernel_constraint,
            # Read at full precision by the transport cost; `call` casts it.
            autocast=False,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=seeded_initializer(self.bias_initializer, self.seed, 1),
                regularizer=in_loss_dtype(self.bias_regularizer),
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self.positions = self.add_weight(
            name="positions",
            shape=(self.units, self.position_dim),
            initializer=seeded_initializer(self.position_initializer, self.seed, 2),
            regularizer=in_loss_dtype(self.density_cost),
            autocast=False,  # the costs read the positions at full precision
        )
        # Created trainable (so TensorFlow's tape watches it once a cost reads it)
        # but left out of the trainable weights while no cost does.
        self.positions.trainable = self.positions_trainable
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})

    def call(self, inputs):
        inputs = validate_numeric_inputs(self, inputs)
        kernel = tf.cast(self.kernel, self.compute_dtype)
        outputs = tf.matmul(inputs, kernel) if inputs.shape.rank == 2 else tf.tensordot(
            inputs, kernel, axes=1
        )
        if self.bias is not None:
            outputs = outputs + tf.cast(self.bias, self.compute_dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        if self.transport_cost is not None:
            self.add_loss(to_loss_dtype(self.compute_transport_cost()))
        return outputs

    def compute_transport_cost(self):
        """The transport cost of this layer's current weights and positions.

        A scalar in the variable dtype, at least float32.
        """
        if self.transport_cost is None or self._source_layer is None:
            return tf.zeros((), cost_dtype(self.variable_dtype))
        return self.transport_cost((self.kernel, self.input_positions, self.positions))

    def compute_density_cost(self):
        """The density cost of this layer's current positions.

        A scalar in the variable dtype, at least float32.
        """
        if self.density_cost is None:
            return tf.zeros((), cost_dtype(self.variable_dtype))
        return self.density_cost(self.positions)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "position_initializer": keras.initializers.serialize(self.position_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "transport_cost": tfe_regularizers.serialize(self.transport_cost),
                "density_cost": tfe_regularizers.serialize(self.density_cost),
                "position_dim": self.position_dim,
                "seed": self.seed,
            }
        )
        return config
