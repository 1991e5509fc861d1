"""Experiment ``nhn``: Neuron Hierarchical Networks, Algorithm 2 stage by stage (section 5).

A base `SegmentCNN` with smooth initialisation is trained, 85% of the kernels
of every layer (lowest standard deviation) are pruned, the network is shrunk and retrained,
the location-direction search adds sparse add-on neurons (evolution over the
add-on locations with weights shared between candidates, base frozen; then 10%
of each add-on's connections by standard deviation), and the network with the
add-ons is retrained. Every stage is reported: parameters (effective and
physical), test error, the paper's score, inference latency; and the final
network with its add-ons removed (ablation). See
`tfemergent.models.NeuronHierarchyBuilder`.
"""

import dataclasses
import json
import time

import numpy as np

from tfemergent import datasets
from tfemergent.models import _runner_tools as tools
from tfemergent.models.nhn.config_values import validate_config
from tfemergent.models.nhn.neuron_hierarchy_builder import NeuronHierarchyBuilder
from tfemergent.models.nhn.pruning_config import PruningConfig
from tfemergent.models.nhn.search_config import SearchConfig
from tfemergent.models.nhn.segment_cnn import SegmentCNN
from tfemergent.models.nhn.training_config import TrainingConfig
from tfemergent.utils.validation import validate_choice, validate_int

NAME = "nhn"
DESCRIPTION = (
    "Neuron hierarchical networks: train, prune 85% of the kernels, shrink, retrain, "
    "location-direction search for add-on neurons, retrain; the stage table."
)
# The options of `tfemergent run` this experiment uses (see `tools.COMMON_OPTIONS`).
OPTIONS = ("data_dir", "logdir", "export", "plots")
DATASETS = ("digits", "cifar10")
# The paper's CIFAR-10 numbers (ENAS macro base, 300 search cycles, 310 + 160 + 260 epochs).
PAPER_CLAIMS = (
    "paper (CIFAR-10): 96.20% after pruning 85% of the kernels (70% of the parameters), "
    "96.52% with add-ons (7.0M parameters, score 1.88 without cutout); ablating the add-ons "
    "-1.08 pt"
)
# The base network of the short digits run: 8x8 -> 4x4 -> 2x2.
DIGITS_SEGMENTS = (
    ({"filters": 16, "kernel_size": 3}, {"filters": 16, "kernel_size": 5}),
    ({"filters": 32, "kernel_size": 3}, {"filters": 32, "kernel_size": 5}),
    ({"filters": 32, "kernel_size": 3},),
)
# SegmentCNN's default: 3 segments of 4 layers (16, 32, 64 filters; kernels 3, 5, 3, 5).
CIFAR_SEGMENTS = None
# `NhnConfig`'s defaults where they differ from those of the config classes: the short
# digits run of ``tfemergent run nhn``.
DEFAULT_TRAINING = {"epochs": 8, "batch_size": 32}
DEFAULT_SEARCH = {"num_cycles": 5, "population_size": 10, "train_batches": 4}
_CONFIGS = {
    "training": (TrainingConfig, DEFAULT_TRAINING),
    "pruning": (PruningConfig, {}),
    "search": (SearchConfig, DEFAULT_SEARCH),
}
# Configuration fields whose command-line flag has another name (for error messages).
FLAGS = {
    "fraction": "--prune-fraction",
    "granularity": "--prune-granularity",
    "scope": "--prune-scope",
    "channel_multiple": "--prune-channel-multiple",
    "rescale": "--prune-rescale",
    "num_cycles": "--cycles",
    "population_size": "--population",
    "train_batches": "--search-batches",
    "directory": "--search-dir",
    "seed": "--seeds",
}


