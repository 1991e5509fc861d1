"""Preference maps, clustering and topography of a Reset network's grid (Hannagan).

The paper ("Reset networks", Results and Supplementary S1) measures the
self-organisation of the `m x m` grid of a Reset network in four steps, one
pure numpy function each:

1. `dprime_maps`: per grid unit and class, the d′ of the unit's responses to
   that class against its responses to all other classes.
2. `preference_map`: a unit prefers the class of its highest d′ when that d′
   reaches the threshold (2 in the paper), otherwise it has no preference (-1).
3. `clustering_index`: the mean size of the connected components of
   same-preference units, minus the same for randomly permuted maps.
4. `topography_index`: the mean similarity of a unit's preference to those of
   its 8 neighbours (for classes with graded similarities, e.g. numbers, see
   `number_similarity`), minus the same for randomly permuted maps.

`index_history` runs steps 2-4 on the d′ maps of every epoch of a training run
at once (vectorised: one connected-component labelling for all epochs,
shuffles and classes).

Both indices use the same shuffle control: permutation `k` of a map with `N`
units is `argsort(rng.random((num_shuffles, N))[k])` with
`rng = np.random.default_rng(seed)`, applied to the flattened map. So one seed
gives the same permutations to `clustering_index`, `topography_index` and every
epoch of `index_history`, and the first `k` permutations do not depend on
`num_shuffles`.

The public notebooks of the paper (github.com/THANNAGA/Reset-Networks) have two
bugs that `legacy=True` reproduces (both off by default):

* the shuffled control is summed over 10 shuffles and divided by 20
  (`for k in range(10)` ... `/ float(power)` with `power = 20`), so the
  control is half what it should be and every index is inflated;
* the topography filter is `(-1/8) * ones((3, 3))` with `filter[0, 0] = 1`
  passed to `scipy.ndimage.convolve`: the unit compared with its "neighbours"
  sits in a corner of the 3 x 3 window (the bottom-right one, after the
  convolution's flip) instead of its middle, so its neighbourhood is the 8
  cells up and to the left of it, five of which are not adjacent to it.
"""

import numbers

import numpy as np
from scipy import ndimage

from tfemergent.utils.validation import (
    validate_bool,
    validate_connectivity,
    validate_finite,
    validate_float,
    validate_int,
    validate_real_array,
    validate_seed,
)

# The paper's 8 immediate neighbours: the 3 x 3 window centred on the unit.
_NEIGHBOUR_OFFSETS = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)
)
# The notebooks' bug: the unit in the bottom-right corner of its 3 x 3 window.
_LEGACY_NEIGHBOUR_OFFSETS = tuple(
    (dy, dx) for dy in (-2, -1, 0) for dx in (-2, -1, 0) if (dy, dx) != (0, 0)
)
# The notebooks ran 10 shuffles for a divisor of 20.
_LEGACY_RUN_FRACTION = 2


