"""`EvolutionarySearch`: the location search of the neuron hierarchical networks."""

import itertools
import json

from tfemergent.search.search_space import register_search_class
from tfemergent.search.search_strategy import SearchStrategy
from tfemergent.search.search_strategy import fitness_score
from tfemergent.search.trial import Trial
from tfemergent.utils.validation import validate_int


@register_search_class
class EvolutionarySearch(SearchStrategy):
    """Evolution of a population with elitism, crossover of the best, and fresh candidates.

    The *location search* of the location-direction search (LDS, Algorithm 1
    of the paper), for any space with `sample` and `recombine` (e.g.
    `LocationSpace`)::

        population <- population_size candidates from space.sample(rng)
        for t in 0..num_cycles-1:                       # evolution cycles
            evaluate every member of the population     # one batch of trials
            sort by fitness, best first                 # ties: lower member first
            if t is not the last cycle:
                population <- the best num_survivors (kept, evaluated again)
                            + num_children children of the best num_parents
                            + num_fresh candidates from space.sample(rng)

    with ``num_survivors = population_size - num_children - num_fresh``. Child
    ``c`` is ``space.recombine(p_a, p_b, rng)`` for the ``c``-th pair ``(a, b)``
    of ``itertools.combinations(range(num_parents), 2)`` (ranks, 0 = best): the
    paper's pairs (1, 2), (1, 3), (1, 4), (2, 3), (2, 4) for 4 parents and 5
    children. The paper's default: 20 = 10 survivors + 5 children + 5 fresh.

    One `ask` returns a whole generation (``population_size`` trials, to be
    evaluated in parallel by `SearchRunner` with an executor); the search has
    ``num_cycles * population_size`` trials and trial ``t * population_size + k``
    is member ``k`` of cycle ``t``. Each trial's ``info`` is ``{"cycle": t,
    "member": k, "origin": o, "parents": [...]}``: members are in the order
    survivors (by rank), children (by pair), fresh; ``origin`` is
    ``"initial"`` (cycle 0), ``"survivor"``, ``"child"`` or ``"fresh"``;
    ``parents`` holds the trial ids a member comes from (a survivor's trial of
    the previous cycle, a child's two parents best first, none for the others),
    and ``trial.parent`` is the first of them (None if none), so that an
    evaluator may start a member from its parent's saved state. The paper
    trains member ``k`` on the ``k``-th slice of the training batches of each
    cycle (disjoint slices, one pass over the data per cycle); use
    ``info["member"]`` for that, and ``trial.seed`` for randomness.

    Fitness is maximised (negate losses; a per-part list counts as its sum).
    Survivors are evaluated again in each cycle, since with weights shared
    between candidates their fitness changes as training goes on. Hence
    `best` is the best member of the **latest evaluated generation** (the
    paper's "best model from the population" after the last cycle), not the
    best fitness ever seen; with a fixed fitness function it never gets worse,
    as the best member always survives. `population` is that generation,
    sorted best first.

    A failed trial (a diverged candidate, see `SearchStrategy`) ranks last in
    its generation, below every finite fitness (failed ones keep member
    order), so it survives only when fewer members than ``num_survivors``
    succeeded; `best` is None after a generation in which every member failed.

    `history` has one record per told trial: ``{"trial_id", "fitness", "rank",
    "best_trial_id"}``, with ``rank`` the place of the trial in its generation
    (0 = best) and ``best_trial_id`` the best of that generation.

    Where the paper is ambiguous: Algorithm 1 mutates the best 5 into members
    16-20, while Section 3 says it "re-generate[s] 5 new models instead of
    performing mutation"; this class draws fresh candidates. The number of
    survivors is implicit (members 11-20 are replaced, so the best 10 stay).
    The crossover operator is not specified: it is ``space.recombine``
    (uniform crossover in `LocationSpace`). Duplicate candidates are allowed.

    Reference: "Neuron Hierarchical Networks", Algorithm 1 (location-direction
    search) and Section 3 (K = 20, fresh candidates instead of mutation).

    Args:
        space: a `SearchSpace` with `sample(rng)` and `recombine(first,
            second, rng)` (returning a child made of the parents' genes).
        num_cycles: int >= 1, the number of evolution cycles ``T`` (the paper:
            300).
        population_size: int >= 2, the population capacity ``K``.
        num_parents: int >= 2, the number of best members that are recombined.
        num_children: int >= 0, the number of children per cycle, at most the
            number of pairs of parents.
        num_fresh: int >= 0, the number of fresh candidates per cycle;
            ``num_children + num_fresh < population_size`` so that the best
            member survives.
        seed: None or an int >= 0 (see `SearchStrategy`).

    Attributes:
        num_survivors: int, the members kept from one cycle to the next.
        num_trials: int, ``num_cycles * population_size``.
        num_completed_cycles: int, the generations evaluated so far.
        population: list of ``(trial, result)`` of the latest evaluated
            generation, best first (empty before the first tell).

    Example:

    >>> from tfemergent import search
    >>> space = search.LocationSpace(segment_sizes=(3, 3), kernel_sizes=(3, 5))
    >>> target = [-1, 1, 2, 0, -1, 1] + [0, -1, -1, -1, 1, -1]
    >>> strategy = search.EvolutionarySearch(space, num_cycles=15, population_size=8,
    ...                                      num_parents=3, num_children=3, num_fresh=2, seed=0)
    >>> strategy.num_survivors
    3
    >>> while not strategy.done:
    ...     trials = strategy.ask()
    ...     matches = [sum(a == b for a, b in zip(t.params, target)) for t in trials]
    ...     strategy.tell([(t, {"fitness": m}) for t, m in zip(trials, matches)])
    >>> [t.info["origin"] for t in trials]
    ['survivor', 'survivor', 'survivor', 'child', 'child', 'child', 'fresh', 'fresh']
    >>> [t.info["parents"] for t in trials[3:6]] == [
    ...     [trials[0].parent, trials[1].parent], [trials[0].parent, trials[2].parent],
    ...     [trials[1].parent, trials[2].parent]]
    True
    >>> strategy.num_asked, strategy.best[1]["fitness"] > strategy.history[0]["fitness"]
    (120, True)
    """

    def __init__(
        self,
        space,
        num_cycles,
        population_size=20,
        num_parents=4,
        num_children=5,
        num_fresh=5,
        seed=None,
    ):
        super().__init__(space, seed=seed)
        if not callable(getattr(space, "recombine", None)):
            raise ValueError(
                "EvolutionarySearch recombines the best candidates with "
                "`space.recombine(first, second, rng)`; the space has no such method (see "
                f"`tfemergent.search.LocationSpace`). Received: space={space!r}"
            )
        self.num_cycles = validate_int("num_cycles", num_cycles, minimum=1)
        self.population_size = validate_int("population_size", population_size, minimum=2)
        self.num_parents = validate_int(
            "num_parents", num_parents, minimum=2, maximum=self.population_size
        )
        num_pairs = self.num_parents * (self.num_parents - 1) // 2
        self.num_children = validate_int("num_children", num_children, minimum=0)
        if self.num_children > num_pairs:
            raise ValueError(
                f"Argument `num_children` must be at most the {num_pairs} pairs of the "
                f"num_parents={self.num_parents} best members (each child has its own pair); "
                f"lower it or raise num_parents. Received: num_children={num_children!r}"
            )
        self.num_fresh = validate_int("num_fresh", num_fresh, minimum=0)
        if self.num_children + self.num_fresh >= self.population_size:
            raise ValueError(
                "Arguments `num_children` + `num_fresh` must be < "
                f"population_size={self.population_size} so that at least the best member "
                f"survives each cycle. Received: num_children={num_children!r}, "
                f"num_fresh={num_fresh!r}"
            )
        self._pairs = list(itertools.combinations(range(self.num_parents), 2))[
            : self.num_children
        ]
        self._num_completed_cycles = 0
        self._population = []  # (trial, result) of the latest generation, best first

    # ---------------------------------------------------------------- properties

    @property
    def num_survivors(self):
        return self.population_size - self.num_children - self.num_fresh

    @property
    def num_trials(self):
        return self.num_cycles * self.population_size

    @property
    def num_completed_cycles(self):
        return self._num_completed_cycles

    @property
    def population(self):
        return list(self._population)

    @property
    def done(self):
        return self._num_completed_cycles >= self.num_cycles and not self._pending

    # ------------------------------------------------------------------ ask/tell

    def _members(self):
        """The next generation: ``(params, origin, parent_trial_ids)`` per member."""
        if self._num_completed_cycles == 0:
            return [
                (self.space.sample(self._rng), "initial", [])
                for _ in range(self.population_size)
            ]
        ranked = [trial for trial, _ in self._population]
        members = [
            (trial.params, "survivor", [trial.trial_id])
            for trial in ranked[: self.num_survivors]
        ]
        for first, second in self._pairs:
            child = self.space.recombine(ranked[first].params, ranked[second].params, self._rng)
            members.append((child, "child", [ranked[first].trial_id, ranked[second].trial_id]))
        members.extend(
            (self.space.sample(self._rng), "fresh", []) for _ in range(self.num_fresh)
        )
        return members

    def _ask(self):
        cycle = self._num_completed_cycles
        return [
            self._new_trial(
                params,
                parent=parents[0] if parents else None,
                info={"cycle": cycle, "member": member, "origin": origin, "parents": parents},
            )
            for member, (params, origin, parents) in enumerate(self._members())
        ]

    def _tell(self, results):
        # A stable sort: among equal fitness the lower member (e.g. a survivor) ranks first.
        # Failed trials score -inf: they rank last.
        ranked = sorted(results, key=lambda pair: -fitness_score(pair[1]))
        ranks = {trial.trial_id: rank for rank, (trial, _) in enumerate(ranked)}
        self._population = ranked
        self._best = ranked[0]
        self._num_completed_cycles += 1
        for trial, result in results:
            self._record(trial, result, rank=ranks[trial.trial_id])

    # ----------------------------------------------------------- config & state

    def get_config(self):
        return {
            **super().get_config(),
            "num_cycles": self.num_cycles,
            "population_size": self.population_size,
            "num_parents": self.num_parents,
            "num_children": self.num_children,
            "num_fresh": self.num_fresh,
        }

    def get_state(self):
        return {
            **super().get_state(),
            "num_completed_cycles": self._num_completed_cycles,
            "population": [
                {"trial": trial.to_json(), "result": result} for trial, result in self._population
            ],
        }

    def set_state(self, state):
        if (
            not isinstance(state, dict)
            or "num_completed_cycles" not in state
            or "population" not in state
        ):
            raise ValueError(
                "`EvolutionarySearch.set_state` expects the keys 'num_completed_cycles' and "
                f"'population' of EvolutionarySearch.get_state(). Received: state={state!r}"
            )
        super().set_state(state)
        state = json.loads(json.dumps(state))  # a private copy
        self._num_completed_cycles = int(state["num_completed_cycles"])
        self._population = [
            (Trial.from_json(entry["trial"]), entry["result"]) for entry in state["population"]
        ]
