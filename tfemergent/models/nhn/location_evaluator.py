"""`LocationEvaluator`: the fitness of add-on locations with weights shared between trials."""

import hashlib
import json
import math
import os
import re
import threading

import numpy as np

from tfemergent.models.nhn.add_on_super_network import AddOnSuperNetwork
from tfemergent.utils.validation import validate_choice, validate_float, validate_int

SHARED_DIRECTORY_NAME = "shared_add_ons"
TRIALS_DIRECTORY_NAME = "trials"
FINGERPRINT_NAME = "fingerprint.json"
MEMBER_WEIGHTS_NAME = "add_ons.npz"
MEMBER_RECORD_NAME = "add_ons.json"
SHARED_WEIGHTS_MODES = ("sequential", "per_cycle")
_SNAPSHOT = "before_trial_{}.npz"
_OVERLAY = "after_trial_{}.npz"
_SNAPSHOT_PATTERN = re.compile(r"^before_trial_(\d+)\.npz$")
_OVERLAY_PATTERN = re.compile(r"^after_trial_(\d+)\.npz$")


def _temporary_path(path, suffix):
    # Unique per process and thread: several workers may write the same file at once.
    return f"{path}.{os.getpid()}-{threading.get_ident()}.tmp{suffix}"


def _save_npz(path, weights):
    temporary = _temporary_path(path, ".npz")
    np.savez(temporary, **weights)
    os.replace(temporary, path)


def _save_json(path, value):
    temporary = _temporary_path(path, ".json")
    with open(temporary, "w") as file:
        json.dump(value, file, indent=1)
    os.replace(temporary, path)


def _all_finite(weights):
    return all(np.all(np.isfinite(value)) for value in weights.values())


