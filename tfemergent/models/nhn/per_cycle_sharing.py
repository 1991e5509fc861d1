"""`PerCycleSharing`: every member of a cycle starts from the cycle's merged add-on weights."""

import os

from tfemergent.models.nhn.trial_weight_store import (
    TrialWeightStore,
    load_member,
    member_record_path,
    save_member,
)

TRIALS_DIRECTORY_NAME = "trials"


class PerCycleSharing:
    """The weight-sharing policy ``shared_weights="per_cycle"`` of `LocationEvaluator`.

    Every member of cycle ``t`` starts from the cycle-start state ``S_t``
    (``S_0``: ``initial``) and its trained add-on weights and fitness are
    saved as its *member files* (`save_member`). ``S_{t+1}`` is the merge of
    cycle ``t``: for every add-on weight, the copy trained by the member with
    the highest fitness among the members that trained it (ties: the lowest
    member; failed members, fitness None, do not count); weights no member
    trained keep their value in ``S_t``. An evaluation is thus a function of
    ``(S_t, trial)`` only: members can run in any order and in any process.

    ``S_t`` is computed by the first evaluation that needs it, from
    ``S_{t-1}`` and the member files of cycle ``t - 1``, and saved as the
    snapshot before the cycle's first trial in ``store`` (the two latest are
    kept). In memory: ``S_0``, the two latest states and the members from the
    older of those two on.

    Args:
        initial: dict of the add-on weights before trial 0.
        store: the `TrialWeightStore` of the cycle-start states.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models.nhn.per_cycle_sharing import PerCycleSharing
    >>> from tfemergent.models.nhn.per_cycle_sharing import TrialWeightStore
    >>> sharing = PerCycleSharing({"a": np.zeros(1), "b": np.zeros(1)}, TrialWeightStore())
    >>> sharing.finish({"trial_id": 0, "cycle": 0, "member": 0, "fitness": 0.5},
    ...                {"a": np.ones(1)})
    >>> sharing.finish({"trial_id": 1, "cycle": 0, "member": 1, "fitness": 0.7},
    ...                {"a": np.full(1, 2.0), "b": np.ones(1)})
    >>> state = sharing.cycle_start(2)
    >>> state["a"].tolist(), state["b"].tolist()
    ([2.0], [1.0])
    """

    requires_sequential = False

    def __init__(self, initial, store):
        self.store = store
        self.members_root = None  # the directory of the trial directories, if any
        self.members = {}  # trial_id -> (record, trained weights)
        self.cycle_starts = {0: initial}  # first trial of a cycle -> its state

    def start(self, network, trial, member):
        """Set ``network``'s add-on weights to the cycle-start state of ``trial``."""
        if getattr(trial, "directory", None):
            self.members_root = os.path.dirname(os.path.abspath(trial.directory))
        elif self.store.directory is not None:
            self.members_root = os.path.join(self.store.directory, TRIALS_DIRECTORY_NAME)
        network.set_add_on_weights(self.cycle_start(trial.trial_id - member))

    def finish(self, record, trained):
        """Save the member files of the trial of ``record`` (fitness None: failed)."""
        self.members[record["trial_id"]] = (record, trained)
        directory = self._member_directory(record["trial_id"])
        if directory is not None:
            save_member(directory, record, trained)

    def restore(self, network, trial_id):
        """Set ``network``'s add-on weights to the cycle-start state at ``trial_id``.

        ``trial_id`` is the first trial of a cycle or the number of trials.
        """
        if self.members_root is None and self.store.directory is not None:
            inside = os.path.join(self.store.directory, TRIALS_DIRECTORY_NAME)
            beside = os.path.join(os.path.dirname(self.store.directory), TRIALS_DIRECTORY_NAME)
            self.members_root = inside if os.path.isdir(inside) else beside
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
        network.set_add_on_weights(self.cycle_start(trial_id))

    def _member_directory(self, trial_id):
        if self.members_root is None:
            return None
        return os.path.join(self.members_root, str(trial_id))

    def _member(self, trial_id):
        """``(record, trained weights)`` of a trial, from memory or its directory."""
        if trial_id in self.members:
            return self.members[trial_id]
        directory = self._member_directory(trial_id)
        member = None if directory is None else load_member(directory)
        if member is None:
            where = "memory (no trial directory)" if directory is None else (
                member_record_path(directory)
            )
            raise RuntimeError(
                f"Cannot compute the cycle-start add-on weights: the result of trial {trial_id} "
                f"of the previous cycle is missing in {where}. With shared_weights='per_cycle' "
                "every trial of a cycle must be evaluated before the next cycle, with trial "
                "directories that every worker sees (a SearchRunner with a `directory` does "
                "this)."
            )
        self.members[trial_id] = member
        return member

    def _load_cycle_start(self, first):
        if first in self.cycle_starts:
            return self.cycle_starts[first]
        weights = self.store.load_snapshot(first)
        if weights is not None:
            self._remember_cycle_start(first, weights)
        return weights

    def _remember_cycle_start(self, first, weights):
        self.cycle_starts[first] = weights
        latest = sorted(key for key in self.cycle_starts if key != 0)[-2:]
        self.cycle_starts = {
            key: value for key, value in self.cycle_starts.items() if key == 0 or key in latest
        }
        keep_from = latest[0] if len(latest) == 2 else 0
        self.members = {key: value for key, value in self.members.items() if key >= keep_from}

    def cycle_start(self, first):
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
            self.store.save_snapshot(start, weights)
            self.store.delete_before(previous, overlays=False)
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
