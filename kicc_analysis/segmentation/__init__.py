"""Lung segmentation (weight-free, 2-D and 3-D): :func:`segment_lungs` -> :class:`LungSegmentation`."""

from .lungs import ALGORITHM_VERSION, LEFT, RIGHT, LungSegmentation, segment_lungs

__all__ = ["ALGORITHM_VERSION", "LEFT", "RIGHT", "LungSegmentation", "segment_lungs"]
