"""Opacity segmentation and per-region quantification: the public face of the split modules.

:mod:`~kicc_analysis.quantification.voxelwise` (HU bins, vessels), :mod:`~kicc_analysis.quantification.regions`
(lesion regions of teaching slices, :class:`~kicc_analysis.quantification.regions.RegionParameters`),
:mod:`~kicc_analysis.quantification.zones` (zones, core / periphery) and
:mod:`~kicc_analysis.quantification.metrics` (:func:`quantify`); everything is re-exported here.

Conventions
-----------
* Regions: ``both``, ``right``, ``left`` and six zones ``right_upper`` ... ``left_lower`` = thirds of each lung's
  cranio-caudal extent (mm, from its lowest to its highest labelled slice). Zones need >= 3 slices per lung; on
  thinner stacks only ``both``, ``right`` and ``left`` are reported.
* Percentages are of the region's lung volume. ``opacity_pct = ggo_pct + consolidation_pct``.
* ``severity_score`` (0-5) of a region from its ``opacity_pct``: 0 none, 1 < 5 %, 2 5-25 %, 3 25-50 %, 4 50-75 %,
  5 > 75 % (the usual CT severity score of Pan et al. 2020 / Chung et al. 2020 applied per zone).
  ``severity_total`` (0-30) = sum of the six zone scores (same value on every row of one series; NaN without
  zones).
* Density statistics use every voxel of the region (including vessels): ``mean_hu``, ``hu_p10`` ... ``hu_p90``,
  ``skewness`` and ``kurtosis`` (excess, Fisher; scipy.stats conventions, bias-corrected = False).
"""

from __future__ import annotations

from ..scores import SEVERITY_EDGES_PCT, severity_score  # noqa: F401 - the 0-5 cut-offs live in kicc_analysis.scores
from .metrics import HU_HIGH, HU_LOW, PERCENTILES, _histogram_stats, quantify  # noqa: F401
from .regions import RegionParameters, segment_opacity_regions  # noqa: F401
from .voxelwise import (  # noqa: F401
    CONSOLIDATION,
    GGO,
    VOXELWISE_VERSION,
    _arrays,
    _bounding_box,
    _opacity_array,
    segment_opacities,
)
from .zones import N_ZONE_IDS, PERIPHERY_FRACTION, ZONE_NAMES, _filled_hull, periphery_mask, zone_masks  # noqa: F401

ALGORITHM_VERSION = "quant-1.5"  # history in CHANGELOG.md
