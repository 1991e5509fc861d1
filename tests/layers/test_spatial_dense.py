import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_contract import layer_contract_test

from tfemergent.layers import SpatialDense
from tfemergent.regularizers import DensityCost, TransportCost

test_spatial_dense_contract = layer_contract_test(
    SpatialDense,
    {"units": 4, "density_cost": DensityCost(1.0), "seed": 3},
    input_shape=(6,),
    expected_output_shape=(4,),
    invalid_kwargs=[
        ({"units": 0}, "units"),
        ({"units": 2.5}, "units"),
        ({"position_dim": 0}, "position_dim"),
        ({"seed": -1}, "seed"),
        ({"use_bias": "yes"}, "use_bias"),
        ({"transport_cost": "l1"}, "transport_cost"),
        ({"density_cost": "no_such_cost"}, "density_cost"),
    ],
)


def _two_layer_model(**second_kwargs):
    return keras.Sequential(
        [
            keras.Input((3,)),
            SpatialDense(2, seed=0, name="first"),
            SpatialDense(
                2,
                seed=1,
                name="second",
                transport_cost=TransportCost(1.0),
                density_cost=DensityCost(3.0),
                **second_kwargs,
            ),
        ]
    )


def _set_known_weights(model):
    first, second = model.layers
    first.set_weights(
        [
            np.array([[1.0, 0.0], [0.0, 1.0], [1.0, -1.0]]),
            np.array([0.5, -0.5]),
            np.array([[0.0, 0.0], [1.0, 0.0]]),
        ]
    )
    second.set_weights(
        [
            np.array([[2.0, -1.0], [0.0, 3.0]]),
            np.array([0.0, 1.0]),
            np.array([[0.0, 0.0], [3.0, 4.0]]),
        ]
    )


def test_exact_outputs_and_costs():
    model = _two_layer_model()
    _set_known_weights(model)
    x = np.array([[1.0, 2.0, 3.0]], "float32")
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h = sigmoid(np.array([1 + 3 + 0.5, 2 - 3 - 0.5]))
    expected = sigmoid(h @ np.array([[2.0, -1.0], [0.0, 3.0]]) + np.array([0.0, 1.0]))
    np.testing.assert_allclose(model(x).numpy()[0], expected, rtol=1e-6)
    # transport: inputs at (0,0),(1,0); outputs at (0,0),(3,4)
    # |w| * d: [2*0 + 1*5] + [0*1 + 3*sqrt(4+16)] over N_l = 2
    transport = (2 * 0 + 1 * 5 + 0 * 1 + 3 * np.sqrt(20.0)) / 2
    density = 3.0 * (2 + 2 * np.exp(-5.0)) / 4
    second = model.layers[1]
    assert float(second.compute_transport_cost()) == pytest.approx(transport, rel=1e-6)
    assert float(second.compute_density_cost()) == pytest.approx(density, rel=1e-6)
    assert float(sum(model.losses)) == pytest.approx(transport + density, rel=1e-6)


def test_sequential_and_functional_link_the_source_layer():
    model = _two_layer_model()
    assert model.layers[1].source_layer is model.layers[0]
    assert model.layers[0].source_layer is None
    inputs = keras.Input((3,))
    first = SpatialDense(4, seed=0)
    second = SpatialDense(2, transport_cost=TransportCost(), seed=1)
    outputs = second(keras.layers.Dropout(0.5)(first(inputs)))
    keras.Model(inputs, outputs)
    assert second.source_layer is first
    assert second.input_positions is first.positions


def test_transport_cost_moves_both_layers_positions():
    model = _two_layer_model()
    _set_known_weights(model)
    first, second = model.layers
    with tf.GradientTape() as tape:
        model(np.ones((2, 3), "float32"))
        loss = second.compute_transport_cost()
    grads = tape.gradient(loss, [first.positions, second.positions, second.kernel])
    for grad in grads:
        assert grad is not None and np.abs(grad.numpy()).sum() > 0
    # d/dp_out of (1/2)*sum |w| ||p_in - p_out||: output 1 at (3,4) pulled towards (0,0) and (1,0)
    expected = 0.5 * (1.0 * np.array([3.0, 4.0]) / 5 + 3.0 * np.array([2.0, 4.0]) / np.sqrt(20))
    np.testing.assert_allclose(grads[1].numpy()[1], expected, rtol=1e-5)


def test_subclassed_model_needs_explicit_link():
    class Net(keras.Model):
        def __init__(self, link):
            super().__init__()
            self.a = SpatialDense(4, seed=0)
            self.b = SpatialDense(2, transport_cost=TransportCost(), seed=1)
            if link:
                self.b.set_source_layer(self.a)

        def call(self, x):
            return self.b(self.a(x))

    with pytest.raises(ValueError, match="set_source_layer"):
        Net(link=False)(np.ones((1, 3), "float32"))
    model = Net(link=True)
    model.compile("adam", "mse")
    history = model.fit(np.ones((4, 3)), np.zeros((4, 2)), epochs=1, verbose=0)
    model(np.ones((1, 3), "float32"))
    assert len(model.losses) == 1
    transport = float(model.b.compute_transport_cost())
    assert float(model.losses[0]) == pytest.approx(transport) and transport > 0
    # the logged loss includes the transport cost on top of the mse
    assert history.history["loss"][0] > transport * 0.5


def test_transport_cost_on_raw_inputs_is_refused():
    with pytest.raises(ValueError, match="Received: transport_cost"):
        keras.Sequential([keras.Input((3,)), SpatialDense(2, transport_cost=TransportCost())])