def dprime_maps(activations, labels, num_classes=None, epsilon=1e-7):
    """d′ of every grid unit for every class against all the other classes.

    For unit `u` and class `c`, with `in` the samples of class `c` and `out`
    all the other samples:

        d′[c, u] = (mean_in - mean_out) / sqrt((var_in + var_out) / 2 + epsilon)

    where the variances are population variances (`ddof=0`: the mean squared
    deviation from the group's own mean). This is the standard
    equal-weight pooled d′; the paper only says "the d-prime, over each target
    class, of the unit's responses to this target class against all other
    classes", without a formula. `ddof=0` is what the public notebooks use
    (`np.var`), and unlike `ddof=1` it is defined for a class with a single
    sample (variance 0). The notebooks differ in two other ways that we do not
    copy: they compute d′ from class-mean grids rather than single-trial
    responses, and divide by the mean of the two standard deviations
    (`2 (m1 - m2) / (s1 + s2)`) rather than their root mean square.

    `epsilon` guards the division: a unit whose responses are constant gets
    exactly 0 (its mean difference is exactly 0: every response is first
    shifted by the unit's response to sample 0), never NaN; a unit with
    constant but different responses inside and outside the class gets the
    large finite value `(mean_in - mean_out) / sqrt(epsilon)`; elsewhere the
    guard changes d′ by a relative `epsilon / (var_in + var_out)` at most. A
    class with no sample, or with every sample (no `out` group), gets d′ = 0:
    there is no evidence of a preference.

    Vectorised: two `[num_classes, n] @ [n, units]` products; memory a few
    `[n, units]` float64 arrays.

    Args:
        activations: real array `[num_samples, *grid_shape]` (e.g.
            `[n, 32, 32]`), the single-trial responses of the grid; finite.
        labels: integer array `[num_samples]`, the class of each sample, in
            `[0, num_classes)`.
        num_classes: number of classes `C`; `None` means `max(labels) + 1`.
        epsilon: float > 0 added to the pooled variance. Defaults to 1e-7.

    Returns:
        float64 array `[num_classes, *grid_shape]`.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import dprime_maps
    >>> activations = np.array([[1.0, 5.0], [3.0, 5.0], [0.0, 5.0], [0.0, 5.0]])
    >>> labels = np.array([0, 0, 1, 1])
    >>> np.round(dprime_maps(activations, labels), 4)  # unit 1 is constant
    array([[ 2.8284,  0.    ],
           [-2.8284,  0.    ]])
    """
    activations = validate_real_array(
        "activations", activations, min_ndim=2,
        expected="of shape [num_samples, *grid_shape] with at least one grid dimension",
    )
    num_samples = activations.shape[0]
    labels = _as_integer_array("labels", labels)
    if labels.shape != (num_samples,):
        raise ValueError(
            "`labels` must be a 1-D integer array with one label per sample, "
            f"shape ({num_samples},). Received: labels.shape={labels.shape}"
        )
    if labels.min() < 0:
        raise ValueError(
            f"`labels` must be >= 0. Received: labels with minimum {labels.min()}"
        )
    num_classes = validate_int("num_classes", num_classes, minimum=1, allow_none=True)
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    elif labels.max() >= num_classes:
        raise ValueError(
            f"`labels` must be < num_classes={num_classes}. "
            f"Received: labels with maximum {labels.max()}"
        )
    epsilon = validate_float("epsilon", epsilon, minimum=0.0, min_inclusive=False)

    grid_shape = activations.shape[1:]
    # Shift by one sample's responses: a constant unit becomes exact zeros.
    x = activations.reshape(num_samples, -1)
    x = x - x[:1]
    one_hot = (labels[None, :] == np.arange(num_classes)[:, None]).astype(np.float64)
    count_in = one_hot.sum(axis=1)[:, None]
    count_out = num_samples - count_in
    total = x.sum(axis=0)
    sum_in = one_hot @ x
    mean_in = sum_in / np.maximum(count_in, 1.0)
    mean_out = (total - sum_in) / np.maximum(count_out, 1.0)
    mean_all = total / num_samples
    # Sums of squared deviations; the out-group's from the exact identity
    # SS_out = SS_all(about mean_out) - SS_in(about mean_out), each term
    # computed from deviations about its own mean.
    squares_total = np.sum((x - mean_all) ** 2, axis=0)
    squares_in = one_hot @ (x - mean_in[labels]) ** 2
    squares_out = (
        squares_total
        + num_samples * (mean_all - mean_out) ** 2
        - squares_in
        - count_in * (mean_in - mean_out) ** 2
    )
    var_in = squares_in / np.maximum(count_in, 1.0)
    var_out = np.maximum(squares_out, 0.0) / np.maximum(count_out, 1.0)
    dprime = (mean_in - mean_out) / np.sqrt((var_in + var_out) / 2.0 + epsilon)
    dprime[((count_in == 0) | (count_out == 0))[:, 0]] = 0.0
    return dprime.reshape((num_classes,) + grid_shape)


def preference_map(dprime, threshold=2.0):
    """The preferred class of every unit, or -1 where it has none.

    The paper: "A unit's preference is given by the highest d-prime, over each
    target class [...]. If this maximum d-prime is below an arbitrary
    threshold, set to 2 throughout this article, the unit is said to have no
    preference." So a unit prefers `argmax_c dprime[c]` when
    `max_c dprime[c] >= threshold`, else -1. Ties go to the lowest class index.

    Args:
        dprime: finite real array `[num_classes, height, width]`, e.g. from
            `dprime_maps` of grid activations (the maps the indices read are
            2-D; reshape the units of a flat layer to `[num_classes, 1, units]`).
        threshold: the d′ a unit must reach to have a preference. Defaults to
            2.0 (the paper's value).

    Returns:
        int64 array `[*grid_shape]` with values in `[-1, num_classes)`.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import preference_map
    >>> dprime = np.array([[[3.0, 0.5], [2.0, 1.0]],
    ...                    [[1.0, 2.5], [2.5, 0.0]]])
    >>> preference_map(dprime)
    array([[ 0,  1],
           [ 1, -1]])
    """
    dprime = _as_dprime("dprime", dprime, ndim=3)
    threshold = validate_float("threshold", threshold)
    return _preference(dprime, threshold, axis=0)


