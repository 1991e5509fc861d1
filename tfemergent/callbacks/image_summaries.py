"""TensorBoard image summaries of matplotlib figures, for the callbacks."""

import tensorflow as tf

from tfemergent import plotting


def write_images(tag, figures):
    """Write matplotlib ``figures`` (one, or a list of one size) as one image summary.

    Call it inside a ``writer.as_default(step=...)`` block; the figures are
    rendered to PNG with `tfemergent.plotting.figure_to_png` and closed.
    """
    if not isinstance(figures, (list, tuple)):
        figures = [figures]
    pngs = [plotting.figure_to_png(figure) for figure in figures]
    batch = tf.stack([tf.image.decode_png(png, channels=3) for png in pngs])
    tf.summary.image(tag, batch, max_outputs=len(pngs))
