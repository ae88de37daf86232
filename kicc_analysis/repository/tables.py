"""Instance -> series -> study tables from the per-file header records of a scan.

Conventions
-----------
* Positions and spacings are in mm, in the DICOM patient coordinate system (LPS).
* ``slice_position`` (mm) is the projection of Image Position (Patient) on the slice normal
  (row cosine x column cosine): slices of a series are ordered and gaps measured along it.
* A series has a *gap* when two consecutive distinct slice positions are more than 1.5 x the median
  spacing apart; ``n_missing_slices`` is the sum over gaps of ``round(gap / median) - 1``. Spacing that
  deviates from the median by more than 10 % (but is not a gap) is reported as irregular.
* Missing UIDs (anonymisers sometimes empty them) are replaced by stable synthetic keys, recorded in
  the ``uid_note`` column and the series ``issues``:

  - SOP Instance UID: the file meta Media Storage SOP Instance UID, else ``kicc-sop-<hash of path>``;
  - Series Instance UID: ``kicc-series-<hash>`` of (folder, Frame of Reference UID, series number,
    series description, rows, columns, modality);
  - Study Instance UID: ``kicc-study-<hash>`` of (patient id, study date, parent of the folder).

* Files sharing one SOP Instance UID: the first by path is kept, the others are reported in
  ``skipped`` with the path of the kept copy.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pandas as pd

from .header import IMAGE_SOP_CLASSES, NATIVE_TRANSFER_SYNTAXES

__all__ = ["FLAT_COLUMNS", "SOP_CLASS_MODALITY", "build_instances", "build_series", "build_studies", "plane_of"]

#: Columns of one file in the index (header fields with multi-valued ones split into numbers).
FLAT_COLUMNS: tuple[str, ...] = (
    "relpath",
    "size",
    "mtime_ns",
    "error",
    "parser",
    "media_sop_class_uid",
    "media_sop_uid",
    "transfer_syntax",
    "specific_character_set",
    "image_type",
    "sop_class_uid",
    "sop_uid",
    "study_date",
    "modality",
    "manufacturer",
    "study_description",
    "series_description",
    "patient_id",
    "body_part",
    "slice_thickness",
    "spacing_between_slices",
    "imager_spacing_row",
    "imager_spacing_col",
    "kernel",
    "view_position",
    "study_uid",
    "series_uid",
    "series_number",
    "acquisition_number",
    "instance_number",
    "image_position_x",
    "image_position_y",
    "image_position_z",
    "orient_rx",
    "orient_ry",
    "orient_rz",
    "orient_cx",
    "orient_cy",
    "orient_cz",
    "frame_of_reference_uid",
    "samples_per_pixel",
    "number_of_frames",
    "rows",
    "columns",
    "pixel_spacing_row",
    "pixel_spacing_col",
    "bits_allocated",
    "rescale_intercept",
    "rescale_slope",
)

#: Modality implied by the SOP Class when the Modality attribute is absent (sparse headers).
SOP_CLASS_MODALITY: dict[str, str] = IMAGE_SOP_CLASSES

_GAP_FACTOR = 1.5
#: Two slices closer than this along the normal (mm) share one position.
_SAME_POSITION = 0.01
_INT_COLUMNS = (
    "series_number",
    "acquisition_number",
    "instance_number",
    "samples_per_pixel",
    "number_of_frames",
    "rows",
    "columns",
    "bits_allocated",
)
_IRREGULAR = 0.10


def _hash(*parts: object) -> str:
    text = "\x1f".join("" if p is None or (isinstance(p, float) and np.isnan(p)) else str(p) for p in parts)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


def plane_of(normal: np.ndarray) -> np.ndarray:
    """Name the acquisition plane of each slice normal (n x 3): axial, coronal, sagittal, oblique or None.

    The plane is the patient axis closest to the normal when it is within ~37 degrees
    (|cosine| >= 0.8; tilted-gantry axial CT stays axial), else ``"oblique"``.
    """
    out = np.full(len(normal), None, dtype=object)
    a = np.abs(normal)
    ok = np.isfinite(a).all(axis=1) & (a.sum(axis=1) > 0)
    axis = np.argmax(np.where(np.isfinite(a), a, -1), axis=1)
    names = np.array(["sagittal", "coronal", "axial"], dtype=object)
    strong = a[np.arange(len(a)), axis] >= 0.8 if len(a) else np.zeros(0, bool)
    out[ok & strong] = names[axis[ok & strong]]
    out[ok & ~strong] = "oblique"
    return out


def build_instances(files: pd.DataFrame, root: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Turn readable files of the index into the instance table; return (instances, duplicate files).

    ``duplicates`` has columns ``relpath, size, series_uid, reason`` for files whose SOP Instance UID was already
    seen in another file (first by path kept).
    """
    df = files.drop(columns=["error"]).copy()
    df.insert(0, "path", [os.path.join(root, p) for p in df["relpath"]])
    df["mtime"] = pd.to_datetime(df["mtime_ns"], unit="ns", utc=True)
    for col in _INT_COLUMNS:
        df[col] = df[col].round().astype("Int64")
    notes = pd.Series([""] * len(df), index=df.index, dtype=object)

    # Modality from the SOP Class when the attribute is missing.
    sop_class = df["sop_class_uid"].fillna(df["media_sop_class_uid"])
    missing_mod = df["modality"].isna()
    if missing_mod.any():
        df.loc[missing_mod, "modality"] = sop_class[missing_mod].map(SOP_CLASS_MODALITY)
        notes[missing_mod] += "Modality absent, taken from SOP Class; "
    df["sop_class_uid"] = sop_class

    # UIDs: fall back on stable synthetic keys.
    folder = df["relpath"].map(os.path.dirname)
    miss = df["sop_uid"].isna()
    if miss.any():
        df.loc[miss, "sop_uid"] = df.loc[miss, "media_sop_uid"]
        still = df["sop_uid"].isna()
        df.loc[still, "sop_uid"] = ["kicc-sop-" + _hash(p) for p in df.loc[still, "relpath"]]
        notes[miss] += "SOP Instance UID absent, synthesised; "
    miss = df["series_uid"].isna()
    if miss.any():
        sub = df.loc[miss]
        df.loc[miss, "series_uid"] = [
            "kicc-series-"
            + _hash(f, r.frame_of_reference_uid, r.series_number, r.series_description, r.rows, r.columns, r.modality)
            for f, r in zip(folder[miss], sub.itertuples(index=False), strict=True)
        ]
        notes[miss] += "Series Instance UID absent, grouped by folder + frame of reference + series number; "
    miss = df["study_uid"].isna()
    if miss.any():
        df.loc[miss, "study_uid"] = [
            "kicc-study-" + _hash(pid, date, os.path.dirname(f))
            for pid, date, f in zip(df.loc[miss, "patient_id"], df.loc[miss, "study_date"], folder[miss], strict=True)
        ]
        notes[miss] += "Study Instance UID absent, grouped by patient id + study date + parent folder; "
    df["uid_note"] = notes.str.rstrip("; ").replace("", None)

    # Geometry: slice normal, plane, position along the normal.
    r = df[["orient_rx", "orient_ry", "orient_rz"]].to_numpy(dtype=float)
    c = df[["orient_cx", "orient_cy", "orient_cz"]].to_numpy(dtype=float)
    n = np.cross(r, c)
    df["normal_x"], df["normal_y"], df["normal_z"] = n[:, 0], n[:, 1], n[:, 2]
    df["plane"] = plane_of(n)
    p = df[["image_position_x", "image_position_y", "image_position_z"]].to_numpy(dtype=float)
    df["slice_position"] = np.einsum("ij,ij->i", p, n)
    ts = df["transfer_syntax"]
    df["compressed"] = ts.notna() & ~ts.isin(NATIVE_TRANSFER_SYNTAXES)
    it = df["image_type"].fillna("").str.upper()
    df["is_localizer"] = it.str.contains("LOCALIZER") | it.str.contains("SCOUT") | it.str.contains("TOPOGRAM")

    # Duplicate SOP instances: keep the first by path.
    df = df.sort_values("relpath", kind="stable").reset_index(drop=True)
    dup = df.duplicated("sop_uid", keep="first")
    duplicates = pd.DataFrame(columns=["relpath", "size", "series_uid", "reason"])
    if dup.any():
        first = df.loc[~dup].set_index("sop_uid")["relpath"]
        d = df.loc[dup]
        duplicates = pd.DataFrame(
            {
                "relpath": d["relpath"].to_numpy(),
                "size": d["size"].to_numpy(),
                "series_uid": d["series_uid"].to_numpy(),
                "reason": [
                    f"duplicate SOP instance: SOP Instance UID {u} is also in {first[u]} (kept)" for u in d["sop_uid"]
                ],
            }
        )
        df = df.loc[~dup].reset_index(drop=True)
    return df, duplicates


