"""Where the image and the codes sit on the hierarchy's feature map; topologies."""

import numpy as np

from tfemergent.geometry import receptive_fields as fields
from tfemergent.utils.validation import validate_int, validate_seed

HANDCRAFTED_TOPOLOGIES = ("flat", "columnar", "pyramidal")
TOPOLOGIES = HANDCRAFTED_TOPOLOGIES + ("random",)
SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1))


class HierarchyLayout:
    """The feature map of a `SelfOrganisingHierarchy`: image, codes and fields.

    The image of shape ``image_shape = (ih, iw)`` sits at the top-left corner of
    the map. The ``num_units`` codes, blocks of ``code_shape`` (default: square,
    ``10 x 10`` for ``num_hidden = 100``), sit to its right in columns, as many
    per column as fit in the image height, in unit order (unit 0 at the top of
    the first column). For the paper's MNIST setting (20 x 20 image, three units
    of 100) the map is 20 x 40: image in columns 0-19, unit 0's code at (0, 20),
    unit 1's at (10, 20), unit 2's at (0, 30), and the 10 x 10 block at (10, 30)
    stays empty (zero).

    A *topology* is one receptive field per unit (see `MaskedAutoencoderUnit`).
    The three handcrafted topologies of the paper's Fig. 2 (the figure is not in
    the text; this is our reading of it and of Section 3.2) exist for three units
    reading a ``2N x 2N`` image with ``N x N`` codes, whose quadrants q1 (top
    left), q2 (top right), q3 (bottom left), q4 (bottom right) are windows:

    - ``"pyramidal"`` (A3, the "perfect hierarchy"): unit 0 reads q1+q2, unit 1
      reads q3+q4, unit 2 reads the codes of units 0 and 1.
    - ``"flat"`` (A1): all three read the image: q1+q2, q3+q4, and the central
      band (rows N/2 .. 3N/2, both halves).
    - ``"columnar"`` (A2): a chain, each unit reading the unit directly below it:
      unit 0 reads q1+q3, unit 1 reads unit 0's code + q2, unit 2 reads unit 1's
      code + q4.

    ``"random"`` places each window uniformly at random on the map (seeded)
    where it is valid: inside the map, not on the unit's own code, not
    overlapping the unit's other window.

    Args:
        image_shape: ``(ih, iw)`` of the image.
        num_units: number of autoencoder units ``K``, >= 1.
        num_hidden: code size of each unit.
        window_size: ``N``.
        code_shape: ``(rows, cols)`` of a code block; default `default_code_shape`.

    Example:

    >>> from tfemergent.geometry import HierarchyLayout
    >>> layout = HierarchyLayout((20, 20), num_units=3, num_hidden=100, window_size=10)
    >>> layout.feature_map_shape, layout.code_locations
    ((20, 40), [(0, 20), (10, 20), (0, 30)])
    >>> layout.topology("pyramidal")
    [((0, 0), (0, 10)), ((10, 0), (10, 10)), ((0, 20), (10, 20))]
    >>> layout.topology("random", seed=0) == layout.topology("random", seed=0)
    True
    """

    def __init__(self, image_shape, num_units=3, num_hidden=100, window_size=10, code_shape=None):
        self.image_shape = fields.validate_feature_map_shape("image_shape", image_shape)
        self.num_units = validate_int("num_units", num_units, minimum=1)
        self.num_hidden = validate_int("num_hidden", num_hidden, minimum=1)
        self.window_size = validate_int("window_size", window_size, minimum=1)
        self.code_shape = fields.validate_code_shape(code_shape, self.num_hidden)
        image_rows, image_cols = self.image_shape
        code_rows, code_cols = self.code_shape
        per_column = max(1, image_rows // code_rows)
        num_columns = -(-self.num_units // per_column)
        height = max(image_rows, code_rows * min(self.num_units, per_column))
        width = image_cols + num_columns * code_cols
        self.feature_map_shape = (height, width)
        if self.window_size > min(self.feature_map_shape):
            raise ValueError(
                f"Argument `window_size` must fit in the {height}x{width} feature map. "
                f"Received: window_size={window_size!r}"
            )
        self.image_location = (0, 0)
        self.code_locations = [
            ((k % per_column) * code_rows, image_cols + (k // per_column) * code_cols)
            for k in range(self.num_units)
        ]

    def code_box(self, unit):
        """``(row, col, rows, cols)`` of unit ``unit``'s code."""
        return self.code_locations[unit] + self.code_shape

    def get_config(self):
        return {
            "image_shape": list(self.image_shape),
            "num_units": self.num_units,
            "num_hidden": self.num_hidden,
            "window_size": self.window_size,
            "code_shape": list(self.code_shape),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------ topologies

    def validate_field(self, unit, receptive_field, name="receptive_field"):
        """One unit's field, checked for this layout (see `MaskedAutoencoderUnit`)."""
        return fields.validate_receptive_field(
            name, receptive_field, self.feature_map_shape, self.window_size, self.code_box(unit)
        )

    def validate_topology(self, topology, name="topology"):
        """A list of ``num_units`` fields, each checked; returns them normalised."""
        try:
            units = list(topology)
        except TypeError:
            units = None
        if units is None or len(units) != self.num_units:
            raise ValueError(
                f"Argument `{name}` must be one of {list(TOPOLOGIES)} or a list of "
                f"num_units={self.num_units} receptive fields, each ((row0, col0), (row1, "
                f"col1)). Received: {name}={topology!r}"
            )
        return [self.validate_field(k, f, name=f"{name}[{k}]") for k, f in enumerate(units)]

    def topology(self, topology, seed=None):
        """The fields of a named topology, or ``topology`` itself validated.

        Args:
            topology: ``"flat"``, ``"columnar"``, ``"pyramidal"``, ``"random"``, or a
                list of one receptive field per unit.
            seed: seed of ``"random"`` (None: fresh randomness).

        Returns:
            A list of ``num_units`` fields ``((row0, col0), (row1, col1))``.
        """
        if isinstance(topology, str):
            if topology not in TOPOLOGIES:
                raise ValueError(
                    f"Argument `topology` must be one of {list(TOPOLOGIES)} or a list of "
                    f"receptive fields. Received: topology={topology!r}"
                )
            if topology == "random":
                return self.random_topology(np.random.default_rng(validate_seed("seed", seed)))
            return self._handcrafted(topology)
        return self.validate_topology(topology)

    def _handcrafted(self, name):
        size = self.window_size
        if (
            self.num_units != 3
            or self.image_shape != (2 * size, 2 * size)
            or self.code_shape != (size, size)
        ):
            raise ValueError(
                f"The handcrafted topology {name!r} is defined for the paper's setting: 3 units "
                f"reading a 2N x 2N image with N x N codes (N = window_size = {size}). "
                f"Received: num_units={self.num_units}, image_shape={self.image_shape}, "
                f"code_shape={self.code_shape}; use 'random' or a list of fields instead."
            )
        q1, q2, q3, q4 = (0, 0), (0, size), (size, 0), (size, size)
        code = self.code_locations
        topology = {
            "pyramidal": [(q1, q2), (q3, q4), (code[0], code[1])],
            "flat": [(q1, q2), (q3, q4), ((size // 2, 0), (size // 2, size))],
            "columnar": [(q1, q3), (code[0], q2), (code[1], q4)],
        }[name]
        return self.validate_topology(topology)

    def _valid_corners(self, unit, other=None):
        """All valid (row, col) window corners for ``unit``, avoiding window ``other``."""
        size = self.window_size
        height, width = self.feature_map_shape
        corners = []
        for row in range(height - size + 1):
            for col in range(width - size + 1):
                box = (row, col, size, size)
                if fields.boxes_overlap(box, self.code_box(unit)):
                    continue
                if other is not None and fields.boxes_overlap(box, other + (size, size)):
                    continue
                corners.append((row, col))
        return corners

    def random_topology(self, rng):
        """One uniformly random valid field per unit (``rng``: `np.random.Generator`)."""
        topology = []
        for unit in range(self.num_units):
            first_choices = self._valid_corners(unit)
            if not first_choices:
                raise ValueError(
                    f"No window of size {self.window_size} fits on the "
                    f"{self.feature_map_shape} feature map beside unit {unit}'s code. "
                    f"Received: window_size={self.window_size}"
                )
            first = first_choices[rng.integers(len(first_choices))]
            second_choices = self._valid_corners(unit, other=first)
            if not second_choices:
                raise ValueError(
                    f"Two non-overlapping windows of size {self.window_size} do not fit on "
                    f"the {self.feature_map_shape} feature map beside unit {unit}'s code. "
                    f"Received: window_size={self.window_size}"
                )
            second = second_choices[rng.integers(len(second_choices))]
            topology.append((first, second))
        return topology

    def neighbours(self, topology, unit):
        """Every valid field of ``unit`` one step (+-1 row or column, one window) away."""
        field = self.validate_field(unit, topology[unit])
        result = []
        for window in range(fields.NUM_WINDOWS):
            for d_row, d_col in SHIFTS:
                moved = list(field)
                moved[window] = (field[window][0] + d_row, field[window][1] + d_col)
                try:
                    result.append(self.validate_field(unit, moved))
                except ValueError:
                    continue
        return result
