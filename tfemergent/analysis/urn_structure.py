"""Emergent structure of an unstructured recursive network (Golkar, URN).

A numpy reference of the URN update (eqs. 2-4, 6, 7 of the paper) and the
paper's structure extraction: drop the inactive neurons, sort the rest by the
iteration at which they first activate, read off the emergent layer sizes, and
verify the extraction by zeroing every other weight and checking that the
outputs do not change.

Conventions (those of `RecursiveURNLayer`): `S` neurons; the kernel is in
Keras layout `[from, to]`, so `kernel[j, i]` is the paper's `W_ij`, the synapse
`j -> i`, and `N^(l+1) = phi(N^(l) @ kernel + bias)`.
"""

import dataclasses
import numbers

import keras
import numpy as np

from tfemergent.utils.validation import validate_choice, validate_float, validate_int

URN_RESIDUALS = ("none", "output", "input")

_ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "linear": lambda z: z,
    "tanh": np.tanh,
    "sigmoid": lambda z: 1.0 / (1.0 + np.exp(-z)),
    "elu": lambda z: np.where(z > 0.0, z, np.expm1(np.minimum(z, 0.0))),
}

# Samples processed at once, to bound the memory of large networks.
_CHUNK_SIZE = 1024


def urn_forward(
    kernel,
    bias,
    x,
    num_iterations,
    input_indices,
    output_indices,
    residual="none",
    activation="relu",
):
    """All neuron states of a URN, in float64 numpy (the reference implementation).

    `N^(0)` holds `x` at `input_indices` and zeros elsewhere (eq. 2); then, `I`
    times, `N^(l+1) = phi(N^(l) @ kernel + bias)` (eq. 3). With
    `residual="output"` the output neurons accumulate instead,
    `N^(l+1) = N^(l) + phi(...)` (eq. 6); with `residual="input"` the input is
    re-injected, `N^(l+1) = x + phi(...)` at the input neurons (eq. 7). The
    network's output is `states[-1][:, output_indices]` (eq. 4).

    Args:
        kernel: `(S, S)` weights, `kernel[j, i]` the synapse `j -> i`.
        bias: `(S,)` biases, or `None` for zeros.
        x: `(B, d_in)` inputs.
        num_iterations: number of updates `I`, at least 1.
        input_indices: the `d_in` distinct neurons that receive `x`.
        output_indices: the distinct output neurons (at least one).
        residual: `"none"`, `"output"` (eq. 6) or `"input"` (eq. 7).
        activation: `"relu"`, `"linear"`, `"tanh"`, `"sigmoid"`, `"elu"`, or a
            callable (e.g. a `keras.activations` function) applied element-wise.

    Returns:
        float64 array `(I + 1, B, S)`: `N^(0) ... N^(I)`.

    Raises:
        ValueError: for arrays of the wrong shape, bad indices or an unknown
            `residual` or `activation`.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import urn_forward
    >>> kernel = np.zeros((3, 3)); kernel[0, 1] = 2.0; kernel[1, 2] = 0.5
    >>> states = urn_forward(kernel, None, np.array([[1.0]]), 2, [0], [2])
    >>> states[:, 0].tolist()
    [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]]
    """
    args = _validate(kernel, bias, x, num_iterations, input_indices, output_indices, residual,
                     activation)
    return np.stack(list(_iterate(*args)), axis=0)


