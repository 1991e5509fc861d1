import glob
import json
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_contract import assert_callback_config
from matplotlib.colors import to_hex
from tensorboard_events import read_events

import tfemergent.callbacks.hierarchy_tensorboard as hierarchy_tensorboard_module
from tfemergent import plotting
from tfemergent.callbacks import HierarchyTensorBoard
from tfemergent.callbacks.hierarchy_tensorboard import _codes_from_maps
from tfemergent.models import SelfOrganisingHierarchy
from tfemergent.probes import LogisticRegressionProbe
from docstring_examples import assert_docstring_examples

# 4 x 4 images, 2 x 2 windows, codes of 4 (2 x 2): the map is 4 x 8 with the codes
# of units 0, 1, 2 at (0, 4), (2, 4), (0, 6).
TINY = {"image_shape": (4, 4), "num_hidden": 4, "window_size": 2, "seed": 0}
NUM_UNITS = 3
# Figure sizes at 80 dpi: the 4 x 8 map is 3 in high and 3 * 8 / 4 + 1 = 7 in wide;
# the codes of 3 units are 6 in wide and 1 + 0.5 * 3 = 2.5 in high.
MAP_IMAGE = (240, 560, 3)
CODES_IMAGE = (200, 480, 3)


def _images(num_samples, seed=0, shape=(4, 4)):
    return np.random.default_rng(seed).random((num_samples,) + shape).astype("float32")


def _image_summaries(log_dir, tag):
    """``[(step, [decoded image, ...])]`` of the image summary ``tag`` (every output)."""
    found = []
    for path in sorted(glob.glob(f"{log_dir}/**/events.out.tfevents.*", recursive=True)):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    pngs = tf.make_ndarray(value.tensor)[2:]  # width, height, PNGs
                    found.append((event.step, [tf.io.decode_png(p).numpy() for p in pngs]))
    return sorted(found, key=lambda entry: entry[0])


def _by_step(events):
    """`read_events` with each tag's entries sorted by step (one event file per fit)."""
    return {tag: sorted(entries, key=lambda entry: entry[0]) for tag, entries in events.items()}


def _steps(events, tag):
    return [step for step, _ in events[tag]]


