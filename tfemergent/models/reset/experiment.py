"""Experiment ``reset``: Hannagan's Reset networks organise their grid (section 4).

``Reset(n, m)`` networks of depth 2 for several ``n`` are trained on an image
classification set (softmax, cross-entropy) or on the number task (images of
digits onto 100-d number codes, sigmoid outputs and binary cross-entropy, as
the paper). After each epoch the grid's responses to held-out images give the
d' maps, the preference map, the clustering index and, for the number task,
the topography index (`tfemergent.analysis`). Optionally a reconstruction head
regularises the grid; its effect on how evenly grid units are used is
measured by `tfemergent.analysis.grid_usage`.
"""

import dataclasses
import os
import time

import keras
import numpy as np

from tfemergent import datasets, plotting
from tfemergent.analysis import grid_usage
from tfemergent.models import _runner_tools as tools
from tfemergent.models.reset.reset_network import ResetNetwork
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

NAME = "reset"
DESCRIPTION = (
    "Reset networks (Hannagan): n x n independent sub-networks tiled into a grid; "
    "clustering and topography indices of the grid per n."
)
# The options of `tfemergent run` this experiment uses (see `tools.COMMON_OPTIONS`).
OPTIONS = ("data_dir", "logdir", "plots")
DATASETS = ("digits", "mnist", "fashion_mnist", "cifar10", "number_topography")
# The paper's claims (Figures 3-6): index > 0 for every n, growing with n.
PAPER_CLAIMS = {
    "clustering": "clustering index > 0 for every n on MNIST, Fashion-MNIST and CIFAR-10, "
    "tending to grow with n (Figs. 3-4)",
    "topography": "number task: topography ~0 for n = 1, > 0 and growing with n and "
    "training for n >= 2 (Fig. 6)",
    "reconstruction": "a reconstruction head spreads activity more evenly over the grid "
    "(Fig. 7, qualitative)",
}
# The sub-networks of the short digits run: one conv stage on the 8 x 8 images.
DIGITS_SUBNETWORK = {"conv_filters": [8], "dense_units": [32]}
DIGITS_FINAL_NETWORK = {"conv_filters": [8, 16], "dense_units": [32]}


