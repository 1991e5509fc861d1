"""Figures shared by callbacks, the command line and the examples.

matplotlib is imported lazily with the non-interactive Agg backend, so that
nothing here needs a display.
"""

import io

import numpy as np

TASK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_positions(positions, assignments=None, titles=None, *, figsize_per_panel=3.2):
    """Scatter plots of neuron positions, one panel per layer, coloured by task.

    Args:
        positions: list of arrays ``(N_l, 2)`` (only the first two coordinates
            are drawn).
        assignments: optional list of int arrays ``(N_l,)``, the task of each
            neuron (as from `tfemergent.analysis.greedy_split`); None draws grey.
        titles: optional list of panel titles.
        figsize_per_panel: width and height of one panel in inches.

    Returns:
        A matplotlib ``Figure``.
    """
    plt = _pyplot()
    count = len(positions)
    figure, axes = plt.subplots(
        1, count, figsize=(figsize_per_panel * count, figsize_per_panel), squeeze=False
    )
    for index, (axis, points) in enumerate(zip(axes[0], positions)):
        points = np.asarray(points)
        if assignments is not None and assignments[index] is not None:
            colours = [TASK_COLOURS[t % len(TASK_COLOURS)] for t in np.asarray(assignments[index])]
        else:
            colours = "0.5"
        axis.scatter(points[:, 0], points[:, 1], c=colours, s=10)
        axis.set_aspect("equal", adjustable="datalim")
        if titles is not None:
            axis.set_title(titles[index], fontsize=9)
        axis.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


def figure_to_png(figure, dpi=80):
    """Render a matplotlib figure to PNG bytes and close it."""
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    return buffer.getvalue()


def plot_matrix(matrix, title=None, *, size=4.0):
    """A matrix as an image (e.g. the sorted |W| of a URN), darker for larger values.

    Args:
        matrix: 2-D array.
        title: optional title.
        size: width and height in inches.

    Returns:
        A matplotlib ``Figure``.
    """
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(np.asarray(matrix), cmap="Greys", interpolation="nearest")
    if title:
        axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    return figure
