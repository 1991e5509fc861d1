"""Fixtures of the distribution tests."""

import pytest

import multi_worker_training as training


@pytest.fixture(scope="session")
def single_process_run():
    """``run(case, cost_factor=1.0)``: `training.train_case` without a strategy, cached.

    The reference of every distributed run; each case trains once per session.
    """
    cache = {}

    def run(case, cost_factor=1.0):
        key = (case, cost_factor)
        if key not in cache:
            cache[key] = training.train_case(case, cost_factor)
        return cache[key]

    return run
