"""Experiment ``hierarchy``: Borgohain et al.'s self-organising hierarchy (section 1).

Three units of 100 on a 20 x 40 feature map (MNIST centre-cropped to 20 x 20,
windows of 10 x 10). Table 1 trains each handcrafted and three random
topologies and scores their codes with a logistic-regression probe; Table 2
starts from random topologies and lets the entropy hill climber move the
receptive fields, retraining with retained weights after each move.
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from tfemergent import datasets
from tfemergent.models import _runner_tools as tools
from tfemergent.models.hierarchy.self_organising_hierarchy import SelfOrganisingHierarchy
from tfemergent.probes.logistic_regression_probe import LogisticRegressionProbe
from tfemergent.search import HillClimbing, ReceptiveFieldSpace, SearchRunner
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

NAME = "hierarchy"
DESCRIPTION = (
    "Self-organising hierarchy (Borgohain et al.): autoencoder units on a feature map, "
    "handcrafted vs random topologies (Table 1) and entropy hill climbing (Table 2)."
)
# The options of `tfemergent run` this experiment uses (see `tools.COMMON_OPTIONS`).
OPTIONS = ("data_dir", "logdir", "plots")
DATASETS = ("digits", "mnist", "cifar10")
PARTS = ("table1", "table2")
ACCEPTANCES = ("part", "controlled")
TOPOLOGY_FILE = "topology.json"
PAPER_TABLE1 = {
    "mnist": {"flat": 96.4, "columnar": 94.21, "pyramidal": 96.6, "random": (93.03, 93.76, 90.28)},
    "cifar10": {"flat": 31.69, "columnar": 30.79, "pyramidal": 32.84, "random": (31.97, 27.21, 29.86)},
}
PAPER_TABLE2 = {
    "mnist": {"initial": 91.24, "final": 92.40, "max": 96.22, "p": 0.009},
    "cifar10": {"initial": 33.12, "final": 32.46, "max": 35.02, "p": 0.869},
}
PAPER_PEARSON = {"mnist": 0.75, "cifar10": 0.48}
WEIGHTS_FILE = "hierarchy.weights.h5"
# Configuration fields whose command-line flag has another name (for error messages).
FLAGS = {"directory": "--search-dir"}


@dataclasses.dataclass
class HierarchyConfig:
    """Configuration of ``hierarchy``.

    The defaults are the short run of ``tfemergent run hierarchy``: the embedded
    8 x 8 digits (windows of 4, codes of 16, so the map is 8 x 16 and the
    handcrafted topologies keep their shape). The paper's setting is
    ``dataset="mnist"`` with ``window_size=10, num_hidden=100``.

    Attributes:
        dataset: ``"digits"`` (embedded), ``"mnist"`` (centre crop 20 x 20) or
            ``"cifar10"`` (gray, resized to 20 x 20); None when the data are
            passed directly (`HierarchyTrial`, `run_topology`,
            `run_hill_climbing` take them) and `run` is not used.
        data_dir: local data directory for MNIST / CIFAR-10 (None: tfds or
            ``TFEMERGENT_DATA_DIR``).
        part: ``"table1"`` (topologies) or ``"table2"`` (hill climbing).
        topologies: Table 1's topologies: names, ``"random:<seed>"`` entries.
        runs: runs per topology (Table 1) or hill-climbing runs (Table 2), with
            the seeds ``0, ..., runs - 1``; used only when ``seeds`` is None.
        seeds: the seeds of the runs, one run each (None: ``range(runs)``);
            ``runs`` becomes their number.
        num_units: K, the autoencoder units (paper: 3). Their codes sit where
            `tfemergent.geometry.HierarchyLayout` puts them (``num_units`` code
            blocks to the right of the image); the handcrafted topologies exist
            for the paper's 3 units only, other ``num_units`` use random
            topologies (``"random:<seed>"``) or explicit fields.
        num_hidden, window_size: the units (paper: 100, 10).
        dropout, l2, learning_rate, batch_size: base learning (Adam).
        epochs: training epochs of a Table 1 run and of Table 2's initial
            topology.
        meta_steps, epochs_per_step: Table 2: meta-steps M and the retraining
            epochs after each move.
        acceptance: Table 2's rule: ``"part"`` (Algorithm 2 as the paper states
            it: the moved unit's entropy after the retraining against the
            best's before it) or ``"controlled"`` (against a paired control:
            the unmoved best retrained for the same epochs from the same
            weights, optimizer state and batches; see `HillClimbing`).
        num_train: training images used (None: all).
        probe_train: images the probe is fitted on (None: all ``num_train``);
            it is scored on the whole test split.
        probe_max_iter: lbfgs iterations of the probe.
        directory: where Table 2 keeps its resumable searches (None: a
            temporary directory per run).
        logdir: TensorBoard directory (`HierarchyTensorBoard`: entropies,
            losses, feature maps, receptive fields): one run per Table 1 run
            (``<topology>-run<k>``) or per hill-climbing trial
            (``run<k>/trial<id>``). None: no logs.
        plots: directory for the trajectory plot (Table 2).
        verbose: 0 silent, 1 one line per run and the tables.
    """

    dataset: str = "digits"
    data_dir: str = None
    part: str = "table1"
    topologies: tuple = ("flat", "columnar", "pyramidal", "random:1", "random:2", "random:3")
    runs: int = 2
    seeds: tuple = None
    num_units: int = 3
    num_hidden: int = 16
    window_size: int = 4
    dropout: float = 0.0
    l2: float = 0.0
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 5
    meta_steps: int = 5
    epochs_per_step: int = 1
    acceptance: str = "part"
    num_train: int = None
    probe_train: int = None
    probe_max_iter: int = 300
    directory: str = None
    logdir: str = None
    plots: str = None
    verbose: int = 1

    def __post_init__(self):
        if self.dataset is not None:
            validate_choice("dataset", self.dataset, DATASETS)
        validate_choice("part", self.part, PARTS)
        self.topologies = tuple(self.topologies)
        for topology in self.topologies:
            name, _, seed = str(topology).partition(":")
            if name not in ("flat", "columnar", "pyramidal", "random") or (
                name == "random" and not seed.isdigit()
            ):
                raise ValueError(
                    "Argument `topologies` must hold 'flat', 'columnar', 'pyramidal' or "
                    f"'random:<seed>'. Received: topologies={self.topologies!r}"
                )
        self.num_units = validate_int("num_units", self.num_units, minimum=1)
        handcrafted = [t for t in self.topologies if not str(t).startswith("random")]
        if self.num_units != 3 and self.part == "table1" and handcrafted:
            raise ValueError(
                "Argument `topologies` may name the handcrafted topologies only for the "
                f"paper's 3 units; with num_units={self.num_units} give Table 1 random "
                "topologies ('random:<seed>'). "
                f"Received: topologies={self.topologies!r}"
            )
        validate_choice("acceptance", self.acceptance, ACCEPTANCES)
        self.runs = validate_int("runs", self.runs, minimum=1)
        self.seeds = tools.validate_seeds(self.seeds, self.runs)
        self.runs = len(self.seeds)
        self.num_hidden = validate_int("num_hidden", self.num_hidden, minimum=1)
        self.window_size = validate_int("window_size", self.window_size, minimum=1)
        self.dropout = validate_float("dropout", self.dropout, minimum=0.0, maximum=0.99)
        self.l2 = validate_float("l2", self.l2, minimum=0.0)
        self.learning_rate = validate_float(
            "learning_rate", self.learning_rate, minimum=0.0, min_inclusive=False
        )
        self.batch_size = validate_int("batch_size", self.batch_size, minimum=1)
        self.epochs = validate_int("epochs", self.epochs, minimum=1)
        self.meta_steps = validate_int("meta_steps", self.meta_steps, minimum=0)
        self.epochs_per_step = validate_int("epochs_per_step", self.epochs_per_step, minimum=1)
        self.num_train = validate_int("num_train", self.num_train, minimum=10, allow_none=True)
        self.probe_train = validate_int(
            "probe_train", self.probe_train, minimum=10, allow_none=True
        )
        self.probe_max_iter = validate_int("probe_max_iter", self.probe_max_iter, minimum=1)


# ---------------------------------------------------------------------------- data


def load_images(dataset, data_dir=None, num_train=None):
    """``(x_train, y_train, x_test, y_test)`` preprocessed as in the paper.

    MNIST: centre crop 28 -> 20, pixels / 255 (the min-max to [0, 1]).
    CIFAR-10: gray (ITU-R 601 luma), resized 32 -> 20 by area averaging (our
    choice: the paper does not say how its windows cover a 32 x 32 image), / 255;
    the paper's augmentation is not used. digits: the embedded 8 x 8 images / 255.
    """
    x_train, y_train = datasets.load_numpy(dataset, "train", data_dir)
    x_test, y_test = datasets.load_numpy(dataset, "test", data_dir)
    if num_train is not None:
        x_train, y_train = x_train[:num_train], y_train[:num_train]

    def prepare(images):
        images = np.asarray(images, "float32")
        if dataset == "mnist":
            return images[:, 4:24, 4:24, 0] / 255.0
        if dataset == "cifar10":
            gray = images @ np.array([0.299, 0.587, 0.114], "float32")
            resized = keras.ops.image.resize(gray[..., None], (20, 20), interpolation="area")
            return np.asarray(resized)[..., 0] / 255.0
        return images[..., 0] / 255.0

    return prepare(x_train), np.asarray(y_train), prepare(x_test), np.asarray(y_test)


# ---------------------------------------------------------------------------- one run


def build_model(config, image_shape, topology, seed):
    """A compiled `SelfOrganisingHierarchy` for ``config``."""
    name, _, topology_seed = topology.partition(":") if isinstance(topology, str) else (None,) * 3
    model = SelfOrganisingHierarchy(
        image_shape,
        num_units=config.num_units,
        num_hidden=config.num_hidden,
        window_size=config.window_size,
        topology=name if name else topology,
        topology_seed=int(topology_seed) if topology_seed else None,
        dropout=config.dropout,
        l2=config.l2,
        seed=seed,
    )
    model.compile(keras.optimizers.Adam(config.learning_rate))
    return model


def probe_accuracy(config, model, data, seed):
    """Test accuracy of the logistic-regression probe on the model's codes."""
    x_train, y_train, x_test, y_test = data
    probe = LogisticRegressionProbe(
        max_iter=config.probe_max_iter, max_train_samples=config.probe_train, seed=seed
    )
    scores = probe.fit_score(
        model.predict(x_train, batch_size=1024, verbose=0),
        y_train,
        model.predict(x_test, batch_size=1024, verbose=0),
        y_test,
    )
    return scores["test_accuracy"]


