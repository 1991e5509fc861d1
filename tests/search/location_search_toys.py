"""A tiny location-direction search (LDS) for the parallel tests: an 8 x 8 super-network,
random images, 3 cycles of 4 members (the settings of tests/models/test_location_evaluator)."""

import numpy as np

from tfemergent import search
from tfemergent.models import AddOnSuperNetwork, LocationEvaluator, SegmentCNN

_RNG = np.random.default_rng(0)
TRAIN_IMAGES = _RNG.normal(size=(96, 8, 8, 1)).astype("float32")
TRAIN_LABELS = (TRAIN_IMAGES[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64") + 2 * (
    TRAIN_IMAGES[:, :, :4].mean(axis=(1, 2, 3)) > 0
)
VAL_IMAGES = _RNG.normal(size=(40, 8, 8, 1)).astype("float32")
VAL_LABELS = (VAL_IMAGES[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64") + 2 * (
    VAL_IMAGES[:, :, :4].mean(axis=(1, 2, 3)) > 0
)
SETTINGS = {"train_batches": 2, "batch_size": 8, "learning_rate": 0.1, "num_cycles": 3, "seed": 4}


def make_network():
    base = SegmentCNN((8, 8, 1), 4, segments=[[4, 6], [6]], seed=1).build()
    return AddOnSuperNetwork.from_model(base, seed=0)


def make_evaluator(network, train_images=TRAIN_IMAGES, shared_weights="per_cycle", **kwargs):
    return LocationEvaluator(
        network, (train_images, TRAIN_LABELS), (VAL_IMAGES, VAL_LABELS),
        shared_weights=shared_weights, **SETTINGS, **kwargs,
    )


def make_strategy(network):
    # Mostly add-ons (none_probability 0.3) so that most trials train something.
    return search.EvolutionarySearch(
        network.location_space(none_probability=0.3), num_cycles=3, population_size=4,
        num_parents=2, num_children=1, num_fresh=1, seed=7,
    )
