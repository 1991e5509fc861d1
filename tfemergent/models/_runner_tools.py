"""What the experiment runners (``tfemergent.models.<system>.experiment``) share.

The opening of ``run(config)`` (`check_config`, `quiet_tensorflow_logger`), the seeded
training input that replaces a global seed (`shuffled_batches`), and the results table
(`mean_std`, `format_mean_std`, `markdown_table`, `finish`). Private to the runners; the
public API is each runner's ``run``.
"""

import contextlib
import logging

import numpy as np
import tensorflow as tf


def check_config(config, config_class):
    """Raise a ``ValueError`` unless ``config`` is a ``config_class`` instance."""
    if not isinstance(config, config_class):
        article = "an" if config_class.__name__[0] in "AEIOU" else "a"
        raise ValueError(
            f"`config` must be {article} {config_class.__name__}. "
            f"Received: config of type {type(config).__name__}"
        )


@contextlib.contextmanager
def quiet_tensorflow_logger(level=logging.ERROR):
    """A context in which TensorFlow's Python logger shows only ``level`` and above.

    The runners call ``predict`` on many input sizes, which logs retracing warnings;
    the logger's level is restored on exit.
    """
    logger = tf.get_logger()
    previous = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(previous)


def shuffled_batches(arrays, batch_size, seed):
    """A `tf.data.Dataset` of batches of ``arrays``, reshuffled each epoch from ``seed``.

    What ``model.fit(..., shuffle=True)`` does with arrays, but seeded through the
    dataset (``Dataset.shuffle(seed=seed)``) rather than through a global seed: the same
    ``seed`` gives the same batches, epoch after epoch, in any process (a global
    TensorFlow seed set by the caller, ``tf.random.set_seed``, enters the draw too).

    Args:
        arrays: an array, or a tuple of arrays of the same length (e.g. ``(x, y)``).
        batch_size: samples per batch (the last batch may be smaller).
        seed: integer seed of the shuffle.
    """
    single = not isinstance(arrays, tuple)
    tensors = tuple(tf.convert_to_tensor(array) for array in ((arrays,) if single else arrays))
    num_samples = int(tensors[0].shape[0])
    indices = tf.data.Dataset.range(num_samples).shuffle(
        num_samples, seed=seed, reshuffle_each_iteration=True
    )

    def gather(batch):
        taken = tuple(tf.gather(tensor, batch) for tensor in tensors)
        return taken[0] if single else taken

    return indices.batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE)


def mean_std(values, ddof=0):
    """``(mean, standard deviation)`` of ``values`` as floats (std 0 for one value)."""
    values = np.asarray(values, np.float64)
    std = float(np.std(values, ddof=ddof)) if len(values) > ddof else 0.0
    return float(np.mean(values)), std


def format_mean_std(pair, digits=3, scale=1.0):
    """``"mean ± std"`` of a `mean_std` pair, both multiplied by ``scale``."""
    mean, std = pair
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def markdown_table(columns, rows):
    """A Markdown table: a header of ``columns`` and one line per row of cells."""
    def line(cells):
        return "|" + "|".join(f" {cell} " if str(cell) else " " for cell in cells) + "|"

    lines = [line(columns), "|" + "---|" * len(columns)]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(
                f"Each row must have {len(columns)} cells, one per column. "
                f"Received: a row of {len(row)} cells: {row!r}"
            )
        lines.append(line(row))
    return "\n".join(lines)


def finish(results, table, verbose, summary=None, footer=None):
    """The runner's return value ``{"results", ["summary",] "table"}``; prints when verbose.

    ``footer`` (e.g. the paper's numbers) is printed after the table but not returned.
    """
    if verbose:
        print(table)
        if footer:
            print(footer)
    outcome = {"results": results}
    if summary is not None:
        outcome["summary"] = summary
    outcome["table"] = table
    return outcome