def number_similarity(num_classes):
    """Similarity of the numbers `0 .. C-1`: `1 - |i - j| / (C - 1)`.

    1 on the diagonal, falling linearly to 0 between the two extreme numbers
    (for `C = 1` the single similarity is 1). This is the similarity for the
    paper's number task ("the proximity of a unit's number preference to those
    of its 8 immediate neighbors"); it is the one the notebooks' first
    topography function uses (`1 - |a - b| / lc` with `lc = 9` for 10 numbers).

    Args:
        num_classes: number of classes `C >= 1`.

    Returns:
        float64 array `[C, C]`, symmetric.

    Example:

    >>> from tfemergent.analysis import number_similarity
    >>> number_similarity(3)
    array([[1. , 0.5, 0. ],
           [0.5, 1. , 0.5],
           [0. , 0.5, 1. ]])
    """
    num_classes = validate_int("num_classes", num_classes, minimum=1)
    classes = np.arange(num_classes, dtype=np.float64)
    distance = np.abs(classes[:, None] - classes[None, :])
    return 1.0 - distance / max(num_classes - 1, 1)


def clustering_index(
    preference_map,
    num_shuffles=20,
    connectivity=4,
    seed=None,
    return_details=False,
    legacy=False,
):
    """Clustering of a preference map minus that of shuffled maps.

    **Clustering** is the mean of the per-class mean component size: for every
    class `c` present on the map (at least one unit prefers it), the units that
    prefer `c` are split into connected components (`scipy.ndimage.label`,
    4- or 8-connectivity), and the class's clustering is their mean size
    (units of `c` / components of `c`); the map's clustering is the mean of
    these over the classes present. This follows the paper: "Clustering is
    defined as the average size, over all target classes, of the connected
    components on the grid for this class" and S1: "Clustering for a given
    category is the average number of units in the connected components [...]
    We call C_M the mean, over all contrasts of interest, of the clustering
    measures". So a class with one big component weighs as much as a class
    with many small ones; it is not the mean over all components of all
    classes. Units with no preference (-1) belong to no component. A map
    where no unit has a preference measures nothing: its index, clustering and
    control are NaN (not 0, which would read as "as clustered as chance").

    **Control**: the same clustering, averaged over `num_shuffles` random
    permutations of the whole map, no-preference units included (S1: "averaged
    over 20 random permutations of M", M being the preference map; the
    notebooks also shuffle every unit). A permutation keeps the number of
    units of each class and of no-preference units and randomises where they
    are. The control is the mean over the shuffles actually run.

    **Index** = clustering - control. It is signed: the paper writes
    `|C_M - C_s(M)|`, but an absolute value would also count a map more
    dispersed than chance (a checkerboard) as clustered, while the paper
    reports clustering as "always higher than that obtained for a shuffled map
    (positive clustering index)"; DESIGN.md §4 also specifies the difference.

    Args:
        preference_map: integer array `[height, width]` with values >= -1
            (-1: no preference), e.g. from `preference_map`. Float arrays of
            whole numbers are accepted.
        num_shuffles: number of random permutations for the control, >= 1.
            Defaults to 20 (the paper's count).
        connectivity: 4 (edge neighbours) or 8 (edge and corner neighbours)
            for the connected components. Defaults to 4, the notebooks' value
            (the paper does not say).
        seed: `None` or an integer >= 0 for `np.random.default_rng`; see the
            module docstring for how the permutations are drawn.
        return_details: if `True`, return a dict instead of the index.
        legacy: if `True`, reproduce the notebooks' bug: run only
            `num_shuffles // 2` permutations (10 for the default 20) and divide
            their sum by `num_shuffles`, i.e. halve the control. Off by default.

    Returns:
        The index as a float, or with `return_details=True` a dict with
        `"index"`, `"clustering"`, `"control"` (floats),
        `"shuffled_clustering"` (float64 `[shuffles run]`),
        `"class_clustering"` (float64 `[C]`, 0 for a class not present),
        `"num_components"` and `"num_units"` (int64 `[C]`), where
        `C = max(map) + 1`.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import clustering_index
    >>> pmap = np.array([[ 0,  0, -1,  1],
    ...                  [ 0,  0, -1, -1],
    ...                  [-1, -1, -1, -1],
    ...                  [ 1, -1, -1,  1]])
    >>> details = clustering_index(pmap, seed=0, return_details=True)
    >>> details["num_components"], details["num_units"]
    (array([1, 3]), array([4, 3]))
    >>> details["clustering"]  # class 0: one component of 4, class 1: three of 1
    2.5
    >>> bool(details["index"] > 0)
    True
    """
    pmap = _as_preference_map("preference_map", preference_map)
    num_shuffles = validate_int("num_shuffles", num_shuffles, minimum=1)
    connectivity = validate_connectivity("connectivity", connectivity)
    seed = validate_seed("seed", seed)
    return_details = validate_bool("return_details", return_details)
    legacy = validate_bool("legacy", legacy)

    num_classes = int(pmap.max()) + 1
    maps = _shuffle_control_maps(pmap[None], seed, num_shuffles, legacy)[0]
    num_components = _component_counts(maps, num_classes, connectivity)
    num_units = _class_counts(pmap[None], num_classes)[0]
    clustering, class_clustering = _clustering(num_units[None], num_components)
    if not (pmap >= 0).any():  # nothing to measure
        clustering = np.full_like(clustering, np.nan)
    shuffled = clustering[1:]
    _, control, index = (float(value) for value in _against_control(clustering, num_shuffles))
    if not return_details:
        return index
    return {
        "index": index,
        "clustering": float(clustering[0]),
        "control": control,
        "shuffled_clustering": shuffled,
        "class_clustering": class_clustering[0],
        "num_components": num_components[0],
        "num_units": num_units,
    }


