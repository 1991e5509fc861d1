import json

import numpy as np
import pytest
from tensorboard_events import read_events

from tfemergent.callbacks import SpatialTensorBoard
from tfemergent.models import build_spatial_network




def test_logs_costs_split_and_position_images(tmp_path):
    model = build_spatial_network(8, hidden_units=(6, 6, 6, 8), num_classes=2, seed=0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 8)).astype("float32")
    y = rng.integers(0, 2, size=(32, 2))
    callback = SpatialTensorBoard(tmp_path, update_freq=2)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    events = read_events(str(tmp_path))
    # epochs 0 (first), 1 ((1+1) % 2 == 0) and 2 (last, at train end)
    hidden_3 = model.get_layer("hidden_3")
    assert [s for s, _ in events["hidden_3/transport_cost"]] == [0, 1, 2]
    assert events["hidden_3/transport_cost"][-1][1] == pytest.approx(
        float(hidden_3.compute_transport_cost()), rel=1e-5
    )
    assert events["output/density_cost"][-1][1] == pytest.approx(
        float(model.get_layer("output").compute_density_cost()), rel=1e-5
    )
    assert "hidden_1/transport_cost" not in events  # no cost on the first layers
    fractions = [v for _, v in events["output/cross_task_fraction"]]
    assert all(0.0 <= f <= 1.0 for f in fractions)
    (step, shape), *_ = events["spatial/positions"]
    assert shape[0] > 50 and shape[1] > 4 * 50 and shape[2] == 3  # four panels side by side


def test_config_and_validation(tmp_path):
    callback = SpatialTensorBoard(str(tmp_path), update_freq=3, num_tasks=2, split_layers=["a"])
    assert json.loads(json.dumps(callback.get_config())) == {
        "log_dir": str(tmp_path), "update_freq": 3, "num_tasks": 2, "split_layers": ["a"],
    }
    assert callback._writer is None  # opened lazily
    with pytest.raises(ValueError, match="Received: update_freq=0"):
        SpatialTensorBoard(tmp_path, update_freq=0)
    with pytest.raises(ValueError, match="Received: log_dir"):
        SpatialTensorBoard("")
