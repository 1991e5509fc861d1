"""Unstructured recursive network (URN) of Golkar: one S x S weight applied I times."""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from tfemergent import regularizers as tfe_regularizers
from tfemergent.geometry.uplifted_lattice import UpliftedLattice
from tfemergent.kernels import custom_ops
from tfemergent.kernels import sparse_matmul
from tfemergent.utils import keras_multi_worker
from tfemergent.utils.dtypes import cost_dtype, in_loss_dtype, to_loss_dtype
from tfemergent.utils import _private
from tfemergent.utils.seeding import seeded_initializer
from tfemergent.utils.validation import (
    validate_bool,
    validate_choice,
    validate_float,
    validate_int,
    validate_keras_object,
    validate_numeric_inputs,
    validate_seed,
)

RESIDUAL_MODES = ("none", "output", "input")


def _get_lattice(lattice):
    """``None``, an `UpliftedLattice`, or its serialised form -> lattice or None."""
    if lattice is None or isinstance(lattice, UpliftedLattice):
        return lattice
    if isinstance(lattice, dict):
        if "class_name" in lattice:
            lattice = keras.saving.deserialize_keras_object(lattice)
        else:
            lattice = UpliftedLattice.from_config(lattice)
        return lattice
    raise ValueError(
        "Argument `lattice` must be None, an UpliftedLattice or its config. "
        f"Received: lattice={lattice!r}"
    )


def _validate_indices(name, indices, length, num_neurons):
    """Return ``indices`` as a list of ``length`` distinct ints in ``[0, num_neurons)``."""
    if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
        raise ValueError(
            f"Argument `{name}` must be a list of neuron indices. Received: {name}={indices!r}"
        )
    indices = indices.tolist() if isinstance(indices, np.ndarray) else list(indices)
    checked = []
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise ValueError(
                f"Argument `{name}` must contain integers. Received: {name}={indices!r}"
            )
        checked.append(int(index))
    if len(checked) != length:
        raise ValueError(
            f"Argument `{name}` must have {length} entries (one per "
            f"{'input' if name == 'input_indices' else 'output'} dimension). "
            f"Received: {name}={checked!r} (length {len(checked)})"
        )
    out_of_range = [index for index in checked if not 0 <= index < num_neurons]
    if out_of_range:
        raise ValueError(
            f"Argument `{name}` must hold indices in [0, num_neurons={num_neurons}). "
            f"Out of range: {out_of_range}. Received: {name}={checked!r}"
        )
    if len(set(checked)) != len(checked):
        raise ValueError(
            f"Argument `{name}` must not repeat a neuron. Received: {name}={checked!r}"
        )
    return checked


def _physical_memory_bytes():
    """Total physical memory of the machine in bytes, or None where unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _check_kernel_fits_in_memory(num_neurons, dtype):
    """Refuse a dense S x S kernel larger than the machine's memory, before allocating it."""
    kernel_bytes = num_neurons * num_neurons * np.dtype(dtype).itemsize
    memory = _physical_memory_bytes()
    if memory is not None and kernel_bytes > memory:
        raise ValueError(
            f"Argument `num_neurons`: the dense {num_neurons} x {num_neurons} kernel "
            f"needs {kernel_bytes / 2**30:.1f} GiB ({np.dtype(dtype).name}), more than this "
            f"machine's {memory / 2**30:.1f} GiB of memory. Use fewer neurons (a kernel of "
            f"S x S values fits for S <= {math.isqrt(memory // np.dtype(dtype).itemsize)}, "
            f"and training needs several times that). Received: num_neurons={num_neurons}"
        )