def topography_index(
    preference_map,
    similarity,
    num_shuffles=20,
    seed=None,
    return_details=False,
    legacy=False,
):
    """Neighbour similarity of a preference map minus that of shuffled maps.

    **Topography** (S1: "the average over x of the similarity in preferences
    between x and all units in v(x)", v(x) the 8 immediate neighbours): for
    every unit `x` with a preference, the mean of
    `similarity[p(x), p(y)]` over the neighbours `y` in the 3 x 3 window
    centred on `x` that have a preference; the map's topography is the mean of
    that over the units that have a preference and at least one neighbour with
    a preference. Neighbours outside the map are ignored (no padding, no
    wrap-around), as are neighbours with no preference; a unit none of whose
    neighbours has a preference does not count. A map with no such unit has
    topography 0; a map where no unit has a preference at all measures nothing,
    and its index, topography and control are NaN.

    **Control** and **index** as in `clustering_index`: the control is the
    topography averaged over `num_shuffles` permutations of the whole map
    (the shuffles actually run), and index = topography - control (signed;
    the paper writes `|T_M - T_s(M)|`, see `clustering_index`). With
    one-hot-like similarities (identity) this measures clustering; graded
    similarities (`number_similarity`) also reward neighbours with similar
    preferences.

    Args:
        preference_map: integer array `[height, width]` with values >= -1,
            e.g. from `preference_map`.
        similarity: finite real array `[C, C]` with `C > max(map)`;
            `similarity[a, b]` is the similarity of a unit preferring `a` with a
            neighbour preferring `b`.
        num_shuffles: number of random permutations for the control, >= 1.
            Defaults to 20.
        seed: `None` or an integer >= 0 (see the module docstring).
        return_details: if `True`, return a dict instead of the index.
        legacy: if `True`, reproduce the notebooks' bugs: the window is placed
            with the unit in its bottom-right corner (neighbours: the 8 other
            cells of the 3 x 3 block above and to the left of the unit, as the
            notebooks' `ndimage.convolve` filter with `filter[0, 0] = 1` does),
            and the control is the sum over `num_shuffles // 2` permutations
            divided by `num_shuffles`. Off by default.

    Returns:
        The index as a float, or with `return_details=True` a dict with
        `"index"`, `"topography"`, `"control"` (floats),
        `"shuffled_topography"` (float64 `[shuffles run]`) and `"num_units"`
        (int, the units the topography averages over).

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import number_similarity
    >>> from tfemergent.analysis import topography_index
    >>> pmap = np.array([[0, 1, 2, 3]] * 4)  # a gradient of numbers
    >>> details = topography_index(
    ...     pmap, number_similarity(4), seed=0, return_details=True)
    >>> round(details["topography"], 4)
    0.7653
    >>> bool(details["index"] > 0)
    True
    """
    pmap = _as_preference_map("preference_map", preference_map)
    similarity = _as_similarity(similarity, int(pmap.max()) + 1)
    num_shuffles = validate_int("num_shuffles", num_shuffles, minimum=1)
    seed = validate_seed("seed", seed)
    return_details = validate_bool("return_details", return_details)
    legacy = validate_bool("legacy", legacy)

    maps = _shuffle_control_maps(pmap[None], seed, num_shuffles, legacy)[0]
    offsets = _LEGACY_NEIGHBOUR_OFFSETS if legacy else _NEIGHBOUR_OFFSETS
    topography, num_units = _topography(maps, similarity, offsets)
    if not (pmap >= 0).any():  # nothing to measure
        topography = np.full_like(topography, np.nan)
    shuffled = topography[1:]
    _, control, index = (float(value) for value in _against_control(topography, num_shuffles))
    if not return_details:
        return index
    return {
        "index": index,
        "topography": float(topography[0]),
        "control": control,
        "shuffled_topography": shuffled,
        "num_units": int(num_units[0]),
    }


