"""Self-organising hierarchy (Borgohain et al.): the paper's Tables 1 and 2.

Parts:

- ``table1``: MNIST (centre crop 20 x 20, pixels in [0, 1]), three units of 100
  with 10 x 10 windows: the flat, columnar, pyramidal and three random
  topologies, each trained ``runs`` times; probe accuracy per topology and the
  Pearson r between the maximum entropy and the accuracy.
- ``table2``: hill climbing (Algorithm 2) from ``runs`` random topologies:
  median initial vs final probe accuracy, the maximum, the one-sided Wilcoxon
  signed-rank p, and the plot of accuracy per meta-step.
- ``cifar``: gray CIFAR-10 (resized to 20 x 20) with the pyramidal topology.

Usage::

    TFEMERGENT_DATA_DIR=../shared/data python examples/self_organising_hierarchy/train.py \\
        --part table1 --runs 5

Results go to ``--output`` (default ``output/`` beside this file) as JSON (and
PNG for Table 2).
"""

import argparse
import dataclasses
import json
import os

from tfemergent.models.hierarchy import experiment as hierarchy

HERE = os.path.dirname(os.path.abspath(__file__))

PAPER_SETTING = {"num_hidden": 100, "window_size": 10}
CONFIGS = {
    "table1": {"dataset": "mnist", "part": "table1", "runs": 5, "epochs": 10,
               "probe_train": 20000},
    "table2": {"dataset": "mnist", "part": "table2", "runs": 5, "epochs": 10,
               "meta_steps": 6, "epochs_per_step": 1, "probe_train": 10000},
    "cifar": {"dataset": "cifar10", "part": "table1", "topologies": ("pyramidal",), "runs": 5,
              "epochs": 10, "probe_train": 20000},
}


def main(part, output, runs=None, **overrides):
    """Run one part with the paper's setting; writes ``<output>/<part>.json``.

    Args:
        part: ``"table1"``, ``"table2"`` or ``"cifar"``.
        output: result directory.
        runs: runs (None: 5, as in the README).
        **overrides: any other `HierarchyConfig` field (e.g. ``num_train`` for
            a quick check).

    Returns:
        The experiment's outcome (``results``, ``summary``, ``table``).
    """
    if part not in CONFIGS:
        raise ValueError(f"`part` must be one of {sorted(CONFIGS)}. Received: part={part!r}")
    settings = {**PAPER_SETTING, **CONFIGS[part], **overrides}
    if runs is not None:
        settings["runs"] = runs
    if settings["part"] == "table2":
        settings.setdefault("directory", os.path.join(output, f"{part}-search"))
        settings.setdefault("plots", output)
    config = hierarchy.HierarchyConfig(**settings)
    outcome = hierarchy.run(config)
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, f"{part}.json"), "w") as handle:
        json.dump(
            {"config": dataclasses.asdict(config), "results": outcome["results"],
             "summary": outcome["summary"]},
            handle,
            indent=2,
        )
    return outcome


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(CONFIGS), default="table1")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--dropout", type=float, default=None,
                        help="dropout on the codes (default 0; the README also reports 0.2)")
    parser.add_argument("--output", default=os.path.join(HERE, "output"))
    args = parser.parse_args()
    extra = {} if args.num_train is None else {"num_train": args.num_train}
    if args.dropout is not None:
        extra["dropout"] = args.dropout
    main(args.part, args.output, runs=args.runs, **extra)
