"""`AddOnSuperNetwork`: a frozen `SegmentCNN` with the shared weights of every possible add-on."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent.analysis.kernel_sensitivity import kernel_sensitivity, select_connections
from tfemergent.initializers.smooth_kernel import SmoothKernel
from tfemergent.layers.add_on_conv2d import ADD_ON_KERNEL_SIZES, AddOnConv2D
from tfemergent.layers.masked_conv2d import MaskedConv2D
from tfemergent.models.nhn.data_checks import validate_images_and_labels
from tfemergent.models.nhn.segment_cnn import (
    GLOBAL_POOL_NAME,
    HEAD_NAME,
    SEGMENT_INPUT,
    SegmentCNN,
)
from tfemergent.search.location_space import LocationSpace
from tfemergent.utils.validation import (
    validate_bool,
    validate_choice,
    validate_float,
    validate_int,
)

GATES_NAME = "add_on_gates"
ADD_ON_INITIALIZERS = ("zeros", "smooth", "he_normal")
_LOCATION_KEYS = ("segment", "source", "target", "kernel_size")


def validate_kernel_sizes(kernel_sizes):
    """``kernel_sizes`` as a tuple of distinct add-on kernel sizes, or ``ValueError``."""
    if isinstance(kernel_sizes, np.ndarray):
        kernel_sizes = kernel_sizes.tolist()
    valid = (
        isinstance(kernel_sizes, (list, tuple))
        and len(kernel_sizes) > 0
        and all(
            isinstance(size, (int, np.integer))
            and not isinstance(size, bool)
            and size in ADD_ON_KERNEL_SIZES
            for size in kernel_sizes
        )
        and len(set(kernel_sizes)) == len(kernel_sizes)
    )
    if not valid:
        raise ValueError(
            "Argument `kernel_sizes` must be a non-empty list of distinct add-on kernel sizes "
            f"from {list(ADD_ON_KERNEL_SIZES)}. Received: kernel_sizes={kernel_sizes!r}"
        )
    return tuple(int(size) for size in kernel_sizes)


def _location(add_on):
    return (add_on["segment"], add_on["target"], add_on["kernel_size"], add_on["source"])


class _AddOnTrainer:
    """SGD with momentum on the add-on kernels; compiled once (private, not tracked)."""

    def __init__(self, network):
        self.variables = list(network.trainable_weights)
        self.velocities = [
            tf.Variable(tf.zeros(variable.shape, variable.dtype), trainable=False)
            for variable in self.variables
        ]
        image_spec = tf.TensorSpec((None,) + network.image_shape, tf.float32)
        label_spec = tf.TensorSpec((None,), tf.int64)
        scalar = tf.TensorSpec((), tf.float32)

        @tf.function(input_signature=[image_spec, label_spec, scalar, scalar, scalar])
        def step(images, labels, learning_rate, momentum, clipnorm):
            with tf.GradientTape() as tape:
                probabilities = network(images, training=True)
                loss = tf.reduce_mean(
                    keras.losses.sparse_categorical_crossentropy(labels, probabilities)
                )
            gradients = tape.gradient(
                loss, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
            # clipnorm <= 0: no clipping
            norm = tf.linalg.global_norm(gradients)
            scale = tf.where(
                (clipnorm > 0.0) & (norm > clipnorm), clipnorm / tf.maximum(norm, 1e-12), 1.0
            )
            gradients = [gradient * scale for gradient in gradients]
            for variable, velocity, gradient in zip(self.variables, self.velocities, gradients):
                velocity.assign(momentum * velocity - learning_rate * gradient)
                variable.assign_add(velocity)
            return loss

        @tf.function(input_signature=[image_spec])
        def predict(images):
            return tf.argmax(network(images, training=False), axis=-1)

        self.step = step
        self.predict = predict

    def reset(self):
        for velocity in self.velocities:
            velocity.assign(tf.zeros_like(velocity))


@keras.saving.register_keras_serializable(package="tfemergent")
class AddOnSuperNetwork(keras.Model):
    """A frozen `SegmentCNN` holding the shared weights of every possible add-on.

    The location-direction search (LDS) of Neuron Hierarchical Networks shares
    weights between candidates (as ENAS does): all possible add-on neurons
    (every add-on of `SegmentCNN.add_on_locations` with the given
    ``kernel_sizes``) have their weights in one network, and a candidate (a
    genome of `tfemergent.search.LocationSpace`) uses those of its add-ons
    only. The base network (``conv_{s}_{l}``, ``head``) is frozen
    (``trainable=False``): during the search only add-on weights train, so
    that the add-ons found are those that suit the existing neurons (paper,
    Section 3).

    Which add-ons are active is a non-trainable 0/1 variable ``add_on_gates``
    (one entry per `possible_add_ons`), changed only by the verbs
    `set_add_ons` and `set_genome`. In ``call`` an add-on with gate 0 is not
    computed (``tf.cond``), so its weights get exactly zero gradient and the
    cost of a candidate is that of its own add-ons; with the gates of a set of
    add-ons on, the network computes exactly what ``SegmentCNN`` built with
    those add-ons (and the same weights) computes (`to_model` builds that
    model).

    The layers and weights have the names of `SegmentCNN.build`:
    ``conv_{s}_{l}`` (`MaskedConv2D`, pruning masks kept), one
    ``add_on_{s}_{source}_{l}_k{k}`` (`AddOnConv2D`, dense at first) per
    possible add-on, ``head``. Build it from a trained (possibly pruned and
    shrunk) base model with `from_model`, which copies the base weights.

    Verbs: `set_add_ons(add_ons)` / `set_genome(genome)` (the gates),
    `set_add_on_weights(weights)` (shared weights, e.g. from a checkpoint;
    `add_on_weights` reads them), `train_add_ons(images, labels, ...)` (SGD
    with momentum on the active add-ons, base frozen), `select_directions(density)`
    (the direction search: set each active add-on's ``connection_mask`` to its
    most sensitive connections), `to_model()` (the `SegmentCNN` model with the
    active add-ons).

    **Direction search** (where the paper is ambiguous): the paper describes
    it both as an evolutionary search that re-generates every combination of
    directions in each of 300 cycles and as a choice "by standard deviation
    thresholds" with sparsity 0.1, keeping neurons of high sensitivity. We do
    the latter: train the dense add-ons at the chosen locations briefly
    (`train_add_ons`), then keep in each add-on the ``round(0.1 * in * out)``
    (at least 1) ``(in, out)`` kernels of highest standard deviation
    (`tfemergent.analysis.select_connections`), one threshold per add-on so
    that every location keeps 10% of its connections.

    Reference: "Neuron Hierarchical Networks" (anonymous, ICLR 2019
    submission), Section 2.3 (weight sharing in add-on search, LDS) and
    Section 3.

    Args:
        image_shape: ``(height, width, channels)`` of the images.
        num_classes: number of classes, >= 2.
        segments: the base network's segments (see `SegmentCNN`).
        kernel_sizes: kernel sizes of the possible add-ons (subset of
            ``(3, 5)``).
        include_segment_input: whether an add-on may read the segment's input
            (as `LocationSpace`).
        add_on_initializer: initial add-on kernels: ``"zeros"`` (default:
            every candidate starts as the frozen base network, and an add-on's
            kernels gain texture only by training), ``"smooth"``
            (`tfemergent.initializers.SmoothKernel`: He normal smoothed by a
            3 x 3 Gaussian, as the paper's smooth initialisation) or
            ``"he_normal"``. Random kernels make the untrained add-ons of a
            candidate perturb the frozen network's pre-activations, which a
            few batches of training do not undo: on the digits (frozen base
            at 91% test accuracy, 2 batches of 32 per candidate, learning
            rate 0.01) the candidates of the first cycle averaged 77%
            validation accuracy with ``"smooth"`` and 93% with ``"zeros"``.
        smoothing_sigma: sigma of the smoothing Gaussian, > 0.
        seed: integer seed of the initial weights, or None.
        **kwargs: base `keras.Model` arguments (``name``...).

    Call arguments:
        inputs: images ``(batch, height, width, channels)``.
        training: unused (no dropout or batch normalisation).

    Input shape:
        ``(batch_size,) + image_shape``.

    Output shape:
        ``(batch_size, num_classes)``, softmax probabilities.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models import SegmentCNN
    >>> from tfemergent.models import AddOnSuperNetwork
    >>> base = SegmentCNN((8, 8, 1), 3, segments=[[4, 4], [6]], seed=0).build()
    >>> network = AddOnSuperNetwork.from_model(base, kernel_sizes=(3,), seed=1)
    >>> len(network.possible_add_ons)  # into layer 1 of segment 0 from its input or layer 0,
    ... # into layer 0 of segment 0 and of segment 1 from their inputs
    4
    >>> images = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype("float32")
    >>> bool(np.allclose(network(images), base(images), atol=1e-6))  # no add-on active
    True
    >>> network.set_add_ons([{"segment": 0, "source": "input", "target": 1, "kernel_size": 3}])
    >>> model = network.to_model()
    >>> [layer.name for layer in model.layers if layer.name.startswith("add_on")]
    ['add_on_0_input_1_k3']
    >>> bool(np.allclose(network(images), model(images), atol=1e-5))
    True
    >>> [w.name for w in network.trainable_weights][:2]  # only add-ons train
    ['kernel', 'kernel']
    """

    def __init__(
        self,
        image_shape,
        num_classes,
        segments=None,
        kernel_sizes=ADD_ON_KERNEL_SIZES,
        include_segment_input=True,
        add_on_initializer="zeros",
        smoothing_sigma=1.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        spec = SegmentCNN(
            image_shape,
            num_classes,
            segments,
            smooth_init=False,
            smoothing_sigma=smoothing_sigma,
            seed=seed,
        )
        self._spec = spec
        self.image_shape = spec.input_shape
        self.num_classes = spec.num_classes
        self.segments = spec.segments
        self.kernel_sizes = validate_kernel_sizes(kernel_sizes)
        self.include_segment_input = validate_bool("include_segment_input", include_segment_input)
        self.add_on_initializer = validate_choice(
            "add_on_initializer", add_on_initializer, ADD_ON_INITIALIZERS
        )
        self.smoothing_sigma = spec.smoothing_sigma
        self.seed = spec.seed
        self._possible = tuple(
            add_on
            for add_on in spec.add_on_locations(self.kernel_sizes)
            if self.include_segment_input or add_on["source"] != SEGMENT_INPUT
        )
        self._gate_index = {_location(add_on): index for index, add_on in enumerate(self._possible)}
        self._trainer = None
        self.build((None,) + self.image_shape)

    # ------------------------------------------------------------------ structure
    @property
    def spec(self):
        """The base network's `SegmentCNN` spec (without add-ons)."""
        return self._spec

    @property
    def possible_add_ons(self):
        """Every add-on of the super-network (location dicts), in gate order.

        The order of `SegmentCNN.add_on_locations`, which is also the order of
        `LocationSpace.possible_add_ons`.
        """
        return [dict(add_on) for add_on in self._possible]

    def location_space(self, none_probability=0.8):
        """The `tfemergent.search.LocationSpace` whose genomes `set_genome` takes."""
        return LocationSpace(
            segment_sizes=self._spec.segment_sizes,
            kernel_sizes=self.kernel_sizes,
            none_probability=none_probability,
            include_segment_input=self.include_segment_input,
        )

    def _initializer(self, index):
        seed = None if self.seed is None else self.seed * 1000 + 2000 + index
        if self.add_on_initializer == "smooth":
            return SmoothKernel("he_normal", sigma=self.smoothing_sigma, seed=seed)
        if self.add_on_initializer == "he_normal":
            return keras.initializers.HeNormal(seed=seed)
        return keras.initializers.Zeros()

    def build(self, input_shape):
        height, width, channels = self.image_shape
        self._convs = []
        self._add_on_layers = []
        self._pools = []
        widths = []
        for segment, layers in enumerate(self.segments):
            convs = []
            for index, settings in enumerate(layers):
                conv = MaskedConv2D(
                    settings["filters"],
                    settings["kernel_size"],
                    name=SegmentCNN.conv_name(segment, index),
                    trainable=False,
                    dtype=self.dtype_policy,
                )
                conv.build((None, height, width, channels))
                convs.append(conv)
                channels = settings["filters"]
            self._convs.append(convs)
            widths.append((height, width))
            if segment < len(self.segments) - 1:
                pool = keras.layers.MaxPooling2D(
                    2, name=f"pool_{segment}", dtype=self.dtype_policy
                )
                pool.build((None, height, width, channels))
                self._pools.append(pool)
                height, width = height // 2, width // 2
        self._relu = keras.layers.ReLU(name="relu", dtype=self.dtype_policy)
        self._global_pool = keras.layers.GlobalAveragePooling2D(
            name=GLOBAL_POOL_NAME, dtype=self.dtype_policy
        )
        self._head = keras.layers.Dense(
            self.num_classes, activation="softmax", name=HEAD_NAME, trainable=False,
            dtype=self.dtype_policy,
        )
        self._head.build((None, channels))
        for index, add_on in enumerate(self._possible):
            segment = add_on["segment"]
            layer = AddOnConv2D(
                self.segments[segment][add_on["target"]]["filters"],
                add_on["kernel_size"],
                kernel_initializer=self._initializer(index),
                name=SegmentCNN.add_on_name(add_on),
                dtype=self.dtype_policy,
            )
            in_channels = self._spec.input_channels(segment, add_on["source"])
            layer.build((None,) + widths[segment] + (in_channels,))
            self._add_on_layers.append(layer)
        self.add_on_gates = self.add_weight(
            name=GATES_NAME,
            shape=(len(self._possible),),
            initializer="zeros",
            trainable=False,
        )
        self._targeting = {}
        for index, add_on in enumerate(self._possible):
            self._targeting.setdefault((add_on["segment"], add_on["target"]), []).append(index)
        self.built = True

    def _gated(self, index, source, like):
        layer = self._add_on_layers[index]
        return tf.cond(
            self.add_on_gates[index] > 0.5,
            lambda: layer(source),
            lambda: tf.zeros_like(like),
        )

    def call(self, inputs, training=None):
        x = inputs
        for segment, convs in enumerate(self._convs):
            segment_input = x
            outputs = []
            for index, conv in enumerate(convs):
                pre = conv(x)
                for gate in self._targeting.get((segment, index), ()):
                    source = self._possible[gate]["source"]
                    source = segment_input if source == SEGMENT_INPUT else outputs[source]
                    pre = pre + self._gated(gate, source, pre)
                x = self._relu(pre)
                outputs.append(x)
            if segment < len(self._convs) - 1:
                x = self._pools[segment](x)
        return self._head(self._global_pool(x))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    # ------------------------------------------------------------------ base weights
    @classmethod
    def from_model(
        cls,
        model,
        kernel_sizes=ADD_ON_KERNEL_SIZES,
        include_segment_input=True,
        add_on_initializer="zeros",
        smoothing_sigma=1.0,
        seed=None,
    ):
        """The super-network of a base model built by `SegmentCNN.build`, its weights copied.

        The base model (e.g. trained, pruned and shrunk) must have no add-ons;
        its convolutions (kernels, biases, pruning masks) and head are copied.
        """
        spec = SegmentCNN.from_model(model)
        if spec.add_ons:
            raise ValueError(
                "The base model of an AddOnSuperNetwork must have no add-ons (the "
                "super-network holds all of them). Received: a model with add-ons "
                f"{[SegmentCNN.add_on_name(a) for a in spec.add_ons]}"
            )
        network = cls(
            spec.input_shape,
            spec.num_classes,
            spec.segments,
            kernel_sizes=kernel_sizes,
            include_segment_input=include_segment_input,
            add_on_initializer=add_on_initializer,
            smoothing_sigma=smoothing_sigma,
            seed=seed,
        )
        network.load_base_weights(model)
        return network

    def load_base_weights(self, model):
        """Copy the convolutions and head of a `SegmentCNN` model with the same structure."""
        try:
            spec = SegmentCNN.from_model(model)
        except ValueError as error:
            raise ValueError(f"Argument `model`: {error}") from None
        if spec.segments != self.segments or spec.num_classes != self.num_classes or tuple(
            spec.input_shape
        ) != tuple(self.image_shape):
            raise ValueError(
                "Argument `model` must have the base structure of this super-network "
                f"(input {self.image_shape}, {self.num_classes} classes, segments "
                f"{self.segments}). Received: input {spec.input_shape}, {spec.num_classes} "
                f"classes, segments {spec.segments}"
            )
        for name in self._spec.conv_names + [HEAD_NAME]:
            self.get_layer(name).set_weights(model.get_layer(name).get_weights())

    # ------------------------------------------------------------------ add-ons
    def _normalize(self, add_ons):
        normalized = self._spec.with_add_ons(add_ons).add_ons
        for index, add_on in enumerate(normalized):
            if _location(add_on) not in self._gate_index:
                raise ValueError(
                    f"Argument `add_ons`: {SegmentCNN.add_on_name(add_on)} is not a possible "
                    f"add-on of this super-network (kernel sizes {list(self.kernel_sizes)}, "
                    f"include_segment_input={self.include_segment_input}). "
                    f"Received: add_ons[{index}]={add_on!r}"
                )
        return normalized

    def set_add_ons(self, add_ons):
        """Activate exactly these add-ons (dicts as in `SegmentCNN`); the others are off.

        At most one add-on per target layer and kernel size (a genome). A
        ``connection_mask`` given with an add-on is set on its shared layer;
        otherwise the layer keeps its mask.
        """
        normalized = self._normalize(add_ons)
        gates = np.zeros(len(self._possible), "float32")
        for add_on in normalized:
            index = self._gate_index[_location(add_on)]
            gates[index] = 1.0
            if add_on["connection_mask"] is not None:
                self._add_on_layers[index].set_connection_mask(add_on["connection_mask"])
        self.add_on_gates.assign(gates)

    def set_genome(self, genome):
        """Activate the add-ons of a genome of `location_space()` (`LocationSpace.decode`)."""
        locations = self.location_space().decode(genome)
        self.set_add_ons(self._spec.add_ons_from_locations(locations))

    @property
    def active_add_ons(self):
        """The active add-ons (location dicts), in gate order."""
        gates = self.add_on_gates.numpy()
        return [dict(add_on) for add_on, gate in zip(self._possible, gates) if gate > 0.5]

    def add_on_layer(self, add_on):
        """The shared `AddOnConv2D` of an add-on dict."""
        normalized = self._normalize([add_on])[0]
        return self._add_on_layers[self._gate_index[_location(normalized)]]

    def add_on_weights(self, add_ons=None):
        """The add-on kernels (and biases): dict ``"<layer>.<weight>" -> array``.

        Args:
            add_ons: None (every possible add-on) or a list of add-on dicts.
        """
        if add_ons is None:
            layers = self._add_on_layers
        else:
            layers = [self.add_on_layer(add_on) for add_on in add_ons]
        return {
            f"{layer.name}.{weight.name}": weight.numpy()
            for layer in layers
            for weight in layer.trainable_weights
        }

    def set_add_on_weights(self, weights):
        """Assign add-on weights given as `add_on_weights` returns them (any subset)."""
        variables = {
            f"{layer.name}.{weight.name}": weight
            for layer in self._add_on_layers
            for weight in layer.trainable_weights
        }
        if not isinstance(weights, dict):
            raise ValueError(
                "Argument `weights` must be a dict '<add-on layer>.<weight>' -> array, as "
                f"returned by add_on_weights(). Received: weights={type(weights).__name__}"
            )
        for key, value in weights.items():
            if key not in variables:
                raise ValueError(
                    f"Argument `weights`: {key!r} is not an add-on weight of this "
                    f"super-network. Received: key={key!r}"
                )
            value = np.asarray(value)
            if value.shape != tuple(variables[key].shape):
                raise ValueError(
                    f"Argument `weights`: {key!r} must have the shape "
                    f"{tuple(variables[key].shape)}. Received: shape={value.shape}"
                )
        for key, value in weights.items():
            variables[key].assign(np.asarray(value, variables[key].dtype))

    # ------------------------------------------------------------------ training
    def _get_trainer(self):
        if self._trainer is None:
            # A plain attribute holder: its variables are not model weights.
            object.__setattr__(self, "_trainer", _AddOnTrainer(self))
        return self._trainer

    def train_add_ons(
        self,
        images,
        labels,
        batch_size=100,
        learning_rate=0.05,
        momentum=0.9,
        global_clipnorm=5.0,
    ):
        """One pass of SGD with momentum over ``images`` in order; the base stays frozen.

        Only the active add-ons change (inactive ones get zero gradient and,
        with the momentum restarted at every call, no update). Masked
        connections stay zero.

        Args:
            images: float array ``(n,) + image_shape``.
            labels: int array ``(n,)``.
            batch_size: int >= 1 (the last batch may be smaller).
            learning_rate: float > 0.
            momentum: float in [0, 1).
            global_clipnorm: float > 0 or None: gradients are scaled down to
                this global norm when above it (the paper's 5.0).

        Returns:
            the mean training loss over the batches (float).
        """
        images, labels = self._check_data(images, labels)
        batch_size = validate_int("batch_size", batch_size, minimum=1)
        learning_rate = validate_float(
            "learning_rate", learning_rate, minimum=0.0, min_inclusive=False
        )
        momentum = validate_float("momentum", momentum, minimum=0.0, maximum=0.999)
        global_clipnorm = validate_float(
            "global_clipnorm", global_clipnorm, minimum=0.0, min_inclusive=False, allow_none=True
        )
        trainer = self._get_trainer()
        trainer.reset()
        losses = []
        for start in range(0, len(images), batch_size):
            loss = trainer.step(
                images[start : start + batch_size],
                labels[start : start + batch_size],
                tf.constant(learning_rate, tf.float32),
                tf.constant(momentum, tf.float32),
                tf.constant(global_clipnorm or 0.0, tf.float32),
            )
            losses.append(float(loss))
        return float(np.mean(losses))

    def accuracy(self, images, labels, batch_size=500):
        """Fraction of ``images`` classified as ``labels`` (the active add-ons on)."""
        images, labels = self._check_data(images, labels)
        batch_size = validate_int("batch_size", batch_size, minimum=1)
        trainer = self._get_trainer()
        correct = 0
        for start in range(0, len(images), batch_size):
            predicted = trainer.predict(images[start : start + batch_size]).numpy()
            correct += int(np.sum(predicted == labels[start : start + batch_size]))
        return correct / len(images)

    def _check_data(self, images, labels):
        return validate_images_and_labels("images", images, labels, self.image_shape)

    # ------------------------------------------------------------------ directions
    def select_directions(self, density=0.1):
        """The direction search: keep each active add-on's most sensitive connections.

        For every active add-on, the ``max(1, round(density * in * out))``
        ``(in, out)`` kernels of highest standard deviation stay connected;
        the ``connection_mask`` of the others is set to 0 (their weights are
        zeroed). A connection masked already is never connected again (an
        add-on with fewer connections left keeps them all). Train the dense
        add-ons first (`train_add_ons`).

        Args:
            density: fraction of connections kept per add-on, in (0, 1]
                (the paper: 0.1).

        Returns:
            dict add-on layer name -> int array ``(in, out)``, the new masks.
        """
        density = validate_float(
            "density", density, minimum=0.0, maximum=1.0, min_inclusive=False
        )
        masks = {}
        for add_on in self.active_add_ons:
            layer = self._add_on_layers[self._gate_index[_location(add_on)]]
            live = layer.connection_mask.numpy() > 0.5
            sensitivity = kernel_sensitivity(layer.kernel.numpy(), live)
            # Masked connections rank last and are never connected again.
            keep = select_connections(np.where(live, sensitivity, -np.inf), density) & live
            layer.set_connection_mask(keep)
            masks[layer.name] = keep.astype("int64")
        return masks

    # ------------------------------------------------------------------ export
    def to_model(self, name="segment_cnn"):
        """The `SegmentCNN` model with the active add-ons and this network's weights.

        The add-ons keep their connection masks; every layer is trainable
        (ready for the final training).
        """
        add_ons = []
        for add_on in self.active_add_ons:
            layer = self._add_on_layers[self._gate_index[_location(add_on)]]
            add_ons.append({**add_on, "connection_mask": layer.connection_mask.numpy()})
        model = self._spec.with_add_ons(add_ons).build(name=name, dtype=self.dtype_policy)
        for layer in model.layers:
            if isinstance(layer, (MaskedConv2D, AddOnConv2D, keras.layers.Dense)):
                layer.set_weights(self.get_layer(layer.name).get_weights())
        return model

    def get_config(self):
        return {
            **super().get_config(),
            "image_shape": list(self.image_shape),
            "num_classes": self.num_classes,
            "segments": [[dict(layer) for layer in layers] for layers in self.segments],
            "kernel_sizes": list(self.kernel_sizes),
            "include_segment_input": self.include_segment_input,
            "add_on_initializer": self.add_on_initializer,
            "smoothing_sigma": self.smoothing_sigma,
            "seed": self.seed,
        }
