"""Ask/tell search strategies and a resumable runner.

A `SearchSpace` (e.g. `ReceptiveFieldSpace`, `LocationSpace`) says what the
candidates are; a `SearchStrategy` (`HillClimbing`, `RandomSearch`,
`EvolutionarySearch`) proposes `Trial`s with ``ask()`` and learns from their
results with ``tell()``; a `SearchRunner` runs that loop with an evaluation
function of the caller, checkpoints after every evaluation, resumes a killed
search to the same result, and can evaluate a batch on any executor, e.g. a
`RayExecutor` that runs the trials as Ray tasks on a cluster.

Pure numpy and the standard library: nothing here imports TensorFlow or Keras,
so evaluation workers and other systems can use it on its own (`RayExecutor`
imports Ray when it is created: ``pip install tfemergent[ray]``).
"""

from tfemergent.search.evolutionary_search import EvolutionarySearch
from tfemergent.search.hill_climbing import HillClimbing
from tfemergent.search.location_space import LocationSpace
from tfemergent.search.random_search import RandomSearch
from tfemergent.search.ray_executor import RayExecutor
from tfemergent.search.receptive_field_space import ReceptiveFieldSpace
from tfemergent.search.search_runner import SearchResult
from tfemergent.search.search_runner import SearchRunner
from tfemergent.search.search_space import SearchSpace
from tfemergent.search.search_space import deserialize
from tfemergent.search.search_space import register_search_class
from tfemergent.search.search_space import serialize
from tfemergent.search.search_strategy import SearchStrategy
from tfemergent.search.trial import Trial

__all__ = [
    "EvolutionarySearch",
    "HillClimbing",
    "LocationSpace",
    "RandomSearch",
    "RayExecutor",
    "ReceptiveFieldSpace",
    "SearchResult",
    "SearchRunner",
    "SearchSpace",
    "SearchStrategy",
    "Trial",
    "deserialize",
    "register_search_class",
    "serialize",
]
