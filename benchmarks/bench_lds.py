"""Cost of one evolution cycle of the location search (LDS) vs one epoch of base training.

The location search of Neuron Hierarchical Networks as `NeuronHierarchyBuilder` runs it:
an `AddOnSuperNetwork` over the frozen base network, `EvolutionarySearch` over its
`LocationSpace` (the paper: population K = 20, 4 parents, 5 children, 5 fresh members,
"none" genes with probability 0.8), `LocationEvaluator` as fitness (each member trains
its add-ons with SGD, momentum 0.9, for M = 25 batches of 100 images of its own slice of
the training set, and is scored on N x 500 = 500 validation images) under a
`SearchRunner` without a directory (shared weights in memory, ``shared_weights=
"sequential"``, one process).

Data: CIFAR-10 from ``cifar10.npz`` in ``TFEMERGENT_DATA_DIR`` (a class-balanced subset of
30,000 training images), standardised per channel; 5000 training images held out
(seeded) as the validation set, the other 25,000 are the training set. A cycle of the
paper's settings trains on 20 x 25 x 100 = 50,000 images, one pass over the paper's
training set and two over ours, so the comparison with base training is also given per
image (an "epoch" of 50,000 images). Base: ``SegmentCNN((32, 32, 3), 10, seed=0)`` with the default
3 segments of 4 convolutions (16/32/64 filters, 3x3/5x5, 341,754 parameters), not
pruned (the builder searches on the pruned and shrunk base, which is cheaper).

Measured, in one process, warm-up (tracing of the compiled training step and
prediction, and Keras' first ``fit`` step) excluded:

1. one epoch of base training on the training images (SGD with Nesterov momentum 0.9,
   gradient-norm clipping 5, as the builder, learning rate 0.01; batch 100, the search's
   batch size);
   the base network then serves as the (frozen) base of the search;
2. ``--cycles`` evolution cycles (default 1: the first cycle, all members random), wall
   time per cycle and per candidate, and the split between the add-on training
   (``AddOnSuperNetwork.train_add_ons``), the evaluation (``accuracy``) and the rest
   (genome activation, weight snapshots, the strategy), measured by timing those calls.

Reported: seconds per cycle, per candidate, the training/evaluation split, images per
second of the search's training and of the base training, and the ratio cycle / epoch.
The paper's numbers for comparison: 300 location-search cycles in about 10 hours, the
retraining of the base network (310 epochs) in about 9 hours, on one GTX 1080Ti.

    python -m benchmarks.bench_lds [--quick] [--record] [--cycles C] [--population K]
        [--batches M] [--eval-size E] [--data-dir DIR]

``--quick``: K = 4 (2 parents, 1 child, 1 fresh), M = 3, eval 100, 5000 training and 1000
validation images. Reproducibility of the timing does not depend on the weights; the
base network is the one trained for the epoch of step 1.
"""

import argparse
import os
import pathlib
import time

import keras
import numpy as np

from benchmarks import harness
from tfemergent.datasets import load_numpy
from tfemergent.models import AddOnSuperNetwork, LocationEvaluator, SegmentCNN
from tfemergent.search import EvolutionarySearch, SearchRunner

BATCH_SIZE = 100
PAPER = {
    "cycles": 300,
    "search_hours": 10.0,
    "epochs": 310,
    "training_hours": 9.0,
}


