"""Registry of the experiments that ``tfemergent run <experiment>`` runs.

Each experiment lives with its system in ``tfemergent.models.<system>.experiment`` and
provides ``NAME``, ``DESCRIPTION``, ``OPTIONS`` (which of ``--data-dir``, ``--logdir``,
``--export``, ``--plots`` it uses), ``add_arguments`` (its own flags, seeds as
``--seeds 0,1,2``), ``config_from_args``, ``run(config)`` and optionally ``FLAGS``
(``{config field: flag}`` where the names differ, for error messages). What the runners
share is in ``tfemergent.models._runner_tools``. The modules are also reachable here under their historical names
(``tfemergent.experiments.hierarchy`` and so on).
"""

from tfemergent.models.hierarchy import experiment as hierarchy
from tfemergent.models.nhn import experiment as nhn
from tfemergent.models.reset import experiment as reset
from tfemergent.models.spatial import experiment as spatial_split
from tfemergent.models.urn import experiment as urn_spheres

EXPERIMENTS = {module.NAME: module for module in (spatial_split, urn_spheres, hierarchy, reset, nhn)}

__all__ = ["EXPERIMENTS"]