def _callbacks(config, data, *parts):
    """A `HierarchyTensorBoard` writing to ``logdir/<parts>`` when ``config.logdir``."""
    if not config.logdir:
        return []
    from tfemergent.callbacks.hierarchy_tensorboard import HierarchyTensorBoard

    return [HierarchyTensorBoard(os.path.join(config.logdir, *parts), images=data[0][:8])]


def run_topology(config, data, topology, run):
    """Table 1: train one topology once; accuracy and entropies."""
    model = build_model(config, data[0].shape[1:], topology, seed=run)
    start = time.perf_counter()
    history = model.fit(
        tools.shuffled_batches(data[0], config.batch_size, seed=run),
        shuffle=False,  # the batches are shuffled already (seeded)
        epochs=config.epochs,
        verbose=0,
        callbacks=_callbacks(config, data, f"{topology.replace(':', '')}-run{run}"),
    ).history
    train_seconds = time.perf_counter() - start
    start = time.perf_counter()
    accuracy = probe_accuracy(config, model, data, seed=run)
    return {
        "topology": topology,
        "run": run,
        "receptive_fields": [[list(w) for w in f] for f in model.receptive_fields],
        "accuracy": accuracy,
        "max_entropy": float(np.max(history["entropy"])),
        "final_entropy": float(history["entropy"][-1]),
        "unit_entropies": [
            float(history[f"unit_{k}_entropy"][-1]) for k in range(model.num_units)
        ],
        "train_seconds": train_seconds,
        "probe_seconds": time.perf_counter() - start,
    }


