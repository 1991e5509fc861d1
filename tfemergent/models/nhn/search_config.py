"""`SearchConfig`: the location-direction search (LDS) of `NeuronHierarchyBuilder`."""

import dataclasses
import os

from tfemergent.layers.add_on_conv2d import ADD_ON_KERNEL_SIZES
from tfemergent.models.nhn.add_on_super_network import (
    ADD_ON_INITIALIZERS,
    validate_kernel_sizes,
)
from tfemergent.models.nhn.location_evaluator import SHARED_WEIGHTS_MODES
from tfemergent.search.evolutionary_search import EvolutionarySearch
from tfemergent.search.location_space import LocationSpace
from tfemergent.utils.validation import validate_bool, validate_choice, validate_float, validate_int


@dataclasses.dataclass
class SearchConfig:
    """The add-on search: which add-ons, the evolution, their training and the directions.

    `EvolutionarySearch` over a `LocationSpace` (``num_cycles``,
    ``population_size``, ...) with `LocationEvaluator` as fitness: each member
    trains its add-ons for ``train_batches`` batches of ``batch_size`` images
    of its own slice of the training set and is scored on the validation set.
    The best genome's add-ons are then trained densely for
    ``direction_epochs``, each keeps its ``direction_density`` most sensitive
    connections, and the sparse add-ons train for another ``direction_epochs``.

    Args:
        kernel_sizes: add-on kernel sizes (subset of ``(3, 5)``).
        include_segment_input: whether add-ons may read a segment's input.
        add_on_initializer: ``"zeros"``, ``"smooth"`` or ``"he_normal"``, the
            initial add-on kernels (see `AddOnSuperNetwork`).
        none_probability: probability of a "no add-on" gene, in [0, 1].
        num_cycles, population_size, num_parents, num_children, num_fresh:
            `EvolutionarySearch` (the paper: 300, 20, 4, 5, 5).
        train_batches: batches per member per cycle (the paper: 25).
        batch_size: their size (the paper: 100).
        eval_size: None (whole validation set) or validation images per member
            (the paper: 500).
        shared_weights: ``"sequential"`` or ``"per_cycle"`` (see
            `LocationEvaluator`).
        learning_rate, min_learning_rate: the cosine over the cycles (the
            paper: 0.05 to 0.001); the direction training uses
            ``learning_rate``.
        direction_density: fraction of connections kept per add-on, in (0, 1].
        direction_epochs: int >= 0, epochs of add-on training before the
            choice of connections (dense) and after it (sparse).
        validation_fraction: fraction of the training images held out to score
            the search, in (0, 1), when no validation data are given.
        directory: None or a path: the `SearchRunner` checkpoint (and shared
            add-on weights) directory; a killed search resumes there.

    Example:

    >>> from tfemergent.models.nhn import SearchConfig
    >>> config = SearchConfig(num_cycles=2, population_size=4, num_parents=2,
    ...                       num_children=1, num_fresh=1)
    >>> config.strategy(segment_sizes=(2, 2), seed=0).num_trials
    8
    >>> SearchConfig.from_config(config.get_config()) == config
    True
    """

    kernel_sizes: tuple = ADD_ON_KERNEL_SIZES
    include_segment_input: bool = True
    add_on_initializer: str = "zeros"
    none_probability: float = 0.8
    num_cycles: int = 3
    population_size: int = 8
    num_parents: int = 3
    num_children: int = 3
    num_fresh: int = 2
    train_batches: int = 5
    batch_size: int = 32
    eval_size: int = None
    shared_weights: str = "sequential"
    learning_rate: float = 0.01
    min_learning_rate: float = 0.001
    direction_density: float = 0.1
    direction_epochs: int = 1
    validation_fraction: float = 0.1
    directory: str = None

    def __post_init__(self):
        self.kernel_sizes = validate_kernel_sizes(self.kernel_sizes)
        self.include_segment_input = validate_bool(
            "include_segment_input", self.include_segment_input
        )
        self.add_on_initializer = validate_choice(
            "add_on_initializer", self.add_on_initializer, ADD_ON_INITIALIZERS
        )
        self.none_probability = validate_float(
            "none_probability", self.none_probability, minimum=0.0, maximum=1.0
        )
        self.train_batches = validate_int("train_batches", self.train_batches, minimum=1)
        self.batch_size = validate_int("batch_size", self.batch_size, minimum=1)
        self.eval_size = validate_int("eval_size", self.eval_size, minimum=1, allow_none=True)
        self.shared_weights = validate_choice(
            "shared_weights", self.shared_weights, SHARED_WEIGHTS_MODES
        )
        self.learning_rate = validate_float(
            "learning_rate", self.learning_rate, minimum=0.0, min_inclusive=False
        )
        self.min_learning_rate = validate_float(
            "min_learning_rate", self.min_learning_rate, minimum=0.0,
            maximum=self.learning_rate, min_inclusive=False,
        )
        self._validate_directions_and_data()
        self.strategy(segment_sizes=(2,), seed=0)  # the evolution's counts, together

    def _validate_directions_and_data(self):
        self.direction_density = validate_float(
            "direction_density", self.direction_density, minimum=0.0, maximum=1.0,
            min_inclusive=False,
        )
        self.direction_epochs = validate_int("direction_epochs", self.direction_epochs, minimum=0)
        self.validation_fraction = validate_float(
            "validation_fraction", self.validation_fraction, minimum=0.0, maximum=1.0,
            min_inclusive=False,
        )
        if self.validation_fraction >= 1.0:
            raise ValueError(
                "Argument `validation_fraction` must be < 1 (some images must remain for "
                f"training). Received: validation_fraction={self.validation_fraction!r}"
            )
        if self.directory is not None and not isinstance(self.directory, (str, os.PathLike)):
            raise ValueError(
                f"Argument `directory` must be None or a path. Received: "
                f"directory={self.directory!r}"
            )
        self.directory = None if self.directory is None else os.fspath(self.directory)

    def strategy(self, segment_sizes, seed):
        """The `EvolutionarySearch` of this configuration for a base of ``segment_sizes``."""
        space = LocationSpace(
            segment_sizes=segment_sizes,
            kernel_sizes=self.kernel_sizes,
            none_probability=self.none_probability,
            include_segment_input=self.include_segment_input,
        )
        return EvolutionarySearch(
            space,
            num_cycles=self.num_cycles,
            population_size=self.population_size,
            num_parents=self.num_parents,
            num_children=self.num_children,
            num_fresh=self.num_fresh,
            seed=seed,
        )

    def get_config(self):
        return {**dataclasses.asdict(self), "kernel_sizes": list(self.kernel_sizes)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)
