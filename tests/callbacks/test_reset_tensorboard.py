import glob
import json
import types

import keras
import numpy as np
import pytest
from layer_contract import assert_callback_config
from matplotlib.colors import to_hex
from tensorboard_events import read_events

import tfemergent.callbacks.reset_tensorboard as reset_tensorboard_module
from tfemergent import analysis, plotting
from tfemergent.callbacks import ResetTensorBoard
from docstring_examples import assert_docstring_examples

# 40 images of 4 classes (10 each); an 8 x 8 grid of 2 x 2 sub-network blocks of 4 x 4.
NUM_IMAGES, NUM_CLASSES, WIDTH, BLOCK = 40, 4, 8, 4
LABELS = np.arange(NUM_IMAGES) % NUM_CLASSES
CLASS_NAMES = ["zero", "one", "two", "three"]
# Figure sizes at 80 dpi: the preference map is 4 in high and 4 + 1.6 in wide; the
# d′ montage of 4 classes is one row of 4 panels of 1.6 in, plus 1 in of colour bar
# (7.4 in wide) and 0.4 + 0.3 in for the titles (2.3 in high).
PREFERENCE_IMAGE = (320, 448, 3)
DPRIME_IMAGE = (184, 592, 3)


def _planted_maps():
    """Two preference maps: by blocks (block (r, c) prefers class 2 r + c), and scattered.

    Column 0 of both has no preference.
    """
    blocks = np.kron(np.arange(NUM_CLASSES).reshape(2, 2), np.ones((BLOCK, BLOCK), int))
    scattered = np.random.default_rng(1).permutation(blocks.ravel()).reshape(WIDTH, WIDTH)
    maps = np.stack([blocks, scattered])
    maps[:, :, 0] = -1
    return maps


def _planted_activations(pmap, seed):
    """Unit noise (N(0, 1)) plus 5 where the image's class is the unit's class: d′ about 5."""
    noise = np.random.default_rng(seed).normal(size=(NUM_IMAGES, WIDTH, WIDTH))
    signal = 5.0 * (LABELS[:, None, None] == pmap[None])
    return (noise + signal).astype("float32")


class PlantedReset(keras.Model):
    """A trainable stand-in whose grids are planted: ``grids[level][phase]``.

    ``phase`` is set by the test (e.g. to the epoch); ``calls`` records the
    ``(num_images, level, batch_size)`` of every `grid_activations` call.
    """

    def __init__(self, grids, grid_size=None, **kwargs):
        super().__init__(**kwargs)
        self.grids = grids
        self.grid_size = grid_size
        self.phase = 0
        self.calls = []
        self.head = keras.layers.Dense(1)

    @property
    def num_levels(self):
        return len(self.grids)

    @property
    def grid_layers(self):
        if self.grid_size is None:
            raise AttributeError("no grid layers")
        return [types.SimpleNamespace(grid_size=self.grid_size)] * self.num_levels

    def call(self, images):
        return self.head(keras.ops.reshape(images, (-1, 16)))

    def grid_activations(self, images, level=-1, batch_size=256):
        self.calls.append((len(images), level, batch_size))
        return self.grids[level][self.phase][: len(images)]


def _planted_model(grid_size=2):
    maps = _planted_maps()
    top = np.stack([_planted_activations(pmap, seed) for seed, pmap in enumerate(maps)])
    bottom = np.stack(
        [_planted_activations(pmap[::-1], 7 + seed) for seed, pmap in enumerate(maps)]
    )
    model = PlantedReset([bottom, top], grid_size=grid_size)
    model.compile("sgd", "mse")
    return model


def _images(seed=0):
    return np.random.default_rng(seed).random((NUM_IMAGES, 4, 4)).astype("float32")


def _fit(model, callback, epochs):
    """Fit with the planted phase following the epoch (phase = epoch % 2)."""
    phase = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: setattr(model, "phase", epoch % 2)
    )
    return model.fit(
        _images(), np.zeros(NUM_IMAGES), batch_size=20, epochs=epochs, verbose=0,
        callbacks=[phase, callback],
    )


