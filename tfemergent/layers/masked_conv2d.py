"""2-D convolution whose (input channel, output channel) kernels can be pruned."""

import keras

from tfemergent.layers.masked_convolution_base import MaskedConvolutionBase
from tfemergent.utils.validation import validate_seed


@keras.saving.register_keras_serializable(package="tfemergent")
class MaskedConv2D(MaskedConvolutionBase):
    """2-D convolution (same padding, stride 1) with a pruning mask over its kernels.

    The layer computes ``activation(conv2d(inputs, kernel * kernel_mask) + bias)``
    where ``kernel`` has the shape ``(k, k, in, out)`` and ``kernel_mask`` is a
    non-trainable 0/1 variable of shape ``(in, out)``: one entry per k x k kernel
    from an input channel to an output channel (1 = kept, 0 = pruned). The mask
    is saved with the weights (``.keras``, checkpoints, SavedModel).

    Pruned kernels stay zero under training: the mask is applied in the forward
    pass, so the loss gradient of a pruned kernel's weights is exactly zero, and
    the layer gives its kernel a constraint (after the user's
    ``kernel_constraint``) that multiplies it by the mask after every optimizer
    update, so the stored weights of pruned kernels stay exactly zero even with
    momentum carried over from before the pruning. Setting the mask zeroes the
    stored weights of the pruned kernels at once; a kernel switched on again
    restarts from zero.

    This is the convolution of the base network of Neuron Hierarchical Networks
    (`tfemergent.models.SegmentCNN`), whose 3 x 3 and 5 x 5 kernels are pruned by
    their standard deviation (`tfemergent.pruning.prune_kernels`) and whose
    channels left without input or output are removed physically
    (`tfemergent.pruning.shrink`).

    Reference: "Neuron Hierarchical Networks" (anonymous, ICLR 2019 submission),
    section 2.2.

    Args:
        filters: number of output channels, >= 1.
        kernel_size: side ``k`` of the square kernels, >= 1 (the paper: 3 or 5).
        activation: activation function (default None: linear).
        use_bias: whether to add a bias.
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint: as in `keras.layers.Conv2D`
            (e.g. ``tfemergent.initializers.SmoothKernel()`` for the paper's
            smooth initialisation).
        seed: integer seed of the layer's random draws: the kernel and bias
            initializers that have no seed of their own (each weight from its
            own seed derived from ``seed``), so the same seed builds the same
            weights. None: Keras' global seeding.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Verbs (after the layer is built):
        ``set_kernel_mask(mask)``: set the mask, 0/1 or bool ``(in, out)``.
        ``set_pruning_mask(mask)``: the same under the name shared by every
        masked convolution (``pruning_mask`` is the mask variable).
        ``masked_kernel``: the kernel the layer convolves with (a tensor).

    Call arguments:
        inputs: tensor ``(batch, height, width, in)``.

    Input shape:
        ``(batch_size, height, width, in)``, channels last.

    Output shape:
        ``(batch_size, height, width, filters)``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.layers import MaskedConv2D
    >>> layer = MaskedConv2D(2, kernel_size=3, kernel_initializer="ones")
    >>> images = np.ones((1, 3, 3, 2), "float32")
    >>> layer(images)[0, 1, 1].numpy()  # 2 inputs x 9 taps
    array([18., 18.], dtype=float32)
    >>> layer.set_kernel_mask([[1, 0], [1, 1]])  # prune the kernel 0 -> 1
    >>> layer(images)[0, 1, 1].numpy()
    array([18.,  9.], dtype=float32)
    >>> float(layer.kernel.numpy()[:, :, 0, 1].sum())  # stored weights are zeroed
    0.0
    """

    mask_name = "kernel_mask"

    def __init__(
        self,
        filters,
        kernel_size=3,
        activation=None,
        use_bias=True,
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
        self.seed = validate_seed("seed", seed)
        super().__init__(
            filters,
            kernel_size,
            activation=activation,
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

    def set_kernel_mask(self, mask):
        """Set ``kernel_mask`` (0/1 or bool, ``(in, out)``); zero the pruned weights."""
        self.set_pruning_mask(mask)

    def get_config(self):
        return {
            **super().get_config(),
            "activation": keras.activations.serialize(self.activation),
            "seed": self.seed,
        }
