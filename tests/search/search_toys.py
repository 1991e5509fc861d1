"""Toy search spaces and evaluators shared by the tests of tfemergent.search.

The evaluators are module-level functions so that process pools can pickle them.
"""

import json
import os
import time

import numpy as np

from tfemergent import search
from tfemergent.utils.validation import validate_int

TARGET = [5, 2, 7]


@search.register_search_class
class GridSpace(search.SearchSpace):
    """Integer vectors in ``{0, ..., size - 1} ** num_parts``; part ``i`` is coordinate
    ``i`` and a neighbour moves it by +1 or -1 (inwards at the border)."""

    def __init__(self, num_parts=3, size=10):
        self._num_parts = validate_int("num_parts", num_parts, minimum=1)
        self.size = validate_int("size", size, minimum=2)

    @property
    def num_parts(self):
        return self._num_parts

    def sample(self, rng):
        return [int(value) for value in rng.integers(0, self.size, size=self._num_parts)]

    def neighbour(self, candidate, part, rng):
        step = 1 if rng.random() < 0.5 else -1
        value = candidate[part] + step
        if not 0 <= value < self.size:
            value = candidate[part] - step
        candidate[part] = value
        return candidate

    def validate(self, candidate):
        candidate = super().validate(candidate)
        if not (
            isinstance(candidate, list)
            and len(candidate) == self._num_parts
            and all(
                isinstance(value, int) and not isinstance(value, bool) and 0 <= value < self.size
                for value in candidate
            )
        ):
            raise ValueError(
                f"A GridSpace candidate is a list of {self._num_parts} integers in "
                f"[0, {self.size}). Received: candidate={candidate!r}"
            )
        return candidate

    def get_config(self):
        return {"num_parts": self._num_parts, "size": self.size}


def distance_fitness(params, target=TARGET):
    """Per-part fitness: minus the distance of each coordinate to the target."""
    return [-float(abs(value - goal)) for value, goal in zip(params, target)]


def evaluate_distance(trial):
    return {"fitness": distance_fitness(trial.params)}


def evaluate_noisy(trial):
    """Distance fitness plus small noise drawn from ``trial.seed``."""
    noise = np.random.default_rng(trial.seed).normal(scale=0.01, size=len(trial.params))
    fitness = [value + float(delta) for value, delta in zip(distance_fitness(trial.params), noise)]
    return {"fitness": fitness, "total": sum(fitness)}


def evaluate_in_directory(trial, sleep=0.0):
    """Like `evaluate_noisy`, and keeps state in the trial directories.

    Reads the parent's ``state.json`` (which must exist when the trial has a
    parent, as retained weights would), sleeps, writes its own ``state.json``
    with its depth (length of the parent chain) and the process id.
    """
    depth = 0
    if trial.parent is not None:
        with open(os.path.join(trial.parent_directory, "state.json")) as file:
            depth = json.load(file)["depth"] + 1
    if sleep:
        time.sleep(sleep)
    result = evaluate_noisy(trial)
    result["depth"] = depth
    with open(os.path.join(trial.directory, "state.json"), "w") as file:
        json.dump({"trial_id": trial.trial_id, "depth": depth, "pid": os.getpid()}, file)
    return result


def make_hill_climbing(num_steps=8, seed=11):
    return search.HillClimbing(GridSpace(3, 10), num_steps=num_steps, seed=seed)


def comparable(history):
    """A history without the run-specific directories."""
    return [
        (trial.trial_id, trial.params, trial.parent, trial.seed, trial.info, result)
        for trial, result in history
    ]


def evaluate_diverging(trial, diverging_value=3):
    """`evaluate_in_directory` (`evaluate_noisy` without a directory), but a candidate
    whose first coordinate is ``diverging_value`` "diverges": NaN fitness and loss."""
    result = evaluate_in_directory(trial) if trial.directory else evaluate_noisy(trial)
    result["loss"] = -sum(result["fitness"])
    if trial.params[0] == diverging_value:
        nan = float("nan")
        result.update(fitness=[nan] * len(trial.params), loss=nan)
    return result


def evaluate_dying_once(trial, marker_directory, dying_trials=(1, 3), sleep=0.0):
    """`evaluate_in_directory`, but the process evaluating one of ``dying_trials``
    exits at once (``os._exit``, as a killed worker) the first time; a marker file
    in ``marker_directory`` (holding the dead process's id) remembers that."""
    marker = os.path.join(marker_directory, f"died_{trial.trial_id}")
    if trial.trial_id in dying_trials and not os.path.exists(marker):
        with open(marker, "w") as file:
            file.write(str(os.getpid()))
        os._exit(1)
    return evaluate_in_directory(trial, sleep=sleep)


def raise_value_error(marker):
    """Append to the file ``marker`` (to count the calls), then raise ``ValueError``."""
    with open(marker, "a") as file:
        file.write("x")
    raise ValueError("the evaluation is broken")


def assigned_ray_resources():
    """The resources Ray assigned to the task that calls this."""
    import ray

    return ray.get_runtime_context().get_assigned_resources()
