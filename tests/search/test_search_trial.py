"""Trial: JSON round trip."""

import json

import pytest

from tfemergent.search import Trial


def test_json_round_trip():
    trial = Trial(
        trial_id=4,
        params={"fields": [[0, 1], [2, 3]]},
        parent=2,
        seed=123,
        info={"meta_step": 2, "part": 1},
        directory="/runs/a/trials/4",
        parent_directory="/runs/a/trials/2",
    )
    data = trial.to_json()
    assert json.loads(json.dumps(data)) == data
    assert Trial.from_json(data) == trial
    assert Trial.from_json(json.dumps(data)) == trial
    assert Trial.from_json({"trial_id": 0, "params": [1]}) == Trial(0, [1])


def test_from_json_refuses_other_dicts():
    with pytest.raises(ValueError, match="'trial_id' and 'params'"):
        Trial.from_json({"trial_id": 0})
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]"):
        Trial.from_json({"trial_id": 0, "params": [], "colour": "red"})
