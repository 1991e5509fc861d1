"""`SearchRunner`: runs an ask/tell strategy with checkpoints, resume and executors."""

import concurrent.futures
import dataclasses
import json
import logging
import os
import shutil
import time

from tfemergent.search.search_space import serialize
from tfemergent.search.search_strategy import SearchStrategy
from tfemergent.search.search_strategy import is_failed
from tfemergent.search.trial import Trial
from tfemergent.utils.validation import validate_int

CHECKPOINT_NAME = "search.json"
TRIALS_DIRECTORY_NAME = "trials"
_FORMAT_VERSION = 1
logger = logging.getLogger("tfemergent.search")


@dataclasses.dataclass
class SearchResult:
    """What `SearchRunner.run` returns.

    Args:
        best_trial: the best `Trial` (``strategy.best``), or None before any
            result. Under a runner with a directory, ``best_trial.directory``
            holds the files its evaluation saved (e.g. the trained weights).
        best_result: the result dict of the best trial, or None.
        history: list of ``(trial, result)`` for every evaluated trial, in
            trial_id order.

    Example:

    >>> from tfemergent.search import SearchResult, Trial
    >>> trial = Trial(trial_id=0, params=[1])
    >>> result = SearchResult(trial, {"fitness": 2.0}, [(trial, {"fitness": 2.0})])
    >>> result.best_result["fitness"], len(result.history)
    (2.0, 1)
    """

    best_trial: Trial | None
    best_result: dict | None
    history: list


def _flatten(value, prefix=""):
    if isinstance(value, dict):
        items = {}
        for key, item in value.items():
            items.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return items
    return {prefix: value}


def _describe_difference(saved, given):
    saved, given = _flatten(saved), _flatten(given)
    differences = [
        f"{key}: {saved.get(key, '<missing>')!r} in the checkpoint, "
        f"{given.get(key, '<missing>')!r} given"
        for key in sorted(set(saved) | set(given))
        if saved.get(key, "<missing>") != given.get(key, "<missing>")
    ]
    return "; ".join(differences)


def _format_fitness(fitness):
    if isinstance(fitness, list):
        return "[" + ", ".join(f"{value:.4g}" for value in fitness) + "]"
    return f"{fitness:.4g}"


