"""Smooth initialisation: convolution kernels smoothed by a 3 x 3 Gaussian."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.utils.validation import validate_float, validate_keras_object, validate_seed


def gaussian_filter_3x3(sigma):
    """The normalised 3 x 3 Gaussian ``exp(-(i^2 + j^2) / (2 sigma^2)) / Z``, float64."""
    offsets = np.array([-1.0, 0.0, 1.0])
    filter_ = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2.0 * sigma**2))
    return filter_ / filter_.sum()


@keras.saving.register_keras_serializable(package="tfemergent")
class SmoothKernel(keras.initializers.Initializer):
    """Draws a convolution kernel, then smooths every k x k kernel with a 3 x 3 Gaussian.

    The smooth initialisation of Neuron Hierarchical Networks (and of the dynamic
    network pruning it builds on): after a standard initialisation (``base``,
    He normal by default), every spatial slice ``kernel[:, :, i, o]`` of a 2-D
    convolution kernel ``(kh, kw, in, out)`` is convolved with the normalised
    3 x 3 Gaussian ``g(a, b) = exp(-(a^2 + b^2) / (2 sigma^2)) / Z``,
    ``a, b in {-1, 0, 1}``, ``Z`` making the 9 weights sum to 1, with zero
    padding and the same size::

        smoothed[y, x, i, o] = sum_{a, b} g(a, b) * kernel[y + a, x + b, i, o]

    (terms outside the kernel are zero). Smooth kernels start without texture;
    training gives texture to the useful ones, so that after training the flat
    kernels (low standard deviation) can be pruned
    (`tfemergent.pruning.prune_kernels`).

    Smoothing averages neighbouring taps, so it lowers the spread of the
    weights (for i.i.d. draws and ``sigma=1``, the standard deviation of an
    interior tap falls to about 0.35 of the base's); the scale of the base
    initialiser is not restored, as in the paper.

    1 x 1 kernels (``kh = kw = 1``) are returned as drawn: a Gaussian over a
    single tap would only rescale it (the paper smooths its 3 x 3 and 5 x 5
    kernels and leaves the 1 x 1 convolutions alone). Shapes that are not 2-D
    convolution kernels (rank != 4) are refused.

    Reference: "Neuron Hierarchical Networks" (anonymous, ICLR 2019 submission),
    section 2.2.

    Args:
        base: the initializer drawn before smoothing (a Keras initializer, its
            name or config), default ``"he_normal"``.
        sigma: standard deviation of the Gaussian in taps, > 0.
        seed: integer seed given to ``base`` (when it takes one), or None to
            keep ``base``'s own seed.

    Example:

    >>> from tfemergent.initializers import SmoothKernel
    >>> init = SmoothKernel(base="ones")
    >>> kernel = init((3, 3, 1, 1))[:, :, 0, 0].numpy()
    >>> kernel.round(4)  # centre: all 9 Gaussian weights; corner: 4 of them
    array([[0.527 , 0.7259, 0.527 ],
           [0.7259, 1.    , 0.7259],
           [0.527 , 0.7259, 0.527 ]], dtype=float32)
    >>> import keras
    >>> conv = keras.layers.Conv2D(8, 5, kernel_initializer=SmoothKernel(seed=0))
    """

    def __init__(self, base="he_normal", sigma=1.0, seed=None):
        if isinstance(base, SmoothKernel) or (
            isinstance(base, dict) and base.get("class_name") == "SmoothKernel"
        ):
            raise ValueError(
                "Argument `base` must be a standard initializer, not another SmoothKernel "
                f"(smooth twice with a larger `sigma` instead). Received: base={base!r}"
            )
        self.base = validate_keras_object("base", base, keras.initializers.get, "initializer")
        if self.base is None:
            raise ValueError(
                f"Argument `base` must be a Keras initializer, not None. Received: base={base!r}"
            )
        self.sigma = validate_float("sigma", sigma, minimum=0.0, min_inclusive=False)
        self.seed = validate_seed("seed", seed)
        self._draw = self.base
        if self.seed is not None and hasattr(self.base, "get_config"):
            config = self.base.get_config()
            if "seed" in config:
                self._draw = type(self.base).from_config({**config, "seed": self.seed})

    @property
    def filter(self):
        """The 3 x 3 Gaussian this initializer smooths with (float64 numpy array)."""
        return gaussian_filter_3x3(self.sigma)

    def __call__(self, shape, dtype=None):
        shape = tuple(int(size) for size in shape)
        if len(shape) != 4:
            raise ValueError(
                "SmoothKernel initialises 2-D convolution kernels of shape (height, width, "
                f"in_channels, out_channels). Received: shape={shape}"
            )
        values = tf.convert_to_tensor(self._draw(shape, dtype=dtype))
        height, width, num_in, num_out = shape
        if height == 1 and width == 1:
            return values
        # (kh, kw, in, out) -> (in * out, kh, kw, 1): one image per kernel.
        images = tf.reshape(
            tf.transpose(values, (2, 3, 0, 1)), (num_in * num_out, height, width, 1)
        )
        gaussian = tf.constant(self.filter[:, :, None, None], dtype=values.dtype)
        smoothed = tf.nn.conv2d(images, gaussian, strides=1, padding="SAME")
        return tf.transpose(tf.reshape(smoothed, (num_in, num_out, height, width)), (2, 3, 0, 1))

    def get_config(self):
        return {
            "base": keras.initializers.serialize(self.base),
            "sigma": self.sigma,
            "seed": self.seed,
        }
