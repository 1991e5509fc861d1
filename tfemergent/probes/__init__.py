"""Probes: fit a simple readout on frozen features and report how well it does."""

from tfemergent.probes.logistic_regression_probe import LogisticRegressionProbe

__all__ = ["LogisticRegressionProbe"]
