"""`ReceptiveFieldSpace`: the topologies of a self-organising hierarchy."""

from tfemergent.geometry.hierarchy_layout import HierarchyLayout
from tfemergent.search.search_space import SearchSpace, register_search_class


@register_search_class
class ReceptiveFieldSpace(SearchSpace):
    """The receptive fields of the K units of a `SelfOrganisingHierarchy`.

    A candidate is a topology: a list of K fields, each two windows given by
    the ``[row, col]`` of their top-left cell, e.g. ``[[[0, 0], [0, 10]], ...]``.
    Part ``k`` is unit k's field. `sample` draws a uniformly random valid
    topology (`HierarchyLayout.random_topology`); `neighbour` moves one of the
    unit's two windows by one cell up, down, left or right, chosen uniformly
    among the moves that keep the field valid (inside the map, windows not
    overlapping, not on the unit's own code) — the paper's "random perturbation
    ... between [-1, 1] for a horizontal or vertical shift".

    The space is described by the hierarchy's layout arguments, so its config
    is plain JSON (the geometry is a `tfemergent.geometry.HierarchyLayout`).

    Args:
        image_shape, num_units, num_hidden, window_size, code_shape: as in
            `SelfOrganisingHierarchy` (the paper: (20, 20), 3, 100, 10).

    Example:

    >>> import numpy as np
    >>> from tfemergent.search import ReceptiveFieldSpace
    >>> space = ReceptiveFieldSpace((20, 20), num_units=3, num_hidden=100, window_size=10)
    >>> space.num_parts
    3
    >>> pyramidal = [[[0, 0], [0, 10]], [[10, 0], [10, 10]], [[0, 20], [10, 20]]]
    >>> moved = space.neighbour(pyramidal, 2, np.random.default_rng(0))
    >>> moved[:2] == pyramidal[:2], moved[2] in (
    ...     [[0, 19], [10, 20]], [[0, 20], [10, 19]], [[0, 20], [10, 21]])
    (True, True)
    """

    def __init__(self, image_shape=(20, 20), num_units=3, num_hidden=100, window_size=10,
                 code_shape=None):
        self.layout = HierarchyLayout(image_shape, num_units, num_hidden, window_size, code_shape)

    @property
    def num_parts(self):
        return self.layout.num_units

    @staticmethod
    def _as_lists(topology):
        return [[list(window) for window in field] for field in topology]

    def sample(self, rng):
        return self._as_lists(self.layout.random_topology(rng))

    def neighbour(self, candidate, part, rng):
        topology = self.layout.validate_topology(candidate, name="candidate")
        choices = self.layout.neighbours(topology, part)
        if not choices:
            raise ValueError(
                f"Unit {part}'s field has no valid one-cell move on the "
                f"{self.layout.feature_map_shape} map. Received: candidate={candidate!r}"
            )
        topology[part] = choices[int(rng.integers(len(choices)))]
        return self._as_lists(topology)

    def validate(self, candidate):
        candidate = super().validate(candidate)
        return self._as_lists(self.layout.validate_topology(candidate, name="candidate"))

    def get_config(self):
        return self.layout.get_config()
