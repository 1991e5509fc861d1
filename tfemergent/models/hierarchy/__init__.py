"""Self-organising hierarchy (Borgohain et al.): the model and `tfemergent run hierarchy`."""

from tfemergent.models.hierarchy.self_organising_hierarchy import SelfOrganisingHierarchy

__all__ = ["SelfOrganisingHierarchy"]
