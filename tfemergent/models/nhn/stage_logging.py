"""TensorBoard logs of a Neuron Hierarchical Network run: stages, pruning, search, add-ons."""

import os

import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from tfemergent import plotting
from tfemergent.models import _runner_tools as tools

# The per-stage numbers logged as scalars ``nhn/<key>`` (step = stage index).
STAGE_SCALARS = (
    "test_error", "test_accuracy", "parameters", "physical_parameters", "score",
    "latency_ms", "num_add_ons",
)


def _image(figure):
    png = plotting.figure_to_png(figure)
    return tf.image.decode_png(png, channels=3)[tf.newaxis]


def _fitness_figure(history):
    figure = Figure(figsize=(5.5, 3.4))
    axis = figure.subplots()
    fitness = np.array([entry["fitness"] for entry in history], dtype=float)
    cycles = np.array([entry["cycle"] for entry in history])
    scatter = axis.scatter(np.arange(len(fitness)), fitness, c=cycles, cmap="viridis", s=14)
    axis.plot(np.maximum.accumulate(fitness), "k-", linewidth=1, label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel("validation accuracy (fitness)")
    axis.set_title(f"location search: {len(fitness)} trials")
    figure.colorbar(scatter, ax=axis, label="cycle")
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    return figure


def _add_on_figure(add_ons):
    figure = Figure(figsize=(5.5, 3.4))
    axis = figure.subplots()
    for row in add_ons:
        # A source is a layer of the segment or "input", the segment's input (drawn at -1).
        segment, target = row["segment"], row["target"]
        source = row["source"] if isinstance(row["source"], (int, np.integer)) else -1
        axis.annotate(
            "", xy=(segment, target), xytext=(segment, source),
            arrowprops={"arrowstyle": "->", "color": "tab:red", "linewidth": 1.5},
        )
        axis.text(segment + 0.05, (source + target) / 2,
                  f"{row['kernel_size']}x{row['kernel_size']}, {row['num_connections']} conn.",
                  fontsize=7)
    segments = [row["segment"] for row in add_ons] or [0]
    layers = [row["source"] if isinstance(row["source"], (int, np.integer)) else -1
              for row in add_ons] + [row["target"] for row in add_ons] or [0, 1]
    axis.set_xlim(min(segments) - 0.5, max(segments) + 1.0)
    axis.set_ylim(min(layers) - 0.5, max(layers) + 0.5)
    axis.set_xticks(sorted(set(segments)))
    axis.set_xlabel("segment")
    axis.set_ylabel("layer in the segment (-1: segment input)")
    axis.set_title(f"chosen add-on neurons: {len(add_ons)}")
    figure.tight_layout()
    return figure


def log_run(logdir, outcome):
    """Write what `NeuronHierarchyBuilder.run` returned to ``<logdir>/nhn``.

    - scalars ``nhn/<key>`` for `STAGE_SCALARS` at step = stage index (0 base,
      1 pruned, ... 5 ablation) and a text ``nhn/stages`` table;
    - the pruning report: every numeric entry of every layer row as a scalar
      ``pruning/<layer>/<entry>`` and the rows as a text ``pruning/report`` table;
    - the search: ``search/fitness`` and ``search/best_fitness`` (best so far)
      per trial (step = trial index), ``search/num_add_ons``, the image
      ``search/fitness_plot`` and a text ``search/best`` with the chosen genome;
    - the chosen add-on neurons: a text ``add_ons/locations`` table and an image
      ``add_ons/locations`` (one arrow per add-on, source to target layer, per
      segment).

    Args:
        logdir: the run's TensorBoard directory.
        outcome: the dict returned by `NeuronHierarchyBuilder.run`.

    Returns:
        The directory written (``<logdir>/nhn``).
    """
    directory = os.path.join(os.fspath(logdir), "nhn")
    writer = tf.summary.create_file_writer(directory)
    stages = outcome["stages"]
    with writer.as_default():
        for step, row in enumerate(stages):
            for key in STAGE_SCALARS:
                if key in row:
                    tf.summary.scalar(f"nhn/{key}", float(row[key]), step=step)
        tf.summary.text("nhn/stages", tools.markdown_table(
            ["step", "stage", "test error %", "parameters", "physical", "score", "latency ms",
             "add-ons"],
            [[step, row["stage"], f"{row['test_error']:.2f}", row["parameters"],
              row["physical_parameters"], f"{row['score']:.3f}", f"{row['latency_ms']:.2f}",
              row["num_add_ons"]] for step, row in enumerate(stages)],
        ), step=0)

        layers = (outcome.get("pruning") or {}).get("layers") or {}
        keys = sorted({key for row in layers.values() for key, value in row.items()
                       if isinstance(value, (int, float, np.number)) and not isinstance(value, bool)})
        for name, row in layers.items():
            for key in keys:
                if key in row:
                    tf.summary.scalar(f"pruning/{name}/{key}", float(row[key]), step=0)
        if layers:
            tf.summary.text("pruning/report", tools.markdown_table(
                ["layer"] + keys, [[name] + [row.get(key, "") for key in keys]
                                   for name, row in layers.items()]), step=0)

        history = (outcome.get("search") or {}).get("history") or []
        best = -np.inf
        for step, entry in enumerate(history):
            best = max(best, float(entry["fitness"]))
            tf.summary.scalar("search/fitness", float(entry["fitness"]), step=step)
            tf.summary.scalar("search/best_fitness", best, step=step)
            tf.summary.scalar("search/num_add_ons", float(entry["num_add_ons"]), step=step)
        if history:
            tf.summary.image("search/fitness_plot", _image(_fitness_figure(history)), step=0)
            search = outcome["search"]
            tf.summary.text(
                "search/best",
                f"best trial {search['best_trial_id']}: fitness {search['best_fitness']:.4f}, "
                f"genome {outcome.get('genome')}",
                step=0,
            )

        add_ons = outcome.get("add_ons") or []
        columns = ["segment", "source", "target", "kernel_size", "num_connections",
                   "num_possible_connections"]
        tf.summary.text("add_ons/locations", tools.markdown_table(
            columns, [[row.get(key, "") for key in columns] for row in add_ons])
            if add_ons else "no add-on neuron was kept", step=0)
        tf.summary.image("add_ons/locations", _image(_add_on_figure(add_ons)), step=0)
    writer.flush()
    writer.close()
    return directory
