"""Every public layer and model under Keras dtype policies (issue 19, "Dtype policies").

The rule: variables in the variable dtype, the forward pass in the compute dtype, costs
computed in at least float32 and added to the loss in the dtype of Keras' losses
(``keras.config.floatx()``). Each public layer (``tfemergent.layers.__all__``) and model
(``tfemergent.models``) trains one step and round-trips through ``.keras`` (same outputs)
under a global ``"mixed_float16"`` policy, under ``keras.config.set_floatx("float64")``
and with a per-layer (per-model) ``dtype=``. The fixture restores the global policy and
floatx after every case, whatever happens.
"""

import warnings

import numpy as np
import pytest

import keras
import tensorflow as tf

from tfemergent import layers as tfe_layers
from tfemergent import models as tfe_models
from tfemergent import regularizers
from tfemergent.geometry import UpliftedLattice
from tfemergent.utils import dtypes

# How the policy is set: globally ("mixed_float16", "float64" via set_floatx) or on the
# layer / model under test ("dtype=float64": the rest of the model and Keras' losses
# stay float32). A per-model "mixed_float16" runs in the hierarchy test below; a
# per-layer "mixed_float16" passes for every case too, left out to keep the file fast.
POLICIES = ("mixed_float16", "float64", "dtype=float64")

# Names of tfemergent.models that are not models: a new public model must get a case.
NOT_MODELS = {
    "HierarchyLayout": "geometry of the hierarchy, no weights",
    "LocationEvaluator": "scores add-on locations with an AddOnSuperNetwork (covered)",
    "NeuronHierarchyBuilder": "the NHN pipeline; builds SegmentCNN models (covered)",
    "PAPER_HIDDEN_UNITS": "a constant",
    "URNExtraction": "a dataclass of results",
}


@pytest.fixture
def policy(request):
    """``(dtype for the layer or None, the expected DTypePolicy)``; restores the globals."""
    mode = request.param
    old_policy, old_floatx = keras.config.dtype_policy(), keras.config.floatx()
    try:
        if mode == "mixed_float16":
            keras.mixed_precision.set_global_policy("mixed_float16")
            yield None, keras.dtype_policies.get("mixed_float16")
        elif mode == "float64":
            keras.config.set_floatx("float64")
            keras.mixed_precision.set_global_policy("float64")
            yield None, keras.dtype_policies.get("float64")
        else:
            dtype = mode.split("=")[1]
            yield dtype, keras.dtype_policies.get(dtype)
    finally:
        keras.config.set_floatx(old_floatx)
        keras.mixed_precision.set_global_policy(old_policy)


def _data(*shape):
    return np.random.default_rng(0).random(shape)


def _wrap(layer, input_shape):
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer(inputs))


def _kwargs(dtype):
    return {} if dtype is None else {"dtype": dtype}


# Each case: dtype -> (model, x, y, compile loss). Tiny shapes: one step must be fast;
# the spatial cases share their cost shapes (4 x 4), so that the XLA-compiled distance
# kernels are compiled once per dtype.


def _spatial_dense(dtype):
    inputs = keras.Input((6,))
    hidden = tfe_layers.SpatialDense(4, seed=1, **_kwargs(dtype))(inputs)
    outputs = tfe_layers.SpatialDense(
        4, activation=None, seed=2, transport_cost=regularizers.TransportCost(1.0),
        density_cost=regularizers.DensityCost(3.0), **_kwargs(dtype),
    )(hidden)
    return keras.Model(inputs, outputs), _data(4, 6), _data(4, 4), "mse"


def _urn(dtype):
    lattice = UpliftedLattice(width=2, height=2, depth=3, num_outputs=2)
    layer = tfe_layers.RecursiveURNLayer(
        lattice.num_neurons, 2, 4, 2, residual="output", lattice=lattice,
        kernel_regularizer=keras.regularizers.L1(1e-3),
        state_regularizer=regularizers.IterationActivityL1(1e-2),
        synaptic_length=regularizers.SynapticLength(0.1), seed=0, **_kwargs(dtype),
    )
    return _wrap(layer, (4,)), _data(4, 4), _data(4, 2), "mse"


def _sparse_urn(dtype):
    # The sparse product: the C++ op takes float32 only, float16 / float64 fall back
    # to the pure-TF kernel.
    layer = tfe_layers.RecursiveURNLayer(
        10, 2, 4, 2, activation="tanh", kernel_regularizer=keras.regularizers.L1(1e-3),
        seed=0, **_kwargs(dtype),
    )
    model = _wrap(layer, (4,))
    assert layer.use_sparse_kernel(0.5) > 0
    return model, _data(4, 4), _data(4, 2), "mse"


