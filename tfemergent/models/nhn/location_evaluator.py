"""`LocationEvaluator`: the fitness of add-on locations with weights shared between trials."""

import hashlib
import math
import os
import threading

import numpy as np

from tfemergent.models.nhn.add_on_super_network import AddOnSuperNetwork
from tfemergent.models.nhn.data_checks import validate_images_and_labels, validate_pair
from tfemergent.models.nhn.per_cycle_sharing import TRIALS_DIRECTORY_NAME, PerCycleSharing
from tfemergent.models.nhn.sequential_sharing import SequentialSharing
from tfemergent.models.nhn.trial_weight_store import (
    FINGERPRINT_NAME,
    MEMBER_RECORD_NAME,
    MEMBER_WEIGHTS_NAME,
    TrialWeightStore,
)
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

SHARED_DIRECTORY_NAME = "shared_add_ons"
SHARING_POLICIES = {"sequential": SequentialSharing, "per_cycle": PerCycleSharing}
SHARED_WEIGHTS_MODES = tuple(SHARING_POLICIES)
__all__ = [
    "FINGERPRINT_NAME", "LocationEvaluator", "MEMBER_RECORD_NAME", "MEMBER_WEIGHTS_NAME",
    "SHARED_DIRECTORY_NAME", "SHARED_WEIGHTS_MODES", "TRIALS_DIRECTORY_NAME",
]


def _all_finite(weights):
    return all(np.all(np.isfinite(value)) for value in weights.values())


