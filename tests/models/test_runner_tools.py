"""`tfemergent.models._runner_tools`: what the experiment runners share."""

import argparse
import logging
import re

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


def test_shuffled_subset_and_output_path(tmp_path):
    x, y = np.arange(10) * 10, np.arange(10)
    sub_x, sub_y = tools.shuffled_subset(np.random.default_rng(0), 4, x, y)
    order = np.random.default_rng(0).permutation(10)[:4]
    np.testing.assert_array_equal(sub_x, order * 10)
    np.testing.assert_array_equal(sub_y, order)
    (everything,) = tools.shuffled_subset(np.random.default_rng(0), None, y)
    assert sorted(everything.tolist()) == list(range(10))
    path = tools.output_path(str(tmp_path / "a" / "b"), "c.png")
    assert path == str(tmp_path / "a" / "b" / "c.png") and (tmp_path / "a" / "b").is_dir()


def test_comma_separated():
    seeds = tools.comma_separated(int, minimum=0)
    assert seeds("0, 2,5,") == (0, 2, 5)
    for bad in ("a,b", "-1", ",", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError,
                           match=rf"comma-separated integers >= 0. Received: '{bad}'"):
            seeds(bad)
    names = tools.comma_separated(choices=("x", "y"))
    assert names("y,x") == ("y", "x")
    with pytest.raises(argparse.ArgumentTypeError, match="names from x, y. Received: 'z'"):
        names("z")


def _seed_parser(**kwargs):
    parser = argparse.ArgumentParser()
    tools.add_seeds_argument(parser, **kwargs)
    return parser


def test_seeds_from_args_and_deprecated_spellings(capsys):
    parser = _seed_parser(default=(0, 1), deprecated=("runs", "seed"))
    assert tools.seeds_from_args(parser.parse_args([])) == (0, 1)
    assert tools.seeds_from_args(parser.parse_args(["--seeds", "4,2"])) == (4, 2)
    assert capsys.readouterr().err == ""
    assert tools.seeds_from_args(parser.parse_args(["--runs", "3"])) == (0, 1, 2)
    assert tools.seeds_from_args(parser.parse_args(["--seed", "7"])) == (7,)
    assert capsys.readouterr().err == (
        "note: --runs is deprecated; use --seeds 0,1,2\nnote: --seed is deprecated; use --seeds 7\n"
    )
    with pytest.raises(ValueError, match="Received: --seeds=1 and --runs=2"):
        tools.seeds_from_args(parser.parse_args(["--seeds", "1", "--runs", "2"]))
    with pytest.raises(ValueError, match="Received: runs=0"):
        tools.seeds_from_args(parser.parse_args(["--runs", "0"]))
    with pytest.raises(ValueError, match="Received: seed=-2"):
        tools.seeds_from_args(parser.parse_args(["--seed", "-2"]))
    assert "--runs" not in _seed_parser().format_help()


def test_validate_seeds_and_or_default():
    assert tools.validate_seeds(None, 3) == (0, 1, 2)
    assert tools.validate_seeds([5, np.int64(6)], 1) == (5, 6)
    for bad, received in ((3, "seeds=3"), ((), "seeds=()"), ((-1,), "seeds=-1"),
                          (("a",), "seeds='a'")):
        with pytest.raises(ValueError, match=rf"`seeds`.*Received: {re.escape(received)}"):
            tools.validate_seeds(bad, 1)
    assert (tools.or_default(None, 8), tools.or_default(0, 8)) == (8, 0)
