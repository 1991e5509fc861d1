"""Add-on neurons: a sparse 3 x 3 or 5 x 5 convolution between two layers of a segment."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.layers.masked_convolution_base import MaskedConvolutionBase
from tfemergent.utils.validation import validate_float, validate_seed

ADD_ON_KERNEL_SIZES = (3, 5)


@keras.saving.register_keras_serializable(package="tfemergent")
class AddOnConv2D(MaskedConvolutionBase):
    """Add-on neurons: a sparse 3 x 3 or 5 x 5 convolution from one layer to a later one.

    Neuron Hierarchical Networks add new neurons to a pruned network: a sparse
    convolution reads the output of an earlier layer of a segment (or the
    segment's input) and its output is added to the pre-activation of a later
    layer of the same segment, where the feature maps have the same size. The
    layer computes ``conv2d(inputs, kernel * connection_mask) (+ bias)``, same
    padding, stride 1, no activation (the target layer applies its own after
    the sum). ``connection_mask`` is a non-trainable 0/1 variable of shape
    ``(in, out)`` over (input channel, output channel) pairs: the "directions"
    of the add-on neurons; the paper keeps about 10% of them. It is saved with
    the weights.

    Masked connections stay zero under training: the mask is applied in the
    forward pass (zero gradient), and a constraint multiplies the stored
    kernel by the mask after every optimizer update. Setting the mask zeroes the
    stored weights of the removed connections.

    The initial mask keeps ``round(connection_density * in * out)`` connections
    (at least one) drawn uniformly without replacement with ``seed``; with
    ``connection_density=1`` (default) every connection exists and a search
    chooses them later with ``set_connection_mask``.

    Reference: "Neuron Hierarchical Networks" (anonymous, ICLR 2019 submission),
    section 2.3 (add-on neurons, location-direction search).

    Args:
        filters: number of output channels (the target layer's filters), >= 1.
        kernel_size: 3 or 5.
        connection_density: fraction of (in, out) pairs connected at first, in
            (0, 1].
        use_bias: whether to add a bias (default False: the target layer already
            has one).
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint: as in `keras.layers.Conv2D`.
        seed: integer seed of every random draw of the layer: the initial
            connections and the kernel and bias initializers that have no seed of
            their own (each weight from its own seed derived from ``seed``). None:
            Keras' global seeding.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Verbs (after the layer is built):
        ``set_connection_mask(mask)``: set the mask, 0/1 or bool ``(in, out)``.
        ``set_pruning_mask(mask)``: the same under the name shared by every
        masked convolution (``pruning_mask`` is the mask variable).
        ``masked_kernel``: the kernel the layer convolves with (a tensor).

    Call arguments:
        inputs: tensor ``(batch, height, width, in)``, the source layer's output.

    Input shape:
        ``(batch_size, height, width, in)``, channels last.

    Output shape:
        ``(batch_size, height, width, filters)``.

    Example:

    >>> import keras, numpy as np
    >>> from tfemergent.layers import AddOnConv2D
    >>> image = keras.Input((6, 6, 2))
    >>> early = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(image)
    >>> pre = keras.layers.Conv2D(4, 3, padding="same")(early)
    >>> add_on = AddOnConv2D(4, kernel_size=5, connection_density=0.25, seed=0)
    >>> pre = keras.layers.Add()([pre, add_on(image)])  # image -> second layer
    >>> model = keras.Model(image, keras.layers.ReLU()(pre))
    >>> int(add_on.connection_mask.numpy().sum())  # 25% of the 2 x 4 pairs
    2
    >>> add_on.set_connection_mask(np.eye(2, 4))
    >>> model(np.ones((1, 6, 6, 2), "float32")).shape
    TensorShape([1, 6, 6, 4])
    """

    mask_name = "connection_mask"

    def __init__(
        self,
        filters,
        kernel_size=3,
        connection_density=1.0,
        use_bias=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size,
            activation=None,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self.connection_density = validate_float(
            "connection_density", connection_density, minimum=0.0, maximum=1.0,
            min_inclusive=False,
        )
        self.seed = validate_seed("seed", seed)
        self._connection_draw = keras.initializers.RandomUniform(0.0, 1.0, seed=self.seed)

    def _validate_kernel_size(self, kernel_size):
        if (
            isinstance(kernel_size, bool)
            or not isinstance(kernel_size, (int, np.integer))
            or kernel_size not in ADD_ON_KERNEL_SIZES
        ):
            raise ValueError(
                f"Argument `kernel_size` of AddOnConv2D must be one of "
                f"{list(ADD_ON_KERNEL_SIZES)} (the add-on neurons of the paper). "
                f"Received: kernel_size={kernel_size!r}"
            )
        return int(kernel_size)

    def _mask_initializer(self):
        if self.connection_density == 1.0:
            return "ones"
        density = self.connection_density
        draw = self._connection_draw

        def initial_connections(shape, dtype=None):
            size = int(np.prod(shape))
            count = max(1, int(np.floor(density * size + 0.5)))
            order = tf.argsort(tf.reshape(draw((size,), dtype="float32"), [-1]))
            chosen = tf.scatter_nd(order[:count, None], tf.ones([count], dtype), [size])
            return tf.reshape(chosen, shape)

        return initial_connections

    def set_connection_mask(self, mask):
        """Set ``connection_mask`` (0/1 or bool, ``(in, out)``); zero removed weights."""
        self.set_pruning_mask(mask)

    def get_config(self):
        return {
            **super().get_config(),
            "connection_density": self.connection_density,
            "seed": self.seed,
        }
