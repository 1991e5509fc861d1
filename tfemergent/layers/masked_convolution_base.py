"""`MaskedConvolutionBase`: what `MaskedConv2D` and `AddOnConv2D` share.

A masked, same-padded 2-D convolution; the subclasses document the behaviour. It holds the
kernel ``(k, k, in, out)``, the optional bias and a non-trainable 0/1 mask ``(in, out)``
with one entry per (input channel, output channel) kernel. The forward pass convolves
with ``kernel * mask``, so a masked kernel never reaches the outputs and the loss
gradient of its weights is zero; a constraint (applied by the optimizer after every
update) keeps the stored weights of masked kernels at zero too, whatever the optimizer's
momentum.
"""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.utils.seeding import seeded_initializer
from tfemergent.utils import keras_multi_worker
from tfemergent.utils.dtypes import in_loss_dtype
from tfemergent.utils.validation import validate_bool, validate_int, validate_keras_object


class MaskedConvolutionBase(keras.layers.Layer):
    """Base of the masked convolutions `MaskedConv2D` and `AddOnConv2D`.

    Not a layer to use directly: a subclass sets ``mask_name`` and may override
    ``_validate_kernel_size`` and ``_mask_initializer``. Code that handles any
    masked convolution (pruning, the analysis) tests ``isinstance`` against it and
    uses `pruning_mask`, `masked_kernel` and `set_pruning_mask`.

    Example:

    >>> from tfemergent.layers.masked_conv2d import MaskedConv2D
    >>> from tfemergent.layers.masked_convolution_base import MaskedConvolutionBase
    >>> isinstance(MaskedConv2D(2), MaskedConvolutionBase)
    True
    """

    # Name of the mask weight and attribute ("kernel_mask" or "connection_mask").
    mask_name = "kernel_mask"

    def __init__(
        self,
        filters,
        kernel_size,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        keras_multi_worker.patch_if_multi_worker()
        self.filters = validate_int("filters", filters, minimum=1)
        self.kernel_size = self._validate_kernel_size(kernel_size)
        self.activation = validate_keras_object(
            "activation", activation, keras.activations.get, "activation"
        )
        self.use_bias = validate_bool("use_bias", use_bias)
        self.kernel_initializer = validate_keras_object(
            "kernel_initializer", kernel_initializer, keras.initializers.get, "initializer"
        )
        self.bias_initializer = validate_keras_object(
            "bias_initializer", bias_initializer, keras.initializers.get, "initializer"
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
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def _validate_kernel_size(self, kernel_size):
        return validate_int("kernel_size", kernel_size, minimum=1)

    def _mask_initializer(self):
        return "ones"

    # ------------------------------------------------------------------ layer
    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} needs inputs (batch, height, width, channels) with "
                f"a known number of channels. Received: input_shape={input_shape}"
            )
        input_channels = int(input_shape[-1])
        # The kernel starts with zeros where the initial mask is 0. The mask
        # initializer is deterministic (fixed seed), so drawing it once for the kernel
        # and once for the mask gives the same mask; both run where TensorFlow
        # initialises variables (eagerly), also when the layer is built in a graph.
        mask_initializer = keras.initializers.get(self._mask_initializer())
        # `seed` (of the subclasses that take one) seeds the kernel and bias draws.
        seed = getattr(self, "seed", None)
        kernel_initializer = seeded_initializer(self.kernel_initializer, seed, 0)

        def masked_kernel_initializer(shape, dtype=None):
            kernel = tf.convert_to_tensor(kernel_initializer(shape, dtype=dtype))
            mask = tf.convert_to_tensor(mask_initializer(tuple(shape[2:]), dtype=kernel.dtype))
            return kernel * mask[None, None]

        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.kernel_size, self.kernel_size, input_channels, self.filters),
            initializer=masked_kernel_initializer,
            regularizer=in_loss_dtype(self.kernel_regularizer),
            constraint=self._constrain_kernel,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=seeded_initializer(self.bias_initializer, seed, 1),
                regularizer=in_loss_dtype(self.bias_regularizer),
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        mask = self.add_weight(
            name=self.mask_name,
            shape=(input_channels, self.filters),
            initializer=mask_initializer,
            trainable=False,
        )
        setattr(self, self.mask_name, mask)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: input_channels})

    def _constrain_kernel(self, kernel):
        """The user's kernel constraint, then the mask: masked weights stay exactly zero."""
        if self.kernel_constraint is not None:
            kernel = self.kernel_constraint(kernel)
        mask = tf.cast(tf.convert_to_tensor(self.pruning_mask), kernel.dtype)
        return kernel * mask[None, None]

    @property
    def pruning_mask(self):
        """The 0/1 mask variable ``(in, out)``: 1 = kernel kept, 0 = kernel pruned."""
        return getattr(self, self.mask_name)

    @property
    def masked_kernel(self):
        """The kernel the layer convolves with: ``kernel * mask`` (a tensor)."""
        mask = tf.cast(tf.convert_to_tensor(self.pruning_mask), self.kernel.dtype)
        return tf.convert_to_tensor(self.kernel) * mask[None, None]

    def set_pruning_mask(self, mask):
        """Set the mask (0/1 or bool, shape ``(in, out)``); zero the masked weights."""
        if not self.built:
            raise ValueError(
                f"Layer {self.name!r} must be built (called once) before its "
                f"`{self.mask_name}` can be set. Received: layer.built=False"
            )
        shape = tuple(self.pruning_mask.shape)
        try:
            values = np.asarray(mask, dtype="float64")
        except (TypeError, ValueError):
            raise ValueError(
                f"Argument `{self.mask_name}` must be an array of 0/1 values of shape "
                f"{shape}. Received: {self.mask_name}={mask!r}"
            ) from None
        if values.shape != shape:
            raise ValueError(
                f"Argument `{self.mask_name}` of layer {self.name!r} must have the shape "
                f"(input channels, filters) = {shape}. Received: shape={values.shape}"
            )
        if not np.all((values == 0) | (values == 1)):
            bad = values[(values != 0) & (values != 1)]
            raise ValueError(
                f"Argument `{self.mask_name}` must contain only 0 and 1 (or booleans). "
                f"Received: values {sorted(set(bad.ravel().tolist()))[:5]}"
            )
        self.pruning_mask.assign(values.astype(self.pruning_mask.dtype))
        self.kernel.assign(self.masked_kernel)

    def call(self, inputs):
        kernel = tf.cast(self.masked_kernel, self.compute_dtype)
        outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding="SAME")
        if self.bias is not None:
            outputs = tf.nn.bias_add(outputs, tf.cast(self.bias, self.compute_dtype))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": keras.regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": keras.constraints.serialize(self.kernel_constraint),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        return config