@dataclasses.dataclass(frozen=True, eq=False)
class URNStructure:
    """The emergent structure of a URN, found by `urn_structure`.

    A neuron is *active* when it is an input neuron or when its state is
    nonzero (`|N| > tolerance`) for some sample at some iteration `l >= 1`.
    Neurons are ordered by the iteration at which they first activate (inputs:
    0), then by index, as in the paper's figures. The *extracted structure*
    keeps every synapse between two active neurons and the biases of the
    active neurons; every other weight is zeroed (`extract`).

    Attributes:
        num_iterations: `I`.
        input_indices: int64 array of the input neurons.
        output_indices: int64 array of the output neurons.
        active: bool `(S,)`.
        first_active_iteration: int64 `(S,)`, the first iteration `l` at which
            the neuron is active (0 for inputs), -1 if never.
        order: int64 array of the active neurons, sorted by
            `first_active_iteration`, then index.
        num_active: number of active neurons (inputs included).
        num_hidden_per_iteration: int64 `(I,)`; entry `l - 1` counts the active
            neurons that are neither input nor output and first activate at
            iteration `l`.
        layer_sizes: the emergent hidden layer sizes, `num_hidden_per_iteration`
            without its trailing zeros (a tuple of ints; the paper's "MLP with 3
            hidden layers of 115, 4 and 3 neurons").
        forward, backward, lateral: shares of the absolute weight mass of the
            synapses `j -> i` between active neurons with
            `first_active_iteration[i]` greater than, smaller than, or equal to
            that of `j` (self-synapses are lateral). They sum to 1, or are all
            0 when there is no such mass.
        mean_synaptic_length: the `|W|`-weighted mean Euclidean length of the
            synapses between active neurons, given neuron `coordinates`
            (`None` without coordinates; 0 without mass).
        verify_max_change: the largest `|change|` of any output over the
            samples when every weight outside the extracted structure is
            zeroed; with `tolerance=0` and `phi(0) = 0` it is 0 up to float64
            round-off (the pruned network runs on the kept neurons only, which
            sums in another order), a true extraction by construction.
        feedforward_max_change: the same when, in addition, only the forward
            synapses between active neurons are kept: 0 when the outputs are
            computed by a purely feed-forward network of the active neurons.
    """

    num_iterations: int
    input_indices: np.ndarray
    output_indices: np.ndarray
    active: np.ndarray
    first_active_iteration: np.ndarray
    order: np.ndarray
    num_active: int
    num_hidden_per_iteration: np.ndarray
    layer_sizes: tuple
    forward: float
    backward: float
    lateral: float
    mean_synaptic_length: object
    verify_max_change: float
    feedforward_max_change: float

    def synapse_mask(self, feedforward=False):
        """bool `(S, S)` in kernel layout: the synapses kept by the extraction.

        With `feedforward=True` only those `j -> i` with
        `first_active_iteration[i] > first_active_iteration[j]`.
        """
        mask = self.active[:, None] & self.active[None, :]
        if feedforward:
            mask &= self.first_active_iteration[None, :] > self.first_active_iteration[:, None]
        return mask

    def extract(self, kernel, bias=None, feedforward=False):
        """Copies of `kernel` and `bias` with every weight outside the structure zeroed.

        Args:
            kernel: `(S, S)` weights in kernel layout.
            bias: `(S,)` biases or `None` (then the returned bias is `None`).
            feedforward: keep only the forward synapses (see `synapse_mask`).

        Returns:
            `(kernel, bias)` as float64 numpy arrays.
        """
        kernel = _as_matrix("kernel", kernel, len(self.active))
        kernel = np.where(self.synapse_mask(feedforward), kernel, 0.0)
        if bias is None:
            return kernel, None
        bias = _as_vector("bias", bias, len(self.active))
        return kernel, np.where(self.active, bias, 0.0)


