"""The emergent network of a trained `RecursiveURNLayer` as a plain Keras model."""

import dataclasses
import math
import warnings

import keras
import numpy as np
import tensorflow as tf

from tfemergent.layers.recursive_urn_layer import RecursiveURNLayer
from tfemergent.utils.validation import validate_float, validate_real_array

# Samples per forward pass when finding the active neurons (bounds the memory of
# the (I + 1, batch, S) stack of states).
_CHUNK_SIZE = 1024


@dataclasses.dataclass(frozen=True)
class URNExtraction:
    """What `extract_urn_network` found and how exactly the model reproduces the URN.

    Attributes:
        layer_sizes: units of the model's ``iteration_<l>`` layers, ``l = 1..I``
            (the last one is the output layer, ``output_dim`` units); 0 for an
            iteration at which no kept neuron is active (it has no layer, and the
            next iteration sees only its biases).
        neurons: per iteration ``l = 0..I``, the URN neuron indices that the
            model's state at that iteration holds, in unit order (``l = 0``: the
            input neurons, in input order).
        num_active: neurons active at some iteration on ``x`` (inputs included).
        max_difference: largest ``|model(v) - layer(v)|`` over the verification
            data ``v`` (``validation_x`` if given, else ``x``).
        verified_on: ``"validation_x"`` or ``"x"``.
        feedforward: whether every kept neuron appears at one iteration only
            (the unrolled network is then the emergent MLP itself).
    """

    layer_sizes: tuple
    neurons: tuple
    num_active: int
    max_difference: float
    verified_on: str
    feedforward: bool


