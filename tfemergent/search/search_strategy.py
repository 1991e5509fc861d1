"""`SearchStrategy`: the ask/tell base class of the search strategies."""

import json
import math

import numpy as np

from tfemergent.search.search_space import SearchSpace
from tfemergent.search.search_space import deserialize
from tfemergent.search.search_space import serialize
from tfemergent.search.search_space import to_json_value
from tfemergent.search.trial import Trial
from tfemergent.search.trial import trial_seed
from tfemergent.utils.validation import validate_int
from tfemergent.utils.validation import validate_seed

_STATE_KEYS = ("seed", "rng", "num_asked", "pending", "best", "history")


def total_fitness(fitness):
    """The scalar fitness: the fitness itself, or the sum of a per-part list."""
    if isinstance(fitness, list):
        return float(sum(fitness))
    return float(fitness)


def is_failed(result):
    """Whether a validated result is that of a failed trial (``"failed": True``)."""
    return isinstance(result, dict) and result.get("failed") is True


def fitness_score(result):
    """The scalar fitness of a validated result: `total_fitness`, or -inf if it failed."""
    if is_failed(result):
        return -math.inf
    return total_fitness(result["fitness"])


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite_or_none(value):
    """``value`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    return value


class SearchStrategy:
    """Base class of the ask/tell search strategies (`HillClimbing`, `RandomSearch`).

    A strategy proposes candidates and learns from their results; it never
    evaluates anything itself. ``ask()`` returns a list of `Trial`s (a batch that
    may be evaluated in parallel); the caller evaluates each trial and passes the
    results back with ``tell([(trial, result), ...])``, in ``trial_id`` order,
    before asking again. `SearchRunner` runs this loop with checkpoints.

    A result is a dict of JSON values with at least ``"fitness"``: a finite float,
    or a list of ``space.num_parts`` finite floats (one per part, e.g. the entropy
    of each unit). Other entries (accuracy, losses, ...) are kept in the history;
    JSON has no NaN, so a non-finite float among them is stored as None.
    Strategies always **maximise** fitness; to minimise a loss, return its
    negative. Where one number is needed, a per-part list counts as its sum.

    **Failed trials.** A candidate whose training diverged is not an error of
    the search: a result whose fitness is a number (or a list of
    ``num_parts`` numbers) that is not finite (NaN, +inf or -inf; for a list,
    any entry), or a result with ``"failed": True`` (e.g. from an evaluator
    that caught its own error), marks the trial as *failed*. Its result is
    stored as ``{"fitness": None, "failed": True, "failure": <reason>, ...}``
    (the evaluator's ``"failure"`` text if it gave one, else e.g.
    ``"non-finite fitness nan"``; the other entries are kept) and recorded in
    `history` (``"fitness": None, "failed": True``). A failed trial scores
    below every finite fitness (`fitness_score` is -inf): it is never
    accepted, ranks last, and is never `best` (``best`` is None while every
    told trial failed). `SearchRunner` logs it (a warning of the
    ``"tfemergent.search"`` logger, and "failed" in its progress line) and
    goes on. A missing or non-numeric fitness, or a list of the wrong length,
    is still a ``ValueError``: that is a bug of the evaluator, not a
    diverged candidate.

    The constructor arguments are the config (`get_config` / `from_config`; the
    space is serialised with `tfemergent.search.serialize`, so register custom
    spaces with `@tfemergent.search.register_search_class`). Everything that
    changes while searching is state: `get_state` returns it as JSON values
    (including the numpy random generator state and the pending trials) and
    `set_state` restores it exactly, so a strategy re-created from its config and
    given the state of a killed search continues to the same result.

    Subclasses implement the ``done`` property, ``_ask()`` (return new trials made
    with ``self._new_trial(params, parent, info)``, drawing randomness only from
    ``self._rng``) and ``_tell(results)`` (update ``self._best``, comparing
    results with `fitness_score` so that failed trials rank last, and call
    ``self._record(trial, result, **extra)`` once per trial), and extend
    `get_config`, `get_state` and `set_state` with their own entries.

    Args:
        space: a `SearchSpace`.
        seed: None or a non-negative int. None draws a seed from the operating
            system; it is part of the state, so a restored search keeps it.

    Attributes:
        space: the `SearchSpace`.
        seed: the seed argument (None if it was None).
        done: bool, whether the search has nothing left to ask.
        best: ``(trial, result)`` of the best trial so far, or None (also while
            every trial told so far failed).
        num_asked: int, number of trials handed out by `ask` so far.
        pending_trials: list of the trials asked but not yet told.
        history: list of one dict per told trial, in trial order:
            ``{"trial_id", "fitness", "best_trial_id", ...}`` (the best trial after
            that tell) plus the strategy's own entries (see its class).

    Raises:
        RuntimeError: `ask` while trials are pending or after the search is done;
            `tell` without pending trials.
        ValueError: `tell` with other trials than the pending ones, or a result
            without a numeric ``"fitness"`` (a non-finite one marks the trial as
            failed, see above).

    Example (a custom strategy: two batches of three random candidates):

    >>> from tfemergent import search
    >>> class Line(search.SearchSpace):
    ...     def sample(self, rng):
    ...         return [int(rng.integers(0, 10))]
    >>> class TwoBatches(search.SearchStrategy):
    ...     @property
    ...     def done(self):
    ...         return self.num_asked == 6 and not self.pending_trials
    ...     def _ask(self):
    ...         return [self._new_trial(self.space.sample(self._rng)) for _ in range(3)]
    ...     def _tell(self, results):
    ...         for trial, result in results:
    ...             if self.best is None or result["fitness"] > self.best[1]["fitness"]:
    ...                 self._best = (trial, result)
    ...             self._record(trial, result)
    >>> strategy = TwoBatches(Line(), seed=0)
    >>> while not strategy.done:
    ...     trials = strategy.ask()
    ...     strategy.tell([(t, {"fitness": -abs(t.params[0] - 7)}) for t in trials])
    >>> strategy.num_asked
    6
    >>> strategy.best[1]["fitness"] == max(r["fitness"] for r in strategy.history)
    True
    >>> strategy.tell([])
    Traceback (most recent call last):
    ...
    RuntimeError: tell() was called without pending trials; call ask() first...
    """

    def __init__(self, space, seed=None):
        if not isinstance(space, SearchSpace):
            raise ValueError(
                "Argument `space` must be a `tfemergent.search.SearchSpace`. "
                f"Received: space={space!r}"
            )
        validate_int(f"{type(space).__name__}.num_parts", space.num_parts, minimum=1)
        self.space = space
        self.seed = validate_seed("seed", seed)
        actual_seed = self.seed
        if actual_seed is None:
            actual_seed = int(np.random.SeedSequence().entropy % 2**32)
        self._seed = actual_seed
        self._rng = np.random.default_rng(actual_seed)
        self._num_asked = 0
        self._pending = []
        self._best = None
        self._history = []

    # ------------------------------------------------------------------ ask/tell

    @property
    def done(self):
        raise NotImplementedError(f"{type(self).__name__} must implement the `done` property.")

    @property
    def best(self):
        if self._best is None or is_failed(self._best[1]):
            return None
        return self._best

    @property
    def num_asked(self):
        return self._num_asked

    @property
    def pending_trials(self):
        return list(self._pending)

    @property
    def history(self):
        return [dict(record) for record in self._history]

    def ask(self):
        """Return a list of new trials to evaluate."""
        if self._pending:
            raise RuntimeError(
                "ask() was called while trials "
                f"{[trial.trial_id for trial in self._pending]} are still pending; pass their "
                "results to tell() first."
            )
        if self.done:
            raise RuntimeError(
                f"The search is done after {self._num_asked} trials; there is nothing left to "
                "ask. Check `strategy.done` before calling ask()."
            )
        trials = list(self._ask())
        self._pending = list(trials)
        return trials

    def tell(self, results):
        """Report ``[(trial, result), ...]`` for exactly the pending trials, in trial order."""
        if not self._pending:
            raise RuntimeError(
                "tell() was called without pending trials; call ask() first and tell the "
                f"results of the trials it returned. Received: results={results!r}"
            )
        expected = [trial.trial_id for trial in self._pending]
        if not isinstance(results, (list, tuple)) or not all(
            isinstance(pair, (list, tuple))
            and len(pair) == 2
            and isinstance(pair[0], Trial)
            for pair in results
        ):
            raise ValueError(
                "tell() expects a list of (trial, result) pairs, one per pending trial "
                f"{expected}, in trial_id order. Received: results={results!r}"
            )
        received = [trial.trial_id for trial, _ in results]
        if received != expected:
            raise ValueError(
                "tell() expects the results of exactly the pending trials, in trial_id order: "
                f"{expected}. Received: trial_ids={received}"
            )
        for (trial, _), asked in zip(results, self._pending):
            if trial.params != asked.params:
                raise ValueError(
                    f"Trial {trial.trial_id} was asked with params={asked.params!r} but told "
                    f"with other params. Received: params={trial.params!r}"
                )
        checked = [(trial, self.validate_result(trial, result)) for trial, result in results]
        self._pending = []
        self._tell(checked)

    def validate_result(self, trial, result):
        """Return ``result`` as JSON values with a float (or list of floats) fitness.

        A non-finite fitness or ``"failed": True`` gives the failed result
        ``{"fitness": None, "failed": True, "failure": <reason>, ...}`` (see
        the class). Raises ``ValueError`` naming the trial when the fitness is
        missing, not a number, or a list of the wrong length. Validating a
        validated result returns it unchanged.
        """
        num_parts = self.space.num_parts
        expected = f"a finite float, or a list of num_parts={num_parts} finite floats"
        if not isinstance(result, dict) or "fitness" not in result:
            raise ValueError(
                f"The result of trial {trial.trial_id} must be a dict with a 'fitness' entry "
                f"({expected}). Received: result={result!r}"
            )
        result = to_json_value(result, f"result of trial {trial.trial_id}")
        failed = result.get("failed", False)
        if not isinstance(failed, bool):
            raise ValueError(
                f"The 'failed' entry of the result of trial {trial.trial_id} must be a bool "
                f"(True marks a failed trial). Received: failed={failed!r}"
            )
        failure = result.get("failure")
        if failure is not None and not isinstance(failure, str):
            raise ValueError(
                f"The 'failure' entry of the result of trial {trial.trial_id} must be a str "
                f"(why the trial failed). Received: failure={failure!r}"
            )
        fitness = result["fitness"]
        values = fitness if isinstance(fitness, list) else [fitness]
        numeric = all(_is_number(value) for value in values) and (
            not isinstance(fitness, list) or len(fitness) == num_parts
        )
        if failed and (fitness is None or numeric):
            if failure is None:
                failure = "the evaluation reported failed=True"
            return self._failed_result(result, failure)
        if not numeric:
            raise ValueError(
                f"The 'fitness' of trial {trial.trial_id} must be {expected}. "
                f"Received: fitness={fitness!r}"
            )
        if not all(math.isfinite(value) for value in values):
            if failure is None:
                failure = f"non-finite fitness {fitness!r}"
            return self._failed_result(result, failure)
        result = _finite_or_none(result)
        if isinstance(fitness, list):
            result["fitness"] = [float(value) for value in fitness]
        else:
            result["fitness"] = float(fitness)
        self._check_fitness(trial, result["fitness"])
        return result

    @staticmethod
    def _failed_result(result, failure):
        result = _finite_or_none(result)
        result.update(fitness=None, failed=True, failure=failure)
        return result

    # ------------------------------------------------------------ for subclasses

    def _ask(self):
        raise NotImplementedError(f"{type(self).__name__} must implement `_ask()`.")

    def _tell(self, results):
        raise NotImplementedError(f"{type(self).__name__} must implement `_tell(results)`.")

    def _check_fitness(self, trial, fitness):
        """Subclasses raise ``ValueError`` for fitness values they cannot use."""

    def _new_trial(self, params, parent=None, info=None):
        trial_id = self._num_asked
        trial = Trial(
            trial_id=trial_id,
            params=self.space.validate(params),
            parent=parent,
            seed=trial_seed(self._seed, trial_id),
            info=to_json_value(dict(info or {}), "info"),
        )
        self._num_asked += 1
        return trial

    def _record(self, trial, result, **extra):
        record = {"trial_id": trial.trial_id, "fitness": result["fitness"], **extra}
        if is_failed(result):
            record["failed"] = True
        best = self.best
        record["best_trial_id"] = None if best is None else best[0].trial_id
        self._history.append(to_json_value(record, "history record"))

    # ----------------------------------------------------------- config & state

    def get_config(self):
        return {"space": serialize(self.space), "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("space"), dict):
            config["space"] = deserialize(config["space"])
        return cls(**config)

    def get_state(self):
        """Return everything that changes while searching, as JSON values."""
        best = None
        if self._best is not None:
            best = {"trial": self._best[0].to_json(), "result": self._best[1]}
        state = {
            "seed": self._seed,
            "rng": self._rng.bit_generator.state,
            "num_asked": self._num_asked,
            "pending": [trial.to_json() for trial in self._pending],
            "best": best,
            "history": self._history,
        }
        return json.loads(json.dumps(state))  # a deep copy of plain JSON values

    def set_state(self, state):
        """Restore a state returned by `get_state` (of a strategy with the same config)."""
        missing = [key for key in _STATE_KEYS if not isinstance(state, dict) or key not in state]
        if missing:
            raise ValueError(
                f"`set_state` expects a dict returned by {type(self).__name__}.get_state(); "
                f"the keys {missing} are missing. Received: state={state!r}"
            )
        state = json.loads(json.dumps(state))
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        self._seed = int(state["seed"])
        self._rng = rng
        self._num_asked = int(state["num_asked"])
        self._pending = [Trial.from_json(trial) for trial in state["pending"]]
        best = state["best"]
        self._best = None if best is None else (Trial.from_json(best["trial"]), best["result"])
        self._history = list(state["history"])