def _hand_probe_accuracy(model, probe, probe_data):
    train_images, train_labels, test_images, test_labels = probe_data
    fresh = LogisticRegressionProbe.from_config(probe.get_config())
    report = fresh.fit_score(
        model.predict(train_images, verbose=0), train_labels,
        model.predict(test_images, verbose=0), test_labels,
    )
    return report["test_accuracy"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two fits (two meta-steps) of 2 and 1 epochs, the second at step_offset 2, with the probe."""
    log_dir = str(tmp_path_factory.mktemp("hierarchy"))
    images = _images(24)
    labels = np.arange(24) % 3
    probe_data = (images[:16], labels[:16], images[16:], labels[16:])
    probe = LogisticRegressionProbe(max_iter=100, seed=0)
    keras.utils.set_random_seed(0)
    model = SelfOrganisingHierarchy(**TINY)
    model.compile(keras.optimizers.Adam(1e-2))
    callback = HierarchyTensorBoard(
        log_dir, images[:5], probe_data=probe_data, probe=probe, max_outputs=2
    )
    assert callback._writer is None  # opened lazily
    histories, accuracies = [], []
    for step_offset, epochs in [(0, 2), (2, 1)]:
        callback.step_offset = step_offset
        history = model.fit(images, batch_size=8, epochs=epochs, verbose=0, callbacks=[callback])
        histories.append(history.history)
        # the last epoch is logged with the weights the fit ends with
        accuracies.append(_hand_probe_accuracy(model, probe, probe_data))
    assert callback._writer is None  # closed at train end
    return types.SimpleNamespace(
        log_dir=log_dir, model=model, callback=callback, images=images,
        events=_by_step(read_events(log_dir)), accuracies=accuracies,
        history={key: histories[0][key] + histories[1][key] for key in histories[0]},
    )


def test_scalars_are_the_logs_of_each_epoch(run):
    measures = {"hierarchy/entropy": "entropy", "hierarchy/loss": "loss"}
    for k in range(NUM_UNITS):
        measures[f"unit_{k}/entropy"] = f"unit_{k}_entropy"
        measures[f"unit_{k}/loss"] = f"unit_{k}_loss"
    for tag, key in measures.items():
        # fits of 2 and 1 epochs at step offsets 0 and 2: one continuous time line
        assert _steps(run.events, tag) == [0, 1, 2], tag
        logged = [value for _, value in run.events[tag]]
        assert logged == [float(np.float32(v)) for v in run.history[key]], tag
    entropies = np.array([[v for _, v in run.events[f"unit_{k}/entropy"]] for k in range(3)])
    assert np.all(entropies > 0)
    np.testing.assert_allclose(
        [v for _, v in run.events["hierarchy/entropy"]], entropies.sum(axis=0), rtol=1e-6
    )


def test_probe_accuracy_is_that_of_the_probe_on_the_codes(run):
    assert _steps(run.events, "hierarchy/probe_accuracy") == [0, 1, 2]
    values = [value for _, value in run.events["hierarchy/probe_accuracy"]]
    assert all(0.0 <= value <= 1.0 for value in values)
    # the last epoch of each fit against a probe fitted by hand after it
    assert values[1] == run.accuracies[0]
    assert values[2] == run.accuracies[1]


def test_images_of_each_logged_epoch(run):
    for tag, count, shape in [
        ("hierarchy/feature_map", 2, MAP_IMAGE),  # max_outputs of the 5 sample images
        ("hierarchy/receptive_fields", 1, MAP_IMAGE),
        ("hierarchy/codes", 2, CODES_IMAGE),
    ]:
        summaries = _image_summaries(run.log_dir, tag)
        assert [step for step, _ in summaries] == [0, 1, 2], tag
        for _, pictures in summaries:
            assert [picture.shape for picture in pictures] == [shape] * count, tag
        assert run.events[tag][-1][1] == shape
    # the two feature maps show two different images
    pictures = _image_summaries(run.log_dir, "hierarchy/feature_map")[0][1]
    assert not np.array_equal(pictures[0], pictures[1])


def test_update_freq_and_step_offset(run, tmp_path):
    callback = HierarchyTensorBoard(tmp_path, run.images[:3], update_freq=3, step_offset=10,
                                    max_outputs=1)
    run.model.fit(run.images, batch_size=8, epochs=4, verbose=0, callbacks=[callback])
    events = _by_step(read_events(str(tmp_path)))
    # epochs 0 (first), 2 ((2 + 1) % 3 == 0) and 3 (last, at train end), shifted by 10
    for tag in ("hierarchy/entropy", "unit_2/loss", "hierarchy/receptive_fields",
                "hierarchy/feature_map", "hierarchy/codes"):
        assert _steps(events, tag) == [10, 12, 13], tag
    assert "hierarchy/probe_accuracy" not in events
    assert [len(p) for _, p in _image_summaries(str(tmp_path), "hierarchy/codes")] == [1, 1, 1]


def test_log_topology_draws_the_moved_field(run, tmp_path):
    model = run.model
    callback = HierarchyTensorBoard(tmp_path, run.images[:4])
    with pytest.raises(ValueError, match="Received: model=None"):
        callback.log_topology(0)
    callback.set_model(model)
    with pytest.raises(ValueError, match="Received: step=-1"):
        callback.log_topology(-1)
    original = model.receptive_fields
    callback.log_topology(5)
    moved = list(original)
    moved[0] = ((1, 0), original[0][1])  # unit 0's first window one row down
    model.set_topology(moved)
    try:
        callback.log_topology(6)
    finally:
        model.set_topology(original)
    callback.writer.close()

    events = read_events(str(tmp_path))
    assert sorted(events) == ["hierarchy/receptive_fields"]
    summaries = _image_summaries(str(tmp_path), "hierarchy/receptive_fields")
    assert [step for step, _ in summaries] == [5, 6]
    before, after = summaries[0][1][0], summaries[1][1][0]
    assert before.shape == after.shape == MAP_IMAGE
    assert np.any(before != after)


def test_plot_feature_map_draws_windows_and_codes():
    fields = [((0, 0), (0, 2)), ((2, 0), (2, 2)), ((0, 4), (2, 4))]
    boxes = [(0, 4, 2, 2), (2, 4, 2, 2), (0, 6, 2, 2)]
    figure = plotting.plot_feature_map(np.zeros((4, 8)), fields, boxes, (4, 4), window_size=2)
    patches = {patch.get_gid(): patch for patch in figure.axes[0].patches}
    assert len(patches) == 1 + 3 * 2 + 3
    for k, field in enumerate(fields):
        inset = 0.06 * k
        for index, (row, col) in enumerate(field):
            window = patches[f"window {k} {index}"]
            assert window.get_xy() == pytest.approx((col - 0.5 + inset, row - 0.5 + inset))
            assert window.get_width() == pytest.approx(2 - 2 * inset)
            assert to_hex(window.get_edgecolor()) == plotting.unit_colour(k, 3)
        code = patches[f"code {k}"]
        row, col, rows, cols = boxes[k]
        assert (code.get_xy(), code.get_width(), code.get_height()) == (
            (col - 0.5, row - 0.5), cols, rows
        )
        assert to_hex(code.get_edgecolor()) == plotting.unit_colour(k, 3)
    assert patches["image"].get_width() == 4
    texts = sorted(text.get_text() for text in figure.axes[0].texts)
    assert texts == ["0", "0", "1", "1", "2", "2", "code 0", "code 1", "code 2"]
    assert len({plotting.unit_colour(k, 8) for k in range(8)}) == 8
    with pytest.raises(ValueError, match="Received: window_size=None"):
        plotting.plot_feature_map(np.zeros((4, 8)), fields)
    with pytest.raises(ValueError, match="Received: 2 code boxes"):
        plotting.plot_feature_map(np.zeros((4, 8)), fields, boxes[:2], window_size=2)
    with pytest.raises(ValueError, match=r"Received: feature_map.shape=\(4,\)"):
        plotting.plot_feature_map(np.zeros(4))
    with pytest.raises(ValueError, match=r"Received: codes.shape=\(4,\)"):
        plotting.plot_codes(np.zeros(4))
    plotting._pyplot().close("all")


def test_codes_read_off_the_map_are_the_model_output(run):
    images = run.images[:5]
    codes = _codes_from_maps(run.model, run.model.feature_map(images).numpy())
    assert codes.shape == (5, NUM_UNITS, 4)
    np.testing.assert_allclose(codes.reshape(5, -1), run.model(images).numpy(), rtol=1e-6)


def test_config(tmp_path):
    images = _images(2)
    probe_data = (_images(4), np.array([0, 1, 0, 1]), _images(2), np.array([1, 0]))
    callback = HierarchyTensorBoard(
        str(tmp_path), images, probe_data=probe_data, probe=LogisticRegressionProbe(max_iter=7),
        update_freq=3, step_offset=5, max_outputs=2,
    )
    assert_callback_config(callback)
    config = json.loads(json.dumps(callback.get_config()))
    assert config == {
        "log_dir": str(tmp_path), "images": None, "probe_data": None,
        "probe": LogisticRegressionProbe(max_iter=7).get_config(),
        "update_freq": 3, "step_offset": 5, "max_outputs": 2,
    }
    restored = HierarchyTensorBoard.from_config(config, images=images, probe_data=probe_data)
    assert restored.get_config() == config
    np.testing.assert_array_equal(restored.images, images)
    np.testing.assert_array_equal(restored.probe_data[1], probe_data[1])
    assert restored.probe.max_iter == 7
    restored = HierarchyTensorBoard.from_config({**config, "images": images})
    np.testing.assert_array_equal(restored.images, images)
    assert restored.probe_data is None
    # without images, the restored callback cannot be attached to a model
    with pytest.raises(ValueError, match="Received: images=None"):
        HierarchyTensorBoard.from_config(config).set_model(SelfOrganisingHierarchy(**TINY))
    assert HierarchyTensorBoard(str(tmp_path), images).probe.get_config() == (
        hierarchy_tensorboard_module.DEFAULT_PROBE_CONFIG
    )
    assert keras.saving.get_registered_name(HierarchyTensorBoard) == (
        "tfemergent>HierarchyTensorBoard"
    )


GOOD_PROBE_DATA = (np.ones((4, 4, 4)), np.array([0, 1, 0, 1]), np.ones((2, 4, 4)), np.array([0, 1]))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"log_dir": ""}, "Received: log_dir=''"),
        ({"update_freq": 0}, "Received: update_freq=0"),
        ({"step_offset": -1}, "Received: step_offset=-1"),
        ({"step_offset": 1.5}, "Received: step_offset=1.5"),
        ({"max_outputs": 0}, "Received: max_outputs=0"),
        ({"images": np.ones((4, 4))}, r"Received: images.shape=\(4, 4\), images.dtype=float64"),
        ({"images": np.ones((0, 4, 4))}, r"Received: images.shape=\(0, 4, 4\)"),
        ({"images": np.ones((2, 4, 4, 3))}, r"Received: images.shape=\(2, 4, 4, 3\)"),
        ({"images": np.full((2, 4, 4), np.nan)}, "Received: images with 32 non-finite"),
        ({"images": np.array([["a"]])}, r"Received: images.shape=\(1, 1\), images.dtype=<U1"),
        ({"probe_data": np.ones((4, 4, 4))}, r"Received: probe_data.shape=\(4, 4, 4\)"),
        ({"probe_data": GOOD_PROBE_DATA[:3]}, "Received: a tuple of 3 entries"),
        ({"probe_data": "data"}, "Received: probe_data='data'"),
        ({"probe_data": (np.ones(4),) + GOOD_PROBE_DATA[1:]},
         r"Received: probe_data\[0\] \(train_images\).shape=\(4,\)"),
        ({"probe_data": GOOD_PROBE_DATA[:1] + (np.array([0.0, 1, 0, 1]),) + GOOD_PROBE_DATA[2:]},
         r"Received: probe_data\[1\] \(train_labels\).shape=\(4,\), .*dtype=float64"),
        ({"probe_data": GOOD_PROBE_DATA[:3] + (np.array([0, 1, 1]),)},
         r"one per image \(2\). Received: probe_data\[3\] \(test_labels\)"),
        ({"probe_data": GOOD_PROBE_DATA[:1] + (np.zeros(4, int),) + GOOD_PROBE_DATA[2:]},
         r"Received: classes \[0\]"),
        ({"probe_data": GOOD_PROBE_DATA[:2] + (np.ones((2, 5, 4)),) + GOOD_PROBE_DATA[3:]},
         r"Received: train_images.shape=\(4, 4, 4\), test_images.shape=\(2, 5, 4\)"),
        ({"probe": "lbfgs"}, "Received: probe='lbfgs'"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, match):
    arguments = {"log_dir": str(tmp_path), "images": np.ones((2, 4, 4)), **kwargs}
    with pytest.raises(ValueError, match=match):
        HierarchyTensorBoard(**arguments)


def test_step_offset_is_checked_when_set(tmp_path):
    callback = HierarchyTensorBoard(str(tmp_path), np.ones((2, 4, 4)))
    with pytest.raises(ValueError, match="Received: step_offset=-3"):
        callback.step_offset = -3
    callback.step_offset = 4
    assert callback.get_config()["step_offset"] == 4


def test_checked_against_the_model(run, tmp_path):
    dense = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)], name="dense_model")
    with pytest.raises(ValueError, match="Received: model='dense_model' of type Sequential"):
        HierarchyTensorBoard(tmp_path, np.ones((2, 4, 4))).set_model(dense)
    with pytest.raises(ValueError, match=r"Received: images.shape=\(2, 5, 5\)"):
        run.model.fit(run.images, epochs=1, verbose=0,
                      callbacks=[HierarchyTensorBoard(tmp_path, np.ones((2, 5, 5)))])
    probe_data = (np.ones((4, 5, 5)), np.array([0, 1, 0, 1]), np.ones((2, 5, 5)), np.array([0, 1]))
    with pytest.raises(ValueError, match=r"Received: probe_data\[0\] \(train_images\).shape"):
        HierarchyTensorBoard(tmp_path, np.ones((2, 4, 4, 1)), probe_data).set_model(run.model)
    assert not glob.glob(f"{tmp_path}/**/events.out.tfevents.*", recursive=True)


@pytest.mark.parametrize("module", [hierarchy_tensorboard_module, plotting])
def test_docstring_examples(module):
    assert_docstring_examples(module)