def extract_urn_network(layer, x, tolerance=0.0, name=None, validation_x=None):
    """The emergent network of a trained URN as a functional Keras model of built-in layers.

    A `RecursiveURNLayer` applies one ``S x S`` weight ``I`` times. After training
    with sparsity costs, only a few neurons carry activity at each iteration. This
    function unrolls the ``I`` iterations and keeps, at iteration ``l``, only the
    neurons that are active on ``x`` at that iteration (``|N^(l)| > tolerance`` for
    some sample) and that feed a kept neuron of iteration ``l + 1`` (the outputs at
    ``l = I``). Iteration ``l`` becomes one ``keras.layers.Dense`` named
    ``iteration_<l>`` from the kept neurons of ``l - 1`` to those of ``l``, with the
    URN's weights and biases and its activation. The residual variants add the
    skip paths with built-in layers: ``residual="output"`` carries the output
    neurons' previous state (a linear 0/1 ``Dense`` named ``carry_<l>`` and an
    ``Add``), ``residual="input"`` re-injects the input (``reinject_<l>`` and an
    ``Add``).

    The model is therefore exact on ``x`` (up to float32 summation order, with
    ``tolerance=0``) whether or not the structure is feed-forward; when it is (the
    paper's emergent MLP: backward and lateral synapses silent), every neuron
    appears at one iteration only and the layer sizes are the emergent layer sizes,
    e.g. ``10 -> 115 -> 4 -> 3 -> 2``. On other data it is exact as long as no
    neuron that was silent on ``x`` at an iteration becomes active there: the
    function checks it on ``validation_x`` (held-out data) and reports the largest
    difference in ``model.urn_extraction`` (a `URNExtraction`).

    The model imports nothing from tfemergent: it saves to ``.keras`` and loads
    with plain Keras, exports as a SavedModel (``model.export``) and trains with
    ``fit`` like any Keras model.

    Reference: S. Golkar, "Emergent Structures and Lifetime Structure Evolution
    in Artificial Neural Networks" (2019), section 2 (structure extraction).

    Args:
        layer: a built `tfemergent.layers.RecursiveURNLayer` (dense or sparse mode).
        x: samples that define the activity, of the layer's input shape
            (``(batch, input_dim)``, or images when the layer takes images).
        tolerance: a neuron counts as active when ``|N| > tolerance`` (>= 0); a
            positive value drops nearly silent neurons at the cost of exactness,
            measured in ``urn_extraction.max_difference``.
        name: name of the model (default ``"<layer name>_extracted"``).
        validation_x: held-out samples on which the model is compared with the
            layer (default: ``x``).

    Returns:
        A `keras.Model` mapping the layer's inputs to its outputs, with the
        attribute ``urn_extraction`` (`URNExtraction`). Its layers have the
        layer's dtype policy (``mixed_float16``, ``float64``...).

    Raises:
        ValueError: for a layer that is not a built `RecursiveURNLayer`, ``x`` or
            ``validation_x`` of the wrong shape or not finite, or a negative
            ``tolerance``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.layers import RecursiveURNLayer
    >>> from tfemergent.models import extract_urn_network
    >>> layer = RecursiveURNLayer(num_neurons=6, num_iterations=2, input_dim=2,
    ...     output_dim=1, use_bias=False, seed=0)
    >>> x = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    >>> _ = layer(x)
    >>> kernel = np.zeros((6, 6), "float32")
    >>> kernel[0, 2] = kernel[1, 3] = 1.0      # inputs 0, 1 -> hidden 2, 3
    >>> kernel[2, 5] = kernel[3, 5] = 1.0      # hidden -> output 5; neuron 4 unused
    >>> _ = layer.kernel.assign(kernel)
    >>> net = extract_urn_network(layer, x)
    >>> [l.name for l in net.layers], net.urn_extraction.layer_sizes
    (['x', 'iteration_1', 'iteration_2'], (2, 1))
    >>> float(np.max(np.abs(net(x) - layer(x))))
    0.0
    """
    if not isinstance(layer, RecursiveURNLayer):
        raise ValueError(
            "`layer` must be a tfemergent.layers.RecursiveURNLayer. "
            f"Received: layer={layer!r} of type {type(layer).__name__}"
        )
    if not layer.built:
        raise ValueError(
            "`layer` must be built (called on data or built with `layer.build(shape)`) "
            f"and trained before its network can be extracted. Received: layer={layer.name!r}"
            " (not built)"
        )
    tolerance = validate_float("tolerance", tolerance, minimum=0.0)
    x = _validate_samples("x", x, layer)
    validation = x if validation_x is None else _validate_samples("validation_x", validation_x,
                                                                    layer)
    kernel = np.asarray(layer.dense_kernel(), dtype=np.float64)
    bias = None if layer.bias is None else np.asarray(layer.bias, dtype=np.float64)
    active = _active_per_iteration(layer, x, tolerance)
    neurons = _kept_neurons(layer, kernel, active)
    num_active = int(np.count_nonzero(np.any(np.stack(active), axis=0)))
    if num_active == layer.num_neurons:
        warnings.warn(
            f"Every one of the {layer.num_neurons} neurons of {layer.name!r} is active on "
            "`x`: the layer was not trained to any sparsity, so the extracted model is the "
            "unrolled URN at full size.",
            stacklevel=2,
        )
    model = _build_model(layer, kernel, bias, neurons, x.shape[1:], name)
    difference = _max_difference(model, layer, validation)
    kept = [index for level in neurons[1:] for index in level]
    model.urn_extraction = URNExtraction(
        layer_sizes=tuple(len(level) for level in neurons[1:]),
        neurons=tuple(tuple(int(i) for i in level) for level in neurons),
        num_active=num_active,
        max_difference=difference,
        verified_on="x" if validation_x is None else "validation_x",
        feedforward=len(kept) == len(set(kept)) and not set(kept) & set(neurons[0]),
    )
    return model


def _validate_samples(name, value, layer):
    array = validate_real_array(name, value, min_ndim=2, dtype=np.float32,
                                expected="(batch, *input shape)")
    input_shape = tuple(layer.input_spec.axes[i] for i in sorted(layer.input_spec.axes)) \
        if layer.input_spec is not None and layer.input_spec.axes else None
    if input_shape is not None and array.shape[1:] != input_shape:
        raise ValueError(
            f"`{name}` must hold samples of the shape the layer was built for, "
            f"{input_shape}. Received: {name}.shape={array.shape}"
        )
    if input_shape is None and math.prod(array.shape[1:]) != layer.input_dim:
        raise ValueError(
            f"`{name}` must hold samples of input_dim={layer.input_dim} values. "
            f"Received: {name}.shape={array.shape}"
        )
    return array


def _active_per_iteration(layer, x, tolerance):
    """bool ``(S,)`` per iteration ``0..I``: which neurons exceed ``tolerance`` on ``x``."""
    active = [np.zeros(layer.num_neurons, bool) for _ in range(layer.num_iterations + 1)]
    for start in range(0, len(x), _CHUNK_SIZE):
        states = layer.compute_states(tf.constant(x[start:start + _CHUNK_SIZE])).numpy()
        for iteration in range(layer.num_iterations + 1):
            active[iteration] |= np.any(np.abs(states[iteration]) > tolerance, axis=0)
    active[0][:] = False
    active[0][layer.input_indices] = True
    return active


