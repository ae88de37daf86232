"""Per-region quantification (:func:`quantify`): lung volume, GGO, consolidation, severity, density statistics."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import SimpleITK as sitk

from ..scores import severity_score
from .bins import get_bins
from .voxelwise import CONSOLIDATION, GGO, _arrays, _bounding_box, _opacity_array
from .zones import N_ZONE_IDS, PERIPHERY_FRACTION, ZONE_NAMES, _zone_ids, periphery_mask

PERCENTILES = (10, 25, 50, 75, 90)
HU_LOW, HU_HIGH = -2048, 4095  # histogram range of density statistics (HU, 1-HU bins; values outside are clipped)


def quantify(
    image: sitk.Image,
    lung_labels: sitk.Image,
    *,
    bins: str | Mapping[str, tuple[float, float]] = "default",
    opacity_labels: sitk.Image | None = None,
    remove_vessels: bool = True,
    core_periphery: bool = False,
    periphery_fraction: float = PERIPHERY_FRACTION,
    lobe_labels: sitk.Image | None = None,
) -> pd.DataFrame:
    """Quantify lung volume, GGO and consolidation per region.

    Parameters
    ----------
    image : SimpleITK.Image
        CT in HU.
    lung_labels : SimpleITK.Image
        1 right lung, 2 left lung (same grid).
    bins : str or mapping
        HU bin preset or custom table (see :mod:`kicc_analysis.quantification.bins`).
    opacity_labels : SimpleITK.Image, optional
        Pre-computed opacity labels (1 GGO, 2 consolidation); default ``segment_opacities(image, lung_labels, bins)``.
    remove_vessels : bool
        Passed to :func:`segment_opacities` (thin dense vessels are not counted as consolidation).
    core_periphery : bool
        Also report ``both_core``, ``both_periphery``, ``right_core`` ... ``left_periphery`` (``zone`` = ``core`` /
        ``periphery``; see :func:`periphery_mask`). They do not enter ``severity_total``.
    periphery_fraction : float
        Outer share of the depth from the thoracic outline that is periphery (default 1/3).
    lobe_labels : SimpleITK.Image, optional
        1 RUL, 2 RML, 3 RLL, 4 LUL, 5 LLL (same grid, e.g. ``load_lung_mask(...).lobes``): adds one row per lobe
        (``zone`` = ``"lobe"``) with ``lobe_score`` (0-5) and ``lobe_score_total`` (0-25), see
        :mod:`kicc_analysis.quantification.lobes`; their ``severity_score`` (a zone score) is NaN.

    Returns
    -------
    pandas.DataFrame
        One row per region (``region`` = both, right, left, right_upper, ..., left_lower) with ``side``, ``zone``,
        ``n_voxels``, ``volume_ml``, ``ggo_ml``, ``ggo_pct``, ``consolidation_ml``, ``consolidation_pct``,
        ``opacity_ml``, ``opacity_pct``, one ``<class>_pct`` for each other bin class (e.g. ``emphysema_pct``),
        ``mean_hu``, ``hu_p10`` ... ``hu_p90``, ``skewness``, ``kurtosis``, ``severity_score`` and
        ``severity_total``. ``attrs`` holds ``bins`` (the table used).
    """
    hu, labels = _arrays(image, lung_labels)
    table = get_bins(bins)
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    spacing = np.asarray(image.GetSpacing()[::-1], dtype=float)
    box = _bounding_box(labels) or tuple(slice(0, 0) for _ in range(labels.ndim))
    hu_c, lab_c = hu[box], labels[box]
    if opacity_labels is None:
        opac_c = _opacity_array(hu_c, lab_c > 0, table, spacing, remove_vessels, 0.0)
    else:
        opac_c = sitk.GetArrayFromImage(opacity_labels)[box]
    zone_id, has_zones = _zone_ids(lab_c)
    lung = zone_id > 0
    z = zone_id[lung].astype(np.int64)
    hu_bin = np.clip(np.rint(hu_c[lung]), HU_LOW, HU_HIGH).astype(np.int64) - HU_LOW
    n_hu = HU_HIGH - HU_LOW + 1
    hist = np.bincount(z * n_hu + hu_bin, minlength=N_ZONE_IDS * n_hu).reshape(N_ZONE_IDS, n_hu)
    opac_counts = np.bincount(z * 3 + opac_c[lung].astype(np.int64), minlength=N_ZONE_IDS * 3).reshape(N_ZONE_IDS, 3)
    regions = {"both": list(range(1, N_ZONE_IDS)), "right": [1, 2, 3, 7], "left": [4, 5, 6, 8]}
    if has_zones:
        for side, first in (("right", 1), ("left", 4)):
            for k, name in enumerate(ZONE_NAMES):
                regions[f"{side}_{name}"] = [first + k]
    if core_periphery:
        # second set of ids: 2 right core, 3 right periphery, 4 left core, 5 left periphery
        periphery = periphery_mask(lab_c, spacing, periphery_fraction)[lung]
        group = 2 * lab_c[lung].astype(np.int64) + periphery
        hist = np.concatenate([hist, np.bincount(group * n_hu + hu_bin, minlength=6 * n_hu).reshape(6, n_hu)[2:]])
        counts_cp = np.bincount(group * 3 + opac_c[lung].astype(np.int64), minlength=18).reshape(6, 3)[2:]
        opac_counts = np.concatenate([opac_counts, counts_cp])
        first = N_ZONE_IDS  # rows N_ZONE_IDS.. of hist / opac_counts hold the four core/periphery groups
        for part, offset in (("core", 0), ("periphery", 1)):
            regions[f"both_{part}"] = [first + offset, first + 2 + offset]
            regions[f"right_{part}"] = [first + offset]
            regions[f"left_{part}"] = [first + 2 + offset]
    rows = []
    for name, ids in regions.items():
        side, _, zone = name.partition("_")
        row = {"region": name, "side": side, "zone": zone or "all"}
        row.update(region_measures(hist[ids].sum(axis=0), opac_counts[ids].sum(axis=0), table, voxel_ml))
        row["severity_score"] = severity_score(row["opacity_pct"])
        rows.append(row)
    frame = pd.DataFrame(rows)
    zone_rows = frame["zone"].isin(ZONE_NAMES)
    frame["severity_total"] = float(frame.loc[zone_rows, "severity_score"].sum()) if zone_rows.any() else np.nan
    if lobe_labels is not None:  # issue 15: one row per lobe, the same opacity labels
        from .lobes import append_lobe_rows

        frame = append_lobe_rows(frame, image, hu_c, lobe_labels, box, opac_c, table, voxel_ml)
    frame.attrs["bins"] = table
    return frame


def region_measures(
    hist: np.ndarray, opacity_counts: np.ndarray, table: Mapping[str, tuple[float, float]], voxel_ml: float
) -> dict[str, float]:
    """The measures of one region (a lung, zone, core/periphery group or lobe) from its HU histogram.

    Parameters
    ----------
    hist : array
        Voxel counts per HU from ``HU_LOW`` to ``HU_HIGH``.
    opacity_counts : array of 3
        Voxels labelled normal, GGO and consolidation.
    table : mapping
        The HU-bin table (:func:`~kicc_analysis.quantification.bins.get_bins`): every class other than GGO and
        consolidation gives a ``<class>_pct`` from the histogram.
    voxel_ml : float
        Volume of one voxel (mL).

    Returns
    -------
    dict
        ``n_voxels``, ``volume_ml``, ``ggo_ml``/``_pct``, ``consolidation_ml``/``_pct``, ``opacity_ml``/``_pct``
        (percent of the region's volume; NaN for an empty region), the other classes' ``_pct`` and the histogram
        statistics (``mean_hu``, percentiles, ``skewness``, ``kurtosis``).
    """
    hu_values = np.arange(HU_LOW, HU_HIGH + 1, dtype=np.float64)
    n = int(hist.sum())
    volume = n * voxel_ml
    ggo, cons = opacity_counts[GGO] * voxel_ml, opacity_counts[CONSOLIDATION] * voxel_ml

    def pct(ml: float) -> float:
        return 100.0 * ml / volume if volume > 0 else np.nan

    row = {
        "n_voxels": n,
        "volume_ml": volume,
        "ggo_ml": ggo,
        "ggo_pct": pct(ggo),
        "consolidation_ml": cons,
        "consolidation_pct": pct(cons),
        "opacity_ml": ggo + cons,
        "opacity_pct": pct(ggo + cons),
    }
    for cls, (lo, hi) in table.items():
        if cls not in ("ggo", "consolidation"):
            row[f"{cls}_pct"] = pct(float(hist[(hu_values >= lo) & (hu_values < hi)].sum()) * voxel_ml)
    row.update(_histogram_stats(hist, hu_values))
    return row


def _histogram_stats(h: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Mean, percentiles (numpy 'linear' method), skewness and excess kurtosis (scipy, biased) from a histogram.

    Exact for integer HU (the histogram has one bin per HU); images with fractional HU are rounded to 1 HU.
    """
    n = h.sum()
    out: dict[str, float] = {}
    if n == 0:
        out["mean_hu"] = np.nan
        out.update({f"hu_p{q}": np.nan for q in PERCENTILES})
        out["skewness"] = out["kurtosis"] = np.nan
        return out
    mean = float(h @ values / n)
    centred = values - mean
    m2 = float(h @ centred**2 / n)
    m3 = float(h @ centred**3 / n)
    m4 = float(h @ centred**4 / n)
    out["mean_hu"] = mean
    cum = np.cumsum(h)
    for q in PERCENTILES:
        position = q / 100.0 * (n - 1)
        low = int(np.floor(position))
        frac = position - low
        v_low = values[np.searchsorted(cum, low, side="right")]
        v_high = values[np.searchsorted(cum, min(low + 1, n - 1), side="right")]
        out[f"hu_p{q}"] = float(v_low + frac * (v_high - v_low))
    out["skewness"] = m3 / m2**1.5 if m2 > 0 and n > 2 else np.nan
    out["kurtosis"] = m4 / m2**2 - 3.0 if m2 > 0 and n > 3 else np.nan
    return out
