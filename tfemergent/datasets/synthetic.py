"""Synthetic datasets generated on the fly (no files, no downloads).

- `concentric_shells(dim, num_samples, ...)`: the concentric spherical shells of
  the unstructured-recursive-network paper (Golkar, "Emergent Structures and
  Lifetime Structure Evolution in Artificial Neural Networks"): "distinguishing
  inputs sampled from two uniform concentric 10-d spherical shell
  distributions".
"""

import numbers

import numpy as np

from tfemergent.utils.validation import validate_float, validate_int, validate_seed


def concentric_shells(dim, num_samples, radii=(1.0, 2.0), seed=0, thickness=0.0):
    """Points drawn uniformly from concentric spherical shells, one class per shell.

    Class `k` is the shell of inner radius `radii[k]` and outer radius
    `radii[k] + thickness` in `dim` dimensions, centred at the origin. The
    direction of every point is uniform on the unit sphere (a normalised
    standard normal vector). Its radius is

    - `radii[k]` when `thickness == 0` (the default): points uniform on the
      sphere surface of radius `radii[k]`;
    - otherwise uniform in volume between the two spheres:
      `r = (r0**dim + u * ((r0 + thickness)**dim - r0**dim)) ** (1 / dim)` with
      `u ~ U[0, 1)`, i.e. the radial density grows like `r**(dim - 1)`.

    The paper does not give a width for its "uniform concentric 10-d spherical
    shell distributions"; the default reads them as sphere surfaces (the
    parameter-free choice), `thickness > 0` gives the volume reading. The
    shells must not overlap: `radii[k] + thickness < radii[k + 1]`.

    The classes are balanced: `num_samples // K` points each (K = `len(radii)`,
    2 by default), the first `num_samples % K` classes one more. All points
    are drawn with `rng = np.random.default_rng(seed)`, class after class
    (directions, then radii), and then put in the order of
    `rng.permutation(num_samples)`; the same seed gives the same arrays.

    Args:
        dim: dimension of the points (the paper: 10), at least 1.
        num_samples: total number of points, at least `len(radii)`.
        radii: strictly increasing positive inner radii, one per class (at
            least two).
        seed: `None` or a non-negative integer.
        thickness: non-negative radial width of every shell; 0 puts the
            points on the spheres.

    Returns:
        `(x, y)`: `x` float32 of shape (num_samples, dim), `y` int64 of shape
        (num_samples,) with the class (index into `radii`) of each point.

    Raises:
        ValueError: for a bad `dim`, `num_samples`, `seed` or `thickness`,
            radii that are not strictly increasing and positive, or shells
            that overlap.

    Example:

    >>> import numpy as np
    >>> from tfemergent.datasets import concentric_shells
    >>> x, y = concentric_shells(10, 6, radii=(1.0, 2.0), seed=0)
    >>> x.shape, x.dtype, y.dtype, np.bincount(y).tolist()
    ((6, 10), dtype('float32'), dtype('int64'), [3, 3])
    >>> np.allclose(np.linalg.norm(x, axis=1), np.where(y == 0, 1.0, 2.0))
    True
    """
    dim = validate_int("dim", dim, minimum=1)
    radii = _validate_radii(radii)
    num_samples = validate_int("num_samples", num_samples, minimum=len(radii))
    seed = validate_seed("seed", seed)
    thickness = validate_float("thickness", thickness, minimum=0.0)
    for inner, next_inner in zip(radii[:-1], radii[1:]):
        if inner + thickness >= next_inner:
            raise ValueError(
                "The shells overlap: every shell must end before the next one starts, "
                f"radii[k] + thickness < radii[k + 1], but {inner} + {thickness} >= "
                f"{next_inner}. Use a smaller thickness or radii further apart. "
                f"Received: radii={radii}, thickness={thickness}"
            )
    num_classes = len(radii)
    counts = [
        num_samples // num_classes + (1 if k < num_samples % num_classes else 0)
        for k in range(num_classes)
    ]
    rng = np.random.default_rng(seed)
    points, labels = [], []
    for label, (inner, count) in enumerate(zip(radii, counts)):
        directions = rng.standard_normal((count, dim))
        norms = np.linalg.norm(directions, axis=1, keepdims=True)
        # A zero normal vector has probability 0; redraw it all the same.
        while np.any(norms == 0.0):
            bad = norms[:, 0] == 0.0
            directions[bad] = rng.standard_normal((int(bad.sum()), dim))
            norms = np.linalg.norm(directions, axis=1, keepdims=True)
        directions /= norms
        if thickness == 0.0:
            radius = np.full((count, 1), inner)
        else:
            outer = inner + thickness
            u = rng.random((count, 1))
            radius = (inner**dim + u * (outer**dim - inner**dim)) ** (1.0 / dim)
        points.append(directions * radius)
        labels.append(np.full(count, label, dtype=np.int64))
    order = rng.permutation(num_samples)
    x = np.concatenate(points, axis=0)[order].astype(np.float32)
    y = np.concatenate(labels, axis=0)[order]
    return x, y


def _validate_radii(radii):
    try:
        values = tuple(radii)
    except TypeError:
        values = None
    if (
        values is None
        or len(values) < 2
        or any(
            isinstance(value, bool) or not isinstance(value, (numbers.Real, np.number))
            for value in values
        )
    ):
        raise ValueError(
            "Argument `radii` must be a sequence of at least two real numbers, one inner "
            f"radius per class. Received: radii={radii!r}"
        )
    values = tuple(float(value) for value in values)
    if not all(np.isfinite(value) and value > 0.0 for value in values) or any(
        later <= earlier for earlier, later in zip(values[:-1], values[1:])
    ):
        raise ValueError(
            "Argument `radii` must be finite, positive and strictly increasing. "
            f"Received: radii={radii!r}"
        )
    return values
