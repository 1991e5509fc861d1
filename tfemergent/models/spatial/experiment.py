"""Experiment ``spatial-split``: Table 1 of Wołczyk et al.

For each input mode (concatenated, mixed, sequential), network (regular,
spatial) and seed: train the double-task network, split it greedily into two
sub-networks and report the accuracy of the full network, of the split network
and the drop.
"""

import dataclasses
import os
import time

import keras
import numpy as np

from tfemergent import analysis, datasets, plotting
from tfemergent.callbacks.spatial_tensorboard import SpatialTensorBoard
from tfemergent.models import _runner_tools as tools
from tfemergent.models.spatial.spatial_network import PAPER_HIDDEN_UNITS, build_spatial_network
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

NAME = "spatial-split"
DESCRIPTION = (
    "Spatial networks (Wołczyk et al.): double-task training, greedy split into "
    "per-task sub-networks, Table 1 (accuracy before/after split)."
)
# The options of `tfemergent run` this experiment uses (see `tools.COMMON_OPTIONS`).
OPTIONS = ("data_dir", "logdir", "export", "plots")
DATASET_PAIRS = {
    "digits": ("digits", "digits_transposed"),
    "mnist+fashion": ("mnist", "fashion_mnist"),
}
MODES = ("concatenated", "mixed", "sequential")
NETWORKS = ("regular", "spatial")
PAPER_TABLE_1 = {  # mode -> network -> (split accuracy, drop), Wołczyk et al. Table 1
    "concatenated": {"regular": (0.80, 0.11), "spatial": (0.92, 0.00)},
    "mixed": {"regular": (0.70, 0.19), "spatial": (0.89, 0.00)},
    "sequential": {"regular": (0.33, 0.60), "spatial": (0.84, 0.07)},
}


@dataclasses.dataclass
class SpatialSplitConfig:
    """Configuration of the ``spatial-split`` experiment (paper values by default,
    apart from the embedded dataset and the epochs).

    Attributes:
        dataset: ``"digits"`` (embedded, no download) or ``"mnist+fashion"``.
        modes: input modes to run.
        networks: ``"regular"`` and/or ``"spatial"``.
        seeds: seeds, one run each.
        epochs: training epochs per run.
        batch_size, learning_rate, alpha, beta, hidden_units: paper settings.
        transport_normalization: ``"connections"`` (default: the mean over
            connections of the authors' code, under which the paper's network
            trains at alpha=1) or ``"neurons"`` (the paper's text, 1/N_l).
        num_train: optional cap on training samples (None: all).
        data_dir: local data directory (else ``TFEMERGENT_DATA_DIR`` or tfds).
        logdir: TensorBoard directory (None: no logs).
        export: directory for SavedModels of the spatial networks (None: none).
        plots: directory for position plots (None: none).
        verbose: 0 silent, 1 progress bar and table.
    """

    dataset: str = "digits"
    modes: tuple = MODES
    networks: tuple = NETWORKS
    seeds: tuple = (0,)
    epochs: int = 300
    batch_size: int = 256
    learning_rate: float = 0.005
    alpha: float = 1.0
    beta: float = 3.0
    hidden_units: tuple = PAPER_HIDDEN_UNITS
    transport_normalization: str = "connections"
    num_train: int = None
    data_dir: str = None
    logdir: str = None
    export: str = None
    plots: str = None
    verbose: int = 1

    def __post_init__(self):
        validate_choice("dataset", self.dataset, tuple(DATASET_PAIRS))
        self.modes = tuple(self.modes)
        for mode in self.modes:
            validate_choice("modes", mode, MODES)
        self.networks = tuple(self.networks)
        for network in self.networks:
            validate_choice("networks", network, NETWORKS)
        self.seeds = tuple(validate_int("seeds", s, minimum=0) for s in self.seeds)
        if not (self.modes and self.networks and self.seeds):
            raise ValueError(
                "`modes`, `networks` and `seeds` must not be empty. Received: "
                f"modes={self.modes}, networks={self.networks}, seeds={self.seeds}"
            )
        self.epochs = validate_int("epochs", self.epochs, minimum=1)
        self.batch_size = validate_int("batch_size", self.batch_size, minimum=1)
        self.learning_rate = validate_float(
            "learning_rate", self.learning_rate, minimum=0.0, min_inclusive=False
        )
        self.alpha = validate_float("alpha", self.alpha, minimum=0.0)
        self.beta = validate_float("beta", self.beta, minimum=0.0)
        validate_choice(
            "transport_normalization", self.transport_normalization, ("neurons", "connections")
        )
        self.num_train = validate_int("num_train", self.num_train, minimum=1, allow_none=True)


