"""Overlap and surface metrics of binary masks (Dice, Jaccard, volumes in mL, Hausdorff/HD95, average surface
distance, surface Dice, directed surface distances in mm).

The low-level home shared by segmentation QA, CT lung-mask comparison and :mod:`kicc_analysis.agreement`; it imports
nothing from the analysis layers. Conventions: :mod:`kicc_analysis.metrics.surface` and ``docs/agreement.md``.
"""

from .overlap import as_mask, dice, jaccard, relative_volume_difference, volume_difference_ml, volume_ml
from .surface import (
    SurfaceDistances,
    average_surface_distance,
    compute_surface_distances,
    hausdorff_distance,
    hd95,
    percentile_hausdorff,
    surface_dice,
    surface_distances,
    surface_voxels,
)

__all__ = [
    "SurfaceDistances",
    "as_mask",
    "average_surface_distance",
    "compute_surface_distances",
    "dice",
    "hausdorff_distance",
    "hd95",
    "jaccard",
    "percentile_hausdorff",
    "relative_volume_difference",
    "surface_dice",
    "surface_distances",
    "surface_voxels",
    "volume_difference_ml",
    "volume_ml",
]