@keras.saving.register_keras_serializable(package="tfemergent")
class RecursiveURNLayer(keras.layers.Layer):
    """Unstructured recursive network: one dense S x S weight applied I times.

    All ``num_neurons`` (S) neurons of the system form one state vector ``N``.
    The sample ``x`` (``input_dim`` values) is written into the input neurons,
    every other neuron starts at zero (eq. 2)::

        N^(0)[input_indices] = x,   N^(0)[other] = 0

    and the update rule (eq. 3) is applied ``num_iterations`` (I) times::

        N^(l+1) = activation(N^(l) @ kernel + bias)

    The output is ``N^(I)[output_indices]`` (eq. 4). ``kernel`` has Keras's
    ``[from, to]`` layout, so ``kernel[j, i]`` is the paper's ``W_ij`` (the
    weight of the connection from neuron ``j`` to neuron ``i``); the paper's
    ``W`` is ``kernel.T``. The block sub-diagonal ``W`` of eq. 1 that embeds an
    MLP is therefore block *super*-diagonal in ``kernel``.

    Residual variants (``residual``):

    - ``"none"``: eq. 3 as above.
    - ``"output"`` (eq. 6): output neurons accumulate,
      ``N_i^(l+1) = N_i^(l) + activation(...)_i`` for ``i`` in ``output_indices``,
      so the emergent network can use fewer than I layers.
    - ``"input"`` (eq. 7): the input is re-injected at every step,
      ``N_i^(l+1) = x_i + activation(...)_i`` for the input neurons.

    Defaults: the input neurons are ``range(input_dim)`` (the first ones, as in
    eq. 2) and the output neurons are ``range(S - output_dim, S)``: the last
    ``output_dim`` neurons in ascending order, so output ``k`` is neuron
    ``S - output_dim + k`` (the paper's ``y_i = N_{S-i}`` counts the same
    neurons from the end; only their order differs). Geometries such as an
    uplifted lattice pass their own ``input_indices``/``output_indices``.

    Loss terms of eq. 5: ``c_W |W|`` is ``kernel_regularizer=keras.regularizers.L1(c_W)``;
    ``c_N sum_l |N^(l)|`` is ``state_regularizer=tfemergent.regularizers.
    IterationActivityL1(c_N)``. The state regularizer receives the stacked states
    ``N^(1..I)`` of shape ``(I, batch, S)`` and its value is added with
    ``add_loss`` at every call.

    The iterations are an unrolled Python loop (I is static and small), so the
    layer works under XLA (``jit_compile=True``), ``MirroredStrategy`` and
    SavedModel export. Use `compute_states` to read all the intermediate states.

    Sparse recurrent product: once training has made ``W`` sparse (e.g. with
    L1 costs and pruning), `use_sparse_kernel(threshold)` freezes the pattern
    ``|kernel| > threshold`` and switches the product ``N @ kernel`` to
    `tfemergent.kernels.sparse_matmul`. The pattern is stored in the
    non-trainable int64 variables ``kernel_indices`` ``(nnz, 2)`` (row-major
    ``[from, to]`` pairs) and ``kernel_transpose_order`` ``(nnz,)`` (their
    column-major order, which the kernel would otherwise sort per call), the
    surviving weights in the new trainable variable ``kernel_values``
    ``(nnz,)``, which takes over ``kernel_regularizer``. Training then changes
    only the surviving synapses (pruned ones stay exactly zero) and costs
    O(nnz * batch) per iteration instead of O(S^2 * batch). While sparse, the
    dense ``kernel`` variable still exists (still the first weight, so analysis
    code and exports find it; the sparse variables follow ``bias``) but is frozen
    (``trainable=False``) and is **not** updated by training: read the current
    dense weights with `dense_kernel()`, and `use_dense_kernel()` writes the
    values back into ``kernel`` and returns to the dense product. Switching
    changes the trainable variables: compile the model again afterwards. A
    sparse-mode layer saves and loads (``.keras`` with its optimizer state, and
    ``save_weights``) and exports: its config then holds the extra key
    ``num_sparse_connections`` so that `from_config` + ``build`` recreate the
    sparse variables (filled by loading the weights); weights saved in sparse
    mode also load into a dense-config layer, which then becomes sparse. Under
    ``jit_compile=True`` the product falls back to an XLA-compilable gather +
    segment sum (correct but slower: train the sparse model without XLA).

    Reference: S. Golkar, "Emergent Structures and Lifetime Structure Evolution
    in Artificial Neural Networks" (2019), eqs. 1-7.

    Args:
        num_neurons: total number of neurons S, >= ``input_dim + output_dim``.
        num_iterations: number of applications I of the update rule, >= 1.
        input_dim: number of input values (flattened size of one sample), >= 1.
        output_dim: number of outputs, >= 1.
        activation: activation ``phi`` (default ``"relu"``, as in the paper).
        residual: ``"none"``, ``"output"`` (eq. 6) or ``"input"`` (eq. 7).
        use_bias: whether to add the bias ``b`` (shape ``(S,)``).
        kernel_initializer: initializer of the S x S kernel (default He normal,
            as in the paper); a seedable initializer without a seed gets ``seed``.
        bias_initializer: initializer of the bias.
        kernel_regularizer, bias_regularizer: as in `keras.layers.Dense`.
        state_regularizer: regularizer of the stacked states ``N^(1..I)``, e.g.
            `tfemergent.regularizers.IterationActivityL1`, or None.
        input_indices: the ``input_dim`` distinct neurons that receive the input;
            default ``range(input_dim)``.
        output_indices: the ``output_dim`` distinct neurons read as output,
            disjoint from ``input_indices``; default ``range(S - output_dim, S)``.
        lattice: optional `tfemergent.geometry.UpliftedLattice` giving the
            neurons a place in the uplifted geometry of the paper's section 3
            (``num_neurons`` must equal its size, ``input_dim`` its input plane).
            Its input plane and centre outputs become the default indices, and
            image inputs of any size are resized onto the input plane
            (`UpliftedLattice.embed`).
        synaptic_length: optional `tfemergent.regularizers.SynapticLength`
            (needs ``lattice``): ``c_syn * sum |W_ij| d_ij^gamma`` on the lattice
            distances, added with ``add_loss`` and computed without an S x S
            distance matrix.
        seed: integer seed of every random draw of the layer: the kernel
            initializer (a seedable initializer without a seed gets ``seed``)
            and the bias initializer (its own seed derived from ``seed``); or None.
        check_numerics: if True, every call checks that the states are finite
            and raises ``InvalidArgumentError`` naming the first iteration that
            produced NaN or inf (huge weights make the recursion overflow).
            Off by default: the check costs one reduction per iteration.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: tensor of shape ``(batch, input_dim)``, or images
            ``(batch, H, W)`` / ``(batch, H, W, C)`` with ``H*W*C == input_dim``,
            flattened row-major (``reshape``).

    Input shape:
        ``(batch_size, input_dim)`` or ``(batch_size, *image_shape)``.

    Output shape:
        ``(batch_size, output_dim)``.

    Example:

    >>> import keras, numpy as np
    >>> from tfemergent.layers import RecursiveURNLayer
    >>> from tfemergent.regularizers import IterationActivityL1
    >>> layer = RecursiveURNLayer(num_neurons=16, num_iterations=3, input_dim=4,
    ...     output_dim=2, residual="output",
    ...     kernel_regularizer=keras.regularizers.L1(5e-7),
    ...     state_regularizer=IterationActivityL1(2e-5), seed=0)
    >>> layer(np.ones((5, 4), "float32")).shape
    TensorShape([5, 2])
    >>> layer.compute_states(np.ones((5, 4), "float32")).shape
    TensorShape([4, 5, 16])
    """

    def __init__(
        self,
        num_neurons,
        num_iterations,
        input_dim,
        output_dim,
        activation="relu",
        residual="none",
        use_bias=True,
        kernel_initializer="he_normal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        state_regularizer=None,
        input_indices=None,
        output_indices=None,
        lattice=None,
        synaptic_length=None,
        seed=None,
        check_numerics=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        keras_multi_worker.patch_if_multi_worker()
        self.num_neurons = validate_int("num_neurons", num_neurons, minimum=2)
        self.num_iterations = validate_int("num_iterations", num_iterations, minimum=1)
        self.input_dim = validate_int("input_dim", input_dim, minimum=1)
        self.output_dim = validate_int("output_dim", output_dim, minimum=1)
        if self.num_neurons < self.input_dim + self.output_dim:
            raise ValueError(
                "Argument `num_neurons` must be at least input_dim + output_dim = "
                f"{self.input_dim + self.output_dim} (input and output neurons are "
                f"distinct). Received: num_neurons={self.num_neurons}"
            )
        self.activation = validate_keras_object(
            "activation", activation, keras.activations.get, "activation"
        )
        self.residual = validate_choice("residual", residual, RESIDUAL_MODES)
        self.use_bias = validate_bool("use_bias", use_bias)
        self.seed = validate_seed("seed", seed)
        self.check_numerics = validate_bool("check_numerics", check_numerics)
        kernel_initializer = validate_keras_object(
            "kernel_initializer", kernel_initializer, keras.initializers.get, "initializer"
        )
        if self.seed is not None and hasattr(kernel_initializer, "get_config"):
            config = kernel_initializer.get_config()
            if "seed" in config and config["seed"] is None:
                kernel_initializer = type(kernel_initializer).from_config(
                    {**config, "seed": self.seed}
                )
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = validate_keras_object(
            "bias_initializer", bias_initializer, keras.initializers.get, "initializer"
        )
        self.kernel_regularizer = validate_keras_object(
            "kernel_regularizer", kernel_regularizer, keras.regularizers.get, "regularizer"
        )
        self.bias_regularizer = validate_keras_object(
            "bias_regularizer", bias_regularizer, keras.regularizers.get, "regularizer"
        )
        self.state_regularizer = tfe_regularizers.get(state_regularizer, argument_name="state_regularizer")
        self.lattice = _get_lattice(lattice)
        self.synaptic_length = tfe_regularizers.get(synaptic_length, argument_name="synaptic_length")
        if self.synaptic_length is not None and self.lattice is None:
            raise ValueError(
                "A synaptic-length cost needs the neurons' geometry: pass "
                "`lattice=UpliftedLattice(...)`. "
                f"Received: synaptic_length={self.synaptic_length!r}, lattice=None"
            )
        if self.lattice is not None:
            if self.lattice.num_neurons != self.num_neurons:
                raise ValueError(
                    f"The lattice holds {self.lattice.num_neurons} neurons but the layer has "
                    f"num_neurons={self.num_neurons}. Received: lattice={self.lattice!r}"
                )
            plane = self.lattice.width * self.lattice.height
            if self.input_dim != plane:
                raise ValueError(
                    f"With a lattice the inputs fill its input plane: input_dim must be "
                    f"width * height = {plane}. Received: input_dim={self.input_dim}"
                )
            if input_indices is None:
                input_indices = self.lattice.input_indices.tolist()
            if output_indices is None and self.lattice.num_outputs == self.output_dim:
                output_indices = self.lattice.output_indices.tolist()
        if input_indices is None:
            input_indices = range(self.input_dim)
        if output_indices is None:
            output_indices = range(self.num_neurons - self.output_dim, self.num_neurons)
        self.input_indices = _validate_indices(
            "input_indices", input_indices, self.input_dim, self.num_neurons
        )
        self.output_indices = _validate_indices(
            "output_indices", output_indices, self.output_dim, self.num_neurons
        )
        overlap = sorted(set(self.input_indices) & set(self.output_indices))
        if overlap:
            raise ValueError(
                "Arguments `input_indices` and `output_indices` must be disjoint; "
                f"shared neurons: {overlap}. Received: input_indices="
                f"{self.input_indices}, output_indices={self.output_indices}"
            )
        # Gather map of eq. 2: neuron s reads column _placement[s] of [x, 0].
        placement = np.full((self.num_neurons,), self.input_dim, dtype="int32")
        placement[self.input_indices] = np.arange(self.input_dim, dtype="int32")
        self._placement = placement
        output_mask = np.zeros((self.num_neurons,), dtype=bool)
        output_mask[self.output_indices] = True
        self._output_mask = output_mask
        self._sparse = False
        self._num_sparse_connections = None  # from a sparse layer's config, see from_config
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    # ------------------------------------------------------------------ layer
    def _flat_input_dim(self, input_shape):
        feature_shape = tuple(input_shape[1:])
        if len(feature_shape) > 3 or any(size is None for size in feature_shape):
            raise ValueError(
                "RecursiveURNLayer expects inputs (batch, input_dim), (batch, H, W) or "
                "(batch, H, W, C) with known sizes. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if self.lattice is not None and len(feature_shape) > 1:
            return self.input_dim  # images are resized onto the input plane
        size = math.prod(int(dim) for dim in feature_shape)
        if size != self.input_dim:
            raise ValueError(
                f"The inputs of RecursiveURNLayer must have input_dim={self.input_dim} "
                f"values per sample (H*W*C for images). Received: input_shape="
                f"{tuple(input_shape)} ({size} values per sample)"
            )
        return size

    def build(self, input_shape):
        self._flat_input_dim(input_shape)
        if self._num_sparse_connections is None:
            _check_kernel_fits_in_memory(self.num_neurons, self.variable_dtype)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_neurons, self.num_neurons),
            initializer=self.kernel_initializer,
            regularizer=in_loss_dtype(self.kernel_regularizer),
            autocast=False,  # read at full precision by the costs; `call` casts it
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.num_neurons,),
                initializer=seeded_initializer(self.bias_initializer, self.seed, 1),
                regularizer=in_loss_dtype(self.bias_regularizer),
            )
        else:
            self.bias = None
        if self._num_sparse_connections is not None:
            self._add_sparse_variables(self._num_sparse_connections)
        self.input_spec = keras.layers.InputSpec(
            ndim=len(input_shape), axes={i: dim for i, dim in enumerate(input_shape) if i > 0}
        )

    def _initial_state(self, inputs):
        """``(flat inputs, N^(0))`` for a batch of (possibly image) inputs."""
        inputs = validate_numeric_inputs(self, tf.convert_to_tensor(inputs))
        if inputs.shape.rank != 2 and self.lattice is not None:
            inputs = self.lattice.embed(inputs)
        elif inputs.shape.rank != 2:
            inputs = tf.reshape(inputs, [-1, self.input_dim])
        padded = tf.concat([inputs, tf.zeros_like(inputs[:, :1])], axis=1)
        state = tf.gather(padded, tf.constant(self._placement), axis=1)
        return inputs, state

    def _states(self, inputs):
        """List ``[N^(0), ..., N^(I)]`` of tensors of shape ``(batch, S)``."""
        _, state = self._initial_state(inputs)
        if self._sparse:
            sparse_kernel = tf.sparse.SparseTensor(
                tf.convert_to_tensor(self.kernel_indices),
                tf.cast(self.kernel_values, self.compute_dtype),
                [self.num_neurons, self.num_neurons],
            )

            transpose_order = tf.convert_to_tensor(self.kernel_transpose_order)

            def product(state):
                return sparse_matmul(state, sparse_kernel, transpose_order)

        else:
            kernel = tf.cast(self.kernel, self.compute_dtype)

            def product(state):
                return tf.matmul(state, kernel)

        bias = None if self.bias is None else tf.cast(self.bias, self.compute_dtype)
        injected = state  # x at the input neurons, 0 elsewhere (eq. 7)
        output_mask = tf.constant(self._output_mask)
        states = [state]
        for _ in range(self.num_iterations):
            update = product(state)
            if bias is not None:
                update = update + bias
            if self.activation is not None:
                update = self.activation(update)
            if self.residual == "output":
                update = tf.where(output_mask, state + update, update)
            elif self.residual == "input":
                update = update + injected
            state = update
            if self.check_numerics:
                state = tf.debugging.check_numerics(
                    state,
                    f"{type(self).__name__} {self.name!r}: the state after iteration "
                    f"{len(states)} of {self.num_iterations} is not finite (NaN or inf); "
                    "the kernel or bias is too large for the recursion",
                )
            states.append(state)
        return states

    def compute_states(self, inputs):
        """All states ``N^(0..I)`` as one tensor of shape ``(I + 1, batch, S)``.

        ``N^(0)`` holds the (flattened) inputs at ``input_indices`` and zeros
        elsewhere. Adds no loss.
        """
        if not self.built:
            self.build(tuple(tf.convert_to_tensor(inputs).shape))
        return tf.stack(self._states(inputs), axis=0)

    def call(self, inputs, training=None):
        states = self._states(inputs)
        if self.state_regularizer is not None:
            self.add_loss(to_loss_dtype(self.state_regularizer(tf.stack(states[1:], axis=0))))
        if self.synaptic_length is not None:
            self.add_loss(to_loss_dtype(self.compute_synaptic_length()))
        return tf.gather(states[-1], tf.constant(self.output_indices, "int32"), axis=1)

    def compute_synaptic_length(self):
        """The synaptic-length cost of the current kernel on the layer's lattice."""
        if self.synaptic_length is None:
            return tf.zeros((), cost_dtype(self.variable_dtype))
        coordinates = tf.constant(self.lattice.coordinates(self.variable_dtype))
        return self.synaptic_length((self.dense_kernel(), coordinates))

    # ------------------------------------------------------------ sparse mode
    @property
    def supports_jit(self):
        """False while the sparse product runs the C++ op (it has no XLA kernel).

        Keras then refuses ``jit_compile=True`` for the model (with a warning) and
        compiles the step without XLA, so the op is used; under an explicit
        ``tf.function(jit_compile=True)`` the layer falls back to pure TF. Keras
        asks the layers only when ``model.jit_compile`` changes value: a model
        compiled with ``jit_compile=True`` before `use_sparse_kernel` keeps XLA
        (and the pure-TF sparse product) when compiled again with True; compile
        it with the default ``"auto"`` (no XLA on CPU) or ``False`` in between.
        """
        if getattr(self, "_sparse", False) and custom_ops.will_use_custom_ops(self.compute_dtype):
            return False
        return self._supports_jit

    @supports_jit.setter
    def supports_jit(self, value):
        self._supports_jit = value

    @property
    def is_sparse(self):
        """Whether the recurrent product uses the sparse kernel (`use_sparse_kernel`)."""
        return self._sparse

    def dense_kernel(self):
        """The current S x S kernel: ``kernel``, or the sparse values scattered into it.

        Differentiable w.r.t. ``kernel_values`` in sparse mode (forms an S x S tensor).
        """
        if not self._sparse:
            return tf.convert_to_tensor(self.kernel)
        return tf.scatter_nd(
            tf.convert_to_tensor(self.kernel_indices),
            tf.convert_to_tensor(self.kernel_values),
            [self.num_neurons, self.num_neurons],
        )

    def _add_sparse_variables(self, num_connections):
        with _private.weight_tracking_unlocked(self):
            self._add_sparse_weights(num_connections)
        self.kernel.trainable = False
        self._sparse = True

    def _add_sparse_weights(self, num_connections):
        self.kernel_values = self.add_weight(
            name="kernel_values",
            shape=(num_connections,),
            initializer="zeros",
            regularizer=in_loss_dtype(self.kernel_regularizer),
            autocast=False,
        )
        self.kernel_indices = self.add_weight(
            name="kernel_indices",
            shape=(num_connections, 2),
            initializer="zeros",
            dtype="int64",
            trainable=False,
        )
        self.kernel_transpose_order = self.add_weight(
            name="kernel_transpose_order",
            shape=(num_connections,),
            initializer="zeros",
            dtype="int64",
            trainable=False,
        )

    def use_sparse_kernel(self, threshold=0.0):
        """Freeze the pattern ``|kernel| > threshold`` and train only those weights.

        Entries with ``|w| <= threshold`` are set to zero in ``kernel`` too and stay
        zero. Calling it again on a sparse layer re-freezes the pattern of the current
        weights (with the new threshold). Compile the model again afterwards.

        Args:
            threshold: float >= 0 (default 0: keep exactly the nonzero weights).

        Returns:
            The number of surviving connections.
        """
        threshold = validate_float("threshold", threshold, minimum=0.0)
        if not self.built:
            raise ValueError(
                "use_sparse_kernel() needs the layer's kernel: build the layer (call it on "
                f"a batch) first. Received: layer {self.name!r} with built=False"
            )
        if self._sparse:
            self.use_dense_kernel()
        kernel = np.asarray(self.kernel.numpy())
        keep = np.abs(kernel) > threshold
        indices = np.argwhere(keep).astype("int64")  # row-major order
        self.kernel.assign(np.where(keep, kernel, 0.0).astype(kernel.dtype))
        self._add_sparse_variables(indices.shape[0])
        self.kernel_indices.assign(indices)
        self.kernel_transpose_order.assign(np.lexsort((indices[:, 0], indices[:, 1])))
        self.kernel_values.assign(kernel[keep])
        return int(indices.shape[0])

    def use_dense_kernel(self):
        """Write the sparse values back into ``kernel`` and use the dense product again.

        No-op for a dense layer. Compile the model again afterwards.
        """
        if not self._sparse:
            return
        self.kernel.assign(self.dense_kernel())
        del self.kernel_values
        del self.kernel_indices
        del self.kernel_transpose_order
        self.kernel.trainable = True
        self._sparse = False
        self._num_sparse_connections = None

    def load_own_variables(self, store):
        # A layer saved in sparse mode holds three more variables than a dense one:
        # kernel_values (after the dense trainable ones), kernel_indices and
        # kernel_transpose_order (last).
        num_dense = len(self._trainable_variables) + len(self._non_trainable_variables)
        if not self._sparse and len(store.keys()) == num_dense + 3:
            values_shape = tuple(store[str(len(self._trainable_variables))].shape)
            self._add_sparse_variables(values_shape[0])
        super().load_own_variables(store)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_neurons": self.num_neurons,
                "num_iterations": self.num_iterations,
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "activation": keras.activations.serialize(self.activation),
                "residual": self.residual,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "state_regularizer": tfe_regularizers.serialize(self.state_regularizer),
                "input_indices": list(self.input_indices),
                "output_indices": list(self.output_indices),
                "lattice": None
                if self.lattice is None
                else keras.saving.serialize_keras_object(self.lattice),
                "synaptic_length": tfe_regularizers.serialize(self.synaptic_length),
                "seed": self.seed,
                "check_numerics": self.check_numerics,
            }
        )
        if self._sparse:
            config["num_sparse_connections"] = int(self.kernel_values.shape[0])
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        num_sparse_connections = config.pop("num_sparse_connections", None)
        layer = cls(**config)
        if num_sparse_connections is not None:
            layer._num_sparse_connections = validate_int(
                "num_sparse_connections", num_sparse_connections, minimum=0
            )
        return layer