def _autoencoder_unit(dtype):
    layer = tfe_layers.MaskedAutoencoderUnit(
        4, ((0, 0), (0, 3)), (6, 6), window_size=3, code_location=(4, 0),
        code_shape=(2, 2), l2=1e-3, seed=0, **_kwargs(dtype),
    )
    return _wrap(layer, (6, 6)), _data(4, 6, 6), _data(4, 4), "mse"


def _masked_conv(dtype):
    layer = tfe_layers.MaskedConv2D(
        3, 3, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3),
        **_kwargs(dtype),
    )
    return _wrap(layer, (5, 5, 2)), _data(4, 5, 5, 2), _data(4, 5, 5, 3), "mse"


def _add_on_conv(dtype):
    layer = tfe_layers.AddOnConv2D(3, 3, connection_density=0.5, seed=0, **_kwargs(dtype))
    return _wrap(layer, (5, 5, 2)), _data(4, 5, 5, 2), _data(4, 5, 5, 3), "mse"


def _reset_grid(dtype):
    layer = tfe_layers.ResetGrid(
        2, {"conv_filters": [2], "dense_units": [4]}, grid_width=4, seed=0, **_kwargs(dtype)
    )
    return _wrap(layer, (8, 8, 1)), _data(4, 8, 8, 1), _data(4, 4, 4), "mse"


def _spatial_network(dtype):
    model = tfe_models.build_spatial_network(
        8, hidden_units=(4, 4, 4, 4), seed=0, compile=False, **_kwargs(dtype)
    )
    labels = np.array([[1, 5], [2, 6], [3, 7], [4, 8]])
    from tfemergent.losses import MultiTaskCrossEntropy

    return model, _data(4, 8), labels, MultiTaskCrossEntropy(num_tasks=2)


def _hierarchy(dtype):
    model = tfe_models.SelfOrganisingHierarchy(
        (4, 4), num_units=3, num_hidden=4, window_size=2, relaxation_passes=1, seed=0,
        **_kwargs(dtype),
    )
    return model, _data(4, 4, 4), None, None


def _reset_network(dtype):
    model = tfe_models.ResetNetwork(
        3, grid_size=2, grid_width=4, subnetwork={"conv_filters": [2], "dense_units": [4]},
        final_network={"conv_filters": [2], "dense_units": [4]}, reconstruction=True,
        seed=0, **_kwargs(dtype),
    )
    return model, _data(4, 8, 8, 1), np.array([0, 1, 2, 0]), "sparse_categorical_crossentropy"


_NHN_SEGMENTS = [[2, 2], [2]]


def _segment_cnn(dtype):
    spec = tfe_models.SegmentCNN(
        (8, 8, 1), 3, segments=_NHN_SEGMENTS, seed=0,
        add_ons=[{"segment": 0, "source": "input", "target": 1, "kernel_size": 3}],
    )
    model = spec.build(**_kwargs(dtype))
    return model, _data(4, 8, 8, 1), np.array([0, 1, 2, 0]), "sparse_categorical_crossentropy"


def _add_on_super_network(dtype):
    model = tfe_models.AddOnSuperNetwork(
        (8, 8, 1), 3, segments=_NHN_SEGMENTS, kernel_sizes=(3,), seed=0,
        add_on_initializer="he_normal", **_kwargs(dtype),
    )
    model.set_add_ons(model.possible_add_ons[:1])
    return model, _data(4, 8, 8, 1), np.array([0, 1, 2, 0]), "sparse_categorical_crossentropy"


def _extracted_urn(dtype):
    layer = tfe_layers.RecursiveURNLayer(
        8, 2, 3, 2, activation="tanh", seed=0, **_kwargs(dtype)
    )
    x = _data(16, 3)
    layer(x)
    with warnings.catch_warnings():  # "every neuron is active": it is not trained
        warnings.simplefilter("ignore", UserWarning)
        model = tfe_models.extract_urn_network(layer, x)
    return model, x[:4], _data(4, 2), "mse"


CASES = {
    "SpatialDense": _spatial_dense,
    "RecursiveURNLayer": _urn,
    "RecursiveURNLayer_sparse": _sparse_urn,
    "MaskedAutoencoderUnit": _autoencoder_unit,
    "MaskedConv2D": _masked_conv,
    "AddOnConv2D": _add_on_conv,
    "ResetGrid": _reset_grid,
    "build_spatial_network": _spatial_network,
    "SelfOrganisingHierarchy": _hierarchy,
    "ResetNetwork": _reset_network,
    "SegmentCNN": _segment_cnn,
    "AddOnSuperNetwork": _add_on_super_network,
    "extract_urn_network": _extracted_urn,
}


