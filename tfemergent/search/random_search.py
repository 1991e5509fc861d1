"""`RandomSearch`: independent random candidates, in batches."""

from tfemergent.search.search_space import register_search_class
from tfemergent.search.search_strategy import SearchStrategy
from tfemergent.search.search_strategy import fitness_score
from tfemergent.utils.validation import validate_int


@register_search_class
class RandomSearch(SearchStrategy):
    """Random search: ``num_trials`` independent candidates from ``space.sample``.

    The baseline of the self-organising hierarchy's meta-learning (random
    topologies). Each `ask` returns up to ``batch_size`` trials (``parent=None``,
    ``info={"batch": b}``) that can be evaluated in parallel, e.g. by
    `SearchRunner` with an executor. The best trial has the highest scalar fitness
    (a float, or the sum of a per-part list; the earliest wins ties); failed
    trials (see `SearchStrategy`) never are. Fitness is maximised: negate
    losses.

    `history` has one record per told trial: ``{"trial_id", "fitness",
    "best_trial_id"}``.

    Args:
        space: a `SearchSpace` with `sample`.
        num_trials: int >= 1, the number of candidates to evaluate.
        batch_size: int >= 1, the number of trials per `ask` (the last batch may
            be smaller).
        seed: None or an int >= 0 (see `SearchStrategy`).

    Example:

    >>> from tfemergent import search
    >>> class Line(search.SearchSpace):
    ...     def sample(self, rng):
    ...         return [int(rng.integers(0, 10))]
    >>> strategy = search.RandomSearch(Line(), num_trials=30, batch_size=4, seed=0)
    >>> batch_sizes = []
    >>> while not strategy.done:
    ...     trials = strategy.ask()
    ...     batch_sizes.append(len(trials))
    ...     strategy.tell([(t, {"fitness": -abs(t.params[0] - 7)}) for t in trials])
    >>> batch_sizes
    [4, 4, 4, 4, 4, 4, 4, 2]
    >>> strategy.best[0].params, strategy.best[1]
    ([7], {'fitness': 0.0})
    """

    def __init__(self, space, num_trials, batch_size=1, seed=None):
        super().__init__(space, seed=seed)
        self.num_trials = validate_int("num_trials", num_trials, minimum=1)
        self.batch_size = validate_int("batch_size", batch_size, minimum=1)

    @property
    def done(self):
        return self._num_asked >= self.num_trials and not self._pending

    def _ask(self):
        batch = self._num_asked // self.batch_size
        size = min(self.batch_size, self.num_trials - self._num_asked)
        return [
            self._new_trial(self.space.sample(self._rng), info={"batch": batch})
            for _ in range(size)
        ]

    def _tell(self, results):
        for trial, result in results:
            if self._best is None or fitness_score(result) > fitness_score(self._best[1]):
                self._best = (trial, result)
            self._record(trial, result)

    def get_config(self):
        return {
            **super().get_config(),
            "num_trials": self.num_trials,
            "batch_size": self.batch_size,
        }
