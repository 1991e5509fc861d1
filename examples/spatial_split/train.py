"""Reproduce Table 1 of Wołczyk et al., "Biologically-Inspired Spatial Neural Networks".

Runs the three input modes (concatenated, mixed, sequential) for the regular
and the spatial network over three seeds on MNIST + Fashion-MNIST, splits every
trained network greedily into two task sub-networks and writes the table of
full-network accuracy, split accuracy and drop (mean ± std) to
``output/results.md`` and ``output/results.json`` beside this file.

Usage (offline data: ``TFEMERGENT_DATA_DIR`` with ``mnist.npz`` and Debian's
``dataset-fashion-mnist``)::

    python examples/spatial_split/train.py                 # the full table
    python examples/spatial_split/train.py --epochs 2 --seeds 0   # a smoke run
"""

import argparse
import dataclasses
import json
import os
import time

from tfemergent.models.spatial import experiment as spatial_split

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = spatial_split.SpatialSplitConfig(
    dataset="mnist+fashion",
    seeds=(0, 1, 2),
    epochs=15,
    batch_size=256,
    learning_rate=0.005,
    alpha=1.0,
    beta=3.0,
    transport_normalization="connections",
    plots=os.path.join(HERE, "output", "plots"),
)


def main(config=CONFIG, output_dir=os.path.join(HERE, "output")):
    """Run the experiment for ``config`` and write the results to ``output_dir``."""
    os.makedirs(output_dir, exist_ok=True)
    start = time.time()
    outcome = spatial_split.run(config)
    minutes = (time.time() - start) / 60
    with open(os.path.join(output_dir, "results.json"), "w") as handle:
        json.dump(
            {"config": dataclasses.asdict(config), "minutes": minutes, **outcome},
            handle,
            indent=2,
            default=str,
        )
    with open(os.path.join(output_dir, "results.md"), "w") as handle:
        handle.write(outcome["table"] + f"\n\nRun time: {minutes:.1f} min\n")
    return outcome


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=CONFIG.epochs)
    parser.add_argument("--seeds", default=",".join(map(str, CONFIG.seeds)))
    parser.add_argument("--modes", default=",".join(CONFIG.modes))
    parser.add_argument("--transport-normalization", default=CONFIG.transport_normalization,
                        choices=["neurons", "connections"])
    parser.add_argument("--output", default=os.path.join(HERE, "output"),
                        help="directory of results.md, results.json and plots/")
    args = parser.parse_args()
    main(
        dataclasses.replace(
            CONFIG,
            epochs=args.epochs,
            seeds=tuple(int(s) for s in args.seeds.split(",")),
            modes=tuple(args.modes.split(",")),
            transport_normalization=args.transport_normalization,
            plots=os.path.join(args.output, "plots"),
        ),
        output_dir=args.output,
    )