def parse_args(argv=None):
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--cycles", type=int, default=1)
    extra.add_argument("--population", type=int, default=None)
    extra.add_argument("--batches", type=int, default=None)
    extra.add_argument("--eval-size", type=int, default=None)
    extra.add_argument(
        "--data-dir",
        default=os.environ.get("TFEMERGENT_DATA_DIR")
        or str(pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"),
    )
    options, rest = extra.parse_known_args(argv)
    args = harness.parse_args(
        __doc__.splitlines()[0] + " Also: --cycles C (default 1), --population K (20, --quick "
        "4), --batches M (25, --quick 3), --eval-size E (500, --quick 100), --data-dir DIR.",
        rest,
    )
    args.cycles = options.cycles
    args.population = options.population or (4 if args.quick else 20)
    args.batches = options.batches or (3 if args.quick else 25)
    args.eval_size = options.eval_size or (100 if args.quick else 500)
    args.data_dir = options.data_dir
    if args.cycles < 1 or args.population < 4 or args.batches < 1 or args.eval_size < 1:
        raise ValueError(
            "--cycles, --batches and --eval-size must be >= 1 and --population >= 4. "
            f"Received: cycles={args.cycles}, population={args.population}, "
            f"batches={args.batches}, eval_size={args.eval_size}"
        )
    return args


def _evolution(population):
    """Parents, children, fresh members: the paper's 4/5/5 of 20, scaled down below."""
    if population >= 20:
        return 4, 5, 5
    return 2, 1, 1


def _load(args):
    num_train, num_validation = (5000, 1000) if args.quick else (25000, 5000)
    images, labels = load_numpy("cifar10", "train", args.data_dir)
    images = images.astype("float32") / 255.0
    mean, std = images.mean(axis=(0, 1, 2)), images.std(axis=(0, 1, 2))
    images = (images - mean) / std
    order = np.random.default_rng(0).permutation(len(images))
    validation, train = order[:5000][:num_validation], order[5000:][:num_train]
    labels = labels.astype("int64")
    return images[train], labels[train], images[validation], labels[validation]


class _Timed:
    """Wraps a bound method; keeps the wall time of every call."""

    def __init__(self, method):
        self.method = method
        self.seconds = []

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.method(*args, **kwargs)
        finally:
            self.seconds.append(time.perf_counter() - start)


def _verdict(search_epochs):
    """How the projected search compares with the paper's retraining, in words."""
    ratio = search_epochs / PAPER["epochs"]
    if ratio < 0.5:
        return f"{ratio:.2f} x the retraining: cheap relative to training"
    if ratio <= 2.0:
        return (
            f"{ratio:.2f} x the retraining: the location search costs about as much as "
            "training the network once more, cheap only against searches that train "
            "every candidate fully"
        )
    return f"{ratio:.2f} x the retraining: more expensive than training"


def _base_epoch(model, x_train, y_train):
    """Seconds of one epoch of base training (compiled step traced beforehand)."""
    model.compile(
        keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True, global_clipnorm=5.0),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train[: 2 * BATCH_SIZE], y_train[: 2 * BATCH_SIZE], batch_size=BATCH_SIZE,
              epochs=1, verbose=0)  # warm-up: tracing
    start, cpu_start = time.perf_counter(), time.process_time()
    history = model.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=1, verbose=0)
    return (
        time.perf_counter() - start,
        time.process_time() - cpu_start,
        float(history.history["accuracy"][-1]),
    )


