"""The ``tfemergent`` command: ``tfemergent list`` and ``tfemergent run <experiment>``."""

import argparse
import json
import os
import sys


def _parser():
    from tfemergent.experiments import EXPERIMENTS

    parser = argparse.ArgumentParser(
        prog="tfemergent",
        description="Run the experiments of tfemergent's papers.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the experiments")
    run = commands.add_parser("run", help="run an experiment")
    experiments = run.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    for name, module in EXPERIMENTS.items():
        sub = experiments.add_parser(name, help=module.DESCRIPTION, description=module.DESCRIPTION)
        sub.add_argument("--data-dir", default=None,
                         help="local data directory (default: $TFEMERGENT_DATA_DIR, else "
                              "tensorflow-datasets)")
        sub.add_argument("--logdir", default=None, help="write TensorBoard logs here")
        sub.add_argument("--export", default=None, help="export SavedModels here")
        sub.add_argument("--plots", default=None, help="write PNG plots here")
        sub.add_argument("--results", default=None, help="write the results as JSON here")
        sub.add_argument("--quiet", action="store_true", help="no progress bar or table")
        module.add_arguments(sub)
    return parser


def main(argv=None):
    """Entry point of the console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    from tfemergent.experiments import EXPERIMENTS

    if args.command == "list":
        for name, module in EXPERIMENTS.items():
            print(f"{name:20s} {module.DESCRIPTION}")
        return 0
    module = EXPERIMENTS[args.experiment]
    try:
        config = module.config_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    outcome = module.run(config)
    if args.results:
        os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
        with open(args.results, "w") as handle:
            json.dump({k: v for k, v in outcome.items() if k != "table"}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
