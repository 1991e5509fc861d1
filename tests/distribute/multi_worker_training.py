"""The training cases of the multi-worker tests, and the worker process that runs them.

Every case builds a small tfemergent model with its costs, compiles it with plain SGD
(a wrong gradient scale would cancel out in Adam) and trains it for ``NUM_EPOCHS`` epochs
of ``GLOBAL_BATCH_SIZE`` samples on fixed data, without dropout (the replicas of a
distributed run would draw other masks than the single process). `train_case` runs a case
under whatever strategy is current. The tests call it in their own process without a
strategy (the reference, ``single_process_run`` in ``conftest.py``) and under a two-CPU
``MirroredStrategy`` (``test_mirrored_strategy.py``); ``test_multi_worker.py`` launches this
module once per worker of a ``tf.distribute.MultiWorkerMirroredStrategy`` cluster::

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:p0", "127.0.0.1:p1"]},
                "task": {"type": "worker", "index": 0}}' \\
        python multi_worker_training.py OUTPUT_DIR [CASE ...]

Each worker builds and trains every case (default: all of `CASES`) inside
``strategy.scope()`` and writes ``OUTPUT_DIR/<case>.npz``: the final weights
(``weight_<i>``, in ``model.weights`` order, their paths in ``names``) and the history
(``history_<metric>``). A case that raises writes ``<case>.error.txt`` (the traceback)
instead, and the worker goes on with the next case. The tfemergent layers, created in the
scope, patch Keras (`tfemergent.utils.keras_multi_worker`); last, with Keras unpatched,
the worker trains a plain ``Dense`` model and writes ``keras_without_workaround.txt``:
``"works"`` or the error (see `tfemergent.utils.keras_multi_worker`).
"""

import functools
import os
import pathlib
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GLOBAL_BATCH_SIZE = 8
NUM_SAMPLES = 32  # 4 steps per epoch
NUM_EPOCHS = 2
SEED = 0
# Tolerance of "trains like one process" (weights and loss history).
ATOL = 1e-5
RTOL = 1e-4
# A collective that waits longer than this fails instead of hanging the worker.
COLLECTIVE_TIMEOUT_SECONDS = 60
KERAS_PROBE_FILE = "keras_without_workaround.txt"


