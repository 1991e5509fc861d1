"""The double-task network of Wołczyk et al., spatial or regular."""

import keras

from tfemergent.layers.spatial_dense import SpatialDense
from tfemergent.losses.multi_task_cross_entropy import MultiTaskCrossEntropy
from tfemergent.metrics.task_accuracy import TaskAccuracy
from tfemergent.regularizers.density_cost import DensityCost
from tfemergent.regularizers.transport_cost import NORMALIZATIONS, TransportCost
from tfemergent.utils.validation import (
    validate_choice,
    validate_float,
    validate_int,
    validate_seed,
)

PAPER_HIDDEN_UNITS = (128, 128, 128, 256)


def build_spatial_network(
    input_dim,
    *,
    hidden_units=PAPER_HIDDEN_UNITS,
    num_classes=10,
    num_tasks=2,
    spatial=True,
    first_spatial_layer=3,
    alpha=1.0,
    beta=3.0,
    learning_rate=0.005,
    transport_normalization="neurons",
    seed=None,
    compile=True,
    dtype=None,
):
    """Build the network ``n-128-128-128-256-20`` of the spatial networks paper.

    The hidden layers have sigmoid activations, the output is linear with
    ``num_tasks * num_classes`` logits. With ``spatial=True`` the hidden
    layers from number ``first_spatial_layer`` (1-based, paper: the third) up
    to the output are `SpatialDense` layers carrying ``TransportCost(alpha)``
    and ``DensityCost(beta)``, each divided by the number of such layers so
    that the loss is the paper's ``L + (1/|L|) sum_l (alpha T(l) + beta V(l))``;
    the layer just before them is a `SpatialDense` without costs (its
    positions are the inputs' positions of the first transport cost), and the
    layers before that are plain `keras.layers.Dense`, since no cost ever
    reads their positions.
    With ``spatial=False`` it is the paper's baseline: the same architecture
    of plain `keras.layers.Dense` layers and no costs.

    The model is compiled (unless ``compile=False``) with Adam at
    ``learning_rate`` (paper: 0.005), `MultiTaskCrossEntropy` and one
    `TaskAccuracy` per task.

    Args:
        input_dim: input width ``n`` (1568 concatenated, 784 mixed/sequential).
        hidden_units: widths of the hidden layers.
        num_classes: classes per task.
        num_tasks: number of tasks (heads).
        spatial: spatial network (True) or regular baseline (False).
        first_spatial_layer: 1-based index of the first hidden layer with costs.
        alpha, beta: weights of the transport and density costs.
        learning_rate: Adam learning rate.
        transport_normalization: ``normalization`` of the `TransportCost`:
            ``"neurons"`` (paper text) or ``"connections"`` (authors' code).
        seed: seed of the initializers (None: Keras's global seed).
        compile: whether to compile the model.
        dtype: dtype policy of every layer (e.g. ``"mixed_float16"``), or None for
            the global policy. The costs are computed in at least float32 and
            added in Keras' loss dtype (``keras.config.floatx()``).

    Returns:
        A `keras.Sequential` model.

    Example:

    >>> from tfemergent.models import build_spatial_network
    >>> model = build_spatial_network(64, hidden_units=(16, 16, 16, 32), seed=0)
    >>> [layer.units for layer in model.layers]
    [16, 16, 16, 32, 20]
    """
    input_dim = validate_int("input_dim", input_dim, minimum=1)
    hidden_units = tuple(validate_int("hidden_units", u, minimum=1) for u in hidden_units)
    if not hidden_units:
        raise ValueError(f"`hidden_units` must not be empty. Received: hidden_units={hidden_units}")
    num_classes = validate_int("num_classes", num_classes, minimum=2)
    num_tasks = validate_int("num_tasks", num_tasks, minimum=1)
    first_spatial_layer = validate_int(
        "first_spatial_layer", first_spatial_layer, minimum=2, maximum=len(hidden_units) + 1
    )
    alpha = validate_float("alpha", alpha, minimum=0.0)
    beta = validate_float("beta", beta, minimum=0.0)
    learning_rate = validate_float("learning_rate", learning_rate, minimum=0.0, min_inclusive=False)
    seed = validate_seed("seed", seed)
    transport_normalization = validate_choice(
        "transport_normalization", transport_normalization, NORMALIZATIONS
    )
    if dtype is not None:
        try:
            policy = keras.dtype_policies.get(dtype)
            if "float" not in policy.variable_dtype or "float" not in policy.compute_dtype:
                raise ValueError("not a floating-point policy")
            dtype = policy
        except (TypeError, ValueError):
            raise ValueError(
                "Argument `dtype` must be None, a floating-point Keras dtype policy or "
                f"its name ('float32', 'mixed_float16', 'float64'...). Received: dtype={dtype!r}"
            ) from None

    widths = list(hidden_units) + [num_classes * num_tasks]
    activations = ["sigmoid"] * len(hidden_units) + [None]
    names = [f"hidden_{i + 1}" for i in range(len(hidden_units))] + ["output"]
    num_cost_layers = len(widths) - (first_spatial_layer - 1)

    def initializer(index):
        if seed is None:
            return "glorot_uniform"
        return keras.initializers.GlorotUniform(seed=seed * 1000 + index)

    layers = [keras.Input((input_dim,), name="inputs")]
    for index, (width, activation, name) in enumerate(zip(widths, activations, names)):
        if spatial and index + 2 >= first_spatial_layer:
            with_costs = index + 1 >= first_spatial_layer
            layers.append(
                SpatialDense(
                    width,
                    activation=activation,
                    kernel_initializer=initializer(index),
                    transport_cost=(
                        TransportCost(
                            alpha, num_cost_layers, normalization=transport_normalization
                        )
                        if with_costs
                        else None
                    ),
                    density_cost=DensityCost(beta, num_cost_layers) if with_costs else None,
                    seed=None if seed is None else seed * 1000 + 500 + index,
                    name=name,
                    dtype=dtype,
                )
            )
        else:
            layers.append(
                keras.layers.Dense(
                    width,
                    activation=activation,
                    kernel_initializer=initializer(index),
                    name=name,
                    dtype=dtype,
                )
            )
    model = keras.Sequential(layers, name="spatial_network" if spatial else "regular_network")
    if compile:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss=MultiTaskCrossEntropy(num_tasks=num_tasks),
            metrics=[TaskAccuracy(task, num_tasks) for task in range(num_tasks)],
        )
    return model
