"""What the experiment runners (``tfemergent.models.<system>.experiment``) share.

The opening of ``run(config)`` (`check_config`, `quiet_tensorflow_logger`, `shuffled_subset`
for the data, `output_path` for the plots), the seeded training input that replaces a global
seed (`shuffled_batches`), the results table (`mean_std`, `format_mean_std`, `markdown_table`,
`finish`), and the command-line pieces of ``add_arguments`` / ``config_from_args``
(`add_seeds_argument` and `seeds_from_args`: the one seed convention ``--seeds 0,1,2``;
`comma_separated`: list-valued flags whose errors name the flag). Private to the runners;
the public API is each runner's ``run``.
"""

import argparse
import contextlib
import logging
import os
import sys

import numpy as np
import tensorflow as tf

from tfemergent.utils.validation import validate_int


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


def validate_seeds(seeds, runs):
    """``seeds`` as a non-empty tuple of integers >= 0; None gives ``0, ..., runs - 1``."""
    if seeds is None:
        return tuple(range(runs))
    if isinstance(seeds, (int, np.integer)) or not hasattr(seeds, "__len__") or not len(seeds):
        raise ValueError(
            "Argument `seeds` must be a non-empty list of integers >= 0, one run each. "
            f"Received: seeds={seeds!r}"
        )
    return tuple(validate_int("seeds", seed, minimum=0) for seed in seeds)


def output_path(directory, filename):
    """``directory/filename``, creating ``directory`` if needed."""
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, filename)


def shuffled_subset(rng, count, *arrays):
    """The first ``count`` (None: all) of ``arrays`` after one permutation drawn from ``rng``."""
    order = rng.permutation(len(arrays[0]))[:count]
    return tuple(array[order] for array in arrays)


# ---------------------------------------------------------------------------- command line


def or_default(value, default):
    """``value`` unless it is None (a flag's ``0`` stays ``0`` and is then refused)."""
    return default if value is None else value


def comma_separated(kind=str, *, minimum=None, choices=None):
    """An argparse ``type`` for ``a,b,c``: a tuple of ``kind`` values (empty items dropped).

    A bad item makes argparse report the flag: ``argument --seeds: must be comma-separated
    integers >= 0. Received: 'a,b'``.
    """
    if kind is int:
        what = "integers" + (f" >= {minimum}" if minimum is not None else "")
    else:
        what = "names" + (f" from {', '.join(choices)}" if choices else "")

    def parse(text):
        try:
            values = tuple(kind(item.strip()) for item in text.split(",") if item.strip())
        except ValueError:
            values = None
        if (
            not values
            or (minimum is not None and min(values) < minimum)
            or (choices is not None and any(value not in choices for value in values))
        ):
            raise argparse.ArgumentTypeError(
                f"must be comma-separated {what}. Received: {text!r}"
            )
        return values

    parse.__name__ = f"comma-separated {what}"
    return parse


# The options that ``tfemergent run`` can give every experiment (``--data-dir``,
# ``--logdir``, ``--export``, ``--plots``); each runner lists those it uses in ``OPTIONS``.
COMMON_OPTIONS = ("data_dir", "logdir", "export", "plots")


def common_options(args, options):
    """``{"data_dir": ..., ..., "verbose": 0 or 1}`` for a runner's config from ``args``:
    the ``options`` it uses (of `COMMON_OPTIONS`) and ``--quiet``."""
    values = {name: getattr(args, name, None) for name in options}
    values["verbose"] = 0 if getattr(args, "quiet", False) else 1
    return values


def add_seeds_argument(parser, default=(0,), deprecated=(), description=None):
    """``--seeds 0,1,2`` (one run per seed), and old spellings kept as deprecated aliases.

    ``deprecated`` may hold ``"runs"`` (``--runs N``: the seeds ``0, ..., N-1``) and
    ``"seed"`` (``--seed S``: the one seed ``S``). `seeds_from_args` resolves them.
    """
    default_text = ",".join(str(seed) for seed in default)
    description = description or "comma-separated seeds, one run each"
    parser.add_argument("--seeds", type=comma_separated(int, minimum=0), default=None,
                        help=f"{description} (default: {default_text})")
    parser.set_defaults(default_seeds=tuple(default))
    if "runs" in deprecated:
        parser.add_argument("--runs", type=int, default=None,
                            help="deprecated: --runs N is --seeds 0,...,N-1")
    if "seed" in deprecated:
        parser.add_argument("--seed", type=int, default=None,
                            help="deprecated: --seed S is --seeds S")


def seeds_from_args(args):
    """The seeds of ``--seeds``, or of a deprecated ``--runs`` / ``--seed`` (with a note on
    standard error); a ``ValueError`` naming both flags if both are given."""
    runs, seed = getattr(args, "runs", None), getattr(args, "seed", None)
    old = [flag for flag, value in (("--runs", runs), ("--seed", seed)) if value is not None]
    if old and args.seeds is not None:
        raise ValueError(
            f"Give the seeds with `--seeds` only ({old[0]} is its deprecated spelling). "
            f"Received: --seeds={','.join(map(str, args.seeds))} and {old[0]}="
            f"{runs if runs is not None else seed}"
        )
    if runs is not None:
        if runs < 1:
            raise ValueError(f"Argument `runs` must be an integer >= 1. Received: runs={runs}")
        print(f"note: --runs is deprecated; use --seeds {','.join(map(str, range(runs)))}",
              file=sys.stderr)
        return tuple(range(runs))
    if seed is not None:
        if seed < 0:
            raise ValueError(f"Argument `seed` must be an integer >= 0. Received: seed={seed}")
        print(f"note: --seed is deprecated; use --seeds {seed}", file=sys.stderr)
        return (seed,)
    if args.seeds is not None:
        return tuple(args.seeds)
    return tuple(getattr(args, "default_seeds", (0,)))
