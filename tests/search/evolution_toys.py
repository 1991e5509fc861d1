"""A toy location search shared by the tests of EvolutionarySearch.

The evaluators are module-level functions so that process pools can pickle them.
"""

import json
import os
import time

import numpy as np

from tfemergent import search

# A genome of the paper's space (3 segments of 4 layers, 3x3 then 5x5 genes).
TARGET = [-1, 1, -1, 3, 0, -1, 2, -1, -1, 0, -1, 1] + [0, -1, 2, -1, -1, 1, -1, -1, -1, -1, 0, 3]


def num_matches(params, target=TARGET):
    """The number of genes equal to the target's."""
    return sum(int(value == goal) for value, goal in zip(params, target))


def evaluate_matches(trial):
    return {"fitness": num_matches(trial.params)}


def evaluate_location(trial, sleep=0.0):
    """Matches plus small noise drawn from ``trial.seed``; keeps state in the trial directories.

    Like a survivor that continues from its saved weights, a trial with a parent
    reads the parent's ``state.json`` (which must exist); every trial writes its
    own with the process id.
    """
    if sleep:
        time.sleep(sleep)
    noise = float(np.random.default_rng(trial.seed).normal(scale=0.01))
    result = {"fitness": num_matches(trial.params) + noise, "matches": num_matches(trial.params)}
    if trial.directory is not None:
        if trial.parent is not None:
            with open(os.path.join(trial.parent_directory, "state.json")) as file:
                result["parent_in_state"] = json.load(file)["trial_id"]
        with open(os.path.join(trial.directory, "state.json"), "w") as file:
            json.dump({"trial_id": trial.trial_id, "pid": os.getpid()}, file)
    return result


def make_evolutionary_search(num_cycles=4, seed=3):
    """The paper's location search (K=20, best 4 -> 5 children, 5 fresh), a few cycles."""
    return search.EvolutionarySearch(search.LocationSpace(), num_cycles=num_cycles, seed=seed)


def comparable(history):
    """A history without the run-specific directories."""
    return [
        (trial.trial_id, trial.params, trial.parent, trial.seed, trial.info, result)
        for trial, result in history
    ]


def evaluate_location_diverging(trial):
    """`evaluate_location`, but the candidates whose first gene is 0 "diverge" (NaN fitness)."""
    result = evaluate_location(trial)
    if trial.params[0] == 0:
        result["fitness"] = float("nan")
    return result
