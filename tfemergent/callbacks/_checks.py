"""Argument checks and summary helpers shared by the TensorBoard callbacks."""

import keras
import numpy as np
import tensorflow as tf

from tfemergent import plotting


def describe(value):
    """``repr(value)``, cut to 80 characters for error messages."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_array(value):
    """``value`` as a numpy array, or None when it cannot be one."""
    try:
        return np.asarray(keras.ops.convert_to_numpy(value))
    except (TypeError, ValueError):
        return None


def received(name, value, array):
    """``Received: name.shape=..., name.dtype=...`` for arrays, ``name=repr`` otherwise."""
    if array is not None and array.dtype != object:
        return f"Received: {name}.shape={array.shape}, {name}.dtype={array.dtype}"
    return f"Received: {name}={describe(value)}"


def validate_labels(name, labels, num_images):
    """``labels`` as int64 ``(num_images,)``: 1-D integer class labels, one per image."""
    array = as_array(labels)
    if (
        array is None
        or array.ndim != 1
        or array.dtype == bool
        or not np.issubdtype(array.dtype, np.integer)
        or len(array) != num_images
    ):
        raise ValueError(
            f"Argument `{name}` must be 1-D integer class labels, one per image "
            f"({num_images}). {received(name, labels, array)}"
        )
    return array.astype(np.int64)


def write_images(tag, figures):
    """Write matplotlib ``figures`` (one, or a list of one size) as one image summary."""
    if not isinstance(figures, (list, tuple)):
        figures = [figures]
    pngs = [plotting.figure_to_png(figure) for figure in figures]
    batch = tf.stack([tf.image.decode_png(png, channels=3) for png in pngs])
    tf.summary.image(tag, batch, max_outputs=len(pngs))