def index_history(
    dprime_history,
    similarity=None,
    threshold=2.0,
    num_shuffles=20,
    connectivity=4,
    seed=None,
    legacy=False,
):
    """Preference maps, clustering and topography indices of every epoch.

    Epoch `e` gets exactly what `preference_map(dprime_history[e], threshold)`,
    `clustering_index(map, num_shuffles, connectivity, seed, legacy=legacy)`
    and `topography_index(map, similarity, num_shuffles, seed, legacy=legacy)`
    give (the same permutations for every epoch and both indices), computed
    for all epochs at once: one connected-component labelling of all epochs x
    (map + shuffles) x classes, and one vectorised neighbour comparison.

    Args:
        dprime_history: finite real array `[num_epochs, C, height, width]`,
            the `dprime_maps` of each epoch.
        similarity: `None` (no topography) or a `[C, C]` similarity matrix
            (see `topography_index`, `number_similarity`).
        threshold: d′ threshold of `preference_map`. Defaults to 2.0.
        num_shuffles: permutations per epoch for the controls. Defaults to 20.
        connectivity: 4 or 8, for the clustering. Defaults to 4.
        seed: `None` or an integer >= 0.
        legacy: reproduce the notebooks' bugs (see `clustering_index` and
            `topography_index`). Off by default.

    An epoch where no unit has a preference measures nothing: its clustering
    and topography values (measure, control and index) are NaN.

    Returns:
        A dict of numpy arrays: `"preference_maps"` (int64
        `[num_epochs, height, width]`), `"clustering"`,
        `"clustering_control"`, `"clustering_index"` (float64 `[num_epochs]`),
        and, when `similarity` is given, `"topography"`,
        `"topography_control"`, `"topography_index"`.

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import number_similarity
    >>> from tfemergent.analysis import index_history
    >>> rng = np.random.default_rng(0)
    >>> history = index_history(rng.normal(0.0, 2.0, size=(3, 4, 8, 8)),
    ...                         similarity=number_similarity(4), seed=0)
    >>> sorted(history)  # doctest: +NORMALIZE_WHITESPACE
    ['clustering', 'clustering_control', 'clustering_index', 'preference_maps',
     'topography', 'topography_control', 'topography_index']
    >>> history["clustering_index"].shape, history["preference_maps"].shape
    ((3,), (3, 8, 8))
    """
    dprime_history = _as_dprime("dprime_history", dprime_history, ndim=4)
    num_epochs, num_classes, height, width = dprime_history.shape
    threshold = validate_float("threshold", threshold)
    if similarity is not None:
        similarity = _as_similarity(similarity, num_classes, exact=True)
    num_shuffles = validate_int("num_shuffles", num_shuffles, minimum=1)
    connectivity = validate_connectivity("connectivity", connectivity)
    seed = validate_seed("seed", seed)
    legacy = validate_bool("legacy", legacy)

    maps = _preference(dprime_history, threshold, axis=1)
    all_maps = _shuffle_control_maps(maps, seed, num_shuffles, legacy)
    num_components = _component_counts(
        all_maps.reshape((-1, height, width)), num_classes, connectivity
    ).reshape((num_epochs, -1, num_classes))
    num_units = _class_counts(maps, num_classes)
    clustering, _ = _clustering(num_units[:, None, :], num_components)
    # An epoch where no unit has a preference measures nothing: NaN, as in
    # `clustering_index` and `topography_index`.
    empty = ~(maps >= 0).reshape((num_epochs, -1)).any(axis=1)
    clustering[empty] = np.nan
    measure, control, index = _against_control(clustering, num_shuffles)
    history = {
        "preference_maps": maps,
        "clustering": measure,
        "clustering_control": control,
        "clustering_index": index,
    }
    if similarity is not None:
        offsets = _LEGACY_NEIGHBOUR_OFFSETS if legacy else _NEIGHBOUR_OFFSETS
        topography, _ = _topography(
            all_maps.reshape((-1, height, width)), similarity, offsets
        )
        topography = topography.reshape((num_epochs, -1)).astype(np.float64)
        topography[empty] = np.nan
        measure, control, index = _against_control(topography, num_shuffles)
        history["topography"] = measure
        history["topography_control"] = control
        history["topography_index"] = index
    return history