def _dataset(inputs, targets):
    """Global batches of ``GLOBAL_BATCH_SIZE``, sharded by element across the workers.

    With ``AutoShardPolicy.DATA`` the strategy splits every global batch between the
    workers (worker ``i`` gets its ``1 / num_workers`` of each batch), so one step sees
    the same ``GLOBAL_BATCH_SIZE`` samples as the single-process run.
    """
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(GLOBAL_BATCH_SIZE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _spatial_dense(cost_factor):
    """Two `SpatialDense` layers, transport and density costs; NumPy arrays to ``fit``."""
    from tfemergent.layers import SpatialDense
    from tfemergent.regularizers import DensityCost, TransportCost

    rng = np.random.default_rng(1)
    inputs = rng.normal(size=(NUM_SAMPLES, 6)).astype("float32")
    targets = rng.normal(size=(NUM_SAMPLES, 3)).astype("float32")
    model = keras.Sequential(
        [
            keras.Input((6,)),
            SpatialDense(8, seed=1, density_cost=DensityCost(3.0 * cost_factor, num_layers=2)),
            SpatialDense(
                3,
                activation=None,
                seed=2,
                transport_cost=TransportCost(1.0 * cost_factor),
                density_cost=DensityCost(3.0 * cost_factor, num_layers=2),
            ),
        ]
    )
    model.compile(keras.optimizers.SGD(0.1), "mse")
    # A user script passes arrays: Keras shards them by element (AutoShardPolicy.DATA).
    return model, {"x": inputs, "y": targets, "batch_size": GLOBAL_BATCH_SIZE, "shuffle": False}


def _recursive_urn(cost_factor, sparse=False):
    """`RecursiveURNLayer` on an `UpliftedLattice` with its three costs; a `tf.data` input.

    With ``sparse``, the layer trains with the sparse recurrent product
    (``use_sparse_kernel``, the weights with ``|w| > 0.3``).
    """
    from tfemergent.geometry import UpliftedLattice
    from tfemergent.layers import RecursiveURNLayer
    from tfemergent.regularizers import IterationActivityL1, SynapticLength

    rng = np.random.default_rng(2)
    inputs = rng.random((NUM_SAMPLES, 9)).astype("float32")
    labels = (inputs.sum(axis=1) > 4.5).astype("int32")
    lattice = UpliftedLattice(3, 3, 3, num_outputs=2)
    model = keras.Sequential(
        [
            keras.Input((9,)),
            RecursiveURNLayer(
                lattice.num_neurons,
                3,
                input_dim=9,
                output_dim=2,
                residual="output",
                kernel_regularizer=keras.regularizers.L1(1e-2 * cost_factor),
                state_regularizer=IterationActivityL1(1e-2 * cost_factor),
                lattice=lattice,
                synaptic_length=SynapticLength(1e-2 * cost_factor),
                seed=0,
            ),
        ]
    )
    if sparse:
        model.layers[0].use_sparse_kernel(threshold=0.3)
    model.compile(
        keras.optimizers.SGD(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model, {"x": _dataset(inputs, labels), "shuffle": False}


def _reset_network(cost_factor):
    """`ResetNetwork` (one `ResetGrid` level) with its reconstruction loss (``add_loss``)."""
    from tfemergent.models import ResetNetwork

    rng = np.random.default_rng(3)
    images = rng.random((NUM_SAMPLES, 12, 12, 1)).astype("float32")
    labels = np.arange(NUM_SAMPLES) % 10
    small = {"conv_filters": [4], "dense_units": [8]}
    model = ResetNetwork(
        10,
        grid_size=2,
        grid_width=8,
        subnetwork=small,
        final_network=small,
        reconstruction=True,
        grid_dropout=0.0,
        reconstruction_weight=1.0 * cost_factor,
        seed=3,
    )
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model, {"x": images, "y": labels, "batch_size": GLOBAL_BATCH_SIZE, "shuffle": False}


def _self_organising_hierarchy(cost_factor):
    """`SelfOrganisingHierarchy` (own ``train_step``, unsupervised) with its L2 cost."""
    from tfemergent.models import SelfOrganisingHierarchy

    images = np.random.default_rng(4).random((NUM_SAMPLES, 4, 4)).astype("float32")
    model = SelfOrganisingHierarchy(
        image_shape=(4, 4), num_hidden=4, window_size=2, l2=1e-2 * cost_factor, seed=0
    )
    model.compile(keras.optimizers.SGD(0.1))
    return model, {"x": images, "batch_size": GLOBAL_BATCH_SIZE, "shuffle": False}


def _segment_cnn(cost_factor):
    """`SegmentCNN`: `MaskedConv2D` layers (one kernel pruned) and an `AddOnConv2D`; no costs."""
    del cost_factor
    from tfemergent.models import SegmentCNN

    rng = np.random.default_rng(6)
    images = rng.standard_normal((NUM_SAMPLES, 4, 4, 1)).astype("float32")
    labels = np.arange(NUM_SAMPLES) % 3
    add_on = {"segment": 0, "source": "input", "target": 1, "kernel_size": 3}
    model = SegmentCNN((4, 4, 1), 3, segments=[[2, 2], [2]], add_ons=[add_on], seed=1).build()
    conv = model.get_layer("conv_0_1")
    mask = np.ones(conv.pruning_mask.shape)
    mask[0, 1] = 0.0
    conv.set_kernel_mask(mask)
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model, {"x": images, "y": labels, "batch_size": GLOBAL_BATCH_SIZE, "shuffle": False}


def _keras_dense(cost_factor):
    """A plain Keras ``Dense`` model: the probe of the Keras bugs, no tfemergent code."""
    del cost_factor
    rng = np.random.default_rng(5)
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    inputs = rng.normal(size=(NUM_SAMPLES, 6)).astype("float32")
    targets = rng.normal(size=(NUM_SAMPLES, 3)).astype("float32")
    return model, {"x": inputs, "y": targets, "batch_size": GLOBAL_BATCH_SIZE, "shuffle": False}


CASES = {
    "spatial_dense": _spatial_dense,
    "recursive_urn": _recursive_urn,
    "recursive_urn_sparse": functools.partial(_recursive_urn, sparse=True),
    "reset_network": _reset_network,
    "self_organising_hierarchy": _self_organising_hierarchy,
    "segment_cnn": _segment_cnn,
}
# Cases whose `cost_factor` changes nothing.
CASES_WITHOUT_COSTS = ("segment_cnn",)


def train_case(name, cost_factor=1.0):
    """Build, compile and train case ``name`` under the current strategy.

    Args:
        name: a key of `CASES` (or ``"keras_dense"``, the probe of the Keras bugs).
        cost_factor: multiplies every cost of the case (the tests use 2 to show that
            a double-counted cost would be caught).

    Returns:
        ``(names, weights, history)``: the paths and values of ``model.weights`` after
        training, and ``history.history``.
    """
    keras.utils.set_random_seed(SEED)
    build = _keras_dense if name == "keras_dense" else CASES[name]
    model, fit_arguments = build(cost_factor)
    history = model.fit(**fit_arguments, epochs=NUM_EPOCHS, verbose=0)
    names = [weight.path for weight in model.weights]
    weights = [np.asarray(keras.ops.convert_to_numpy(weight)) for weight in model.weights]
    return names, weights, history.history


def save_result(path, names, weights, history):
    """Write what `train_case` returned to the ``.npz`` at ``path``."""
    arrays = {f"weight_{i}": value for i, value in enumerate(weights)}
    arrays.update({f"history_{key}": np.asarray(value) for key, value in history.items()})
    np.savez(path, names=np.asarray(names), **arrays)


def load_result(path):
    """``(names, weights, history)`` from an ``.npz`` written by `save_result`."""
    with np.load(path) as data:
        names = [str(name) for name in data["names"]]
        weights = [data[f"weight_{i}"] for i in range(len(names))]
        history = {
            key[len("history_"):]: data[key].tolist()
            for key in data.files
            if key.startswith("history_")
        }
    return names, weights, history


def assert_same_training(actual, expected, what, exact=False, skip_metrics=()):
    """Assert that two `train_case` results have equal weights and loss histories.

    Args:
        actual, expected: ``(names, weights, history)`` of `train_case`.
        what: the start of the failure message.
        exact: compare the weights bit for bit (replicas of one run), not within
            ``ATOL``/``RTOL``; the histories are then not compared.
        skip_metrics: history keys ending with one of these are not compared.
    """
    actual_names, actual_weights, actual_history = actual
    _, expected_weights, expected_history = expected
    shapes = [weight.shape for weight in actual_weights]
    assert shapes == [weight.shape for weight in expected_weights], f"{what}: weight shapes"
    for name, value, reference in zip(actual_names, actual_weights, expected_weights):
        if exact:
            np.testing.assert_array_equal(value, reference, err_msg=f"{what}: {name}")
        else:
            np.testing.assert_allclose(
                value, reference, atol=ATOL, rtol=RTOL, err_msg=f"{what}: {name}"
            )
    if exact:
        return
    assert sorted(actual_history) == sorted(expected_history), f"{what}: history keys"
    for key, values in expected_history.items():
        if not key.endswith(tuple(skip_metrics)):
            np.testing.assert_allclose(
                actual_history[key], values, atol=ATOL, rtol=RTOL, err_msg=f"{what}: {key}"
            )


def main(argv):
    names = argv[2:] or list(CASES)
    if len(argv) < 2 or not set(names) <= set(CASES):
        raise SystemExit(f"usage: {argv[0]} OUTPUT_DIR [CASE ...] with CASE in {list(CASES)}")
    output = pathlib.Path(argv[1])
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS,
        )
    )
    from tfemergent.utils import keras_multi_worker

    # `import tfemergent` leaves Keras alone; the tfemergent layers built in the scope
    # below patch it (keras_multi_worker.patch_if_multi_worker). The probe runs without.
    if keras_multi_worker.is_patched():
        raise SystemExit("`import tfemergent` patched Keras before any strategy scope")
    for name in names:
        start = time.monotonic()
        try:
            with strategy.scope():
                result = train_case(name)
        except Exception:  # noqa: BLE001  (reported to the test, next case)
            (output / f"{name}.error.txt").write_text(traceback.format_exc())
        else:
            save_result(output / f"{name}.npz", *result)
        print(f"case {name}: {time.monotonic() - start:.1f} s", flush=True)
    try:
        with keras_multi_worker.keras_without_patches(), strategy.scope():
            train_case("keras_dense")
    except Exception as error:  # noqa: BLE001
        # The first line: the message of a PerReplica error goes on with its arrays.
        outcome = f"{type(error).__name__}: {str(error).splitlines()[0]}"
    else:
        outcome = "works"
    (output / KERAS_PROBE_FILE).write_text(outcome)


if __name__ == "__main__":
    main(sys.argv)
