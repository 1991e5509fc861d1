"""`TrainingConfig`: how the training stages of `NeuronHierarchyBuilder` train."""

import dataclasses

from tfemergent.utils.validation import validate_bool, validate_float, validate_int

TRAINING_STAGES = ("base", "retrained", "final")


@dataclasses.dataclass
class TrainingConfig:
    """The training of the base network, of the pruned one and of the one with add-ons.

    Every training stage uses SGD with Nesterov momentum, a cosine schedule
    from ``learning_rate`` to ``min_learning_rate`` over the stage, global
    gradient-norm clipping and cross-entropy; the training images are
    shuffled once per epoch from the builder's seed.

    Args:
        epochs: int >= 1, epochs of the base network.
        retrain_epochs: int >= 0 or None (= ``epochs``), after pruning.
        final_epochs: int >= 0 or None (= ``epochs``), with the add-ons.
        batch_size: int >= 1.
        learning_rate, min_learning_rate: floats > 0, the cosine schedule
            (the paper: 0.05 to 0.001).
        momentum: float in [0, 1); also the momentum of the add-on training
            of the search.
        global_clipnorm: float > 0 or None (the paper: 5.0).
        retrain_from_scratch: bool. False: the retraining stages continue from
            the trained weights; True: they re-initialise the weights (smooth
            init), keeping the pruned structure and the add-ons' connections.

    Example:

    >>> from tfemergent.models.nhn import TrainingConfig
    >>> from tfemergent.models.nhn.training_config import TRAINING_STAGES
    >>> config = TrainingConfig(epochs=4, final_epochs=2)
    >>> [config.stage_epochs(stage) for stage in TRAINING_STAGES]
    [4, 4, 2]
    >>> TrainingConfig.from_config(config.get_config()) == config
    True
    """

    epochs: int = 3
    retrain_epochs: int = None
    final_epochs: int = None
    batch_size: int = 64
    learning_rate: float = 0.05
    min_learning_rate: float = 0.001
    momentum: float = 0.9
    global_clipnorm: float = 5.0
    retrain_from_scratch: bool = False

    def __post_init__(self):
        self.epochs = validate_int("epochs", self.epochs, minimum=1)
        self.retrain_epochs = validate_int(
            "retrain_epochs", self.retrain_epochs, minimum=0, allow_none=True
        )
        self.final_epochs = validate_int(
            "final_epochs", self.final_epochs, minimum=0, allow_none=True
        )
        self.batch_size = validate_int("batch_size", self.batch_size, minimum=1)
        self.learning_rate = validate_float(
            "learning_rate", self.learning_rate, minimum=0.0, min_inclusive=False
        )
        self.min_learning_rate = validate_float(
            "min_learning_rate", self.min_learning_rate, minimum=0.0,
            maximum=self.learning_rate, min_inclusive=False,
        )
        self.momentum = validate_float("momentum", self.momentum, minimum=0.0, maximum=0.999)
        self.global_clipnorm = validate_float(
            "global_clipnorm", self.global_clipnorm, minimum=0.0, min_inclusive=False,
            allow_none=True,
        )
        self.retrain_from_scratch = validate_bool(
            "retrain_from_scratch", self.retrain_from_scratch
        )

    def stage_epochs(self, stage):
        """The epochs of a training stage: ``"base"``, ``"retrained"`` or ``"final"``."""
        epochs = {"base": self.epochs, "retrained": self.retrain_epochs,
                  "final": self.final_epochs}[stage]
        return self.epochs if epochs is None else epochs

    def get_config(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config):
        return cls(**config)
