"""Receptive fields on a 2-D feature map: validation and window arithmetic.

A receptive field is two ``N x N`` windows of the feature map, each given by the
(row, column) of its top-left cell. Shared by `MaskedAutoencoderUnit`, the
`SelfOrganisingHierarchy` model and its search space, so that every one of them
accepts and rejects exactly the same fields with the same messages.
"""

import numbers

import numpy as np

NUM_WINDOWS = 2


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool)


def validate_feature_map_shape(name, value):
    """``(height, width)`` as a tuple of two positive ints, or ``ValueError``."""
    try:
        parts = tuple(value)
    except TypeError:
        parts = None
    if parts is None or len(parts) != 2 or not all(_is_int(p) and p >= 1 for p in parts):
        raise ValueError(
            f"Argument `{name}` must be a pair of positive integers (height, width). "
            f"Received: {name}={value!r}"
        )
    return tuple(int(p) for p in parts)


def boxes_overlap(a, b):
    """Whether boxes ``(row, col, height, width)`` ``a`` and ``b`` share a cell."""
    return (
        a[0] < b[0] + b[2]
        and b[0] < a[0] + a[2]
        and a[1] < b[1] + b[3]
        and b[1] < a[1] + a[3]
    )


def validate_receptive_field(name, value, feature_map_shape, window_size, code_box=None):
    """Check a receptive field; return it as ``((row, col), (row, col))`` of ints.

    Raises ``ValueError`` when the field is not two (row, col) pairs of integers,
    when a window leaves the feature map, when the two windows overlap (a cell
    would be read twice, with two weights) or when a window overlaps
    ``code_box = (row, col, height, width)``, the unit's own code.
    """
    height, width = feature_map_shape
    try:
        windows = tuple(tuple(w) for w in value)
    except TypeError:
        windows = None
    if (
        windows is None
        or len(windows) != NUM_WINDOWS
        or not all(len(w) == 2 and all(_is_int(c) for c in w) for w in windows)
    ):
        raise ValueError(
            f"Argument `{name}` must be two windows, each the (row, col) of its top-left "
            f"cell, e.g. ((0, 0), (0, 10)). Received: {name}={value!r}"
        )
    windows = tuple((int(r), int(c)) for r, c in windows)
    for index, (row, col) in enumerate(windows):
        if not (0 <= row <= height - window_size and 0 <= col <= width - window_size):
            raise ValueError(
                f"Argument `{name}`: window {index} at (row, col)=({row}, {col}) with size "
                f"{window_size}x{window_size} leaves the {height}x{width} feature map; "
                f"rows must be in [0, {height - window_size}] and columns in "
                f"[0, {width - window_size}]. Received: {name}={value!r}"
            )
    boxes = [(r, c, window_size, window_size) for r, c in windows]
    if boxes_overlap(boxes[0], boxes[1]):
        raise ValueError(
            f"Argument `{name}`: the two windows overlap, so some cells would be read "
            f"twice; place them at least {window_size} cells apart in rows or columns. "
            f"Received: {name}={value!r}"
        )
    if code_box is not None:
        for index, box in enumerate(boxes):
            if boxes_overlap(box, code_box):
                raise ValueError(
                    f"Argument `{name}`: window {index} overlaps the unit's own code at "
                    f"rows {code_box[0]}..{code_box[0] + code_box[2] - 1}, columns "
                    f"{code_box[1]}..{code_box[1] + code_box[3] - 1}; a unit may not read "
                    f"its own code. Received: {name}={value!r}"
                )
    return windows


def window_indices(receptive_field, feature_map_width, window_size):
    """Flat feature-map indices of the field's cells, window 0 then window 1, row-major."""
    offsets = np.arange(window_size)
    indices = [
        ((row + offsets)[:, None] * feature_map_width + (col + offsets)[None, :]).ravel()
        for row, col in receptive_field
    ]
    return np.concatenate(indices)


def field_mask(receptive_field, feature_map_shape, window_size):
    """The binary indicator ``delta`` of the field over the feature map (float32)."""
    mask = np.zeros(feature_map_shape, "float32")
    for row, col in receptive_field:
        mask[row : row + window_size, col : col + window_size] = 1.0
    return mask


def validate_pair(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    try:
        parts = tuple(value)
    except TypeError:
        parts = None
    if parts is None or len(parts) != 2 or not all(_is_int(p) for p in parts):
        raise ValueError(
            f"Argument `{name}` must be a pair of integers (row, col). Received: {name}={value!r}"
        )
    return tuple(int(p) for p in parts)


def validate_code_shape(code_shape, num_hidden):
    """``code_shape`` (default: `default_code_shape`) checked against ``num_hidden``."""
    if code_shape is None:
        return default_code_shape(num_hidden)
    shape = validate_pair("code_shape", code_shape)
    if min(shape) < 1 or shape[0] * shape[1] != num_hidden:
        raise ValueError(
            "Argument `code_shape` must be (rows, cols) of positive integers with rows * "
            f"cols = num_hidden = {num_hidden}. Received: code_shape={code_shape!r}"
        )
    return shape


def default_code_shape(num_hidden):
    """The block a code of ``num_hidden`` values fills on the map: square if possible.

    ``(s, s)`` when ``num_hidden = s * s``; otherwise the most square ``(rows,
    cols)`` with ``rows <= cols`` and ``rows * cols = num_hidden``.
    """
    rows = int(np.floor(np.sqrt(num_hidden)))
    while num_hidden % rows:
        rows -= 1
    return rows, num_hidden // rows