@dataclasses.dataclass
class ResetConfig:
    """Configuration of ``reset``.

    The defaults are the short run of ``tfemergent run reset``: the embedded 8 x 8
    digits, ``Reset(n, 16)`` for n = 1, 2, 4, small sub-networks, a few epochs.
    The paper's setting is a 32 x 32 grid, n = 1, 2, 4, 8, 20 epochs, Adam 1e-3,
    dropout 0.5 on the grid, ResNet-20 sub-networks and final network (we use
    small CNNs on 2 CPU cores; see ``subnetwork`` and ``final_network``).

    Attributes:
        dataset: ``"digits"`` (embedded), ``"mnist"``, ``"fashion_mnist"``,
            ``"cifar10"`` (colour, 32 x 32 x 3) or ``"number_topography"`` (the
            number task: 100-d number codes, BCE).
        data_dir: local data directory (None: ``TFEMERGENT_DATA_DIR``, else
            tensorflow-datasets; the number set needs a local directory).
        grid_sizes: the ``n`` of the networks trained.
        grid_width: ``m``, a multiple of every ``n``.
        subnetwork: `ResetGrid` sub-network spec (None: `DIGITS_SUBNETWORK` on
            digits, else ResetGrid's default: conv 8, conv 16, dense 32).
        final_network: `ResetNetwork` final-network spec (None:
            `DIGITS_FINAL_NETWORK` on digits, else ResetNetwork's default).
        grid_dropout: dropout on the grid (paper: 0.5).
        reconstruction: also train every n with a reconstruction head (the
            results then hold both variants).
        reconstruction_weight: weight of the reconstruction MSE.
        epochs, batch_size, learning_rate: training (Adam).
        num_train: training images used (None: all).
        num_eval: held-out test images on which the indices are computed (None:
            all of the test split).
        num_shuffles: shuffled maps of each index's control.
        threshold: d' threshold of a preference.
        index_every: compute the indices every this many epochs (and after the
            last).
        runs: runs per n, with the seeds ``0, ..., runs - 1``; used only when
            ``seeds`` is None.
        seeds: the seeds of the runs per n (None: ``range(runs)``); ``runs``
            becomes their number.
        logdir: TensorBoard directory (`ResetTensorBoard`): one run per network
            (``reset<n>[-reconstruction]-run<k>``). None: no logs.
        plots: directory for the index curves and preference maps (PNG).
        verbose: 0 silent, 1 one line per network and the table.
    """

    dataset: str = "digits"
    data_dir: str = None
    grid_sizes: tuple = (1, 2, 4)
    grid_width: int = 16
    subnetwork: dict = None
    final_network: dict = None
    grid_dropout: float = 0.5
    reconstruction: bool = False
    reconstruction_weight: float = 1.0
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    num_train: int = None
    num_eval: int = None
    num_shuffles: int = 20
    threshold: float = 2.0
    index_every: int = 1
    runs: int = 1
    seeds: tuple = None
    logdir: str = None
    plots: str = None
    verbose: int = 1

    def __post_init__(self):
        validate_choice("dataset", self.dataset, DATASETS)
        if isinstance(self.grid_sizes, int) or not self.grid_sizes:
            raise ValueError(
                "Argument `grid_sizes` must be a non-empty list of integers >= 1. "
                f"Received: grid_sizes={self.grid_sizes!r}"
            )
        self.grid_sizes = tuple(
            validate_int("grid_sizes", size, minimum=1) for size in self.grid_sizes
        )
        self.grid_width = validate_int("grid_width", self.grid_width, minimum=1)
        bad = [size for size in self.grid_sizes if self.grid_width % size]
        if bad:
            raise ValueError(
                "Argument `grid_width` must be a multiple of every grid size "
                f"(not of {bad}). Received: grid_width={self.grid_width}, "
                f"grid_sizes={self.grid_sizes}"
            )
        if self.subnetwork is None and self.dataset == "digits":
            self.subnetwork = dict(DIGITS_SUBNETWORK)
        if self.final_network is None and self.dataset == "digits":
            self.final_network = dict(DIGITS_FINAL_NETWORK)
        self.grid_dropout = validate_float("grid_dropout", self.grid_dropout, minimum=0.0,
                                           maximum=0.99)
        if not isinstance(self.reconstruction, bool):
            raise ValueError(
                "Argument `reconstruction` must be a bool. "
                f"Received: reconstruction={self.reconstruction!r}"
            )
        self.reconstruction_weight = validate_float(
            "reconstruction_weight", self.reconstruction_weight, minimum=0.0
        )
        self.epochs = validate_int("epochs", self.epochs, minimum=1)
        self.batch_size = validate_int("batch_size", self.batch_size, minimum=1)
        self.learning_rate = validate_float(
            "learning_rate", self.learning_rate, minimum=0.0, min_inclusive=False
        )
        self.num_train = validate_int("num_train", self.num_train, minimum=10, allow_none=True)
        self.num_eval = validate_int("num_eval", self.num_eval, minimum=10, allow_none=True)
        self.num_shuffles = validate_int("num_shuffles", self.num_shuffles, minimum=1)
        self.threshold = validate_float("threshold", self.threshold, minimum=0.0)
        self.index_every = validate_int("index_every", self.index_every, minimum=1)
        self.runs = validate_int("runs", self.runs, minimum=1)
        self.seeds = tools.validate_seeds(self.seeds, self.runs)
        self.runs = len(self.seeds)

    @property
    def number_task(self):
        """Whether the targets are number codes (BCE) rather than classes."""
        return self.dataset == "number_topography"


# ---------------------------------------------------------------------------- data


def load_data(config):
    """``(x_train, t_train, x_eval, t_eval, y_eval, codes)``, images standardised.

    Images are scaled by the mean and standard deviation of all training pixels
    (one scalar each, after ``num_train``); the example README says why.

    ``t`` are the training targets (class labels, or number codes for the number
    task), ``y_eval`` the class labels of the held-out images (the classes of
    the d' maps), ``codes`` the ``(10, 100)`` number codes (None for classes).
    The training images are shuffled with seed 0 before ``num_train`` are kept
    (the number set is sorted by digit); the held-out images are the first
    ``num_eval`` of the test split after the same kind of shuffle.
    """
    rng = np.random.default_rng(0)
    if config.number_task:
        x_train, t_train, y_train = datasets.load_number_codes("train", config.data_dir)
        x_test, t_test, y_test = datasets.load_number_codes("test", config.data_dir)
        codes = np.zeros((10, t_train.shape[1]), "float32")
        codes[y_train] = t_train
    else:
        x_train, t_train = datasets.load_numpy(config.dataset, "train", config.data_dir)
        x_test, y_test = datasets.load_numpy(config.dataset, "test", config.data_dir)
        t_test, codes = y_test, None
    x_train, t_train = tools.shuffled_subset(rng, config.num_train, x_train, t_train)
    x_test, t_test, y_test = tools.shuffled_subset(rng, config.num_eval, x_test, t_test, y_test)
    x_train = x_train.astype("float32")
    mean, std = np.float32(x_train.mean()), np.float32(max(x_train.std(), 1e-6))
    return (
        (x_train - mean) / std,
        t_train,
        (x_test.astype("float32") - mean) / std,
        t_test,
        np.asarray(y_test, "int64"),
        codes,
    )


# ---------------------------------------------------------------------------- one run


def build_model(config, grid_size, reconstruction, seed, num_outputs):
    """A compiled `ResetNetwork` for ``config``."""
    model = ResetNetwork(
        num_outputs,
        grid_size=grid_size,
        grid_width=config.grid_width,
        subnetwork=config.subnetwork,
        final_network=config.final_network,
        output_activation="sigmoid" if config.number_task else "softmax",
        grid_dropout=config.grid_dropout,
        # the images are standardised: a linear reconstruction
        reconstruction={"output_activation": "linear"} if reconstruction else False,
        reconstruction_weight=config.reconstruction_weight,
        seed=seed,
        name=f"reset{grid_size}",
    )
    loss = "binary_crossentropy" if config.number_task else "sparse_categorical_crossentropy"
    model.compile(keras.optimizers.Adam(config.learning_rate), loss)
    return model


def accuracy(config, model, data):
    """Held-out accuracy: the class of the largest output, or for the number task
    the digit whose number code is nearest (Euclidean) to the outputs."""
    _, _, x_eval, _, y_eval, codes = data
    outputs = model.predict(x_eval, batch_size=512, verbose=0)
    if codes is None:
        predicted = np.argmax(outputs, axis=1)
    else:
        distances = np.sum((outputs[:, None, :] - codes[None]) ** 2, axis=2)
        predicted = np.argmin(distances, axis=1)
    return float(np.mean(predicted == y_eval))


def run_network(config, data, grid_size, reconstruction, run):
    """Train one ``Reset(grid_size)``; its accuracy, index curves and grid usage."""
    from tfemergent.callbacks.reset_tensorboard import ResetTensorBoard

    x_train, t_train, x_eval, _, y_eval, codes = data
    num_outputs = codes.shape[1] if codes is not None else int(np.max(y_eval)) + 1
    model = build_model(config, grid_size, reconstruction, run, num_outputs)
    name = f"reset{grid_size}{'-reconstruction' if reconstruction else ''}-run{run}"
    callback = ResetTensorBoard(
        os.path.join(config.logdir, name) if config.logdir else None,
        images=x_eval,
        labels=y_eval,
        update_freq=config.index_every,
        threshold=config.threshold,
        num_shuffles=config.num_shuffles,
        similarity="number" if config.number_task else None,
        seed=run,
        keep_maps=True,
    )
    start = time.perf_counter()
    # The model is seeded by ``run``; the shuffle too (no global seed is set).
    batches = tools.shuffled_batches((x_train, t_train), config.batch_size, seed=run)
    history = model.fit(
        batches, epochs=config.epochs, shuffle=False, verbose=0, callbacks=[callback]
    ).history
    train_seconds = time.perf_counter() - start
    grids = model.grid_activations(x_eval)
    usage = grid_usage(grids)
    curves = callback.history
    final = curves[-1]
    result = {
        "grid_size": grid_size,
        "reconstruction": reconstruction,
        "run": run,
        "accuracy": accuracy(config, model, data),
        "final_loss": float(history["loss"][-1]),
        "index_epochs": [int(entry["epoch"]) + 1 for entry in curves],
        "clustering_index": [float(entry["clustering_index"]) for entry in curves],
        "preferring_units": [float(entry["preferring_units"]) for entry in curves],
        "final_clustering_index": float(final["clustering_index"]),
        "final_preferring_units": float(final["preferring_units"]),
        "evenness": usage["evenness"],
        "gini": usage["gini"],
        "polarised_fraction": usage["polarised_fraction"],
        "activity": np.round(usage["activity"], 4).tolist(),
        "preference_map": np.asarray(callback.preference_maps[-1]).tolist(),
        "train_seconds": train_seconds,
    }
    if config.number_task:
        result["topography_index"] = [float(entry["topography_index"]) for entry in curves]
        result["final_topography_index"] = float(final["topography_index"])
    if reconstruction:
        result["reconstruction_loss"] = float(history["reconstruction_loss"][-1])
    return result


# ---------------------------------------------------------------------------- summary


