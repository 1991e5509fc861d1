
import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_contract import layer_contract_test

from tfemergent.layers import ResetGrid
from tfemergent.layers import reset_grid as reset_grid_module
from docstring_examples import assert_docstring_examples

TINY = {"conv_filters": [2], "dense_units": [3]}

test_reset_grid_contract = layer_contract_test(
    ResetGrid,
    {"grid_size": 2, "subnetwork": TINY, "grid_width": 4, "seed": 3},
    input_shape=(8, 8, 1),
    expected_output_shape=(4, 4),
    invalid_kwargs=[
        ({"grid_size": 0}, "grid_size"),
        ({"grid_size": 2.0}, "grid_size"),
        ({"grid_width": 5}, "grid_width=5, grid_size=2"),
        ({"grid_width": 0}, "grid_width"),
        ({"seed": -1}, "seed"),
        ({"subnetwork": "resnet20"}, "subnetwork='resnet20'"),
        ({"subnetwork": {"filters": [4]}}, "unknown keys ['filters']"),
        ({"subnetwork": {"conv_filters": [0]}}, "conv_filters"),
        ({"subnetwork": {"conv_filters": 4}}, "conv_filters"),
        ({"subnetwork": {"dense_units": [2.5]}}, "dense_units"),
        ({"subnetwork": {"kernel_size": 0}}, "kernel_size"),
        ({"subnetwork": {"pool_size": 0}}, "pool_size"),
        ({"subnetwork": {"block": "bottleneck"}}, "block"),
        ({"subnetwork": {"pooling": "min"}}, "pooling"),
        ({"subnetwork": {"padding": "causal"}}, "padding"),
        ({"subnetwork": {"activation": "no_such_activation"}}, "activation"),
        ({"subnetwork": {"output_activation": 3}}, "output_activation"),
        ({"subnetwork": {"activation": "softmax"}}, "element by element"),
        ({"subnetwork": {"block": "residual", "padding": "valid"}}, "padding"),
        # 8 -> 4 -> 2 -> 1 -> 0 after four poolings: refused at build.
        ({"subnetwork": {"conv_filters": [1, 1, 1, 1]}}, "input_shape=(4, 8, 8, 1)"),
    ],
)

# Two plain stages: the second convolution is grouped (custom input gradient), the first
# pools before its bias; both must survive saving, export, XLA and distribution.
test_reset_grid_two_stage_contract = layer_contract_test(
    ResetGrid,
    {"grid_size": 2, "subnetwork": {"conv_filters": [2, 3], "dense_units": [3]},
     "grid_width": 4, "seed": 3},
    input_shape=(8, 8, 1),
    expected_output_shape=(4, 4),
    checks=("models", "saving", "distribution", "jit", "determinism"),
)

SPECS = {
    "plain": TINY,
    "even_kernel": {"conv_filters": [2, 3], "kernel_size": 2, "dense_units": []},
    "residual": {"block": "residual", "conv_filters": [1, 3], "dense_units": []},
    "mlp": {"conv_filters": [], "dense_units": [3]},
    "valid_average": {
        "conv_filters": [2, 2],
        "kernel_size": 2,  # 8 -> 7 -> 3 -> 2 -> 1
        "padding": "valid",
        "dense_units": [3],
        "pooling": "average",
        "activation": "tanh",
        "output_activation": "sigmoid",
    },
    # Max pooling + relu pools before the bias (pool-first); grouped conv, even kernel, VALID.
    "valid_max": {"conv_filters": [2, 2], "kernel_size": 2, "padding": "valid", "dense_units": [3]},
    # Odd kernel, VALID, no pooling: 8 -> 6 -> 4.
    "valid_odd": {"conv_filters": [2, 2], "padding": "valid", "pooling": "none", "dense_units": []},
    # gelu is not monotonic: max pooling stays after the activation.
    "gelu_max": {"conv_filters": [2, 3], "dense_units": [3], "activation": "gelu"},
}


