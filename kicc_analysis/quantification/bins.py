"""HU bin presets: the ONE table of density classes used by opacity segmentation and quantification.

Each preset maps a class name to a half-open HU interval ``[low, high)``. Classes a preset does not define are
empty. ``ggo`` and ``consolidation`` are the two opacity classes that :func:`segment_opacities` labels 1 and 2;
voxels in ``excluded`` (vessels, contrast, bone) count in the lung volume but in no density class.

Presets
-------
``default``
    KICC convention: emphysema < -950, aerated -950...-700, GGO -700...-300, consolidation -300...+50,
    above +50 excluded (vessel / contrast). GGO and consolidation limits follow the common quantitative-CT
    definitions of ground glass (-700...-300 HU) and consolidation (> -300 HU) used in COVID-19 studies.
``lung_ct_analyzer``
    The Lung CT Analyzer (3D Slicer extension, Bonaldi/Zwick) default thresholds: emphysematous -1050...-950,
    inflated -950...-750, infiltrated -750...-400 (reported as GGO), collapsed -400...0 (reported as
    consolidation), vessels 0...+3000 (excluded).
``po_pho``
    Percentage of opacity / percentage of high opacity (Chaganti et al., Radiol Artif Intell 2020): opacity is
    -700 HU and above, high opacity -200 HU and above; reported as GGO = -700...-200 and consolidation (high
    opacity) = -200...+100, so that PO = GGO % + consolidation % and PHO = consolidation %.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..errors import AnalysisError

NEG_INF = -1.0e9
POS_INF = 1.0e9

HU_BIN_PRESETS: dict[str, dict[str, tuple[float, float]]] = {
    "default": {
        "emphysema": (NEG_INF, -950.0),
        "aerated": (-950.0, -700.0),
        "ggo": (-700.0, -300.0),
        "consolidation": (-300.0, 50.0),
        "excluded": (50.0, POS_INF),
    },
    "lung_ct_analyzer": {
        "emphysema": (NEG_INF, -950.0),
        "aerated": (-950.0, -750.0),
        "ggo": (-750.0, -400.0),
        "consolidation": (-400.0, 0.0),
        "excluded": (0.0, POS_INF),
    },
    "po_pho": {
        "aerated": (NEG_INF, -700.0),
        "ggo": (-700.0, -200.0),
        "consolidation": (-200.0, 100.0),
        "excluded": (100.0, POS_INF),
    },
}

REQUIRED_CLASSES = ("ggo", "consolidation")


def get_bins(bins: str | Mapping[str, tuple[float, float]] = "default") -> dict[str, tuple[float, float]]:
    """Return a bin table by preset name, or validate a custom ``{class: (low, high)}`` mapping (HU).

    Raises
    ------
    AnalysisError
        Unknown preset, missing ``ggo``/``consolidation`` class, or an interval with ``low >= high``.
    """
    if isinstance(bins, str):
        if bins not in HU_BIN_PRESETS:
            raise AnalysisError(f"unknown HU bin preset {bins!r}; expected one of {sorted(HU_BIN_PRESETS)}")
        return dict(HU_BIN_PRESETS[bins])
    table = {str(k): (float(v[0]), float(v[1])) for k, v in bins.items()}
    missing = [c for c in REQUIRED_CLASSES if c not in table]
    if missing:
        raise AnalysisError(f"HU bins must define {REQUIRED_CLASSES}; missing {missing} in {sorted(table)}")
    bad = [k for k, (lo, hi) in table.items() if not lo < hi]
    if bad:
        raise AnalysisError(f"HU bin intervals must have low < high; invalid for {bad}")
    return table


def bins_frame() -> pd.DataFrame:
    """All presets as a tidy table (preset, class, low_hu, high_hu) for documentation and notebooks."""
    rows = [
        {"preset": p, "class": c, "low_hu": lo, "high_hu": hi}
        for p, table in HU_BIN_PRESETS.items()
        for c, (lo, hi) in table.items()
    ]
    return pd.DataFrame(rows)