def summarise(results, config):
    """One row per (n, reconstruction): means (and SDs over runs) and the paper's claims."""
    rows = []
    keys = sorted({(r["grid_size"], r["reconstruction"]) for r in results})
    for grid_size, reconstruction in keys:
        group = [r for r in results
                 if (r["grid_size"], r["reconstruction"]) == (grid_size, reconstruction)]
        row = {"grid_size": grid_size, "reconstruction": reconstruction, "runs": len(group)}
        for key in ("accuracy", "final_clustering_index", "final_preferring_units",
                    "evenness", "gini", "polarised_fraction", "train_seconds"):
            row[key], row[key + "_sd"] = tools.mean_std([r[key] for r in group], ddof=1)
        if config.number_task:
            row["final_topography_index"], row["final_topography_index_sd"] = tools.mean_std(
                [r["final_topography_index"] for r in group], ddof=1
            )
        rows.append(row)
    header = f"{'network':>22s} {'accuracy':>9s} {'clustering':>16s}"
    if config.number_task:
        header += f" {'topography':>16s}"
    header += f" {'preferring':>10s} {'evenness':>8s} {'gini':>6s} {'time':>7s}"
    lines = [f"Reset networks on {config.dataset}, {config.grid_width} x {config.grid_width} grid",
             header]
    for row in rows:
        name = f"Reset({row['grid_size']}, {config.grid_width})" + (
            " + rec." if row["reconstruction"] else ""
        )
        line = (f"{name:>22s} {100 * row['accuracy']:8.2f}% "
                f"{row['final_clustering_index']:7.3f} ± {row['final_clustering_index_sd']:5.3f}")
        if config.number_task:
            line += (f" {row['final_topography_index']:7.3f} ± "
                     f"{row['final_topography_index_sd']:5.3f}")
        line += (f" {100 * row['final_preferring_units']:9.1f}% {row['evenness']:8.3f} "
                 f"{row['gini']:6.3f} {row['train_seconds']:6.0f}s")
        lines.append(line)
    claims = [PAPER_CLAIMS["topography" if config.number_task else "clustering"]]
    if config.reconstruction:
        claims.append(PAPER_CLAIMS["reconstruction"])
    lines += ["paper: " + claim for claim in claims]
    return {"rows": rows, "table": "\n".join(lines)}


def plot_curves(results, config, path):
    """Index curves over training, one line per network (mean over runs)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["clustering_index"] + (["topography_index"] if config.number_task else [])
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    keys = sorted({(r["grid_size"], r["reconstruction"]) for r in results})
    for axis, panel in zip(axes[0], panels):
        for grid_size, reconstruction in keys:
            group = [r for r in results
                     if (r["grid_size"], r["reconstruction"]) == (grid_size, reconstruction)]
            curve = np.mean([r[panel] for r in group], axis=0)
            label = f"Reset({grid_size})" + (" + rec." if reconstruction else "")
            axis.plot(group[0]["index_epochs"], curve, marker="o", markersize=3, label=label,
                      linestyle="--" if reconstruction else "-")
        axis.axhline(0.0, color="grey", linewidth=0.8)
        axis.set_xlabel("epoch")
        axis.set_ylabel(panel.replace("_", " "))
        axis.set_title(f"{config.dataset}: {panel.replace('_', ' ')}")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_preference_maps(results, config, path):
    """The final preference map of the first run of every network, with a class legend.

    Units are drawn in `plotting.class_colours` of the class they prefer and in
    `plotting.NO_PREFERENCE_COLOUR` (labelled "none" in the legend) when they prefer
    none; white lines separate the sub-networks' blocks.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    firsts = [r for r in results if r["run"] == min(config.seeds)]
    num_classes = max(
        [10] + [int(np.max(r["preference_map"])) + 1 for r in firsts if np.size(r["preference_map"])]
    )
    colours = plotting.class_colours(num_classes, ordered=config.number_task)
    figure, axes = plt.subplots(1, len(firsts), figsize=(2.6 * len(firsts) + 1.2, 3.1),
                                squeeze=False)
    for axis, result in zip(axes[0], firsts):
        preference = np.asarray(result["preference_map"])
        image = np.empty(preference.shape + (3,))
        image[...] = to_rgb(plotting.NO_PREFERENCE_COLOUR)
        for label in range(num_classes):
            image[preference == label] = to_rgb(colours[label])
        axis.imshow(image, interpolation="nearest")
        block = config.grid_width // result["grid_size"]
        for edge in range(block, config.grid_width, block):
            axis.axhline(edge - 0.5, color="white", linewidth=0.6)
            axis.axvline(edge - 0.5, color="white", linewidth=0.6)
        suffix = " + rec." if result["reconstruction"] else ""
        axis.set_title(f"Reset({result['grid_size']}){suffix}", fontsize=9)
        axis.set_xlabel("grid column", fontsize=7)
        axis.set_ylabel("grid row", fontsize=7)
        axis.set_xticks([])
        axis.set_yticks([])
    handles = [Patch(color=plotting.NO_PREFERENCE_COLOUR, label="none")] + [
        Patch(color=colour, label=str(label)) for label, colour in enumerate(colours)
    ]
    figure.legend(handles=handles, loc="center right", fontsize=7, title="preferred class",
                  title_fontsize=7, frameon=False)
    figure.suptitle(
        f"{config.dataset}: preferred class per grid unit after {config.epochs} epochs "
        f"(seed {min(config.seeds)}; d′ threshold {config.threshold:g})",
        fontsize=9,
    )
    figure.tight_layout(rect=(0, 0, 1 - 1.1 / (2.6 * len(firsts) + 1.2), 1))
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------------------- entry points