@dataclasses.dataclass
class NhnConfig:
    """Configuration of ``nhn``: the data, the base network and the builder's configs.

    The defaults are the short run of ``tfemergent run nhn``: the embedded 8 x 8
    digits, a base network of 3 segments (16, 16 | 32, 32 | 32 filters), 8
    epochs per training stage, 85% of the kernels of every layer pruned, 5
    search cycles of 10 candidates, each trained on 4 batches of 32 (so that a
    cycle is about one pass over the training images, as in the paper). The
    paper: CIFAR-10, the ENAS macro network (3 segments of 4 layers), 310 / 160
    / 260 epochs, 300 cycles of 20 candidates trained on 25 batches of 100 each.

    Attributes:
        dataset: ``"digits"`` (embedded) or ``"cifar10"`` (local
            ``cifar10.npz`` of ``data_dir`` / ``TFEMERGENT_DATA_DIR``, else
            tensorflow-datasets).
        data_dir: local data directory, or None.
        segments: the base `SegmentCNN`'s segments (None: `DIGITS_SEGMENTS` on
            digits, SegmentCNN's default otherwise).
        num_train: training images used (None: all), shuffled with seed 0
            first.
        num_test: test images used (None: all).
        training: a `TrainingConfig`, or a dict of fields overriding
            `DEFAULT_TRAINING` (None: `DEFAULT_TRAINING`).
        pruning: a `PruningConfig`, or a dict of its fields.
        search: a `SearchConfig`, or a dict of fields overriding
            `DEFAULT_SEARCH`.
        seed: the builder's seed (and the base network's).
        logdir: TensorBoard directory, or None: Keras' scalars of the training
            stages and ``nhn/`` (stages, pruning report, search fitness per
            trial, chosen add-on locations; `stage_logging.log_run`).
        export: directory for the final model's SavedModel, or None.
        plots: directory for the PNG plots (stage table, search), or None.
        verbose: 0 silent, 1 stages, search cycles and the table, 2 also one
            line per trial.

    Example:

    >>> from tfemergent.models.nhn.experiment import NhnConfig
    >>> config = NhnConfig(search={"num_cycles": 2}, verbose=0)
    >>> config.training.epochs, config.search.num_cycles, config.search.population_size
    (8, 2, 10)
    >>> config.replace(num_train=100, training={"epochs": 1}).training.batch_size
    32
    """

    dataset: str = "digits"
    data_dir: str = None
    segments: list = None
    num_train: int = None
    num_test: int = None
    training: TrainingConfig = None
    pruning: PruningConfig = None
    search: SearchConfig = None
    seed: int = 0
    logdir: str = None
    export: str = None
    plots: str = None
    verbose: int = 1

    def __post_init__(self):
        validate_choice("dataset", self.dataset, DATASETS)
        if self.segments is None:
            self.segments = DIGITS_SEGMENTS if self.dataset == "digits" else CIFAR_SEGMENTS
        self.num_train = validate_int("num_train", self.num_train, minimum=20, allow_none=True)
        self.num_test = validate_int("num_test", self.num_test, minimum=1, allow_none=True)
        for name, (cls, defaults) in _CONFIGS.items():
            setattr(self, name, validate_config(name, getattr(self, name), cls, defaults))
        self.verbose = validate_int("verbose", self.verbose, minimum=0, maximum=2)
        # The builder validates the rest (spec, seed); build it now so that errors come early.
        self.builder()

    def replace(self, **overrides):
        """A copy with ``overrides``; a dict for ``training``, ``pruning`` or ``search``
        overrides fields of this config's object."""
        for name, (cls, _) in _CONFIGS.items():
            if isinstance(overrides.get(name), dict):
                current = getattr(self, name).get_config()
                overrides[name] = validate_config(name, overrides[name], cls, current)
        return dataclasses.replace(self, **overrides)

    def spec(self):
        """The base `SegmentCNN` of this configuration."""
        image_shape = datasets.loaders.IMAGE_SHAPES[self.dataset]
        return SegmentCNN(image_shape, 10, self.segments, seed=self.seed)

    def builder(self):
        """The `NeuronHierarchyBuilder` of this configuration."""
        return NeuronHierarchyBuilder(
            self.spec(),
            training=self.training,
            pruning=self.pruning,
            search=self.search,
            seed=self.seed,
            logdir=self.logdir,
            verbose=self.verbose,
        )


# ---------------------------------------------------------------------------- data


def load_data(config):
    """``(x_train, y_train, x_test, y_test)``, float32, standardised per channel.

    The mean and standard deviation of each channel over the training images
    (after ``num_train``) standardise both splits: the segment CNN has no batch
    normalisation and does not learn raw pixels. The training images are
    shuffled with seed 0 before ``num_train`` are kept; the test images are the
    first ``num_test`` of the same kind of shuffle.
    """
    rng = np.random.default_rng(0)
    x_train, y_train = datasets.load_numpy(config.dataset, "train", config.data_dir)
    x_test, y_test = datasets.load_numpy(config.dataset, "test", config.data_dir)
    x_train, y_train = tools.shuffled_subset(rng, config.num_train, x_train, y_train)
    x_test, y_test = tools.shuffled_subset(rng, config.num_test, x_test, y_test)
    x_train, y_train = x_train.astype("float32"), y_train.astype("int64")
    x_test, y_test = x_test.astype("float32"), y_test.astype("int64")
    mean = x_train.mean(axis=(0, 1, 2), keepdims=True)
    std = np.maximum(x_train.std(axis=(0, 1, 2), keepdims=True), 1e-6)
    return (x_train - mean) / std, y_train, (x_test - mean) / std, y_test


# ---------------------------------------------------------------------------- summary


