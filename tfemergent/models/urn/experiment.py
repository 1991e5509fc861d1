"""Experiment ``urn-spheres``: the emergent MLP of Golkar's URN (section 2).

A URN of S neurons applied I times is trained on two concentric 10-d spherical
shells with L1 costs on the weights (c_W) and on the activity of every
iteration (c_N). Afterwards the active neurons are ordered by the iteration at
which they first activate; the sizes of those groups are the emergent hidden
layers, and the extraction is verified by zeroing every other weight. Each run
ends with the emergent network as a plain Keras model (`extract_urn_network`),
whose summary is printed and which ``--export`` saves.
"""

import dataclasses
import os
import time

import keras
import numpy as np

from tfemergent import analysis, datasets, plotting
from tfemergent.callbacks.urn_tensorboard import URNTensorBoard
from tfemergent.layers.recursive_urn_layer import RecursiveURNLayer
from tfemergent.models import _runner_tools as tools
from tfemergent.models.urn.emergent_network import extract_urn_network
from tfemergent.regularizers.iteration_activity_l1 import IterationActivityL1
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

NAME = "urn-spheres"
DESCRIPTION = (
    "Unstructured recursive network (Golkar): concentric 10-d shells, L1 weight and "
    "activity costs, emergent MLP extracted and verified."
)
# The options of `tfemergent run` this experiment uses (see `tools.COMMON_OPTIONS`).
OPTIONS = ("logdir", "export", "plots")
RESIDUALS = ("none", "output", "input")
# Test samples the structure is logged on with --logdir (URNTensorBoard).
PROBE_SAMPLES = 256
PAPER = "100% test accuracy; 123±15 active neurons; MLP 115±15 / 4±1.4 / 3±0.7 (S=5000, I=4)"


@dataclasses.dataclass
class URNSpheresConfig:
    """Configuration of ``urn-spheres`` (paper: S=5000, 200 epochs; the defaults
    are scaled down: S=1000, 40 epochs).

    Attributes:
        dim: dimension of the shells (paper: 10).
        num_neurons: S (paper: 5000).
        num_iterations: I (paper: 4).
        residual: ``"none"`` (eq. 3), ``"output"`` (eq. 6) or ``"input"`` (eq. 7).
        num_train, num_test: samples (paper: 4000 training samples).
        epochs, batch_size, learning_rate: Adam training (paper: 200 epochs, 7e-4).
        c_w, c_n: L1 costs on the weights and on the activities (paper: 5e-7, 2e-5).
        seeds: one run per seed.
        logdir: TensorBoard directory (None: no logs): Keras' scalars in
            ``<logdir>/seed<k>`` and the emergent structure (`URNTensorBoard`:
            active neurons, forward share, sorted weights, activity) in
            ``<logdir>/seed<k>/structure``.
        export: directory (None: none) for the trained model's SavedModel
            ``seed<k>/`` and the extracted emergent network
            (`extract_urn_network`: plain Keras layers) as
            ``emergent_network_seed<k>.keras`` and SavedModel
            ``emergent_network_seed<k>/``.
        plots: directory for images of the sorted active weight matrix (None: none).
        verbose: 0 silent, 1 one line per run and the table.
    """

    dim: int = 10
    num_neurons: int = 1000
    num_iterations: int = 4
    residual: str = "none"
    num_train: int = 4000
    num_test: int = 1000
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 7e-4
    c_w: float = 5e-7
    c_n: float = 2e-5
    seeds: tuple = (0,)
    logdir: str = None
    export: str = None
    plots: str = None
    verbose: int = 1

    def __post_init__(self):
        self.dim = validate_int("dim", self.dim, minimum=1)
        self.num_neurons = validate_int("num_neurons", self.num_neurons, minimum=self.dim + 2)
        self.num_iterations = validate_int("num_iterations", self.num_iterations, minimum=1)
        validate_choice("residual", self.residual, RESIDUALS)
        self.num_train = validate_int("num_train", self.num_train, minimum=2)
        self.num_test = validate_int("num_test", self.num_test, minimum=2)
        self.epochs = validate_int("epochs", self.epochs, minimum=1)
        self.batch_size = validate_int("batch_size", self.batch_size, minimum=1)
        self.learning_rate = validate_float(
            "learning_rate", self.learning_rate, minimum=0.0, min_inclusive=False
        )
        self.c_w = validate_float("c_w", self.c_w, minimum=0.0)
        self.c_n = validate_float("c_n", self.c_n, minimum=0.0)
        self.seeds = tuple(validate_int("seeds", s, minimum=0) for s in self.seeds)