def run(config):
    """Run the experiment; returns ``{"results": [...], "summary": {...}, "table": str}``."""
    tools.check_config(config, ResetConfig)
    data = load_data(config)
    with tools.quiet_tensorflow_logger():
        return _run(config, data)


def _run(config, data):
    results = []
    variants = [False, True] if config.reconstruction else [False]
    for grid_size in config.grid_sizes:
        for reconstruction in variants:
            for run_index in config.seeds:
                result = run_network(config, data, grid_size, reconstruction, run_index)
                results.append(result)
                if config.verbose:
                    extra = (f", topography {result['final_topography_index']:.3f}"
                             if config.number_task else "")
                    print(
                        f"Reset({grid_size}, {config.grid_width})"
                        f"{' + reconstruction' if reconstruction else ''} run {run_index}: "
                        f"accuracy {100 * result['accuracy']:.2f}%, clustering "
                        f"{result['final_clustering_index']:.3f}{extra}, evenness "
                        f"{result['evenness']:.3f} ({result['train_seconds']:.0f} s)",
                        flush=True,
                    )
    summary = summarise(results, config)
    if config.plots:
        plot_curves(results, config,
                    tools.output_path(config.plots, f"indices_{config.dataset}.png"))
        plot_preference_maps(
            results, config, tools.output_path(config.plots, f"preferences_{config.dataset}.png")
        )
    return tools.finish(results, summary["table"], config.verbose,
                        summary={"rows": summary["rows"]})


def add_arguments(parser):
    """Command-line arguments of ``tfemergent run reset``."""
    parser.add_argument("--dataset", default="digits", choices=DATASETS,
                        help="digits (embedded, default), mnist, fashion_mnist, cifar10, or "
                             "number_topography (the number task; needs a local data "
                             "directory)")
    parser.add_argument("--grid-sizes", type=tools.comma_separated(int, minimum=1), default=None,
                        help="comma-separated n (default: 1,2,4 on digits, 1,2,4,8 otherwise)")
    parser.add_argument("--grid-width", type=int, default=None,
                        help="m (default: 16 on digits, 32 (paper) otherwise)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs (default: 8 on digits, 20 (paper) otherwise)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="training batch size (default: 64)")
    parser.add_argument("--grid-dropout", type=float, default=0.5,
                        help="dropout on the grid (default and paper: 0.5)")
    parser.add_argument("--reconstruction", action="store_true",
                        help="also train every n with a reconstruction head")
    parser.add_argument("--num-train", type=int, default=None,
                        help="training images used (default: all)")
    parser.add_argument("--num-eval", type=int, default=None,
                        help="held-out test images the indices are computed on (default: all)")
    parser.add_argument("--num-shuffles", type=int, default=20,
                        help="shuffled maps of each index's control (default: 20)")
    tools.add_seeds_argument(parser, deprecated=("runs",))


def config_from_args(args):
    """Build a `ResetConfig` from parsed command-line arguments."""
    small = args.dataset == "digits"
    return ResetConfig(
        dataset=args.dataset,
        grid_sizes=tools.or_default(args.grid_sizes, (1, 2, 4) if small else (1, 2, 4, 8)),
        grid_width=tools.or_default(args.grid_width, 16 if small else 32),
        epochs=tools.or_default(args.epochs, 8 if small else 20),
        batch_size=args.batch_size,
        grid_dropout=args.grid_dropout,
        reconstruction=args.reconstruction,
        num_train=args.num_train,
        num_eval=args.num_eval,
        num_shuffles=args.num_shuffles,
        seeds=tools.seeds_from_args(args),
        **tools.common_options(args, OPTIONS),
    )