class HierarchyTrial:
    """Evaluates one hill-climbing trial (Algorithm 2's "train meta-network").

    Builds the model, loads the weights of the parent trial (the current best)
    if there is one, moves the receptive fields to the trial's topology (all
    weights retained), trains (``epochs`` for trial 0, else
    ``epochs_per_step``; Adam's moments also continue from the parent), saves the
    weights and the topology into the trial's directory and
    returns the per-unit entropies of the last epoch as the fitness, with the
    probe accuracy. Deterministic given the trial: ``trial.seed`` seeds the
    initializers, the dropout, the batches and the probe.

    With ``config.acceptance == "controlled"``, a candidate (any trial with a
    parent) also trains its paired control: the parent's topology, unmoved,
    from the same weights and optimizer state, for the same epochs on the same
    batches; its per-unit entropies are ``"control_fitness"``, which
    `HillClimbing(acceptance="controlled")` compares the moved unit's entropy
    with. The control costs a second training per candidate and is not kept.
    """

    def __init__(self, config, data, log_name="search"):
        self.config = config
        self.data = data
        self.log_name = log_name

    def _train(self, topology, trial, epochs, callbacks=()):
        config = self.config
        model = build_model(config, self.data[0].shape[1:], topology, seed=trial.seed)
        if trial.parent_directory is not None:
            # Weights and Adam moments continue from the parent (the current best).
            model.optimizer.build(model.trainable_variables)
            model.load_weights(os.path.join(trial.parent_directory, WEIGHTS_FILE))
            model.set_topology(topology)
        history = model.fit(
            tools.shuffled_batches(self.data[0], config.batch_size, seed=trial.seed),
            shuffle=False,  # the batches are shuffled already (seeded)
            epochs=epochs,
            verbose=0,
            callbacks=list(callbacks),
        ).history
        entropies = [float(history[f"unit_{k}_entropy"][-1]) for k in range(model.num_units)]
        return model, entropies

    def _parent_topology(self, trial):
        path = os.path.join(trial.parent_directory, TOPOLOGY_FILE)
        if not os.path.exists(path):
            raise ValueError(
                "acceptance='controlled' retrains the parent's topology, which the parent "
                f"trial's directory must hold as {TOPOLOGY_FILE} (written by this version; a "
                "search started by an older one cannot switch rules). "
                f"Received: parent_directory={trial.parent_directory!r}"
            )
        with open(path) as handle:
            return json.load(handle)

    def __call__(self, trial):
        config = self.config
        epochs = config.epochs if trial.parent is None else config.epochs_per_step
        start = time.perf_counter()
        callbacks = _callbacks(config, self.data, self.log_name, f"trial{trial.trial_id}")
        model, fitness = self._train(trial.params, trial, epochs, callbacks)
        train_seconds = time.perf_counter() - start
        if trial.directory is not None:
            model.save_weights(os.path.join(trial.directory, WEIGHTS_FILE))
            with open(os.path.join(trial.directory, TOPOLOGY_FILE), "w") as handle:
                json.dump([[[int(v) for v in corner] for corner in field]
                           for field in model.receptive_fields], handle)
        result = {
            "fitness": fitness,
            "entropy": float(np.sum(fitness)),
            "accuracy": probe_accuracy(config, model, self.data, seed=trial.seed),
            "train_seconds": train_seconds,
        }
        if config.acceptance == "controlled" and trial.parent_directory is not None:
            start = time.perf_counter()
            _, control = self._train(self._parent_topology(trial), trial, epochs)
            result["control_fitness"] = control
            result["control_seconds"] = time.perf_counter() - start
        return result


