"""Reset networks (Hannagan): `ResetNetwork` and `tfemergent run reset`."""

from tfemergent.models.reset.reset_network import ResetNetwork

__all__ = ["ResetNetwork"]