class SearchRunner:
    """Runs a `SearchStrategy` to the end, with checkpoints, resume and executors.

    The loop: ``strategy.ask()`` a batch of trials, evaluate each with
    ``evaluate(trial) -> result`` (a dict with ``"fitness"``, see
    `SearchStrategy`), and ``strategy.tell`` the batch in trial_id order once it
    is complete; repeat until ``strategy.done``.

    **Trial directories.** With a ``directory``, every trial gets an empty
    directory ``directory/trials/<trial_id>/`` (created just before its
    evaluation, after deleting what a killed run may have left there), given to
    ``evaluate`` as ``trial.directory``; ``trial.parent_directory`` is the
    directory of the trial's parent. An evaluator that continues from the
    parent's state (e.g. retained weights in hill climbing) loads it from
    ``trial.parent_directory`` and saves its own state to ``trial.directory``.
    The runner never deletes the directory of a finished trial.

    **Checkpoints and resume.** After every evaluation the runner writes
    ``directory/search.json`` atomically (a temporary file and ``os.replace``):
    the strategy's class and config, its state (after the pending `ask`), the
    pending trials, the results already completed in the pending batch, and the
    history. A runner created on a directory that holds a checkpoint resumes it:
    the strategy's config must equal the saved one (else ``ValueError``), its
    state is restored, only the missing trials of the pending batch are
    evaluated, and the search continues, so a search killed at any moment (even
    with ``kill -9``) and resumed gives the same result as an uninterrupted one,
    provided ``evaluate`` is deterministic given the trial (seed it with
    ``trial.seed``) and its parent's files. Resuming a finished search returns
    its result without evaluating anything. One runner per directory at a time.

    **Executors.** Without an executor the trials are evaluated one after the
    other in this process. With one, each pending batch is submitted at once
    (``executor.submit(evaluate, trial)``) and each result is checkpointed as it
    completes; the strategy is told when the whole batch is in. Any
    `concurrent.futures.Executor` works (a `ProcessPoolExecutor` needs a
    picklable, module-level ``evaluate``; with TensorFlow inside ``evaluate`` use
    the ``"spawn"`` start method), and so does any object whose ``submit(fn,
    trial)`` returns a `concurrent.futures.Future`, e.g. `RayExecutor`, which
    runs each trial as a Ray task on one machine or a cluster (a worker that
    dies is retried) without changing anything else. The runner owns no
    executor: create, and shut it down, outside. An ``evaluate`` with the
    attribute ``requires_sequential = True`` (e.g. a
    `tfemergent.models.LocationEvaluator` whose trials continue to train
    weights shared between them) refuses executors: ``ValueError``.

    **Failed trials.** A result with a non-finite fitness (a candidate whose
    training diverged) or ``"failed": True`` is a failed trial (see
    `SearchStrategy`): it is checkpointed and recorded in the history as
    ``{"fitness": None, "failed": True, "failure": ...}``, logged (a warning
    of the ``"tfemergent.search"`` logger; with ``verbose=1`` the progress
    line says "failed"), never selected as best, and the search goes on, with
    or without an executor.

    **Errors.** An exception raised by ``evaluate`` propagates with a note that
    names the trial (`BaseException.add_note`); the checkpoint keeps every result
    completed before it, so creating the runner again resumes the search. With an
    executor the other trials of the batch are cancelled if they have not
    started, and recorded if they finish.

    **Progress.** With ``verbose=1`` the runner prints one line per finished
    trial to stdout (trial id, info, fitness, the best trial so far as of the
    last completed batch, seconds since `run` started). With ``verbose=2`` it
    shows a `tqdm` progress bar on stderr instead: one tick per finished trial,
    out of the strategy's ``num_trials`` (or ``max_trials``) when it has one,
    with the best fitness and the number of failed trials beside it.

    Args:
        strategy: a `SearchStrategy` (fresh, or to be restored from the
            checkpoint).
        evaluate: callable ``evaluate(trial) -> dict`` with a ``"fitness"``
            entry (JSON values; fitness is maximised).
        directory: None, or a path (str or `os.PathLike`) for the checkpoint and
            the trial directories. None keeps everything in memory (no resume,
            ``trial.directory`` is None).
        executor: None or an executor (see above).
        verbose: 0 (silent), 1 (one line per trial) or 2 (a progress bar).

    Attributes:
        checkpoint_path: ``directory/search.json``, or None.
        history: the ``(trial, result)`` pairs evaluated so far.
        result: the `SearchResult` so far.

    Example:

    >>> import os, shutil, tempfile
    >>> from tfemergent import search
    >>> class Line(search.SearchSpace):
    ...     def sample(self, rng):
    ...         return [int(rng.integers(0, 10))]
    >>> def evaluate(trial):
    ...     return {"fitness": -abs(trial.params[0] - 7)}
    >>> directory = tempfile.mkdtemp()
    >>> strategy = search.RandomSearch(Line(), num_trials=6, batch_size=3, seed=0)
    >>> result = search.SearchRunner(strategy, evaluate, directory=directory).run()
    Trial 0 (batch=0): fitness=-1; ...s
    Trial 1 (batch=0): fitness=-1; ...s
    Trial 2 (batch=0): fitness=-2; best: trial 0, fitness=-1; ...s
    Trial 3 (batch=1): fitness=-5; best: trial 0, fitness=-1; ...s
    Trial 4 (batch=1): fitness=-4; best: trial 0, fitness=-1; ...s
    Trial 5 (batch=1): fitness=-7; best: trial 0, fitness=-1; ...s
    >>> result.best_trial.params, result.best_result, len(result.history)
    ([8], {'fitness': -1.0}, 6)
    >>> sorted(os.listdir(directory)), os.listdir(result.best_trial.directory)
    (['search.json', 'trials'], [])

    Running it again on the same directory resumes the finished search:

    >>> strategy = search.RandomSearch(Line(), num_trials=6, batch_size=3, seed=0)
    >>> again = search.SearchRunner(strategy, evaluate, directory=directory, verbose=0).run()
    >>> again.best_trial == result.best_trial
    True
    >>> shutil.rmtree(directory)
    """

    def __init__(self, strategy, evaluate, directory=None, executor=None, verbose=1):
        if not isinstance(strategy, SearchStrategy):
            raise ValueError(
                "Argument `strategy` must be a `tfemergent.search.SearchStrategy`. "
                f"Received: strategy={strategy!r}"
            )
        if not callable(evaluate):
            raise ValueError(
                "Argument `evaluate` must be a callable `evaluate(trial) -> dict` that returns "
                f"a result with a 'fitness'. Received: evaluate={evaluate!r}"
            )
        if directory is not None:
            if not isinstance(directory, (str, os.PathLike)):
                raise ValueError(
                    "Argument `directory` must be None or a path (str or os.PathLike). "
                    f"Received: directory={directory!r}"
                )
            directory = os.path.abspath(os.fspath(directory))
            if os.path.exists(directory) and not os.path.isdir(directory):
                raise ValueError(
                    "Argument `directory` must be a directory (existing or to create) for "
                    "the checkpoint and the trial directories, but it is an existing file. "
                    f"Received: directory={directory!r}"
                )
            parent = os.path.dirname(directory)
            while not os.path.exists(parent) and os.path.dirname(parent) != parent:
                parent = os.path.dirname(parent)  # the closest existing ancestor
            if not os.path.isdir(parent):
                raise ValueError(
                    "Argument `directory` must be a path that can be created, but "
                    f"{parent!r} is a file. Received: directory={directory!r}"
                )
        if executor is not None and not callable(getattr(executor, "submit", None)):
            raise ValueError(
                "Argument `executor` must be None or an object with `submit(fn, trial)` "
                "returning a concurrent.futures.Future (e.g. a ThreadPoolExecutor). "
                f"Received: executor={executor!r}"
            )
        if executor is not None and getattr(evaluate, "requires_sequential", False) is True:
            raise ValueError(
                "Argument `executor` must be None for this `evaluate`: it declares "
                "`requires_sequential = True` (its trials share state, e.g. weights that each "
                "trial continues to train, so they must run one after the other in this "
                f"process). Received: executor={executor!r}"
            )
        self.strategy = strategy
        self.evaluate = evaluate
        self.directory = directory
        self.executor = executor
        self.verbose = validate_int("verbose", verbose, minimum=0, maximum=2)
        self._bar = None
        self._config = serialize(strategy)
        self._pending = []
        self._completed = {}
        self._history = []
        self._start_time = time.monotonic()
        if self.checkpoint_path is not None and os.path.exists(self.checkpoint_path):
            self._load()

    @property
    def checkpoint_path(self):
        if self.directory is None:
            return None
        return os.path.join(self.directory, CHECKPOINT_NAME)

    @property
    def history(self):
        return list(self._history)

    def run(self, max_trials=None):
        """Evaluate trials until the strategy is done; return a `SearchResult`.

        ``max_trials`` (None or int >= 1) stops asking once that many trials have
        been asked over the whole search (counting those before a resume); a
        batch is always evaluated completely. Call `run` again to continue.
        """
        max_trials = validate_int("max_trials", max_trials, minimum=1, allow_none=True)
        self._start_time = time.monotonic()
        if not self._pending and self.strategy.pending_trials:
            # Trials asked before the strategy was given to the runner.
            self._pending = [self._place(trial) for trial in self.strategy.pending_trials]
            self._completed = {}
        if self.verbose == 2:
            self._bar = self._progress_bar(max_trials)
        try:
            while True:
                if not self._pending:
                    if self.strategy.done:
                        break
                    if max_trials is not None and self.strategy.num_asked >= max_trials:
                        break
                    self._pending = [self._place(trial) for trial in self.strategy.ask()]
                    self._completed = {}
                    self._save()
                self._evaluate_pending()
        finally:
            if self._bar is not None:
                self._bar.close()
                self._bar = None
        return self.result

    def _progress_bar(self, max_trials):
        import tqdm  # only for verbose=2

        total = getattr(self.strategy, "num_trials", None)
        if max_trials is not None:
            total = max_trials if total is None else min(total, max_trials)
        done = len(self._history) + len(self._completed)
        return tqdm.tqdm(
            total=total, initial=done, unit="trial", desc="search", dynamic_ncols=True
        )

    @property
    def result(self):
        """The `SearchResult` so far."""
        best = self.strategy.best
        if best is None:
            return SearchResult(None, None, list(self._history))
        by_id = {trial.trial_id: (trial, result) for trial, result in self._history}
        best_trial, best_result = by_id.get(best[0].trial_id, best)
        return SearchResult(best_trial, best_result, list(self._history))

    # ---------------------------------------------------------------- evaluation

    def _evaluate_pending(self):
        missing = [trial for trial in self._pending if trial.trial_id not in self._completed]
        if not missing:  # all results are in, but the strategy was not told (an error in tell)
            self._tell_if_complete()
            self._save()
            return
        if self.executor is None:
            for trial in missing:
                self._prepare_directory(trial)
                try:
                    result = self.evaluate(trial)
                except Exception as error:
                    self._annotate(error, trial)
                    raise
                self._record(trial, result)
            return
        futures = {}
        try:
            for trial in missing:
                self._prepare_directory(trial)
                futures[self.executor.submit(self.evaluate, trial)] = trial
            failure = None
            for future in concurrent.futures.as_completed(futures):
                if future.cancelled():
                    continue
                trial = futures[future]
                error = future.exception()
                if error is not None:
                    if failure is None:
                        failure = (error, trial)
                        for other in futures:
                            other.cancel()
                    continue
                self._record(trial, future.result())
        finally:
            for future in futures:
                future.cancel()
        if failure is not None:
            error, trial = failure
            self._annotate(error, trial)
            raise error

    def _annotate(self, error, trial):
        note = f"tfemergent.search: raised by evaluate() for trial {trial.trial_id}"
        if trial.info:
            note += f" ({trial.info})"
        if self.checkpoint_path is not None:
            note += (
                f". The checkpoint {self.checkpoint_path} keeps the results completed so far; "
                "create the SearchRunner again with the same directory to resume."
            )
        error.add_note(note)

    def _record(self, trial, result):
        result = self.strategy.validate_result(trial, result)
        self._completed[trial.trial_id] = result
        self._tell_if_complete()
        self._save()
        if is_failed(result):
            logger.warning(
                "Trial %d failed (%s); it is recorded in the history and never selected as "
                "best.",
                trial.trial_id,
                result["failure"],
            )
        self._log(trial, result)

    def _tell_if_complete(self):
        if self._pending and len(self._completed) == len(self._pending):
            results = [(pending, self._completed[pending.trial_id]) for pending in self._pending]
            self.strategy.tell(results)
            self._history.extend(results)
            self._pending, self._completed = [], {}

    def _log(self, trial, result):
        if not self.verbose:
            return
        if self._bar is not None:
            best = self.strategy.best
            failed = sum(is_failed(result) for _, result in self._history) + sum(
                is_failed(result) for result in self._completed.values()
            )
            postfix = {"best": "-" if best is None else _format_fitness(best[1]["fitness"])}
            if failed:
                postfix["failed"] = failed
            self._bar.set_postfix(postfix, refresh=False)
            self._bar.update(1)
            return
        text = f"Trial {trial.trial_id}"
        details = dict(trial.info)
        for record in reversed(self.strategy.history):
            if record["trial_id"] == trial.trial_id:
                # Entries the strategy added when told, e.g. HillClimbing's "accepted".
                details.update(
                    (key, value)
                    for key, value in record.items()
                    if key not in ("trial_id", "fitness", "best_trial_id", "failed")
                )
                break
        if details:
            text += " (" + ", ".join(f"{key}={value}" for key, value in details.items()) + ")"
        if is_failed(result):
            text += f": failed ({result['failure']})"
        else:
            text += f": fitness={_format_fitness(result['fitness'])}"
        best = self.strategy.best
        if best is not None:
            best_fitness = _format_fitness(best[1]["fitness"])
            text += f"; best: trial {best[0].trial_id}, fitness={best_fitness}"
        text += f"; {time.monotonic() - self._start_time:.1f}s"
        print(text, flush=True)

    # ------------------------------------------------------- directories & files

    def _trial_directory(self, trial_id):
        return os.path.join(self.directory, TRIALS_DIRECTORY_NAME, str(trial_id))

    def _place(self, trial):
        """The trial with the directories of this runner (None without a directory)."""
        if self.directory is None:
            return dataclasses.replace(trial, directory=None, parent_directory=None)
        parent_directory = None
        if trial.parent is not None:
            parent_directory = self._trial_directory(trial.parent)
        return dataclasses.replace(
            trial,
            directory=self._trial_directory(trial.trial_id),
            parent_directory=parent_directory,
        )

    def _prepare_directory(self, trial):
        if trial.directory is None:
            return
        if os.path.lexists(trial.directory):
            shutil.rmtree(trial.directory)  # left by a run killed during this trial
        os.makedirs(trial.directory)

    def _save(self):
        if self.directory is None:
            return
        best = self.strategy.best
        checkpoint = {
            "format_version": _FORMAT_VERSION,
            "strategy": self._config,
            "strategy_state": self.strategy.get_state(),
            "pending": [trial.to_json() for trial in self._pending],
            "completed": [
                {"trial_id": trial_id, "result": result}
                for trial_id, result in sorted(self._completed.items())
            ],
            "history": [
                {"trial": trial.to_json(), "result": result} for trial, result in self._history
            ],
            "done": self.strategy.done,
            "best_trial_id": None if best is None else best[0].trial_id,
        }
        os.makedirs(self.directory, exist_ok=True)
        temporary_path = self.checkpoint_path + ".tmp"
        with open(temporary_path, "w") as file:
            json.dump(checkpoint, file, indent=1)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary_path, self.checkpoint_path)

    def _load(self):
        path = self.checkpoint_path
        try:
            with open(path) as file:
                checkpoint = json.load(file)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(
                f"Cannot read the search checkpoint {path} ({error}). Delete it (and the "
                "trials/ directory next to it) to start afresh, or use another `directory`. "
                f"Received: directory={self.directory!r}"
            ) from error
        saved = checkpoint.get("strategy")
        if saved != self._config:
            raise ValueError(
                f"The checkpoint {path} belongs to a different search "
                f"({_describe_difference(saved, self._config)}). Pass a strategy with the saved "
                "config to resume it, or start afresh with another `directory` (or delete "
                f"{path} and the trials/ directory next to it). Received: strategy={self._config}"
            )
        self.strategy.set_state(checkpoint["strategy_state"])
        self._pending = [self._place(Trial.from_json(trial)) for trial in checkpoint["pending"]]
        self._completed = {
            int(entry["trial_id"]): entry["result"] for entry in checkpoint["completed"]
        }
        self._history = [
            (self._place(Trial.from_json(entry["trial"])), entry["result"])
            for entry in checkpoint["history"]
        ]
        if self.verbose:
            print(
                f"Resuming the search in {self.directory}: {len(self._history)} trials done, "
                f"{len(self._completed)} of {len(self._pending)} pending trials completed.",
                flush=True,
            )
