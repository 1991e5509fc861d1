"""Reset networks (Hannagan): clustering and topography of the grid, per n.

Parts (each trains Reset(n, 32) for n = 1, 2, 4, 8 unless ``--grid-sizes``):

- ``mnist``, ``fashion_mnist``, ``cifar10``: classification (softmax,
  cross-entropy); the clustering index of the grid over training, per n.
- ``numbers``: the number task (images of digits onto 100-d number codes,
  sigmoid + binary cross-entropy, dropout 0.5 on the grid, Adam 1e-3 as in the
  paper); clustering and topography indices over training, per n.
- ``reconstruction``: CIFAR-10 with and without a reconstruction head on the
  grid (n = 1, 2, 4); how evenly the grid units are used.

The sub-networks are ResetGrid's default (conv 3x3 8, max-pool, conv 3x3 16,
max-pool, dense 32, linear outputs) and the final network ResetNetwork's
default (conv 16, conv 32, dense 64): small enough for 2 CPU cores, where the
paper used ResNet-20s.

Usage::

    TFEMERGENT_DATA_DIR=../shared/data python examples/reset_topography/train.py \\
        --part numbers

Results go to ``--output`` (default ``output/`` beside this file) as
``<part>.json``, ``indices_<dataset>.png`` and ``preferences_<dataset>.png``.
"""

import argparse
import dataclasses
import json
import os

from tfemergent.models.reset import experiment as reset

HERE = os.path.dirname(os.path.abspath(__file__))

PAPER_SETTING = {"grid_width": 32, "grid_sizes": (1, 2, 4, 8), "grid_dropout": 0.5,
                 "learning_rate": 1e-3, "batch_size": 64, "num_eval": 2000}
CONFIGS = {
    "mnist": {"dataset": "mnist", "num_train": 10000, "epochs": 8},
    "fashion_mnist": {"dataset": "fashion_mnist", "num_train": 10000, "epochs": 8},
    "cifar10": {"dataset": "cifar10", "num_train": 10000, "epochs": 8},
    "numbers": {"dataset": "number_topography", "epochs": 20},
    "reconstruction": {"dataset": "cifar10", "num_train": 10000, "epochs": 8,
                       "grid_sizes": (1, 2, 4), "reconstruction": True},
}


def main(part, output, **overrides):
    """Run one part; writes ``<output>/<part>.json`` and the plots.

    Args:
        part: one of `CONFIGS`.
        output: result directory.
        **overrides: any other `ResetConfig` field (e.g. ``num_train``,
            ``epochs``, ``grid_sizes`` for a quick check).

    Returns:
        The experiment's outcome (``results``, ``summary``, ``table``).
    """
    if part not in CONFIGS:
        raise ValueError(f"`part` must be one of {sorted(CONFIGS)}. Received: part={part!r}")
    settings = {**PAPER_SETTING, **CONFIGS[part], **overrides}
    plots = os.path.join(output, part)
    config = reset.ResetConfig(plots=plots, **settings)
    outcome = reset.run(config)
    os.makedirs(output, exist_ok=True)
    with open(os.path.join(output, f"{part}.json"), "w") as handle:
        json.dump(
            {"config": dataclasses.asdict(config), "results": outcome["results"],
             "summary": outcome["summary"], "table": outcome["table"]},
            handle,
        )
    return outcome


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(CONFIGS), default="numbers")
    parser.add_argument("--grid-sizes", default=None, help="comma-separated n")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--threshold", type=float, default=None,
                        help="d' threshold of a preference (default 2, the paper's)")
    parser.add_argument("--output", default=os.path.join(HERE, "output"))
    args = parser.parse_args()
    extra = {}
    if args.grid_sizes:
        extra["grid_sizes"] = tuple(int(n) for n in args.grid_sizes.split(","))
    for key in ("epochs", "num_train", "runs", "threshold"):
        if getattr(args, key) is not None:
            extra[key] = getattr(args, key)
    main(args.part, args.output, **extra)