def run_hill_climbing(config, data, run, directory):
    """Table 2: one hill-climbing run from random topology ``run``."""
    space = ReceptiveFieldSpace(
        data[0].shape[1:], num_units=config.num_units, num_hidden=config.num_hidden,
        window_size=config.window_size,
    )
    strategy = HillClimbing(space, num_steps=config.meta_steps, seed=run,
                            acceptance=config.acceptance)
    runner = SearchRunner(
        strategy, HierarchyTrial(config, data, f"run{run}"), directory=directory, verbose=0
    )
    start = time.perf_counter()
    result = runner.run()
    seconds = time.perf_counter() - start
    results = {trial.trial_id: r for trial, r in result.history}
    trajectory = []  # accuracy of the best topology after each meta-step
    best_by_step = {}
    for record in strategy.history:
        best_by_step[record["meta_step"]] = record["best_trial_id"]
    for step in sorted(best_by_step):
        trajectory.append(results[best_by_step[step]]["accuracy"])
    first = result.history[0]
    # Every candidate's moved unit: its entropy, the best's before the move (what
    # Algorithm 2 compares) and its paired control's (with acceptance="controlled").
    trials = {trial.trial_id: trial for trial, _ in result.history}
    moves = []
    for record in strategy.history[1:]:
        trial, part = trials[record["trial_id"]], record["part"]
        entry = results[record["trial_id"]]
        parent = results.get(trial.parent, {})
        move = {
            "trial_id": record["trial_id"], "meta_step": record["meta_step"], "part": part,
            "accepted": record["accepted"],
            "entropy": entry["fitness"][part] if entry.get("fitness") else None,
            "best_entropy": parent["fitness"][part] if parent.get("fitness") else None,
        }
        if "control_fitness" in entry:
            move["control_entropy"] = entry["control_fitness"][part]
        moves.append(move)
    return {
        "run": run,
        "acceptance": config.acceptance,
        "initial_topology": first[0].params,
        "final_topology": result.best_trial.params,
        "initial_accuracy": first[1]["accuracy"],
        "final_accuracy": result.best_result["accuracy"],
        "initial_entropy": first[1]["entropy"],
        "final_entropy": result.best_result["entropy"],
        "trajectory": trajectory,
        "num_trials": len(result.history),
        "num_accepted": sum(1 for r in strategy.history if r["accepted"]) - 1,
        "moves": moves,
        "seconds": seconds,
    }


