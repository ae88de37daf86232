"""Lung segmentation (weight-free, 2-D and 3-D): :func:`segment_lungs` -> :class:`LungSegmentation`, settings in
:class:`LungParameters`, step-6 rules in :func:`dense_rules`; masks from
other tools (TotalSegmentator, lungmask, DICOM SEG, label maps) onto a CT: :func:`load_lung_mask`; two masks compared: :func:`compare_lung_masks`."""

from .compare import compare_lung_masks
from .external import ExternalLungMask, load_lung_mask, write_lung_mask
from .lungs import ALGORITHM_VERSION, LEFT, RIGHT, DenseContext, DenseRule, LungSegmentation, dense_rules, segment_lungs
from .parameters import (
    BOUNDARY_RULE_NAMES,
    CAVITY_RULE_NAMES,
    DEFAULT_PARAMETERS,
    RULE_NAMES,
    SLICE_RULE_NAMES,
    LungParameters,
)

__all__ = [
    "ALGORITHM_VERSION",
    "BOUNDARY_RULE_NAMES",
    "CAVITY_RULE_NAMES",
    "DEFAULT_PARAMETERS",
    "RULE_NAMES",
    "SLICE_RULE_NAMES",
    "DenseContext",
    "DenseRule",
    "LungParameters",
    "dense_rules",
    "LEFT",
    "RIGHT",
    "ExternalLungMask",
    "LungSegmentation",
    "compare_lung_masks",
    "load_lung_mask",
    "segment_lungs",
    "write_lung_mask",
]