def test_every_public_layer_and_model_has_a_case():
    public = set(tfe_layers.__all__) | (set(tfe_models.__all__) - set(NOT_MODELS))
    assert public - set(CASES) == set()
    assert set(NOT_MODELS) <= set(tfe_models.__all__)


def _float_weights(model):
    return [w for w in model.weights if "float" in str(w.dtype)]


@pytest.mark.parametrize("policy", POLICIES, indirect=True)
@pytest.mark.parametrize("case", sorted(CASES))
def test_trains_one_step_and_round_trips(case, policy, tmp_path):
    dtype, expected = policy
    model, x, y, loss = CASES[case](dtype)
    model.compile(keras.optimizers.Adam(1e-3), loss=loss)
    model(x)  # build the subclassed models
    weights = _float_weights(model)
    before = [keras.ops.convert_to_numpy(w) for w in weights]
    # One step with `fit` (the hierarchy's per-epoch entropy runs only there). A
    # dynamic loss scale may skip a step that overflows float16: then try again.
    for _ in range(3):
        history = model.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
        changed = [
            not np.array_equal(b, keras.ops.convert_to_numpy(w)) for b, w in zip(before, weights)
        ]
        if any(changed):
            break
    assert np.isfinite(history.history["loss"][0]) and any(changed)
    # Variables stay in the variable dtype.
    assert {w.path: w.dtype for w in weights if w.dtype != expected.variable_dtype} == {}
    # The forward pass runs in the compute dtype; the added costs are in the loss dtype.
    outputs = model(x, training=True)
    assert outputs.dtype == expected.compute_dtype
    assert [loss.dtype for loss in model.losses if loss.dtype != keras.config.floatx()] == []
    # .keras round trip: same policy, same outputs.
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.dtype_policy.name == model.dtype_policy.name
    assert {w.dtype for w in _float_weights(loaded)} == {expected.variable_dtype}
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x))
    )


# ---------------------------------------------------------------------------- numbers


@pytest.fixture
def mixed_float16():
    old = keras.config.dtype_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        yield
    finally:
        keras.mixed_precision.set_global_policy(old)


@pytest.fixture
def float64():
    old_policy, old_floatx = keras.config.dtype_policy(), keras.config.floatx()
    try:
        keras.config.set_floatx("float64")
        keras.mixed_precision.set_global_policy("float64")
        yield
    finally:
        keras.config.set_floatx(old_floatx)
        keras.mixed_precision.set_global_policy(old_policy)


def test_costs_on_float16_inputs_are_float32_sums():
    kernel = np.array([[1.0, -2.0]], "float16")
    p_in, p_out = np.array([[0.0, 0.0]], "float16"), np.array([[3.0, 4.0], [0.0, 1.0]], "float16")
    value = regularizers.TransportCost(1.0)((kernel, p_in, p_out))
    assert value.dtype == tf.float32 and float(value) == 3.5  # (1 * 5 + 2 * 1) / 2
    # 4096 states of 30: the float16 sum (122880) overflows float16's 65504.
    states = np.full((1, 4096, 1), 30.0, "float16")
    value = regularizers.IterationActivityL1(1.0)(states)
    assert value.dtype == tf.float32 and float(value) == 30.0
    positions = np.array([[0.0, 0.0], [3.0, 4.0]], "float16")
    value = regularizers.DensityCost(1.0)(positions)
    assert value.dtype == tf.float32
    assert float(value) == pytest.approx((2 + 2 * np.exp(-5.0)) / 4, rel=1e-6)
    # float64 stays float64 (precision is not thrown away when called on its own).
    assert regularizers.DensityCost(1.0)(positions.astype("float64")).dtype == tf.float64


def test_dtype_helpers():
    assert dtypes.cost_dtype("bfloat16") == "float32"
    assert dtypes.cost_dtype(tf.float64) == "float64"
    cost = dtypes.in_loss_dtype(keras.regularizers.L1(0.5))
    value = cost(np.array([1.0, -2.0], "float64"))
    assert value.dtype == tf.float32 and float(value) == 1.5
    assert dtypes.in_loss_dtype(None) is None