def urn_structure(
    kernel,
    bias,
    x,
    num_iterations,
    input_indices,
    output_indices,
    residual="none",
    activation="relu",
    tolerance=0.0,
    coordinates=None,
):
    """Extract the emergent network of a URN from its activity on `x`.

    Runs the URN (`urn_forward`) on `x`, marks the active neurons, orders
    them by the iteration of first activation, counts the emergent layers,
    measures how the weight mass between active neurons splits into forward,
    backward and lateral synapses, and verifies the extraction as the paper
    does: every weight outside the structure is set to zero (synapses from or
    to an inactive neuron and the biases of inactive neurons) and the largest
    change of the outputs on `x` is reported. Keeping every synapse between
    active neurons (not only the forward ones) is what makes this the
    faithful test of "set all other weights to zero": the states of inactive
    neurons are zero by definition, so with `tolerance=0` and `phi(0) = 0`
    the change is 0 up to float64 round-off; a nonzero `tolerance` measures
    what dropping the nearly silent neurons costs. `feedforward_max_change` additionally tests
    whether the forward synapses alone compute the outputs.

    Args:
        kernel, bias, x, num_iterations, input_indices, output_indices,
            residual, activation: as in `urn_forward`.
        tolerance: a neuron counts as active when `|N| > tolerance`.
        coordinates: optional `(S, D)` neuron positions for
            `mean_synaptic_length` (e.g. the uplifted lattice positions with
            the z axis scaled by `sqrt(beta)`).

    Returns:
        A `URNStructure`.

    Raises:
        ValueError: as `urn_forward`, and for a negative `tolerance` or
            `coordinates` of the wrong shape.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import urn_structure
    >>> kernel = np.zeros((5, 5))
    >>> kernel[0, 1] = kernel[0, 2] = 1.0   # input 0 -> hidden 1, 2
    >>> kernel[1, 4] = kernel[2, 4] = 1.0   # hidden -> output 4; neuron 3 is dead
    >>> s = urn_structure(kernel, None, np.array([[1.0], [2.0]]), 2, [0], [4])
    >>> s.layer_sizes, s.order.tolist(), s.forward, s.verify_max_change
    ((2,), [0, 1, 2, 4], 1.0, 0.0)
    """
    args = _validate(kernel, bias, x, num_iterations, input_indices, output_indices, residual,
                     activation)
    kernel, bias, x, num_iterations, input_indices, output_indices, residual, phi = args
    tolerance = validate_float("tolerance", tolerance, minimum=0.0)
    num_neurons = kernel.shape[0]
    if len(x) == 0:
        raise ValueError(
            "`x` must hold at least one sample to measure which neurons are active. "
            f"Received: x.shape={x.shape}"
        )
    if coordinates is not None:
        coordinates = np.asarray(coordinates, dtype=np.float64)
        if coordinates.ndim != 2 or coordinates.shape[0] != num_neurons:
            raise ValueError(
                f"`coordinates` must have shape (S, D) = ({num_neurons}, D), one position per "
                f"neuron. Received: coordinates.shape={coordinates.shape}"
            )

    first_active = np.full(num_neurons, -1, dtype=np.int64)
    outputs = []
    for start in range(0, len(x), _CHUNK_SIZE):
        chunk = x[start:start + _CHUNK_SIZE]
        for iteration, state in enumerate(
            _iterate(kernel, bias, chunk, num_iterations, input_indices, output_indices,
                     residual, phi)
        ):
            if iteration == 0:
                continue
            fired = np.any(np.abs(state) > tolerance, axis=0)
            first_active = np.where(
                fired & ((first_active < 0) | (first_active > iteration)), iteration,
                first_active,
            )
        outputs.append(state[:, output_indices])
    first_active[input_indices] = 0
    active = first_active >= 0
    order = np.flatnonzero(active)
    order = order[np.argsort(first_active[order], kind="stable")]

    hidden = active.copy()
    hidden[input_indices] = False
    hidden[output_indices] = False
    per_iteration = np.bincount(first_active[hidden], minlength=num_iterations + 1)[1:]
    sizes = per_iteration.tolist()
    while sizes and sizes[-1] == 0:
        sizes.pop()

    mass = np.abs(np.where(active[:, None] & active[None, :], kernel, 0.0))
    total = mass.sum()
    source_iteration = first_active[:, None]
    target_iteration = first_active[None, :]
    if total > 0:
        forward = float(mass[target_iteration > source_iteration].sum() / total)
        backward = float(mass[target_iteration < source_iteration].sum() / total)
        lateral = float(mass[target_iteration == source_iteration].sum() / total)
    else:
        forward = backward = lateral = 0.0
    mean_length = None
    if coordinates is not None:
        sources, targets = np.nonzero(mass)
        lengths = np.linalg.norm(coordinates[sources] - coordinates[targets], axis=-1)
        weights = mass[sources, targets]
        mean_length = float(np.sum(weights * lengths) / total) if total > 0 else 0.0

    structure = URNStructure(
        num_iterations=num_iterations,
        input_indices=input_indices,
        output_indices=output_indices,
        active=active,
        first_active_iteration=first_active,
        order=order,
        num_active=int(active.sum()),
        num_hidden_per_iteration=per_iteration.astype(np.int64),
        layer_sizes=tuple(int(size) for size in sizes),
        forward=forward,
        backward=backward,
        lateral=lateral,
        mean_synaptic_length=mean_length,
        verify_max_change=0.0,
        feedforward_max_change=0.0,
    )
    reference = np.concatenate(outputs, axis=0)
    changes = []
    for feedforward in (False, True):
        pruned_kernel, pruned_bias = structure.extract(kernel, bias, feedforward=feedforward)
        pruned = _outputs(pruned_kernel, pruned_bias, x, num_iterations, input_indices,
                          output_indices, residual, phi, keep=active)
        changes.append(float(np.max(np.abs(pruned - reference))) if reference.size else 0.0)
    structure = dataclasses.replace(
        structure, verify_max_change=changes[0], feedforward_max_change=changes[1]
    )
    for field in dataclasses.fields(structure):
        value = getattr(structure, field.name)
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return structure