def _series_geometry(g: pd.DataFrame) -> dict[str, object]:
    """Slice count, spacing, gaps and consistency of one series."""
    out: dict[str, object] = {}
    issues: list[str] = []
    sizes = g[["rows", "columns"]].drop_duplicates()
    orient = (
        g[["orient_rx", "orient_ry", "orient_rz", "orient_cx", "orient_cy", "orient_cz"]].round(4).drop_duplicates()
    )
    spacing = g[["pixel_spacing_row", "pixel_spacing_col"]].round(4).drop_duplicates()
    if len(sizes) > 1:
        issues.append(f"{len(sizes)} different image sizes")
    if len(orient) > 1:
        issues.append(f"{len(orient)} different orientations")
    if len(spacing) > 1:
        issues.append(f"{len(spacing)} different pixel spacings")
    pos = g["slice_position"].to_numpy(dtype=float)
    pos = pos[np.isfinite(pos)]
    volumetric = g["modality"].isin(["CT", "MR", "PT"]).any()
    if len(pos) < len(g) and (volumetric or len(pos)):
        issues.append(f"{len(g) - len(pos)} files without image position/orientation")
    srt = np.sort(pos)
    uniq = srt[np.r_[True, np.diff(srt) > _SAME_POSITION]] if len(srt) else srt
    n_dup = len(pos) - len(uniq)
    if n_dup > 0:
        issues.append(f"{n_dup} duplicate slice positions")
    # Projection radiographs (no position) count one slice per image.
    out["n_slices"] = len(uniq) if len(pos) or volumetric else len(g)
    out["n_duplicate_positions"] = n_dup
    out["position_min"] = float(uniq[0]) if len(uniq) else np.nan
    out["position_max"] = float(uniq[-1]) if len(uniq) else np.nan
    out["coverage_mm"] = float(uniq[-1] - uniq[0]) if len(uniq) else np.nan
    n_missing = 0
    gaps: list[str] = []
    if len(uniq) >= 2:
        d = np.diff(uniq)
        med = float(np.median(d))
        out["slice_spacing"] = med
        out["spacing_min"] = float(d.min())
        out["spacing_max"] = float(d.max())
        is_gap = d > _GAP_FACTOR * med
        for i in np.flatnonzero(is_gap):
            k = int(round(d[i] / med)) - 1
            n_missing += max(k, 1)
            gaps.append(f"{max(k, 1)} missing between {uniq[i]:.2f} and {uniq[i + 1]:.2f} mm")
        irregular = (~is_gap) & (np.abs(d - med) > _IRREGULAR * med)
        if gaps:
            issues.append("gap: " + ", ".join(gaps))
        if irregular.any():
            issues.append(f"irregular spacing ({d[~is_gap].min():.3f}..{d[~is_gap].max():.3f} mm, median {med:.3f})")
    else:
        out["slice_spacing"] = out["spacing_min"] = out["spacing_max"] = np.nan
        irregular = np.zeros(0, bool)
    out["n_missing_slices"] = n_missing
    out["has_gap"] = bool(gaps)
    out["consistent"] = len(sizes) == 1 and len(orient) == 1 and len(spacing) == 1
    out["complete"] = bool(
        len(uniq) >= 2 and not gaps and n_dup == 0 and out["consistent"] and not irregular.any() and len(pos) == len(g)
    )
    out["_issues"] = issues
    return out


