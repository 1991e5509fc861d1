"""How evenly the units of a grid (a Reset network's level) are used."""

import numpy as np

from tfemergent.utils.validation import validate_finite, validate_float


def grid_usage(activations, threshold=0.0, rare=0.05):
    """How evenly the units of a grid carry activity over a set of inputs.

    Hannagan ("Reset networks", Discussion and its Figure 7) shows the
    normalised activation of each grid unit over 1,000 test images: units
    polarise (rarely or nearly always active), and a reconstruction head spreads
    the activity over the grid. This summarises such a map by numbers:

    - ``activity``: each unit's mean absolute activation over the inputs,
      divided by the largest one (1 for the most active unit; all 0 when every
      activation is 0). This is the map of the paper's figure.
    - ``evenness``: ``exp(H(p)) / U`` with ``p`` the units' mean absolute
      activations normalised to sum 1, ``H`` the Shannon entropy (nats) and
      ``U`` the number of units: the effective fraction of units in use, 1
      when all units are equally active, ``1 / U`` when one unit carries all the
      activity (1 when all activations are 0: nothing is uneven).
    - ``gini``: the Gini coefficient of the mean absolute activations, 0 for
      perfectly even use, ``1 - 1 / U`` when one unit carries everything.
    - ``firing_rate``: per unit, the fraction of inputs with activation
      ``> threshold``.
    - ``polarised_fraction``: the fraction of units whose firing rate is
      ``< rare`` or ``> 1 - rare`` (almost never or almost always active).

    Args:
        activations: numeric array ``(N, ...)``: ``N >= 1`` inputs, any unit
            shape (e.g. ``(N, m, m)`` for a grid).
        threshold: activation above which a unit counts as active.
        rare: firing-rate margin of a polarised unit, in ``[0, 0.5]``.

    Returns:
        dict with ``"activity"`` (float64 array of the unit shape),
        ``"evenness"``, ``"gini"``, ``"polarised_fraction"`` (floats) and
        ``"firing_rate"`` (float64 array of the unit shape).

    Example:

    >>> import numpy as np
    >>> from tfemergent.analysis import grid_usage
    >>> activations = np.array([[[1.0, 0.0], [0.0, 0.0]],
    ...                         [[3.0, 0.0], [0.0, 0.0]]])  # one unit is used
    >>> usage = grid_usage(activations)
    >>> usage["activity"]
    array([[1., 0.],
           [0., 0.]])
    >>> round(usage["evenness"], 4), round(usage["gini"], 4), usage["polarised_fraction"]
    (0.25, 0.75, 1.0)
    """
    if isinstance(activations, (str, bytes)):
        raise ValueError(
            "Argument `activations` must be a numeric array (N, ...) of unit "
            f"activations. Received: activations={activations!r}"
        )
    values = np.asarray(activations)
    if values.dtype == object or not (
        np.issubdtype(values.dtype, np.number) or values.dtype == bool
    ):
        raise ValueError(
            "Argument `activations` must be a numeric array (N, ...) of unit "
            f"activations. Received: activations of dtype {values.dtype}"
        )
    if values.ndim < 2 or values.shape[0] < 1 or values[0].size < 1:
        raise ValueError(
            "Argument `activations` must have shape (N, ...) with N >= 1 inputs and at "
            f"least one unit. Received: activations.shape={values.shape}"
        )
    values = validate_finite("activations", values.astype(np.float64))
    threshold = validate_float("threshold", threshold)
    rare = validate_float("rare", rare, minimum=0.0, maximum=0.5)

    mean_abs = np.mean(np.abs(values), axis=0)
    total = mean_abs.sum()
    num_units = mean_abs.size
    if total > 0:
        activity = mean_abs / mean_abs.max()
        share = (mean_abs / total).ravel()
        nonzero = share[share > 0]
        evenness = float(np.exp(-np.sum(nonzero * np.log(nonzero))) / num_units)
        ordered = np.sort(mean_abs.ravel())
        ranks = np.arange(1, num_units + 1)
        gini = float(np.sum((2 * ranks - num_units - 1) * ordered) / (num_units * ordered.sum()))
    else:
        activity = np.zeros_like(mean_abs)
        evenness, gini = 1.0, 0.0
    firing_rate = np.mean(values > threshold, axis=0)
    polarised = (firing_rate < rare) | (firing_rate > 1.0 - rare)
    return {
        "activity": activity,
        "evenness": evenness,
        "gini": gini,
        "firing_rate": firing_rate,
        "polarised_fraction": float(np.mean(polarised)),
    }