def urn_structure_of(layer, x, tolerance=0.0, coordinates=None):
    """`urn_structure` of a URN layer, read from its attributes.

    Duck-typed: `layer` needs `kernel`, `bias` (or `None`), `num_iterations`,
    `residual`, `activation` (a name, `None` for linear, or a callable),
    `input_indices` and `output_indices`, as `RecursiveURNLayer` has. Keras
    variables and tensors are converted to numpy.

    Args:
        layer: a built URN layer.
        x: `(B, d_in)` inputs.
        tolerance, coordinates: as in `urn_structure`.

    Returns:
        A `URNStructure`.
    """
    missing = [
        name
        for name in ("kernel", "bias", "num_iterations", "residual", "activation",
                     "input_indices", "output_indices")
        if not hasattr(layer, name)
    ]
    if missing:
        raise ValueError(
            f"`layer` must be a built URN layer with the attributes {missing}. "
            f"Received: layer={layer!r}"
        )
    bias = None if layer.bias is None else _to_numpy(layer.bias)
    return urn_structure(
        _to_numpy(layer.kernel),
        bias,
        _to_numpy(x),
        layer.num_iterations,
        _to_numpy(layer.input_indices),
        _to_numpy(layer.output_indices),
        residual=layer.residual,
        activation=layer.activation,
        tolerance=tolerance,
        coordinates=coordinates,
    )


def sorted_weight_matrix(kernel, structure):
    """`|kernel|` restricted to the active neurons, rows and columns in `structure.order`.

    The result keeps the kernel layout (row = presynaptic neuron, column =
    postsynaptic), so a feed-forward structure appears block *above* the
    diagonal; its transpose is the paper's `W_ij` picture with blocks below
    the diagonal (eq. 1, Fig. 3).

    Args:
        kernel: `(S, S)` weights.
        structure: a `URNStructure` of the same network.

    Returns:
        float64 array `(num_active, num_active)`.
    """
    if not isinstance(structure, URNStructure):
        raise ValueError(
            f"`structure` must be a URNStructure from `urn_structure`. "
            f"Received: structure={structure!r}"
        )
    kernel = _as_matrix("kernel", kernel, len(structure.active))
    order = structure.order
    return np.abs(kernel[np.ix_(order, order)])


def _to_numpy(value):
    if isinstance(value, (list, tuple, range)):
        return np.asarray(value)
    return np.asarray(keras.ops.convert_to_numpy(value))


def _as_matrix(name, value, size):
    value = np.asarray(value, dtype=np.float64)
    if value.shape != (size, size):
        raise ValueError(
            f"`{name}` must be a square matrix of shape (S, S) = ({size}, {size}). "
            f"Received: {name}.shape={value.shape}"
        )
    return value


def _as_vector(name, value, size):
    value = np.asarray(value, dtype=np.float64)
    if value.shape != (size,):
        raise ValueError(
            f"`{name}` must have shape (S,) = ({size},). Received: {name}.shape={value.shape}"
        )
    return value


