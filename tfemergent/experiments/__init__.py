"""Registry of the experiments that ``tfemergent run <experiment>`` runs.

Each experiment module provides ``NAME``, ``DESCRIPTION``, ``add_arguments``,
``config_from_args`` and ``run(config)``.
"""

from tfemergent.experiments import hierarchy, nhn, reset, spatial_split, urn_spheres

EXPERIMENTS = {module.NAME: module for module in (spatial_split, urn_spheres, hierarchy, reset, nhn)}

__all__ = ["EXPERIMENTS"]
