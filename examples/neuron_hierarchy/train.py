"""Neuron Hierarchical Networks on CIFAR-10: Algorithm 2 stage by stage.

The pipeline of `tfemergent.models.NeuronHierarchyBuilder` on CIFAR-10 with a
small base CNN of three segments (SegmentCNN's default: 4 layers per segment,
16 / 32 / 64 filters, kernels 3, 5, 3, 5; the paper's base is the 21M-parameter
ENAS macro network): train with smooth initialisation, prune 85% of the 3 x 3 /
5 x 5 kernels by standard deviation and restore each convolution's output scale
(this network has no batch normalisation), shrink and retrain, location-direction
search for add-on neurons (20 candidates per cycle, each trained on 25 batches
of 100 of its own slice and scored on 500 held-out images, as in the paper;
fewer cycles), retrain with the add-ons, and the ablation without them.

Usage (offline data: ``TFEMERGENT_DATA_DIR`` with ``cifar10.npz``)::

    python examples/neuron_hierarchy/train.py                    # the full run
    python examples/neuron_hierarchy/train.py --num-train 512 --epochs 1 --cycles 1 \\
        --population 4                                           # a smoke run

Writes ``results.json``, ``table.txt``, ``final.keras`` (the shrunk network with
add-ons) and the plots to ``--output`` (default ``output/`` beside this file).
The search checkpoints to ``<output>/search``: a killed run started again with
the same settings resumes the search there (the stages before it are
retrained; with the same seed on the same machine they give the same network,
which the search checks).
"""

import argparse
import dataclasses
import json
import os
import time

from tfemergent.models.nhn import PruningConfig, SearchConfig, TrainingConfig
from tfemergent.models.nhn import experiment as nhn

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIG = nhn.NhnConfig(
    dataset="cifar10",
    segments=None,  # SegmentCNN's default: 3 segments of 4 layers
    training=TrainingConfig(
        epochs=30,
        batch_size=100,
        # The paper's 0.05 trains the ENAS network, which has batch normalisation; the
        # segment CNN has none and does not learn at 0.05 (README, "Training").
        learning_rate=0.01,
        min_learning_rate=0.001,
    ),
    pruning=PruningConfig(
        fraction=0.85,
        # The paper's one threshold for the whole network, as in the README's runs (the
        # builder's default is the same fraction per layer).
        scope="model",
        # No batch normalisation: after 85% pruning the activations shrink layer after
        # layer and retraining stays at chance unless every convolution gets its output
        # scale back (README, runs A, A2 and A3).
        rescale=True,
    ),
    search=SearchConfig(
        num_cycles=20,
        population_size=20,
        num_parents=4,
        num_children=5,
        num_fresh=5,
        train_batches=25,
        batch_size=100,
        eval_size=500,
        learning_rate=0.01,  # the paper's 0.05 is unstable without batch normalisation
        direction_density=0.1,
        direction_epochs=1,
        validation_fraction=0.1,
    ),
    seed=0,
)
# Command-line options: (flag destination, config group or None, field).
OPTIONS = (
    ("num_train", None, "num_train"), ("num_test", None, "num_test"), ("seed", None, "seed"),
    ("epochs", "training", "epochs"), ("learning_rate", "training", "learning_rate"),
    ("prune_fraction", "pruning", "fraction"), ("prune_granularity", "pruning", "granularity"),
    ("prune_scope", "pruning", "scope"), ("prune_channel_multiple", "pruning", "channel_multiple"),
    ("prune_rescale", "pruning", "rescale"), ("cycles", "search", "num_cycles"),
    ("search_batches", "search", "train_batches"), ("shared_weights", "search", "shared_weights"),
)


def overrides_from_args(args):
    """The `NhnConfig.replace` overrides of the parsed command-line options."""
    overrides = {}
    for name, group, field in OPTIONS:
        value = getattr(args, name)
        if value is not None:
            (overrides.setdefault(group, {}) if group else overrides)[field] = value
    if args.population is not None:
        parents, children, fresh = nhn.evolution_settings(args.population)
        overrides.setdefault("search", {}).update(
            population_size=args.population, num_parents=parents, num_children=children,
            num_fresh=fresh,
        )
    return overrides


def main(config=CONFIG, output_dir=os.path.join(HERE, "output")):
    """Run the pipeline for ``config``; write the results to ``output_dir``.

    Args:
        config: an `nhn.NhnConfig` (default `CONFIG`: CIFAR-10), or a dict of
            overrides of `CONFIG` for `NhnConfig.replace` (e.g. ``{"num_train":
            512, "training": {"epochs": 1}, "search": {"num_cycles": 1}}`` for a
            smoke run).
        output_dir: result directory.

    Returns:
        dict with ``"stages"`` (the stage table), ``"table"`` (text) and
        ``"model"`` (the final shrunk `keras.Model`).
    """
    if isinstance(config, dict):
        config = CONFIG.replace(**config)
    if not isinstance(config, nhn.NhnConfig):
        raise ValueError(
            "Argument `config` must be an NhnConfig or a dict of its fields. "
            f"Received: config of type {type(config).__name__}"
        )
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notes of the many small models
    os.makedirs(output_dir, exist_ok=True)
    if config.search.directory is None:
        config = config.replace(search={"directory": os.path.join(output_dir, "search")})
    if config.plots is None:
        config = config.replace(plots=output_dir)
    started = time.perf_counter()
    x_train, y_train, x_test, y_test = nhn.load_data(config)
    outcome = config.builder().run(x_train, y_train, x_test, y_test)
    summary, table = nhn.summarise(outcome, config)
    seconds = time.perf_counter() - started
    model = outcome["model"]
    model.save(os.path.join(output_dir, "final.keras"))
    nhn.plot_stages(outcome["stages"], os.path.join(output_dir, "stages_cifar10.png"))
    nhn.plot_search(outcome["search"]["history"], os.path.join(output_dir, "search_cifar10.png"))
    with open(os.path.join(output_dir, "results.json"), "w") as handle:
        json.dump(
            {
                "config": json.loads(json.dumps(dataclasses.asdict(config), default=list)),
                "summary": summary,
                "search": outcome["search"],
                "pruning": outcome["pruning"],
                "seconds": seconds,
            },
            handle,
            indent=1,
        )
    with open(os.path.join(output_dir, "table.txt"), "w") as handle:
        handle.write(table + "\n")
    if config.verbose:
        print(table)
        print(f"{seconds:.0f} s; results in {output_dir}")
    return {"stages": outcome["stages"], "table": table, "model": model}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=None)
    parser.add_argument("--num-test", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="epochs of every stage")
    parser.add_argument("--cycles", type=int, default=None)
    parser.add_argument("--population", type=int, default=None)
    parser.add_argument("--search-batches", type=int, default=None)
    parser.add_argument("--prune-fraction", type=float, default=None)
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="start of the cosine of every training stage")
    parser.add_argument("--prune-granularity", choices=("kernel", "channel"), default=None)
    parser.add_argument("--prune-scope", choices=("model", "layer"), default=None,
                        help="model: one threshold (the paper's); layer: the same fraction "
                             "of every convolution")
    parser.add_argument("--prune-channel-multiple", type=int, default=None)
    parser.add_argument("--prune-rescale", action=argparse.BooleanOptionalAction, default=None,
                        help="restore each convolution's output scale after pruning (default: "
                             "on; without it 85%% pruning leaves this network at chance)")
    parser.add_argument("--shared-weights", choices=("sequential", "per_cycle"), default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--output", default=os.path.join(HERE, "output"))
    args = parser.parse_args()
    main(overrides_from_args(args), args.output)
