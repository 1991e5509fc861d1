"""Figures shared by callbacks, the command line and the examples.

matplotlib is imported lazily with the non-interactive Agg backend, so that
nothing here needs a display.
"""

import io

import numpy as np

from tfemergent.utils.validation import (
    validate_bool,
    validate_float,
    validate_int,
    validate_real_array,
)

TASK_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_positions(positions, assignments=None, titles=None, *, title=None, task_names=None,
                   figsize_per_panel=3.2):
    """Scatter plots of neuron positions, one panel per layer, coloured by task.

    Each panel has its axes labelled (the first two position coordinates); with
    ``assignments``, a legend names the task of each colour.

    Args:
        positions: list of arrays ``(N_l, 2)`` (only the first two coordinates
            are drawn).
        assignments: optional list of int arrays ``(N_l,)``, the task of each
            neuron (as from `tfemergent.analysis.greedy_split`); None draws grey.
        titles: optional list of panel titles.
        title: optional title of the figure (e.g. the epoch).
        task_names: optional names of the tasks for the legend (default
            ``"task 0"``, ``"task 1"``, ...).
        figsize_per_panel: width and height of one panel in inches.

    Returns:
        A matplotlib ``Figure``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.plotting import plot_positions
    >>> figure = plot_positions([np.zeros((3, 2))], [np.array([0, 1, 1])], title="epoch 2")
    >>> [text.get_text() for text in figure.legends[0].get_texts()], figure._suptitle.get_text()
    (['task 0', 'task 1'], 'epoch 2')
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D

    count = len(positions)
    figure, axes = plt.subplots(
        1, count, figsize=(figsize_per_panel * count, figsize_per_panel + 0.4), squeeze=False
    )
    tasks = set()
    for index, (axis, points) in enumerate(zip(axes[0], positions)):
        points = np.asarray(points)
        if assignments is not None and assignments[index] is not None:
            assignment = np.asarray(assignments[index])
            tasks.update(int(t) for t in assignment)
            colours = [TASK_COLOURS[t % len(TASK_COLOURS)] for t in assignment]
        else:
            colours = "0.5"
        axis.scatter(points[:, 0], points[:, 1], c=colours, s=10)
        axis.set_aspect("equal", adjustable="datalim")
        if titles is not None:
            axis.set_title(titles[index], fontsize=9)
        axis.set_xlabel("position x", fontsize=7)
        axis.set_ylabel("position y", fontsize=7)
        axis.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    if tasks:
        names = list(task_names) if task_names is not None else []
        handles = [
            Line2D([], [], marker="o", linestyle="", color=TASK_COLOURS[t % len(TASK_COLOURS)],
                   label=names[t] if t < len(names) else f"task {t}")
            for t in sorted(tasks)
        ]
        figure.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7,
                      frameon=False)
        figure.tight_layout(rect=(0, 0.08, 1, 1))
    else:
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


# Colours of the synapse kinds in `plot_connectomics` (the paper's Fig. 6).
SYNAPSE_COLOURS = {"forward": "red", "backward": "green", "lateral": "black"}


def _group_boundaries(groups):
    """Positions between consecutive entries of ``groups`` that differ (for separators)."""
    groups = np.asarray(groups)
    return np.flatnonzero(groups[1:] != groups[:-1]) + 0.5


def plot_sorted_weights(sorted_weights, first_active_iteration=None, title=None, *, size=4.0):
    """The sorted ``|W|`` of a URN in the paper's orientation, emergent layers marked.

    ``sorted_weights`` is `tfemergent.analysis.sorted_weight_matrix` (kernel
    layout: row = presynaptic neuron); it is drawn transposed, row = postsynaptic
    neuron ``i`` and column = presynaptic neuron ``j`` (the paper's ``W_ij``),
    so a feed-forward structure shows as blocks *below* the diagonal (Golkar,
    Fig. 3). Darker is larger. Thin blue lines separate the neurons that first
    activate at different iterations.

    Args:
        sorted_weights: ``(A, A)`` array, the active neurons in first-activation order.
        first_active_iteration: optional ``(A,)`` iterations of first activation
            of the same neurons (``structure.first_active_iteration[structure.order]``).
        title: optional title.
        size: width and height in inches.

    Returns:
        A matplotlib ``Figure``.
    """
    matrix = np.asarray(sorted_weights, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            f"`sorted_weights` must be a square matrix. Received: sorted_weights.shape="
            f"{matrix.shape}"
        )
    figure = plot_matrix(matrix.T, title, size=size)
    axis = figure.axes[0]
    axis.set_xlabel("from (presynaptic)", fontsize=8)
    axis.set_ylabel("to (postsynaptic)", fontsize=8)
    if first_active_iteration is not None and len(matrix):
        for boundary in _group_boundaries(first_active_iteration):
            axis.axhline(boundary, color="tab:blue", linewidth=0.5)
            axis.axvline(boundary, color="tab:blue", linewidth=0.5)
    figure.tight_layout()
    return figure


def plot_activity(activity, first_active_iteration=None, title=None, *, figsize=(6.0, 2.5)):
    """Neuron activity per iteration: row ``l`` is ``mean |N^(l)|`` of each neuron.

    The URN counterpart of the paper's Fig. 3 (left): columns are the active
    neurons in first-activation order, rows the iterations ``0 ... I``, so the
    emergent layers appear as a staircase. Darker is larger. Thin blue lines
    separate the neurons that first activate at different iterations.

    Args:
        activity: ``(I + 1, A)`` array, e.g. the mean absolute states over a batch.
        first_active_iteration: optional ``(A,)`` iterations of first activation
            of the same neurons.
        title: optional title.
        figsize: ``(width, height)`` in inches.

    Returns:
        A matplotlib ``Figure``.
    """
    activity = np.asarray(activity, dtype=np.float64)
    if activity.ndim != 2:
        raise ValueError(
            f"`activity` must be a 2-D array (iterations, neurons). Received: "
            f"activity.shape={activity.shape}"
        )
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=figsize)
    image = axis.imshow(activity, cmap="Greys", interpolation="nearest", aspect="auto")
    figure.colorbar(image, ax=axis, pad=0.02)
    if first_active_iteration is not None and activity.shape[1]:
        for boundary in _group_boundaries(first_active_iteration):
            axis.axvline(boundary, color="tab:blue", linewidth=0.5)
    axis.set_xlabel("active neuron (sorted by first activation)", fontsize=8)
    axis.set_ylabel("iteration", fontsize=8)
    axis.set_yticks(range(activity.shape[0]))
    if title:
        axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


def plot_connectomics(
    coordinates,
    kernel,
    active=None,
    title=None,
    *,
    axes=(0, 2),
    max_synapses=2000,
    figsize=(6.0, 4.0),
):
    """The synapses between active neurons as lines in a 2-D projection (Golkar, Fig. 6).

    Each synapse ``j -> i`` (``kernel[j, i]``, Keras layout) between two active
    neurons is a straight line from neuron ``j`` to neuron ``i`` in the plane of
    the coordinate columns ``axes`` (default ``(0, 2)``: the ``(x, z)``
    projection of an `tfemergent.geometry.UpliftedLattice`, inputs at the
    bottom). The kind of a synapse is read from the *last* coordinate column
    (the depth ``z``): **forward** (``z_i > z_j``) red, **backward**
    (``z_i < z_j``) green, **lateral** (``z_i == z_j``) black. The opacity of a
    line is ``|w| / max |w|`` over the drawn synapses. Only the
    ``max_synapses`` strongest nonzero synapses are drawn (self-synapses,
    which have no length, never); the active neurons are grey dots. Forward
    synapses are drawn last, on top of the others; neurons that differ only in
    the hidden coordinate share a point of the projection.

    Each kind is one ``matplotlib.collections.LineCollection`` labelled
    ``"forward"``, ``"backward"`` or ``"lateral"`` (absent when empty), whose
    segments run weakest to strongest.

    Args:
        coordinates: ``(S, D)`` neuron positions, ``D >= 2``; the last column is the depth.
        kernel: ``(S, S)`` weights, ``kernel[j, i]`` the synapse ``j -> i``.
        active: optional bool ``(S,)`` mask of the neurons to draw (e.g.
            ``URNStructure.active``); default all.
        title: optional title.
        axes: the two coordinate columns to draw, horizontal then vertical.
        max_synapses: the number of strongest synapses to draw, >= 1.
        figsize: ``(width, height)`` in inches.

    Returns:
        A matplotlib ``Figure``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.plotting import plot_connectomics
    >>> coordinates = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 1.0]])
    >>> kernel = np.zeros((3, 3)); kernel[0, 1] = 1.0; kernel[1, 2] = -0.5
    >>> figure = plot_connectomics(coordinates, kernel, axes=(0, 1))
    >>> sorted(c.get_label() for c in figure.axes[0].collections if c.get_label() != "neurons")
    ['forward', 'lateral']
    """
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgb

    coordinates = np.asarray(coordinates, dtype=np.float64)
    if coordinates.ndim != 2 or coordinates.shape[1] < 2:
        raise ValueError(
            "`coordinates` must have shape (S, D) with D >= 2. Received: "
            f"coordinates.shape={coordinates.shape}"
        )
    num_neurons, dimension = coordinates.shape
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.shape != (num_neurons, num_neurons):
        raise ValueError(
            f"`kernel` must have shape (S, S) = ({num_neurons}, {num_neurons}), one row and "
            f"column per neuron. Received: kernel.shape={kernel.shape}"
        )
    if active is None:
        active = np.ones(num_neurons, dtype=bool)
    active = np.asarray(active)
    if active.shape != (num_neurons,) or active.dtype != bool:
        raise ValueError(
            f"`active` must be a bool array of shape ({num_neurons},). Received: "
            f"active.shape={active.shape}, active.dtype={active.dtype}"
        )
    axes = tuple(axes)
    if len(axes) != 2 or any(
        isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not 0 <= a < dimension
        for a in axes
    ):
        raise ValueError(
            f"`axes` must be two coordinate columns in [0, {dimension}). Received: axes={axes!r}"
        )
    max_synapses = validate_int("max_synapses", max_synapses, minimum=1)

    magnitude = np.abs(np.where(active[:, None] & active[None, :], kernel, 0.0))
    np.fill_diagonal(magnitude, 0.0)
    sources, targets = np.nonzero(magnitude)
    weights = magnitude[sources, targets]
    keep = np.argsort(weights, kind="stable")[-max_synapses:]  # ascending: strongest last
    sources, targets, weights = sources[keep], targets[keep], weights[keep]
    alpha = weights / weights.max() if len(weights) else weights
    depth_change = coordinates[targets, -1] - coordinates[sources, -1]
    kinds = {  # drawn in this order: forward synapses on top
        "lateral": depth_change == 0,
        "backward": depth_change < 0,
        "forward": depth_change > 0,
    }

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=figsize)
    projected = coordinates[:, axes]
    for kind, selected in kinds.items():
        if not np.any(selected):
            continue
        segments = np.stack(
            [projected[sources[selected]], projected[targets[selected]]], axis=1
        )
        colours = np.zeros((int(selected.sum()), 4))
        colours[:, :3] = to_rgb(SYNAPSE_COLOURS[kind])
        colours[:, 3] = alpha[selected]
        axis.add_collection(
            LineCollection(segments, colors=colours, linewidths=0.8, label=kind)
        )
    axis.scatter(
        projected[active, 0], projected[active, 1], s=6, c="0.5", zorder=3, label="neurons"
    )
    axis.autoscale()
    axis.margins(0.05)
    names = "xyz" if dimension == 3 else [f"axis {i}" for i in range(dimension)]
    axis.set_xlabel(names[axes[0]], fontsize=8)
    axis.set_ylabel(names[axes[1]], fontsize=8)
    handles = [
        plt.Line2D([], [], color=SYNAPSE_COLOURS[kind], label=kind)
        for kind, selected in kinds.items()
        if np.any(selected)
    ]
    if handles:
        axis.legend(handles=handles[::-1], fontsize=7, loc="upper left",
                    bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    if title:
        axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


def unit_colour(unit, num_units):
    """The colour of autoencoder unit ``unit`` of ``num_units`` in the hierarchy's pictures.

    `TASK_COLOURS` while they suffice, else evenly spaced hues of ``hsv``.
    """
    if num_units <= len(TASK_COLOURS):
        return TASK_COLOURS[unit]
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return to_hex(colormaps["hsv"](unit / num_units))


def _validate_boxes(name, boxes, length=None):
    """``boxes`` as a list of integer tuples of ``length`` entries each."""
    try:
        parsed = [tuple(int(v) for v in np.asarray(box).reshape(-1)) for box in boxes]
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or (length is not None and any(len(b) != length for b in parsed)):
        raise ValueError(
            f"`{name}` must be a list of {length} integers per unit. Received: {name}={boxes!r}"
        )
    return parsed


def plot_feature_map(
    feature_map,
    receptive_fields=None,
    code_boxes=None,
    image_shape=None,
    *,
    window_size=None,
    title=None,
    height=3.0,
):
    """A self-organising hierarchy's feature map, with its topology drawn on it.

    The map (``(h, w)``, e.g. `SelfOrganisingHierarchy.feature_map` of one image,
    or its mean over a batch) is drawn in grey, brighter for larger values, with a
    colour bar. On top of it, optionally:

    - each unit's receptive field: its two ``window_size x window_size`` windows
      as solid rectangles in the unit's colour (`unit_colour`), each labelled
      with the unit index in its top-left corner; the rectangles of unit ``k``
      are inset by ``0.06 k`` cells, so windows of different units that
      coincide stay visible;
    - each unit's code block as a dashed rectangle in the same colour, labelled
      ``code k``;
    - the image region (the top-left ``image_shape`` of the map) as a dotted
      white rectangle.

    The patches are ``matplotlib.patches.Rectangle`` objects of the figure's
    first axes, with ``gid`` ``"window <k> <i>"`` (window ``i`` of unit ``k``),
    ``"code <k>"`` and ``"image"``. Cell ``(row, col)`` spans
    ``[col - 0.5, col + 0.5] x [row - 0.5, row + 0.5]`` (imshow's pixel centres).

    Args:
        feature_map: 2-D array ``(h, w)``.
        receptive_fields: optional list of one field ``((row0, col0), (row1,
            col1))`` per unit (`SelfOrganisingHierarchy.receptive_fields`): the
            top-left cells of the two windows.
        code_boxes: optional list of ``(row, col, rows, cols)`` per unit
            (`HierarchyLayout.code_box`); when both are given, one per field.
        image_shape: optional ``(ih, iw)`` of the image region.
        window_size: the side of a window; required with ``receptive_fields``.
        title: optional title.
        height: height of the figure in inches; the width follows the map's
            aspect ratio (between 2 and 12 inches) plus 1 inch for the colour bar.

    Returns:
        A matplotlib ``Figure``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.plotting import plot_feature_map
    >>> figure = plot_feature_map(np.zeros((4, 8)), [((0, 0), (0, 2))], [(0, 4, 2, 2)],
    ...                           (4, 4), window_size=2)
    >>> sorted(p.get_gid() for p in figure.axes[0].patches)
    ['code 0', 'image', 'window 0 0', 'window 0 1']
    """
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import MaxNLocator

    feature_map = np.asarray(feature_map, dtype=np.float64)
    if feature_map.ndim != 2 or 0 in feature_map.shape:
        raise ValueError(
            "`feature_map` must be a non-empty 2-D array (h, w). Received: "
            f"feature_map.shape={feature_map.shape}"
        )
    fields = None
    if receptive_fields is not None:
        fields = _validate_boxes("receptive_fields", receptive_fields, length=4)
        if isinstance(window_size, bool) or not isinstance(window_size, (int, np.integer)) or (
            window_size < 1
        ):
            raise ValueError(
                "`window_size` must be an integer >= 1 when `receptive_fields` are drawn. "
                f"Received: window_size={window_size!r}"
            )
    boxes = None if code_boxes is None else _validate_boxes("code_boxes", code_boxes, length=4)
    if fields is not None and boxes is not None and len(fields) != len(boxes):
        raise ValueError(
            "`code_boxes` must hold one box per receptive field "
            f"({len(fields)}). Received: {len(boxes)} code boxes"
        )
    if image_shape is not None:
        image_shape = _validate_boxes("image_shape", [image_shape], length=2)[0]
    num_units = max(len(fields or ()), len(boxes or ()))

    rows, cols = feature_map.shape
    width = min(max(height * cols / rows, 2.0), 12.0) + 1.0
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(width, height))
    image = axis.imshow(feature_map, cmap="gray", interpolation="nearest")
    figure.colorbar(image, ax=axis, pad=0.02)
    if image_shape is not None:
        axis.add_patch(Rectangle(
            (-0.5, -0.5), image_shape[1], image_shape[0], fill=False, edgecolor="white",
            linestyle=":", linewidth=1.0, gid="image",
        ))
    for k in range(num_units):
        colour = unit_colour(k, num_units)
        if fields is not None:
            inset = min(0.06 * k, 0.3 * window_size)
            row0, col0, row1, col1 = fields[k]
            for index, (row, col) in enumerate(((row0, col0), (row1, col1))):
                axis.add_patch(Rectangle(
                    (col - 0.5 + inset, row - 0.5 + inset), window_size - 2 * inset,
                    window_size - 2 * inset, fill=False, edgecolor=colour, linewidth=2.0,
                    gid=f"window {k} {index}",
                ))
                axis.text(col - 0.4 + inset, row - 0.4 + inset, str(k), color=colour,
                          fontsize=8, fontweight="bold", ha="left", va="top",
                          bbox={"facecolor": "white", "alpha": 0.6, "pad": 1, "linewidth": 0})
        if boxes is not None:
            row, col, box_rows, box_cols = boxes[k]
            axis.add_patch(Rectangle(
                (col - 0.5, row - 0.5), box_cols, box_rows, fill=False, edgecolor=colour,
                linestyle="--", linewidth=1.5, gid=f"code {k}",
            ))
            axis.text(col - 0.5 + box_cols / 2, row - 0.5 + box_rows / 2, f"code {k}",
                      color=colour, fontsize=7, ha="center", va="center",
                      bbox={"facecolor": "white", "alpha": 0.6, "pad": 1, "linewidth": 0})
    axis.set_xlim(-0.5, cols - 0.5)
    axis.set_ylim(rows - 0.5, -0.5)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


def plot_codes(codes, title=None, *, width=6.0):
    """The codes of the K units of a hierarchy for one input, as a ``K x num_hidden`` heat map.

    Row ``k`` is unit ``k``'s code (labelled ``unit k``); brighter is larger
    (``viridis``), with a colour bar.

    Args:
        codes: 2-D array ``(K, num_hidden)``, e.g. the model's output for one
            image reshaped to ``(num_units, num_hidden)``.
        title: optional title.
        width: width of the figure in inches; the height is ``1 + 0.5 K`` inches.

    Returns:
        A matplotlib ``Figure``.
    """
    from matplotlib.ticker import MaxNLocator

    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or 0 in codes.shape:
        raise ValueError(
            "`codes` must be a non-empty 2-D array (num_units, num_hidden). Received: "
            f"codes.shape={codes.shape}"
        )
    num_units = codes.shape[0]
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(width, 1.0 + 0.5 * num_units))
    image = axis.imshow(codes, cmap="viridis", interpolation="nearest", aspect="auto")
    figure.colorbar(image, ax=axis, pad=0.02)
    axis.set_yticks(range(num_units))
    axis.set_yticklabels([f"unit {k}" for k in range(num_units)])
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("hidden unit", fontsize=8)
    if title:
        axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


# The colour of grid units without a class preference in `plot_preference_map`.
NO_PREFERENCE_COLOUR = "#262626"


def class_colours(num_classes, ordered=False):
    """One distinct colour (hex) per class for preference maps.

    Unordered classes get the ``tab10`` colours (up to 10 classes), ``tab20``
    (up to 20), else evenly spaced hues of ``hsv``. Ordered classes (numbers,
    whose neighbours on a topographic map should look alike) get evenly spaced
    colours of ``rainbow``, violet for the first class to red for the last.
    None of them is as dark as `NO_PREFERENCE_COLOUR`.

    Args:
        num_classes: the number of classes, >= 1.
        ordered: whether the classes are ordered (see above).

    Returns:
        A list of ``num_classes`` hex colour strings.

    Example:

    >>> from tfemergent.plotting import class_colours
    >>> class_colours(3)
    ['#1f77b4', '#ff7f0e', '#2ca02c']
    >>> len(set(class_colours(30))), class_colours(2, ordered=True)
    (30, ['#8000ff', '#ff0000'])
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    num_classes = validate_int("num_classes", num_classes, minimum=1)
    ordered = validate_bool("ordered", ordered)
    if ordered:
        positions = np.linspace(0.0, 1.0, num_classes) if num_classes > 1 else [0.0]
        return [to_hex(colormaps["rainbow"](p)) for p in positions]
    if num_classes <= 20:
        palette = colormaps["tab10" if num_classes <= 10 else "tab20"]
        return [to_hex(palette(index)) for index in range(num_classes)]
    return [to_hex(colormaps["hsv"](index / num_classes)) for index in range(num_classes)]


def _class_names(class_names, num_classes):
    """``class_names`` as a list of ``num_classes`` strings (default ``"0"``, ``"1"``...)."""
    if class_names is None:
        return [str(index) for index in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"`class_names` must hold one name per class ({num_classes}). "
            f"Received: {len(names)} class names"
        )
    return names


def plot_preference_map(
    preference_map,
    num_classes=None,
    class_names=None,
    block_width=None,
    title=None,
    *,
    ordered=False,
    size=4.0,
):
    """A grid's preference map: each unit in the colour of the class it prefers.

    ``preference_map`` is `tfemergent.analysis.preference_map` of a grid
    (``-1``: no preference). Class ``c`` is drawn in ``class_colours(C,
    ordered)[c]``, units without a preference in `NO_PREFERENCE_COLOUR`; a
    colour bar beside the map names the classes (``none`` first; with more
    than 20 classes only some are labelled). With ``block_width``, white lines
    separate the ``block_width x block_width`` blocks of the sub-networks of a
    `tfemergent.layers.ResetGrid` (``gid`` ``"block boundary"``). The map is
    the first axes' only image, cell ``(row, col)`` at pixel ``(row, col)``.

    Args:
        preference_map: 2-D integer array ``(h, w)`` with values in ``[-1, C)``.
        num_classes: ``C``, the number of classes, >= 1; default ``max(map) + 1``
            (at least 1).
        class_names: optional ``C`` names for the colour bar; default the indices.
        block_width: optional side of the sub-network blocks, >= 1.
        title: optional title.
        ordered: colour the classes as ordered (e.g. numbers), see `class_colours`.
        size: height of the figure in inches; the width is ``size + 1.6`` inches.

    Returns:
        A matplotlib ``Figure``.

    Example:

    >>> import numpy as np
    >>> from tfemergent.plotting import plot_preference_map
    >>> pmap = np.array([[0, 0, 1, 1], [0, -1, 1, 1], [2, 2, -1, -1], [2, 2, -1, 0]])
    >>> figure = plot_preference_map(pmap, class_names=["a", "b", "c"], block_width=2)
    >>> [label.get_text() for label in figure.axes[1].get_yticklabels()]
    ['none', 'a', 'b', 'c']
    >>> len([line for line in figure.axes[0].lines if line.get_gid() == "block boundary"])
    2
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap

    pmap = np.asarray(preference_map)
    if (
        pmap.ndim != 2
        or 0 in pmap.shape
        or not (np.issubdtype(pmap.dtype, np.integer) and pmap.dtype != bool)
        or pmap.min() < -1
    ):
        raise ValueError(
            "`preference_map` must be a non-empty 2-D integer array (h, w) of classes, "
            f"-1 for no preference. Received: preference_map.shape={pmap.shape}, "
            f"preference_map.dtype={pmap.dtype}"
        )
    if num_classes is None:
        num_classes = max(int(pmap.max()) + 1, 1)
    num_classes = validate_int("num_classes", num_classes, minimum=1)
    if pmap.max() >= num_classes:
        raise ValueError(
            f"`preference_map` must hold classes < num_classes={num_classes}. "
            f"Received: preference_map with maximum {pmap.max()}"
        )
    names = _class_names(class_names, num_classes)
    block_width = validate_int("block_width", block_width, minimum=1, allow_none=True)

    colours = [NO_PREFERENCE_COLOUR] + class_colours(num_classes, ordered)
    cmap = ListedColormap(colours)
    norm = BoundaryNorm(np.arange(-1.5, num_classes), len(colours))
    rows, cols = pmap.shape
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(size + 1.6, size))
    image = axis.imshow(pmap, cmap=cmap, norm=norm, interpolation="nearest")
    colour_bar = figure.colorbar(image, ax=axis, pad=0.02)
    step = int(np.ceil((num_classes + 1) / 21))
    ticks = np.arange(-1, num_classes)[::step]
    colour_bar.set_ticks(ticks)
    colour_bar.set_ticklabels([(["none"] + names)[tick + 1] for tick in ticks])
    colour_bar.ax.tick_params(labelsize=7, length=0)
    if block_width is not None:
        for boundary in range(block_width, rows, block_width):
            axis.axhline(boundary - 0.5, color="white", linewidth=1.0, gid="block boundary")
        for boundary in range(block_width, cols, block_width):
            axis.axvline(boundary - 0.5, color="white", linewidth=1.0, gid="block boundary")
    axis.set_xlim(-0.5, cols - 0.5)
    axis.set_ylim(rows - 0.5, -0.5)
    if title:
        axis.set_title(title, fontsize=9)
    axis.tick_params(labelsize=7)
    figure.tight_layout()
    return figure


def plot_dprime_maps(dprime, class_names=None, title=None, *, limit=None, panel_size=1.6):
    """A montage of per-class d′ maps, one panel per class, in a diverging colour map.

    ``dprime`` is `tfemergent.analysis.dprime_maps` of a grid, ``(C, h, w)``.
    Every panel uses ``RdBu_r`` with the same symmetric limits ``[-limit,
    limit]`` (red: the unit responds more to the class than to the others,
    blue: less) and is titled with the class name; one colour bar serves all.
    The panels fill rows of ``max(5, ceil(sqrt(C)))`` columns (at most ``C``);
    the first ``C`` axes of the figure are the panels, in class order.

    Args:
        dprime: real array ``(C, h, w)``, ``C >= 1``.
        class_names: optional ``C`` panel titles; default the class indices.
        title: optional title of the figure.
        limit: the symmetric colour limit, > 0; default ``max |d′|`` (1 when
            every d′ is 0).
        panel_size: width and height of one panel in inches; shrunk so that
            the figure is at most 14 inches wide.

    Returns:
        A matplotlib ``Figure`` of ``(columns * panel + 1) x (rows * panel +
        0.4)`` inches (plus 0.3 inches of height with a title).

    Example:

    >>> import numpy as np
    >>> from tfemergent.plotting import plot_dprime_maps
    >>> figure = plot_dprime_maps(np.arange(-6.0, 6.0).reshape(3, 2, 2), ["a", "b", "c"])
    >>> [axis.get_title() for axis in figure.axes[:3]]
    ['a', 'b', 'c']
    >>> figure.axes[0].images[0].get_clim()
    (-6.0, 6.0)
    """
    dprime = validate_real_array("dprime", dprime, ndim=3, expected="(num_classes, h, w)")
    num_classes = dprime.shape[0]
    names = _class_names(class_names, num_classes)
    if limit is None:
        limit = float(np.max(np.abs(dprime))) or 1.0
    limit = validate_float("limit", limit, minimum=0.0, min_inclusive=False)

    columns = min(num_classes, max(5, int(np.ceil(np.sqrt(num_classes)))))
    rows = int(np.ceil(num_classes / columns))
    panel = min(panel_size, 13.0 / columns)
    height = rows * panel + 0.4 + (0.3 if title else 0.0)
    plt = _pyplot()
    figure, axes = plt.subplots(
        rows, columns, figsize=(columns * panel + 1.0, height), squeeze=False,
        layout="constrained",
    )
    image = None
    for index, axis in enumerate(axes.ravel()):
        axis.set_xticks([])
        axis.set_yticks([])
        if index >= num_classes:
            axis.set_axis_off()
            continue
        image = axis.imshow(
            dprime[index], cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest"
        )
        axis.set_title(names[index], fontsize=8)
    colour_bar = figure.colorbar(image, ax=axes.ravel().tolist(), shrink=0.9, pad=0.02)
    colour_bar.set_label("d′", fontsize=8)
    colour_bar.ax.tick_params(labelsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure
