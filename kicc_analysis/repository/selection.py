"""Choice of the CT series to quantify in each CT study.

Rules (documented in ``docs/repository.md``), applied to the series table:

1. Eligible series are CT, single-frame, axial (slice normal within ~37 degrees of the patient z axis, so
   tilted-gantry series stay eligible), not a localizer/scout, with at least ``min_slices`` slices, and
   *complete*: no missing slice (spacing gap), no duplicate slice position, one geometry (size,
   orientation, pixel spacing).
2. Among eligible series: the thinnest reconstruction wins (slice thickness rounded to 0.1 mm); ties go to
   the lung/sharp kernel (lung > sharp > unknown > soft, see :func:`kernel_class`), then ORIGINAL over
   DERIVED images, then the most slices (longest coverage), then the lowest series number.
   ``kernel_first=True`` puts the kernel preference before thickness.
3. Every CT study gets one row, with the chosen ``series_uid`` (or none) and a ``reason`` in words,
   including why each other series lost.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["KERNEL_SCORES", "kernel_class", "select_ct_series", "series_rejection"]

#: Preference score of each kernel class (higher is preferred for lung quantification).
KERNEL_SCORES: dict[str, int] = {"lung": 3, "sharp": 2, "unknown": 1, "soft": 0}

_SIEMENS = re.compile(r"^(?:[BHIQTUJ][a-z]?|[BHIQTUJ])(\d{2})[a-z]?$", re.IGNORECASE)
_CANON = re.compile(r"^FC(\d{1,2})$", re.IGNORECASE)


#: Series-table columns the selection reads (rules, ranking, reasons).
_USED_COLUMNS = (
    "series_uid",
    "study_uid",
    "patient_id",
    "modality",
    "is_localizer",
    "n_frames_max",
    "plane",
    "n_slices",
    "complete",
    "issues",
    "slice_thickness",
    "slice_spacing",
    "kernel",
    "image_type",
    "series_number",
)


def kernel_class(kernel: str | None) -> str:
    """Classify a reconstruction kernel name as ``"lung"``, ``"sharp"``, ``"soft"`` or ``"unknown"``.

    Heuristic over vendor naming (hand-written because no library maps kernel names):

    * GE: LUNG -> lung; BONE, BONEPLUS, EDGE, SHARP, DETAIL -> sharp; STANDARD, SOFT, SMOOTH -> soft.
    * Siemens: ``Bl..`` -> lung; ``B/Br/Hr/I/Q..`` with sharpness number >= 50 -> sharp, < 50 -> soft
      (e.g. B70f, I70f, Br64 sharp; B30f, Br38f soft).
    * Canon/Toshiba: FC50-FC59 and FC80-FC89 -> lung; FC30-FC49 -> sharp; FC01-FC29 -> soft.
    * Philips: L, YA-YC -> lung; D, E, YD-YE -> sharp; A, B, C -> soft.

    Only the first value of a multi-valued kernel (``"Br38f\\3"``) is used.
    """
    if not kernel or (isinstance(kernel, float) and math.isnan(kernel)):
        return "unknown"
    return _kernel_class(str(kernel))


@functools.lru_cache(maxsize=4096)
def _kernel_class(kernel: str) -> str:
    """:func:`kernel_class` of a non-empty kernel text (cached: a repository has few distinct kernel names)."""
    k = kernel.split("\\")[0].strip().upper()
    if not k:
        return "unknown"
    if "LUNG" in k or "PULM" in k:
        return "lung"
    if any(word in k for word in ("BONE", "EDGE", "SHARP", "DETAIL", "HIGH")):
        return "sharp"
    if any(word in k for word in ("STANDARD", "SOFT", "SMOOTH", "BODY", "MEDIASTIN")):
        return "soft"
    if k in ("L", "YA", "YB", "YC"):
        return "lung"
    if k in ("D", "E", "YD", "YE"):
        return "sharp"
    if k in ("A", "B", "C"):
        return "soft"
    m = _CANON.match(k)
    if m:
        n = int(m.group(1))
        return "lung" if 50 <= n <= 59 or 80 <= n <= 89 else "sharp" if 30 <= n <= 49 else "soft"
    if k.startswith("BL") and k[2:4].isdigit():
        return "lung"
    m = _SIEMENS.match(k)
    if m:
        return "sharp" if int(m.group(1)) >= 50 else "soft"
    return "unknown"


def series_rejection(row: Mapping[str, Any], min_slices: int) -> str | None:
    """Why a series cannot be quantified as a chest CT volume, or None when it is eligible."""
    if row.get("modality") != "CT":
        return f"modality {row.get('modality')}, not CT"
    if row.get("is_localizer"):
        return "localizer/scout image"
    if (row.get("n_frames_max") or 1) > 1:
        return "multi-frame (enhanced) CT: geometry not checked by the scanner"
    if row.get("plane") != "axial":
        return f"not axial (plane {row.get('plane')})"
    n = int(row.get("n_slices") or 0)
    if n < min_slices:
        return f"too few slices ({n} < {min_slices})"
    if not bool(row.get("complete")):
        return f"incomplete: {row.get('issues')}"
    return None


def _key(row: Mapping[str, Any], kernel_first: bool) -> tuple:
    thick = row.get("slice_thickness")
    if thick is None or (isinstance(thick, float) and math.isnan(thick)):
        spacing = row.get("slice_spacing")
        thick = spacing if spacing is not None and not pd.isna(spacing) else math.inf
    thick = round(float(thick), 1)
    kscore = -KERNEL_SCORES[kernel_class(row.get("kernel"))]
    derived = 0 if str(row.get("image_type") or "").upper().startswith("ORIGINAL") else 1
    number = row.get("series_number")
    number = math.inf if number is None or pd.isna(number) else float(number)
    first = (kscore, thick) if kernel_first else (thick, kscore)
    return (*first, derived, -int(row.get("n_slices") or 0), number, str(row.get("series_uid")))


def _describe(row: Mapping[str, Any]) -> str:
    thick = row.get("slice_thickness")
    thick_txt = "unknown thickness" if thick is None or pd.isna(thick) else f"{float(thick):g} mm"
    kernel = row.get("kernel") or "not recorded"
    return (
        f"series {_short(row)} ({int(row.get('n_slices') or 0)} slices, {thick_txt}, "
        f"kernel {kernel} [{kernel_class(row.get('kernel'))}])"
    )


def _short(row: Mapping[str, Any]) -> str:
    number = row.get("series_number")
    uid = str(row.get("series_uid"))
    tail = uid[-10:]
    return f"#{int(number)} ...{tail}" if number is not None and not pd.isna(number) else f"...{tail}"


def select_ct_series(series: pd.DataFrame, *, min_slices: int = 10, kernel_first: bool = False) -> pd.DataFrame:
    """Choose, per study containing CT, the series to quantify.

    Parameters
    ----------
    series
        Series table of a :class:`~kicc_analysis.repository.RepositoryScan`.
    min_slices
        Fewest distinct slice positions for a series to count as a volume (default 10).
    kernel_first
        Rank the kernel preference before slice thickness (default: thinnest first).

    Returns
    -------
    pandas.DataFrame
        One row per study with CT: ``study_uid, patient_id, series_uid`` (None when nothing is eligible),
        ``n_ct_series, n_eligible, slice_thickness`` (mm), ``kernel, kernel_class, n_slices, reason``.
    """
    cols = [
        "study_uid",
        "patient_id",
        "series_uid",
        "n_ct_series",
        "n_eligible",
        "slice_thickness",
        "kernel",
        "kernel_class",
        "n_slices",
        "reason",
    ]
    if series.empty:
        return pd.DataFrame(columns=cols)
    used = [c for c in _USED_COLUMNS if c in series.columns]  # fewer columns: a faster conversion to records
    ct = series.loc[series["modality"] == "CT", used]
    by_study: dict[str, list[dict[str, Any]]] = {}
    for rec in ct.to_dict("records"):  # one conversion: per-group DataFrame access is slow
        by_study.setdefault(rec["study_uid"], []).append(rec)
    rows = []
    for study_uid in sorted(by_study):
        group = by_study[study_uid]
        rejected: list[str] = []
        eligible = []
        for row in group:
            why = series_rejection(row, min_slices)
            if why is None:
                eligible.append(row)
            else:
                rejected.append(f"{_short(row)}: {why}")
        patient = group[0]["patient_id"]
        if not eligible:
            rows.append(
                {
                    "study_uid": study_uid,
                    "patient_id": patient,
                    "series_uid": None,
                    "n_ct_series": len(group),
                    "n_eligible": 0,
                    "slice_thickness": np.nan,
                    "kernel": None,
                    "kernel_class": None,
                    "n_slices": 0,
                    "reason": "no eligible CT series: " + "; ".join(rejected),
                }
            )
            continue
        ranked = sorted(eligible, key=lambda r: _key(r, kernel_first))
        best = ranked[0]
        order = "kernel, then thickness" if kernel_first else "thinnest, then lung/sharp kernel"
        reason = f"chose {_describe(best)}: axial, complete; ranked by {order}"
        if len(ranked) > 1:
            reason += "; beat " + "; ".join(_describe(r) for r in ranked[1:])
        if rejected:
            reason += "; not eligible: " + "; ".join(rejected)
        rows.append(
            {
                "study_uid": study_uid,
                "patient_id": patient,
                "series_uid": best["series_uid"],
                "n_ct_series": len(group),
                "n_eligible": len(ranked),
                "slice_thickness": best.get("slice_thickness"),
                "kernel": best.get("kernel"),
                "kernel_class": kernel_class(best.get("kernel")),
                "n_slices": int(best.get("n_slices") or 0),
                "reason": reason,
            }
        )
    return pd.DataFrame(rows, columns=cols)