def main(argv=None):
    args = parse_args(argv)
    x_train, y_train, x_validation, y_validation = _load(args)
    keras.utils.set_random_seed(0)
    spec = SegmentCNN((32, 32, 3), 10, seed=0)
    model = spec.build(name="base")
    num_parameters = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    epoch_seconds, epoch_cpu, train_accuracy = _base_epoch(model, x_train, y_train)

    network = AddOnSuperNetwork.from_model(model, seed=0)
    space = network.location_space()
    num_parents, num_children, num_fresh = _evolution(args.population)
    # Warm-up: trace the compiled add-on training step and prediction once, then put
    # the add-on weights back, so that the search starts from the initial state.
    initial = network.add_on_weights()
    network.set_genome(space.sample(np.random.default_rng(1)))
    network.train_add_ons(x_train[:BATCH_SIZE], y_train[:BATCH_SIZE], batch_size=BATCH_SIZE)
    network.accuracy(x_validation[:BATCH_SIZE], y_validation[:BATCH_SIZE])
    network.set_add_on_weights(initial)
    train_add_ons = network.train_add_ons = _Timed(network.train_add_ons)
    accuracy = network.accuracy = _Timed(network.accuracy)

    evaluator = LocationEvaluator(
        network,
        (x_train, y_train),
        (x_validation, y_validation),
        train_batches=args.batches,
        batch_size=BATCH_SIZE,
        eval_size=args.eval_size,
        learning_rate=0.05,
        min_learning_rate=0.001,
        num_cycles=PAPER["cycles"],
        momentum=0.9,
        seed=0,
    )
    strategy = EvolutionarySearch(
        space,
        num_cycles=args.cycles,
        population_size=args.population,
        num_parents=num_parents,
        num_children=num_children,
        num_fresh=num_fresh,
        seed=0,
    )
    runner = SearchRunner(strategy, evaluator, verbose=0)
    cycles = []
    for cycle in range(args.cycles):
        start, cpu_start = time.perf_counter(), time.process_time()
        train_start, eval_start = len(train_add_ons.seconds), len(accuracy.seconds)
        result = runner.run(max_trials=(cycle + 1) * args.population)
        members = [r for _, r in result.history[-args.population:]]
        cycles.append(
            {
                "seconds": time.perf_counter() - start,
                "cpu_seconds": time.process_time() - cpu_start,
                "train": train_add_ons.seconds[train_start:],
                "eval": accuracy.seconds[eval_start:],
                "add_ons": [m["num_add_ons"] for m in members],
                "fitness": [m["fitness"] for m in members],
            }
        )

    lines = []
    per_member_train = args.batches * BATCH_SIZE
    train_images_per_cycle = args.population * per_member_train
    lines.append(
        f"Scale: population {args.population} (parents/children/fresh {num_parents}/"
        f"{num_children}/{num_fresh}), {args.batches} batches of {BATCH_SIZE} per member, "
        f"{args.eval_size} validation images per member; training set {len(x_train)}, "
        f"validation set {len(x_validation)} CIFAR-10 images"
        + (" (the paper's settings)." if not args.quick and args.population == 20
           and args.batches == 25 and args.eval_size == 500 else " (scaled down).")
    )
    lines.append(
        f"Base: default SegmentCNN, {num_parameters} parameters; super-network with "
        f"{len(network.possible_add_ons)} possible add-ons ({space.num_parts} genes)."
    )
    lines.append("")
    rows = []
    for index, cycle in enumerate(cycles):
        train, evaluation = sum(cycle["train"]), sum(cycle["eval"])
        other = cycle["seconds"] - train - evaluation
        trained = [s for s in cycle["train"]]
        rows.append(
            [
                index,
                f"{cycle['seconds']:.1f}",
                f"{cycle['cpu_seconds']:.1f}",
                f"{cycle['seconds'] / args.population:.2f}",
                f"{train:.1f} ({train / cycle['seconds']:.0%})",
                f"{evaluation:.1f} ({evaluation / cycle['seconds']:.0%})",
                f"{other:.1f} ({other / cycle['seconds']:.0%})",
                f"{np.mean(trained):.2f}" if trained else "-",
                f"{np.mean(cycle['eval']):.2f}",
                f"{np.mean(cycle['add_ons']):.1f} ({min(cycle['add_ons'])}-"
                f"{max(cycle['add_ons'])})",
                f"{len(cycle['train'])}/{args.population}",
            ]
        )
    lines.append(
        harness.markdown_table(
            ["cycle", "wall s", "CPU s", "s per candidate", "add-on training s",
             "evaluation s", "other s", "training s per trained member",
             "evaluation s per member", "add-ons per member (min-max)", "members trained"],
            rows,
        )
    )
    mean_cycle = float(np.mean([c["seconds"] for c in cycles]))
    all_train = [s for c in cycles for s in c["train"]]
    search_rate = per_member_train / np.mean(all_train) if all_train else float("nan")
    epoch_rate = len(x_train) / epoch_seconds
    ratio = mean_cycle / epoch_seconds
    paper_ratio = (PAPER["search_hours"] / PAPER["cycles"]) / (
        PAPER["training_hours"] / PAPER["epochs"]
    )
    lines += [
        "",
        f"- One epoch of base training ({len(x_train)} images, batch {BATCH_SIZE}): "
        f"{epoch_seconds:.1f} s wall, {epoch_cpu:.1f} s CPU ({epoch_rate:.0f} images/s; "
        f"training accuracy {train_accuracy:.3f}).",
        f"- One search cycle: {mean_cycle:.1f} s wall = {ratio:.2f} x one epoch of base "
        f"training; it trains add-ons on {train_images_per_cycle} images "
        f"({train_images_per_cycle / len(x_train):.2f} epochs' worth) at {search_rate:.0f} "
        f"images/s ({search_rate / epoch_rate:.2f} x the base training's rate; the frozen "
        "base needs no weight gradients, but the backward pass still runs through it down "
        "to the earliest active add-on) and scores "
        f"{args.population * args.eval_size} validation images.",
        f"- Per image: one cycle costs as much as base training on "
        f"{mean_cycle * epoch_rate:.0f} images, i.e. {mean_cycle * epoch_rate / 50000:.2f} "
        f"epochs of a 50,000-image training set (the paper's: {PAPER['cycles']} cycles in "
        f"~{PAPER['search_hours']:.0f} h and {PAPER['epochs']} epochs of retraining in "
        f"~{PAPER['training_hours']:.0f} h, i.e. one cycle = {paper_ratio:.2f} epochs).",
        f"- Projected: {PAPER['cycles']} cycles = {PAPER['cycles'] * mean_cycle / 3600:.1f} h "
        f"here = {PAPER['cycles'] * mean_cycle * epoch_rate / 50000:.0f} epochs of base "
        f"training on 50,000 images, against the paper's {PAPER['epochs']} epochs of "
        f"retraining ({_verdict(PAPER['cycles'] * mean_cycle * epoch_rate / 50000)}).",
    ]
    if args.quick or args.population != 20 or args.batches != 25 or args.eval_size != 500:
        scale = (20 * 25 * BATCH_SIZE) / train_images_per_cycle
        lines.append(
            f"- Scaled down: the paper's cycle trains on {scale:.1f} x as many images and "
            f"scores {20 * 500 / (args.population * args.eval_size):.1f} x as many; "
            "the training share scales linearly with the images."
        )
    report = "\n".join(lines)
    print(report)
    if args.record:
        harness.record_section("LDS cycle cost", report)


if __name__ == "__main__":
    main()
