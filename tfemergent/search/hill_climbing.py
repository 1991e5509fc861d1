"""`HillClimbing`: stochastic hill climbing over the parts of a candidate."""

import copy
import math
import numbers

from tfemergent.search.search_space import register_search_class
from tfemergent.search.search_strategy import SearchStrategy
from tfemergent.search.search_strategy import fitness_score
from tfemergent.search.search_strategy import is_failed
from tfemergent.search.search_strategy import total_fitness
from tfemergent.utils.validation import validate_choice
from tfemergent.utils.validation import validate_int


ACCEPTANCES = ("part", "total", "controlled")


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

    One trial per `ask` (``num_candidates=1``, the default). Trial 0
    (``parent=None``, ``info={"meta_step": 0, "part": None}``) gives the
    baseline; every later trial has ``parent`` = the id of the best trial it
    was made from (so an evaluator can start from that trial's weights, found
    in ``trial.parent_directory`` under `SearchRunner`) and
    ``info={"meta_step": m, "part": i}``. The search takes at least
    ``1 + num_steps`` and at most ``1 + num_steps * num_parts`` trials.

    **Several candidates per step** (``num_candidates=c > 1``), to evaluate
    them in parallel (`SearchRunner` with an executor, e.g. `RayExecutor`):
    after the baseline, each `ask` returns ``c`` neighbours of the best, made
    in order from the parts ``i, i + 1, ..., i + c - 1`` (modulo
    ``num_parts``) where ``i`` is the part the sequential loop would try next,
    each a fresh draw of ``space.neighbour`` (a part appears several times
    when ``c > num_parts``). A candidate *improves* when it beats the best on
    its own part (the rule above); of the improving candidates the one with
    the highest scalar fitness (`fitness_score`; ties: the first in the
    batch) is accepted and the meta-step ends; with none, the next batch
    continues from part ``i + c``, or the next meta-step starts once every
    part was tried. With ``c = 1`` this is exactly the loop above. The search
    takes at least ``1 + num_steps * c`` and at most ``1 + num_steps * c *
    ceil(num_parts / c)`` trials.

    With ``acceptance="part"`` (the paper's rule) ``fitness_i`` is entry ``i`` of
    the per-part fitness list (each result must hold ``num_parts`` values, e.g.
    the entropy of every unit; the entries of the other parts are kept in the
    history but do not decide). With ``acceptance="total"`` it is the whole
    fitness (a float, or the sum of a list). With ``acceptance="controlled"`` a
    candidate is compared with its own paired control instead of with the best:
    its result must also hold ``"control_fitness"``, the per-part fitness of the
    *unchanged* best trained in the same way as the candidate (same extra steps,
    same starting weights and optimizer state, same batches), and it improves
    when ``fitness[i] > control_fitness[i]`` on its part ``i``. This separates
    the effect of the change from the effect of the extra training, which in a
    search that retrains from the parent's weights raises every part's fitness
    whether or not anything moved. Of several improving candidates the one with
    the largest margin ``fitness[i] - control_fitness[i]`` is accepted. Ties are
    rejected. Fitness is
    maximised: negate losses. A failed trial (non-finite fitness, see
    `SearchStrategy`) is never accepted; if the baseline fails, the search
    climbs from it all the same (any candidate with a finite fitness improves
    on it) but `best` stays None until a trial succeeds.

    `history` has one record per told trial: ``{"trial_id", "fitness",
    "meta_step", "part", "accepted", "best_trial_id"}`` (trial 0 counts as
    accepted unless it failed; ``best_trial_id`` is the best trial after that
    trial's batch was told), so the best result per meta-step is the
    ``best_trial_id`` of the last record of that meta-step.

    Reference: Borgohain et al., "Self-organising Neural Network Hierarchy",
    Algorithm 2 (stochastic hill climber as meta-learning rule).

    Args:
        space: a `SearchSpace` with `neighbour`; ``space.num_parts`` parts.
        num_steps: int >= 0, the number of meta-steps ``M``.
        initial: None or a candidate to start from (validated by the space);
            None draws ``space.sample(rng)``.
        seed: None or an int >= 0 (see `SearchStrategy`).
        acceptance: ``"part"`` (compare the changed part's fitness with the
            best's), ``"total"`` (compare the scalar fitness) or
            ``"controlled"`` (compare the changed part's fitness with the
            candidate's paired control, see above).
        num_candidates: int >= 1, the candidates per `ask` after the baseline
            (see above).

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

    Four candidates per step, e.g. for four workers:

    >>> strategy = search.HillClimbing(Grid(), num_steps=5, initial=[0, 0], seed=1,
    ...                                num_candidates=4)
    >>> while not strategy.done:
    ...     trials = strategy.ask()
    ...     strategy.tell([(t, {"fitness": [-abs(t.params[0] - 3), -abs(t.params[1] - 5)]})
    ...                    for t in trials])
    >>> strategy.num_asked, strategy.best[0].params  # 1 + 5 steps of 4 candidates
    (21, [3, 2])
    >>> [(r["part"], r["accepted"]) for r in strategy.history[1:5]]  # the first step
    [(0, False), (1, True), (0, False), (1, False)]
    """

    def __init__(
        self, space, num_steps, initial=None, seed=None, acceptance="part", num_candidates=1
    ):
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
        self.acceptance = validate_choice("acceptance", acceptance, ACCEPTANCES)
        self.num_candidates = validate_int("num_candidates", num_candidates, minimum=1)
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
        trials = []
        for part in self._batch_parts():
            params = self.space.neighbour(copy.deepcopy(best_trial.params), part, self._rng)
            trials.append(
                self._new_trial(
                    params,
                    parent=best_trial.trial_id,
                    info={"meta_step": self._meta_step, "part": part},
                )
            )
        return trials

    def _batch_parts(self):
        """The parts changed by the candidates of the next batch, in order."""
        return [
            (self._part + index) % self.space.num_parts for index in range(self.num_candidates)
        ]

    def _check_fitness(self, trial, fitness):
        if self.acceptance in ("part", "controlled") and not isinstance(fitness, list):
            raise ValueError(
                f"HillClimbing(acceptance={self.acceptance!r}) compares the fitness of the "
                f"changed part, so the 'fitness' of trial {trial.trial_id} must be a list of "
                f"num_parts={self.space.num_parts} floats (one per part); use "
                f"acceptance='total' for a scalar fitness. Received: fitness={fitness!r}"
            )

    def validate_result(self, trial, result):
        """As `SearchStrategy.validate_result`; with ``acceptance="controlled"`` a
        candidate's result (not the baseline's) must also hold ``"control_fitness"``,
        one float per part (NaN or inf: that control failed, the candidate is not
        accepted)."""
        result = super().validate_result(trial, result)
        if self.acceptance != "controlled" or trial.parent is None or is_failed(result):
            return result
        control = result.get("control_fitness")
        if (
            not isinstance(control, (list, tuple))
            or len(control) != self.space.num_parts
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in control)
        ):
            raise ValueError(
                "HillClimbing(acceptance='controlled') compares each candidate with its paired "
                f"control, so the result of trial {trial.trial_id} must hold "
                f"'control_fitness', a list of num_parts={self.space.num_parts} floats. "
                f"Received: control_fitness={control!r}"
            )
        return {**result, "control_fitness": [float(v) for v in control]}

    def _margin(self, trial, result, part, best_result):
        """How much the candidate beats what it is compared with (> 0: it improves)."""
        if is_failed(result):
            return -math.inf
        if self.acceptance != "controlled":
            return self._score(result, part) - self._score(best_result, part)
        control = result["control_fitness"]  # checked by validate_result
        if not math.isfinite(control[part]):
            return -math.inf
        return result["fitness"][part] - control[part]

    def _score(self, result, part):
        if is_failed(result):
            return -math.inf
        if self.acceptance == "part":
            return result["fitness"][part]
        return total_fitness(result["fitness"])

    def _tell(self, results):
        if self._best is None:
            ((trial, result),) = results
            self._best = (trial, result)
            self._meta_step, self._part = 1, 0
            accepted = not is_failed(result)
            self._record(trial, result, meta_step=0, part=None, accepted=accepted)
            return
        meta_step, parts = self._meta_step, self._batch_parts()
        best_result = self._best[1]
        chosen, chosen_margin = None, None
        for index, ((trial, result), part) in enumerate(zip(results, parts)):
            margin = self._margin(trial, result, part, best_result)
            if not margin > 0:  # also NaN: a failed candidate after a failed baseline
                continue
            if self.acceptance == "controlled":
                better = chosen is None or margin > chosen_margin
            else:
                better = chosen is None or fitness_score(result) > fitness_score(results[chosen][1])
            if better:
                chosen, chosen_margin = index, margin
        if chosen is not None:
            self._best = results[chosen]
            self._meta_step, self._part = meta_step + 1, 0
        elif self._part + len(results) < self.space.num_parts:
            self._part += len(results)
        else:
            self._meta_step, self._part = meta_step + 1, 0
        for index, ((trial, result), part) in enumerate(zip(results, parts)):
            self._record(
                trial, result, meta_step=meta_step, part=part, accepted=index == chosen
            )

    def get_config(self):
        config = {
            **super().get_config(),
            "num_steps": self.num_steps,
            "initial": self.initial,
            "acceptance": self.acceptance,
        }
        if self.num_candidates != 1:
            # Omitted when 1: checkpoints written before the option existed still resume.
            config["num_candidates"] = self.num_candidates
        return config

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
