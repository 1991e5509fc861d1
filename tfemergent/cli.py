"""The ``tfemergent`` command: ``tfemergent list``, ``tfemergent run <experiment>``.

``tfemergent --version`` prints the version; ``tfemergent run <experiment> --help`` lists
an experiment's flags. Every experiment takes its seeds as ``--seeds 0,1,2`` (one run per
seed). Exit status: 0 on success; 2 for a usage error (an unknown flag, a bad value: the
message names the flag); 1 when the data are missing or damaged, or the run fails. Errors
are one line on standard error, without a traceback unless ``--debug``. TensorFlow's
start-up log lines (oneDNN, CUDA) are hidden unless ``--verbose`` (see
`tfemergent.utils.tensorflow_start_up`; a plain ``import tfemergent`` changes nothing).
"""

import argparse
import json
import os
import re
import sys

from tfemergent.version import __version__

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
# The options an experiment may take (it lists those it uses in its ``OPTIONS``).
COMMON_OPTION_HELP = {
    "data_dir": "local data directory (default: $TFEMERGENT_DATA_DIR, else tensorflow-datasets)",
    "logdir": "write TensorBoard logs here",
    "export": "export SavedModels here",
    "plots": "write PNG plots here",
}


class CommandLineParser(argparse.ArgumentParser):
    """An `argparse.ArgumentParser` whose errors are one line: ``<prog>: error: <message>``."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _add_common_flags(parser, default):
    # On the sub-commands the default is SUPPRESS, so that a flag given before the
    # sub-command is not reset by the sub-command's default.
    parser.add_argument("--verbose", action="store_true", default=default,
                        help="show TensorFlow's start-up log lines (oneDNN, CUDA)")
    parser.add_argument("--debug", action="store_true", default=default,
                        help="on an error, show the Python traceback")


def _escape(text):
    return text.replace("%", "%%")  # argparse %-formats help texts


def build_parser():
    """``(parser, {experiment name: its sub-parser})`` of the ``tfemergent`` command."""
    from tfemergent.experiments import EXPERIMENTS

    parser = CommandLineParser(
        prog="tfemergent",
        description="Run the experiments of tfemergent's papers.",
        epilog="Exit status: 0 success, 1 missing data or failed run, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"tfemergent {__version__}",
                        help="print the version and exit")
    _add_common_flags(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    listing = commands.add_parser("list", help="list the experiments",
                                  description="List the experiments.")
    _add_common_flags(listing, default=argparse.SUPPRESS)
    run = commands.add_parser("run", help="run an experiment",
                              description="Run an experiment; `run EXPERIMENT --help` "
                                          "lists its flags.")
    _add_common_flags(run, default=argparse.SUPPRESS)
    experiments = run.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    subparsers = {}
    for name, module in EXPERIMENTS.items():
        sub = experiments.add_parser(name, help=_escape(module.DESCRIPTION),
                                     description=module.DESCRIPTION)
        for option in module.OPTIONS:  # only those the experiment uses
            sub.add_argument("--" + option.replace("_", "-"), default=None,
                             help=COMMON_OPTION_HELP[option])
        sub.add_argument("--results", default=None, help="write the results as JSON here")
        sub.add_argument("--quiet", action="store_true", help="no progress lines or table")
        _add_common_flags(sub, default=argparse.SUPPRESS)
        module.add_arguments(sub)
        subparsers[name] = sub
    return parser, subparsers


def flag_names(parser, renames=None):
    """``{config or argument name: flag}`` for every flag of ``parser``.

    ``renames`` maps the names of configuration fields that differ from their flag's
    (``{"num_cycles": "--cycles"}``) and wins over the parser's destinations.
    """
    names = {}
    for action in parser._actions:
        long_options = [option for option in action.option_strings if option.startswith("--")]
        if long_options and action.dest not in ("help", "version"):
            names[action.dest] = long_options[0]
    names.update(renames or {})
    return names


def name_the_flags(message, names):
    """``message`` with every configuration name of ``names`` replaced by its flag.

    >>> from tfemergent.cli import name_the_flags
    >>> name_the_flags("Argument `epochs` must be an integer >= 1. Received: epochs=0",
    ...                {"epochs": "--epochs"})
    '--epochs must be an integer >= 1. Received: --epochs=0'
    """
    for name in sorted(names, key=len, reverse=True):
        flag = names[name]
        message = re.sub(rf"(?:Argument )?`{re.escape(name)}`", flag, message)
        message = re.sub(rf"(?<![\w.`-]){re.escape(name)}=", f"{flag}=", message)
    return message


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def _fail(prog, error, status):
    print(f"{prog}: error: {_one_line(error)}", file=sys.stderr)
    return status


def _run(args, subparsers):
    from tfemergent.datasets import CorruptDatasetError, DatasetNotFoundError
    from tfemergent.experiments import EXPERIMENTS

    if args.command == "list":
        for name, module in EXPERIMENTS.items():
            print(f"{name:20s} {module.DESCRIPTION}")
        return EXIT_OK
    module = EXPERIMENTS[args.experiment]
    sub = subparsers[args.experiment]
    try:
        config = module.config_from_args(args)
    except ValueError as error:
        if args.debug:
            raise
        sub.error(name_the_flags(str(error), flag_names(sub, getattr(module, "FLAGS", None))))
    try:
        outcome = module.run(config)
    except (DatasetNotFoundError, CorruptDatasetError) as error:
        if args.debug:
            raise
        return _fail(sub.prog, error, EXIT_FAILURE)
    if args.results:
        os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
        with open(args.results, "w") as handle:
            json.dump({k: v for k, v in outcome.items() if k != "table"}, handle, indent=2)
    return EXIT_OK


def main(argv=None):
    """Entry point of the console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, subparsers = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # reported by the sub-command that was given them
        where = subparsers.get(getattr(args, "experiment", None), parser)
        where.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return _run(args, subparsers)
    except KeyboardInterrupt:
        if args.debug:
            raise
        return _fail(parser.prog, "interrupted", 130)
    except Exception as error:  # a failed run: one line, the traceback with --debug
        if args.debug:
            raise
        return _fail(parser.prog, f"{type(error).__name__}: {_one_line(error)} (run with "
                                  "--debug for the traceback)", EXIT_FAILURE)


if __name__ == "__main__":
    sys.exit(main())
