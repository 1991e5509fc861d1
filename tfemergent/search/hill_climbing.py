"""`HillClimbing`: stochastic hill climbing over the parts of a candidate."""

import copy

from tfemergent.search.search_space import register_search_class
from tfemergent.search.search_strategy import SearchStrategy
from tfemergent.search.search_strategy import total_fitness
from tfemergent.utils.validation import validate_choice
from tfemergent.utils.validation import validate_int


@register_search_class
class HillClimbing(SearchStrategy):
    """Stochastic hill climbing that changes one part at a time (Algorithm 2).

    The meta-learning rule of the self-organising hierarchy: the receptive fields
    of ``K`` units are moved one unit at a time, and a move is kept only if it
    raises that unit's entropy. In general terms::

        best <- initial (or space.sample(rng)); evaluate it (trial 0)
        for m in 1..num_steps:                    # meta-steps
            for i in 0..num_parts-1:              # parts, in this order
                candidate <- space.neighbour(best, i, rng)
                evaluate candidate                # continues from the best trial
                if fitness_i(candidate) > fitness_i(best):
                    best <- candidate; break      # accepted: next meta-step
                # rejected: try the next part

    One trial per `ask`. Trial 0 (``parent=None``, ``info={"meta_step": 0,
    "part": None}``) gives the baseline; every later trial has ``parent`` = the id
    of the best trial it was made from (so an evaluator can start from that
    trial's weights, found in ``trial.parent_directory`` under `SearchRunner`) and
    ``info={"meta_step": m, "part": i}``. The search takes at least
    ``1 + num_steps`` and at most ``1 + num_steps * num_parts`` trials.

    With ``acceptance="part"`` (the paper's rule) ``fitness_i`` is entry ``i`` of
    the per-part fitness list (each result must hold ``num_parts`` values, e.g.
    the entropy of every unit; the entries of the other parts are kept in the
    history but do not decide). With ``acceptance="total"`` it is the whole
    fitness (a float, or the sum of a list). Ties are rejected. Fitness is
    maximised: negate losses.

    `history` has one record per told trial: ``{"trial_id", "fitness",
    "meta_step", "part", "accepted", "best_trial_id"}`` (trial 0 counts as
    accepted; ``best_trial_id`` is the best trial after that trial was told), so
    the best result per meta-step is the ``best_trial_id`` of the last record of
    that meta-step.

    Reference: Borgohain et al., "Self-organising Neural Network Hierarchy",
    Algorithm 2 (stochastic hill climber as meta-learning rule).

    Args:
        space: a `SearchSpace` with `neighbour`; ``space.num_parts`` parts.
        num_steps: int >= 0, the number of meta-steps ``M``.
        initial: None or a candidate to start from (validated by the space);
            None draws ``space.sample(rng)``.
        seed: None or an int >= 0 (see `SearchStrategy`).
        acceptance: ``"part"`` (compare the changed part's fitness) or
            ``"total"`` (compare the scalar fitness).

    Example:

    >>> from tfemergent import search
    >>> class Grid(search.SearchSpace):
    ...     '''Two integer coordinates in 0..9; a part moves by one step.'''
    ...     num_parts = 2
    ...     def sample(self, rng):
    ...         return [int(x) for x in rng.integers(0, 10, size=2)]
    ...     def neighbour(self, candidate, part, rng):
    ...         candidate[part] = min(9, max(0, candidate[part] + int(rng.choice([-1, 1]))))
    ...         return candidate
    >>> strategy = search.HillClimbing(Grid(), num_steps=20, initial=[0, 0], seed=1)
    >>> while not strategy.done:
    ...     (trial,) = strategy.ask()
    ...     fitness = [-abs(trial.params[0] - 3), -abs(trial.params[1] - 5)]
    ...     strategy.tell([(trial, {"fitness": fitness})])
    >>> best_trial, best_result = strategy.best
    >>> best_trial.params, best_result["fitness"]
    ([3, 5], [0.0, 0.0])
    >>> [(r["trial_id"], r["meta_step"], r["part"], r["accepted"]) for r in strategy.history[:5]]
    [(0, 0, None, True), (1, 1, 0, False), (2, 1, 1, True), (3, 2, 0, True), (4, 3, 0, True)]
    >>> strategy.history[2]["fitness"], strategy.history[2]["best_trial_id"]
    ([-3.0, -4.0], 2)
    """

    def __init__(self, space, num_steps, initial=None, seed=None, acceptance="part"):
        super().__init__(space, seed=seed)
        self.num_steps = validate_int("num_steps", num_steps, minimum=0)
        if initial is not None:
            try:
                initial = space.validate(initial)
            except ValueError as error:
                raise ValueError(
                    f"Argument `initial` must be a valid candidate of {type(space).__name__} "
                    f"({error}). Received: initial={initial!r}"
                ) from error
        self.initial = initial
        self.acceptance = validate_choice("acceptance", acceptance, ("part", "total"))
        self._meta_step = 0  # 0 until the baseline (trial 0) is told
        self._part = 0

    @property
    def done(self):
        return (
            self._best is not None and self._meta_step > self.num_steps and not self._pending
        )

    def _ask(self):
        if self._best is None:
            params = self.initial if self.initial is not None else self.space.sample(self._rng)
            return [self._new_trial(copy.deepcopy(params), info={"meta_step": 0, "part": None})]
        best_trial = self._best[0]
        params = self.space.neighbour(copy.deepcopy(best_trial.params), self._part, self._rng)
        return [
            self._new_trial(
                params,
                parent=best_trial.trial_id,
                info={"meta_step": self._meta_step, "part": self._part},
            )
        ]

    def _check_fitness(self, trial, fitness):
        if self.acceptance == "part" and not isinstance(fitness, list):
            raise ValueError(
                "HillClimbing(acceptance='part') compares the fitness of the changed part, so "
                f"the 'fitness' of trial {trial.trial_id} must be a list of "
                f"num_parts={self.space.num_parts} floats (one per part); use "
                f"acceptance='total' for a scalar fitness. Received: fitness={fitness!r}"
            )

    def _score(self, fitness, part):
        if self.acceptance == "part":
            return fitness[part]
        return total_fitness(fitness)

    def _tell(self, results):
        ((trial, result),) = results
        if self._best is None:
            accepted = True
            self._best = (trial, result)
            meta_step, part = 0, None
            self._meta_step, self._part = 1, 0
        else:
            meta_step, part = self._meta_step, self._part
            accepted = self._score(result["fitness"], part) > self._score(
                self._best[1]["fitness"], part
            )
            if accepted:
                self._best = (trial, result)
                self._meta_step, self._part = meta_step + 1, 0
            elif part + 1 < self.space.num_parts:
                self._part = part + 1
            else:
                self._meta_step, self._part = meta_step + 1, 0
        self._record(trial, result, meta_step=meta_step, part=part, accepted=accepted)

    def get_config(self):
        return {
            **super().get_config(),
            "num_steps": self.num_steps,
            "initial": self.initial,
            "acceptance": self.acceptance,
        }

    def get_state(self):
        return {**super().get_state(), "meta_step": self._meta_step, "part": self._part}

    def set_state(self, state):
        if not isinstance(state, dict) or "meta_step" not in state or "part" not in state:
            raise ValueError(
                "`HillClimbing.set_state` expects the keys 'meta_step' and 'part' of "
                f"HillClimbing.get_state(). Received: state={state!r}"
            )
        super().set_state(state)
        self._meta_step = int(state["meta_step"])
        self._part = int(state["part"])
