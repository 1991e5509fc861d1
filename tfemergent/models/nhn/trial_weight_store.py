"""`TrialWeightStore`: the add-on weight files of a location search, written atomically."""

import json
import os
import re
import threading

import numpy as np

FINGERPRINT_NAME = "fingerprint.json"
MEMBER_WEIGHTS_NAME = "add_ons.npz"
MEMBER_RECORD_NAME = "add_ons.json"
_SNAPSHOT = "before_trial_{}.npz"
_OVERLAY = "after_trial_{}.npz"
_SNAPSHOT_PATTERN = re.compile(r"^before_trial_(\d+)\.npz$")
_OVERLAY_PATTERN = re.compile(r"^after_trial_(\d+)\.npz$")


def _temporary_path(path, suffix):
    # Unique per process and thread: several workers may write the same file at once.
    return f"{path}.{os.getpid()}-{threading.get_ident()}.tmp{suffix}"


def save_npz(path, weights):
    """Write the dict of arrays ``weights`` to ``path`` atomically."""
    temporary = _temporary_path(path, ".npz")
    np.savez(temporary, **weights)
    os.replace(temporary, path)


def save_json(path, value):
    """Write ``value`` as JSON to ``path`` atomically."""
    temporary = _temporary_path(path, ".json")
    with open(temporary, "w") as file:
        json.dump(value, file, indent=1)
    os.replace(temporary, path)


def load_npz(path):
    """The dict of arrays saved in ``path``."""
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def save_member(directory, record, weights):
    """Save a trial's trained add-on weights and its record into ``directory``.

    The record is written last: its presence means the weights are complete.
    """
    os.makedirs(directory, exist_ok=True)
    save_npz(os.path.join(directory, MEMBER_WEIGHTS_NAME), weights)
    save_json(os.path.join(directory, MEMBER_RECORD_NAME), record)


def load_member(directory):
    """``(record, weights)`` saved by `save_member` in ``directory``, or None."""
    path = os.path.join(directory, MEMBER_RECORD_NAME)
    if not os.path.exists(path):
        return None
    with open(path) as file:
        record = json.load(file)
    return record, load_npz(os.path.join(directory, MEMBER_WEIGHTS_NAME))


def member_record_path(directory):
    """Where `save_member` writes the record of a trial directory."""
    return os.path.join(directory, MEMBER_RECORD_NAME)


class TrialWeightStore:
    """The shared add-on weights of a search on disk: snapshots, overlays, a fingerprint.

    A *snapshot* ``before_trial_<id>.npz`` holds every add-on weight before a
    trial; an *overlay* ``after_trial_<id>.npz`` the weights of the add-ons a
    trial trained. Files are written atomically (a temporary file and
    ``os.replace``), so several workers may share the directory.
    ``fingerprint.json`` identifies the search the files belong to. Without a
    directory (``directory=None``) every method is a no-op and every load
    returns None.

    Args:
        directory: None or the path of the files (created when opened).

    Example:

    >>> import tempfile
    >>> from tfemergent.models.nhn.trial_weight_store import TrialWeightStore
    >>> import numpy as np
    >>> store = TrialWeightStore()
    >>> store.open(tempfile.mkdtemp(), {"search": 1})
    >>> store.save_snapshot(4, {"a": np.ones(2)})
    >>> store.snapshot_ids(), store.load_snapshot(4)["a"].tolist(), store.load_overlay(4)
    ({4}, [1.0, 1.0], None)
    """

    def __init__(self, directory=None):
        self.directory = None if directory is None else os.fspath(directory)
        self._checked = set()

    def open(self, directory, fingerprint):
        """Use ``directory`` (None: no files); refuse one written for another fingerprint."""
        self.directory = directory
        if directory is None or directory in self._checked:
            return
        os.makedirs(directory, exist_ok=True)
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
            save_json(path, fingerprint)
        self._checked.add(directory)

    def _ids(self, pattern):
        if self.directory is None or not os.path.isdir(self.directory):
            return set()
        matches = (pattern.match(name) for name in os.listdir(self.directory))
        return {int(match.group(1)) for match in matches if match}

    def _load(self, name):
        if self.directory is None:
            return None
        try:
            return load_npz(os.path.join(self.directory, name))
        except FileNotFoundError:
            return None

    def _save(self, name, weights):
        if self.directory is not None:
            save_npz(os.path.join(self.directory, name), weights)

    def snapshot_ids(self):
        """The trial ids of the snapshots on disk."""
        return self._ids(_SNAPSHOT_PATTERN)

    def load_snapshot(self, trial_id):
        """The snapshot before ``trial_id``, or None."""
        return self._load(_SNAPSHOT.format(trial_id))

    def load_overlay(self, trial_id):
        """The overlay of ``trial_id``, or None."""
        return self._load(_OVERLAY.format(trial_id))

    def save_snapshot(self, trial_id, weights):
        self._save(_SNAPSHOT.format(trial_id), weights)

    def save_overlay(self, trial_id, weights):
        self._save(_OVERLAY.format(trial_id), weights)

    def delete_before(self, trial_id, overlays=True):
        """Delete the snapshots (and the overlays) of the trials before ``trial_id``."""
        kinds = [(_SNAPSHOT_PATTERN, _SNAPSHOT)]
        if overlays:
            kinds.append((_OVERLAY_PATTERN, _OVERLAY))
        for pattern, name in kinds:
            for old in self._ids(pattern):
                if old < trial_id:
                    try:
                        os.remove(os.path.join(self.directory, name.format(old)))
                    except FileNotFoundError:  # removed by another worker
                        pass