def summarise(outcome, config):
    """The stage table (text) and the summary numbers."""
    stages = outcome["stages"]
    header = (
        f"{'stage':>10s} {'test error':>10s} {'parameters':>10s} {'physical':>9s} "
        f"{'score':>7s} {'latency':>10s} {'add-ons':>7s} {'time':>6s}"
    )
    lines = [f"Neuron hierarchical network on {config.dataset}", header]
    for row in stages:
        lines.append(
            f"{row['stage']:>10s} {row['test_error']:9.2f}% {row['parameters']:10d} "
            f"{row['physical_parameters']:9d} {row['score']:7.3f} {row['latency_ms']:7.2f} ms "
            f"{row['num_add_ons']:7d} {row['seconds']:5.0f}s"
        )
    by_stage = {row["stage"]: row for row in stages}
    pruned = 1.0 - by_stage["retrained"]["parameters"] / by_stage["base"]["parameters"]
    lines.append(
        f"pruned {100 * outcome['pruning']['pruned_kernel_fraction']:.1f}% of the kernels, "
        f"{100 * pruned:.1f}% of the parameters; add-ons: "
        + (", ".join(
            f"{a['source']}->{a['segment']}.{a['target']} k{a['kernel_size']} "
            f"({a['num_connections']}/{a['num_possible_connections']})"
            for a in outcome["add_ons"]
        ) or "none")
        + f"; ablation {-100 * outcome['ablation_drop']:+.2f} pt"
    )
    lines.append(PAPER_CLAIMS)
    summary = {
        "stages": stages,
        "pruned_parameter_fraction": pruned,
        "ablation_drop": outcome["ablation_drop"],
        "add_ons": outcome["add_ons"],
        "genome": outcome["genome"],
    }
    return summary, "\n".join(lines)


def plot_stages(stages, path):
    """Test error and parameters per stage (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row["stage"] for row in stages]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    axes[0].bar(names, [row["test_error"] for row in stages], color="tab:red")
    axes[0].set_ylabel("test error (%)")
    axes[1].bar(names, [row["parameters"] for row in stages], color="tab:blue", label="effective")
    axes[1].plot(names, [row["physical_parameters"] for row in stages], "ko-", label="physical")
    axes[1].set_ylabel("parameters")
    axes[1].legend(fontsize=7)
    axes[2].bar(names, [row["latency_ms"] for row in stages], color="tab:green")
    axes[2].set_ylabel("latency (ms)")
    for axis in axes:
        axis.tick_params(axis="x", labelrotation=45, labelsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_search(history, path):
    """Best and mean validation accuracy of each search cycle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cycles = sorted({entry["cycle"] for entry in history})
    best = [max(e["fitness"] for e in history if e["cycle"] == c) for c in cycles]
    mean = [np.mean([e["fitness"] for e in history if e["cycle"] == c]) for c in cycles]
    figure, axis = plt.subplots(figsize=(5, 3.4))
    axis.plot(cycles, best, "o-", label="best")
    axis.plot(cycles, mean, "s--", label="mean")
    axis.set_xlabel("cycle")
    axis.set_ylabel("validation accuracy")
    axis.set_title("location search")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------------------- entry points


def run(config):
    """Run the experiment; returns ``{"results": {...}, "summary": {...}, "table": str}``."""
    tools.check_config(config, NhnConfig)
    started = time.perf_counter()
    x_train, y_train, x_test, y_test = load_data(config)
    with tools.quiet_tensorflow_logger():
        outcome = config.builder().run(x_train, y_train, x_test, y_test)
    summary, table = summarise(outcome, config)
    if config.export:
        outcome["model"].export(config.export, verbose=False)
    if config.plots:
        plot_stages(outcome["stages"],
                    tools.output_path(config.plots, f"stages_{config.dataset}.png"))
        plot_search(
            outcome["search"]["history"],
            tools.output_path(config.plots, f"search_{config.dataset}.png"),
        )
    results = {
        "config": json.loads(json.dumps(dataclasses.asdict(config), default=list)),
        "stages": outcome["stages"],
        "add_ons": outcome["add_ons"],
        "genome": outcome["genome"],
        "search": outcome["search"],
        "pruning": outcome["pruning"],
        "ablation_drop": outcome["ablation_drop"],
        "seconds": time.perf_counter() - started,
    }
    return tools.finish(results, table, config.verbose, summary=summary)


