"""The first level of a Reset network: n x n independent sub-networks tiled into a grid."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.utils import keras_multi_worker
from tfemergent.utils import _private
from tfemergent.utils.validation import (
    validate_choice,
    validate_int,
    validate_seed,
    validate_spec,
)

BLOCKS = ("plain", "residual")
# Activations that normalise over the last axis: not allowed inside the sub-networks.
NON_ELEMENTWISE_ACTIVATIONS = ("softmax", "log_softmax")
PADDINGS = ("same", "valid")
POOLINGS = ("max", "average", "none")
# Without XLA, a convolution of the shared input with at least this many output
# channels (num_networks * filters) runs as im2col + one matmul, fewer as one
# tf.nn.conv2d (benchmarks/bench_reset_step.py compares the two).
IM2COL_MIN_CHANNELS = 256
# Non-decreasing activations: they commute with max pooling, so a plain stage
# can pool before adding the bias and applying the activation (see `call`).
NON_DECREASING_ACTIVATIONS = (
    "elu", "hard_sigmoid", "leaky_relu", "linear", "relu", "relu6", "selu", "sigmoid",
    "softplus", "softsign", "tanh",
)

# The default sub-network: two 3x3 conv layers with 2x2 max pooling, one hidden
# dense layer, linear outputs (the grid units).
DEFAULT_SUBNETWORK = {
    "block": "plain",
    "conv_filters": [8, 16],
    "kernel_size": 3,
    "padding": "same",
    "pooling": "max",
    "pool_size": 2,
    "dense_units": [32],
    "activation": "relu",
    "output_activation": "linear",
}


def _validate_int_list(key, value):
    name = f"subnetwork['{key}']"
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
        raise ValueError(
            f"Argument `subnetwork`: {name} must be a list of integers >= 1. "
            f"Received: {name}={value!r}"
        )
    return [validate_int(name, item, minimum=1) for item in value]


def _validate_activation(key, value):
    name = f"subnetwork['{key}']"
    if not isinstance(value, str):
        raise ValueError(
            f"Argument `subnetwork`: {name} must be the name of a Keras activation "
            f"(a string, e.g. 'relu'). Received: {name}={value!r}"
        )
    try:
        keras.activations.get(value)
    except ValueError:
        raise ValueError(
            f"Argument `subnetwork`: {name} is not a Keras activation. "
            f"Received: {name}={value!r}"
        ) from None
    return value


def normalize_subnetwork(subnetwork):
    """The full sub-network spec: `DEFAULT_SUBNETWORK` updated with ``subnetwork``.

    Args:
        subnetwork: None (the default sub-network) or a dict with some of the keys
            of `DEFAULT_SUBNETWORK`.

    Returns:
        A new dict with every key, lists for the layer sizes (JSON-ready).
    """
    spec = validate_spec("subnetwork", subnetwork, DEFAULT_SUBNETWORK)
    spec["block"] = validate_choice("subnetwork['block']", spec["block"], BLOCKS)
    spec["conv_filters"] = _validate_int_list("conv_filters", spec["conv_filters"])
    spec["kernel_size"] = validate_int("subnetwork['kernel_size']", spec["kernel_size"], minimum=1)
    spec["padding"] = validate_choice("subnetwork['padding']", spec["padding"], PADDINGS)
    spec["pooling"] = validate_choice("subnetwork['pooling']", spec["pooling"], POOLINGS)
    spec["pool_size"] = validate_int("subnetwork['pool_size']", spec["pool_size"], minimum=1)
    spec["dense_units"] = _validate_int_list("dense_units", spec["dense_units"])
    spec["activation"] = _validate_activation("activation", spec["activation"])
    if spec["activation"] in NON_ELEMENTWISE_ACTIVATIONS:
        raise ValueError(
            "Argument `subnetwork`: subnetwork['activation'] must act element by element "
            f"(the sub-networks' feature maps are side by side in the channels, and "
            f"{spec['activation']!r} normalises across channels, which would mix the "
            "sub-networks). Use it as subnetwork['output_activation'] instead. "
            f"Received: subnetwork['activation']={spec['activation']!r}"
        )
    spec["output_activation"] = _validate_activation(
        "output_activation", spec["output_activation"]
    )
    if spec["block"] == "residual" and spec["padding"] != "same":
        raise ValueError(
            "Argument `subnetwork`: residual blocks add their input to their output, "
            "so they need subnetwork['padding']='same'. "
            f"Received: subnetwork={subnetwork!r}"
        )
    return spec


def conv_stages(spec, in_channels):
    """The convolutions of ``spec``'s conv stages: the one reading of the stage keys.

    Args:
        spec: a normalised sub-network or final-network spec (keys ``"block"``,
            ``"conv_filters"``, ``"kernel_size"``, ``"padding"``).
        in_channels: channels of the stack's input.

    Returns:
        One dict per stage: ``"conv"``, ``"conv_b"`` (residual only) and
        ``"shortcut"`` (residual with a change of channels only, else None), each
        ``{"name", "filters", "kernel_size", "padding", "activation"}``
        (``activation`` True where the spec's activation follows the conv
        itself); and ``"in_channels"``. Names are those of the sub-network's
        layers (``conv_0``, ``block_0_conv_a``, ``block_0_conv_b``,
        ``block_0_shortcut``).
    """
    stages, channels = [], in_channels
    for stage, filters in enumerate(spec["conv_filters"]):

        def conv(name, size, activation):
            padding = spec["padding"] if size > 1 else "same"
            return {"name": name, "filters": filters, "kernel_size": size,
                    "padding": padding, "activation": activation}

        size = spec["kernel_size"]
        if spec["block"] == "plain":
            stages.append({"conv": conv(f"conv_{stage}", size, True), "conv_b": None,
                           "shortcut": None, "in_channels": channels})
        else:
            shortcut = conv(f"block_{stage}_shortcut", 1, False) if filters != channels else None
            stages.append({"conv": conv(f"block_{stage}_conv_a", size, True),
                           "conv_b": conv(f"block_{stage}_conv_b", size, False),
                           "shortcut": shortcut, "in_channels": channels})
        channels = filters
    return stages


def keras_conv_stack(spec, in_channels, prefix="", kernel_initializer=None, dtype=None):
    """``spec``'s conv stages, pooling, flatten and hidden dense layers as Keras layers.

    The sub-network of `ResetGrid` (`ResetGrid.subnetwork_model`) and the final
    network of a Reset network are both built here, from `conv_stages`.

    Args:
        spec: a normalised sub-network or final-network spec.
        in_channels: channels of the stack's input.
        prefix: prepended to every layer name (``conv_0`` -> ``prefix + "conv_0"``).
        kernel_initializer: None (Keras' default) or a callable ``index ->
            initializer`` for the ``index``-th kernel (convs, then dense layers, in
            call order).
        dtype: dtype policy of every layer (None: the global policy).

    Returns:
        ``(layers, plan)``: the flat list of layers in call order and one step per
        entry of the plan, ``("layer", i)`` (apply ``layers[i]``) or
        ``("residual", a, b, shortcut)`` (``shortcut`` -1 for the identity); run
        it with `apply_keras_conv_stack`.
    """
    layers, plan = [], []
    kernels = iter(range(10_000))

    def add(layer):
        layers.append(layer)
        return len(layers) - 1

    def initializer():
        index = next(kernels)
        return "glorot_uniform" if kernel_initializer is None else kernel_initializer(index)

    def conv(description):
        return add(keras.layers.Conv2D(
            description["filters"], description["kernel_size"],
            padding=description["padding"],
            activation=spec["activation"] if description["activation"] else None,
            kernel_initializer=initializer(), name=prefix + description["name"],
            dtype=dtype,
        ))

    pools = {"max": keras.layers.MaxPooling2D, "average": keras.layers.AveragePooling2D}
    for stage, description in enumerate(conv_stages(spec, in_channels)):
        if description["conv_b"] is None:
            plan.append(("layer", conv(description["conv"])))
        else:
            conv_a, conv_b = conv(description["conv"]), conv(description["conv_b"])
            shortcut = -1 if description["shortcut"] is None else conv(description["shortcut"])
            plan.append(("residual", conv_a, conv_b, shortcut))
        if spec["pooling"] != "none":
            plan.append(("layer", add(pools[spec["pooling"]](
                spec["pool_size"], name=f"{prefix}pool_{stage}", dtype=dtype))))
    plan.append(("layer", add(keras.layers.Flatten(name=f"{prefix}flatten", dtype=dtype))))
    for index, units in enumerate(spec["dense_units"]):
        plan.append(("layer", add(keras.layers.Dense(
            units, spec["activation"], kernel_initializer=initializer(),
            name=f"{prefix}dense_{index}", dtype=dtype,
        ))))
    return layers, plan


def apply_keras_conv_stack(layers, plan, x, activation):
    """Runs the ``(layers, plan)`` of `keras_conv_stack` on ``x``; ``activation`` is
    the spec's activation (applied after a residual block's addition)."""
    activation = keras.activations.get(activation)
    for step in plan:
        if step[0] == "layer":
            x = layers[step[1]](x)
            continue
        _, conv_a, conv_b, shortcut = step
        hidden = layers[conv_b](layers[conv_a](x))
        x = activation(hidden + (x if shortcut < 0 else layers[shortcut](x)))
    return x


_in_xla_context = _private.in_xla_context


def _grouped_conv2d(inputs, kernel, num_groups, padding):
    """A grouped 2-D convolution (stride 1) with gradients that run on any CPU.

    ``inputs`` ``(batch, h, w, num_groups * c)`` and ``kernel`` ``(k, k, c,
    num_groups * f)``, groups side by side in the channels, as for
    ``tf.nn.conv2d``; ``padding`` is ``"SAME"`` or ``"VALID"``. The same numbers
    as ``tf.nn.conv2d``, but TensorFlow's grouped backward kernels are never
    called (without oneDNN, TensorFlow has no CPU gradient for grouped
    convolutions): the gradient with respect to ``inputs`` is a forward grouped
    convolution of the (padded) upstream gradient with the spatially flipped
    kernel, in and out channels swapped, and the gradient with respect to
    ``kernel`` is one ordinary (ungrouped) ``Conv2DBackpropFilter`` per group.
    """
    size, _, channels, total = kernel.shape
    filters = total // num_groups
    # TensorFlow's SAME pads k - 1 in all, the extra one after; VALID pads none.
    before = (size - 1) // 2 if padding == "SAME" else 0

    @tf.custom_gradient
    def convolve(inputs, kernel):
        outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding=padding)

        def grad(upstream):
            # (k, k, c, g * f) -> flipped (k, k, f, g * c), groups kept in order.
            flipped = tf.reshape(kernel, [size, size, channels, num_groups, filters])
            flipped = tf.transpose(flipped[::-1, ::-1], [0, 1, 4, 3, 2])
            flipped = tf.reshape(flipped, [size, size, filters, num_groups * channels])
            if padding == "SAME" and size % 2:  # symmetric: the transpose is SAME too
                grad_inputs = tf.nn.conv2d(upstream, flipped, strides=1, padding="SAME")
            else:  # pad the upstream gradient to a "full" convolution, then VALID
                rows_before = size - 1 - before
                rows_after = inputs.shape[1] + size - 1 - upstream.shape[1] - rows_before
                cols_after = inputs.shape[2] + size - 1 - upstream.shape[2] - rows_before
                padded = tf.pad(
                    upstream,
                    [[0, 0], [rows_before, rows_after], [rows_before, cols_after], [0, 0]],
                )
                grad_inputs = tf.nn.conv2d(padded, flipped, strides=1, padding="VALID")
            group_inputs = tf.split(inputs, num_groups, axis=-1)
            group_upstream = tf.split(upstream, num_groups, axis=-1)
            grad_kernel = tf.concat(
                [
                    tf.raw_ops.Conv2DBackpropFilter(
                        input=group_input,
                        filter_sizes=[size, size, channels, filters],
                        out_backprop=group_grad,
                        strides=[1, 1, 1, 1],
                        padding=padding,
                    )
                    for group_input, group_grad in zip(group_inputs, group_upstream)
                ],
                axis=-1,
            )
            return grad_inputs, grad_kernel

        return outputs, grad

    return convolve(inputs, kernel)


@tf.custom_gradient
def _add_channel_bias(outputs, bias):
    """``outputs + bias`` over the last axis, with BiasAdd's gradient.

    Not a BiasAdd: TensorFlow's graph optimiser fuses a convolution followed by a
    BiasAdd into one kernel, which without oneDNN does not support grouped
    convolutions.
    """

    def grad(upstream):
        return upstream, tf.raw_ops.BiasAddGrad(out_backprop=upstream)

    return outputs + bias, grad


class _StackedInitializer:
    """Draws each sub-network's slice of a stacked weight with its own seed.

    A Keras initializer called on the stacked shape ``(num_networks, ...)`` would
    compute its fan-in/fan-out over the stack, and a seeded one returns the same
    values on every call; this draws ``initializer(shape[1:])`` once per
    sub-network, each with its own seed from ``seeds``.
    """

    def __init__(self, initializer, seeds):
        self.initializer = initializer
        self.seeds = [int(seed) for seed in seeds]

    def __call__(self, shape, dtype=None):
        config = self.initializer.get_config()
        if "seed" not in config:  # deterministic (zeros, constant, identity...)
            value = self.initializer(tuple(shape[1:]), dtype=dtype)
            return keras.ops.stack([value] * len(self.seeds))
        cls = type(self.initializer)
        return keras.ops.stack(
            [cls.from_config({**config, "seed": seed})(tuple(shape[1:]), dtype=dtype)
             for seed in self.seeds]
        )


class _StackedConv2D(keras.layers.Layer):
    """``num_networks`` independent 2-D convolutions (stride 1), vectorised.

    Weights: ``kernel`` ``(num_networks, k, k, in_channels, filters)`` and
    ``bias`` ``(num_networks, filters)``. With ``shared_input=True`` the input
    ``(batch, h, w, in_channels)`` is read by every network: one ordinary
    convolution with the kernels side by side. Otherwise each network has its
    own input, in one of two layouts (``layout``):

    - ``"channels"``: ``(batch, h, w, num_networks * in_channels)``, networks
      side by side in the channels (group-major), computed as one grouped
      ``tf.nn.conv2d``; outputs ``(batch, h', w', num_networks * filters)``.
    - ``"leading"`` (used under XLA): ``(num_networks, batch, h, w,
      in_channels)``, networks folded into a leading axis; computed as sums of
      shifted input windows times kernel taps: ``k * k`` batched matmuls, or
      for a shared input one im2col einsum. XLA's CPU compiler turns a grouped
      convolution into a dense block-diagonal one (``num_networks`` times the
      work) and is slow on these small convolutions; outputs
      ``(num_networks, batch, h', w', filters)``.
    """

    def __init__(self, num_networks, filters, kernel_size, padding, shared_input,
                 kernel_initializer, bias_initializer, **kwargs):
        super().__init__(**kwargs)
        self.num_networks = num_networks
        self.filters = filters
        self.kernel_size = kernel_size
        self.padding = padding
        self.shared_input = shared_input
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape):
        channels = input_shape[-1] if self.shared_input else input_shape[-1] // self.num_networks
        size = self.kernel_size
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_networks, size, size, channels, self.filters),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.num_networks, self.filters), initializer=self.bias_initializer
        )

    def call(self, inputs, layout="channels", add_bias=True):
        kernel = tf.cast(self.kernel, self.compute_dtype)
        num, size, _, channels, filters = kernel.shape
        if layout == "channels":
            # (g, k, k, c, f) -> (k, k, c, g * f): output channels group-major; a
            # non-shared input has g * c channels, so the convolution has g groups.
            kernel = tf.reshape(
                tf.transpose(kernel, [1, 2, 3, 0, 4]), [size, size, channels, num * filters]
            )
            if self.shared_input and num * filters >= IM2COL_MIN_CHANNELS:
                # (batch, h', w', k*k*c) patches, (kh, kw, c)-major like the kernel rows.
                patches = tf.image.extract_patches(
                    inputs, [1, size, size, 1], [1, 1, 1, 1], [1, 1, 1, 1],
                    padding=self.padding.upper(),
                )
                outputs = tf.matmul(
                    tf.reshape(patches, [-1, size * size * channels]),
                    tf.reshape(kernel, [size * size * channels, num * filters]),
                )
                outputs = tf.reshape(
                    outputs, [-1, patches.shape[1], patches.shape[2], num * filters]
                )
            elif self.shared_input:
                outputs = tf.nn.conv2d(inputs, kernel, strides=1, padding=self.padding.upper())
            else:
                outputs = _grouped_conv2d(inputs, kernel, num, self.padding.upper())
            return self.add_bias(outputs, layout) if add_bias else outputs
        # "leading": sums of input windows times kernel taps, as XLA dots.
        spatial_axis = 1 if self.shared_input else 2
        windows = self._windows(inputs, spatial_axis)
        if self.shared_input:  # im2col: (batch, h', w', k*k*c) x (g, k*k*c, f)
            patches = tf.concat(windows, axis=-1)
            kernel = tf.reshape(kernel, [num, size * size * channels, filters])
            outputs = tf.einsum("bhwp,gpf->gbhwf", patches, kernel)
        else:  # k*k batched matmuls (g, batch*h'*w', c) x (g, c, f)
            height, width = windows[0].shape[2], windows[0].shape[3]
            outputs = 0
            for tap, window in enumerate(windows):
                row, col = divmod(tap, size)
                outputs += tf.matmul(tf.reshape(window, [num, -1, channels]), kernel[:, row, col])
            outputs = tf.reshape(outputs, [num, -1, height, width, filters])
        return self.add_bias(outputs, layout) if add_bias else outputs

    def add_bias(self, outputs, layout="channels"):
        """``outputs`` of `call` with ``add_bias=False`` (then possibly pooled) plus the bias."""
        bias = tf.cast(self.bias, self.compute_dtype)
        if layout == "channels" and self.shared_input:
            # BiasAdd: its gradient is a BiasAddGrad, faster than a Sum.
            return tf.nn.bias_add(outputs, tf.reshape(bias, [-1]))
        if layout == "channels":
            return _add_channel_bias(outputs, tf.reshape(bias, [-1]))
        return outputs + bias[:, None, None, None, :]

    def _windows(self, inputs, axis):
        """The ``k * k`` shifted windows of ``inputs`` (spatial axes ``axis, axis + 1``)
        that tap ``(row, col)`` of the kernel multiplies, row-major."""
        size = self.kernel_size
        height, width = inputs.shape[axis], inputs.shape[axis + 1]
        if self.padding == "same":  # TensorFlow's SAME: the extra row/column after
            before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
            paddings = [[0, 0]] * len(inputs.shape)
            paddings[axis] = paddings[axis + 1] = [before, after]
            inputs = tf.pad(inputs, paddings)
        else:
            height, width = height - size + 1, width - size + 1
        lead = (slice(None),) * axis
        return [
            inputs[lead + (slice(row, row + height), slice(col, col + width))]
            for row in range(size)
            for col in range(size)
        ]


class _StackedDense(keras.layers.Layer):
    """``num_networks`` independent dense layers, vectorised as one batched matmul.

    Weights: ``kernel`` ``(num_networks, in_features, units)`` and ``bias``
    ``(num_networks, units)``. Inputs are ``(num_networks, batch, in_features)``
    or, with ``shared_input=True``, ``(batch, in_features)``; outputs are
    ``(num_networks, batch, units)``.
    """

    def __init__(self, num_networks, units, shared_input, kernel_initializer,
                 bias_initializer, **kwargs):
        super().__init__(**kwargs)
        self.num_networks = num_networks
        self.units = units
        self.shared_input = shared_input
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_networks, input_shape[-1], self.units),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.num_networks, self.units), initializer=self.bias_initializer
        )

    def call(self, inputs):
        kernel = tf.cast(self.kernel, self.compute_dtype)
        if self.shared_input:
            outputs = tf.einsum("bi,gio->gbo", inputs, kernel)
        else:
            outputs = tf.matmul(inputs, kernel)
        return outputs + tf.cast(self.bias, self.compute_dtype)[:, None, :]


@keras.saving.register_keras_serializable(package="tfemergent")
class ResetGrid(keras.layers.Layer):
    """n x n independent sub-networks whose outputs are tiled into an m x m grid.

    The first level of Hannagan's Reset network ``Reset(n, m)``: ``n * n``
    sub-networks read the same image; they share no weights and have no lateral
    connections. Each emits ``(m / n)**2`` units, reshaped row-major into a
    ``(m / n) x (m / n)`` block, and the blocks are tiled into the ``m x m`` grid
    that the next level of the network reads as an image. Sub-network ``i``
    fills block ``(r, c) = divmod(i, n)``: rows ``r * m / n`` to ``(r + 1) * m /
    n - 1``, columns ``c * m / n`` to ``(c + 1) * m / n - 1``. Dropout on the grid
    and the second level belong to the model, not to this layer.

    Sub-network architecture (``subnetwork``, a flat dict; missing keys take
    the defaults of ``DEFAULT_SUBNETWORK``):

    - ``"conv_filters"`` (``[8, 16]``): one stage per entry. A ``"plain"``
      stage (``"block"``) is one ``"kernel_size"`` (3) convolution + ``activation``;
      a ``"residual"`` stage is a ResNet basic block, ``activation(conv(
      activation(conv(x))) + shortcut(x))``, the shortcut a 1x1 convolution
      when the number of channels changes, else the identity (no batch
      normalisation; it needs ``"padding": "same"``). Each stage ends with
      ``"pooling"`` (``"max"``, ``"average"`` or ``"none"``) of ``"pool_size"``
      (default 2, stride = size, valid padding). ``"padding"`` (``"same"`` or
      ``"valid"``) is that of the convolutions.
    - then flatten, one dense layer + ``activation`` per entry of
      ``"dense_units"`` (``[32]``), and the output dense layer of ``(m / n)**2``
      units with ``"output_activation"`` (``"linear"``).

    The sub-networks run vectorised, never as a Python loop of models: every
    weight is stacked with a leading axis of size ``n * n`` (a conv kernel
    ``(n*n, k, k, c_in, c_out)``, a dense kernel ``(n*n, d_in, d_out)``) and
    the dense layers are batched matmuls. Without XLA, the sub-networks'
    feature maps lie side by side in the channels: the first convolution, which
    reads the shared image, is one convolution with ``n * n * c_out`` output
    channels (as im2col + one matmul from `IM2COL_MIN_CHANNELS` = 256 output
    channels on, e.g. at n = 8), the next ones are grouped convolutions
    (``tf.nn.conv2d`` with ``n * n`` groups, with their own gradients: the
    input gradient a forward grouped convolution of the flipped kernel, the
    kernel gradient one ungrouped ``Conv2DBackpropFilter`` per sub-network, so
    that training runs on CPUs without oneDNN, where TensorFlow has no grouped
    convolution gradient), and pooling and activations act on all
    sub-networks at once. A plain stage with max pooling and a non-decreasing
    activation (`NON_DECREASING_ACTIVATIONS`) pools before it adds the bias and
    applies the activation: the same numbers, ``pool_size**2`` times fewer
    values for the bias, the activation and their gradients. Under XLA
    (``jit_compile=True``), whose CPU compiler expands grouped convolutions
    into dense ones (``n * n`` times the work), the sub-networks are folded
    into a leading axis and every convolution is computed as batched matmuls of
    shifted input windows, the pooling as a reshape and a reduction. Both give
    the same numbers.

    Every architecture that ``subnetwork`` can describe (plain or residual conv
    stages, pooling, dense layers, and ``conv_filters=[]`` for MLP
    sub-networks) runs on both paths. Keras-model factories are not accepted:
    an arbitrary model could only run as a loop of ``n * n`` models.

    `subnetwork_model(i)` returns sub-network ``i`` as an ordinary Keras model
    (``Conv2D``, pooling, ``Flatten``, ``Dense`` layers) holding copies of its
    weights, for inspection.

    Each sub-network's slice of a weight is initialised on its own, with the
    fan-in/fan-out of one sub-network and its own seed derived from ``seed``.

    The stacked weights live in sublayers named after the sub-network's layers
    (``conv_0``, ``block_0_conv_a``/``_conv_b``/``_shortcut``, ``dense_0``,
    ``output``), returned by `get_layer`.

    Reference: T. Hannagan, "Reset networks" (2021).

    Args:
        grid_size: ``n``, the grid has ``n x n`` sub-networks, >= 1.
        subnetwork: dict describing every sub-network (see above), or None for
            the default.
        grid_width: ``m``, the grid has ``m x m`` units (default 32, as in the
            paper); a multiple of ``grid_size``.
        kernel_initializer: initializer of every kernel (conv and dense), drawn
            per sub-network.
        bias_initializer: initializer of every bias.
        seed: integer seed of the weight initialisation, or None (then the
            initializers' own integer seeds, else a seed drawn by
            `keras.random.SeedGenerator`, which `keras.utils.set_random_seed`
            makes reproducible).
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: images ``(batch, height, width, channels)``, or ``(batch,
            height, width)`` for one channel.

    Input shape:
        ``(batch_size, height, width, channels)`` or ``(batch_size, height,
        width)``.

    Output shape:
        ``(batch_size, grid_width, grid_width)``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.layers import ResetGrid
    >>> layer = ResetGrid(2, {"conv_filters": [4], "dense_units": [8]},
    ...                   grid_width=4, seed=0)
    >>> images = np.random.default_rng(0).random((3, 8, 8, 1)).astype("float32")
    >>> grid = layer(images)
    >>> grid.shape
    TensorShape([3, 4, 4])
    >>> layer.get_layer("conv_0").kernel.shape  # 2 x 2 stacked sub-networks
    TensorShape([4, 3, 3, 1, 4])
    >>> subnetwork = layer.subnetwork_model(1)  # sub-network 1: block (0, 1)
    >>> codes = subnetwork(images).numpy().reshape(3, 2, 2)
    >>> np.allclose(codes, grid.numpy()[:, 0:2, 2:4], atol=1e-5)
    True
    """

    def __init__(
        self,
        grid_size,
        subnetwork=None,
        grid_width=32,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        keras_multi_worker.patch_if_multi_worker()
        self.grid_size = validate_int("grid_size", grid_size, minimum=1)
        self.grid_width = validate_int("grid_width", grid_width, minimum=1)
        if self.grid_width % self.grid_size:
            raise ValueError(
                "Argument `grid_width` must be a multiple of `grid_size` (each of the "
                f"grid_size x grid_size sub-networks fills a square block). Received: "
                f"grid_width={grid_width!r}, grid_size={grid_size!r}"
            )
        self.subnetwork = normalize_subnetwork(subnetwork)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.seed = validate_seed("seed", seed)
        if self.seed is None:
            # As an unseeded Keras layer: the seed of a `keras.random.SeedGenerator`
            # (drawn by Keras, reproducible under `keras.utils.set_random_seed`).
            generator = keras.random.SeedGenerator()
            self._default_seed = int(keras.ops.convert_to_numpy(generator.state)[0])
        self.input_spec = keras.layers.InputSpec(min_ndim=3, max_ndim=4)

    # ------------------------------------------------------------------ geometry

    @property
    def num_subnetworks(self):
        """``grid_size ** 2``."""
        return self.grid_size**2

    @property
    def block_width(self):
        """``grid_width // grid_size``: the side of one sub-network's block."""
        return self.grid_width // self.grid_size

    # ------------------------------------------------------------------ build

    def _initializer(self, initializer, index):
        """A `_StackedInitializer` with one seed per sub-network for weight `index`."""
        base = self.seed
        if base is None:
            own_seed = getattr(initializer, "seed", None)
            is_int = isinstance(own_seed, (int, np.integer)) and not isinstance(own_seed, bool)
            base = int(own_seed) if is_int else self._default_seed
        seeds = np.random.SeedSequence([base, index]).generate_state(self.num_subnetworks)
        return _StackedInitializer(initializer, seeds % (2**31 - 1))

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if any(size is None for size in input_shape[1:]):
            raise ValueError(
                "ResetGrid needs inputs of known height, width and channels. "
                f"Received: input_shape={input_shape}"
            )
        spec = self.subnetwork
        num = self.num_subnetworks
        kernel_size = spec["kernel_size"]
        height, width = input_shape[1], input_shape[2]
        channels = input_shape[3] if len(input_shape) == 4 else 1
        self._image_shape = input_shape[1:]  # for subnetwork_model
        self._sublayers = []  # build order = call order
        weight_index = 0

        def make_conv(description, shared, in_channels, spatial):
            nonlocal weight_index
            layer = _StackedConv2D(
                num, description["filters"], description["kernel_size"],
                description["padding"], shared,
                self._initializer(self.kernel_initializer, weight_index),
                self._initializer(self.bias_initializer, weight_index + 1),
                name=description["name"], dtype=self.dtype_policy,
            )
            weight_index += 2
            layer.build((None,) + spatial + ((in_channels if shared else num * in_channels),))
            self._sublayers.append(layer)
            return layer

        spatial, shared = (height, width), True
        for stage, description in enumerate(conv_stages(spec, channels)):
            make_conv(description["conv"], shared, channels, spatial)
            if spec["padding"] == "valid":
                spatial = tuple(size - kernel_size + 1 for size in spatial)
            if description["conv_b"] is not None:
                make_conv(description["conv_b"], False, description["conv"]["filters"], spatial)
            if description["shortcut"] is not None:
                make_conv(description["shortcut"], shared, channels, spatial)
            channels, shared = description["conv"]["filters"], False
            if spec["pooling"] != "none":
                spatial = tuple(size // spec["pool_size"] for size in spatial)
            if min(spatial) < 1:
                raise ValueError(
                    f"Argument `subnetwork`: the feature maps of stage {stage} of the "
                    f"sub-networks are empty ({spatial}): the inputs are too small for "
                    "this many convolutions and poolings. Use fewer conv_filters, "
                    "'padding': 'same' or a smaller pool_size. "
                    f"Received: input_shape={input_shape}, subnetwork={spec}"
                )
        features = spatial[0] * spatial[1] * channels
        units = list(spec["dense_units"]) + [self.block_width**2]
        names = [f"dense_{index}" for index in range(len(spec["dense_units"]))] + ["output"]
        for name, size in zip(names, units):
            layer = _StackedDense(
                num, size, shared,
                self._initializer(self.kernel_initializer, weight_index),
                self._initializer(self.bias_initializer, weight_index + 1),
                name=name, dtype=self.dtype_policy,
            )
            weight_index += 2
            layer.build((None, features) if shared else (num, None, features))
            self._sublayers.append(layer)
            features, shared = size, False
        self.input_spec = keras.layers.InputSpec(
            ndim=len(input_shape), axes={i: input_shape[i] for i in range(1, len(input_shape))}
        )

    def get_layer(self, name):
        """The stacked sublayer ``name`` (``conv_0``, ``dense_0``, ``output``...)."""
        for layer in self._sublayers:
            if layer.name == name:
                return layer
        raise ValueError(
            f"ResetGrid {self.name!r} has no sublayer {name!r}; it has "
            f"{[layer.name for layer in self._sublayers]}. Received: name={name!r}"
        )

    # ------------------------------------------------------------------ call

    def _pool(self, x, layout):
        spec = self.subnetwork
        if spec["pooling"] == "none":
            return x
        size = spec["pool_size"]
        if layout == "channels":
            pool = tf.nn.max_pool2d if spec["pooling"] == "max" else tf.nn.avg_pool2d
            return pool(x, size, size, "VALID")
        # (g, batch, h, w, c): non-overlapping windows as a reshape and a
        # reduction (XLA's max_pool gradient, select-and-scatter, is slow on CPU).
        num, channels = x.shape[0], x.shape[4]
        height, width = x.shape[2] // size, x.shape[3] // size
        x = x[:, :, : height * size, : width * size, :]
        x = tf.reshape(x, [num, -1, height, size, width, size, channels])
        reduce = tf.reduce_max if spec["pooling"] == "max" else tf.reduce_mean
        return reduce(x, axis=[3, 5])

    def call(self, inputs):
        spec = self.subnetwork
        num = self.num_subnetworks
        activation = keras.activations.get(spec["activation"])
        # Grouped convolutions: tf.nn.conv2d with groups ("channels" layout) is the
        # fastest on CPU, but XLA's CPU compiler makes it a dense block-diagonal
        # convolution (num times the work); under XLA the
        # sub-networks are folded into a leading axis and convolved with batched
        # matmuls ("leading" layout). See the class docstring.
        layout = "leading" if _in_xla_context() else "channels"
        x = tf.cast(inputs, self.compute_dtype)
        if len(x.shape) == 3:
            x = x[..., None]
        batch = tf.shape(x)[0]
        layers = {layer.name: layer for layer in self._sublayers}
        # Without XLA, a plain stage with max pooling and a non-decreasing
        # activation pools first: max(act(z + b)) = act(max(z) + b) exactly
        # (floating-point rounding is monotonic too), and the bias, the activation
        # and their gradients then run on pool_size**2 times fewer values. (XLA
        # fuses them into the convolution's consumers anyway.)
        pool_first = (
            layout == "channels"
            and spec["block"] == "plain"
            and spec["pooling"] == "max"
            and spec["activation"] in NON_DECREASING_ACTIVATIONS
        )
        shared = True
        for description in conv_stages(spec, x.shape[-1]):
            conv = layers[description["conv"]["name"]]
            if pool_first:
                x = self._pool(conv(x, layout=layout, add_bias=False), layout)
                x = activation(conv.add_bias(x, layout))
            else:
                hidden = activation(conv(x, layout=layout))
                if description["conv_b"] is None:
                    x = hidden
                else:
                    hidden = layers[description["conv_b"]["name"]](hidden, layout=layout)
                    if description["shortcut"] is not None:
                        shortcut = layers[description["shortcut"]["name"]](x, layout=layout)
                    elif not shared:
                        shortcut = x
                    elif layout == "channels":  # identity of the shared input, per network
                        shortcut = tf.tile(x, [1, 1, 1, num])
                    else:
                        shortcut = tf.tile(x[None], [num, 1, 1, 1, 1])
                    x = activation(hidden + shortcut)
                x = self._pool(x, layout)
            shared = False
        # Flatten each sub-network's feature map (row-major, channels last).
        if shared:
            x = tf.reshape(x, [batch, -1])
        elif layout == "channels":
            height, width, channels = x.shape[1], x.shape[2], x.shape[3] // num
            x = tf.reshape(x, [batch, height, width, num, channels])
            x = tf.reshape(tf.transpose(x, [3, 0, 1, 2, 4]), [num, batch, -1])
        else:
            x = tf.reshape(x, [num, batch, -1])
        for index in range(len(spec["dense_units"])):
            x = activation(layers[f"dense_{index}"](x))
        x = keras.activations.get(spec["output_activation"])(layers["output"](x))
        # (n*n, batch, s*s) -> (n, n, batch, s, s) -> (batch, n, s, n, s) -> grid.
        size, block = self.grid_size, self.block_width
        x = tf.reshape(x, [size, size, batch, block, block])
        x = tf.transpose(x, [2, 0, 3, 1, 4])
        return tf.reshape(x, [batch, self.grid_width, self.grid_width])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.grid_width, self.grid_width)

    # ------------------------------------------------------------------ inspection

    def subnetwork_model(self, index):
        """Sub-network ``index`` as an ordinary Keras model with copies of its weights.

        Sub-network ``index`` fills block ``divmod(index, grid_size)`` of the grid.
        The model is built from standard Keras layers (``Conv2D``, ``Add``,
        pooling, ``Flatten``, ``Dense``) named as the stacked sublayers, takes the
        layer's inputs and returns the sub-network's ``block_width**2`` outputs,
        in the row-major order of its block. Changing it does not change the
        layer.

        Args:
            index: integer in ``[0, grid_size**2)``.

        Returns:
            A `keras.Model`.
        """
        index = validate_int("index", index, minimum=0, maximum=self.num_subnetworks - 1)
        if not self.built:
            raise ValueError(
                f"ResetGrid {self.name!r} is not built yet; call it on a batch of "
                f"images first. Received: index={index}"
            )
        spec = self.subnetwork
        input_shape = self._image_shape
        inputs = keras.Input(input_shape, name="images")
        x = inputs
        if len(input_shape) == 2:
            x = keras.layers.Reshape(
                input_shape + (1,), name="add_channel", dtype=self.dtype_policy
            )(x)
        channels = input_shape[2] if len(input_shape) == 3 else 1
        stack, plan = keras_conv_stack(spec, channels, dtype=self.dtype_policy)
        x = apply_keras_conv_stack(stack, plan, x, spec["activation"])
        outputs = keras.layers.Dense(
            self.block_width**2, spec["output_activation"], name="output",
            dtype=self.dtype_policy,
        )(x)
        model = keras.Model(inputs, outputs, name=f"{self.name}_subnetwork_{index}")
        for layer in self._sublayers:
            model.get_layer(layer.name).set_weights(
                [keras.ops.convert_to_numpy(layer.kernel)[index],
                 keras.ops.convert_to_numpy(layer.bias)[index]]
            )
        return model

    # ------------------------------------------------------------------ config

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "grid_size": self.grid_size,
                "subnetwork": dict(self.subnetwork),
                "grid_width": self.grid_width,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "seed": self.seed,
            }
        )
        return config
