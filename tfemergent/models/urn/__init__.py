"""Unstructured recursive network (Golkar): `tfemergent run urn-spheres`.

The layer is `tfemergent.layers.RecursiveURNLayer`; the structure analysis is
`tfemergent.analysis.urn_structure`.
"""