# --------------------------------------------------------------------------- #
# Vectorised cores.


def _preference(dprime, threshold, axis):
    best = np.argmax(dprime, axis=axis)
    strong = np.max(dprime, axis=axis) >= threshold
    return np.where(strong, best, -1).astype(np.int64)


def _permutations(seed, num_shuffles, num_units, legacy):
    """`[shuffles run, num_units]` permutations (see the module docstring)."""
    num_run = num_shuffles // _LEGACY_RUN_FRACTION if legacy else num_shuffles
    keys = np.random.default_rng(seed).random((num_shuffles, num_units))[:num_run]
    return np.argsort(keys, axis=1)


def _shuffle_control_maps(maps, seed, num_shuffles, legacy):
    """The shuffle control of both indices: `[B, H, W]` maps -> `[B, 1 + K, H, W]`,
    each map then its K shuffles (`_permutations`, the same for every map)."""
    height, width = maps.shape[-2:]
    return _with_shuffles(maps, _permutations(seed, num_shuffles, height * width, legacy))


def _against_control(values, num_shuffles):
    """`[..., 1 + K]` values of maps and their shuffles -> `(value, control, index)`:
    control = sum over the K shuffles run / `num_shuffles` (K = `num_shuffles // 2`
    with `legacy`), index = value - control."""
    control = values[..., 1:].sum(axis=-1) / num_shuffles
    return values[..., 0], control, values[..., 0] - control


def _with_shuffles(maps, permutations):
    """`[B, H, W]` maps -> `[B, 1 + K, H, W]`: each map, then its K shuffles."""
    batch, height, width = maps.shape
    flat = maps.reshape(batch, 1, height * width)
    shuffled = np.take_along_axis(flat, permutations[None, :, :], axis=2)
    return np.concatenate([flat, shuffled], axis=1).reshape(batch, -1, height, width)


def _class_counts(maps, num_classes):
    """`[B, H, W]` -> int64 `[B, C]`, the units of each class."""
    flat = maps.reshape(maps.shape[0], -1)
    offsets = np.arange(maps.shape[0])[:, None] * (num_classes + 1)
    counts = np.bincount((flat + 1 + offsets).ravel(), minlength=maps.shape[0] * (num_classes + 1))
    return counts.reshape(maps.shape[0], num_classes + 1)[:, 1:]


def _component_counts(maps, num_classes, connectivity):
    """`[B, H, W]` -> int64 `[B, C]`, the connected components of each class.

    One `ndimage.label` call: the class masks are stacked along a third axis
    with a structure that links nothing across it.
    """
    batch, height, width = maps.shape
    if num_classes == 0:
        return np.zeros((batch, 0), np.int64)
    masks = maps[:, None, :, :] == np.arange(num_classes)[None, :, None, None]
    masks = masks.reshape(batch * num_classes, height, width)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = ndimage.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels, num_labels = ndimage.label(masks, structure=structure)
    labelled = labels > 0
    slice_of_label = np.zeros(num_labels + 1, np.int64)
    slice_index = np.broadcast_to(
        np.arange(batch * num_classes)[:, None, None], labels.shape
    )
    slice_of_label[labels[labelled]] = slice_index[labelled]
    counts = np.bincount(slice_of_label[1:], minlength=batch * num_classes)
    return counts.reshape(batch, num_classes)