class LocationEvaluator:
    """Fitness of add-on locations for `SearchRunner`, with shared, checkpointed weights.

    The evaluation step of the location search of Neuron Hierarchical Networks
    (Algorithm 1): for a trial of `tfemergent.search.EvolutionarySearch` (a
    `LocationSpace` genome, ``info = {"cycle": t, "member": k, ...}``) it

    1. activates the genome's add-ons in the `AddOnSuperNetwork` (the base
       network is frozen there);
    2. trains the active add-ons with SGD (momentum ``momentum``, restarted at
       every trial) on member ``k``'s slice of cycle ``t``'s training batches:
       the training set is shuffled once per cycle (seed ``(seed, t)``) and
       member ``k`` gets batches ``k * train_batches .. (k + 1) *
       train_batches - 1`` (wrapping around when the set is smaller than a
       population's worth, so the slices are disjoint when it is large
       enough; the paper: 25 batches of 100 per member, one pass over
       CIFAR-10 per cycle of 20);
    3. returns ``{"fitness": validation accuracy, "train_loss",
       "num_add_ons", "learning_rate"}`` (fitness is maximised). With
       ``eval_size=None`` the whole validation set is used; with an int,
       member ``k``'s slice of ``eval_size`` images of the validation set
       (shuffled per cycle), as the paper's one batch of 500 per member.

    The learning rate follows a cosine from ``learning_rate`` (cycle 0) to
    ``min_learning_rate`` (cycle ``num_cycles - 1``), the paper's 0.05 to
    0.001; constant ``learning_rate`` without ``num_cycles``.

    **Diverged training.** When the training loss or a trained add-on weight
    is not finite (NaN or infinite), the trial's fitness is NaN and its result
    has a ``"failure"`` text, so that `SearchRunner` records it as a failed
    trial (never the best; see `tfemergent.search.SearchStrategy`); its
    add-ons keep the weights they had before the trial, so the divergence
    does not spread to other trials.

    The add-on weights are shared between the trials (as ENAS shares its
    weights); ``shared_weights`` says how.

    **``shared_weights="sequential"``** (the default, `SequentialSharing`). The state a trial
    starts from is the state left by the trial before it (in trial order):
    member ``k`` of a cycle continues from member ``k - 1``. The evaluator
    checkpoints that state so that a search killed at any point and resumed
    by `SearchRunner` repeats exactly the same evaluations:

    - at the start of every cycle (member 0) a *snapshot* of every add-on
      weight, ``before_trial_<id>.npz``;
    - after every trial an *overlay* with the weights of its add-ons (the only
      ones it changed), ``after_trial_<id>.npz``;
    - the state before trial ``i`` is the latest snapshot before ``i`` with
      the overlays of the trials from it to ``i - 1`` applied. Writing a
      snapshot deletes the older snapshots and overlays, so the disk holds at
      most one cycle (a snapshot is the size of the super-network's add-ons,
      an overlay that of a candidate's).

    Trials share TensorFlow variables and each starts from the previous one's
    result, so they run one at a time in one process:
    ``requires_sequential`` is True, `SearchRunner` refuses an executor with
    a ``ValueError``, and a concurrent call raises ``RuntimeError``.

    **``shared_weights="per_cycle"``** (for parallel evaluation, `PerCycleSharing`). Every
    member of cycle ``t`` starts from the same *cycle-start state* ``S_t``
    (``S_0``: the super-network's add-on weights when the evaluator was
    created), trains on its own slice of the batches, and saves the trained
    weights of its add-ons and its fitness to its trial directory
    (``add_ons.npz`` and ``add_ons.json``). ``S_{t+1}`` is the merge of
    cycle ``t``: for every add-on (kernel and bias together), the weights
    trained by the member with the highest fitness among the members that
    trained it (ties: the lowest member; failed members do not count); an
    add-on that no member trained keeps its weights from ``S_t``. The merge
    keeps, for each add-on, the copy whose whole candidate scored best, a
    choice that does not depend on the order of evaluation (unlike "the last
    member wins", the sequential mode's outcome), and never averages copies
    trained alongside different other add-ons. An evaluation is thus a pure
    function of ``(S_t, trial)``: members run in any order, in threads (one
    at a time per evaluator: a call waits for the previous one), in
    processes (``ProcessPoolExecutor`` with the ``"spawn"`` start method) or
    as Ray tasks (`tfemergent.search.RayExecutor`), and give the same
    results as one after the other; ``requires_sequential`` is False.

    ``S_t`` is computed by the first evaluation of cycle ``t`` that needs it,
    in whichever process, from ``S_{t-1}`` and the member files of cycle
    ``t - 1`` (found in the sibling trial directories: member ``k`` of the
    cycle starting at trial ``f`` is trial ``f + k``, the last member of the
    previous cycle trial ``f - 1``), and saved as ``before_trial_<f>.npz``
    (the two latest are kept). This needs every trial of cycle ``t - 1``
    evaluated, which `SearchRunner` guarantees (it asks a cycle only when the
    previous one is complete). Member files live in ``trial.directory``
    (``<runner directory>/trials/<id>``, which must be on a file system that
    every worker sees), or, without one, in ``<directory>/trials/<id>``, or
    in memory (one process only). After a search, ``restore(num_trials)``
    sets the merged state of the last cycle.

    **Files** (`TrialWeightStore`). Written atomically (a temporary file and ``os.replace``) into
    ``directory``, by default ``<runner directory>/shared_add_ons`` (found
    from ``trial.directory``, which `SearchRunner` sets to
    ``<runner directory>/trials/<id>``). Without any directory the state
    lives in memory only: the evaluator is then deterministic within one
    process (a trial evaluated again gives the same result) but a new process
    cannot resume. ``fingerprint.json`` records a hash of the frozen base
    weights, the initial add-on weights, the data and these settings
    (``shared_weights`` included); an evaluator with a different one refuses
    the directory (a resumed search must rebuild exactly the same
    super-network, e.g. from the same seeds on the same machine). Use one
    evaluator (and one super-network) per search.

    **Pickling.** An evaluator pickles (``pickle``, cloudpickle) as its
    settings, its data, its in-memory checkpoints and the super-network's
    config and weights; unpickling rebuilds the super-network
    (``type(network).from_config`` and ``set_weights``). So a process pool or
    Ray worker gets a working copy; `RayExecutor` ships it once and each
    worker rebuilds it once.

    Reference: "Neuron Hierarchical Networks" (anonymous, ICLR 2019
    submission), Algorithm 1, Section 2.3 (weight sharing) and Section 3.

    Args:
        network: the `tfemergent.models.AddOnSuperNetwork`.
        train_data: ``(images, labels)`` for training the add-ons.
        validation_data: ``(images, labels)`` for the fitness.
        train_batches: int >= 1, batches per member per cycle (``M``).
        batch_size: int >= 1.
        eval_size: None (the whole validation set) or int >= 1, images per
            member (``N`` times the evaluation batch size).
        learning_rate: float > 0, the learning rate of cycle 0.
        min_learning_rate: float > 0, <= ``learning_rate``, that of the last
            cycle.
        num_cycles: None or int >= 1, the search's cycles (for the schedule).
        momentum: float in [0, 1).
        directory: None or a path for the shared-weight checkpoints (see
            above).
        seed: int >= 0, the seed of the per-cycle shuffles.
        shared_weights: ``"sequential"`` (each trial continues from the
            previous one) or ``"per_cycle"`` (every member of a cycle starts
            from the cycle's merged state; parallel), see above.

    Attributes:
        requires_sequential: bool, True with ``shared_weights="sequential"``.

    Call arguments:
        trial: a `tfemergent.search.Trial` with a genome of
            ``network.location_space()`` and ``info["cycle"]``,
            ``info["member"]``.

    Returns (of a call):
        dict ``{"fitness", "train_loss", "num_add_ons", "learning_rate"}``,
        plus ``"failure"`` when the training diverged (fitness NaN).

    Example:

    >>> import numpy as np
    >>> from tfemergent import search
    >>> from tfemergent.models import AddOnSuperNetwork, SegmentCNN
    >>> from tfemergent.models import LocationEvaluator
    >>> base = SegmentCNN((8, 8, 1), 2, segments=[[4, 4]], seed=0).build()
    >>> network = AddOnSuperNetwork.from_model(base, seed=0)
    >>> rng = np.random.default_rng(0)
    >>> images = rng.normal(size=(64, 8, 8, 1)).astype("float32")
    >>> labels = (images.mean(axis=(1, 2, 3)) > 0).astype("int64")
    >>> evaluate = LocationEvaluator(network, (images, labels), (images, labels),
    ...                              train_batches=2, batch_size=8, seed=0)
    >>> strategy = search.EvolutionarySearch(network.location_space(), num_cycles=2,
    ...     population_size=3, num_parents=2, num_children=1, num_fresh=1, seed=0)
    >>> result = search.SearchRunner(strategy, evaluate, verbose=0).run()
    >>> len(result.history), 0.0 <= result.best_result["fitness"] <= 1.0
    (6, True)
    >>> trial = result.history[4][0]  # evaluated again from the same shared state
    >>> evaluate(trial) == result.history[4][1]
    True

    The same search with per-cycle weights, on two threads (any executor):

    >>> import concurrent.futures
    >>> parallel = LocationEvaluator(network, (images, labels), (images, labels),
    ...                              train_batches=2, batch_size=8, seed=0,
    ...                              shared_weights="per_cycle")
    >>> parallel.requires_sequential
    False
    >>> strategy = search.EvolutionarySearch(network.location_space(), num_cycles=2,
    ...     population_size=3, num_parents=2, num_children=1, num_fresh=1, seed=0)
    >>> with concurrent.futures.ThreadPoolExecutor(2) as executor:
    ...     result = search.SearchRunner(strategy, parallel, executor=executor,
    ...                                  verbose=0).run()
    >>> trial = result.history[1][0]  # member 1 of cycle 0, again in any order
    >>> parallel(trial) == result.history[1][1]
    True
    """

    def __init__(
        self,
        network,
        train_data,
        validation_data,
        train_batches=25,
        batch_size=100,
        eval_size=None,
        learning_rate=0.05,
        min_learning_rate=0.001,
        num_cycles=None,
        momentum=0.9,
        directory=None,
        seed=0,
        shared_weights="sequential",
    ):
        if not isinstance(network, AddOnSuperNetwork):
            raise ValueError(
                "Argument `network` must be a tfemergent.models.AddOnSuperNetwork. "
                f"Received: network={network!r}"
            )
        self.network = network
        self.train_images, self.train_labels = validate_images_and_labels(
            "train_data", *validate_pair("train_data", train_data), network.image_shape
        )
        self.validation_images, self.validation_labels = validate_images_and_labels(
            "validation_data", *validate_pair("validation_data", validation_data),
            network.image_shape,
        )
        self._set_settings(train_batches, batch_size, eval_size, learning_rate,
                           min_learning_rate, num_cycles, momentum, directory, seed)
        self.shared_weights = validate_choice(
            "shared_weights", shared_weights, SHARED_WEIGHTS_MODES
        )
        self._initial = network.add_on_weights()
        self._store = TrialWeightStore()
        self._sharing = SHARING_POLICIES[self.shared_weights](self._initial, self._store)
        self.requires_sequential = self._sharing.requires_sequential
        self._fingerprint = None
        self._lock = threading.Lock()

    def _set_settings(self, train_batches, batch_size, eval_size, learning_rate,
                      min_learning_rate, num_cycles, momentum, directory, seed):
        self.train_batches = validate_int("train_batches", train_batches, minimum=1)
        self.batch_size = validate_int("batch_size", batch_size, minimum=1)
        self.eval_size = validate_int("eval_size", eval_size, minimum=1, allow_none=True)
        self.learning_rate = validate_float(
            "learning_rate", learning_rate, minimum=0.0, min_inclusive=False
        )
        self.min_learning_rate = validate_float(
            "min_learning_rate", min_learning_rate, minimum=0.0, maximum=self.learning_rate,
            min_inclusive=False,
        )
        self.num_cycles = validate_int("num_cycles", num_cycles, minimum=1, allow_none=True)
        self.momentum = validate_float("momentum", momentum, minimum=0.0, maximum=0.999)
        if directory is not None and not isinstance(directory, (str, os.PathLike)):
            raise ValueError(
                "Argument `directory` must be None or a path (str or os.PathLike). "
                f"Received: directory={directory!r}"
            )
        self.directory = None if directory is None else os.path.abspath(os.fspath(directory))
        self.seed = validate_int("seed", seed, minimum=0)

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"]
        network = state.pop("network")
        state["_network_class"] = type(network)
        state["_network_config"] = network.get_config()
        state["_network_weights"] = network.get_weights()
        return state

    def __setstate__(self, state):
        state = dict(state)
        network = state.pop("_network_class").from_config(state.pop("_network_config"))
        network.set_weights(state.pop("_network_weights"))
        self.__dict__.update(state)
        self.network = network
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ settings
    def get_config(self):
        """The settings (not the data or the network)."""
        return {
            "train_batches": self.train_batches,
            "batch_size": self.batch_size,
            "eval_size": self.eval_size,
            "learning_rate": self.learning_rate,
            "min_learning_rate": self.min_learning_rate,
            "num_cycles": self.num_cycles,
            "momentum": self.momentum,
            "directory": self.directory,
            "seed": self.seed,
            "shared_weights": self.shared_weights,
        }

    def learning_rate_of(self, cycle):
        """The learning rate of a cycle (cosine from learning_rate to min_learning_rate)."""
        if self.num_cycles is None or self.num_cycles == 1:
            return self.learning_rate
        progress = min(cycle, self.num_cycles - 1) / (self.num_cycles - 1)
        return self.min_learning_rate + 0.5 * (self.learning_rate - self.min_learning_rate) * (
            1.0 + math.cos(math.pi * progress)
        )

    def member_indices(self, cycle, member):
        """Indices of the training images of a member in a cycle, in training order."""
        count = self.train_batches * self.batch_size
        order = np.random.default_rng([self.seed, cycle]).permutation(len(self.train_images))
        return order[(member * count + np.arange(count)) % len(order)]

    def validation_indices(self, cycle, member):
        """Indices of the validation images a member is scored on."""
        if self.eval_size is None:
            return np.arange(len(self.validation_images))
        order = np.random.default_rng([self.seed, cycle, 1]).permutation(
            len(self.validation_images)
        )
        return order[(member * self.eval_size + np.arange(self.eval_size)) % len(order)]

    # ------------------------------------------------------------------ evaluation
    def __call__(self, trial):
        if not self.requires_sequential:
            with self._lock:  # one network per evaluator: threads take turns
                return self._evaluate(trial)
        if not self._lock.acquire(blocking=False):
            raise RuntimeError(
                "LocationEvaluator evaluates one trial at a time: the trials share the "
                "add-on weights and each continues from the previous one. Run the "
                "SearchRunner without an executor, or use shared_weights='per_cycle'."
            )
        try:
            return self._evaluate(trial)
        finally:
            self._lock.release()

    def _trial_info(self, trial):
        info = getattr(trial, "info", None)
        valid = isinstance(info, dict) and all(
            isinstance(info.get(key), int) and info.get(key) >= 0 for key in ("cycle", "member")
        )
        if not valid or trial.info["member"] > trial.trial_id:
            raise ValueError(
                "LocationEvaluator evaluates trials of EvolutionarySearch, whose info has the "
                "ints 'cycle' and 'member' (member k of a cycle is trial first + k). "
                f"Received: trial_id={getattr(trial, 'trial_id', None)!r}, info={info!r}"
            )
        return trial.info["cycle"], trial.info["member"]

    def _evaluate(self, trial):
        cycle, member = self._trial_info(trial)
        self._use_directory(trial)
        self._sharing.start(self.network, trial, member)
        result, trained = self._train_and_score(trial, cycle, member)
        fitness = result["fitness"]
        record = {
            "trial_id": trial.trial_id,
            "cycle": cycle,
            "member": member,
            "fitness": fitness if math.isfinite(fitness) else None,
        }
        self._sharing.finish(record, trained)
        return result

    def _train(self, add_ons, cycle, member):
        """Train ``add_ons`` on the member's slice; ``(loss, trained weights, failure)``."""
        if not add_ons:
            return None, {}, None  # nothing to train: the frozen base network
        before = self.network.add_on_weights(add_ons)
        indices = self.member_indices(cycle, member)
        loss = self.network.train_add_ons(
            self.train_images[indices],
            self.train_labels[indices],
            batch_size=self.batch_size,
            learning_rate=self.learning_rate_of(cycle),
            momentum=self.momentum,
        )
        trained = self.network.add_on_weights(add_ons)
        if math.isfinite(loss) and _all_finite(trained):
            return loss, trained, None
        self.network.set_add_on_weights(before)  # the divergence does not spread
        return loss, before, f"the training of the add-ons diverged (train_loss={loss})"

    def _train_and_score(self, trial, cycle, member):
        """Train the trial's add-ons from the current weights; the result and their weights."""
        self.network.set_genome(trial.params)
        add_ons = self.network.active_add_ons
        loss, trained, failure = self._train(add_ons, cycle, member)
        fitness = math.nan
        if failure is None:
            validation = self.validation_indices(cycle, member)
            fitness = float(
                self.network.accuracy(
                    self.validation_images[validation], self.validation_labels[validation]
                )
            )
        result = {
            "fitness": fitness,
            "train_loss": loss,
            "num_add_ons": len(add_ons),
            "learning_rate": self.learning_rate_of(cycle),
        }
        if failure is not None:
            result["failure"] = failure
        return result, trained

    # ------------------------------------------------------------------ checkpoints
    def _use_directory(self, trial):
        directory = self.directory
        if directory is None and getattr(trial, "directory", None):
            directory = os.path.join(
                os.path.dirname(os.path.dirname(os.path.abspath(trial.directory))),
                SHARED_DIRECTORY_NAME,
            )
        self._store.open(directory, None if directory is None else self.fingerprint())

    def fingerprint(self):
        """Hashes of the frozen base and initial add-on weights, of the data, and the settings.

        A directory written for another fingerprint is refused.
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            trainable = {id(weight) for weight in self.network.trainable_weights}
            for layer in self.network.layers:  # names without the model's (unique) name
                for weight in layer.weights:
                    if id(weight) in trainable:
                        continue  # the add-on weights count by their initial values below
                    digest.update(f"{layer.name}.{weight.name}".encode())
                    digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
            for key, value in sorted(self._initial.items()):
                digest.update(key.encode())
                digest.update(np.ascontiguousarray(value).tobytes())
            weights = digest.hexdigest()
            digest = hashlib.sha256()
            for array in (self.train_images, self.train_labels, self.validation_images,
                          self.validation_labels):
                digest.update(str(array.shape).encode())
                digest.update(np.ascontiguousarray(array).tobytes())
            settings = self.get_config()
            del settings["directory"]
            if settings["shared_weights"] == "sequential":
                del settings["shared_weights"]  # as before the option existed
            self._fingerprint = {
                "weights_sha256": weights,
                "data_sha256": digest.hexdigest(),
                "settings": settings,
            }
        return self._fingerprint

    def restore(self, trial_id):
        """Set the network's add-on weights to the shared state before trial ``trial_id``.

        E.g. ``restore(strategy.num_asked)`` after a search: the weights left by
        its last trial (``"sequential"``) or the merged state of its last cycle
        (``"per_cycle"``, where ``trial_id`` must be the first trial of a cycle
        or the number of trials of the search), also when a finished search was
        only resumed (nothing evaluated in this process). Reads ``directory``
        (the argument) or the directory of the trials evaluated so far; with
        ``"per_cycle"`` the member files are looked for in the trial
        directories seen so far, else in ``<directory>/trials`` or, for the
        default layout, in the runner's ``trials`` next to ``directory``.
        """
        trial_id = validate_int("trial_id", trial_id, minimum=0)
        if self._store.directory is None and self.directory is not None:
            self._store.open(self.directory, self.fingerprint())
        with self._lock:
            self._sharing.restore(self.network, trial_id)