def _direct(activations, similarity=True, seed=0):
    """The measures computed straight from `tfemergent.analysis`."""
    dprime = analysis.dprime_maps(activations, LABELS, num_classes=NUM_CLASSES)
    pmap = analysis.preference_map(dprime, 2.0)
    measures = {
        "preference_map": pmap,
        "clustering_index": analysis.clustering_index(pmap, 20, 4, seed),
        "clustering": analysis.clustering_index(pmap, 20, 4, seed, return_details=True)[
            "clustering"
        ],
        "preferring_units": float(np.mean(pmap >= 0)),
        "mean_best_dprime": float(np.mean(dprime.max(axis=0))),
    }
    if similarity:
        details = analysis.topography_index(
            pmap, analysis.number_similarity(NUM_CLASSES), 20, seed, return_details=True
        )
        measures["topography_index"] = details["index"]
        measures["topography"] = details["topography"]
    return measures


def _values(events, tag):
    return [value for _, value in sorted(events[tag])]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two epochs on the planted model: epoch 0 the block map, epoch 1 the scattered one."""
    log_dir = str(tmp_path_factory.mktemp("reset"))
    model = _planted_model()
    callback = ResetTensorBoard(
        log_dir, _images(), LABELS, similarity="number", class_names=CLASS_NAMES,
        keep_maps=True, batch_size=16,
    )
    assert callback._writer is None  # opened lazily
    history = _fit(model, callback, epochs=2)
    assert callback._writer is None  # closed at train end
    return types.SimpleNamespace(
        log_dir=log_dir, model=model, callback=callback, history=history.history,
        events=read_events(log_dir),
        direct=[_direct(model.grids[-1][phase]) for phase in (0, 1)],
    )


def test_the_planted_maps_are_found(run):
    maps = _planted_maps()
    assert len(run.callback.preference_maps) == 2
    for found, planted in zip(run.callback.preference_maps, maps):
        np.testing.assert_array_equal(found, planted)
    for record in run.callback.history:
        assert record["preferring_units"] == 56 / 64  # column 0 has no preference
        assert record["preferred_classes"] == 4
        assert 4.0 < record["mean_best_dprime"] < 7.0
    # the block map is clustered and topographic; the scattered one much less so
    block, scattered = run.callback.history
    assert block["clustering"] == 14.0  # one component per class: 12, 16, 12, 16 units
    assert block["clustering_index"] > 10.0
    assert scattered["clustering_index"] < block["clustering_index"] / 5
    assert block["topography_index"] > 0.2 > scattered["topography_index"]


def test_scalars_history_and_logs_are_the_analysis_values(run):
    assert [record["epoch"] for record in run.callback.history] == [0, 1]
    for key in ("clustering_index", "clustering", "topography_index", "topography",
                "preferring_units", "mean_best_dprime"):
        expected = [direct[key] for direct in run.direct]
        assert [record[key] for record in run.callback.history] == expected, key
        # event files hold float32
        assert _values(run.events, f"reset/{key}") == [float(np.float32(v)) for v in expected]
        assert [step for step, _ in sorted(run.events[f"reset/{key}"])] == [0, 1]
    assert _values(run.events, "reset/preferred_classes") == [4.0, 4.0]
    for key in ("clustering_index", "topography_index"):
        assert run.history[key] == [direct[key] for direct in run.direct], key
    # the grid of the last level, of all images, in batches of batch_size, once per epoch
    assert run.model.calls == [(NUM_IMAGES, -1, 16)] * 2


def test_images_of_each_logged_epoch(run):
    for tag, shape in [("reset/preference_map", PREFERENCE_IMAGE),
                       ("reset/dprime_maps", DPRIME_IMAGE)]:
        assert sorted(run.events[tag]) == [(0, shape), (1, shape)], tag


def test_pictures_get_the_maps_and_blocks(tmp_path, monkeypatch):
    drawn = []

    def spy(pmap, num_classes, class_names, block_width, title=None, **kwargs):
        drawn.append((pmap, num_classes, class_names, block_width, kwargs))
        return plotting.plot_matrix(np.zeros((2, 2)))

    monkeypatch.setattr(plotting, "plot_preference_map", spy)
    for grid_size, similarity, block_width, ordered in [
        (2, "number", BLOCK, True),
        (None, None, None, False),  # the model has no grid_layers: no blocks
        (3, np.eye(4), None, False),  # 3 does not divide the 8 x 8 grid
    ]:
        drawn.clear()
        callback = ResetTensorBoard(tmp_path, _images(), LABELS, similarity=similarity)
        _fit(_planted_model(grid_size), callback, epochs=1)
        [(pmap, num_classes, class_names, width, kwargs)] = drawn
        np.testing.assert_array_equal(pmap, _planted_maps()[0])
        assert (num_classes, class_names, width, kwargs) == (
            NUM_CLASSES, None, block_width, {"ordered": ordered}
        )


def test_update_freq_level_and_no_similarity(tmp_path):
    model = _planted_model()
    callback = ResetTensorBoard(tmp_path, _images(), LABELS, update_freq=2, level=0, seed=3)
    history = _fit(model, callback, epochs=5)
    events = read_events(str(tmp_path))
    # epochs 0 (first), 1 and 3 ((epoch + 1) % 2 == 0) and 4 (last)
    logged = [0, 1, 3, 4]
    for tag in ("reset/clustering_index", "reset/preference_map", "reset/dprime_maps"):
        assert sorted(step for step, _ in events[tag]) == logged, tag
    assert not any("topography" in tag for tag in events)
    direct = [_direct(model.grids[0][epoch % 2], similarity=False, seed=3) for epoch in logged]
    assert [record["epoch"] for record in callback.history] == logged
    assert [record["clustering_index"] for record in callback.history] == [
        d["clustering_index"] for d in direct
    ]
    assert all(record["topography_index"] is None for record in callback.history)
    assert history.history["clustering_index"] == [d["clustering_index"] for d in direct]
    assert "topography_index" not in history.history
    assert {level for _, level, _ in model.calls} == {0}
    assert callback.preference_maps == []  # keep_maps=False


def test_without_log_dir_it_measures_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = _planted_model()
    callback = ResetTensorBoard(None, _images(), LABELS, similarity="number", keep_maps=True)
    history = _fit(model, callback, epochs=2)
    assert list(tmp_path.iterdir()) == []  # no event file anywhere
    direct = [_direct(model.grids[-1][epoch], seed=0) for epoch in range(2)]
    assert history.history["topography_index"] == [d["topography_index"] for d in direct]
    for kept, d in zip(callback.preference_maps, direct):
        np.testing.assert_array_equal(kept, d["preference_map"])
    assert callback.get_config()["log_dir"] is None


def test_on_a_reset_network(tmp_path):
    from tfemergent.models import ResetNetwork

    images = _images()[..., None]
    model = ResetNetwork(NUM_CLASSES, grid_size=[4, 2], grid_width=[8, 8],
                         subnetwork={"conv_filters": [], "dense_units": [8]},
                         final_network={"conv_filters": [], "dense_units": [8]}, seed=0)
    model.compile("adam", "sparse_categorical_crossentropy")
    callback = ResetTensorBoard(tmp_path, images, LABELS, level=0, similarity="number")
    model.fit(images, LABELS, epochs=2, batch_size=20, verbose=0, callbacks=[callback])
    direct = _direct(model.grid_activations(images, level=0), seed=0)
    # NaN (no unit has a preference yet) on both sides counts as equal.
    np.testing.assert_equal(callback.history[-1]["clustering_index"], direct["clustering_index"])
    np.testing.assert_equal(callback.history[-1]["topography_index"], direct["topography_index"])
    events = read_events(str(tmp_path))
    assert sorted(step for step, _ in events["reset/preference_map"]) == [0, 1]


def test_an_early_stop_is_logged_at_train_end(tmp_path):
    """Without the epoch count (or when training stops early) the last epoch waits for train end."""
    model = _planted_model()
    callback = ResetTensorBoard(tmp_path, _images(), LABELS, update_freq=3)
    callback.set_model(model)
    callback.set_params({"epochs": 10})
    callback.on_train_begin()
    epoch_logs = []
    for epoch in range(2):
        model.phase = epoch
        epoch_logs.append({"loss": 1.0})
        callback.on_epoch_end(epoch, epoch_logs[-1])
    callback.on_train_end()
    assert [record["epoch"] for record in callback.history] == [0, 1]
    assert "clustering_index" in epoch_logs[0]
    assert epoch_logs[1] == {"loss": 1.0}
    events = read_events(str(tmp_path))
    assert sorted(step for step, _ in events["reset/clustering_index"]) == [0, 1]


def test_model_is_checked(tmp_path):
    dense = keras.Sequential([keras.Input((16,)), keras.layers.Dense(1)], name="dense_model")
    dense.compile("sgd", "mse")
    callback = ResetTensorBoard(tmp_path, _images(), LABELS)
    with pytest.raises(ValueError, match="Received: model='dense_model' of type Sequential"):
        callback.set_model(dense)
    with pytest.raises(ValueError, match="needs a method `grid_activations"):
        dense.fit(np.zeros((4, 16)), np.zeros(4), epochs=1, verbose=0, callbacks=[callback])
    with pytest.raises(ValueError, match=r"in \[-2, 2\). Received: level=2"):
        ResetTensorBoard(tmp_path, _images(), LABELS, level=2).set_model(_planted_model())
    with pytest.raises(ValueError, match="Received: model=None"):
        ResetTensorBoard(tmp_path, _images(), LABELS).log(0)

    # a grid that is not (N, h, w): checked at train begin on one image when the model
    # is built, else when the first epoch is logged
    for built, num_images in [(True, 1), (False, NUM_IMAGES)]:
        flat = _planted_model()
        flat.grids = [grids.reshape(2, NUM_IMAGES, -1) for grids in flat.grids]
        if built:
            flat(_images()[:1])
        with pytest.raises(
            ValueError, match=rf"Received: grid_activations\(...\).shape=\({num_images}, 64\)"
        ):
            _fit(flat, ResetTensorBoard(tmp_path, _images(), LABELS), epochs=1)
        assert flat.calls == [(num_images, -1, 256)]
    assert not glob.glob(f"{tmp_path}/**/events.out.tfevents.*", recursive=True)


def test_config(tmp_path):
    similarity = analysis.number_similarity(NUM_CLASSES) ** 2
    callback = ResetTensorBoard(
        str(tmp_path), _images(), LABELS, update_freq=3, level=0, threshold=1.5,
        num_shuffles=7, connectivity=8, similarity=similarity, seed=None,
        class_names=CLASS_NAMES, batch_size=8, keep_maps=True,
    )
    assert_callback_config(callback)
    config = json.loads(json.dumps(callback.get_config()))
    assert config == {
        "log_dir": str(tmp_path), "images": None, "labels": None, "update_freq": 3,
        "level": 0, "threshold": 1.5, "num_shuffles": 7, "connectivity": 8,
        "similarity": similarity.tolist(), "seed": None, "class_names": CLASS_NAMES,
        "num_classes": 4, "batch_size": 8, "keep_maps": True,
    }
    restored = ResetTensorBoard.from_config(config, images=_images(), labels=LABELS)
    assert restored.get_config() == config
    np.testing.assert_array_equal(restored.images, _images())
    np.testing.assert_array_equal(restored.labels, LABELS)
    np.testing.assert_array_equal(restored.similarity, similarity)
    restored = ResetTensorBoard.from_config({**config, "images": _images(), "labels": LABELS})
    np.testing.assert_array_equal(restored.labels, LABELS)
    # without data, the restored callback cannot be attached to a model
    with pytest.raises(ValueError, match="Received: images=None"):
        ResetTensorBoard.from_config(config).set_model(_planted_model())
    # the number of classes: from the labels, or given (a class may be absent)
    assert ResetTensorBoard(tmp_path, _images(), LABELS).num_classes == 4
    assert ResetTensorBoard(tmp_path, _images(), LABELS, num_classes=6).num_classes == 6
    assert ResetTensorBoard(tmp_path, _images(), LABELS, similarity=np.eye(5)).num_classes == 5
    assert keras.saving.get_registered_name(ResetTensorBoard) == "tfemergent>ResetTensorBoard"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"log_dir": ""}, "Received: log_dir=''"),
        ({"update_freq": 0}, "Received: update_freq=0"),
        ({"level": 1.0}, "Received: level=1.0"),
        ({"threshold": np.nan}, "Received: threshold=nan"),
        ({"num_shuffles": 0}, "Received: num_shuffles=0"),
        ({"connectivity": 6}, "Received: connectivity=6"),
        ({"seed": -1}, "Received: seed=-1"),
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"keep_maps": 1}, "Received: keep_maps=1"),
        ({"similarity": "numbers"}, "Received: similarity='numbers'"),
        ({"similarity": np.ones((4, 3))}, r"Received: similarity.shape=\(4, 3\)"),
        ({"similarity": np.full((4, 4), np.inf)}, r"Received: similarity.shape=\(4, 4\)"),
        ({"similarity": np.eye(3)},
         r"< num_classes=3 \(similarity.shape\[0\]\). Received: labels with maximum 3"),
        ({"class_names": "abcd"}, "Received: class_names='abcd'"),
        ({"class_names": [0, 1, 2, 3]}, r"Received: class_names=\[0, 1, 2, 3\]"),
        ({"class_names": ["a", "b"]}, r"< num_classes=2 \(len\(class_names\)\). Received"),
        ({"class_names": ["a"], "labels": None, "images": None},
         r"Received: len\(class_names\)=1"),
        ({"class_names": list("abcd"), "num_classes": 5},
         r"is 5 \(num_classes\), so `class_names` must be for 5 classes. "
         r"Received: len\(class_names\)=4"),
        ({"class_names": list("abcd"), "similarity": np.eye(3)},
         r"is 4 \(len\(class_names\)\), so `similarity` must be for 4 classes. "
         r"Received: similarity.shape\[0\]=3"),
        ({"num_classes": 3}, r"< num_classes=3 \(num_classes\). Received: labels with maximum 3"),
        ({"num_classes": 1}, "Received: num_classes=1"),
        ({"images": None}, "Received: images=None, labels=an array"),
        ({"labels": None}, "Received: images=an array, labels=None"),
        ({"images": np.ones((NUM_IMAGES, 16))}, r"Received: images.shape=\(40, 16\)"),
        ({"images": np.ones((0, 4, 4))}, r"Received: images.shape=\(0, 4, 4\)"),
        ({"images": np.full((NUM_IMAGES, 4, 4), np.nan)}, "Received: images with 640 non-finite"),
        ({"labels": LABELS[:-1]}, r"one per image \(40\). Received: labels.shape=\(39,\)"),
        ({"labels": LABELS * 1.0}, r"Received: labels.shape=\(40,\), labels.dtype=float64"),
        ({"labels": LABELS - 1}, "Received: labels with minimum -1"),
        ({"labels": np.zeros(NUM_IMAGES, int)}, r"Received: classes \[0\]"),
    ],
)
def test_invalid_arguments(tmp_path, kwargs, match):
    arguments = {"log_dir": str(tmp_path), "images": _images(), "labels": LABELS, **kwargs}
    with pytest.raises(ValueError, match=match):
        ResetTensorBoard(**arguments)


def test_plot_preference_map():
    pmap = np.array([[0, 0, 1, 1], [0, -1, 1, 1], [2, 2, -1, -1], [2, 2, -1, 0]])
    figure = plotting.plot_preference_map(pmap, 4, ["a", "b", "c", "d"], block_width=2, title="t")
    image = figure.axes[0].images[0]
    colours = [to_hex(image.to_rgba(value)) for value in (-1, 0, 1, 2, 3)]
    assert colours == [plotting.NO_PREFERENCE_COLOUR] + plotting.class_colours(4)
    assert len(set(colours)) == 5
    np.testing.assert_array_equal(image.get_array(), pmap)
    ticks = [label.get_text() for label in figure.axes[1].get_yticklabels()]
    assert ticks == ["none", "a", "b", "c", "d"]
    lines = [line for line in figure.axes[0].lines if line.get_gid() == "block boundary"]
    assert sorted(tuple(line.get_xydata()[0]) for line in lines) == [(0.0, 1.5), (1.5, 0.0)]
    # ordered classes: a rainbow; more than 20 classes: only some named
    figure = plotting.plot_preference_map(np.arange(40).reshape(5, 8), ordered=True)
    image = figure.axes[0].images[0]
    assert [to_hex(image.to_rgba(c)) for c in (0, 39)] == ["#8000ff", "#ff0000"]
    ticks = [label.get_text() for label in figure.axes[1].get_yticklabels()]
    assert ticks == ["none"] + [str(c) for c in range(1, 40, 2)]
    assert len(set(plotting.class_colours(15))) == 15
    with pytest.raises(ValueError, match=r"Received: preference_map.shape=\(4,\)"):
        plotting.plot_preference_map(np.zeros(4, int))
    with pytest.raises(ValueError, match="Received: preference_map with maximum 2"):
        plotting.plot_preference_map(pmap, 2)
    with pytest.raises(ValueError, match="Received: 2 class names"):
        plotting.plot_preference_map(pmap, class_names=["a", "b"])
    with pytest.raises(ValueError, match="Received: block_width=0"):
        plotting.plot_preference_map(pmap, block_width=0)
    plotting._pyplot().close("all")


def test_plot_dprime_maps():
    dprime = np.random.default_rng(0).normal(size=(7, 3, 3))
    dprime[4, 1, 1] = -9.0
    figure = plotting.plot_dprime_maps(dprime, title="t")
    panels = figure.axes[:7]
    assert [axis.get_title() for axis in panels] == [str(c) for c in range(7)]
    for index, axis in enumerate(panels):
        image = axis.images[0]
        assert image.get_clim() == (-9.0, 9.0)  # symmetric, shared
        assert image.get_cmap().name == "RdBu_r"
        np.testing.assert_array_equal(image.get_array(), dprime[index])
    # 7 classes: rows of 5 columns, the 3 unused panels hidden
    assert [axis.axison for axis in figure.axes[7:10]] == [False] * 3
    assert tuple(figure.get_size_inches()) == pytest.approx((5 * 1.6 + 1.0, 2 * 1.6 + 0.7))
    assert plotting.plot_dprime_maps(np.zeros((2, 2, 2)), limit=3).axes[0].images[0].get_clim() == (
        -3.0, 3.0
    )
    assert plotting.plot_dprime_maps(np.zeros((2, 2, 2))).axes[0].images[0].get_clim() == (
        -1.0, 1.0
    )
    with pytest.raises(ValueError, match=r"Received: dprime.shape=\(2, 2\)"):
        plotting.plot_dprime_maps(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="Received: limit=0"):
        plotting.plot_dprime_maps(dprime, limit=0)
    plotting._pyplot().close("all")


def test_docstring_examples():
    assert_docstring_examples(reset_tensorboard_module)
