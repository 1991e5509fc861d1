"""`SequentialSharing`: every trial continues from the add-on weights of the trial before."""

from tfemergent.models.nhn.trial_weight_store import TrialWeightStore


class SequentialSharing:
    """The weight-sharing policy ``shared_weights="sequential"`` of `LocationEvaluator`.

    The state a trial starts from is the state left by the trial before it
    (in trial order). The state is checkpointed so that a killed search
    resumes to the same evaluations: at the start of every cycle (member 0) a
    snapshot of every add-on weight, after every trial an overlay with the
    weights of the add-ons it trained; the state before trial ``i`` is the
    latest snapshot before ``i`` with the overlays from it to ``i - 1``
    applied. Writing a snapshot forgets (and deletes) the older snapshots and
    overlays. Kept in memory and, when ``store`` has a directory, on disk.

    Args:
        initial: dict of the add-on weights before trial 0.
        store: the `TrialWeightStore` of the files.

    Example:

    >>> import numpy as np
    >>> from tfemergent.models.nhn.sequential_sharing import SequentialSharing
    >>> from tfemergent.models.nhn.sequential_sharing import TrialWeightStore
    >>> sharing = SequentialSharing({"a": np.zeros(1)}, TrialWeightStore())
    >>> sharing.finish({"trial_id": 0, "cycle": 0, "member": 0, "fitness": 0.5},
    ...                {"a": np.ones(1)})
    >>> sharing.state_before(1)["a"].tolist(), sharing.position
    ([1.0], 1)
    """

    requires_sequential = True

    def __init__(self, initial, store):
        self.store = store
        self.snapshots = {0: initial}
        self.overlays = {}
        self.position = 0  # the network's add-on weights are the state before this trial

    def _snapshot(self, trial_id):
        if trial_id in self.snapshots:
            return self.snapshots[trial_id]
        return self.store.load_snapshot(trial_id)

    def _overlay(self, trial_id):
        if trial_id in self.overlays:
            return self.overlays[trial_id]
        return self.store.load_overlay(trial_id)

    def state_before(self, trial_id):
        """The add-on weights before ``trial_id``: a snapshot and the overlays after it."""
        candidates = [
            key for key in set(self.snapshots) | self.store.snapshot_ids() if key <= trial_id
        ]
        if not candidates:
            raise RuntimeError(
                f"Cannot restore the shared add-on weights before trial {trial_id}: it belongs "
                "to a cycle before the latest snapshot, whose earlier states are deleted. "
                "Only trials of the current cycle can be evaluated again."
            )
        start = max(candidates)
        weights = dict(self._snapshot(start))
        for previous in range(start, trial_id):
            overlay = self._overlay(previous)
            if overlay is None:
                where = self.store.directory or "memory (no directory)"
                raise RuntimeError(
                    f"Cannot restore the shared add-on weights before trial {trial_id}: the "
                    f"weights after trial {previous} are missing in {where}. Trials must be "
                    "evaluated in order, resuming from the checkpoint directory of the same "
                    "search."
                )
            weights.update(overlay)
        return weights

    def restore(self, network, trial_id):
        """Set ``network``'s add-on weights to the state before ``trial_id``."""
        if self.position != trial_id:
            network.set_add_on_weights(self.state_before(trial_id))
            self.position = trial_id

    def start(self, network, trial, member):
        """Prepare ``network`` for ``trial`` (member ``member`` of its cycle)."""
        self.restore(network, trial.trial_id)
        if member == 0:
            self._save_snapshot(trial.trial_id, network.add_on_weights())

    def _save_snapshot(self, trial_id, weights):
        """Save the state before ``trial_id``; forget what came before it."""
        self.snapshots[trial_id] = weights
        self.store.save_snapshot(trial_id, weights)
        self.snapshots = {key: value for key, value in self.snapshots.items() if key >= trial_id}
        self.overlays = {key: value for key, value in self.overlays.items() if key >= trial_id}
        self.store.delete_before(trial_id)

    def finish(self, record, trained):
        """Record the add-on weights ``trained`` by the trial of ``record``."""
        trial_id = record["trial_id"]
        self.overlays[trial_id] = trained
        self.store.save_overlay(trial_id, trained)
        self.position = trial_id + 1
