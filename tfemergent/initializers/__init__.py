"""Initializers of tfemergent."""

from tfemergent.initializers.smooth_kernel import SmoothKernel

__all__ = ["SmoothKernel"]