def _load_npz(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


class _SharedWeightStore:
    """Snapshots (state before a cycle's first trial) and overlays (one trial's add-ons).

    Kept in memory and, with a directory, on disk (written atomically). Private.
    """

    def __init__(self, initial):
        self.directory = None
        self.snapshots = {0: initial}
        self.overlays = {}

    def _ids(self, pattern):
        if self.directory is None or not os.path.isdir(self.directory):
            return set()
        ids = set()
        for name in os.listdir(self.directory):
            match = pattern.match(name)
            if match:
                ids.add(int(match.group(1)))
        return ids

    def snapshot_ids(self):
        return set(self.snapshots) | self._ids(_SNAPSHOT_PATTERN)

    def snapshot(self, trial_id):
        if trial_id in self.snapshots:
            return self.snapshots[trial_id]
        return _load_npz(os.path.join(self.directory, _SNAPSHOT.format(trial_id)))

    def overlay(self, trial_id):
        if trial_id in self.overlays:
            return self.overlays[trial_id]
        if self.directory is not None:
            path = os.path.join(self.directory, _OVERLAY.format(trial_id))
            if os.path.exists(path):
                return _load_npz(path)
        return None

    def save_snapshot(self, trial_id, weights):
        """Save the state before ``trial_id``; forget what came before it."""
        self.snapshots[trial_id] = weights
        if self.directory is not None:
            _save_npz(os.path.join(self.directory, _SNAPSHOT.format(trial_id)), weights)
        for old in [key for key in self.snapshots if key < trial_id]:
            del self.snapshots[old]
        for old in [key for key in self.overlays if key < trial_id]:
            del self.overlays[old]
        for pattern, name in ((_SNAPSHOT_PATTERN, _SNAPSHOT), (_OVERLAY_PATTERN, _OVERLAY)):
            for old in self._ids(pattern):
                if old < trial_id:
                    try:
                        os.remove(os.path.join(self.directory, name.format(old)))
                    except FileNotFoundError:  # removed by another worker
                        pass

    def save_overlay(self, trial_id, weights):
        self.overlays[trial_id] = weights
        if self.directory is not None:
            _save_npz(os.path.join(self.directory, _OVERLAY.format(trial_id)), weights)


def _check_split(name, images, labels, image_shape):
    images = np.asarray(images, "float32")
    labels = np.asarray(labels)
    if images.ndim != 4 or images.shape[1:] != tuple(image_shape) or len(images) == 0:
        raise ValueError(
            f"Argument `{name}` images must be a non-empty float array (n,) + "
            f"{tuple(image_shape)}. Received: images with shape {images.shape}"
        )
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"Argument `{name}` labels must be an int array ({len(images)},). "
            f"Received: labels with shape {labels.shape} and dtype {labels.dtype}"
        )
    return images, labels.astype("int64")


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

    **``shared_weights="sequential"``** (the default). The state a trial
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

    **``shared_weights="per_cycle"``** (for parallel evaluation). Every
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

    **Files.** Written atomically (a temporary file and ``os.replace``) into
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
        for name, data in (("train_data", train_data), ("validation_data", validation_data)):
            if not isinstance(data, (list, tuple)) or len(data) != 2:
                raise ValueError(
                    f"Argument `{name}` must be a pair (images, labels). "
                    f"Received: {name} of type {type(data).__name__}"
                )
        self.network = network
        self.train_images, self.train_labels = _check_split(
            "train_data", *train_data, network.image_shape
        )
        self.validation_images, self.validation_labels = _check_split(
            "validation_data", *validation_data, network.image_shape
        )
        self.train_batches = validate_int("train_batches", train_batches, minimum=1)
        self.batch_size = validate_int("batch_size", batch_size, minimum=1)
        self.eval_size = validate_int("eval_size", eval_size, minimum=1, allow_none=True)
        self.learning_rate = validate_float(
            "learning_rate", learning_rate, minimum=0.0, min_inclusive=False
        )
        self.min_learning_rate = validate_float(
            "min_learning_rate",
            min_learning_rate,
            minimum=0.0,
            maximum=self.learning_rate,
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
        self.shared_weights = validate_choice(
            "shared_weights", shared_weights, SHARED_WEIGHTS_MODES
        )
        self.requires_sequential = self.shared_weights == "sequential"
        self._initial = network.add_on_weights()
        self._store = _SharedWeightStore(self._initial)
        self._position = 0  # the in-memory weights are the state before this trial
        self._fingerprint = None
        self._checked_directories = set()
        self._lock = threading.Lock()
        # per_cycle: the members' results and the cycle-start states, in memory.
        self._members_root = None
        self._members = {}  # trial_id -> (record, trained weights)
        self._cycle_starts = {0: self._initial}  # first trial of a cycle -> state

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
        if self.shared_weights == "per_cycle":
            with self._lock:  # one network per evaluator: threads take turns
                return self._evaluate_per_cycle(trial)
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

    def _train_and_score(self, trial, cycle, member):
        """Train the trial's add-ons from the current weights; the result and their weights."""
        self.network.set_genome(trial.params)
        add_ons = self.network.active_add_ons
        before = self.network.add_on_weights(add_ons)
        learning_rate = self.learning_rate_of(cycle)
        indices = self.member_indices(cycle, member)
        failure = None
        if add_ons:
            loss = self.network.train_add_ons(
                self.train_images[indices],
                self.train_labels[indices],
                batch_size=self.batch_size,
                learning_rate=learning_rate,
                momentum=self.momentum,
            )
            trained = self.network.add_on_weights(add_ons)
            if not math.isfinite(loss) or not _all_finite(trained):
                failure = f"the training of the add-ons diverged (train_loss={loss})"
                self.network.set_add_on_weights(before)  # the divergence does not spread
                trained = before
        else:
            loss = None  # nothing to train: the frozen base network
            trained = {}
        if failure is None:
            validation = self.validation_indices(cycle, member)
            fitness = float(
                self.network.accuracy(
                    self.validation_images[validation], self.validation_labels[validation]
                )
            )
        else:
            fitness = math.nan
        result = {
            "fitness": fitness,
            "train_loss": loss,
            "num_add_ons": len(add_ons),
            "learning_rate": learning_rate,
        }
        if failure is not None:
            result["failure"] = failure
        return result, trained

    def _evaluate(self, trial):
        cycle, member = self._trial_info(trial)
        self._use_directory(trial)
        self._restore(trial.trial_id)
        if member == 0:
            self._store.save_snapshot(trial.trial_id, self.network.add_on_weights())
        result, trained = self._train_and_score(trial, cycle, member)
        self._store.save_overlay(trial.trial_id, trained)
        self._position = trial.trial_id + 1
        return result

    # ------------------------------------------------------------------ per_cycle
    def _evaluate_per_cycle(self, trial):
        cycle, member = self._trial_info(trial)
        self._use_directory(trial)
        if getattr(trial, "directory", None):
            self._members_root = os.path.dirname(os.path.abspath(trial.directory))
        elif self._store.directory is not None:
            self._members_root = os.path.join(self._store.directory, TRIALS_DIRECTORY_NAME)
        first = trial.trial_id - member
        self.network.set_add_on_weights(self._cycle_start(first))
        self._position = None  # the sequential mode's bookkeeping does not apply
        result, trained = self._train_and_score(trial, cycle, member)
        fitness = result["fitness"]
        record = {
            "trial_id": trial.trial_id,
            "cycle": cycle,
            "member": member,
            "fitness": fitness if math.isfinite(fitness) else None,
        }
        self._save_member(record, trained)
        return result

    def _member_directory(self, trial_id):
        if self._members_root is None:
            return None
        return os.path.join(self._members_root, str(trial_id))

    def _save_member(self, record, weights):
        self._members[record["trial_id"]] = (record, weights)
        directory = self._member_directory(record["trial_id"])
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
            _save_npz(os.path.join(directory, MEMBER_WEIGHTS_NAME), weights)
            # The record last: its presence means the weights are complete.
            _save_json(os.path.join(directory, MEMBER_RECORD_NAME), record)

    def _member(self, trial_id):
        """``(record, trained weights)`` of a per-cycle trial, from memory or its directory."""
        if trial_id in self._members:
            return self._members[trial_id]
        directory = self._member_directory(trial_id)
        path = None if directory is None else os.path.join(directory, MEMBER_RECORD_NAME)
        if path is None or not os.path.exists(path):
            where = path or "memory (no trial directory)"
            raise RuntimeError(
                f"Cannot compute the cycle-start add-on weights: the result of trial {trial_id} "
                f"of the previous cycle is missing in {where}. With shared_weights='per_cycle' "
                "every trial of a cycle must be evaluated before the next cycle, with trial "
                "directories that every worker sees (a SearchRunner with a `directory` does "
                "this)."
            )
        with open(path) as file:
            record = json.load(file)
        member = (record, _load_npz(os.path.join(directory, MEMBER_WEIGHTS_NAME)))
        self._members[trial_id] = member
        return member

    def _load_cycle_start(self, first):
        if first in self._cycle_starts:
            return self._cycle_starts[first]
        if self._store.directory is None:
            return None
        try:
            weights = _load_npz(os.path.join(self._store.directory, _SNAPSHOT.format(first)))
        except FileNotFoundError:
            return None
        self._remember_cycle_start(first, weights)
        return weights

    def _remember_cycle_start(self, first, weights):
        """Keep in memory ``S_0``, the two latest cycle-start states and the members
        from the older of those two on (enough to compute the latest again)."""
        self._cycle_starts[first] = weights
        latest = sorted(key for key in self._cycle_starts if key != 0)[-2:]
        self._cycle_starts = {
            key: value for key, value in self._cycle_starts.items() if key == 0 or key in latest
        }
        keep_from = latest[0] if len(latest) == 2 else 0
        self._members = {key: value for key, value in self._members.items() if key >= keep_from}

    def _cycle_start(self, first):
        """The add-on weights every member of the cycle starting at trial ``first`` starts from."""
        chain = []  # (first trial of a cycle, first trial of the cycle before), latest first
        current = first
        weights = self._load_cycle_start(current)
        while weights is None:
            last_record, _ = self._member(current - 1)
            previous = current - (last_record["member"] + 1)
            if previous < 0:
                raise RuntimeError(
                    f"Trial {current - 1} was evaluated as member {last_record['member']}, "
                    f"which does not end a cycle before trial {current}. Received: "
                    f"record={last_record}"
                )
            chain.append((current, previous))
            current = previous
            weights = self._load_cycle_start(current)
        for start, previous in reversed(chain):
            weights = self._merge(weights, previous, start)
            if self._store.directory is not None:
                _save_npz(os.path.join(self._store.directory, _SNAPSHOT.format(start)), weights)
                self._delete_old_cycle_starts(previous)
            self._remember_cycle_start(start, weights)
        return weights

    def _merge(self, weights, first, end):
        """``weights`` updated with the best-fitness member's copy of each add-on trained
        by the trials ``first .. end - 1`` (one cycle)."""
        merged = dict(weights)
        chosen = {}  # key -> fitness of the member whose copy is kept
        cycle = None
        for trial_id in range(first, end):
            record, trained = self._member(trial_id)
            if cycle is None:
                cycle = record["cycle"]
            if record["cycle"] != cycle or record["member"] != trial_id - first:
                raise RuntimeError(
                    f"Trial {trial_id} was evaluated as member {record['member']} of cycle "
                    f"{record['cycle']}, expected member {trial_id - first} of cycle {cycle}: "
                    "the trial directories belong to another search. Received: "
                    f"record={record}"
                )
            if record["fitness"] is None:  # failed: its weights are not kept
                continue
            for key, value in trained.items():
                if key not in chosen or record["fitness"] > chosen[key]:
                    chosen[key] = record["fitness"]
                    merged[key] = value
        return merged

    def _delete_old_cycle_starts(self, keep_from):
        for old in self._store._ids(_SNAPSHOT_PATTERN):
            if old < keep_from:
                try:
                    os.remove(os.path.join(self._store.directory, _SNAPSHOT.format(old)))
                except FileNotFoundError:  # removed by another worker
                    pass

    # ------------------------------------------------------------------ checkpoints
    def _use_directory(self, trial):
        directory = self.directory
        if directory is None and getattr(trial, "directory", None):
            directory = os.path.join(
                os.path.dirname(os.path.dirname(os.path.abspath(trial.directory))),
                SHARED_DIRECTORY_NAME,
            )
        self._open(directory)

    def _open(self, directory):
        """Use ``directory`` for the checkpoints (None: memory only); check its fingerprint."""
        self._store.directory = directory
        if directory is None or directory in self._checked_directories:
            return
        os.makedirs(directory, exist_ok=True)
        fingerprint = self._compute_fingerprint()
        path = os.path.join(directory, FINGERPRINT_NAME)
        if os.path.exists(path):
            with open(path) as file:
                saved = json.load(file)
            if saved != fingerprint:
                raise ValueError(
                    f"The shared add-on weights in {directory} belong to another search: the "
                    "super-network's base or initial add-on weights, the data or the "
                    "evaluator's settings differ (fingerprint.json). Resume with exactly the "
                    "same super-network and data, or use another directory. Received: "
                    f"fingerprint={fingerprint}, saved={saved}"
                )
        else:
            _save_json(path, fingerprint)
        self._checked_directories.add(directory)

    def _compute_fingerprint(self):
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
            for array in (
                self.train_images,
                self.train_labels,
                self.validation_images,
                self.validation_labels,
            ):
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
            self._open(self.directory)
        if self.shared_weights == "sequential":
            self._restore(trial_id)
            return
        with self._lock:
            if self._members_root is None and self._store.directory is not None:
                inside = os.path.join(self._store.directory, TRIALS_DIRECTORY_NAME)
                beside = os.path.join(
                    os.path.dirname(self._store.directory), TRIALS_DIRECTORY_NAME
                )
                self._members_root = inside if os.path.isdir(inside) else beside
            try:
                record, _ = self._member(trial_id)
            except RuntimeError:
                record = None  # not evaluated: e.g. the end of the search
            if record is not None and record["member"] != 0:
                raise ValueError(
                    "With shared_weights='per_cycle', `trial_id` must be the first trial of a "
                    f"cycle or the number of trials of the search; trial {trial_id} is member "
                    f"{record['member']} of cycle {record['cycle']}. Received: "
                    f"trial_id={trial_id}"
                )
            self.network.set_add_on_weights(self._cycle_start(trial_id))
            self._position = None

    def _restore(self, trial_id):
        """Make the network's add-on weights the shared state before ``trial_id``."""
        if self._position == trial_id:
            return
        candidates = [key for key in self._store.snapshot_ids() if key <= trial_id]
        if not candidates:
            raise RuntimeError(
                f"Cannot restore the shared add-on weights before trial {trial_id}: it belongs "
                "to a cycle before the latest snapshot, whose earlier states are deleted. "
                "Only trials of the current cycle can be evaluated again."
            )
        start = max(candidates)
        weights = dict(self._store.snapshot(start))
        for previous in range(start, trial_id):
            overlay = self._store.overlay(previous)
            if overlay is None:
                where = self._store.directory or "memory (no directory)"
                raise RuntimeError(
                    f"Cannot restore the shared add-on weights before trial {trial_id}: the "
                    f"weights after trial {previous} are missing in {where}. Trials must be "
                    "evaluated in order, resuming from the checkpoint directory of the same "
                    "search."
                )
            weights.update(overlay)
        self.network.set_add_on_weights(weights)
        self._position = trial_id