def _as_indices(name, value, size):
    array = np.asarray(value)
    if (
        array.ndim != 1
        or len(array) == 0
        or array.dtype == bool
        or not (np.issubdtype(array.dtype, np.integer)
                or all(isinstance(v, numbers.Integral) for v in array.tolist()))
    ):
        raise ValueError(
            f"`{name}` must be a non-empty 1-D sequence of neuron indices. "
            f"Received: {name}={value!r}"
        )
    array = array.astype(np.int64)
    if array.min() < 0 or array.max() >= size or len(np.unique(array)) != len(array):
        raise ValueError(
            f"`{name}` must hold distinct neuron indices in [0, {size}). "
            f"Received: {name}={array.tolist()}"
        )
    return array


def _activation(activation):
    if activation is None:
        return _ACTIVATIONS["linear"]
    if isinstance(activation, str):
        validate_choice("activation", activation, tuple(_ACTIVATIONS))
        return _ACTIVATIONS[activation]
    if callable(activation):
        name = getattr(activation, "__name__", None)
        if name in _ACTIVATIONS:
            return _ACTIVATIONS[name]
        return lambda z: np.asarray(keras.ops.convert_to_numpy(activation(z)), dtype=np.float64)
    raise ValueError(
        f"`activation` must be one of {sorted(_ACTIVATIONS)}, None or a callable. "
        f"Received: activation={activation!r}"
    )


def _validate(kernel, bias, x, num_iterations, input_indices, output_indices, residual,
              activation):
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] == 0:
        raise ValueError(
            f"`kernel` must be a non-empty square matrix (S, S). Received: kernel.shape="
            f"{kernel.shape}"
        )
    num_neurons = kernel.shape[0]
    bias = np.zeros(num_neurons) if bias is None else _as_vector("bias", bias, num_neurons)
    num_iterations = validate_int("num_iterations", num_iterations, minimum=1)
    input_indices = _as_indices("input_indices", input_indices, num_neurons)
    output_indices = _as_indices("output_indices", output_indices, num_neurons)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(input_indices):
        raise ValueError(
            f"`x` must have shape (B, d_in) with d_in = len(input_indices) = "
            f"{len(input_indices)}. Received: x.shape={x.shape}"
        )
    residual = validate_choice("residual", residual, URN_RESIDUALS)
    phi = _activation(activation)
    return kernel, bias, x, num_iterations, input_indices, output_indices, residual, phi


def _iterate(kernel, bias, x, num_iterations, input_indices, output_indices, residual, phi):
    """Yield `N^(0), ..., N^(I)` for the samples `x` (validated arguments)."""
    state = np.zeros((len(x), kernel.shape[0]))
    state[:, input_indices] = x
    yield state
    for _ in range(num_iterations):
        update = phi(state @ kernel + bias)
        if residual == "output":
            update[:, output_indices] += state[:, output_indices]
        elif residual == "input":
            update[:, input_indices] += x
        state = update
        yield state


def _outputs(kernel, bias, x, num_iterations, input_indices, output_indices, residual, phi,
             keep):
    """Outputs `N^(I)[:, output_indices]` of a pruned network.

    When `phi(0) == 0`, the neurons outside `keep` have no synapse and no bias
    left, so they stay 0 and the network restricted to `keep` (plus the
    outputs) gives the same outputs at a fraction of the cost.
    """
    keep = np.array(keep)
    keep[output_indices] = True
    if np.all(phi(np.zeros(1)) == 0.0) and not keep.all():
        neurons = np.flatnonzero(keep)
        position = np.full(len(keep), -1, dtype=np.int64)
        position[neurons] = np.arange(len(neurons))
        kernel = kernel[np.ix_(neurons, neurons)]
        bias = bias[neurons]
        input_indices = position[input_indices]
        output_indices = position[output_indices]
    results = []
    for start in range(0, len(x), _CHUNK_SIZE):
        for state in _iterate(kernel, bias, x[start:start + _CHUNK_SIZE], num_iterations,
                              input_indices, output_indices, residual, phi):
            pass
        results.append(state[:, output_indices])
    if not results:
        return np.zeros((0, len(output_indices)))
    return np.concatenate(results, axis=0)
