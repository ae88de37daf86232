"""Per-lobe quantification and the lobar CT severity score (0-5 per lobe, total 0-25).

With lobe labels (1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL; e.g. ``load_lung_mask(...).lobes`` from a TotalSegmentator or
lungmask LTRCLobes mask), :func:`quantify_lobes` reports one row per lobe with the columns of
:func:`~kicc_analysis.quantification.quantify` (``region`` = the lobe name, ``zone`` = ``"lobe"``) and

* ``lobe_score`` (0-5): the CT severity score of Pan et al., Radiology 2020, from the lobe's ``opacity_pct``
  (cut-offs in :mod:`kicc_analysis.scores`); NaN for a lobe absent from the mask;
* ``lobe_score_total`` (0-25): the sum over the five lobes, on every row; NaN unless all five lobes are present.

These are not the six-zone scores of ``quantify`` (``severity_score`` per zone, ``severity_total`` 0-30): zones are
thirds of each lung's height, lobes are anatomy. ``quantify(image, lungs, lobe_labels=lobes)`` appends these rows to
its table, computed with the same opacity labels.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..errors import AnalysisError
from ..scores import severity_scores
from .bins import get_bins

__all__ = ["LOBES", "LOBE_SIDES", "quantify_lobes"]

LOBES: tuple[str, ...] = ("RUL", "RML", "RLL", "LUL", "LLL")  # codes 1..5 of the lobe label image
LOBE_SIDES: dict[str, str] = {"RUL": "right", "RML": "right", "RLL": "right", "LUL": "left", "LLL": "left"}


def quantify_lobes(
    image: sitk.Image,
    lobe_labels: sitk.Image,
    *,
    bins: str | Mapping[str, tuple[float, float]] = "default",
    opacity_labels: sitk.Image | None = None,
    remove_vessels: bool = True,
) -> pd.DataFrame:
    """Lung volume, GGO, consolidation, density and the lobar severity score of each lobe.

    Parameters
    ----------
    image : SimpleITK.Image
        CT in HU.
    lobe_labels : SimpleITK.Image
        0 none, 1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL (same grid).
    bins : str or mapping
        HU bin preset or custom table (see :mod:`kicc_analysis.quantification.bins`).
    opacity_labels : SimpleITK.Image, optional
        1 GGO / 2 consolidation labels; default ``segment_opacities(image, lobe_labels > 0, bins)``. Pass the lung
        mask's opacity labels to get exactly the numbers of the lung rows of ``quantify``.
    remove_vessels : bool
        Passed to :func:`~kicc_analysis.quantification.segment_opacities`.

    Returns
    -------
    pandas.DataFrame
        One row per lobe (RUL, RML, RLL, LUL, LLL): ``region``, ``side``, ``zone`` (``"lobe"``), ``n_voxels``,
        ``volume_ml``, ``ggo_ml``, ``ggo_pct``, ``consolidation_ml``, ``consolidation_pct``, ``opacity_ml``,
        ``opacity_pct`` (% of the lobe), ``<class>_pct``, ``mean_hu``, ``hu_p10`` ... ``hu_p90``, ``skewness``,
        ``kurtosis``, ``lobe_score`` (0-5) and ``lobe_score_total`` (0-25).

    Examples
    --------
    >>> import numpy as np, SimpleITK as sitk
    >>> hu = np.full((6, 10, 10), -850, dtype=np.int16); hu[:3, :, :5] = -500   # GGO in the lower half of RUL
    >>> lobes = np.zeros(hu.shape, np.uint8); lobes[:, :, :5] = 1; lobes[:, :, 5:] = 4
    >>> ct, lab = sitk.GetImageFromArray(hu), sitk.GetImageFromArray(lobes)
    >>> table = quantify_lobes(ct, lab, remove_vessels=False).set_index("region")
    >>> table.loc[["RUL", "LUL"], ["ggo_pct", "lobe_score"]].to_numpy().tolist()
    [[50.0, 3.0], [0.0, 0.0]]
    """
    from .opacity import _arrays, _bounding_box, _opacity_array

    hu, lobes = _arrays(image, lobe_labels)
    table = get_bins(bins)
    box = _bounding_box(lobes) or tuple(slice(0, 0) for _ in range(lobes.ndim))
    if opacity_labels is None:
        spacing = np.asarray(image.GetSpacing()[::-1], dtype=float)
        opacity = _opacity_array(hu[box], lobes[box] > 0, table, spacing, remove_vessels, 0.0)
    else:
        opacity = sitk.GetArrayViewFromImage(opacity_labels)[box]
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    return lobe_table(hu[box], lobes[box], opacity, table, voxel_ml)


def lobe_table(
    hu: np.ndarray, lobes: np.ndarray, opacity: np.ndarray, table: Mapping[str, tuple[float, float]], voxel_ml: float
) -> pd.DataFrame:
    """The rows of :func:`quantify_lobes` from arrays of one shape (HU, lobe codes, opacity labels)."""
    from .metrics import HU_HIGH, HU_LOW, region_measures

    if lobes.shape != hu.shape or opacity.shape != hu.shape:
        raise AnalysisError(f"lobe labels {lobes.shape} / opacity {opacity.shape} must have the CT's shape {hu.shape}")
    top = int(lobes.max()) if lobes.size else 0
    if top > len(LOBES):
        raise AnalysisError(f"lobe labels hold the value {top}; expected 0 none, 1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL")
    inside = lobes > 0
    code = lobes[inside].astype(np.int32)
    n_hu = HU_HIGH - HU_LOW + 1
    values = hu[inside]
    if values.dtype.kind == "f":
        values = np.rint(values)
    index = np.clip(values, HU_LOW, HU_HIGH).astype(np.int32)
    index += code * n_hu - HU_LOW  # int32 throughout (at most 6 x 6144): half the memory of int64
    hist = np.bincount(index, minlength=6 * n_hu).reshape(6, n_hu)
    del index, values
    counts = np.bincount(code * 3 + opacity[inside], minlength=18).reshape(6, 3)
    rows = []
    for k, lobe in enumerate(LOBES, start=1):
        row = {"region": lobe, "side": LOBE_SIDES[lobe], "zone": "lobe"}
        row.update(region_measures(hist[k], counts[k], table, voxel_ml))
        row["lobe_score"] = float(severity_scores(row["opacity_pct"])) if row["n_voxels"] else np.nan
        rows.append(row)
    frame = pd.DataFrame(rows)
    scores = frame["lobe_score"]
    frame["lobe_score_total"] = float(scores.sum()) if scores.notna().all() else np.nan
    return frame


def append_lobe_rows(
    frame: pd.DataFrame,
    image: sitk.Image,
    hu: np.ndarray,
    lobe_labels: sitk.Image,
    box: tuple[slice, ...],
    opacity: np.ndarray,
    table: Mapping[str, tuple[float, float]],
    voxel_ml: float,
) -> pd.DataFrame:
    """``quantify``'s table with the lobe rows appended (arrays cropped to the lung's bounding ``box``)."""
    if lobe_labels.GetSize() != image.GetSize():
        raise AnalysisError(
            f"lobe labels must share the CT grid: CT size {image.GetSize()}, lobes {lobe_labels.GetSize()}"
        )
    lobes = lobe_table(hu, sitk.GetArrayViewFromImage(lobe_labels)[box], opacity, table, voxel_ml)
    lobes["severity_score"] = np.nan
    lobes["severity_total"] = frame["severity_total"].iloc[0] if len(frame) else np.nan
    frame = pd.concat([frame, lobes], ignore_index=True)
    frame["lobe_score_total"] = lobes["lobe_score_total"].iloc[0]
    return frame
