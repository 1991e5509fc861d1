"""`Trial`: one candidate handed out by a search strategy for evaluation."""

import dataclasses
import json

import numpy as np

_FIELDS = ("trial_id", "params", "parent", "seed", "info", "directory", "parent_directory")


def trial_seed(seed, trial_id):
    """The seed of trial ``trial_id`` of a search seeded with ``seed`` (0 <= s < 2**31)."""
    state = np.random.SeedSequence([seed, trial_id]).generate_state(1, dtype=np.uint32)
    return int(state[0] >> np.uint32(1))


@dataclasses.dataclass
class Trial:
    """One candidate of a search, handed out by `SearchStrategy.ask`.

    The evaluator (the ``evaluate`` function of `SearchRunner`) trains or scores
    the candidate ``params`` and returns a result dict with a ``"fitness"``.
    A trial may *continue* from an earlier one, its ``parent``: `HillClimbing`
    makes every candidate from the current best, so an evaluator that retains
    weights loads them from ``parent_directory`` and saves its own in
    ``directory``.

    Args:
        trial_id: int, position of the trial in the search (0, 1, 2, ...).
        params: the candidate, JSON values (nested lists/dicts of ints, floats, str).
        parent: int or None, the id of the trial whose state this trial continues
            from (for `HillClimbing` the best trial when it was asked), else None.
        seed: int in ``[0, 2**31)``, derived deterministically from the strategy's
            seed and ``trial_id`` (``np.random.SeedSequence([seed, trial_id])``);
            seed the evaluator with it (e.g. ``keras.utils.set_random_seed``) so
            that a resumed search repeats the same evaluations.
        info: dict of JSON values describing where the trial comes from, e.g.
            ``{"meta_step": 2, "part": 1}`` for `HillClimbing`.
        directory: str or None, a directory for this trial's files (e.g. model
            weights), created empty by `SearchRunner` before the evaluation;
            None when the runner has no directory or outside a runner.
        parent_directory: str or None, the ``directory`` of the parent trial.

    `to_json` returns a dict of JSON values; `from_json` accepts that dict (or its
    JSON text).

    Example:

    >>> from tfemergent.search import Trial
    >>> trial = Trial(trial_id=3, params=[[1, 2], [4, 0]], parent=1, seed=17,
    ...               info={"meta_step": 1, "part": 1})
    >>> trial.to_json()["info"]
    {'meta_step': 1, 'part': 1}
    >>> Trial.from_json(trial.to_json()) == trial
    True
    """

    trial_id: int
    params: object
    parent: int | None = None
    seed: int = 0
    info: dict = dataclasses.field(default_factory=dict)
    directory: str | None = None
    parent_directory: str | None = None

    def to_json(self):
        return {name: getattr(self, name) for name in _FIELDS}

    @classmethod
    def from_json(cls, data):
        if isinstance(data, str):
            data = json.loads(data)
        if not isinstance(data, dict) or not {"trial_id", "params"} <= set(data):
            raise ValueError(
                "`Trial.from_json` expects a dict (or JSON text) with at least the keys "
                f"'trial_id' and 'params', as returned by `Trial.to_json`. Received: data={data!r}"
            )
        unknown = set(data) - set(_FIELDS)
        if unknown:
            raise ValueError(
                f"`Trial.from_json` got unknown keys {sorted(unknown)}; expected a subset of "
                f"{list(_FIELDS)}. Received: data={data!r}"
            )
        data = dict(data)
        data["info"] = dict(data.get("info") or {})
        return cls(**data)