def _median(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.median()) if len(s) else np.nan


def _mode(s: pd.Series) -> object:
    s = s.dropna()
    if s.empty:
        return None
    m = s.mode()
    return m.iloc[0] if len(m) else None


SERIES_COLUMNS = (
    "series_uid",
    "study_uid",
    "patient_id",
    "modality",
    "manufacturer",
    "series_number",
    "series_description",
    "body_part",
    "kernel",
    "image_type",
    "plane",
    "is_localizer",
    "n_instances",
    "n_slices",
    "n_frames_max",
    "rows",
    "columns",
    "pixel_spacing_row",
    "pixel_spacing_col",
    "slice_thickness",
    "slice_spacing",
    "spacing_min",
    "spacing_max",
    "position_min",
    "position_max",
    "coverage_mm",
    "n_missing_slices",
    "has_gap",
    "n_duplicate_positions",
    "consistent",
    "complete",
    "transfer_syntax",
    "compressed",
    "folder",
    "study_date",
    "issues",
)


def build_series(instances: pd.DataFrame, duplicates: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per series: description, geometry (mm), slice count, gaps, compression and issues.

    ``complete`` is True for a multi-slice series with one geometry, no gap, no duplicate position and
    regular spacing; for single-image series (radiographs) it is False with ``n_slices`` 1.
    """
    if instances.empty:
        return pd.DataFrame(columns=list(SERIES_COLUMNS))
    dup_by_series: dict[str, int] = {}
    if duplicates is not None and not duplicates.empty and "series_uid" in duplicates:
        dup_by_series = duplicates["series_uid"].value_counts().to_dict()
    rows = []
    for uid, g in instances.groupby("series_uid", sort=True):
        first = g.iloc[0]
        geo = _series_geometry(g)
        issues = list(geo.pop("_issues"))
        notes = g["uid_note"].dropna().unique()
        issues.extend(str(n) for n in notes)
        if dup_by_series.get(uid):
            issues.append(f"{dup_by_series[uid]} duplicate SOP instance file(s) skipped")
        ts = g["transfer_syntax"].dropna().unique()
        folders = g["relpath"].map(os.path.dirname).unique()
        frames = g["number_of_frames"].fillna(1)
        psr, psc = _median(g["pixel_spacing_row"]), _median(g["pixel_spacing_col"])
        if np.isnan(psr) and g["imager_spacing_row"].notna().any():
            psr, psc = _median(g["imager_spacing_row"]), _median(g["imager_spacing_col"])
            issues.append("pixel spacing from Imager Pixel Spacing (at the detector, not magnification-corrected)")
        rows.append(
            {
                "series_uid": uid,
                "study_uid": first["study_uid"],
                "patient_id": first["patient_id"],
                "modality": _mode(g["modality"]),
                "manufacturer": _mode(g["manufacturer"]),
                "series_number": first["series_number"],
                "series_description": first["series_description"],
                "body_part": _mode(g["body_part"]),
                "kernel": _mode(g["kernel"]),
                "image_type": _mode(g["image_type"]),
                "plane": _mode(g["plane"]),
                "is_localizer": bool(g["is_localizer"].any()),
                "n_instances": len(g),
                "n_frames_max": int(frames.max()),
                "rows": _mode(g["rows"]),
                "columns": _mode(g["columns"]),
                "pixel_spacing_row": psr,
                "pixel_spacing_col": psc,
                "slice_thickness": _median(g["slice_thickness"]),
                "transfer_syntax": ts[0] if len(ts) == 1 else ("mixed" if len(ts) else None),
                "compressed": bool(g["compressed"].any()),
                "folder": folders[0] if len(folders) == 1 else os.path.commonpath(list(folders)) or ".",
                "study_date": first["study_date"],
                "issues": "; ".join(issues) if issues else None,
                **geo,
            }
        )
    out = pd.DataFrame(rows)
    for col in ("series_number", "rows", "columns", "n_missing_slices", "n_duplicate_positions"):
        out[col] = pd.array(out[col], dtype="Int64")
    return out[list(SERIES_COLUMNS)]


STUDY_COLUMNS = (
    "study_uid",
    "patient_id",
    "study_date",
    "modalities",
    "n_series",
    "n_instances",
    "n_ct_series",
    "selected_series_uid",
    "selection_reason",
)


def build_studies(series: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """One row per study: modalities present, counts, and the CT series chosen for quantification."""
    if series.empty:
        return pd.DataFrame(columns=list(STUDY_COLUMNS))
    g = series.groupby("study_uid", sort=True)
    out = pd.DataFrame(
        {
            "patient_id": g["patient_id"].first(),
            "study_date": g["study_date"].first(),
            "modalities": g["modality"].agg(lambda s: ",".join(sorted({str(m) for m in s.dropna()}))),
            "n_series": g.size(),
            "n_instances": g["n_instances"].sum(),
            "n_ct_series": g["modality"].agg(lambda s: int((s == "CT").sum())),
        }
    ).reset_index()
    sel = selection.set_index("study_uid") if not selection.empty else None
    out["selected_series_uid"] = out["study_uid"].map(sel["series_uid"]) if sel is not None else None
    out["selection_reason"] = out["study_uid"].map(sel["reason"]) if sel is not None else None
    return out[list(STUDY_COLUMNS)]