def _images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _randomise_biases(layer):
    """Non-zero biases (they are zeros after initialisation), so they are checked too."""
    for weight in layer.weights:
        if weight.name == "bias":
            weight.assign(_images(weight.shape, seed=5) * 0.1)


def _block(grid, index, grid_size, block_width):
    row, col = divmod(index, grid_size)
    rows = slice(row * block_width, (row + 1) * block_width)
    cols = slice(col * block_width, (col + 1) * block_width)
    return grid[:, rows, cols]


@pytest.mark.parametrize("grid_size, grid_width", [(2, 6), (3, 6), (1, 3)])
def test_exact_grid_assembly_order(grid_size, grid_width):
    """Sub-network i = (r, c) row-major; its outputs fill its block row-major."""
    layer = ResetGrid(grid_size, {"conv_filters": [1], "dense_units": []}, grid_width)
    images = _images((2, 4, 4, 1))
    layer(images)
    num, block = grid_size**2, grid_width // grid_size
    output = layer.get_layer("output")
    # Zero output kernel: sub-network i emits its bias 100 * i + (0, 1, ..., s*s - 1).
    bias = 100.0 * np.arange(num)[:, None] + np.arange(block * block)[None, :]
    output.set_weights([np.zeros(output.kernel.shape, "float32"), bias.astype("float32")])
    grid = layer(images).numpy()
    expected = np.zeros((grid_width, grid_width), "float32")
    for row in range(grid_width):
        for col in range(grid_width):
            index = (row // block) * grid_size + col // block
            expected[row, col] = 100 * index + (row % block) * block + col % block
    np.testing.assert_array_equal(grid[0], expected)
    np.testing.assert_array_equal(grid[1], expected)


def test_exact_numbers_with_known_weights():
    """1x1 conv, no pooling, one-unit blocks: every number computed by hand."""
    layer = ResetGrid(
        2,
        {"conv_filters": [1], "kernel_size": 1, "pooling": "none", "dense_units": []},
        grid_width=2,
    )
    images = np.arange(4, dtype="float32").reshape(1, 2, 2, 1) - 1.5  # [[-1.5, -.5], [.5, 1.5]]
    layer(images)
    conv_scale = np.array([1.0, -1.0, 2.0, 0.5], "float32")
    conv_bias = np.array([0.0, 0.0, -1.0, 1.0], "float32")
    layer.get_layer("conv_0").set_weights(
        [conv_scale.reshape(4, 1, 1, 1, 1), conv_bias.reshape(4, 1)]
    )
    readout = np.array([[1, 0, 0, 0], [0, 0, 0, 1], [1, 1, 1, 1], [1, -1, 2, 3]], "float32")
    layer.get_layer("output").set_weights(
        [readout.reshape(4, 4, 1), np.array([[0.0], [1.0], [0.0], [-2.0]], "float32")]
    )
    pixels = images.reshape(4)
    expected = [
        readout[i] @ np.maximum(conv_scale[i] * pixels + conv_bias[i], 0.0)
        + [0.0, 1.0, 0.0, -2.0][i]
        for i in range(4)
    ]
    # by hand: i=0 relu(x)=[0,0,.5,1.5] -> 0; i=1 relu(-x)=[1.5,.5,0,0] -> 0+1
    # i=2 relu(2x-1)=[0,0,0,2] -> 2; i=3 relu(x/2+1)=[.25,.75,1.25,1.75] -> 7.25-2
    np.testing.assert_allclose(expected, [0.0, 1.0, 2.0, 5.25])
    np.testing.assert_allclose(layer(images).numpy()[0], np.reshape(expected, (2, 2)), rtol=1e-6)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("rank", [3, 4])
def test_subnetwork_model_equals_its_block(spec_name, rank):
    shape = (3, 8, 8) if rank == 3 else (3, 8, 8, 2)
    layer = ResetGrid(2, SPECS[spec_name], grid_width=4, seed=1)
    images = _images(shape)
    layer(images)
    _randomise_biases(layer)
    grid = layer(images).numpy()
    for index in range(4):
        model = layer.subnetwork_model(index)
        assert isinstance(model, keras.Model)
        for sublayer in model.layers:
            assert type(sublayer).__module__.startswith("keras."), type(sublayer)
        outputs = model(images).numpy()
        assert outputs.shape == (3, 4)
        np.testing.assert_allclose(
            outputs.reshape(3, 2, 2), _block(grid, index, 2, 2), atol=1e-5, rtol=1e-5
        )
    # The model holds copies: changing it leaves the layer alone.
    model.get_layer("output").kernel.assign(np.zeros(model.get_layer("output").kernel.shape))
    np.testing.assert_array_equal(layer(images).numpy(), grid)


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_xla_layout_computes_the_same_grid(spec_name, monkeypatch):
    """Under XLA the grouped convolutions run as batched matmuls: same numbers."""
    layer = ResetGrid(3, SPECS[spec_name], grid_width=6, seed=4)
    images = _images((2, 8, 8, 2))
    grid = layer(images).numpy()  # eager: grouped tf.nn.conv2d
    seen = []

    def compiled(x):
        seen.append(reset_grid_module._in_xla_context())
        return layer(x)

    compiled = tf.function(compiled, jit_compile=True)
    np.testing.assert_allclose(compiled(images).numpy(), grid, atol=1e-5)
    assert seen == [True] and not reset_grid_module._in_xla_context()
    monkeypatch.setattr(reset_grid_module, "_in_xla_context", lambda: True)
    np.testing.assert_allclose(layer(images).numpy(), grid, atol=1e-5)


def _stacked_and_loop_gradients(layer, images):
    """Gradients of sum(sin(grid)) w.r.t. the stacked weights and the images, and the same
    from the `subnetwork_model` of every sub-network (the sum over its block)."""
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        loss = tf.reduce_sum(tf.sin(layer(images)))
    stacked = tape.gradient(loss, layer.trainable_weights + [images])
    per_network, image_grad = [], 0.0
    for index in range(layer.num_subnetworks):
        model = layer.subnetwork_model(index)
        with tf.GradientTape() as tape:
            tape.watch(images)
            loss = tf.reduce_sum(tf.sin(model(images)))
        grads = tape.gradient(loss, model.trainable_weights + [images])
        per_network.append({w.path: g for w, g in zip(model.trainable_weights, grads)})
        image_grad += grads[-1]
    return stacked, per_network, image_grad


@pytest.mark.parametrize("spec_name", sorted(SPECS))
@pytest.mark.parametrize("layout", ["channels", "channels_im2col", "leading"])
def test_gradients_equal_subnetwork_models(spec_name, layout, monkeypatch):
    """The gradients of every path = those of the n*n Keras sub-models, weight by weight."""
    if layout == "leading":  # the XLA layout, run eagerly
        monkeypatch.setattr(reset_grid_module, "_in_xla_context", lambda: True)
    # The shared-input convolutions as im2col + matmul (else: 4 networks, too few channels).
    minimum = 1 if layout == "channels_im2col" else reset_grid_module.IM2COL_MIN_CHANNELS
    monkeypatch.setattr(reset_grid_module, "IM2COL_MIN_CHANNELS", minimum)
    layer = ResetGrid(2, SPECS[spec_name], grid_width=4, seed=6)
    images = _images((3, 8, 8, 2), seed=1)
    layer(images)
    _randomise_biases(layer)
    stacked, per_network, image_grad = _stacked_and_loop_gradients(layer, images)
    for weight, grad in zip(layer.trainable_weights, stacked):
        sublayer, name = weight.path.split("/")[-2:]
        for index, grads in enumerate(per_network):
            expected = [g for path, g in grads.items() if path.endswith(f"{sublayer}/{name}")]
            assert len(expected) == 1, (weight.path, list(grads))
            np.testing.assert_allclose(
                tf.convert_to_tensor(grad).numpy()[index], expected[0].numpy(),
                rtol=1e-4, atol=1e-5, err_msg=f"{weight.path}[{index}]",
            )
    np.testing.assert_allclose(stacked[-1].numpy(), image_grad.numpy(), rtol=1e-4, atol=1e-5)


def _per_group_conv2d(inputs, kernel, groups, padding):
    """A grouped convolution as a loop of ordinary `tf.nn.conv2d` (gradients on any CPU)."""
    return tf.concat(
        [
            tf.nn.conv2d(x, k, strides=1, padding=padding)
            for x, k in zip(tf.split(inputs, groups, -1), tf.split(kernel, groups, -1))
        ],
        axis=-1,
    )


@pytest.mark.parametrize(
    "kernel_size, padding", [(3, "SAME"), (2, "SAME"), (4, "SAME"), (3, "VALID"), (2, "VALID")]
)
def test_grouped_conv2d_gradients_equal_tf_conv2d(kernel_size, padding):
    """The custom gradients = those of a per-group loop of ordinary convolutions.

    (The reference is not a grouped `tf.nn.conv2d`: without oneDNN TensorFlow has no
    CPU gradient for it.)"""
    groups, channels, filters = 3, 2, 4
    inputs = tf.constant(_images((2, 7, 6, groups * channels), seed=2))
    kernel = tf.constant(_images((kernel_size, kernel_size, channels, groups * filters), seed=3))
    upstream = _images((2, 7, 6, groups * filters) if padding == "SAME" else
                       (2, 8 - kernel_size, 7 - kernel_size, groups * filters), seed=4)
    results = []
    for conv in (
        lambda x, k: _per_group_conv2d(x, k, groups, padding),
        lambda x, k: reset_grid_module._grouped_conv2d(x, k, groups, padding),
    ):
        with tf.GradientTape() as tape:
            tape.watch([inputs, kernel])
            outputs = conv(inputs, kernel)
            loss = tf.reduce_sum(outputs * upstream)
        results.append([outputs] + tape.gradient(loss, [inputs, kernel]))
    for expected, actual in zip(*results):
        np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spec_name", ["residual", "gelu_max", "valid_average", "valid_odd"])
def test_traced_gradients_equal_eager_ones(spec_name):
    """Grouped convolutions followed by their bias in a `tf.function` (graph optimiser on,
    which fuses a convolution and a BiasAdd into a kernel without grouped support when
    oneDNN is off): the same loss and gradients as eagerly."""
    layer = ResetGrid(2, SPECS[spec_name], grid_width=4, seed=6)
    images = tf.constant(_images((3, 8, 8, 2), seed=1))
    layer(images)
    _randomise_biases(layer)

    def loss_and_gradients(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.sin(layer(x)))
        return [loss] + tape.gradient(loss, layer.trainable_weights)

    eager = loss_and_gradients(images)
    traced = tf.function(loss_and_gradients)(images)
    for expected, actual in zip(eager, traced):
        np.testing.assert_allclose(
            tf.convert_to_tensor(actual).numpy(), tf.convert_to_tensor(expected).numpy(),
            rtol=1e-5, atol=1e-6,
        )


def test_subnetwork_model_arguments():
    layer = ResetGrid(2, TINY, grid_width=4)
    with pytest.raises(ValueError, match="not built"):
        layer.subnetwork_model(0)
    layer(_images((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="Received: index=4"):
        layer.subnetwork_model(4)


@pytest.mark.parametrize("spec_name", ["plain", "residual", "mlp"])
def test_subnetworks_are_independent(spec_name):
    """d(block i) / d(weights of sub-network k) is exactly zero for k != i."""
    layer = ResetGrid(2, SPECS[spec_name], grid_width=4, seed=2)
    images = _images((3, 8, 8, 1))
    layer(images)
    _randomise_biases(layer)
    for index in range(4):
        with tf.GradientTape() as tape:
            grid = layer(images)
            loss = tf.reduce_sum(tf.sin(_block(grid, index, 2, 2)))
        grads = tape.gradient(loss, layer.trainable_weights)
        for weight, grad in zip(layer.trainable_weights, grads):
            grad = tf.convert_to_tensor(grad).numpy()
            others = np.delete(grad, index, axis=0)
            assert np.all(others == 0.0), (weight.path, index)
        own = tf.convert_to_tensor(grads[-2]).numpy()[index]  # output kernel
        assert np.abs(own).sum() > 0


def test_weights_are_stacked_and_initialised_per_subnetwork():
    layer = ResetGrid(3, {"conv_filters": [4, 6], "dense_units": [5]}, grid_width=6, seed=0)
    layer(_images((1, 8, 8, 1)))
    shapes = {weight.path.split("/", 1)[1]: tuple(weight.shape) for weight in layer.weights}
    assert shapes == {
        "conv_0/kernel": (9, 3, 3, 1, 4),
        "conv_0/bias": (9, 4),
        "conv_1/kernel": (9, 3, 3, 4, 6),
        "conv_1/bias": (9, 6),
        "dense_0/kernel": (9, 2 * 2 * 6, 5),  # 8 -> 4 -> 2 after two poolings
        "dense_0/bias": (9, 5),
        "output/kernel": (9, 5, 4),
        "output/bias": (9, 4),
    }
    kernel = layer.get_layer("conv_1").kernel.numpy()
    # Glorot limit of ONE sub-network's kernel (fan_in 36, fan_out 54), not of the stack.
    limit = np.sqrt(6.0 / (3 * 3 * 4 + 3 * 3 * 6))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit
    for i in range(1, 9):
        assert not np.allclose(kernel[0], kernel[i])
    same = ResetGrid(3, {"conv_filters": [4, 6], "dense_units": [5]}, grid_width=6, seed=0)
    same(_images((1, 8, 8, 1)))
    for a, b in zip(layer.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(a, b)
    other = ResetGrid(3, {"conv_filters": [4, 6], "dense_units": [5]}, grid_width=6, seed=1)
    other(_images((1, 8, 8, 1)))
    assert not np.allclose(other.get_weights()[0], layer.get_weights()[0])


def test_default_subnetwork_reset_8_32():
    layer = ResetGrid(8)
    assert layer.subnetwork == reset_grid_module.DEFAULT_SUBNETWORK
    assert layer.get_config()["subnetwork"] == reset_grid_module.DEFAULT_SUBNETWORK
    grid = layer(_images((2, 32, 32, 1)))
    assert grid.shape == (2, 32, 32)
    assert layer.compute_output_shape((None, 32, 32, 1)) == (None, 32, 32)
    assert layer.get_layer("conv_1").kernel.shape == (64, 3, 3, 8, 16)
    assert layer.get_layer("output").kernel.shape == (64, 32, 16)


def test_partial_spec_is_completed_in_the_config():
    layer = ResetGrid(2, {"conv_filters": (3,)}, grid_width=4)
    config = layer.get_config()
    assert config["subnetwork"] == {**reset_grid_module.DEFAULT_SUBNETWORK, "conv_filters": [3]}
    assert ResetGrid.from_config(config).subnetwork == layer.subnetwork


def test_forward_graph_does_not_grow_with_the_number_of_subnetworks():
    """Vectorised: the traced graph of n = 4 (16 sub-networks) is that of n = 1."""

    def num_ops(grid_size):
        layer = ResetGrid(grid_size, SPECS["residual"], grid_width=4)
        layer(_images((1, 8, 8, 1)))
        function = tf.function(lambda x: layer(x))
        graph = function.get_concrete_function(tf.TensorSpec((None, 8, 8, 1))).graph
        return len(graph.get_operations())

    assert num_ops(4) == num_ops(1)


def test_docstring_example():
    assert_docstring_examples(reset_grid_module)
