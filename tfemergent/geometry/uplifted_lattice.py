"""The uplifted lattice geometry of an unstructured recursive network."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.utils.validation import validate_float, validate_int


@keras.saving.register_keras_serializable(package="tfemergent")
class UpliftedLattice:
    """Neurons on an ``x * y * z`` lattice whose bottom plane holds the input image.

    The ``S = width * height * depth`` neurons of an unstructured recursive network
    (URN) sit on a unit-spaced lattice. Neuron ``n`` has lattice coordinates
    ``(x, y, z)`` with ``n = z * (width * height) + y * width + x``, so the first
    ``width * height`` neurons form the plane ``z = 0`` (the paper's ``z = 1``),
    which receives the image pixels in row-major order, and the output neurons are
    the ``num_outputs`` neurons of the top plane ``z = depth - 1`` closest to its
    centre. Distances follow the uplift of the image's Euclidean metric (eq. 8)

        ds**2 = dx**2 + dy**2 + beta * dz**2,

    so `coordinates` scales the ``z`` column by ``sqrt(beta)``: the plain Euclidean
    distance of the returned coordinates is the uplifted distance, ready for
    `tfemergent.kernels.distance_weighted_l1` and the
    `tfemergent.regularizers.SynapticLength` cost.

    In the paper's CIFAR-10 experiment the 32 x 32 gray images are resized to
    60 x 60 (`embed`) on a ``60 x 60 x 6`` lattice (21,600 neurons) with the 10
    central neurons of the top plane as outputs.

    Reference: S. Golkar, "Emergent Structures and Lifetime Structure Evolution
    in Artificial Neural Networks" (2018), section 3, eq. 8.

    Args:
        width: number of lattice columns ``x`` (the image width), >= 1.
        height: number of lattice rows ``y`` (the image height), >= 1.
        depth: number of planes ``z``, >= 1; plane 0 is the input plane.
        beta: positive length scale of the ``z`` direction, ``ds**2 = ... + beta
            dz**2`` (paper's hyperparameter beta). Default 1.
        num_outputs: number of output neurons, 1 <= ``num_outputs`` <=
            ``width * height``. Default 10.

    Attributes:
        num_neurons: ``S = width * height * depth``.
        input_shape: ``(height, width)``, the image size that `embed` produces.
        input_indices: int64 array of the ``width * height`` neuron indices of the
            plane ``z = 0`` in row-major pixel order (``0, 1, ...``).
        output_indices: sorted int64 array of the ``num_outputs`` neurons of the
            top plane closest to its centre ``((width - 1) / 2, (height - 1) / 2)``;
            ties are broken by the smaller index.

    Example:

    >>> import numpy as np
    >>> from tfemergent.geometry import UpliftedLattice
    >>> lattice = UpliftedLattice(width=4, height=3, depth=2, beta=4.0, num_outputs=2)
    >>> lattice.num_neurons
    24
    >>> lattice.coordinates()[13]  # neuron 13: x=1, y=0, z=1; z scaled by sqrt(4)
    array([1., 0., 2.], dtype=float32)
    >>> lattice.input_indices[:5]
    array([0, 1, 2, 3, 4])
    >>> lattice.output_indices  # top-plane neurons (1, 1) and (2, 1)
    array([17, 18])
    >>> lattice.embed(np.ones((5, 32, 32, 3), "float32")).shape
    TensorShape([5, 12])
    """

    def __init__(self, width, height, depth, beta=1.0, num_outputs=10):
        self.width = validate_int("width", width, minimum=1)
        self.height = validate_int("height", height, minimum=1)
        self.depth = validate_int("depth", depth, minimum=1)
        self.beta = validate_float("beta", beta, minimum=0.0, min_inclusive=False)
        self.num_outputs = validate_int("num_outputs", num_outputs, minimum=1)
        if self.num_outputs > self.width * self.height:
            raise ValueError(
                "Argument `num_outputs` must be at most the number of neurons of the "
                f"top plane, width * height = {self.width * self.height}. "
                f"Received: num_outputs={self.num_outputs}"
            )

    @property
    def num_neurons(self):
        return self.width * self.height * self.depth

    @property
    def input_shape(self):
        return (self.height, self.width)

    @property
    def input_indices(self):
        return np.arange(self.width * self.height, dtype=np.int64)

    @property
    def output_indices(self):
        plane = self.width * self.height
        y, x = np.divmod(np.arange(plane), self.width)
        # Squared distances to the centre, doubled so that they are exact integers.
        dx = 2 * x - (self.width - 1)
        dy = 2 * y - (self.height - 1)
        closest = np.lexsort((np.arange(plane), dx * dx + dy * dy))[: self.num_outputs]
        return np.sort(closest).astype(np.int64) + (self.depth - 1) * plane

    def lattice_coordinates(self):
        """Integer lattice coordinates ``(x, y, z)`` of every neuron: int64 ``[S, 3]``."""
        z, rest = np.divmod(np.arange(self.num_neurons), self.width * self.height)
        y, x = np.divmod(rest, self.width)
        return np.stack([x, y, z], axis=1).astype(np.int64)

    def coordinates(self, dtype="float32"):
        """Neuron positions ``(x, y, sqrt(beta) * z)``: a NumPy array ``[S, 3]``.

        The Euclidean distance between two rows is the uplifted distance
        ``sqrt(dx**2 + dy**2 + beta * dz**2)`` of eq. 8.
        """
        try:
            np_dtype = np.dtype(dtype)
        except TypeError:
            np_dtype = None
        if np_dtype is None or not np.issubdtype(np_dtype, np.floating):
            raise ValueError(
                "Argument `dtype` must be a floating dtype such as 'float32'. "
                f"Received: dtype={dtype!r}"
            )
        positions = self.lattice_coordinates().astype(np.float64)
        positions[:, 2] *= np.sqrt(self.beta)
        return positions.astype(np_dtype)

    def embed(self, images):
        """Resize images to the input plane and flatten them: ``[B, width * height]``.

        ``images`` is ``[B, H, W]`` or ``[B, H, W, C]``; channels are averaged to
        gray, the result is resized to ``(height, width)`` by bilinear
        interpolation (`tf.image.resize`) and flattened in row-major order, so
        column ``y * width + x`` feeds neuron ``input_indices[y * width + x]``.
        Floating images keep their dtype; integer images become float32.
        """
        images = tf.convert_to_tensor(images)
        rank = images.shape.rank
        if rank not in (3, 4):
            raise ValueError(
                "Argument `images` must have shape [B, H, W] or [B, H, W, C]. "
                f"Received: images.shape={images.shape}"
            )
        dtype = images.dtype if images.dtype.is_floating else tf.float32
        images = tf.cast(images, dtype)
        if rank == 3:
            images = images[..., None]
        else:
            images = tf.reduce_mean(images, axis=-1, keepdims=True)
        resized = tf.image.resize(images, self.input_shape, method="bilinear")
        return tf.reshape(tf.cast(resized, dtype), [-1, self.width * self.height])

    def get_config(self):
        return {
            "width": self.width,
            "height": self.height,
            "depth": self.depth,
            "beta": self.beta,
            "num_outputs": self.num_outputs,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"
