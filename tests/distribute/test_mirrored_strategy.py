"""tfemergent models train under a one-process ``MirroredStrategy`` as without one.

The cases of ``multi_worker_training.CASES`` on two logical CPUs (``mirrored_strategy``
fixture of ``tests/conftest.py``): the quick check of what ``test_multi_worker.py``
checks with two processes. With two replicas in one process the strategy splits each
global batch in two and sums the two replicas' gradients, so a cost counted once per
replica or a loss not divided among the replicas shows here too.
"""

import pytest

import multi_worker_training as training


@pytest.mark.parametrize("case", list(training.CASES))
def test_two_replicas_train_like_one_process(mirrored_strategy, single_process_run, case):
    with mirrored_strategy.scope():
        result = training.train_case(case)
    training.assert_same_training(
        result, single_process_run(case), f"{case}: MirroredStrategy vs no strategy"
    )
