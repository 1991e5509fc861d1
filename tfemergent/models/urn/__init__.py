"""Unstructured recursive network (Golkar): `extract_urn_network` and `tfemergent run urn-spheres`.

The layer is `tfemergent.layers.RecursiveURNLayer`; the structure analysis is
`tfemergent.analysis.urn_structure`.
"""

from tfemergent.models.urn.emergent_network import URNExtraction, extract_urn_network

__all__ = ["URNExtraction", "extract_urn_network"]