# ---------------------------------------------------------------------------- tables


def summarise_table1(results, dataset):
    """Mean accuracy per topology, Pearson r(max entropy, accuracy), Markdown table."""
    from scipy import stats

    paper = PAPER_TABLE1.get(dataset)
    table_rows = []
    random_index = 0
    summary = {}
    for topology in dict.fromkeys(r["topology"] for r in results):
        rows = [r for r in results if r["topology"] == topology]
        accuracy = 100 * np.array([r["accuracy"] for r in rows])
        entropy = np.array([r["max_entropy"] for r in rows])
        reference = "-"
        if paper is not None:
            if topology.startswith("random"):
                if random_index < len(paper["random"]):
                    reference = f"{paper['random'][random_index]}"
                random_index += 1
            else:
                reference = f"{paper[topology]}"
        summary[topology] = {"accuracy": float(accuracy.mean()), "max_entropy": float(entropy.mean())}
        table_rows.append(
            [topology, tools.format_mean_std(tools.mean_std(accuracy), digits=2),
             f"{entropy.mean():.3f}", len(rows), reference]
        )
    lines = [tools.markdown_table(
        ["topology", "accuracy % (mean ± std)", "max entropy (mean)", "runs", "paper %"],
        table_rows,
    )]
    pearson = float("nan")
    if len(results) > 2:
        pearson = float(
            stats.pearsonr([r["max_entropy"] for r in results], [r["accuracy"] for r in results])[0]
        )
    lines.append("")
    lines.append(
        f"Pearson r(max entropy, accuracy) over all {len(results)} runs: {pearson:.2f}"
        + (f" (paper: {PAPER_PEARSON[dataset]})" if dataset in PAPER_PEARSON else "")
    )
    return {"topologies": summary, "pearson_r": pearson, "table": "\n".join(lines)}


