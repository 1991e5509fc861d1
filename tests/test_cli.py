"""The ``tfemergent`` command: help, version, flags, seeds, errors and TensorFlow's start-up lines."""

import argparse
import os
import subprocess
import sys

import pytest

from tfemergent import cli
from tfemergent.datasets import DatasetNotFoundError
from tfemergent.experiments import EXPERIMENTS
from tfemergent.utils import tensorflow_start_up

NAMES = sorted(EXPERIMENTS)


def _exit(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


@pytest.mark.parametrize(
    "argv", [["--help"], ["list", "--help"], ["run", "--help"]]
    + [["run", name, "--help"] for name in NAMES],
    ids=lambda argv: " ".join(argv),
)
def test_help_of_every_command(argv, capsys):
    code, out, err = _exit(argv, capsys)
    assert (code, err) == (0, "")
    assert out.startswith("usage: tfemergent") and "--debug" in out
    if argv[0] == "run" and len(argv) == 3:
        assert "--seeds" in out and "--logdir" in out


def test_run_help_lists_every_experiment_with_its_description(capsys):
    _, out, _ = _exit(["run", "--help"], capsys)
    assert all(name in out for name in NAMES)
    assert "prune 85% of the" in out  # the % that crashed argparse's help formatting


def test_version(capsys):
    from tfemergent.version import __version__

    code, out, _ = _exit(["--version"], capsys)
    assert (code, out) == (0, f"tfemergent {__version__}\n")


def _parsers():
    parser, subparsers = cli.build_parser()
    return [("tfemergent", parser)] + [(f"run {name}", sub) for name, sub in subparsers.items()]


def test_every_flag_of_every_parser_has_help():
    missing = [
        f"{where}: {action.option_strings[0]}"
        for where, parser in _parsers()
        for action in parser._actions
        if action.option_strings and (not action.help or action.help == argparse.SUPPRESS)
    ]
    assert missing == []
    assert len(_parsers()) == 1 + len(EXPERIMENTS)


@pytest.mark.parametrize("name", NAMES)
def test_one_seed_convention(name):
    _, subparsers = cli.build_parser()
    flags = cli.flag_names(subparsers[name])
    assert flags["seeds"] == "--seeds"
    args = subparsers[name].parse_args(["--seeds", "3"])
    assert EXPERIMENTS[name].config_from_args(args) is not None
    parser, _ = cli.build_parser()
    config = EXPERIMENTS[name].config_from_args(parser.parse_args(["run", name, "--seeds", "3"]))
    assert getattr(config, "seeds", None) == (3,) or config.seed == 3


@pytest.mark.parametrize("name, expected", [
    ("spatial-split", (0, 2, 5)), ("urn-spheres", (0, 2, 5)), ("hierarchy", (0, 2, 5)),
    ("reset", (0, 2, 5)),
])
def test_seeds_list(name, expected):
    parser, _ = cli.build_parser()
    config = EXPERIMENTS[name].config_from_args(parser.parse_args(["run", name, "--seeds", "0,2,5"]))
    assert config.seeds == expected


@pytest.mark.parametrize("name, flag, value, expected", [
    ("hierarchy", "--runs", "3", (0, 1, 2)),
    ("reset", "--runs", "2", (0, 1)),
    ("nhn", "--seed", "4", 4),
])
def test_deprecated_seed_spellings_still_work(name, flag, value, expected, capsys):
    parser, _ = cli.build_parser()
    config = EXPERIMENTS[name].config_from_args(parser.parse_args(["run", name, flag, value]))
    assert (config.seed if name == "nhn" else config.seeds) == expected
    if name != "nhn":
        assert config.runs == len(expected)
    assert f"note: {flag} is deprecated; use --seeds" in capsys.readouterr().err


def test_default_seeds_are_unchanged():
    parser, _ = cli.build_parser()
    seeds = {name: EXPERIMENTS[name].config_from_args(parser.parse_args(["run", name]))
             for name in NAMES}
    assert seeds["hierarchy"].seeds == (0, 1) and seeds["reset"].seeds == (0,)
    assert seeds["spatial-split"].seeds == (0,) and seeds["urn-spheres"].seeds == (0,)
    assert seeds["nhn"].seed == 0


def _one_line_error(code, err, prog, expected_code=2):
    assert code == expected_code
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err


@pytest.mark.parametrize("name", NAMES)
def test_a_validation_error_names_the_flag(name, capsys):
    code, out, err = _exit(["run", name, "--epochs", "0"], capsys)
    _one_line_error(code, err, f"tfemergent run {name}")
    assert "--epochs must be an integer >= 1. Received: --epochs=0" in err
    assert "`epochs`" not in err and out == ""


@pytest.mark.parametrize("name, argv, expected", [
    ("nhn", ["--prune-fraction", "1.5"], "--prune-fraction must be <= 0.999. "
                                         "Received: --prune-fraction=1.5"),
    ("nhn", ["--cycles", "0"], "--cycles must be an integer >= 1. Received: --cycles=0"),
    ("nhn", ["--seeds", "0,1"], "--seeds takes one seed"),
    ("hierarchy", ["--runs", "2", "--seeds", "1"], "Received: --seeds=1 and --runs=2"),
    ("hierarchy", ["--topologies", "flat,round"], "Received: --topologies=('flat', 'round')"),
    ("reset", ["--grid-sizes", "3"], "--grid-width must be a multiple of every grid size"),
    ("spatial-split", ["--modes", "diagonal"], "Received: --modes='diagonal'"),
    ("urn-spheres", ["--c-w", "-1"], "--c-w must be >= 0.0. Received: --c-w=-1.0"),
])
def test_config_errors_name_the_flag(name, argv, expected, capsys):
    code, _, err = _exit(["run", name, *argv], capsys)
    _one_line_error(code, err, f"tfemergent run {name}")
    assert expected in err


@pytest.mark.parametrize("flag, value", [
    ("--seeds", "a,b"), ("--seeds", "-1"), ("--seeds", ","), ("--epochs", "x"),
])
def test_a_malformed_value_names_the_flag(flag, value, capsys):
    code, _, err = _exit(["run", "urn-spheres", flag, value], capsys)
    _one_line_error(code, err, "tfemergent run urn-spheres")
    assert f"argument {flag}: " in err and repr(value) in err


@pytest.mark.parametrize("name", NAMES)
def test_each_experiment_takes_the_options_it_uses_and_only_those(name, tmp_path, capsys):
    module = EXPERIMENTS[name]
    parser, _ = cli.build_parser()
    for option in ("data_dir", "logdir", "export", "plots"):
        flag, value = "--" + option.replace("_", "-"), str(tmp_path / option)
        if option in module.OPTIONS:
            config = module.config_from_args(parser.parse_args(["run", name, flag, value]))
            assert getattr(config, option) == value
        else:  # refused, not silently ignored
            code, _, err = _exit(["run", name, flag, value], capsys)
            _one_line_error(code, err, f"tfemergent run {name}")
            assert f"unrecognized arguments: {flag}" in err


def test_an_unknown_flag_is_one_line(capsys):
    code, _, err = _exit(["run", "reset", "--grid-length", "2"], capsys)
    _one_line_error(code, err, "tfemergent run reset")
    assert "unrecognized arguments: --grid-length 2" in err


def test_a_missing_data_directory_is_one_line_and_exit_1(tmp_path, capsys):
    missing = str(tmp_path / "nowhere")
    argv = ["run", "hierarchy", "--dataset", "mnist", "--data-dir", missing]
    assert cli.main(argv) == 1
    out, err = capsys.readouterr()
    _one_line_error(1, err, "tfemergent run hierarchy", expected_code=1)
    assert "Could not find the local files of dataset 'mnist'" in err
    assert f"{missing}/mnist.npz" in err and out == ""
    with pytest.raises(DatasetNotFoundError):  # --debug: the exception and its traceback
        cli.main(argv + ["--debug"])


def test_offline_without_a_data_directory_is_one_line_and_exit_1(monkeypatch, tmp_path, capsys):
    from tfemergent.datasets import network

    monkeypatch.delenv("TFEMERGENT_DATA_DIR", raising=False)
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(network, "tfds_reachable", lambda *args, **kwargs: False)
    assert cli.main(["run", "reset", "--dataset", "cifar10"]) == 1
    out, err = capsys.readouterr()
    _one_line_error(1, err, "tfemergent run reset", expected_code=1)
    assert "tensorflow-datasets cannot download 'cifar10'" in err
    assert "Set TFEMERGENT_DATA_DIR" in err and out == ""


def test_debug_before_the_command_is_kept(tmp_path):
    with pytest.raises(DatasetNotFoundError):
        cli.main(["--debug", "run", "nhn", "--dataset", "cifar10", "--data-dir",
                  str(tmp_path / "nowhere")])


def test_a_failing_run_is_one_line_and_exit_1(monkeypatch, capsys):
    def fail(config):
        raise RuntimeError("the grid\nexploded")

    monkeypatch.setattr(EXPERIMENTS["urn-spheres"], "run", fail)
    assert cli.main(["run", "urn-spheres"]) == 1
    _, err = capsys.readouterr()
    assert err == ("tfemergent: error: RuntimeError: the grid exploded (run with --debug "
                   "for the traceback)\n")
    with pytest.raises(RuntimeError, match="exploded"):
        cli.main(["run", "urn-spheres", "--debug"])


def test_name_the_flags_replaces_only_whole_names():
    names = {"epochs": "--epochs", "retrain_epochs": "--retrain-epochs", "seed": "--seeds"}
    assert cli.name_the_flags(
        "Argument `retrain_epochs` must be >= 0. Received: retrain_epochs=-1, epochs=2, "
        "seeds=3, x.seed=1", names,
    ) == "--retrain-epochs must be >= 0. Received: --retrain-epochs=-1, --epochs=2, seeds=3, x.seed=1"


# ---------------------------------------------------------------- TensorFlow's start-up lines


def test_started_as_command():
    started = tensorflow_start_up.started_as_command
    assert started(["/venv/bin/tfemergent", "run", "nhn"], ["python", "/venv/bin/tfemergent"])
    assert not started(["/venv/bin/tfemergent", "run", "nhn", "--verbose"], [])
    assert started(["-m"], ["python", "-X", "utf8", "-m", "tfemergent.cli", "list"])
    assert not started(["-m"], ["python", "-m", "pytest", "tests"])
    assert not started(["-c"], ["python", "-c", "import tfemergent", "-m", "tfemergent"])
    assert not started(["train.py"], ["python", "train.py"])


def test_filtered_stderr_drops_only_the_start_up_notices(capfd):
    lines = [
        b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        b"I0000 port.cc:153] oneDNN custom operations are on. You may see slightly different\n",
        b"I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine.\n",
        b"E0000 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n",
        b"a real warning\n",
    ]
    with tensorflow_start_up.filtered_stderr():
        for line in lines:
            os.write(2, line)
    assert capfd.readouterr().err == "a real warning\n"
    with pytest.raises(ImportError):  # a failed import shows everything
        with tensorflow_start_up.filtered_stderr():
            os.write(2, lines[1])
            raise ImportError("no TensorFlow")
    assert capfd.readouterr().err == lines[1].decode()


def test_the_command_hides_tensorflows_start_up_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    result = subprocess.run(
        [sys.executable, "-m", "tfemergent.cli", "list"], env=env, capture_output=True,
        text=True, timeout=300, check=False, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "spatial-split" in result.stdout
    noisy = [line for line in result.stderr.splitlines()
             if "oneDNN" in line or "cuda" in line.lower() or "cuInit" in line]
    assert noisy == [], result.stderr