def _clustering(num_units, num_components):
    """Mean over present classes of units / components (0 if none present)."""
    num_units, num_components = np.broadcast_arrays(num_units, num_components)
    present = num_units > 0
    class_clustering = np.divide(
        num_units, num_components, out=np.zeros(num_units.shape), where=present
    )
    num_present = present.sum(axis=-1)
    clustering = np.divide(
        class_clustering.sum(axis=-1),
        num_present,
        out=np.zeros(num_present.shape),
        where=num_present > 0,
    )
    return clustering, class_clustering


def _topography(maps, similarity, offsets):
    """`[B, H, W]` -> (float64 `[B]` topography, int64 `[B]` units counted)."""
    batch, height, width = maps.shape
    pad = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    padded = np.full((batch, height + 2 * pad, width + 2 * pad), -1, np.int64)
    padded[:, pad : pad + height, pad : pad + width] = maps
    centre_valid = maps >= 0
    centre = np.where(centre_valid, maps, 0)
    total = np.zeros(maps.shape)
    count = np.zeros(maps.shape, np.int64)
    for dy, dx in offsets:
        neighbour = padded[:, pad + dy : pad + dy + height, pad + dx : pad + dx + width]
        both = centre_valid & (neighbour >= 0)
        values = similarity[centre, np.where(both, neighbour, 0)]
        total += np.where(both, values, 0.0)
        count += both
    counted = count > 0
    unit_mean = np.divide(total, count, out=np.zeros(maps.shape), where=counted)
    num_units = counted.sum(axis=(1, 2))
    topography = np.divide(
        unit_mean.sum(axis=(1, 2)),
        num_units,
        out=np.zeros(batch),
        where=num_units > 0,
    )
    return topography, num_units


# --------------------------------------------------------------------------- #
# Validation.


def _as_integer_array(name, value):
    array = np.asarray(value)
    if array.dtype == bool or array.size == 0:
        raise ValueError(
            f"`{name}` must be a non-empty integer array. "
            f"Received: {name}.dtype={array.dtype}, {name}.shape={array.shape}"
        )
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int64)
    if array.dtype == object and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in array.ravel()
    ):
        return array.astype(np.int64)
    if (
        np.issubdtype(array.dtype, np.floating)
        and np.all(np.isfinite(array))
        and np.all(array == np.round(array))
    ):
        return array.astype(np.int64)
    raise ValueError(
        f"`{name}` must hold integers (whole numbers). "
        f"Received: {name}.dtype={array.dtype}"
    )


def _as_preference_map(name, value):
    array = _as_integer_array(name, value)
    if array.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D map [height, width]. Received: {name}.shape={array.shape}"
        )
    if array.min() < -1:
        raise ValueError(
            f"`{name}` must hold class indices >= 0, or -1 for no preference. "
            f"Received: {name} with minimum {array.min()}"
        )
    return array


def _as_dprime(name, value, min_ndim=None, ndim=None):
    expected = {
        4: "[num_epochs, num_classes, height, width]",
        3: "[num_classes, height, width]",
    }.get(ndim, "[num_classes, *grid_shape]")
    return validate_real_array(
        name, value, ndim=ndim, min_ndim=min_ndim, expected=f"of shape {expected}"
    )


def _as_similarity(value, num_classes, exact=False):
    array = np.asarray(value)
    square = array.ndim == 2 and array.shape[0] == array.shape[1]
    big_enough = square and (
        array.shape[0] == num_classes if exact else array.shape[0] >= num_classes
    )
    if (
        not big_enough
        or array.size == 0
        or array.dtype == bool
        or not np.issubdtype(array.dtype, np.number)
        or np.iscomplexobj(array)
    ):
        size = f"{num_classes}" if exact else f">= {num_classes} (max class + 1)"
        raise ValueError(
            f"`similarity` must be a real square matrix [C, C] with C {size}. "
            f"Received: similarity.shape={array.shape}, similarity.dtype={array.dtype}"
        )
    return validate_finite("similarity", array.astype(np.float64))
