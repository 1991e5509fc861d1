"""`tfemergent.models._runner_tools`: what the experiment runners share."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from tfemergent.models import _runner_tools as tools


def _epochs(dataset, num_epochs):
    return [[batch.numpy().tolist() for batch in dataset] for _ in range(num_epochs)]


def test_shuffled_batches_cover_every_sample_once_per_epoch_and_repeat_per_seed():
    x = np.arange(10, dtype="float32") * 10.0
    y = np.arange(10)
    first = _epochs(tools.shuffled_batches(x, 4, seed=3), 2)
    assert [len(batch) for batch in first[0]] == [4, 4, 2]
    for epoch in first:
        assert sorted(sum(epoch, [])) == (np.arange(10) * 10.0).tolist()
    assert first[0] != first[1]  # reshuffled each epoch
    assert _epochs(tools.shuffled_batches(x, 4, seed=3), 2) == first  # same seed, same batches
    assert _epochs(tools.shuffled_batches(x, 4, seed=4), 2) != first
    for features, labels in tools.shuffled_batches((x, y), 3, seed=0):
        np.testing.assert_array_equal(features.numpy(), 10.0 * labels.numpy())


def test_mean_std_and_format():
    assert tools.mean_std([1.0, 3.0]) == (2.0, 1.0)
    assert tools.mean_std([1.0, 3.0], ddof=1) == pytest.approx((2.0, np.sqrt(2.0)))
    assert tools.mean_std([5.0], ddof=1) == (5.0, 0.0)
    assert tools.format_mean_std((0.5, 0.25), digits=2, scale=100) == "50.00 ± 25.00"


def test_markdown_table():
    table = tools.markdown_table(["", "a", "b"], [["ours", 1, "x"], ["paper", 2.5, ""]])
    assert table == "| | a | b |\n|---|---|---|\n| ours | 1 | x |\n| paper | 2.5 | |"
    with pytest.raises(ValueError, match="Received: a row of 1 cells"):
        tools.markdown_table(["a", "b"], [["only"]])


def test_check_config_and_finish(capsys):
    class DemoConfig:
        pass

    tools.check_config(DemoConfig(), DemoConfig)
    with pytest.raises(ValueError, match="must be a DemoConfig. Received: config of type dict"):
        tools.check_config({}, DemoConfig)
    assert tools.finish([1], "T", verbose=0) == {"results": [1], "table": "T"}
    assert capsys.readouterr().out == ""
    outcome = tools.finish([1], "T", verbose=1, summary={"s": 2}, footer="F")
    assert outcome == {"results": [1], "summary": {"s": 2}, "table": "T"}
    assert capsys.readouterr().out == "T\nF\n"


def test_quiet_tensorflow_logger_restores_the_level():
    logger = tf.get_logger()
    before = logger.level
    with tools.quiet_tensorflow_logger():
        assert logger.level == logging.ERROR
    assert logger.level == before