def add_arguments(parser):
    """Command-line arguments of ``tfemergent run nhn``."""
    parser.add_argument("--dataset", default="digits", choices=DATASETS,
                        help="digits (embedded, default) or cifar10")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every training stage (default: 8 on digits, 30 on CIFAR)")
    parser.add_argument("--retrain-epochs", type=int, default=None,
                        help="epochs of the retraining after pruning (default: --epochs)")
    parser.add_argument("--final-epochs", type=int, default=None,
                        help="epochs of the final training with the add-ons (default: "
                             "--epochs)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch size (default: 32 on digits, 100 on CIFAR, "
                             "the paper's search batches)")
    parser.add_argument("--prune-fraction", type=float, default=0.85,
                        help="fraction of the kernels pruned (default and paper: 0.85)")
    parser.add_argument("--prune-granularity", default="kernel", choices=("kernel", "channel"),
                        help="kernel (the paper's) or whole output channels")
    parser.add_argument("--prune-scope", default="layer", choices=("model", "layer"),
                        help="the same fraction of every layer (default) or one threshold "
                             "for the model (the paper's; can leave a layer with one channel)")
    parser.add_argument("--prune-channel-multiple", type=int, default=1,
                        help="with --prune-granularity channel: kept widths rounded down to "
                             "a multiple of this")
    parser.add_argument("--prune-rescale", action="store_true",
                        help="after pruning, restore each convolution's output scale (for "
                             "networks without batch normalisation)")
    parser.add_argument("--shared-weights", default="sequential",
                        choices=("sequential", "per_cycle"),
                        help="how the search's candidates share add-on weights")
    parser.add_argument("--cycles", type=int, default=None,
                        help="location-search cycles (default: 5 on digits, 20 on CIFAR)")
    parser.add_argument("--population", type=int, default=None,
                        help="population size (default: 10 on digits, 20 (paper) on CIFAR)")
    parser.add_argument("--search-batches", type=int, default=None,
                        help="batches per candidate per cycle (default: 4 on digits, 25 on CIFAR)")
    parser.add_argument("--num-train", type=int, default=None,
                        help="training images used (default: all)")
    parser.add_argument("--num-test", type=int, default=None,
                        help="test images used (default: all)")
    parser.add_argument("--search-dir", default=None,
                        help="checkpoint directory of the search (resumable)")
    tools.add_seeds_argument(parser, deprecated=("seed",),
                             description="one seed, of the base network and the builder (nhn "
                                  "runs one network per command)")


def evolution_settings(population_size):
    """``num_parents``, ``num_children``, ``num_fresh`` for a population size.

    The paper's 4 parents, 5 children and 5 fresh candidates from 11 members on
    (20 in the paper: 10 survivors); for smaller populations about a third
    children (at most 3, of 3 parents) and 2 fresh, so that half survive.

    >>> from tfemergent.models.nhn.experiment import evolution_settings
    >>> evolution_settings(20), evolution_settings(10), evolution_settings(4)
    ((4, 5, 5), (3, 3, 2), (2, 1, 1))
    """
    population_size = validate_int("population_size", population_size, minimum=2)
    if population_size >= 11:
        return 4, 5, 5
    children = min(3, (population_size - 1) // 3)
    fresh = min(2, (population_size - 1 - children) // 2)
    return (3 if children > 1 else 2), children, fresh


def config_from_args(args):
    """Build an `NhnConfig` from parsed command-line arguments."""
    small = args.dataset == "digits"
    population = tools.or_default(args.population, 10 if small else 20)
    seeds = tools.seeds_from_args(args)
    if len(seeds) != 1:
        raise ValueError(
            "Argument `seed` takes one seed: `nhn` runs one network per command. "
            f"Received: seed={','.join(map(str, seeds))}"
        )
    parents, children, fresh = evolution_settings(population)
    training = TrainingConfig(
        epochs=tools.or_default(args.epochs, 8 if small else 30),
        retrain_epochs=args.retrain_epochs,
        final_epochs=args.final_epochs,
        batch_size=tools.or_default(args.batch_size, 32 if small else 100),
    )
    pruning = PruningConfig(
        fraction=args.prune_fraction,
        granularity=args.prune_granularity,
        scope=args.prune_scope,
        channel_multiple=args.prune_channel_multiple,
        rescale=args.prune_rescale,
    )
    search = SearchConfig(
        num_cycles=tools.or_default(args.cycles, 5 if small else 20),
        population_size=population,
        num_parents=parents,
        num_children=children,
        num_fresh=fresh,
        train_batches=tools.or_default(args.search_batches, 4 if small else 25),
        batch_size=32 if small else 100,
        eval_size=None if small else 500,
        shared_weights=args.shared_weights,
        directory=args.search_dir,
    )
    return NhnConfig(
        dataset=args.dataset,
        num_train=args.num_train,
        num_test=args.num_test,
        training=training,
        pruning=pruning,
        search=search,
        seed=seeds[0],
        **tools.common_options(args, OPTIONS),
    )
