"""`seed` seeds every random draw: derived per-weight seeds, seeded initializers."""

import keras
import numpy as np

from tfemergent.utils.seeding import MAX_SEED, derive_seed, seeded_initializer


def test_derived_seeds_are_fixed_numbers_distinct_per_index():
    # numpy's SeedSequence is stable across versions, so these never change.
    assert [derive_seed(1, 0), derive_seed(1, 1), derive_seed(0, 0)] == [
        1835504127, 1189033389, 821328063,
    ]
    seeds = {derive_seed(7, index) for index in range(100)}
    assert len(seeds) == 100 and all(0 <= seed < MAX_SEED for seed in seeds)


def test_seeded_initializer_gives_a_random_initializer_the_derived_seed():
    glorot = keras.initializers.GlorotUniform()
    seeded = seeded_initializer(glorot, 3, 2)
    assert seeded is not glorot and seeded.seed == derive_seed(3, 2)
    assert glorot.seed is not None and glorot.get_config()["seed"] is None  # not modified
    np.testing.assert_array_equal(
        seeded((4, 3)).numpy(), keras.initializers.GlorotUniform(seed=derive_seed(3, 2))((4, 3))
    )


def test_seeded_initializer_leaves_seeded_deterministic_and_unseeded_cases_alone():
    own = keras.initializers.RandomNormal(seed=11)
    assert seeded_initializer(own, 3, 0) is own  # its own integer seed wins
    zeros = keras.initializers.Zeros()
    assert seeded_initializer(zeros, 3, 0) is zeros  # nothing random to seed
    glorot = keras.initializers.GlorotUniform()
    assert seeded_initializer(glorot, None, 0) is glorot  # seed=None: Keras' seeding

    def function_initializer(shape, dtype=None):
        return np.ones(shape)

    assert seeded_initializer(function_initializer, 3, 0) is function_initializer