def build_model(config, seed):
    """A functional model: inputs -> RecursiveURNLayer -> 2 logits."""
    inputs = keras.Input((config.dim,))
    urn = RecursiveURNLayer(
        config.num_neurons,
        config.num_iterations,
        input_dim=config.dim,
        output_dim=2,
        residual=config.residual,
        kernel_regularizer=keras.regularizers.L1(config.c_w) if config.c_w else None,
        state_regularizer=IterationActivityL1(config.c_n) if config.c_n else None,
        seed=seed,
        name="urn",
    )
    model = keras.Model(inputs, urn(inputs))
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def run_one(config, seed):
    """Train one URN and extract its structure; returns a result dict."""
    x, y = datasets.concentric_shells(config.dim, config.num_train + config.num_test, seed=seed)
    x_train, y_train = x[: config.num_train], y[: config.num_train]
    x_test, y_test = x[config.num_train:], y[config.num_train:]
    model = build_model(config, seed)
    callbacks = []
    if config.logdir:
        logdir = os.path.join(config.logdir, f"seed{seed}")
        callbacks.append(keras.callbacks.TensorBoard(logdir))
        # The emergent structure as it forms (active neurons, sorted weights,
        # activity, forward share), on a fixed probe of test samples.
        callbacks.append(URNTensorBoard(
            os.path.join(logdir, "structure"), probe_data=x_test[:PROBE_SAMPLES],
            update_freq=max(1, config.epochs // 20), layer_name="urn",
        ))
    start = time.perf_counter()
    model.fit(
        tools.shuffled_batches((x_train, y_train), config.batch_size, seed=seed),
        shuffle=False,  # the batches are shuffled already (seeded)
        epochs=config.epochs,
        verbose=2 if config.verbose else 0,  # one line per epoch
        callbacks=callbacks,
    )
    seconds = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    structure = analysis.urn_structure_of(model.get_layer("urn"), x_test)
    kernel = keras.ops.convert_to_numpy(model.get_layer("urn").kernel)
    network = extract_urn_network(
        model.get_layer("urn"), x_train, validation_x=x_test, name=f"emergent_network_seed{seed}"
    )
    if config.verbose:
        network.summary()
    if config.export:
        model.export(os.path.join(config.export, f"seed{seed}"), verbose=False)
        # The emergent network on its own: plain Keras layers, loadable without
        # tfemergent (`.keras`) and servable (SavedModel).
        network.save(os.path.join(config.export, f"emergent_network_seed{seed}.keras"))
        network.export(os.path.join(config.export, f"emergent_network_seed{seed}"), verbose=False)
    if config.plots:
        with open(tools.output_path(config.plots, f"weights-seed{seed}.png"), "wb") as handle:
            handle.write(
                plotting.figure_to_png(
                    plotting.plot_sorted_weights(
                        np.sqrt(analysis.sorted_weight_matrix(kernel, structure)),
                        structure.first_active_iteration[structure.order],
                        f"sqrt|W| of the {structure.num_active} active neurons, seed {seed}",
                    )
                )
            )
    return {
        "seed": seed,
        "test_accuracy": float(accuracy),
        "num_active": int(structure.num_active),
        "layer_sizes": [int(s) for s in structure.layer_sizes],
        "forward_share": float(structure.forward),
        "verify_max_change": float(structure.verify_max_change),
        "feedforward_max_change": float(structure.feedforward_max_change),
        "zero_weight_fraction": float(np.mean(kernel == 0.0)),
        "extracted_layer_sizes": [int(size) for size in network.urn_extraction.layer_sizes],
        "extracted_parameters": int(network.count_params()),
        "extracted_max_difference": float(network.urn_extraction.max_difference),
        "train_seconds": seconds,
    }


def format_table(results):
    """The per-seed results as a Markdown table."""
    return tools.markdown_table(
        ["seed", "test acc.", "active neurons", "emergent hidden layers", "forward share",
         "verify max change", "forward-only max change"],
        [
            [r["seed"], f"{r['test_accuracy']:.3f}", r["num_active"],
             " / ".join(str(s) for s in r["layer_sizes"]) or "-", f"{r['forward_share']:.2f}",
             f"{r['verify_max_change']:.1e}", f"{r['feedforward_max_change']:.1e}"]
            for r in results
        ],
    )


def run(config):
    """Run the experiment; returns ``{"results": [...], "table": str}``."""
    tools.check_config(config, URNSpheresConfig)
    results = []
    for seed in config.seeds:
        result = run_one(config, seed)
        results.append(result)
        if config.verbose:
            print(
                f"seed {seed}: test accuracy {result['test_accuracy']:.3f}, "
                f"{result['num_active']} active neurons, emergent layers "
                f"{result['layer_sizes']} ({result['train_seconds']:.0f} s)",
                flush=True,
            )
    return tools.finish(results, format_table(results), config.verbose, footer=f"Paper: {PAPER}")


def add_arguments(parser):
    """Command-line arguments of ``tfemergent run urn-spheres``."""
    parser.add_argument("--num-neurons", type=int, default=1000,
                        help="neurons S of the URN (default: 1000; paper: 5000)")
    parser.add_argument("--num-iterations", type=int, default=4,
                        help="iterations I (default and paper: 4)")
    parser.add_argument("--residual", default="none", choices=RESIDUALS,
                        help="none (eq. 3, default), output (eq. 6) or input (eq. 7)")
    parser.add_argument("--epochs", type=int, default=40,
                        help="training epochs (default: 40; paper: 200)")
    parser.add_argument("--batch-size", type=int, default=64,
                        help="training batch size (default: 64)")
    tools.add_seeds_argument(parser)
    parser.add_argument("--c-w", type=float, default=5e-7,
                        help="L1 cost c_W on the weights (default and paper: 5e-7)")
    parser.add_argument("--c-n", type=float, default=2e-5,
                        help="L1 cost c_N on the activities of every iteration (default "
                             "and paper: 2e-5)")


def config_from_args(args):
    """Build a `URNSpheresConfig` from parsed command-line arguments."""
    return URNSpheresConfig(
        num_neurons=args.num_neurons,
        num_iterations=args.num_iterations,
        residual=args.residual,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seeds=tools.seeds_from_args(args),
        c_w=args.c_w,
        c_n=args.c_n,
        **tools.common_options(args, OPTIONS),
    )