def summarise_table2(results, dataset):
    """Median initial and final accuracy, max, one-sided Wilcoxon p, Markdown table."""
    from scipy import stats

    initial = 100 * np.array([r["initial_accuracy"] for r in results])
    final = 100 * np.array([r["final_accuracy"] for r in results])
    p_value = float("nan")
    if len(results) > 1 and np.any(final != initial):
        p_value = float(stats.wilcoxon(final, initial, alternative="greater").pvalue)
    paper = PAPER_TABLE2.get(dataset)
    rows = [["ours", f"{np.median(initial):.2f}", f"{np.median(final):.2f}",
             f"{final.max():.2f}", f"{p_value:.3f}", len(results)]]
    if paper is not None:
        rows.append(["paper", paper["initial"], paper["final"], paper["max"], paper["p"], 10])
    table = tools.markdown_table(
        ["", "median initial %", "median final %", "max %", "one-sided Wilcoxon p", "runs"], rows
    )
    return {
        "median_initial": float(np.median(initial)),
        "median_final": float(np.median(final)),
        "max": float(final.max()),
        "p_value": p_value,
        "table": table,
    }


def plot_trajectories(results, path):
    """Accuracy of the best topology per meta-step, one line per run (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.5))
    for r in results:
        axes.plot(range(len(r["trajectory"])), 100 * np.array(r["trajectory"]), marker="o",
                  label=f"run {r['run']}")
    axes.set_xlabel("meta-step")
    axes.set_ylabel("probe test accuracy (%)")
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------------------- entry points


def run(config):
    """Run the experiment; returns ``{"results": [...], "summary": {...}, "table": str}``."""
    tools.check_config(config, HierarchyConfig)
    if config.dataset is None:
        raise ValueError(
            "`run` loads its data by name, so the config needs a dataset; with your own "
            "images call run_topology / run_hill_climbing (or HierarchyTrial) with them. "
            "Received: config.dataset=None"
        )
    data = load_images(config.dataset, config.data_dir, config.num_train)
    with tools.quiet_tensorflow_logger():
        return _run(config, data)


def _run(config, data):
    results = []
    if config.part == "table1":
        for topology in config.topologies:
            for run_index in config.seeds:
                result = run_topology(config, data, topology, run_index)
                results.append(result)
                if config.verbose:
                    print(
                        f"{topology} run {run_index}: accuracy {100 * result['accuracy']:.2f}%, "
                        f"max entropy {result['max_entropy']:.3f} "
                        f"({result['train_seconds']:.0f} s training, "
                        f"{result['probe_seconds']:.0f} s probe)",
                        flush=True,
                    )
        summary = summarise_table1(results, config.dataset)
    else:
        import tempfile

        for run_index in config.seeds:
            with tempfile.TemporaryDirectory() as scratch:
                directory = (
                    os.path.join(config.directory, f"run{run_index}")
                    if config.directory
                    else scratch
                )
                result = run_hill_climbing(config, data, run_index, directory)
            results.append(result)
            if config.verbose:
                print(
                    f"hill climbing run {run_index}: accuracy {100 * result['initial_accuracy']:.2f}%"
                    f" -> {100 * result['final_accuracy']:.2f}%, entropy "
                    f"{result['initial_entropy']:.3f} -> {result['final_entropy']:.3f}, "
                    f"{result['num_accepted']} moves accepted in {result['num_trials']} trials "
                    f"({result['seconds']:.0f} s)",
                    flush=True,
                )
        summary = summarise_table2(results, config.dataset)
        if config.plots:
            plot_trajectories(results, tools.output_path(config.plots,
                                                         f"trajectory_{config.dataset}.png"))
    return tools.finish(
        results,
        summary["table"],
        config.verbose,
        summary={k: v for k, v in summary.items() if k != "table"},
    )


def add_arguments(parser):
    """Command-line arguments of ``tfemergent run hierarchy``."""
    parser.add_argument("--dataset", default="digits", choices=DATASETS,
                        help="digits (embedded, default), mnist (centre crop 20 x 20) or "
                             "cifar10 (gray, 20 x 20)")
    parser.add_argument("--part", default="table1", choices=PARTS,
                        help="table1: handcrafted and random topologies (default); "
                             "table2: entropy hill climbing")
    parser.add_argument("--topologies", type=tools.comma_separated(),
                        default=HierarchyConfig.topologies,
                        help="Table 1's comma-separated topologies: flat, columnar, pyramidal, "
                             "random:<seed> (default: all three and random:1,2,3)")
    tools.add_seeds_argument(parser, default=(0, 1), deprecated=("runs",))
    parser.add_argument("--num-hidden", type=int, default=None,
                        help="hidden units per autoencoder unit (default: 16 on digits, "
                             "100 (paper) otherwise)")
    parser.add_argument("--window-size", type=int, default=None,
                        help="receptive-field window side (default: 4 on digits, 10 "
                             "(paper) otherwise)")
    parser.add_argument("--dropout", type=float, default=0.0,
                        help="dropout rate on each code in the reconstruction (default: 0)")
    parser.add_argument("--l2", type=float, default=0.0,
                        help="L2 cost on each unit's field weights (default: 0)")
    parser.add_argument("--epochs", type=int, default=5,
                        help="epochs of a Table 1 run and of Table 2's initial topology "
                             "(default: 5)")
    parser.add_argument("--meta-steps", type=int, default=5,
                        help="Table 2: hill-climbing meta-steps M (default: 5)")
    parser.add_argument("--epochs-per-step", type=int, default=1,
                        help="Table 2: retraining epochs after each move (default: 1)")
    parser.add_argument("--acceptance", default="part", choices=ACCEPTANCES,
                        help="Table 2's rule: part (Algorithm 2: the moved unit's entropy "
                             "against the best's, default) or controlled (against the unmoved "
                             "network retrained the same way)")
    parser.add_argument("--num-units", type=int, default=3,
                        help="autoencoder units K (default and paper: 3; other values need "
                             "random topologies in Table 1)")
    parser.add_argument("--num-train", type=int, default=None,
                        help="training images used (default: all)")
    parser.add_argument("--probe-train", type=int, default=None,
                        help="images the probe is fitted on (default: all training images)")
    parser.add_argument("--search-dir", default=None,
                        help="keep Table 2's searches here (resumable)")


def config_from_args(args):
    """Build a `HierarchyConfig` from parsed command-line arguments."""
    small = args.dataset == "digits"
    return HierarchyConfig(
        dataset=args.dataset,
        part=args.part,
        topologies=tuple(args.topologies),
        seeds=tools.seeds_from_args(args),
        num_hidden=tools.or_default(args.num_hidden, 16 if small else 100),
        window_size=tools.or_default(args.window_size, 4 if small else 10),
        dropout=args.dropout,
        l2=args.l2,
        epochs=args.epochs,
        meta_steps=args.meta_steps,
        epochs_per_step=args.epochs_per_step,
        acceptance=args.acceptance,
        num_units=args.num_units,
        num_train=args.num_train,
        probe_train=args.probe_train,
        directory=args.search_dir,
        **tools.common_options(args, OPTIONS),
    )