def test_link_validation():
    a, b = SpatialDense(3), SpatialDense(2, position_dim=3)
    with pytest.raises(ValueError, match="Received: layer.position_dim=2"):
        b.set_source_layer(a)
    with pytest.raises(ValueError, match="Received: layer of type Dense"):
        a.set_source_layer(keras.layers.Dense(2))
    c = SpatialDense(2)
    c.build((None, 5))
    with pytest.raises(ValueError, match="Received: layer.units=3"):
        c.set_source_layer(a)


def test_save_load_and_export_keep_link_and_outputs(tmp_path):
    model = _two_layer_model()
    model.compile("adam", "mse")
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(8, 3)), rng.normal(size=(8, 2)), epochs=2, verbose=0)
    x = rng.normal(size=(5, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.layers[1].source_layer is loaded.layers[0]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert float(loaded.layers[1].compute_transport_cost()) == pytest.approx(
        float(model.layers[1].compute_transport_cost()), rel=1e-6
    )
    model.export(str(tmp_path / "sm"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "sm"))
    served = reloaded.serve(x)
    np.testing.assert_allclose(served.numpy(), model.predict(x, verbose=0), atol=1e-5)


def test_two_spatial_layers_train_with_xla_and_mirrored_strategy(mirrored_strategy):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)), rng.normal(size=(16, 2))
    keras.utils.set_random_seed(0)
    model = _two_layer_model()
    model.compile("adam", "mse", jit_compile=True)
    before = model.layers[0].positions.numpy().copy()
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert not np.allclose(before, model.layers[0].positions.numpy())
    strategy = mirrored_strategy
    with strategy.scope():
        model = _two_layer_model()
        model.compile("adam", "mse")
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    for layer in model.layers:
        for weight in layer.weights:
            replicas = strategy.experimental_local_results(weight.value)
            assert len(replicas) == 2
            np.testing.assert_array_equal(replicas[0].numpy(), replicas[1].numpy())


def _built(layer, input_dim=3):
    layer.build((None, input_dim))
    return [weight.numpy() for weight in layer.weights]


def test_seed_seeds_every_weight():
    """SpatialDense(4, seed=1) built twice: the same kernel, bias and positions."""
    kwargs = {"bias_initializer": "glorot_uniform"}  # a random bias too
    first = _built(SpatialDense(4, seed=1, **kwargs))
    again = _built(SpatialDense(4, seed=1, **kwargs))
    other = _built(SpatialDense(4, seed=2, **kwargs))
    for a, b, c in zip(first, again, other):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    # Each weight has its own seed: kernel and bias are not the same draw.
    kernel, bias = _built(SpatialDense(3, seed=1, **kwargs), input_dim=1)[:2]
    assert not np.array_equal(kernel[0], bias)


def test_an_initializer_with_its_own_seed_keeps_it():
    init = keras.initializers.GlorotUniform(seed=5)
    a = _built(SpatialDense(4, kernel_initializer=init, seed=1))[0]
    b = _built(SpatialDense(4, kernel_initializer=keras.initializers.GlorotUniform(seed=5),
                            seed=2))[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, keras.initializers.GlorotUniform(seed=5)((3, 4)).numpy())


def test_supports_masking_like_dense():
    assert SpatialDense(2).supports_masking and keras.layers.Dense(2).supports_masking
    inputs = keras.Input((5, 3))
    outputs = SpatialDense(2)(keras.layers.Masking()(inputs))
    model = keras.Model(inputs, outputs)
    mask = model.layers[-1].compute_mask(None, tf.constant([[True, False, True, True, False]]))
    np.testing.assert_array_equal(mask.numpy(), [[True, False, True, True, False]])


def test_positions_are_trainable_only_when_a_cost_reads_them():
    model = keras.Sequential([
        keras.Input((3,)),
        SpatialDense(4, seed=0, name="free"),  # no cost reads its positions
        SpatialDense(4, seed=1, name="source"),  # the next layer's transport cost does
        SpatialDense(2, seed=2, name="reader", transport_cost=TransportCost(1.0)),
    ])
    free, source, reader = model.layers
    assert [w.name for w in free.trainable_weights] == ["kernel", "bias"]
    assert [w.name for w in free.non_trainable_weights] == ["positions"]
    assert source.positions.trainable and reader.positions.trainable
    assert not free.positions_trainable and source.positions_trainable
    assert SpatialDense(2, density_cost=DensityCost(1.0)).positions_trainable


def test_training_without_any_cost_does_not_warn_about_positions(recwarn):
    model = keras.Sequential([keras.Input((3,)), SpatialDense(4, seed=0), SpatialDense(2, seed=1)])
    model.compile("adam", "mse")
    before = model.layers[0].positions.numpy().copy()
    model.fit(np.ones((4, 3)), np.zeros((4, 2)), verbose=0)
    messages = [str(warning.message) for warning in recwarn]
    assert not any("Gradients do not exist" in message for message in messages), messages
    np.testing.assert_array_equal(before, model.layers[0].positions.numpy())


def test_string_inputs_are_refused_and_integers_cast():
    layer = SpatialDense(2, seed=0)
    with pytest.raises(ValueError, match=r"numeric inputs.*Received: inputs.dtype=string"):
        layer(tf.constant([["a", "b", "c"]]))
    np.testing.assert_allclose(layer(np.ones((2, 3), "int32")).numpy(),
                               layer(np.ones((2, 3), "float32")).numpy())
