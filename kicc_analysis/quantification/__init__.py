"""Opacity quantification: HU-bin opacity labels and per-region metrics (volumes, %, density, severity).

``segment_opacities(image, lung_labels)`` -> label image (1 GGO, 2 consolidation);
``quantify(image, lung_labels)`` -> tidy DataFrame, one row per region (``lobe_labels=`` adds one row per lobe with the
lobar CT severity score, :mod:`kicc_analysis.quantification.lobes`); ``display_to_hu`` for 8-bit teaching
images; HU bin presets in :mod:`kicc_analysis.quantification.bins`; cohort batch runs in
:mod:`kicc_analysis.quantification.batch`.
"""

from ..imaging import display_to_hu, estimate_display_window
from ..scores import severity_scores
from .bins import HU_BIN_PRESETS, bins_frame, get_bins
from .lobes import quantify_lobes
from .opacity import (
    ALGORITHM_VERSION,
    CONSOLIDATION,
    GGO,
    periphery_mask,
    quantify,
    segment_opacities,
    segment_opacity_regions,
    severity_score,
    zone_masks,
)

__all__ = [
    "ALGORITHM_VERSION",
    "CONSOLIDATION",
    "GGO",
    "HU_BIN_PRESETS",
    "bins_frame",
    "display_to_hu",
    "estimate_display_window",
    "get_bins",
    "periphery_mask",
    "quantify",
    "quantify_lobes",
    "segment_opacities",
    "segment_opacity_regions",
    "severity_score",
    "severity_scores",
    "zone_masks",
]