def _load(config, mode, split, seed):
    first, second = DATASET_PAIRS[config.dataset]
    x, (y_first, y_second) = datasets.double_task(
        mode, split, first=first, second=second, data_dir=config.data_dir, seed=seed
    )
    y = np.stack([y_first, y_second], axis=1).astype(np.int64)
    if split == "train" and config.num_train is not None:
        x, y = x[: config.num_train], y[: config.num_train]
    return x.astype(np.float32), y


class _EpochProgress(keras.callbacks.Callback):
    """Advances a tqdm bar by one per epoch and shows the last loss."""

    def __init__(self, bar):
        super().__init__()
        self.bar = bar

    def on_epoch_end(self, epoch, logs=None):
        self.bar.update(1)
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.3f}")


def run_one(config, mode, network, seed, data, progress=None):
    """Train and split one network; returns a result dict."""
    (x_train, y_train), (x_test, y_test) = data
    model = build_spatial_network(
        x_train.shape[1],
        hidden_units=config.hidden_units,
        spatial=network == "spatial",
        alpha=config.alpha,
        beta=config.beta,
        learning_rate=config.learning_rate,
        transport_normalization=config.transport_normalization,
        seed=seed,
    )
    callbacks = [] if progress is None else [_EpochProgress(progress)]
    run_name = f"{mode}-{network}-seed{seed}"
    if config.logdir and network == "spatial":
        callbacks.append(
            SpatialTensorBoard(os.path.join(config.logdir, run_name), update_freq=max(1, config.epochs // 10))
        )
    if config.logdir:
        callbacks.append(keras.callbacks.TensorBoard(os.path.join(config.logdir, run_name, "fit")))
    start = time.perf_counter()
    model.fit(
        tools.shuffled_batches((x_train, y_train), config.batch_size, seed=seed),
        shuffle=False,  # the batches are shuffled already (seeded)
        epochs=config.epochs,
        verbose=0,
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - start
    # The paper splits the layers that carry the spatial costs (from the third
    # hidden layer on); the regular baseline is split at the same layers.
    num_split = len(config.hidden_units) + 1 - 2
    split = analysis.greedy_split(model, 2, num_layers=num_split)
    scores = analysis.evaluate_task_split(model, split, x_test, y_test)
    result = {
        "mode": mode,
        "network": network,
        "seed": seed,
        "full": scores["full_mean"],
        "split": scores["split_mean"],
        "drop": scores["drop"],
        "full_per_task": scores["full"].tolist(),
        "split_per_task": scores["split"].tolist(),
        "cross_task_fraction": list(split.cross_task_fraction),
        "train_seconds": seconds,
    }
    if config.export and network == "spatial":
        model.export(os.path.join(config.export, run_name), verbose=False)
    if config.plots and network == "spatial":
        layers = [model.get_layer(name) for name in split.layer_names]
        figure = plotting.plot_positions(
            [keras.ops.convert_to_numpy(layer.positions) for layer in layers],
            split.assignments,
            [f"{run_name}: {layer.name}" for layer in layers],
            title=f"{run_name}: neuron positions after {config.epochs} epochs, by task "
                  "(greedy split)",
        )
        with open(tools.output_path(config.plots, f"{run_name}.png"), "wb") as handle:
            handle.write(plotting.figure_to_png(figure))
    return result


def summarise(results):
    """Mean and std over seeds per (mode, network): list of row dicts."""
    rows = []
    keys = sorted({(r["mode"], r["network"]) for r in results}, key=lambda k: (MODES.index(k[0]), k[1]))
    for mode, network in keys:
        runs = [r for r in results if r["mode"] == mode and r["network"] == network]
        row = {"mode": mode, "network": network, "runs": len(runs)}
        for measure in ("full", "split", "drop"):
            row[measure] = tools.mean_std([r[measure] for r in runs])
        row["paper_split"], row["paper_drop"] = PAPER_TABLE_1[mode][network]
        rows.append(row)
    return rows


def format_table(rows):
    """The summary rows as a Markdown table."""
    return tools.markdown_table(
        ["mode", "network", "full acc.", "split acc.", "drop", "paper split / drop"],
        [
            [row["mode"], row["network"]]
            + [tools.format_mean_std(row[m]) for m in ("full", "split", "drop")]
            + [f"{row['paper_split']:.2f} / {row['paper_drop']:.2f}"]
            for row in rows
        ],
    )


def run(config):
    """Run the experiment; returns ``{"results": [...], "summary": [...], "table": str}``."""
    tools.check_config(config, SpatialSplitConfig)
    import sys

    from tqdm.auto import tqdm

    total = len(config.modes) * len(config.networks) * len(config.seeds) * config.epochs
    # A live bar on a terminal; in a log file, one line per finished run instead.
    live = bool(config.verbose) and sys.stderr.isatty()
    results = []
    with tqdm(total=total, desc=NAME, unit="epoch", disable=not live) as bar:
        for mode in config.modes:
            for seed in config.seeds:
                data = (_load(config, mode, "train", seed), _load(config, mode, "test", seed))
                for network in config.networks:
                    bar.set_description(f"{mode}/{network}/seed {seed}")
                    result = run_one(config, mode, network, seed, data, progress=bar)
                    results.append(result)
                    if config.verbose:
                        bar.write(
                            f"{mode:>12s} {network:>7s} seed {seed}: full {result['full']:.3f} "
                            f"split {result['split']:.3f} drop {result['drop']:+.3f} "
                            f"({result['train_seconds']:.0f} s)"
                        )
    summary = summarise(results)
    return tools.finish(results, format_table(summary), config.verbose, summary=summary)


def add_arguments(parser):
    """Command-line arguments of ``tfemergent run spatial-split``."""
    parser.add_argument("--dataset", default="digits", choices=sorted(DATASET_PAIRS),
                        help="digits (embedded, default) or mnist+fashion")
    parser.add_argument("--modes", type=tools.comma_separated(), default=MODES,
                        help="comma-separated input modes: " + ", ".join(MODES)
                             + " (default: all three)")
    parser.add_argument("--networks", type=tools.comma_separated(), default=NETWORKS,
                        help="comma-separated: regular, spatial (default: both)")
    tools.add_seeds_argument(parser)
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per run (default: 300 on digits, 15 on mnist+fashion)")
    parser.add_argument("--batch-size", type=int, default=256,
                        help="training batch size (default: 256, the paper's)")
    parser.add_argument("--num-train", type=int, default=None,
                        help="cap on training samples per run")
    parser.add_argument("--transport-normalization", default="connections",
                        choices=["connections", "neurons"],
                        help="mean over connections (authors' code, default) or 1/N_l "
                             "(paper text)")


def config_from_args(args):
    """Build a `SpatialSplitConfig` from parsed command-line arguments."""
    epochs = args.epochs if args.epochs is not None else (300 if args.dataset == "digits" else 15)
    return SpatialSplitConfig(
        dataset=args.dataset,
        modes=tuple(args.modes),
        networks=tuple(args.networks),
        seeds=tools.seeds_from_args(args),
        epochs=epochs,
        batch_size=args.batch_size,
        num_train=args.num_train,
        transport_normalization=args.transport_normalization,
        **tools.common_options(args, OPTIONS),
    )