def test_spatial_dense_transport_cost_reads_full_precision_weights(mixed_float16):
    # 1 + 2**-12 is not a float16 (its spacing at 1 is 2**-10): the cost must see it.
    inputs = keras.Input((1,))
    source = tfe_layers.SpatialDense(1, seed=0)
    target = tfe_layers.SpatialDense(2, seed=1, transport_cost=regularizers.TransportCost(1.0))
    model = keras.Model(inputs, target(source(inputs)))
    source.positions.assign([[0.0, 0.0]])
    target.positions.assign([[3.0, 4.0], [0.0, 1.0]])
    weight = 1.0 + 2.0**-12
    target.kernel.assign([[weight, -2.0]])
    outputs = model(np.ones((2, 1)))
    assert outputs.dtype == tf.float16 and target.kernel.dtype == "float32"
    (cost,) = model.losses
    assert cost.dtype == tf.float32
    assert float(cost) == pytest.approx((weight * 5 + 2 * 1) / 2, rel=1e-7)
    assert float(cost) != pytest.approx((1.0 * 5 + 2) / 2, rel=1e-7)


def test_hierarchy_mixed_precision_step_matches_float32(mixed_float16):
    # The hierarchy's own train_step must scale the loss for the LossScaleOptimizer:
    # without it the SGD step would be 2**15 times too small.
    images = _data(8, 4, 4).astype("float32")

    def one_step(dtype):
        model = tfe_models.SelfOrganisingHierarchy(
            (4, 4), num_units=3, num_hidden=4, window_size=2, relaxation_passes=0, seed=0,
            dtype=dtype,
        )
        model.compile(keras.optimizers.SGD(0.5))
        before = np.array(model.units[0].encoder_kernel)
        model.train_on_batch(images)
        return np.array(model.units[0].encoder_kernel) - before

    full, mixed = one_step("float32"), one_step("mixed_float16")
    assert np.abs(full).max() > 1e-3
    np.testing.assert_allclose(mixed, full, atol=2e-2 * np.abs(full).max())


def test_reset_reconstruction_loss_is_float64_under_float64(float64):
    model = tfe_models.ResetNetwork(
        3, grid_size=2, grid_width=4, subnetwork={"conv_filters": [2], "dense_units": [4]},
        final_network={"conv_filters": [2], "dense_units": [4]}, reconstruction=True, seed=0,
    )
    images = _data(4, 8, 8, 1) * (1 + 1e-9)  # not float32 numbers
    model(images)
    (loss,) = model.losses
    assert loss.dtype == tf.float64
    expected = np.mean((model.reconstruct(images).astype("float64") - images) ** 2)
    # `reconstruct` returns float32: compare at float32 precision, then the dtype.
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    reconstructed = model._decode(model._grids(tf.constant(images), training=False)[-1])
    exact = float(tf.reduce_mean(tf.square(reconstructed - images)))
    assert float(loss) == pytest.approx(exact, rel=1e-12)


def test_build_spatial_network_rejects_bad_dtype():
    for dtype in ("float33", 3, "int32"):
        with pytest.raises(ValueError, match=r"`dtype`.*Received: dtype="):
            tfe_models.build_spatial_network(4, hidden_units=(3, 3, 3, 3), dtype=dtype)


def test_policy_fixture_restores_globals():
    # Runs after the parametrised cases in this file: nothing leaked.
    assert keras.config.dtype_policy().name == "float32"
    assert keras.config.floatx() == "float32"


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_kernels_compute_in_the_dtype_of_their_inputs(dtype):
    from tfemergent import kernels

    rng = np.random.default_rng(0)
    values = {
        "w": rng.normal(size=(5, 4)), "p": rng.normal(size=(5, 2)),
        "q": rng.normal(size=(4, 2)), "x": rng.normal(size=(3, 5)),
    }
    mask = (rng.random((5, 4)) > 0.5).astype("float64")

    def run(dtype):
        t = {key: tf.constant(value, dtype) for key, value in values.items()}
        return {
            "pairwise_distances": kernels.pairwise_distances(t["p"], t["q"]),
            "distance_weighted_l1": kernels.distance_weighted_l1(t["w"], t["p"], t["q"]),
            "masked_matmul": kernels.masked_matmul(t["x"], t["w"], mask),
            "sparse_matmul": kernels.sparse_matmul(t["x"], tf.sparse.from_dense(t["w"] * mask)),
        }

    reference = run("float64")
    tolerance = {"float16": 1e-2, "bfloat16": 5e-2, "float64": 1e-12}[dtype]
    for name, output in run(dtype).items():
        assert output.dtype == dtype, name
        np.testing.assert_allclose(
            np.asarray(tf.cast(output, "float64")), reference[name].numpy(),
            rtol=tolerance, atol=tolerance, err_msg=name,
        )
