"""How a layer's ``seed`` seeds every random draw of the layer.

One meaning of ``seed`` across tfemergent: a layer built with ``seed=s`` draws the
same initial weights every time it is built, in any process, without global seeding.
Each weight gets its own seed derived from ``(s, index)`` so that two weights of the
same shape are not drawn identically; an initializer that already has an integer
seed keeps it, and deterministic initializers (zeros, constants) are left as they are.
"""

import numpy as np

MAX_SEED = 2**31 - 1


def derive_seed(seed, index):
    """The seed of draw number ``index`` of a layer seeded with ``seed`` (an int).

    >>> from tfemergent.utils.seeding import derive_seed
    >>> derive_seed(1, 0) == derive_seed(1, 0), derive_seed(1, 0) == derive_seed(1, 1)
    (True, False)
    """
    state = np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0]
    return int(state % MAX_SEED)


def seeded_initializer(initializer, seed, index):
    """``initializer`` with the seed `derive_seed(seed, index)`, if it draws randomly.

    Returned unchanged when ``seed`` is None, when the initializer is deterministic
    (its config has no ``seed``) or already has its own integer seed.

    Args:
        initializer: a Keras initializer object (as from `keras.initializers.get`).
        seed: the layer's integer seed, or None.
        index: which of the layer's draws this is (one index per weight).

    >>> import keras
    >>> from tfemergent.utils.seeding import seeded_initializer
    >>> first = seeded_initializer(keras.initializers.GlorotUniform(), 1, 0)
    >>> again = seeded_initializer(keras.initializers.GlorotUniform(), 1, 0)
    >>> bool((first((3, 2)) == again((3, 2))).numpy().all())
    True
    >>> seeded_initializer(keras.initializers.Zeros(), 1, 0).get_config()
    {}
    """
    if seed is None or not hasattr(initializer, "get_config"):
        return initializer
    config = initializer.get_config()
    if "seed" not in config or config["seed"] is not None:
        return initializer
    return type(initializer).from_config({**config, "seed": derive_seed(seed, index)})