def _kept_neurons(layer, kernel, active):
    """Per iteration, the neurons the outputs depend on, outputs last, inputs first."""
    iterations = layer.num_iterations
    outputs = list(layer.output_indices)
    output_set = set(outputs)
    kept = [None] * (iterations + 1)
    kept[iterations] = np.asarray(outputs, dtype=np.int64)
    for level in range(iterations, 0, -1):
        targets = kept[level]
        feeds = np.any(kernel[:, targets] != 0.0, axis=1) if len(targets) else np.zeros(
            len(kernel), bool)
        needed = active[level - 1] & feeds
        if layer.residual == "output":
            carried = [i for i in targets if i in output_set]
            needed[carried] |= active[level - 1][carried]
        if level - 1 == 0:
            kept[0] = np.asarray(layer.input_indices, dtype=np.int64)
            continue
        candidates = np.flatnonzero(needed)
        kept[level - 1] = candidates
    return kept


def _selection(sources, targets):
    """0/1 ``(len(sources), len(targets))``: 1 where a source neuron is the target neuron."""
    matrix = np.zeros((len(sources), len(targets)), dtype=np.float32)
    position = {int(neuron): row for row, neuron in enumerate(sources)}
    for column, neuron in enumerate(targets):
        if int(neuron) in position:
            matrix[position[int(neuron)], column] = 1.0
    return matrix


def _build_model(layer, kernel, bias, neurons, sample_shape, name):
    activation = keras.activations.serialize(layer.activation) if layer.activation else None
    inputs = keras.Input(shape=sample_shape, name="x")
    flat = inputs
    if len(sample_shape) > 1:
        if layer.lattice is not None:
            raise ValueError(
                "`x` must be flat (batch, input_dim) for a layer with a lattice: the "
                "extracted model does not resize images onto the input plane; pass "
                "`layer.lattice.embed(images)`. Received: x of shape "
                f"(batch, *{tuple(sample_shape)})"
            )
        flat = keras.layers.Flatten(name="flatten", dtype=layer.dtype_policy)(inputs)
    state, input_neurons = flat, neurons[0]
    for level in range(1, layer.num_iterations + 1):
        sources, targets = neurons[level - 1], neurons[level]
        if not len(targets):  # nothing active at this iteration: the next one reads zeros
            state = None
            continue
        if state is None:  # the previous iteration was silent: a constant update
            state, sources = flat, []
        dense = keras.layers.Dense(len(targets), activation=activation,
                                   use_bias=bias is not None, name=f"iteration_{level}",
                                   dtype=layer.dtype_policy)
        update = dense(state)
        weights = [_submatrix(kernel, sources, targets, dense_inputs=int(state.shape[-1]))]
        if bias is not None:
            weights.append(bias[targets].astype(layer.variable_dtype))
        dense.set_weights(weights)
        skips = []
        if layer.residual == "output" and level > 1:
            skips.append(_fixed_dense(f"carry_{level}", state, _selection(
                [i if i in set(layer.output_indices) else -1 for i in sources], targets),
                layer.dtype_policy))
        if layer.residual == "input":
            skips.append(_fixed_dense(f"reinject_{level}", flat,
                                      _selection(input_neurons, targets), layer.dtype_policy))
        skips = [skip for skip in skips if skip is not None]
        if skips:
            state = keras.layers.Add(name=f"state_{level}", dtype=layer.dtype_policy)(
                [update, *skips]
            )
        else:
            state = update
    return keras.Model(inputs, state, name=name or f"{layer.name}_extracted")


def _submatrix(kernel, sources, targets, dense_inputs):
    """``kernel[sources, targets]`` (float64); zero rows when the sources are silent."""
    if not len(sources):
        return np.zeros((dense_inputs, len(targets)), dtype=np.float64)
    return kernel[np.ix_(sources, targets)]


def _fixed_dense(name, tensor, matrix, dtype=None):
    """A linear, bias-free Dense holding the 0/1 ``matrix``, or None if it is all zero."""
    if not matrix.any():
        return None
    dense = keras.layers.Dense(matrix.shape[1], use_bias=False, name=name, dtype=dtype)
    output = dense(tensor)
    dense.set_weights([matrix])
    return output


def _max_difference(model, layer, samples):
    largest = 0.0
    for start in range(0, len(samples), _CHUNK_SIZE):
        chunk = tf.constant(samples[start:start + _CHUNK_SIZE])
        difference = np.abs(model(chunk).numpy() - layer(chunk).numpy())
        largest = max(largest, float(np.max(difference)) if difference.size else 0.0)
    return largest
