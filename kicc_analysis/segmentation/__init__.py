"""Lung segmentation (weight-free, 2-D and 3-D): :func:`segment_lungs` -> :class:`LungSegmentation`; masks from
other tools (TotalSegmentator, lungmask, DICOM SEG, label maps) onto a CT: :func:`load_lung_mask`; two masks compared: :func:`compare_lung_masks`."""

from .compare import compare_lung_masks
from .external import ExternalLungMask, load_lung_mask, write_lung_mask
from .lungs import ALGORITHM_VERSION, LEFT, RIGHT, LungSegmentation, segment_lungs

__all__ = [
    "ALGORITHM_VERSION",
    "LEFT",
    "RIGHT",
    "ExternalLungMask",
    "LungSegmentation",
    "compare_lung_masks",
    "load_lung_mask",
    "segment_lungs",
    "write_lung_mask",
]
